//! Conversion jobs posted over HTTP (`POST /api/v1/batches`, a zip): the upload streams to a
//! temporary file (never whole in memory; refused once over the size limit, or at once when its
//! declared length is), is checked completely — names, sizes, what it expands to, CRCs, manifest
//! line lengths — so that a bad upload is a 400 that keeps nothing, then kept in the blob store
//! and converted in the background by the same code as the command line, at most
//! `max_concurrent_jobs` at a time. A job whose process died is taken up again when its lease
//! runs out — at the next start, or by another instance — and carries on after the last line it
//! committed. An upload is deleted once its job has ended (and the retention time has passed).

use std::collections::HashSet;
use std::fmt::Display;
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use zip::ZipArchive;

use super::lease::{Lease, LEASE_SECONDS};
use super::limits::ManifestRows;
use super::manifest::Manifest;
use super::{convert, create_with_upload, failing_on_panic, Quiet};
use crate::app::{permissions, Action, Actor, App, AppError, Result, Role};
use crate::directory::Directory;
use crate::identifiers::Uscc;
use crate::panics::joined;
use crate::store::{BatchRecord, RowResult};
use crate::time_util;

/// Receives an uploaded zip (`body`, in pieces; `declared_length` is what the client said it
/// would send), checks it, records the job and starts it. Returns the job as queued.
pub async fn submit<B, E>(
    app: &Arc<App>,
    actor: &Actor,
    declared_length: Option<u64>,
    body: impl Stream<Item = std::result::Result<B, E>> + Unpin,
    all_or_nothing: bool,
) -> Result<BatchRecord>
where
    B: AsRef<[u8]>,
    E: Display,
{
    let job = app
        .audited(actor.entry("batch.submit", "upload"), async |entry| {
            permissions::scope(actor, Action::ConvertBatch)?;
            let limit = app.settings.max_upload_bytes;
            if let Some(length) = declared_length.filter(|&n| n > limit) {
                return Err(too_large(length, limit));
            }
            let upload = receive(app, body).await?;
            let size = upload.as_file().metadata().map_err(io_error)?.len();
            let limits = UploadLimits::of(app);
            let upload = {
                let _unpacking = app.jobs.unpacking.acquire().await;
                joined(tokio::task::spawn_blocking(move || {
                    check_zip(upload.as_file(), &limits).map(|_| upload)
                }))
                .await??
            };
            let id = create_with_upload(app, actor, all_or_nothing, upload).await?;
            let audit = crate::audit::Entry {
                target: id.clone(),
                detail: format!("{size} bytes"),
                ..entry.clone()
            };
            app.store.append_audit(&audit).await?;
            app.store
                .batch(&id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("batch {id}")))
        })
        .await?;
    start(app, job.id.clone());
    Ok(job)
}

fn too_large(length: u64, limit: u64) -> AppError {
    AppError::TooLarge(format!(
        "the upload is {length} bytes or more, over the limit of {limit} bytes"
    ))
}

fn io_error(e: std::io::Error) -> AppError {
    AppError::Config(format!("keeping an upload: {e}"))
}

/// Where uploads are written while they arrive and are checked.
fn incoming_dir(app: &App) -> PathBuf {
    app.settings.data_dir.join("incoming")
}

/// Writes `body` to a temporary file (deleted when dropped) in pieces of a MiB, refusing it as
/// soon as it passes the upload limit.
async fn receive<B: AsRef<[u8]>, E: Display>(
    app: &App,
    mut body: impl Stream<Item = std::result::Result<B, E>> + Unpin,
) -> Result<tempfile::NamedTempFile> {
    const PIECE: usize = 1 << 20;
    let limit = app.settings.max_upload_bytes;
    let dir = incoming_dir(app);
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    let mut file = tempfile::NamedTempFile::new_in(&dir).map_err(io_error)?;
    let mut received: u64 = 0;
    let mut piece = Vec::with_capacity(PIECE);
    let mut end = false;
    while !end {
        match body.next().await {
            Some(Ok(bytes)) => {
                let bytes = bytes.as_ref();
                received += bytes.len() as u64;
                if received > limit {
                    return Err(too_large(received, limit));
                }
                piece.extend_from_slice(bytes);
            }
            Some(Err(e)) => {
                return Err(AppError::BadInput(format!("the upload broke off: {e}")));
            }
            None => end = true,
        }
        if piece.len() >= PIECE || (end && !piece.is_empty()) {
            (file, piece) = joined(tokio::task::spawn_blocking(move || {
                file.write_all(&piece)?;
                piece.clear();
                Ok::<_, std::io::Error>((file, piece))
            }))
            .await?
            .map_err(io_error)?;
        }
    }
    Ok(file)
}

