//! Reading `manifest.csv` (SPEC §9): the encoding detected from the bytes (UTF-8 with or without
//! BOM, else GB18030, which spreadsheet software in China saves), the header checked against the
//! directory, then one row at a time so memory stays bounded whatever the row count.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use encoding_rs::Encoding;
use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::directory::Directory;

/// The columns every manifest has, before the field columns: the record keys the licence itself
/// uses, which no field may take.
pub const STANDARD_COLUMNS: [&str; 7] = crate::directory::RESERVED_KEYS;

/// A manifest that cannot be read at all: nothing is converted.
#[derive(Debug, thiserror::Error)]
#[error("{file} line {line}: {reason}")]
pub struct ManifestError {
    pub file: String,
    pub line: u64,
    pub reason: String,
}

pub struct Manifest {
    decoder: &'static Encoding,
    columns: Vec<String>,
    records: Records<Box<dyn BufRead + Send + Sync>>,
    path: PathBuf,
    file: String,
}

/// One data row: its line in the file and its cells by column.
pub struct ManifestRow {
    pub line: u64,
    /// Each column's trimmed cell, in header order.
    pub cells: Vec<(String, String)>,
    /// Set when the row has a different number of cells from the header.
    pub cell_count_error: Option<String>,
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
    /// every other column a field key of some licence type, no column twice.
    pub fn open(path: &Path, directory: &Directory) -> Result<Manifest, ManifestError> {
        let encoding = File::open(path)
            .and_then(detect_encoding)
            .map_err(|e| ManifestError {
                file: path.display().to_string(),
                line: 0,
                reason: e.to_string(),
            })?;
        Manifest::open_as(path, encoding, directory)
    }

    /// The same file from its first row again, read with the encoding detected when it was
    /// opened (detecting reads the whole file).
    pub fn reopen(&self, directory: &Directory) -> Result<Manifest, ManifestError> {
        Manifest::open_as(&self.path, self.decoder, directory)
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
    ) -> Result<Manifest, ManifestError> {
        let file = path.display().to_string();
        let fail = |line: u64, reason: String| ManifestError {
            file: file.clone(),
            line,
            reason,
        };
        let raw = File::open(path).map_err(|e| fail(0, e.to_string()))?;
        let mut records = Records::decoding(raw, encoding);
        let header = match records.next() {
            Some(Ok(header)) => header,
            Some(Err(e)) => {
                return Err(fail(
                    records.line(),
                    format!("the header row cannot be read: {e}"),
                ))
            }
            None => return Err(fail(1, "the file is empty: it has no header row".into())),
        };
        let columns: Vec<String> = header.cells.iter().map(|c| c.trim().to_string()).collect();
        check_header(&columns, directory).map_err(|reason| fail(header.line, reason))?;
        Ok(Manifest {
            decoder: encoding,
            columns,
            records,
            path: path.to_path_buf(),
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
                    line: self.records.line(),
                    reason: e.to_string(),
                }));
            }
        };
        let mismatch = (record.cells.len() != self.columns.len()).then(|| {
            format!(
                "the row has {} cells, the header {}",
                record.cells.len(),
                self.columns.len()
            )
        });
        let cells = self
            .columns
            .iter()
            .zip(record.cells)
            .map(|(c, v)| (c.clone(), v.trim().to_string()))
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

/// CSV records (RFC 4180, as `csv_core` reads them) with their true line numbers.
///
/// The `csv` crate's positions are not line numbers a clerk can use: a record's position is taken
/// before the previous record's terminator is fully consumed, so after a CRLF (what Excel and
/// WPS save) every row is reported one line early, and blank lines before a record are counted
/// to the record before. Here the line breaks csv_core would skip between records are skipped
/// first, so the line of a record's first byte is known; every consumed byte is counted, a line
/// break being `\r\n`, `\n` or a lone `\r` (the terminators csv_core accepts).
pub(crate) struct Records<R> {
    input: R,
    parser: csv_core::Reader,
    breaks: LineBreaks,
    fields: Vec<u8>,
    ends: Vec<usize>,
    first: bool,
}

impl Records<Box<dyn BufRead + Send + Sync>> {
    /// The records of `raw`, decoded from `encoding` to UTF-8 as they are read.
    pub(crate) fn decoding(
        raw: impl Read + Send + Sync + 'static,
        encoding: &'static Encoding,
    ) -> Self {
        let decoded = BufReader::with_capacity(
            1 << 16,
            DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .build(BufReader::with_capacity(1 << 16, raw)),
        );
        Records::new(Box::new(decoded))
    }
}

