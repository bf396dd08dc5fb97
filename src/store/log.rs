//! The transparency log's tables (SPEC §16): the tree's perfect subtrees (`log_nodes`, level 0 the
//! leaf hashes), the statements status changes are logged as, and the signed heads. Leaf i is the
//! entry of event seq i+1 — seqs are gapless and assigned under the event-order lock, so the
//! log's order is the feed's — and it is appended in the event's own transaction.

use std::collections::HashMap;

use sqlx::Row;

use super::events::EventRow;
use super::{placeholders, Result, Store, StoreError};
use crate::licence::EventKind;
use crate::transparency::merkle::{self, Hash, KnownNodes};

/// A signed tree head as stored.
#[derive(Debug, Clone)]
pub struct StoredHead {
    pub size: u64,
    pub root: Hash,
    pub time: i64,
    /// The COSE_Sign1 bytes.
    pub head: Vec<u8>,
}

/// One event's log entry, as `log verify` and the catch-up read it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub event: EventRow,
    /// The version's full record (a version event) or the status change's statement; None when
    /// it is missing (a version deleted, a statement not yet made).
    pub entry: Option<Vec<u8>>,
}

/// Appends the leaves of the events from seq `first_seq` on (leaf `first_seq - 1` on), in `tx`,
/// under the event-order lock: reads the tree's right edge and writes every perfect subtree the
/// new leaves complete. Refuses when the log does not end just before them.
pub(super) async fn append_leaves(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    first_seq: i64,
    leaves: &[Hash],
) -> Result<()> {
    let size = size_in(&mut **tx).await?;
    if first_seq < 1 || size != (first_seq - 1) as u64 {
        return Err(StoreError::Corrupt(format!(
            "the transparency log holds {size} leaves, but event {first_seq} comes next"
        )));
    }
    let mut known = nodes_in(&mut **tx, &merkle::frontier(size)).await?;
    let added = merkle::append(&mut known, size, leaves)
        .map_err(|e| StoreError::Corrupt(format!("transparency log: {e}")))?;
    // Three parameters a node: 1,500 a statement, well inside both backends' limits.
    for chunk in added.chunks(500) {
        let sql = format!(
            "INSERT INTO log_nodes (level, idx, hash) VALUES {}",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for ((level, index), hash) in chunk {
            query = query
                .bind(i64::from(*level))
                .bind(*index as i64)
                .bind(hash.to_vec());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Keeps the statement event `seq` is logged as.
pub(super) async fn insert_statement(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    seq: i64,
    statement: &[u8],
) -> Result<()> {
    sqlx::query("INSERT INTO log_statements (seq, statement) VALUES ($1, $2)")
        .bind(seq)
        .bind(statement.to_vec())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Leaves in the log: one past the last leaf's index (the primary key's order, no scan).
async fn size_in<'e, E>(executor: E) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let last: Option<i64> = sqlx::query("SELECT MAX(idx) AS last FROM log_nodes WHERE level = 0")
        .fetch_one(executor)
        .await?
        .try_get("last")?;
    Ok(last.map_or(0, |l| l as u64 + 1))
}

/// The event kinds that make a version, as an SQL list (`'issued', …`): an event's entry is its
/// version's full record for these, its statement otherwise.
fn version_kinds() -> String {
    EventKind::ALL
        .into_iter()
        .filter(|k| k.creates_version())
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A stored hash, which must be 32 bytes.
fn stored_hash(bytes: Vec<u8>, what: &str) -> Result<Hash> {
    Hash::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// The stored perfect subtrees among `wanted`.
async fn nodes_in<'e, E>(executor: E, wanted: &[(u32, u64)]) -> Result<KnownNodes>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mut known = KnownNodes::default();
    if wanted.is_empty() {
        return Ok(known);
    }
    let conditions = (0..wanted.len())
        .map(|i| format!("(level = ${} AND idx = ${})", 2 * i + 1, 2 * i + 2))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!("SELECT level, idx, hash FROM log_nodes WHERE {conditions}");
    let mut query = sqlx::query(&sql);
    for (level, index) in wanted {
        query = query.bind(i64::from(*level)).bind(*index as i64);
    }
    for row in query.fetch_all(executor).await? {
        let hash = stored_hash(row.try_get("hash")?, "a log node")?;
        let level: i64 = row.try_get("level")?;
        let index: i64 = row.try_get("idx")?;
        known.0.insert((level as u32, index as u64), hash);
    }
    Ok(known)
}

impl Store {
    /// Leaves in the log (committed).
    pub async fn log_size(&self) -> Result<u64> {
        size_in(&self.reader).await
    }

    /// The perfect subtrees among `wanted` (a query per 200; a root or a proof needs O(log n)).
    pub async fn log_nodes(&self, wanted: &[(u32, u64)]) -> Result<KnownNodes> {
        let mut known = KnownNodes::default();
        // 2 parameters a node: 400 a query.
        for chunk in wanted.chunks(200) {
            known.0.extend(nodes_in(&self.reader, chunk).await?.0);
        }
        Ok(known)
    }

    /// Appends leaves tied to no event, in one transaction: for `bench log` on a scratch store
    /// only — a log with them fails `log verify`, and the next event would be refused.
    pub async fn append_synthetic_leaves(&self, leaves: &[Hash]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        self.lock_event_order(&mut tx).await?;
        let size = size_in(&mut *tx).await?;
        append_leaves(&mut tx, size as i64 + 1, leaves).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many perfect subtrees are stored at `level`.
    pub async fn log_level_count(&self, level: u32) -> Result<u64> {
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM log_nodes WHERE level = $1")
            .bind(i64::from(level))
            .fetch_one(&self.reader)
            .await?
            .try_get("n")?;
        Ok(count as u64)
    }

    /// Every stored perfect subtree at `level` from index `from`, at most `limit` (`log verify`).
    pub async fn log_level(&self, level: u32, from: u64, limit: i64) -> Result<Vec<(u64, Hash)>> {
        sqlx::query(
            "SELECT idx, hash FROM log_nodes WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
        )
        .bind(i64::from(level))
        .bind(from as i64)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            let hash = stored_hash(row.try_get("hash")?, "a log node")?;
            Ok((row.try_get::<i64, _>("idx")? as u64, hash))
        })
        .collect()
    }

    /// Keeps a signed head; a head of the same size kept already (another instance made it
    /// meanwhile) stays, and is returned instead.
    pub async fn insert_log_head(&self, head: &StoredHead) -> Result<StoredHead> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO log_heads (size, root, time, head) VALUES ($1, $2, $3, $4)
             ON CONFLICT (size) DO NOTHING",
        )
        .bind(head.size as i64)
        .bind(head.root.to_vec())
        .bind(head.time)
        .bind(head.head.clone())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.log_head_of_size(head.size)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("log head {} vanished", head.size)))
    }

    /// The latest signed head.
    pub async fn latest_log_head(&self) -> Result<Option<StoredHead>> {
        let row =
            sqlx::query("SELECT size, root, time, head FROM log_heads ORDER BY size DESC LIMIT 1")
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(stored_head).transpose()
    }

    /// The signed head of exactly `size` leaves.
    pub async fn log_head_of_size(&self, size: u64) -> Result<Option<StoredHead>> {
        let row = sqlx::query("SELECT size, root, time, head FROM log_heads WHERE size = $1")
            .bind(size as i64)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(stored_head).transpose()
    }

    /// Signed heads larger than `after` (all without), smallest first, at most `limit`.
    pub async fn log_heads_after(&self, after: Option<u64>, limit: i64) -> Result<Vec<StoredHead>> {
        sqlx::query(
            "SELECT size, root, time, head FROM log_heads WHERE size > $1 ORDER BY size LIMIT $2",
        )
        .bind(after.map_or(-1, |a| a.min(i64::MAX as u64) as i64))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(stored_head)
        .collect()
    }

    /// The seq of the event that made version `version` of licence `licence_id` (its leaf is
    /// seq − 1).
    pub async fn version_event_seq(&self, licence_id: &str, version: u32) -> Result<Option<i64>> {
        // Through the licence's unique identifier, then its events by (licence, change_no)'s
        // index: a public route must not scan the events.
        let sql = format!(
            "SELECT e.seq FROM licences l JOIN events e ON e.licence = l.id
             WHERE l.licence_id = $1 AND e.version = $2 AND e.kind IN ({})",
            version_kinds()
        );
        let row = sqlx::query(&sql)
            .bind(licence_id)
            .bind(i64::from(version))
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get("seq")).transpose()?)
    }

    /// The log entries of the events with seq greater than `after`, in seq order, at most
    /// `limit`: each event with its version's full record or its statement.
    pub async fn log_entries_after(&self, after: i64, limit: i64) -> Result<Vec<LogEntry>> {
        entries_after(&self.reader, after, limit).await
    }

    /// The statements of the status-change events among `seqs`, by seq (the feed carries them).
    pub async fn log_statements(&self, seqs: &[i64]) -> Result<HashMap<i64, Vec<u8>>> {
        let mut statements = HashMap::new();
        for chunk in seqs.chunks(500) {
            let sql = format!(
                "SELECT seq, statement FROM log_statements WHERE seq IN ({})",
                (1..=chunk.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut query = sqlx::query(&sql);
            for seq in chunk {
                query = query.bind(*seq);
            }
            for row in query.fetch_all(&self.reader).await? {
                statements.insert(row.try_get("seq")?, row.try_get("statement")?);
            }
        }
        Ok(statements)
    }

    /// Appends to the log every event it does not hold yet — the events of a database from
    /// before the log, or of a log rebuilt — under the event-order lock, so no new event
    /// interleaves. `statement` signs the entry of a status change that has none. Returns how
    /// many leaves were appended.
    pub async fn catch_up_log(
        &self,
        statement: impl Fn(&EventRow) -> std::result::Result<Vec<u8>, String>,
    ) -> Result<u64> {
        let mut appended = 0;
        loop {
            let mut tx = self.begin_write().await?;
            self.lock_event_order(&mut tx).await?;
            let size = size_in(&mut *tx).await? as i64;
            let entries = entries_after(&mut *tx, size, 1000).await?;
            if entries.is_empty() {
                // Ended here, not dropped: a dropped transaction keeps the event-order lock
                // until its rollback runs, which a blocked runtime may never get to.
                tx.rollback().await?;
                return Ok(appended);
            }
            let mut leaves = Vec::with_capacity(entries.len());
            for (expected, LogEntry { event, entry }) in (size + 1..).zip(&entries) {
                if event.seq != expected {
                    return Err(StoreError::Corrupt(format!(
                        "the change events have a gap: event {expected} is missing"
                    )));
                }
                let entry = match entry {
                    Some(entry) => entry.clone(),
                    None if !event.kind.creates_version() => {
                        let signed = statement(event).map_err(StoreError::Corrupt)?;
                        insert_statement(&mut tx, event.seq, &signed).await?;
                        signed
                    }
                    None => {
                        return Err(StoreError::Corrupt(format!(
                            "event {}: version {} of {} is missing",
                            event.seq, event.version, event.licence_id
                        )))
                    }
                };
                leaves.push(merkle::leaf_hash(&entry));
            }
            append_leaves(&mut tx, size + 1, &leaves).await?;
            tx.commit().await?;
            appended += leaves.len() as u64;
        }
    }
}

async fn entries_after<'e, E>(executor: E, after: i64, limit: i64) -> Result<Vec<LogEntry>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT e.seq, e.licence_id, e.version, e.kind, e.at, e.reason, e.actor,
                CASE WHEN e.kind IN ({}) THEN v.full_record ELSE s.statement END AS entry
         FROM events e
         LEFT JOIN versions v ON v.licence = e.licence AND v.version = e.version
         LEFT JOIN log_statements s ON s.seq = e.seq
         WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        version_kinds()
    );
    sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch_all(executor)
        .await?
        .iter()
        .map(|row| {
            Ok(LogEntry {
                event: super::events::event_row(row)?,
                entry: row.try_get("entry")?,
            })
        })
        .collect()
}

fn stored_head(row: &sqlx::any::AnyRow) -> Result<StoredHead> {
    Ok(StoredHead {
        size: row.try_get::<i64, _>("size")? as u64,
        root: stored_hash(row.try_get("root")?, "a log head's root")?,
        time: row.try_get("time")?,
        head: row.try_get("head")?,
    })
}
