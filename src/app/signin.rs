//! Signing in to the department console (SPEC §10 "People", §14; 等保三级): a password checked
//! against its Argon2id hash, a TOTP code (RFC 6238) for accounts that enrolled one, lockout after
//! repeated failures, sessions that end when idle, and an audit record of every sign-in, failure,
//! lockout and sign-out.
//!
//! A sign-in moves through stages: an account with a one-time password must first choose its
//! own; an officer or admin without a second factor must then enrol one; only then does the
//! session act, as an [`Actor`] the one permission check judges like a token's holder.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use totp_rs::{Algorithm, TOTP};

use crate::identifiers::Uscc;
use crate::store::{Credentials, NewSession, SessionRow};

use super::*;

/// Failures in a row that lock an account.
pub const LOCK_AFTER_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_SECONDS: i64 = 15 * 60;
/// How often the idle clock of a session in use is written (not on every request).
const TOUCH_EVERY_SECONDS: i64 = 15;
/// The issuer authenticator apps show beside the account.
const TOTP_ISSUER: &str = "elicence";

/// How far a session has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Signed in with a one-time password, which must be changed before anything else.
    ChangePassword,
    /// An officer or admin without a second factor, who must enrol one before anything else.
    EnrolTotp,
    /// Signed in: the session acts.
    SignedIn,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::ChangePassword => "change_password",
            Stage::EnrolTotp => "enrol_totp",
            Stage::SignedIn => "signed_in",
        }
    }

    fn parse(s: &str) -> Stage {
        match s {
            "change_password" => Stage::ChangePassword,
            "enrol_totp" => Stage::EnrolTotp,
            "signed_in" => Stage::SignedIn,
            // An unknown stage (a newer release's) is never taken for signed in.
            _ => Stage::ChangePassword,
        }
    }
}

/// A console session of a signed-in person (its `Debug` leaves out the tokens and secrets).
#[derive(Clone)]
pub struct ConsoleSession {
    pub token_hash: String,
    pub stage: Stage,
    /// The token every form of this session carries.
    pub csrf_token: String,
    pub staff_id: i64,
    pub login: String,
    pub name: String,
    /// Who the session acts as (its source: the client address of this request).
    pub actor: Actor,
    /// The TOTP secret (base32) being enrolled, shown until it is confirmed.
    pending_totp_secret: Option<String>,
}

/// Why a sign-in was refused. An unknown login, a disabled account, a wrong password and a
/// missing, wrong or reused TOTP code are told the same words, so that neither logins nor
/// passwords can be confirmed one by one; the audit trail tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInRefusal {
    WrongCredentials,
    /// Locked after repeated failures, until this time (unix seconds).
    Locked {
        until: i64,
    },
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("stage", &self.stage)
            .field("login", &self.login)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

/// The outcome of a sign-in: a session and its cookie token (shown once, stored only as a
/// hash), or a refusal.
pub enum SignIn {
    Started {
        token: String,
        session: Box<ConsoleSession>,
    },
    Refused(SignInRefusal),
}

/// What the person sees to enrol a second factor.
pub struct TotpEnrolment {
    /// The `otpauth://` URL the QR code carries.
    pub url: String,
    /// The secret in base32, for typing into an app that cannot scan.
    pub secret: String,
}

