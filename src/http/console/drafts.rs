//! 识别起草 in the console (issue #19): a clerk uploads the scans of one licence type; the
//! service drafts them in the background (`App::draft_scans`, as `elicence draft` does); the
//! review page shows each scan beside its fields, flagged rows first and flagged cells marked
//! with their reason; the clerk corrects, ticks the rows checked, and sends those rows (their
//! manifest and scans, zipped) into the same conversion job as an uploaded batch.
//!
//! A draft lives in `data/drafts/{id}/` (its scans, who made it, the draft once done) on the
//! instance that received it, and is removed when its rows go to conversion.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path as FsPath, PathBuf};

use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};

use super::batch_upload;
use super::layout::{csrf_field, error_page, frame};
use super::session::{check_csrf, Signed};
use super::{page, see_other};
use crate::app::signin::ConsoleSession;
use crate::app::{Action, App, AppError, Result};
use crate::draft::{Draft, DraftRow};
use crate::http::SharedState;
use crate::identifiers::TypeCode;

const TITLE: &str = "识别起草";

/// What each scan's part counts against the upload limit beyond its bytes (its headers).
const PART_COST: u64 = 1 << 10;

/// The form on the batches page: the type, and the scans (several files, or a folder).
pub fn start_form(session: &ConsoleSession, app: &App) -> Markup {
    let types: Vec<_> = app
        .directory
        .types()
        .filter(|t| {
            session.actor.department.is_none()
                || session.actor.department.as_ref() == Some(&t.issuer.uscc)
        })
        .collect();
    html! {
        form class="card" method="post" action="/console/drafts" enctype="multipart/form-data" {
            h2 { "从扫描件识别起草清单" }
            p class="hint" { "上传同一类证照的扫描件（JPEG、PNG），系统逐张识别并起草清单；识别没有把握的格子会标出，核对后提交转换。" }
            (csrf_field(session))
            label for="draft-type" { "证照类型" }
            select id="draft-type" name="type" required {
                @for t in &types { option value=(t.code.as_str()) { (t.name) } }
            }
            label for="draft-scans" { "扫描件（可多选）" }
            input type="file" id="draft-scans" name="scans" multiple required accept="image/jpeg,image/png";
            button type="submit" { "开始识别" }
        }
    }
}

/// A draft's folder, if `id` is one of ours (hex only: never a path).
fn draft_dir(app: &App, id: &str) -> Result<PathBuf> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound(format!("draft {id}")));
    }
    let dir = app.drafts_dir().join(id);
    if !dir.is_dir() {
        return Err(AppError::NotFound(format!("draft {id}")));
    }
    Ok(dir)
}

/// A draft's folder, for the person who made it only (it holds scans of their department).
fn own_draft(app: &App, session: &ConsoleSession, id: &str) -> Result<PathBuf> {
    let dir = draft_dir(app, id)?;
    let owner = std::fs::read_to_string(dir.join("owner")).unwrap_or_default();
    if owner != session.actor.name {
        return Err(AppError::NotFound(format!("draft {id}")));
    }
    Ok(dir)
}

fn io(e: std::io::Error) -> AppError {
    AppError::Config(format!("a draft's folder: {e}"))
}

/// `POST /console/drafts`: saves the scans, starts drafting, 303 to the draft's page.
pub async fn start(
    State(state): State<SharedState>,
    Signed(session): Signed,
    multipart: Multipart,
) -> Response {
    match receive(&state, &session, multipart).await {
        Ok(Ok(id)) => see_other(&format!("/console/drafts/{id}")),
        Ok(Err(refused)) => refused,
        Err(e) => error_page(&e, Some(&session)),
    }
}

