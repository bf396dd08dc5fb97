//! A run's report (SPEC §9): every row's outcome as CSV (for the spreadsheet the clerk started
//! from; UTF-8 with a BOM so spreadsheet software reads the Chinese right; a rejected row's reason
//! in English and, in `reason_zh`, in Chinese) and as JSON (the API's shape). Read from the store a page at a time, so a 100,000-row report needs no more memory
//! than a page.
//!
//! A CSV cell a spreadsheet would run as a formula is written as text (see [`spreadsheet_text`]);
//! the JSON keeps every value as it was.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::Summary;
use crate::app::{App, AppError, Result};

const PAGE: i64 = 2000;

/// Writes `{base}.csv` and `{base}.json`; returns their paths.
pub async fn write(app: &App, summary: &Summary, base: &Path) -> Result<(PathBuf, PathBuf)> {
    let io = |e: std::io::Error| AppError::Config(format!("writing the report: {e}"));
    let csv_path = base.with_extension("csv");
    let json_path = base.with_extension("json");
    if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut csv_file = BufWriter::new(File::create(&csv_path).map_err(io)?);
    csv_file.write_all("\u{feff}".as_bytes()).map_err(io)?;
    let mut csv = csv::Writer::from_writer(csv_file);
    csv.write_record([
        "line",
        "outcome",
        "type_code",
        "number",
        "licence_id",
        "column",
        "reason",
        "reason_zh",
    ])
    .map_err(|e| io(e.into()))?;
    let mut json = BufWriter::new(File::create(&json_path).map_err(io)?);
    write!(
        json,
        "{{\"summary\":{},\"rows\":[",
        serde_json::to_string(summary).expect("summary serialises")
    )
    .map_err(io)?;

    let mut after = 0;
    let mut first = true;
    loop {
        let page = app.store.batch_rows(&summary.batch_id, after, PAGE).await?;
        for row in &page {
            let line = row.line.to_string();
            let cells = [
                line.as_str(),
                row.outcome.as_str(),
                &row.type_code,
                &row.number,
                row.licence_id.as_deref().unwrap_or(""),
                row.column.as_deref().unwrap_or(""),
                row.reason.as_deref().unwrap_or(""),
                row.reason_zh.as_deref().unwrap_or(""),
            ];
            csv.write_record(cells.map(spreadsheet_text).iter().map(|c| c.as_bytes()))
                .map_err(|e| io(e.into()))?;
            if !first {
                json.write_all(b",").map_err(io)?;
            }
            first = false;
            serde_json::to_writer(&mut json, row).map_err(|e| io(e.into()))?;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.line,
            _ => break,
        }
    }
    json.write_all(b"]}\n").map_err(io)?;
    json.flush().map_err(io)?;
    csv.flush().map_err(io)?;
    Ok((csv_path, json_path))
}

/// A cell as a spreadsheet shows it: one that starts with `=`, `+`, `-`, `@`, a tab or a carriage
/// return (the characters OWASP's "CSV injection" guidance lists; a tab or CR is quoted whatever
/// follows it) gets a leading `'`, so Excel, WPS and LibreOffice show it as text instead of
/// running it.
pub fn spreadsheet_text(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::spreadsheet_text;

    #[test]
    fn cells_that_start_like_formulas_become_text_and_others_stay() {
        for formula in ["=1+2", "+1", "-3", "@SUM(A1)", "\t=1", "\r=1"] {
            assert_eq!(spreadsheet_text(formula), format!("'{formula}"));
        }
        for plain in ["", "12", "张三", "a=b", " =1", "'=1"] {
            assert_eq!(spreadsheet_text(plain), plain);
        }
    }
}
