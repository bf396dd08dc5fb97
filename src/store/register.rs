//! The register (SPEC §12): deployment facts every process reads from the database rather than
//! from its own environment — today the public address put in QR codes (`VERIFY_BASE`).

use sqlx::Row;

use super::{Result, Store};
use crate::audit::Entry;
use crate::time_util;

/// The address new versions are made with.
const VERIFY_BASE: &str = "verify_base";
/// The address recorded at initialisation, never changed: versions made before the register
/// existed (their `verify_base` column is NULL) were made with it (`VERSION_COLUMNS` reads it).
const INITIAL_VERIFY_BASE: &str = "initial_verify_base";

impl Store {
    /// The register's verify base, if the register has been initialised.
    pub async fn verify_base(&self) -> Result<Option<String>> {
        self.register_value(VERIFY_BASE).await
    }

    async fn register_value(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM register WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| row.try_get("value"))
            .transpose()?)
    }

    /// Records `verify_base` as the register's, unless another process initialised the register
    /// first; returns the value that holds (this one or the other process's). The first
    /// recording is audited as `audit`.
    pub async fn init_verify_base(&self, verify_base: &str, audit: &Entry) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let at = time_util::format_rfc3339(time_util::now());
        let mut recorded = 0;
        for key in [VERIFY_BASE, INITIAL_VERIFY_BASE] {
            recorded += sqlx::query(
                "INSERT INTO register (key, value, set_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(verify_base)
            .bind(&at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if recorded > 0 {
            self.append_audit_in(&mut tx, audit).await?;
        }
        let holds: String = sqlx::query("SELECT value FROM register WHERE key = $1")
            .bind(VERIFY_BASE)
            .fetch_one(&mut *tx)
            .await?
            .try_get("value")?;
        tx.commit().await?;
        Ok(holds)
    }

    /// Replaces the register's verify base with `verify_base`, audited as `audit` in the same
    /// transaction; returns the value it replaced.
    pub async fn set_verify_base(&self, verify_base: &str, audit: &Entry) -> Result<String> {
        let mut tx = self.begin_write().await?;
        let previous: String = sqlx::query("SELECT value FROM register WHERE key = $1")
            .bind(VERIFY_BASE)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("value"))
            .transpose()?
            .ok_or_else(|| super::StoreError::Corrupt("the register has no verify_base".into()))?;
        sqlx::query("UPDATE register SET value = $1, set_at = $2 WHERE key = $3")
            .bind(verify_base)
            .bind(time_util::format_rfc3339(time_util::now()))
            .bind(VERIFY_BASE)
            .execute(&mut *tx)
            .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(previous)
    }
}