/// Reads the form (token first, then the type, then the scans, within the upload limit) into
/// a new draft folder and starts drafting it.
async fn receive(
    state: &SharedState,
    session: &ConsoleSession,
    mut multipart: Multipart,
) -> Result<std::result::Result<String, Response>> {
    let app = &state.app;
    // Refused before a byte is kept: only those who may convert get their scans written.
    app.scope_audited(
        &session.actor,
        Action::ConvertBatch,
        "batch.draft",
        "upload",
    )
    .await?;
    let bad = |why: String| AppError::BadInput(why);
    let id = data_encoding::HEXLOWER.encode(&rand::random::<[u8; 16]>());
    let dir = app.drafts_dir().join(&id);
    let scans = dir.join("scans");
    std::fs::create_dir_all(&scans).map_err(io)?;
    let cleanup = scopeguard(dir.clone());
    let (mut csrf, mut type_code, mut names, mut received) = (false, None, Vec::new(), 0u64);
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(batch_upload::unreadable)?
    {
        match (field.name().unwrap_or_default(), csrf) {
            ("csrf", false) => {
                let given = batch_upload::short_text(field).await?;
                if let Err(refused) = check_csrf(state, session, &given, "batch.draft").await {
                    return Ok(Err(refused));
                }
                csrf = true;
            }
            ("type", true) => {
                let text = batch_upload::short_text(field).await?;
                type_code = Some(TypeCode::parse(text.trim())?);
            }
            ("scans", true) => {
                if names.len() as u64 >= app.settings.max_manifest_rows {
                    return Err(bad(format!(
                        "more than {} scans: a draft is at most a manifest's rows",
                        app.settings.max_manifest_rows
                    )));
                }
                // Each part costs its headers too: empty files cannot come in unbounded.
                received += PART_COST;
                let original = field.file_name().unwrap_or_default().to_string();
                let name = format!("{:05}-{}", names.len() + 1, safe_name(&original));
                let mut file = std::fs::File::create(scans.join(&name)).map_err(io)?;
                while let Some(bytes) = field.chunk().await.map_err(batch_upload::unreadable)? {
                    received += bytes.len() as u64;
                    if received > app.settings.max_upload_bytes {
                        return Err(bad(format!(
                            "the scans are over the upload limit of {} bytes",
                            app.settings.max_upload_bytes
                        )));
                    }
                    file.write_all(&bytes).map_err(io)?;
                }
                names.push(format!("scans/{name}"));
            }
            (other, _) => return Err(bad(format!("the form has a field {other:?} out of place"))),
        }
    }
    let type_code = type_code.ok_or_else(|| bad("the form names no licence type".into()))?;
    if names.is_empty() {
        return Err(bad("the form has no scans".into()));
    }
    app.record_draft_started(&session.actor, &type_code, names.len())
        .await?;
    std::fs::write(dir.join("owner"), &session.actor.name).map_err(io)?;
    cleanup.keep();
    let (app, actor) = (app.clone(), session.actor.clone());
    tokio::task::spawn_blocking(move || {
        let outcome = app.draft_scans(&actor, &type_code, &dir, &names);
        let written = match outcome {
            Ok(draft) => serde_json::to_vec(&draft)
                .map_err(std::io::Error::other)
                .and_then(|json| std::fs::write(dir.join("draft.json"), json)),
            Err(e) => std::fs::write(dir.join("failed"), e.to_string()),
        };
        if let Err(e) = written {
            tracing::error!(error = %e, "a draft could not be kept");
        }
    });
    Ok(Ok(id))
}

/// Removes a half-received draft folder unless told to keep it.
struct Cleanup(Option<PathBuf>);

fn scopeguard(dir: PathBuf) -> Cleanup {
    Cleanup(Some(dir))
}

impl Cleanup {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A file name as kept: letters, digits, `.`, `-`, `_` (a browser may send any name at all).
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if kept.trim_matches('.').is_empty() {
        "scan".into()
    } else {
        kept
    }
}

fn read_draft(dir: &FsPath) -> Result<Option<Draft>> {
    if let Ok(why) = std::fs::read_to_string(dir.join("failed")) {
        return Err(AppError::BadInput(format!("drafting failed: {why}")));
    }
    match std::fs::read(dir.join("draft.json")) {
        Ok(json) => serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| AppError::Internal(e.to_string())),
        Err(_) => Ok(None),
    }
}

