//! The key ring of a deployment (SPEC §5): a root CA and each department's Ed25519 signer
//! certificates, kept under `keys/`. Private keys are written with mode 0600, never logged and never
//! leave this module except as signatures. The public half becomes the trust list (`trust`).
//!
//! Layout of `keys/`:
//! - `root.crt.pem`, `root.key.pem` — the root CA;
//! - `signers/{kid}.crt.pem`, `signers/{kid}.key.pem` — one pair per signer certificate;
//! - `state.json` — each signer's department, status and revocation time, and the trust list version.

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
use serde::{Deserialize, Serialize};
use time::Duration;

use super::trust::{SignerStatus, TrustList, TrustedSigner};
use crate::directory::Issuer;
use crate::identifiers::Uscc;
use crate::time_util;

/// The extended key usage every signer certificate carries: a UUID-based OID of this project
/// (`2.25.` followed by the UUID 7c2e5a91-4f3b-4d8e-9a61-3b0f5c8d2e47 as an integer).
pub const SIGNER_EKU_OID: &str = "2.25.165064954062291072181676185094143684167";

/// The DER content octets of [`SIGNER_EKU_OID`] (without tag and length).
pub const SIGNER_EKU_DER: &[u8] = &[
    0x69, 0x81, 0xf8, 0xae, 0xad, 0xa4, 0xa9, 0xf3, 0xda, 0xb6, 0x9d, 0x9a, 0xb0, 0xce, 0xe1, 0xf5,
    0xe4, 0xb4, 0xdc, 0x47,
];

/// The X.500 attribute type organizationIdentifier (2.5.4.97): where a subject carries its USCC.
pub const ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

const ROOT_YEARS: i64 = 20;
const SIGNER_YEARS: i64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("keys: {path}: {reason}")]
    File { path: String, reason: String },
    #[error("keys: certificate generation failed: {0}")]
    Generate(String),
    #[error(
        "keys: no active signer for department {0}; run `elicence keys rotate --department {0}`"
    )]
    NoActiveSigner(Uscc),
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

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SignerState {
    kid: String,
    department: String,
    uscc: Uscc,
    status: SignerStatus,
    created_at: String,
    revoked_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// Bumped on every change, so verifiers can tell a newer trust list.
    version: u64,
    signers: Vec<SignerState>,
}

/// A signer certificate with its private key.
struct Signer {
    state: SignerState,
    kid: [u8; 8],
    cert_pem: String,
    key: SigningKey,
}

/// Everything under `keys/`, loaded.
pub struct KeyRing {
    dir: PathBuf,
    root_pem: String,
    state_version: u64,
    signers: Vec<Signer>,
}

/// `kid` = the first 8 bytes of SHA-256 over the certificate's DER (SPEC §5).
pub fn kid_of(cert_der: &[u8]) -> [u8; 8] {
    crate::hash::sha256(cert_der)[..8]
        .try_into()
        .expect("8 bytes")
}

/// The kid as the trust list writes it: base64url without padding.
pub fn kid_text(kid: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid)
}

impl KeyRing {
    /// Opens the key ring under `dir`, creating a development root when there is none, and a signer
    /// for every department of `issuers` that has no active one. Returns the ring and whether a
    /// new root was made (the caller warns loudly: a development root is trusted by nobody else).
    pub fn open_or_init(dir: &Path, issuers: &[Issuer]) -> Result<(KeyRing, bool), KeyError> {
        let created = !dir.join("root.crt.pem").exists();
        if created {
            Self::init_root(dir)?;
        }
        let mut ring = Self::open(dir)?;
        for issuer in issuers {
            if ring.active_signer(&issuer.uscc).is_none() {
                let kid = ring.add_signer(issuer)?;
                if !created {
                    tracing::warn!(department = %issuer.uscc, %kid, "department had no active signer: made one");
                }
            }
        }
        Ok((ring, created))
    }

    fn init_root(dir: &Path) -> Result<(), KeyError> {
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
        let state = State {
            version: 1,
            signers: Vec::new(),
        };
        write_state(dir, &state)
    }

    /// Loads an existing key ring.
    pub fn open(dir: &Path) -> Result<KeyRing, KeyError> {
        let root_pem = read(&dir.join("root.crt.pem"))?;
        let state_path = dir.join("state.json");
        let state: State =
            serde_json::from_str(&read(&state_path)?).map_err(|e| file_error(&state_path, e))?;
        let mut signers = Vec::new();
        for entry in state.signers {
            let cert_path = dir.join("signers").join(format!("{}.crt.pem", entry.kid));
            let key_path = dir.join("signers").join(format!("{}.key.pem", entry.kid));
            let cert_pem = read(&cert_path)?;
            let der = pem_der(&cert_pem).map_err(|e| file_error(&cert_path, e))?;
            let kid = kid_of(&der);
            if HEXLOWER.encode(&kid) != entry.kid {
                return Err(file_error(&cert_path, "certificate does not match its kid"));
            }
            // The key file's content is never put into an error: only that it could not be read.
            let key = SigningKey::from_pkcs8_pem(&read(&key_path)?)
                .map_err(|_| file_error(&key_path, "not a PKCS#8 Ed25519 private key"))?;
            signers.push(Signer {
                state: entry,
                kid,
                cert_pem,
                key,
            });
        }
        Ok(KeyRing {
            dir: dir.to_path_buf(),
            root_pem,
            state_version: state.version,
            signers,
        })
    }

