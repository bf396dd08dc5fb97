//! Issuing a checked chunk: serials and status indexes reserved, every licence signed and
//! rendered on every core, scans and PDFs archived, then the licences and every row's outcome
//! committed in one transaction. The room where licences come into being, apart from the
//! checks that decide which rows get here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::blocking;
use super::check::Pending;
use super::progress::{Clock, Stage};
use crate::app::{Actor, App, AppError, Result};
use crate::audit::Entry;
use crate::blobs::Blobs;
use crate::identifiers::{LicenceKey, TypeCode};
use crate::licence::LicenceVersion;
use crate::store::{BatchRow, BatchRowOutcome, NewLicence, RowResult};

/// A licence signed, rendered and archived, with the audit record of its issue.
struct Signed {
    version: LicenceVersion,
    audit: Entry,
}

/// Issues the checked rows of a chunk: reserves serials and status indexes, signs and renders on
/// every core, and starts archiving scans and PDFs. Rows get `Issue(i)` pointing at their licence.
pub(super) async fn issue(
    app: &Arc<App>,
    actor: &Actor,
    batch_id: &str,
    rows: &mut [BatchRow],
    pending: Vec<Pending>,
    clock: &Arc<Clock>,
) -> Result<IssuedChunk> {
    // Once a chunk: a rotation made meanwhile by any process signs the rest with the new key.
    app.sync_keys().await?;
    let reserving = Instant::now();
    // Read once a chunk: a change of the register reaches a running job at its next chunk.
    let verify_base = app.verify_base().await?;
    // Reservations: a serial range per type, status indexes per issuer.
    let mut serials: HashMap<TypeCode, u64> = HashMap::new();
    let mut indexes: HashMap<String, Vec<u64>> = HashMap::new();
    let mut per_type: BTreeMap<&TypeCode, u64> = BTreeMap::new();
    for p in &pending {
        *per_type.entry(&p.type_code).or_default() += 1;
    }
    for (type_code, count) in per_type {
        let t = app.licence_type(type_code)?;
        let first = app
            .store
            .reserve_serials(&t.code, &t.issuer.uscc, count)
            .await?;
        serials.insert(type_code.clone(), first);
        indexes
            .entry(t.issuer.uscc.to_string())
            .or_default()
            .extend(
                app.store
                    .reserve_status_indexes(&t.issuer.uscc, count as usize)
                    .await?,
            );
    }
    let mut jobs = Vec::with_capacity(pending.len());
    for p in pending {
        let t = app.licence_type(&p.type_code)?;
        let serial = serials.get_mut(&p.type_code).expect("reserved above");
        let key = LicenceKey {
            type_code: t.code.clone(),
            issuer: t.issuer.uscc.clone(),
            serial: *serial,
        };
        *serial += 1;
        let index = indexes
            .get_mut(t.issuer.uscc.as_str())
            .and_then(Vec::pop)
            .expect("reserved above");
        jobs.push((p, key, index));
    }
    clock.add(Stage::Reserve, reserving);

    let (worker, clock_in) = (app.clone(), clock.clone());
    let made = blocking(move || {
        jobs.into_par_iter()
            .map(|(mut p, key, index)| {
                let t = worker.licence_type(&p.type_code)?;
                p.record.scan = Some(p.scan.sha256.clone());
                let signing = Instant::now();
                let version = worker.sign_reserved(
                    t,
                    key.version(1),
                    p.record,
                    None,
                    index,
                    verify_base.clone(),
                )?;
                clock_in.add(Stage::Sign, signing);
                let rendering = Instant::now();
                let pdf = worker.render_new(t, &version)?;
                clock_in.add(Stage::Render, rendering);
                Ok((p.row, version, pdf, p.scan))
            })
            .collect::<Vec<Result<_>>>()
    })
    .await?;

    let mut archive = tokio::task::JoinSet::new();
    let mut signed = Vec::with_capacity(made.len());
    for m in made {
        let (row, version, pdf, scan) = m?;
        let blobs: Blobs = app.blobs.clone();
        let pdf_key = Blobs::pdf_key(&version.id.to_string());
        archive.spawn(async move {
            blobs
                .put(&Blobs::scan_key(&scan.sha256), &scan.bytes)
                .await?;
            blobs.put(&pdf_key, &pdf).await
        });
        rows[row].outcome = BatchRowOutcome::Issue(signed.len());
        let audit = Entry {
            target: version.id.to_string(),
            detail: format!(
                "batch {batch_id} line {}: number {}, scan {}",
                rows[row].line,
                version.record.number,
                version.record.scan.as_deref().unwrap_or("")
            ),
            ..actor.entry("licence.issue", version.id.key.type_code.as_str())
        };
        signed.push(Signed { version, audit });
    }
    Ok(IssuedChunk { signed, archive })
}

/// A chunk's licences, signed and rendered, with their scans and PDFs being archived.
pub(super) struct IssuedChunk {
    signed: Vec<Signed>,
    archive: tokio::task::JoinSet<std::result::Result<(), crate::blobs::BlobError>>,
}

/// Finishes a chunk: waits for its archive — a committed licence always has its scan and PDF —
/// then commits its licences and row outcomes in one transaction.
pub(super) async fn commit(
    app: Arc<App>,
    (batch_id, holder): (String, String),
    rows: Vec<BatchRow>,
    mut chunk: IssuedChunk,
    last_line: u64,
    clock: Arc<Clock>,
) -> Result<Vec<RowResult>> {
    let archiving = Instant::now();
    while let Some(done) = chunk.archive.join_next().await {
        done.map_err(|e| AppError::Internal(format!("archiving: {e}")))??;
    }
    clock.add(Stage::Archive, archiving);
    let new: Vec<NewLicence<'_>> = chunk
        .signed
        .iter()
        .map(|i| NewLicence {
            number: &i.version.record.number,
            holder_id: i.version.record.holder.id.as_str(),
            version: &i.version,
            audit: &i.audit,
        })
        .collect();
    let committing = Instant::now();
    let results = app
        .store
        .commit_batch_chunk(&batch_id, &holder, &new, &rows, last_line)
        .await?;
    clock.add(Stage::Commit, committing);
    Ok(results)
}

pub(super) async fn joined(
    handle: tokio::task::JoinHandle<Result<Vec<RowResult>>>,
) -> Result<Vec<RowResult>> {
    handle
        .await
        .map_err(|e| AppError::Internal(format!("committing a chunk: {e}")))?
}
