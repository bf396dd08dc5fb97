//! Licences (SPEC §4): the validated content of a version (`Record`), the versions themselves,
//! their status and the change events that record every step.

mod columns;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::directory::HolderKind;
use crate::identifiers::{ResidentId, Uscc, VersionId};
use crate::time_util;

pub use columns::column_of_field;
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

    /// Issued, amended and renewed make a version; the others change a licence's status.
    pub fn creates_version(self) -> bool {
        matches!(
            self,
            EventKind::Issued | EventKind::Amended | EventKind::Renewed
        )
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

/// When a version of a licence takes effect and how it came about (issued, amended, renewed):
/// what deciding supersession needs to know of each version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionStart {
    pub version: u32,
    pub valid_from: Date,
    pub kind: EventKind,
}

/// The versions of one licence by when they take effect. The one place that decides which
/// version is in effect on a day and which are superseded (SPEC §4): a version is superseded
/// once a *later* version's validity has begun, so a licence renewed early stays valid until
/// its renewal starts, and a version that never took effect may be superseded by a later one
/// that starts sooner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Succession {
    /// Oldest first.
    versions: Vec<VersionStart>,
}

impl Succession {
    pub fn new(mut versions: Vec<VersionStart>) -> Succession {
        versions.sort_by_key(|v| v.version);
        Succession { versions }
    }

    /// The latest version that has taken effect on `today` (CST), if any has.
    fn started(&self, today: Date) -> Option<&VersionStart> {
        self.versions.iter().rev().find(|v| v.valid_from <= today)
    }

    /// The version that superseded `version` on `today`: the first later version whose validity
    /// has begun, or None while `version` is still the newest in effect (or pending itself).
    pub fn superseded_by(&self, version: u32, today: Date) -> Option<VersionStart> {
        self.versions
            .iter()
            .find(|v| v.version > version && v.valid_from <= today)
            .copied()
    }

    /// The version in effect on `today`: the latest that has begun, or the first version while
    /// none has (it is then not yet valid by its dates).
    pub fn in_effect(&self, today: Date) -> u32 {
        self.started(today)
            .or(self.versions.first())
            .map_or(1, |v| v.version)
    }

    /// The next version after the one in effect that has yet to begin (a renewal made early).
    pub fn pending(&self, today: Date) -> Option<VersionStart> {
        let current = self.in_effect(today);
        self.versions
            .iter()
            .find(|v| v.version > current && v.valid_from > today)
            .copied()
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

    fn start(version: u32, valid_from: Date, kind: EventKind) -> VersionStart {
        VersionStart {
            version,
            valid_from,
            kind,
        }
    }

    #[test]
    fn an_early_renewal_supersedes_its_predecessor_only_once_it_begins() {
        let renewal_day = date!(2031 - 01 - 01);
        let succession = Succession::new(vec![
            start(2, renewal_day, EventKind::Renewed),
            start(1, date!(2026 - 01 - 01), EventKind::Issued),
        ]);
        let day_before = date!(2030 - 12 - 31);
        assert_eq!(succession.superseded_by(1, day_before), None);
        assert_eq!(succession.in_effect(day_before), 1);
        assert_eq!(succession.pending(day_before).map(|v| v.version), Some(2));
        let by = succession.superseded_by(1, renewal_day).unwrap();
        assert_eq!((by.version, by.kind), (2, EventKind::Renewed));
        assert_eq!(succession.in_effect(renewal_day), 2);
        assert_eq!(succession.pending(renewal_day), None);
        assert_eq!(succession.superseded_by(2, renewal_day), None);
    }

    #[test]
    fn a_later_version_that_starts_sooner_supersedes_a_pending_one() {
        let today = date!(2027 - 06 - 01);
        let succession = Succession::new(vec![
            start(1, date!(2026 - 01 - 01), EventKind::Issued),
            start(2, date!(2031 - 01 - 01), EventKind::Renewed),
            start(3, today, EventKind::Renewed),
        ]);
        assert_eq!(succession.superseded_by(1, today).unwrap().version, 3);
        assert_eq!(succession.superseded_by(2, today).unwrap().version, 3);
        assert_eq!(succession.in_effect(today), 3);
        assert_eq!(succession.pending(today), None);
    }

    #[test]
    fn an_amendment_takes_effect_at_once_and_a_first_version_may_be_pending_itself() {
        let today = date!(2027 - 06 - 01);
        let amended = Succession::new(vec![
            start(1, date!(2026 - 01 - 01), EventKind::Issued),
            start(2, date!(2026 - 01 - 01), EventKind::Amended),
        ]);
        assert_eq!(
            amended.superseded_by(1, today).map(|v| v.kind),
            Some(EventKind::Amended)
        );
        let future = Succession::new(vec![start(1, date!(2028 - 01 - 01), EventKind::Issued)]);
        assert_eq!(future.in_effect(today), 1);
        assert_eq!(future.pending(today), None);
        assert_eq!(future.superseded_by(1, today), None);
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