/// A job and a page of its row outcomes after `after_line`, for its own department (or an admin).
pub async fn status(
    app: &App,
    actor: &Actor,
    id: &str,
    after_line: u64,
    limit: i64,
) -> Result<(BatchRecord, Vec<RowResult>)> {
    let scope = app
        .scope_audited(actor, Action::ReadBatch, "batch.read", id)
        .await?;
    let not_found = || AppError::NotFound(format!("batch {id}"));
    let job = app.store.batch(id).await?.ok_or_else(not_found)?;
    // Another department's job, or a department-less operator's, is answered as if it did not
    // exist; the attempt is recorded like every refusal.
    let department = job.department.as_deref().and_then(|d| Uscc::parse(d).ok());
    if !scope.covers(department.as_ref()) {
        let refused: Result<()> = Err(AppError::Forbidden(format!(
            "{} may not read another department's conversion job",
            actor.name
        )));
        app.audit_failure(actor.entry("batch.read", id), &refused)
            .await;
        return Err(not_found());
    }
    let rows = app
        .store
        .batch_rows(id, after_line, limit.clamp(1, 1000))
        .await?;
    Ok((job, rows))
}

/// The jobs this process has started: at most `max_concurrent_jobs` run at once, the others
/// wait (still `queued`); none is started twice.
pub struct JobSlots {
    running: tokio::sync::Semaphore,
    started: Mutex<HashSet<String>>,
    /// One zip is read at a time (checked on upload or extracted by a job): the zip reader holds
    /// all of a zip's entry metadata, tens of MB for a batch of 100,000 rows.
    unpacking: tokio::sync::Semaphore,
}

impl JobSlots {
    pub fn new(max_running: u64) -> JobSlots {
        JobSlots {
            running: tokio::sync::Semaphore::new(usize::try_from(max_running).unwrap_or(1).max(1)),
            started: Mutex::new(HashSet::new()),
            unpacking: tokio::sync::Semaphore::new(1),
        }
    }

    fn started(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs job `id` in the background once a slot is free (unless this process has it already),
/// then deletes the uploads whose time is up.
pub fn start(app: &Arc<App>, id: String) {
    if !app.jobs.started().insert(id.clone()) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        if let Ok(_slot) = app.jobs.running.acquire().await {
            run(app.clone(), id.clone()).await;
        }
        app.jobs.started().remove(&id);
        forget_finished_uploads(&app).await;
    });
}

/// Takes up, now and every [`LEASE_SECONDS`] / 3 until `stop`, the jobs left queued or running
/// by a process that is gone (this one before a restart, or another instance), and deletes the
/// uploads of jobs that ended longer ago than the retention time.
pub async fn supervise(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(LEASE_SECONDS as u64 / 3));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                interrupt_abandoned_runs(&app).await;
                resume_all(app.clone()).await;
                forget_finished_uploads(&app).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Marks `interrupted` the folder runs whose `convert` process died (SPEC §9).
