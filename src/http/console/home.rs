//! 工作台: the dashboard every signed-in person lands on — licences by type and status, what
//! needs attention, and the way to each section their roles open.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{error_page, frame, may};
use super::session::Signed;
use super::{page, words, SharedState};
use crate::app::{Action, EXPIRY_WARNING_DAYS};
use crate::licence::Standing;

pub async fn page_of(State(state): State<SharedState>, Signed(session): Signed) -> Response {
    let figures = if may(&session, Action::ReadLicence) {
        match state.app.dashboard(&session.actor).await {
            Ok(figures) => Some(figures),
            Err(e) => return error_page(&e, Some(&session)),
        }
    } else {
        None
    };
    // Alerts of the last day, for those who watch (a count over a day's records, found by seq).
    let alerts = if may(&session, Action::ReadAudit) {
        let since = crate::time_util::now() - time::Duration::days(1);
        match state.app.alerts_since(&session.actor, since).await {
            Ok(alerts) => Some(alerts),
            Err(e) => return error_page(&e, Some(&session)),
        }
    } else {
        None
    };
    let writes = state.app.write_health.readiness();
    let body = html! {
        h1 { "工作台" }
        p { (session.name) "，您好。" }
        section aria-labelledby="attention" {
            h2 id="attention" { "待关注" }
            ul {
                @if !writes.ready {
                    li class="message error" { "系统暂时不能写入，签发和转换会失败，请联系管理员。" }
                }
                @if let Some(alerts) = alerts {
                    @if alerts > 0 {
                        li class="message error" { a href="/console/audit/alerts" { "最近 24 小时有 " (alerts) " 条警报" } "，请查看。" }
                    } @else {
                        li { "最近 24 小时没有警报。" }
                    }
                }
                @if let Some(figures) = &figures {
                    @if figures.expiring_soon > 0 {
                        li { (figures.expiring_soon) " 个证照将在 " (EXPIRY_WARNING_DAYS) " 天内到期，可办理延续。" }
                    } @else {
                        li { (EXPIRY_WARNING_DAYS) " 天内没有到期的证照。" }
                    }
                }
            }
        }
        @if let Some(figures) = &figures {
            section aria-labelledby="by-type" {
                h2 id="by-type" { "证照数量" }
                div class="table-wrap" {
                    table {
                        caption class="hint" { "按证照类型和状态统计" }
                        thead { tr { th scope="col" { "证照类型" } th scope="col" { (words::standing(Standing::Active)) } th scope="col" { (words::standing(Standing::Suspended)) } th scope="col" { (words::standing(Standing::Revoked)) } } }
                        tbody {
                            @for t in &figures.types {
                                tr {
                                    th scope="row" { (t.type_name) br; span class="hint" { (t.type_code) } }
                                    td { (t.active) } td { (t.suspended) } td { (t.revoked) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="go" {
            h2 id="go" { "常用操作" }
            ul {
                @if may(&session, Action::ConvertBatch) { li { a href="/console/batches" { "上传存量证照批次" } } }
                @if may(&session, Action::ReadLicence) { li { a href="/console/licences" { "查询证照" } } }
                @if may(&session, Action::ReadAudit) { li { a href="/console/audit" { "查看审计记录" } } }
                @if may(&session, Action::ManageStaff) { li { a href="/console/admin" { "管理人员、令牌和密钥" } } }
            }
        }
    };
    page(StatusCode::OK, frame("工作台", Some(&session), body))
}
