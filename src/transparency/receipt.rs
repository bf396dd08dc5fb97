//! Proofs as COSE Receipts (RFC 9942, SPEC §16) with the verifiable data structure
//! RFC9162_SHA256: a COSE_Sign1 by the log key whose protected header carries `395: 1`, whose
//! unprotected header carries the proof under `396` — `{-1: [bstr .cbor [tree size, leaf index,
//! [hashes]]]}` for inclusion, `{-2: [bstr .cbor [size 1, size 2, [hashes]]]}` for consistency —
//! and whose payload is detached: the signature covers the root the proof leads to, so a
//! verifier recomputes that root and checks the signature over it.

use ciborium::Value;
use coset::{iana, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use ed25519_dalek::{Signer as _, SigningKey};

use super::merkle::{self, Hash};
use super::{log_key, malformed, LogError};
use crate::signing::trust::TrustStore;

/// Label of the verifiable data structure (protected) and of the proofs (unprotected).
const VDS: i64 = 395;
const VDP: i64 = 396;
/// RFC9162_SHA256 in the COSE Verifiable Data Structures registry.
const RFC9162_SHA256: i64 = 1;
const INCLUSION: i64 = -1;
const CONSISTENCY: i64 = -2;

/// What a receipt proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Leaf `index` is in the tree of `size` leaves.
    Inclusion {
        size: u64,
        index: u64,
        path: Vec<Hash>,
    },
    /// The tree of `old` leaves is a prefix of the tree of `new` leaves.
    Consistency { old: u64, new: u64, path: Vec<Hash> },
}

/// A parsed receipt whose signature has not been checked yet.
#[derive(Debug, Clone)]
pub struct Receipt {
    pub kid: Vec<u8>,
    pub proof: Proof,
    sign1: CoseSign1,
}

impl Proof {
    /// Signs the proof with the log key over `root`, the root of the tree it leads to (the
    /// inclusion proof's tree, the consistency proof's newer tree).
    pub fn sign(&self, root: &Hash, key: &SigningKey, kid: &[u8]) -> Vec<u8> {
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::EdDSA)
            .key_id(kid.to_vec())
            .value(VDS, Value::from(RFC9162_SHA256))
            .build();
        let (label, sizes, path) = match self {
            Proof::Inclusion { size, index, path } => (INCLUSION, (*size, *index), path),
            Proof::Consistency { old, new, path } => (CONSISTENCY, (*old, *new), path),
        };
        let hashes = path.iter().map(|h| Value::Bytes(h.to_vec())).collect();
        let proof = Value::Array(vec![
            Value::from(sizes.0),
            Value::from(sizes.1),
            Value::Array(hashes),
        ]);
        let mut encoded = Vec::new();
        ciborium::into_writer(&proof, &mut encoded).expect("writing CBOR to a Vec cannot fail");
        let proofs = Value::Map(vec![(
            Value::from(label),
            Value::Array(vec![Value::Bytes(encoded)]),
        )]);
        let unprotected = HeaderBuilder::new().value(VDP, proofs).build();
        CoseSign1Builder::new()
            .protected(protected)
            .unprotected(unprotected)
            .create_detached_signature(root, b"", |to_be_signed| {
                key.sign(to_be_signed).to_bytes().to_vec()
            })
            .build()
            .to_tagged_vec()
            .expect("a COSE_Sign1 built here encodes")
    }
}

