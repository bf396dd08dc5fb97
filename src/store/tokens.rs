//! Access tokens as stored: only each token's hash, its roles and department, and whether it was
//! revoked. Kept apart because tokens share nothing with the licence tables.

use sqlx::Row;

use super::{Result, Store};
use crate::time_util;

/// A token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub department: Option<String>,
    /// Comma-separated role names.
    pub roles: String,
}

/// A token as an administrator lists it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct TokenListing {
    pub id: i64,
    pub name: String,
    pub department: Option<String>,
    /// Comma-separated role names.
    pub roles: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl Store {
    pub async fn insert_token(
        &self,
        name: &str,
        department: Option<&str>,
        roles: &str,
        token_hash: &str,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO tokens (name, department, roles, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(name)
        .bind(department)
        .bind(roles)
        .bind(token_hash)
        .bind(time_util::format_rfc3339(time_util::now()))
        .fetch_one(&self.writer)
        .await?
        .try_get("id")?)
    }

    /// The token with this hash, if it exists and is not revoked.
    pub async fn active_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        Ok(sqlx::query_as(
            "SELECT id, name, department, roles FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Revokes a token; false when there is no such active token.
    pub async fn revoke_token(&self, id: i64) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(time_util::format_rfc3339(time_util::now()))
                .bind(id)
                .execute(&self.writer)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Every token (of `department` only, when given), newest first: never the token itself.
    pub async fn tokens(&self, department: Option<&str>) -> Result<Vec<TokenListing>> {
        const COLUMNS: &str =
            "SELECT id, name, department, roles, created_at, revoked_at FROM tokens";
        let rows = match department {
            Some(d) => {
                let sql = format!("{COLUMNS} WHERE department = $1 ORDER BY id DESC");
                sqlx::query_as(&sql).bind(d).fetch_all(&self.reader).await?
            }
            None => {
                let sql = format!("{COLUMNS} ORDER BY id DESC");
                sqlx::query_as(&sql).fetch_all(&self.reader).await?
            }
        };
        Ok(rows)
    }
}
