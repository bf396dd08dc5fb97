//! Uploading a batch from the console (存量证照转换): the zip of `manifest.csv` and its scans,
//! streamed into the same [`job::submit`] as `POST /api/v1/batches` (its limits, its permission
//! check, its audit record); or, to resubmit corrected rows, the manifest and the scans as
//! separate files, which are written into a zip (stored, not compressed) under the data folder
//! and submitted the same way.
//!
//! The form carries its CSRF token and the all-or-nothing box before its files, so both are known
//! before a file's bytes are read; a file arriving before the token is refused as a forged form.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Component, Path};

use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{Stream, StreamExt};

use super::layout::error_page;
use super::see_other;
use super::session::{check_csrf, Signed};
use crate::app::signin::ConsoleSession;
use crate::app::{Action, App, AppError, Result};
use crate::batch::job;
use crate::batch::manifest::Manifest;
use crate::http::SharedState;
use crate::store::BatchRecord;

/// What a form's other fields and part headers may add to its file: a body declaring more than
/// the upload limit and this is refused before it is read.
const FORM_SLACK: u64 = 64 << 10;

/// `POST /console/batches`: a zip (`zip`), or a manifest (`manifest`) and its scans (`scans`);
/// 303 to the new job's page.
pub async fn upload(
    State(state): State<SharedState>,
    Signed(session): Signed,
    headers: HeaderMap,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Response {
    let mut multipart = match multipart {
        Ok(multipart) => multipart,
        Err(e) => return error_page(&unreadable(e), Some(&session)),
    };
    // Refused before a byte is kept: only those who may convert get their files written.
    if let Err(e) = state
        .app
        .scope_audited(
            &session.actor,
            Action::ConvertBatch,
            "batch.submit",
            "upload",
        )
        .await
    {
        return error_page(&e, Some(&session));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map(|n| n.saturating_sub(FORM_SLACK));
    let mut csrf_checked = false;
    let mut all_or_nothing = false;
    let submitted = loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                break Err(AppError::BadInput(
                    "the form has no file: choose the batch's zip, or the corrected manifest \
                     and its scans"
                        .into(),
                ))
            }
            Err(e) => break Err(unreadable(e)),
        };
        let name = field.name().unwrap_or_default().to_string();
        if matches!(name.as_str(), "zip" | "manifest") && !csrf_checked {
            // A file before the token: not a form of ours.
            if let Err(refused) = check_csrf(&state, &session, "", "batch.submit").await {
                return refused;
            }
        }
        match name.as_str() {
            "csrf" => {
                // An unreadable or over-long token is no token: refused as forged below.
                let given = short_text(field).await.unwrap_or_default();
                if let Err(refused) = check_csrf(&state, &session, &given, "batch.submit").await {
                    return refused;
                }
                csrf_checked = true;
            }
            "all_or_nothing" => all_or_nothing = true,
            "zip" => {
                let actor = &session.actor;
                break job::submit(&state.app, actor, declared, Box::pin(field), all_or_nothing)
                    .await;
            }
            "manifest" => {
                let app = &state.app;
                let mut received = 0;
                let saved = async {
                    plain_name(field.file_name().unwrap_or_default())?;
                    save(
                        field,
                        &incoming(app)?,
                        app.settings.max_upload_bytes,
                        &mut received,
                    )
                    .await
                }
                .await;
                break match saved {
                    Ok(Some(manifest)) => {
                        let upload = Upload {
                            manifest,
                            received,
                            all_or_nothing,
                        };
                        resubmit(app, &session, upload, &mut multipart).await
                    }
                    Ok(None) => too_large(app, &session, received, all_or_nothing).await,
                    Err(e) => Err(e),
                };
            }
            other => {
                break Err(AppError::BadInput(format!(
                    "the form has a field {other:?} it should not have"
                )))
            }
        }
    };
    match submitted {
        Ok(job) => see_other(&format!("/console/batches/{}", job.id)),
        Err(e) => error_page(&e, Some(&session)),
    }
}

/// A short text field (the CSRF token), refused past a few hundred bytes: the form's body has
/// no size limit of its own (the upload's is the job's), so nothing is read whole unbounded.
pub(super) async fn short_text(mut field: Field<'_>) -> Result<String> {
    const MOST: usize = 512;
    let mut text = Vec::new();
    while let Some(bytes) = field.chunk().await.map_err(unreadable)? {
        text.extend_from_slice(&bytes);
        if text.len() > MOST {
            return Err(AppError::BadInput(format!(
                "the form field csrf is over {MOST} bytes"
            )));
        }
    }
    String::from_utf8(text)
        .map_err(|_| AppError::BadInput("the form field csrf is not UTF-8".into()))
}

pub(super) fn unreadable(e: impl std::fmt::Display) -> AppError {
    AppError::BadInput(format!("the form cannot be read: {e}"))
}

fn io_error(e: std::io::Error) -> AppError {
    AppError::Config(format!("packing an upload: {e}"))
}

