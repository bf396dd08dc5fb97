//! COSE_Sign1 envelopes (RFC 9052) as SPEC §6 fixes them: always tagged (CBOR tag 18), protected
//! header `{1: -8, 4: kid}` (plus `16: typ` on a status list, SPEC §7), empty unprotected header,
//! EdDSA (Ed25519) signatures.

use coset::cbor::Value;
use coset::{iana, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

/// Why bytes are not a COSE_Sign1 of the shape this service signs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseError {
    #[error("not a tagged COSE_Sign1: {0}")]
    Decode(String),
    #[error("protected header must name alg EdDSA (-8)")]
    Algorithm,
    #[error("protected header must carry an 8-byte kid")]
    Kid,
    #[error("unprotected header must be empty")]
    Unprotected,
    #[error("no payload")]
    Payload,
}

/// Signs `payload` with `key`, naming `kid` in the protected header; returns the tagged bytes.
pub fn sign(key: &SigningKey, kid: &[u8], payload: Vec<u8>) -> Vec<u8> {
    sign_with(key, header(kid).build(), payload)
}

/// As [`sign`], with a `typ` (label 16, RFC 9596) in the protected header: what a status list
/// carries (SPEC §7), so that it cannot pass for another kind of token.
pub fn sign_typed(key: &SigningKey, kid: &[u8], typ: &str, payload: Vec<u8>) -> Vec<u8> {
    let protected = header(kid).value(TYP, Value::Text(typ.to_string())).build();
    sign_with(key, protected, payload)
}

/// The `typ` protected header parameter (RFC 9596).
const TYP: i64 = 16;

fn header(kid: &[u8]) -> HeaderBuilder {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid.to_vec())
}

fn sign_with(key: &SigningKey, protected: coset::Header, payload: Vec<u8>) -> Vec<u8> {
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |to_be_signed| {
            key.sign(to_be_signed).to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .expect("a COSE_Sign1 built here encodes")
}

/// A decoded COSE_Sign1 whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Envelope {
    sign1: CoseSign1,
    pub kid: Vec<u8>,
}

impl Envelope {
    pub fn parse(bytes: &[u8]) -> Result<Envelope, CoseError> {
        let sign1 =
            CoseSign1::from_tagged_slice(bytes).map_err(|e| CoseError::Decode(e.to_string()))?;
        let header = &sign1.protected.header;
        if header.alg
            != Some(coset::RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::EdDSA,
            ))
        {
            return Err(CoseError::Algorithm);
        }
        if header.key_id.len() != 8 {
            return Err(CoseError::Kid);
        }
        if !sign1.unprotected.is_empty() {
            return Err(CoseError::Unprotected);
        }
        if sign1.payload.is_none() {
            return Err(CoseError::Payload);
        }
        let kid = header.key_id.clone();
        Ok(Envelope { sign1, kid })
    }

    /// The `typ` the protected header names, if any (RFC 9596).
    pub fn typ(&self) -> Option<&str> {
        self.sign1
            .protected
            .header
            .rest
            .iter()
            .find(|(label, _)| *label == coset::Label::Int(TYP))
            .and_then(|(_, value)| value.as_text())
    }

    /// The payload bytes exactly as signed.
    pub fn payload(&self) -> &[u8] {
        self.sign1.payload.as_deref().expect("checked in parse")
    }

    /// True when the signature verifies under `key`.
    pub fn verifies_with(&self, key: &VerifyingKey) -> bool {
        self.sign1
            .verify_signature(b"", |signature, to_be_signed| {
                let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| ())?;
                key.verify_strict(to_be_signed, &signature).map_err(|_| ())
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_is_tagged_with_the_spec_protected_header() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = sign(&key, &[1, 2, 3, 4, 5, 6, 7, 8], b"hello".to_vec());
        // Tag 18, array of 4, protected bstr of 13 bytes: {1: -8, 4: h'0102030405060708'}.
        assert_eq!(&bytes[..3], &[0xd2, 0x84, 0x4d]);
        assert_eq!(
            &bytes[3..16],
            &[0xa2, 0x01, 0x27, 0x04, 0x48, 1, 2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(bytes[16], 0xa0, "empty unprotected header");
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(envelope.payload(), b"hello");
        assert!(envelope.verifies_with(&key.verifying_key()));
        let other = SigningKey::from_bytes(&[8; 32]);
        assert!(!envelope.verifies_with(&other.verifying_key()));
    }

    #[test]
    fn untagged_or_foreign_envelopes_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let bytes = sign(&key, &[0; 8], b"x".to_vec());
        assert!(matches!(
            Envelope::parse(&bytes[1..]),
            Err(CoseError::Decode(_))
        ));
        let short_kid = sign(&key, &[0; 4], b"x".to_vec());
        assert_eq!(Envelope::parse(&short_kid).unwrap_err(), CoseError::Kid);
    }
}
