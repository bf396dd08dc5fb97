//! The supervision figures as the database counts them (SPEC §15): changes, rejected batch rows,
//! refused attempts, public verifications and conversion times, grouped in SQL by department
//! and UTC hour (`substr(at, 1, 13)` of the stored RFC 3339 text, which both backends read
//! alike); the application folds the hours into China Standard Time days. Nothing here loads
//! licences one by one. Also where verification counts are added to `verification_counts`.

use sqlx::Row;

use super::{placeholders, Result, Store};
use crate::verify_tally::MinuteCount;

/// A count of something in one department (None: the whole service's) and one UTC hour
/// (`YYYY-MM-DDTHH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    pub department: Option<String>,
    pub hour: String,
    /// What was counted: an event kind or `converted` (changes), a reason code (rejections).
    pub what: String,
    pub count: i64,
}

/// Rejected batch rows of one batch department, type and hour, with one set of reason codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedCount {
    /// The department the batch was submitted for (None: a department-less admin's).
    pub batch_department: Option<String>,
    pub type_code: String,
    pub hour: String,
    /// The reason codes, comma-separated; None for rows rejected before codes were kept.
    pub codes: Option<String>,
    pub count: i64,
}

/// Licences a conversion issued at one instant from a batch created at another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversionTimes {
    pub department: String,
    /// RFC 3339: when the licences were signed.
    pub issued_at: String,
    /// RFC 3339: when their batch was created (uploaded, or its run started).
    pub created_at: String,
    pub count: i64,
}

/// The instants a summary covers, `[from, until)`, as stored text (RFC 3339, UTC), and the
/// department it is narrowed to.
pub struct FigureRange<'a> {
    pub from: &'a str,
    pub until: &'a str,
    pub department: Option<&'a str>,
}

impl FigureRange<'_> {
    fn department(&self) -> &str {
        self.department.unwrap_or("")
    }

    /// The bounds as `verification_counts.minute` writes them (`YYYY-MM-DDTHH:MM`).
    fn minutes(&self) -> (&str, &str) {
        (
            &self.from[..16.min(self.from.len())],
            &self.until[..16.min(self.until.len())],
        )
    }
}

impl Store {
    /// Licence events by issuing department, hour and kind; an `issued` event of a licence a
    /// batch row issued counts as `converted`.
    pub async fn change_counts(&self, range: &FigureRange<'_>) -> Result<Vec<HourCount>> {
        let rows = sqlx::query(
            "SELECT l.issuer AS department, substr(e.at, 1, 13) AS hour,
                    CASE WHEN e.kind = 'issued' AND EXISTS (
                        SELECT 1 FROM batch_rows r
                        WHERE r.licence_id = e.licence_id AND r.outcome = 'issued')
                    THEN 'converted' ELSE e.kind END AS what,
                    COUNT(*) AS n
             FROM events e JOIN licences l ON l.id = e.licence
             WHERE e.at >= $1 AND e.at < $2 AND ($3 = '' OR l.issuer = $3)
             GROUP BY 1, 2, 3",
        )
        .bind(range.from)
        .bind(range.until)
        .bind(range.department())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(hour_count).collect()
    }

    /// Refused attempts (audit outcome `refused: …`) by the record's department and hour.
    pub async fn refusal_counts(&self, range: &FigureRange<'_>) -> Result<Vec<HourCount>> {
        let rows = sqlx::query(
            "SELECT department, substr(at, 1, 13) AS hour, 'refused' AS what, COUNT(*) AS n
             FROM audit
             WHERE at >= $1 AND at < $2 AND outcome LIKE 'refused%'
               AND ($3 = '' OR department = $3)
             GROUP BY 1, 2",
        )
        .bind(range.from)
        .bind(range.until)
        .bind(range.department())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(hour_count).collect()
    }