/// Where the parts of a form are kept while they arrive (deleted when dropped).
pub(super) fn incoming(app: &App) -> Result<std::path::PathBuf> {
    let dir = app.settings.data_dir.join("incoming");
    std::fs::create_dir_all(&dir).map_err(io_error)?;
    Ok(dir)
}

/// A resubmission's manifest, received.
struct Upload {
    manifest: tempfile::NamedTempFile,
    /// The bytes received so far.
    received: u64,
    all_or_nothing: bool,
}

/// Packs the corrected manifest and the scans that follow it in the form into a zip and
/// submits it. Each scan streams into the zip as it arrives (no file per scan is held open).
async fn resubmit(
    app: &std::sync::Arc<App>,
    session: &ConsoleSession,
    upload: Upload,
    multipart: &mut Multipart,
) -> Result<BatchRecord> {
    let Upload {
        manifest,
        mut received,
        all_or_nothing,
    } = upload;
    let dir = incoming(app)?;
    let limit = app.settings.max_upload_bytes;
    let (row_limit, reader) = (app.settings.max_manifest_line_bytes, app.clone());
    let (manifest, wanted) = blocking(move || {
        let wanted = scan_paths(manifest.path(), &reader, row_limit);
        Ok((manifest, wanted))
    })
    .await?;
    let zip = tempfile::NamedTempFile::new_in(&dir).map_err(io_error)?;
    let mut writer = zip::ZipWriter::new(zip.reopen().map_err(io_error)?);
    let large = limit >= u64::from(u32::MAX);
    writer = blocking(move || {
        start_entry(&mut writer, "manifest.csv", large)?;
        let mut source = manifest.reopen().map_err(io_error)?;
        std::io::copy(&mut source, &mut writer).map_err(io_error)?;
        Ok(writer)
    })
    .await?;
    let mut names = HashSet::new();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "scans" => {}
            other => {
                return Err(AppError::BadInput(format!(
                    "the form has a field {other:?} after the manifest: only scans may follow it"
                )))
            }
        }
        let name = field.file_name().unwrap_or_default().to_string();
        if name.is_empty() {
            continue; // the scans box left empty: a browser sends one part without a file
        }
        plain_name(&name)?;
        if name.eq_ignore_ascii_case("manifest.csv") {
            return Err(AppError::BadInput(format!(
                "the scan {name:?} has the manifest's own name in the batch: rename the scan"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(AppError::BadInput(format!(
                "the scan {name:?} is given twice"
            )));
        }
        // A scan per manifest row at most, as in a zip.
        if names.len() as u64 > app.settings.max_manifest_rows {
            return Err(AppError::BadInput(format!(
                "more than {} scans: at most one per manifest row",
                app.settings.max_manifest_rows
            )));
        }
        received += name.len() as u64;
        let path = place(&wanted, &name)?;
        writer = blocking(move || start_entry(&mut writer, &path, large).map(|_| writer)).await?;
        let mut piece = Vec::new();
        loop {
            let next = field.chunk().await.map_err(unreadable)?;
            let end = next.is_none();
            if let Some(bytes) = next {
                received += bytes.len() as u64;
                if received > limit {
                    return too_large(app, session, received, all_or_nothing).await;
                }
                piece.extend_from_slice(&bytes);
            }
            if piece.len() >= 1 << 20 || (end && !piece.is_empty()) {
                (writer, piece) = blocking(move || {
                    writer.write_all(&piece).map_err(io_error)?;
                    piece.clear();
                    Ok((writer, piece))
                })
                .await?;
            }
            if end {
                break;
            }
        }
    }
    blocking(move || {
        writer
            .finish()
            .map_err(|e| AppError::Config(format!("packing an upload: {e}")))
    })
    .await?;
    let size = zip.as_file().metadata().map_err(io_error)?.len();
    let file = zip.reopen().map_err(io_error)?;
    job::submit(
        app,
        &session.actor,
        Some(size),
        file_stream(file),
        all_or_nothing,
    )
    .await
}

/// Runs file work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    crate::panics::joined(tokio::task::spawn_blocking(work)).await?
}

/// Starts a stored (uncompressed) entry at `path`.
pub(super) fn start_entry(
    writer: &mut zip::ZipWriter<std::fs::File>,
    path: &str,
    large: bool,
) -> Result<()> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(large);
    writer
        .start_file(path, options)
        .map_err(|e| AppError::Config(format!("packing an upload: {e}")))
}

/// Submits nothing with the length received so far, so that the job's own limit refuses it
/// (and records the refusal) exactly as it refuses an over-long zip.
async fn too_large(
    app: &std::sync::Arc<App>,
    session: &ConsoleSession,
    received: u64,
    all_or_nothing: bool,
) -> Result<BatchRecord> {
    let nothing = futures_util::stream::empty::<std::result::Result<Vec<u8>, std::io::Error>>();
    job::submit(app, &session.actor, Some(received), nothing, all_or_nothing).await
}

