//! Reading `manifest.csv` (SPEC §9): the encoding detected from the bytes (UTF-8 with or without
//! BOM, else GB18030, which spreadsheet software in China saves), the header checked against the
//! directory, then one row at a time so memory stays bounded whatever the row count.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::Encoding;

use super::limits::ManifestRows;
use crate::directory::Directory;
use crate::messages::Reason;

/// The columns every manifest has, before the field columns: the record keys the licence itself
/// uses, which no field may take.
pub const STANDARD_COLUMNS: [&str; 7] = crate::directory::RESERVED_KEYS;

pub use crate::directory::{CONFIDENCE_SUFFIX, NEEDS_REVIEW, REJECTION_REASON};

/// A column a manifest may carry beside its data, never converted: the reason a rejected-rows
/// download gives, and a draft's confidences (of a column the manifest may have).
fn is_annotation(column: &str, field_keys: &HashSet<&str>) -> bool {
    column == REJECTION_REASON
        || column
            .strip_suffix(CONFIDENCE_SUFFIX)
            .is_some_and(|data| STANDARD_COLUMNS.contains(&data) || field_keys.contains(data))
}

/// A manifest that cannot be read at all: nothing is converted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {reason}", line_words(*line))]
pub struct ManifestError {
    pub file: String,
    /// The line the problem is on; 0 for the file as a whole.
    pub line: u64,
    pub reason: Reason,
}

fn line_words(line: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(" line {line}")
    }
}

impl From<ManifestError> for crate::app::AppError {
    fn from(e: ManifestError) -> Self {
        crate::app::AppError::Explained(crate::messages::Said {
            en: e.to_string(),
            zh: e.zh(),
        })
    }
}

impl ManifestError {
    /// The error in Chinese, from the message catalogue.
    pub fn zh(&self) -> String {
        match self.line {
            0 => format!("清单：{}", self.reason.zh()),
            line => format!("清单第 {line} 行：{}", self.reason.zh()),
        }
    }
}

pub struct Manifest {
    decoder: &'static Encoding,
    columns: Vec<String>,
    /// Which columns are annotations (read past), as the header check found them.
    annotations: Vec<bool>,
    records: Records<BufReader<File>>,
    path: PathBuf,
    row_limit: u64,
    file: String,
}

/// One data row: its line in the file and its cells by column.
pub struct ManifestRow {
    pub line: u64,
    /// Each column's trimmed cell, in header order (empty for the columns a short row lacks;
    /// never an annotation: a rejection reason, a draft's confidences).
    pub cells: Vec<(String, String)>,
    /// Set when the row has a different number of cells from the header.
    pub cell_count_error: Option<crate::messages::Reason>,
}

impl ManifestRow {
    /// The trimmed cell of `column`, empty when the row lacks it.
    pub fn get(&self, column: &str) -> &str {
        self.cells
            .iter()
            .find(|(c, _)| c == column)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl Manifest {
    /// Opens `path`, detects its encoding and checks its header: the standard columns all present,
    /// every other column a field key of some licence type, no column twice. A row longer than
    /// `row_limit` bytes of the file ends the reading with an error naming its line.
    pub fn open(
        path: &Path,
        directory: &Directory,
        row_limit: u64,
    ) -> Result<Manifest, ManifestError> {
        let encoding = File::open(path)
            .and_then(detect_encoding)
            .map_err(|e| ManifestError {
                file: path.display().to_string(),
                line: 0,
                reason: Reason::FileUnreadable(e.to_string()),
            })?;
        Manifest::open_as(path, encoding, directory, row_limit)
    }

    /// The same file from its first row again, read with the encoding detected when it was
    /// opened (detecting reads the whole file).
    pub fn reopen(&self, directory: &Directory) -> Result<Manifest, ManifestError> {
        Manifest::open_as(&self.path, self.decoder, directory, self.row_limit)
    }

    /// `UTF-8` or `GB18030`, as detected.
    pub fn encoding(&self) -> &'static str {
        if self.decoder == encoding_rs::UTF_8 {
            "UTF-8"
        } else {
            self.decoder.name()
        }
    }

    fn open_as(
        path: &Path,
        encoding: &'static Encoding,
        directory: &Directory,
        row_limit: u64,
    ) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let fail = |line: u64, reason: Reason| ManifestError {
            file: file.clone(),
            line,
            reason,
        };
        let raw = File::open(path).map_err(|e| fail(0, Reason::FileUnreadable(e.to_string())))?;
        let mut records = Records::new(BufReader::with_capacity(1 << 16, raw), encoding, row_limit);
        let header = match records.next() {
            Some(Ok(header)) => header,
            Some(Err(e)) => return Err(fail(e.line, Reason::HeaderUnreadable(Box::new(e.reason)))),
            None => return Err(fail(1, Reason::EmptyManifest)),
        };
        let columns: Vec<String> = header.cells.iter().map(|c| c.trim().to_string()).collect();
        let annotations =
            check_header(&columns, directory).map_err(|reason| fail(header.line, reason))?;
        Ok(Manifest {
            decoder: encoding,
            columns,
            annotations,
            records,
            path: path.to_path_buf(),
            row_limit,
            file,
        })
    }
}

