//! The key ring of a deployment (SPEC §5): a root CA and each department's Ed25519 signer
//! certificates. Key material lives in files under `keys/`; which signer is active, retired or
//! revoked lives in the register (`store::signers`), and a ring is loaded from it
//! (`app::signers`). Private keys are written with mode 0600, never logged and never leave this
//! module except as signatures. The public half becomes the trust list (`trust`).
//!
//! Layout of `keys/`:
//! - `root.crt.pem`, `root.key.pem` — the root CA;
//! - `signers/{kid}.crt.pem`, `signers/{kid}.key.pem` — one pair per signer certificate;
//! - `state.json` — signer state from before the register held it: imported once into a register
//!   with no signers, never written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use data_encoding::HEXLOWER;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use serde::Deserialize;
use time::Duration;

use super::cert::{kid_of, kid_text, pem_der, Purpose, ORGANIZATION_IDENTIFIER};

mod seal;
mod service;
use super::trust::{SignerStatus, TrustList, TrustedSigner};
use crate::directory::Issuer;
use crate::identifiers::Uscc;
use crate::time_util;
use service::ServiceCert;

const ROOT_YEARS: i64 = 20;
const SIGNER_YEARS: i64 = 5;

#[derive(Debug, Clone, thiserror::Error)]
pub enum KeyError {
    #[error("keys: {path}: {reason}")]
    File { path: String, reason: String },
    #[error("keys: certificate generation failed: {0}")]
    Generate(String),
    #[error(
        "keys: no active signer for department {0}; run `elicence keys rotate --department {0}`"
    )]
    NoActiveSigner(Uscc),
    /// The register names an active signer whose private key this host cannot read.
    #[error(
        "keys: the active signer {kid} cannot sign here: {path}: {reason} (every host needs the same keys/ folder)"
    )]
    UnusableKey {
        kid: String,
        path: String,
        reason: String,
    },
    #[error("keys: signer {kid} in the register: {reason}")]
    Register { kid: String, reason: String },
    #[error("keys: {0:?} is not a kid (11 base64url characters or 16 hex digits)")]
    MalformedKid(String),
    #[error("keys: no signer with kid {0}")]
    UnknownKid(String),
    #[error("keys: signer {0} is already revoked")]
    AlreadyRevoked(String),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> KeyError {
    KeyError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

fn generate_error(e: impl std::fmt::Display) -> KeyError {
    KeyError::Generate(e.to_string())
}

/// One signer certificate's state as the register keeps it (SPEC §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerRecord {
    /// Hex, as the key files are named.
    pub kid: String,
    pub department: String,
    pub uscc: Uscc,
    pub status: SignerStatus,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub certificate: String,
    /// Its PDF seal's certificate (PEM), once made (`seal.rs`): the register holds it, so no
    /// second seal is made for the same signer.
    pub seal_certificate: Option<String>,
}

impl SignerRecord {
    /// The kid as the trust list writes it (base64url).
    pub fn kid_text(&self) -> String {
        kid_text(&HEXLOWER.decode(self.kid.as_bytes()).unwrap_or_default())
    }
}