/// `GET /console/drafts/{id}`: still reading (the page reloads itself), or the review form.
pub async fn show(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    let draft = own_draft(&state.app, &session, &id).and_then(|dir| read_draft(&dir));
    match draft {
        Ok(None) => {
            let body = html! {
                meta http-equiv="refresh" content="3";
                h1 { (TITLE) }
                p role="status" { "正在识别扫描件，请稍候；本页每 3 秒刷新一次。" }
            };
            page(StatusCode::OK, frame(TITLE, Some(&session), body))
        }
        Ok(Some(draft)) => page(
            StatusCode::OK,
            frame(
                TITLE,
                Some(&session),
                review(&state.app, &session, &id, &draft),
            ),
        ),
        Err(e) => error_page(&e, Some(&session)),
    }
}

/// Rows in doubt first, each scan beside its fields; flagged cells marked with their reason.
fn review(app: &App, session: &ConsoleSession, id: &str, draft: &Draft) -> Markup {
    // The rows with the most doubts first.
    let mut order: Vec<(usize, &DraftRow)> = draft.rows.iter().enumerate().collect();
    order.sort_by_key(|(i, row)| (std::cmp::Reverse(row.doubts().len()), *i));
    let licence_type = TypeCode::parse(&draft.type_code)
        .ok()
        .and_then(|code| app.directory.get(&code));
    let type_name = licence_type.map(|t| t.name.clone()).unwrap_or_default();
    let label = |column: &str| column_label(app, &draft.type_code, column);
    let long_text = |column: &str| {
        licence_type.and_then(|t| t.field(column)).is_some_and(|f| {
            f.field_type == crate::directory::FieldType::Text && f.max_len.is_none_or(|n| n > 60)
        })
    };
    let flagged = draft.rows.iter().filter(|r| !r.doubts().is_empty()).count();
    html! {
        h1 { (TITLE) "：" (type_name) }
        p { "识别 " (draft.rows.len()) " 张，其中 " strong { (flagged) } " 张有待核对的格子（排在前面，标为黄色）。"
            "对照扫描件改正黄色格子；没有改动的黄色格子须勾选“与原件一致”。整行核对后勾选“本行已核对”，再提交；未勾选的行不会转换。" }
        @if !draft.skipped.is_empty() {
            div class="card" {
                h2 { "未起草的扫描件" }
                ul { @for s in &draft.skipped { li { (shown_name(&s.scan)) "：" (s.reason) } } }
            }
        }
        form method="post" action=(format!("/console/drafts/{id}")) {
            (csrf_field(session))
            @for (i, row) in order {
                @let src = format!("/console/drafts/{id}/{}", row.scan);
                fieldset class="card draft-row" {
                    legend { (shown_name(&row.scan)) @if !row.doubts().is_empty() { " · 待核对 " (row.doubts().len()) " 处" } }
                    a class="draft-scan" href=(src) target="_blank" title="在新窗口打开原图" {
                        img src=(src) alt=(format!("扫描件 {}", shown_name(&row.scan))) loading="lazy";
                    }
                    div class="draft-fields" {
                        @for column in draft.columns.iter().filter(|c| !matches!(c.as_str(), "type_code" | "scan")) {
                            @let cell = row.cells.get(column).cloned().unwrap_or_default();
                            @let name = format!("r{i}.{column}");
                            @let class = cell.doubt.as_ref().map(|_| "flagged");
                            label for=(name) class=[class] {
                                (label(column))
                                @if let Some(why) = &cell.doubt { span class="hint" { "（" (why) "）" } }
                            }
                            @if long_text(column) {
                                textarea id=(name) name=(name) rows="2" class=[class] { (cell.value) }
                            } @else {
                                input id=(name) name=(name) value=(cell.value) class=[class];
                            }
                            @if cell.doubt.is_some() {
                                label class="same" { input type="checkbox" name=(format!("{name}.same")) value="1"; " 与原件一致" }
                            }
                        }
                        label class="row-checked" { input type="checkbox" name=(format!("r{i}.checked")) value="1"; " 本行已核对" }
                    }
                }
            }
            button type="submit" { "提交已核对的行进行转换" }
        }
    }
}

