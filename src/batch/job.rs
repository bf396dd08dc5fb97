//! Conversion jobs posted over HTTP (`POST /api/v1/batches`, a zip): the zip is checked at once
//! (so a bad upload is a 400 that changes nothing), kept in the blob store, and converted in the
//! background by the same code as the command line. A job whose process died is taken up again
//! when its lease runs out — at the next start, or by another instance — and carries on after the
//! last line it committed.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zip::ZipArchive;

use super::{convert, create, failing_on_panic, Quiet};
use crate::app::{permissions, Action, Actor, App, AppError, Result, Role};
use crate::identifiers::Uscc;
use crate::store::{BatchRecord, RowResult};

/// How long a running job's lease lasts; it is renewed at a third of that.
const LEASE_SECONDS: i64 = 60;

/// Checks an uploaded zip, records the job and starts it. Returns the job as queued.
pub async fn submit(
    app: &Arc<App>,
    actor: &Actor,
    zip: &[u8],
    all_or_nothing: bool,
) -> Result<BatchRecord> {
    let job = app
        .audited(actor.entry("batch.submit", "upload"), async |entry| {
            permissions::scope(actor, Action::ConvertBatch)?;
            check_zip(
                zip,
                app.settings.max_scan_bytes,
                app.settings.max_manifest_rows,
            )?;
            let id = create(app, actor, all_or_nothing, Some(zip)).await?;
            let audit = crate::audit::Entry {
                target: id.clone(),
                detail: format!("{} bytes", zip.len()),
                ..entry.clone()
            };
            app.store.append_audit(&audit).await?;
            app.store
                .batch(&id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("batch {id}")))
        })
        .await?;
    tokio::spawn(run(app.clone(), job.id.clone()));
    Ok(job)
}

/// A job and a page of its row outcomes after `after_line`, for its own department (or an admin).
pub async fn status(
    app: &App,
    actor: &Actor,
    id: &str,
    after_line: u64,
    limit: i64,
) -> Result<(BatchRecord, Vec<RowResult>)> {
    let scope = permissions::scope(actor, Action::ReadBatch)?;
    let not_found = || AppError::NotFound(format!("batch {id}"));
    let job = app.store.batch(id).await?.ok_or_else(not_found)?;
    // Another department's job, or a department-less operator's, is answered as if it did not
    // exist.
    let department = job.department.as_deref().and_then(|d| Uscc::parse(d).ok());
    if !scope.covers(department.as_ref()) {
        return Err(not_found());
    }
    let rows = app
        .store
        .batch_rows(id, after_line, limit.clamp(1, 1000))
        .await?;
    Ok((job, rows))
}

/// Takes up, now and every [`LEASE_SECONDS`] / 3 until `stop`, the jobs left queued or running
/// by a process that is gone (this one before a restart, or another instance).
pub async fn supervise(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(LEASE_SECONDS as u64 / 3));
    loop {
        tokio::select! {
            _ = tick.tick() => resume_all(app.clone()).await,
            _ = stop.changed() => return,
        }
    }
}

/// Takes up every job left queued or running by a process that is gone.
pub async fn resume_all(app: Arc<App>) {
    match app.store.resumable_batches().await {
        Ok(ids) => {
            for id in ids {
                tracing::info!(batch = %id, "resuming a conversion job");
                tokio::spawn(run(app.clone(), id));
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list conversion jobs to resume"),
    }
}

/// Runs a job under a lease (so one process at a time runs it), then cleans up its work folder.
pub async fn run(app: Arc<App>, id: String) {
    let holder = format!("{}-{:08x}", std::process::id(), rand::random::<u32>());
    match app.store.lease_batch(&id, &holder, LEASE_SECONDS).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::error!(batch = %id, error = %e, "cannot lease a conversion job");
            return;
        }
    }
    let renewer = {
        let (app, id, holder) = (app.clone(), id.clone(), holder.clone());
        tokio::spawn(async move {
            let mut tick =
                tokio::time::interval(std::time::Duration::from_secs(LEASE_SECONDS as u64 / 3));
            loop {
                tick.tick().await;
                if !matches!(
                    app.store.lease_batch(&id, &holder, LEASE_SECONDS).await,
                    Ok(true)
                ) {
                    break;
                }
            }
        })
    };
    let work = app.settings.data_dir.join("work").join(&id);
    // A panic anywhere in the job (the conversion catches its own) must still stop the renewer
    // and fail the job, or it would stay `running`, its lease renewed for ever.
    let outcome = failing_on_panic("the conversion job", run_leased(&app, &id, &work)).await;
    renewer.abort();
    if let Err(e) = &outcome {
        tracing::error!(batch = %id, error = %e, "conversion job failed");
        let _ = app
            .store
            .finish_batch(&id, "failed", Some(&e.to_string()))
            .await;
    }
    let _ = std::fs::remove_dir_all(&work);
}

