//! 电子监察: the supervision figures (`figures.rs`) and the audit trail for supervisors —
//! filtered, paged, its hash chain checked, and exported as a CSV — through the same operations
//! as `GET /api/v1/supervision/summary`, `GET /api/v1/audit` and `audit verify`.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::figures::{self, FigureQuery};
use super::layout::{error_page, frame, url_escaped};
use super::session::Signed;
use super::{page, words, SharedState};
use crate::app::AppError;
use crate::audit::Record;
use crate::batch::report::spreadsheet_text;
use crate::store::AuditFilter;

const TITLE: &str = "电子监察";
/// Records per page of the view.
const PAGE: i64 = 50;
/// The most records one export holds (a year of a county's work is far fewer).
const EXPORT_LIMIT: usize = 100_000;

/// The filters as the form sends them: dates (YYYY-MM-DD, China time) rather than RFC 3339.
#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    after: i64,
    #[serde(default)]
    check: String,
}

impl Filters {
    /// The store's filter: empty fields are no filter; a day runs from 00:00 China time.
    fn to_filter(&self) -> Result<AuditFilter, AppError> {
        let text = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let day = |s: &str, name: &str, next: bool| -> Result<Option<String>, AppError> {
            let Some(s) = text(s) else { return Ok(None) };
            let date = crate::time_util::parse_date(&s).ok_or_else(|| {
                AppError::BadInput(format!("{name}：请按 年-月-日 填写日期，例如 2026-12-01"))
            })?;
            let date = if next {
                date.next_day().unwrap_or(date)
            } else {
                date
            };
            Ok(Some(crate::time_util::format_rfc3339(
                crate::time_util::start_of_day_cst(date),
            )))
        };
        Ok(AuditFilter {
            actor: text(&self.actor),
            action: text(&self.action),
            target: text(&self.target),
            since: day(&self.since, "起始日期", false)?,
            until: day(&self.until, "截止日期", true)?,
        })
    }

    /// The query string of these filters (for the next page and the export links).
    fn query(&self, after: i64) -> String {
        let pairs = [
            ("actor", self.actor.as_str()),
            ("action", &self.action),
            ("target", &self.target),
            ("since", &self.since),
            ("until", &self.until),
        ];
        let mut query = form_urlencoded(&pairs);
        if after > 0 {
            query.push_str(&format!("&after={after}"));
        }
        query
    }
}

