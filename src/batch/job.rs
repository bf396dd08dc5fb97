//! Conversion jobs posted over HTTP (`POST /api/v1/batches`, a zip): the upload streams to a
//! temporary file (never whole in memory; refused once over the size limit, or at once when its
//! declared length is), is checked completely ([`super::upload`]) so that a bad upload is a 400
//! that keeps nothing, then kept in the blob store and converted in the background by the same
//! code as the command line, at most `max_concurrent_jobs` at a time. A job whose process died
//! is taken up again when its lease runs out — at the next start, or by another instance — and
//! carries on after the last line it committed. An upload is deleted once its job has ended (and
//! the retention time has passed).

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{Stream, StreamExt};

use super::lease::{Lease, LEASE_SECONDS};
use super::upload::{check_zip, extract, UploadLimits};
use super::{convert, create_with_upload, failing_on_panic, BatchState, Quiet};
use crate::app::{permissions, Action, Actor, App, AppError, Result, Role};
use crate::identifiers::Uscc;
use crate::panics::joined;
use crate::store::{BatchRecord, RejectedRow, RowOutcome, RowResult};
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
    status_of(app, actor, id, None, after_line, limit).await
}

/// [`status`] with only the rows of `outcome`, when it is given (the console's filter).
pub async fn status_of(
    app: &App,
    actor: &Actor,
    id: &str,
    outcome: Option<RowOutcome>,
    after_line: u64,
    limit: i64,
) -> Result<(BatchRecord, Vec<RowResult>)> {
    let job = readable(app, actor, id).await?;
    let rows = app
        .store
        .batch_rows_of(id, outcome, after_line, limit.clamp(1, 1000))
        .await?;
    Ok((job, rows))
}

/// A job and a page of its rejected rows after `after_line` with their original cells (to be
/// given back for correcting), under the same check as [`status`].
pub async fn rejected_rows(
    app: &App,
    actor: &Actor,
    id: &str,
    after_line: u64,
    limit: i64,
) -> Result<(BatchRecord, Vec<RejectedRow>)> {
    let job = readable(app, actor, id).await?;
    let rows = app
        .store
        .rejected_rows(id, after_line, limit.clamp(1, 1000))
        .await?;
    Ok((job, rows))
}

/// The most recent `limit` jobs the actor may read: its department's (all, for an admin without
/// one), newest first.
pub async fn recent(app: &App, actor: &Actor, limit: i64) -> Result<Vec<BatchRecord>> {
    let scope = app
        .scope_audited(actor, Action::ReadBatch, "batch.read", "recent")
        .await?;
    let department = scope.department().map(|d| d.to_string());
    Ok(app
        .store
        .recent_batches(department.as_deref(), limit.clamp(1, 200))
        .await?)
}

/// Job `id` if the actor may read it. Another department's job, or a department-less
/// operator's, is answered as if it did not exist; the attempt is recorded like every refusal.
pub async fn readable(app: &App, actor: &Actor, id: &str) -> Result<BatchRecord> {
    let scope = app
        .scope_audited(actor, Action::ReadBatch, "batch.read", id)
        .await?;
    let not_found = || AppError::NotFound(format!("batch {id}"));
    let job = app.store.batch(id).await?.ok_or_else(not_found)?;
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
    Ok(job)
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
                app.forget_old_drafts();
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
            .finish_batch(&id, lease.holder(), BatchState::Failed, Some(&e.said()))
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
