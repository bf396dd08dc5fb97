//! What the city library checks of the county's transparency log (SPEC §16), holding nothing but
//! the trust list and the trees it has seen:
//! - every event's receipt proves the event's entry — its record for a new version, its signed
//!   statement (which must say what the event says) for a status change — at leaf seq − 1, in
//!   a tree the log key signed; the tree (size, root) is kept, unconfirmed: a receipt's sizes
//!   are not under its signature;
//! - `log-check` (and every `pull`) confirms each kept tree against the county's signed head of
//!   that size, and proves every confirmed tree consistent with the latest head. Two signed
//!   roots for one size are a fork; a latest head smaller than a tree seen, or one that does not
//!   extend it, means entries were removed or the past rewritten.
//!
//! Every problem is kept in `log_problems` (once) and reported; nothing is dropped. A county
//! that cannot be reached stops the check with an error instead: that is not a finding.

use anyhow::{bail, Context};
use base64::Engine;
use elicence::licence::EventKind;
use elicence::signing::trust::TrustStore;
use elicence::transparency::head::TreeHead;
use elicence::transparency::receipt::{Proof, Receipt};
use elicence::transparency::statement::StatementClaims;
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

use crate::Event;

type Tx<'c> = sqlx::Transaction<'c, sqlx::Sqlite>;

/// Trees a receipt named, not yet matched with a signed head (`confirmed` 0), matched (1),
/// or contradicted by one (-1, reported).
pub async fn create_tables(db: &SqlitePool) -> anyhow::Result<()> {
    for statement in [
        "CREATE TABLE IF NOT EXISTS log_trees (
            size INTEGER NOT NULL, root BLOB NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0,
            linked INTEGER NOT NULL DEFAULT 0, seen_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            PRIMARY KEY (size, root))",
        "CREATE TABLE IF NOT EXISTS log_problems (
            id INTEGER PRIMARY KEY, problem TEXT NOT NULL UNIQUE,
            found_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    ] {
        sqlx::query(statement).execute(db).await?;
    }
    // Receivers from before the log: their events were never checked against it.
    let has_logged = sqlx::query("SELECT 1 FROM pragma_table_info('events') WHERE name = 'logged'")
        .fetch_optional(db)
        .await?
        .is_some();
    if !has_logged {
        sqlx::query("ALTER TABLE events ADD COLUMN logged INTEGER NOT NULL DEFAULT 0")
            .execute(db)
            .await?;
    }
    Ok(())
}

/// Whether `event`'s receipt proves its entry in the county's log; the tree it names is kept.
/// When it does not, the problem is kept.
pub async fn check_event(
    tx: &mut Tx<'_>,
    trust: &TrustStore,
    event: &Event,
    record: &[u8],
) -> anyhow::Result<bool> {
    match logged_tree(trust, event, record) {
        Ok((size, root)) => {
            keep_tree(tx, size, &root, false).await?;
            Ok(true)
        }
        Err(e) => {
            let seq = event.seq;
            problem(
                tx,
                format!("event {seq}: not shown to be in the county's log: {e:#}"),
            )
            .await?;
            Ok(false)
        }
    }
}

