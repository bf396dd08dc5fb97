//! Signed tree heads (SPEC §16): the log key's COSE_Sign1 over
//! `{1: tree size, 2: root hash (bstr), 3: time}`, the envelope of SPEC §6.

use ciborium::Value;
use ed25519_dalek::SigningKey;

use super::merkle::Hash;
use super::{log_key, malformed, LogError};
use crate::signing::cose::{self, Envelope};
use crate::signing::trust::TrustStore;

/// What a head states: the tree of `size` leaves has root `root` (at `time`, seconds since the
/// epoch, when it was signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: Hash,
    pub time: i64,
}

impl TreeHead {
    /// The signed COSE_Sign1 bytes.
    pub fn sign(&self, key: &SigningKey, kid: &[u8]) -> Vec<u8> {
        let map = Value::Map(vec![
            (Value::from(1), Value::from(self.size)),
            (Value::from(2), Value::Bytes(self.root.to_vec())),
            (Value::from(3), Value::from(self.time)),
        ]);
        let mut payload = Vec::new();
        ciborium::into_writer(&map, &mut payload).expect("writing CBOR to a Vec cannot fail");
        cose::sign(key, kid, payload)
    }

    /// The head in `bytes` when a log key of `trust` valid at its time signed it.
    pub fn verify(bytes: &[u8], trust: &TrustStore) -> Result<TreeHead, LogError> {
        let envelope = Envelope::parse(bytes).map_err(|e| malformed("tree head", e))?;
        // The log key also signs statements (typed): a head has no typ.
        if envelope.typ().is_some() {
            return Err(malformed("tree head", "a typed envelope is not a head"));
        }
        let head = TreeHead::decode(envelope.payload())?;
        let key = log_key(trust, &envelope.kid, head.time)?;
        if !envelope.verifies_with(key) {
            return Err(LogError::BadSignature);
        }
        Ok(head)
    }

    /// The head's claims, signature unchecked.
    pub fn decode(payload: &[u8]) -> Result<TreeHead, LogError> {
        let bad = |reason: &str| malformed("tree head", reason);
        let value: Value = ciborium::from_reader(payload).map_err(|e| bad(&e.to_string()))?;
        let entries = value.as_map().ok_or_else(|| bad("payload is not a map"))?;
        let field = |label: i64| {
            entries
                .iter()
                .find(|(k, _)| k.as_integer() == Some(label.into()))
                .map(|(_, v)| v)
                .ok_or_else(|| bad(&format!("claim {label} missing")))
        };
        let int = |label: i64| {
            field(label)?
                .as_integer()
                .ok_or_else(|| bad(&format!("claim {label} is not an integer")))
        };
        let size = u64::try_from(int(1)?).map_err(|_| bad("size is negative"))?;
        let time = i64::try_from(int(3)?).map_err(|_| bad("time out of range"))?;
        let root = field(2)?
            .as_bytes()
            .and_then(|b| Hash::try_from(b.as_slice()).ok())
            .ok_or_else(|| bad("root is not a 32-byte string"))?;
        Ok(TreeHead { size, root, time })
    }
}
