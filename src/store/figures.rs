//! Figures for the console's dashboard (工作台): how many licences of each type stand in each
//! status, and how many expire soon — counted in the database, never by loading licences.

use super::{Result, Store};

/// Licences of one type whose standing is `status` (the last status event's kind, or none).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TypeStatusCount {
    pub type_code: String,
    /// `suspended`, `reinstated`, `revoked`, or None for a licence never suspended or revoked.
    pub last_status: Option<String>,
    pub licences: i64,
}

impl Store {
    /// Licence counts by type and last status event, of `issuer`'s licences (None: every one).
    pub async fn licence_counts(&self, issuer: Option<&str>) -> Result<Vec<TypeStatusCount>> {
        let narrowed = if issuer.is_some() {
            "WHERE l.issuer = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT type_code, last_status, COUNT(*) AS licences FROM (
                SELECT l.type_code AS type_code,
                       (SELECT e.kind FROM events e
                         WHERE e.licence = l.id AND e.kind IN ('suspended', 'reinstated', 'revoked')
                         ORDER BY e.change_no DESC LIMIT 1) AS last_status
                FROM licences l {narrowed}
             ) counted
             GROUP BY type_code, last_status ORDER BY type_code"
        );
        let query = sqlx::query_as(&sql);
        let query = match issuer {
            Some(issuer) => query.bind(issuer),
            None => query,
        };
        Ok(query.fetch_all(&self.reader).await?)
    }

    /// How many licences of `issuer` (None: every one), not revoked, have a latest version whose
    /// validity ends between `from` and `to` (ISO dates, inclusive): those to renew soon.
    pub async fn licences_expiring(
        &self,
        issuer: Option<&str>,
        from: &str,
        to: &str,
    ) -> Result<i64> {
        let narrowed = if issuer.is_some() {
            "AND l.issuer = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT COUNT(*) AS n FROM licences l JOIN versions v ON v.licence = l.id
             WHERE v.version = (SELECT MAX(version) FROM versions WHERE licence = l.id)
               AND v.valid_until >= $1 AND v.valid_until <= $2
               AND NOT EXISTS (SELECT 1 FROM events e WHERE e.licence = l.id AND e.kind = 'revoked')
               {narrowed}"
        );
        let query = sqlx::query_scalar(&sql).bind(from).bind(to);
        let query = match issuer {
            Some(issuer) => query.bind(issuer),
            None => query,
        };
        Ok(query.fetch_one(&self.reader).await?)
    }
}
