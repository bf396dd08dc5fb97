//! Errors as the API answers them (SPEC §10): `{"error": {"code", "message"}}` with the right
//! status, the message in Chinese when the client's `Accept-Language` prefers it. Internal
//! failures are logged in full and answered without their details.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppError;
use crate::messages::Lang;
use crate::signing::keys::KeyError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    App(AppError),
    Unauthenticated(String),
    /// Too many public verifications from one client; it may try again after this many seconds.
    RateLimited(u64),
    /// A request the framework could not read (bad JSON, wrong content type, too large …).
    Request(StatusCode, String),
    NoRoute,
    /// A handler panicked: a defect of ours, answered without detail (the log has the message).
    Panicked,
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl From<super::client::RateLimited> for ApiError {
    fn from(r: super::client::RateLimited) -> Self {
        ApiError::RateLimited(r.retry_after_seconds)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        ApiError::Request(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::Request(r.status(), r.body_text())
    }
}

pub fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AppError::BadIdentifier(_) | AppError::BadInput(_) | AppError::Explained(_) => {
            StatusCode::BAD_REQUEST
        }
        AppError::NotFound(_) | AppError::UnknownType(_) => StatusCode::NOT_FOUND,
        AppError::Duplicate { .. } | AppError::State(_) => StatusCode::CONFLICT,
        AppError::Store(StoreError::Conflict | StoreError::SignerRevoked(_)) => {
            StatusCode::CONFLICT
        }
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        AppError::Keys(KeyError::NoActiveSigner(_)) | AppError::Store(StoreError::Full) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        AppError::Store(_)
        | AppError::Keys(_)
        | AppError::Directory(_)
        | AppError::Config(_)
        | AppError::Blob(_)
        | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The error body of every failed request (SPEC §10), for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// A stable code: `invalid_record`, `not_found`, `forbidden`, `bad_input` …
    code: String,
    message: String,
    /// For `invalid_record`: every field and its reason.
    fields: Option<Vec<crate::licence::FieldError>>,
}

fn body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message}})
}

/// The Chinese body of an error answer, kept beside the English one until
/// [`localise_errors`] knows whether the client asked for Chinese.
#[derive(Clone)]
struct ChineseBody(serde_json::Value);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::RateLimited(seconds) => Some(*seconds),
            _ => None,
        };
        let in_chinese = |code: &str| body(code, crate::messages::error_zh(code));
        let (status, body, chinese) = match self {
            ApiError::App(e) => {
                let status = status_of(&e);
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "request failed");
                    let english = body(e.code(), "internal error; it has been logged");
                    (status, english, in_chinese(e.code()))
                } else {
                    if status.is_server_error() {
                        tracing::error!(error = %e, "request refused: the service cannot write");
                    }
                    (status, e.to_json(), e.to_json_in(Lang::Zh))
                }
            }
            ApiError::Unauthenticated(message) => (
                StatusCode::UNAUTHORIZED,
                body("unauthenticated", &message),
                in_chinese("unauthenticated"),
            ),
            ApiError::RateLimited(seconds) => (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    "rate_limited",
                    &format!("too many verifications from this address; retry in {seconds} s"),
                ),
                body(
                    "rate_limited",
                    &format!("核验过于频繁，请 {seconds} 秒后再试。"),
                ),
            ),
            ApiError::Request(status, message) => (
                status,
                body("bad_request", &message),
                body(
                    "bad_request",
                    &format!("{}（{message}）", crate::messages::error_zh("bad_request")),
                ),
            ),
            ApiError::NoRoute => (
                StatusCode::NOT_FOUND,
                body("no_route", "no such route"),
                in_chinese("no_route"),
            ),
            ApiError::Panicked => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal", "internal error; it has been logged"),
                in_chinese("internal"),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ChineseBody(chinese));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Answers an error in Chinese to a client whose `Accept-Language` prefers it (issue #15: the
/// API keeps its English codes, with a Chinese message); English otherwise.
pub async fn localise_errors(request: Request, next: Next) -> Response {
    let lang = Lang::negotiate(
        request
            .headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
        Lang::En,
    );
    let mut response = next.run(request).await;
    let Some(ChineseBody(chinese)) = response.extensions_mut().remove::<ChineseBody>() else {
        return response;
    };
    // The body depends on the header: a cache must not answer one language with the other.
    response.headers_mut().append(
        header::VARY,
        header::HeaderValue::from_static("accept-language"),
    );
    if lang == Lang::En {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(chinese.to_string()))
}
