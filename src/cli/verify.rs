//! `verify`: checks a QR text or version identifier, online against the service's store or
//! offline against exported files only. A room of its own because its exit code is its answer
//! (0 valid, 2 any other result, 1 an error) and offline it needs no database at all.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{bad_file, print};
use crate::app::{App, AppError};
use crate::signing::cose::Envelope;
use crate::signing::qr;
use crate::signing::status_list::StatusList;
use crate::signing::trust::{TrustList, TrustStore};
use crate::time_util;
use crate::verify::{self, Outcome, Verification};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A QR text, its base32 part after /V/, or a licence version identifier.
    #[arg(value_name = "INPUT")]
    input: String,
    /// Check with a cached trust list and status lists only, without the service's store.
    #[arg(long, requires = "trust")]
    pub offline: bool,
    /// The trust list file (from `trust export`).
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Signed status list files (from `status-list export`); repeat for several.
    #[arg(long = "status-list", value_name = "FILE")]
    status_lists: Vec<PathBuf>,
    /// The root certificate (PEM) to pin instead of trusting the trust list's own root.
    #[arg(long, value_name = "PEM")]
    root: Option<PathBuf>,
    /// Hold status lists to their `ttl` as well as their `exp`: for a verifier that could fetch
    /// a fresh list, so an older one is reported stale rather than believed.
    #[arg(long, requires = "offline")]
    can_refresh: bool,
    /// A signed head of the transparency log (from `log head --out` or GET /api/v1/log/head):
    /// also check that the record is in the county's log, by `--receipt` and `--record`.
    #[arg(long, value_name = "FILE", requires_all = ["offline", "receipt", "record"])]
    log_head: Option<PathBuf>,
    /// The version's inclusion receipt in the head's tree (from `log receipt` or GET
    /// /api/v1/log/receipts/ID?size=N).
    #[arg(long, value_name = "FILE", requires = "log_head")]
    receipt: Option<PathBuf>,
    /// The version's full record, the receipt's entry (from `log receipt --record`).
    #[arg(long, value_name = "FILE", requires = "log_head")]
    record: Option<PathBuf>,
}

/// `verify` against the service's store: the answer `POST /api/v1/verify` gives.
pub(super) async fn run(app: &App, args: VerifyArgs, json: bool) -> Result<i32, AppError> {
    let verification = app.verify(&args.input).await?;
    Ok(report(&verification, json))
}

/// `verify --offline`: only the trust list, the status lists and the pinned root named.
pub(super) fn run_offline(args: VerifyArgs, json: bool) -> Result<i32, AppError> {
    let trust = args
        .trust
        .as_deref()
        .expect("clap requires --trust with --offline");
    let store = trust_store(trust, args.root.as_deref())?;
    let lists = args
        .status_lists
        .iter()
        .map(|path| read_status_list(path))
        .collect::<Result<Vec<_>, _>>()?;
    let token = qr::token_from_text(&args.input);
    let verification = match &token {
        Ok(token) => verify::verify_offline(
            token,
            &store,
            &lists,
            args.can_refresh,
            time_util::now().unix_timestamp(),
        ),
        Err(e) => Verification::failed(Outcome::Malformed, e.to_string()),
    };
    let (Some(head), Some(receipt), Some(record), Ok(token)) =
        (&args.log_head, &args.receipt, &args.record, &token)
    else {
        return Ok(report(&verification, json));
    };
    // One answer: the verification, and where the record stands in the log (or why not).
    let logged = check_logged(token, [head, receipt, record], &store);
    let mut answer = serde_json::to_value(&verification).expect("a verification serialises");
    answer["logged"] = match &logged {
        Ok(logged) => serde_json::json!(logged),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    };
    print(json, &answer, || {
        let line = match &logged {
            Ok(l) => format!(
                "logged: entry {} of the county's log, in the tree of {} entries signed at {}",
                l.index, l.size, l.head_time
            ),
            Err(e) => format!("NOT shown to be in the county's log: {e}"),
        };
        format!("{}\n{line}", describe(&verification))
    });
    let valid = verification.result == Outcome::Valid;
    Ok(if valid && logged.is_ok() { 0 } else { 2 })
}

/// Checks the record's place in the log from the head, receipt and record files.
fn check_logged(
    token: &[u8],
    [head, receipt, record]: [&PathBuf; 3],
    trust: &TrustStore,
) -> Result<crate::transparency::InLog, AppError> {
    let read = |path: &PathBuf| std::fs::read(path).map_err(|e| bad_file(path, e));
    let qr_token = Envelope::parse(token)
        .ok()
        .and_then(|e| crate::signing::claims::QrToken::from_payload(e.payload()).ok())
        .ok_or_else(|| AppError::BadInput("the QR text holds no readable token".into()))?;
    crate::transparency::check_logged(
        &qr_token.record_hash,
        &read(record)?,
        &read(receipt)?,
        &read(head)?,
        trust,
    )
    .map_err(|e| AppError::BadInput(e.to_string()))
}

/// The signers of a trust list file, chained to `root` when one is pinned.
fn trust_store(trust: &Path, root: Option<&Path>) -> Result<TrustStore, AppError> {
    let text = std::fs::read_to_string(trust).map_err(|e| bad_file(trust, e))?;
    let list: TrustList = serde_json::from_str(&text)
        .map_err(|e| bad_file(trust, format!("not a trust list: {e}")))?;
    let pinned = root
        .map(|p| std::fs::read_to_string(p).map_err(|e| bad_file(p, e)))
        .transpose()?;
    let pinned_roots = pinned.map(|p| vec![p]);
    TrustStore::new(&list, pinned_roots.as_deref()).map_err(|e| bad_file(trust, e))
}

/// A signed status list file, with the envelope its signature is checked on.
fn read_status_list(path: &Path) -> Result<(StatusList, Envelope), AppError> {
    let bytes = std::fs::read(path).map_err(|e| bad_file(path, e))?;
    StatusList::parse_signed(&bytes).map_err(|e| bad_file(path, e))
}

/// Prints a verification; returns the exit code it means.
fn report(v: &Verification, json: bool) -> i32 {
    print(json, v, || describe(v));
    if v.result == Outcome::Valid {
        0
    } else {
        2
    }
}

fn describe(v: &Verification) -> String {
    let mut lines = vec![format!(
        "{} ({}) — {}",
        v.result.as_str(),
        v.line_zh(),
        v.message
    )];
    if let Some(l) = &v.licence {
        lines.push(format!("{} {} v{}", l.name, l.id, l.version));
        lines.push(format!("holder {} {}", l.holder_name, l.holder_id));
        lines.push(format!(
            "valid {} .. {}",
            l.valid_from,
            l.valid_until.as_deref().unwrap_or("permanent")
        ));
    }
    if let Some(d) = &v.department {
        lines.push(format!(
            "issued by {} ({}), kid {}",
            d.name,
            d.uscc,
            v.kid.as_deref().unwrap_or("")
        ));
    }
    if let Some(c) = &v.current {
        lines.push(format!("now {} at version {}", c.status, c.version));
        if let Some(p) = &c.pending {
            lines.push(format!(
                "version {} ({}) takes effect on {}",
                p.version,
                p.kind.as_str(),
                p.valid_from
            ));
        }
    }
    lines.join("\n")
}
