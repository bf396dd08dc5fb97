//! `city-library`: the reference receiver of the city e-licence library (SPEC §8). It takes pushes
//! (checks the HMAC, deduplicates by seq), verifies every record against the county's trust list,
//! keeps what it receives in its own SQLite file, catches up by pulling the feed, and reports what
//! it holds. Built from the contract alone, as another vendor's library would be — except that it
//! borrows the service's verification code rather than repeating it.
//!
//! With the trust list it also checks the county's transparency log (SPEC §16, `log.rs`): every
//! event's receipt and statement, and (`log-check`, and after every `pull`) the trees the
//! receipts named against the county's signed heads: forks, removed entries, a rewritten past.
//!
//! Its second mode is the city supervision platform (SPEC §15, `supervise`, `supervision-pull`,
//! `supervision-report`): see `supervision.rs`.

mod log;
mod supervision;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use clap::{Parser, Subcommand};
use elicence::signing::trust::TrustStore;
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::Row;

#[derive(Parser)]
#[command(
    name = "city-library",
    about = "Reference receiver of the city e-licence library"
)]
struct Cli {
    /// The receiver's own SQLite file.
    #[arg(long, default_value = "city-library.sqlite", global = true)]
    db: PathBuf,
    /// The county's trust list (from `elicence trust export` or /.well-known/elicence/trust.json).
    #[arg(long, global = true)]
    trust: Option<PathBuf>,
    /// The county's root certificate (PEM), obtained out of band: only keys chaining to it are
    /// trusted. Without it, the trust list's own roots are (a test or a first look).
    #[arg(long, global = true, value_name = "PEM")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Take pushes on POST /events (and report on GET /status).
    Serve {
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: String,
        /// The HMAC key shared with the service (ELICENCE_LIBRARY_SECRET there).
        #[arg(long, env = "CITY_LIBRARY_SECRET")]
        secret: String,
    },
    /// Catch up by pulling the service's feed from the last seq held.
    Pull {
        /// The service's base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        source: String,
        /// A library token of the service.
        #[arg(long, env = "CITY_LIBRARY_TOKEN")]
        token: String,
    },
    /// What the receiver holds: counts by kind, verified or not, the last seq.
    Report,
    /// Check that the county's transparency log still extends every tree the receiver has seen
    /// (needs --trust): fetches the latest head and consistency proofs. Exit 2 when any problem
    /// was ever found.
    LogCheck {
        /// The service's base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        source: String,
    },
    /// Supervision platform: take the audit stream on POST /audit (and report on GET /status).
    /// Needs --trust: every checkpoint is checked against the county's supervision key.
    Supervise {
        #[arg(long, default_value = "127.0.0.1:9091")]
        listen: String,
        /// The HMAC key shared with the service (ELICENCE_SUPERVISION_SECRET there).
        #[arg(long, env = "CITY_SUPERVISION_SECRET")]
        secret: String,
    },
    /// Supervision platform: catch up by pulling the audit stream from the last seq held.
    SupervisionPull {
        /// The service's base URL, e.g. http://127.0.0.1:8080
        #[arg(long)]
        source: String,
        /// A city-wide supervisor token of the service.
        #[arg(long, env = "CITY_SUPERVISION_TOKEN")]
        token: String,
    },
    /// Supervision platform: what it holds and every problem found (exit 2 when any).
    SupervisionReport {
        /// Also write the last checkpoint received to this file (for `elicence audit verify
        /// --checkpoint`).
        #[arg(long, value_name = "FILE")]
        checkpoint_out: Option<PathBuf>,
        /// Also fail (exit 2) when no checkpoint arrived for this long: the county sends one at
        /// least every minute, idle or not, so a longer silence is a stopped stream.
        #[arg(long, value_name = "SECONDS")]
        max_silence: Option<i64>,
    },
}

/// An event as pushed or pulled (SPEC §8); only what the receiver needs is read.
#[derive(Debug, Deserialize)]
struct Event {
    seq: i64,
    licence_id: String,
    version: i64,
    kind: String,
    at: String,
    reason: Option<String>,
    record: String,
    metadata: serde_json::Value,
    /// The inclusion receipt of the event's log entry (SPEC §16).
    receipt: Option<String>,
    /// A status change's signed statement: its log entry.
    statement: Option<String>,
}

struct Receiver {
    db: SqlitePool,
    trust: Option<TrustStore>,
    secret: Vec<u8>,
}

