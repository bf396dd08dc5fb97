//! Signing in and out: the sign-in form (password, and the TOTP code of an account that has a
//! second factor), the forced change of a one-time password, and enrolling the second factor.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{csrf_field, error_box, frame, qr_svg};
use super::session::{check_csrf, cleared_cookie, session_cookie, with_cookie, Started};
use super::{page, see_other, words, ConsoleForm, SharedState};
use crate::app::signin::{ConsoleSession, SignIn, Stage};
use crate::app::AppError;
use crate::http::Client;

fn login_page(status: StatusCode, message: Option<String>) -> Response {
    let body = html! {
        div class="narrow" {
            h1 { "登录" }
            @if let Some(message) = message {
                div class="message error" role="alert" { p { (message) } }
            }
            form method="post" action="/console/login" class="card" {
                label for="login" { "用户名" }
                input id="login" name="login" autocomplete="username" required autofocus;
                label for="password" { "密码" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                label for="code" { "动态口令" span class="hint" { "（已绑定验证器的账号填写）" } }
                input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8";
                button type="submit" { "登录" }
            }
        }
    };
    page(status, frame("登录", None, body))
}

pub async fn form() -> Response {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    password: String,
    #[serde(default)]
    code: String,
}

pub async fn submit(
    State(state): State<SharedState>,
    Client(ip): Client,
    ConsoleForm(form): ConsoleForm<SignInForm>,
) -> Result<Response, Response> {
    let code = Some(form.code.as_str()).filter(|c| !c.trim().is_empty());
    let signed = state
        .app
        .sign_in(&form.login, &form.password, code, &ip.to_string())
        .await
        .map_err(|e| super::layout::error_page(&e, None))?;
    match signed {
        SignIn::Refused(refusal) => Ok(login_page(
            StatusCode::UNAUTHORIZED,
            Some(words::sign_in_refusal(&refusal)),
        )),
        SignIn::Started { token, session } => {
            let secure = state
                .app
                .verify_base()
                .await
                .is_ok_and(|base| base.starts_with("https://"));
            Ok(with_cookie(
                see_other(next_page(session.stage)),
                session_cookie(&token, secure),
            ))
        }
    }
}

fn next_page(stage: Stage) -> &'static str {
    match stage {
        Stage::ChangePassword => "/console/password",
        Stage::EnrolTotp => "/console/totp",
        Stage::SignedIn => "/console/",
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<SharedState>,
    Started(session): Started,
    ConsoleForm(form): ConsoleForm<CsrfOnly>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.sign_out").await?;
    state
        .app
        .sign_out(&session)
        .await
        .map_err(|e| super::layout::error_page(&e, Some(&session)))?;
    Ok(with_cookie(see_other("/console/login"), cleared_cookie()))
}

fn password_page(session: &ConsoleSession, error: Option<&AppError>) -> Response {
    let body = html! {
        div class="narrow" {
            h1 { "设置新密码" }
            p { "首次登录或密码被重置后，须先设置自己的密码。" }
            @if let Some(error) = error { (error_box(error)) }
            form method="post" action="/console/password" class="card" {
                (csrf_field(session))
                label for="current" { "当前密码（管理员发给您的一次性密码）" }
                input id="current" name="current" type="password" autocomplete="current-password" required;
                label for="new" { "新密码" }
                input id="new" name="new" type="password" autocomplete="new-password" minlength="12" required aria-describedby="policy";
                p id="policy" class="hint" { "至少 12 位，包含大写字母、小写字母、数字、其他字符中的三类，且不含用户名。" }
                label for="again" { "再次输入新密码" }
                input id="again" name="again" type="password" autocomplete="new-password" required;
                button type="submit" { "保存" }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(status, frame("设置新密码", Some(session), body))
}

pub async fn password_form(Started(session): Started) -> Response {
    password_page(&session, None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    again: String,
}

pub async fn change_password(
    State(state): State<SharedState>,
    Started(session): Started,
    ConsoleForm(form): ConsoleForm<PasswordForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.change_password").await?;
    match state
        .app
        .change_password(&session, &form.current, &form.new, &form.again)
        .await
    {
        Ok(stage) => Ok(see_other(next_page(stage))),
        Err(error) => Ok(password_page(&session, Some(&error))),
    }
}

async fn totp_page(
    state: &SharedState,
    session: &ConsoleSession,
    error: Option<&AppError>,
) -> Response {
    if session.stage != Stage::EnrolTotp {
        return see_other(next_page(session.stage));
    }
    let enrolment = match state.app.totp_enrolment(session).await {
        Ok(enrolment) => enrolment,
        Err(e) => return super::layout::error_page(&e, Some(session)),
    };
    let body = html! {
        div class="narrow" {
            h1 { "绑定动态口令" }
            p { "审批人和管理员登录须使用动态口令。请用手机上的验证器（如 Microsoft Authenticator、Google 身份验证器、FreeOTP）扫描下方二维码，然后输入它显示的 6 位数字。" }
            @if let Some(error) = error { (error_box(error)) }
            figure class="qr" {
                (qr_svg(&enrolment.url, "动态口令二维码"))
                figcaption { "无法扫码时，可在验证器中手动输入密钥：" code class="secret" { (enrolment.secret) } }
            }
            form method="post" action="/console/totp" class="card" {
                (csrf_field(session))
                label for="code" { "验证器显示的 6 位数字" }
                input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required autofocus;
                button type="submit" { "完成绑定" }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    page(status, frame("绑定动态口令", Some(session), body))
}

pub async fn totp_form(State(state): State<SharedState>, Started(session): Started) -> Response {
    totp_page(&state, &session, None).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: String,
    code: String,
}

pub async fn confirm_totp(
    State(state): State<SharedState>,
    Started(session): Started,
    ConsoleForm(form): ConsoleForm<CodeForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.enrol_totp").await?;
    match state.app.confirm_totp(&session, &form.code).await {
        Ok(()) => Ok(see_other("/console/")),
        Err(error) => Ok(totp_page(&state, &session, Some(&error)).await),
    }
}
