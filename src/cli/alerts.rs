//! `alerts rules` and `alerts check`: the alert rules in force, and one pass of the watcher that
//! `serve` runs in the background (SPEC §15).

use std::sync::Arc;

use clap::Subcommand;
use serde::Serialize;

use super::print;
use crate::alerts::{Pass, Rules, Watcher};
use crate::app::{App, AppError};
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Print the alert rules in force: the shipped ones, or ELICENCE_ALERT_RULES's file.
    Rules,
    /// Run one pass of the alert watcher now: apply the rules to the audit records it has not
    /// watched yet and to the verification counts, and append the alerts they raise.
    Check,
}

/// The rules in force, read as `serve` reads them (a broken file is an error naming its line).
pub(super) fn load_rules(settings: &Settings) -> Result<Rules, AppError> {
    Rules::load(settings.alert_rules.as_deref()).map_err(AppError::Config)
}

/// `alerts rules`.
pub(super) fn rules(rules: &Rules, json: bool) -> Result<i32, AppError> {
    print(json, rules, || {
        let mut lines = vec![
            format!("alert rules: {}", rules.source),
            format!("working hours: {}", rules.working_hours.describe()),
        ];
        for rule in &rules.rules {
            lines.push(format!(
                "{:<30} {:<3} {} (alert.{})",
                rule.name,
                if rule.enabled { "on" } else { "off" },
                rule.describe(),
                rule.name
            ));
        }
        lines.join("\n")
    });
    Ok(0)
}

#[derive(Serialize)]
struct Checked {
    /// False when another instance (a running `serve`) holds the watcher's lease.
    watched: bool,
    records: usize,
    up_to: i64,
    alerts: Vec<serde_json::Value>,
}

/// `alerts check`: one pass, then the lease handed back so that `serve` goes on at once.
pub(super) async fn check(app: Arc<App>, rules: Rules, json: bool) -> Result<i32, AppError> {
    let watcher = Watcher::new(app, rules);
    let pass = watcher.pass().await;
    watcher.release().await;
    let checked = match pass? {
        Pass::NotLeader => Checked {
            watched: false,
            records: 0,
            up_to: 0,
            alerts: Vec::new(),
        },
        Pass::Watched {
            records,
            up_to,
            alerts,
        } => Checked {
            watched: true,
            records,
            up_to,
            alerts: alerts
                .iter()
                .map(|a| {
                    let entry = a.entry();
                    serde_json::json!({
                        "action": entry.action,
                        "target": entry.target,
                        "department": entry.department,
                        "detail": a.detail,
                    })
                })
                .collect(),
        },
    };
    print(json, &checked, || {
        if !checked.watched {
            return "another instance is watching (its lease has not run out): nothing done".into();
        }
        let mut lines = vec![format!(
            "watched {} new audit records, up to seq {}; {} alerts",
            checked.records,
            checked.up_to,
            checked.alerts.len()
        )];
        for alert in &checked.alerts {
            lines.push(format!("{} {}", alert["action"], alert["target"]).replace('"', ""));
        }
        lines.join("\n")
    });
    Ok(0)
}
