//! Reservations made before signing: licence serials and status-list indexes. They are taken in
//! their own short transactions, ahead of the signing that uses them, so they live apart from the
//! writes that store what was signed.

use sqlx::Row;

use super::{placeholders, Result, Store, StoreError};
use crate::identifiers::{TypeCode, Uscc};

impl Store {
    /// Reserves `count` consecutive serials for (type, issuer); returns the first.
    pub async fn reserve_serials(
        &self,
        type_code: &TypeCode,
        issuer: &Uscc,
        count: u64,
    ) -> Result<u64> {
        let count = i64::try_from(count).map_err(|_| StoreError::Corrupt("count".into()))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO serial_counters (type_code, issuer, next_serial) VALUES ($1, $2, 1)
             ON CONFLICT (type_code, issuer) DO NOTHING",
        )
        .bind(type_code.as_str())
        .bind(issuer.as_str())
        .execute(&mut *tx)
        .await?;
        let next: i64 = sqlx::query(
            "UPDATE serial_counters SET next_serial = next_serial + $1
             WHERE type_code = $2 AND issuer = $3 RETURNING next_serial",
        )
        .bind(count)
        .bind(type_code.as_str())
        .bind(issuer.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get("next_serial")?;
        tx.commit().await?;
        Ok((next - count) as u64)
    }

    /// Reserves `count` free status-list indexes of `issuer`, chosen at random among the lists in
    /// use (a new list is opened once they are half full, so a free index is found in few tries).
    pub async fn reserve_status_indexes(&self, issuer: &Uscc, count: usize) -> Result<Vec<u64>> {
        use crate::signing::status_list::LIST_LEN;
        use rand::Rng;
        let mut tx = self.begin_write().await?;
        let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM status_slots WHERE issuer = $1")
            .bind(issuer.as_str())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let lists = (used as u64 + count as u64) / (LIST_LEN / 2) + 1;
        let mut taken = Vec::with_capacity(count);
        while taken.len() < count {
            // Distinct random candidates, tried in one statement; the ones already taken come
            // back missing and are drawn again.
            let mut candidates = std::collections::BTreeSet::new();
            while candidates.len() < (count - taken.len()).min(500) {
                candidates.insert(rand::thread_rng().gen_range(0..lists * LIST_LEN));
            }
            let sql = format!(
                "INSERT INTO status_slots (issuer, slot) VALUES {} ON CONFLICT DO NOTHING RETURNING slot",
                placeholders(candidates.len(), 2)
            );
            let mut query = sqlx::query(&sql);
            for candidate in &candidates {
                query = query.bind(issuer.as_str()).bind(*candidate as i64);
            }
            for row in query.fetch_all(&mut *tx).await? {
                taken.push(row.try_get::<i64, _>("slot")? as u64);
            }
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// Every (issuer, list number) holding at least one reserved index, in that order: the
    /// lists the aggregation route names (SPEC §7).
    pub async fn status_lists_in_use(&self) -> Result<Vec<(String, u64)>> {
        use crate::signing::status_list::LIST_LEN;
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT issuer, slot / {LIST_LEN} AS n FROM status_slots ORDER BY issuer, n"
        ))
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("issuer")?, row.try_get::<i64, _>("n")? as u64)))
            .collect()
    }
}
