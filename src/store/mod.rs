//! The store (SPEC §4, §11): licences, their immutable versions, the ordered change events and
//! the directory versions, behind one interface over two backends — SQLite (embedded, WAL) and
//! PostgreSQL (several instances). Both run the same SQL through sqlx's `Any` driver; each has
//! its own `migrations/`, applied at open.
//!
//! Concurrency: every change to a licence appends an event with the next `change_no`, and
//! `UNIQUE(licence, change_no)` turns a lost race into [`StoreError::Conflict`] instead of two
//! contradicting changes. On PostgreSQL each writing transaction takes one advisory lock before it
//! inserts events, so event `seq`s are assigned in commit order and a feed reader that resumes
//! from its last seq never skips an event that commits late.

use std::path::Path;
use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::audit::{self, Entry};
use crate::identifiers::{LicenceKey, TypeCode, Uscc};
use crate::licence::{EventKind, LicenceVersion, Standing, Succession, VersionStart};
use crate::signing::claims::FullRecord;
use crate::time_util;

mod batches;
mod signers;
pub use batches::{BatchRecord, BatchRow, BatchRowOutcome, NewBatch, RowResult};
mod register;
pub use signers::{Revocation, WhenActive};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock key that orders event inserts on PostgreSQL ("elicence" in ASCII).
const EVENT_ORDER_LOCK: i64 = 0x656c_6963_656e_6365;
/// The advisory lock key that serialises appends to the audit chain on PostgreSQL ("audit").
const AUDIT_CHAIN_LOCK: i64 = 0x0061_7564_6974;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error(
        "the database's disk is full: writes are refused until space is freed (reads still work)"
    )]
    Full,
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL with its password masked.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    #[error("the database file {0}")]
    File(String),
    #[error(
        "the licence was changed by someone else at the same moment; look at it again and retry"
    )]
    Conflict,
    /// The signer of a version being stored was revoked meanwhile by another process.
    #[error(
        "the signer key {0} was revoked while the licence was being signed: nothing was stored; \
         try again (it will be signed with the department's current key)"
    )]
    SignerRevoked(String),
    /// A conversion run's lease was taken by another process (this one stalled past it) or
    /// the run has ended: this process may no longer commit to it.
    #[error("batch {0}: this process no longer holds the run (another took it up, or it ended)")]
    LeaseLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A large blob could not be read to its end while it was stored in parts.
    #[error("reading a blob to store: {0}")]
    Unreadable(String),
}

impl From<sqlx::Error> for StoreError {
    /// Names a full disk as such (SQLite's SQLITE_FULL, PostgreSQL's disk_full), so that the
    /// caller hears the real cause rather than a database error code.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("13" | "53100")) => {
                StoreError::Full
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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
        FullRecord::from_signed(&self.full_record)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.identifier)))
    }
}

/// One change event (SPEC §8).
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub licence_id: String,
    pub version: u32,
    pub kind: EventKind,
    pub at: String,
    pub reason: Option<String>,
    pub actor: String,
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

