//! Batch conversion of stock paper licences (SPEC §9): a folder with `manifest.csv` and the scans
//! it names becomes signed licences, one row at a time, each row ending `issued`, `skipped` or
//! `rejected` with its line, column and reason.
//!
//! The manifest streams through in chunks of [`CHUNK_ROWS`]. For each chunk: rows are checked
//! (fields, duplicates, department, then scans on every core), numbers already converted are
//! skipped, serials and status indexes are reserved in a few statements, every good row is signed
//! and rendered on every core, scans and PDFs are archived, and the chunk's licences and row
//! outcomes commit in one transaction (while the next chunk renders; commits stay in line order).
//! A run killed at any moment therefore leaves each row converted once or not at all, and a rerun
//! skips what is done and carries on.
//!
//! This file holds the run: creating it and driving its chunks. The rooms around it: `check`
//! (a chunk's rows checked), `issue` (signed, rendered, archived, committed), `progress` (counts,
//! stage times, the summary), `manifest`,
//! `scans` and `limits` (reading the folder), `lease` (one process per run), `job` (runs posted
//! over HTTP) with `upload` and `zip_directory` (the uploaded zip), and `report`. The words a run
//! and a row are stored in (`BatchState`, `RowOutcome`) belong to the store.

mod check;
pub mod draft_manifest;
mod issue;
pub mod job;
pub mod lease;
pub mod limits;
pub mod manifest;
mod progress;
pub mod report;
pub mod sample;
mod upload;
mod zip_directory;

pub use crate::store::{BatchState, RowOutcome, UnknownWord};
pub use progress::{Counts, Progress, Quiet, Stages, Summary};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::app::{Actor, App, AppError, Result};
use crate::audit::Entry;
use crate::blobs::Blobs;
use crate::messages::{Reason, Said};
pub(crate) use crate::panics::failing_on_panic;
use crate::store::{BatchRow, BatchRowOutcome, NewBatch, RowResult};
use crate::time_util;
use check::Checker;
use issue::{commit, issue, joined};
use lease::Lease;
use manifest::{Manifest, ManifestError, ManifestRow};
use progress::Clock;

/// Rows checked, signed, rendered and committed together.
pub const CHUNK_ROWS: usize = 256;

/// Records a new conversion run of `actor` on a folder (the command line's); it starts running,
/// leased by this process until the returned lease is dropped.
pub async fn create(app: &Arc<App>, actor: &Actor, all_or_nothing: bool) -> Result<Lease> {
    let holder = Lease::new_holder();
    let id = record_run(app, actor, all_or_nothing, None, Some(&holder)).await?;
    Ok(Lease::keep(app, &id, holder))
}

/// Records a new HTTP conversion job and returns its id. The zip comes in a temporary file, kept
/// in the blob store first so that a job that exists can always be run again; it starts queued.
pub async fn create_with_upload(
    app: &App,
    actor: &Actor,
    all_or_nothing: bool,
    upload: tempfile::NamedTempFile,
) -> Result<String> {
    record_run(app, actor, all_or_nothing, Some(upload), None).await
}

/// Records a run: queued with its upload, or running under `holder`'s lease.
async fn record_run(
    app: &App,
    actor: &Actor,
    all_or_nothing: bool,
    upload: Option<tempfile::NamedTempFile>,
    holder: Option<&str>,
) -> Result<String> {
    let id = new_batch_id();
    let queued = upload.is_some();
    let upload_key = match upload {
        Some(file) => {
            let key = Blobs::upload_key(&id);
            app.blobs.put_file(&key, file).await?;
            Some(key)
        }
        None => None,
    };
    let roles: Vec<&str> = actor.roles.iter().map(|r| r.as_str()).collect();
    let department = actor.department.as_ref().map(|d| d.to_string());
    let recorded = app
        .store
        .create_batch(&NewBatch {
            id: &id,
            actor: &actor.name,
            source: &actor.source,
            department: department.as_deref(),
            roles: &roles.join(","),
            upload: upload_key.as_deref(),
            all_or_nothing,
            state: if queued {
                BatchState::Queued
            } else {
                BatchState::Running
            },
            lease: holder.map(|h| (h, lease::LEASE_SECONDS)),
        })
        .await;
    if let (Err(_), Some(key)) = (&recorded, &upload_key) {
        // No job refers to the upload: it would never be deleted.
        if let Err(e) = app.blobs.delete(key).await {
            tracing::error!(batch = %id, error = %e, "cannot delete the upload of an unrecorded job");
        }
    }
    recorded?;
    Ok(id)
}