/// A file's name as the browser gave it, refused when it carries a folder (a browser sends the
/// bare name; a path could place the file anywhere in the batch).
fn plain_name(name: &str) -> Result<()> {
    let refused = |why: &str| {
        Err(AppError::BadInput(format!(
            "the file name {name:?} {why}: give the file itself, named as the manifest names it"
        )))
    };
    if name.is_empty() {
        return refused("is empty");
    }
    if name.contains(['/', '\\', ':']) || name == "." || name == ".." {
        return refused("has a path in it");
    }

    if name.chars().any(char::is_control) {
        return refused("has a control character in it");
    }
    Ok(())
}

/// Writes a file field to a temporary file in `dir`, counting its bytes into `received`; None
/// once the count passes `limit`.
async fn save(
    mut field: Field<'_>,
    dir: &Path,
    limit: u64,
    received: &mut u64,
) -> Result<Option<tempfile::NamedTempFile>> {
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io_error)?;
    let mut piece = Vec::new();
    loop {
        let next = field
            .chunk()
            .await
            .map_err(|e: MultipartError| unreadable(e))?;
        let end = next.is_none();
        if let Some(bytes) = next {
            *received += bytes.len() as u64;
            if *received > limit {
                return Ok(None);
            }
            piece.extend_from_slice(&bytes);
        }
        if piece.len() >= 1 << 20 || (end && !piece.is_empty()) {
            (file, piece) = crate::panics::joined(tokio::task::spawn_blocking(move || {
                file.write_all(&piece)?;
                piece.clear();
                Ok::<_, std::io::Error>((file, piece))
            }))
            .await?
            .map_err(io_error)?;
        }
        if end {
            return Ok(Some(file));
        }
    }
}

/// The paths inside the batch the manifest's `scan` column names, by file name. A manifest that
/// cannot be read names none: the job reads it again and says what is wrong with it.
fn scan_paths(manifest: &Path, app: &App, row_limit: u64) -> HashMap<String, HashSet<String>> {
    let mut wanted: HashMap<String, HashSet<String>> = HashMap::new();
    let Ok(rows) = Manifest::open(manifest, &app.directory, row_limit) else {
        return wanted;
    };
    for row in rows.map_while(std::result::Result::ok) {
        let path = Path::new(row.get("scan"));
        // Only a plain path inside the batch: one leaving it is the row's own error to report.
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            continue;
        }
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            let full = row.get("scan").to_string();
            wanted.entry(name.to_string()).or_default().insert(full);
        }
    }
    wanted
}

/// Where a scan named `name` goes in the zip: where the manifest names a file of that name, or
/// at the top when it names it nowhere (the job then rejects no row for it, and extracts it not).
fn place(wanted: &HashMap<String, HashSet<String>>, name: &str) -> Result<String> {
    let Some(paths) = wanted.get(name) else {
        return Ok(name.to_string());
    };
    let mut paths: Vec<&String> = paths.iter().collect();
    if let [only] = paths.as_slice() {
        return Ok(only.to_string());
    }
    paths.sort();
    Err(AppError::BadInput(format!(
        "the manifest names more than one scan called {name:?} ({}): upload the batch as a \
         zip, with its folders",
        paths
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// A file read in pieces of a MiB, off the async threads.
pub(super) fn file_stream(
    file: std::fs::File,
) -> impl Stream<Item = std::result::Result<Vec<u8>, std::io::Error>> + Unpin {
    futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut piece = vec![0; 1 << 20];
            let n = file.read(&mut piece)?;
            piece.truncate(n);
            Ok::<_, std::io::Error>((file, piece))
        })
        .await
        .map_err(std::io::Error::other);
        match read.and_then(|r| r) {
            Ok((_, piece)) if piece.is_empty() => None,
            Ok((file, piece)) => Some((Ok(piece), Some(file))),
            Err(e) => Some((Err(e), None)),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_with_a_path_is_refused() {
        assert!(plain_name("0000001.jpg").is_ok());
        assert!(plain_name("扫描件 1.png").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "scans/1.jpg",
            "..\\1.jpg",
            "C:1.jpg",
            "a\n.jpg",
        ] {
            let refused = plain_name(bad).unwrap_err().to_string();
            assert!(refused.contains("the file name"), "{bad:?}: {refused}");
        }
    }

    #[test]
    fn scans_go_where_the_manifest_names_them_and_an_ambiguous_name_is_refused() {
        let mut wanted = HashMap::new();
        wanted.insert(
            "1.jpg".to_string(),
            HashSet::from(["scans/1.jpg".to_string()]),
        );
        wanted.insert(
            "x.png".to_string(),
            HashSet::from(["b/x.png".to_string(), "a/x.png".to_string()]),
        );
        assert_eq!(place(&wanted, "1.jpg").unwrap(), "scans/1.jpg");
        assert_eq!(place(&wanted, "other.png").unwrap(), "other.png");
        let refused = place(&wanted, "x.png").unwrap_err().to_string();
        assert!(refused.contains("(a/x.png, b/x.png)"), "{refused}");
    }
}
