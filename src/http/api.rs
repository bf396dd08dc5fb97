//! Route handlers: each reads the request, calls one [`App`](crate::app::App) operation and
//! writes its answer.

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::{page, Caller, Client, SharedState};
use crate::app::{Amendment, BatchStatus, Renewal};
use crate::identifiers::TypeCode;
use crate::licence::{EventKind, RecordInput};
use crate::render::QrImageFormat;
use crate::signing::status_list;
use crate::store::AuditFilter;

type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejections (bad JSON, wrong content type, too large) answer in the API's
/// error format instead of plain text.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    /// Every body this API takes is a JSON object: serde would also read a struct from an
    /// array (`[]` as a renewal with every field left out), which no client means.
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await?;
        let unreadable = |why: String| ApiError::Request(StatusCode::UNPROCESSABLE_ENTITY, why);
        if !value.is_object() {
            return Err(unreadable("the body must be a JSON object".into()));
        }
        serde_json::from_value(value)
            .map(Body)
            .map_err(|e| unreadable(format!("Failed to deserialize the JSON body: {e}")))
    }
}

#[utoipa::path(get, path = "/healthz", tag = "service", responses((status = 200, description = "Up: directory version and last event seq")))]
pub async fn health(State(state): State<SharedState>) -> ApiResult<Json<serde_json::Value>> {
    let last_seq = state
        .app
        .store
        .last_seq()
        .await
        .map_err(crate::app::AppError::from)?;
    let writes = if state.app.write_health.readiness().ready {
        "ok"
    } else {
        "failing"
    };
    Ok(Json(serde_json::json!({
        "status": "ok",
        "writes": writes,
        "directory_version": state.app.directory_version,
        "last_event_seq": last_seq,
    })))
}

/// `GET /readyz`: 200 while writes work; 503 while the store refuses them (a full disk) or audit
/// records of failed attempts still wait to be appended, so a load balancer sends writes elsewhere.
#[utoipa::path(get, path = "/readyz", tag = "service", responses((status = 200, description = "Ready: writes work", body = crate::app::health::Readiness), (status = 503, description = "Writes fail: since when and why", body = crate::app::health::Readiness)))]
pub async fn readiness(State(state): State<SharedState>) -> Response {
    let readiness = state.app.write_health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "service", responses((status = 200, description = "This document")))]
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "service", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<SharedState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/directory", tag = "directory", responses((status = 200, description = "The licence directory: `directory_version` and `types`")))]
pub async fn directory(State(state): State<SharedState>) -> Response {
    Json(state.app.directory_listing()).into_response()
}

#[utoipa::path(get, path = "/api/v1/directory/{code}", tag = "directory", params(("code" = String, Path, description = "Licence type code (21 characters)")), responses((status = 200, body = crate::directory::LicenceType), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn licence_type(
    State(state): State<SharedState>,
    Path(code): Path<String>,
) -> ApiResult<Json<crate::directory::LicenceType>> {
    let code = TypeCode::parse(&code).map_err(crate::app::AppError::from)?;
    Ok(Json(state.app.licence_type(&code)?.clone()))
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    type_code: String,
    record: RecordInput,
}

#[utoipa::path(post, path = "/api/v1/licences", tag = "licences", security(("bearer" = [])), request_body = IssueRequest, responses((status = 201, description = "Issued: identifier and QR text", body = crate::app::Issued), (status = 409, description = "The number exists already", body = crate::http::error::ErrorBody), (status = 422, description = "Invalid record: every field and reason", body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn issue(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Body(request): Body<IssueRequest>,
) -> ApiResult<impl IntoResponse> {
    let issued = state
        .app
        .issue(&actor, &request.type_code, &request.record, None)
        .await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    version: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/licences/{id}", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence or version identifier"), VersionQuery), responses((status = 200, body = crate::app::LicenceView), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn show(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(query) = query?;
    Ok(Json(state.app.show(&actor, &id, query.version).await?))
}

#[utoipa::path(get, path = "/api/v1/licences/{id}/versions", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), responses((status = 200, body = Vec<crate::app::VersionView>), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn versions(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(state.app.versions(&actor, &id).await?))
}

#[utoipa::path(get, path = "/api/v1/licences/{id}/pdf", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier"), VersionQuery), responses((status = 200, description = "The version's PDF, byte-identical on every request", content_type = "application/pdf"), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn pdf(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let pdf = state.app.pdf(&actor, &id, query.version).await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