impl Receipt {
    /// Reads a receipt: tagged COSE_Sign1, EdDSA, an 8-byte kid, RFC9162_SHA256, one proof,
    /// a detached payload.
    pub fn parse(bytes: &[u8]) -> Result<Receipt, LogError> {
        let bad = |reason: &str| malformed("receipt", reason);
        let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let protected = &sign1.protected.header;
        if protected.alg
            != Some(coset::RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::EdDSA,
            ))
        {
            return Err(bad("alg must be EdDSA (-8)"));
        }
        if protected.key_id.len() != 8 {
            return Err(bad("kid must be 8 bytes"));
        }
        let vds = label_value(&protected.rest, VDS).and_then(Value::as_integer);
        if vds != Some(RFC9162_SHA256.into()) {
            return Err(bad(
                "verifiable data structure (395) must be RFC9162_SHA256 (1)",
            ));
        }
        if sign1.payload.is_some() {
            return Err(bad("payload must be detached"));
        }
        let proofs = label_value(&sign1.unprotected.rest, VDP)
            .and_then(Value::as_map)
            .ok_or_else(|| bad("no proofs (396)"))?;
        let [(label, encoded)] = proofs.as_slice() else {
            return Err(bad("must carry exactly one proof"));
        };
        let encoded = match encoded.as_array().map(Vec::as_slice) {
            Some([Value::Bytes(b)]) => b,
            _ => return Err(bad("a proof must be one CBOR-encoded byte string")),
        };
        let (first, second, path) = decode_proof(encoded).map_err(|e| bad(&e))?;
        let proof = match label.as_integer().and_then(|l| i64::try_from(l).ok()) {
            Some(INCLUSION) => Proof::Inclusion {
                size: first,
                index: second,
                path,
            },
            Some(CONSISTENCY) => Proof::Consistency {
                old: first,
                new: second,
                path,
            },
            _ => {
                return Err(bad(
                    "proof label must be -1 (inclusion) or -2 (consistency)",
                ))
            }
        };
        let kid = protected.key_id.clone();
        Ok(Receipt { kid, proof, sign1 })
    }

    /// Checks that this inclusion receipt proves `entry` in the county's log: the root its proof
    /// gives `entry`, signed by a log key of `trust` valid at `at`. Returns the tree's size and
    /// root.
    pub fn verify_inclusion(
        &self,
        entry: &[u8],
        trust: &TrustStore,
        at: i64,
    ) -> Result<(u64, Hash), LogError> {
        let Proof::Inclusion { size, index, path } = &self.proof else {
            return Err(LogError::Proof("not an inclusion receipt".into()));
        };
        let root = merkle::root_from_inclusion(*index, *size, &merkle::leaf_hash(entry), path)
            .ok_or_else(|| {
                LogError::Proof(format!(
                    "the proof does not fit leaf {index} of a tree of {size}"
                ))
            })?;
        self.check_signature(&root, trust, at)?;
        Ok((*size, root))
    }

    /// Checks that this consistency receipt shows the tree whose root is `old_root` to be a
    /// prefix of a tree the log key signed. Returns the newer tree's size and root.
    pub fn verify_consistency(
        &self,
        old_root: &Hash,
        trust: &TrustStore,
        at: i64,
    ) -> Result<(u64, Hash), LogError> {
        let Proof::Consistency { old, new, path } = &self.proof else {
            return Err(LogError::Proof("not a consistency receipt".into()));
        };
        let root =
            merkle::new_root_from_consistency(*old, *new, old_root, path).ok_or_else(|| {
                LogError::Proof(format!(
                    "the tree of {new} does not extend the tree of {old} with the root held"
                ))
            })?;
        self.check_signature(&root, trust, at)?;
        Ok((*new, root))
    }

    fn check_signature(&self, root: &Hash, trust: &TrustStore, at: i64) -> Result<(), LogError> {
        let key = log_key(trust, &self.kid, at)?;
        self.sign1
            .verify_detached_signature(root, b"", |signature, to_be_signed| {
                let signature = ed25519_dalek::Signature::from_slice(signature).map_err(|_| ())?;
                key.verify_strict(to_be_signed, &signature).map_err(|_| ())
            })
            .map_err(|()| LogError::BadSignature)
    }
}

fn label_value(rest: &[(coset::Label, Value)], label: i64) -> Option<&Value> {
    rest.iter()
        .find(|(l, _)| *l == coset::Label::Int(label))
        .map(|(_, v)| v)
}