pub async fn interrupt_abandoned_runs(app: &App) {
    match app
        .store
        .interrupt_abandoned_runs(super::lease::holder_is_gone)
        .await
    {
        Ok(runs) => {
            for run in runs {
                tracing::warn!(batch = %run.id, actor = run.actor, "a conversion run was interrupted: its process stopped");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot mark interrupted conversion runs"),
    }
}

/// Takes up every job left queued or running by a process that is gone.
pub async fn resume_all(app: Arc<App>) {
    match app.store.resumable_batches().await {
        Ok(ids) => {
            for id in ids {
                tracing::info!(batch = %id, "resuming a conversion job");
                start(&app, id);
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list conversion jobs to resume"),
    }
}

/// Deletes the upload of every job that ended at least `upload_retention_seconds` ago.
pub async fn forget_finished_uploads(app: &App) {
    let finished = match app.store.finished_uploads().await {
        Ok(finished) => finished,
        Err(e) => return tracing::error!(error = %e, "cannot list finished uploads"),
    };
    let keep = time::Duration::seconds(
        i64::try_from(app.settings.upload_retention_seconds).unwrap_or(i64::MAX),
    );
    let now = time_util::now();
    for (id, key, finished_at) in finished {
        let ended = time::OffsetDateTime::parse(
            &finished_at,
            &time::format_description::well_known::Rfc3339,
        );
        if ended.is_ok_and(|ended| ended.saturating_add(keep) > now) {
            continue;
        }
        let deleted = match app.blobs.delete(&key).await {
            Ok(()) => app.store.forget_upload(&id).await.map_err(AppError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = deleted {
            tracing::error!(batch = %id, error = %e, "cannot delete a finished job's upload");
        }
    }
}

/// Runs a job under a lease (so one process at a time runs it), then cleans up its work folder.
pub async fn run(app: Arc<App>, id: String) {
    let lease = match Lease::take(&app, &id).await {
        Ok(Some(lease)) => lease,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(batch = %id, error = %e, "cannot lease a conversion job");
            return;
        }
    };
    let work = app.settings.data_dir.join("work").join(&id);
    // A panic anywhere in the job (the conversion catches its own) must still end the lease
    // and fail the job, or it would stay `running`, its lease renewed for ever.
    let outcome = failing_on_panic("the conversion job", run_leased(&app, &lease, &work)).await;
    if let Err(e) = &outcome {
        tracing::error!(batch = %id, error = %e, "conversion job failed");
        let _ = app
            .store
            .finish_batch(&id, lease.holder(), "failed", Some(&e.to_string()))
            .await;
    }
    drop(lease);
    let _ = std::fs::remove_dir_all(&work);
}

async fn run_leased(app: &Arc<App>, lease: &Lease, work: &Path) -> Result<()> {
    let id = lease.batch_id();
    let job = app
        .store
        .batch(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("batch {id}")))?;
    let key = job
        .upload
        .clone()
        .ok_or_else(|| AppError::Internal(format!("batch {id} has no upload")))?;
    let scratch = app.settings.data_dir.join("work");
    let zip =
        app.blobs.open(&key, &scratch).await?.ok_or_else(|| {
            AppError::Internal(format!("batch {id}: the upload {key} is missing"))
        })?;
    let (dir, limits, extracting) = (work.to_path_buf(), UploadLimits::of(app), app.clone());
    {
        let _unpacking = app.jobs.unpacking.acquire().await;
        joined(tokio::task::spawn_blocking(move || {
            extract(&zip, &dir, &limits, &extracting.directory)
        }))
        .await??;
    }
    let actor = job_actor(&job)?;
    convert(app, &actor, lease, work, &Quiet).await?;
    Ok(())
}

/// The actor a job acts as: whoever posted it, with the roles and department they had then.
fn job_actor(job: &BatchRecord) -> Result<Actor> {
    Ok(Actor {
        name: job.actor.clone(),
        source: format!("job {}", job.id),
        department: job.department.as_deref().map(Uscc::parse).transpose()?,
        roles: job.roles.split(',').filter_map(Role::parse).collect(),
    })
}

/// The largest manifest a zip may carry.
const MAX_MANIFEST_BYTES: u64 = 512 << 20;

/// The folder entries a zip may have beside a file per manifest row.
const MAX_FOLDERS: u64 = 1000;

/// A central directory an end record declares, as the zip reader would take it: from the ZIP64
/// end record whenever the classic record has a field saturated (as zip's `may_be_zip64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeclaredDirectory {
    entries: u64,
    size: u64,
    start: u64,
}

/// The bytes of central directory an upload may have, whatever its entry count: the zip reader
/// holds all of it, several times over, while it reads the zip.
const MAX_DIRECTORY_BYTES: u64 = 32 << 20;

/// The central-directory bytes allowed per entry: 46 fixed bytes, a name of up to
/// [`MAX_NAME_BYTES`] and some extra fields (a typical entry takes about 120).
const DIRECTORY_BYTES_PER_ENTRY: u64 = 1536;

/// The longest entry name an upload may have (a scan's path in the manifest is far shorter).
const MAX_NAME_BYTES: u64 = 1024;

/// The most bytes of extra fields, or of comment, an entry may carry.
const MAX_EXTRA_BYTES: u64 = 4096;

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |n, &b| (n << 8) | u64::from(b))
}

/// Every central directory declared by an end-of-central-directory record the zip reader could
/// use (those in the last 64 KiB + 22 bytes, and the ZIP64 records they point at), read before
/// the reader takes in the central directory.
fn declared_directories(zip: &File) -> std::io::Result<Vec<DeclaredDirectory>> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut zip = BufReader::new(zip);
    let length = zip.seek(std::io::SeekFrom::End(0))?;
    let start = length.saturating_sub(22 + (1 << 16));
    zip.seek(std::io::SeekFrom::Start(start))?;
    let mut tail = Vec::new();
    zip.read_to_end(&mut tail)?;
    let mut declared = Vec::new();
    for at in (0..tail.len().saturating_sub(21)).filter(|&at| tail[at..].starts_with(b"PK\x05\x06"))
    {
        let end = &tail[at..at + 22];
        let classic = DeclaredDirectory {
            entries: le(&end[8..10]).max(le(&end[10..12])),
            size: le(&end[12..16]),
            start: le(&end[16..20]),
        };
        let zip64 = classic.entries >= 0xFFFF
            || classic.size == 0xFFFF_FFFF
            || classic.start == 0xFFFF_FFFF;
        if !zip64 {
            declared.push(classic);
            continue;
        }
        // ZIP64: the locator just before the record says where the ZIP64 record is.
        let locator = at
            .checked_sub(20)
            .map(|l| &tail[l..l + 20])
            .filter(|l| l.starts_with(b"PK\x06\x07"))
            .ok_or_else(|| invalid("a ZIP64 end record without its locator"))?;
        let mut record = [0u8; 56];
        zip.seek(std::io::SeekFrom::Start(le(&locator[8..16])))?;
        zip.read_exact(&mut record)?;
        if !record.starts_with(b"PK\x06\x06") {
            return Err(invalid("a ZIP64 locator pointing nowhere"));
        }
        declared.push(DeclaredDirectory {
            entries: le(&record[24..32]).max(le(&record[32..40])),
            size: le(&record[40..48]),
            start: le(&record[48..56]),
        });
    }
    Ok(declared)
}

