//! The service's own keys under the root (SPEC §5): one per purpose other than licences — the
//! supervision key that signs audit checkpoints (SPEC §15), the log key that signs the
//! transparency log's tree heads and receipts (SPEC §16). Kept as `keys/{purpose}.key.pem` and
//! `keys/{purpose}.crt.pem`, not in the register: they belong to the service, not a department.

use std::fs;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::SigningKey;
use rcgen::{DistinguishedName, DnType};

use super::{file_error, issue_under_root, read, write_new_file, KeyError, KeyRing};
use crate::signing::cert::{kid_of, pem_der, subject_organisation, Purpose};

/// A certificate of the service itself under the root, for one purpose other than licences.
pub(super) struct ServiceCert {
    pub(super) purpose: Purpose,
    pub(super) kid: [u8; 8],
    /// The subject's organisation: who holds the key.
    pub(super) holder: String,
    pub(super) certificate: String,
}

/// The purposes the service holds a key of its own for, kept as `keys/{purpose}.key.pem` and
/// `keys/{purpose}.crt.pem`.
const SERVICE_PURPOSES: [Purpose; 2] = [Purpose::Supervision, Purpose::Log];

/// What the certificate of the service's `purpose` key calls its holder, after the county.
fn role(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Log => "透明日志签名",
        _ => "电子监察数据签名",
    }
}

fn service_paths(dir: &Path, purpose: Purpose) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{}.crt.pem", purpose.as_str())),
        dir.join(format!("{}.key.pem", purpose.as_str())),
    )
}

/// The service keys installed under `dir`.
pub(super) fn installed(dir: &Path) -> Result<Vec<ServiceCert>, KeyError> {
    let mut services = Vec::new();
    for purpose in SERVICE_PURPOSES {
        let (cert_path, _) = service_paths(dir, purpose);
        if cert_path.exists() {
            services.push(read_service_cert(&cert_path, purpose)?);
        }
    }
    Ok(services)
}

impl KeyRing {
    /// Makes the service's key for `purpose` under the root when there is none and the root's
    /// private key is here to sign it (a development deployment; elsewhere the county's CA issues
    /// it and the operator installs both files). Returns whether it made one. Made under the
    /// key-making lock, so two processes starting at once cannot pair one's key with the other's
    /// certificate; a private key left without its certificate (a start killed between the two)
    /// is replaced rather than left to stop every later start.
    pub fn ensure_service_key(dir: &Path, purpose: Purpose) -> Result<bool, KeyError> {
        let (cert_path, key_path) = service_paths(dir, purpose);
        ensure_county_pair(dir, &key_path, &cert_path, || {
            let dn = county_subject(dir, role(purpose))?;
            let (cert, key) = issue_under_root(dir, dn, purpose)?;
            Ok((key.serialize_pem(), vec![(cert_path.clone(), cert.pem())]))
        })
    }

    /// The private key of the service's `purpose` key, and its kid; a clear error naming the file
    /// when it is missing or unusable (never its content).
    pub fn service_signing_key(
        dir: &Path,
        purpose: Purpose,
    ) -> Result<(SigningKey, [u8; 8]), KeyError> {
        let (cert_path, key_path) = service_paths(dir, purpose);
        let cert = read_service_cert(&cert_path, purpose)?;
        let pem = read(&key_path)?;
        let key = SigningKey::from_pkcs8_pem(&pem)
            .map_err(|_| file_error(&key_path, "not a PKCS#8 Ed25519 private key"))?;
        let public = pem_der(&cert.certificate).map_err(|e| file_error(&cert_path, e))?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&public).map_err(|e| file_error(&cert_path, e))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.verifying_key().as_bytes() {
            return Err(file_error(&key_path, "does not match its certificate"));
        }
        Ok((key, cert.kid))
    }
}

fn read_service_cert(path: &Path, purpose: Purpose) -> Result<ServiceCert, KeyError> {
    let certificate = read(path)?;
    let der = pem_der(&certificate).map_err(|e| file_error(path, e))?;
    Ok(ServiceCert {
        purpose,
        kid: kid_of(&der),
        holder: subject_organisation(&der).unwrap_or_default(),
        certificate,
    })
}

/// Makes a key pair of the county's own under the root — a service key, the seal CA — when
/// `cert_path` is absent and the root's private key is here to sign it (a development
/// deployment). Under [`while_making_keys`]: checks again, replaces a key left without its
/// certificate, then `make` gives the private key (PEM) and the certificate files to write, the
/// key first. Returns whether it made the pair.
pub(super) fn ensure_county_pair(
    dir: &Path,
    key_path: &Path,
    cert_path: &Path,
    make: impl FnOnce() -> Result<(String, Vec<(PathBuf, String)>), KeyError>,
) -> Result<bool, KeyError> {
    if !dir.join("root.key.pem").exists() || cert_path.exists() {
        return Ok(false);
    }
    while_making_keys(dir, || {
        if cert_path.exists() {
            return Ok(false); // another process made it while this one waited
        }
        remove_orphan_key(key_path)?;
        let (key, certificates) = make()?;
        write_new(key_path, &key, 0o600)?;
        for (path, certificate) in certificates {
            write_new(&path, &certificate, 0o644)?;
        }
        Ok(true)
    })
}

/// `C=CN, O={the county}, CN={the county} {role}`: the subject of a certificate of the county's
/// own, the county named as the root certificate names it.
pub(super) fn county_subject(dir: &Path, role: &str) -> Result<DistinguishedName, KeyError> {
    let root_path = dir.join("root.crt.pem");
    let root = pem_der(&read(&root_path)?).map_err(|e| file_error(&root_path, e))?;
    let county = subject_organisation(&root).unwrap_or_default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "CN");
    dn.push(DnType::OrganizationName, county.as_str());
    dn.push(DnType::CommonName, format!("{county} {role}"));
    Ok(dn)
}

/// Runs `make` — which checks for a key pair and makes what is missing — holding an exclusive
/// lock on `keys/.making.lock`: processes starting at once take turns, so none sees another's
/// private key before its certificate and takes it for a leftover. The lock is released when
/// the file closes, a killed process's too.
pub(super) fn while_making_keys<T>(
    dir: &Path,
    make: impl FnOnce() -> Result<T, KeyError>,
) -> Result<T, KeyError> {
    let path = dir.join(".making.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| file_error(&path, e))?;
    lock.lock().map_err(|e| file_error(&path, e))?;
    make()
}

/// Removes a private key found without its certificate, under [`while_making_keys`]: a start
/// killed between writing the two left it, and it would otherwise stop every later start.
pub(super) fn remove_orphan_key(key_path: &Path) -> Result<(), KeyError> {
    if key_path.exists() {
        tracing::warn!(path = %key_path.display(), "a private key without its certificate is replaced");
        fs::remove_file(key_path).map_err(|e| file_error(key_path, e))?;
    }
    Ok(())
}

/// Writes `text` to `path` only if no file is there (false: another process wrote it first),
/// through a temporary file of its own linked into place, so the file is whole or absent.
pub(super) fn write_new(path: &Path, text: &str, mode: u32) -> Result<bool, KeyError> {
    let tmp = path.with_extension(format!("{:016x}.tmp", rand::random::<u64>()));
    write_new_file(&tmp, text.as_bytes(), mode)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(file_error(path, e)),
    }
}
