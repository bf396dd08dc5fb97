//! The department console (部门工作台, SPEC §14): pages in Chinese for clerks, officers,
//! supervisors and admins, rendered on the server with maud, working without JavaScript.
//!
//! Each page calls the same [`App`](crate::app::App) operations as the API, as the signed-in
//! person's [`Actor`](crate::app::Actor), so the one permission check decides what it shows and
//! allows. What the console adds is the web's part of security: the session cookie (HttpOnly,
//! SameSite=Strict, Secure under https), a CSRF token in every form, a strict Content Security
//! Policy (nothing from other hosts, no inline script) and pages that are never cached.

mod admin;
mod alerts;
mod audit;
mod batch_upload;
mod batches;
mod drafts;
mod figures;
mod home;
mod layout;
mod licence_actions;
mod licence_changes;
mod licences;
mod session;
mod signin;
mod words;

use axum::extract::DefaultBodyLimit;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::SharedState;
use crate::app::AppError;

/// The console's routes, under `/console/`.
pub fn routes(state: SharedState) -> Router<SharedState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(home::page_of))
        .route("/console/login", get(signin::form).post(signin::submit))
        .route("/console/logout", post(signin::sign_out))
        .route(
            "/console/password",
            get(signin::password_form).post(signin::change_password),
        )
        .route(
            "/console/totp",
            get(signin::totp_form).post(signin::confirm_totp),
        )
        .route("/console/admin", get(admin::overview))
        .route("/console/admin/staff", post(admin::create_staff))
        .route(
            "/console/admin/staff/{login}/disable",
            post(admin::disable_staff),
        )
        .route(
            "/console/admin/staff/{login}/reset",
            post(admin::reset_staff),
        )
        .route("/console/admin/tokens", post(admin::create_token))
        .route(
            "/console/admin/tokens/{id}/revoke",
            post(admin::revoke_token),
        )
        .route("/console/admin/keys/rotate", post(admin::rotate_key))
        .route("/console/admin/keys/revoke", post(admin::revoke_key))
        .route("/console/audit", get(audit::view))
        .route("/console/audit/export.csv", get(audit::export))
        .route("/console/audit/alerts", get(alerts::list))
        .route("/console/licences", get(licences::search))
        .route("/console/licences/{id}", get(licences::detail))
        .route("/console/licences/{id}/pdf", get(licences::pdf))
        .route(
            "/console/licences/{id}/change",
            post(licence_actions::change),
        )
        // The upload streams into the batch job, which enforces the upload limit itself.
        .route(
            "/console/batches",
            get(batches::list)
                .post(batch_upload::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/console/batches/{id}", get(batches::show))
        // The scans stream to disk; the handler enforces the upload limit itself.
        .route(
            "/console/drafts",
            post(drafts::start).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/console/drafts/{id}",
            get(drafts::show).post(drafts::confirm),
        )
        .route("/console/drafts/{id}/scans/{name}", get(drafts::scan))
        .route(
            "/console/batches/{id}/rejected.csv",
            get(batches::rejected_csv),
        )
        .route("/console/batches/{id}/events", get(batches::events))
        .route("/console/static/console.css", get(stylesheet))
        .route("/console/static/console.js", get(script))
        .layer(middleware::from_fn_with_state(state, same_site_posts))
}

/// Refuses a form another site's page posts, as the browser tells it (`Sec-Fetch-Site`): the
/// sign-in form has no session whose CSRF token it could carry, and SameSite=Strict cookies do
/// not stop a page of a sibling subdomain. Clients that send no such header (scripts, old
/// browsers) still meet the CSRF token of every other form.
async fn same_site_posts(
    State(state): State<SharedState>,
    request: Request,
    next: Next,
) -> Response {
    let site = request
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if request.method() == Method::POST && site.is_some_and(|s| s != "same-origin" && s != "none") {
        let (mut parts, _) = request.into_parts();
        let source = match super::Client::from_request_parts(&mut parts, &state).await {
            Ok(super::Client(ip)) => ip.to_string(),
            Err(_) => String::new(),
        };
        let path = parts.uri.path().to_string();
        state
            .app
            .audit_refusal(&source, "console.post", &path, "posted from another site")
            .await;
        let error = AppError::Forbidden(
            "the form was posted from another site; open the console itself and submit it there"
                .into(),
        );
        return layout::error_page(&error, None);
    }
    next.run(request).await
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("console.js"),
    )
        .into_response()
}

/// The Content Security Policy of every console page: its own styles and scripts only, images
/// inline or its own, forms posting only to itself, never framed by another site.
const POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A console page: never cached (it shows one person's data), under the console's policy.
fn page(status: StatusCode, markup: maud::Markup) -> Response {
    let mut response = (status, Html(markup.into_string())).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    response
}

/// A posted form. One that cannot be read — a field missing or of the wrong kind, as only a
/// hand-made request sends — answers the console's Chinese error page naming the field, not
/// axum's plain-text 422.
pub struct ConsoleForm<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ConsoleForm<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(request, state).await {
            Ok(axum::Form(value)) => Ok(ConsoleForm(value)),
            Err(rejection) => Err(layout::error_page(&form_error(rejection), None)),
        }
    }
}

/// What was wrong with a form that could not be read.
fn form_error(rejection: axum::extract::rejection::FormRejection) -> AppError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return AppError::TooLarge(format!("form: {}", rejection.body_text()));
    }
    AppError::BadInput(format!("form: {}", rejection.body_text()))
}

/// After a form that changed something: see the result page by GET (so that reloading it does
/// not post the form again).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
