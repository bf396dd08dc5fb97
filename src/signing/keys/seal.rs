//! PDF seal keys (docs/DESIGN.md, "PDF seals"): the county's seal CA and each department's seal.
//!
//! - `keys/pdf-seal-ca.key.pem` (P-256, 0600), `keys/pdf-seal-ca.crt.pem` — the seal CA, issued by
//!   the county root — and `keys/pdf-seal-ca.self.crt.pem`, the same name and key self-signed: the
//!   anchor a PDF reader whose crypto cannot check the Ed25519 root (NSS before 3.101, Acrobat)
//!   is given. Made at first start where the root key is, like the supervision key.
//! - `keys/signers/{kid}.seal.key.pem` (P-256, 0600) and `.seal.crt.pem` — the seal of licence
//!   signer `{kid}`, issued by the seal CA. A seal is made with its signer and shares its fate:
//!   rotating a department's signer gives it a new seal, a retired signer's seal still
//!   re-renders the PDFs of the versions it signed, and the trust list gives the seal its
//!   signer's status.

use std::fs;
use std::path::{Path, PathBuf};

use p256::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

use super::service::{
    county_subject, ensure_county_pair, remove_orphan_key, while_making_keys, write_new,
};
use super::{
    end_entity_params, file_error, generate_error, load_issuer, read, set_validity, KeyError,
    KeyRing, SignerRecord, ROOT_YEARS,
};
use crate::signing::cert::{
    kid_of, kid_text, pem_der, subject_organisation, Purpose, ORGANIZATION_IDENTIFIER,
};
use crate::signing::pdf_seal::PdfSeal;
use crate::signing::trust::{SignerStatus, TrustedSigner};

/// The seal CA's files are `keys/{SEAL_CA}.*`.
const SEAL_CA: &str = "pdf-seal-ca";

/// id-kp-emailProtection (1.3.6.1.5.5.7.3.4), DER content octets: NSS, which poppler's `pdfsig`
/// and Firefox-family readers check signatures with, accepts a signer certificate with an EKU
/// only when that EKU holds emailProtection.
const EMAIL_PROTECTION_EKU_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04];

fn seal_paths(dir: &Path, kid_hex: &str) -> (PathBuf, PathBuf) {
    let signers = dir.join("signers");
    (
        signers.join(format!("{kid_hex}.seal.crt.pem")),
        signers.join(format!("{kid_hex}.seal.key.pem")),
    )
}

/// The seal CA's certificate under the root, when installed.
pub(super) fn seal_ca_certificate(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(format!("{SEAL_CA}.crt.pem"))).ok()
}

impl KeyRing {
    /// Removes the seal files of signer `kid_hex`, made here but not the one the register took.
    pub fn discard_seal(dir: &Path, kid_hex: &str) {
        discard_seal(dir, kid_hex);
    }
}

/// Removes a seal made for a signer the register did not take.
pub(super) fn discard_seal(dir: &Path, kid_hex: &str) {
    let (cert_path, key_path) = seal_paths(dir, kid_hex);
    for path in [key_path, cert_path] {
        if path.exists() {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an unused seal file");
            }
        }
    }
}

impl KeyRing {
    /// Makes the county's seal CA when there is none and the root's private key is here to sign
    /// it (a development deployment; elsewhere the county's CA issues it and the operator installs
    /// the files). Returns whether it made one. Made under the key-making lock, so two processes
    /// starting at once cannot pair one's key with the other's certificate.
    pub fn ensure_seal_ca(dir: &Path) -> Result<bool, KeyError> {
        let cert_path = dir.join(format!("{SEAL_CA}.crt.pem"));
        let key_path = dir.join(format!("{SEAL_CA}.key.pem"));
        ensure_county_pair(dir, &key_path, &cert_path, || {
            let (key, under_root, self_signed) = make_seal_ca(dir)?;
            let self_path = dir.join(format!("{SEAL_CA}.self.crt.pem"));
            let certificates = vec![(cert_path.clone(), under_root), (self_path, self_signed)];
            Ok((key.serialize_pem(), certificates))
        })
    }

