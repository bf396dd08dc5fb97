//! The figures of the console's dashboard (工作台): licences by type and status, and what needs
//! attention, within what the actor may read.

use super::*;

/// One licence type's licences by standing.
#[derive(Debug, Clone, Serialize)]
pub struct TypeFigures {
    pub type_code: String,
    pub type_name: String,
    pub active: i64,
    pub suspended: i64,
    pub revoked: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Every licence type in the actor's scope, with zeros for a type with no licences yet.
    pub types: Vec<TypeFigures>,
    /// Licences whose latest version ends within [`EXPIRY_WARNING_DAYS`] days.
    pub expiring_soon: i64,
}

/// How far ahead the dashboard warns of licences running out.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

impl App {
    pub async fn dashboard(&self, actor: &Actor) -> Result<Dashboard> {
        let scope = self
            .scope_audited(actor, Action::ReadLicence, "dashboard.read", "licences")
            .await?;
        let issuer = scope.department().map(Uscc::as_str);
        let counts = self.store.licence_counts(issuer).await?;
        let mut types: Vec<TypeFigures> = self
            .directory
            .types()
            .filter(|t| scope.covers(Some(&t.issuer.uscc)))
            .map(|t| TypeFigures {
                type_code: t.code.to_string(),
                type_name: t.name.clone(),
                active: 0,
                suspended: 0,
                revoked: 0,
            })
            .collect();
        for count in counts {
            let Some(figures) = types.iter_mut().find(|t| t.type_code == count.type_code) else {
                continue;
            };
            match count.last_status.as_deref() {
                Some("suspended") => figures.suspended += count.licences,
                Some("revoked") => figures.revoked += count.licences,
                _ => figures.active += count.licences,
            }
        }
        let today = time_util::today_cst();
        let until = today + time::Duration::days(EXPIRY_WARNING_DAYS);
        let expiring_soon = self
            .store
            .licences_expiring(
                issuer,
                &time_util::format_date(today),
                &time_util::format_date(until),
            )
            .await?;
        Ok(Dashboard {
            types,
            expiring_soon,
        })
    }
}
