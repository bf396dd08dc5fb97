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

pub mod job;
pub mod lease;
pub mod limits;
pub mod manifest;
pub mod report;
pub mod sample;
mod scans;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::app::{permissions, Action, Actor, App, AppError, Result};
use crate::audit::Entry;
use crate::blobs::Blobs;
use crate::identifiers::{LicenceKey, TypeCode};
use crate::licence::{Door, HolderInput, LicenceVersion, Record, RecordInput};
pub(crate) use crate::panics::failing_on_panic;
use crate::store::{BatchRow, BatchRowOutcome, NewBatch, NewLicence, RowResult};
use crate::time_util;
use lease::Lease;
use manifest::{Manifest, ManifestRow, STANDARD_COLUMNS};

/// Rows checked, signed, rendered and committed together.
pub const CHUNK_ROWS: usize = 256;

/// How a run is going, for a progress bar or progress lines.
pub trait Progress: Send + Sync {
    fn started(&self, _batch_id: &str, _rows: u64, _encoding: &str) {}
    fn advanced(&self, _counts: &Counts) {}
}

/// A run with nobody watching (HTTP jobs are polled instead).
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Rows with an outcome so far, including those of an earlier interrupted run of this batch.
    pub done: u64,
    pub issued: u64,
    pub skipped: u64,
    pub rejected: u64,
}

impl Counts {
    /// The outcomes a batch has committed, by any run of it.
    fn of(batch: &crate::store::BatchRecord) -> Counts {
        Counts {
            done: batch.issued + batch.skipped + batch.rejected,
            issued: batch.issued,
            skipped: batch.skipped,
            rejected: batch.rejected,
        }
    }
}

/// Where a run's time went, in milliseconds summed over rows: the parallel stages (scans, sign,
/// render) add up the time of every core, so they can exceed the wall-clock time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stages {
    pub check_ms: f64,
    pub scans_ms: f64,
    pub reserve_ms: f64,
    pub sign_ms: f64,
    pub render_ms: f64,
    pub archive_ms: f64,
    pub commit_ms: f64,
}

#[derive(Clone, Copy)]
enum Stage {
    Check,
    Scans,
    Reserve,
    Sign,
    Render,
    Archive,
    Commit,
}

/// Accumulates [`Stages`] from every thread of a run.
#[derive(Default)]
struct Clock([std::sync::atomic::AtomicU64; 7]);

impl Clock {
    fn add(&self, stage: Stage, since: Instant) {
        let nanos = since.elapsed().as_nanos() as u64;
        self.0[stage as usize].fetch_add(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    fn stages(&self) -> Stages {
        let ms = |stage: Stage| {
            self.0[stage as usize].load(std::sync::atomic::Ordering::Relaxed) as f64 / 1e6
        };
        Stages {
            check_ms: ms(Stage::Check),
            scans_ms: ms(Stage::Scans),
            reserve_ms: ms(Stage::Reserve),
            sign_ms: ms(Stage::Sign),
            render_ms: ms(Stage::Render),
            archive_ms: ms(Stage::Archive),
            commit_ms: ms(Stage::Commit),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub batch_id: String,
    /// `done`, or `failed` (with `error`): with `--all-or-nothing` any rejected row fails the run.
    pub state: String,
    pub encoding: String,
    pub rows: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub seconds: f64,
    pub stages: Stages,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

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
            state: if queued { "queued" } else { "running" },
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
        Ok(end) if end.refusal.is_none() => ("done", None),
        Ok(end) => ("failed", end.refusal.clone()),
        Err(e) => ("failed", Some(e.to_string())),
    };
    if let Err(e) = app
        .store
        .finish_batch(batch_id, lease.holder(), state, error.as_deref())
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
        outcome: if state == "done" { "ok" } else { "failed" }.into(),
        detail: format!(
            "issued {}, skipped {}, rejected {}{}",
            counts.issued,
            counts.skipped,
            counts.rejected,
            error
                .as_deref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        ),
        ..entry
    };
    app.append_audit_or_hold(audit).await;
    let end = result?;
    Ok(Summary {
        batch_id: batch_id.to_string(),
        state: state.into(),
        encoding: end.encoding,
        rows: end.rows,
        counts,
        seconds: started.elapsed().as_secs_f64(),
        stages: clock.stages(),
        error,
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
    refusal: Option<String>,
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
    )
    .map_err(|e| AppError::BadInput(e.to_string()))?;
    // Later passes read the file again with the encoding detected once.
    let again = || {
        manifest
            .reopen(&app.directory)
            .map_err(|e| AppError::BadInput(e.to_string()))
    };
    let row_count = again()?.count() as u64;
    if row_count > app.settings.max_manifest_rows {
        return Err(AppError::BadInput(format!(
            "{}: {row_count} rows, over the limit of {}",
            manifest_path.display(),
            app.settings.max_manifest_rows
        )));
    }
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
                refusal: Some(format!(
                    "{rejected} of {row_count} rows rejected, so nothing was issued (--all-or-nothing)"
                )),
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
                Err(e) => return Some(Err(AppError::BadInput(e.to_string()))),
            }
        }
        Some(Ok(chunk))
    })
}

