//! The trust list (SPEC §5) and what a verifier builds from it: the signer certificates that chain
//! to the pinned root, found by kid. Chains are checked by rustls-webpki, with the project's EKU.

use ed25519_dalek::VerifyingKey;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};

use super::cert::{kid_of, kid_text, pem_der, Purpose};
use crate::identifiers::Uscc;

#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerStatus {
    Active,
    Retired,
    Revoked,
}

/// `GET /.well-known/elicence/trust.json`, and the file `trust export` writes.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct TrustList {
    pub version: u64,
    pub generated_at: String,
    pub roots: Vec<String>,
    pub signers: Vec<TrustedSigner>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize, Deserialize)]
pub struct TrustedSigner {
    pub kid: String,
    pub department: String,
    /// The department's USCC; null for the service's own keys (supervision …).
    pub uscc: Option<String>,
    pub certificate: String,
    pub status: SignerStatus,
    pub revoked_at: Option<String>,
    /// What the key may sign (SPEC §5); lists written before purposes existed held licence
    /// signers only.
    #[serde(default)]
    pub purpose: Purpose,
}

#[derive(Debug, thiserror::Error)]
#[error("trust list: {0}")]
pub struct TrustError(pub String);

/// A signer certificate a verifier may try for a kid.
#[derive(Debug, Clone)]
pub struct SignerCert {
    pub kid: [u8; 8],
    /// When the chain to a pinned root holds (seconds since the epoch, inclusive), checked once
    /// by webpki when the store is built; None when it never does.
    valid_window: Option<(i64, i64)>,
    pub department: String,
    /// The USCC in the certificate's subject (organizationIdentifier): who it may sign for.
    pub uscc: Uscc,
    pub key: VerifyingKey,
    pub status: SignerStatus,
    der: Vec<u8>,
}

impl SignerCert {
    pub fn kid_text(&self) -> String {
        kid_text(&self.kid)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether the certificate chains to a pinned root at some time.
    pub fn chains(&self) -> bool {
        self.valid_window.is_some()
    }
}

/// The parsed trust list: the signer certificates, each with the span in which it chains to a
/// pinned root.
pub struct TrustStore {
    signers: Vec<SignerCert>,
    /// The service's own keys (supervision …), each usable for its purpose only.
    service_keys: Vec<ServiceKey>,
}

/// A key of the service itself, for one purpose other than licences.
#[derive(Debug, Clone)]
struct ServiceKey {
    purpose: Purpose,
    kid: [u8; 8],
    valid_window: Option<(i64, i64)>,
    key: VerifyingKey,
}

impl TrustStore {
    /// Parses a trust list, trusting only the roots given in `pinned` when some are given (a verifier
    /// pins its root out of band) and the list's own roots otherwise (the service's own list).
    pub fn new(list: &TrustList, pinned: Option<&[String]>) -> Result<TrustStore, TrustError> {
        let roots = pinned
            .unwrap_or(&list.roots)
            .iter()
            .map(|pem| pem_der(pem).map_err(TrustError))
            .collect::<Result<Vec<_>, _>>()?;
        let mut signers = Vec::new();
        let mut service_keys = Vec::new();
        // PDF seals are checked by PDF readers (pyHanko, pdfsig), not here: their P-256
        // certificates are listed for those readers and skipped like unknown purposes.
        for s in list
            .signers
            .iter()
            .filter(|s| !matches!(s.purpose, Purpose::Unknown | Purpose::PdfSeal))
        {
            let der = pem_der(&s.certificate).map_err(TrustError)?;
            let kid = kid_of(&der);
            if kid_text(&kid) != s.kid {
                return Err(TrustError(format!(
                    "signer {} does not match its certificate",
                    s.kid
                )));
            }
            let valid_window = chain_window(&der, &roots, s.purpose);
            if s.purpose != Purpose::Licence {
                let key = read_ed25519_key(&der).map_err(|e| {
                    TrustError(format!("{} key {}: {e}", s.purpose.as_str(), s.kid))
                })?;
                service_keys.push(ServiceKey {
                    purpose: s.purpose,
                    kid,
                    valid_window,
                    key,
                });
                continue;
            }
            let (key, uscc) = read_signer_certificate(&der)
                .map_err(|e| TrustError(format!("signer {}: {e}", s.kid)))?;
            signers.push(SignerCert {
                kid,
                valid_window,
                department: s.department.clone(),
                uscc,
                key,
                status: s.status,
                der,
            });
        }
        Ok(TrustStore {
            signers,
            service_keys,
        })
    }

