//! The link to the city e-licence library (SPEC §8): every change as an event with its signed
//! record and the GB/T 36903 metadata codes national libraries use, read in seq order.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

use crate::app::{Action, Actor, App, AppError, Role};
use crate::directory::HolderKind;
use crate::licence::EventKind;
use crate::signing::claims::FullRecord;
use crate::store::EventRow;
use crate::time_util;

/// Most events one feed page returns.
pub const MAX_PAGE: i64 = 1000;

/// One change event as the feed and the push deliver it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub seq: i64,
    pub licence_id: String,
    pub version: u32,
    pub kind: EventKind,
    pub at: String,
    pub reason: Option<String>,
    /// Base64 of the version's full-record COSE_Sign1.
    pub record: String,
    pub metadata: Map<String, Value>,
    /// Base64 of the event's log entry's inclusion receipt (SPEC §16), in the tree of a signed
    /// head: the entry is `record` for a new version, `statement` for a status change.
    pub receipt: String,
    /// Base64 of a status change's signed statement (its log entry); null for a new version.
    pub statement: Option<String>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Resume from here: the last seq returned, or `after` when there was nothing new.
    pub next: i64,
}

/// The GB/T 36903 element codes of a version (SPEC §8).
pub fn metadata(full: &FullRecord, issuer_name: &str) -> Map<String, Value> {
    let r = &full.record;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("ZZMC", full.licence_name.clone().into());
    put("ZZLXDM", full.claims.cti.key.type_code.to_string().into());
    put("ZZBH", r.number.clone().into());
    put("ZZBS", full.claims.cti.to_string().into());
    put("ZZBFJG", issuer_name.into());
    put("ZZBFJGDM", full.claims.iss.to_string().into());
    let issued = time_util::date_in_cst(time_util::from_unix(full.claims.iat));
    put("ZZBFRQ", time_util::format_date(issued).into());
    put("CZZT", r.holder.name.clone().into());
    put("CZZTDM", r.holder.id.as_str().into());
    let code_type = match r.holder.id.kind() {
        HolderKind::Person => "111",
        HolderKind::Organisation => "001",
    };
    put("CZZTDMLX", code_type.into());
    put("ZZYXQQSRQ", time_util::format_date(r.valid_from).into());
    put(
        "ZZYXQJZRQ",
        r.valid_until
            .map_or(Value::Null, |d| time_util::format_date(d).into()),
    );
    for (key, value) in &r.fields {
        put(&format!("KZ_{key}"), value.to_string().into());
    }
    m
}

impl App {
    /// Events with seq greater than `after`, at most `limit` (library and admin tokens).
    pub async fn feed(&self, actor: &Actor, after: i64, limit: i64) -> Result<FeedPage, AppError> {
        // A department's token reads its own department's events; the city library reads all.
        let scope = self
            .scope_audited(actor, Action::ReadFeed, "feed.read", "feed")
            .await?;
        if after < 0 {
            return Err(AppError::BadInput("after: must be 0 or a seq".into()));
        }
        let rows = self
            .store
            .events_after(after, limit.clamp(1, MAX_PAGE), scope.department())
            .await?;
        let base64 = base64::engine::general_purpose::STANDARD;
        let (mut receipts, mut statements) = self.log_proofs_of(&rows).await?;
        let mut events = Vec::with_capacity(rows.len());
        for (event, full_record) in rows {
            let full = crate::store::decode_full_record(
                &full_record,
                format_args!("event {}", event.seq),
            )?;
            let issuer_name = self
                .directory
                .issuers()
                .into_iter()
                .find(|i| i.uscc == full.claims.iss)
                .map_or_else(|| full.claims.iss.to_string(), |i| i.name);
            events.push(FeedEvent {
                seq: event.seq,
                licence_id: event.licence_id,
                version: event.version,
                kind: event.kind,
                at: event.at,
                reason: event.reason,
                record: base64.encode(&full_record),
                metadata: metadata(&full, &issuer_name),
                receipt: base64.encode(receipts.remove(&event.seq).unwrap_or_default()),
                statement: statements.remove(&event.seq).map(|s| base64.encode(s)),
            });
        }
        let next = events.last().map_or(after, |e| e.seq);
        Ok(FeedPage { events, next })
    }