#[utoipa::path(get, path = "/api/v1/licences/{id}/qr.png", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier"), VersionQuery), responses((status = 200, description = "The version's QR code alone (亮证): black on white, 10 px modules, a four-module quiet zone", content_type = "image/png"), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn qr_png(
    state: State<SharedState>,
    caller: Caller,
    id: Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    qr_image(state, caller, id, query, QrImageFormat::Png).await
}

#[utoipa::path(get, path = "/api/v1/licences/{id}/qr.svg", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier"), VersionQuery), responses((status = 200, description = "The version's QR code alone (亮证), one user unit a module, a four-module quiet zone", content_type = "image/svg+xml"), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn qr_svg(
    state: State<SharedState>,
    caller: Caller,
    id: Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    qr_image(state, caller, id, query, QrImageFormat::Svg).await
}

/// The two QR routes: one call of [`crate::app::App::qr_image`], the format from the path.
async fn qr_image(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    query: Result<Query<VersionQuery>, axum::extract::rejection::QueryRejection>,
    format: QrImageFormat,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let image = state
        .app
        .qr_image(&actor, &id, query.version, format)
        .await?;
    Ok(([(header::CONTENT_TYPE, format.content_type())], image).into_response())
}

#[utoipa::path(post, path = "/api/v1/licences/{id}/amend", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), request_body = crate::app::Amendment, responses((status = 201, description = "Amends (变更): a new version", body = crate::app::Issued), (status = 409, description = "Not in a state that allows it, or changed concurrently", body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn amend(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Body(change): Body<Amendment>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(state.app.amend(&actor, &id, &change).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/licences/{id}/renew", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), request_body = crate::app::Renewal, responses((status = 201, description = "Renews (延续): a new version with a new validity", body = crate::app::Issued), (status = 409, description = "Not in a state that allows it, or changed concurrently", body = crate::http::error::ErrorBody), (status = 422, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn renew(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Body(renewal): Body<Renewal>,
) -> ApiResult<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(state.app.renew(&actor, &id, &renewal).await?),
    ))
}

#[derive(utoipa::ToSchema, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn change_status(
    state: SharedState,
    actor: crate::app::Actor,
    id: String,
    kind: EventKind,
    request: StatusRequest,
) -> ApiResult<Json<crate::app::EventView>> {
    Ok(Json(
        state
            .app
            .change_status(&actor, &id, kind, request.reason.as_deref())
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/licences/{id}/suspend", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), request_body = StatusRequest, responses((status = 200, description = "The status event", body = crate::app::EventView), (status = 409, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn suspend(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Body(request): Body<StatusRequest>,
) -> ApiResult<impl IntoResponse> {
    change_status(state, actor, id, EventKind::Suspended, request).await
}

#[utoipa::path(post, path = "/api/v1/licences/{id}/reinstate", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), request_body = StatusRequest, responses((status = 200, description = "The status event", body = crate::app::EventView), (status = 409, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn reinstate(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Body(request): Body<StatusRequest>,
) -> ApiResult<impl IntoResponse> {
    change_status(state, actor, id, EventKind::Reinstated, request).await
}

#[utoipa::path(post, path = "/api/v1/licences/{id}/revoke", tag = "licences", security(("bearer" = [])), params(("id" = String, Path, description = "Licence identifier")), request_body = StatusRequest, responses((status = 200, description = "The status event", body = crate::app::EventView), (status = 409, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    Body(request): Body<StatusRequest>,
) -> ApiResult<impl IntoResponse> {
    change_status(state, actor, id, EventKind::Revoked, request).await
}

#[derive(utoipa::ToSchema, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// A QR text, its base32 part, or a version identifier.
    input: String,
}

#[utoipa::path(post, path = "/api/v1/verify", tag = "verification", request_body = VerifyRequest, responses((status = 200, description = "The verification result (SPEC §7), whatever it is", body = crate::verify::Verification), (status = 400, body = crate::http::error::ErrorBody), (status = 429, description = "Rate limited", body = crate::http::error::ErrorBody)))]
pub async fn verify(
    State(state): State<SharedState>,
    client: Client,
    Body(request): Body<VerifyRequest>,
) -> ApiResult<impl IntoResponse> {
    state.check_verify_rate(&client)?;
    let verification = state.app.verify(&request.input).await?;
    state.metrics.record_verification(verification.result);
    state.app.note_public_verification(&verification);
    Ok(Json(verification))
}

