//! The ordered change log (SPEC §8): every change to a licence is an event with a gapless `seq`,
//! assigned in commit order, which the feed and push delivery read from, and which the
//! transparency log (SPEC §16) appends in the same transaction. Apart from the licence
//! writes because the ordering rules (the event-order lock, the next seq) are what a reader of the
//! feed relies on, and they belong in one place.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::licences::NewLicence;
use super::log::{append_leaves, insert_statement};
use super::{placeholders, Backend, LicenceRow, Result, Store, StoreError};
use crate::identifiers::Uscc;
use crate::licence::EventKind;
use crate::transparency::merkle::leaf_hash;

/// The advisory lock key that orders event inserts on PostgreSQL ("elicence" in ASCII).
const EVENT_ORDER_LOCK: i64 = 0x656c_6963_656e_6365;

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

impl Store {
    /// Takes the event-order lock for the rest of `tx` (PostgreSQL; SQLite's write lock already
    /// orders writers), before any event insert, so that seqs are assigned in commit order.
    pub(super) async fn lock_event_order(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_ORDER_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
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

pub(super) fn parse_kind(kind: &str) -> Result<EventKind> {
    EventKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))
}

pub(super) fn event_row(row: &AnyRow) -> Result<EventRow> {
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

/// What an event is logged as (SPEC §16).
#[derive(Debug, Clone, Copy)]
pub enum EventEntry<'a> {
    /// A new version: its full-record COSE_Sign1.
    Version(&'a [u8]),
    /// A status change: its signed statement, kept beside the event.
    Statement(&'a [u8]),
}

/// The `issued` events of new licences, one statement, and their log leaves; their seqs by
/// licence.
pub(super) async fn insert_issued_events(
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
    let leaves: Vec<_> = new
        .iter()
        .map(|(_, licence, _)| leaf_hash(&licence.version.full_record))
        .collect();
    append_leaves(tx, first_seq, &leaves).await?;
    Ok(seqs)
}

/// The next change of `licence` (change number one past its last) as an event concerning
/// `version`, and its log leaf; its seq. A concurrent change took that change number when this
/// fails on the `UNIQUE(licence, change_no)` constraint.
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    licence: &LicenceRow,
    version: u32,
    kind: EventKind,
    at: &str,
    reason: Option<&str>,
    actor: &str,
    logged: EventEntry<'_>,
) -> Result<i64> {
    let seq = next_event_seq(tx).await?;
    let seq: i64 = sqlx::query(
        "INSERT INTO events (seq, licence, licence_id, change_no, version, kind, at, reason, actor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    )
    .bind(seq)
    .bind(licence.pk)
    .bind(licence.key.to_string())
    .bind(licence.change_no + 1)
    .bind(i64::from(version))
    .bind(kind.as_str())
    .bind(at)
    .bind(reason)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await?
    .try_get("seq")?;
    let entry = match logged {
        EventEntry::Version(full_record) => full_record,
        EventEntry::Statement(statement) => {
            insert_statement(tx, seq, statement).await?;
            statement
        }
    };
    append_leaves(tx, seq, &[leaf_hash(entry)]).await?;
    Ok(seq)
}
