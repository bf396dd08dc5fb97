//! `elicence supervision …`: the supervision figures (SPEC §15) as the API answers them.

use clap::Subcommand;

use super::print;
use crate::app::{Actor, App, AppError, Figures};

#[derive(Debug, Subcommand)]
pub enum SupervisionCommand {
    /// Figures per department and day: licences converted, issued, amended, renewed,
    /// suspended, reinstated, revoked; rows rejected; refused attempts; verifications;
    /// conversion time from upload to issue (median, p95).
    Summary {
        /// The first day, YYYY-MM-DD (China Standard Time); 29 days before --to when absent.
        #[arg(long)]
        from: Option<String>,
        /// The last day, included; today when absent. At most 366 days.
        #[arg(long)]
        to: Option<String>,
        /// One department (USCC); every department when absent.
        #[arg(long)]
        department: Option<String>,
    },
}

pub(super) async fn run(
    app: &App,
    actor: &Actor,
    command: SupervisionCommand,
    json: bool,
) -> Result<i32, AppError> {
    let SupervisionCommand::Summary {
        from,
        to,
        department,
    } = command;
    let summary = app
        .supervision_summary(actor, from.as_deref(), to.as_deref(), department.as_deref())
        .await?;
    print(json, &summary, || {
        let mut lines = vec![format!(
            "supervision figures {} to {}",
            summary.from, summary.to
        )];
        lines.push(table_line(&HEADER.map(String::from)));
        lines.extend(summary.days.iter().map(row));
        lines.push("totals".into());
        lines.extend(summary.totals.iter().map(row));
        let reasons: Vec<String> = summary
            .totals
            .iter()
            .flat_map(|t| {
                t.rejected_by_reason.iter().map(move |(code, n)| {
                    format!("  {}: {code} {n}", t.department.as_deref().unwrap_or("-"))
                })
            })
            .collect();
        if !reasons.is_empty() {
            lines.push("rejected rows by reason".into());
            lines.extend(reasons);
        }
        lines.join("\n")
    });
    Ok(0)
}

const HEADER: [&str; 14] = [
    "date",
    "department",
    "converted",
    "issued",
    "amended",
    "renewed",
    "suspended",
    "reinstated",
    "revoked",
    "rejected",
    "refused",
    "verified",
    "median_s",
    "p95_s",
];

fn row(f: &Figures) -> String {
    let seconds = |pick: fn(&crate::app::ConversionSeconds) -> i64| {
        f.conversion_seconds
            .as_ref()
            .map_or("-".to_string(), |s| pick(s).to_string())
    };
    let cells = [
        f.date.clone().unwrap_or_else(|| "all".into()),
        f.department.clone().unwrap_or_else(|| "-".into()),
        f.converted.to_string(),
        f.issued.to_string(),
        f.amended.to_string(),
        f.renewed.to_string(),
        f.suspended.to_string(),
        f.reinstated.to_string(),
        f.revoked.to_string(),
        f.rejected_rows.to_string(),
        f.refused_attempts.to_string(),
        f.verifications.to_string(),
        seconds(|s| s.median),
        seconds(|s| s.p95),
    ];
    table_line(&cells)
}

/// One line of the table: the date and department left-aligned, the numbers right-aligned.
fn table_line(cells: &[String; 14]) -> String {
    let mut line = format!("{:<10}  {:<18}", cells[0], cells[1]);
    for cell in &cells[2..] {
        line.push_str(&format!(" {cell:>10}"));
    }
    line
}
