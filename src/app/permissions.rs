//! Who may do what (SPEC §10 "Who sees what"): the one permission check that every operation of
//! the API, the command line and the background jobs asks. Nothing else decides.
//!
//! The model: a role grants actions ([`Role::grants`]); the actor's department bounds where.
//! A department's tokens act on, and see, their own department's licence types only — reads,
//! feed, audit records and batch jobs included. `library` and `admin` without a department act
//! for the whole service (the city library reads every department's feed; such an admin
//! administers everything). Clerks and officers always belong to a department: one without
//! (a token left by an older release, or a hand-edited database) may do nothing.

use super::{Actor, AppError, Result, Role};
use crate::identifiers::Uscc;

/// Something an actor may be permitted to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Issue a new licence (`POST /api/v1/licences`, `issue`).
    IssueLicence,
    /// Amend, renew, suspend, reinstate or revoke a licence.
    ChangeLicence,
    /// Read a licence's full record, versions and PDF.
    ReadLicence,
    /// Read the change feed (unmasked full records).
    ReadFeed,
    /// Read the audit trail.
    ReadAudit,
    /// Convert a batch of stock licences (and submit one over HTTP).
    ConvertBatch,
    /// Read a conversion job's progress and row outcomes.
    ReadBatch,
    /// Create and revoke API tokens.
    ManageTokens,
    /// Rotate and revoke signer keys.
    ManageKeys,
    /// Change the register's deployment facts (the public address in QR codes).
    ManageRegister,
    /// Create staff accounts (people who sign in to the console).
    ManageStaff,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::IssueLicence,
        Action::ChangeLicence,
        Action::ReadLicence,
        Action::ReadFeed,
        Action::ReadAudit,
        Action::ConvertBatch,
        Action::ReadBatch,
        Action::ManageTokens,
        Action::ManageKeys,
        Action::ManageRegister,
        Action::ManageStaff,
    ];

    /// What the action is, as a refusal names it ("… may not {describe}").
    pub fn describe(self) -> &'static str {
        match self {
            Action::IssueLicence => "issue licences",
            Action::ChangeLicence => "amend, renew, suspend, reinstate or revoke licences",
            Action::ReadLicence => "read licences",
            Action::ReadFeed => "read the change feed",
            Action::ReadAudit => "read the audit trail",
            Action::ConvertBatch => "convert batches",
            Action::ReadBatch => "read conversion jobs",
            Action::ManageTokens => "manage API tokens",
            Action::ManageKeys => "manage signer keys",
            Action::ManageRegister => "change the register",
            Action::ManageStaff => "manage staff accounts",
        }
    }
}

impl Role {
    /// The actions this role grants (SPEC §10: clerk issues and converts, officer changes,
    /// library reads the feed, supervisor reads the audit trail, admin everything). Every role
    /// reads the licences it may see.
    pub fn grants(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Clerk => matches!(
                action,
                IssueLicence | ConvertBatch | ReadBatch | ReadLicence
            ),
            Role::Officer => matches!(action, ChangeLicence | ReadLicence),
            Role::Library => matches!(action, ReadFeed | ReadLicence),
            Role::Supervisor => matches!(action, ReadAudit | ReadLicence | ReadBatch),
        }
    }

    /// Whether the role may act for the whole service when its holder has no department.
    fn is_city_wide(self) -> bool {
        matches!(self, Role::Library | Role::Supervisor | Role::Admin)
    }
}

/// Where an actor may perform an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every department, and what belongs to no department (tokens, the whole audit trail).
    Service,
    /// One department's licence types, jobs and audit records only.
    Department(Uscc),
}

impl Scope {
    /// Whether something of `department` (None: of the service as a whole) lies in this scope.
    pub fn covers(&self, department: Option<&Uscc>) -> bool {
        match self {
            Scope::Service => true,
            Scope::Department(own) => department == Some(own),
        }
    }

    /// The department a listing must be narrowed to; None for the whole service.
    pub fn department(&self) -> Option<&Uscc> {
        match self {
            Scope::Service => None,
            Scope::Department(own) => Some(own),
        }
    }
}

/// The widest scope in which `actor` may perform `action`: what a listing (feed, audit trail)
/// is narrowed to. Refused when no role of the actor grants the action anywhere.
pub fn scope(actor: &Actor, action: Action) -> Result<Scope> {
    let granting: Vec<Role> = actor
        .roles
        .iter()
        .copied()
        .filter(|r| r.grants(action))
        .collect();
    if granting.is_empty() {
        return Err(AppError::Forbidden(format!(
            "{} may not {} (no role of it grants that)",
            actor.name,
            action.describe()
        )));
    }
    match &actor.department {
        Some(own) => Ok(Scope::Department(own.clone())),
        None if granting.iter().any(|r| r.is_city_wide()) => Ok(Scope::Service),
        None => Err(AppError::Forbidden(format!(
            "{} may not {}: clerks and officers act only for their department, and it has none",
            actor.name,
            action.describe()
        ))),
    }
}

