//! The transparency log (SPEC §16): an append-only Merkle tree of everything issued, whose signed
//! heads and receipts let an outsider prove what the county issued and that nothing was removed.
//!
//! - `merkle`: the tree's hashing and proofs (RFC 9162), over perfect subtrees a store keeps;
//! - `head`: signed tree heads;
//! - `receipt`: inclusion and consistency proofs as COSE Receipts (RFC 9942);
//! - `statement`: the signed statement a status change is logged as.
//!
//! The stored tree is in `store::log`; making heads and receipts, in `app::log`.

pub mod head;
pub mod merkle;
pub mod receipt;
pub mod statement;

use crate::signing::cert::Purpose;
use crate::signing::trust::TrustStore;

/// Why a head, a receipt or a statement is not one the county's log key signed, or does not
/// prove what it is asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("not a {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("signed by no log key of the trust list valid at {at}")]
    UnknownKey { at: i64 },
    #[error("its signature does not verify")]
    BadSignature,
    #[error("{0}")]
    Proof(String),
}

fn malformed(what: &'static str, reason: impl std::fmt::Display) -> LogError {
    LogError::Malformed {
        what,
        reason: reason.to_string(),
    }
}

/// The log key of `trust` named `kid` and valid at `at`.
fn log_key<'t>(
    trust: &'t TrustStore,
    kid: &[u8],
    at: i64,
) -> Result<&'t ed25519_dalek::VerifyingKey, LogError> {
    trust
        .service_key(Purpose::Log, kid, at)
        .ok_or(LogError::UnknownKey { at })
}

/// Where a record stands in the county's log, as a signed head and a receipt prove it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InLog {
    /// The record's leaf.
    pub index: u64,
    /// The head's tree size.
    pub size: u64,
    /// When the head was signed (seconds since the epoch).
    pub head_time: i64,
}

/// Checks offline that `record` (a full-record COSE_Sign1 whose payload hashes to
/// `record_hash`, as the QR token states) is in the tree of the signed `head`, by `receipt`:
/// both signed by a log key of `trust`, the receipt for exactly the head's tree.
pub fn check_logged(
    record_hash: &[u8; 32],
    record: &[u8],
    receipt: &[u8],
    head: &[u8],
    trust: &TrustStore,
) -> Result<InLog, LogError> {
    let head = head::TreeHead::verify(head, trust)?;
    let envelope =
        crate::signing::cose::Envelope::parse(record).map_err(|e| malformed("full record", e))?;
    if crate::hash::sha256(envelope.payload()) != *record_hash {
        return Err(LogError::Proof(
            "the record file is not the record this QR code names".into(),
        ));
    }
    let receipt = receipt::Receipt::parse(receipt)?;
    let receipt::Proof::Inclusion { index, .. } = receipt.proof else {
        return Err(LogError::Proof("not an inclusion receipt".into()));
    };
    let (size, root) = receipt.verify_inclusion(record, trust, head.time)?;
    if size != head.size {
        return Err(LogError::Proof(format!(
            "the receipt is for the tree of {size} entries, the head for {}: fetch the receipt at \
             the head's size (GET /api/v1/log/receipts/ID?size={})",
            head.size, head.size
        )));
    }
    if root != head.root {
        return Err(LogError::Proof(
            "the receipt's tree is not the head's: the log forked".into(),
        ));
    }
    Ok(InLog {
        index,
        size,
        head_time: head.time,
    })
}
