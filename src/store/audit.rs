//! The audit trail as stored (SPEC §10): appends that chain each record to the one before by its
//! hash, and reads of the chain. A room of its own because every other writer (licences, signers,
//! the register, batches) appends here inside its own transaction, through `append_audit_in` and
//! `append_audit_many_in`; the record format and the hash live in `crate::audit`.

use sqlx::Row;

use super::{placeholders, Backend, Result, Store};
use crate::audit::{self, Entry};
use crate::identifiers::Uscc;
use crate::time_util;

/// The advisory lock key that serialises appends to the audit chain on PostgreSQL ("audit").
const AUDIT_CHAIN_LOCK: i64 = 0x0061_7564_6974;

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

impl Store {
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

    /// Appends `entry` unless the trail holds a record of the same action and target already;
    /// whether it did. The look and the append happen under the chain's lock (PostgreSQL's
    /// advisory lock, SQLite's write lock), so two instances never both append it.
    pub async fn append_audit_once(&self, entry: &Entry) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        self.lock_audit_chain(&mut tx).await?;
        let present = sqlx::query("SELECT 1 AS one FROM audit WHERE action = $1 AND target = $2")
            .bind(&entry.action)
            .bind(&entry.target)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if present {
            return Ok(false);
        }
        self.append_audit_in(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Takes the audit chain's lock for the rest of `tx` (PostgreSQL; SQLite's write lock is
    /// taken by the write transaction itself).
    async fn lock_audit_chain(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(AUDIT_CHAIN_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Appends an audit record inside `tx`, chained to the last one.
    pub(super) async fn append_audit_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        entry: &Entry,
    ) -> Result<()> {
        self.append_audit_many_in(tx, &[entry]).await
    }

    /// Appends audit records inside `tx`, in order, each chained to the one before. On
    /// PostgreSQL an advisory lock keeps two instances from chaining to the same predecessor.
    pub(super) async fn append_audit_many_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        entries: &[&Entry],
    ) -> Result<()> {
        self.lock_audit_chain(tx).await?;
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
        Ok(sqlx::query_as(
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
        .await?)
    }

    /// The last record's seq and hash; None while the trail is empty.
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>> {
        let row = sqlx::query("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.reader)
            .await?;
        Ok(match row {
            Some(row) => Some((row.try_get("seq")?, row.try_get("hash")?)),
            None => None,
        })
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
}
