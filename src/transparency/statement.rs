//! The signed statement a status change (suspended, reinstated, revoked) is logged as (SPEC
//! §16; docs/FORMATS.md): the department's COSE_Sign1, typed `application/elicence-status+cbor`,
//! over `{1: licence id, 2: version, 3: kind, 4: at (RFC 3339), 5: reason or null}` — what the
//! change event says, so the log holds the change itself and not only that something happened.

use ciborium::Value;
use ed25519_dalek::SigningKey;

use crate::licence::EventKind;
use crate::signing::cose;

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