fn form_urlencoded(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_escaped(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn outcome_tag(outcome: &str) -> Markup {
    let (class, word) = if outcome == "ok" {
        ("ok", "成功")
    } else if outcome.starts_with("refused") {
        ("bad", "拒绝")
    } else {
        ("warn", "失败")
    };
    html! { span class=(format!("tag {class}")) title=(outcome) { (word) } }
}

pub async fn view(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Query(filters): Query<Filters>,
    Query(range): Query<FigureQuery>,
) -> Response {
    let filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return error_page(&e, Some(&session)),
    };
    let records = match state
        .app
        .audit_records(&session.actor, &filter, filters.after, PAGE)
        .await
    {
        Ok(records) => records,
        Err(e) => return error_page(&e, Some(&session)),
    };
    // After the trail's own permission check: one refusal is audited once, not twice.
    let figures = figures::section(&state, &session, &range).await;
    let chain = if filters.check == "1" {
        match state.app.verify_audit_chain(&session.actor).await {
            Ok(report) => Some(report),
            Err(e) => return error_page(&e, Some(&session)),
        }
    } else {
        None
    };
    let next = records
        .last()
        .map(|r| r.seq)
        .filter(|_| records.len() as i64 == PAGE);
    let body = html! {
        h1 { (TITLE) }
        (figures)
        h2 { "审计记录" }
        p { "每一次写入和被拒绝的尝试都有记录，前后以哈希相连：记录被修改或删除都能查出。" }
        @if let Some(report) = &chain {
            @match &report.first_break {
                None => div class="message ok" role="status" { p { "审计链完整：共 " (report.records) " 条记录，末条哈希 " code { (report.head) } "。" } },
                Some(b) => div class="message error" role="alert" { p { "审计链在第 " (b.seq) " 条记录处断开：" (b.reason) } },
            }
        }
        form method="get" action="/console/audit" class="card filters" {
            div { label for="actor" { "操作人" } input id="actor" name="actor" value=(filters.actor); }
            div { label for="action" { "操作" } input id="action" name="action" value=(filters.action) placeholder="如 licence.revoke"; }
            div { label for="target" { "对象" } input id="target" name="target" value=(filters.target); }
            div { label for="since" { "起始日期" } input id="since" name="since" type="date" value=(filters.since); }
            div { label for="until" { "截止日期" } input id="until" name="until" type="date" value=(filters.until); }
            div { button type="submit" { "筛选" } }
        }
        p {
            a href=(format!("/console/audit?{}", join(&filters.query(0), "check=1"))) { "校验审计链" }
            " · "
            a href=(format!("/console/audit/export.csv?{}", filters.query(0))) download { "导出筛选结果（CSV）" }
            " · "
            a href="/console/audit/alerts" { "警报" }
        }
        div class="table-wrap" {
            table {
                thead { tr {
                    th scope="col" { "序号" } th scope="col" { "时间" } th scope="col" { "操作人" }
                    th scope="col" { "来源" } th scope="col" { "操作" } th scope="col" { "对象" }
                    th scope="col" { "结果" } th scope="col" { "说明" }
                } }
                tbody {
                    @for r in &records {
                        tr {
                            td { (r.seq) } td { (words::date_time(&r.at)) } td { (r.actor) }
                            td { (r.source) } td { (r.action) } td { (r.target) }
                            td { (outcome_tag(&r.outcome)) }
                            td { @if r.outcome != "ok" { (r.outcome) br; } (r.detail) }
                        }
                    }
                    @if records.is_empty() { tr { td colspan="8" { "没有符合条件的记录。" } } }
                }
            }
        }
        @if let Some(next) = next {
            p { a href=(format!("/console/audit?{}", filters.query(next))) { "下一页" } }
        }
    };
    page(StatusCode::OK, frame(TITLE, Some(&session), body))
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}&{b}")
    }
}

/// The filtered records as a CSV (UTF-8 with a BOM, which Excel and WPS need to read it as
/// UTF-8), oldest first, at most [`EXPORT_LIMIT`] records. The export itself is audited.
pub async fn export(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Query(filters): Query<Filters>,
) -> Response {
    let filter = match filters.to_filter() {
        Ok(filter) => filter,
        Err(e) => return error_page(&e, Some(&session)),
    };
    let mut records: Vec<Record> = Vec::new();
    let mut after = filters.after;
    while records.len() < EXPORT_LIMIT {
        match state
            .app
            .audit_records(&session.actor, &filter, after, 1000)
            .await
        {
            Ok(page) if page.is_empty() => break,
            Ok(page) => {
                after = page.last().map_or(after, |r| r.seq);
                records.extend(page);
            }
            Err(e) => return error_page(&e, Some(&session)),
        }
    }
    records.truncate(EXPORT_LIMIT);
    let entry = crate::audit::Entry {
        detail: format!("{} records", records.len()),
        ..session.actor.entry("audit.export", "audit")
    };
    state.app.append_audit_or_hold(entry).await;
    match audit_csv(&records) {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
                (header::CACHE_CONTROL, "no-store"),
            ],
            csv,
        )
            .into_response(),
        Err(e) => error_page(&AppError::Internal(e.to_string()), Some(&session)),
    }
}

fn audit_csv(records: &[Record]) -> Result<Vec<u8>, csv::Error> {
    let mut out = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    out.write_record([
        "seq",
        "at",
        "actor",
        "source",
        "department",
        "action",
        "target",
        "outcome",
        "detail",
        "prev_hash",
        "hash",
    ])?;
    for r in records {
        let department = r.department.as_deref().unwrap_or("");
        let cells = [
            &r.seq.to_string(),
            &r.at,
            &r.actor,
            &r.source,
            department,
            &r.action,
            &r.target,
            &r.outcome,
            &r.detail,
            &r.prev_hash,
            &r.hash,
        ];
        out.write_record(cells.map(|c| spreadsheet_text(c).into_owned()))?;
    }
    out.into_inner().map_err(|e| e.into_error().into())
}
