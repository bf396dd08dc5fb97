//! Audit-trail checkpoints (SPEC §15): the supervision key's signature over the trail's head,
//! `{1: seq, 2: hash of record seq (32-byte bstr), 3: time}`, in a COSE_Sign1 envelope. The
//! city supervision platform keeps them; a trail that no longer extends a checkpoint it holds
//! was cut short or rewritten.

use ciborium::Value;
use ed25519_dalek::SigningKey;

use super::cert::Purpose;
use super::cose::{self, Envelope};
use super::trust::TrustStore;

/// What a checkpoint states: the trail's record `seq` has `hash` (at `time`, seconds since the
/// epoch, when it was signed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub seq: i64,
    /// Lowercase hex, as the records carry it.
    pub hash: String,
    pub time: i64,
}

/// Why bytes are not a checkpoint this deployment signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("not a checkpoint: {0}")]
    Malformed(String),
    #[error("signed by no supervision key of the trust list valid at its time")]
    UnknownKey,
    #[error("its signature does not verify")]
    BadSignature,
}

impl Checkpoint {
    /// The signed COSE_Sign1 bytes. Fails only when `hash` is not 64 hex digits.
    pub fn sign(&self, key: &SigningKey, kid: &[u8]) -> Result<Vec<u8>, CheckpointError> {
        let hash = data_encoding::HEXLOWER
            .decode(self.hash.as_bytes())
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or_else(|| CheckpointError::Malformed(format!("hash {:?}", self.hash)))?;
        let map = Value::Map(vec![
            (Value::from(1), Value::from(self.seq)),
            (Value::from(2), Value::Bytes(hash)),
            (Value::from(3), Value::from(self.time)),
        ]);
        let mut payload = Vec::new();
        ciborium::into_writer(&map, &mut payload).expect("writing CBOR to a Vec cannot fail");
        Ok(cose::sign(key, kid, payload))
    }

    /// The checkpoint in `bytes` when a supervision key of `trust` valid at its time signed it.
    pub fn verify(bytes: &[u8], trust: &TrustStore) -> Result<Checkpoint, CheckpointError> {
        let envelope =
            Envelope::parse(bytes).map_err(|e| CheckpointError::Malformed(e.to_string()))?;
        let checkpoint = Checkpoint::decode(envelope.payload())?;
        let key = trust
            .service_key(Purpose::Supervision, &envelope.kid, checkpoint.time)
            .ok_or(CheckpointError::UnknownKey)?;
        if !envelope.verifies_with(key) {
            return Err(CheckpointError::BadSignature);
        }
        Ok(checkpoint)
    }

    /// The payload, exactly the three keys SPEC §15 names.
    fn decode(payload: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let malformed = |why: &str| CheckpointError::Malformed(why.to_string());
        let value: Value =
            ciborium::from_reader(payload).map_err(|_| malformed("payload is not CBOR"))?;
        let Value::Map(entries) = value else {
            return Err(malformed("payload is not a map"));
        };
        let field = |key: i64| {
            entries
                .iter()
                .find(|(k, _)| k.as_integer() == Some(key.into()))
                .map(|(_, v)| v)
        };
        if entries.len() != 3 {
            return Err(malformed("payload must hold exactly keys 1, 2 and 3"));
        }
        let integer = |key: i64, name: &str| {
            field(key)
                .and_then(Value::as_integer)
                .and_then(|i| i64::try_from(i).ok())
                .filter(|i| *i >= 0)
                .ok_or_else(|| malformed(&format!("{key} ({name}) must be an unsigned integer")))
        };
        let hash = field(2)
            .and_then(Value::as_bytes)
            .filter(|h| h.len() == 32)
            .ok_or_else(|| malformed("2 (hash) must be a 32-byte string"))?;
        Ok(Checkpoint {
            seq: integer(1, "seq")?,
            hash: data_encoding::HEXLOWER.encode(hash),
            time: integer(3, "time")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::keys::KeyRing;

    fn ring_with_supervision_key() -> (tempfile::TempDir, KeyRing) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::for_tests(dir.path(), &[]);
        assert!(KeyRing::ensure_service_key(dir.path(), Purpose::Supervision).unwrap());
        assert!(
            !KeyRing::ensure_service_key(dir.path(), Purpose::Supervision).unwrap(),
            "made once"
        );
        let ring = KeyRing::load(dir.path(), ring.version(), vec![]).unwrap();
        (dir, ring)
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            seq: 42,
            hash: "ab".repeat(32),
            time: crate::time_util::now().unix_timestamp(),
        }
    }

    #[test]
    fn a_checkpoint_verifies_with_the_supervision_key_and_not_otherwise() {
        let (dir, ring) = ring_with_supervision_key();
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let (key, kid) = KeyRing::service_signing_key(dir.path(), Purpose::Supervision).unwrap();
        let bytes = checkpoint().sign(&key, &kid).unwrap();
        assert_eq!(Checkpoint::verify(&bytes, &trust).unwrap(), checkpoint());

        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            Checkpoint::verify(&flipped, &trust),
            Err(CheckpointError::BadSignature)
        );
        // Another key with the same kid claimed is not the supervision key.
        let other = SigningKey::from_bytes(&[9; 32]);
        let forged = checkpoint().sign(&other, &kid).unwrap();
        assert_eq!(
            Checkpoint::verify(&forged, &trust),
            Err(CheckpointError::BadSignature)
        );
        let unknown = checkpoint().sign(&key, &[0; 8]).unwrap();
        assert_eq!(
            Checkpoint::verify(&unknown, &trust),
            Err(CheckpointError::UnknownKey)
        );
    }

    #[test]
    fn a_key_left_without_its_certificate_is_replaced_by_a_whole_pair() {
        let (dir, _) = ring_with_supervision_key();
        std::fs::remove_file(dir.path().join("supervision.crt.pem")).unwrap();
        assert!(KeyRing::service_signing_key(dir.path(), Purpose::Supervision).is_err());
        assert!(KeyRing::ensure_service_key(dir.path(), Purpose::Supervision).unwrap());
        let (key, kid) = KeyRing::service_signing_key(dir.path(), Purpose::Supervision).unwrap();
        let ring = KeyRing::load(dir.path(), 1, vec![]).unwrap();
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let bytes = checkpoint().sign(&key, &kid).unwrap();
        assert_eq!(Checkpoint::verify(&bytes, &trust).unwrap(), checkpoint());
    }

    #[test]
    fn a_licence_signer_cannot_sign_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = crate::directory::Issuer {
            name: "示范县市场监督管理局".into(),
            uscc: crate::identifiers::Uscc::parse("11330122MB0000001M").unwrap(),
        };
        let ring = KeyRing::for_tests(dir.path(), std::slice::from_ref(&issuer));
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let (key, kid) = ring.signing_key(&issuer.uscc).unwrap();
        let bytes = checkpoint().sign(key, &kid).unwrap();
        assert_eq!(
            Checkpoint::verify(&bytes, &trust),
            Err(CheckpointError::UnknownKey)
        );
    }

    #[test]
    fn malformed_payloads_are_named() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let (_dir, ring) = ring_with_supervision_key();
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let not_a_map = cose::sign(&key, &[0; 8], vec![0x01]);
        assert!(matches!(
            Checkpoint::verify(&not_a_map, &trust),
            Err(CheckpointError::Malformed(_))
        ));
        assert!(matches!(
            Checkpoint {
                hash: "zz".into(),
                ..checkpoint()
            }
            .sign(&key, &[0; 8]),
            Err(CheckpointError::Malformed(_))
        ));
    }
}
