//! Signer state shared by every process (SPEC §5). The register holds which signer of each
//! department is active, retired or revoked, and the trust list version; `keys/` holds the key
//! files. Each process keeps a loaded [`KeyRing`] and compares its version with the register's —
//! before every signature run, and every [`KEY_POLL_INTERVAL`] while serving — and reloads when
//! they differ, so that a rotation or revocation made by any process takes effect in all of them
//! within a second, without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::directory::Issuer;
use crate::signing::cert::Purpose;
use crate::signing::keys::{kid_hex, SignerRecord};
use crate::signing::trust::SignerStatus;
use crate::store::{Revocation, WhenActive};
use crate::time_util;

/// How often `serve` asks the register whether the signer state changed: one primary-key read.
pub const KEY_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// The key ring at start: a development root made when there is none (`true`: the caller warns
/// loudly), the signer state of `keys/state.json` imported into a register that has none, and a
/// signer made for every department of `issuers` without an active one.
pub(super) async fn open_key_ring(
    store: &Store,
    dir: &Path,
    issuers: &[Issuer],
) -> Result<(KeyRing, bool)> {
    let created = KeyRing::ensure_root(dir)?;
    for purpose in [Purpose::Supervision, Purpose::Log] {
        if KeyRing::ensure_service_key(dir, purpose)? {
            tracing::warn!(
                keys_dir = %dir.display(),
                purpose = purpose.as_str(),
                "made a development service key under the root: the city trusts it only \
                 through this deployment's trust list"
            );
        }
    }
    // Before any signer is made, so that a new signer's seal comes with it.
    if KeyRing::ensure_seal_ca(dir)? {
        tracing::warn!(
            keys_dir = %dir.display(),
            "made a development PDF seal CA under the root"
        );
    }
    let operator = Actor::local_operator();
    let mut signers = store.signers().await?;
    if signers.is_empty() && import_state_json(store, dir, &operator).await? {
        signers = store.signers().await?;
    }
    for issuer in issuers {
        if !signers.iter().any(|s| is_active_signer_of(s, issuer)) {
            make_first_signer(store, dir, issuer, &operator, created).await?;
        }
    }
    ensure_seals(store, dir, &operator).await?;
    Ok((load_key_ring(store, dir).await?, created))
}

/// A seal for every active signer without one in the register (signers made before seals
/// existed), where the seal CA's key is on this host (docs/DESIGN.md, "PDF seals"). A seal the
/// register already holds is never made again.
async fn ensure_seals(store: &Store, dir: &Path, operator: &Actor) -> Result<()> {
    for signer in store.signers().await? {
        if signer.status != SignerStatus::Active {
            continue;
        }
        let Some(certificate) = KeyRing::ensure_seal(dir, &signer)? else {
            continue;
        };
        let audit = Entry {
            detail: format!(
                "the signer's PDF seal, made at start: {}",
                signer.kid_text()
            ),
            ..operator.entry("key.seal", signer.uscc.as_str())
        }
        .of_department(&signer.uscc);
        if store.record_seal(&signer.kid, &certificate, &audit).await? {
            tracing::info!(department = %signer.uscc, kid = %signer.kid_text(), "made the signer's PDF seal");
        } else if !registered_seal_is(store, &signer.kid, &certificate).await? {
            // Another instance, with keys of its own, recorded its seal first: this one's is
            // not the signer's, and would only mislead.
            KeyRing::discard_seal(dir, &signer.kid);
        }
    }
    Ok(())
}

/// Whether the register's seal of signer `kid_hex` is `certificate`.
async fn registered_seal_is(store: &Store, kid_hex: &str, certificate: &str) -> Result<bool> {
    let signers = store.signers().await?;
    let signer = signers.iter().find(|s| s.kid == kid_hex);
    Ok(signer.and_then(|s| s.seal_certificate.as_deref()) == Some(certificate))
}

fn is_active_signer_of(signer: &SignerRecord, issuer: &Issuer) -> bool {
    signer.uscc == issuer.uscc && signer.status == SignerStatus::Active
}

/// Imports `keys/state.json` (where signer state lived before the register held it) into an
/// empty register, once. Returns whether it did.
async fn import_state_json(store: &Store, dir: &Path, operator: &Actor) -> Result<bool> {
    let Some((version, records)) = KeyRing::legacy_state(dir)? else {
        return Ok(false);
    };
    let path = dir.join("state.json");
    let audit = Entry {
        detail: format!(
            "{} signers at trust list version {version} from {}",
            records.len(),
            path.display()
        ),
        ..operator.entry("key.import", "state.json")
    };
    let imported = store.import_signers(version, &records, &audit).await?;
    if imported {
        tracing::warn!(
            signers = records.len(),
            version,
            path = %path.display(),
            "imported the signer state of keys/state.json into the database, which holds it from \
             now on: state.json is no longer read or written"
        );
    }
    Ok(imported)
}

