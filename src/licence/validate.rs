//! Checks a record as a clerk or a manifest row gives it against its licence type. Every problem
//! of a record comes back at once, each naming the field and the reason.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::Date;

use super::{FieldValue, Holder, HolderId, Record};
use crate::directory::{FieldDef, FieldRule, FieldType, HolderKind, LicenceType};
use crate::identifiers::{ResidentId, Uscc};
use crate::messages::{Act, BrokenRule, Lang, Reason};
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

impl RecordInput {
    /// A valid record of type `t`, from the directory's sample values: what
    /// `directory show TYPE --example` prints, the starting point for `issue --file`.
    pub fn example_of(t: &LicenceType) -> RecordInput {
        let holder_id = match t.holder_kind {
            HolderKind::Person => "11010519491231002X",
            HolderKind::Organisation => "91350100M000100Y43",
        };
        let fields = t
            .fields
            .iter()
            .filter_map(|f| {
                let sample = f.example.clone().or_else(|| f.values.first().cloned())?;
                let value = match f.field_type {
                    FieldType::Integer => {
                        sample.parse::<i64>().map(serde_json::Value::from).ok()?
                    }
                    _ => serde_json::Value::from(sample),
                };
                Some((f.key.clone(), value))
            })
            .collect();
        RecordInput {
            number: None,
            holder: HolderInput {
                name: t
                    .example_holder_name
                    .clone()
                    .unwrap_or_else(|| "示例持证主体".into()),
                id: holder_id.into(),
            },
            valid_from: Some(time_util::format_date(time_util::today_cst())),
            valid_until: None,
            fields,
        }
    }
}

#[derive(utoipa::ToSchema, Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderInput {
    pub name: String,
    pub id: String,
}

/// One thing wrong with a record: the field, and the reason in English (what the API says by
/// default) and in Chinese (what the console and reports say), both from the message catalogue.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
    #[serde(skip)]
    pub reason_zh: String,
    /// The reason's code in the message catalogue ([`Reason::code`]).
    #[serde(skip)]
    pub code: &'static str,
}

impl FieldError {
    pub fn new(field: &str, reason: &Reason) -> FieldError {
        FieldError {
            field: field.to_string(),
            reason: reason.en(),
            reason_zh: reason.zh(),
            code: reason.code(),
        }
    }

    /// The reason in `lang`.
    pub fn reason_in(&self, lang: Lang) -> &str {
        match lang {
            Lang::En => &self.reason,
            Lang::Zh => &self.reason_zh,
        }
    }
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
    fn add(&mut self, field: &str, reason: Reason) {
        self.0.push(FieldError::new(field, &reason));
    }

    /// Keeps `Ok` values; records the reason of an `Err` under `field`.
    fn take<T>(&mut self, field: &str, result: Result<T, Reason>) -> Option<T> {
        result.map_err(|reason| self.add(field, reason)).ok()
    }
}

/// The way a record comes in. Every way is checked by [`validate`]; the few rules that differ
/// between them are decided here, so no caller adds or drops a rule of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A new licence (`issue`): a missing number is assigned, a missing start is today.
    Issue,
    /// A stock paper licence (`convert`, folder or upload): it keeps the number and the start
    /// date printed on its original, so both are required.
    Conversion,
    /// A new version of the content (`amend`): the validity stays the licence's own.
    Amendment,
    /// A new version with a new validity (`renew`).
    Renewal,
}

impl Door {
    /// Whether the record's validity is being set now, so it must not have ended already. An
    /// amendment keeps the validity it had (an expired licence is renewed, not amended into force).
    fn sets_validity(self) -> bool {
        self != Door::Amendment
    }

    fn act(self) -> Act {
        match self {
            Door::Issue => Act::Issued,
            Door::Conversion => Act::Converted,
            Door::Amendment => Act::Amended,
            Door::Renewal => Act::Renewed,
        }
    }
}