#[utoipa::path(get, path = "/V/{b32}", tag = "verification", params(("b32" = String, Path, description = "The base32 part of a QR text")), responses((status = 200, description = "The public verification page (HTML, Chinese)", content_type = "text/html"), (status = 404, description = "The code is not base32: a Chinese page saying the link is wrong", content_type = "text/html"), (status = 429, description = "Rate limited: a Chinese page, with Retry-After", content_type = "text/html")))]
pub async fn verification_page(
    State(state): State<SharedState>,
    client: Client,
    Path(b32): Path<String>,
) -> ApiResult<Response> {
    if let Err(limited) = state.check_verify_rate(&client) {
        let seconds = limited.retry_after_seconds;
        let mut response = page_response(
            StatusCode::TOO_MANY_REQUESTS,
            page::too_many_requests(seconds),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }
    let Ok(token) = crate::signing::qr::token_from_text(&b32) else {
        return Ok(page_response(StatusCode::NOT_FOUND, page::not_found()));
    };
    let verification = state.app.verify_token(&token).await?;
    state.metrics.record_verification(verification.result);
    state.app.note_public_verification(&verification);
    Ok(page_response(StatusCode::OK, page::render(&verification)))
}

/// A page of the phone's verification: never cached (the status changes), nothing loaded from
/// anywhere, never framed by another site.
fn page_response(status: StatusCode, page: maud::Markup) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        Html(page.into_string()),
    )
        .into_response()
}

#[utoipa::path(get, path = "/.well-known/elicence/trust.json", tag = "verification", responses((status = 200, body = crate::signing::trust::TrustList)))]
pub async fn trust_list(State(state): State<SharedState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.app.trust_list()),
    )
}

/// Caches may keep a status list as long as its `ttl` lets a verifier (SPEC §7).
const STATUS_LIST_CACHE: &str = "public, max-age=300";
const _: () = assert!(
    status_list::TTL_SECONDS == 300,
    "STATUS_LIST_CACHE names the ttl"
);

/// The draft's Status List Aggregation: `{"status_lists": [URI…]}`.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct StatusListAggregation {
    pub status_lists: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/status-lists", tag = "verification", responses((status = 200, description = "The URI of every status list that holds an index", body = StatusListAggregation)))]