/// Refuses a zip whose central directory would exhaust memory once the zip reader takes it in:
/// too many entries or bytes declared, or (walking the entries the reader would read, a header
/// at a time) a name, extra field or comment too long, or more bytes than allowed in all.
fn check_central_directory(zip: &File, most_entries: u64) -> Result<()> {
    let unreadable = |e: std::io::Error| bad(format!("not a readable zip: {e}"));
    let most_bytes = most_entries
        .saturating_mul(DIRECTORY_BYTES_PER_ENTRY)
        .min(MAX_DIRECTORY_BYTES);
    for directory in declared_directories(zip).map_err(unreadable)? {
        if directory.entries > most_entries {
            return Err(bad(format!(
                "{} entries is too many: at most {most_entries} (a scan per manifest row, and \
                 folders)",
                directory.entries
            )));
        }
        if directory.size > most_bytes {
            return Err(too_big_a_directory(directory.size, most_bytes));
        }
        walk_central_directory(zip, &directory, most_bytes)?;
    }
    Ok(())
}

fn too_big_a_directory(size: u64, most_bytes: u64) -> AppError {
    bad(format!(
        "its central directory is {size} bytes, over the limit of {most_bytes} \
         ({DIRECTORY_BYTES_PER_ENTRY} bytes per entry allowed, {MAX_DIRECTORY_BYTES} at most)"
    ))
}

/// Reads the central-directory headers `directory` declares, one at a time, refusing an entry
/// whose name, extra fields or comment is too long, or a directory over `most_bytes` in all.
/// Stops quietly where the headers stop: the zip reader refuses the zip there too.
fn walk_central_directory(
    zip: &File,
    directory: &DeclaredDirectory,
    most_bytes: u64,
) -> Result<()> {
    let mut reader = BufReader::new(zip);
    if reader
        .seek(std::io::SeekFrom::Start(directory.start))
        .is_err()
    {
        return Ok(());
    }
    let mut walked: u64 = 0;
    for index in 0..directory.entries {
        let mut header = [0u8; 46];
        if reader.read_exact(&mut header).is_err() || !header.starts_with(b"PK\x01\x02") {
            return Ok(());
        }
        let (name_bytes, extra_bytes, comment_bytes) = (
            le(&header[28..30]),
            le(&header[30..32]),
            le(&header[32..34]),
        );
        let mut name = vec![0; name_bytes.min(MAX_NAME_BYTES) as usize];
        if reader.read_exact(&mut name).is_err() {
            return Ok(());
        }
        let mut name = String::from_utf8_lossy(&name).into_owned();
        if name_bytes > MAX_NAME_BYTES {
            name = name.chars().take(40).chain("…".chars()).collect();
            return Err(bad(format!(
                "entry {index} ({name:?}) has a name of {name_bytes} bytes, over the limit of \
                 {MAX_NAME_BYTES}"
            )));
        }
        for (what, bytes) in [("extra fields", extra_bytes), ("comment", comment_bytes)] {
            if bytes > MAX_EXTRA_BYTES {
                return Err(bad(format!(
                    "entry {index} ({name:?}) carries {bytes} bytes of {what}, over the limit \
                     of {MAX_EXTRA_BYTES}"
                )));
            }
        }
        walked += 46 + name_bytes + extra_bytes + comment_bytes;
        if walked > most_bytes {
            return Err(bad(format!(
                "its central directory passes {most_bytes} bytes at entry {index} ({name:?}), \
                 over the limit ({DIRECTORY_BYTES_PER_ENTRY} bytes per entry allowed, \
                 {MAX_DIRECTORY_BYTES} at most)"
            )));
        }
        // At most 8 KiB: the buffered reader mostly skips within its buffer.
        if reader
            .seek_relative((extra_bytes + comment_bytes) as i64)
            .is_err()
        {
            return Ok(());
        }
    }
    Ok(())
}