    /// The inclusion receipts of `rows`' log entries, in the tree of one head covering them
    /// all, and the statements of their status changes; both by seq.
    async fn log_proofs_of(
        &self,
        rows: &[(EventRow, Vec<u8>)],
    ) -> Result<(HashMap<i64, Vec<u8>>, HashMap<i64, Vec<u8>>), AppError> {
        let Some(last) = rows.iter().map(|(e, _)| e.seq).max() else {
            return Ok(Default::default());
        };
        let head = self.log_head_covering(last as u64).await?;
        let leaves: Vec<u64> = rows.iter().map(|(e, _)| e.seq as u64 - 1).collect();
        let receipts = self.inclusion_receipts(&leaves, &head).await?;
        let receipts = rows.iter().map(|(e, _)| e.seq).zip(receipts).collect();
        let changes: Vec<i64> = rows
            .iter()
            .filter(|(e, _)| !e.kind.creates_version())
            .map(|(e, _)| e.seq)
            .collect();
        Ok((receipts, self.store.log_statements(&changes).await?))
    }
}

// ---------------------------------------------------------------------------------------------
// Push delivery

/// Events (or audit records) per push request.
pub const PUSH_BATCH: i64 = 100;

/// One delivery attempt's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delivered and acknowledged everything up to `up_to` (`count` seqs; none for a request
    /// that carried only a checkpoint).
    Delivered { up_to: i64, count: usize },
    /// Nothing new to deliver.
    Idle,
    /// Another instance holds the delivery lease.
    NotLeader,
    /// The library did not acknowledge; the same batch is retried after a backoff.
    Failed(String),
}

/// One request of a stream: the seqs it carries and its body, kept until acknowledged so that a
/// retry sends the same bytes under the same key.
pub struct Outgoing {
    /// The first seq it carries (one past what was delivered when it carries none).
    pub first: i64,
    /// The last seq it carries (what was delivered when it carries none).
    pub last: i64,
    pub idempotency_key: String,
    pub body: Vec<u8>,
    /// Delivery starts again from `first`, below what was delivered: the stream's source shrank
    /// (an audit trail cut short), and what now stands under the old seqs is sent again.
    pub rewinds: bool,
}

/// What a pusher delivers: one engine, two streams — the change events to the city library
/// (SPEC §8) and the audit trail to the city supervision platform (SPEC §15).
pub trait Stream: Send + Sync {
    /// The path the stream posts to under the receiver's URL (`events`, `audit`).
    const PATH: &'static str;
    /// What the receiver is called in logs.
    const RECEIVER: &'static str;

    /// The name delivery progress and the lease are kept under for the receiver at `url`.
    fn progress_key(&self, url: &str) -> String;

    /// The next request after `delivered`, with at most `limit` seqs; None when there is nothing
    /// to send.
    fn next(
        &self,
        app: &App,
        delivered: i64,
        limit: i64,
    ) -> impl std::future::Future<Output = Result<Option<Outgoing>, AppError>> + Send;

    /// The receiver acknowledged `outgoing`.
    fn acknowledged(&self, _outgoing: &Outgoing) {}
}

/// The change events, as the feed gives them, posted as a JSON array (SPEC §8).
pub struct LibraryEvents;

impl Stream for LibraryEvents {
    const PATH: &'static str = "events";
    const RECEIVER: &'static str = "city library";

    /// The URL itself: progress kept before there were two streams stays where it was.
    fn progress_key(&self, url: &str) -> String {
        url.to_string()
    }

    async fn next(
        &self,
        app: &App,
        delivered: i64,
        limit: i64,
    ) -> Result<Option<Outgoing>, AppError> {
        let library = Actor {
            name: "push".into(),
            source: "internal".into(),
            department: None,
            roles: vec![Role::Library],
        };
        let page = app.feed(&library, delivered, limit).await?;
        let (Some(first), Some(last)) = (page.events.first(), page.events.last()) else {
            return Ok(None);
        };
        Ok(Some(Outgoing {
            first: first.seq,
            last: last.seq,
            idempotency_key: format!("elicence-{}-{}", first.seq, last.seq),
            body: serde_json::to_vec(&page.events).expect("events serialise"),
            rewinds: false,
        }))
    }
}

/// Delivers a stream to its receiver: `POST {url}/{path}`, in seq order, at least once; progress
/// is stored, and a lease lets one instance at a time deliver.
pub struct Pusher<S: Stream = LibraryEvents> {
    app: std::sync::Arc<App>,
    stream: S,
    url: String,
    progress_key: String,
    secret: Vec<u8>,
    client: reqwest::Client,
    holder: String,
    lease_seconds: i64,
    batch: i64,
    pending: tokio::sync::Mutex<Option<Outgoing>>,
}

impl Pusher<LibraryEvents> {
    /// Delivers the change events to the city library at `url`.
    pub fn new(app: std::sync::Arc<App>, url: &str, secret: &[u8]) -> Pusher {
        Pusher::of(LibraryEvents, app, url, secret)
    }
}

