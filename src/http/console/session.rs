//! Who is on a console page: the session cookie read into a [`ConsoleSession`], the extractors
//! that require one (at any stage, or signed in), and the CSRF check of every form.

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::super::{Client, SharedState};
use super::layout;
use crate::app::signin::{ConsoleSession, Stage};
use crate::app::AppError;

/// The cookie that carries the session token (only its hash is stored).
pub const SESSION_COOKIE: &str = "elicence_console";

/// The session token of the request's cookie, if it has one.
fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// `Set-Cookie` for a new session: HttpOnly (no script reads it), SameSite=Strict (no other
/// site's page sends it), limited to the console, Secure when the service is reached by https.
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={token}; Path=/console; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("a token is URL-safe base64")
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie() -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("ASCII")
}

/// A response that also sets (or clears) the session cookie.
pub fn with_cookie(mut response: Response, cookie: HeaderValue) -> Response {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// Why a page cannot be shown: go elsewhere first (sign in, finish signing in), or an error.
pub enum Refusal {
    GoTo(&'static str),
    Failed(AppError),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::GoTo(to) => Redirect::to(to).into_response(),
            Refusal::Failed(error) => layout::error_page(&error, None),
        }
    }
}

impl From<AppError> for Refusal {
    fn from(e: AppError) -> Self {
        Refusal::Failed(e)
    }
}

/// The session of the request at whatever stage, if any.
async fn session_of(
    parts: &mut Parts,
    state: &SharedState,
) -> Result<Option<ConsoleSession>, Refusal> {
    let Some(token) = cookie_token(&parts.headers).map(str::to_string) else {
        return Ok(None);
    };
    let source = Client::from_request_parts(parts, state)
        .await
        .map(|Client(ip)| ip.to_string())
        .unwrap_or_default();
    Ok(state.app.console_session(&token, &source).await?)
}

/// A session at any stage: the pages that finish signing in (a new password, a second factor).
pub struct Started(pub ConsoleSession);

impl FromRequestParts<SharedState> for Started {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Refusal> {
        match session_of(parts, state).await? {
            Some(session) => Ok(Started(session)),
            None => Err(Refusal::GoTo("/console/login")),
        }
    }
}

/// A signed-in session: every page but sign-in's. A session still to change its password or
/// enrol its second factor is sent there first.
pub struct Signed(pub ConsoleSession);

impl FromRequestParts<SharedState> for Signed {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Refusal> {
        match session_of(parts, state).await? {
            None => Err(Refusal::GoTo("/console/login")),
            Some(session) => match session.stage {
                Stage::SignedIn => Ok(Signed(session)),
                Stage::ChangePassword => Err(Refusal::GoTo("/console/password")),
                Stage::EnrolTotp => Err(Refusal::GoTo("/console/totp")),
            },
        }
    }
}

/// Refuses a form whose CSRF token is not the session's (a page of another site posting in
/// the person's name), recording the attempt in the audit trail.
pub async fn check_csrf(
    state: &SharedState,
    session: &ConsoleSession,
    given: &str,
    what: &str,
) -> Result<(), Response> {
    if crate::hash::same_secret(given.as_bytes(), session.csrf_token.as_bytes()) {
        return Ok(());
    }
    let refused: crate::app::Result<()> = Err(AppError::Forbidden(
        "the form's CSRF token is not this session's".into(),
    ));
    state
        .app
        .audit_failure(session.actor.entry(what, "console"), &refused)
        .await;
    let error = AppError::Forbidden(
        "the form is out of date or came from another site (its CSRF token is not this \
         session's): reload the page and submit it again"
            .into(),
    );
    let mut response = layout::error_page(&error, Some(session));
    *response.status_mut() = StatusCode::FORBIDDEN;
    Err(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; elicence_console=els_abc ; b=2"),
        );
        assert_eq!(cookie_token(&headers), Some("els_abc"));
        headers.insert(COOKIE, HeaderValue::from_static("elicence_consolex=1"));
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_under_https() {
        let cookie = session_cookie("els_abc", true);
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(cookie.ends_with("; Secure"));
        assert!(!session_cookie("els_abc", false)
            .to_str()
            .unwrap()
            .contains("Secure"));
    }
}
