//! `sample-batch`: a synthetic batch of stock licences for demos, tests and benchmarks. Every
//! licence type of the directory in turn; holders with resident IDs and credit codes that pass
//! the real check algorithms (and names with rare characters); scans drawn as images of paper
//! licences (JPEG or PNG at 100 dpi, each showing its own row under the labels a licence prints,
//! optionally degraded: see `scan`); and, at `bad_rate`, rows broken in each of
//! the ways a real manifest goes wrong. `expected-rejections.csv` lists those rows, their kind
//! and the column the converter must name.

use std::io::Write;
use std::path::Path;

use ab_glyph::FontRef;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use time::{Date, Duration};

use super::manifest::STANDARD_COLUMNS;
use crate::directory::{Comparison, Directory, FieldType, HolderKind, LicenceType};
use crate::identifiers::{ResidentId, Uscc};
use crate::time_util;

mod scan;
pub use scan::ScanLook;

/// The ways a generated row is broken, and the column the converter must blame.
pub const BAD_KINDS: [(&str, &str); 15] = [
    ("holder_id_check_digit", "holder_id"),
    ("unknown_type", "type_code"),
    ("missing_required_field", "<field>"),
    ("impossible_date", "valid_from"),
    ("ends_before_it_starts", "valid_until"),
    ("expired", "valid_until"),
    ("scan_missing", "scan"),
    ("scan_path_escapes", "scan"),
    ("scan_not_an_image", "scan"),
    ("scan_too_large", "scan"),
    ("duplicate_number", "number"),
    ("number_empty", "number"),
    ("value_not_allowed", "<field>"),
    ("extra_cell", "*"),
    ("unprintable_character", "holder_name"),
];

pub struct Options {
    pub rows: u64,
    pub bad_rate: f64,
    pub seed: u64,
    /// Write the manifest in GB18030 (as spreadsheet software in China saves it).
    pub gb18030: bool,
    /// A scan at least this large is "too large" (the converter's limit).
    pub max_scan_bytes: u64,
    /// Only these licence type codes (a department's own); all types when empty.
    pub types: Vec<String>,
    /// The scans' resolution, and whether they are degraded.
    pub scans: ScanLook,
}

/// What was written.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub rows: u64,
    pub bad_rows: u64,
    pub scans: u64,
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "欧阳", "司马",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "华", "建国", "晓东", "雨桐", "子涵",
];
/// Rare characters of names (生僻字), two beyond the Basic Multilingual Plane: the licence font
/// prints them, OCR models mostly do not know them. One name part in 25 is one of these, so a
/// batch has them at about the rate registers do, not in every other name.
const RARE_GIVEN: &[&str] = &["堃", "喆", "昇", "珺", "玥", "赟", "䶮", "𠮷"];
const FIRMS: &[&str] = &[
    "示范县",
    "城东",
    "新安",
    "青山",
    "平湖",
    "兴业",
    "鸿运",
    "德源",
    "丰泽",
    "嘉禾",
];
const TRADES: &[&str] = &[
    "餐饮管理有限公司",
    "食品商行",
    "建设投资集团有限公司",
    "便利店",
    "农产品专业合作社",
    "小吃店",
    "百货商店",
    "建筑工程有限公司",
];
const REGIONS: &[&str] = &["330122", "330106", "110105", "440305", "510107", "320102"];

