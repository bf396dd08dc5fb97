//! 证照查询: finding licences (by number, holder name, holder id or identifier, within what the
//! person may read), a licence's page (summary, versions, events, QR code, the PDF inline) and
//! its PDF. The officer actions on that page are in `licence_actions.rs`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{error_box, error_page, frame, may, qr_svg, status_of, url_escaped};
use super::session::Signed;
use super::{licence_actions, page, words, SharedState};
use crate::app::signin::ConsoleSession;
use crate::app::{Action, AppError, LicenceSearch, LicenceView, VersionView};
use crate::licence::Standing;

/// The section's title (the navigation marks it current).
pub const TITLE: &str = "证照查询";

/// Licences a result page lists.
const PAGE_SIZE: u32 = 20;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    number: String,
    #[serde(default)]
    holder_name: String,
    #[serde(default)]
    holder_id: String,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    page: String,
}

impl SearchQuery {
    fn is_empty(&self) -> bool {
        [
            &self.number,
            &self.holder_name,
            &self.holder_id,
            &self.identifier,
        ]
        .iter()
        .all(|v| v.trim().is_empty())
    }

    /// This search's address at result page `page` (0 the first).
    fn href(&self, page: u32) -> String {
        let mut pairs = vec![];
        for (name, value) in [
            ("number", &self.number),
            ("holder_name", &self.holder_name),
            ("holder_id", &self.holder_id),
            ("identifier", &self.identifier),
        ] {
            if !value.trim().is_empty() {
                pairs.push(format!("{name}={}", url_escaped(value.trim())));
            }
        }
        if page > 0 {
            pairs.push(format!("page={}", page + 1));
        }
        if pairs.is_empty() {
            "/console/licences".into()
        } else {
            format!("/console/licences?{}", pairs.join("&"))
        }
    }
}

/// `GET /console/licences`: the search form and what it finds (the most recent licences when
/// nothing is asked).
pub async fn search(
    State(state): State<SharedState>,
    Signed(session): Signed,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            let error = AppError::BadInput(format!("the search: {}", rejection.body_text()));
            return error_page(&error, Some(&session));
        }
    };
    let page_number = match query.page.trim() {
        "" => Ok(0),
        text => match text.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n - 1),
            _ => Err(AppError::BadInput(format!(
                "page: {text:?} is not a page number (1, 2, …)"
            ))),
        },
    };
    let search = LicenceSearch {
        identifier: query.identifier.clone(),
        number: query.number.clone(),
        holder_name: query.holder_name.clone(),
        holder_id: query.holder_id.clone(),
    };
    let found = match page_number {
        Ok(n) => state
            .app
            .search(&session.actor, &search, n, PAGE_SIZE)
            .await
            .map(|found| (n, found)),
        Err(e) => Err(e),
    };
    let status = match &found {
        Ok(_) => StatusCode::OK,
        Err(e) => status_of(e),
    };
    let body = html! {
        h1 { (TITLE) }
        (search_form(&query))
        @match &found {
            Err(error) => (error_box(error)),
            Ok((n, found)) => {
                h2 {
                    @if query.is_empty() { "最近签发的证照" } @else { "查询结果" }
                    @if *n > 0 { " · 第 " (n + 1) " 页" }
                }
                @if found.licences.is_empty() {
                    p { "没有找到符合条件的证照。" }
                } @else {
                    div class="table-wrap" {
                        table {
                            thead { tr {
                                th scope="col" { "证照类型" }
                                th scope="col" { "证照编号" }
                                th scope="col" { "持证人" }
                                th scope="col" { "状态" }
                                th scope="col" { "签发时间" }
                            } }
                            tbody {
                                @for licence in &found.licences {
                                    tr {
                                        td { (licence.type_name) }
                                        td { a href=(licence_href(&licence.licence_id)) { (licence.number) } }
                                        td { (licence.holder_name) }
                                        td { (standing_tag(licence.status)) }
                                        td { (words::date_time(&licence.created_at)) }
                                    }
                                }
                            }
                        }
                    }
                }
                nav aria-label="翻页" class="pages" {
                    @if *n > 0 { a href=(query.href(n - 1)) { "上一页" } " " }
                    @if found.more { a href=(query.href(n + 1)) { "下一页" } }
                }
            }
        }
    };
    page(status, frame(TITLE, Some(&session), body))
}

