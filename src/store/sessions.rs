//! Console sign-in as stored (SPEC §10 "People", §14): what an account's sign-in needs (its
//! password hash, TOTP secret and lockout counters) and the sessions of signed-in people, each
//! kept only as the SHA-256 of its cookie token.

use sqlx::Row;

use super::{Result, Store};

/// What signing in as an account checks. No `Debug`: it holds the password hash and the TOTP
/// secret, which must not reach a log.
#[derive(Clone, sqlx::FromRow)]
pub struct Credentials {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub department: Option<String>,
    pub roles: String,
    pub password_hash: String,
    pub must_change_password: i64,
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    pub failed_sign_ins: i64,
    /// Unix seconds.
    pub locked_until: Option<i64>,
    pub disabled_at: Option<String>,
}

/// A session and the account it belongs to (no `Debug`: it holds the CSRF token and secrets).
#[derive(Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub token_hash: String,
    pub stage: String,
    pub csrf_token: String,
    pub pending_totp_secret: Option<String>,
    /// Unix seconds.
    pub last_seen: i64,
    pub staff_id: i64,
    pub login: String,
    pub name: String,
    pub department: Option<String>,
    pub roles: String,
    pub totp_secret: Option<String>,
    pub disabled_at: Option<String>,
}

/// A session about to be stored.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub staff_id: i64,
    pub stage: &'a str,
    pub csrf_token: &'a str,
    pub source: &'a str,
    /// Unix seconds.
    pub now: i64,
}

const CREDENTIALS: &str = "SELECT id, login, name, department, roles, password_hash,
    must_change_password, totp_secret, totp_last_step, failed_sign_ins, locked_until, disabled_at
    FROM staff";

impl Store {
    pub async fn credentials(&self, login: &str) -> Result<Option<Credentials>> {
        let sql = format!("{CREDENTIALS} WHERE login = $1");
        Ok(sqlx::query_as(&sql)
            .bind(login)
            .fetch_optional(&self.writer)
            .await?)
    }

    pub async fn credentials_by_id(&self, id: i64) -> Result<Option<Credentials>> {
        let sql = format!("{CREDENTIALS} WHERE id = $1");
        Ok(sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Counts a sign-in attempt before its password is checked, so that attempts sent at once
    /// are counted at once: None while the account is locked (nothing is counted), else the
    /// attempts since the last success, this one included. The `lock_after`th locks the account
    /// until `lock_until`; a success clears the count and the lock
    /// ([`Store::clear_failed_sign_ins`]). A lock that has run out starts the count again.
    pub async fn claim_sign_in_attempt(
        &self,
        id: i64,
        now: i64,
        lock_after: i64,
        lock_until: i64,
    ) -> Result<Option<i64>> {
        // SET expressions read the row as it was: `counted` is this attempt's number.
        const COUNTED: &str =
            "CASE WHEN locked_until IS NOT NULL THEN 1 ELSE failed_sign_ins + 1 END";
        let sql = format!(
            "UPDATE staff SET failed_sign_ins = {COUNTED},
                    locked_until = CASE WHEN {COUNTED} >= $3 THEN $4 ELSE NULL END
             WHERE id = $1 AND (locked_until IS NULL OR locked_until <= $2)
             RETURNING failed_sign_ins"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(now)
            .bind(lock_after)
            .bind(lock_until)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|r| r.try_get("failed_sign_ins")).transpose()?)
    }

    /// Clears the attempt count and the lock after a successful sign-in.
    pub async fn clear_failed_sign_ins(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE staff SET failed_sign_ins = 0, locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Records that the TOTP code of time step `step` was used; false when that step or a later
    /// one was used already (a replayed code: RFC 6238 §5.2 accepts a code only once).
    pub async fn use_totp_step(&self, id: i64, step: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE staff SET totp_last_step = $2
             WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(id)
        .bind(step)
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1)
    }

    /// Sets a new password hash; `must_change` marks it one-time (a reset), else it is the
    /// person's own.
    pub async fn set_password(
        &self,
        id: i64,
        password_hash: &str,
        must_change: bool,
    ) -> Result<()> {
        sqlx::query("UPDATE staff SET password_hash = $2, must_change_password = $3 WHERE id = $1")
            .bind(id)
            .bind(password_hash)
            .bind(i64::from(must_change))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Sets (or, with None, clears) the account's TOTP secret.
    pub async fn set_totp_secret(
        &self,
        id: i64,
        secret: Option<&str>,
        step: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE staff SET totp_secret = $2, totp_last_step = $3 WHERE id = $1")
            .bind(id)
            .bind(secret)
            .bind(step)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Disables an account and ends its sessions; false when there is no such enabled account.
    pub async fn disable_staff(&self, id: i64, at: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let disabled =
            sqlx::query("UPDATE staff SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
        sqlx::query("DELETE FROM console_sessions WHERE staff_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(disabled)
    }

    /// Resets an account to a new one-time password: enabled, unlocked, without its TOTP
    /// secret (the person enrols again), every session ended.
    pub async fn reset_staff(&self, id: i64, password_hash: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE staff SET password_hash = $2, must_change_password = 1, totp_secret = NULL,
                    totp_last_step = NULL, failed_sign_ins = 0, locked_until = NULL,
                    disabled_at = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM console_sessions WHERE staff_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn insert_session(&self, new: &NewSession<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO console_sessions (token_hash, staff_id, stage, csrf_token, source,
                                           created_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(new.token_hash)
        .bind(new.staff_id)
        .bind(new.stage)
        .bind(new.csrf_token)
        .bind(new.source)
        .bind(new.now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The session with this token hash and its account.
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        Ok(sqlx::query_as(
            "SELECT s.token_hash, s.stage, s.csrf_token, s.pending_totp_secret, s.last_seen,
                    s.staff_id, a.login, a.name, a.department, a.roles, a.totp_secret,
                    a.disabled_at
             FROM console_sessions s JOIN staff a ON a.id = s.staff_id
             WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Moves the session's idle clock to `now`.
    pub async fn touch_session(&self, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE console_sessions SET last_seen = $2 WHERE token_hash = $1")
            .bind(token_hash)
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Moves the session to `stage`, with the TOTP secret being enrolled (if any).
    pub async fn set_session_stage(
        &self,
        token_hash: &str,
        stage: &str,
        pending_totp_secret: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE console_sessions SET stage = $2, pending_totp_secret = $3 WHERE token_hash = $1",
        )
        .bind(token_hash)
        .bind(stage)
        .bind(pending_totp_secret)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends a session; false when there was none.
    pub async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE token_hash = $1")
                .bind(token_hash)
                .execute(&self.writer)
                .await?
                .rows_affected()
                == 1,
        )
    }

    /// Ends every session of an account but `keep` (after a password change, or a lock).
    pub async fn delete_sessions_of(&self, staff_id: i64, keep: Option<&str>) -> Result<()> {
        sqlx::query("DELETE FROM console_sessions WHERE staff_id = $1 AND token_hash <> $2")
            .bind(staff_id)
            .bind(keep.unwrap_or(""))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Ends every session idle since before `idle_before` (unix seconds); returns how many.
    pub async fn delete_idle_sessions(&self, idle_before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM console_sessions WHERE last_seen < $1")
                .bind(idle_before)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }
}