/// Writes a batch of `options.rows` rows to `out` (created; must not hold a manifest already).
pub fn write(
    directory: &Directory,
    font: &[u8],
    out: &Path,
    options: &Options,
) -> anyhow::Result<Written> {
    let manifest_path = out.join("manifest.csv");
    anyhow::ensure!(
        !manifest_path.exists(),
        "{} exists already; choose an empty folder",
        manifest_path.display()
    );
    std::fs::create_dir_all(out.join("scans"))?;
    let font = FontRef::try_from_slice(font)?;
    let types: Vec<&LicenceType> = directory
        .types()
        .filter(|t| options.types.is_empty() || options.types.iter().any(|c| c == t.code.as_str()))
        .collect();
    anyhow::ensure!(
        !types.is_empty(),
        "the directory has none of the types {:?}",
        options.types
    );
    let mut columns: Vec<String> = STANDARD_COLUMNS.iter().map(|c| c.to_string()).collect();
    for t in &types {
        for f in &t.fields {
            if !columns.contains(&f.key) {
                columns.push(f.key.clone());
            }
        }
    }
    let today = time_util::today_cst();
    let mut rng = StdRng::seed_from_u64(options.seed);
    // Rows are encoded a chunk at a time into the file, so memory stays flat for any row count.
    let new_writer = || {
        csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new())
    };
    let mut csv = new_writer();
    let mut manifest = std::io::BufWriter::new(std::fs::File::create(&manifest_path)?);
    csv.write_record(&columns)?;
    let mut expected = csv::Writer::from_path(out.join("expected-rejections.csv"))?;
    expected.write_record(["line", "kind", "column"])?;
    // One mark of the seed in every number, so two sample batches do not collide.
    let mark = format!("{:04X}", options.seed % 0x10000);
    // The last good row's number of each type: what a duplicate repeats.
    let mut last_good_number: std::collections::HashMap<String, String> = Default::default();
    let mut written = Written {
        rows: 0,
        bad_rows: 0,
        scans: 0,
    };
    // Scans are drawn on every core a chunk at a time; the manifest is written in order.
    for chunk_start in (0..options.rows).step_by(1000) {
        let chunk_end = (chunk_start + 1000).min(options.rows);
        let mut drawings = Vec::new();
        for i in chunk_start..chunk_end {
            let line = i + 2;
            let type_index = (i as usize) % types.len();
            let t = types[type_index];
            let mut row = good_row(t, &columns, i, &mark, today, &mut rng);
            let jpeg = options.scans.degrade || type_index.is_multiple_of(2);
            let scan_name = format!("scans/{:07}.{}", i + 1, if jpeg { "jpg" } else { "png" });
            row[column(&columns, "scan")] = scan_name.clone();
            let bad = options.bad_rate > 0.0 && rng.gen_bool(options.bad_rate.min(1.0));
            let mut scan = Some(scan_name);
            if bad {
                let mut pick = written.bad_rows as usize % BAD_KINDS.len();
                let earlier = last_good_number.get(t.code.as_str());
                if BAD_KINDS[pick].0 == "duplicate_number" && earlier.is_none() {
                    pick += 1;
                }
                let (kind, blamed) = BAD_KINDS[pick];
                let blamed = break_row(kind, t, &columns, &mut row, earlier, out, options)?
                    .unwrap_or_else(|| blamed.to_string());
                if kind.starts_with("scan_") {
                    scan = None;
                }
                expected.write_record([line.to_string().as_str(), kind, &blamed])?;
                written.bad_rows += 1;
            } else {
                last_good_number
                    .insert(t.code.to_string(), row[column(&columns, "number")].clone());
            }
            if let Some(name) = scan {
                drawings.push((name, t, row.clone(), columns.clone()));
            }
            csv.write_record(&row)?;
            written.rows += 1;
        }
        let text = String::from_utf8(std::mem::replace(&mut csv, new_writer()).into_inner()?)?;
        if options.gb18030 {
            let (encoded, _, unmappable) = encoding_rs::GB18030.encode(&text);
            anyhow::ensure!(!unmappable, "a character GB18030 cannot write");
            manifest.write_all(&encoded)?;
        } else {
            manifest.write_all(text.as_bytes())?;
        }
        written.scans += drawings.len() as u64;
        drawings
            .par_iter()
            .try_for_each(|(name, t, row, columns)| -> anyhow::Result<()> {
                let cell = |name: &str| row[column(columns, name)].as_str();
                let printed = scan::Printed {
                    number: cell("number"),
                    holder_name: cell("holder_name"),
                    holder_id: cell("holder_id"),
                    valid_from: cell("valid_from"),
                    valid_until: cell("valid_until"),
                    fields: t
                        .fields
                        .iter()
                        .filter(|f| f.printed)
                        .map(|f| cell(&f.key))
                        .collect(),
                };
                let jpeg = name.ends_with(".jpg");
                let bytes = scan::draw(&font, t, &printed, options.scans, jpeg)?;
                std::fs::write(out.join(name), bytes)?;
                Ok(())
            })?;
    }
    manifest.flush()?;
    expected.flush()?;
    Ok(written)
}

