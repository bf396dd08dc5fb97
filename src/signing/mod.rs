//! Signing (SPEC §5, §6, §7): keys and certificates, the signed records of every version, the QR
//! token and its text, status lists, and the trust list verifiers start from.

pub mod cert;
pub mod checkpoint;
pub mod claims;
pub mod cose;
pub mod keys;
pub mod pdf_seal;
pub mod qr;
pub mod status_list;
pub mod trust;

use ed25519_dalek::SigningKey;
use time::OffsetDateTime;

use crate::identifiers::VersionId;
use crate::licence::{LicenceVersion, Record};
use claims::{Claims, FullRecord, QrToken, StatusReference};
use status_list::{list_uri, StatusList};

/// What a version is before it is signed.
pub struct Unsigned<'a> {
    pub id: VersionId,
    pub licence_name: &'a str,
    pub record: Record,
    pub issued_at: OffsetDateTime,
    pub directory_version: i64,
    pub prev: Option<String>,
    pub status_index: u64,
    /// The public address its QR text and PDF will use (the register's, SPEC §12).
    pub verify_base: String,
}

/// Signs a version twice — the full record and the QR token — with the department's key.
pub fn sign_version(key: &SigningKey, kid: [u8; 8], v: Unsigned<'_>) -> LicenceVersion {
    let claims = Claims::new(&v.id, v.issued_at.unix_timestamp(), v.record.valid_until);
    let full = FullRecord {
        claims: claims.clone(),
        licence_name: v.licence_name.to_string(),
        record: v.record,
        directory_version: v.directory_version,
        prev: v.prev,
        status: Some(status_reference(&v.verify_base, &v.id, v.status_index)),
    };
    let payload = full.to_payload();
    let record_hash = crate::hash::sha256(&payload);
    let token = QrToken {
        claims,
        licence_name: full.licence_name.clone(),
        holder_name: full.record.holder.name.clone(),
        masked_holder_id: full.record.holder.id.masked(),
        valid_from: full.record.valid_from,
        valid_until: full.record.valid_until,
        record_hash,
        status_index: v.status_index,
    };
    let qr_token = cose::sign(key, &kid, token.to_payload());
    let full_record = cose::sign(key, &kid, payload);
    LicenceVersion {
        id: v.id,
        record: full.record,
        issued_at: v.issued_at,
        directory_version: v.directory_version,
        prev: full.prev,
        status_index: v.status_index,
        full_record,
        qr_token,
        payload_hash: data_encoding::HEXLOWER.encode(&record_hash),
        kid: kid.to_vec(),
        verify_base: v.verify_base,
    }
}

/// Where a version's status-list entry is (SPEC §7): entry `index mod L` of list `index div L` of
/// its issuer, at the URI a verifier derives from the QR text's verify base.
fn status_reference(verify_base: &str, id: &VersionId, index: u64) -> StatusReference {
    let (n, idx) = StatusList::locate(index);
    StatusReference {
        idx,
        uri: list_uri(verify_base, &id.key.issuer, n),
    }
}