async fn run_leased(app: &Arc<App>, id: &str, work: &Path) -> Result<()> {
    let job = app
        .store
        .batch(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("batch {id}")))?;
    let key = job
        .upload
        .clone()
        .ok_or_else(|| AppError::State(format!("batch {id} has no upload")))?;
    let zip = app
        .blobs
        .get(&key)
        .await?
        .ok_or_else(|| AppError::State(format!("batch {id}: the upload {key} is missing")))?;
    let dir = work.to_path_buf();
    let (max_scan, max_rows) = (app.settings.max_scan_bytes, app.settings.max_manifest_rows);
    tokio::task::spawn_blocking(move || extract(&zip, &dir, max_scan, max_rows))
        .await
        .map_err(|e| AppError::State(e.to_string()))??;
    let actor = job_actor(&job)?;
    convert(app, &actor, id, work, &Quiet).await?;
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

/// Checks a zip without extracting it: readable, `manifest.csv` at its root, every entry a plain
/// file or folder with a name inside the batch, scans within the size limit.
fn check_zip(zip: &[u8], max_scan: u64, max_rows: u64) -> Result<()> {
    let bad = |reason: String| AppError::BadInput(format!("the uploaded batch: {reason}"));
    let mut archive =
        ZipArchive::new(Cursor::new(zip)).map_err(|e| bad(format!("not a readable zip: {e}")))?;
    if archive.len() as u64 > 2 * max_rows + 16 {
        return Err(bad(format!("{} entries is too many", archive.len())));
    }
    let mut manifest = false;
    for i in 0..archive.len() {
        let file = archive
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = String::from_utf8_lossy(file.name_raw()).into_owned();
        if file.is_symlink() {
            return Err(bad(format!("{name:?} is a link; a batch holds files only")));
        }
        if file.enclosed_name().is_none() {
            return Err(bad(format!("{name:?} would be written outside the batch")));
        }
        let limit = if name == "manifest.csv" {
            manifest = true;
            MAX_MANIFEST_BYTES
        } else {
            max_scan
        };
        if file.size() > limit {
            return Err(bad(format!(
                "{name:?} is {} bytes, over the limit of {limit}",
                file.size()
            )));
        }
    }
    if !manifest {
        return Err(bad("it has no manifest.csv at its root".into()));
    }
    Ok(())
}

/// Extracts a checked zip into `dir` (emptied first), reading no more of an entry than its
/// header declares (a zip that lies about sizes is refused).
fn extract(zip: &[u8], dir: &Path, max_scan: u64, max_rows: u64) -> Result<()> {
    check_zip(zip, max_scan, max_rows)?;
    let io = |e: std::io::Error| AppError::Config(format!("extracting a batch: {e}"));
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut archive = ZipArchive::new(Cursor::new(zip))
        .map_err(|e| AppError::BadInput(format!("the uploaded batch: {e}")))?;
    for i in 0..archive.len() {
        let mut file = archive
            .by_index(i)
            .map_err(|e| AppError::BadInput(format!("the uploaded batch: entry {i}: {e}")))?;
        let relative: PathBuf = file.enclosed_name().expect("checked above");
        let path = dir.join(relative);
        if file.is_dir() {
            std::fs::create_dir_all(&path).map_err(io)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let declared = file.size();
        let mut bytes = Vec::with_capacity(declared as usize);
        (&mut file)
            .take(declared + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| AppError::BadInput(format!("the uploaded batch: {e}")))?;
        if bytes.len() as u64 != declared {
            return Err(AppError::BadInput(format!(
                "the uploaded batch: {:?} is not the size its header declares",
                String::from_utf8_lossy(file.name_raw())
            )));
        }
        std::fs::write(&path, bytes).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn uploads_that_escape_lack_a_manifest_or_are_too_large_are_refused() {
        let fine = zip_of(&[("manifest.csv", b"x"), ("scans/a.png", b"png")]);
        check_zip(&fine, 100, 10).unwrap();
        let refused = |zip: Vec<u8>| check_zip(&zip, 100, 10).unwrap_err().to_string();
        assert!(
            refused(zip_of(&[("manifest.csv", b"x"), ("../evil", b"x")]))
                .contains("outside the batch")
        );
        assert!(refused(zip_of(&[("scans/a.png", b"x")])).contains("no manifest.csv"));
        assert!(
            refused(zip_of(&[("manifest.csv", b"x"), ("big.png", &[0; 101])]))
                .contains("over the limit of 100")
        );
        assert!(refused(b"not a zip".to_vec()).contains("not a readable zip"));

        let dir = tempfile::tempdir().unwrap();
        extract(&fine, &dir.path().join("b"), 100, 10).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("b/scans/a.png")).unwrap(),
            b"png"
        );
    }
}
