//! Signer state (SPEC §5): which signer certificate of each department is active, retired or
//! revoked, and the trust list version. Every change is one transaction that changes the state,
//! bumps the version and appends its audit record; every process reads the version (one row) to
//! know when to reload its keys. Private keys are not here: they stay in `keys/`.

use data_encoding::HEXLOWER;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Backend, Result, Store, StoreError};
use crate::audit::Entry;
use crate::identifiers::Uscc;
use crate::signing::keys::SignerRecord;
use crate::signing::trust::SignerStatus;

/// The advisory lock key that serialises signer changes on PostgreSQL ("signer" in ASCII), so that
/// two processes rotating one department at once take turns instead of failing on the index that
/// allows one active signer.
const SIGNERS_LOCK: i64 = 0x7369_676e_6572;

/// What a new signer does to a department that has an active signer already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenActive {
    /// A rotation: the active signer becomes retired.
    Retire,
    /// A start that found no active signer: if another process made one meanwhile, keep that one.
    Keep,
}

/// What became of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    Revoked,
    UnknownKid,
    AlreadyRevoked,
}

fn status_text(status: SignerStatus) -> &'static str {
    match status {
        SignerStatus::Active => "active",
        SignerStatus::Retired => "retired",
        SignerStatus::Revoked => "revoked",
    }
}

fn signer_record(row: &AnyRow) -> Result<SignerRecord> {
    let kid: String = row.try_get("kid")?;
    let corrupt = |what: &str| StoreError::Corrupt(format!("signer {kid}: {what}"));
    let status = match row.try_get::<String, _>("status")?.as_str() {
        "active" => SignerStatus::Active,
        "retired" => SignerStatus::Retired,
        "revoked" => SignerStatus::Revoked,
        other => return Err(corrupt(&format!("status {other:?}"))),
    };
    let uscc =
        Uscc::parse(&row.try_get::<String, _>("uscc")?).map_err(|e| corrupt(&e.to_string()))?;
    Ok(SignerRecord {
        department: row.try_get("department")?,
        uscc,
        status,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
        certificate: row.try_get("certificate")?,
        seal_certificate: row.try_get("seal_certificate")?,
        kid,
    })
}

fn version_of(value: i64) -> Result<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("trust list version {value}")))
}

impl Store {
    /// The trust list version: what every process compares with the one its keys were loaded
    /// at. One primary-key read, cheap enough to ask before every signature run.
    pub async fn trust_version(&self) -> Result<u64> {
        let version: i64 = sqlx::query("SELECT version FROM trust_state WHERE id = 1")
            .fetch_one(&self.reader)
            .await?
            .try_get("version")?;
        version_of(version)
    }

    /// Every signer, in the order they were made.
    pub async fn signers(&self) -> Result<Vec<SignerRecord>> {
        sqlx::query(
            "SELECT kid, uscc, department, status, created_at, revoked_at, certificate,
                    seal_certificate
             FROM signers ORDER BY seq",
        )
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(signer_record)
        .collect()
    }

