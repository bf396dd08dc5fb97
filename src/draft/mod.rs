//! Drafting a manifest from a folder of scans (存量证照信息采集): each scan is turned upright and
//! straightened, read by Tesseract, and its printed labels matched to the type's columns. Every value is checked as conversion would check it; identifiers are corrected only
//! when their check character proves the correction. What is in doubt is written with its
//! reason in `needs_review`, and conversion refuses a row until a clerk clears that cell.

pub mod correct;
mod ocr;
mod prepare;
mod read;

use std::collections::BTreeMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use time::Date;

use crate::directory::{Directory, FieldType, HolderKind, LicenceType};
use crate::licence::{RecordInput, ValidationErrors};
use correct::Reading;
pub use ocr::OcrError;
pub use prepare::upright_jpeg;
use prepare::Turn;
pub use read::PageKind;

/// A value read with less confidence than this (0–100: the lowest Tesseract gave a word holding
/// one of its letters, digits or Chinese characters) is marked for review even when it passes
/// every check: text has no check character to prove it. In `bench draft` (200 scans clean, 200
/// degraded) wrong values were read as high as 70 and right ones from 0 to 97: a lower line
/// would let wrong values through.
pub const SURE_CONFIDENCE: f32 = 75.0;

/// Checks a drafted row as conversion will (the directory's rules, the licence font).
pub type RowCheck<'a> = dyn Fn(&RecordInput) -> Result<(), ValidationErrors> + Sync + 'a;

/// One drafted cell: the value to convert, how sure the reading was, and why it needs a look.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub value: String,
    /// Tesseract's lowest word confidence in the value (0–100); none for cells not read.
    pub confidence: Option<u8>,
    /// Why a clerk must check this cell; none when the reading is sure.
    pub doubt: Option<String>,
}

/// One scan drafted into a manifest row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DraftRow {
    /// The scan, relative to the manifest's folder.
    pub scan: String,
    /// Every column of the type's manifest row.
    pub cells: BTreeMap<String, Cell>,
    /// How far the page was turned (0, 90, 180, 270) and straightened (degrees) before reading.
    pub turned: u32,
    pub straightened: f32,
}

impl DraftRow {
    /// The columns in doubt, each with its reason.
    pub fn doubts(&self) -> Vec<(&str, &str)> {
        self.cells
            .iter()
            .filter_map(|(column, cell)| Some((column.as_str(), cell.doubt.as_deref()?)))
            .collect()
    }
}

/// A scan that was not drafted, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SkippedScan {
    pub scan: String,
    pub reason: String,
}

/// The draft of a folder: rows in scan-name order, and the scans that could not be drafted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Draft {
    pub type_code: String,
    pub columns: Vec<String>,
    pub rows: Vec<DraftRow>,
    pub skipped: Vec<SkippedScan>,
}

