//! The public address in QR codes is a fact of the deployment (SPEC §6, §12): recorded in the
//! register at initialisation, so that every process — the service, the command line beside it,
//! a second instance — makes the same codes whatever its own environment says, and changed only
//! by an explicit, audited command. Each version records the address it was made with, so its
//! QR text and PDF never change.

use crate::signing::qr;

use super::*;

/// What happens to what exists when the verify base changes; printed by the command that
/// changes it, so the operator reads it before anyone else finds out.
pub const EXISTING_VERSIONS_KEEP_THEIR_ADDRESS: &str = "versions issued before keep the address \
    they were made with: their QR codes and PDFs do not change (a new version of a licence, by \
    amendment or renewal, gets the new address). New versions use the new address. Restarting \
    running instances is not needed: each reads the register when it signs.";

/// A change of the register's verify base.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyBaseChange {
    pub previous: String,
    pub verify_base: String,
    /// What became of the PDFs and codes made before.
    pub existing_versions: &'static str,
}

impl App {
    /// The register's verify base: the address new versions are made with.
    pub async fn verify_base(&self) -> Result<String> {
        self.store
            .verify_base()
            .await?
            .ok_or_else(|| AppError::Config("the register has no verify base".into()))
    }

    /// Replaces the register's verify base with `url` (normalised as QR codes carry it).
    pub async fn set_verify_base(&self, actor: &Actor, url: &str) -> Result<VerifyBaseChange> {
        self.audited(
            actor.entry("register.set_verify_base", "verify_base"),
            async |entry| self.set_verify_base_audited(actor, entry, url).await,
        )
        .await
    }

    async fn set_verify_base_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        url: &str,
    ) -> Result<VerifyBaseChange> {
        permissions::check(actor, Action::ManageRegister, None)?;
        let wanted =
            qr::normalise_verify_base(url).map_err(|e| AppError::BadInput(e.to_string()))?;
        if let Some(reason) = unreachable_reason(&wanted, self.settings.development) {
            return Err(AppError::BadInput(reason));
        }
        let current = self.verify_base().await?;
        if wanted == current {
            return Err(AppError::BadInput(format!(
                "the verify base is {current} already: nothing to change"
            )));
        }
        let audit = Entry {
            detail: format!("{current} -> {wanted}"),
            ..entry.clone()
        };
        let previous = self.store.set_verify_base(&wanted, &audit).await?;
        tracing::warn!(
            previous = %previous,
            verify_base = %wanted,
            "VERIFY BASE CHANGED: {EXISTING_VERSIONS_KEEP_THEIR_ADDRESS}"
        );
        Ok(VerifyBaseChange {
            previous,
            verify_base: wanted,
            existing_versions: EXISTING_VERSIONS_KEEP_THEIR_ADDRESS,
        })
    }
}

/// The register's verify base as this process finds it at open: recorded from the settings
/// when the register is new (by whoever opens it first), else the register's own, which wins
/// over this process's setting (loudly, when they differ). Refused when it is a loopback address
/// outside development mode: its QR codes would open nothing on a phone.
pub(super) async fn open_verify_base(store: &Store, settings: &Settings) -> Result<String> {
    let recorded = match store.verify_base().await? {
        Some(recorded) => recorded,
        None => {
            if let Some(reason) = unreachable_reason(&settings.verify_base, settings.development) {
                return Err(AppError::Config(format!(
                    "ELICENCE_VERIFY_BASE: {reason}; set ELICENCE_VERIFY_BASE to the service's \
                     public URL before the first start"
                )));
            }
            let audit = Entry {
                detail: settings.verify_base.clone(),
                ..Actor::local_operator().entry("register.init", "verify_base")
            };
            store
                .init_verify_base(&settings.verify_base, &audit)
                .await?
        }
    };
    if let Some(reason) = unreachable_reason(&recorded, settings.development) {
        return Err(AppError::Config(format!(
            "the register's {reason}; record the public URL with \
             `ELICENCE_MODE=development elicence register set-verify-base URL`"
        )));
    }
    if settings.verify_base_configured && settings.verify_base != recorded {
        tracing::warn!(
            configured = %settings.verify_base,
            register = %recorded,
            "ELICENCE_VERIFY_BASE IS NOT THE REGISTER'S: this process's setting {} differs from \
             the register's {}; QR codes use the register's (change it with `elicence register \
             set-verify-base URL`)",
            settings.verify_base,
            recorded
        );
    }
    Ok(recorded)
}

/// Why `verify_base` may not go into QR codes, when it is a loopback or unspecified address
/// and development mode is off.
fn unreachable_reason(verify_base: &str, development: bool) -> Option<String> {
    let host = qr::unreachable_host(verify_base).filter(|_| !development)?;
    Some(format!(
        "verify base {verify_base} names {host}, which no phone can reach (its QR codes would \
         open nothing); such an address is allowed only in development mode \
         (ELICENCE_MODE=development)"
    ))
}
