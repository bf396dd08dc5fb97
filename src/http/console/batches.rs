//! 存量证照转换 (SPEC §9, §14): the department's recent conversion jobs with the upload form, a
//! job's page (its figures, live progress, its rows' outcomes by outcome and page, the form to
//! resubmit corrected rows), the rejected rows as CSV to correct, and the job's progress as
//! server-sent events. Every read goes through [`job::readable`]'s check (another department's
//! job is not found); uploads are in [`super::batch_upload`].

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, error_page, frame, frame_with_head, may, url_escaped};
use super::session::Signed;
use super::{page, words};
use crate::app::signin::ConsoleSession;
use crate::app::{Action, Actor, App, AppError};
use crate::batch::report::spreadsheet_text;
use crate::batch::{job, BatchState, RowOutcome};
use crate::http::SharedState;
use crate::store::{BatchRecord, RejectedRow, RowResult};

const TITLE: &str = "存量证照转换";

/// Rows on a job's page.
const PAGE_ROWS: i64 = 50;

/// Rejected rows read from the store at a time for the CSV.
const CSV_PAGE: i64 = 1000;

/// `GET /console/batches`: the upload form and the recent jobs.
pub async fn list(State(state): State<SharedState>, Signed(session): Signed) -> Response {
    let jobs = match job::recent(&state.app, &session.actor, 30).await {
        Ok(jobs) => jobs,
        Err(e) => return error_page(&e, Some(&session)),
    };
    let body = html! {
        h1 { (TITLE) }
        @if may(&session, Action::ConvertBatch) {
            (upload_form(&session, false))
            (super::drafts::start_form(&session, &state.app))
        }
        h2 { "最近的转换任务" }
        @if jobs.is_empty() {
            p { "还没有转换任务。" }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "提交时间" } th scope="col" { "提交人" }
                        th scope="col" { "状态" } th scope="col" { "已签发" }
                        th scope="col" { "已跳过" } th scope="col" { "已拒绝" }
                        th scope="col" { "进度" } th scope="col" { "任务" }
                    } }
                    tbody {
                        @for j in &jobs {
                            tr {
                                td { (words::date_time(&j.created_at)) }
                                td { (words::actor(&j.actor)) }
                                td { (state_tag(j.state)) }
                                td { (j.issued) } td { (j.skipped) } td { (j.rejected) }
                                td { (done(j)) @if let Some(total) = j.total_rows { " / " (total) } }
                                td { a href=(job_path(&j.id)) { "查看 " span class="hint" { (j.id) } } }
                            }
                        }
                    }
                }
            }
        }
    };
    page(StatusCode::OK, frame(TITLE, Some(&session), body))
}

/// The upload form: a zip, or (to resubmit corrected rows) the manifest and its scans.
fn upload_form(session: &ConsoleSession, corrected: bool) -> Markup {
    html! {
        form class="card" method="post" action="/console/batches" enctype="multipart/form-data" {
            h2 { @if corrected { "提交更正后的文件" } @else { "上传批量文件" } }
            // The token and the box come before the files: the server reads them first.
            (csrf_field(session))
            label {
                input type="checkbox" name="all_or_nothing" value="1";
                " 全部成功才签发"
                span class="hint" { "（有任何一行被拒绝时，一张也不签发）" }
            }
            @if corrected {
                label for="manifest" { "更正后的清单（CSV）" }
                p class="hint" id="manifest-hint" {
                    "可直接上传下载的“被拒绝的行”文件，改正后不必删除 rejection_reason 列。"
                }
                input type="file" id="manifest" name="manifest" required
                    accept=".csv,text/csv" aria-describedby="manifest-hint";
                label for="scans" { "清单列出的扫描件（可多选）" }
                p class="hint" id="scans-hint" { "文件名须与清单 scan 列中的文件名一致。" }
                input type="file" id="scans" name="scans" multiple
                    accept=".jpg,.jpeg,.png,.tif,.tiff,.pdf" aria-describedby="scans-hint";
                button type="submit" { "提交更正后的文件" }
            } @else {
                label for="zip" { "批量文件（zip）" }
                p class="hint" id="zip-hint" {
                    "zip 中包含 manifest.csv 及其 scan 列列出的扫描件（JPEG、PNG、TIFF 或 PDF）。"
                }
                input type="file" id="zip" name="zip" required accept=".zip,application/zip"
                    aria-describedby="zip-hint";
                button type="submit" { "上传并开始转换" }
            }
        }
    }
}