impl Iterator for Manifest {
    type Item = Result<ManifestRow, ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(e) => {
                return Some(Err(ManifestError {
                    file: self.file.clone(),
                    line: e.line,
                    reason: e.reason,
                }));
            }
        };
        let mismatch = (record.cells.len() != self.columns.len()).then_some(
            crate::messages::Reason::CellCount {
                row: record.cells.len(),
                header: self.columns.len(),
            },
        );
        let cells = self
            .columns
            .iter()
            .zip(&self.annotations)
            .zip(
                record
                    .cells
                    .into_iter()
                    .chain(std::iter::repeat(String::new())),
            )
            .filter(|((_, annotation), _)| !**annotation)
            .map(|((c, _), v)| (c.clone(), without_formula_guard(v.trim()).to_string()))
            .collect();
        Some(Ok(ManifestRow {
            line: record.line,
            cells,
            cell_count_error: mismatch,
        }))
    }
}

/// One CSV record and the line its first character is on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: u64,
    pub cells: Vec<String>,
}

/// Why the records stop: the line and what is wrong there. Nothing is read after it.
#[derive(Debug)]
pub(crate) struct RecordError {
    pub line: u64,
    pub reason: Reason,
}

/// CSV records (RFC 4180, as `csv_core` reads them) with their true line numbers.
///
/// The `csv` crate's positions are not line numbers a clerk can use: a record's position is taken
/// before the previous record's terminator is fully consumed, so after a CRLF (what Excel and
/// WPS save) every row is reported one line early, and blank lines before a record are counted
/// to the record before. [`ManifestRows`] skips the line breaks between records first, so the
/// line of a record's first byte is known, and refuses a record over the limit before it grows
/// further. The file's bytes are split as they are (the bytes CSV gives meaning to are ASCII, which
/// neither UTF-8 nor GB18030 uses inside a character) and each cell is decoded on its own, so
/// the limit counts the file's bytes, as the upload check does.
pub(crate) struct Records<R> {
    input: R,
    encoding: &'static Encoding,
    rows: ManifestRows,
    fields: Vec<u8>,
    ends: Vec<usize>,
    first: bool,
    failed: bool,
}

impl<R: BufRead> Records<R> {
    pub(crate) fn new(input: R, encoding: &'static Encoding, row_limit: u64) -> Self {
        Records {
            input,
            encoding,
            rows: ManifestRows::new(row_limit),
            fields: vec![0; 1024],
            ends: vec![0; 64],
            first: true,
            failed: false,
        }
    }

    fn read(&mut self) -> Result<Option<Record>, RecordError> {
        let io = |rows: &ManifestRows, e: std::io::Error| RecordError {
            line: rows.line(),
            reason: Reason::FileUnreadable(e.to_string()),
        };
        if std::mem::take(&mut self.first) {
            self.skip_byte_order_mark().map_err(|e| io(&self.rows, e))?;
        }
        let (mut filled, mut ended) = (0, 0);
        let line = loop {
            let input = self.input.fill_buf().map_err(|e| io(&self.rows, e))?;
            let step = self
                .rows
                .read_record(input, &mut self.fields[filled..], &mut self.ends[ended..])
                .map_err(|e| RecordError {
                    line: e.line,
                    reason: Reason::RowTooLong {
                        over_lines: e.over_lines,
                        limit: e.limit,
                    },
                })?;
            let line = self.rows.row_line();
            self.input.consume(step.read);
            filled += step.written;
            ended += step.ends;
            match step.result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    self.fields.resize(self.fields.len() * 2, 0)
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    self.ends.resize(self.ends.len() * 2, 0)
                }
                csv_core::ReadRecordResult::Record => break line,
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        };
        let mut start = 0;
        let mut cells = Vec::with_capacity(ended);
        for &end in &self.ends[..ended] {
            let (cell, _) = self
                .encoding
                .decode_without_bom_handling(&self.fields[start..end]);
            cells.push(cell.into_owned());
            start = end;
        }
        Ok(Some(Record { line, cells }))
    }
}