fn search_form(query: &SearchQuery) -> Markup {
    html! {
        form method="get" action="/console/licences" class="card filters" role="search" {
            div {
                label for="number" { "证照编号" }
                input id="number" name="number" value=(query.number) maxlength="200";
            }
            div {
                label for="holder_name" { "持证人名称" span class="hint" { "（部分即可）" } }
                input id="holder_name" name="holder_name" value=(query.holder_name) maxlength="200";
            }
            div {
                label for="holder_id" { "持证人证件号码" }
                input id="holder_id" name="holder_id" value=(query.holder_id) maxlength="200";
            }
            div {
                label for="identifier" { "证照标识" }
                input id="identifier" name="identifier" value=(query.identifier) maxlength="200";
            }
            div { button type="submit" { "查询" } }
        }
    }
}

/// A refusal to read a licence, as the console shows it: not found. Every role reads its own
/// department's licences, so a refused read means another department's licence, and the
/// console does not say that one exists (the refusal is in the audit trail all the same).
pub fn hidden(error: AppError, id: &str) -> AppError {
    match error {
        AppError::Forbidden(_) => AppError::NotFound(format!("licence {}", id.trim())),
        other => other,
    }
}

/// The page of the licence `licence_id`.
pub fn licence_href(licence_id: &str) -> String {
    format!("/console/licences/{licence_id}")
}

/// A licence's standing as a coloured tag.
pub fn standing_tag(standing: Standing) -> Markup {
    let class = match standing {
        Standing::Active => "tag ok",
        Standing::Suspended => "tag warn",
        Standing::Revoked => "tag bad",
    };
    html! { span class=(class) { (words::standing(standing)) } }
}

#[derive(Deserialize, Default)]
pub struct DetailQuery {
    /// What the officer just did (after a change, the page says so).
    #[serde(default)]
    done: String,
}

/// `GET /console/licences/{id}`: the licence's page. Another department's licence is not found.
pub async fn detail(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let done = query.map(|Query(q)| q.done).unwrap_or_default();
    let message = words::licence_change_done(&done);
    licence_page(&state, &session, &id, message, None).await
}