/// What an uploaded zip may hold, from the settings.
#[derive(Debug, Clone, Copy)]
struct UploadLimits {
    scan: u64,
    rows: u64,
    expanded: u64,
    manifest_line: u64,
}

impl UploadLimits {
    fn of(app: &App) -> UploadLimits {
        let s = &app.settings;
        UploadLimits {
            scan: s.max_scan_bytes,
            rows: s.max_manifest_rows,
            expanded: s.max_expanded_bytes,
            manifest_line: s.max_manifest_line_bytes,
        }
    }
}

/// Opens a zip that starts at the start of the upload (no data before it, as a self-extracting
/// archive has), so that the zip reader reads the central directory exactly where the end
/// record says, where [`check_central_directory`] measured it.
fn open_zip<R: Read + Seek>(reader: R) -> Result<ZipArchive<R>> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    ZipArchive::with_config(config, reader).map_err(|e| bad(format!("not a readable zip: {e}")))
}

fn bad(reason: String) -> AppError {
    AppError::BadInput(format!("the uploaded batch: {reason}"))
}

/// Checks a zip completely, writing nothing: readable; `manifest.csv` at its root, within its
/// size limit (a scan's limit is its row's concern); every entry a plain file or folder named
/// inside the batch; no two entries sharing
/// bytes; all of them together expanding to no more than the limit; and every entry read to its
/// end, so that its size and CRC are proven and the manifest's lines measured.
fn check_zip(zip: &File, limits: &UploadLimits) -> Result<()> {
    // The zip reader holds every entry's metadata (~400 bytes each, and its name, extra fields
    // and comment): bound them first.
    let most = limits.rows + MAX_FOLDERS;
    check_central_directory(zip, most)?;
    let mut archive = open_zip(BufReader::new(zip))?;
    if archive.len() as u64 > most {
        return Err(bad(format!(
            "{} entries is too many: at most {most}",
            archive.len()
        )));
    }
    // Entries sharing their compressed bytes expand a small zip many times over.
    if archive
        .has_overlapping_entries()
        .map_err(|e| bad(format!("not a readable zip: {e}")))?
    {
        return Err(bad("two entries share the same bytes of the zip".into()));
    }
    let mut manifest = None;
    let mut paths = std::collections::HashMap::new();
    let mut expanded: u64 = 0;
    for i in 0..archive.len() {
        let file = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if file.is_symlink() {
            return Err(bad(format!("{name:?} is a link; a batch holds files only")));
        }
        // Judged on the raw name too: the zip reader would quietly drop a leading '/'.
        let path = file
            .enclosed_name()
            .and_then(|_| within_batch(Path::new(&name.replace('\\', "/"))))
            .ok_or_else(|| bad(format!("{name:?} would be written outside the batch")))?;
        // The extraction takes the last entry with a path: two would let one pass unchecked.
        if let Some(first) = paths.insert(path.clone(), name.clone()) {
            return Err(bad(format!(
                "{first:?} and {name:?} are the same path in the batch"
            )));
        }
        // A scan over its limit is its row's failure, as on a folder (the extraction leaves it
        // packed); what protects memory and disk is the bound on all entries together below.
        if path == Path::new("manifest.csv") {
            manifest = Some(i);
            if file.size() > MAX_MANIFEST_BYTES {
                return Err(bad(format!(
                    "{name:?} is {} bytes, over the limit of {MAX_MANIFEST_BYTES}",
                    file.size()
                )));
            }
        }
        expanded = expanded.saturating_add(file.size());
    }
    if manifest.is_none() {
        return Err(bad("it has no manifest.csv at its root".into()));
    }
    if expanded > limits.expanded {
        return Err(bad(format!(
            "its entries expand to {expanded} bytes, over the limit of {} bytes",
            limits.expanded
        )));
    }
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        if file.is_dir() {
            continue;
        }
        let mut lines = (manifest == Some(i)).then(|| ManifestRows::new(limits.manifest_line));
        copy_entry(&mut file, &mut std::io::sink(), lines.as_mut())?;
    }
    Ok(())
}