impl<R: BufRead> Records<R> {
    /// A byte order mark (UTF-8's or GB18030's) is not part of the first cell, and must not stop
    /// a quote after it from opening a quoted cell.
    fn skip_byte_order_mark(&mut self) -> std::io::Result<()> {
        let start = self.input.fill_buf()?;
        let marks: [&[u8]; 2] = [b"\xEF\xBB\xBF", b"\x84\x31\x95\x33"];
        if let Some(mark) = marks.iter().find(|mark| start.starts_with(mark)) {
            self.input.consume(mark.len());
        }
        Ok(())
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.read().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

/// Checks a manifest's header; answers which of its columns are annotations.
fn check_header(columns: &[String], directory: &Directory) -> Result<Vec<bool>, Reason> {
    let mut seen = HashSet::new();
    for column in columns {
        if !seen.insert(column.as_str()) {
            return Err(Reason::ColumnTwice(column.clone()));
        }
    }
    for required in STANDARD_COLUMNS {
        if !seen.contains(required) {
            return Err(Reason::ColumnMissing {
                column: required.to_string(),
                required: STANDARD_COLUMNS.join(", "),
            });
        }
    }
    let field_keys: HashSet<&str> = directory
        .types()
        .flat_map(|t| t.fields.iter().map(|f| f.key.as_str()))
        .collect();
    let annotations: Vec<bool> = columns
        .iter()
        .map(|column| is_annotation(column, &field_keys))
        .collect();
    for (column, annotation) in columns.iter().zip(&annotations) {
        if !STANDARD_COLUMNS.contains(&column.as_str())
            && !field_keys.contains(column.as_str())
            && column != NEEDS_REVIEW
            && !annotation
        {
            return Err(Reason::ColumnUnknown(column.clone()));
        }
    }
    Ok(annotations)
}

/// UTF-8 when the bytes start with its BOM or are valid UTF-8 throughout; otherwise GB18030 (of
/// which GBK and GB2312 are subsets). Read once in blocks, so a large file costs no memory.
pub fn detect_encoding(bytes: impl Read) -> std::io::Result<&'static Encoding> {
    let mut file = BufReader::with_capacity(1 << 16, bytes);
    let mut block = vec![0u8; 1 << 16];
    let mut carried = 0;
    let mut first = true;
    loop {
        let n = file.read(&mut block[carried..])?;
        let filled = carried + n;
        if first && filled >= 3 && block[..3] == [0xEF, 0xBB, 0xBF] {
            return Ok(encoding_rs::UTF_8);
        }
        first = false;
        match std::str::from_utf8(&block[..filled]) {
            Ok(_) => carried = 0,
            // A sequence cut at the block's end: carry it over to the next block.
            Err(e) if e.error_len().is_none() && n > 0 => {
                let valid = e.valid_up_to();
                block.copy_within(valid..filled, 0);
                carried = filled - valid;
            }
            Err(_) => return Ok(encoding_rs::GB18030),
        }
        if n == 0 {
            return Ok(encoding_rs::UTF_8);
        }
    }
}

/// A cell without the `'` a rejected-rows download put before a leading `=`, `+`, `-` or `@`
/// (so that a spreadsheet shows it as text): the corrected file goes back as it is.
fn without_formula_guard(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@']) => rest,
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(bytes: &[u8]) -> &'static str {
        detect_encoding(bytes).unwrap().name()
    }

    #[test]
    fn encodings_are_detected_from_the_bytes() {
        let text = "type_code,holder_name\n1,张三丰\n";
        assert_eq!(detect(text.as_bytes()), "UTF-8");
        assert_eq!(
            detect(&[b"\xEF\xBB\xBF", text.as_bytes()].concat()),
            "UTF-8"
        );
        let (gb, _, _) = encoding_rs::GB18030.encode(text);
        assert_eq!(detect(&gb), "gb18030");
        assert_eq!(detect(b""), "UTF-8");
        // A multi-byte character straddling the 64 KiB block boundary is still UTF-8.
        let mut long = vec![b'a'; (1 << 16) - 1];
        long.extend_from_slice("张".as_bytes());
        assert_eq!(detect(&long), "UTF-8");
        // GB18030 bytes after a long ASCII prefix are still found.
        let mut late = vec![b'a'; 200_000];
        late.extend_from_slice(&gb);
        assert_eq!(detect(&late), "gb18030");
    }

