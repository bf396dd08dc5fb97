//! The audit trail delivered to the city supervision platform (电子监察, SPEC §15): every record,
//! in seq order, with its `prev` and `hash`, and checkpoints signed by the supervision key that
//! the platform keeps and holds the county to. Pushed by the same engine as the library's
//! events ([`crate::sync::Pusher`] with [`AuditStream`]) and pulled through
//! [`App::supervision_audit`]; [`App::check_audit_against`] proves that the local trail still
//! extends a checkpoint.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::app::{Action, Actor, App, AppError};
use crate::audit::Record;
use crate::signing::cert::Purpose;
use crate::signing::checkpoint::Checkpoint;
use crate::signing::keys::KeyRing;
use crate::store::AuditFilter;
use crate::sync::{Outgoing, Stream};
use crate::time_util;

/// A request carries a checkpoint at least this often while records arrive (SPEC §15).
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// Most records one pull returns.
pub const MAX_PAGE: i64 = 1000;

/// An audit record as the supervision platform receives it (SPEC §15). `detail` is sent too:
/// the record's hash covers it, and a receiver that could not recompute the hash could not
/// catch an edited record.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SupervisionRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub department: Option<String>,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// Where the attempt came from: the client's address, or `cli`.
    pub address: String,
    pub detail: String,
    /// The hash of the record before (lowercase hex; 64 zeros for the first).
    pub prev: String,
    pub hash: String,
}

impl From<Record> for SupervisionRecord {
    fn from(r: Record) -> SupervisionRecord {
        SupervisionRecord {
            seq: r.seq,
            at: r.at,
            actor: r.actor,
            department: r.department,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            address: r.source,
            detail: r.detail,
            prev: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl SupervisionRecord {
    /// The hash the record's content gives (`crate::audit::record_hash`), to compare with `hash`.
    pub fn content_hash(&self) -> String {
        let entry = crate::audit::Entry {
            actor: self.actor.clone(),
            source: self.address.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            department: self.department.clone(),
        };
        crate::audit::record_hash(&self.prev, &self.at, &entry)
    }
}

/// A push request's body and a pull's page (SPEC §15).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct AuditDelivery {
    pub records: Vec<SupervisionRecord>,
    /// Base64 of a COSE_Sign1 checkpoint by the supervision key, or null.
    pub checkpoint: Option<String>,
}

/// A page of the trail pulled by the platform.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct AuditPull {
    pub records: Vec<SupervisionRecord>,
    /// Resume from here: the last seq returned, or `after` when there was nothing new.
    pub next: i64,
    /// A checkpoint of the last record returned (of the trail's head when none was): base64 of
    /// a COSE_Sign1 by the supervision key; null while the trail is empty.
    pub checkpoint: Option<String>,
}

/// The supervision key of this deployment and its kid, read from `keys/`.
pub struct SupervisionKey {
    key: SigningKey,
    kid: [u8; 8],
}

impl SupervisionKey {
    pub fn of(app: &App) -> Result<SupervisionKey, AppError> {
        let (key, kid) =
            KeyRing::service_signing_key(&app.settings.keys_dir, Purpose::Supervision)?;
        Ok(SupervisionKey { key, kid })
    }

