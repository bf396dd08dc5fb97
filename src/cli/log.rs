//! `log …`: the transparency log (SPEC §16) — its latest head, a version's receipt, and `log
//! verify`, which checks the stored tree against the entries and the signed heads.

use std::path::PathBuf;

use clap::Subcommand;

use super::{print, write_file};
use crate::app::log::hex;
use crate::app::{App, AppError};

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// The latest signed tree head (a new one when entries arrived since the last).
    Head {
        /// Where to write the head (COSE_Sign1), for `verify --offline --log-head`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// A version's inclusion receipt (COSE, RFC 9942), and its full record: what `verify
    /// --offline --receipt --record` checks.
    Receipt {
        /// The version identifier.
        id: String,
        /// The tree size of a signed head to prove inclusion in (default: the latest head).
        #[arg(long)]
        size: Option<u64>,
        /// Where to write the receipt.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where to write the version's full record (the receipt's entry).
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Check the stored tree against the entries it logs and its signed heads. Exit 0 when
    /// sound, 2 when anything was removed, changed or rewritten.
    Verify,
}

pub(super) async fn run(app: &App, command: LogCommand, json: bool) -> Result<i32, AppError> {
    match command {
        LogCommand::Head { out } => {
            let head = app.log_head().await?;
            if let Some(out) = &out {
                write_file(out, &head.head)?;
            }
            let shown = serde_json::json!({
                "size": head.size, "root": hex(&head.root), "time": head.time,
            });
            print(json, &shown, || {
                format!(
                    "tree size {}, root {}, signed at {}",
                    head.size,
                    hex(&head.root),
                    head.time
                )
            });
            Ok(0)
        }
        LogCommand::Receipt {
            id,
            size,
            out,
            record,
        } => {
            let receipt = app.inclusion_receipt(&id, size).await?;
            write_file(&out, &receipt)?;
            if let Some(path) = &record {
                let version = app.full_record_of(&id).await?;
                write_file(path, &version)?;
            }
            print(json, &serde_json::json!({ "receipt": out }), || {
                format!("wrote the receipt of {id} to {}", out.display())
            });
            Ok(0)
        }
        LogCommand::Verify => {
            let report = app.verify_log().await?;
            print(json, &report, || {
                let mut lines = vec![format!(
                    "{} entries, {} leaves, {} signed heads checked",
                    report.entries, report.leaves, report.heads
                )];
                if report.caught_up_at_open > 0 {
                    lines.push(format!(
                        "note: the log lacked {} leaves when opened, and they were appended first",
                        report.caught_up_at_open
                    ));
                }
                lines.extend(report.problems.iter().map(|p| format!("PROBLEM: {p}")));
                if report.problems.is_empty() {
                    lines.push("the log is sound".into());
                }
                lines.join("\n")
            });
            Ok(if report.problems.is_empty() { 0 } else { 2 })
        }
    }
}
