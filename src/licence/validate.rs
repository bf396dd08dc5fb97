//! Checks a record as a clerk or a manifest row gives it against its licence type. Every problem
//! of a record comes back at once, each naming the field and the reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use super::{FieldValue, Holder, HolderId, Record};
use crate::directory::{FieldDef, FieldType, HolderKind, LicenceType};
use crate::identifiers::{ResidentId, Uscc};
use crate::time_util;

/// Longest licence number, holder name and plain text value accepted when the type sets no limit.
const MAX_NUMBER_LEN: usize = 64;
const MAX_HOLDER_NAME_LEN: usize = 200;
const MAX_TEXT_LEN: usize = 1000;

/// A record as it arrives: every value still text (or a JSON number), nothing trusted yet.
#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordInput {
    /// The licence number; the service assigns one when it is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub holder: HolderInput,
    /// `YYYY-MM-DD`; today when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`; the type's default validity when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    pub name: String,
    pub id: String,
}

/// One thing wrong with a record.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Everything wrong with a record, in field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(transparent)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "{}", all.join("; "))
    }
}

struct Collector(Vec<FieldError>);

impl Collector {
    fn add(&mut self, field: &str, reason: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_string(),
            reason: reason.into(),
        });
    }

    /// Keeps `Ok` values; records the error of an `Err` under `field`.
    fn take<T, E: fmt::Display>(&mut self, field: &str, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.add(field, e.to_string())).ok()
    }
}

/// Validates `input` as a licence of `licence_type`, as of `today` (China Standard Time).
///
/// `number` is the number to use when the input brings none (assigned by the caller).
pub fn validate(
    licence_type: &LicenceType,
    input: &RecordInput,
    today: Date,
    assign_number: impl FnOnce() -> String,
) -> Result<Record, ValidationErrors> {
    let mut errors = Collector(Vec::new());

    let number = match &input.number {
        Some(n) => errors.take("number", check_text(n, MAX_NUMBER_LEN, true)),
        None => Some(assign_number()),
    };

    let holder_name = errors.take(
        "holder.name",
        check_text(&input.holder.name, MAX_HOLDER_NAME_LEN, true),
    );
    let holder_id = errors.take(
        "holder.id",
        parse_holder_id(licence_type.holder_kind, &input.holder.id, today),
    );

    let valid_from = match &input.valid_from {
        Some(s) => errors.take("valid_from", parse_date_field(s)),
        None => Some(today),
    };
    let valid_until = match (&input.valid_until, valid_from) {
        (Some(s), _) => errors.take("valid_until", parse_date_field(s)).map(Some),
        (None, Some(from)) => Some(licence_type.default_validity.last_day(from)),
        (None, None) => None,
    };
    if let (Some(from), Some(Some(until))) = (valid_from, valid_until) {
        if until < from {
            errors.add(
                "valid_until",
                format!(
                    "{} is before valid_from {}",
                    time_util::format_date(until),
                    time_util::format_date(from)
                ),
            );
        }
    }

    for key in input.fields.keys() {
        if licence_type.field(key).is_none() {
            errors.add(
                &format!("fields.{key}"),
                format!("{} has no field {key:?}", licence_type.name),
            );
        }
    }
    let mut fields = BTreeMap::new();
    for def in &licence_type.fields {
        let name = format!("fields.{}", def.key);
        match input.fields.get(&def.key).filter(|v| !is_blank(v)) {
            None if def.required => errors.add(&name, format!("{} is required", def.label)),
            None => {}
            Some(value) => {
                if let Some(v) = errors.take(&name, check_field(def, value, today)) {
                    fields.insert(def.key.clone(), v);
                }
            }
        }
    }

    if !errors.0.is_empty() {
        return Err(ValidationErrors(errors.0));
    }
    Ok(Record {
        number: number.expect("no error, so set"),
        holder: Holder {
            name: holder_name.expect("no error, so set"),
            id: holder_id.expect("no error, so set"),
        },
        valid_from: valid_from.expect("no error, so set"),
        valid_until: valid_until.expect("no error, so set"),
        fields,
        scan: None,
    })
}