impl App {
    /// Signs `login` in with `password` and, for an account with a second factor, `code`.
    pub async fn sign_in(
        &self,
        login: &str,
        password: &str,
        code: Option<&str>,
        source: &str,
    ) -> Result<SignIn> {
        let login = login.trim();
        let now = time_util::now().unix_timestamp();
        // Whoever types an unknown login is nobody the service knows.
        let audit_as = |outcome: &str| Entry {
            outcome: outcome.to_string(),
            ..Entry::new(
                "anonymous",
                source,
                "staff.sign_in",
                &format!("staff {}", clip(login)),
            )
        };
        // A login no account could have (a NUL, a page of text) is not looked up at all.
        let account = match super::staff::check_login(login) {
            Ok(()) => self.store.credentials(login).await?,
            Err(_) => None,
        };
        let Some(account) = account.filter(|a| a.disabled_at.is_none()) else {
            // The same work as a real check, so that the time taken does not tell who exists.
            verify_password(password, dummy_hash()).await;
            self.append_audit_or_hold(audit_as("refused: unknown login or disabled account"))
                .await;
            return Ok(SignIn::Refused(SignInRefusal::WrongCredentials));
        };
        let entry = staff_entry(&account, source, "staff.sign_in");
        let Some(attempt) = self.claim_attempt(&account, now).await? else {
            return self.refuse_locked(&account, entry, now).await;
        };
        let wrong = if !verify_password(password, &account.password_hash).await {
            Some("wrong password")
        } else if let Some(secret) = &account.totp_secret {
            match code.and_then(|c| matching_step(secret, &account.login, c, now)) {
                Some(step) if self.store.use_totp_step(account.id, step).await? => None,
                _ => Some("wrong or reused TOTP code"),
            }
        } else {
            None
        };
        if let Some(what) = wrong {
            return self
                .refuse_attempt(&account, entry, what, attempt, now)
                .await;
        }
        // The idle sessions of everyone end now and then: at sign-in is often enough.
        let idle = self.settings.console_idle_minutes as i64 * 60;
        self.store.delete_idle_sessions(now - idle).await?;
        self.store.clear_failed_sign_ins(account.id).await?;
        let stage = if account.must_change_password != 0 {
            Stage::ChangePassword
        } else if needs_second_factor(&account.roles) && account.totp_secret.is_none() {
            Stage::EnrolTotp
        } else {
            Stage::SignedIn
        };
        let token = random_token("els_");
        let token_hash = crate::hash::sha256_hex(token.as_bytes());
        let csrf_token = random_token("");
        self.store
            .insert_session(&NewSession {
                token_hash: &token_hash,
                staff_id: account.id,
                stage: stage.as_str(),
                csrf_token: &csrf_token,
                source,
                now,
            })
            .await?;
        self.store.append_audit(&entry).await?;
        let session = self
            .console_session_of(self.store.session(&token_hash).await?, source)?
            .ok_or_else(|| AppError::Internal("a session just stored is gone".into()))?;
        Ok(SignIn::Started {
            token,
            session: Box::new(session),
        })
    }

    /// Counts an attempt on `account` before its password is checked; None while it is locked.
    async fn claim_attempt(&self, account: &Credentials, now: i64) -> Result<Option<i64>> {
        Ok(self
            .store
            .claim_sign_in_attempt(account.id, now, LOCK_AFTER_FAILURES, now + LOCK_SECONDS)
            .await?)
    }

    async fn refuse_locked(&self, account: &Credentials, entry: Entry, now: i64) -> Result<SignIn> {
        let until = self
            .store
            .credentials_by_id(account.id)
            .await?
            .and_then(|a| a.locked_until)
            .unwrap_or(now + LOCK_SECONDS);
        self.append_audit_or_hold(Entry {
            outcome: "refused: account locked".into(),
            ..entry
        })
        .await;
        Ok(SignIn::Refused(SignInRefusal::Locked { until }))
    }

    /// Refuses attempt number `attempt` (`what` was wrong), audited; the last one allowed locks
    /// the account ([`App::lock_if_last`]).
    async fn refuse_attempt(
        &self,
        account: &Credentials,
        entry: Entry,
        what: &str,
        attempt: i64,
        now: i64,
    ) -> Result<SignIn> {
        self.append_audit_or_hold(Entry {
            outcome: format!("refused: {what}"),
            detail: format!("failure {attempt} of {LOCK_AFTER_FAILURES}"),
            ..entry.clone()
        })
        .await;
        Ok(SignIn::Refused(
            match self.lock_if_last(account, entry, attempt, now).await? {
                Some(until) => SignInRefusal::Locked { until },
                None => SignInRefusal::WrongCredentials,
            },
        ))
    }