/// Refuses unless `actor` may perform `action` on something of `department` (None: something
/// of the service as a whole, which only a department-less library or admin reaches).
pub fn check(actor: &Actor, action: Action, department: Option<&Uscc>) -> Result<()> {
    let scope = scope(actor, action)?;
    if scope.covers(department) {
        return Ok(());
    }
    let own = scope.department().map_or("-", Uscc::as_str);
    Err(AppError::Forbidden(match department {
        Some(department) => format!(
            "{} belongs to department {own} and may not act for {department}",
            actor.name
        ),
        None => format!(
            "{} belongs to department {own} and may not {} for the whole service",
            actor.name,
            action.describe()
        ),
    }))
}

impl super::App {
    /// [`scope`] for a listing; a refusal is appended to the audit trail as `audit_action` on
    /// `target`, as every refused attempt is.
    pub(crate) async fn scope_audited(
        &self,
        actor: &Actor,
        action: Action,
        audit_action: &str,
        target: &str,
    ) -> Result<Scope> {
        let scope = scope(actor, action);
        if scope.is_err() {
            self.audit_failure(actor.entry(audit_action, target), &scope)
                .await;
        }
        scope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "11330122MB0000001M";
    const OTHER: &str = "11330122MB0000002Q";

    fn actor(role: Option<Role>, department: Option<&str>) -> Actor {
        Actor {
            name: "t".into(),
            source: "test".into(),
            department: department.map(|d| Uscc::parse(d).unwrap()),
            roles: role.into_iter().collect(),
        }
    }

    /// What each role grants, in the order of [`Action::ALL`] (SPEC §10), written out rather
    /// than derived so that a change to [`Role::grants`] has to change this table too.
    #[rustfmt::skip]
    const GRANTS: [(Option<Role>, &str); 6] = [
        //                   issue change read feed audit convert job tokens keys register staff
        (Some(Role::Clerk),   "X     .      X    .    .     X       X   .      .    .        ."),
        (Some(Role::Officer), ".     X      X    .    .     .       .   .      .    .        ."),
        (Some(Role::Library), ".     .      X    X    .     .       .   .      .    .        ."),
        (Some(Role::Supervisor), ".  .      X    .    X     .       X   .      .    .        ."),
        (Some(Role::Admin),   "X     X      X    X    X     X       X   X      X    X        X"),
        (None,                ".     .      .    .    .     .       .   .      .    .        ."),
    ];

    /// The whole table: role (clerk, officer, library, supervisor, admin, none) × the actor's department
    /// (own, none) × action × the target's department (own, other, the whole service).
    /// An actor of the other department is the mirror image of "own" and needs no row.
    #[test]
    fn the_permission_table_holds_for_every_role_department_and_action() {
        let own = Uscc::parse(OWN).unwrap();
        let other = Uscc::parse(OTHER).unwrap();
        for (role, grants) in GRANTS {
            let grants: Vec<bool> = grants.split_whitespace().map(|g| g == "X").collect();
            assert_eq!(grants.len(), Action::ALL.len());
            for actor_department in [Some(OWN), None] {
                let a = actor(role, actor_department);
                for (action, granted) in Action::ALL.into_iter().zip(grants.iter().copied()) {
                    let city_wide = actor_department.is_none()
                        && matches!(role, Some(Role::Library | Role::Supervisor | Role::Admin));
                    let expect = |target: Option<&Uscc>| {
                        granted
                            && match target {
                                Some(t) if t == &own => actor_department.is_some() || city_wide,
                                _ => city_wide,
                            }
                    };
                    for target in [Some(&own), Some(&other), None] {
                        assert_eq!(
                            check(&a, action, target).is_ok(),
                            expect(target),
                            "{role:?} of {actor_department:?}, {action:?} on {target:?}"
                        );
                    }
                    let expected_scope = match (granted, actor_department, city_wide) {
                        (false, _, _) => None,
                        (true, Some(_), _) => Some(Scope::Department(own.clone())),
                        (true, None, true) => Some(Scope::Service),
                        (true, None, false) => None,
                    };
                    assert_eq!(
                        scope(&a, action).ok(),
                        expected_scope,
                        "{role:?} of {actor_department:?}, {action:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_actor_the_departments_and_what_was_refused() {
        let clerk = actor(Some(Role::Clerk), Some(OWN));
        let other = Uscc::parse(OTHER).unwrap();
        let refused = check(&clerk, Action::IssueLicence, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(OWN) && refused.contains(OTHER),
            "{refused}"
        );
        let refused = check(&clerk, Action::ChangeLicence, None)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("may not amend"), "{refused}");
        let orphan = actor(Some(Role::Officer), None);
        let refused = check(&orphan, Action::ChangeLicence, Some(&other))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("only for their department"), "{refused}");
    }
}
