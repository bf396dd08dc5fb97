//! An alert as an audit record (SPEC §15): action `alert.{rule}`, actor `alerts`, target the
//! person, token, address or licence concerned, and a detail in JSON with its figures and the
//! seqs of the records that set it off. The console reads the detail back to word it.

use serde::{Deserialize, Serialize};

use super::rules::{Kind, Per};
use crate::audit::{Entry, Record};

/// The audit actor of every alert.
pub const ALERT_ACTOR: &str = "alerts";
/// The audit actions of alerts begin so; such records never set a rule off.
pub const ALERT_PREFIX: &str = "alert.";

/// An alert's detail (JSON in its audit record): the figures, and the seqs of the records that
/// set it off. Fields a kind has no use for are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub rule: String,
    pub kind: Option<Kind>,
    /// When it happened: the time of the record that set it off (for a verification burst, of
    /// the check). The episode runs from here.
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<Per>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_than: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_minutes: Option<u32>,
    /// A revoked licence's issue (RFC 3339), and how many whole minutes later it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minutes_after_issue: Option<i64>,
    /// The licence concerned, when the target is the person who acted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// Who acted, when the target is the licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// A verification burst's first minute counted (UTC, `YYYY-MM-DDTHH:MM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seqs: Vec<i64>,
}

/// An alert to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule's name: the action is `alert.{rule}`.
    pub rule: String,
    /// The person, token, address or licence concerned.
    pub target: String,
    /// The department concerned: the one every record behind the alert belongs to, else None.
    pub department: Option<String>,
    pub detail: AlertDetail,
}

impl Alert {
    /// The alert as its audit record.
    pub fn entry(&self) -> Entry {
        Entry {
            outcome: "ok".into(),
            detail: serde_json::to_string(&self.detail).expect("details serialise"),
            department: self.department.clone(),
            ..Entry::new(
                ALERT_ACTOR,
                "internal",
                &format!("{ALERT_PREFIX}{}", self.rule),
                &self.target,
            )
        }
    }
}

/// The detail of an alert record, when it is one this service wrote.
pub fn alert_detail(record: &Record) -> Option<AlertDetail> {
    record.action.strip_prefix(ALERT_PREFIX)?;
    serde_json::from_str(&record.detail).ok()
}