/// The tree (size, root) in which `event`'s receipt proves its entry at leaf seq − 1.
fn logged_tree(
    trust: &TrustStore,
    event: &Event,
    record: &[u8],
) -> anyhow::Result<(u64, [u8; 32])> {
    let base64 = base64::engine::general_purpose::STANDARD;
    let statement;
    let makes_version = EventKind::parse(&event.kind).is_some_and(EventKind::creates_version);
    let entry = if makes_version {
        record
    } else {
        let text = event
            .statement
            .as_deref()
            .context("a status change without its statement")?;
        statement = base64.decode(text).context("its statement is not base64")?;
        let claims = StatementClaims::verify(&statement, trust).context("its statement")?;
        let said = (
            claims.licence_id.as_str(),
            i64::from(claims.version),
            claims.kind.as_str(),
            claims.at.as_str(),
            claims.reason.as_deref(),
        );
        let event_says = (
            event.licence_id.as_str(),
            event.version,
            event.kind.as_str(),
            event.at.as_str(),
            event.reason.as_deref(),
        );
        if said != event_says {
            bail!("its statement says {said:?}, the event {event_says:?}");
        }
        &statement
    };
    let receipt = event.receipt.as_deref().context("it carries no receipt")?;
    let receipt = base64
        .decode(receipt)
        .context("its receipt is not base64")?;
    let receipt = Receipt::parse(&receipt)?;
    let leaf = u64::try_from(event.seq - 1).context("a seq below 1")?;
    match receipt.proof {
        Proof::Inclusion { index, .. } if index == leaf => {}
        Proof::Inclusion { index, .. } => {
            bail!("its receipt is for leaf {index}, not {leaf}: the log's order is not the feed's")
        }
        Proof::Consistency { .. } => bail!("its receipt is not an inclusion proof"),
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(receipt.verify_inclusion(entry, trust, now)?)
}

/// Keeps a tree, `confirmed` when a signed head stated it; two confirmed roots for one size are
/// a fork, reported.
async fn keep_tree(
    tx: &mut Tx<'_>,
    size: u64,
    root: &[u8; 32],
    confirmed: bool,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO log_trees (size, root, confirmed) VALUES (?, ?, ?)
         ON CONFLICT (size, root) DO UPDATE SET confirmed = MAX(confirmed, excluded.confirmed)",
    )
    .bind(size as i64)
    .bind(root.to_vec())
    .bind(i64::from(confirmed))
    .execute(&mut **tx)
    .await?;
    let roots: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM log_trees WHERE size = ? AND confirmed = 1")
            .bind(size as i64)
            .fetch_one(&mut **tx)
            .await?;
    if roots > 1 {
        problem(
            tx,
            format!("fork: the county signed two different trees of {size} entries"),
        )
        .await?;
    }
    Ok(())
}

