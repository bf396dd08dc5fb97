//! An officer's changes on a licence's page: 暂停, 恢复, 注销 (suspend, reinstate, revoke), 延续
//! (renew) and 变更 (amend). Each is posted with a reason, then confirmed on a page that restates
//! it, then made through the API's own operation ([`App::change_status`], [`App::renew`],
//! [`App::amend`]), which checks the permission and writes the audit record. The console asks a
//! reason of every change but a reinstatement; the API keeps its own rule. The forms and reading
//! of a renewal and an amendment are in `licence_changes.rs`.
//!
//! [`App::change_status`]: crate::app::App::change_status
//! [`App::renew`]: crate::app::App::renew
//! [`App::amend`]: crate::app::App::amend

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};

use super::layout::{csrf_field, error_page, frame};
use super::licence_changes::{amend_form, read_amendment, read_renewal, renew_form};
use super::licences::{hidden, licence_href, licence_page, standing_tag, TITLE};
use super::session::{check_csrf, Signed};
use super::{page, see_other, words, SharedState};
use crate::app::signin::ConsoleSession;
use crate::app::{Amendment, AppError, LicenceView, Renewal};
use crate::directory::LicenceType;
use crate::licence::{EventKind, Standing};

/// The longest reason the console takes.
const MAX_REASON: usize = 500;

/// A change form as it was posted, to show it again with its error.
#[derive(Clone, Copy)]
pub struct Filled<'a> {
    pub act: &'a str,
    pub values: &'a [(String, String)],
}

impl Filled<'_> {
    /// The value posted as `name` if this was the form of `act`.
    pub fn value(filled: Option<&Self>, act: &str, name: &str) -> Option<String> {
        let filled = filled.filter(|f| f.act == act)?;
        value_of(filled.values, name).map(str::to_string)
    }
}

/// The first value posted as `name`.
pub fn value_of<'a>(values: &'a [(String, String)], name: &str) -> Option<&'a str> {
    values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The address every change form posts to.
pub fn change_href(licence_id: &str) -> String {
    format!("{}/change", licence_href(licence_id))
}

/// The change forms the licence's standing allows, for a person who may change it.
pub fn forms(
    session: &ConsoleSession,
    shown: &LicenceView,
    licence_type: Option<&LicenceType>,
    filled: Option<&Filled>,
) -> Markup {
    let acts: &[&str] = match shown.status {
        Standing::Active => &["suspend", "revoke"],
        Standing::Suspended => &["reinstate", "revoke"],
        Standing::Revoked => &[],
    };
    html! {
        @if !acts.is_empty() {
            h2 { "审批操作" }
            div class="figures" {
                @for act in acts {
                    @if let Some((kind, name)) = words::licence_change(act) {
                        form method="post" action=(change_href(&shown.licence_id)) class="card" {
                            (csrf_field(session))
                            input type="hidden" name="act" value=(act);
                            (reason_field(act, name, kind, filled))
                            div {
                                button type="submit" class=[(kind == EventKind::Revoked).then_some("danger")] {
                                    (name) "…"
                                }
                            }
                        }
                    }
                }
            }
        }
        @if shown.status == Standing::Active {
            @if shown.version.valid_until.is_some() {
                (renew_form(session, shown, filled))
            }
            @if let Some(licence_type) = licence_type {
                (amend_form(session, shown, licence_type, filled))
            }
        }
    }
}

/// The reason's label and text area of the form of `act`.
pub fn reason_field(act: &str, name: &str, kind: EventKind, filled: Option<&Filled>) -> Markup {
    let id = format!("reason-{act}");
    let reason = Filled::value(filled, act, "reason").unwrap_or_default();
    html! {
        label for=(id) {
            (name) "理由"
            @if reason_required(kind) { span class="hint" { "（必填）" } }
            @else { span class="hint" { "（选填）" } }
        }
        textarea id=(id) name="reason" rows="3" maxlength=(MAX_REASON)
            required[reason_required(kind)] { (reason) }
    }
}

/// The console asks a reason of every change but a reinstatement.
fn reason_required(kind: EventKind) -> bool {
    kind != EventKind::Reinstated
}

/// A change read from its form, ready for its operation.
enum Asked {
    Status(EventKind),
    Renew(Renewal),
    Amend(Amendment),
}