/// The licence's page, with `message` (a change just made) or `error` (a change refused, with
/// its form filled in again) above it.
pub async fn licence_page(
    state: &SharedState,
    session: &ConsoleSession,
    id: &str,
    message: Option<&str>,
    error: Option<(&AppError, licence_actions::Filled<'_>)>,
) -> Response {
    let actor = &session.actor;
    let shown = match state.app.show(actor, id, None).await {
        Ok(shown) => shown,
        Err(e) => return error_page(&hidden(e, id), Some(session)),
    };
    let versions = match state.app.versions(actor, &shown.licence_id).await {
        Ok(versions) => versions,
        Err(e) => return error_page(&hidden(e, id), Some(session)),
    };
    let current = versions
        .iter()
        .find(|v| v.version == shown.in_effect_version)
        .unwrap_or(&shown.version);
    let fields = labelled_fields(state, &shown, current);
    let href = licence_href(&shown.licence_id);
    let body = html! {
        p { a href="/console/licences" { "← 返回证照查询" } }
        h1 { (shown.type_name) " " (shown.number) }
        @if let Some(message) = message {
            div class="message ok" role="status" { p { (message) } }
        }
        @if let Some((error, _)) = &error { (error_box(error)) }
        div class="card" {
            dl class="fields" {
                dt { "证照类型" } dd { (shown.type_name) }
                dt { "证照编号" } dd { (shown.number) }
                dt { "状态" } dd { (standing_tag(shown.status)) }
                dt { "持证人" } dd { (current.holder.name) }
                dt { "持证人证件号码" } dd { (current.holder.id) }
                dt { "有效期" } dd {
                    (words::date(&current.valid_from)) " 至 "
                    @match &current.valid_until {
                        Some(until) => (words::date(until)),
                        None => "长期",
                    }
                    " （" (words::validity(current.validity)) "）"
                }
                dt { "现行版本" } dd { "第 " (current.version) " 版" }
                @if let Some(pending) = &shown.pending {
                    dt { "待生效版本" } dd { "第 " (pending.version) " 版，" (words::date(&pending.valid_from)) " 起生效" }
                }
                dt { "证照标识" } dd { code { (current.id) } }
                @for (label, value) in &fields {
                    dt { (label) }
                    dd { (value) }
                }
            }
        }
        @if may(session, Action::ChangeLicence) {
            (licence_actions::forms(
                session,
                &shown,
                licence_actions::licence_type_of(state, &shown),
                error.as_ref().map(|(_, filled)| filled),
            ))
        }
        h2 { "二维码" }
        figure class="qr" {
            (qr_svg(&current.qr_text, "现行版本的核验二维码"))
            figcaption {
                "现行版本（第 " (current.version) " 版）的核验二维码"
                details { summary { "二维码内容" } code class="secret" { (current.qr_text) } }
            }
        }
        h2 { "电子证照文件" }
        p {
            a href=(format!("{href}/pdf?version={}&download=1", current.version)) { "下载现行版本 PDF" }
        }
        iframe class="pdf" src=(format!("{href}/pdf?version={}", current.version)) title=(format!("{} {} 第 {} 版 PDF", shown.type_name, shown.number, current.version)) {}
        h2 { "版本" }
        (version_table(&href, &versions))
        h2 { "变更记录" }
        ol class="timeline" {
            @for event in shown.events.iter().rev() {
                li {
                    b { (words::event(event.kind)) }
                    " · " (words::date_time(&event.at)) " · 第 " (event.version) " 版 · 操作人 " (words::actor(&event.actor))
                    @if let Some(reason) = &event.reason { br; "理由：" (reason) }
                }
            }
        }
    };
    let status = match &error {
        Some((error, _)) => status_of(error),
        None => StatusCode::OK,
    };
    page(status, frame(TITLE, Some(session), body))
}

fn version_table(href: &str, versions: &[VersionView]) -> Markup {
    html! {
        div class="table-wrap" {
            table {
                thead { tr {
                    th scope="col" { "版本" }
                    th scope="col" { "签发时间" }
                    th scope="col" { "有效期" }
                    th scope="col" { "持证人" }
                    th scope="col" { "文件" }
                } }
                tbody {
                    @for v in versions.iter().rev() {
                        tr {
                            td { "第 " (v.version) " 版" @if v.superseded { " （已被取代）" } }
                            td { (words::date_time(&v.issued_at)) }
                            td {
                                (words::date(&v.valid_from)) " 至 "
                                @match &v.valid_until { Some(u) => (words::date(u)), None => "长期" }
                            }
                            td { (v.holder.name) }
                            td {
                                a href=(format!("{href}/pdf?version={}", v.version)) { "查看 PDF" }
                                " · "
                                a href=(format!("{href}/pdf?version={}&download=1", v.version)) { "下载" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The version's fields as (label, value): in the order the directory lists the type's fields,
/// then any the type no longer has, under their keys.
fn labelled_fields(
    state: &SharedState,
    shown: &LicenceView,
    version: &VersionView,
) -> Vec<(String, String)> {
    let defs = licence_actions::licence_type_of(state, shown).map_or(&[][..], |t| &t.fields[..]);
    let known = defs.iter().filter_map(|def| {
        let value = version.fields.get(&def.key)?;
        Some((def.label.clone(), value.to_string()))
    });
    let unknown = version
        .fields
        .iter()
        .filter(|(key, _)| !defs.iter().any(|def| &def.key == *key))
        .map(|(key, value)| (key.clone(), value.to_string()));
    known.chain(unknown).collect()
}

#[derive(Deserialize, Default)]
pub struct PdfQuery {
    #[serde(default)]
    version: String,
    #[serde(default)]
    download: String,
}

/// `GET /console/licences/{id}/pdf?version=N[&download=1]`: a version's PDF, inline (framed by the
/// console's own licence page, and by no other site) or as a download.
pub async fn pdf(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    query: Result<Query<PdfQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(rejection) => {
            let error = AppError::BadInput(rejection.body_text());
            return error_page(&error, Some(&session));
        }
    };
    let version = match query.version.trim() {
        "" => None,
        text => match text.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                let error = AppError::BadInput(format!(
                    "version: {text:?} is not a version number (1, 2, …)"
                ));
                return error_page(&error, Some(&session));
            }
        },
    };
    let bytes = match state.app.pdf(&session.actor, &id, version).await {
        Ok(bytes) => bytes,
        Err(e) => return error_page(&hidden(e, &id), Some(&session)),
    };
    let name = format!(
        "elicence-{}-v{}.pdf",
        id.trim().replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        version.map_or_else(|| "latest".to_string(), |v| v.to_string())
    );
    let disposition = if query.download.is_empty() {
        "inline"
    } else {
        "attachment"
    };
    let mut response = ([(header::CONTENT_TYPE, "application/pdf")], bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'self'"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_keeps_its_fields_in_the_next_page_address() {
        let query = SearchQuery {
            holder_name: " 张 三&x ".into(),
            number: "JY-1".into(),
            ..Default::default()
        };
        assert_eq!(
            query.href(1),
            "/console/licences?number=JY-1&holder_name=%E5%BC%A0%20%E4%B8%89%26x&page=2"
        );
        assert_eq!(SearchQuery::default().href(0), "/console/licences");
    }
}