/// A signer as `keys/state.json` listed it, before signer state moved to the register.
#[derive(Debug, Clone, Deserialize)]
struct LegacySigner {
    kid: String,
    department: String,
    uscc: Uscc,
    status: SignerStatus,
    created_at: String,
    revoked_at: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct LegacyState {
    version: u64,
    signers: Vec<LegacySigner>,
}

/// A signer of the ring. Only an active signer's private key is read: it is the only one that
/// signs, and a key not in memory cannot leak from it.
struct Signer {
    record: SignerRecord,
    kid: [u8; 8],
    /// The private key of an active signer, or why it could not be read; None for the others.
    key: Option<Result<SigningKey, KeyError>>,
}

/// The root certificate and the register's signers, with the active signers' private keys.
pub struct KeyRing {
    root_pem: String,
    /// The service's own certificates under the root (the supervision key …), one per purpose.
    services: Vec<ServiceCert>,
    /// The county's PDF seal CA under the root, when installed (`seal.rs`).
    seal_ca: Option<String>,
    /// The register's trust list version this ring was loaded at.
    version: u64,
    signers: Vec<Signer>,
}

/// The hex form (the key files' names, the register's key) of a kid written either way an
/// operator may copy it: base64url as the trust list has it, or hex as the file names have it.
pub fn kid_hex(text: &str) -> Result<String, KeyError> {
    let bytes = if text.len() == 16 {
        HEXLOWER.decode(text.to_ascii_lowercase().as_bytes()).ok()
    } else {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .ok()
    };
    match bytes {
        Some(kid) if kid.len() == 8 => Ok(HEXLOWER.encode(&kid)),
        _ => Err(KeyError::MalformedKid(text.to_string())),
    }
}

fn signer_paths(dir: &Path, kid_hex: &str) -> (PathBuf, PathBuf) {
    let signers = dir.join("signers");
    (
        signers.join(format!("{kid_hex}.crt.pem")),
        signers.join(format!("{kid_hex}.key.pem")),
    )
}

impl KeyRing {
    /// Makes a development root CA under `dir` when there is none. Returns whether it did (the
    /// caller warns loudly: a development root is trusted by nobody else).
    pub fn ensure_root(dir: &Path) -> Result<bool, KeyError> {
        if dir.join("root.crt.pem").exists() {
            return Ok(false);
        }
        fs::create_dir_all(dir.join("signers")).map_err(|e| file_error(dir, e))?;
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(generate_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(DnType::OrganizationName, "示范县人民政府");
        dn.push(DnType::CommonName, "示范县电子证照根证书（开发用）");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, ROOT_YEARS);
        let cert = params.self_signed(&key).map_err(generate_error)?;
        write_private(&dir.join("root.key.pem"), &key.serialize_pem())?;
        write_public(&dir.join("root.crt.pem"), &cert.pem())?;
        Ok(true)
    }

    /// The ring of the register's signers (`records`, in creation order) at trust list `version`:
    /// each certificate checked against its kid, and the private key of each active signer read
    /// from `dir`. A key that cannot be read does not stop the ring from loading — the trust list
    /// must still change everywhere — but makes signing for that department a clear error.
    pub fn load(dir: &Path, version: u64, records: Vec<SignerRecord>) -> Result<KeyRing, KeyError> {
        let root_pem = read(&dir.join("root.crt.pem"))?;
        let mut signers = Vec::with_capacity(records.len());
        for record in records {
            let register_error = |reason: String| KeyError::Register {
                kid: record.kid.clone(),
                reason,
            };
            let der = pem_der(&record.certificate).map_err(register_error)?;
            let kid = kid_of(&der);
            if HEXLOWER.encode(&kid) != record.kid {
                return Err(register_error("certificate does not match its kid".into()));
            }
            let key =
                (record.status == SignerStatus::Active).then(|| read_signing_key(dir, &record.kid));
            if let Some(Err(e)) = &key {
                tracing::error!(department = %record.uscc, error = %e, "an active signer's private key is unusable");
            }
            signers.push(Signer { record, kid, key });
        }
        let services = service::installed(dir)?;
        Ok(KeyRing {
            root_pem,
            services,
            seal_ca: seal::seal_ca_certificate(dir),
            version,
            signers,
        })
    }

