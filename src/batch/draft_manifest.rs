//! The manifest `elicence draft` writes (issue #19): the type's columns as any manifest has
//! them, then each read column's confidence and `needs_review`, the annotations the manifest
//! reader reads past or refuses a row for.

use super::manifest::{CONFIDENCE_SUFFIX, NEEDS_REVIEW};

/// Writes the draft as a manifest `convert` accepts: the type's columns, then each read
/// column's confidence and `needs_review` (conversion refuses a row until it is emptied).
pub fn write_draft(draft: &crate::draft::Draft, out: impl std::io::Write) -> csv::Result<()> {
    let read_columns: Vec<&String> = draft
        .columns
        .iter()
        .filter(|c| !matches!(c.as_str(), "type_code" | "scan"))
        .collect();
    let mut header: Vec<String> = draft.columns.clone();
    header.extend(
        read_columns
            .iter()
            .map(|c| format!("{c}{CONFIDENCE_SUFFIX}")),
    );
    header.push(NEEDS_REVIEW.to_string());
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(&header)?;
    for row in &draft.rows {
        let cell = |column: &str| row.cells.get(column).cloned().unwrap_or_default();
        let mut record: Vec<String> = draft
            .columns
            .iter()
            .map(|c| super::report::spreadsheet_text(&cell(c).value).into_owned())
            .collect();
        record.extend(
            read_columns
                .iter()
                .map(|c| cell(c).confidence.map_or(String::new(), |n| n.to_string())),
        );
        let doubts: Vec<String> = row
            .doubts()
            .into_iter()
            .map(|(column, why)| format!("{column}: {why}"))
            .collect();
        record.push(doubts.join("; "));
        csv.write_record(&record)?;
    }
    csv.flush()?;
    Ok(())
}
