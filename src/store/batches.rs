//! Conversion runs and the outcome of each manifest row (SPEC §9), and blobs kept in the database
//! (SPEC §11). A chunk of rows commits in one transaction with the licences it issues, so a run
//! killed at any moment leaves each row either fully converted or not at all.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{placeholders, Inserted, NewLicence, Result, Store, StoreError};
use super::{BatchState, RowOutcome, UnknownWord};
use crate::messages::{Reason, Said};
use crate::time_util;

/// A conversion run about to start.
pub struct NewBatch<'a> {
    pub id: &'a str,
    pub actor: &'a str,
    pub source: &'a str,
    pub department: Option<&'a str>,
    /// Comma-separated role names.
    pub roles: &'a str,
    /// The blob key of an uploaded zip (HTTP jobs).
    pub upload: Option<&'a str>,
    pub all_or_nothing: bool,
    /// `Queued` for an HTTP job, `Running` for the command line.
    pub state: BatchState,
    /// The holder and length in seconds of the lease a running run starts with.
    pub lease: Option<(&'a str, i64)>,
}

/// A conversion run as stored.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct BatchRecord {
    pub id: String,
    pub created_at: String,
    pub actor: String,
    pub source: String,
    pub state: BatchState,
    #[serde(skip)]
    pub upload: Option<String>,
    pub all_or_nothing: bool,
    /// Every manifest line up to this one has its outcome.
    pub done_line: u64,
    pub issued: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub error: Option<String>,
    /// The error in Chinese, from the message catalogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_zh: Option<String>,
    #[serde(skip)]
    pub department: Option<String>,
    #[serde(skip)]
    pub roles: String,
    pub finished_at: Option<String>,
    /// The manifest's data rows, once a run has counted them.
    #[serde(skip)]
    pub total_rows: Option<u64>,
}

/// One manifest row of a chunk, as the converter decided it (the store settles it into a
/// [`RowResult`] when the chunk commits).
pub struct BatchRow {
    pub line: u64,
    pub type_code: String,
    pub number: String,
    pub outcome: BatchRowOutcome,
    /// The row's cells as JSON `[[column, cell], …]` in the manifest's order: kept when the row
    /// is rejected, so that it can be given back to be corrected.
    pub cells: Option<String>,
}

/// A rejected row with the cells it had in the manifest, in the manifest's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    pub line: u64,
    pub column: String,
    pub reason: String,
    pub reason_zh: String,
    pub cells: Vec<(String, String)>,
}

/// The converter's decision on a row, before its chunk commits.
pub enum BatchRowOutcome {
    /// Issue the chunk's licence at this index (it may still turn out to exist: then skipped).
    Issue(usize),
    Skipped {
        licence_id: String,
    },
    Rejected {
        column: String,
        reason: Said,
        /// The reason's codes in the message catalogue, comma-separated.
        code: String,
    },
}

/// What became of one manifest row: the report's line and the API's answer.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowResult {
    pub line: u64,
    pub outcome: RowOutcome,
    pub type_code: String,
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The reason in Chinese, from the message catalogue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_zh: Option<String>,
}