    #[test]
    fn a_rejection_reason_column_is_accepted_and_read_past() {
        let directory = Directory::load(Path::new("templates/directory")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        let text =
            "type_code,number,rejection_reason,holder_name,holder_id,valid_from,valid_until,scan\n\
                    t,A1,\"holder_id: the check character is wrong\",张三,i,f,u,s\n\
                    t,A2\n";
        std::fs::write(&path, text).unwrap();
        let rows: Vec<ManifestRow> = Manifest::open(&path, &directory, 64 << 10)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let columns = |row: &ManifestRow| -> Vec<String> {
            row.cells.iter().map(|(c, _)| c.clone()).collect()
        };
        let expected: Vec<String> = STANDARD_COLUMNS.iter().map(|c| c.to_string()).collect();
        assert_eq!(columns(&rows[0]), expected);
        assert_eq!(rows[0].get("holder_name"), "张三");
        assert_eq!(rows[0].get(REJECTION_REASON), "");
        assert!(rows[0].cell_count_error.is_none());
        // A short row still has every column (empty), and is told its cells are too few.
        assert_eq!(columns(&rows[1]), expected);
        assert!(rows[1].cell_count_error.is_some());
        // Any other unknown column is still refused.
        std::fs::write(&path, text.replace("rejection_reason", "no_such_column")).unwrap();
        let refused = Manifest::open(&path, &directory, 64 << 10).err().unwrap();
        assert!(
            refused.reason.en().contains("\"no_such_column\""),
            "{refused}"
        );
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    const HEADER: &str = "type_code,number,holder_name,holder_id,valid_from,valid_until,scan";

    /// Each data row's line and `number` cell, as the manifest reader reports them.
    fn rows_of(bytes: &[u8]) -> Vec<(u64, String)> {
        let directory = Directory::load(Path::new("templates/directory")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        std::fs::write(&path, bytes).unwrap();
        Manifest::open(&path, &directory, 64 << 10)
            .unwrap()
            .map(|row| {
                let row = row.unwrap();
                (row.line, row.get("number").to_string())
            })
            .collect()
    }

    fn numbered(pairs: &[(u64, &str)]) -> Vec<(u64, String)> {
        pairs.iter().map(|(l, n)| (*l, n.to_string())).collect()
    }

    #[test]
    fn every_row_has_its_true_line_whatever_the_line_endings() {
        let rows = ["t,A1,n,i,f,u,s", "t,A2,n,i,f,u,s", "t,A3,n,i,f,u,s"];
        let expected = numbered(&[(2, "A1"), (3, "A2"), (4, "A3")]);
        for ending in ["\n", "\r\n", "\r"] {
            let text = [HEADER].iter().chain(&rows).cloned().collect::<Vec<_>>();
            let with_final = text.join(ending) + ending;
            assert_eq!(rows_of(with_final.as_bytes()), expected, "{ending:?}");
            let without_final = text.join(ending);
            assert_eq!(rows_of(without_final.as_bytes()), expected, "{ending:?}");
            let bom = [b"\xEF\xBB\xBF".as_slice(), with_final.as_bytes()].concat();
            assert_eq!(rows_of(&bom), expected, "BOM, {ending:?}");
            let chinese = with_final.replace(",n,", ",张三,");
            let (gb, _, _) = encoding_rs::GB18030.encode(&chinese);
            assert_eq!(rows_of(&gb), expected, "GB18030, {ending:?}");
        }
    }

    #[test]
    fn quoted_line_breaks_and_blank_lines_keep_later_rows_on_their_lines() {
        let text = format!(
            "{HEADER}\r\nt,A1,\"two\r\nlines\",i,f,u,s\r\n\r\nt,A2,n,i,f,u,s\r\n\"t\",\"A3\",\"a\nb\rc\",i,f,u,s"
        );
        assert_eq!(
            rows_of(text.as_bytes()),
            numbered(&[(2, "A1"), (5, "A2"), (6, "A3")])
        );
        let blank_first = format!("\n\r\n{HEADER}\nt,A1,n,i,f,u,s\n");
        assert_eq!(rows_of(blank_first.as_bytes()), numbered(&[(4, "A1")]));
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn a_quoted_cell_growing_over_many_lines_stops_the_reading_at_the_line_it_starts_on() {
        let directory = Directory::load(Path::new("templates/directory")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.csv");
        let header = "type_code,number,holder_name,holder_id,valid_from,valid_until,scan";
        // Every physical line is short; the quoted cell opened on line 3 never closes.
        let manifest = format!(
            "{header}\nt,A1,n,i,f,u,s\nt,A2,\"{}",
            "short\n".repeat(2000)
        );
        std::fs::write(&path, manifest).unwrap();
        let mut rows = Manifest::open(&path, &directory, 1000).unwrap();
        assert_eq!(rows.next().unwrap().unwrap().line, 2);
        let error = rows.next().unwrap().err().unwrap();
        assert_eq!(error.line, 3);
        assert!(
            error.reason.en().contains("limit of 1000 bytes"),
            "{}",
            error.reason
        );
        assert!(rows.next().is_none(), "nothing is read after the error");
        // A long row in a GB18030 file counts the file's bytes (2 a character), not UTF-8's 3.
        let chinese = format!("{header}\rt,A1,{},i,f,u,s\r", "张".repeat(400));
        let (gb, _, _) = encoding_rs::GB18030.encode(&chinese);
        std::fs::write(&path, &gb).unwrap();
        let rows: Vec<_> = Manifest::open(&path, &directory, 820).unwrap().collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].as_ref().unwrap().get("holder_name"),
            "张".repeat(400)
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Every record of `bytes`, read as the conversion reads a manifest.
    fn read_all(bytes: &[u8]) -> Vec<Record> {
        let encoding = detect_encoding(bytes).unwrap();
        Records::new(bytes, encoding, u64::MAX)
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Line breaks as a text editor counts them: CRLF, LF or a lone CR.
    fn line_breaks(text: &str) -> u64 {
        text.replace("\r\n", "\n")
            .chars()
            .filter(|&c| c == '\n' || c == '\r')
            .count() as u64
    }

    /// What goes into cells: plain text, Chinese (one character outside the BMP), and everything
    /// CSV must quote.
    fn cell() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "Z", "7", " ", "张", "三", "𠀀", "é", "=", ",", "\"", "\n", "\r\n", "\r",
        ]);
        prop::collection::vec(pieces, 0..6).prop_map(|p| p.concat())
    }

    fn quoted(cell: &str, always: bool) -> String {
        if always || cell.contains([',', '"', '\r', '\n']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_string()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let records = read_all(&bytes);
            let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
            prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        }

        #[test]
        fn csv_like_text_never_panics(
            pieces in prop::collection::vec(
                prop::sample::select(vec![
                    "a", ",", "\"", "\r", "\n", "\r\n", "张", " ", "\u{feff}", "\"\"", "=",
                ]),
                0..80,
            ),
            gb18030 in any::<bool>(),
        ) {
            let text = pieces.concat();
            let bytes = if gb18030 {
                encoding_rs::GB18030.encode(&text).0.into_owned()
            } else {
                text.into_bytes()
            };
            let records = read_all(&bytes);
            let lines: Vec<u64> = records.iter().map(|r| r.line).collect();
            prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
        }

        #[test]
        fn every_row_of_a_valid_manifest_comes_out_once_at_its_line(
            rows in prop::collection::vec(prop::collection::vec(cell(), 3), 0..12),
            crlf in any::<bool>(),
            bom in any::<bool>(),
            gb18030 in any::<bool>(),
            final_newline in any::<bool>(),
            quote_all in any::<bool>(),
        ) {
            // The header has Chinese, so a GB18030 manifest is never valid UTF-8 by chance.
            let header = vec!["a".to_string(), "名称".to_string(), "c".to_string()];
            let ending = if crlf { "\r\n" } else { "\n" };
            let mut text = String::new();
            let mut expected = Vec::new();
            for cells in std::iter::once(&header).chain(&rows) {
                expected.push(Record { line: line_breaks(&text) + 1, cells: cells.clone() });
                let line: Vec<String> = cells.iter().map(|c| quoted(c, quote_all)).collect();
                text.push_str(&line.join(","));
                text.push_str(ending);
            }
            if !final_newline {
                text.truncate(text.len() - ending.len());
            }
            if bom {
                text.insert(0, '\u{feff}');
            }
            let bytes = if gb18030 {
                encoding_rs::GB18030.encode(&text).0.into_owned()
            } else {
                text.into_bytes()
            };
            prop_assert_eq!(read_all(&bytes), expected);
        }
    }
}