    /// The service's key for `purpose` with this kid, when it chains to a pinned root with the
    /// purpose's EKU and is within its validity at `at` (seconds since the epoch).
    /// The keys of `purpose` named `kid` that chain to a pinned root at some time.
    pub fn service_keys_of<'a>(
        &'a self,
        purpose: Purpose,
        kid: &'a [u8],
    ) -> impl Iterator<Item = &'a VerifyingKey> {
        self.service_keys
            .iter()
            .filter(move |k| k.purpose == purpose && k.kid == kid && k.valid_window.is_some())
            .map(|k| &k.key)
    }

    pub fn service_key(&self, purpose: Purpose, kid: &[u8], at: i64) -> Option<&VerifyingKey> {
        self.service_keys
            .iter()
            .find(|k| {
                k.purpose == purpose
                    && k.kid == kid
                    && k.valid_window
                        .is_some_and(|(from, until)| from <= at && at <= until)
            })
            .map(|k| &k.key)
    }

    pub fn from_json(json: &str) -> Result<TrustStore, TrustError> {
        let list: TrustList =
            serde_json::from_str(json).map_err(|e| TrustError(format!("not a trust list: {e}")))?;
        TrustStore::new(&list, None)
    }

    /// Every signer certificate with this kid (kids are truncated hashes, so there may be several).
    pub fn with_kid(&self, kid: &[u8]) -> Vec<&SignerCert> {
        self.signers.iter().filter(|s| s.kid == kid).collect()
    }

    /// True when `signer` chains to a pinned root, is within its validity at `at` (seconds since
    /// the epoch) and carries the signer EKU.
    pub fn chains_at(&self, signer: &SignerCert, at: i64) -> bool {
        signer
            .valid_window
            .is_some_and(|(from, until)| from <= at && at <= until)
    }
}

/// The span of time in which `cert_der` chains to one of `roots` with `purpose`'s EKU: webpki
/// validates the path once, at the start of the span where both certificates are valid, and the
/// span is where the chain holds, since nothing but time changes the answer.
fn chain_window(cert_der: &[u8], roots: &[Vec<u8>], purpose: Purpose) -> Option<(i64, i64)> {
    let validity = |der: &[u8]| {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let v = cert.validity();
        Some((v.not_before.timestamp(), v.not_after.timestamp()))
    };
    let (cert_from, cert_until) = validity(cert_der)?;
    let cert = CertificateDer::from(cert_der);
    let end_entity = webpki::EndEntityCert::try_from(&cert).ok()?;
    roots.iter().find_map(|root| {
        let (root_from, root_until) = validity(root)?;
        let (from, until) = (cert_from.max(root_from), cert_until.min(root_until));
        let root_der = CertificateDer::from(root.as_slice());
        let anchor = webpki::anchor_from_trusted_cert(&root_der).ok()?;
        let time =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(u64::try_from(from).ok()?));
        end_entity
            .verify_for_usage(
                &[webpki::ring::ED25519],
                &[anchor],
                &[],
                time,
                webpki::KeyUsage::required(purpose.eku_der()),
                None,
                None,
            )
            .ok()
            .map(|_| (from, until))
    })
}

/// The Ed25519 key of a certificate.
fn read_ed25519_key(der: &[u8]) -> Result<VerifyingKey, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not X.509: {e}"))?;
    let raw: [u8; 32] = cert
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| "not an Ed25519 key".to_string())?;
    VerifyingKey::from_bytes(&raw).map_err(|_| "invalid Ed25519 key".to_string())
}

/// The Ed25519 key and the organizationIdentifier (USCC) of a signer certificate.
fn read_signer_certificate(der: &[u8]) -> Result<(VerifyingKey, Uscc), String> {
    let key = read_ed25519_key(der)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not X.509: {e}"))?;
    let uscc = cert
        .subject()
        .iter_attributes()
        .find(|a| a.attr_type().to_id_string() == "2.5.4.97")
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| "subject carries no organizationIdentifier (USCC)".to_string())?;
    let uscc = Uscc::parse(uscc).map_err(|e| e.to_string())?;
    Ok((key, uscc))
}

#[cfg(test)]
impl TrustStore {
    /// Gives signer `index` the kid `kid`: two certificates sharing a truncated hash is rare
    /// enough that a test has to force it.
    pub(crate) fn force_kid(&mut self, index: usize, kid: [u8; 8]) {
        self.signers[index].kid = kid;
    }

    pub(crate) fn signer_count(&self) -> usize {
        self.signers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_a_purpose_not_known_yet_is_skipped_and_the_rest_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = crate::directory::Issuer {
            name: "示范县市场监督管理局".into(),
            uscc: Uscc::parse("11330122MB0000001M").unwrap(),
        };
        let ring = crate::signing::keys::KeyRing::for_tests(dir.path(), &[issuer]);
        let mut json = serde_json::to_value(ring.trust_list()).unwrap();
        let mut later = json["signers"][0].clone();
        later["purpose"] = "log".into();
        later["uscc"] = serde_json::Value::Null;
        json["signers"].as_array_mut().unwrap().push(later);
        let store = TrustStore::from_json(&json.to_string()).unwrap();
        assert_eq!(store.signer_count(), 1);
    }
}
