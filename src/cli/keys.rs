//! `keys …`, `trust export` and `status-list export`: the signing keys and what verifiers are
//! given to check their signatures offline. A room of its own because these commands change or
//! publish what every signature rests on, and none of them touches a licence.

use std::path::PathBuf;

use clap::Subcommand;

use super::{print, write_file};
use crate::app::{Actor, App, AppError};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a development root and a signer per department, unless keys exist already.
    Init,
    /// List signer certificates.
    List,
    /// Give a department a new signing key; the old one is retired (still verifies).
    Rotate {
        /// The issuing department (its USCC) that gets a new key.
        #[arg(long, value_name = "USCC")]
        department: String,
    },
    /// Revoke a signer certificate: what it signed verifies as `signer_revoked`.
    Revoke {
        /// The key id (base64url, so it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Write the trust list (JSON) to FILE.
    Export {
        /// Where to write the trust list.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum StatusListCommand {
    /// Write status list N of an issuing department (signed COSE_Sign1) to FILE.
    Export {
        /// The issuing department (its USCC) whose list to export.
        #[arg(long, value_name = "USCC")]
        issuer: String,
        /// The list's number n (entry i lives in list i div 131072).
        #[arg(long, default_value_t = 0)]
        list: u64,
        /// Where to write the signed list.
        file: PathBuf,
    },
}

/// `keys …`: makes, lists, rotates or revokes signer keys.
pub(super) async fn run(
    app: &App,
    actor: &Actor,
    command: KeysCommand,
    json: bool,
) -> Result<i32, AppError> {
    match command {
        KeysCommand::Init => {
            // Opening the application made the keys if there were none (and said so loudly).
            let list = app.trust_list();
            let (signers, services): (Vec<_>, Vec<_>) = list
                .signers
                .iter()
                .partition(|s| s.purpose == crate::signing::cert::Purpose::Licence);
            let services: Vec<&str> = services.iter().map(|s| s.purpose.as_str()).collect();
            let message = format!(
                "{} signer certificates and the service's own keys ({}) under {}",
                signers.len(),
                services.join(", "),
                app.settings.keys_dir.display()
            );
            print(json, &list, || message.clone());
        }
        KeysCommand::List => {
            let list = app.trust_list();
            print(json, &list.signers, || describe_signers(&list.signers));
        }
        KeysCommand::Rotate { department } => {
            let kid = app.rotate_key(actor, &department).await?;
            print(
                json,
                &serde_json::json!({"kid": kid, "department": department}),
                || format!("new signer {kid} for {department}; the previous one is retired"),
            );
        }
        KeysCommand::Revoke { kid } => {
            app.revoke_key(actor, &kid).await?;
            print(json, &serde_json::json!({"revoked": kid}), || {
                format!("signer {kid} revoked")
            });
        }
    }
    Ok(0)
}

fn describe_signers(signers: &[crate::signing::trust::TrustedSigner]) -> String {
    signers
        .iter()
        .map(|s| {
            format!(
                "{}  {:<8} {} {}{}",
                s.kid,
                format!("{:?}", s.status).to_lowercase(),
                s.uscc.as_deref().unwrap_or(s.purpose.as_str()),
                s.department,
                s.revoked_at
                    .as_deref()
                    .map(|t| format!(" (revoked {t})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `trust export`: writes the trust list the service publishes at
/// `/.well-known/elicence/trust.json`; `--json` prints that same list.
pub(super) fn export_trust(app: &App, command: TrustCommand, json: bool) -> Result<i32, AppError> {
    let TrustCommand::Export { file } = command;
    let list = app.trust_list();
    let pretty = serde_json::to_string_pretty(&list).expect("a trust list serialises");
    write_file(&file, pretty.as_bytes())?;
    print(json, &list, || {
        format!(
            "trust list version {} written to {}",
            list.version,
            file.display()
        )
    });
    Ok(0)
}

/// `status-list export`: writes a signed status list, the bytes the API serves at
/// `/api/v1/status-lists/{issuer}/{n}`.
pub(super) async fn export_status_list(
    app: &App,
    command: StatusListCommand,
    json: bool,
) -> Result<i32, AppError> {
    let StatusListCommand::Export { issuer, list, file } = command;
    let signed = app.status_list(&issuer, list).await?;
    write_file(&file, &signed)?;
    let info =
        serde_json::json!({"issuer": issuer, "list": list, "bytes": signed.len(), "file": file});
    print(json, &info, || {
        format!(
            "status list {list} of {issuer} ({} bytes) written to {}",
            signed.len(),
            file.display()
        )
    });
    Ok(0)
}
