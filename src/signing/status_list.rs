//! Status lists (SPEC §7, after W3C Bitstring Status List): per issuing department, lists of
//! L = 131,072 bits; every version holds one randomly chosen index. A signed list lets a verifier
//! check a licence offline without telling anyone which licence it holds.
//!
//! Payload: CBOR map `{1: issuer_uscc, 2: n, 3: issued_at, 4: gzip(bits)}` where a 1 bit means
//! revoked or suspended (bit b counted from the most significant bit of byte 0). This service adds
//! two keys SPEC §7 leaves open, which verifiers that do not know them ignore:
//! `5: gzip(bits)` — 1 = suspended (a subset of key 4, so a verifier can tell suspended from revoked);
//! `6: gzip(bits)` — 1 = superseded by a newer version of the same licence.

use std::io::{Read, Write};

use ciborium::Value;
use ed25519_dalek::SigningKey;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};

use super::cose::{self, Envelope};
use crate::identifiers::Uscc;

/// Entries per list.
pub const LIST_LEN: u64 = 131_072;

/// A list's bits, one byte per eight entries, most significant bit first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bits(Vec<u8>);

impl Default for Bits {
    fn default() -> Self {
        Bits(vec![0; (LIST_LEN / 8) as usize])
    }
}

impl Bits {
    pub fn set(&mut self, bit: u64) {
        self.0[(bit / 8) as usize] |= 0x80 >> (bit % 8);
    }

    pub fn get(&self, bit: u64) -> bool {
        self.0
            .get((bit / 8) as usize)
            .is_some_and(|byte| byte & (0x80 >> (bit % 8)) != 0)
    }

    fn gzip(&self) -> Vec<u8> {
        // flate2 writes a zero mtime and no name: the same bits always compress to the same bytes.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&self.0).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    fn gunzip(data: &[u8]) -> Result<Bits, String> {
        let mut out = Vec::new();
        GzDecoder::new(data)
            .take(LIST_LEN / 8 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("bitstring is not gzip: {e}"))?;
        if out.len() as u64 != LIST_LEN / 8 {
            return Err(format!(
                "bitstring has {} bytes, not {}",
                out.len(),
                LIST_LEN / 8
            ));
        }
        Ok(Bits(out))
    }
}

/// One status list: which list of which issuer, when it was made, and its three bitstrings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    pub issuer: Uscc,
    pub n: u64,
    pub issued_at: i64,
    /// Revoked or suspended (SPEC key 4).
    pub invalid: Bits,
    /// Suspended (key 5).
    pub suspended: Bits,
    /// Superseded by a newer version (key 6).
    pub superseded: Bits,
}

/// What a status list says of one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Good,
    Suspended,
    Revoked,
    Superseded,
}

impl StatusList {
    pub fn new(issuer: Uscc, n: u64, issued_at: i64) -> StatusList {
        StatusList {
            issuer,
            n,
            issued_at,
            invalid: Bits::default(),
            suspended: Bits::default(),
            superseded: Bits::default(),
        }
    }

    /// The list and bit an index lives at.
    pub fn locate(index: u64) -> (u64, u64) {
        (index / LIST_LEN, index % LIST_LEN)
    }

    pub fn entry(&self, index: u64) -> EntryStatus {
        let (_, bit) = Self::locate(index);
        match (self.invalid.get(bit), self.suspended.get(bit)) {
            (true, true) => EntryStatus::Suspended,
            (true, false) => EntryStatus::Revoked,
            _ if self.superseded.get(bit) => EntryStatus::Superseded,
            _ => EntryStatus::Good,
        }
    }

    pub fn to_payload(&self) -> Vec<u8> {
        let map = Value::Map(vec![
            (
                Value::Integer(1.into()),
                Value::Text(self.issuer.to_string()),
            ),
            (Value::Integer(2.into()), Value::Integer(self.n.into())),
            (
                Value::Integer(3.into()),
                Value::Integer(self.issued_at.into()),
            ),
            (Value::Integer(4.into()), Value::Bytes(self.invalid.gzip())),
            (
                Value::Integer(5.into()),
                Value::Bytes(self.suspended.gzip()),
            ),
            (
                Value::Integer(6.into()),
                Value::Bytes(self.superseded.gzip()),
            ),
        ]);
        let mut out = Vec::new();
        ciborium::into_writer(&map, &mut out).expect("writing to a Vec");
        out
    }

    pub fn sign(&self, key: &SigningKey, kid: &[u8]) -> Vec<u8> {
        cose::sign(key, kid, self.to_payload())
    }

    /// Reads a list's payload (its signature is checked by the caller, who holds the trust list).
    pub fn from_payload(payload: &[u8]) -> Result<StatusList, String> {
        let value: Value = ciborium::from_reader(payload).map_err(|e| format!("not CBOR: {e}"))?;
        let Value::Map(entries) = value else {
            return Err("status list payload must be a map".into());
        };
        let get = |key: u8| {
            entries
                .iter()
                .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)))
                .map(|(_, v)| v)
        };
        let issuer = match get(1) {
            Some(Value::Text(s)) => Uscc::parse(s).map_err(|e| e.to_string())?,
            _ => return Err("status list has no issuer (key 1)".into()),
        };
        let int = |key: u8| match get(key) {
            Some(Value::Integer(i)) => {
                i64::try_from(*i).map_err(|_| format!("key {key} out of range"))
            }
            _ => Err(format!("status list has no integer key {key}")),
        };
        let bits = |key: u8, required: bool| match get(key) {
            Some(Value::Bytes(b)) => Bits::gunzip(b),
            None if !required => Ok(Bits::default()),
            _ => Err(format!("status list key {key} must be a byte string")),
        };
        Ok(StatusList {
            issuer,
            n: u64::try_from(int(2)?).map_err(|_| "n must be unsigned".to_string())?,
            issued_at: int(3)?,
            invalid: bits(4, true)?,
            suspended: bits(5, false)?,
            superseded: bits(6, false)?,
        })
    }

    /// Parses a signed list; returns it with its envelope for the caller to check the signature.
    pub fn parse_signed(bytes: &[u8]) -> Result<(StatusList, Envelope), String> {
        let envelope = Envelope::parse(bytes).map_err(|e| e.to_string())?;
        let list = Self::from_payload(envelope.payload())?;
        Ok((list, envelope))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_count_from_the_most_significant_bit_and_survive_signing() {
        let issuer = Uscc::parse("11330122MB0000001M").unwrap();
        let mut list = StatusList::new(issuer, 2, 1_700_000_000);
        let (n, bit) = StatusList::locate(2 * LIST_LEN + 9);
        assert_eq!((n, bit), (2, 9));
        list.invalid.set(9);
        list.invalid.set(10);
        list.suspended.set(10);
        list.superseded.set(11);
        assert_eq!(list.invalid.0[1], 0b0110_0000);
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = list.sign(&key, &[9; 8]);
        let (back, envelope) = StatusList::parse_signed(&signed).unwrap();
        assert!(envelope.verifies_with(&key.verifying_key()));
        assert_eq!(back, list);
        assert_eq!(back.entry(2 * LIST_LEN + 9), EntryStatus::Revoked);
        assert_eq!(back.entry(2 * LIST_LEN + 10), EntryStatus::Suspended);
        assert_eq!(back.entry(2 * LIST_LEN + 11), EntryStatus::Superseded);
        assert_eq!(back.entry(2 * LIST_LEN + 12), EntryStatus::Good);
        assert!(
            signed.len() < 400,
            "a sparse list compresses to {} bytes",
            signed.len()
        );
    }
}
