//! 警报: the alerts the rules of electronic supervision raised (SPEC §15), newest first, for
//! those who read the audit trail and within their department. Each alert is an audit record
//! (`alert.{rule}`) whose detail holds its figures and the seqs of the records behind it.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{error_page, frame};
use super::session::Signed;
use super::{page, words, SharedState};
use crate::alerts::alert_detail;
use crate::audit::Record;

const TITLE: &str = "警报";
/// Alerts per page.
const PAGE: i64 = 50;
/// Records linked from one alert; its count says how many there were.
const LINKED: usize = 5;

#[derive(Deserialize, Default)]
pub struct Paging {
    /// Show alerts older than this seq (0: the newest).
    #[serde(default)]
    before: i64,
}

pub async fn list(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Query(paging): Query<Paging>,
) -> Response {
    let records = match state
        .app
        .alert_records(&session.actor, paging.before, PAGE)
        .await
    {
        Ok(records) => records,
        Err(e) => return error_page(&e, Some(&session)),
    };
    let next = records
        .last()
        .map(|r| r.seq)
        .filter(|_| records.len() as i64 == PAGE);
    let issuers = state.app.directory.issuers();
    let department = |uscc: Option<&str>| match uscc {
        None => "全局".to_string(),
        Some(uscc) => issuers
            .iter()
            .find(|i| i.uscc.as_str() == uscc)
            .map_or_else(|| uscc.to_string(), |i| i.name.clone()),
    };
    let body = html! {
        h1 { (TITLE) }
        p { "按监察规则自动发现的异常情况，最新的在前。每条警报本身也是一条审计记录，随审计记录报送市监察平台。" }
        p { a href="/console/audit" { "返回电子监察" } }
        div class="table-wrap" {
            table {
                thead { tr {
                    th scope="col" { "时间" } th scope="col" { "规则" } th scope="col" { "对象" }
                    th scope="col" { "部门" } th scope="col" { "情况" } th scope="col" { "相关记录" }
                } }
                tbody {
                    @for r in &records {
                        (row(r, &department(r.department.as_deref())))
                    }
                    @if records.is_empty() { tr { td colspan="6" { "没有警报。" } } }
                }
            }
        }
        @if let Some(next) = next {
            p { a href=(format!("/console/audit/alerts?before={next}")) { "更早的警报" } }
        }
    };
    page(StatusCode::OK, frame(TITLE, Some(&session), body))
}

/// One alert: when, which rule, about whom or what, and its figures in words.
fn row(record: &Record, department: &str) -> Markup {
    let detail = alert_detail(record);
    let at = detail
        .as_ref()
        .map_or(record.at.as_str(), |d| d.at.as_str());
    html! {
        tr {
            td { (words::date_time(at)) }
            td {
                (detail.as_ref().map_or("警报", |d| words::alert_rule(d.kind, d.per)))
                br; span class="hint" { (record.action) }
            }
            td { (words::actor(&record.target)) }
            td { (department) }
            td {
                @match &detail {
                    Some(d) => (words::alert_figures(d)),
                    None => (record.detail),
                }
            }
            td {
                @if let Some(d) = &detail {
                    @for seq in d.seqs.iter().take(LINKED) {
                        a href=(format!("/console/audit?after={}", seq - 1)) { "#" (seq) } " "
                    }
                    @if d.seqs.len() > LINKED { "等" }
                }
            }
        }
    }
}