/// Validates `input` as a licence of `licence_type` coming in by `door`, as of `today` (China
/// Standard Time): every field, the validity (in order, and not over already when it is being
/// set) and the type's rules between fields.
///
/// `assign_number` gives the number to use when the input brings none (issue only).
pub fn validate(
    licence_type: &LicenceType,
    input: &RecordInput,
    door: Door,
    today: Date,
    assign_number: impl FnOnce() -> String,
) -> Result<Record, ValidationErrors> {
    let mut errors = Collector(Vec::new());

    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    let number = match &input.number {
        _ if door == Door::Conversion && blank(&input.number) => {
            errors.add("number", Reason::StockNumberMissing);
            None
        }
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
        _ if door == Door::Conversion && blank(&input.valid_from) => {
            errors.add("valid_from", Reason::StockStartMissing);
            None
        }
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
                Reason::UntilBeforeFrom {
                    until: time_util::format_date(until),
                    from: time_util::format_date(from),
                },
            );
        } else if door.sets_validity() && until < today {
            errors.add(
                "valid_until",
                Reason::AlreadyExpired {
                    until: time_util::format_date(until),
                    act: door.act(),
                },
            );
        }
    }

    for key in input.fields.keys() {
        if licence_type.field(key).is_none() {
            errors.add(
                &format!("fields.{key}"),
                Reason::NoSuchField {
                    type_name: licence_type.name.clone(),
                    key: key.clone(),
                },
            );
        }
    }
    let mut fields = BTreeMap::new();
    for def in &licence_type.fields {
        let name = format!("fields.{}", def.key);
        match input.fields.get(&def.key).filter(|v| !is_blank(v)) {
            None if def.required => errors.add(
                &name,
                Reason::Required {
                    label: def.label.clone(),
                },
            ),
            None => {}
            Some(value) => {
                if let Some(v) = errors.take(&name, check_field(def, value, today)) {
                    fields.insert(def.key.clone(), v);
                }
            }
        }
    }

    for rule in &licence_type.rules {
        if let Some((field, reason)) = broken_rule(licence_type, rule, &fields) {
            errors.add(&field, reason);
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

/// The field to blame and the reason when `rule` does not hold between the record's valid
/// values (a rule with an empty or invalid side is not judged: that side has its own error).
fn broken_rule(
    licence_type: &LicenceType,
    rule: &FieldRule,
    fields: &BTreeMap<String, FieldValue>,
) -> Option<(String, Reason)> {
    let (value, other) = (fields.get(&rule.field)?, fields.get(&rule.other)?);
    let ordering = match (value, other) {
        (FieldValue::Integer(a), FieldValue::Integer(b)) => a.cmp(b),
        (FieldValue::Text(a), FieldValue::Text(b)) => {
            time_util::parse_date(a)?.cmp(&time_util::parse_date(b)?)
        }
        _ => return None,
    };
    if rule.must_be.holds(ordering) {
        return None;
    }
    // The directory checked at load that both fields exist with one comparable type.
    let (def, other_def) = (
        licence_type.field(&rule.field)?,
        licence_type.field(&rule.other)?,
    );
    Some((
        format!("fields.{}", rule.field),
        Reason::Rule(Box::new(BrokenRule {
            label: def.label.clone(),
            value: value.to_string(),
            relation_en: rule.must_be.words(def.field_type).to_string(),
            relation_zh: rule.must_be.words_zh(def.field_type).to_string(),
            other_label: other_def.label.clone(),
            other_key: rule.other.clone(),
            other: other.to_string(),
        })),
    ))
}

fn is_blank(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn parse_holder_id(kind: HolderKind, id: &str, today: Date) -> Result<HolderId, Reason> {
    match kind {
        HolderKind::Person => ResidentId::parse_on(id.trim(), today)
            .map(HolderId::Person)
            .map_err(Reason::PersonHolder),
        HolderKind::Organisation => Uscc::parse(id.trim())
            .map(HolderId::Organisation)
            .map_err(Reason::OrganisationHolder),
    }
}

fn parse_date_field(s: &str) -> Result<Date, Reason> {
    time_util::parse_date(s.trim()).ok_or_else(|| Reason::NotADate(s.to_string()))
}

/// Text must be non-empty (when `required`), within `max_len` characters and free of control
/// characters (a tab or a line break in a licence number or name is always a transcription slip).
fn check_text(s: &str, max_len: usize, required: bool) -> Result<String, Reason> {
    let s = s.trim();
    if required && s.is_empty() {
        return Err(Reason::Empty);
    }
    let len = s.chars().count();
    if len > max_len {
        return Err(Reason::TooLong { len, max: max_len });
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(Reason::ControlCharacter(c));
    }
    Ok(s.to_string())
}

fn check_field(
    def: &FieldDef,
    value: &serde_json::Value,
    today: Date,
) -> Result<FieldValue, Reason> {
    let text = match value {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) if def.field_type == FieldType::Integer => n.to_string(),
        other => return Err(Reason::NotText(other.to_string())),
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
                .map_err(|_| Reason::NotWholeNumber(text.clone()))?,
        ),
        FieldType::Enum => {
            if !def.values.contains(&text) {
                return Err(Reason::NotOneOf {
                    text,
                    values: def.values.clone(),
                });
            }
            FieldValue::Text(text)
        }
        FieldType::ResidentId => FieldValue::Text(
            ResidentId::parse_on(&text, today)
                .map_err(Reason::Identifier)?
                .to_string(),
        ),
        FieldType::Uscc => {
            FieldValue::Text(Uscc::parse(&text).map_err(Reason::Identifier)?.to_string())
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
        let record = validate(
            &food_type(),
            &good_input(),
            Door::Issue,
            TODAY,
            || unreachable!(),
        )
        .unwrap();
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
        let errors = validate(&food_type(), &input, Door::Issue, TODAY, || unreachable!())
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
        let errors = validate(permit, &input, Door::Issue, TODAY, || unreachable!())
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

    fn permit_input(permit: &LicenceType) -> RecordInput {
        let mut input = RecordInput {
            holder: HolderInput {
                name: "建设单位".into(),
                id: "91350100M000100Y43".into(),
            },
            ..Default::default()
        };
        for def in &permit.fields {
            input
                .fields
                .insert(def.key.clone(), json!(def.example.clone().unwrap()));
        }
        input
    }

    #[test]
    fn a_completion_before_the_start_breaks_the_permit_rule_naming_both_fields() {
        let dir = Directory::load(Path::new("templates/directory")).unwrap();
        let permit = dir
            .get(&TypeCode::parse("11100000MB0000010Q001").unwrap())
            .unwrap();
        let mut input = permit_input(permit);
        validate(permit, &input, Door::Issue, TODAY, || "1".into()).unwrap();
        input
            .fields
            .insert("planned_completion".into(), json!("2026-02-28"));
        let errors = validate(permit, &input, Door::Issue, TODAY, || "1".into())
            .unwrap_err()
            .0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "fields.planned_completion");
        assert_eq!(
            errors[0].reason,
            "合同竣工日期 2026-02-28 must be after 合同开工日期 (fields.planned_start) 2026-03-01"
        );
        // The same day is not after it either; an invalid start leaves the rule unjudged.
        input
            .fields
            .insert("planned_completion".into(), json!("2026-03-01"));
        assert!(validate(permit, &input, Door::Issue, TODAY, || "1".into()).is_err());
        input.fields.insert("planned_start".into(), json!("soon"));
        let errors = validate(permit, &input, Door::Issue, TODAY, || "1".into())
            .unwrap_err()
            .0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["fields.planned_start"]);
    }

    #[test]
    fn a_validity_over_already_is_refused_except_where_it_is_kept() {
        let mut input = good_input();
        input.valid_from = Some("2020-01-01".into());
        input.valid_until = Some("2026-11-28".into());
        for door in [Door::Issue, Door::Conversion, Door::Renewal] {
            let errors = validate(&food_type(), &input, door, TODAY, || unreachable!())
                .unwrap_err()
                .0;
            assert_eq!(errors.len(), 1, "{door:?}: {errors:?}");
            assert_eq!(errors[0].field, "valid_until");
            assert!(
                errors[0].reason.starts_with("2026-11-28 has passed"),
                "{}",
                errors[0]
            );
        }
        // An amendment keeps the validity the licence has.
        validate(
            &food_type(),
            &input,
            Door::Amendment,
            TODAY,
            || unreachable!(),
        )
        .unwrap();
        // Ending today is still in force.
        input.valid_until = Some("2026-11-29".into());
        validate(&food_type(), &input, Door::Issue, TODAY, || unreachable!()).unwrap();
    }

    #[test]
    fn a_stock_licence_needs_its_number_and_start_date() {
        let mut input = good_input();
        input.number = Some(" ".into());
        input.valid_from = None;
        let errors = validate(
            &food_type(),
            &input,
            Door::Conversion,
            TODAY,
            || unreachable!(),
        )
        .unwrap_err()
        .0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["number", "valid_from"], "{errors:?}");
        assert!(errors[0].reason.contains("keeps the number printed"));
        // A new licence gets both.
        input.number = None;
        let record = validate(&food_type(), &input, Door::Issue, TODAY, || "N1".into()).unwrap();
        assert_eq!((record.number.as_str(), record.valid_from), ("N1", TODAY));
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
        let record = validate(permit, &input, Door::Issue, TODAY, || "330122-1".into()).unwrap();
        assert_eq!(record.number, "330122-1");
        assert_eq!(record.valid_from, TODAY);
        assert_eq!(
            record.valid_until, None,
            "construction permits are permanent"
        );
        assert_eq!(record.fields["contract_price"], FieldValue::Integer(18650));
    }
}