impl RowResult {
    fn resolved(row: &BatchRow, inserted: &[Inserted], licences: &[NewLicence<'_>]) -> RowResult {
        let (outcome, licence_id, column, reason): (_, _, _, Option<&Said>) = match &row.outcome {
            BatchRowOutcome::Issue(i) => match &inserted[*i] {
                Inserted::Issued { .. } => (
                    RowOutcome::Issued,
                    Some(licences[*i].version.id.key.to_string()),
                    None,
                    None,
                ),
                Inserted::DuplicateNumber { existing } => {
                    (RowOutcome::Skipped, Some(existing.clone()), None, None)
                }
            },
            BatchRowOutcome::Skipped { licence_id } => {
                (RowOutcome::Skipped, Some(licence_id.clone()), None, None)
            }
            BatchRowOutcome::Rejected { column, reason, .. } => (
                RowOutcome::Rejected,
                None,
                Some(column.clone()),
                Some(reason),
            ),
        };
        RowResult {
            line: row.line,
            outcome,
            type_code: row.type_code.clone(),
            number: row.number.clone(),
            licence_id,
            column,
            reason: reason.map(|r| r.en.clone()),
            reason_zh: reason.map(|r| r.zh.clone()),
        }
    }
}

const BATCH_COLUMNS: &str =
    "id, created_at, actor, source, state, upload, all_or_nothing, done_line,
    issued, skipped, rejected, error, error_zh, department, roles, finished_at, total_rows";

impl Store {
    pub async fn create_batch(&self, new: &NewBatch<'_>) -> Result<()> {
        let now = time_util::now();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO batches (id, created_at, actor, source, state, upload, all_or_nothing,
                department, roles, lease_holder, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(new.id)
        .bind(time_util::format_rfc3339(now))
        .bind(new.actor)
        .bind(new.source)
        .bind(new.state.as_str())
        .bind(new.upload)
        .bind(i64::from(new.all_or_nothing))
        .bind(new.department)
        .bind(new.roles)
        .bind(new.lease.map_or("", |(holder, _)| holder))
        .bind(
            new.lease
                .map_or(0, |(_, seconds)| now.unix_timestamp() + seconds),
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn batch(&self, id: &str) -> Result<Option<BatchRecord>> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM batches WHERE id = $1");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| batch_record(&row))
            .transpose()
    }

    /// HTTP jobs that are queued, or were running in a process whose lease ran out (it died).
    pub async fn resumable_batches(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM batches WHERE state IN ($1, $2) AND upload IS NOT NULL
             AND lease_until < $3 ORDER BY created_at",
        )
        .bind(BatchState::Queued.as_str())
        .bind(BatchState::Running.as_str())
        .bind(time_util::now().unix_timestamp())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| r.try_get("id").map_err(StoreError::from))
            .collect()
    }

    /// Takes (or extends) `holder`'s lease on a batch for `seconds`; false when another process
    /// holds it or the batch has ended.
    pub async fn lease_batch(&self, id: &str, holder: &str, seconds: i64) -> Result<bool> {
        let now = time_util::now().unix_timestamp();
        let mut tx = self.begin_write().await?;
        let taken = sqlx::query(
            "UPDATE batches SET state = $1, lease_holder = $2, lease_until = $3
             WHERE id = $4 AND state IN ($5, $6)
               AND (lease_until < $7 OR lease_holder = $8)",
        )
        .bind(BatchState::Running.as_str())
        .bind(holder)
        .bind(now + seconds)
        .bind(id)
        .bind(BatchState::Queued.as_str())
        .bind(BatchState::Running.as_str())
        .bind(now)
        .bind(holder)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(taken == 1)
    }

