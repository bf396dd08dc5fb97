//! What the operations answer: the JSON of the API and of `--json`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::licence::{EventKind, FieldValue, Standing};
use crate::store::EventRow;
use crate::verify::Successor;

/// How many items a page holds when the caller does not say: the API's `limit` default, and
/// what `--json` prints of a list the API pages.
pub const DEFAULT_PAGE_LIMIT: i64 = 100;

/// A version just created: its identifier and the text its QR code carries.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Issued {
    pub id: String,
    pub licence_id: String,
    pub version: u32,
    pub number: String,
    pub qr_text: String,
    pub seq: i64,
}

/// A licence as `licence show` and `GET /api/v1/licences/{id}` give it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct LicenceView {
    pub licence_id: String,
    pub type_code: String,
    pub type_name: String,
    pub number: String,
    pub status: Standing,
    pub latest_version: u32,
    /// The version in effect today: below `latest_version` while a renewal made early is pending.
    pub in_effect_version: u32,
    /// A later version that has yet to take effect (a renewal made early), if any.
    pub pending: Option<Successor>,
    pub version: VersionView,
    pub events: Vec<EventView>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct VersionView {
    pub id: String,
    pub version: u32,
    /// A later version has taken effect (a renewal still to begin does not supersede).
    pub superseded: bool,
    pub issued_at: String,
    /// `current`, `expired` or `not_yet_valid`, derived from the dates now.
    pub validity: &'static str,
    pub valid_from: String,
    pub valid_until: Option<String>,
    pub holder: HolderView,
    pub fields: BTreeMap<String, FieldValue>,
    pub directory_version: i64,
    pub scan: Option<String>,
    pub prev: Option<String>,
    pub kid: String,
    pub status_index: u64,
    pub qr_text: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct HolderView {
    pub name: String,
    pub id: String,
    pub kind: &'static str,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: i64,
    pub version: u32,
    pub kind: EventKind,
    pub at: String,
    pub reason: Option<String>,
    pub actor: String,
}

impl From<&EventRow> for EventView {
    fn from(e: &EventRow) -> Self {
        EventView {
            seq: e.seq,
            version: e.version,
            kind: e.kind,
            at: e.at.clone(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
        }
    }
}

/// Changes an amendment (变更) makes: the holder's name and any fields. The number, the holder's
/// id and the validity stay; a different holder is a different licence.
#[derive(utoipa::ToSchema, Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    #[serde(default)]
    pub holder_name: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A renewal (延续): a new validity period; missing dates follow on from the old period.
#[derive(utoipa::ToSchema, Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// The licence directory as `GET /api/v1/directory` and `directory list --json` give it: its
/// version and every licence type with its fields.
#[derive(Debug, Serialize)]
pub struct DirectoryListing<'a> {
    pub directory_version: i64,
    pub types: Vec<&'a crate::directory::LicenceType>,
}

impl super::App {
    /// The directory this application loaded, with the version the store gave it.
    pub fn directory_listing(&self) -> DirectoryListing<'_> {
        DirectoryListing {
            directory_version: self.directory_version,
            types: self.directory.types().collect(),
        }
    }
}

/// A conversion job's progress and a page of its row outcomes, as `GET /api/v1/batches/{id}`
/// and `convert --json` give them.
#[derive(utoipa::ToSchema, Debug, Serialize)]
pub struct BatchStatus {
    pub batch: crate::store::BatchRecord,
    /// Outcomes of the rows after `after_line`, in line order.
    pub rows: Vec<crate::store::RowResult>,
    /// The line to ask for next (`after_line`).
    pub next_after_line: u64,
}

impl BatchStatus {
    /// The page of `rows` read after line `after_line`; the next page starts after its last row.
    pub fn page(
        batch: crate::store::BatchRecord,
        rows: Vec<crate::store::RowResult>,
        after_line: u64,
    ) -> BatchStatus {
        let next_after_line = rows.last().map_or(after_line, |r| r.line);
        BatchStatus {
            batch,
            rows,
            next_after_line,
        }
    }
}
