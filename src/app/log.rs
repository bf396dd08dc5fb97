//! The transparency log as the service serves it (SPEC §16): signed tree heads, made on demand
//! and every minute while entries arrive; inclusion and consistency receipts; the catch-up that
//! logs a database's events from before the log; and `log verify`, which checks the stored tree
//! against the entries and the heads.

use std::sync::Arc;

use ed25519_dalek::SigningKey;

use super::{App, AppError, Result};
use crate::identifiers::{LicenceRef, VersionId};
use crate::signing::cert::Purpose;
use crate::signing::keys::KeyRing;
use crate::store::{StoreError, StoredHead};
use crate::time_util;
use crate::transparency::head::TreeHead;
use crate::transparency::merkle::{self, Hash, KnownNodes, MemoryTree};
use crate::transparency::receipt::Proof;
use crate::transparency::statement::StatusStatement;

/// Most heads one `GET /api/v1/log/heads` returns.
pub const MAX_HEADS: i64 = 1000;

/// How often `serve` makes a head while entries arrive (SPEC §16: at least every minute).
pub const HEAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// What `log verify` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LogReport {
    /// Entries read back from the events.
    pub entries: u64,
    /// Leaves the stored tree holds.
    pub leaves: u64,
    /// Signed heads checked.
    pub heads: u64,
    /// Leaves the log lacked when this process opened the store (a database from before the
    /// log, or events logged by an instance without it), appended then — before this check.
    pub caught_up_at_open: u64,
    /// Everything that does not hold, one line each; empty when the log is sound.
    pub problems: Vec<String>,
}

impl App {
    /// Logs every event the log does not hold yet (a database from before the log): status
    /// changes without a statement get one signed now (see [`App::sign_statement`]). Returns
    /// how many leaves it appended.
    pub async fn catch_up_log(&self) -> Result<u64> {
        let appended = self
            .store
            .catch_up_log(|event| {
                let statement = StatusStatement {
                    licence_id: &event.licence_id,
                    version: event.version,
                    kind: event.kind,
                    at: &event.at,
                    reason: event.reason.as_deref(),
                };
                self.sign_statement(&statement)
                    .map_err(|e| format!("event {}: {e}", event.seq))
            })
            .await?;
        if appended > 0 {
            tracing::info!(
                appended,
                "logged the events the transparency log did not hold"
            );
        }
        Ok(appended)
    }

    /// The signed statement a status change is logged as (SPEC §16): by the department's current
    /// key, or by the log key when the department has none usable (every signer revoked after a
    /// compromise): a revocation must still be possible, and logged.
    pub(crate) fn sign_statement(&self, statement: &StatusStatement<'_>) -> Result<Vec<u8>> {
        let licence = LicenceRef::parse(statement.licence_id)?;
        if let Ok((key, kid)) = self.keys().signing_key(&licence.key().issuer) {
            return Ok(statement.sign(key, &kid));
        }
        tracing::warn!(
            licence = statement.licence_id,
            "no usable department key: the status change is signed by the log key"
        );
        let (key, kid) = self.log_key()?;
        Ok(statement.sign(&key, &kid))
    }

    /// The log key and its kid (keys/log.*.pem).
    fn log_key(&self) -> Result<(SigningKey, [u8; 8])> {
        Ok(KeyRing::service_signing_key(
            &self.settings.keys_dir,
            Purpose::Log,
        )?)
    }

    /// The perfect subtrees `compute` reads, fetched in one query.
    async fn nodes_for<T>(
        &self,
        compute: impl FnOnce(&merkle::Recorder) -> T,
    ) -> Result<KnownNodes> {
        Ok(self
            .store
            .log_nodes(&merkle::nodes_read_by(compute))
            .await?)
    }

    /// The latest head: a new one when entries arrived since the last (SPEC §16).
    pub async fn log_head(&self) -> Result<StoredHead> {
        let size = self.store.log_size().await?;
        self.log_head_covering(size).await
    }

    /// The latest head when it covers `size` leaves; else a new head of the whole log.
    pub async fn log_head_covering(&self, size: u64) -> Result<StoredHead> {
        if let Some(head) = self.store.latest_log_head().await? {
            if head.size >= size {
                return Ok(head);
            }
        }
        // The time first: a larger head is never dated before a smaller one.
        let time = time_util::now().unix_timestamp();
        let size = self.store.log_size().await?;
        let nodes = self.nodes_for(|r| merkle::root(r, size)).await?;
        let root = merkle::root(&nodes, size).map_err(corrupt)?;
        let (key, kid) = self.log_key()?;
        let head = TreeHead { size, root, time }.sign(&key, &kid);
        let stored = StoredHead {
            size,
            root,
            time,
            head,
        };
        Ok(self.store.insert_log_head(&stored).await?)
    }