impl Receiver {
    /// Stores events not seen before (by seq); returns how many were new. A record that does not
    /// verify is kept, marked unverified, and reported: dropping it would hide the problem.
    async fn store(&self, events: &[Event]) -> anyhow::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut new = 0;
        for e in events {
            let record = base64::engine::general_purpose::STANDARD
                .decode(&e.record)
                .context("record is not base64")?;
            let verified = match &self.trust {
                Some(trust) => match elicence::verify::check_full_record(&record, trust) {
                    Ok(full) => full.claims.cti.key.to_string() == e.licence_id,
                    Err(_) => false,
                },
                None => false,
            };
            let logged = match &self.trust {
                Some(trust) => log::check_event(&mut tx, trust, e, &record).await?,
                None => false,
            };
            new += sqlx::query(
                "INSERT INTO events (seq, licence_id, version, kind, at, reason, record, metadata, verified, logged)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (seq) DO NOTHING",
            )
            .bind(e.seq)
            .bind(&e.licence_id)
            .bind(e.version)
            .bind(&e.kind)
            .bind(&e.at)
            .bind(&e.reason)
            .bind(&record)
            .bind(e.metadata.to_string())
            .bind(verified)
            .bind(logged)
            .execute(&mut *tx)
            .await?
            .rows_affected() as usize;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn last_seq(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&self.db)
                .await?,
        )
    }

    /// Counts taken in one read transaction, so they describe one moment even while pushes arrive.
    async fn report(&self) -> anyhow::Result<serde_json::Value> {
        let mut tx = self.db.begin().await?;
        let rows =
            sqlx::query("SELECT kind, COUNT(*) AS n FROM events GROUP BY kind ORDER BY kind")
                .fetch_all(&mut *tx)
                .await?;
        let mut by_kind = serde_json::Map::new();
        for r in rows {
            by_kind.insert(r.try_get("kind")?, r.try_get::<i64, _>("n")?.into());
        }
        let counts = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(verified), 0) AS ok, COALESCE(SUM(logged), 0) AS logged,
                    COALESCE(MAX(seq), 0) AS last FROM events",
        )
        .fetch_one(&mut *tx)
        .await?;
        let log = log::report(&mut tx).await?;
        tx.commit().await?;
        let total: i64 = counts.try_get("n")?;
        let verified: i64 = counts.try_get("ok")?;
        Ok(serde_json::json!({
            "events": total,
            "verified": verified,
            "unverified": total - verified,
            "logged": counts.try_get::<i64, _>("logged")?,
            "log": log,
            "last_seq": counts.try_get::<i64, _>("last")?,
            "by_kind": by_kind,
        }))
    }
}

async fn connect(db: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true);
    Ok(SqlitePool::connect_with(options).await?)
}

fn read_trust(path: &Path, root: Option<&Path>) -> anyhow::Result<TrustStore> {
    let json = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let list = serde_json::from_str(&json)
        .with_context(|| format!("{}: not a trust list", path.display()))?;
    let pinned = match root {
        Some(root) => Some(vec![
            std::fs::read_to_string(root).with_context(|| root.display().to_string())?
        ]),
        None => None,
    };
    Ok(TrustStore::new(&list, pinned.as_deref())?)
}

/// The supervision platform's store; it cannot check checkpoints without the trust list.
async fn open_platform(cli: &Cli, secret: &[u8]) -> anyhow::Result<supervision::Platform> {
    let trust =
        (cli.trust.as_deref()).context("--trust is needed: checkpoints are checked against it")?;
    let trust = read_trust(trust, cli.root.as_deref())?;
    supervision::Platform::open(connect(&cli.db).await?, trust, secret).await
}

async fn open(cli: &Cli, secret: &[u8]) -> anyhow::Result<Receiver> {
    let db = &cli.db;
    let pool = connect(db).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS events (
            seq INTEGER PRIMARY KEY, licence_id TEXT NOT NULL, version INTEGER NOT NULL,
            kind TEXT NOT NULL, at TEXT NOT NULL, reason TEXT, record BLOB NOT NULL,
            metadata TEXT NOT NULL, verified INTEGER NOT NULL, received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .execute(&pool)
    .await?;
    log::create_tables(&pool).await?;
    let trust = match &cli.trust {
        Some(path) => Some(read_trust(path, cli.root.as_deref())?),
        None => None,
    };
    Ok(Receiver {
        db: pool,
        trust,
        secret: secret.to_vec(),
    })
}

/// Whether the request's `X-Elicence-Signature` is the HMAC of `body` under `secret` (compared
/// in constant time).
fn signed_with(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let signature = headers
        .get("x-elicence-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let expected = elicence::hash::hmac_sha256_hex(secret, body);
    elicence::hash::same_secret(signature.as_bytes(), expected.as_bytes())
}

/// A JSON answer of either receiver.
type Answer = (StatusCode, Json<serde_json::Value>);

/// What a receiver's work gave: its JSON, or a 500 naming the failure.
fn answer(result: anyhow::Result<serde_json::Value>) -> Answer {
    match result {
        Ok(value) => (StatusCode::OK, Json(value)),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": e.to_string()})),
        ),
    }
}

/// A push as both receivers take it: the HMAC must match the body (401), the body must read as
/// `T` (400), then `take` keeps it and says what to answer.
async fn take_signed<T: serde::de::DeserializeOwned>(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    take: impl AsyncFnOnce(T) -> anyhow::Result<serde_json::Value>,
) -> Answer {
    if !signed_with(secret, headers, body) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "bad signature"})),
        );
    }
    match serde_json::from_slice(body) {
        Ok(pushed) => answer(take(pushed).await),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": e.to_string()})),
        ),
    }
}

