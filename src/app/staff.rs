//! Staff accounts (SPEC §10 "People", §14): the people who sign in to the department console.
//! An account is made by an administrator with a one-time password, shown once, that must be
//! changed at first sign-in; only its Argon2id hash is stored.

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::Argon2;
use rand::Rng;

use crate::identifiers::Uscc;
use crate::store::{NewStaff, StaffRow};

use super::*;

/// A new account and its one-time password (shown once, never stored).
#[derive(Debug, serde::Serialize)]
pub struct CreatedStaff {
    #[serde(flatten)]
    pub account: StaffRow,
    pub one_time_password: String,
}

impl App {
    /// Creates a staff account for `department` with `roles`; refused unless `actor` administers
    /// that department (a department-less account: the whole service).
    pub async fn create_staff(
        &self,
        actor: &Actor,
        login: &str,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<CreatedStaff> {
        self.audited(actor.entry("staff.create", login), async |entry| {
            self.create_staff_audited(actor, entry, login, name, department, roles)
                .await
        })
        .await
    }

    async fn create_staff_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        login: &str,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<CreatedStaff> {
        let department = department.map(Uscc::parse).transpose()?;
        permissions::check(actor, Action::ManageStaff, department.as_ref())?;
        if roles.contains(&Role::Library) {
            return Err(AppError::BadInput(
                "roles: library is the city library's role for reading the feed, not a person's"
                    .into(),
            ));
        }
        let department = self.checked_grant(department.as_ref().map(Uscc::as_str), roles)?;
        check_login(login)?;
        let name = checked_name(name)?;
        let password = one_time_password();
        let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let roles = role_names.join(",");
        let new = NewStaff {
            login,
            name,
            department: department.as_ref().map(Uscc::as_str),
            roles: &roles,
            password_hash: &hash_password(&password)?,
        };
        let account = self
            .store
            .insert_staff(&new)
            .await?
            .ok_or_else(|| AppError::BadInput(format!("login: {login:?} is taken")))?;
        let mut audit = Entry {
            target: format!("staff {login}"),
            detail: format!(
                "{name}; roles {roles}; department {}",
                new.department.unwrap_or("-")
            ),
            ..entry.clone()
        };
        if let Some(department) = &department {
            audit = audit.of_department(department);
        }
        self.store.append_audit(&audit).await?;
        Ok(CreatedStaff {
            account,
            one_time_password: password,
        })
    }

    /// The accounts `actor` administers: its department's, or every one for a city-wide admin.
    pub async fn staff(&self, actor: &Actor) -> Result<Vec<StaffRow>> {
        let scope = self
            .scope_audited(actor, Action::ManageStaff, "staff.list", "staff")
            .await?;
        Ok(self
            .store
            .staff(scope.department().map(Uscc::as_str))
            .await?)
    }
}

impl App {
    /// Disables an account and ends its sessions; refused unless `actor` administers its
    /// department.
    pub async fn disable_staff(&self, actor: &Actor, login: &str) -> Result<()> {
        self.audited(
            actor.entry("staff.disable", &format!("staff {login}")),
            async |entry| {
                let account = self.administered_account(actor, login).await?;
                let at = time_util::format_rfc3339(time_util::now());
                if !self.store.disable_staff(account.id, &at).await? {
                    return Err(AppError::State(format!(
                        "staff {login} is disabled already"
                    )));
                }
                self.store
                    .append_audit(&of_account(entry, &account))
                    .await?;
                Ok(())
            },
        )
        .await
    }

    /// Gives an account a new one-time password (shown once), unlocks and enables it, clears its
    /// second factor (the person enrols again: a lost phone is the usual reason) and ends its
    /// sessions.
    pub async fn reset_staff(&self, actor: &Actor, login: &str) -> Result<CreatedStaff> {
        self.audited(
            actor.entry("staff.reset", &format!("staff {login}")),
            async |entry| {
                let account = self.administered_account(actor, login).await?;
                let password = one_time_password();
                self.store
                    .reset_staff(account.id, &hash_password(&password)?)
                    .await?;
                self.store
                    .append_audit(&of_account(entry, &account))
                    .await?;
                let account = self
                    .store
                    .staff(account.department.as_deref())
                    .await?
                    .into_iter()
                    .find(|a| a.login == login)
                    .ok_or_else(|| AppError::NotFound(format!("staff {login}")))?;
                Ok(CreatedStaff {
                    account,
                    one_time_password: password,
                })
            },
        )
        .await
    }