/// A batch id: when it started (UTC), and random hex so two at the same second differ.
fn new_batch_id() -> String {
    let now = time_util::now();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{:08x}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        rand::random::<u32>()
    )
}

/// Converts the batch folder `dir` as run `batch_id` (made by [`create`]), resuming after the
/// last line it committed. Rows end in the store (`batch_rows`); the summary counts them.
pub async fn convert(
    app: &Arc<App>,
    actor: &Actor,
    lease: &Lease,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Summary> {
    let batch_id = lease.batch_id();
    let started = Instant::now();
    let entry = actor.entry("batch.convert", batch_id);
    let clock = Arc::new(Clock::default());
    let result = failing_on_panic(
        "the conversion",
        run(app, actor, lease, dir, progress, &clock),
    )
    .await;
    let (state, error) = match &result {
        Ok(end) if end.refusal.is_none() => (BatchState::Done, None),
        Ok(end) => (BatchState::Failed, end.refusal.clone()),
        Err(e) => (BatchState::Failed, Some(e.said())),
    };
    if let Err(e) = app
        .store
        .finish_batch(batch_id, lease.holder(), state, error.as_ref())
        .await
    {
        // The run cannot be marked ended (a full disk, or another process took it up): its
        // record says why, and is kept until writes work.
        let e = AppError::from(e);
        let failed = Entry {
            outcome: format!("failed: {}", e.code()),
            detail: format!("the run could not be marked {state}: {e}"),
            ..entry
        };
        app.append_audit_or_hold(failed).await;
        return Err(e);
    }
    let counts = Counts::of(&stored_batch(app, batch_id).await?);
    let audit = Entry {
        outcome: if state == BatchState::Done {
            "ok"
        } else {
            "failed"
        }
        .into(),
        detail: format!(
            "issued {}, skipped {}, rejected {}{}",
            counts.issued,
            counts.skipped,
            counts.rejected,
            error
                .as_ref()
                .map(|e| format!("; {}", e.en))
                .unwrap_or_default()
        ),
        ..entry
    };
    app.append_audit_or_hold(audit).await;
    let end = result?;
    Ok(Summary {
        batch_id: batch_id.to_string(),
        state,
        encoding: end.encoding,
        rows: end.rows,
        counts,
        seconds: started.elapsed().as_secs_f64(),
        stages: clock.stages(),
        error: error.map(|e| e.en),
    })
}

/// How run `batch_id` stands in the store, for the report of a run that stopped on an error
/// (its encoding and row count are the run's to learn: empty, and the rows with an outcome).
pub async fn stored_summary(app: &App, batch_id: &str) -> Result<Summary> {
    let batch = stored_batch(app, batch_id).await?;
    let counts = Counts::of(&batch);
    Ok(Summary {
        batch_id: batch.id,
        state: batch.state,
        encoding: String::new(),
        rows: counts.done,
        counts,
        seconds: 0.0,
        stages: Stages::default(),
        error: batch.error,
    })
}

async fn stored_batch(app: &App, batch_id: &str) -> Result<crate::store::BatchRecord> {
    app.store
        .batch(batch_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("batch {batch_id}")))
}

/// How a run ended without an error.
struct RunEnd {
    encoding: String,
    /// Data rows in the manifest.
    rows: u64,
    /// Why `--all-or-nothing` refused the batch.
    refusal: Option<Said>,
}