    /// The seal certificate (PEM) of signer `record` when the register has none for it yet:
    /// the one this host's `keys/` holds (made by a start that did not get to record it), or a
    /// new one, made under the key-making lock (replacing a key a killed start left without its
    /// certificate). None when the register has one — a seal is never made twice, so a lost seal
    /// file is an error naming it, not a new key — or when the seal CA's key is not on this host.
    /// The caller records it in the register.
    pub fn ensure_seal(dir: &Path, record: &SignerRecord) -> Result<Option<String>, KeyError> {
        let (cert_path, key_path) = seal_paths(dir, &record.kid);
        if record.seal_certificate.is_some() {
            return Ok(None);
        }
        if cert_path.exists() {
            return read(&cert_path).map(Some);
        }
        if !dir.join(format!("{SEAL_CA}.key.pem")).exists() {
            return Ok(None);
        }
        while_making_keys(dir, || {
            if cert_path.exists() {
                return read(&cert_path).map(Some); // made while this process waited
            }
            remove_orphan_key(&key_path)?;
            let (key, cert) = make_seal(dir, record)?;
            write_new(&key_path, &key.serialize_pem(), 0o600)?;
            write_new(&cert_path, &cert, 0o644)?;
            Ok(Some(cert))
        })
    }

    /// The seal of a licence signer (whatever its state: a retired signer's versions still
    /// render): the register's seal certificate `certificate` (PEM), its private key from this
    /// host's `keys/`, and the seal CA's certificate under the root. A clear error naming the
    /// file when something is missing or does not match, never a key's content.
    pub fn pdf_seal(dir: &Path, kid_hex: &str, certificate: &str) -> Result<PdfSeal, KeyError> {
        let (_, key_path) = seal_paths(dir, kid_hex);
        let ca_path = dir.join(format!("{SEAL_CA}.crt.pem"));
        let ca = pem_der(&read(&ca_path)?).map_err(|e| file_error(&ca_path, e))?;
        let certificate = pem_der(certificate).map_err(|e| KeyError::Register {
            kid: kid_hex.to_string(),
            reason: format!("seal certificate: {e}"),
        })?;
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&read(&key_path)?)
            .map_err(|_| file_error(&key_path, "not a PKCS#8 P-256 private key"))?;
        PdfSeal::new(key, &certificate, &[ca]).map_err(|e| file_error(&key_path, e))
    }
}

impl KeyRing {
    /// The trust list's PDF seal entries: the seal CA under the root (no USCC: the county's),
    /// then each signer's seal with its signer's department, USCC and status.
    /// The register's seal certificate of signer `kid` (8 bytes), when it has one.
    pub fn seal_certificate(&self, kid: &[u8]) -> Option<&str> {
        let signer = self.signers.iter().find(|s| s.kid == kid)?;
        signer.record.seal_certificate.as_deref()
    }

    pub(super) fn seal_entries(&self) -> impl Iterator<Item = TrustedSigner> + '_ {
        let ca = self.seal_ca.iter().filter_map(|pem| {
            let der = pem_der(pem).ok()?;
            Some(TrustedSigner {
                kid: kid_text(&kid_of(&der)),
                department: subject_organisation(&der).unwrap_or_default(),
                uscc: None,
                certificate: pem.clone(),
                status: SignerStatus::Active,
                revoked_at: None,
                purpose: Purpose::PdfSeal,
            })
        });
        let seals = self.signers.iter().filter_map(|s| {
            let pem = s.record.seal_certificate.as_ref()?;
            let der = pem_der(pem).ok()?;
            Some(TrustedSigner {
                kid: kid_text(&kid_of(&der)),
                department: s.record.department.clone(),
                uscc: Some(s.record.uscc.to_string()),
                certificate: pem.clone(),
                status: s.record.status,
                revoked_at: s.record.revoked_at.clone(),
                purpose: Purpose::PdfSeal,
            })
        });
        ca.chain(seals)
    }
}