/// Copies an entry to `out`, reading no more than its header declares and to its end (where the
/// zip reader compares the CRC), measuring lines on the way when `lines` is given.
fn copy_entry<R: Read>(
    file: &mut zip::read::ZipFile<'_, R>,
    out: &mut impl Write,
    mut lines: Option<&mut ManifestRows>,
) -> Result<()> {
    let name = String::from_utf8_lossy(file.name_raw()).into_owned();
    let declared = file.size();
    let damaged = |e: &dyn Display| bad(format!("{name:?} is damaged: {e}"));
    let mut buffer = vec![0; 64 << 10];
    let mut copied: u64 = 0;
    let mut limited = file.take(declared + 1);
    loop {
        let n = limited.read(&mut buffer).map_err(|e| damaged(&e))?;
        if n == 0 {
            break;
        }
        copied += n as u64;
        if let Some(lines) = lines.as_deref_mut() {
            lines
                .measure(&buffer[..n])
                .map_err(|e| bad(e.to_string()))?;
        }
        out.write_all(&buffer[..n])
            .map_err(|e| AppError::Config(format!("extracting a batch: {e}")))?;
    }
    if copied != declared {
        return Err(bad(format!("{name:?} is not the size its header declares")));
    }
    Ok(())
}

/// Extracts a checked zip into `dir` (emptied first): the manifest, then only the entries its
/// rows name as scans (anything else in the zip is left packed).
fn extract(zip: &File, dir: &Path, limits: &UploadLimits, directory: &Directory) -> Result<()> {
    check_zip(zip, limits)?;
    let io = |e: std::io::Error| AppError::Config(format!("extracting a batch: {e}"));
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut reader = BufReader::new(zip);
    reader.rewind().map_err(io)?;
    let mut archive = open_zip(reader)?;
    // Each file entry by its path inside the batch.
    let mut files = std::collections::HashMap::new();
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i).map_err(|e| bad(e.to_string()))?;
        if let Some(path) = file.enclosed_name().and_then(|p| within_batch(&p)) {
            if !file.is_dir() {
                files.insert(path, i);
            }
        }
    }
    let manifest = PathBuf::from("manifest.csv");
    let wanted = files.get(&manifest).copied();
    extract_entry(
        &mut archive,
        wanted,
        &dir.join(&manifest),
        MAX_MANIFEST_BYTES,
    )?;
    for scan in scans_named(&dir.join(&manifest), directory, limits.manifest_line) {
        // A scan not in the zip is reported on its row by the conversion.
        if let Some(&index) = files.get(&scan) {
            extract_entry(&mut archive, Some(index), &dir.join(&scan), limits.scan)?;
        }
    }
    Ok(())
}

/// Writes entry `index` to `to`. An entry over `limit` bytes is not unpacked: a sparse file of
/// its size (checked against its CRC by [`check_zip`]) stands in for it, so the conversion
/// rejects its row by the same size check as on a folder, naming the size, at no cost in disk.
fn extract_entry<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: Option<usize>,
    to: &Path,
    limit: u64,
) -> Result<()> {
    let io = |e: std::io::Error| AppError::Config(format!("extracting a batch: {e}"));
    let index = index.ok_or_else(|| bad("it has no manifest.csv at its root".into()))?;
    let mut file = archive
        .by_index(index)
        .map_err(|e| bad(format!("entry {index}: {e}")))?;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let out = File::create(to).map_err(io)?;
    if file.size() > limit {
        return out.set_len(file.size()).map_err(io);
    }
    let mut out = std::io::BufWriter::new(out);
    copy_entry(&mut file, &mut out, None)?;
    out.flush().map_err(io)
}

/// The scans the manifest's rows name, as paths inside the batch (a name that would leave it is
/// left out: its row is rejected when converted). A manifest that cannot be read names none; the
/// conversion reports why.
fn scans_named(manifest: &Path, directory: &Directory, row_limit: u64) -> HashSet<PathBuf> {
    let Ok(rows) = Manifest::open(manifest, directory, row_limit) else {
        return HashSet::new();
    };
    rows.map_while(|row| row.ok())
        .filter_map(|row| within_batch(Path::new(row.get("scan"))))
        .collect()
}