    /// Heads larger than `after` (all without), smallest first, at most [`MAX_HEADS`].
    pub async fn log_heads_after(&self, after: Option<u64>) -> Result<Vec<StoredHead>> {
        Ok(self.store.log_heads_after(after, MAX_HEADS).await?)
    }

    /// The inclusion receipt of a version (its full record) in the tree of the head of `size`
    /// leaves, or of the latest head.
    pub async fn inclusion_receipt(&self, version: &str, size: Option<u64>) -> Result<Vec<u8>> {
        let id = VersionId::parse(version)?;
        let seq = self
            .store
            .version_event_seq(&id.key.to_string(), id.version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("version {id}")))?;
        let leaf = seq as u64 - 1;
        let head = match size {
            Some(size) => self.head_of_size(size).await?,
            None => self.log_head_covering(leaf + 1).await?,
        };
        if leaf >= head.size {
            return Err(AppError::BadInput(format!(
                "size: version {id} is logged after the tree of {} entries",
                head.size
            )));
        }
        Ok(self.inclusion_receipts(&[leaf], &head).await?.remove(0))
    }

    /// The inclusion receipts of `leaves` in the tree of `head`, with one read for them all.
    pub async fn inclusion_receipts(
        &self,
        leaves: &[u64],
        head: &StoredHead,
    ) -> Result<Vec<Vec<u8>>> {
        let size = head.size;
        let nodes = self
            .nodes_for(|r| {
                for leaf in leaves {
                    let _ = merkle::inclusion_proof(r, *leaf, size);
                }
            })
            .await?;
        let (key, kid) = self.log_key()?;
        leaves
            .iter()
            .map(|&index| {
                let path = merkle::inclusion_proof(&nodes, index, size)
                    .map_err(corrupt)?
                    .ok_or_else(|| {
                        AppError::BadInput(format!("leaf {index} is not in the tree of {size}"))
                    })?;
                Ok(Proof::Inclusion { size, index, path }.sign(&head.root, &key, &kid))
            })
            .collect()
    }

    /// The consistency receipt between the trees of `from` and `to` leaves; `to` must have a
    /// head (the receipt signs its root).
    pub async fn consistency_receipt(&self, from: u64, to: u64) -> Result<Vec<u8>> {
        // RFC 9162 has no proof between a tree and itself: compare the roots.
        if from == 0 || from >= to {
            return Err(AppError::BadInput(format!(
                "from: must be at least 1 and less than to ({to}), not {from}"
            )));
        }
        let head = self.head_of_size(to).await?;
        let nodes = self
            .nodes_for(|r| merkle::consistency_proof(r, from, to))
            .await?;
        let path = merkle::consistency_proof(&nodes, from, to)
            .map_err(corrupt)?
            .expect("0 < from < to checked above");
        let (key, kid) = self.log_key()?;
        Ok(Proof::Consistency {
            old: from,
            new: to,
            path,
        }
        .sign(&head.root, &key, &kid))
    }

    /// The full record of a version: its log entry (for `log receipt --record`, the local
    /// operator's).
    pub async fn full_record_of(&self, version: &str) -> Result<Vec<u8>> {
        let id = VersionId::parse(version)?;
        let row = self.find(version).await?;
        let stored = self
            .store
            .version(row.pk, id.version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("version {id}")))?;
        Ok(stored.full_record)
    }

    async fn head_of_size(&self, size: u64) -> Result<StoredHead> {
        self.store
            .log_head_of_size(size)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("a signed head of tree size {size}")))
    }

    /// Makes a head every [`HEAD_INTERVAL`] while entries arrive, until `stop`.
    pub async fn keep_log_heads(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(HEAD_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if let Err(e) = self.log_head().await {
                tracing::warn!(error = %e, "could not make a transparency log head: retrying");
            }
        }
    }

    /// Checks the stored tree against the entries it logs and the signed heads (`elicence log
    /// verify`): every leaf is its event's entry hashed, every stored subtree is its leaves'
    /// root, every head is signed by the log key and states the root its size has.
    pub async fn verify_log(&self) -> Result<LogReport> {
        let mut report = LogReport {
            caught_up_at_open: self.log_caught_up_at_open,
            ..LogReport::default()
        };
        let mut tree = MemoryTree::default();
        let mut missing = std::collections::HashSet::new();
        let mut after = 0;
        loop {
            let entries = self.store.log_entries_after(after, 1000).await?;
            let Some(last) = entries.last() else { break };
            after = last.event.seq;
            for entry in &entries {
                report.entries += 1;
                let event = &entry.event;
                if event.seq as u64 != tree.size() + 1 {
                    report.problems.push(format!(
                        "event {} is missing: the change events have a gap",
                        tree.size() + 1
                    ));
                }
                let Some(bytes) = &entry.entry else {
                    report.problems.push(format!(
                        "event {} ({} {} version {}): its entry is missing",
                        event.seq,
                        event.kind.as_str(),
                        event.licence_id,
                        event.version
                    ));
                    missing.insert(tree.size());
                    tree.push([0; 32]);
                    continue;
                };
                tree.push(merkle::leaf_hash(bytes));
            }
        }
        self.compare_stored_nodes(&tree, &missing, &mut report)
            .await?;
        self.check_heads(&tree, &mut report).await?;
        Ok(report)
    }

    /// The stored tree against the entries: every leaf against its entry's hash (`missing`:
    /// leaves whose entry is gone, reported already), every stored interior subtree against the
    /// root of the stored leaves under it (so an edited entry is reported once, at its leaf),
    /// and every level holding each perfect subtree its leaves make.
    async fn compare_stored_nodes(
        &self,
        entries: &MemoryTree,
        missing: &std::collections::HashSet<u64>,
        report: &mut LogReport,
    ) -> Result<()> {
        use merkle::Nodes;
        let mut stored_leaves = MemoryTree::default();
        for level in 0..64u32 {
            let mut from = 0;
            loop {
                let nodes = self.store.log_level(level, from, 10_000).await?;
                let Some(&(last, _)) = nodes.last() else {
                    break;
                };
                from = last + 1;
                for (index, stored) in nodes {
                    if level > 0 {
                        if stored_leaves.perfect(level, index).ok() != Some(stored) {
                            report.problems.push(format!(
                                "the stored subtree at level {level}, index {index} is not the root of the leaves under it"
                            ));
                        }
                        continue;
                    }
                    report.leaves += 1;
                    if index != stored_leaves.size() {
                        report
                            .problems
                            .push(format!("leaf {} is missing", stored_leaves.size()));
                    }
                    stored_leaves.push(stored);
                    let edited = entries.perfect(0, index).is_ok_and(|entry| entry != stored);
                    if edited && !missing.contains(&index) {
                        report.problems.push(format!(
                            "leaf {index} (event {}) is not the hash of the event's entry: the entry was changed",
                            index + 1
                        ));
                    }
                }
            }
            let expected = report.leaves >> level;
            if level > 0 {
                let held = self.store.log_level_count(level).await?;
                if held != expected {
                    report.problems.push(format!(
                        "level {level} holds {held} stored subtrees where {} leaves make {expected}",
                        report.leaves
                    ));
                }
            }
            if expected == 0 {
                break;
            }
        }
        if report.leaves != entries.size() {
            report.problems.push(format!(
                "the log holds {} leaves for {} events",
                report.leaves,
                entries.size()
            ));
        }
        Ok(())
    }

    /// Every stored head: its signature, and its root against the rebuilt tree's.
    async fn check_heads(&self, tree: &MemoryTree, report: &mut LogReport) -> Result<()> {
        let trust = self.trust_store();
        let mut after = None;
        loop {
            let heads = self.store.log_heads_after(after, MAX_HEADS).await?;
            let Some(last) = heads.last() else { break };
            after = Some(last.size);
            for head in &heads {
                report.heads += 1;
                match TreeHead::verify(&head.head, &trust) {
                    Err(e) => report
                        .problems
                        .push(format!("the head of size {}: {e}", head.size)),
                    Ok(signed) if signed.size != head.size || signed.root != head.root => {
                        report.problems.push(format!(
                            "the head of size {} is stored beside a different size or root than it signs",
                            head.size
                        ))
                    }
                    Ok(_) => {}
                }
                if head.size > tree.size() {
                    report.problems.push(format!(
                        "the head of size {} signs more entries than the {} the events hold: entries were removed",
                        head.size,
                        tree.size()
                    ));
                } else if merkle::root(tree, head.size).ok() != Some(head.root) {
                    report.problems.push(format!(
                        "the head of size {} signs a root the entries no longer give: the logged past was rewritten",
                        head.size
                    ));
                }
            }
        }
        Ok(())
    }
}

fn corrupt(e: merkle::MissingNode) -> AppError {
    AppError::Store(StoreError::Corrupt(format!("transparency log: {e}")))
}

/// A root's hex, as reports and the CLI show it.
pub fn hex(root: &Hash) -> String {
    data_encoding::HEXLOWER.encode(root)
}