    /// The account `login`, if `actor` administers its department; another department's
    /// account is answered as not found.
    async fn administered_account(
        &self,
        actor: &Actor,
        login: &str,
    ) -> Result<crate::store::Credentials> {
        let scope = permissions::scope(actor, Action::ManageStaff)?;
        self.store
            .credentials(login)
            .await?
            .filter(|a| {
                let department = a.department.as_deref().and_then(|d| Uscc::parse(d).ok());
                scope.covers(department.as_ref())
            })
            .ok_or_else(|| AppError::NotFound(format!("staff {login}")))
    }
}

/// The audit record of a change to `account`, in the account's department.
fn of_account(entry: &Entry, account: &crate::store::Credentials) -> Entry {
    Entry {
        department: account.department.clone(),
        ..entry.clone()
    }
}

/// A login: 3–32 characters of lowercase ASCII letters, digits, `.`, `_` and `-`, starting with a
/// letter (what a clerk types on any keyboard, and safe in URLs and logs).
pub(super) fn check_login(login: &str) -> Result<()> {
    let ok = (3..=32).contains(&login.len())
        && login.starts_with(|c: char| c.is_ascii_lowercase())
        && login
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::BadInput(format!(
            "login: {login:?} must be 3 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter"
        )))
    }
}

/// A person's name as shown in the console and the audit trail: 1–50 characters, no control
/// characters, surrounding spaces trimmed.
fn checked_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
        return Err(AppError::BadInput(
            "name: give the person's name, 1 to 50 characters without control characters".into(),
        ));
    }
    Ok(name)
}

/// Characters of a one-time password: no 0/O, 1/l/I, which are misread when it is read out.
const PASSWORD_ALPHABETS: [&[u8]; 3] = [
    b"ABCDEFGHJKLMNPQRSTUVWXYZ",
    b"abcdefghijkmnopqrstuvwxyz",
    b"23456789",
];

/// A one-time password of 16 random characters in groups of four (about 94 bits), with an
/// upper-case letter, a lower-case letter and a digit.
fn one_time_password() -> String {
    let all: Vec<u8> = PASSWORD_ALPHABETS.concat();
    let mut rng = rand::thread_rng();
    loop {
        let chars: Vec<u8> = (0..16).map(|_| all[rng.gen_range(0..all.len())]).collect();
        if PASSWORD_ALPHABETS
            .iter()
            .all(|alphabet| chars.iter().any(|c| alphabet.contains(c)))
        {
            let groups: Vec<&str> = chars
                .chunks(4)
                .map(|g| std::str::from_utf8(g).expect("ASCII"))
                .collect();
            return groups.join("-");
        }
    }
}

/// The PHC string of `password`'s Argon2id hash with a fresh salt (the argon2 crate's defaults:
/// Argon2id v19, 19 MiB, 2 passes, 1 lane, as OWASP recommends).
pub(super) fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AppError::Internal(format!("a password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing a password: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_time_password_has_four_groups_and_every_kind_of_character() {
        for _ in 0..200 {
            let p = one_time_password();
            assert_eq!(p.len(), 19, "{p}");
            assert_eq!(p.split('-').count(), 4, "{p}");
            assert!(p.chars().any(|c| c.is_ascii_uppercase()), "{p}");
            assert!(p.chars().any(|c| c.is_ascii_lowercase()), "{p}");
            assert!(p.chars().any(|c| c.is_ascii_digit()), "{p}");
            assert!(!p.contains(['0', 'O', '1', 'l', 'I']), "{p}");
        }
        assert_ne!(one_time_password(), one_time_password());
    }

    #[test]
    fn logins_are_plain_ascii_of_a_sensible_length() {
        for good in ["wang.fang", "li_04", "zhang-san"] {
            assert!(check_login(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "王芳",
            "Wang",
            "9lives",
            "a b c",
            &"a".repeat(33),
            "x\u{0}y",
        ] {
            assert!(check_login(bad).is_err(), "{bad:?}");
        }
    }
}