    /// Issues a new signer certificate for `issuer` under the root and writes it, with its private
    /// key, to `signers/`. Returns its state, `active`: the register makes it the department's
    /// signer (and retires the one before) or refuses it.
    pub fn make_signer(dir: &Path, issuer: &Issuer) -> Result<SignerRecord, KeyError> {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(DnType::OrganizationName, issuer.name.as_str());
        dn.push(
            DnType::CustomDnType(ORGANIZATION_IDENTIFIER.to_vec()),
            issuer.uscc.as_str(),
        );
        dn.push(DnType::CommonName, format!("{} 电子证照签发", issuer.name));
        let (cert, key) = issue_under_root(dir, dn, Purpose::Licence)?;
        let kid_hex = HEXLOWER.encode(&kid_of(cert.der()));
        let signers_dir = dir.join("signers");
        fs::create_dir_all(&signers_dir).map_err(|e| file_error(&signers_dir, e))?;
        let (cert_path, key_path) = signer_paths(dir, &kid_hex);
        write_private(&key_path, &key.serialize_pem())?;
        write_public(&cert_path, &cert.pem())?;
        let record = SignerRecord {
            kid: kid_hex,
            department: issuer.name.clone(),
            uscc: issuer.uscc.clone(),
            status: SignerStatus::Active,
            created_at: time_util::format_rfc3339(time_util::now()),
            revoked_at: None,
            certificate: cert.pem(),
            seal_certificate: None,
        };
        // The seal comes with the signer, so a rotation renews both; a signer whose seal could
        // not be made is not left behind either.
        match KeyRing::ensure_seal(dir, &record) {
            Ok(seal_certificate) => Ok(SignerRecord {
                seal_certificate,
                ..record
            }),
            Err(e) => {
                KeyRing::discard_signer(dir, &record.kid);
                Err(e)
            }
        }
    }

    /// Removes the files of a signer the register did not take (another process made the
    /// department's signer first), so no unused private key is left lying about.
    pub fn discard_signer(dir: &Path, kid_hex: &str) {
        seal::discard_seal(dir, kid_hex);
        let (cert_path, key_path) = signer_paths(dir, kid_hex);
        for path in [key_path, cert_path] {
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an unused signer file");
            }
        }
    }

    /// Signer state as `state.json` held it before the register did, with each certificate read
    /// from `signers/`, and its trust list version. None when there is no such file.
    pub fn legacy_state(dir: &Path) -> Result<Option<(u64, Vec<SignerRecord>)>, KeyError> {
        let path = dir.join("state.json");
        if !path.exists() {
            return Ok(None);
        }
        let state: LegacyState =
            serde_json::from_str(&read(&path)?).map_err(|e| file_error(&path, e))?;
        let mut records = Vec::with_capacity(state.signers.len());
        for s in state.signers {
            let (cert_path, _) = signer_paths(dir, &s.kid);
            records.push(SignerRecord {
                certificate: read(&cert_path)?,
                kid: s.kid,
                department: s.department,
                uscc: s.uscc,
                status: s.status,
                created_at: s.created_at,
                revoked_at: s.revoked_at,
                seal_certificate: None,
            });
        }
        Ok(Some((state.version, records)))
    }

    /// The register's trust list version this ring reflects.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn active_signer(&self, uscc: &Uscc) -> Option<&Signer> {
        self.signers
            .iter()
            .rev()
            .find(|s| &s.record.uscc == uscc && s.record.status == SignerStatus::Active)
    }

    /// The active signing key of a department, and its kid.
    pub fn signing_key(&self, uscc: &Uscc) -> Result<(&SigningKey, [u8; 8]), KeyError> {
        let signer = self
            .active_signer(uscc)
            .ok_or_else(|| KeyError::NoActiveSigner(uscc.clone()))?;
        match &signer.key {
            Some(Ok(key)) => Ok((key, signer.kid)),
            Some(Err(unusable)) => Err(unusable.clone()),
            None => Err(KeyError::NoActiveSigner(uscc.clone())),
        }
    }

    /// The public trust list (SPEC §5).
    pub fn trust_list(&self) -> TrustList {
        TrustList {
            version: self.version,
            generated_at: time_util::format_rfc3339(time_util::now()),
            roots: vec![self.root_pem.clone()],
            signers: self
                .signers
                .iter()
                .map(|s| TrustedSigner {
                    kid: kid_text(&s.kid),
                    department: s.record.department.clone(),
                    uscc: Some(s.record.uscc.to_string()),
                    certificate: s.record.certificate.clone(),
                    status: s.record.status,
                    revoked_at: s.record.revoked_at.clone(),
                    purpose: Purpose::Licence,
                })
                .chain(self.seal_entries())
                .chain(self.services.iter().map(|s| TrustedSigner {
                    kid: kid_text(&s.kid),
                    department: s.holder.clone(),
                    uscc: None,
                    certificate: s.certificate.clone(),
                    status: SignerStatus::Active,
                    revoked_at: None,
                    purpose: s.purpose,
                }))
                .collect(),
        }
    }
}

