//! Errors as the API answers them (SPEC §10): `{"error": {"code", "message"}}` with the right
//! status. Internal failures are logged in full and answered without their details.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppError;
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
        AppError::BadIdentifier(_) | AppError::BadInput(_) => StatusCode::BAD_REQUEST,
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ApiError::RateLimited(seconds) => Some(*seconds),
            _ => None,
        };
        let (status, body) = match self {
            ApiError::App(e) => {
                let status = status_of(&e);
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %e, "request failed");
                    (status, body(e.code(), "internal error; it has been logged"))
                } else {
                    if status.is_server_error() {
                        tracing::error!(error = %e, "request refused: the service cannot write");
                    }
                    (status, e.to_json())
                }
            }
            ApiError::Unauthenticated(message) => {
                (StatusCode::UNAUTHORIZED, body("unauthenticated", &message))
            }
            ApiError::RateLimited(seconds) => (
                StatusCode::TOO_MANY_REQUESTS,
                body(
                    "rate_limited",
                    &format!("too many verifications from this address; retry in {seconds} s"),
                ),
            ),
            ApiError::Request(status, message) => (status, body("bad_request", &message)),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, body("no_route", "no such route")),
            ApiError::Panicked => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body("internal", "internal error; it has been logged"),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
