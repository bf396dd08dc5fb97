//! The licence directory (证照目录, SPEC §2): the licence types this county issues, their fields and
//! layouts. It is data under `templates/directory/`, one TOML file per type, checked strictly at
//! start; the store keeps each distinct content as a numbered directory version.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::{Date, Duration, Month};

use crate::identifiers::{TypeCode, Uscc};

/// A directory file that cannot be used: which file, which entry, and why.
#[derive(Debug, thiserror::Error)]
#[error("licence directory: {file}: {entry}: {reason}")]
pub struct DirectoryError {
    pub file: String,
    pub entry: String,
    pub reason: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    Person,
    Organisation,
}

impl HolderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Person => "person",
            HolderKind::Organisation => "organisation",
        }
    }

    /// The labels a licence prints before the holder's name and number: what the renderer
    /// prints, what sample scans show and what drafting looks for.
    pub fn labels_zh(self) -> (&'static str, &'static str) {
        match self {
            HolderKind::Person => ("持证人", "公民身份号码"),
            HolderKind::Organisation => ("持证单位", "统一社会信用代码"),
        }
    }
}

#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Text,
    Date,
    Integer,
    Enum,
    ResidentId,
    Uscc,
}

impl FieldType {
    /// The name a directory file gives the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Integer => "integer",
            FieldType::Enum => "enum",
            FieldType::ResidentId => "resident_id",
            FieldType::Uscc => "uscc",
        }
    }
}

/// One field a licence of a type carries, in the order the licence shows them.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    pub key: String,
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: FieldType,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    #[serde(default)]
    pub public: bool,
    /// Whether the PDF licence prints this field (contact details usually are not).
    #[serde(default = "printed_by_default")]
    pub printed: bool,
    /// A sample value for `directory show --example` and for generated batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

fn printed_by_default() -> bool {
    true
}

#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    pub name: String,
    #[schema(value_type = String)]
    pub uscc: Uscc,
}

/// How long a licence of this type is valid by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Permanent,
    Years(u32),
    Months(u32),
    Days(u32),
}

impl Validity {
    pub fn parse(s: &str) -> Option<Validity> {
        if s == "permanent" {
            return Some(Validity::Permanent);
        }
        let body = s.strip_prefix('P')?;
        let (number, unit) = body.split_at(body.len().checked_sub(1)?);
        let n: u32 = number.parse().ok().filter(|&n| n > 0 && n <= 100)?;
        match unit {
            "Y" => Some(Validity::Years(n)),
            "M" => Some(Validity::Months(n)),
            "D" => Some(Validity::Days(n)),
            _ => None,
        }
    }

    /// The last day of validity for a licence valid from `from` (inclusive on both ends, as printed
    /// on licences: 2024-01-01 for five years runs to 2028-12-31), or None when permanent.
    pub fn last_day(self, from: Date) -> Option<Date> {
        let end_exclusive = match self {
            Validity::Permanent => return None,
            Validity::Years(n) => add_months(from, n * 12),
            Validity::Months(n) => add_months(from, n),
            Validity::Days(n) => from + Duration::days(i64::from(n)),
        };
        Some(end_exclusive - Duration::days(1))
    }
}

/// Adds calendar months, clamping the day to the target month's length (Jan 31 + 1 month = Feb 28).
fn add_months(date: Date, months: u32) -> Date {
    let index = date.year() * 12 + (date.month() as i32 - 1) + months as i32;
    let (year, month0) = (index.div_euclid(12), index.rem_euclid(12));
    let month = Month::try_from(month0 as u8 + 1).expect("1..=12");
    let day = date.day().min(month.length(year));
    Date::from_calendar_date(year, month, day).expect("clamped day exists")
}

impl fmt::Display for Validity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validity::Permanent => f.write_str("permanent"),
            Validity::Years(n) => write!(f, "P{n}Y"),
            Validity::Months(n) => write!(f, "P{n}M"),
            Validity::Days(n) => write!(f, "P{n}D"),
        }
    }
}