/// An active signer's private key from `signers/{kid}.key.pem`. The file's content is never put
/// into an error: only its path and why it could not be used.
fn read_signing_key(dir: &Path, kid_hex: &str) -> Result<SigningKey, KeyError> {
    let (_, path) = signer_paths(dir, kid_hex);
    let unusable = |reason: String| KeyError::UnusableKey {
        kid: kid_text(&HEXLOWER.decode(kid_hex.as_bytes()).unwrap_or_default()),
        path: path.display().to_string(),
        reason,
    };
    let pem = fs::read_to_string(&path).map_err(|e| unusable(e.to_string()))?;
    SigningKey::from_pkcs8_pem(&pem)
        .map_err(|_| unusable("not a PKCS#8 Ed25519 private key".into()))
}

/// A new Ed25519 key and its certificate under the root of `dir`, for `subject` and `purpose`
/// (digitalSignature and the purpose's EKU).
fn issue_under_root(
    dir: &Path,
    subject: DistinguishedName,
    purpose: Purpose,
) -> Result<(rcgen::Certificate, KeyPair), KeyError> {
    let (root, root_key) = load_issuer(dir, "root")?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(generate_error)?;
    let params = end_entity_params(subject, purpose, &[]);
    let cert = params
        .signed_by(&key, &root, &root_key)
        .map_err(generate_error)?;
    Ok((cert, key))
}

/// The CA certificate `keys/{name}.crt.pem` and its private key `keys/{name}.key.pem`, as rcgen
/// needs them to issue under it.
fn load_issuer(dir: &Path, name: &str) -> Result<(rcgen::Certificate, KeyPair), KeyError> {
    let key_path = dir.join(format!("{name}.key.pem"));
    let ca_pem = read(&dir.join(format!("{name}.crt.pem")))?;
    let ca_key = KeyPair::from_pem(&read(&key_path)?)
        .map_err(|_| file_error(&key_path, "not a private key"))?;
    let ca_params = CertificateParams::from_ca_cert_pem(&ca_pem).map_err(generate_error)?;
    let ca = ca_params.self_signed(&ca_key).map_err(generate_error)?;
    Ok((ca, ca_key))
}

/// An end-entity certificate's parameters: digitalSignature, the purpose's EKU and any
/// `more_ekus` (DER content octets), valid for [`SIGNER_YEARS`].
fn end_entity_params(
    subject: DistinguishedName,
    purpose: Purpose,
    more_ekus: &[&[u8]],
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    // No basicConstraints at all: rcgen's explicit `cA FALSE` encodes a DEFAULT value, which
    // DER forbids and strict parsers (Python's cryptography) reject.
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    // extendedKeyUsage (2.5.29.37) = SEQUENCE { OID 2.25.… }, written out because rcgen's
    // typed EKU takes arcs as u64 and a UUID arc is 128 bits.
    let mut oids = Vec::new();
    for oid in std::iter::once(purpose.eku_der()).chain(more_ekus.iter().copied()) {
        oids.extend([0x06, oid.len() as u8]);
        oids.extend_from_slice(oid);
    }
    let mut eku = vec![0x30, oids.len() as u8];
    eku.extend(oids);
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(&[2, 5, 29, 37], eku));
    set_validity(&mut params, SIGNER_YEARS);
    params
}

fn set_validity(params: &mut CertificateParams, years: i64) {
    // An hour of slack for clocks that run a little behind.
    let now = time_util::now();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
    let mut serial: [u8; 16] = rand::random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from(serial.to_vec()));
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|e| file_error(path, e))
}

fn write_public(path: &Path, text: &str) -> Result<(), KeyError> {
    write_atomically(path, text.as_bytes(), 0o644)
}

fn write_private(path: &Path, text: &str) -> Result<(), KeyError> {
    write_atomically(path, text.as_bytes(), 0o600)
}