fn job_path(id: &str) -> String {
    format!("/console/batches/{}", url_escaped(id))
}

fn done(job: &BatchRecord) -> u64 {
    job.issued + job.skipped + job.rejected
}

fn live(state: BatchState) -> bool {
    matches!(state, BatchState::Queued | BatchState::Running)
}

fn state_tag(state: BatchState) -> Markup {
    let class = match state {
        BatchState::Done => "tag ok",
        BatchState::Queued | BatchState::Running => "tag warn",
        BatchState::Failed | BatchState::Interrupted => "tag bad",
    };
    html! { span class=(class) { (words::batch_state(state)) } }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    after_line: u64,
}

/// The filter's choices: (query value, outcome).
const FILTERS: [(&str, Option<RowOutcome>); 4] = [
    ("all", None),
    ("issued", Some(RowOutcome::Issued)),
    ("skipped", Some(RowOutcome::Skipped)),
    ("rejected", Some(RowOutcome::Rejected)),
];

/// `GET /console/batches/{id}`: the job's figures and a page of its rows.
pub async fn show(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    query: std::result::Result<Query<JobQuery>, QueryRejection>,
) -> Response {
    let fail = |e: AppError| error_page(&e, Some(&session));
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return fail(AppError::BadInput(format!("the address: {e}"))),
    };
    let wanted = q.outcome.as_deref().unwrap_or("all");
    let Some(&(filter, outcome)) = FILTERS.iter().find(|(value, _)| *value == wanted) else {
        return fail(AppError::BadInput(format!(
            "outcome {wanted:?} is not one of all, issued, skipped, rejected"
        )));
    };
    let (job, rows) = match job::status_of(
        &state.app,
        &session.actor,
        &id,
        outcome,
        q.after_line,
        PAGE_ROWS,
    )
    .await
    {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    let head = html! {
        @if live(job.state) { meta http-equiv="refresh" content="3"; }
    };
    let body = html! {
        p { a href="/console/batches" { "← 返回" (TITLE) } }
        h1 { "转换任务 " span class="hint" { (job.id) } }
        (figures(&job))
        (details(&job))
        @if job.rejected > 0 && !live(job.state) {
            h2 { "被拒绝的行" }
            p {
                "下载被拒绝的行（保留原来的各列，最后一列 rejection_reason 说明原因），改正后重新提交："
            }
            ul {
                li { a href={ (job_path(&job.id)) "/rejected.csv" } download {
                    "下载 CSV（GB18030，Excel、WPS 可直接打开）" } }
                li { a href={ (job_path(&job.id)) "/rejected.csv?encoding=utf-8" } download {
                    "下载 CSV（UTF-8）" } }
            }
            @if may(&session, Action::ConvertBatch) { (upload_form(&session, true)) }
        }
        h2 { "各行结果" }
        (filter_form(&job.id, filter))
        (rows_table(&state.app, &rows))
        (paging(&job.id, filter, q.after_line, &rows))
    };
    page(
        StatusCode::OK,
        frame_with_head(TITLE, Some(&session), head, body),
    )
}

/// The job's state and counts; while it runs, updated live by console.js from the events.
fn figures(job: &BatchRecord) -> Markup {
    let events = live(job.state).then(|| format!("{}/events", job_path(&job.id)));
    let total = job.total_rows;
    html! {
        section aria-label="进度" data-progress-events=[events] {
            p { "状态：" (state_tag(job.state)) }
            div class="figures" {
                div class="figure" { "已签发" b data-figure="issued" { (job.issued) } }
                div class="figure" { "已跳过" b data-figure="skipped" { (job.skipped) } }
                div class="figure" { "已拒绝" b data-figure="rejected" { (job.rejected) } }
                div class="figure" {
                    "已处理"
                    b { span data-figure="done" { (done(job)) } " / "
                        span data-figure="total" { (total.map_or("?".to_string(), |t| t.to_string())) } }
                }
            }
            @match total {
                Some(total) => { progress max=(total.max(1)) value=(done(job)) aria-label="转换进度" { (done(job)) " / " (total) } }
                None => { progress aria-label="转换进度" { "排队中" } }
            }
        }
    }
}

