//! Licence search (the console's 证照查询, SPEC §14): by number, holder id or identifier exactly,
//! by holder name as a substring, within one department's licences or all of them, newest first.
//!
//! The holder's name lives only inside each version's signed record, which SQL cannot read, so
//! every version's name is also kept in `holder_names` (migration 0012): written with the version
//! in the same transaction, and, for versions stored before that table existed, filled in when
//! the store opens.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::events::parse_kind;
use super::versions::decode_full_record;
use super::{placeholders, Backend, Result, Store};
use crate::identifiers::Uscc;
use crate::licence::Standing;

/// What to look for; each `None` is no condition. Every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct LicenceQuery<'a> {
    /// Only this department's licences (None: every department's).
    pub issuer: Option<&'a Uscc>,
    /// The licence identifier without version (`1.2.156.3005.2.{type}.{issuer}.{serial}`).
    pub licence_id: Option<&'a str>,
    pub number: Option<&'a str>,
    pub holder_id: Option<&'a str>,
    /// A part of the holder's name in any version, in any case.
    pub holder_name: Option<&'a str>,
    pub offset: i64,
    pub limit: i64,
}

/// One licence found.
#[derive(Debug, Clone)]
pub struct LicenceMatch {
    pub licence_id: String,
    pub type_code: String,
    pub number: String,
    /// The holder's name in the latest version.
    pub holder_name: String,
    pub standing: Standing,
    pub created_at: String,
}

/// How many versions' names the store fills in at a time when it opens.
const FILL_CHUNK: i64 = 500;

impl Store {
    /// The licences `query` finds, newest first.
    pub async fn search_licences(&self, query: &LicenceQuery<'_>) -> Result<Vec<LicenceMatch>> {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut add = |condition: &str, value: String| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("${}", values.len())));
        };
        if let Some(issuer) = query.issuer {
            add("l.issuer = ?", issuer.to_string());
        }
        if let Some(id) = query.licence_id {
            add("l.licence_id = ?", id.to_string());
        }
        if let Some(number) = query.number {
            add("l.number = ?", number.to_string());
        }
        if let Some(holder_id) = query.holder_id {
            add("l.holder_id = ?", holder_id.to_string());
        }
        if let Some(name) = query.holder_name {
            // Case-insensitive on both: SQLite's LIKE folds ASCII already, PostgreSQL has ILIKE.
            // One pass over the names (about 20 ms for 100,000 on SQLite), not one per licence.
            let like = match self.backend {
                Backend::Sqlite => "LIKE",
                Backend::Postgres => "ILIKE",
            };
            add(
                &format!(
                    "l.id IN (SELECT h.licence FROM holder_names h WHERE h.name {like} ? ESCAPE '\\')"
                ),
                format!("%{}%", like_escaped(name)),
            );
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let sql = format!(
            "SELECT l.licence_id, l.type_code, l.number, l.created_at,
                (SELECT h.name FROM holder_names h WHERE h.licence = l.id
                  ORDER BY h.version DESC LIMIT 1) AS holder_name,
                (SELECT e.kind FROM events e
                  WHERE e.licence = l.id AND e.kind IN ('suspended', 'reinstated', 'revoked')
                  ORDER BY e.change_no DESC LIMIT 1) AS last_status
             FROM licences l {filter} ORDER BY l.id DESC LIMIT {} OFFSET {}",
            query.limit.max(0),
            query.offset.max(0)
        );
        let mut statement = sqlx::query(&sql);
        for value in values {
            statement = statement.bind(value);
        }
        statement
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(licence_match)
            .collect()
    }

    /// Fills in the holder names of versions stored before `holder_names` existed, a chunk at a
    /// time (each chunk one transaction; another process filling at the same moment is harmless).
    pub(super) async fn fill_holder_names(&self) -> Result<()> {
        // Every name belongs to a version, so equal counts mean nothing is missing: 1 ms for
        // 100,000 versions, where looking for the missing ones takes 55 ms at every open.
        let counts = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM versions) AS versions,
                    (SELECT COUNT(*) FROM holder_names) AS names",
        )
        .fetch_one(&self.reader)
        .await?;
        if counts.try_get::<i64, _>("versions")? == counts.try_get::<i64, _>("names")? {
            return Ok(());
        }
        loop {
            let rows = sqlx::query(&format!(
                "SELECT v.licence, v.version, v.identifier, v.full_record FROM versions v
                 WHERE NOT EXISTS (SELECT 1 FROM holder_names h
                                    WHERE h.licence = v.licence AND h.version = v.version)
                 ORDER BY v.licence, v.version LIMIT {FILL_CHUNK}"
            ))
            .fetch_all(&self.reader)
            .await?;
            if rows.is_empty() {
                return Ok(());
            }
            let mut names = Vec::with_capacity(rows.len());
            for row in &rows {
                let identifier: String = row.try_get("identifier")?;
                let full =
                    decode_full_record(&row.try_get::<Vec<u8>, _>("full_record")?, &identifier)?;
                names.push((
                    row.try_get::<i64, _>("licence")?,
                    row.try_get::<i64, _>("version")? as u32,
                    full.record.holder.name,
                ));
            }
            let mut tx = self.begin_write().await?;
            let named: Vec<(i64, u32, &str)> =
                names.iter().map(|(l, v, n)| (*l, *v, n.as_str())).collect();
            insert_holder_names(&mut tx, &named).await?;
            tx.commit().await?;
            tracing::info!(
                versions = rows.len(),
                "filled in holder names for licence search"
            );
        }
    }
}

/// Records the holder's name of versions (licence pk, version, name) inside the transaction
/// that stores them.
pub(super) async fn insert_holder_names(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    names: &[(i64, u32, &str)],
) -> Result<()> {
    // 3 parameters a row: 600 per statement, well inside both backends' limits.
    for chunk in names.chunks(200) {
        let sql = format!(
            "INSERT INTO holder_names (licence, version, name) VALUES {}
             ON CONFLICT (licence, version) DO NOTHING",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for (licence, version, name) in chunk {
            query = query
                .bind(*licence)
                .bind(i64::from(*version))
                .bind(name.to_string());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `text` matched literally by LIKE … ESCAPE '\': its `%`, `_` and `\` are no wildcards.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn licence_match(row: &AnyRow) -> Result<LicenceMatch> {
    let last_status: Option<String> = row.try_get("last_status")?;
    let standing = match last_status.as_deref() {
        Some(kind) => Standing::after([parse_kind(kind)?]),
        None => Standing::Active,
    };
    Ok(LicenceMatch {
        licence_id: row.try_get("licence_id")?,
        type_code: row.try_get("type_code")?,
        number: row.try_get("number")?,
        holder_name: row
            .try_get::<Option<String>, _>("holder_name")?
            .unwrap_or_default(),
        standing,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_in_a_name_are_matched_literally() {
        assert_eq!(like_escaped("张三"), "张三");
        assert_eq!(like_escaped("100%_a\\b"), "100\\%\\_a\\\\b");
    }
}
