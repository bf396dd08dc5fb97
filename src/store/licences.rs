//! Licences as stored: inserting new licences with their first versions, appending amendments,
//! renewals and status changes, and reading a licence back with what its events say about it.
//! Each write is one transaction that also appends its event and its audit record; the version
//! rows and events themselves are written by `versions.rs` and `events.rs`.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::events::{insert_event, insert_issued_events, parse_kind, EventEntry};
use super::versions::{insert_version, insert_versions};
use super::{placeholders, Result, Store, StoreError};
use crate::audit::Entry;
use crate::identifiers::LicenceKey;
use crate::licence::{EventKind, LicenceVersion, Standing};
use crate::time_util;

/// A licence as the store knows it, with what its events say about it now.
#[derive(Debug, Clone)]
pub struct LicenceRow {
    pub pk: i64,
    pub key: LicenceKey,
    pub number: String,
    pub created_at: String,
    /// The number of changes so far (the next change appends `change_no + 1`).
    pub change_no: i64,
    pub standing: Standing,
    pub latest_version: u32,
}

/// A new licence with its first version, to insert.
pub struct NewLicence<'a> {
    pub number: &'a str,
    pub holder_id: &'a str,
    pub version: &'a LicenceVersion,
    /// The audit record of this issue, appended in the same transaction.
    pub audit: &'a Entry,
}

/// What became of one new licence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    Issued {
        seq: i64,
    },
    /// A licence of this type with this number exists already (its licence identifier).
    DuplicateNumber {
        existing: String,
    },
}

/// A licence as online verification sees it (see [`Store::verification_row`]).
#[derive(Debug, Clone)]
pub struct VerificationRow {
    pub licence_pk: i64,
    pub number: String,
    pub standing: Standing,
    /// The asked-for version's payload hash and full record, when that version exists.
    pub version: Option<(String, Vec<u8>)>,
}