fn column(columns: &[String], name: &str) -> usize {
    columns
        .iter()
        .position(|c| c == name)
        .expect("a known column")
}

fn good_row(
    t: &LicenceType,
    columns: &[String],
    i: u64,
    mark: &str,
    today: Date,
    rng: &mut StdRng,
) -> Vec<String> {
    let mut row = vec![String::new(); columns.len()];
    let mut set = |name: &str, value: String| row[column(columns, name)] = value;
    set("type_code", t.code.to_string());
    set("number", format!("{}S{mark}{:07}", t.number_prefix, i + 1));
    let (name, id) = match t.holder_kind {
        HolderKind::Person => (person_name(rng), resident_id(rng, today)),
        HolderKind::Organisation => (firm_name(rng), uscc(rng)),
    };
    set("holder_name", name);
    set("holder_id", id);
    // In force today: started within the last two years (or a little longer for permanent ones).
    let from = today - Duration::days(rng.gen_range(1..700));
    set("valid_from", time_util::format_date(from));
    if rng.gen_bool(0.3) {
        if let Some(until) = t.default_validity.last_day(from) {
            set("valid_until", time_util::format_date(until));
        }
    }
    for f in &t.fields {
        let value = match f.field_type {
            FieldType::Enum => f.values.choose(rng).cloned().unwrap_or_default(),
            FieldType::Integer => rng.gen_range(10..50_000).to_string(),
            FieldType::Date => time_util::format_date(from - Duration::days(rng.gen_range(0..400))),
            FieldType::ResidentId => resident_id(rng, today),
            FieldType::Uscc => uscc(rng),
            FieldType::Text => match &f.example {
                Some(example) => example.clone(),
                None if f.required => format!("{}{}", f.label, i + 1),
                None => continue,
            },
        };
        if f.required || rng.gen_bool(0.8) {
            set(&f.key, value);
        }
    }
    satisfy_rules(t, columns, &mut row, rng);
    row
}

/// Sets the field of each rule of the type a little past (or short of) the other field, so a
/// good row keeps the directory's rules too (a completion after the start).
fn satisfy_rules(t: &LicenceType, columns: &[String], row: &mut [String], rng: &mut StdRng) {
    for rule in &t.rules {
        let (at, other_at) = (column(columns, &rule.field), column(columns, &rule.other));
        let step = rng.gen_range(1..400);
        // Later (or greater) for > and >=, earlier (or smaller) for < and <=.
        let step = match rule.must_be {
            Comparison::Greater | Comparison::GreaterOrEqual => step,
            Comparison::Less | Comparison::LessOrEqual => -step,
        };
        let other = &row[other_at];
        let moved = if let Some(date) = time_util::parse_date(other) {
            time_util::format_date(date + Duration::days(step))
        } else if let Ok(n) = other.parse::<i64>() {
            (n + step).to_string()
        } else {
            continue; // the other field is empty: the rule has nothing to compare
        };
        if !row[at].is_empty() {
            row[at] = moved;
        }
    }
}