impl<S: Stream> Pusher<S> {
    pub fn of(stream: S, app: std::sync::Arc<App>, url: &str, secret: &[u8]) -> Pusher<S> {
        let url = url.trim_end_matches('/').to_string();
        Pusher {
            app,
            progress_key: stream.progress_key(&url),
            stream,
            url,
            secret: secret.to_vec(),
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(15))
                .build()
                .expect("a client with a timeout builds"),
            holder: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            lease_seconds: 30,
            batch: PUSH_BATCH,
            pending: tokio::sync::Mutex::new(None),
        }
    }

    /// A shorter lease and smaller batches (tests).
    pub fn with_lease_and_batch(mut self, lease_seconds: i64, batch: i64) -> Pusher<S> {
        self.lease_seconds = lease_seconds;
        self.batch = batch;
        self
    }

    /// One attempt: take the lease, send the pending (or next) request, record the
    /// acknowledgement.
    pub async fn step(&self) -> Result<Step, AppError> {
        let now = time_util::now().unix_timestamp();
        let Some(delivered) = self
            .app
            .store
            .take_push_lease(
                &self.progress_key,
                &self.holder,
                now,
                now + self.lease_seconds,
            )
            .await?
        else {
            return Ok(Step::NotLeader);
        };
        let mut pending = self.pending.lock().await;
        // A request another instance delivered meanwhile is dropped, not resent.
        if pending
            .as_ref()
            .is_some_and(|p| p.first <= delivered && !p.rewinds)
        {
            *pending = None;
        }
        if pending.is_none() {
            let Some(next) = self.stream.next(&self.app, delivered, self.batch).await? else {
                return Ok(Step::Idle);
            };
            *pending = Some(next);
        }
        let outgoing = pending.as_ref().expect("set above");
        let response = self
            .client
            .post(format!("{}/{}", self.url, S::PATH))
            .header("content-type", "application/json")
            .header("Idempotency-Key", &outgoing.idempotency_key)
            .header(
                "X-Elicence-Signature",
                crate::hash::hmac_sha256_hex(&self.secret, &outgoing.body),
            )
            .body(outgoing.body.clone())
            .send()
            .await;
        let receiver = S::RECEIVER;
        match response {
            Ok(r) if r.status().is_success() => {
                let outgoing = pending.take().expect("set above");
                self.stream.acknowledged(&outgoing);
                let (first, last) = (outgoing.first, outgoing.last);
                if outgoing.rewinds {
                    self.app
                        .store
                        .rewind_pushed(&self.progress_key, &self.holder, last)
                        .await?;
                } else if last > delivered {
                    self.app
                        .store
                        .record_pushed(&self.progress_key, &self.holder, last)
                        .await?;
                }
                tracing::debug!(receiver, first, last, bytes = outgoing.body.len(), "pushed");
                Ok(Step::Delivered {
                    up_to: last,
                    count: (last - first + 1).max(0) as usize,
                })
            }
            Ok(r) => Ok(Step::Failed(format!("{receiver} answered {}", r.status()))),
            Err(e) => Ok(Step::Failed(format!("{receiver} unreachable: {e}"))),
        }
    }

    /// Delivers until `shutdown` turns true: at once while there is work, polling when idle,
    /// with exponential backoff and jitter while the library fails.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut failures: u32 = 0;
        let url = crate::config::mask_password(&self.url);
        let receiver = S::RECEIVER;
        tracing::info!(%url, holder = %self.holder, receiver, "pushing");
        loop {
            let pause = match self.step().await {
                Ok(Step::Delivered { .. }) => {
                    failures = 0;
                    std::time::Duration::ZERO
                }
                Ok(Step::Idle) => std::time::Duration::from_millis(500),
                Ok(Step::NotLeader) => {
                    std::time::Duration::from_secs((self.lease_seconds / 3).max(1) as u64)
                }
                Ok(Step::Failed(reason)) => {
                    failures += 1;
                    let wait = backoff(failures);
                    tracing::warn!(receiver, %reason, retry_in_ms = wait.as_millis() as u64, "push failed");
                    wait
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(receiver, error = %e, "push could not read the store");
                    backoff(failures)
                }
            };
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(pause) => {}
            }
            if *shutdown.borrow() {
                break;
            }
        }
        if let Err(e) = self
            .app
            .store
            .release_push_lease(&self.progress_key, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "could not hand the push lease back; it runs out by itself");
        }
        tracing::info!(receiver, "push stopped");
    }
}

/// 250 ms doubled per failure, at most a minute, plus up to half again of random jitter.
pub fn backoff(failures: u32) -> std::time::Duration {
    let base = (250u64 << (failures.clamp(1, 9) - 1)).min(60_000);
    std::time::Duration::from_millis(base + rand::random::<u64>() % (base / 2 + 1))
}
