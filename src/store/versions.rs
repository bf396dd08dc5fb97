//! Licence versions as stored: the signed bytes of each version and the columns kept to find it,
//! and how its start and status index are read back (successions, status-list entries). Apart
//! from the licence writes because every reader of a signed record — the app, verification, the
//! feed — comes here to decode it, through one function, [`decode_full_record`].

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::any::AnyRow;
use sqlx::Row;

use super::events::parse_kind;
use super::licences::NewLicence;
use super::search::insert_holder_names;
use super::{placeholders, Result, Store, StoreError};
use crate::identifiers::Uscc;
use crate::licence::{EventKind, LicenceVersion, Standing, Succession, VersionStart};
use crate::signing::claims::FullRecord;
use crate::time_util;

/// A version row: the signed bytes and the columns kept to find it.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub version: u32,
    pub identifier: String,
    pub issued_at: i64,
    pub status_index: u64,
    pub kid: Vec<u8>,
    pub payload_hash: String,
    pub full_record: Vec<u8>,
    pub qr_token: Vec<u8>,
    /// The public address its QR text and PDF were made with (uppercase).
    pub verify_base: String,
}

impl StoredVersion {
    /// The record this version signed, read back from its own signed bytes.
    pub fn full(&self) -> Result<FullRecord> {
        decode_full_record(&self.full_record, &self.identifier)
    }
}

/// The record a stored full record (a version's signed bytes, as `versions.full_record` holds
/// them) carries, read back without checking the signature: this service signed it. Bytes that
/// do not decode are corrupt data, named by `whose` (a version identifier, an event) in the
/// error. Every reader of stored full records decodes through here, so they agree on both.
pub fn decode_full_record(signed: &[u8], whose: impl std::fmt::Display) -> Result<FullRecord> {
    FullRecord::from_signed(signed)
        .map_err(|e| StoreError::Corrupt(format!("full record of {whose}: {e}")))
}

/// One used status-list index and what decides its bits.
#[derive(Debug, Clone)]
pub struct StatusEntry {
    pub index: u64,
    pub version: u32,
    /// Every version of the entry's licence (shared by the entries of one licence).
    pub succession: Arc<Succession>,
    pub standing: Standing,
}

impl Store {
    pub async fn versions(&self, licence_pk: i64) -> Result<Vec<StoredVersion>> {
        sqlx::query(&format!(
            "{VERSION_COLUMNS} WHERE licence = $1 ORDER BY version"
        ))
        .bind(licence_pk)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(version_row)
        .collect()
    }

    pub async fn version(&self, licence_pk: i64, version: u32) -> Result<Option<StoredVersion>> {
        sqlx::query(&format!(
            "{VERSION_COLUMNS} WHERE licence = $1 AND version = $2"
        ))
        .bind(licence_pk)
        .bind(i64::from(version))
        .fetch_optional(&self.reader)
        .await?
        .as_ref()
        .map(version_row)
        .transpose()
    }

    /// When each version of one licence takes effect and how it came about.
    pub async fn succession(&self, licence_pk: i64) -> Result<Succession> {
        let rows = sqlx::query(&format!("{VERSION_STARTS} WHERE v.licence = $1"))
            .bind(licence_pk)
            .fetch_all(&self.reader)
            .await?;
        Ok(Succession::new(
            rows.iter().map(version_start).collect::<Result<_>>()?,
        ))
    }