    /// Base64 of the signed checkpoint of record `seq` with `hash`, dated now.
    fn checkpoint(&self, seq: i64, hash: &str) -> Result<String, AppError> {
        let checkpoint = Checkpoint {
            seq,
            hash: hash.to_string(),
            time: time_util::now().unix_timestamp(),
        };
        let bytes = checkpoint
            .sign(&self.key, &self.kid)
            .map_err(|e| AppError::Internal(format!("audit record {seq}: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// The audit trail as a push stream: `POST {url}/audit`.
pub struct AuditStream {
    key: SupervisionKey,
    /// The (seq, hash) and time of the last checkpoint the platform acknowledged, and the one in
    /// the request awaiting acknowledgement.
    checkpoints: Mutex<Checkpoints>,
}

#[derive(Default)]
struct Checkpoints {
    acknowledged: Option<((i64, String), Instant)>,
    sent: Option<(i64, String)>,
    /// The (seq, hash) of the last record the platform acknowledged, and of the last record in
    /// the request awaiting acknowledgement: if the trail no longer holds that record with that
    /// hash, it was cut or rewritten below what was delivered.
    delivered: Option<(i64, String)>,
    sent_last: Option<(i64, String)>,
}

impl AuditStream {
    pub fn new(app: &App) -> Result<AuditStream, AppError> {
        Ok(AuditStream {
            key: SupervisionKey::of(app)?,
            checkpoints: Mutex::default(),
        })
    }

    fn checkpoints(&self) -> std::sync::MutexGuard<'_, Checkpoints> {
        self.checkpoints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A request with `records` and, when `checkpoint` names one, its checkpoint.
    fn outgoing(
        &self,
        delivered: i64,
        records: Vec<SupervisionRecord>,
        checkpoint: Option<(i64, String)>,
        rewinds: bool,
    ) -> Result<Outgoing, AppError> {
        let (first, last) = match (records.first(), records.last()) {
            (Some(first), Some(last)) => (first.seq, last.seq),
            _ => (delivered + 1, delivered),
        };
        let signed = match &checkpoint {
            Some((seq, hash)) => Some(self.key.checkpoint(*seq, hash)?),
            None => None,
        };
        // Each body its own key: the same records with or without a checkpoint (or with a newer
        // one) are different requests to a platform that remembers keys.
        let idempotency_key = match &signed {
            Some(signed) => format!(
                "elicence-audit-{first}-{last}-{}",
                &crate::hash::sha256_hex(signed.as_bytes())[..16]
            ),
            None => format!("elicence-audit-{first}-{last}"),
        };
        {
            let mut checkpoints = self.checkpoints();
            checkpoints.sent = checkpoint;
            checkpoints.sent_last = records.last().map(|r| (r.seq, r.hash.clone()));
        }
        let body = AuditDelivery {
            records,
            checkpoint: signed,
        };
        Ok(Outgoing {
            first,
            last,
            idempotency_key,
            body: serde_json::to_vec(&body).expect("records serialise"),
            rewinds,
        })
    }
}

impl AuditStream {
    /// Whether the trail still holds the last record delivered (as far as this process knows
    /// it) with the hash it was delivered with.
    async fn still_holds_what_was_delivered(&self, app: &App) -> Result<bool, AppError> {
        let Some((seq, hash)) = self.checkpoints().delivered.clone() else {
            return Ok(true);
        };
        let now = app
            .store
            .audit_records(&AuditFilter::default(), None, seq - 1, 1)
            .await?;
        Ok(now.first().is_some_and(|r| r.seq == seq && r.hash == hash))
    }
}

impl Stream for AuditStream {
    const PATH: &'static str = "audit";
    const RECEIVER: &'static str = "supervision platform";

    fn progress_key(&self, url: &str) -> String {
        format!("audit {url}")
    }

    /// The records after `delivered`, with a checkpoint of the last when they reach the trail's
    /// head (the end of a burst of work) or when the last checkpoint is a minute old. With no
    /// records, a checkpoint of the head alone when it is not the one last acknowledged, or a
    /// minute has passed (so a silent stream means a stopped one). A trail that now ends below
    /// what was delivered was cut short: delivery starts again from its first record, so that
    /// what stands under the old seqs reaches the platform, which holds the originals.
    async fn next(
        &self,
        app: &App,
        delivered: i64,
        limit: i64,
    ) -> Result<Option<Outgoing>, AppError> {
        let Some(head) = app.store.audit_head().await? else {
            return Ok(None);
        };
        let rewinds = head.0 < delivered || !self.still_holds_what_was_delivered(app).await?;
        if rewinds {
            tracing::error!(
                head = head.0,
                delivered,
                "the audit trail no longer holds the records already delivered to the supervision \
                 platform: records were removed or rewritten; delivering it again from the start"
            );
        }
        let after = if rewinds { 0 } else { delivered };
        let records: Vec<SupervisionRecord> = app
            .store
            .audit_records(&AuditFilter::default(), None, after, limit)
            .await?
            .into_iter()
            .map(SupervisionRecord::from)
            .collect();
        let acknowledged = self.checkpoints().acknowledged.clone();
        let due = acknowledged
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= CHECKPOINT_INTERVAL);
        if let Some(last) = records.last() {
            let at_head = (last.seq, &last.hash) == (head.0, &head.1);
            let checkpoint = (at_head || due).then(|| (last.seq, last.hash.clone()));
            return self.outgoing(after, records, checkpoint, rewinds).map(Some);
        }
        let head_acknowledged = acknowledged.is_some_and(|(checkpointed, _)| checkpointed == head);
        if head_acknowledged && !due {
            return Ok(None);
        }
        self.outgoing(delivered, Vec::new(), Some(head), false)
            .map(Some)
    }

    fn acknowledged(&self, _outgoing: &Outgoing) {
        let mut checkpoints = self.checkpoints();
        if let Some(sent) = checkpoints.sent.take() {
            checkpoints.acknowledged = Some((sent, Instant::now()));
        }
        if let Some(last) = checkpoints.sent_last.take() {
            checkpoints.delivered = Some(last);
        }
    }
}

/// What the local trail says about a checkpoint (`audit verify --checkpoint`).
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointReport {
    pub checkpoint_seq: i64,
    pub checkpoint_hash: String,
    /// The whole chain's own check.
    pub chain: crate::audit::ChainReport,
    /// None when the trail is intact and extends the checkpoint; otherwise what is wrong.
    pub problem: Option<String>,
}

impl App {
    /// The whole trail after `after` for the supervision platform, with a checkpoint (SPEC §15):
    /// a city-wide supervisor's or admin's only, since a department's share of the records
    /// does not chain.
    pub async fn supervision_audit(
        &self,
        actor: &Actor,
        after: i64,
        limit: i64,
    ) -> Result<AuditPull, AppError> {
        let scope = self
            .scope_audited(actor, Action::ReadAudit, "supervision.read", "audit")
            .await?;
        if scope.department().is_some() {
            let refused: Result<(), AppError> = Err(AppError::Forbidden(
                "the supervision stream is the whole trail: a city-wide supervisor or admin reads it"
                    .into(),
            ));
            self.audit_failure(actor.entry("supervision.read", "audit"), &refused)
                .await;
            refused?;
        }
        if after < 0 {
            return Err(AppError::BadInput("after: must be 0 or a seq".into()));
        }
        let records: Vec<SupervisionRecord> = self
            .store
            .audit_records(
                &AuditFilter::default(),
                None,
                after,
                limit.clamp(1, MAX_PAGE),
            )
            .await?
            .into_iter()
            .map(SupervisionRecord::from)
            .collect();
        let checkpointed = match records.last() {
            Some(last) => Some((last.seq, last.hash.clone())),
            None => self.store.audit_head().await?,
        };
        let checkpoint = match checkpointed {
            Some((seq, hash)) => Some(SupervisionKey::of(self)?.checkpoint(seq, &hash)?),
            None => None,
        };
        Ok(AuditPull {
            next: records.last().map_or(after, |r| r.seq),
            records,
            checkpoint,
        })
    }

    /// Checks that the local trail is intact and still holds record `seq` with `hash`, as a
    /// checkpoint (or a head written down) says: a tail deleted after it, or a record at or before
    /// it edited and the chain re-hashed, is named.
    pub async fn check_audit_against(
        &self,
        seq: i64,
        hash: &str,
    ) -> Result<CheckpointReport, AppError> {
        let chain = self.store.verify_audit().await?;
        let record = self
            .store
            .audit_records(&AuditFilter::default(), None, seq - 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|r| r.seq == seq);
        let problem = match record {
            None => Some(format!(
                "the trail ends at record {} but the checkpoint holds record {seq}: records were \
                 removed from the end of the trail",
                chain.records
            )),
            Some(r) if r.hash != hash => Some(format!(
                "record {seq} has hash {} but the checkpoint holds {hash}: the trail was \
                 rewritten at or before record {seq}",
                r.hash
            )),
            Some(_) => chain
                .first_break
                .as_ref()
                .map(|b| format!("the chain breaks at record {}: {}", b.seq, b.reason)),
        };
        Ok(CheckpointReport {
            checkpoint_seq: seq,
            checkpoint_hash: hash.to_string(),
            chain,
            problem,
        })
    }

    /// The checkpoint in `bytes` (raw COSE_Sign1, or its base64), when this deployment's
    /// supervision key signed it.
    pub fn read_checkpoint(&self, bytes: &[u8]) -> Result<Checkpoint, AppError> {
        let raw = if bytes.first() == Some(&0xd2) {
            bytes.to_vec()
        } else {
            let text = std::str::from_utf8(bytes).map_err(|_| {
                AppError::BadInput("checkpoint: neither COSE bytes nor base64".into())
            })?;
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| {
                    AppError::BadInput("checkpoint: neither COSE bytes nor base64".into())
                })?
        };
        let trust = crate::signing::trust::TrustStore::new(&self.trust_list(), None)
            .map_err(|e| AppError::Config(e.to_string()))?;
        Checkpoint::verify(&raw, &trust).map_err(|e| AppError::BadInput(format!("checkpoint: {e}")))
    }
}