pub async fn status_list_aggregation(State(state): State<SharedState>) -> ApiResult<Response> {
    let status_lists = state.app.status_list_uris().await?;
    Ok((
        [(header::CACHE_CONTROL, STATUS_LIST_CACHE)],
        Json(StatusListAggregation { status_lists }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/status-lists/{issuer}/{n}", tag = "verification", params(("issuer" = String, Path, description = "The issuing department's USCC"), ("n" = u64, Path, description = "List number")), responses((status = 200, description = "Status List Token, CWT form (a COSE_Sign1)", content_type = "application/statuslist+cwt"), (status = 400, body = crate::http::error::ErrorBody), (status = 404, body = crate::http::error::ErrorBody)))]
pub async fn status_list(
    State(state): State<SharedState>,
    Path((issuer, n)): Path<(String, String)>,
) -> ApiResult<Response> {
    let n: u64 = n.parse().map_err(|_| {
        ApiError::App(crate::app::AppError::BadInput(format!(
            "status list number {n:?} is not a whole number"
        )))
    })?;
    let signed = state.app.status_list(&issuer, n).await?;
    Ok((
        [
            (header::CONTENT_TYPE, status_list::MEDIA_TYPE),
            (header::CACHE_CONTROL, STATUS_LIST_CACHE),
        ],
        signed,
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(flatten)]
    filter: AuditFilter,
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

fn default_limit() -> i64 {
    crate::app::DEFAULT_PAGE_LIMIT
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(("actor" = Option<String>, Query,), ("action" = Option<String>, Query,), ("target" = Option<String>, Query,), ("since" = Option<String>, Query, description = "RFC 3339, inclusive"), ("until" = Option<String>, Query, description = "RFC 3339, exclusive"), ("after" = Option<i64>, Query, description = "Records after this seq"), ("limit" = Option<i64>, Query,)), responses((status = 200, description = "A page of the hash-chained trail", body = AuditPage), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn audit(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let records = state
        .app
        .audit_records(&actor, &q.filter, q.after, q.limit)
        .await?;
    let next = records.last().map_or(q.after, |r| r.seq);
    Ok(Json(AuditPage { records, next }))
}

/// A page of the audit trail.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct AuditPage {
    records: Vec<crate::audit::Record>,
    /// The seq to ask for next (`after`).
    next: i64,
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// The first day, YYYY-MM-DD (China Standard Time); 29 days before `to` when absent.
    from: Option<String>,
    /// The last day, included; today when absent. At most 366 days from `from`.
    to: Option<String>,
    /// One department (USCC); every department the caller may read when absent.
    department: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/supervision/summary", tag = "audit", security(("bearer" = [])), params(SummaryQuery), responses((status = 200, description = "The supervision figures per department and day (SPEC §15)", body = crate::app::Summary), (status = 400, description = "A bad date, range or department, named", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn supervision_summary(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let summary = state
        .app
        .supervision_summary(
            &actor,
            q.from.as_deref(),
            q.to.as_deref(),
            q.department.as_deref(),
        )
        .await?;
    Ok(Json(summary))
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchOptions {
    #[serde(default)]
    all_or_nothing: bool,
}

/// `POST /api/v1/batches`: a zip with `manifest.csv` and its scans; 202 with the queued job.
#[utoipa::path(post, path = "/api/v1/batches", tag = "batches", security(("bearer" = [])), params(BatchOptions), request_body(content = ZipFile, content_type = "application/zip", description = "A zip with manifest.csv and the scans it names"), responses((status = 202, description = "Queued, with a Location to poll", body = BatchQueued), (status = 413, description = "Over the upload limit", body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn submit_batch(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    query: Result<Query<BatchOptions>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult<impl IntoResponse> {
    let Query(options) = query?;
    // Streamed, not collected: the zip goes to a file as it arrives.
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let job = crate::batch::job::submit(
        &state.app,
        &actor,
        declared_length,
        body.into_data_stream(),
        options.all_or_nothing,
    )
    .await?;
    let location = format!("/api/v1/batches/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(BatchQueued { batch: job }),
    ))
}

/// A zip archive, sent as the raw request body.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct ZipFile(Vec<u8>);

/// A batch accepted for conversion.
#[derive(utoipa::ToSchema, serde::Serialize)]
pub struct BatchQueued {
    batch: crate::store::BatchRecord,
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BatchRowsQuery {
    #[serde(default)]
    after_line: u64,
    #[serde(default = "default_limit")]
    limit: i64,
}

/// `GET /api/v1/batches/{id}`: a job's progress and a page of its row outcomes.
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "batches", security(("bearer" = [])), params(("id" = String, Path, description = "Batch id"), BatchRowsQuery), responses((status = 200, description = "The job's progress and a page of its row outcomes", body = BatchStatus), (status = 404, body = crate::http::error::ErrorBody), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn batch(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
    query: Result<Query<BatchRowsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    let (job, rows) =
        crate::batch::job::status(&state.app, &actor, &id, q.after_line, q.limit).await?;
    Ok(Json(BatchStatus::page(job, rows, q.after_line)))
}

#[derive(utoipa::IntoParams, Deserialize)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_limit")]
    limit: i64,
}

#[utoipa::path(get, path = "/api/v1/feed", tag = "city library", security(("bearer" = [])), params(FeedQuery), responses((status = 200, body = crate::sync::FeedPage), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Role or department refused", body = crate::http::error::ErrorBody)))]
pub async fn feed(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    Ok(Json(state.app.feed(&actor, q.after, q.limit).await?))
}

#[utoipa::path(get, path = "/api/v1/supervision/audit", tag = "supervision", security(("bearer" = [])), params(FeedQuery), responses((status = 200, description = "The whole audit trail after a seq, with a checkpoint signed by the supervision key (SPEC §15)", body = crate::supervision::AuditPull), (status = 400, description = "Malformed request", body = crate::http::error::ErrorBody), (status = 401, description = "No or unknown bearer token", body = crate::http::error::ErrorBody), (status = 403, description = "Not a city-wide supervisor or admin", body = crate::http::error::ErrorBody)))]
pub async fn supervision_audit(
    State(state): State<SharedState>,
    Caller(actor): Caller,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = query?;
    Ok(Json(
        state
            .app
            .supervision_audit(&actor, q.after, q.limit)
            .await?,
    ))
}