#[derive(Clone)]
pub struct Store {
    reader: AnyPool,
    /// SQLite allows one writer at a time: one connection serialises this process's writes
    /// instead of letting them fail with SQLITE_BUSY. PostgreSQL shares the reader pool.
    writer: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies its migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(crate::config::mask_password(url)));
        };
        let (reader, writer) = match backend {
            Backend::Sqlite => {
                create_sqlite_file(url)?;
                let reader = sqlite_pool(url, 8).await?;
                // WAL lets readers go on while the single writer writes; it persists in the file.
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&reader)
                    .await?;
                let writer = sqlite_pool(url, 1).await?;
                (reader, writer)
            }
            Backend::Postgres => {
                let pool = pool_options().max_connections(16).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&writer).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&writer).await?,
        }
        Ok(Store {
            reader,
            writer,
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes gets SQLITE_BUSY without waiting when
    /// another process (the CLI beside the service, a second instance) wrote in between.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    // -----------------------------------------------------------------------------------------
    // Directory versions

    /// The version number of this directory content: the latest version when its digest matches,
    /// otherwise a new version.
    pub async fn record_directory(&self, digest: &str, content: &str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, digest FROM directory_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = &latest {
            if row.try_get::<String, _>("digest")? == digest {
                return Ok(row.try_get("version")?);
            }
        }
        let next = latest.map_or(Ok(0), |r| r.try_get::<i64, _>("version"))? + 1;
        sqlx::query(
            "INSERT INTO directory_versions (version, digest, content, loaded_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(next)
        .bind(digest)
        .bind(content)
        .bind(time_util::format_rfc3339(time_util::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    pub async fn directory_content(&self, version: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT content FROM directory_versions WHERE version = $1")
                .bind(version)
                .fetch_optional(&self.reader)
                .await?
                .map(|r| r.try_get("content"))
                .transpose()?,
        )
    }

    // -----------------------------------------------------------------------------------------
    // Reservations made before signing

    /// Reserves `count` consecutive serials for (type, issuer); returns the first.
    pub async fn reserve_serials(
        &self,
        type_code: &TypeCode,
        issuer: &Uscc,
        count: u64,
    ) -> Result<u64> {
        let count = i64::try_from(count).map_err(|_| StoreError::Corrupt("count".into()))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO serial_counters (type_code, issuer, next_serial) VALUES ($1, $2, 1)
             ON CONFLICT (type_code, issuer) DO NOTHING",
        )
        .bind(type_code.as_str())
        .bind(issuer.as_str())
        .execute(&mut *tx)
        .await?;
        let next: i64 = sqlx::query(
            "UPDATE serial_counters SET next_serial = next_serial + $1
             WHERE type_code = $2 AND issuer = $3 RETURNING next_serial",
        )
        .bind(count)
        .bind(type_code.as_str())
        .bind(issuer.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("next_serial")?;
        tx.commit().await?;
        Ok((next - count) as u64)
    }

    /// Reserves `count` free status-list indexes of `issuer`, chosen at random among the lists in
    /// use (a new list is opened once they are half full, so a free index is found in few tries).
    pub async fn reserve_status_indexes(&self, issuer: &Uscc, count: usize) -> Result<Vec<u64>> {
        use crate::signing::status_list::LIST_LEN;
        use rand::Rng;
        let mut tx = self.begin_write().await?;
        let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM status_slots WHERE issuer = $1")
            .bind(issuer.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let lists = (used as u64 + count as u64) / (LIST_LEN / 2) + 1;
        let mut taken = Vec::with_capacity(count);
        while taken.len() < count {
            // Distinct random candidates, tried in one statement; the ones already taken come
            // back missing and are drawn again.
            let mut candidates = std::collections::BTreeSet::new();
            while candidates.len() < (count - taken.len()).min(500) {
                candidates.insert(rand::thread_rng().gen_range(0..lists * LIST_LEN));
            }
            let sql = format!(
                "INSERT INTO status_slots (issuer, slot) VALUES {} ON CONFLICT DO NOTHING RETURNING slot",
                placeholders(candidates.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for candidate in &candidates {
                query = query.bind(issuer.as_str()).bind(*candidate as i64);
            }
            for row in query.fetch_all(&mut *tx).await? {
                taken.push(row.try_get::<i64, _>("slot")? as u64);
            }
        }
        tx.commit().await?;
        Ok(taken)
    }

    // -----------------------------------------------------------------------------------------
    // Writes

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
    async fn insert_licences_in(
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
        let seq = insert_event(
            &mut tx,
            licence.pk,
            &licence.key,
            licence.change_no + 1,
            version.id.version,
            kind,
            &at,
            reason,
            &audit.actor,
        )
        .await
        .map_err(conflict_on_unique)?;
        let audit = audit.clone().of_department(&licence.key.issuer);
        self.append_audit_in(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends a status change (suspend, reinstate, revoke) as an event; no version is created.
    pub async fn append_status(
        &self,
        licence: &LicenceRow,
        kind: EventKind,
        reason: Option<&str>,
        audit: &Entry,
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        self.lock_event_order(&mut tx).await?;
        let at = time_util::format_rfc3339(time_util::now());
        let seq = insert_event(
            &mut tx,
            licence.pk,
            &licence.key,
            licence.change_no + 1,
            licence.latest_version,
            kind,
            &at,
            reason,
            &audit.actor,
        )
        .await
        .map_err(conflict_on_unique)?;
        let audit = audit.clone().of_department(&licence.key.issuer);
        self.append_audit_in(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(seq)
    }

    /// Appends an audit record on its own (refused and failed attempts, and writes outside the
    /// licence tables).
    pub async fn append_audit(&self, entry: &Entry) -> Result<()> {
        self.append_audit_all(std::slice::from_ref(entry)).await
    }

    /// Appends audit records on their own, in order, in one transaction.
    pub async fn append_audit_all(&self, entries: &[Entry]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.append_audit_many_in(&mut tx, &entries.iter().collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Appends an audit record inside `tx`, chained to the last one.
    async fn append_audit_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        entry: &Entry,
    ) -> Result<()> {
        self.append_audit_many_in(tx, &[entry]).await
    }

    /// Appends audit records inside `tx`, in order, each chained to the one before. On
    /// PostgreSQL an advisory lock keeps two instances from chaining to the same predecessor.
    async fn append_audit_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        entries: &[&Entry],
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_CHAIN_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        let last = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?;
        let (mut seq, mut prev): (i64, String) = match last {
            Some(row) => (row.try_get("seq")?, row.try_get("hash")?),
            None => (0, audit::GENESIS.to_string()),
        };
        let at = time_util::format_rfc3339(time_util::now());
        // 11 parameters a record: 90 records a statement.
        for chunk in entries.chunks(90) {
            let sql = format!(
                "INSERT INTO audit (seq, at, actor, source, action, target, outcome, detail,
                                    department, prev_hash, hash)
                 VALUES {}",
                placeholders(chunk.len(), 11)
            );
            let mut query = sqlx::query(&sql);
            for entry in chunk {
                let entry = &entry.storable();
                let hash = audit::record_hash(&prev, &at, entry);
                // One past the last, under the chain's lock: a rolled-back append leaves no hole
                // (a PostgreSQL sequence would have spent its number).
                seq += 1;
                query = query
                    .bind(seq)
                    .bind(at.clone())
                    .bind(entry.actor.clone())
                    .bind(entry.source.clone())
                    .bind(entry.action.clone())
                    .bind(entry.target.clone())
                    .bind(entry.outcome.clone())
                    .bind(entry.detail.clone())
                    .bind(entry.department.clone())
                    .bind(std::mem::replace(&mut prev, hash.clone()))
                    .bind(hash);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Audit records in seq order after `after`, filtered, at most `limit`; only `department`'s
    /// when one is given (a department's admin reads no other).
    pub async fn audit_records(
        &self,
        filter: &AuditFilter,
        department: Option<&Uscc>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<audit::Record>> {
        sqlx::query(
            "SELECT seq, at, actor, source, action, target, outcome, detail, department, prev_hash,
                    hash
             FROM audit
             WHERE seq > $1
               AND ($2 = '' OR actor = $2) AND ($3 = '' OR action = $3) AND ($4 = '' OR target = $4)
               AND ($5 = '' OR at >= $5) AND ($6 = '' OR at < $6)
               AND ($8 = '' OR department = $8)
             ORDER BY seq LIMIT $7",
        )
        .bind(after)
        .bind(filter.actor.as_deref().unwrap_or(""))
        .bind(filter.action.as_deref().unwrap_or(""))
        .bind(filter.target.as_deref().unwrap_or(""))
        .bind(filter.since.as_deref().unwrap_or(""))
        .bind(filter.until.as_deref().unwrap_or(""))
        .bind(limit)
        .bind(department.map_or("", Uscc::as_str))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| {
            Ok(audit::Record {
                seq: r.try_get("seq")?,
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                source: r.try_get("source")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                outcome: r.try_get("outcome")?,
                detail: r.try_get("detail")?,
                department: r.try_get("department")?,
                prev_hash: r.try_get("prev_hash")?,
                hash: r.try_get("hash")?,
            })
        })
        .collect()
    }

    /// Checks the whole audit chain, reading it in pages.
    pub async fn verify_audit(&self) -> Result<audit::ChainReport> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self
                .audit_records(&AuditFilter::default(), None, after, 10_000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            all.extend(page);
        }
        Ok(audit::verify_chain(all))
    }

    // -----------------------------------------------------------------------------------------
    // Tokens

    pub async fn insert_token(
        &self,
        name: &str,
        department: Option<&str>,
        roles: &str,
        token_hash: &str,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO tokens (name, department, roles, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(department)
        .bind(roles)
        .bind(token_hash)
        .bind(time_util::format_rfc3339(time_util::now()))
        .fetch_one(&self.writer)
        .await?
        .try_get("id")?)
    }

    /// The token with this hash, if it exists and is not revoked.
    pub async fn active_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        sqlx::query(
            "SELECT id, name, department, roles FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?
        .map(|r| {
            Ok(TokenRow {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                department: r.try_get("department")?,
                roles: r.try_get("roles")?,
            })
        })
        .transpose()
    }

    /// Revokes a token; false when there is no such active token.
    pub async fn revoke_token(&self, id: i64) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(time_util::format_rfc3339(time_util::now()))
                .bind(id)
                .execute(&self.writer)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Takes (or renews) the delivery lease of `target` for `holder` until `until` (seconds);
    /// returns the last delivered seq when the lease is ours, None when another holder has it.
    pub async fn take_push_lease(
        &self,
        target: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO push_state (target, last_seq, lease_holder, lease_until) VALUES ($1, 0, '', 0)
             ON CONFLICT (target) DO NOTHING",
        )
        .bind(target)
        .execute(&mut *tx)
        .await?;
        let last: Option<i64> = sqlx::query(
            "UPDATE push_state SET lease_holder = $1, lease_until = $2
             WHERE target = $3 AND (lease_holder = $1 OR lease_until < $4) RETURNING last_seq",
        )
        .bind(holder)
        .bind(until)
        .bind(target)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("last_seq"))
        .transpose()?;
        tx.commit().await?;
        Ok(last)
    }

    /// Hands `holder`'s lease of `target` back (at a clean stop), so that the next process or
    /// another instance delivers at once instead of waiting for the lease to run out.
    pub async fn release_push_lease(&self, target: &str, holder: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE push_state SET lease_holder = '', lease_until = 0
             WHERE target = $1 AND lease_holder = $2",
        )
        .bind(target)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that everything up to `seq` was delivered to `target`, if `holder` still holds
    /// the lease; false when it lost it (another instance delivers now).
    pub async fn record_pushed(&self, target: &str, holder: &str, seq: i64) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE push_state SET last_seq = $1 WHERE target = $2 AND lease_holder = $3 AND last_seq < $1",
        )
        .bind(seq)
        .bind(target)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }

    async fn lock_event_order(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Reads

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

    /// Every event of one licence, oldest first.
    pub async fn events_of(&self, licence_pk: i64) -> Result<Vec<EventRow>> {
        sqlx::query(
            "SELECT seq, licence_id, version, kind, at, reason, actor FROM events
             WHERE licence = $1 ORDER BY change_no",
        )
        .bind(licence_pk)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(event_row)
        .collect()
    }

    /// Events with seq greater than `after`, in seq order, at most `limit`, each with the full
    /// record of the version it concerns (the feed, SPEC §8). Seqs are assigned in commit order
    /// (see the module comment), so what this returns is never overtaken by a late commit.
    /// With `issuer`, only that department's licences' events (its own feed).
    pub async fn events_after(
        &self,
        after: i64,
        limit: i64,
        issuer: Option<&Uscc>,
    ) -> Result<Vec<(EventRow, Vec<u8>)>> {
        sqlx::query(
            "SELECT e.seq, e.licence_id, e.version, e.kind, e.at, e.reason, e.actor, v.full_record
             FROM events e JOIN versions v ON v.licence = e.licence AND v.version = e.version
             WHERE e.seq > $1 AND ($3 = '' OR v.issuer = $3) ORDER BY e.seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .bind(issuer.map_or("", Uscc::as_str))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| Ok((event_row(row)?, row.try_get("full_record")?)))
        .collect()
    }

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
        let mut starts: std::collections::HashMap<i64, Vec<VersionStart>> = Default::default();
        for row in &start_rows {
            starts
                .entry(row.try_get("licence")?)
                .or_default()
                .push(version_start(row)?);
        }
        let successions: std::collections::HashMap<i64, Arc<Succession>> = starts
            .into_iter()
            .map(|(licence, versions)| (licence, Arc::new(Succession::new(versions))))
            .collect();
        let mut status_events: std::collections::HashMap<i64, Vec<EventKind>> = Default::default();
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

    /// The highest event seq, or 0 when there are none.
    pub async fn last_seq(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(seq), 0) AS seq FROM events")
                .fetch_one(&self.reader)
                .await?
                .try_get("seq")?,
        )
    }
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

/// Filters on the audit trail; None matches everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// RFC 3339 lower bound (inclusive) on the time.
    pub since: Option<String>,
    /// RFC 3339 upper bound (exclusive) on the time.
    pub until: Option<String>,
}

/// A token as stored: never the token itself, only its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub department: Option<String>,
    /// Comma-separated role names.
    pub roles: String,
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

fn parse_kind(kind: &str) -> Result<EventKind> {
    EventKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))
}

fn event_row(row: &AnyRow) -> Result<EventRow> {
    let kind: String = row.try_get("kind")?;
    Ok(EventRow {
        seq: row.try_get("seq")?,
        licence_id: row.try_get("licence_id")?,
        version: row.try_get::<i64, _>("version")? as u32,
        kind: parse_kind(&kind)?,
        at: row.try_get("at")?,
        reason: row.try_get("reason")?,
        actor: row.try_get("actor")?,
    })
}

/// `($1, $2, …), ($n, …)`: the VALUES of a multi-row insert of `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let values: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
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

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    licence_pk: i64,
    v: &LicenceVersion,
) -> Result<()> {
    let sql = format!("{INSERT_VERSIONS}{}", placeholders(1, 14));
    bind_version(sqlx::query(&sql), licence_pk, v)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The first versions of new licences, one statement.
async fn insert_versions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &[(i64, &NewLicence<'_>, &String)],
) -> Result<()> {
    let sql = format!("{INSERT_VERSIONS}{}", placeholders(new.len(), 14));
    let mut query = sqlx::query(&sql);
    for (pk, licence, _) in new {
        query = bind_version(query, *pk, licence.version);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// The seq the next event takes: one past the highest, so that seqs have no gaps (SPEC §8). A
/// PostgreSQL sequence would hand out numbers that a rolled-back insert then never uses. Called
/// only under the event-order lock (SQLite's write lock, PostgreSQL's advisory lock), so no
/// two transactions can take the same number.
async fn next_event_seq(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM events")
            .fetch_one(&mut **tx)
            .await?
            .try_get("next")?,
    )
}

/// The `issued` events of new licences, one statement; their seqs by licence.
async fn insert_issued_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &[(i64, &NewLicence<'_>, &String)],
) -> Result<std::collections::HashMap<i64, i64>> {
    let first_seq = next_event_seq(tx).await?;
    let sql = format!(
        "INSERT INTO events (seq, licence, licence_id, change_no, version, kind, at, reason, actor)
         VALUES {} RETURNING seq, licence",
        placeholders(new.len(), 9)
    );
    let mut query = sqlx::query(&sql);
    for (seq, (pk, licence, at)) in (first_seq..).zip(new) {
        query = query
            .bind(seq)
            .bind(*pk)
            .bind(licence.version.id.key.to_string())
            .bind(1_i64)
            .bind(i64::from(licence.version.id.version))
            .bind(EventKind::Issued.as_str())
            .bind((*at).clone())
            .bind(None::<String>)
            .bind(licence.audit.actor.clone());
    }
    let mut seqs = std::collections::HashMap::new();
    for row in query.fetch_all(&mut **tx).await? {
        seqs.insert(row.try_get::<i64, _>("licence")?, row.try_get("seq")?);
    }
    Ok(seqs)
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    licence_pk: i64,
    key: &LicenceKey,
    change_no: i64,
    version: u32,
    kind: EventKind,
    at: &str,
    reason: Option<&str>,
    actor: &str,
) -> Result<i64> {
    let seq = next_event_seq(tx).await?;
    Ok(sqlx::query(
        "INSERT INTO events (seq, licence, licence_id, change_no, version, kind, at, reason, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    )
    .bind(seq)
    .bind(licence_pk)
    .bind(key.to_string())
    .bind(change_no)
    .bind(i64::from(version))
    .bind(kind.as_str())
    .bind(at)
    .bind(reason)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?
    .try_get("seq")?)
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

/// Pool options both backends share: a connection that comes back from a failed transaction
/// still counting itself inside it is replaced, not reused. SQLite rolls a transaction back by
/// itself on "database or disk is full"; the ROLLBACK sqlx then sends fails, and the connection
/// believed itself in a transaction for good, so every later write failed until a restart.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().before_acquire(|conn, _| {
        Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
    })
}

async fn sqlite_pool(url: &str, connections: u32) -> Result<AnyPool> {
    Ok(pool_options()
        .max_connections(connections)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// sqlx opens SQLite files read-write but does not create them (without `mode=rwc`): make the
/// folder and the file so a fresh checkout starts with no setup. The file holds unmasked personal
/// data, so it is made 0600 whatever the umask and whatever mode it had before, and so are its
/// `-wal` and `-shm` files when they exist (SQLite gives the ones it creates the database's
/// mode). A folder made for it is 0700; an existing one is the operator's.
fn create_sqlite_file(url: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    let file_error =
        |path: &Path, e: std::io::Error| StoreError::Url(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .and_then(|()| set_mode(parent, 0o700))
                .map_err(|e| file_error(parent, e))?;
        }
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match set_mode(&file, 0o600) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(&file, e)),
            _ => {}
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_sqlite_database_and_its_wal_and_shm_files_are_0600_even_if_it_was_0644() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elicence.sqlite");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&format!("sqlite:{}", file.display()))
            .await
            .unwrap();
        store.record_directory("digest", "{}").await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        store.close().await;

        let fresh = dir.path().join("new").join("elicence.sqlite");
        let store = Store::open(&format!("sqlite:{}", fresh.display()))
            .await
            .unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(mode(fresh.parent().unwrap()), 0o700, "a folder made for it");
        store.close().await;
    }

    #[tokio::test]
    async fn an_unsupported_database_url_is_named_without_its_password() {
        let Err(err) = Store::open("mysql://el:hunter2-s3cr3t@db.example/el").await else {
            panic!("a MySQL URL opened");
        };
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("mysql://el:***@db.example/el"), "{text}");
    }
}