    /// After the last failed attempt allowed, the account is locked (the claim set the time) and
    /// its sessions end; the lock is audited. Returns until when, if it was the last.
    async fn lock_if_last(
        &self,
        account: &Credentials,
        entry: Entry,
        attempt: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        if attempt < LOCK_AFTER_FAILURES {
            return Ok(None);
        }
        let until = now + LOCK_SECONDS;
        self.store.delete_sessions_of(account.id, None).await?;
        self.append_audit_or_hold(Entry {
            action: "staff.lock".into(),
            detail: format!(
                "{LOCK_AFTER_FAILURES} failed attempts: locked until {}",
                time_util::format_rfc3339(time_util::from_unix(until))
            ),
            ..entry
        })
        .await;
        Ok(Some(until))
    }

    /// The session whose cookie token is `token`, seen from `source`; None when there is none,
    /// its account is disabled, or it has been idle too long (it ends then, and that is audited).
    pub async fn console_session(
        &self,
        token: &str,
        source: &str,
    ) -> Result<Option<ConsoleSession>> {
        let token_hash = crate::hash::sha256_hex(token.as_bytes());
        let Some(row) = self.store.session(&token_hash).await? else {
            return Ok(None);
        };
        let now = time_util::now().unix_timestamp();
        let idle = self.settings.console_idle_minutes as i64 * 60;
        if row.disabled_at.is_some() || now - row.last_seen > idle {
            self.store.delete_session(&token_hash).await?;
            let mut entry = Entry::new(
                &staff_actor_name(&row.login, &row.name),
                source,
                "staff.session_end",
                &format!("staff {}", row.login),
            );
            entry.department = row.department.clone();
            entry.outcome = if row.disabled_at.is_some() {
                "refused: account disabled".into()
            } else {
                format!("refused: idle for more than {} minutes", idle / 60)
            };
            self.append_audit_or_hold(entry).await;
            return Ok(None);
        }
        if now - row.last_seen >= TOUCH_EVERY_SECONDS {
            self.store.touch_session(&token_hash, now).await?;
        }
        self.console_session_of(Some(row), source)
    }

    fn console_session_of(
        &self,
        row: Option<SessionRow>,
        source: &str,
    ) -> Result<Option<ConsoleSession>> {
        let Some(row) = row else { return Ok(None) };
        let department = row
            .department
            .as_deref()
            .map(Uscc::parse)
            .transpose()
            .map_err(|e| AppError::Config(format!("staff {}: {e}", row.login)))?;
        Ok(Some(ConsoleSession {
            token_hash: row.token_hash,
            stage: Stage::parse(&row.stage),
            csrf_token: row.csrf_token,
            staff_id: row.staff_id,
            actor: Actor {
                name: staff_actor_name(&row.login, &row.name),
                source: source.to_string(),
                department,
                roles: row.roles.split(',').filter_map(Role::parse).collect(),
            },
            login: row.login,
            name: row.name,
            pending_totp_secret: row.pending_totp_secret,
        }))
    }

    /// Ends a session (signing out), audited.
    pub async fn sign_out(&self, session: &ConsoleSession) -> Result<()> {
        self.store.delete_session(&session.token_hash).await?;
        self.store
            .append_audit(
                &session
                    .actor
                    .entry("staff.sign_out", &format!("staff {}", session.login)),
            )
            .await?;
        Ok(())
    }

