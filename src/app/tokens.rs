//! API tokens and the audit trail.

use crate::audit::Entry;
use crate::identifiers::Uscc;

use super::*;

impl App {
    /// Creates an API token for a department with roles; returns its id and the token itself,
    /// which is shown once and stored only as a hash.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<(i64, String)> {
        self.audited(actor.entry("token.create", name), async |entry| {
            self.create_token_audited(actor, entry, name, department, roles)
                .await
        })
        .await
    }

    async fn create_token_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<(i64, String)> {
        permissions::check(actor, Action::ManageTokens, None)?;
        let department = self.checked_grant(department, roles)?;
        let secret: [u8; 32] = rand::random();
        let token = format!("elt_{}", data_encoding::BASE64URL_NOPAD.encode(&secret));
        let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let id = self
            .store
            .insert_token(
                name,
                department.as_ref().map(Uscc::as_str),
                &role_names.join(","),
                &crate::hash::sha256_hex(token.as_bytes()),
            )
            .await?;
        let mut audit = Entry {
            target: format!("token {id}"),
            detail: format!(
                "{name}; roles {}; department {}",
                role_names.join(","),
                department.as_ref().map_or("-", Uscc::as_str)
            ),
            ..entry.clone()
        };
        if let Some(department) = &department {
            audit = audit.of_department(department);
        }
        self.store.append_audit(&audit).await?;
        Ok((id, token))
    }

    /// The department and roles a token or a staff account is given, checked (SPEC §10): the
    /// department issues a licence type of the directory, there is a role, clerks and officers
    /// belong to a department, and the library role to none.
    pub(super) fn checked_grant(
        &self,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<Option<Uscc>> {
        let department = department.map(Uscc::parse).transpose()?;
        if let Some(d) = &department {
            if !self.directory.issuers().iter().any(|i| &i.uscc == d) {
                return Err(AppError::BadInput(format!(
                    "department: {d} issues no licence type of the directory"
                )));
            }
        }
        if roles.is_empty() {
            return Err(AppError::BadInput("roles: give at least one role".into()));
        }
        if department.is_none()
            && roles
                .iter()
                .any(|r| matches!(r, Role::Clerk | Role::Officer))
        {
            return Err(AppError::BadInput(
                "department: clerks and officers belong to a department".into(),
            ));
        }
        // SPEC §10: the library role belongs to the city library, which has no department. A
        // department's own reading is done with its clerk, officer or admin tokens.
        if department.is_some() && roles.contains(&Role::Library) {
            return Err(AppError::BadInput(
                "department: a library token belongs to the city library, which has no \
                 department; leave the department out"
                    .into(),
            ));
        }
        Ok(department)
    }

    /// The tokens `actor` administers: its department's, or every one for a city-wide admin.
    pub async fn tokens(&self, actor: &Actor) -> Result<Vec<crate::store::TokenListing>> {
        let scope = self
            .scope_audited(actor, Action::ManageTokens, "token.list", "tokens")
            .await?;
        Ok(self
            .store
            .tokens(scope.department().map(Uscc::as_str))
            .await?)
    }

    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<()> {
        let entry = actor.entry("token.revoke", &format!("token {id}"));
        let result = async {
            permissions::check(actor, Action::ManageTokens, None)?;
            if !self.store.revoke_token(id).await? {
                return Err(AppError::NotFound(format!("active token {id}")));
            }
            self.store.append_audit(&entry).await?;
            Ok(())
        }
        .await;
        self.audit_failure(entry, &result).await;
        result
    }

    /// The actor a bearer token stands for, or None for an unknown or revoked token.
    pub async fn actor_for_token(&self, token: &str, source: &str) -> Result<Option<Actor>> {
        let Some(row) = self
            .store
            .active_token(&crate::hash::sha256_hex(token.as_bytes()))
            .await?
        else {
            return Ok(None);
        };
        let department = row
            .department
            .as_deref()
            .map(Uscc::parse)
            .transpose()
            .map_err(|e| AppError::Config(format!("token {}: {e}", row.id)))?;
        Ok(Some(Actor {
            name: format!("token:{}:{}", row.id, row.name),
            source: source.to_string(),
            department,
            roles: row.roles.split(',').filter_map(Role::parse).collect(),
        }))
    }

    /// Records a refused request that never reached an operation (no or unknown token).
    pub async fn audit_refusal(&self, source: &str, action: &str, target: &str, reason: &str) {
        let entry = Entry {
            outcome: "refused: unauthenticated".into(),
            detail: reason.to_string(),
            ..Entry::new("anonymous", source, action, target)
        };
        self.append_audit_or_hold(entry).await;
    }

    /// Appends an audit record on its own; when the store refuses it, the record is held and
    /// appended once writes work again (see [`super::health`]), and the service is unready.
    /// While records are held, a new one joins them, so the trail keeps their order.
    pub(crate) async fn append_audit_or_hold(&self, entry: Entry) {
        if self.write_health.has_held() {
            self.write_health.hold(entry);
            self.flush_held_audit().await;
            return;
        }
        match self.store.append_audit(&entry).await {
            Ok(()) => self.write_health.write_succeeded(),
            Err(e) => {
                tracing::error!(error = %e, action = entry.action, "could not append an audit record: held");
                self.write_health
                    .write_failed(&super::health::public_cause(&e));
                self.write_health.hold(entry);
            }
        }
    }

    /// Appends the audit records held while writes failed, if any and if no other flush is
    /// running or failed within the last second; true when none is left.
    pub async fn flush_held_audit(&self) -> bool {
        self.flush_held_audit_if(false).await
    }

    /// The same right after a write succeeded: the store takes writes, so try at once.
    pub(crate) async fn flush_held_audit_after_a_write(&self) -> bool {
        self.flush_held_audit_if(true).await
    }

    async fn flush_held_audit_if(&self, a_write_just_worked: bool) -> bool {
        if !self.write_health.has_held() {
            return true;
        }
        match self.write_health.flush_turn(a_write_just_worked) {
            Some(_turn) => self.append_held_audit().await,
            None => false,
        }
    }

    /// Appends every held record now, in order, in one transaction; true when it worked.
    async fn append_held_audit(&self) -> bool {
        let (held, dropped) = self.write_health.take_held();
        if held.is_empty() && dropped == 0 {
            return true;
        }
        let mut records = held.clone();
        if dropped > 0 {
            records.push(super::health::dropped_note(dropped));
        }
        match self.store.append_audit_all(&records).await {
            Ok(()) => {
                tracing::warn!(
                    records = records.len(),
                    "appended the audit records held while writes failed"
                );
                self.write_health.write_succeeded();
                true
            }
            Err(e) => {
                self.write_health.give_back(held, dropped);
                self.write_health
                    .write_failed(&super::health::public_cause(&e));
                false
            }
        }
    }

    /// Ends this process's use of the store: audit records still held are appended if the store
    /// takes them now, else written to the log, the last place left; then the pools close.
    pub async fn close(&self) {
        let _turn = self.write_health.last_flush_turn().await;
        if !self.append_held_audit().await {
            for entry in self.write_health.take_held().0 {
                tracing::error!(
                    actor = entry.actor,
                    source = entry.source,
                    action = entry.action,
                    target = entry.target,
                    outcome = entry.outcome,
                    detail = entry.detail,
                    "audit record lost at exit: the store refused it"
                );
            }
        }
        self.store.close().await;
    }

    /// Appends the audit record of a failed attempt: `refused` when authorisation said no.
    pub(crate) async fn audit_failure<T>(&self, mut entry: Entry, result: &Result<T>) {
        let Err(error) = result else { return };
        entry.outcome = match error {
            AppError::Forbidden(_) => format!("refused: {}", error.code()),
            _ => format!("failed: {}", error.code()),
        };
        entry.detail = error.to_string().chars().take(500).collect();
        if let AppError::Store(cause @ (StoreError::Full | StoreError::Database(_))) = error {
            self.write_health
                .write_failed(&super::health::public_cause(cause));
        }
        self.append_audit_or_hold(entry).await;
    }

    pub async fn audit_records(
        &self,
        actor: &Actor,
        filter: &crate::store::AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::Record>> {
        let scope = self
            .scope_audited(actor, Action::ReadAudit, "audit.read", "audit")
            .await?;
        Ok(self
            .store
            .audit_records(filter, scope.department(), after, limit.clamp(1, 1000))
            .await?)
    }

    /// Checks the whole audit trail's hash chain (SPEC §10), for whoever may read the trail:
    /// the chain links every department's records, so it is checked whole.
    pub async fn verify_audit_chain(&self, actor: &Actor) -> Result<crate::audit::ChainReport> {
        self.scope_audited(actor, Action::ReadAudit, "audit.verify", "audit")
            .await?;
        Ok(self.store.verify_audit().await?)
    }
}
