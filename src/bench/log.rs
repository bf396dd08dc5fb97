//! `bench log` (SPEC §16): what the transparency log costs and serves — appending leaves in the
//! conversion's chunks of 200 and one at a time (a single change), inclusion and consistency
//! receipts made per second, and a receipt's size, at each tree size asked for (10^5 and 10^6).
//! The leaves are synthetic and tied to no event, so the scratch log fails `log verify`; nothing
//! here touches a real store.

use std::time::Instant;

use rand::Rng;
use serde::Serialize;

use super::{backend_name, Report};
use crate::app::App;
use crate::transparency::merkle::leaf_hash;

/// Receipts made at each tree size.
const RECEIPTS: usize = 2000;

/// A receipt's size at one tree size.
#[derive(Debug, Clone, Serialize)]
pub struct ProofSize {
    pub entries: u64,
    pub inclusion_hashes: usize,
    pub inclusion_receipt_bytes: usize,
    pub consistency_hashes: usize,
    pub consistency_receipt_bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogReport {
    pub reports: Vec<Report>,
    pub sizes: Vec<ProofSize>,
}

impl LogReport {
    pub fn lines(&self) -> String {
        let mut lines: Vec<String> = self.reports.iter().map(Report::line).collect();
        for s in &self.sizes {
            lines.push(format!(
                "at {:>9} entries: inclusion receipt {} bytes ({} hashes), consistency receipt {} bytes ({} hashes)",
                s.entries,
                s.inclusion_receipt_bytes,
                s.inclusion_hashes,
                s.consistency_receipt_bytes,
                s.consistency_hashes
            ));
        }
        lines.join("\n")
    }
}

/// Grows a scratch log to each of `sizes` (ascending), measuring appends on the way and
/// receipts at each size.
pub async fn run(app: &App, sizes: &[u64]) -> anyhow::Result<LogReport> {
    if app.store.last_seq().await? != 0 || app.store.log_size().await? != 0 {
        anyhow::bail!(
            "bench log runs on an empty database only: its leaves belong to no event, and no \
             event could be logged after them"
        );
    }
    let backend = backend_name(app);
    let mut reports = Vec::new();
    let mut proof_sizes = Vec::new();
    let mut rng = rand::thread_rng();
    let mut leaf = 0u64;
    let mut next_leaves = |n: usize| -> Vec<_> {
        (0..n)
            .map(|_| {
                leaf += 1;
                leaf_hash(&leaf.to_be_bytes())
            })
            .collect()
    };

    // Appends as conversion makes them (chunks of 200), then one by one as a single change.
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..50 {
        let leaves = next_leaves(200);
        let t = Instant::now();
        app.store.append_synthetic_leaves(&leaves).await?;
        samples.push(t.elapsed());
    }
    let chunks = Report::new(
        "log append (chunk of 200)",
        backend,
        1,
        samples,
        started.elapsed(),
    );
    let entries_per_second = chunks.per_second * 200.0;
    reports.push(chunks);
    let mut samples = Vec::new();
    let started = Instant::now();
    for _ in 0..1000 {
        let leaves = next_leaves(1);
        let t = Instant::now();
        app.store.append_synthetic_leaves(&leaves).await?;
        samples.push(t.elapsed());
    }
    reports.push(Report::new(
        "log append (one leaf)",
        backend,
        1,
        samples,
        started.elapsed(),
    ));
    tracing::info!(entries_per_second, "log appends");

    for &target in sizes {
        let size = app.store.log_size().await?;
        let mut remaining = target.saturating_sub(size);
        while remaining > 0 {
            let n = remaining.min(10_000);
            app.store
                .append_synthetic_leaves(&next_leaves(n as usize))
                .await?;
            remaining -= n;
        }
        let head = app.log_head().await?;
        let mut samples = Vec::with_capacity(RECEIPTS);
        let started = Instant::now();
        let mut inclusion = Vec::new();
        for _ in 0..RECEIPTS {
            let index = rng.gen_range(0..head.size);
            let t = Instant::now();
            inclusion = app.inclusion_receipts(&[index], &head).await?;
            samples.push(t.elapsed());
        }
        let name = format!("inclusion receipt @{}", head.size);
        reports.push(Report::new(&name, backend, 1, samples, started.elapsed()));
        let mut samples = Vec::with_capacity(RECEIPTS);
        let started = Instant::now();
        let mut consistency = Vec::new();
        for _ in 0..RECEIPTS {
            let from = rng.gen_range(1..=head.size);
            let t = Instant::now();
            consistency = app.consistency_receipt(from, head.size).await?;
            samples.push(t.elapsed());
        }
        let name = format!("consistency receipt @{}", head.size);
        reports.push(Report::new(&name, backend, 1, samples, started.elapsed()));
        proof_sizes.push(ProofSize {
            entries: head.size,
            inclusion_hashes: hashes_in(&inclusion[0]),
            inclusion_receipt_bytes: inclusion[0].len(),
            consistency_hashes: hashes_in(&consistency),
            consistency_receipt_bytes: consistency.len(),
        });
    }
    Ok(LogReport {
        reports,
        sizes: proof_sizes,
    })
}

fn hashes_in(receipt: &[u8]) -> usize {
    use crate::transparency::receipt::{Proof, Receipt};
    match Receipt::parse(receipt).map(|r| r.proof) {
        Ok(Proof::Inclusion { path, .. } | Proof::Consistency { path, .. }) => path.len(),
        Err(_) => 0,
    }
}
