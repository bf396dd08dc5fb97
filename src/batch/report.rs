//! A run's report (SPEC §9): every row's outcome as CSV (for the spreadsheet the clerk started
//! from; UTF-8 with a BOM so spreadsheet software reads the Chinese right) and as JSON (the API's
//! shape). Read from the store a page at a time, so a 100,000-row report needs no more memory
//! than a page.

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
            csv.write_record([
                row.line.to_string().as_str(),
                &row.outcome,
                &row.type_code,
                &row.number,
                row.licence_id.as_deref().unwrap_or(""),
                row.column.as_deref().unwrap_or(""),
                row.reason.as_deref().unwrap_or(""),
            ])
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