    /// A write transaction that may change signers, holding the signers lock on PostgreSQL
    /// (SQLite's `BEGIN IMMEDIATE` serialises it already).
    async fn begin_signer_change(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(SIGNERS_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// Refuses, inside a licence write's transaction, versions signed by a signer that another
    /// process revoked after this one checked its keys: stored, they would verify as
    /// `signer_revoked` at once. On PostgreSQL the signers lock is taken shared, so a revocation
    /// waits for the licence writes in flight, and they for it.
    pub(super) async fn refuse_revoked_signers(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        kids: impl Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let mut kids: Vec<String> = kids.map(|kid| HEXLOWER.encode(kid)).collect();
        kids.sort();
        kids.dedup();
        if kids.is_empty() {
            return Ok(());
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
                .bind(SIGNERS_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        let sql = format!(
            "SELECT kid FROM signers WHERE status = 'revoked' AND kid IN {}",
            super::placeholders(1, kids.len())
        );
        let mut query = sqlx::query(&sql);
        for kid in &kids {
            query = query.bind(kid);
        }
        match query.fetch_optional(&mut **tx).await? {
            Some(row) => Err(StoreError::SignerRevoked(row.try_get("kid")?)),
            None => Ok(()),
        }
    }

    /// Bumps the trust list version inside `tx`; returns the new one.
    async fn bump_trust_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<u64> {
        let version: i64 = sqlx::query(
            "UPDATE trust_state SET version = version + 1 WHERE id = 1 RETURNING version",
        )
        .fetch_one(&mut **tx)
        .await?
        .try_get("version")?;
        version_of(version)
    }

    async fn insert_signer(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        record: &SignerRecord,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO signers (kid, seq, uscc, department, status, created_at, revoked_at,
                                  certificate, seal_certificate)
             VALUES ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM signers), $2, $3, $4, $5, $6, $7,
                     $8)",
        )
        .bind(&record.kid)
        .bind(record.uscc.as_str())
        .bind(&record.department)
        .bind(status_text(record.status))
        .bind(&record.created_at)
        .bind(&record.revoked_at)
        .bind(&record.certificate)
        .bind(&record.seal_certificate)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Records `certificate` as signer `kid_hex`'s PDF seal, with its audit record, unless the
    /// register holds one already (another process recorded its own first). Returns whether it
    /// recorded it; the trust list version moves when it did.
    pub async fn record_seal(
        &self,
        kid_hex: &str,
        certificate: &str,
        audit: &Entry,
    ) -> Result<bool> {
        let mut tx = self.begin_signer_change().await?;
        let recorded = sqlx::query(
            "UPDATE signers SET seal_certificate = $1 WHERE kid = $2 AND seal_certificate IS NULL",
        )
        .bind(certificate)
        .bind(kid_hex)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if recorded {
            Self::bump_trust_version(&mut tx).await?;
            self.append_audit_in(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(recorded)
    }

    /// Imports the signer state of a deployment from before the register held it (`keys/state.json`),
    /// at its trust list `version` or later. Returns false, importing nothing, when the register
    /// has signers already (another process imported first).
    pub async fn import_signers(
        &self,
        version: u64,
        records: &[SignerRecord],
        audit: &Entry,
    ) -> Result<bool> {
        let mut tx = self.begin_signer_change().await?;
        let present: i64 = sqlx::query("SELECT COUNT(*) AS n FROM signers")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if present > 0 {
            return Ok(false);
        }
        for record in records {
            Self::insert_signer(&mut tx, record).await?;
        }
        let version = i64::try_from(version)
            .map_err(|_| StoreError::Corrupt(format!("trust list version {version}")))?;
        // Verifiers may have seen the imported version: the register's never goes below it.
        sqlx::query(
            "UPDATE trust_state
             SET version = CASE WHEN version < $1 THEN $1 ELSE version + 1 END WHERE id = 1",
        )
        .bind(version)
        .execute(&mut *tx)
        .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes `record` its department's active signer; with [`WhenActive::Retire`] the active one
    /// before it is retired. Returns the new trust list version, or None when `WhenActive::Keep`
    /// found an active signer (nothing changed).
    pub async fn add_signer(
        &self,
        record: &SignerRecord,
        when_active: WhenActive,
        audit: &Entry,
    ) -> Result<Option<u64>> {
        let mut tx = self.begin_signer_change().await?;
        let has_active =
            sqlx::query("SELECT kid FROM signers WHERE uscc = $1 AND status = 'active'")
                .bind(record.uscc.as_str())
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
        if has_active {
            if when_active == WhenActive::Keep {
                return Ok(None);
            }
            sqlx::query(
                "UPDATE signers SET status = 'retired' WHERE uscc = $1 AND status = 'active'",
            )
            .bind(record.uscc.as_str())
            .execute(&mut *tx)
            .await?;
        }
        Self::insert_signer(&mut tx, record).await?;
        let version = Self::bump_trust_version(&mut tx).await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(version))
    }

    /// Revokes signer `kid_hex` as of `revoked_at` (RFC 3339), with its audit record.
    pub async fn revoke_signer(
        &self,
        kid_hex: &str,
        revoked_at: &str,
        audit: &Entry,
    ) -> Result<Revocation> {
        let mut tx = self.begin_signer_change().await?;
        let status: Option<String> = sqlx::query("SELECT status FROM signers WHERE kid = $1")
            .bind(kid_hex)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("status"))
            .transpose()?;
        match status.as_deref() {
            None => return Ok(Revocation::UnknownKid),
            Some("revoked") => return Ok(Revocation::AlreadyRevoked),
            Some(_) => {}
        }
        sqlx::query("UPDATE signers SET status = 'revoked', revoked_at = $1 WHERE kid = $2")
            .bind(revoked_at)
            .bind(kid_hex)
            .execute(&mut *tx)
            .await?;
        Self::bump_trust_version(&mut tx).await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Revocation::Revoked)
    }
}
