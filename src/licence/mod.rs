//! Licences (SPEC §4): the validated content of a version (`Record`), the versions themselves,
//! their status and the change events that record every step.

mod validate;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::directory::HolderKind;
use crate::identifiers::{ResidentId, Uscc, VersionId};
use crate::time_util;

pub use validate::{validate, Door, FieldError, HolderInput, RecordInput, ValidationErrors};

/// The holder's identity number, of the kind the licence type says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderId {
    Person(ResidentId),
    Organisation(Uscc),
}

impl HolderId {
    pub fn as_str(&self) -> &str {
        match self {
            HolderId::Person(id) => id.as_str(),
            HolderId::Organisation(id) => id.as_str(),
        }
    }

    pub fn kind(&self) -> HolderKind {
        match self {
            HolderId::Person(_) => HolderKind::Person,
            HolderId::Organisation(_) => HolderKind::Organisation,
        }
    }

    /// What public pages and the QR code show: a resident ID masked, a USCC whole (SPEC §3).
    pub fn masked(&self) -> String {
        match self {
            HolderId::Person(id) => id.masked(),
            HolderId::Organisation(id) => id.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub name: String,
    pub id: HolderId,
}

/// A field's value once validated. Integers stay integers in the signed record.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldValue {
    Integer(i64),
    Text(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Integer(n) => write!(f, "{n}"),
            FieldValue::Text(s) => f.write_str(s),
        }
    }
}

/// The validated content of one licence version: what gets signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub number: String,
    pub holder: Holder,
    pub valid_from: Date,
    /// None when the licence is permanent.
    pub valid_until: Option<Date>,
    pub fields: BTreeMap<String, FieldValue>,
    /// Lowercase hex SHA-256 of the archived scan of the paper licence, if any.
    pub scan: Option<String>,
}

/// How a licence changed. The first three create versions; the rest are status changes.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Issued,
    Amended,
    Renewed,
    Suspended,
    Reinstated,
    Revoked,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Issued,
        EventKind::Amended,
        EventKind::Renewed,
        EventKind::Suspended,
        EventKind::Reinstated,
        EventKind::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Issued => "issued",
            EventKind::Amended => "amended",
            EventKind::Renewed => "renewed",
            EventKind::Suspended => "suspended",
            EventKind::Reinstated => "reinstated",
            EventKind::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The standing of a licence as its status events leave it (expiry is derived separately).
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Active,
    Suspended,
    Revoked,
}

impl Standing {
    /// The standing after the given status events, oldest first.
    pub fn after(events: impl IntoIterator<Item = EventKind>) -> Standing {
        events
            .into_iter()
            .fold(Standing::Active, |standing, kind| match kind {
                EventKind::Suspended => Standing::Suspended,
                EventKind::Reinstated => Standing::Active,
                EventKind::Revoked => Standing::Revoked,
                _ => standing,
            })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Suspended => "suspended",
            Standing::Revoked => "revoked",
        }
    }
}

/// Where a version stands against its validity dates at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeliness {
    NotYetValid,
    Current,
    Expired,
}

/// Derives expiry from the dates, never from a stored flag (SPEC §4).
pub fn timeliness(valid_from: Date, valid_until: Option<Date>, at: OffsetDateTime) -> Timeliness {
    if at < time_util::start_of_day_cst(valid_from) {
        Timeliness::NotYetValid
    } else if valid_until.is_some_and(|until| at >= time_util::end_of_day_cst(until)) {
        Timeliness::Expired
    } else {
        Timeliness::Current
    }
}

/// One immutable, signed version of a licence as the store keeps it.
#[derive(Debug, Clone)]
pub struct LicenceVersion {
    pub id: VersionId,
    pub record: Record,
    pub issued_at: OffsetDateTime,
    pub directory_version: i64,
    /// Hex SHA-256 of the previous version's full-record payload; None for version 1.
    pub prev: Option<String>,
    /// Index of this version in its issuer's status lists.
    pub status_index: u64,
    /// The full record, COSE_Sign1 (SPEC §6).
    pub full_record: Vec<u8>,
    /// The QR token, COSE_Sign1 (SPEC §6).
    pub qr_token: Vec<u8>,
    /// Hex SHA-256 of the full record's payload bytes (what the next version's `prev` holds).
    pub payload_hash: String,
    pub kid: Vec<u8>,
    /// The public address its QR text and PDF use (uppercase; not signed: a verifier reads the
    /// token after `/V/`, whatever the host).
    pub verify_base: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn standing_follows_the_last_status_event() {
        use EventKind::*;
        assert_eq!(Standing::after([Issued, Amended]), Standing::Active);
        assert_eq!(Standing::after([Issued, Suspended]), Standing::Suspended);
        assert_eq!(
            Standing::after([Issued, Suspended, Reinstated]),
            Standing::Active
        );
        assert_eq!(
            Standing::after([Issued, Suspended, Revoked]),
            Standing::Revoked
        );
    }

    #[test]
    fn expiry_is_at_the_end_of_the_last_day_in_china_time() {
        let from = date!(2024 - 01 - 01);
        let until = Some(date!(2028 - 12 - 31));
        let last_second = datetime!(2028-12-31 15:59:59 UTC);
        let first_after = datetime!(2028-12-31 16:00:00 UTC);
        assert_eq!(timeliness(from, until, last_second), Timeliness::Current);
        assert_eq!(timeliness(from, until, first_after), Timeliness::Expired);
        assert_eq!(
            timeliness(from, until, datetime!(2023-12-31 15:59:59 UTC)),
            Timeliness::NotYetValid
        );
        assert_eq!(
            timeliness(from, None, datetime!(2999-01-01 0:00 UTC)),
            Timeliness::Current
        );
    }
}