impl Serialize for Validity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Validity {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Validity::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "default_validity {s:?} must be \"permanent\" or PnY, PnM, PnD"
            ))
        })
    }
}

/// A licence type of the directory.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenceType {
    #[schema(value_type = String)]
    pub code: TypeCode,
    pub name: String,
    pub issuer: Issuer,
    pub holder_kind: HolderKind,
    /// `permanent`, or an ISO 8601 period such as `P5Y`.
    #[schema(value_type = String)]
    pub default_validity: Validity,
    /// Prefix of licence numbers the service assigns when a record brings none.
    #[serde(default)]
    pub number_prefix: String,
    /// The PDF layout this type renders with (a file under `templates/layouts/`).
    pub template: String,
    /// Sample holder for `directory show --example`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_holder_name: Option<String>,
    pub fields: Vec<FieldDef>,
    /// Rules between two fields (`[[rules]]`), checked with every record of the type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<FieldRule>,
}

/// A rule between two fields of a type: `field` must compare to `other` as `must_be` says
/// (`planned_completion` `>` `planned_start`). Both are date fields (later is greater) or both
/// integer fields. A rule holds when either field is empty: a missing value is the required
/// flag's concern.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    pub field: String,
    pub must_be: Comparison,
    pub other: String,
}

/// How a rule's field compares to the other field.
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
}

impl Comparison {
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Comparison::Greater => ordering == Greater,
            Comparison::GreaterOrEqual => ordering != Less,
            Comparison::Less => ordering == Less,
            Comparison::LessOrEqual => ordering != Greater,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
        }
    }

    /// The comparison in words, for dates or for numbers.
    pub fn words(self, field_type: FieldType) -> &'static str {
        let dates = field_type == FieldType::Date;
        match (self, dates) {
            (Comparison::Greater, true) => "after",
            (Comparison::GreaterOrEqual, true) => "on or after",
            (Comparison::Less, true) => "before",
            (Comparison::LessOrEqual, true) => "on or before",
            (Comparison::Greater, false) => "greater than",
            (Comparison::GreaterOrEqual, false) => "at least",
            (Comparison::Less, false) => "less than",
            (Comparison::LessOrEqual, false) => "at most",
        }
    }
}

impl Comparison {
    /// The comparison in Chinese, for dates or for numbers ("须" comes before it).
    pub fn words_zh(self, field_type: FieldType) -> &'static str {
        let dates = field_type == FieldType::Date;
        match (self, dates) {
            (Comparison::Greater, true) => "晚于",
            (Comparison::GreaterOrEqual, true) => "不早于",
            (Comparison::Less, true) => "早于",
            (Comparison::LessOrEqual, true) => "不晚于",
            (Comparison::Greater, false) => "大于",
            (Comparison::GreaterOrEqual, false) => "不小于",
            (Comparison::Less, false) => "小于",
            (Comparison::LessOrEqual, false) => "不大于",
        }
    }
}

impl fmt::Display for FieldRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.must_be.symbol(), self.other)
    }
}

impl LicenceType {
    pub fn field(&self, key: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.key == key)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let type_entry = format!("type {}", self.code);
        if self.name.trim().is_empty() {
            return Err((type_entry, "name is empty".into()));
        }
        if self.issuer.name.trim().is_empty() {
            return Err((type_entry, "issuer.name is empty".into()));
        }
        if self.template.trim().is_empty() {
            return Err((type_entry, "template is empty".into()));
        }
        if !self
            .number_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric())
        {
            return Err((
                type_entry,
                "number_prefix must be ASCII letters and digits".into(),
            ));
        }
        if self.fields.is_empty() {
            return Err((type_entry, "a licence type needs at least one field".into()));
        }
        let mut seen = BTreeSet::new();
        for field in &self.fields {
            let entry = format!("field {:?}", field.key);
            field.check().map_err(|reason| (entry.clone(), reason))?;
            if !seen.insert(&field.key) {
                return Err((entry, "key appears twice".into()));
            }
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let entry = format!("type {} rule {} ({rule})", self.code, index + 1);
            self.check_rule(rule).map_err(|reason| (entry, reason))?;
        }
        Ok(())
    }

    /// A rule must compare two different fields of this type, both dates or both integers.
    fn check_rule(&self, rule: &FieldRule) -> Result<(), String> {
        let field_of = |key: &str| {
            self.field(key)
                .ok_or_else(|| format!("{key:?} is not a field of this type"))
        };
        let (field, other) = (field_of(&rule.field)?, field_of(&rule.other)?);
        if field.key == other.key {
            return Err("a rule compares two different fields".into());
        }
        if field.field_type != other.field_type {
            return Err(format!(
                "{:?} is {} but {:?} is {}: a rule compares fields of one type",
                field.key,
                field.field_type.as_str(),
                other.key,
                other.field_type.as_str()
            ));
        }
        if !matches!(field.field_type, FieldType::Date | FieldType::Integer) {
            return Err(format!(
                "{:?} and {:?} are {}: only date and integer fields compare",
                field.key,
                other.key,
                field.field_type.as_str()
            ));
        }
        Ok(())
    }
}