fn details(job: &BatchRecord) -> Markup {
    html! {
        dl class="fields card" {
            dt { "提交人" } dd { (words::actor(&job.actor)) }
            dt { "提交时间" } dd { (words::date_time(&job.created_at)) }
            @if let Some(at) = &job.finished_at { dt { "结束时间" } dd { (words::date_time(at)) } }
            dt { "全部成功才签发" } dd { @if job.all_or_nothing { "是" } @else { "否" } }
        }
        @if let Some(error) = &job.error {
            div class="message error" role="alert" {
                p { "转换没有完成。" }
                @if let Some(chinese) = &job.error_zh { p { (chinese) } }
                p class="detail" lang="en" { (error) }
            }
        }
    }
}

fn filter_form(id: &str, current: &str) -> Markup {
    html! {
        form class="filters" method="get" action=(job_path(id)) {
            div {
                label for="outcome" { "结果" }
                select id="outcome" name="outcome" {
                    @for (value, outcome) in FILTERS {
                        option value=(value) selected[value == current] {
                            (outcome.map_or("全部", words::outcome))
                        }
                    }
                }
            }
            button type="submit" { "筛选" }
        }
    }
}

fn rows_table(app: &App, rows: &[RowResult]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "没有符合条件的行。" }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "行号" } th scope="col" { "结果" }
                        th scope="col" { "证照类型" } th scope="col" { "证照编号" }
                        th scope="col" { "说明" }
                    } }
                    tbody {
                        @for row in rows {
                            tr {
                                td { (row.line) }
                                td { (words::outcome(row.outcome)) }
                                td { (type_name(app, &row.type_code)) }
                                td { (row.number) }
                                td { (row_note(app, row)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn row_note(app: &App, row: &RowResult) -> Markup {
    html! {
        @if let Some(id) = &row.licence_id {
            a href={ "/console/licences/" (url_escaped(id)) } {
                @if row.outcome == RowOutcome::Skipped { "此前已转换：" } (id)
            }
        }
        @if let Some(reason) = &row.reason {
            @let column = row.column.as_deref().unwrap_or("");
            strong { (columns_named(app, column)) "：" }
            @match row.reason_zh.as_deref().filter(|zh| !zh.is_empty()) {
                Some(chinese) => { (chinese) br; span class="hint" lang="en" { (reason) } }
                None => { (reason) }
            }
        }
    }
}

/// A type code as its directory name (the code itself when the directory has none).
fn type_name(app: &App, code: &str) -> String {
    crate::identifiers::TypeCode::parse(code)
        .ok()
        .and_then(|c| app.licence_type(&c).ok())
        .map_or_else(|| code.to_string(), |t| t.name.clone())
}

/// A rejected row's column(s) (`a,b` when several) in Chinese, with the column's own name.
fn columns_named(app: &App, columns: &str) -> String {
    let named: Vec<String> = columns
        .split(',')
        .map(|column| {
            let label = words::manifest_column(column)
                .map(str::to_string)
                .or_else(|| {
                    app.directory
                        .types()
                        .flat_map(|t| t.fields.iter())
                        .find(|f| f.key == column)
                        .map(|f| f.label.clone())
                });
            match label {
                Some(label) if column != "*" => format!("{label}（{column}）"),
                Some(label) => label,
                None => column.to_string(),
            }
        })
        .collect();
    named.join("、")
}

fn paging(id: &str, filter: &str, after_line: u64, rows: &[RowResult]) -> Markup {
    let base = format!("{}?outcome={filter}", job_path(id));
    let next = rows
        .last()
        .filter(|_| rows.len() as i64 == PAGE_ROWS)
        .map(|last| format!("{base}&after_line={}", last.line));
    html! {
        @if after_line > 0 || next.is_some() {
            nav aria-label="分页" class="paging" {
                @if after_line > 0 { a href=(base) { "第一页" } " " }
                @if let Some(next) = next { a href=(next) { "下一页" } }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvQuery {
    #[serde(default)]
    encoding: Option<String>,
}

/// `GET /console/batches/{id}/rejected.csv?encoding=gb18030|utf-8`: the rejected rows with their
/// original cells in the manifest's order and a last column `rejection_reason`. GB18030 by
/// default (what Excel and WPS in China open directly); UTF-8 with a BOM.
pub async fn rejected_csv(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    query: std::result::Result<Query<CsvQuery>, QueryRejection>,
) -> Response {
    let fail = |e: AppError| error_page(&e, Some(&session));
    let gb18030 = match query.as_ref().map(|Query(q)| q.encoding.as_deref()) {
        Ok(None | Some("gb18030")) => true,
        Ok(Some("utf-8")) => false,
        Ok(Some(other)) => {
            return fail(AppError::BadInput(format!(
                "encoding {other:?} is not gb18030 or utf-8"
            )))
        }
        Err(e) => return fail(AppError::BadInput(format!("the address: {e}"))),
    };
    let app = state.app.clone();
    let (_, first) = match job::rejected_rows(&app, &session.actor, &id, 0, CSV_PAGE).await {
        Ok(found) => found,
        Err(e) => return fail(e),
    };
    let columns: Vec<String> = first
        .iter()
        .find(|r| !r.cells.is_empty())
        .map(|r| r.cells.iter().map(|(c, _)| c.clone()).collect())
        .unwrap_or_else(|| {
            crate::batch::manifest::STANDARD_COLUMNS
                .map(String::from)
                .to_vec()
        });
    let mut header = columns.clone();
    header.push(crate::batch::manifest::REJECTION_REASON.to_string());
    let mut start = if gb18030 {
        Vec::new()
    } else {
        "\u{feff}".as_bytes().to_vec()
    };
    start.extend(csv_text(&[header], gb18030));
    let csv = CsvPages {
        app: app.clone(),
        actor: session.actor.clone(),
        id: id.clone(),
        columns,
        gb18030,
    };
    let body = futures_util::stream::unfold(
        (Some(start), Some(first), csv),
        |(start, page, csv)| async move {
            if let Some(start) = start {
                return Some((Ok::<_, AppError>(start), (None, page, csv)));
            }
            let page = page?;
            let bytes = csv.encode(&page);
            let next = match page.last() {
                Some(last) if page.len() as i64 == CSV_PAGE => {
                    match job::rejected_rows(&csv.app, &csv.actor, &csv.id, last.line, CSV_PAGE)
                        .await
                    {
                        Ok((_, rows)) => Some(rows),
                        Err(e) => return Some((Err(e), (None, None, csv))),
                    }
                }
                _ => None,
            };
            Some((Ok(bytes), (None, next, csv)))
        },
    );
    let charset = if gb18030 { "gb18030" } else { "utf-8" };
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    let disposition = format!("attachment; filename=\"rejected-{}.csv\"", url_escaped(&id));
    let values = [
        (header::CONTENT_TYPE, format!("text/csv; charset={charset}")),
        (header::CONTENT_DISPOSITION, disposition),
        (header::CACHE_CONTROL, "no-store".to_string()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// What writes the pages of a rejected-rows CSV.
struct CsvPages {
    app: std::sync::Arc<App>,
    actor: Actor,
    id: String,
    columns: Vec<String>,
    gb18030: bool,
}

impl CsvPages {
    fn encode(&self, rows: &[RejectedRow]) -> Vec<u8> {
        let records: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                let mut record: Vec<String> = self
                    .columns
                    .iter()
                    .map(|column| {
                        let cell = row.cells.iter().find(|(c, _)| c == column);
                        // A rejected row's cells are anyone's text: a formula is shown as text
                        // (the manifest reader takes the `'` off again on resubmission).
                        cell.map(|(_, v)| spreadsheet_text(v).into_owned())
                            .unwrap_or_default()
                    })
                    .collect();
                record.push(self.reason(row));
                record
            })
            .collect();
        csv_text(&records, self.gb18030)
    }

    /// `rejection_reason`: the line, the column and why, in Chinese from the message catalogue
    /// (a row rejected before it kept Chinese reasons: in the service's English).
    fn reason(&self, row: &RejectedRow) -> String {
        let column = columns_named(&self.app, &row.column);
        let why = if row.reason_zh.is_empty() {
            &row.reason
        } else {
            &row.reason_zh
        };
        format!("第{}行 {column}：{why}", row.line)
    }
}

/// CSV records as bytes in GB18030 or UTF-8.
fn csv_text(records: &[Vec<String>], gb18030: bool) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for record in records {
        // Writing to memory cannot fail.
        let _ = writer.write_record(record);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    if !gb18030 {
        return bytes;
    }
    let text = String::from_utf8_lossy(&bytes);
    encoding_rs::GB18030.encode(&text).0.into_owned()
}

/// `GET /console/batches/{id}/events`: `progress` events about every second until the job
/// ends, then a last one with `finished` and the stream closes.
pub async fn events(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    let app = state.app.clone();
    if let Err(e) = job::readable(&app, &session.actor, &id).await {
        return error_page(&e, Some(&session));
    }
    let actor = session.actor.clone();
    Sse::new(progress_events(app, actor, id))
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn progress_events(
    app: std::sync::Arc<App>,
    actor: Actor,
    id: String,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> {
    futures_util::stream::unfold(Some(true), move |step| {
        let (app, actor, id) = (app.clone(), actor.clone(), id.clone());
        async move {
            let first = step?;
            if !first {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            // A job that can no longer be read (gone, or a store error) ends the stream.
            let job = job::readable(&app, &actor, &id).await.ok()?;
            let finished = !live(job.state);
            let figures = serde_json::json!({
                "done": done(&job),
                "total": job.total_rows.unwrap_or(0),
                "issued": job.issued,
                "skipped": job.skipped,
                "rejected": job.rejected,
                "finished": finished,
            });
            let event = Event::default().event("progress").data(figures.to_string());
            Some((Ok(event), (!finished).then_some(false)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_is_gb18030_or_utf8() {
        let records = vec![vec!["张三".to_string(), "a,b".to_string()]];
        let utf8 = csv_text(&records, false);
        assert_eq!(String::from_utf8(utf8).unwrap(), "张三,\"a,b\"\n");
        let gb = csv_text(&records, true);
        let (text, _, bad) = encoding_rs::GB18030.decode(&gb);
        assert!(!bad);
        assert_eq!(text, "张三,\"a,b\"\n");
        assert_ne!(gb, "张三,\"a,b\"\n".as_bytes());
    }

    #[test]
    fn a_full_page_links_to_the_next_and_a_later_page_back_to_the_first() {
        let row = |line: u64| RowResult {
            line,
            outcome: RowOutcome::Issued,
            type_code: String::new(),
            number: String::new(),
            licence_id: None,
            column: None,
            reason: None,
            reason_zh: None,
        };
        let full: Vec<RowResult> = (2..2 + PAGE_ROWS as u64).map(row).collect();
        let first = paging("j1", "issued", 0, &full).into_string();
        assert!(first.contains("href=\"/console/batches/j1?outcome=issued&amp;after_line=51\""));
        assert!(!first.contains("第一页"), "{first}");
        let last = paging("j1", "issued", 51, &[row(52)]).into_string();
        assert!(
            last.contains("第一页") && !last.contains("下一页"),
            "{last}"
        );
        assert_eq!(paging("j1", "all", 0, &[row(2)]).into_string(), "");
    }

    #[test]
    fn a_console_account_is_shown_by_name_and_login() {
        assert_eq!(words::actor("staff:wang.fang:王芳"), "王芳（wang.fang）");
        assert_eq!(words::actor("token:窗口一"), "token:窗口一");
    }

    #[test]
    fn ids_in_addresses_are_percent_encoded() {
        assert_eq!(
            url_escaped("20261202-101500-0a1b2c3d"),
            "20261202-101500-0a1b2c3d"
        );
        assert_eq!(url_escaped("a/b?c"), "a%2Fb%3Fc");
    }
}