/// The picture files of `folder` and its subfolders (JPEG, PNG), as paths relative to `base`,
/// sorted. Links are not followed.
pub fn scans_in(folder: &Path, base: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file() && is_picture_name(&path) {
                if let Ok(relative) = path.strip_prefix(base) {
                    found.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

fn is_picture_name(path: &Path) -> bool {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(extension.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// Drafts every scan of `scans` (relative to `base`) as a licence of type `t`, on every core.
pub fn draft_scans(
    directory: &Directory,
    t: &LicenceType,
    base: &Path,
    scans: &[String],
    max_scan_bytes: u64,
    today: Date,
    check: &RowCheck<'_>,
) -> Result<Draft, OcrError> {
    let base = base
        .canonicalize()
        .map_err(|e| OcrError::Failed(format!("{}: {e}", base.display())))?;
    let outcomes: Vec<Result<Result<DraftRow, SkippedScan>, OcrError>> = scans
        .par_iter()
        .map(|scan| {
            let skip = |reason: String| {
                Ok(Err(SkippedScan {
                    scan: scan.clone(),
                    reason,
                }))
            };
            let bytes = match crate::scans::read_scan(&base, scan, max_scan_bytes) {
                Ok(read) => read.bytes,
                Err(reason) => return skip(reason.zh()),
            };
            match draft_page(directory, t, &bytes, today, check)? {
                Ok(mut row) => {
                    row.scan = scan.clone();
                    row.cells.insert("scan".into(), given(scan));
                    Ok(Ok(row))
                }
                Err(reason) => skip(reason),
            }
        })
        .collect();
    let mut draft = Draft {
        type_code: t.code.to_string(),
        columns: columns_of(t),
        rows: Vec::new(),
        skipped: Vec::new(),
    };
    for outcome in outcomes {
        match outcome? {
            Ok(row) => draft.rows.push(row),
            Err(skipped) => draft.skipped.push(skipped),
        }
    }
    Ok(draft)
}

/// The manifest columns of a type: the standard ones, then its fields.
fn columns_of(t: &LicenceType) -> Vec<String> {
    crate::directory::RESERVED_KEYS
        .iter()
        .map(|c| c.to_string())
        .chain(t.fields.iter().map(|f| f.key.clone()))
        .collect()
}

/// Reads one scan. The outer error is Tesseract failing (every scan would); the inner one is
/// why this page is no licence of the type.
pub fn draft_page(
    directory: &Directory,
    t: &LicenceType,
    bytes: &[u8],
    today: Date,
    check: &RowCheck<'_>,
) -> Result<Result<DraftRow, String>, OcrError> {
    let grey = match prepare::decode(bytes) {
        Ok(grey) => grey,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let mut other_type = None;
    let mut any_text = false;
    for turn in Turn::candidates(grey.width(), grey.height()) {
        let (page, straightened) = prepare::prepare(&grey, turn);
        let lines = ocr::recognise(&prepare::png(&page))?;
        any_text |= lines.iter().any(|l| l.chars.len() > 2);
        match read::page_kind(&lines, directory, t) {
            PageKind::Licence(_) => {
                let values = read::values(t, &lines);
                let mut row = DraftRow {
                    scan: String::new(),
                    cells: cells_of(t, &values, today),
                    turned: turn.degrees(),
                    straightened,
                };
                doubt_what_conversion_refuses(t, &mut row, check);
                return Ok(Ok(row));
            }
            PageKind::OtherType(other) => other_type = Some(other.name.clone()),
            PageKind::Unrecognised => {}
        }
        if other_type.is_some() {
            break;
        }
    }
    Ok(Err(match other_type {
        Some(name) => format!("这是一张“{name}”，不是“{}”：未起草", t.name),
        None if !any_text => "空白页：未找到文字，未起草".to_string(),
        None => format!("未找到“{}”的标题：不是本类证照或无法识别，未起草", t.name),
    }))
}

/// A cell not read from the scan (the type code, the scan's name).
fn given(value: &str) -> Cell {
    Cell {
        value: value.to_string(),
        confidence: None,
        doubt: None,
    }
}

/// Every column of the type's row from the values read.
fn cells_of(
    t: &LicenceType,
    values: &BTreeMap<String, read::ReadValue>,
    today: Date,
) -> BTreeMap<String, Cell> {
    let mut cells = BTreeMap::new();
    cells.insert("type_code".to_string(), given(t.code.as_str()));
    let missing = |printed: bool, required: bool| Cell {
        value: String::new(),
        confidence: None,
        doubt: match (printed, required) {
            (true, true) => Some("扫描件上未找到此项".to_string()),
            (false, true) => Some("证照上不印此项：请据档案填写".to_string()),
            _ => None,
        },
    };
    let read_as = |value: &read::ReadValue, reading: Reading| cell(value.confidence(), reading);
    let number = match values.get("number") {
        Some(v) => read_as(v, Reading::AsRead(correct::plain(&v.text()))),
        None => missing(true, true),
    };
    cells.insert("number".into(), number);
    let holder_name = match values.get("holder_name") {
        Some(v) => read_as(v, Reading::AsRead(correct::text(&v.text()))),
        None => missing(true, true),
    };
    cells.insert("holder_name".into(), holder_name);
    let holder_id = match values.get("holder_id") {
        Some(v) => read_as(
            v,
            match t.holder_kind {
                HolderKind::Person => correct::resident_id(&v.text(), today),
                HolderKind::Organisation => correct::uscc(&v.text()),
            },
        ),
        None => missing(true, true),
    };
    cells.insert("holder_id".into(), holder_id);
    let (from, until) = match values.get(read::VALIDITY) {
        Some(v) => validity(v),
        None => (missing(true, true), Cell::default()),
    };
    cells.insert("valid_from".into(), from);
    cells.insert("valid_until".into(), until);
    for f in &t.fields {
        let cell = match values.get(&f.key) {
            Some(v) => read_as(
                v,
                match f.field_type {
                    FieldType::Text => Reading::AsRead(correct::text(&v.text())),
                    FieldType::Date => correct::date(&v.text()),
                    FieldType::Integer => correct::integer(&v.text()),
                    FieldType::Enum => correct::one_of(&v.text(), &f.values),
                    FieldType::ResidentId => correct::resident_id(&v.text(), today),
                    FieldType::Uscc => correct::uscc(&v.text()),
                },
            ),
            None => missing(f.printed, f.required),
        };
        cells.insert(f.key.clone(), cell);
    }
    cells
}

/// A cell from a reading: in doubt when the reading is, or when it was read without confidence
/// and no check proved it (a check character, or the type's list of allowed values).
fn cell(confidence: f32, reading: Reading) -> Cell {
    let confidence_doubt =
        (confidence < SURE_CONFIDENCE).then(|| format!("识别把握不足（{confidence:.0}%），请核对"));
    let (value, doubt) = match reading {
        Reading::Corrected {
            value,
            proven: true,
            ..
        } => (value, None),
        Reading::AsRead(value) | Reading::Corrected { value, .. } => (value, confidence_doubt),
        Reading::Doubtful { value, why } => (value, Some(why)),
    };
    Cell {
        value,
        confidence: Some(confidence.clamp(0.0, 100.0) as u8),
        doubt,
    }
}

/// The validity line: `2024-03-05 至 2029-03-04`; an end of 长期 (or the type's default) is
/// written empty, as a manifest leaves it. Each end is as sure as its own characters.
fn validity(v: &read::ReadValue) -> (Cell, Cell) {
    let (from, until) = split_validity(v);
    let from = cell(from.confidence(), correct::date(&from.text()));
    let until_text = until.text();
    // 长期 (long-term) or （按规定期限） (the type's default), however misread. An end not read
    // at all is no default: the clerk must look.
    if until_text.is_empty() {
        let not_read = Reading::Doubtful {
            value: String::new(),
            why: "有效期截止日未识别".to_string(),
        };
        return (from, cell(v.confidence(), not_read));
    }
    let until = if until_text.contains('长') || until_text.contains("规定") {
        Cell {
            value: String::new(),
            confidence: Some(until.confidence().clamp(0.0, 100.0) as u8),
            doubt: None,
        }
    } else {
        cell(until.confidence(), correct::date(&until_text))
    };
    (from, until)
}

/// The two ends of a validity: around 至 (or 到); when OCR misread that word, after the
/// first date (`2024年3月5日`, or the ten characters of `2024-03-05`).
fn split_validity(v: &read::ReadValue) -> (read::ReadValue, read::ReadValue) {
    let chars: Vec<char> = v.chars.iter().map(|r| r.c).collect();
    let at = |c: char| chars.iter().position(|&x| x == c);
    let (from_end, until_start) = match at('至').or_else(|| at('到')) {
        Some(word) => (word, word + 1),
        None => {
            // Past the one misread character that stood for 至.
            let first_date_ends = at('日').map_or(10, |day| day + 1);
            (first_date_ends, first_date_ends + 1)
        }
    };
    (v.part(0, from_end), v.part(until_start, chars.len()))
}

/// Marks the cells conversion would refuse, with conversion's own reason.
fn doubt_what_conversion_refuses(t: &LicenceType, row: &mut DraftRow, check: &RowCheck<'_>) {
    let value = |column: &str| row.cells.get(column).map_or("", |c| c.value.as_str());
    let fields = t
        .fields
        .iter()
        .filter(|f| !value(&f.key).is_empty())
        .map(|f| {
            (
                f.key.clone(),
                serde_json::Value::String(value(&f.key).to_string()),
            )
        })
        .collect();
    let input = RecordInput::from_columns(value, fields);
    let Err(errors) = check(&input) else { return };
    for error in errors.0 {
        let column = crate::licence::column_of_field(&error.field);
        if let Some(cell) = row.cells.get_mut(column) {
            cell.doubt.get_or_insert(error.reason_zh);
        }
    }
}
