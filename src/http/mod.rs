//! The HTTP service (SPEC §7, §10): JSON under `/api/v1`, the verification page, the trust list,
//! status lists, health and metrics. Handlers only translate HTTP to the same [`App`] calls the
//! command line makes.

mod api;
pub mod client;
mod console;
pub mod error;
mod log;
mod metrics;
pub mod openapi;
mod page;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;

use crate::app::{Actor, App};
pub use client::Client;
use client::{RateLimited, VerifyLimiter};
use error::ApiError;
use metrics::Metrics;

/// Largest JSON body accepted (a licence record is a few KB).
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// Settings of the HTTP layer that tests and benchmarks change.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Public verifications per client address per minute; None switches the limit off.
    pub verify_per_minute: Option<NonZeroU32>,
    /// Proxies whose `X-Forwarded-For` names the client (`ELICENCE_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            verify_per_minute: NonZeroU32::new(600),
            trusted_proxies: Vec::new(),
        }
    }
}

pub struct ServerState {
    pub app: Arc<App>,
    metrics: Arc<Metrics>,
    verify_limiter: Option<VerifyLimiter>,
    trusted_proxies: Vec<IpNet>,
}

pub type SharedState = Arc<ServerState>;

impl ServerState {
    /// Counts a public verification against the client's allowance.
    fn check_verify_rate(&self, Client(client): &Client) -> Result<(), RateLimited> {
        match &self.verify_limiter {
            Some(limiter) => limiter.check(*client),
            None => Ok(()),
        }
    }
}

pub fn router(app: Arc<App>, options: HttpOptions) -> Router {
    let state = Arc::new(ServerState {
        app,
        metrics: Arc::new(Metrics::default()),
        verify_limiter: options.verify_per_minute.map(VerifyLimiter::per_minute),
        trusted_proxies: options.trusted_proxies,
    });
    let api = Router::new()
        .route("/directory", get(api::directory))
        .route("/directory/{code}", get(api::licence_type))
        .route("/licences", post(api::issue))
        .route("/licences/{id}", get(api::show))
        .route("/licences/{id}/versions", get(api::versions))
        .route("/licences/{id}/pdf", get(api::pdf))
        .route("/licences/{id}/qr.png", get(api::qr_png))
        .route("/licences/{id}/qr.svg", get(api::qr_svg))
        .route("/licences/{id}/amend", post(api::amend))
        .route("/licences/{id}/renew", post(api::renew))
        .route("/licences/{id}/suspend", post(api::suspend))
        .route("/licences/{id}/reinstate", post(api::reinstate))
        .route("/licences/{id}/revoke", post(api::revoke))
        .route("/verify", post(api::verify))
        .route("/status-lists", get(api::status_list_aggregation))
        .route("/status-lists/{issuer}/{n}", get(api::status_list))
        .route("/log/head", get(log::head))
        .route("/log/heads", get(log::heads))
        .route("/log/receipts/{id}", get(log::receipt))
        .route("/log/consistency", get(log::consistency))
        .route("/audit", get(api::audit))
        .route("/supervision/summary", get(api::supervision_summary))
        // Its body streams to a file; the batch job itself enforces the upload limit.
        .route("/batches", post(api::submit_batch))
        .route("/batches/{id}", get(api::batch))
        .route("/feed", get(api::feed))
        .route("/supervision/audit", get(api::supervision_audit))
        .route("/openapi.json", get(api::openapi));
    let routes = Router::new()
        .nest("/api/v1", api)
        .route("/V/{b32}", get(api::verification_page))
        .route("/.well-known/elicence/trust.json", get(api::trust_list))
        .route("/healthz", get(api::health))
        .route("/readyz", get(api::readiness))
        .route("/metrics", get(api::metrics))
        .merge(console::routes(state.clone()))
        .fallback(|| async { ApiError::NoRoute })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY));
    let metrics = state.metrics.clone();
    guarded(routes.with_state(state), metrics)
}

/// Wraps the routes in what every request passes through: a panic in a handler answers 500 (and
/// is counted and logged) instead of dropping the connection, every answer carries the security
/// headers, and every answer is counted.
fn guarded(routes: Router, metrics: Arc<Metrics>) -> Router {
    let on_panic = {
        let metrics = metrics.clone();
        move |panic: Box<dyn std::any::Any + Send>| {
            metrics.record_panic();
            let message = crate::panics::panic_message(&*panic);
            tracing::error!(panic = message, "a request handler panicked");
            ApiError::Panicked.into_response()
        }
    };
    routes
        .layer(CatchPanicLayer::custom(on_panic))
        .layer(middleware::from_fn(error::localise_errors))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::from_fn_with_state(metrics, count_requests))
}

/// Headers every answer carries: no content-type sniffing (an error body is never taken for a
/// page), and no Referer sent on from the verification page, whose URL carries a licence token.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

async fn count_requests(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record_request(response.status().as_u16(), started.elapsed());
    response
}

