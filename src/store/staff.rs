//! Staff accounts as stored (SPEC §10 "People"): never a password, only its Argon2id hash.
//! Kept apart from API tokens: people sign in, change passwords and get locked out; tokens don't.

use sqlx::Row;

use super::{Result, Store};
use crate::time_util;

/// A staff account about to be stored.
pub struct NewStaff<'a> {
    pub login: &'a str,
    pub name: &'a str,
    pub department: Option<&'a str>,
    /// Comma-separated role names.
    pub roles: &'a str,
    /// The PHC string of the password's Argon2id hash.
    pub password_hash: &'a str,
}

/// A staff account as stored, without its password hash.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct StaffRow {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub department: Option<String>,
    /// Comma-separated role names.
    pub roles: String,
    pub created_at: String,
    /// When the account was disabled; None while it may sign in.
    pub disabled_at: Option<String>,
}

impl Store {
    /// Stores a new account whose password must be changed at first sign-in; `None` when the
    /// login is taken (nothing is stored then).
    pub async fn insert_staff(&self, new: &NewStaff<'_>) -> Result<Option<StaffRow>> {
        Ok(sqlx::query_as(
            "INSERT INTO staff (login, name, department, roles, password_hash,
                                must_change_password, created_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6)
             ON CONFLICT (login) DO NOTHING
             RETURNING id, login, name, department, roles, created_at, disabled_at",
        )
        .bind(new.login)
        .bind(new.name)
        .bind(new.department)
        .bind(new.roles)
        .bind(new.password_hash)
        .bind(time_util::format_rfc3339(time_util::now()))
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Every account (of `department` only, when given), oldest first.
    pub async fn staff(&self, department: Option<&str>) -> Result<Vec<StaffRow>> {
        const COLUMNS: &str =
            "SELECT id, login, name, department, roles, created_at, disabled_at FROM staff";
        let rows = match department {
            Some(d) => {
                let sql = format!("{COLUMNS} WHERE department = $1 ORDER BY id");
                sqlx::query_as(&sql).bind(d).fetch_all(&self.reader).await?
            }
            None => {
                let sql = format!("{COLUMNS} ORDER BY id");
                sqlx::query_as(&sql).fetch_all(&self.reader).await?
            }
        };
        Ok(rows)
    }

    /// The stored password hash of `login`, for sign-in and its tests.
    pub async fn staff_password_hash(&self, login: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT password_hash FROM staff WHERE login = $1")
            .bind(login)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get("password_hash")).transpose()?)
    }
}
