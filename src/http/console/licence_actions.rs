//! An officer's status changes on a licence's page: 暂停, 恢复 and 注销 (suspend, reinstate,
//! revoke), each posted with a reason, then confirmed on a page that restates it, then made
//! through [`App::change_status`](crate::app::App::change_status) — the API's operation, which
//! checks the permission and writes the audit record. The console requires the reason to suspend
//! or revoke (the API takes the operation's own rule).

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, error_page, frame};
use super::licences::{hidden, licence_href, licence_page, standing_tag, TITLE};
use super::session::{check_csrf, Signed};
use super::{page, see_other, words, SharedState};
use crate::app::signin::ConsoleSession;
use crate::app::{AppError, LicenceView};
use crate::licence::{EventKind, Standing};

/// The longest reason the console takes.
const MAX_REASON: usize = 500;

/// A status-change form as it was filled in, to show it again with its error.
pub struct Filled<'a> {
    pub act: &'a str,
    pub reason: &'a str,
}

/// The status-change forms the licence's standing allows, for a person who may change it.
pub fn forms(session: &ConsoleSession, shown: &LicenceView, filled: Option<&Filled>) -> Markup {
    let acts: &[&str] = match shown.status {
        Standing::Active => &["suspend", "revoke"],
        Standing::Suspended => &["reinstate", "revoke"],
        Standing::Revoked => &[],
    };
    let action = format!("{}/status", licence_href(&shown.licence_id));
    html! {
        @if !acts.is_empty() {
            h2 { "审批操作" }
            div class="figures" {
                @for act in acts {
                    @if let Some((kind, name)) = words::status_change(act) {
                        @let id = format!("reason-{act}");
                        @let reason = filled.filter(|f| f.act == *act).map_or("", |f| f.reason);
                        form method="post" action=(action) class="card" {
                            (csrf_field(session))
                            input type="hidden" name="act" value=(act);
                            label for=(id) {
                                (name) "理由"
                                @if reason_required(kind) { span class="hint" { "（必填）" } }
                                @else { span class="hint" { "（选填）" } }
                            }
                            textarea id=(id) name="reason" rows="3" maxlength=(MAX_REASON)
                                required[reason_required(kind)] { (reason) }
                            button type="submit" class=[(kind == EventKind::Revoked).then_some("danger")] {
                                (name) "…"
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The console asks a reason of every suspension and revocation.
fn reason_required(kind: EventKind) -> bool {
    kind != EventKind::Reinstated
}

#[derive(Deserialize)]
pub struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    act: String,
    #[serde(default)]
    reason: String,
    /// `yes` once the person has seen the confirmation page.
    #[serde(default)]
    confirm: String,
}

/// `POST /console/licences/{id}/status`: without `confirm=yes`, the confirmation page (or the
/// form again, saying what is missing); with it, the change, then back to the licence's page.
pub async fn change_status(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    form: Result<Form<StatusForm>, FormRejection>,
) -> Result<Response, Response> {
    let Form(form) = form.map_err(|rejection| {
        error_page(&AppError::BadInput(rejection.body_text()), Some(&session))
    })?;
    let act = words::status_change(&form.act);
    let audit_action = match act {
        Some((kind, _)) => format!("licence.{}", verb(kind)),
        None => "licence.change_status".to_string(),
    };
    check_csrf(&state, &session, &form.csrf, &audit_action).await?;
    let Some((kind, name)) = act else {
        let error = AppError::BadInput(format!(
            "act: {:?} is not a status change (suspend, reinstate or revoke)",
            form.act
        ));
        return Err(error_page(&error, Some(&session)));
    };
    let filled = Filled {
        act: &form.act,
        reason: &form.reason,
    };
    let reason = form.reason.trim();
    let refused = if reason_required(kind) && reason.is_empty() {
        Some(AppError::BadInput(format!("reason: 请填写{name}理由")))
    } else if reason.chars().count() > MAX_REASON {
        Some(AppError::BadInput(format!(
            "reason: at most {MAX_REASON} characters"
        )))
    } else {
        None
    };
    if form.confirm != "yes" {
        // A licence the person may not read is not found; one they may not change is refused
        // (and audited) before any confirmation.
        let shown = state
            .app
            .show(&session.actor, &id, None)
            .await
            .map_err(|e| error_page(&hidden(e, &id), Some(&session)))?;
        state
            .app
            .may_change(&session.actor, &id, &audit_action)
            .await
            .map_err(|e| error_page(&e, Some(&session)))?;
        if let Some(error) = refused {
            return Ok(licence_page(&state, &session, &id, None, Some((&error, filled))).await);
        }
        return Ok(confirmation(&session, &shown, kind, name, &form));
    }
    // Confirmed, a missing reason is the operation's to refuse (and audit): it asks the same.
    if let Some(error) = refused.filter(|_| !reason.is_empty()) {
        return Ok(licence_page(&state, &session, &id, None, Some((&error, filled))).await);
    }
    let reason = Some(reason).filter(|r| !r.is_empty());
    match state
        .app
        .change_status(&session.actor, &id, kind, reason)
        .await
    {
        Ok(_) => Ok(see_other(&format!(
            "{}?done={}",
            licence_href(&licence_key(&id)),
            verb(kind)
        ))),
        Err(error) => Ok(licence_page(&state, &session, &id, None, Some((&error, filled))).await),
    }
}

/// The page that restates the licence, the change and its reason before it is made.
fn confirmation(
    session: &ConsoleSession,
    shown: &LicenceView,
    kind: EventKind,
    name: &str,
    form: &StatusForm,
) -> Response {
    let href = licence_href(&shown.licence_id);
    let reason = form.reason.trim();
    let body = html! {
        h1 { "确认" (name) }
        div class="card" {
            dl class="fields" {
                dt { "证照类型" } dd { (shown.type_name) }
                dt { "证照编号" } dd { (shown.number) }
                dt { "持证人" } dd { (shown.version.holder.name) }
                dt { "当前状态" } dd { (standing_tag(shown.status)) }
                dt { "操作" } dd { b { (name) } }
                dt { "理由" } dd { @if reason.is_empty() { "（未填写）" } @else { (reason) } }
            }
        }
        div class="message error" role="alert" { p { (words::status_change_warning(kind)) } }
        form method="post" action=(format!("{href}/status")) class="inline" {
            (csrf_field(session))
            input type="hidden" name="act" value=(form.act);
            input type="hidden" name="reason" value=(reason);
            input type="hidden" name="confirm" value="yes";
            button type="submit" class=[(kind == EventKind::Revoked).then_some("danger")] { "确认" (name) }
        }
        " "
        a href=(href) { "取消" }
    };
    page(StatusCode::OK, frame(TITLE, Some(session), body))
}

/// The licence part of an identifier as given (a version identifier names its licence), for the
/// address of the licence's page; anything else is left as it is (the page then says why).
fn licence_key(id: &str) -> String {
    crate::identifiers::LicenceRef::parse(id.trim())
        .map(|r| r.key().to_string())
        .unwrap_or_else(|_| id.to_string())
}

fn verb(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Suspended => "suspend",
        EventKind::Reinstated => "reinstate",
        _ => "revoke",
    }
}