    /// Replaces the session's password with one the person chose, which must meet the policy
    /// ([`password_problem`]); the session moves on to enrolment or to being signed in.
    pub async fn change_password(
        &self,
        session: &ConsoleSession,
        current: &str,
        new: &str,
        again: &str,
    ) -> Result<Stage> {
        let entry = session
            .actor
            .entry("staff.change_password", &format!("staff {}", session.login));
        self.audited(entry, async |entry| {
            let account = self
                .store
                .credentials_by_id(session.staff_id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("staff {}", session.login)))?;
            if !verify_password(current, &account.password_hash).await {
                return Err(AppError::Forbidden(
                    "current password: it is not right".into(),
                ));
            }
            if new != again {
                return Err(AppError::BadInput(
                    "new password: the two entries differ".into(),
                ));
            }
            if let Some(problem) = password_problem(new, &session.login) {
                return Err(AppError::BadInput(format!("new password: {problem}")));
            }
            if new == current {
                return Err(AppError::BadInput(
                    "new password: it must differ from the current one".into(),
                ));
            }
            let hash = super::staff::hash_password(new)?;
            self.store.set_password(account.id, &hash, false).await?;
            // Whoever else was signed in as this person used the old password: they end.
            self.store
                .delete_sessions_of(account.id, Some(&session.token_hash))
                .await?;
            let next = if needs_second_factor(&account.roles) && account.totp_secret.is_none() {
                Stage::EnrolTotp
            } else {
                Stage::SignedIn
            };
            self.store
                .set_session_stage(&session.token_hash, next.as_str(), None)
                .await?;
            self.store.append_audit(entry).await?;
            Ok(next)
        })
        .await
    }

    /// The second factor being enrolled in this session: made on first asking, the same until
    /// it is confirmed.
    pub async fn totp_enrolment(&self, session: &ConsoleSession) -> Result<TotpEnrolment> {
        // Only a sign-in that has yet to enrol may: a signed-in session replacing the second
        // factor would let a stolen cookie bind it to another phone (an admin's reset does it).
        if session.stage != Stage::EnrolTotp {
            return Err(AppError::State(
                "the second factor is enrolled once, at first sign-in; an administrator's reset \
                 enrols it again"
                    .into(),
            ));
        }
        let secret = match &session.pending_totp_secret {
            Some(secret) => secret.clone(),
            None => {
                let secret = data_encoding::BASE32_NOPAD.encode(&rand::random::<[u8; 20]>());
                self.store
                    .set_session_stage(
                        &session.token_hash,
                        Stage::EnrolTotp.as_str(),
                        Some(&secret),
                    )
                    .await?;
                secret
            }
        };
        let totp = totp_of(&secret, &session.login)?;
        Ok(TotpEnrolment {
            url: totp.get_url(),
            secret,
        })
    }

    /// Confirms the second factor being enrolled with a code from the person's app; the session
    /// is then signed in.
    pub async fn confirm_totp(&self, session: &ConsoleSession, code: &str) -> Result<()> {
        let entry = session
            .actor
            .entry("staff.enrol_totp", &format!("staff {}", session.login));
        self.audited(entry, async |entry| {
            let (Stage::EnrolTotp, Some(secret)) = (session.stage, &session.pending_totp_secret)
            else {
                return Err(AppError::State(
                    "there is no second factor being enrolled: open the enrolment page again"
                        .into(),
                ));
            };
            let now = time_util::now().unix_timestamp();
            let Some(step) = matching_step(secret, &session.login, code, now) else {
                return Err(AppError::BadInput(
                    "code: it does not match; check the app's clock and type the current code"
                        .into(),
                ));
            };
            self.store
                .set_totp_secret(session.staff_id, Some(secret), Some(step))
                .await?;
            self.store
                .set_session_stage(&session.token_hash, Stage::SignedIn.as_str(), None)
                .await?;
            self.store.append_audit(entry).await?;
            Ok(())
        })
        .await
    }
}

/// Why `password` is not acceptable for `login`, or None: at least 12 characters (at most
/// 128), three of the four kinds (upper-case, lower-case, digits, others), and not the login.
pub fn password_problem(password: &str, login: &str) -> Option<&'static str> {
    let length = password.chars().count();
    if length < 12 {
        return Some("it must have at least 12 characters");
    }
    if length > 128 {
        return Some("it must have at most 128 characters");
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_ascii_alphanumeric()),
    ];
    if kinds.iter().filter(|&&k| k).count() < 3 {
        return Some(
            "it must mix three of: upper-case letters, lower-case letters, digits, other characters",
        );
    }
    if password.to_lowercase().contains(login) {
        return Some("it must not contain the login");
    }
    None
}

/// Officers and admins act on licences and on the service: they sign in with a second factor.
fn needs_second_factor(roles: &str) -> bool {
    roles
        .split(',')
        .filter_map(Role::parse)
        .any(|r| matches!(r, Role::Officer | Role::Admin))
}