/// A new seal CA: its key, its certificate under the root and the same self-signed (PEM).
fn make_seal_ca(dir: &Path) -> Result<(KeyPair, String, String), KeyError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = county_subject(dir, "电子印章证书")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, ROOT_YEARS);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let (root, root_key) = load_issuer(dir, "root")?;
    let under_root = params
        .clone()
        .signed_by(&key, &root, &root_key)
        .map_err(generate_error)?;
    let self_signed = params.self_signed(&key).map_err(generate_error)?;
    Ok((key, under_root.pem(), self_signed.pem()))
}

/// A new seal for signer `record`: its key and its certificate under the seal CA (PEM).
fn make_seal(dir: &Path, record: &SignerRecord) -> Result<(KeyPair, String), KeyError> {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, record.department.as_str());
    dn.push(
        DnType::CustomDnType(ORGANIZATION_IDENTIFIER.to_vec()),
        record.uscc.as_str(),
    );
    dn.push(
        DnType::CommonName,
        format!("{} 电子印章", record.department),
    );
    let mut params = end_entity_params(dn, Purpose::PdfSeal, &[EMAIL_PROTECTION_EKU_DER]);
    params.key_usages.push(KeyUsagePurpose::ContentCommitment);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
    let (ca, ca_key) = load_issuer(dir, SEAL_CA)?;
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .map_err(generate_error)?;
    Ok((key, cert.pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The public key (SubjectPublicKeyInfo DER) a PEM certificate names.
    fn certified_key(pem: &str) -> Vec<u8> {
        let der = pem_der(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        cert.public_key().raw.to_vec()
    }

    #[test]
    fn processes_making_the_seal_ca_at_once_leave_one_matching_pair() {
        let dir = tempfile::tempdir().unwrap();
        KeyRing::ensure_root(dir.path()).unwrap();
        let made: Vec<bool> = std::thread::scope(|scope| {
            let makers: Vec<_> = (0..6)
                .map(|_| scope.spawn(|| KeyRing::ensure_seal_ca(dir.path()).unwrap()))
                .collect();
            makers.into_iter().map(|m| m.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|m| **m).count(), 1, "{made:?}");
        let key = read(&dir.path().join(format!("{SEAL_CA}.key.pem"))).unwrap();
        let key = KeyPair::from_pem(&key).unwrap();
        for cert in ["crt", "self.crt"] {
            let pem = read(&dir.path().join(format!("{SEAL_CA}.{cert}.pem"))).unwrap();
            assert_eq!(certified_key(&pem), key.public_key_der(), "{cert}");
        }
    }

    #[test]
    fn a_seal_key_left_without_its_certificate_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        KeyRing::ensure_root(dir.path()).unwrap();
        KeyRing::ensure_seal_ca(dir.path()).unwrap();
        let record = SignerRecord {
            kid: "00112233445566778899aabbccddeeff".into(),
            department: "示范县市场监督管理局".into(),
            uscc: crate::identifiers::Uscc::parse("11330122MB0000001M").unwrap(),
            status: crate::signing::trust::SignerStatus::Active,
            created_at: "2026-12-03T00:00:00Z".into(),
            revoked_at: None,
            certificate: String::new(),
            seal_certificate: None,
        };
        let (cert_path, key_path) = seal_paths(dir.path(), &record.kid);
        fs::write(&key_path, "left by a killed start").unwrap();
        let made = KeyRing::ensure_seal(dir.path(), &record).unwrap().unwrap();
        KeyRing::pdf_seal(dir.path(), &record.kid, &made).expect("a usable seal");
        // Once the register holds it, it is never made again.
        let recorded = SignerRecord {
            seal_certificate: Some(made.clone()),
            ..record
        };
        assert_eq!(KeyRing::ensure_seal(dir.path(), &recorded).unwrap(), None);
        let key = KeyPair::from_pem(&read(&key_path).unwrap()).unwrap();
        assert_eq!(
            certified_key(&read(&cert_path).unwrap()),
            key.public_key_der()
        );
    }
}
