//! Reading `manifest.csv` (SPEC §9): the encoding detected from the bytes (UTF-8 with or without
//! BOM, else GB18030, which spreadsheet software in China saves), the header checked against the
//! directory, then one row at a time so memory stays bounded whatever the row count.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read};
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
    records: csv::StringRecordsIntoIter<Box<dyn Read + Send + Sync>>,
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
        let encoding = detect_encoding(path).map_err(|e| ManifestError {
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
        let decoded: Box<dyn Read + Send + Sync> = Box::new(BufReader::new(
            DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding))
                .build(BufReader::with_capacity(1 << 16, raw)),
        ));
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(decoded);
        let header = reader
            .headers()
            .map_err(|e| fail(1, format!("the header row cannot be read: {e}")))?;
        let columns: Vec<String> = header.iter().map(|c| c.trim().to_string()).collect();
        check_header(&columns, directory).map_err(|reason| fail(1, reason))?;
        Ok(Manifest {
            decoder: encoding,
            columns,
            records: reader.into_records(),
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
                let line = e.position().map_or(0, |p| p.line());
                return Some(Err(ManifestError {
                    file: self.file.clone(),
                    line,
                    reason: e.to_string(),
                }));
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let mismatch = (record.len() != self.columns.len()).then(|| {
            format!(
                "the row has {} cells, the header {}",
                record.len(),
                self.columns.len()
            )
        });
        let cells = self
            .columns
            .iter()
            .zip(record.iter())
            .map(|(c, v)| (c.clone(), v.trim().to_string()))
            .collect();
        Some(Ok(ManifestRow {
            line,
            cells,
            cell_count_error: mismatch,
        }))
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

/// UTF-8 when the file starts with its BOM or is valid UTF-8 throughout; otherwise GB18030 (of
/// which GBK and GB2312 are subsets). Read once in blocks, so a large file costs no memory.
pub fn detect_encoding(path: &Path) -> std::io::Result<&'static Encoding> {
    let mut file = BufReader::with_capacity(1 << 16, File::open(path)?);
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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.csv");
        std::fs::write(&path, bytes).unwrap();
        detect_encoding(&path).unwrap().name()
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