/// Writes to a temporary file created with `mode` and renames it into place, so a crash never
/// leaves half a key file and a private key is never readable by others, not even for a moment.
/// A temporary file left by an interrupted write is removed, not reused: it would keep its own
/// mode, and whoever opened it meanwhile would read the key.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(&tmp, e)),
        _ => {}
    }
    write_new_file(&tmp, data, mode)?;
    fs::rename(&tmp, path).map_err(|e| file_error(path, e))
}

/// Creates `path`, which must not exist, with `mode`, and writes and syncs `data`. The mode is
/// set on the open file as well, since the umask narrows the mode a file is created with.
fn write_new_file(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|_| file.write_all(data))
        .and_then(|_| file.sync_all())
        .map_err(|e| file_error(path, e))
}

#[cfg(test)]
impl KeyRing {
    /// A ring with one new signer per issuer, as a first start makes it (unit tests).
    pub(crate) fn for_tests(dir: &Path, issuers: &[Issuer]) -> KeyRing {
        KeyRing::ensure_root(dir).unwrap();
        let records = issuers
            .iter()
            .map(|issuer| KeyRing::make_signer(dir, issuer).unwrap())
            .collect();
        KeyRing::load(dir, 1, records).unwrap()
    }

    /// This ring with a new signer for `issuer`, the one before retired, one version later; and
    /// the new signer's kid (unit tests).
    pub(crate) fn with_rotated(&self, dir: &Path, issuer: &Issuer) -> (KeyRing, String) {
        let new = KeyRing::make_signer(dir, issuer).unwrap();
        let kid = new.kid_text();
        let mut records: Vec<SignerRecord> = self
            .signers
            .iter()
            .map(|s| {
                let mut record = s.record.clone();
                if record.uscc == issuer.uscc && record.status == SignerStatus::Active {
                    record.status = SignerStatus::Retired;
                }
                record
            })
            .collect();
        records.push(new);
        (KeyRing::load(dir, self.version + 1, records).unwrap(), kid)
    }

