//! A record as a batch manifest's columns hold it: a row's cells as a record to validate, and
//! the column a validation error's field is.

use std::collections::BTreeMap;

use super::{HolderInput, RecordInput};

impl RecordInput {
    /// A manifest row's record: `cell` gives each standard column's text (empty when blank),
    /// `fields` the field columns that have a value.
    pub fn from_columns<'a>(
        cell: impl Fn(&str) -> &'a str,
        fields: BTreeMap<String, serde_json::Value>,
    ) -> RecordInput {
        let optional = |column: &str| Some(cell(column).to_string()).filter(|s| !s.is_empty());
        RecordInput {
            number: Some(cell("number").to_string()),
            holder: HolderInput {
                name: cell("holder_name").to_string(),
                id: cell("holder_id").to_string(),
            },
            valid_from: optional("valid_from"),
            valid_until: optional("valid_until"),
            fields,
        }
    }
}

/// The manifest column of a field a validation error names (`holder.id` is `holder_id`,
/// `fields.gender` is `gender`).
pub fn column_of_field(field: &str) -> &str {
    match field {
        "holder.name" => "holder_name",
        "holder.id" => "holder_id",
        other => other.strip_prefix("fields.").unwrap_or(other),
    }
}