/// A row that passed every check, waiting to be issued.
struct Pending {
    /// Its index in the chunk's rows.
    row: usize,
    type_code: TypeCode,
    record: Record,
    scan: scans::Scan,
}

/// Checks rows: fields, department, duplicates within the manifest, numbers converted before,
/// scans. Remembers the numbers it has seen across chunks.
struct Checker<'a> {
    app: &'a Arc<App>,
    actor: &'a Actor,
    root: &'a Path,
    /// (type, number) → the first line with it.
    seen: HashMap<(String, String), u64>,
    /// Types this actor was refused, audited once each.
    refused: HashSet<String>,
    clock: &'a Arc<Clock>,
}

type RowError = (String, String);

impl<'a> Checker<'a> {
    fn new(
        app: &'a Arc<App>,
        actor: &'a Actor,
        root: &'a Path,
        clock: &'a Arc<Clock>,
    ) -> Checker<'a> {
        Checker {
            app,
            actor,
            root,
            seen: HashMap::new(),
            refused: HashSet::new(),
            clock,
        }
    }

    async fn check(&mut self, chunk: &[ManifestRow]) -> Result<(Vec<BatchRow>, Vec<Pending>)> {
        let checking = Instant::now();
        let mut rows = Vec::with_capacity(chunk.len());
        let mut good = Vec::new();
        for row in chunk {
            let outcome = match self.check_fields(row).await {
                Ok((type_code, record)) => {
                    good.push((rows.len(), type_code, record, row.get("scan").to_string()));
                    BatchRowOutcome::Issue(0)
                }
                Err((column, reason)) => BatchRowOutcome::Rejected { column, reason },
            };
            rows.push(BatchRow {
                line: row.line,
                type_code: row.get("type_code").to_string(),
                number: row.get("number").to_string(),
                outcome,
            });
        }
        self.skip_converted(&mut rows, &mut good).await?;
        self.clock.add(Stage::Check, checking);
        let pending = self.read_scans(&mut rows, good).await?;
        Ok((rows, pending))
    }

    async fn check_fields(
        &mut self,
        row: &ManifestRow,
    ) -> std::result::Result<(TypeCode, Record), RowError> {
        let err = |column: &str, reason: String| (column.to_string(), reason);
        if let Some(reason) = &row.cell_count_error {
            return Err(err("*", reason.clone()));
        }
        let type_code =
            TypeCode::parse(row.get("type_code")).map_err(|e| err("type_code", e.to_string()))?;
        let licence_type = self
            .app
            .licence_type(&type_code)
            .map_err(|e| err("type_code", e.to_string()))?;
        if let Err(refusal) = permissions::check(
            self.actor,
            Action::ConvertBatch,
            Some(&licence_type.issuer.uscc),
        ) {
            let reason = refusal.to_string();
            if self.refused.insert(type_code.to_string()) {
                let entry = self.actor.entry("batch.convert", type_code.as_str());
                self.app.audit_failure(entry, &Err::<(), _>(refusal)).await;
            }
            return Err(err("type_code", reason));
        }
        let number = row.get("number");
        let mut fields = BTreeMap::new();
        for (column, value) in &row.cells {
            if STANDARD_COLUMNS.contains(&column.as_str()) || value.is_empty() {
                continue;
            }
            if licence_type.field(column).is_none() {
                return Err(err(
                    column,
                    format!("is not a field of {}; leave it empty", licence_type.name),
                ));
            }
            fields.insert(column.clone(), serde_json::Value::String(value.clone()));
        }
        let optional = |column: &str| Some(row.get(column).to_string()).filter(|s| !s.is_empty());
        let input = RecordInput {
            number: Some(number.to_string()),
            holder: HolderInput {
                name: row.get("holder_name").to_string(),
                id: row.get("holder_id").to_string(),
            },
            valid_from: optional("valid_from"),
            valid_until: optional("valid_until"),
            fields,
        };
        let today = time_util::today_cst();
        let record = self
            .app
            .check_record(licence_type, &input, Door::Conversion, today, || {
                number.to_string()
            })
            .map_err(|errors| invalid_row(&errors))?;
        let key = (type_code.to_string(), record.number.clone());
        if let Some(first) = self.seen.get(&key) {
            return Err(err(
                "number",
                format!("{} appears at line {first} already", record.number),
            ));
        }
        self.seen.insert(key, row.line);
        Ok((type_code, record))
    }

    /// Marks rows whose type and number exist already as skipped (a rerun issues nothing twice).
    async fn skip_converted(
        &self,
        rows: &mut [BatchRow],
        good: &mut Vec<(usize, TypeCode, Record, String)>,
    ) -> Result<()> {
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, type_code, record, _) in good.iter() {
            by_type
                .entry(type_code.as_str())
                .or_default()
                .push(&record.number);
        }
        let mut existing = HashMap::new();
        for (type_code, numbers) in by_type {
            for (number, id) in self.app.store.existing_numbers(type_code, &numbers).await? {
                existing.insert((type_code.to_string(), number), id);
            }
        }
        good.retain(|(i, type_code, record, _)| {
            match existing.get(&(type_code.to_string(), record.number.clone())) {
                Some(id) => {
                    rows[*i].outcome = BatchRowOutcome::Skipped {
                        licence_id: id.clone(),
                    };
                    false
                }
                None => true,
            }
        });
        Ok(())
    }

    /// Reads and checks the good rows' scans on every core.
    async fn read_scans(
        &self,
        rows: &mut [BatchRow],
        good: Vec<(usize, TypeCode, Record, String)>,
    ) -> Result<Vec<Pending>> {
        let root = self.root.to_path_buf();
        let max = self.app.settings.max_scan_bytes;
        let clock = self.clock.clone();
        let read = blocking(move || {
            good.into_par_iter()
                .map(|(row, type_code, record, scan)| {
                    let reading = Instant::now();
                    let read = scans::read_scan(&root, &scan, max);
                    clock.add(Stage::Scans, reading);
                    match read {
                        Ok(scan) => Ok(Pending {
                            row,
                            type_code,
                            record,
                            scan,
                        }),
                        Err(reason) => Err((row, reason)),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut pending = Vec::with_capacity(read.len());
        for r in read {
            match r {
                Ok(p) => pending.push(p),
                Err((row, reason)) => {
                    rows[row].outcome = BatchRowOutcome::Rejected {
                        column: "scan".into(),
                        reason,
                    }
                }
            }
        }
        Ok(pending)
    }
}

/// Validation errors as a rejected row gives them: the columns, and each column's reason.
fn invalid_row(errors: &crate::licence::ValidationErrors) -> RowError {
    let column = |field: &str| match field {
        "holder.name" => "holder_name".to_string(),
        "holder.id" => "holder_id".to_string(),
        other => other.strip_prefix("fields.").unwrap_or(other).to_string(),
    };
    if let [only] = errors.0.as_slice() {
        return (column(&only.field), only.reason.clone());
    }
    let columns: Vec<String> = errors.0.iter().map(|e| column(&e.field)).collect();
    let reasons: Vec<String> = errors
        .0
        .iter()
        .map(|e| format!("{}: {}", column(&e.field), e.reason))
        .collect();
    (columns.join(","), reasons.join("; "))
}

/// A licence signed, rendered and archived, with the audit record of its issue.
struct Signed {
    version: LicenceVersion,
    audit: Entry,
}

/// Issues the checked rows of a chunk: reserves serials and status indexes, signs and renders on
/// every core, and starts archiving scans and PDFs. Rows get `Issue(i)` pointing at their licence.
async fn issue(
    app: &Arc<App>,
    actor: &Actor,
    batch_id: &str,
    rows: &mut [BatchRow],
    pending: Vec<Pending>,
    clock: &Arc<Clock>,
) -> Result<IssuedChunk> {
    // Once a chunk: a rotation made meanwhile by any process signs the rest with the new key.
    app.sync_keys().await?;
    let reserving = Instant::now();
    // Read once a chunk: a change of the register reaches a running job at its next chunk.
    let verify_base = app.verify_base().await?;
    // Reservations: a serial range per type, status indexes per issuer.
    let mut serials: HashMap<TypeCode, u64> = HashMap::new();
    let mut indexes: HashMap<String, Vec<u64>> = HashMap::new();
    let mut per_type: BTreeMap<&TypeCode, u64> = BTreeMap::new();
    for p in &pending {
        *per_type.entry(&p.type_code).or_default() += 1;
    }
    for (type_code, count) in per_type {
        let t = app.licence_type(type_code)?;
        let first = app
            .store
            .reserve_serials(&t.code, &t.issuer.uscc, count)
            .await?;
        serials.insert(type_code.clone(), first);
        indexes
            .entry(t.issuer.uscc.to_string())
            .or_default()
            .extend(
                app.store
                    .reserve_status_indexes(&t.issuer.uscc, count as usize)
                    .await?,
            );
    }
    let mut jobs = Vec::with_capacity(pending.len());
    for p in pending {
        let t = app.licence_type(&p.type_code)?;
        let serial = serials.get_mut(&p.type_code).expect("reserved above");
        let key = LicenceKey {
            type_code: t.code.clone(),
            issuer: t.issuer.uscc.clone(),
            serial: *serial,
        };
        *serial += 1;
        let index = indexes
            .get_mut(t.issuer.uscc.as_str())
            .and_then(Vec::pop)
            .expect("reserved above");
        jobs.push((p, key, index));
    }
    clock.add(Stage::Reserve, reserving);

    let (worker, clock_in) = (app.clone(), clock.clone());
    let made = blocking(move || {
        jobs.into_par_iter()
            .map(|(mut p, key, index)| {
                let t = worker.licence_type(&p.type_code)?;
                p.record.scan = Some(p.scan.sha256.clone());
                let signing = Instant::now();
                let version = worker.sign_reserved(
                    t,
                    key.version(1),
                    p.record,
                    None,
                    index,
                    verify_base.clone(),
                )?;
                clock_in.add(Stage::Sign, signing);
                let rendering = Instant::now();
                let pdf = worker.render_new(t, &version)?;
                clock_in.add(Stage::Render, rendering);
                Ok((p.row, version, pdf, p.scan))
            })
            .collect::<Vec<Result<_>>>()
    })
    .await?;

    let mut archive = tokio::task::JoinSet::new();
    let mut signed = Vec::with_capacity(made.len());
    for m in made {
        let (row, version, pdf, scan) = m?;
        let blobs: Blobs = app.blobs.clone();
        let pdf_key = Blobs::pdf_key(&version.id.to_string());
        archive.spawn(async move {
            blobs
                .put(&Blobs::scan_key(&scan.sha256), &scan.bytes)
                .await?;
            blobs.put(&pdf_key, &pdf).await
        });
        rows[row].outcome = BatchRowOutcome::Issue(signed.len());
        let audit = Entry {
            target: version.id.to_string(),
            detail: format!(
                "batch {batch_id} line {}: number {}, scan {}",
                rows[row].line,
                version.record.number,
                version.record.scan.as_deref().unwrap_or("")
            ),
            ..actor.entry("licence.issue", version.id.key.type_code.as_str())
        };
        signed.push(Signed { version, audit });
    }
    Ok(IssuedChunk { signed, archive })
}

/// A chunk's licences, signed and rendered, with their scans and PDFs being archived.
struct IssuedChunk {
    signed: Vec<Signed>,
    archive: tokio::task::JoinSet<std::result::Result<(), crate::blobs::BlobError>>,
}

/// Finishes a chunk: waits for its archive — a committed licence always has its scan and PDF —
/// then commits its licences and row outcomes in one transaction.
async fn commit(
    app: Arc<App>,
    (batch_id, holder): (String, String),
    rows: Vec<BatchRow>,
    mut chunk: IssuedChunk,
    last_line: u64,
    clock: Arc<Clock>,
) -> Result<Vec<RowResult>> {
    let archiving = Instant::now();
    while let Some(done) = chunk.archive.join_next().await {
        done.map_err(|e| AppError::Internal(format!("archiving: {e}")))??;
    }
    clock.add(Stage::Archive, archiving);
    let new: Vec<NewLicence<'_>> = chunk
        .signed
        .iter()
        .map(|i| NewLicence {
            number: &i.version.record.number,
            holder_id: i.version.record.holder.id.as_str(),
            version: &i.version,
            audit: &i.audit,
        })
        .collect();
    let committing = Instant::now();
    let results = app
        .store
        .commit_batch_chunk(&batch_id, &holder, &new, &rows, last_line)
        .await?;
    clock.add(Stage::Commit, committing);
    Ok(results)
}

async fn joined(handle: tokio::task::JoinHandle<Result<Vec<RowResult>>>) -> Result<Vec<RowResult>> {
    handle
        .await
        .map_err(|e| AppError::Internal(format!("committing a chunk: {e}")))?
}

fn tally(counts: &mut Counts, results: &[RowResult]) {
    for r in results {
        counts.done += 1;
        match r.outcome.as_str() {
            "issued" => counts.issued += 1,
            "skipped" => counts.skipped += 1,
            _ => counts.rejected += 1,
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