    /// Issues a chunk's licences and records every row's outcome and the batch's progress, in
    /// one transaction.
    pub async fn commit_batch_chunk(
        &self,
        batch_id: &str,
        holder: &str,
        licences: &[NewLicence<'_>],
        rows: &[BatchRow],
        done_line: u64,
    ) -> Result<Vec<RowResult>> {
        let mut tx = self.begin_write().await?;
        let inserted = if licences.is_empty() {
            Vec::new()
        } else {
            self.insert_licences_in(&mut tx, licences).await?
        };
        let results: Vec<RowResult> = rows
            .iter()
            .map(|row| RowResult::resolved(row, &inserted, licences))
            .collect();
        for (chunk, decided) in results.chunks(200).zip(rows.chunks(200)) {
            let sql = format!(
                "INSERT INTO batch_rows (batch_id, line, outcome, type_code, number, licence_id,
                    column_name, reason, reason_zh, cells, reason_code) VALUES {}",
                placeholders(chunk.len(), 11)
            );
            let mut query = sqlx::query(&sql);
            for (r, row) in chunk.iter().zip(decided) {
                let cells = row
                    .cells
                    .clone()
                    .filter(|_| r.outcome == RowOutcome::Rejected);
                let code = match &row.outcome {
                    BatchRowOutcome::Rejected { code, .. } => Some(code.clone()),
                    _ => None,
                };
                query = query
                    .bind(batch_id)
                    .bind(r.line as i64)
                    .bind(r.outcome.as_str())
                    .bind(r.type_code.clone())
                    .bind(r.number.clone())
                    .bind(r.licence_id.clone())
                    .bind(r.column.clone())
                    .bind(r.reason.clone())
                    .bind(r.reason_zh.clone())
                    .bind(cells)
                    .bind(code);
            }
            query.execute(&mut *tx).await?;
        }
        let count =
            |outcome: RowOutcome| results.iter().filter(|r| r.outcome == outcome).count() as i64;
        let held = sqlx::query(
            "UPDATE batches SET done_line = $1, issued = issued + $2, skipped = skipped + $3,
                rejected = rejected + $4
             WHERE id = $5 AND lease_holder = $6 AND state = $7",
        )
        .bind(done_line as i64)
        .bind(count(RowOutcome::Issued))
        .bind(count(RowOutcome::Skipped))
        .bind(count(RowOutcome::Rejected))
        .bind(batch_id)
        .bind(holder)
        .bind(BatchState::Running.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held == 0 {
            // Dropping the transaction rolls back the licences and rows of this chunk.
            return Err(StoreError::LeaseLost(batch_id.to_string()));
        }
        tx.commit().await?;
        Ok(results)
    }

    /// Finished HTTP jobs that still keep their upload: (id, upload key, when they finished).
    pub async fn finished_uploads(&self) -> Result<Vec<(String, String, String)>> {
        let rows = sqlx::query(
            "SELECT id, upload, finished_at FROM batches
             WHERE state IN ($1, $2) AND upload IS NOT NULL AND finished_at IS NOT NULL",
        )
        .bind(BatchState::Done.as_str())
        .bind(BatchState::Failed.as_str())
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    r.try_get("upload")?,
                    r.try_get("finished_at")?,
                ))
            })
            .collect()
    }

    /// Records that a job's upload was deleted.
    pub async fn forget_upload(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE batches SET upload = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records how many data rows the manifest of `holder`'s running batch has.
    pub async fn record_batch_rows(&self, id: &str, holder: &str, rows: u64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE batches SET total_rows = $1 WHERE id = $2 AND lease_holder = $3")
            .bind(rows as i64)
            .bind(id)
            .bind(holder)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a batch: `Done`, or `Failed` with the reason.
    pub async fn finish_batch(
        &self,
        id: &str,
        holder: &str,
        state: BatchState,
        error: Option<&Said>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE batches SET state = $1, error = $2, error_zh = $7, finished_at = $3,
                    lease_until = 0
             WHERE id = $4 AND lease_holder = $5 AND state = $6",
        )
        .bind(state.as_str())
        .bind(error.map(|e| e.en.as_str()))
        .bind(time_util::format_rfc3339(time_util::now()))
        .bind(id)
        .bind(holder)
        .bind(BatchState::Running.as_str())
        .bind(error.map(|e| e.zh.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if held == 0 {
            return Err(StoreError::LeaseLost(id.to_string()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks `interrupted` every folder run (`convert` from the command line) whose process died:
    /// still running, its lease run out or its holder known to be gone. Each gets its `batch.convert` audit record in the same
    /// transaction. Returns the runs marked.
    pub async fn interrupt_abandoned_runs(
        &self,
        holder_is_gone: impl Fn(&str) -> bool,
    ) -> Result<Vec<BatchRecord>> {
        let now = time_util::now();
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT {BATCH_COLUMNS}, lease_holder, lease_until FROM batches
             WHERE state = $1 AND upload IS NULL ORDER BY created_at"
        );
        let mut abandoned = Vec::new();
        let running = sqlx::query(&sql)
            .bind(BatchState::Running.as_str())
            .fetch_all(&mut *tx)
            .await?;
        for row in running {
            let lease_until: i64 = row.try_get("lease_until")?;
            let holder: String = row.try_get("lease_holder")?;
            if lease_until < now.unix_timestamp() || holder_is_gone(&holder) {
                abandoned.push(batch_record(&row)?);
            }
        }
        if abandoned.is_empty() {
            return Ok(abandoned);
        }
        let reason = Said::from(Reason::Interrupted);
        let mut audits = Vec::new();
        let mut interrupted = Vec::new();
        for run in abandoned {
            // Only the process whose update marks the run records it: two processes looking at
            // once (PostgreSQL lets both read it running) leave one audit record, not two.
            let marked = sqlx::query(
                "UPDATE batches SET state = $1, error = $2, error_zh = $6, finished_at = $3,
                    lease_until = 0 WHERE id = $4 AND state = $5",
            )
            .bind(BatchState::Interrupted.as_str())
            .bind(&reason.en)
            .bind(time_util::format_rfc3339(now))
            .bind(&run.id)
            .bind(BatchState::Running.as_str())
            .bind(&reason.zh)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                continue;
            }
            audits.push(crate::audit::Entry {
                outcome: "failed: interrupted".into(),
                detail: format!(
                    "issued {}, skipped {}, rejected {}; {}",
                    run.issued, run.skipped, run.rejected, reason.en
                ),
                department: run.department.clone(),
                ..crate::audit::Entry::new(&run.actor, &run.source, "batch.convert", &run.id)
            });
            interrupted.push(run);
        }
        self.append_audit_many_in(&mut tx, &audits.iter().collect::<Vec<_>>())
            .await?;
        tx.commit().await?;
        Ok(interrupted)
    }

    /// A batch's row outcomes after `after_line`, in line order, at most `limit`.
    pub async fn batch_rows(
        &self,
        id: &str,
        after_line: u64,
        limit: i64,
    ) -> Result<Vec<RowResult>> {
        self.batch_rows_of(id, None, after_line, limit).await
    }

    /// [`Store::batch_rows`], only those with `outcome` when it is given.
    pub async fn batch_rows_of(
        &self,
        id: &str,
        outcome: Option<RowOutcome>,
        after_line: u64,
        limit: i64,
    ) -> Result<Vec<RowResult>> {
        let rows = sqlx::query(
            "SELECT line, outcome, type_code, number, licence_id, column_name, reason, reason_zh
             FROM batch_rows WHERE batch_id = $1 AND line > $2 AND ($3 = '' OR outcome = $3)
             ORDER BY line LIMIT $4",
        )
        .bind(id)
        .bind(after_line as i64)
        .bind(outcome.map_or("", |o| o.as_str()))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RowResult {
                    line: r.try_get::<i64, _>("line")? as u64,
                    outcome: decoded(r.try_get("outcome")?)?,
                    type_code: r.try_get("type_code")?,
                    number: r.try_get("number")?,
                    licence_id: r.try_get("licence_id")?,
                    column: r.try_get("column_name")?,
                    reason: r.try_get("reason")?,
                    reason_zh: r.try_get("reason_zh")?,
                })
            })
            .collect()
    }

    /// A batch's rejected rows after `after_line` with their cells, in line order, at most `limit`.
    pub async fn rejected_rows(
        &self,
        id: &str,
        after_line: u64,
        limit: i64,
    ) -> Result<Vec<RejectedRow>> {
        let rows = sqlx::query(
            "SELECT line, column_name, reason, reason_zh, cells FROM batch_rows
             WHERE batch_id = $1 AND line > $2 AND outcome = $3 ORDER BY line LIMIT $4",
        )
        .bind(id)
        .bind(after_line as i64)
        .bind(RowOutcome::Rejected.as_str())
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                let cells: Option<String> = r.try_get("cells")?;
                // Rows rejected before the cells were kept have none: their line still says which.
                let cells = match cells {
                    Some(json) => serde_json::from_str(&json)
                        .map_err(|e| StoreError::Corrupt(format!("batch {id} cells: {e}")))?,
                    None => Vec::new(),
                };
                Ok(RejectedRow {
                    line: r.try_get::<i64, _>("line")? as u64,
                    column: r
                        .try_get::<Option<String>, _>("column_name")?
                        .unwrap_or_default(),
                    reason: r
                        .try_get::<Option<String>, _>("reason")?
                        .unwrap_or_default(),
                    reason_zh: r
                        .try_get::<Option<String>, _>("reason_zh")?
                        .unwrap_or_default(),
                    cells,
                })
            })
            .collect()
    }

    /// The most recent `limit` jobs of `department` (None: of every department), newest first.
    pub async fn recent_batches(
        &self,
        department: Option<&str>,
        limit: i64,
    ) -> Result<Vec<BatchRecord>> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE ($1 = '' OR department = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        sqlx::query(&sql)
            .bind(department.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(batch_record)
            .collect()
    }

    /// The licence identifiers of those `numbers` that exist already for `type_code`.
    pub async fn existing_numbers(
        &self,
        type_code: &str,
        numbers: &[&str],
    ) -> Result<HashMap<String, String>> {
        let mut found = HashMap::new();
        for chunk in numbers.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT number, licence_id FROM licences WHERE type_code = $1 AND number IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(&sql).bind(type_code);
            for number in chunk {
                query = query.bind(*number);
            }
            for row in query.fetch_all(&self.reader).await? {
                found.insert(row.try_get("number")?, row.try_get("licence_id")?);
            }
        }
        Ok(found)
    }

    // -----------------------------------------------------------------------------------------
    // Blobs in the database

    /// Stores a blob under `key` unless one is there already (keys name their content).
    pub async fn put_blob(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO blobs (key, bytes, created_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(bytes.to_vec())
        .bind(time_util::format_rfc3339(time_util::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores a blob in the parts `parts` yields (in order), all in one transaction, so that a
    /// reader sees the whole blob or nothing; the parts are never all in memory at once.
    pub async fn put_blob_parts(
        &self,
        key: &str,
        mut parts: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let mut part: i64 = 0;
        while let Some(bytes) = parts.recv().await {
            // The blob could not be read to its end: roll back what was written of it.
            let bytes = bytes.map_err(|e| StoreError::Unreadable(e.to_string()))?;
            sqlx::query("INSERT INTO blob_parts (key, part, bytes) VALUES ($1, $2, $3)")
                .bind(key)
                .bind(part)
                .bind(bytes)
                .execute(&mut *tx)
                .await?;
            part += 1;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Part `part` (from 0) of a blob stored in parts; None past its last part.
    pub async fn blob_part(&self, key: &str, part: i64) -> Result<Option<Vec<u8>>> {
        sqlx::query("SELECT bytes FROM blob_parts WHERE key = $1 AND part = $2")
            .bind(key)
            .bind(part)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| r.try_get("bytes").map_err(StoreError::from))
            .transpose()
    }

    /// Removes a blob, whole or in parts (nothing when it is not there).
    pub async fn delete_blob(&self, key: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for sql in [
            "DELETE FROM blob_parts WHERE key = $1",
            "DELETE FROM blobs WHERE key = $1",
        ] {
            sqlx::query(sql).bind(key).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        sqlx::query("SELECT bytes FROM blobs WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?
            .map(|r| r.try_get("bytes").map_err(StoreError::from))
            .transpose()
    }
}

fn batch_record(row: &AnyRow) -> Result<BatchRecord> {
    let count = |name: &str| row.try_get::<i64, _>(name).map(|n| n as u64);
    Ok(BatchRecord {
        id: row.try_get("id")?,
        created_at: row.try_get("created_at")?,
        actor: row.try_get("actor")?,
        source: row.try_get("source")?,
        state: decoded(row.try_get("state")?)?,
        upload: row.try_get("upload")?,
        all_or_nothing: row.try_get::<i64, _>("all_or_nothing")? != 0,
        done_line: count("done_line")?,
        issued: count("issued")?,
        skipped: count("skipped")?,
        rejected: count("rejected")?,
        error: row.try_get("error")?,
        error_zh: row.try_get("error_zh")?,
        department: row.try_get("department")?,
        roles: row.try_get("roles")?,
        finished_at: row.try_get("finished_at")?,
        total_rows: row
            .try_get::<Option<i64>, _>("total_rows")?
            .map(|n| n as u64),
    })
}

/// A stored word (a batch state, a row outcome) as its enum; text that names none is corrupt.
fn decoded<T: std::str::FromStr<Err = UnknownWord>>(text: String) -> Result<T> {
    text.parse()
        .map_err(|e: UnknownWord| StoreError::Corrupt(e.to_string()))
}