/// `path` as plain names below the batch folder (`.` dropped); None when it has `..`, a root or
/// a prefix.
fn within_batch(path: &Path) -> Option<PathBuf> {
    let mut inside = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(name) => inside.push(name),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!inside.as_os_str().is_empty()).then_some(inside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> File {
        let mut out = tempfile::tempfile().unwrap();
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        out.rewind().unwrap();
        out
    }

    const LIMITS: UploadLimits = UploadLimits {
        scan: 100,
        rows: 10,
        expanded: 1000,
        manifest_line: 80,
    };

    /// Bytes of a small valid upload, to damage.
    fn valid_upload() -> Vec<u8> {
        let mut zip = zip_of(&[
            ("manifest.csv", b"type_code,number\r\n1,2\r\n"),
            ("scans/a.png", &[7; 60]),
        ]);
        let mut bytes = Vec::new();
        zip.read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn check_bytes(bytes: &[u8]) -> Result<()> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        file.rewind().unwrap();
        check_zip(&file, &LIMITS)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// A hostile client's zip — any bytes, or a valid upload cut, overwritten or spliced —
        /// is checked without a panic: passed, or refused naming the uploaded batch.
        #[test]
        fn no_damage_to_an_upload_makes_the_zip_check_panic(
            from in 0usize..400,
            to in 0usize..400,
            splice in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            arbitrary in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        ) {
            let good = valid_upload();
            let (from, to) = (from.min(to).min(good.len()), from.max(to).min(good.len()));
            let mut damaged = good.clone();
            damaged.splice(from..to, splice);
            for bytes in [damaged, arbitrary] {
                if let Err(e) = check_bytes(&bytes) {
                    proptest::prop_assert!(e.to_string().starts_with("the uploaded batch"), "{e}");
                }
            }
        }
    }

    #[test]
    fn uploads_that_escape_lack_a_manifest_or_are_too_large_are_refused() {
        let fine = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        check_zip(&fine, &LIMITS).unwrap();
        let refused = |zip: File| check_zip(&zip, &LIMITS).unwrap_err().to_string();
        assert!(
            refused(zip_of(&[("manifest.csv", b"x"), ("../evil", b"x")]))
                .contains("outside the batch")
        );
        assert!(refused(zip_of(&[("scans/a.png", b"x")])).contains("no manifest.csv"));
        let mut not_a_zip = tempfile::tempfile().unwrap();
        not_a_zip.write_all(b"not a zip").unwrap();
        assert!(refused(not_a_zip).contains("not a readable zip"));
        let many: Vec<(String, &[u8])> = (0..11)
            .map(|i| (format!("{i}.png"), &[0u8; 99][..]))
            .collect();
        let many: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let mut many = many;
        many.push(("manifest.csv", b"x"));
        assert!(refused(zip_of(&many)).contains("over the limit of 1000 bytes"));
    }

    #[test]
    fn the_entry_count_is_judged_from_the_end_record_before_the_zip_is_read() {
        let mut zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        assert_eq!(
            declared_directories(&zip).unwrap()[0].entries,
            2,
            "the entry count as declared"
        );
        // Claim 60,000 entries (the central directory still holds 2).
        let end = zip.seek(std::io::SeekFrom::End(-22)).unwrap();
        for at in [8, 10] {
            zip.seek(std::io::SeekFrom::Start(end + at)).unwrap();
            zip.write_all(&60_000u16.to_le_bytes()).unwrap();
        }
        let refused = check_zip(&zip, &LIMITS).unwrap_err().to_string();
        assert!(
            refused.contains("60000 entries is too many: at most 1010"),
            "{refused}"
        );
    }

    /// The bytes of `zip` (no comment) with its end record rewritten by `change`.
    fn with_end_record(zip: File, change: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        (&zip).read_to_end(&mut bytes).unwrap();
        let mut end = bytes.split_off(bytes.len() - 22);
        assert!(end.starts_with(b"PK\x05\x06"));
        change(&mut end);
        bytes.extend_from_slice(&end);
        bytes
    }

    fn refusal(bytes: &[u8]) -> String {
        check_bytes(bytes).unwrap_err().to_string()
    }

    #[test]
    fn a_zip64_count_is_read_whenever_the_directory_offset_sends_the_reader_there() {
        let zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        let bytes = with_end_record(zip, |_| {});
        let (end, directory_size) = (bytes.len() - 22, &bytes[bytes.len() - 10..bytes.len() - 6]);
        let directory_size = u32::from_le_bytes(directory_size.try_into().unwrap());
        let directory_start = end as u64 - u64::from(directory_size);
        // A ZIP64 end record claiming 60,000 entries, its locator, and an end record claiming
        // 2 entries whose directory offset (0xFFFFFFFF) sends the zip reader to the ZIP64 record.
        let mut hostile = bytes[..end].to_vec();
        let zip64_at = hostile.len() as u64;
        hostile.extend_from_slice(b"PK\x06\x06");
        hostile.extend_from_slice(&44u64.to_le_bytes());
        hostile.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        hostile.extend_from_slice(&60_000u64.to_le_bytes());
        hostile.extend_from_slice(&60_000u64.to_le_bytes());
        hostile.extend_from_slice(&u64::from(directory_size).to_le_bytes());
        hostile.extend_from_slice(&directory_start.to_le_bytes());
        hostile.extend_from_slice(b"PK\x06\x07\0\0\0\0");
        hostile.extend_from_slice(&zip64_at.to_le_bytes());
        hostile.extend_from_slice(&1u32.to_le_bytes());
        hostile.extend_from_slice(b"PK\x05\x06\0\0\0\0\x02\0\x02\0");
        hostile.extend_from_slice(&directory_size.to_le_bytes());
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
        hostile.extend_from_slice(&[0, 0]);
        let refused = refusal(&hostile);
        assert!(
            refused.contains("60000 entries is too many: at most 1010"),
            "{refused}"
        );
    }

    #[test]
    fn a_central_directory_declared_over_its_bound_is_refused_before_it_is_read() {
        let zip = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        let bytes = with_end_record(zip, |end| {
            end[12..16].copy_from_slice(&2_000_000u32.to_le_bytes());
        });
        let refused = refusal(&bytes);
        assert!(
            refused.contains("its central directory is 2000000 bytes, over the limit of 1551360"),
            "{refused}"
        );
    }

    #[test]
    fn an_entry_with_a_name_over_a_kib_is_refused_naming_it() {
        let long = format!("scans/{}.png", "a".repeat(1100));
        let refused = refusal(&with_end_record(
            zip_of(&[("manifest.csv", b"x"), (&long, b"png")]),
            |_| {},
        ));
        assert!(
            refused.contains("entry 1 (\"scans/aaaa")
                && refused.contains("has a name of 1110 bytes, over the limit of 1024"),
            "{refused}"
        );
        // The second central-directory header claims a comment of 5000 bytes.
        let commented = with_end_record(
            zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]),
            |_| {},
        );
        let mut commented = commented;
        let second = (0..commented.len())
            .filter(|&at| commented[at..].starts_with(b"PK\x01\x02"))
            .nth(1)
            .unwrap();
        commented[second + 32..second + 34].copy_from_slice(&5000u16.to_le_bytes());
        let refused = refusal(&commented);
        assert!(
            refused.contains(
                "entry 1 (\"scans/a.png\") carries 5000 bytes of comment, over the limit of 4096"
            ),
            "{refused}"
        );
    }

    #[test]
    fn two_entries_naming_the_same_path_are_refused_naming_both() {
        // The second would be the one extracted, checked only as a scan.
        let long_lines = "x".repeat(90);
        let refused = check_zip(
            &zip_of(&[
                ("manifest.csv", b"type_code\n"),
                ("./manifest.csv", long_lines.as_bytes()),
            ]),
            &LIMITS,
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("\"manifest.csv\" and \"./manifest.csv\" are the same path"),
            "{refused}"
        );
        // Alone, it is the manifest, as the extraction takes it.
        check_zip(&zip_of(&[("./manifest.csv", b"x")]), &LIMITS).unwrap();
    }

    #[test]
    fn only_the_manifest_and_the_scans_it_names_are_extracted() {
        let directory =
            Directory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/directory"))
                .unwrap();
        let header = super::super::manifest::STANDARD_COLUMNS.join(",");
        let manifest = format!(
            "{header}\n11100000000013338W032,A1,甲,x,2026-01-01,,./scans/a.png\n\
             11100000000013338W032,A2,乙,x,2026-01-01,,../scans/b.png\n"
        );
        let zip = zip_of(&[
            ("manifest.csv", manifest.as_bytes()),
            ("scans/a.png", b"png"),
            ("scans/b.png", b"png"),
            ("other/c.png", b"png"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("b");
        extract(&zip, &batch, &LIMITS, &directory).unwrap();
        assert_eq!(std::fs::read(batch.join("scans/a.png")).unwrap(), b"png");
        assert!(!batch.join("scans/b.png").exists());
        assert!(!batch.join("other").exists());
    }

    #[test]
    fn a_scan_over_its_limit_passes_the_check_and_stands_in_by_its_size_only() {
        let directory =
            Directory::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/directory"))
                .unwrap();
        let header = super::super::manifest::STANDARD_COLUMNS.join(",");
        let manifest =
            format!("{header}\n11100000000013338W032,A1,甲,x,2026-01-01,,scans/big.png\n");
        let big = [0x89; 101]; // one byte over LIMITS.scan
        let zip = zip_of(&[
            ("manifest.csv", manifest.as_bytes()),
            ("scans/big.png", &big),
        ]);
        check_zip(&zip, &LIMITS).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let batch = dir.path().join("b");
        extract(&zip, &batch, &LIMITS, &directory).unwrap();
        let stand_in = std::fs::read(batch.join("scans/big.png")).unwrap();
        assert_eq!(
            stand_in.len(),
            101,
            "the entry's size, for the row's reason"
        );
        assert!(
            stand_in.iter().all(|&b| b == 0),
            "its bytes are not unpacked"
        );
        // The bound on all entries together still refuses a zip, before anything is read.
        let many = zip_of(&[
            ("manifest.csv", b"x"),
            ("a.png", &[0; 600]),
            ("b.png", &[0; 600]),
        ]);
        let refused = check_zip(&many, &LIMITS).unwrap_err().to_string();
        assert!(
            refused.contains("over the limit of 1000 bytes"),
            "{refused}"
        );
    }
}