/// `[uint, uint, [bstr 32 …]]`.
fn decode_proof(encoded: &[u8]) -> Result<(u64, u64, Vec<Hash>), String> {
    let value: Value = ciborium::from_reader(encoded).map_err(|e| e.to_string())?;
    let Some([a, b, Value::Array(hashes)]) = value.as_array().map(Vec::as_slice) else {
        return Err("a proof must be [size, size or index, [hashes]]".into());
    };
    let uint = |v: &Value| {
        v.as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or_else(|| "sizes and indexes must be unsigned integers".to_string())
    };
    // A tree of 2^64 leaves has a path of at most 64 hashes.
    if hashes.len() > 64 {
        return Err("a path has at most 64 hashes".into());
    }
    let path = hashes
        .iter()
        .map(|h| {
            h.as_bytes()
                .and_then(|b| Hash::try_from(b.as_slice()).ok())
                .ok_or_else(|| "every hash must be 32 bytes".to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok((uint(a)?, uint(b)?, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::cert::Purpose;
    use crate::signing::keys::KeyRing;
    use crate::transparency::head::TreeHead;
    use crate::transparency::merkle::{leaf_hash, MemoryTree};

    /// A trust list with a log key (and the supervision key, which must not pass for it).
    fn log_key() -> (tempfile::TempDir, TrustStore, SigningKey, [u8; 8]) {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::for_tests(dir.path(), &[]);
        for purpose in [Purpose::Log, Purpose::Supervision] {
            assert!(KeyRing::ensure_service_key(dir.path(), purpose).unwrap());
        }
        let ring = KeyRing::load(dir.path(), ring.version(), vec![]).unwrap();
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let (key, kid) = KeyRing::service_signing_key(dir.path(), Purpose::Log).unwrap();
        (dir, trust, key, kid)
    }

    fn tree(size: u64) -> MemoryTree {
        let mut tree = MemoryTree::default();
        for i in 0..size {
            tree.push(leaf_hash(&i.to_be_bytes()));
        }
        tree
    }

    fn now() -> i64 {
        crate::time_util::now().unix_timestamp()
    }

    #[test]
    fn receipts_carry_the_rfc_9942_headers_and_prove_what_they_say_only() {
        let (dir, trust, key, kid) = log_key();
        let tree = tree(11);
        let root = merkle::root(&tree, 11).unwrap();
        let path = merkle::inclusion_proof(&tree, 6, 11).unwrap().unwrap();
        let proof = Proof::Inclusion {
            size: 11,
            index: 6,
            path,
        };
        let bytes = proof.sign(&root, &key, &kid);
        // Tag 18; protected {1: -8, 4: kid, 395: 1}.
        assert_eq!(&bytes[..3], &[0xd2, 0x84, 0x51]);
        assert_eq!(&bytes[3..8], &[0xa3, 0x01, 0x27, 0x04, 0x48]);
        assert_eq!(&bytes[8..16], &kid);
        assert_eq!(&bytes[16..20], &[0x19, 0x01, 0x8b, 0x01]);
        // Unprotected {396: {-1: [bstr]}}, then the detached payload (nil).
        assert_eq!(&bytes[20..25], &[0xa1, 0x19, 0x01, 0x8c, 0xa1]);
        assert_eq!(bytes[bytes.len() - 67], 0xf6, "payload detached");
        let receipt = Receipt::parse(&bytes).unwrap();
        assert_eq!(receipt.proof, proof);
        let entry = 6u64.to_be_bytes();
        assert_eq!(
            receipt.verify_inclusion(&entry, &trust, now()),
            Ok((11, root))
        );
        assert!(receipt
            .verify_inclusion(&7u64.to_be_bytes(), &trust, now())
            .is_err());
        assert!(receipt.verify_consistency(&root, &trust, now()).is_err());

        // Consistency from 5 to 11, against the true old root and another.
        let old = merkle::root(&tree, 5).unwrap();
        let path = merkle::consistency_proof(&tree, 5, 11).unwrap().unwrap();
        let bytes = Proof::Consistency {
            old: 5,
            new: 11,
            path,
        }
        .sign(&root, &key, &kid);
        let receipt = Receipt::parse(&bytes).unwrap();
        assert_eq!(
            receipt.verify_consistency(&old, &trust, now()),
            Ok((11, root))
        );
        assert!(receipt.verify_consistency(&root, &trust, now()).is_err());

        // Signed over another root, or by the supervision key: refused.
        let head = TreeHead {
            size: 11,
            root,
            time: now(),
        };
        assert_eq!(TreeHead::verify(&head.sign(&key, &kid), &trust), Ok(head));
        let (other, other_kid) =
            KeyRing::service_signing_key(dir.path(), Purpose::Supervision).unwrap();
        let by_other = Proof::Consistency {
            old: 11,
            new: 11,
            path: vec![],
        }
        .sign(&root, &other, &other_kid);
        assert!(matches!(
            Receipt::parse(&by_other)
                .unwrap()
                .verify_consistency(&root, &trust, now()),
            Err(LogError::UnknownKey { .. })
        ));
        assert!(TreeHead::verify(&head.sign(&other, &other_kid), &trust).is_err());
    }

    #[test]
    fn any_bytes_are_refused_or_read_never_panic() {
        let (_dir, trust, key, kid) = log_key();
        let tree = tree(3);
        let root = merkle::root(&tree, 3).unwrap();
        let path = merkle::inclusion_proof(&tree, 2, 3).unwrap().unwrap();
        let good = Proof::Inclusion {
            size: 3,
            index: 2,
            path,
        }
        .sign(&root, &key, &kid);
        let mut rng = rand::thread_rng();
        use rand::Rng;
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            bytes.truncate(rng.gen_range(0..=bytes.len()));
            if let Ok(receipt) = Receipt::parse(&bytes) {
                let _ = receipt.verify_inclusion(&2u64.to_be_bytes(), &trust, now());
                let _ = receipt.verify_consistency(&root, &trust, now());
            }
            let _ = TreeHead::verify(&bytes, &trust);
        }
    }
}