impl Store {
    /// Inserts new licences with their first versions and `issued` events, all in one
    /// transaction. A licence whose (type, number) exists already is reported, not inserted.
    pub async fn insert_licences(&self, batch: &[NewLicence<'_>]) -> Result<Vec<Inserted>> {
        let mut tx = self.begin_write().await?;
        let outcomes = self.insert_licences_in(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    /// Inserts new licences inside `tx` with a few multi-row statements per chunk (one statement
    /// per row costs ~75 µs in sqlx; a conversion inserts thousands). A licence whose type and
    /// number exist already comes back as [`Inserted::DuplicateNumber`] and leaves nothing behind.
    pub(super) async fn insert_licences_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        batch: &[NewLicence<'_>],
    ) -> Result<Vec<Inserted>> {
        self.lock_event_order(tx).await?;
        self.refuse_revoked_signers(tx, batch.iter().map(|n| n.version.kid.as_slice()))
            .await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        // 14 parameters a version row: 2,800 per statement, well inside both backends' limits.
        for chunk in batch.chunks(200) {
            outcomes.extend(self.insert_chunk(tx, chunk).await?);
        }
        Ok(outcomes)
    }

    async fn insert_chunk(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        chunk: &[NewLicence<'_>],
    ) -> Result<Vec<Inserted>> {
        let created: Vec<String> = chunk
            .iter()
            .map(|n| time_util::format_rfc3339(n.version.issued_at))
            .collect();
        let sql = format!(
            "INSERT INTO licences (licence_id, type_code, issuer, serial, number, holder_id, created_at)
             VALUES {} ON CONFLICT (type_code, number) DO NOTHING RETURNING id, type_code, number",
            placeholders(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for (new, created_at) in chunk.iter().zip(&created) {
            let key = &new.version.id.key;
            query = query
                .bind(key.to_string())
                .bind(key.type_code.as_str())
                .bind(key.issuer.as_str())
                .bind(key.serial as i64)
                .bind(new.number)
                .bind(new.holder_id)
                .bind(created_at);
        }
        let mut pks = std::collections::HashMap::new();
        for row in query.fetch_all(&mut **tx).await? {
            let type_code: String = row.try_get("type_code")?;
            let number: String = row.try_get("number")?;
            pks.insert((type_code, number), row.try_get::<i64, _>("id")?);
        }
        let pk_of = |new: &NewLicence<'_>| {
            let type_code = new.version.id.key.type_code.as_str().to_string();
            pks.get(&(type_code, new.number.to_string())).copied()
        };
        let inserted: Vec<(i64, &NewLicence<'_>, &String)> = chunk
            .iter()
            .zip(&created)
            .filter_map(|(new, at)| pk_of(new).map(|pk| (pk, new, at)))
            .collect();
        let seqs = if inserted.is_empty() {
            Default::default()
        } else {
            insert_versions(tx, &inserted).await?;
            let seqs = insert_issued_events(tx, &inserted).await?;
            // A licence write's audit record belongs to the licence's department.
            let audits: Vec<Entry> = inserted
                .iter()
                .map(|(_, new, _)| new.audit.clone().of_department(&new.version.id.key.issuer))
                .collect();
            self.append_audit_many_in(tx, &audits.iter().collect::<Vec<_>>())
                .await?;
            seqs
        };
        let mut outcomes = Vec::with_capacity(chunk.len());
        for new in chunk {
            match pk_of(new).and_then(|pk| seqs.get(&pk)) {
                Some(&seq) => outcomes.push(Inserted::Issued { seq }),
                None => {
                    let existing: String = sqlx::query(
                        "SELECT licence_id FROM licences WHERE type_code = $1 AND number = $2",
                    )
                    .bind(new.version.id.key.type_code.as_str())
                    .bind(new.number)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("licence_id")?;
                    outcomes.push(Inserted::DuplicateNumber { existing });
                }
            }
        }
        Ok(outcomes)
    }

    /// Appends a new version (amendment or renewal) and its event.
    pub async fn append_version(
        &self,
        licence: &LicenceRow,
        kind: EventKind,
        version: &LicenceVersion,
        reason: Option<&str>,
        audit: &Entry,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        self.lock_event_order(&mut tx).await?;
        self.refuse_revoked_signers(&mut tx, std::iter::once(version.kid.as_slice()))
            .await?;
        insert_version(&mut tx, licence.pk, version)
            .await
            .map_err(conflict_on_unique)?;
        let at = time_util::format_rfc3339(version.issued_at);
        let change = (version.id.version, kind, at.as_str(), reason);
        let logged = EventEntry::Version(&version.full_record);
        self.commit_event(tx, licence, change, logged, audit).await
    }

    /// Appends a status change (suspend, reinstate, revoke) made `at` as an event, logged as
    /// `statement` (its signed statement, SPEC §16); no version is created.
    pub async fn append_status(
        &self,
        licence: &LicenceRow,
        (kind, at, reason): (EventKind, &str, Option<&str>),
        statement: &[u8],
        audit: &Entry,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        self.lock_event_order(&mut tx).await?;
        let change = (licence.latest_version, kind, at, reason);
        let logged = EventEntry::Statement(statement);
        self.commit_event(tx, licence, change, logged, audit).await
    }

    /// Ends a change to one licence: its event (`version`, `kind`, `at`, `reason`), its log
    /// leaf and its audit record in the same transaction, then the commit. Returns the event's
    /// seq.
    async fn commit_event(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        licence: &LicenceRow,
        (version, kind, at, reason): (u32, EventKind, &str, Option<&str>),
        logged: EventEntry<'_>,
        audit: &Entry,
    ) -> Result<i64> {
        let actor = &audit.actor;
        let seq = insert_event(&mut tx, licence, version, kind, at, reason, actor, logged)
            .await
            .map_err(conflict_on_unique)?;
        let audit = audit.clone().of_department(&licence.key.issuer);
        self.append_audit_in(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(seq)
    }

    pub async fn licence(&self, key: &LicenceKey) -> Result<Option<LicenceRow>> {
        let row = sqlx::query("SELECT id, number, created_at FROM licences WHERE licence_id = $1")
            .bind(key.to_string())
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(row) => Ok(Some(self.licence_row(key.clone(), &row).await?)),
            None => Ok(None),
        }
    }

    async fn licence_row(&self, key: LicenceKey, row: &AnyRow) -> Result<LicenceRow> {
        let pk: i64 = row.try_get("id")?;
        let events = self.events_of(pk).await?;
        Ok(LicenceRow {
            pk,
            key,
            number: row.try_get("number")?,
            created_at: row.try_get("created_at")?,
            change_no: events.len() as i64,
            standing: Standing::after(events.iter().map(|e| e.kind)),
            latest_version: events.iter().map(|e| e.version).max().unwrap_or(1),
        })
    }

    /// What online verification needs of one version, in one round trip: the licence's number
    /// and standing, and the version's registered hash and full record.
    pub async fn verification_row(
        &self,
        key: &LicenceKey,
        version: u32,
    ) -> Result<Option<VerificationRow>> {
        let row = sqlx::query(
            "SELECT l.id, l.number, v.payload_hash, v.full_record,
                    (SELECT e.kind FROM events e
                      WHERE e.licence = l.id AND e.kind IN ('suspended', 'reinstated', 'revoked')
                      ORDER BY e.change_no DESC LIMIT 1) AS last_status
             FROM licences l LEFT JOIN versions v ON v.licence = l.id AND v.version = $2
             WHERE l.licence_id = $1",
        )
        .bind(key.to_string())
        .bind(i64::from(version))
        .fetch_optional(&self.reader)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_status: Option<String> = row.try_get("last_status")?;
        let standing = match last_status.as_deref() {
            Some(kind) => Standing::after([parse_kind(kind)?]),
            None => Standing::Active,
        };
        let payload_hash: Option<String> = row.try_get("payload_hash")?;
        let full_record: Option<Vec<u8>> = row.try_get("full_record")?;
        Ok(Some(VerificationRow {
            licence_pk: row.try_get("id")?,
            number: row.try_get("number")?,
            standing,
            version: payload_hash.zip(full_record),
        }))
    }
}

/// A unique-constraint violation while appending means another writer got there first.
fn conflict_on_unique(e: StoreError) -> StoreError {
    match &e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            StoreError::Conflict
        }
        _ => e,
    }
}