/// Record keys the licence itself uses (and the first columns of a batch manifest); a field may
/// not take one of these names.
pub const RESERVED_KEYS: [&str; 7] = [
    "type_code",
    "number",
    "holder_name",
    "holder_id",
    "valid_from",
    "valid_until",
    "scan",
];

// Manifest columns beside a record's data, whose names no field may take.
/// Why a row was rejected, in the rejected rows the console gives back: read past, so the
/// corrected file can be uploaded as it is.
pub const REJECTION_REASON: &str = "rejection_reason";
/// The cells of a drafted row (`elicence draft`) a clerk must check: a row with any is refused.
pub const NEEDS_REVIEW: &str = "needs_review";
/// The end of a drafted manifest's confidence columns (`holder_id_confidence`): read past.
pub const CONFIDENCE_SUFFIX: &str = "_confidence";

impl FieldDef {
    fn check(&self) -> Result<(), String> {
        let snake = !self.key.is_empty()
            && self.key.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake {
            return Err(
                "key must be ASCII snake_case (a-z, 0-9, _), starting with a letter".into(),
            );
        }
        if RESERVED_KEYS.contains(&self.key.as_str()) {
            return Err("key is reserved for a column of the licence itself".into());
        }
        // A manifest's annotation columns: a drafted manifest's doubts and confidences, a
        // rejected-rows download's reasons.
        if [NEEDS_REVIEW, REJECTION_REASON].contains(&self.key.as_str())
            || self.key.ends_with(CONFIDENCE_SUFFIX)
        {
            return Err("key is reserved for a manifest's annotation column (needs_review, rejection_reason, *_confidence)".into());
        }
        if self.label.trim().is_empty() {
            return Err("label is empty".into());
        }
        if self.max_len == Some(0) {
            return Err("max_len must be at least 1".into());
        }
        match (self.field_type, self.values.is_empty()) {
            (FieldType::Enum, true) => return Err("an enum field needs values".into()),
            (FieldType::Enum, false) => {}
            (_, false) => return Err("values are only for enum fields".into()),
            (_, true) => {}
        }
        Ok(())
    }
}

/// The whole directory as loaded: its types by code and a digest of its content.
#[derive(Debug, Clone)]
pub struct Directory {
    types: BTreeMap<TypeCode, LicenceType>,
    /// Lowercase hex SHA-256 of the canonical JSON of all types: what decides a new version.
    pub digest: String,
}