/// `POST /console/licences/{id}/change`: without `confirm=yes`, the confirmation page (or the
/// form again, saying what is wrong); with it, the change, then back to the licence's page.
pub async fn change(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, Response> {
    let Form(values) =
        form.map_err(|rejection| error_page(&super::form_error(rejection), Some(&session)))?;
    let act = value_of(&values, "act").unwrap_or_default();
    let asked = words::licence_change(act);
    let audit_action = match asked {
        Some(_) => format!("licence.{act}"),
        None => "licence.change".to_string(),
    };
    let csrf = value_of(&values, "csrf").unwrap_or_default();
    check_csrf(&state, &session, csrf, &audit_action).await?;
    let Some((kind, name)) = asked else {
        let error = AppError::BadInput(format!(
            "act: {act:?} is not a change (suspend, reinstate, revoke, renew or amend)"
        ));
        return Err(error_page(&error, Some(&session)));
    };
    let confirmed = value_of(&values, "confirm") == Some("yes");
    // A licence the person may not read is not found.
    let shown = state
        .app
        .show(&session.actor, &id, None)
        .await
        .map_err(|e| error_page(&hidden(e, &id), Some(&session)))?;
    if !confirmed {
        // One they may not change is refused (and audited) before any confirmation.
        state
            .app
            .may_change(&session.actor, &id, &audit_action)
            .await
            .map_err(|e| error_page(&e, Some(&session)))?;
    }
    let filled = Filled {
        act,
        values: &values,
    };
    let again = async |error: AppError| {
        licence_page(&state, &session, &id, None, Some((&error, filled))).await
    };
    let reason = value_of(&values, "reason").unwrap_or_default().trim();
    let is_status = matches!(
        kind,
        EventKind::Suspended | EventKind::Reinstated | EventKind::Revoked
    );
    if reason.chars().count() > MAX_REASON {
        let error = AppError::BadInput(format!("reason: at most {MAX_REASON} characters"));
        return Ok(again(error).await);
    }
    // Confirmed, a status change without a reason is its operation's to refuse (and audit).
    if reason_required(kind) && reason.is_empty() && !(confirmed && is_status) {
        let error = AppError::BadInput(format!("reason: 请填写{name}理由"));
        return Ok(again(error).await);
    }
    let reason = Some(reason.to_string()).filter(|r| !r.is_empty());
    let licence_type = licence_type_of(&state, &shown);
    let read = match kind {
        EventKind::Renewed => {
            read_renewal(&values, &shown, reason.clone()).map(|(r, rows)| (Asked::Renew(r), rows))
        }
        EventKind::Amended => match licence_type {
            Some(t) => read_amendment(&values, &shown, t, reason.clone())
                .map(|(a, rows)| (Asked::Amend(a), rows)),
            None => Err(AppError::UnknownType(shown.type_code.clone())),
        },
        _ => Ok((Asked::Status(kind), vec![])),
    };
    let (asked, rows) = match read {
        Ok(read) => read,
        Err(error) => return Ok(again(error).await),
    };
    if !confirmed {
        return Ok(confirmation(&session, &shown, kind, name, &values, rows));
    }
    let actor = &session.actor;
    let done = match &asked {
        Asked::Status(kind) => state
            .app
            .change_status(actor, &id, *kind, reason.as_deref())
            .await
            .map(|_| ()),
        Asked::Renew(renewal) => state.app.renew(actor, &id, renewal).await.map(|_| ()),
        Asked::Amend(amendment) => state.app.amend(actor, &id, amendment).await.map(|_| ()),
    };
    match done {
        Ok(()) => Ok(see_other(&format!(
            "{}?done={act}",
            licence_href(&shown.licence_id)
        ))),
        Err(error) => Ok(again(error).await),
    }
}

/// The licence's type as the directory defines it now (what an amendment is checked against).
pub fn licence_type_of<'a>(state: &'a SharedState, shown: &LicenceView) -> Option<&'a LicenceType> {
    crate::identifiers::TypeCode::parse(&shown.type_code)
        .ok()
        .and_then(|code| state.app.directory.get(&code))
}

/// The page that restates the licence, the change (`rows`: what, before, after) and its reason
/// before it is made; confirming posts the same values again with `confirm=yes`.
fn confirmation(
    session: &ConsoleSession,
    shown: &LicenceView,
    kind: EventKind,
    name: &str,
    values: &[(String, String)],
    rows: Vec<(String, String, String)>,
) -> Response {
    let href = licence_href(&shown.licence_id);
    let reason = value_of(values, "reason").unwrap_or_default().trim();
    let body = html! {
        h1 { "确认" (name) }
        div class="card" {
            dl class="fields" {
                dt { "证照类型" } dd { (shown.type_name) }
                dt { "证照编号" } dd { (shown.number) }
                dt { "持证人" } dd { (shown.version.holder.name) }
                dt { "当前状态" } dd { (standing_tag(shown.status)) }
                dt { "操作" } dd { b { (name) } }
                @for (what, before, after) in &rows {
                    dt { (what) } dd { (before) " → " b { (after) } }
                }
                dt { "理由" } dd { @if reason.is_empty() { "（未填写）" } @else { (reason) } }
            }
        }
        div class="message error" role="alert" { p { (words::licence_change_warning(kind)) } }
        form method="post" action=(change_href(&shown.licence_id)) class="inline" {
            (csrf_field(session))
            @for (field, value) in values.iter().filter(|(n, _)| n != "csrf" && n != "confirm") {
                input type="hidden" name=(field) value=(value);
            }
            input type="hidden" name="confirm" value="yes";
            button type="submit" class=[(kind == EventKind::Revoked).then_some("danger")] { "确认" (name) }
        }
        " "
        a href=(href) { "取消" }
    };
    page(StatusCode::OK, frame(TITLE, Some(session), body))
}