/// Makes the department's first signer (or its next one, when every signer it had was revoked),
/// unless another process starting at the same moment made one first.
async fn make_first_signer(
    store: &Store,
    dir: &Path,
    issuer: &Issuer,
    operator: &Actor,
    fresh_root: bool,
) -> Result<()> {
    let record = KeyRing::make_signer(dir, issuer)?;
    let kid = record.kid_text();
    let audit = Entry {
        detail: format!("the department had no active signer: new signer {kid}"),
        ..operator.entry("key.create", issuer.uscc.as_str())
    }
    .of_department(&issuer.uscc);
    match store.add_signer(&record, WhenActive::Keep, &audit).await? {
        Some(_) if !fresh_root => {
            tracing::warn!(department = %issuer.uscc, %kid, "department had no active signer: made one");
        }
        Some(_) => {}
        None => KeyRing::discard_signer(dir, &record.kid),
    }
    Ok(())
}

/// The register's key ring. The version is read before the signers, so the signers are at least
/// as new as the version: a change committed between the two reads is loaded again at the next
/// check rather than missed.
async fn load_key_ring(store: &Store, dir: &Path) -> Result<KeyRing> {
    let version = store.trust_version().await?;
    let records = store.signers().await?;
    Ok(KeyRing::load(dir, version, records)?)
}

impl App {
    /// Brings this process's keys up to the register's signer state: one cheap read when nothing
    /// changed; when something did, the ring reloaded, the trust store rebuilt and every cached
    /// signature check forgotten. Called before signing, and by [`App::watch_keys`].
    pub async fn sync_keys(&self) -> Result<()> {
        if self.store.trust_version().await? == self.keys().version() {
            return Ok(());
        }
        let ring = load_key_ring(&self.store, &self.settings.keys_dir).await?;
        let trust = Arc::new(trust_store_of(&ring)?);
        {
            let mut keys = self.keys_mut();
            // Two reloads may overlap: the newer state wins whichever finishes last.
            if ring.version() <= keys.version() {
                return Ok(());
            }
            tracing::info!(
                from = keys.version(),
                to = ring.version(),
                "the signer state changed: keys reloaded"
            );
            *keys = ring;
            *self.trust.write().unwrap_or_else(|p| p.into_inner()) = trust;
        }
        self.verify_cache.trust_changed();
        Ok(())
    }

    /// A key ring loaded afresh from the register (the benchmarks sign with it directly).
    pub async fn key_ring(&self) -> Result<KeyRing> {
        load_key_ring(&self.store, &self.settings.keys_dir).await
    }

    /// Keeps this process's keys in step with the register while it serves, until `stop`. A
    /// failing check is logged when it starts failing and when it recovers, not at every poll.
    pub async fn watch_keys(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(KEY_POLL_INTERVAL) => {}
                _ = stop.changed() => return,
            }
            match self.sync_keys().await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the signer state can be checked again");
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot check the signer state: rotations and revocations made elsewhere are not seen until this recovers");
                }
                _ => {}
            }
        }
    }

    /// Rotates a department's key: a new signer becomes active, the one before retired.
    pub async fn rotate_key(&self, actor: &Actor, department: &str) -> Result<String> {
        self.audited(actor.entry("key.rotate", department), async |entry| {
            self.rotate_key_audited(actor, entry, department).await
        })
        .await
    }

    async fn rotate_key_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        department: &str,
    ) -> Result<String> {
        let uscc = Uscc::parse(department)?;
        permissions::check(actor, Action::ManageKeys, Some(&uscc))?;
        let issuer = self
            .directory
            .issuers()
            .into_iter()
            .find(|i| i.uscc == uscc)
            .ok_or_else(|| AppError::NotFound(format!("issuing department {uscc}")))?;
        let record = KeyRing::make_signer(&self.settings.keys_dir, &issuer)?;
        let kid = record.kid_text();
        let audit = Entry {
            detail: format!("new signer {kid}"),
            ..entry.clone()
        }
        .of_department(&uscc);
        // Should this fail, the new key files stay: the transaction may have committed all the
        // same, and an active signer without its private key could not sign.
        self.store
            .add_signer(&record, WhenActive::Retire, &audit)
            .await?;
        self.sync_keys().await?;
        Ok(kid)
    }

    /// Revokes a signer (kid as base64url or hex): what it signed then verifies as
    /// `signer_revoked`, in every process.
    pub async fn revoke_key(&self, actor: &Actor, kid: &str) -> Result<()> {
        self.audited(actor.entry("key.revoke", kid), async |entry| {
            self.revoke_key_audited(actor, entry, kid).await
        })
        .await
    }

    async fn revoke_key_audited(&self, actor: &Actor, entry: &Entry, kid: &str) -> Result<()> {
        // A key is named by its kid alone, so revoking one is the whole service's business.
        permissions::check(actor, Action::ManageKeys, None)?;
        let revoked_at = time_util::format_rfc3339(time_util::now());
        match self
            .store
            .revoke_signer(&kid_hex(kid)?, &revoked_at, entry)
            .await?
        {
            Revocation::Revoked => self.sync_keys().await,
            Revocation::UnknownKid => Err(KeyError::UnknownKid(kid.to_string()).into()),
            Revocation::AlreadyRevoked => Err(KeyError::AlreadyRevoked(kid.to_string()).into()),
        }
    }
}