    fn save_state(&mut self) -> Result<(), KeyError> {
        self.state_version += 1;
        let state = State {
            version: self.state_version,
            signers: self.signers.iter().map(|s| s.state.clone()).collect(),
        };
        write_state(&self.dir, &state)
    }

    /// Issues a new signer certificate for `issuer` under the root; earlier active signers of the
    /// department become `retired` (still valid for verification, no longer used to sign).
    pub fn add_signer(&mut self, issuer: &Issuer) -> Result<String, KeyError> {
        let root_key = KeyPair::from_pem(&read(&self.dir.join("root.key.pem"))?)
            .map_err(|_| file_error(&self.dir.join("root.key.pem"), "not a private key"))?;
        let root_params =
            CertificateParams::from_ca_cert_pem(&self.root_pem).map_err(generate_error)?;
        let root = root_params.self_signed(&root_key).map_err(generate_error)?;

        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(generate_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "CN");
        dn.push(DnType::OrganizationName, issuer.name.as_str());
        dn.push(
            DnType::CustomDnType(ORGANIZATION_IDENTIFIER.to_vec()),
            issuer.uscc.as_str(),
        );
        dn.push(DnType::CommonName, format!("{} 电子证照签发", issuer.name));
        params.distinguished_name = dn;
        // No basicConstraints at all: rcgen's explicit `cA FALSE` encodes a DEFAULT value, which
        // DER forbids and strict parsers (Python's cryptography) reject.
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        // extendedKeyUsage (2.5.29.37) = SEQUENCE { OID 2.25.… }, written out because rcgen's
        // typed EKU takes arcs as u64 and a UUID arc is 128 bits.
        let mut eku = vec![
            0x30,
            SIGNER_EKU_DER.len() as u8 + 2,
            0x06,
            SIGNER_EKU_DER.len() as u8,
        ];
        eku.extend_from_slice(SIGNER_EKU_DER);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(&[2, 5, 29, 37], eku));
        set_validity(&mut params, SIGNER_YEARS);
        let cert = params
            .signed_by(&key, &root, &root_key)
            .map_err(generate_error)?;

        let kid = kid_of(cert.der());
        let kid_hex = HEXLOWER.encode(&kid);
        let signers_dir = self.dir.join("signers");
        fs::create_dir_all(&signers_dir).map_err(|e| file_error(&signers_dir, e))?;
        let key_pem = key.serialize_pem();
        write_private(&signers_dir.join(format!("{kid_hex}.key.pem")), &key_pem)?;
        write_public(&signers_dir.join(format!("{kid_hex}.crt.pem")), &cert.pem())?;
        let signing_key = SigningKey::from_pkcs8_pem(&key_pem)
            .map_err(|_| KeyError::Generate("generated key does not load as Ed25519".into()))?;

        for s in &mut self.signers {
            if s.state.uscc == issuer.uscc && s.state.status == SignerStatus::Active {
                s.state.status = SignerStatus::Retired;
            }
        }
        self.signers.push(Signer {
            state: SignerState {
                kid: kid_hex,
                department: issuer.name.clone(),
                uscc: issuer.uscc.clone(),
                status: SignerStatus::Active,
                created_at: time_util::format_rfc3339(time_util::now()),
                revoked_at: None,
            },
            kid,
            cert_pem: cert.pem(),
            key: signing_key,
        });
        self.save_state()?;
        Ok(kid_text(&kid))
    }

    /// Rotates the department's key: a new signer becomes active, the old one retired.
    pub fn rotate(&mut self, uscc: &Uscc) -> Result<String, KeyError> {
        let department = self
            .signers
            .iter()
            .rev()
            .find(|s| &s.state.uscc == uscc)
            .map(|s| s.state.department.clone())
            .ok_or_else(|| KeyError::NoActiveSigner(uscc.clone()))?;
        self.add_signer(&Issuer {
            name: department,
            uscc: uscc.clone(),
        })
    }

    /// Revokes a signer (kid as base64url or hex); licences it signed then verify as `signer_revoked`.
    pub fn revoke(&mut self, kid: &str) -> Result<(), KeyError> {
        let signer = self
            .signers
            .iter_mut()
            .find(|s| kid_text(&s.kid) == kid || s.state.kid == kid)
            .ok_or_else(|| KeyError::UnknownKid(kid.to_string()))?;
        if signer.state.status == SignerStatus::Revoked {
            return Err(KeyError::AlreadyRevoked(kid.to_string()));
        }
        signer.state.status = SignerStatus::Revoked;
        signer.state.revoked_at = Some(time_util::format_rfc3339(time_util::now()));
        self.save_state()
    }

    fn active_signer(&self, uscc: &Uscc) -> Option<&Signer> {
        self.signers
            .iter()
            .rev()
            .find(|s| &s.state.uscc == uscc && s.state.status == SignerStatus::Active)
    }

    /// The newest active signing key of a department, and its kid.
    pub fn signing_key(&self, uscc: &Uscc) -> Result<(&SigningKey, [u8; 8]), KeyError> {
        self.active_signer(uscc)
            .map(|s| (&s.key, s.kid))
            .ok_or_else(|| KeyError::NoActiveSigner(uscc.clone()))
    }

    /// The public trust list (SPEC §5).
    pub fn trust_list(&self) -> TrustList {
        TrustList {
            version: self.state_version,
            generated_at: time_util::format_rfc3339(time_util::now()),
            roots: vec![self.root_pem.clone()],
            signers: self
                .signers
                .iter()
                .map(|s| TrustedSigner {
                    kid: kid_text(&s.kid),
                    department: s.state.department.clone(),
                    uscc: s.state.uscc.to_string(),
                    certificate: s.cert_pem.clone(),
                    status: s.state.status,
                    revoked_at: s.state.revoked_at.clone(),
                })
                .collect(),
        }
    }
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

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let (_, parsed) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if parsed.label != "CERTIFICATE" {
        return Err(format!("PEM holds a {}, not a CERTIFICATE", parsed.label));
    }
    Ok(parsed.contents)
}