fn is_blank(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn parse_holder_id(kind: HolderKind, id: &str, today: Date) -> Result<HolderId, String> {
    match kind {
        HolderKind::Person => ResidentId::parse_on(id.trim(), today)
            .map(HolderId::Person)
            .map_err(|e| format!("this licence is held by a person: {e}")),
        HolderKind::Organisation => Uscc::parse(id.trim())
            .map(HolderId::Organisation)
            .map_err(|e| format!("this licence is held by an organisation: {e}")),
    }
}

fn parse_date_field(s: &str) -> Result<Date, String> {
    time_util::parse_date(s.trim()).ok_or_else(|| format!("{s:?} is not a date written YYYY-MM-DD"))
}

/// Text must be non-empty (when `required`), within `max_len` characters and free of control
/// characters (a tab or a line break in a licence number or name is always a transcription slip).
fn check_text(s: &str, max_len: usize, required: bool) -> Result<String, String> {
    let s = s.trim();
    if required && s.is_empty() {
        return Err("is empty".into());
    }
    let len = s.chars().count();
    if len > max_len {
        return Err(format!(
            "is {len} characters long; at most {max_len} allowed"
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(s.to_string())
}

fn check_field(
    def: &FieldDef,
    value: &serde_json::Value,
    today: Date,
) -> Result<FieldValue, String> {
    let text = match value {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) if def.field_type == FieldType::Integer => n.to_string(),
        other => return Err(format!("expected text, got {other}")),
    };
    let text = check_text(&text, def.max_len.unwrap_or(MAX_TEXT_LEN), true)?;
    let value = match def.field_type {
        FieldType::Text => FieldValue::Text(text),
        FieldType::Date => {
            let date = parse_date_field(&text)?;
            FieldValue::Text(time_util::format_date(date))
        }
        FieldType::Integer => FieldValue::Integer(
            text.parse()
                .map_err(|_| format!("{text:?} is not a whole number"))?,
        ),
        FieldType::Enum => {
            if !def.values.contains(&text) {
                return Err(format!("{text:?} is not one of {}", def.values.join(", ")));
            }
            FieldValue::Text(text)
        }
        FieldType::ResidentId => FieldValue::Text(
            ResidentId::parse_on(&text, today)
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
        FieldType::Uscc => {
            FieldValue::Text(Uscc::parse(&text).map_err(|e| e.to_string())?.to_string())
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use crate::identifiers::TypeCode;
    use serde_json::json;
    use std::path::Path;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 29);

    fn food_type() -> LicenceType {
        let dir = Directory::load(Path::new("templates/directory")).unwrap();
        dir.get(&TypeCode::parse("11100000000013338W032").unwrap())
            .unwrap()
            .clone()
    }

    fn good_input() -> RecordInput {
        serde_json::from_value(json!({
            "number": "JY13301220000001",
            "holder": {"name": "示范县百味餐饮有限公司", "id": "91350100M000100Y43"},
            "valid_from": "2024-01-01",
            "fields": {
                "legal_representative": "王建国",
                "residence": "人民路88号",
                "business_premises": "人民路88号一楼",
                "business_format": "餐饮服务经营者",
                "business_items": "热食类食品制售",
                "supervising_authority": "城关市场监督管理所"
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_good_record_takes_the_default_validity() {
        let record = validate(&food_type(), &good_input(), TODAY, || unreachable!()).unwrap();
        assert_eq!(record.valid_until, Some(date!(2028 - 12 - 31)));
        assert_eq!(record.holder.id.masked(), "91350100M000100Y43");
        assert_eq!(record.fields.len(), 6);
    }

    #[test]
    fn five_wrong_fields_give_five_precise_errors() {
        let mut input = good_input();
        input.holder.id = "11010519491231002X".into(); // a person's ID on an organisation's licence
        input.valid_until = Some("2023-12-31".into()); // before valid_from
        input.fields.remove("residence"); // required
        input.fields.insert("business_format".into(), json!("网吧")); // not an enum value
        input.fields.insert("colour".into(), json!("red")); // unknown field
        let errors = validate(&food_type(), &input, TODAY, || unreachable!())
            .unwrap_err()
            .0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "holder.id",
                "valid_until",
                "fields.colour",
                "fields.residence",
                "fields.business_format"
            ],
            "{errors:?}"
        );
        assert!(errors[0].reason.contains("organisation"), "{}", errors[0]);
        assert!(
            errors[1].reason.contains("before valid_from"),
            "{}",
            errors[1]
        );
        assert!(
            errors[3].reason.contains("住所 is required"),
            "{}",
            errors[3]
        );
        assert!(errors[4].reason.contains("not one of"), "{}", errors[4]);
    }

    #[test]
    fn lengths_dates_integers_and_control_characters_are_checked() {
        let dir = Directory::load(Path::new("templates/directory")).unwrap();
        let permit = dir
            .get(&TypeCode::parse("11100000MB0000010Q001").unwrap())
            .unwrap();
        let mut input = RecordInput {
            number: Some("A\tB".into()),
            holder: HolderInput {
                name: "甲".repeat(201),
                id: "91350100M000100Y43".into(),
            },
            valid_from: Some("2024-02-30".into()),
            ..Default::default()
        };
        for def in &permit.fields {
            input
                .fields
                .insert(def.key.clone(), json!(def.example.clone().unwrap()));
        }
        input.fields.insert("contract_price".into(), json!("一万"));
        input
            .fields
            .insert("planned_start".into(), json!("2026/03/01"));
        input
            .fields
            .insert("project_manager".into(), json!("陈".repeat(21)));
        let errors = validate(permit, &input, TODAY, || unreachable!())
            .unwrap_err()
            .0;
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(got[0].0 == "number" && got[0].1.contains("control character"));
        assert!(got[1].0 == "holder.name" && got[1].1.contains("201 characters"));
        assert!(got[2].0 == "valid_from" && got[2].1.contains("YYYY-MM-DD"));
        assert!(got[3].0 == "fields.contract_price" && got[3].1.contains("whole number"));
        assert!(got[4].0 == "fields.project_manager" && got[4].1.contains("at most 20"));
        assert!(got[5].0 == "fields.planned_start" && got[5].1.contains("YYYY-MM-DD"));
    }

    #[test]
    fn json_numbers_are_accepted_for_integers_and_a_missing_number_is_assigned() {
        let dir = Directory::load(Path::new("templates/directory")).unwrap();
        let permit = dir
            .get(&TypeCode::parse("11100000MB0000010Q001").unwrap())
            .unwrap();
        let mut input = RecordInput {
            holder: HolderInput {
                name: "建设单位".into(),
                id: "91350100M000100Y43".into(),
            },
            ..Default::default()
        };
        for def in permit.fields.iter().filter(|f| f.required) {
            input
                .fields
                .insert(def.key.clone(), json!(def.example.clone().unwrap()));
        }
        input.fields.insert("contract_price".into(), json!(18650));
        let record = validate(permit, &input, TODAY, || "330122-1".into()).unwrap();
        assert_eq!(record.number, "330122-1");
        assert_eq!(record.valid_from, TODAY);
        assert_eq!(
            record.valid_until, None,
            "construction permits are permanent"
        );
        assert_eq!(record.fields["contract_price"], FieldValue::Integer(18650));
    }
}
