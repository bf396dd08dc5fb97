//! Push delivery state: per target, the last event seq delivered and the lease that lets one
//! process (of possibly several instances) deliver to it at a time. Apart because only the push
//! worker (src/sync.rs) reads and writes it.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// Takes (or renews) the delivery lease of `target` for `holder` until `until` (seconds);
    /// returns the last delivered seq when the lease is ours, None when another holder has it.
    pub async fn take_push_lease(
        &self,
        target: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<Option<i64>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO push_state (target, last_seq, lease_holder, lease_until) VALUES ($1, 0, '', 0)
             ON CONFLICT (target) DO NOTHING",
        )
        .bind(target)
        .execute(&mut *tx)
        .await?;
        let last: Option<i64> = sqlx::query(
            "UPDATE push_state SET lease_holder = $1, lease_until = $2
             WHERE target = $3 AND (lease_holder = $1 OR lease_until < $4) RETURNING last_seq",
        )
        .bind(holder)
        .bind(until)
        .bind(target)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("last_seq"))
        .transpose()?;
        tx.commit().await?;
        Ok(last)
    }

    /// Hands `holder`'s lease of `target` back (at a clean stop), so that the next process or
    /// another instance delivers at once instead of waiting for the lease to run out.
    pub async fn release_push_lease(&self, target: &str, holder: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE push_state SET lease_holder = '', lease_until = 0
             WHERE target = $1 AND lease_holder = $2",
        )
        .bind(target)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that everything up to `seq` was delivered to `target`, if `holder` still holds
    /// the lease; false when it lost it (another instance delivers now).
    pub async fn record_pushed(&self, target: &str, holder: &str, seq: i64) -> Result<bool> {
        self.set_pushed(target, holder, seq, "AND last_seq < $1")
            .await
    }

    /// Sets what was delivered to `target` back to `seq`, if `holder` holds the lease: the
    /// source shrank below it (an audit trail cut short), and delivery starts again lower.
    pub async fn rewind_pushed(&self, target: &str, holder: &str, seq: i64) -> Result<bool> {
        self.set_pushed(target, holder, seq, "").await
    }

    /// Sets `target`'s delivered seq to `seq` where `holder` holds the lease and `condition`
    /// (SQL over `last_seq` and `$1`, the new seq) holds; whether it did.
    async fn set_pushed(
        &self,
        target: &str,
        holder: &str,
        seq: i64,
        condition: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "UPDATE push_state SET last_seq = $1 WHERE target = $2 AND lease_holder = $3 {condition}"
        );
        let updated = sqlx::query(&sql)
            .bind(seq)
            .bind(target)
            .bind(holder)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(updated == 1)
    }
}
