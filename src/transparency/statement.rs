//! The signed statement a status change (suspended, reinstated, revoked) is logged as (SPEC
//! §16; docs/FORMATS.md): the department's COSE_Sign1, typed `application/elicence-status+cbor`,
//! over `{1: licence id, 2: version, 3: kind, 4: at (RFC 3339), 5: reason or null}` — what the
//! change event says, so the log holds the change itself and not only that something happened.

use ciborium::Value;
use ed25519_dalek::SigningKey;

use super::{malformed, LogError};
use crate::identifiers::LicenceRef;
use crate::licence::EventKind;
use crate::signing::cert::Purpose;
use crate::signing::cose::{self, Envelope};
use crate::signing::trust::{SignerStatus, TrustStore};

/// The `typ` (RFC 9596) of a status-change statement.
pub const MEDIA_TYPE: &str = "application/elicence-status+cbor";

/// A status change as its event records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStatement<'a> {
    pub licence_id: &'a str,
    pub version: u32,
    pub kind: EventKind,
    pub at: &'a str,
    pub reason: Option<&'a str>,
}

impl StatusStatement<'_> {
    /// The signed COSE_Sign1 bytes: the log entry of the change.
    pub fn sign(&self, key: &SigningKey, kid: &[u8]) -> Vec<u8> {
        let map = Value::Map(vec![
            (Value::from(1), Value::from(self.licence_id)),
            (Value::from(2), Value::from(self.version)),
            (Value::from(3), Value::from(self.kind.as_str())),
            (Value::from(4), Value::from(self.at)),
            (Value::from(5), self.reason.map_or(Value::Null, Value::from)),
        ]);
        let mut payload = Vec::new();
        ciborium::into_writer(&map, &mut payload).expect("writing CBOR to a Vec cannot fail");
        cose::sign_typed(key, kid, MEDIA_TYPE, payload)
    }
}

/// A statement's claims as a receiver reads them back, to compare with the event it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementClaims {
    pub licence_id: String,
    pub version: u32,
    pub kind: String,
    pub at: String,
    pub reason: Option<String>,
}

impl StatementClaims {
    /// The claims of a statement whose signature checks: a licence signer of the licence's
    /// department under the trust list's root and not revoked, or the log key (which signs for
    /// a department left without a usable key).
    pub fn verify(bytes: &[u8], trust: &TrustStore) -> Result<StatementClaims, LogError> {
        let bad = |reason: &str| malformed("status statement", reason);
        let envelope = Envelope::parse(bytes).map_err(|e| bad(&e.to_string()))?;
        if envelope.typ() != Some(MEDIA_TYPE) {
            return Err(bad(&format!("typ must be {MEDIA_TYPE}")));
        }
        let claims = StatementClaims::decode(envelope.payload()).map_err(|e| bad(&e))?;
        let issuer = LicenceRef::parse(&claims.licence_id)
            .map_err(|e| bad(&e.to_string()))?
            .key()
            .issuer
            .clone();
        let by_department = trust.with_kid(&envelope.kid).into_iter().any(|signer| {
            signer.uscc == issuer
                && signer.status != SignerStatus::Revoked
                && signer.chains()
                && envelope.verifies_with(&signer.key)
        });
        let by_log_key = || {
            trust
                .service_keys_of(Purpose::Log, &envelope.kid)
                .any(|key| envelope.verifies_with(key))
        };
        if by_department || by_log_key() {
            Ok(claims)
        } else {
            Err(LogError::BadSignature)
        }
    }

    fn decode(payload: &[u8]) -> Result<StatementClaims, String> {
        let value: Value = ciborium::from_reader(payload).map_err(|e| e.to_string())?;
        let map = value.as_map().ok_or("the payload is not a map")?;
        let claim = |label: i64| {
            map.iter()
                .find(|(k, _)| k.as_integer() == Some(label.into()))
                .map(|(_, v)| v)
                .ok_or(format!("claim {label} missing"))
        };
        let text = |label: i64| {
            claim(label)?
                .as_text()
                .map(str::to_string)
                .ok_or(format!("claim {label} is not text"))
        };
        let version = claim(2)?
            .as_integer()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or("claim 2 is not a version number")?;
        let reason = match claim(5)? {
            Value::Null => None,
            v => Some(
                v.as_text()
                    .ok_or("claim 5 is neither text nor null")?
                    .to_string(),
            ),
        };
        Ok(StatementClaims {
            licence_id: text(1)?,
            version,
            kind: text(3)?,
            at: text(4)?,
            reason,
        })
    }
}