    /// This ring with signer `kid` (base64url) revoked, one version later (unit tests).
    pub(crate) fn with_revoked(&self, dir: &Path, kid: &str) -> KeyRing {
        let records = self
            .signers
            .iter()
            .map(|s| {
                let mut record = s.record.clone();
                if kid_text(&s.kid) == kid {
                    record.status = SignerStatus::Revoked;
                    record.revoked_at = Some(time_util::format_rfc3339(time_util::now()));
                }
                record
            })
            .collect();
        KeyRing::load(dir, self.version + 1, records).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn issuer() -> Issuer {
        Issuer {
            name: "示范县市场监督管理局".into(),
            uscc: Uscc::parse("11330122MB0000001M").unwrap(),
        }
    }

    #[test]
    fn signer_certificates_have_the_shape_verifiers_expect() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::for_tests(dir.path(), &[issuer()]);
        let list = ring.trust_list();
        let der = pem_der(&list.signers[0].certificate).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // No basicConstraints: an explicit `cA FALSE` is not DER and strict parsers refuse it.
        assert!(cert.basic_constraints().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        // x509-parser prints a 128-bit arc as hex, so compare the encoded OID.
        let ekus: Vec<&[u8]> = eku.other.iter().map(|o| o.as_bytes()).collect();
        assert_eq!(ekus, [crate::signing::cert::SIGNER_EKU_DER]);
        assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
        let uscc = cert
            .subject()
            .iter_attributes()
            .find(|a| a.attr_type().to_id_string() == "2.5.4.97")
            .unwrap();
        assert_eq!(uscc.as_str().unwrap(), "11330122MB0000001M");
        assert_eq!(list.signers[0].kid, kid_text(&kid_of(&der)));

        let root_der = pem_der(&list.roots[0]).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
        assert!(root.basic_constraints().unwrap().unwrap().value.ca);
        assert!(root.key_usage().unwrap().unwrap().value.key_cert_sign());
    }

    #[test]
    fn private_key_files_are_mode_0600_and_reload_to_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        assert!(KeyRing::ensure_root(dir.path()).unwrap());
        assert!(!KeyRing::ensure_root(dir.path()).unwrap(), "made once");
        let record = KeyRing::make_signer(dir.path(), &issuer()).unwrap();
        for path in [
            dir.path().join("root.key.pem"),
            signer_paths(dir.path(), &record.kid).1,
        ] {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let ring = KeyRing::load(dir.path(), 3, vec![record.clone()]).unwrap();
        let again = KeyRing::load(dir.path(), 3, vec![record]).unwrap();
        let (a, b) = (
            ring.signing_key(&issuer().uscc).unwrap(),
            again.signing_key(&issuer().uscc).unwrap(),
        );
        assert_eq!(a.0.verifying_key(), b.0.verifying_key());
        assert_eq!(again.trust_list().version, 3);
    }

    #[test]
    fn a_private_key_written_over_a_leftover_world_readable_temp_file_is_still_0600() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary file left by an interrupted write, readable by everyone.
        let leftover = dir.path().join("root.key.tmp");
        fs::write(&leftover, "stale").unwrap();
        fs::set_permissions(&leftover, fs::Permissions::from_mode(0o644)).unwrap();
        KeyRing::ensure_root(dir.path()).unwrap();
        let key = dir.path().join("root.key.pem");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!leftover.exists());
    }

    #[test]
    fn an_active_signer_without_its_private_key_is_listed_but_cannot_sign_and_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::for_tests(dir.path(), &[issuer()]);
        let kid = ring.trust_list().signers[0].kid.clone();
        let key_path = signer_paths(dir.path(), &kid_hex(&kid).unwrap()).1;
        fs::write(&key_path, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n").unwrap();
        let ring = ring.with_revoked(dir.path(), "none");
        let message = ring.signing_key(&issuer().uscc).err().unwrap().to_string();
        assert!(message.contains(&kid), "{message}");
        assert!(
            message.contains(&key_path.display().to_string()),
            "{message}"
        );
        assert!(!message.contains("c2VjcmV0"), "no key content: {message}");

        fs::remove_file(&key_path).unwrap();
        let ring = ring.with_revoked(dir.path(), "none");
        assert_eq!(
            ring.trust_list().signers.len(),
            1,
            "still in the trust list"
        );
        let message = ring.signing_key(&issuer().uscc).err().unwrap().to_string();
        assert!(
            message.contains(&kid) && message.contains("No such file"),
            "{message}"
        );
    }

    #[test]
    fn a_kid_is_accepted_as_base64url_or_hex_and_anything_else_is_named() {
        let kid = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        assert_eq!(kid_hex(&kid_text(&kid)).unwrap(), "0123456789abcdef");
        assert_eq!(kid_hex("0123456789ABCDEF").unwrap(), "0123456789abcdef");
        for bad in [
            "",
            "abc",
            "0123456789abcdeg",
            "../../etc/passwd",
            "AAAAAAAAAAAAAAAAAAA",
        ] {
            let e = kid_hex(bad).unwrap_err();
            assert!(
                matches!(&e, KeyError::MalformedKid(k) if k == bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn legacy_state_json_reads_back_with_each_certificate() {
        let dir = tempfile::tempdir().unwrap();
        assert!(KeyRing::legacy_state(dir.path()).unwrap().is_none());
        KeyRing::ensure_root(dir.path()).unwrap();
        let record = KeyRing::make_signer(dir.path(), &issuer()).unwrap();
        let state = serde_json::json!({"version": 4, "signers": [{
            "kid": record.kid, "department": record.department, "uscc": record.uscc.as_str(),
            "status": "revoked", "created_at": record.created_at,
            "revoked_at": "2026-01-02T03:04:05Z"}]});
        fs::write(dir.path().join("state.json"), state.to_string()).unwrap();
        let (version, records) = KeyRing::legacy_state(dir.path()).unwrap().unwrap();
        assert_eq!(version, 4);
        assert_eq!(
            records,
            [SignerRecord {
                status: SignerStatus::Revoked,
                revoked_at: Some("2026-01-02T03:04:05Z".into()),
                ..record
            }]
        );
    }
}
