//! The transparency log's public routes (SPEC §16): heads, receipts, consistency proofs. Public
//! like the trust list: an outsider checks the log with nothing but them and the county's root.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde::Deserialize;

use super::error::ApiError;
use super::SharedState;

type ApiResult<T> = Result<T, ApiError>;

/// COSE's media type (RFC 9052).
const COSE: &str = "application/cose";

fn cose(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, COSE)], bytes).into_response()
}

#[utoipa::path(get, path = "/api/v1/log/head", tag = "transparency log", responses((status = 200, description = "The latest signed tree head, a COSE_Sign1 over {1: size, 2: root, 3: time}; a new one when entries arrived since the last", content_type = "application/cose")))]
pub async fn head(State(state): State<SharedState>) -> ApiResult<Response> {
    Ok(cose(state.app.log_head().await?.head))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HeadsQuery {
    /// Heads of more entries than this (all without).
    after: Option<i64>,
}

/// `{"heads": [base64 COSE_Sign1, …]}`, smallest first.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct Heads {
    pub heads: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/log/heads", tag = "transparency log", params(HeadsQuery), responses((status = 200, description = "Signed tree heads in increasing size, at most 1000", body = Heads)))]
pub async fn heads(
    State(state): State<SharedState>,
    query: Result<Query<HeadsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Heads>> {
    let Query(q) = query?;
    let after = q.after.map(|a| tree_size("after", a)).transpose()?;
    let heads = state.app.log_heads_after(after).await?;
    let base64 = base64::engine::general_purpose::STANDARD;
    Ok(Json(Heads {
        heads: heads.iter().map(|h| base64.encode(&h.head)).collect(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReceiptQuery {
    /// The tree size of a signed head to prove inclusion in (the latest head without).
    size: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/log/receipts/{id}", tag = "transparency log", params(("id" = String, Path, description = "A version identifier"), ReceiptQuery), responses((status = 200, description = "The version's inclusion receipt (RFC 9942, RFC9162_SHA256): its full record in the tree of a signed head", content_type = "application/cose"), (status = 400, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn receipt(
    State(state): State<SharedState>,
    Path(id): Path<String>,
    query: Result<Query<ReceiptQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let size = q.size.map(|s| tree_size("size", s)).transpose()?;
    Ok(cose(state.app.inclusion_receipt(&id, size).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree's size (at least 1).
    from: i64,
    /// The newer tree's size: one with a signed head.
    to: i64,
}

#[utoipa::path(get, path = "/api/v1/log/consistency", tag = "transparency log", params(ConsistencyQuery), responses((status = 200, description = "A consistency receipt (RFC 9942, RFC9162_SHA256) from the tree of `from` entries to the signed tree of `to`", content_type = "application/cose"), (status = 400, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn consistency(
    State(state): State<SharedState>,
    query: Result<Query<ConsistencyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let (from, to) = (tree_size("from", q.from)?, tree_size("to", q.to)?);
    Ok(cose(state.app.consistency_receipt(from, to).await?))
}

/// A tree size from a query parameter: a whole number, not negative (signed in the interface,
/// as every integer of this API, so that the OpenAPI document's bounds are the real ones).
fn tree_size(name: &str, value: i64) -> Result<u64, ApiError> {
    u64::try_from(value).map_err(|_| {
        ApiError::App(crate::app::AppError::BadInput(format!(
            "{name}: a tree size cannot be negative"
        )))
    })
}