/// A scan's name as the clerk uploaded it (without the folder and the order number it is kept
/// under).
fn shown_name(scan: &str) -> &str {
    let file = scan.strip_prefix("scans/").unwrap_or(scan);
    file.split_once('-').map_or(file, |(_, name)| name)
}

/// A column's label as the licence prints it.
fn column_label(app: &App, type_code: &str, column: &str) -> String {
    let t = TypeCode::parse(type_code)
        .ok()
        .and_then(|code| app.directory.get(&code));
    match (column, t) {
        ("number", _) => "证照编号".into(),
        ("holder_name", Some(t)) => t.holder_kind.labels_zh().0.into(),
        ("holder_id", Some(t)) => t.holder_kind.labels_zh().1.into(),
        ("valid_from", _) => "有效期自".into(),
        ("valid_until", _) => "有效期至（空为长期或按规定期限）".into(),
        (key, Some(t)) => t
            .field(key)
            .map_or_else(|| key.to_string(), |f| f.label.clone()),
        (key, None) => key.to_string(),
    }
}

/// `GET /console/drafts/{id}/scans/{name}`: a scan of one's own draft.
pub async fn scan(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let read = own_draft(&state.app, &session, &id).and_then(|dir| {
        if safe_name(&name) != name {
            return Err(AppError::NotFound(name.clone()));
        }
        let bytes = std::fs::read(dir.join("scans").join(&name))
            .map_err(|_| AppError::NotFound(name.clone()))?;
        let scan = format!("scans/{name}");
        let turned = read_draft(&dir)
            .ok()
            .flatten()
            .and_then(|draft| draft.rows.into_iter().find(|row| row.scan == scan))
            .map_or(0, |row| row.turned);
        Ok((bytes, turned))
    });
    let upright = match read {
        // Shown as the clerk reads it: upright, as the draft found it.
        Ok((bytes, turned)) if turned != 0 => {
            batch_upload::blocking(move || {
                crate::draft::upright_jpeg(&bytes, turned)
                    .map_err(|e| AppError::Internal(e.to_string()))
            })
            .await
        }
        Ok((bytes, _)) => Ok(bytes),
        Err(e) => Err(e),
    };
    match upright {
        Ok(bytes) => {
            let kind = if bytes.starts_with(b"\x89PNG") {
                "image/png"
            } else {
                "image/jpeg"
            };
            (
                [
                    (header::CONTENT_TYPE, kind),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => error_page(&e, Some(&session)),
    }
}

/// `POST /console/drafts/{id}`: the checked rows, as corrected, go to conversion (303 to the
/// job); nothing is sent unless at least one row is checked.
pub async fn confirm(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let given = form.get("csrf").map(String::as_str).unwrap_or_default();
    if let Err(refused) = check_csrf(&state, &session, given, "batch.submit").await {
        return refused;
    }
    let submitted = async {
        let dir = own_draft(&state.app, &session, &id)?;
        let draft = read_draft(&dir)?
            .ok_or_else(|| AppError::BadInput("the draft is not ready yet".into()))?;
        check_doubts_resolved(&state.app, &draft, &form)?;
        let zip = {
            let (incoming, dir, limit) = (
                batch_upload::incoming(&state.app)?,
                dir.clone(),
                state.app.settings.max_upload_bytes,
            );
            batch_upload::blocking(move || confirmed_batch(&incoming, &dir, &draft, &form, limit))
                .await?
        };
        // Claimed by renaming, so that a second press of the button finds no draft to send.
        let claimed = dir.with_extension("sending");
        std::fs::rename(&dir, &claimed).map_err(|_| AppError::NotFound(format!("draft {id}")))?;
        let length = zip.as_file().metadata().map_err(io)?.len();
        let body = batch_upload::file_stream(zip.reopen().map_err(io)?);
        let job =
            crate::batch::job::submit(&state.app, &session.actor, Some(length), body, false).await;
        let _ = match &job {
            Ok(_) => std::fs::remove_dir_all(&claimed),
            Err(_) => std::fs::rename(&claimed, &dir),
        };
        job
    }
    .await;
    match submitted {
        Ok(job) => see_other(&format!("/console/batches/{}", job.id)),
        Err(e) => error_page(&e, Some(&session)),
    }
}

/// Refuses a ticked row with a cell in doubt that was neither corrected nor confirmed as the
/// paper's (与原件一致): ticking the row alone must not carry a misread into a licence.
fn check_doubts_resolved(app: &App, draft: &Draft, form: &HashMap<String, String>) -> Result<()> {
    let mut unresolved_rows = Vec::new();
    for (i, row) in draft.rows.iter().enumerate() {
        if !form.contains_key(&format!("r{i}.checked")) {
            continue;
        }
        let unresolved: Vec<String> = row
            .doubts()
            .into_iter()
            .map(|(column, _)| column)
            .filter(|column| {
                let value = form.get(&format!("r{i}.{column}"));
                let read = row.cells.get(*column).map(|c| &c.value);
                value.is_none_or(|v| Some(v) == read)
                    && !form.contains_key(&format!("r{i}.{column}.same"))
            })
            .map(|column| column_label(app, &draft.type_code, column))
            .collect();
        if !unresolved.is_empty() {
            unresolved_rows.push(format!(
                "{}（{}）",
                shown_name(&row.scan),
                unresolved.join("、")
            ));
        }
    }
    if unresolved_rows.is_empty() {
        return Ok(());
    }
    Err(AppError::BadInput(format!(
        "这些待核对格子既未改正，也未勾选“与原件一致”，请用浏览器“后退”返回核对（已填内容仍在）：{}",
        unresolved_rows.join("；")
    )))
}

/// A batch zip of the checked rows, in a temporary file under `incoming`: `manifest.csv` (the
/// draft's columns, as corrected, with nothing left in review) and their scans, stored.
fn confirmed_batch(
    incoming: &FsPath,
    dir: &FsPath,
    draft: &Draft,
    form: &HashMap<String, String>,
    limit: u64,
) -> Result<tempfile::NamedTempFile> {
    let failed = |e: &dyn std::fmt::Display| AppError::Internal(format!("packing the draft: {e}"));
    let mut manifest = csv::Writer::from_writer(Vec::new());
    manifest
        .write_record(&draft.columns)
        .map_err(|e| failed(&e))?;
    let mut scans = Vec::new();
    for (i, row) in draft.rows.iter().enumerate() {
        if !form.contains_key(&format!("r{i}.checked")) {
            continue;
        }

        let record: Vec<String> = draft
            .columns
            .iter()
            .map(|column| match column.as_str() {
                "type_code" => draft.type_code.clone(),
                "scan" => row.scan.clone(),
                _ => form
                    .get(&format!("r{i}.{column}"))
                    .cloned()
                    .unwrap_or_else(|| {
                        row.cells
                            .get(column)
                            .map(|c| c.value.clone())
                            .unwrap_or_default()
                    }),
            })
            .collect();
        manifest.write_record(&record).map_err(|e| failed(&e))?;
        scans.push(row.scan.clone());
    }
    if scans.is_empty() {
        return Err(AppError::BadInput(
            "no row is ticked 已核对: nothing to convert".into(),
        ));
    }
    let manifest = manifest.into_inner().map_err(|e| failed(&e))?;
    let zip = tempfile::NamedTempFile::new_in(incoming).map_err(io)?;
    let mut writer = zip::ZipWriter::new(zip.reopen().map_err(io)?);
    let large = limit >= u64::from(u32::MAX);
    batch_upload::start_entry(&mut writer, "manifest.csv", large)?;
    writer.write_all(&manifest).map_err(io)?;
    for scan in scans {
        batch_upload::start_entry(&mut writer, &scan, large)?;
        let mut source = std::fs::File::open(dir.join(&scan)).map_err(io)?;
        std::io::copy(&mut source, &mut writer).map_err(io)?;
    }
    writer.finish().map_err(|e| failed(&e))?;
    Ok(zip)
}