    /// Public verifications by the licence's department and hour.
    pub async fn verification_counts(&self, range: &FigureRange<'_>) -> Result<Vec<HourCount>> {
        let (from, until) = range.minutes();
        let rows = sqlx::query(
            "SELECT department, substr(minute, 1, 13) AS hour, 'verified' AS what,
                    CAST(SUM(count) AS BIGINT) AS n
             FROM verification_counts
             WHERE minute >= $1 AND minute < $2 AND ($3 = '' OR department = $3)
             GROUP BY 1, 2",
        )
        .bind(from)
        .bind(until)
        .bind(range.department())
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(hour_count).collect()
    }

    /// Rejected batch rows of batches created in the range, by the batch's department, the
    /// row's type, the hour the batch was created and the reason codes. The department a row
    /// belongs to needs the directory (a department-less admin's batch: its type's issuer), so
    /// the caller narrows these.
    pub async fn rejected_counts(&self, range: &FigureRange<'_>) -> Result<Vec<RejectedCount>> {
        let rows = sqlx::query(
            "SELECT b.department AS department, r.type_code AS type_code,
                    substr(b.created_at, 1, 13) AS hour, r.reason_code AS codes, COUNT(*) AS n
             FROM batch_rows r JOIN batches b ON b.id = r.batch_id
             WHERE r.outcome = 'rejected' AND b.created_at >= $1 AND b.created_at < $2
             GROUP BY 1, 2, 3, 4",
        )
        .bind(range.from)
        .bind(range.until)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RejectedCount {
                    batch_department: row.try_get("department")?,
                    type_code: row.try_get("type_code")?,
                    hour: row.try_get("hour")?,
                    codes: row.try_get("codes")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    /// Licences issued by conversion in the range, by department, issue instant and the
    /// instant their batch was created: one row per second of a run, not per licence.
    pub async fn conversion_times(&self, range: &FigureRange<'_>) -> Result<Vec<ConversionTimes>> {
        let rows = sqlx::query(
            "SELECT l.issuer AS department, e.at AS issued_at, b.created_at AS created_at,
                    COUNT(*) AS n
             FROM events e
             JOIN licences l ON l.id = e.licence
             JOIN batch_rows r ON r.licence_id = e.licence_id AND r.outcome = 'issued'
             JOIN batches b ON b.id = r.batch_id
             WHERE e.kind = 'issued' AND e.at >= $1 AND e.at < $2
               AND ($3 = '' OR l.issuer = $3)
             GROUP BY 1, 2, 3",
        )
        .bind(range.from)
        .bind(range.until)
        .bind(range.department())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConversionTimes {
                    department: row.try_get("department")?,
                    issued_at: row.try_get("issued_at")?,
                    created_at: row.try_get("created_at")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    /// Adds verification counts to `verification_counts` (a count already there for the licence
    /// and minute grows), in one transaction.
    pub async fn add_verification_counts(&self, counts: &[MinuteCount]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        // 4 parameters a count: 200 counts a statement.
        for chunk in counts.chunks(200) {
            let sql = format!(
                "INSERT INTO verification_counts (licence, department, minute, count) VALUES {}
                 ON CONFLICT (licence, minute)
                 DO UPDATE SET count = verification_counts.count + excluded.count",
                placeholders(chunk.len(), 4)
            );
            let mut query = sqlx::query(&sql);
            for c in chunk {
                query = query
                    .bind(c.licence.clone())
                    .bind(c.department.clone())
                    .bind(minute_text(c.minute))
                    .bind(c.count);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn hour_count(row: &sqlx::any::AnyRow) -> Result<HourCount> {
    Ok(HourCount {
        department: row.try_get("department")?,
        hour: row.try_get("hour")?,
        what: row.try_get("what")?,
        count: row.try_get("n")?,
    })
}

/// A minute since the epoch as `verification_counts.minute` keeps it: `YYYY-MM-DDTHH:MM`, UTC.
fn minute_text(minute: i64) -> String {
    let at = crate::time_util::from_unix(minute.saturating_mul(60));
    crate::time_util::format_rfc3339(at)[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_is_written_as_its_utc_date_hour_and_minute() {
        // 2026-03-01T16:05:00Z
        assert_eq!(minute_text(1_772_381_100 / 60), "2026-03-01T16:05");
    }
}