/// The run itself, until every row has its outcome or `--all-or-nothing` refuses the batch.
async fn run(
    app: &Arc<App>,
    actor: &Actor,
    lease: &Lease,
    dir: &Path,
    progress: &dyn Progress,
    clock: &Arc<Clock>,
) -> Result<RunEnd> {
    let batch_id = lease.batch_id();
    let root = dir
        .canonicalize()
        .map_err(|e| AppError::BadInput(format!("batch {}: {e}", dir.display())))?;
    let manifest_path = root.join("manifest.csv");
    let manifest = Manifest::open(
        &manifest_path,
        &app.directory,
        app.settings.max_manifest_line_bytes,
    )?;
    // Later passes read the file again with the encoding detected once.
    let again = || manifest.reopen(&app.directory).map_err(AppError::from);
    let row_count = again()?.count() as u64;
    if row_count > app.settings.max_manifest_rows {
        return Err(ManifestError {
            file: manifest_path.display().to_string(),
            line: 0,
            reason: Reason::TooManyRows {
                rows: row_count,
                limit: app.settings.max_manifest_rows,
            },
        }
        .into());
    }
    app.store
        .record_batch_rows(batch_id, lease.holder(), row_count)
        .await?;
    let batch = stored_batch(app, batch_id).await?;
    let encoding = manifest.encoding().to_string();
    progress.started(batch_id, row_count, &encoding);
    let mut counts = Counts::of(&batch);
    progress.advanced(&counts);

    if batch.all_or_nothing && batch.done_line <= 1 {
        let rejected = reject_bad_rows(app, actor, lease, &root, again()?, clock).await?;
        if rejected > 0 {
            return Ok(RunEnd {
                encoding,
                rows: row_count,
                refusal: Some(Said::from(Reason::NothingIssued {
                    rejected: rejected as u64,
                    rows: row_count,
                })),
            });
        }
    }

    // Chunk k commits (archive, then transaction) while chunk k + 1 is checked and rendered;
    // commits still happen one at a time, in line order.
    let mut checker = Checker::new(app, actor, &root, clock);
    let mut committing: Option<tokio::task::JoinHandle<Result<Vec<RowResult>>>> = None;
    let mut outcome = Ok(());
    for chunk in chunks(manifest) {
        // A panic checking or issuing this chunk still lets the chunk before finish committing,
        // so the batch fails with every row before the chunk committed.
        let step = failing_on_panic("the conversion", async {
            let chunk: Vec<ManifestRow> = chunk?
                .into_iter()
                .filter(|row| row.line > batch.done_line)
                .collect();
            let Some(last_line) = chunk.last().map(|r| r.line) else {
                return Ok(None);
            };
            let (mut rows, pending) = checker.check(&chunk).await?;
            let issued = issue(app, actor, batch_id, &mut rows, pending, clock).await?;
            Ok(Some((rows, issued, last_line)))
        })
        .await;
        let previous = committing.take();
        let committed = match previous {
            Some(handle) => joined(handle).await,
            None => Ok(Vec::new()),
        };
        match (step, committed) {
            (Ok(next), Ok(results)) => {
                tally(&mut counts, &results);
                progress.advanced(&counts);
                if let Some((rows, issued, last_line)) = next {
                    committing = Some(tokio::spawn(commit(
                        app.clone(),
                        (batch_id.to_string(), lease.holder().to_string()),
                        rows,
                        issued,
                        last_line,
                        clock.clone(),
                    )));
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                outcome = Err(e);
                break;
            }
        }
    }
    if let Some(handle) = committing {
        let results = joined(handle).await?;
        tally(&mut counts, &results);
        progress.advanced(&counts);
    }
    outcome?;
    Ok(RunEnd {
        encoding,
        rows: row_count,
        refusal: None,
    })
}

/// `--all-or-nothing`'s first pass: checks every row without issuing any, records the rejected
/// ones, and returns how many there were.
async fn reject_bad_rows(
    app: &Arc<App>,
    actor: &Actor,
    lease: &Lease,
    root: &Path,
    manifest: Manifest,
    clock: &Arc<Clock>,
) -> Result<usize> {
    let mut checker = Checker::new(app, actor, root, clock);
    let mut rejected = 0;
    for chunk in chunks(manifest) {
        let (rows, _) = checker.check(&chunk?).await?;
        let bad: Vec<BatchRow> = rows
            .into_iter()
            .filter(|r| matches!(r.outcome, BatchRowOutcome::Rejected { .. }))
            .collect();
        rejected += bad.len();
        app.store
            .commit_batch_chunk(lease.batch_id(), lease.holder(), &[], &bad, 1)
            .await?;
    }
    Ok(rejected)
}

/// The manifest's rows in chunks; a row the CSV reader cannot read ends the run.
fn chunks(
    manifest: Manifest,
) -> impl Iterator<Item = std::result::Result<Vec<ManifestRow>, AppError>> {
    let mut rows = manifest.peekable();
    std::iter::from_fn(move || {
        rows.peek()?;
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        for row in rows.by_ref().take(CHUNK_ROWS) {
            match row {
                Ok(row) => chunk.push(row),
                Err(e) => return Some(Err(e.into())),
            }
        }
        Some(Ok(chunk))
    })
}

fn tally(counts: &mut Counts, results: &[RowResult]) {
    for r in results {
        counts.done += 1;
        match r.outcome {
            RowOutcome::Issued => counts.issued += 1,
            RowOutcome::Skipped => counts.skipped += 1,
            RowOutcome::Rejected => counts.rejected += 1,
        }
    }
}

/// Runs CPU-bound work (rayon, every core) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    crate::panics::joined(tokio::task::spawn_blocking(work)).await
}

/// Where the command line writes a run's report unless told: `data/reports/{batch id}`.
pub fn default_report_base(app: &App, batch_id: &str) -> PathBuf {
    app.settings.data_dir.join("reports").join(batch_id)
}