/// Breaks `row` the way `kind` says. Returns the blamed column when it depends on the type.
fn break_row(
    kind: &str,
    t: &LicenceType,
    columns: &[String],
    row: &mut Vec<String>,
    earlier_number: Option<&String>,
    out: &Path,
    options: &Options,
) -> anyhow::Result<Option<String>> {
    let at = |name: &str| column(columns, name);
    let scan = row[at("scan")].clone();
    match kind {
        "holder_id_check_digit" => {
            let id = &mut row[at("holder_id")];
            let last = id.pop().expect("an id");
            id.push(if last == '1' { '2' } else { '1' });
        }
        "unknown_type" => row[at("type_code")] = format!("{}999", &t.code.as_str()[..18]),
        "missing_required_field" => {
            let field = t
                .fields
                .iter()
                .find(|f| f.required)
                .expect("a required field");
            row[at(&field.key)].clear();
            return Ok(Some(field.key.clone()));
        }
        "impossible_date" => row[at("valid_from")] = "2023-02-30".into(),
        "ends_before_it_starts" => {
            let from = time_util::parse_date(&row[at("valid_from")]).expect("a date");
            row[at("valid_until")] = time_util::format_date(from - Duration::days(1));
        }
        "expired" => {
            let today = time_util::today_cst();
            row[at("valid_from")] = time_util::format_date(today - Duration::days(3000));
            row[at("valid_until")] = time_util::format_date(today - Duration::days(30));
        }
        "scan_missing" => row[at("scan")] = format!("{scan}.missing"),
        "scan_path_escapes" => row[at("scan")] = "../outside.jpg".into(),
        "scan_not_an_image" => {
            std::fs::write(out.join(&scan), "这不是图片 / not an image\n")?;
        }
        "scan_too_large" => {
            // Sparse: a JPEG header then a hole, so the file costs no disk.
            let file = std::fs::File::create(out.join(&scan))?;
            (&file).write_all(b"\xFF\xD8\xFF\xE0")?;
            file.set_len(options.max_scan_bytes + 1)?;
        }
        "duplicate_number" => {
            row[at("number")] = earlier_number
                .expect("the caller picks this kind only after a good row of the type")
                .clone();
        }
        "number_empty" => row[at("number")].clear(),
        "value_not_allowed" => {
            let field = t
                .fields
                .iter()
                .find(|f| matches!(f.field_type, FieldType::Enum | FieldType::Integer))
                .expect("every sample type has an enum or integer field");
            row[at(&field.key)] = "不在取值范围".into();
            return Ok(Some(field.key.clone()));
        }
        "extra_cell" => row.push("多余的一格".into()),
        "unprintable_character" => row[at("holder_name")].push('\u{1F600}'),
        other => anyhow::bail!("unknown bad-row kind {other}"),
    }
    Ok(None)
}

fn person_name(rng: &mut StdRng) -> String {
    let mut name = SURNAMES.choose(rng).expect("names").to_string();
    for _ in 0..rng.gen_range(1..=2) {
        let given = if rng.gen_ratio(1, 25) {
            RARE_GIVEN
        } else {
            GIVEN
        };
        name.push_str(given.choose(rng).expect("names"));
    }
    name
}

fn firm_name(rng: &mut StdRng) -> String {
    format!(
        "{}{}{}",
        FIRMS.choose(rng).expect("firms"),
        person_name(rng),
        TRADES.choose(rng).expect("trades")
    )
}

/// A resident ID of someone born 18–80 years ago, with its check character.
fn resident_id(rng: &mut StdRng, today: Date) -> String {
    let born = today - Duration::days(rng.gen_range(18 * 365..80 * 365));
    let first17 = format!(
        "{}{:04}{:02}{:02}{:03}",
        REGIONS.choose(rng).expect("regions"),
        born.year(),
        u8::from(born.month()),
        born.day(),
        rng.gen_range(1..1000)
    );
    let id = format!(
        "{first17}{}",
        ResidentId::check_char_for(&first17).expect("17 digits")
    );
    debug_assert!(ResidentId::parse_on(&id, today).is_ok());
    id
}

/// A unified social credit code (enterprise, registered in one of the regions).
fn uscc(rng: &mut StdRng) -> String {
    const CHARSET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let body: String = (0..9)
        .map(|_| CHARSET[rng.gen_range(0..CHARSET.len())] as char)
        .collect();
    let first17 = format!("91{}{body}", REGIONS.choose(rng).expect("regions"));
    let id = format!(
        "{first17}{}",
        Uscc::check_char_for(&first17).expect("charset")
    );
    debug_assert!(Uscc::parse(&id).is_ok());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_holder_ids_pass_the_real_checks() {
        let mut rng = StdRng::seed_from_u64(7);
        let today = time_util::today_cst();
        for _ in 0..1000 {
            ResidentId::parse_on(&resident_id(&mut rng, today), today).unwrap();
            Uscc::parse(&uscc(&mut rng)).unwrap();
        }
    }
}
