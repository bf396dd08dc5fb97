//! What the alert watcher (src/alerts/) reads and writes: the audit records its rules count,
//! a revoked licence's issue time, verification counts, and its alerts appended together with
//! its progress. Its progress and lease are a row of `push_state` (its target is named
//! `alerts:audit`), taken and handed back with [`Store::take_push_lease`] like a push's.

use sqlx::Row;

use super::{Result, Store};
use crate::audit::{Entry, Record};
use crate::identifiers::Uscc;

/// The columns of an audit record, as `crate::audit::Record` reads them.
const RECORD_COLUMNS: &str =
    "seq, at, actor, source, action, target, outcome, detail, department, prev_hash, hash";

impl Store {
    /// The seq of the last audit record (0 for none).
    pub async fn audit_last_seq(&self) -> Result<i64> {
        Ok(self.audit_head().await?.map_or(0, |(seq, _)| seq))
    }

    /// The first audit seq recorded at or after `at` (RFC 3339, UTC), or one past the last.
    /// Found by bisection over the primary key: records are appended in time order (under the
    /// chain's lock), and a scan of `at`, which has no index, would read the whole trail. A
    /// clock stepping back by a little makes the answer a little late; callers leave a margin.
    pub async fn first_audit_seq_since(&self, at: &str) -> Result<i64> {
        let (mut low, mut high) = (1, self.audit_last_seq().await? + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            // The first record from `middle` on (a hole in the seqs is passed over).
            let found: Option<(i64, String)> =
                sqlx::query("SELECT seq, at FROM audit WHERE seq >= $1 ORDER BY seq LIMIT 1")
                    .bind(middle)
                    .fetch_optional(&self.reader)
                    .await?
                    .map(|row| Ok::<_, sqlx::Error>((row.try_get("seq")?, row.try_get("at")?)))
                    .transpose()?;
            match found {
                Some((seq, recorded)) if recorded.as_str() < at => low = seq + 1,
                _ => high = middle,
            }
        }
        Ok(low)
    }

    /// What the alert rules need to know from before a pass, in seq order: from seq `from` to
    /// `through`, the records their windows count (revocations and amendments that succeeded,
    /// `counted_actions`, and refusals); and every alert from `from` on, whenever appended
    /// (an alert is appended after the records that set it off).
    pub async fn alert_context(
        &self,
        from: i64,
        through: i64,
        counted_actions: &[&str],
    ) -> Result<Vec<Record>> {
        let actions: Vec<String> = (0..counted_actions.len())
            .map(|i| format!("${}", i + 3))
            .collect();
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM audit
             WHERE seq >= $1
               AND (action LIKE 'alert.%'
                    OR (seq <= $2 AND ((outcome = 'ok' AND action IN ({}))
                                       OR outcome LIKE 'refused%')))
             ORDER BY seq",
            actions.join(", ")
        );
        let mut query = sqlx::query_as(&sql).bind(from).bind(through);
        for action in counted_actions {
            query = query.bind(*action);
        }
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// When the licence `licence_id` was first issued (its `issued` event), if it exists.
    pub async fn licence_issued_at(&self, licence_id: &str) -> Result<Option<String>> {
        Ok(sqlx::query(
            "SELECT e.at FROM events e JOIN licences l ON l.id = e.licence
             WHERE l.licence_id = $1 AND e.kind = 'issued' ORDER BY e.change_no LIMIT 1",
        )
        .bind(licence_id)
        .fetch_optional(&self.reader)
        .await?
        .map(|row| row.try_get("at"))
        .transpose()?)
    }

    /// Per licence of `department`, its public verifications from minute `since` on
    /// (`YYYY-MM-DDTHH:MM`, UTC), where there were more than `more_than`. Asked per department,
    /// so the department index bounds what is read.
    pub async fn verification_totals(
        &self,
        department: &Uscc,
        since: &str,
        more_than: i64,
    ) -> Result<Vec<(String, i64, String)>> {
        sqlx::query(
            "SELECT licence, CAST(SUM(count) AS BIGINT) AS total, MIN(minute) AS first
             FROM verification_counts WHERE department = $1 AND minute >= $2
             GROUP BY licence HAVING SUM(count) > $3 ORDER BY licence",
        )
        .bind(department.as_str())
        .bind(since)
        .bind(more_than)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("licence")?,
                row.try_get("total")?,
                row.try_get("first")?,
            ))
        })
        .collect()
    }

    /// Appends `alerts` and, with `advance = Some((from, to))`, moves the watcher's progress of
    /// `target` from `from` to `to`, in one transaction, while `holder` holds its lease: a crash
    /// leaves both or neither, and a watcher that lost its lease (or whose pass another already
    /// made) appends nothing. False when it did not hold the lease.
    pub async fn append_alerts(
        &self,
        target: &str,
        holder: &str,
        advance: Option<(i64, i64)>,
        alerts: &[Entry],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let (from, to) = advance.unwrap_or((-1, -1));
        // Without an advance, the progress is set to itself: the row is still locked and
        // counted, which tells whether the lease is ours.
        let held = sqlx::query(
            "UPDATE push_state SET last_seq = CASE WHEN $1 < 0 THEN last_seq ELSE $2 END
             WHERE target = $3 AND lease_holder = $4 AND ($1 < 0 OR last_seq = $1)",
        )
        .bind(from)
        .bind(to)
        .bind(target)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !held {
            tx.rollback().await?;
            return Ok(false);
        }
        self.append_audit_many_in(&mut tx, &alerts.iter().collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Alert records (action `alert.*`) newest first, with seq below `before` (0: from the
    /// newest), only `department`'s when one is given, at most `limit`.
    pub async fn alert_records(
        &self,
        department: Option<&Uscc>,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Record>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {RECORD_COLUMNS} FROM audit
             WHERE action LIKE 'alert.%' AND ($1 = 0 OR seq < $1)
               AND ($2 = '' OR department = $2)
             ORDER BY seq DESC LIMIT $3"
        ))
        .bind(before)
        .bind(department.map_or("", Uscc::as_str))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// How many alert records there are from seq `from` on, only `department`'s when given.
    pub async fn count_alerts(&self, department: Option<&Uscc>, from: i64) -> Result<i64> {
        // Bounded on both sides: PostgreSQL's generic plan for a prepared statement takes an
        // open range for a third of the table and scans it all (the dashboard's count took
        // 47 ms on a trail of 200,000 records, 14 ms bounded, the bisection included).
        let head = self.audit_last_seq().await?;
        Ok(sqlx::query(
            "SELECT COUNT(*) AS alerts FROM audit
             WHERE seq BETWEEN $1 AND $3 AND action LIKE 'alert.%'
               AND ($2 = '' OR department = $2)",
        )
        .bind(from)
        .bind(department.map_or("", Uscc::as_str))
        .bind(head)
        .fetch_one(&self.reader)
        .await?
        .try_get("alerts")?)
    }
}