/// How the audit trail and the events name a staff member: `staff:{login}:{name}`.
fn staff_actor_name(login: &str, name: &str) -> String {
    format!("staff:{login}:{name}")
}

/// The login and name of a recorded actor that is a staff member (see [`staff_actor_name`]).
pub fn staff_of_actor(recorded: &str) -> Option<(&str, &str)> {
    recorded.strip_prefix("staff:")?.split_once(':')
}

fn staff_entry(account: &Credentials, source: &str, action: &str) -> Entry {
    Entry {
        department: account.department.clone(),
        ..Entry::new(
            &staff_actor_name(&account.login, &account.name),
            source,
            action,
            &format!("staff {}", account.login),
        )
    }
}

/// What a client typed as a login, cut short for the audit trail.
fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// `prefix` and 32 random bytes in URL-safe base64.
fn random_token(prefix: &str) -> String {
    let secret: [u8; 32] = rand::random();
    format!("{prefix}{}", data_encoding::BASE64URL_NOPAD.encode(&secret))
}

/// Whether `password` matches the PHC `hash`, checked off the async threads (Argon2 takes tens
/// of milliseconds of one core by design).
async fn verify_password(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_string(), hash.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// The hash an unknown login is checked against, so that it costs what a known one does.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        super::staff::hash_password("no such account, only the time it takes").unwrap_or_default()
    })
}

fn totp_of(secret: &str, login: &str) -> Result<TOTP> {
    let bytes = data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .map_err(|e| AppError::Internal(format!("a stored TOTP secret: {e}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some(TOTP_ISSUER.to_string()),
        login.to_string(),
    )
    .map_err(|e| AppError::Internal(format!("a TOTP secret: {e}")))
}

/// The time step (of 30 s) whose code `code` is, within one step of `now` either way (RFC 6238
/// §5.2's allowance for clocks and typing), or None.
fn matching_step(secret: &str, login: &str, code: &str, now: i64) -> Option<i64> {
    let totp = totp_of(secret, login).ok()?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let now = u64::try_from(now).ok()?;
    let current = now / 30;
    (current.saturating_sub(1)..=current + 1)
        .find(|step| crate::hash::same_secret(totp.generate(step * 30).as_bytes(), code.as_bytes()))
        .and_then(|step| i64::try_from(step).ok())
}

/// The code of a base32 TOTP secret at `unix` seconds, for tests that play the person's app.
pub fn totp_code_at(secret: &str, login: &str, unix: i64) -> Result<String> {
    Ok(totp_of(secret, login)?.generate(unix.max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy_names_what_is_missing() {
        assert_eq!(
            password_problem("Short1!", "wang"),
            Some("it must have at least 12 characters")
        );
        assert!(password_problem("alllowercaseletters", "wang")
            .unwrap()
            .contains("three"));
        assert!(password_problem("Wang.fang.2026", "wang.fang")
            .unwrap()
            .contains("login"));
        assert_eq!(password_problem("Correct-Horse-7", "wang.fang"), None);
        assert_eq!(password_problem("长城长城长城长城Abc1", "wang.fang"), None);
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = data_encoding::BASE32_NOPAD.encode(&[7u8; 20]);
        let totp = totp_of(&secret, "li.si").unwrap();
        let now = 1_800_000_000;
        let code = totp.generate(now as u64);
        assert_eq!(matching_step(&secret, "li.si", &code, now), Some(now / 30));
        assert_eq!(
            matching_step(&secret, "li.si", &code, now + 30),
            Some(now / 30)
        );
        assert_eq!(matching_step(&secret, "li.si", &code, now + 90), None);
        assert_eq!(matching_step(&secret, "li.si", "12345", now), None);
        assert_eq!(matching_step(&secret, "li.si", "", now), None);
    }

    #[test]
    fn rfc_6238_known_answer() {
        // RFC 6238 Appendix B, SHA-1, T = 59: 94287082 (8 digits); 6 digits are its last six.
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        let totp = totp_of(&secret, "test").unwrap();
        assert_eq!(totp.generate(59), "287082");
        assert_eq!(totp.generate(1111111109), "081804");
    }
}