/// Keeps a problem, once.
async fn problem(tx: &mut Tx<'_>, problem: String) -> anyhow::Result<()> {
    tracing::warn!(%problem, "transparency log");
    sqlx::query("INSERT INTO log_problems (problem) VALUES (?) ON CONFLICT (problem) DO NOTHING")
        .bind(problem)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Confirms the kept trees against the county's signed heads and proves them all consistent
/// with its latest head. Fails (finding nothing) when the county cannot be reached.
pub async fn check_consistency(
    db: &SqlitePool,
    trust: &TrustStore,
    source: &str,
) -> anyhow::Result<()> {
    let county = County::new(source);
    let head = county
        .get("/api/v1/log/head")
        .await?
        .map_err(anyhow::Error::msg)?;
    let head = TreeHead::verify(&head, trust).context("the county's latest head")?;
    let mut tx = db.begin().await?;
    keep_tree(&mut tx, head.size, &head.root, true).await?;
    confirm_trees(&mut tx, trust, &county).await?;
    let largest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(size) FROM log_trees WHERE confirmed = 1")
            .fetch_one(&mut *tx)
            .await?;
    if let Some(largest) = largest.filter(|l| *l as u64 > head.size) {
        let found = format!(
            "the county's latest head is of {} entries, but it signed a tree of {largest} before: \
             entries were removed",
            head.size
        );
        problem(&mut tx, found).await?;
    }
    let unlinked = sqlx::query(
        "SELECT size, root FROM log_trees WHERE confirmed = 1 AND linked = 0 AND size BETWEEN 1 AND ?",
    )
    .bind(head.size as i64 - 1)
    .fetch_all(&mut *tx)
    .await?;
    for row in unlinked {
        let size: i64 = row.try_get("size")?;
        let root: Vec<u8> = row.try_get("root")?;
        let old_root: [u8; 32] = root.as_slice().try_into().context("a kept root")?;
        let path = format!("/api/v1/log/consistency?from={size}&to={}", head.size);
        let proved = county
            .get(&path)
            .await?
            .map_err(anyhow::Error::msg)
            .and_then(|bytes| {
                let (new_size, new_root) =
                    Receipt::parse(&bytes)?.verify_consistency(&old_root, trust, head.time)?;
                if (new_size, new_root) != (head.size, head.root) {
                    bail!("the proof leads to another tree than the latest head");
                }
                Ok(())
            });
        match proved {
            Ok(()) => {
                sqlx::query("UPDATE log_trees SET linked = 1 WHERE size = ? AND root = ?")
                    .bind(size)
                    .bind(root)
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => {
                let found = format!(
                    "the county's log of {} entries does not extend the tree of {size} entries it \
                     signed before: entries were removed or the past rewritten ({e:#})",
                    head.size
                );
                problem(&mut tx, found).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Matches every tree a receipt named with the county's signed head of that size.
async fn confirm_trees(tx: &mut Tx<'_>, trust: &TrustStore, county: &County) -> anyhow::Result<()> {
    let pending = sqlx::query("SELECT size, root FROM log_trees WHERE confirmed = 0")
        .fetch_all(&mut **tx)
        .await?;
    for row in pending {
        let size: i64 = row.try_get("size")?;
        let root: Vec<u8> = row.try_get("root")?;
        let path = format!("/api/v1/log/heads?after={}", size - 1);
        let signed = county
            .get(&path)
            .await?
            .map_err(anyhow::Error::msg)
            .and_then(|body| {
                let heads: serde_json::Value = serde_json::from_slice(&body)?;
                let first = heads["heads"].get(0).and_then(|h| h.as_str());
                let Some(first) = first else { return Ok(None) };
                let bytes = base64::engine::general_purpose::STANDARD.decode(first)?;
                let head = TreeHead::verify(&bytes, trust)?;
                Ok((head.size == size as u64).then_some(head.root))
            });
        let outcome = match signed {
            Ok(Some(head_root)) if head_root.as_slice() == root => 1,
            Ok(Some(head_root)) => {
                keep_tree(tx, size as u64, &head_root, true).await?;
                problem(tx, format!("fork: a receipt and the county's head name two different trees of {size} entries")).await?;
                -1
            }
            Ok(None) => {
                problem(tx, format!("a receipt names a tree of {size} entries the county has no signed head for")).await?;
                -1
            }
            Err(e) => {
                problem(
                    tx,
                    format!("the county's head of {size} entries cannot be read: {e:#}"),
                )
                .await?;
                -1
            }
        };
        sqlx::query("UPDATE log_trees SET confirmed = ? WHERE size = ? AND root = ?")
            .bind(outcome)
            .bind(size)
            .bind(root)
            .execute(&mut **tx)
            .await?;
        if outcome == 1 {
            let root: [u8; 32] = row.try_get::<Vec<u8>, _>("root")?.as_slice().try_into()?;
            keep_tree(tx, size as u64, &root, true).await?;
        }
    }
    Ok(())
}

/// The county's public log routes.
struct County {
    base: String,
    client: reqwest::Client,
}

impl County {
    fn new(source: &str) -> County {
        County {
            base: source.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// The body of a 200; the county's refusal (a 4xx) as the inner error, to be judged; no
    /// answer or a 5xx as the outer error, which stops the check.
    async fn get(&self, path: &str) -> anyhow::Result<Result<Vec<u8>, String>> {
        let url = format!("{}{path}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .with_context(|| url.clone())?;
        let status = response.status();
        if status.is_server_error() {
            bail!("{url}: {status}: the county is not answering; nothing was checked");
        }
        let body = response.bytes().await?.to_vec();
        if !status.is_success() {
            return Ok(Err(format!(
                "{url}: {status} {}",
                String::from_utf8_lossy(&body)
            )));
        }
        Ok(Ok(body))
    }
}

/// What the log checks found: trees kept, and every problem.
pub async fn report(tx: &mut Tx<'_>) -> anyhow::Result<serde_json::Value> {
    let trees: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_trees WHERE confirmed = 1")
        .fetch_one(&mut **tx)
        .await?;
    let largest: Option<i64> =
        sqlx::query_scalar("SELECT MAX(size) FROM log_trees WHERE confirmed = 1")
            .fetch_one(&mut **tx)
            .await?;
    let problems: Vec<String> = sqlx::query_scalar("SELECT problem FROM log_problems ORDER BY id")
        .fetch_all(&mut **tx)
        .await?;
    Ok(serde_json::json!({
        "signed_trees": trees,
        "largest_tree": largest,
        "problems": problems,
    }))
}
