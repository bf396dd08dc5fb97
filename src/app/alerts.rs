//! The alerts as the console reads them (电子监察, SPEC §15): the audit records the alert watcher
//! (`crate::alerts`) appends with action `alert.{rule}`, for those who read the audit trail and
//! within their department, like the trail itself.

use super::*;
use crate::audit::Record;

impl App {
    /// Alert records newest first, with seq below `before` (0: from the newest), at most `limit`.
    pub async fn alert_records(
        &self,
        actor: &Actor,
        before: i64,
        limit: i64,
    ) -> Result<Vec<Record>> {
        let scope = self
            .scope_audited(actor, Action::ReadAudit, "audit.read", "alerts")
            .await?;
        if before < 0 {
            return Err(AppError::BadInput("before: must be 0 or a seq".into()));
        }
        Ok(self
            .store
            .alert_records(scope.department(), before, limit.clamp(1, 1000))
            .await?)
    }

    /// How many alerts were appended since `since`, of those `actor` may read.
    pub async fn alerts_since(&self, actor: &Actor, since: time::OffsetDateTime) -> Result<i64> {
        let scope = self
            .scope_audited(actor, Action::ReadAudit, "audit.read", "alerts")
            .await?;
        let from = self
            .store
            .first_audit_seq_since(&time_util::format_rfc3339(since))
            .await?;
        Ok(self.store.count_alerts(scope.department(), from).await?)
    }
}