fn read(path: &Path) -> Result<String, KeyError> {
    fs::read_to_string(path).map_err(|e| file_error(path, e))
}

fn write_state(dir: &Path, state: &State) -> Result<(), KeyError> {
    let json = serde_json::to_string_pretty(state).expect("state serialises");
    write_atomically(&dir.join("state.json"), json.as_bytes(), 0o644)
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
/// mode, and whoever opened it meanwhile would read the key. The mode is set on the open file
/// as well, since the umask narrows the mode a file is created with.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(&tmp, e)),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| file_error(&tmp, e))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .and_then(|_| file.write_all(data))
        .and_then(|_| file.sync_all())
        .map_err(|e| file_error(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| file_error(path, e))
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
        let (ring, created) = KeyRing::open_or_init(dir.path(), &[issuer()]).unwrap();
        assert!(created);
        let list = ring.trust_list();
        let der = pem_der(&list.signers[0].certificate).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        // No basicConstraints: an explicit `cA FALSE` is not DER and strict parsers refuse it.
        assert!(cert.basic_constraints().unwrap().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        // x509-parser prints a 128-bit arc as hex, so compare the encoded OID.
        let ekus: Vec<&[u8]> = eku.other.iter().map(|o| o.as_bytes()).collect();
        assert_eq!(ekus, [SIGNER_EKU_DER]);
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
    fn private_key_files_are_mode_0600_and_reopen_to_the_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = KeyRing::open_or_init(dir.path(), &[issuer()]).unwrap();
        let kid_hex = HEXLOWER.encode(&ring.signing_key(&issuer().uscc).unwrap().1);
        for path in [
            dir.path().join("root.key.pem"),
            dir.path()
                .join("signers")
                .join(format!("{kid_hex}.key.pem")),
        ] {
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let (again, created) = KeyRing::open_or_init(dir.path(), &[issuer()]).unwrap();
        assert!(!created);
        let (a, b) = (
            ring.signing_key(&issuer().uscc).unwrap(),
            again.signing_key(&issuer().uscc).unwrap(),
        );
        assert_eq!(a.0.verifying_key(), b.0.verifying_key());
        assert_eq!(again.trust_list().version, ring.trust_list().version);
    }

    #[test]
    fn a_private_key_written_over_a_leftover_world_readable_temp_file_is_still_0600() {
        let dir = tempfile::tempdir().unwrap();
        // A temporary file left by an interrupted write, readable by everyone.
        let leftover = dir.path().join("root.key.tmp");
        fs::write(&leftover, "stale").unwrap();
        fs::set_permissions(&leftover, fs::Permissions::from_mode(0o644)).unwrap();
        KeyRing::open_or_init(dir.path(), &[issuer()]).unwrap();
        let key = dir.path().join("root.key.pem");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!leftover.exists());
    }

    #[test]
    fn rotation_retires_and_revocation_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ring, _) = KeyRing::open_or_init(dir.path(), &[issuer()]).unwrap();
        let first = ring.trust_list().signers[0].kid.clone();
        let second = ring.rotate(&issuer().uscc).unwrap();
        ring.revoke(&first).unwrap();
        assert!(matches!(
            ring.revoke(&first),
            Err(KeyError::AlreadyRevoked(_))
        ));
        let list = KeyRing::open(dir.path()).unwrap().trust_list();
        let status: Vec<(String, SignerStatus)> = list
            .signers
            .iter()
            .map(|s| (s.kid.clone(), s.status))
            .collect();
        assert_eq!(
            status,
            [
                (first, SignerStatus::Revoked),
                (second, SignerStatus::Active)
            ]
        );
        assert!(list.signers[0].revoked_at.is_some());
        // The root (1), the first signer (2), the rotation (3) and the revocation (4).
        assert_eq!(list.version, 4, "every change bumps the trust list version");
    }
}