impl Directory {
    /// Reads every `*.toml` under `dir` (sorted by name) and checks each type.
    pub fn load(dir: &Path) -> Result<Directory, DirectoryError> {
        let unreadable = |reason: String| DirectoryError {
            file: dir.display().to_string(),
            entry: "folder".into(),
            reason,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| unreadable(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(unreadable("no *.toml licence types found".into()));
        }
        let mut types = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).map_err(|e| DirectoryError {
                file: file.display().to_string(),
                entry: "file".into(),
                reason: e.to_string(),
            })?;
            types.push((file.display().to_string(), text));
        }
        Self::from_sources(types)
    }

    /// Builds a directory from (file name, TOML text) pairs.
    pub fn from_sources(sources: Vec<(String, String)>) -> Result<Directory, DirectoryError> {
        let mut types = BTreeMap::new();
        let mut issuers: BTreeMap<Uscc, (String, String)> = BTreeMap::new();
        for (file, text) in sources {
            let fail = |entry: String, reason: String| DirectoryError {
                file: file.clone(),
                entry,
                reason,
            };
            let licence_type: LicenceType = toml::from_str(&text).map_err(|e| {
                let entry = match e.span() {
                    Some(span) => format!("line {}", text[..span.start].lines().count().max(1)),
                    None => "file".into(),
                };
                fail(entry, e.message().to_string())
            })?;
            licence_type
                .check()
                .map_err(|(entry, reason)| fail(entry, reason))?;
            let code = licence_type.code.clone();
            if types.contains_key(&code) {
                return Err(fail(format!("type {code}"), "code is defined twice".into()));
            }
            let issuer = &licence_type.issuer;
            if let Some((name, other)) = issuers.get(&issuer.uscc) {
                if *name != issuer.name {
                    return Err(fail(
                        format!("type {code}"),
                        format!(
                            "issuer {} is named {:?} here but {:?} in {other}",
                            issuer.uscc, issuer.name, name
                        ),
                    ));
                }
            } else {
                issuers.insert(issuer.uscc.clone(), (issuer.name.clone(), file.clone()));
            }
            types.insert(code, licence_type);
        }
        let canonical = serde_json::to_vec(&types).expect("types serialise");
        let digest = crate::hash::sha256_hex(&canonical);
        Ok(Directory { types, digest })
    }

    /// The canonical JSON the digest is taken over: what the store keeps per version.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.types).expect("types serialise")
    }

    pub fn from_json(json: &str) -> Result<Directory, serde_json::Error> {
        let types: BTreeMap<TypeCode, LicenceType> = serde_json::from_str(json)?;
        let digest = crate::hash::sha256_hex(json.as_bytes());
        Ok(Directory { types, digest })
    }

    pub fn get(&self, code: &TypeCode) -> Option<&LicenceType> {
        self.types.get(code)
    }

    pub fn types(&self) -> impl Iterator<Item = &LicenceType> {
        self.types.values()
    }

    /// Every issuing department named by the directory, once each.
    pub fn issuers(&self) -> Vec<Issuer> {
        let mut by_uscc = BTreeMap::new();
        for t in self.types.values() {
            by_uscc
                .entry(t.issuer.uscc.clone())
                .or_insert_with(|| t.issuer.clone());
        }
        by_uscc.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const MINIMAL: &str = r#"
code = "11100000000013338W032"
name = "食品经营许可证"
holder_kind = "organisation"
default_validity = "P5Y"
template = "standard"
[issuer]
name = "示范县市场监督管理局"
uscc = "11220000013544541J"
[[fields]]
key = "residence"
label = "住所"
type = "text"
required = true
public = true
"#;

    fn load_one(text: &str) -> Result<Directory, DirectoryError> {
        Directory::from_sources(vec![("food.toml".into(), text.into())])
    }

    #[test]
    fn shipped_directory_loads_with_the_four_sample_types() {
        let dir = Directory::load(Path::new("templates/directory")).unwrap();
        let names: Vec<&str> = dir.types().map(|t| t.name.as_str()).collect();
        for expected in [
            "食品经营许可证",
            "个体工商户营业执照",
            "建筑工程施工许可证",
            "残疾人证",
        ] {
            assert!(
                names.iter().any(|n| n.ends_with(expected)),
                "{expected} missing from {names:?}"
            );
        }
        assert!(dir.types().any(|t| t.holder_kind == HolderKind::Person));
    }

    #[test]
    fn a_broken_file_names_file_entry_and_reason() {
        let err = load_one(&MINIMAL.replace("type = \"text\"", "type = \"colour\"")).unwrap_err();
        assert_eq!(err.file, "food.toml");
        assert!(err.entry.starts_with("line "), "{err}");
        assert!(err.reason.contains("colour"), "{err}");

        let err =
            load_one(&MINIMAL.replace("key = \"residence\"", "key = \"Residence\"")).unwrap_err();
        assert_eq!(err.entry, "field \"Residence\"");
        assert!(err.reason.contains("snake_case"), "{err}");

        let err = load_one(&MINIMAL.replace("13338W032", "13338X032")).unwrap_err();
        assert!(err.reason.contains("check character"), "{err}");

        let err = load_one(&MINIMAL.replace("type = \"text\"", "type = \"enum\"")).unwrap_err();
        assert!(err.reason.contains("needs values"), "{err}");
    }

    const PERMIT_DATES: &str = r#"
[[fields]]
key = "planned_start"
label = "合同开工日期"
type = "date"
public = true
[[fields]]
key = "planned_completion"
label = "合同竣工日期"
type = "date"
public = true
"#;

    fn with_rule(rule: &str) -> Result<Directory, DirectoryError> {
        load_one(&format!("{MINIMAL}{PERMIT_DATES}[[rules]]\n{rule}"))
    }

    #[test]
    fn a_rule_naming_an_unknown_field_or_mismatched_types_is_a_load_error_naming_it() {
        let good =
            with_rule("field = \"planned_completion\"\nmust_be = \">\"\nother = \"planned_start\"")
                .unwrap();
        let t = good.types().next().unwrap();
        assert_eq!(t.rules[0].to_string(), "planned_completion > planned_start");

        let err = with_rule("field = \"planned_end\"\nmust_be = \">\"\nother = \"planned_start\"")
            .unwrap_err();
        assert_eq!(
            err.entry,
            "type 11100000000013338W032 rule 1 (planned_end > planned_start)"
        );
        assert!(
            err.reason.contains("\"planned_end\" is not a field"),
            "{err}"
        );

        let err =
            with_rule("field = \"planned_completion\"\nmust_be = \">=\"\nother = \"residence\"")
                .unwrap_err();
        assert!(err.entry.contains("rule 1"), "{err}");
        assert!(
            err.reason
                .contains("\"planned_completion\" is date but \"residence\" is text"),
            "{err}"
        );

        let err =
            with_rule("field = \"residence\"\nmust_be = \"<\"\nother = \"residence\"").unwrap_err();
        assert!(err.reason.contains("two different fields"), "{err}");

        let err = with_rule(
            "field = \"planned_completion\"\nmust_be = \"later\"\nother = \"planned_start\"",
        )
        .unwrap_err();
        assert!(err.reason.contains("later"), "{err}");
    }

    #[test]
    fn a_changed_type_changes_the_digest() {
        let a = load_one(MINIMAL).unwrap();
        let b = load_one(&MINIMAL.replace("住所", "住 所")).unwrap();
        let a_again = load_one(&format!("# a comment\n{MINIMAL}")).unwrap();
        assert_ne!(a.digest, b.digest);
        assert_eq!(
            a.digest, a_again.digest,
            "formatting alone is not a new version"
        );
        let round_trip = Directory::from_json(&a.to_json()).unwrap();
        assert_eq!(round_trip.digest, a.digest);
    }

    #[test]
    fn default_validity_counts_inclusive_calendar_periods() {
        let from = date!(2024 - 01 - 01);
        assert_eq!(
            Validity::parse("P5Y").unwrap().last_day(from),
            Some(date!(2028 - 12 - 31))
        );
        assert_eq!(
            Validity::parse("P1M")
                .unwrap()
                .last_day(date!(2024 - 01 - 31)),
            Some(date!(2024 - 02 - 28))
        );
        assert_eq!(
            Validity::parse("P30D").unwrap().last_day(from),
            Some(date!(2024 - 01 - 30))
        );
        assert_eq!(Validity::parse("permanent").unwrap().last_day(from), None);
        for bad in ["5Y", "P0Y", "PY", "P5W", "forever"] {
            assert!(Validity::parse(bad).is_none(), "{bad}");
        }
    }
}