/// POST /events: every event not held yet is stored.
async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> Answer {
    take_signed(
        &receiver.secret,
        &headers,
        &body,
        async |events: Vec<Event>| {
            let new = receiver.store(&events).await?;
            Ok(serde_json::json!({"received": events.len(), "new": new}))
        },
    )
    .await
}

async fn status(State(receiver): State<Arc<Receiver>>) -> Answer {
    answer(receiver.report().await)
}

async fn pull(receiver: &Receiver, source: &str, token: &str) -> anyhow::Result<usize> {
    let client = reqwest::Client::new();
    let mut after = receiver.last_seq().await?;
    let mut new = 0;
    loop {
        let url = format!(
            "{}/api/v1/feed?after={after}&limit=500",
            source.trim_end_matches('/')
        );
        let response = client.get(&url).bearer_auth(token).send().await?;
        if !response.status().is_success() {
            bail!(
                "{url}: {} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            );
        }
        #[derive(Deserialize)]
        struct Page {
            events: Vec<Event>,
            next: i64,
        }
        let page: Page = response.json().await?;
        if page.events.is_empty() {
            return Ok(new);
        }
        new += receiver.store(&page.events).await?;
        after = page.next;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve { listen, secret } => {
            let receiver = Arc::new(open(&cli, secret.as_bytes()).await?);
            let app = axum::Router::new()
                .route("/events", post(receive))
                .route("/status", get(status))
                .with_state(receiver);
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!("city-library listening on {}", listener.local_addr()?);
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::Pull { source, token } => {
            let receiver = open(&cli, b"").await?;
            let new = pull(&receiver, source, token).await?;
            if let Some(trust) = &receiver.trust {
                log::check_consistency(&receiver.db, trust, source).await?;
            }
            println!(
                "{}",
                serde_json::json!({"new": new, "report": receiver.report().await?})
            );
        }
        Command::LogCheck { source } => {
            let receiver = open(&cli, b"").await?;
            let trust = (receiver.trust.as_ref())
                .context("--trust is needed: heads and proofs are checked against it")?;
            log::check_consistency(&receiver.db, trust, source).await?;
            let report = receiver.report().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if report["log"]["problems"]
                .as_array()
                .is_some_and(|p| !p.is_empty())
            {
                std::process::exit(2);
            }
        }
        Command::Report => {
            let receiver = open(&cli, b"").await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&receiver.report().await?)?
            );
        }
        Command::Supervise { listen, secret } => {
            let platform = Arc::new(open_platform(&cli, secret.as_bytes()).await?);
            let app = axum::Router::new()
                .route("/audit", post(supervision::receive))
                .route("/status", get(supervision::status))
                .with_state(platform);
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!(
                "supervision platform listening on {}",
                listener.local_addr()?
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
        }
        Command::SupervisionPull { source, token } => {
            let platform = open_platform(&cli, b"").await?;
            let new = platform.pull(source, token).await?;
            println!(
                "{}",
                serde_json::json!({"new": new, "report": platform.report().await?})
            );
        }
        Command::SupervisionReport {
            checkpoint_out,
            max_silence,
        } => {
            let platform = open_platform(&cli, b"").await?;
            let report = platform.report().await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some(path) = checkpoint_out {
                let checkpoint = platform
                    .last_checkpoint()
                    .await?
                    .context("no checkpoint received yet")?;
                std::fs::write(path, checkpoint).with_context(|| path.display().to_string())?;
            }
            let silent = report["silent_seconds"].as_i64();
            if let Some(max) = max_silence {
                if silent.is_none_or(|s| s > *max) {
                    eprintln!(
                        "the county's stream is silent: no checkpoint for {} (at most {max} s allowed)",
                        silent.map_or("ever".to_string(), |s| format!("{s} s"))
                    );
                    std::process::exit(2);
                }
            }
            if report["intact"] != true {
                std::process::exit(2);
            }
        }
    }
    Ok(())
}
