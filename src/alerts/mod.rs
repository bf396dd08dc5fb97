//! Alerts (电子监察预警, SPEC §15): rules declared in a TOML file (`default_rules.toml` shipped,
//! `ELICENCE_ALERT_RULES` to replace it) applied to the audit trail as it grows — revocations
//! outside working hours, many revocations or amendments by one person, repeated refused
//! attempts from one token or address, a licence revoked soon after its issue, a burst of
//! verifications of one licence. Each alert is an audit record of its own (`alert.{rule}`), so it
//! reaches the city supervision platform with the rest of the trail and shows in the console.
//!
//! `rules` reads the file, `evaluate` decides (no I/O), `alert` is an alert's audit record,
//! `watcher` reads the trail and appends.

mod alert;
mod evaluate;
mod rules;
mod watcher;

pub use alert::{alert_detail, Alert, AlertDetail, ALERT_ACTOR, ALERT_PREFIX};
pub use rules::{Check, Kind, Per, Rule, Rules, WorkingHours, DEFAULT_RULES};
pub use watcher::{Pass, Watcher, TARGET};