    /// For one issuer's status list `[lo, hi)`: each used index with its version, the licence's
    /// succession of versions and the licence's status events (oldest first).
    pub async fn status_entries(
        &self,
        issuer: &Uscc,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<StatusEntry>> {
        let rows = sqlx::query(
            "SELECT v.status_index, v.version, v.licence
             FROM versions v WHERE v.issuer = $1 AND v.status_index >= $2 AND v.status_index < $3",
        )
        .bind(issuer.as_str())
        .bind(lo as i64)
        .bind(hi as i64)
        .fetch_all(&self.reader)
        .await?;
        let standing_rows = sqlx::query(
            "SELECT e.licence, e.kind FROM events e JOIN licences l ON l.id = e.licence
             WHERE l.issuer = $1 AND e.kind IN ('suspended', 'reinstated', 'revoked')
             ORDER BY e.licence, e.change_no",
        )
        .bind(issuer.as_str())
        .fetch_all(&self.reader)
        .await?;
        // A licence with one version has nothing to be superseded by: only the others are read.
        let start_rows = sqlx::query(&format!(
            "{VERSION_STARTS} WHERE v.issuer = $1 AND EXISTS
             (SELECT 1 FROM versions v2 WHERE v2.licence = v.licence AND v2.version = 2)"
        ))
        .bind(issuer.as_str())
        .fetch_all(&self.reader)
        .await?;
        let mut starts: HashMap<i64, Vec<VersionStart>> = Default::default();
        for row in &start_rows {
            starts
                .entry(row.try_get("licence")?)
                .or_default()
                .push(version_start(row)?);
        }
        let successions: HashMap<i64, Arc<Succession>> = starts
            .into_iter()
            .map(|(licence, versions)| (licence, Arc::new(Succession::new(versions))))
            .collect();
        let mut status_events: HashMap<i64, Vec<EventKind>> = Default::default();
        for row in &standing_rows {
            let kind: String = row.try_get("kind")?;
            status_events
                .entry(row.try_get("licence")?)
                .or_default()
                .push(parse_kind(&kind)?);
        }
        rows.iter()
            .map(|row| {
                let licence: i64 = row.try_get("licence")?;
                Ok(StatusEntry {
                    index: row.try_get::<i64, _>("status_index")? as u64,
                    version: row.try_get::<i64, _>("version")? as u32,
                    succession: successions.get(&licence).cloned().unwrap_or_default(),
                    standing: Standing::after(
                        status_events.get(&licence).cloned().unwrap_or_default(),
                    ),
                })
            })
            .collect()
    }
}

/// Each version with the event that created it (issued, amended or renewed); callers add WHERE.
const VERSION_STARTS: &str = "SELECT v.licence, v.version, v.valid_from, e.kind
    FROM versions v JOIN events e ON e.licence = v.licence AND e.version = v.version
     AND e.kind IN ('issued', 'amended', 'renewed')";

fn version_start(row: &AnyRow) -> Result<VersionStart> {
    let version = row.try_get::<i64, _>("version")? as u32;
    let valid_from: String = row.try_get("valid_from")?;
    let kind: String = row.try_get("kind")?;
    Ok(VersionStart {
        version,
        valid_from: time_util::parse_date(&valid_from).ok_or_else(|| {
            StoreError::Corrupt(format!("version {version}: valid_from {valid_from:?}"))
        })?,
        kind: parse_kind(&kind)?,
    })
}

/// A version made before the register existed has no verify base of its own: it was made with
/// the one recorded at initialisation.
const VERSION_COLUMNS: &str =
    "SELECT version, identifier, issued_at, status_index, kid, payload_hash, full_record, qr_token,
    COALESCE(verify_base, (SELECT value FROM register WHERE key = 'initial_verify_base'))
        AS verify_base
    FROM versions";

fn version_row(row: &AnyRow) -> Result<StoredVersion> {
    Ok(StoredVersion {
        version: row.try_get::<i64, _>("version")? as u32,
        identifier: row.try_get("identifier")?,
        issued_at: row.try_get("issued_at")?,
        status_index: row.try_get::<i64, _>("status_index")? as u64,
        kid: row.try_get("kid")?,
        payload_hash: row.try_get("payload_hash")?,
        full_record: row.try_get("full_record")?,
        qr_token: row.try_get("qr_token")?,
        verify_base: row
            .try_get::<Option<String>, _>("verify_base")?
            .ok_or_else(|| StoreError::Corrupt("the register has no initial_verify_base".into()))?,
    })
}

fn bind_version<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    licence_pk: i64,
    v: &LicenceVersion,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(licence_pk)
        .bind(i64::from(v.id.version))
        .bind(v.id.to_string())
        .bind(v.issued_at.unix_timestamp())
        .bind(time_util::format_date(v.record.valid_from))
        .bind(v.record.valid_until.map(time_util::format_date))
        .bind(v.directory_version)
        .bind(v.id.key.issuer.as_str().to_string())
        .bind(v.status_index as i64)
        .bind(v.kid.clone())
        .bind(v.payload_hash.clone())
        .bind(v.full_record.clone())
        .bind(v.qr_token.clone())
        .bind(v.verify_base.clone())
}

const INSERT_VERSIONS: &str = "INSERT INTO versions (licence, version, identifier, issued_at,
    valid_from, valid_until, directory_version, issuer, status_index, kid, payload_hash,
    full_record, qr_token, verify_base) VALUES ";

pub(super) async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    licence_pk: i64,
    v: &LicenceVersion,
) -> Result<()> {
    let sql = format!("{INSERT_VERSIONS}{}", placeholders(1, 14));
    bind_version(sqlx::query(&sql), licence_pk, v)
        .execute(&mut **tx)
        .await?;
    let name = [(licence_pk, v.id.version, v.record.holder.name.as_str())];
    insert_holder_names(tx, &name).await
}

/// The first versions of new licences, one statement.
pub(super) async fn insert_versions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &[(i64, &NewLicence<'_>, &String)],
) -> Result<()> {
    let sql = format!("{INSERT_VERSIONS}{}", placeholders(new.len(), 14));
    let mut query = sqlx::query(&sql);
    for (pk, licence, _) in new {
        query = bind_version(query, *pk, licence.version);
    }
    query.execute(&mut **tx).await?;
    let names: Vec<(i64, u32, &str)> = new
        .iter()
        .map(|(pk, l, _)| {
            (
                *pk,
                l.version.id.version,
                l.version.record.holder.name.as_str(),
            )
        })
        .collect();
    insert_holder_names(tx, &names).await
}
