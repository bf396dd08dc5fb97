//! Directory versions (SPEC §4): each distinct directory content the service has loaded, numbered,
//! so that a version records which directory it was signed under. A room of its own because
//! nothing else in the store reads or writes these rows.

use sqlx::Row;

use super::{Result, Store};
use crate::time_util;

impl Store {
    /// The version number of this directory content: the latest version when its digest matches,
    /// otherwise a new version.
    pub async fn record_directory(&self, digest: &str, content: &str) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, digest FROM directory_versions ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = &latest {
            if row.try_get::<String, _>("digest")? == digest {
                return Ok(row.try_get("version")?);
            }
        }
        let next = latest.map_or(Ok(0), |r| r.try_get::<i64, _>("version"))? + 1;
        sqlx::query(
            "INSERT INTO directory_versions (version, digest, content, loaded_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(next)
        .bind(digest)
        .bind(content)
        .bind(time_util::format_rfc3339(time_util::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }

    pub async fn directory_content(&self, version: i64) -> Result<Option<String>> {
        Ok(
            sqlx::query("SELECT content FROM directory_versions WHERE version = $1")
                .bind(version)
                .fetch_optional(&self.reader)
                .await?
                .map(|r| r.try_get("content"))
                .transpose()?,
        )
    }
}