/// Runs the service on the configured address until Ctrl-C or SIGTERM, then finishes the
/// requests in flight.
pub async fn serve(app: App, options: HttpOptions) -> anyhow::Result<()> {
    // A broken rules file stops the start: supervision must not be silently off.
    let alert_rules = crate::alerts::Rules::load(app.settings.alert_rules.as_deref())
        .map_err(anyhow::Error::msg)?;
    let listen = app.settings.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(address = %listener.local_addr()?, verify_base = %app.verify_base().await?, "serving");
    let app = Arc::new(app);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let settings = &app.settings;
    let pusher = start_pushing(
        &app,
        (&settings.library_url, "ELICENCE_LIBRARY_URL"),
        (&settings.library_secret, "ELICENCE_LIBRARY_SECRET"),
        || Ok(crate::sync::LibraryEvents),
        stopped,
    )?;
    let supervision = start_pushing(
        &app,
        (&settings.supervision_url, "ELICENCE_SUPERVISION_URL"),
        (&settings.supervision_secret, "ELICENCE_SUPERVISION_SECRET"),
        || crate::supervision::AuditStream::new(&app),
        stop.subscribe(),
    )?;
    let jobs = tokio::spawn(crate::batch::job::supervise(app.clone(), stop.subscribe()));
    let held_audit = tokio::spawn(append_held_audit(app.clone(), stop.subscribe()));
    let keys = tokio::spawn(app.clone().watch_keys(stop.subscribe()));
    let alerts = crate::alerts::Watcher::new(app.clone(), alert_rules);
    let alerts = tokio::spawn(alerts.run(stop.subscribe()));
    let figures = tokio::spawn(app.clone().keep_figures(stop.subscribe()));
    let log_heads = tokio::spawn(app.clone().keep_log_heads(stop.subscribe()));
    let service = router(app.clone(), options).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    let _ = stop.send(true);
    let _ = jobs.await;
    let _ = held_audit.await;
    let _ = keys.await;
    let _ = alerts.await;
    let _ = figures.await;
    let _ = log_heads.await;
    for pusher in [pusher, supervision].into_iter().flatten() {
        let _ = pusher.await;
    }
    app.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts delivering a stream to its receiver when the receiver's URL is configured; its secret
/// must be too.
fn start_pushing<S: crate::sync::Stream + 'static>(
    app: &Arc<App>,
    (url, url_name): (&Option<String>, &str),
    (secret, secret_name): (&Option<secrecy::SecretString>, &str),
    stream: impl FnOnce() -> Result<S, crate::app::AppError>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    use secrecy::ExposeSecret;
    match (url, secret) {
        (Some(url), Some(secret)) => {
            let stream = stream().map_err(|e| anyhow::anyhow!("{url_name}: cannot push: {e}"))?;
            let pusher = crate::sync::Pusher::of(
                stream,
                app.clone(),
                url,
                secret.expose_secret().as_bytes(),
            );
            Ok(Some(tokio::spawn(pusher.run(stop))))
        }
        (Some(_), None) => anyhow::bail!("{url_name} is set but {secret_name} is not"),
        (None, _) => Ok(None),
    }
}

/// Appends, every second until `stop`, the audit records held while writes failed, so the
/// service is ready again as soon as space is back, without waiting for a request.
async fn append_held_audit(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => { app.flush_held_audit().await; }
            _ = stop.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// The caller of a protected route, from its bearer token. A missing or unknown token is refused
/// with 401 and recorded in the audit trail.
pub struct Caller(pub Actor);

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let Client(ip) = Client::from_request_parts(parts, state).await?;
        let source = ip.to_string();
        let target = parts.uri.path().to_string();
        let action = format!("http.{}", parts.method.as_str().to_lowercase());
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(token) = token else {
            state
                .app
                .audit_refusal(&source, &action, &target, "no bearer token")
                .await;
            return Err(ApiError::Unauthenticated(
                "this route needs an Authorization: Bearer token".into(),
            ));
        };
        match state.app.actor_for_token(token, &source).await? {
            Some(actor) => Ok(Caller(actor)),
            None => {
                state
                    .app
                    .audit_refusal(&source, &action, &target, "unknown or revoked token")
                    .await;
                Err(ApiError::Unauthenticated(
                    "the token is unknown or revoked".into(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        let metrics = Arc::new(Metrics::default());
        let routes = Router::new().route(
            "/boom",
            get(|| async {
                if true {
                    panic!("index out of range");
                }
                "unreachable"
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = axum::serve(listener, guarded(routes, metrics.clone()));
        tokio::spawn(std::future::IntoFuture::into_future(server));

        let response = reqwest::get(format!("http://{address}/boom"))
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("index out of range"), "{body}");

        let exposition = metrics.render();
        assert!(
            exposition.contains("elicence_http_panics_total 1\n"),
            "{exposition}"
        );
        assert!(
            exposition.contains("elicence_http_requests_total{class=\"5xx\"} 1\n"),
            "{exposition}"
        );
    }
}