impl<R: BufRead> Records<R> {
    pub(crate) fn new(input: R) -> Self {
        Records {
            input,
            parser: csv_core::Reader::new(),
            breaks: LineBreaks::default(),
            fields: vec![0; 1024],
            ends: vec![0; 64],
            first: true,
        }
    }

    /// The line the reader is on.
    pub(crate) fn line(&self) -> u64 {
        self.breaks.count + 1
    }

    fn read(&mut self) -> std::io::Result<Option<Record>> {
        if !self.skip_line_breaks()? {
            return Ok(None);
        }
        let line = self.line();
        let (mut filled, mut ended) = (0, 0);
        loop {
            let input = self.input.fill_buf()?;
            let (result, read, written, ends) =
                self.parser
                    .read_record(input, &mut self.fields[filled..], &mut self.ends[ended..]);
            self.breaks.count_in(&input[..read]);
            self.input.consume(read);
            filled += written;
            ended += ends;
            match result {
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => {
                    self.fields.resize(self.fields.len() * 2, 0)
                }
                csv_core::ReadRecordResult::OutputEndsFull => {
                    self.ends.resize(self.ends.len() * 2, 0)
                }
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return Ok(None),
            }
        }
        let mut start = 0;
        let mut cells = Vec::with_capacity(ended);
        for &end in &self.ends[..ended] {
            // The input was decoded to UTF-8 and fields split only at ASCII bytes.
            cells.push(String::from_utf8_lossy(&self.fields[start..end]).into_owned());
            start = end;
        }
        if std::mem::take(&mut self.first) {
            // A byte order mark (UTF-8's, or GB18030's decoded) is not part of the first column.
            if let Some(cell) = cells.first_mut() {
                if let Some(rest) = cell.strip_prefix('\u{feff}') {
                    *cell = rest.to_string();
                }
            }
        }
        Ok(Some(Record { line, cells }))
    }

    /// Skips the line breaks before a record (blank lines, the `\n` of a CRLF), as csv_core
    /// would; false at the end of the input.
    fn skip_line_breaks(&mut self) -> std::io::Result<bool> {
        loop {
            let input = self.input.fill_buf()?;
            if input.is_empty() {
                return Ok(false);
            }
            let breaks = input
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            let more = breaks < input.len();
            self.breaks.count_in(&input[..breaks]);
            self.input.consume(breaks);
            if more {
                return Ok(true);
            }
        }
    }
}

impl<R: BufRead> Iterator for Records<R> {
    type Item = std::io::Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read().transpose()
    }
}

/// Counts line breaks in bytes read in pieces: `\r\n` is one, even split between two pieces.
#[derive(Default)]
struct LineBreaks {
    count: u64,
    after_cr: bool,
}

impl LineBreaks {
    fn count_in(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => self.count += 1,
                b'\n' if !self.after_cr => self.count += 1,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
    }
}

fn check_header(columns: &[String], directory: &Directory) -> Result<(), String> {
    let mut seen = HashSet::new();
    for column in columns {
        if !seen.insert(column.as_str()) {
            return Err(format!("column {column:?} appears twice"));
        }
    }
    for required in STANDARD_COLUMNS {
        if !seen.contains(required) {
            return Err(format!(
                "column {required:?} is missing (the header must name {})",
                STANDARD_COLUMNS.join(", ")
            ));
        }
    }
    let field_keys: HashSet<&str> = directory
        .types()
        .flat_map(|t| t.fields.iter().map(|f| f.key.as_str()))
        .collect();
    for column in columns {
        if !STANDARD_COLUMNS.contains(&column.as_str()) && !field_keys.contains(column.as_str()) {
            return Err(format!(
                "column {column:?} is not a field of any licence type in the directory"
            ));
        }
    }
    Ok(())
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
        Manifest::open(&path, &directory)
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
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Every record of `bytes`, read as the conversion reads a manifest.
    fn read_all(bytes: &[u8]) -> Vec<Record> {
        let encoding = detect_encoding(bytes).unwrap();
        Records::decoding(std::io::Cursor::new(bytes.to_vec()), encoding)
            .collect::<std::io::Result<_>>()
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
