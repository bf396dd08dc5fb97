//! Limits on batch input that protect the machine rather than judge a row: a manifest row longer
//! than the limit is refused before any CSV reader would hold it whole in memory. Checked on the
//! file's bytes, so it serves an upload being unpacked, a folder on disk and the reader alike,
//! and a GB18030 row counts the same as its UTF-8 twin would not: the limit is on the file.
//!
//! What a line and a row are is decided here once: [`LineBreaks`] counts lines (`\r\n`, `\n` or
//! a lone `\r`, the terminators csv_core accepts) and [`ManifestRows`] splits rows with csv_core,
//! so a row is what the reader reads, quoted line breaks included.

use std::io::Read;

use csv_core::ReadRecordResult;

/// A manifest row over the limit: the line it starts on (from 1), whether a quoted cell carries
/// it over more lines, and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest.csv line {line}{}", self.reason())]
pub struct RowTooLong {
    pub line: u64,
    pub over_lines: bool,
    pub limit: u64,
}

impl RowTooLong {
    /// What is wrong, after the line number.
    pub fn reason(&self) -> String {
        if self.over_lines {
            format!(
                ": the row starting there runs over several lines (a quoted cell) and is longer \
                 than the limit of {} bytes",
                self.limit
            )
        } else {
            format!(" is longer than the limit of {} bytes", self.limit)
        }
    }
}

/// Counts line breaks in bytes read in pieces: `\r\n` is one, even split between two pieces, and
/// a lone `\r` is one.
#[derive(Default)]
pub(crate) struct LineBreaks {
    count: u64,
    after_cr: bool,
}

impl LineBreaks {
    pub(crate) fn count_in(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\r' => self.count += 1,
                b'\n' if !self.after_cr => self.count += 1,
                _ => {}
            }
            self.after_cr = b == b'\r';
        }
    }

    /// The line the next byte is on (from 1).
    pub(crate) fn line(&self) -> u64 {
        self.count + 1
    }
}

fn is_line_break(byte: &u8) -> bool {
    *byte == b'\r' || *byte == b'\n'
}

/// One step of [`ManifestRows::read_record`]: csv_core's result and how many bytes of input it
/// read, of output it wrote and of field ends it wrote.
pub(crate) struct Step {
    pub result: ReadRecordResult,
    pub read: usize,
    pub written: usize,
    pub ends: usize,
}

/// Splits a manifest's bytes, fed in pieces, into CSV rows (RFC 4180, as csv_core reads them),
/// knowing the line each row starts on and refusing the first row longer than `limit` bytes (its
/// end of line not counted; line breaks inside quoted cells counted). A row of a licence is a few
/// KiB at most; one line is never longer than its row, so this bounds lines too.
pub struct ManifestRows {
    parser: csv_core::Reader,
    breaks: LineBreaks,
    limit: u64,
    /// The bytes of the current row so far; None between rows.
    row: Option<u64>,
    /// The line the row being read, or the last one read, starts on.
    row_line: u64,
    /// The last byte read was a line break (inside the row, or its end).
    after_break: bool,
}

impl ManifestRows {
    pub fn new(limit: u64) -> ManifestRows {
        ManifestRows {
            parser: csv_core::Reader::new(),
            breaks: LineBreaks::default(),
            limit,
            row: None,
            row_line: 1,
            after_break: false,
        }
    }

    /// The line the next byte is on.
    pub(crate) fn line(&self) -> u64 {
        self.breaks.line()
    }

    /// The line the row being read (or last read) starts on.
    pub(crate) fn row_line(&self) -> u64 {
        self.row_line
    }

    /// Reads from `input` into `fields` and `ends` as `csv_core::Reader::read_record` does, after
    /// skipping the line breaks before a row (blank lines, the `\n` of a CRLF) itself, so that
    /// the line of a row's first byte is known. An empty `input` is the end of the file.
    pub(crate) fn read_record(
        &mut self,
        input: &[u8],
        fields: &mut [u8],
        ends: &mut [usize],
    ) -> Result<Step, RowTooLong> {
        let mut skipped = 0;
        if self.row.is_none() {
            skipped = input.iter().take_while(|b| is_line_break(b)).count();
            self.breaks.count_in(&input[..skipped]);
            if input.is_empty() || skipped == input.len() {
                let result = if input.is_empty() {
                    ReadRecordResult::End
                } else {
                    ReadRecordResult::InputEmpty
                };
                return Ok(Step {
                    result,
                    read: skipped,
                    written: 0,
                    ends: 0,
                });
            }
            self.row_line = self.line();
            self.row = Some(0);
        }
        let rest = &input[skipped..];
        let (result, read, written, ends) = self.parser.read_record(rest, fields, ends);
        self.breaks.count_in(&rest[..read]);
        if let Some(&last) = rest[..read].last() {
            self.after_break = is_line_break(&last);
        }
        let length = self.row.unwrap_or(0) + read as u64;
        self.row = Some(length);
        // A line break just read may be the row's end, which does not count.
        let end = u64::from(self.after_break);
        if length.saturating_sub(end) > self.limit {
            return Err(RowTooLong {
                line: self.row_line,
                over_lines: self.line() > self.row_line + end,
                limit: self.limit,
            });
        }
        if matches!(result, ReadRecordResult::Record | ReadRecordResult::End) {
            self.row = None;
            self.after_break = false;
        }
        Ok(Step {
            result,
            read: skipped + read,
            written,
            ends,
        })
    }

    /// The next piece of the file, when only the rows' lengths matter.
    pub fn measure(&mut self, mut bytes: &[u8]) -> Result<(), RowTooLong> {
        let (mut fields, mut ends) = ([0; 4096], [0; 256]);
        while !bytes.is_empty() {
            let step = self.read_record(bytes, &mut fields, &mut ends)?;
            bytes = &bytes[step.read..];
        }
        Ok(())
    }
}

/// Reads `manifest` to its end, refusing the first row over `limit` bytes (CLI `convert` calls
/// it on a folder's manifest; an upload's manifest is checked while it is unpacked).
pub fn check_manifest_lines(manifest: impl Read, limit: u64) -> Result<(), CheckError> {
    let mut rows = ManifestRows::new(limit);
    let mut manifest = manifest;
    let mut buffer = vec![0; 64 << 10];
    loop {
        let n = manifest.read(&mut buffer).map_err(CheckError::Read)?;
        if n == 0 {
            return Ok(());
        }
        rows.measure(&buffer[..n]).map_err(CheckError::TooLong)?;
    }
}

/// Checks the row lengths of a batch folder's `manifest.csv` before it is converted (a missing
/// manifest is left for the conversion to report).
pub fn check_folder_manifest(
    batch: &std::path::Path,
    limit: u64,
) -> Result<(), crate::app::AppError> {
    match std::fs::File::open(batch.join("manifest.csv")) {
        Ok(file) => check_manifest_lines(file, limit)
            .map_err(|e| crate::app::AppError::BadInput(e.to_string())),
        Err(_) => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    TooLong(RowTooLong),
    #[error("manifest.csv cannot be read: {0}")]
    Read(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_over_the_limit_is_named_wherever_the_pieces_break() {
        let text = b"header,a\r\nshort,1\r\nthis line is too long\nok\n";
        let whole = check_manifest_lines(&text[..], 10).unwrap_err().to_string();
        assert_eq!(
            whole,
            "manifest.csv line 3 is longer than the limit of 10 bytes"
        );
        // Fed a byte at a time, the same line is found.
        let mut rows = ManifestRows::new(10);
        let found = text.iter().find_map(|b| rows.measure(&[*b]).err());
        assert_eq!(
            found,
            Some(RowTooLong {
                line: 3,
                over_lines: false,
                limit: 10
            })
        );
        // Exactly at the limit (CR LF not counted) is fine, and so is a last line without LF,
        // however the pieces break.
        let at_limit = b"0123456789\r\n0123456789";
        check_manifest_lines(&at_limit[..], 10).unwrap();
        let mut rows = ManifestRows::new(10);
        assert!(at_limit.iter().all(|b| rows.measure(&[*b]).is_ok()));
        assert!(ManifestRows::new(10).measure(b"0123456789\r\r").is_ok());
        assert!(ManifestRows::new(10).measure(b"0123456789a\r").is_err());
        assert!(check_manifest_lines(&b"0123456789\r\n01234567890"[..], 10).is_err());
    }

    #[test]
    fn a_lone_cr_ends_a_line_as_the_reader_counts_it() {
        // A CR-only manifest (old Mac, some exports) with many short lines is fine.
        let cr_only = "type_code,number\r".to_string() + &"t,1\r".repeat(100);
        check_manifest_lines(cr_only.as_bytes(), 20).unwrap();
        // In a mixed file the long line is named by the number the reader gives it.
        let mixed = b"header\rshort\r\nok\nthis line is too long\r";
        let error = check_manifest_lines(&mixed[..], 10)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "manifest.csv line 4 is longer than the limit of 10 bytes"
        );
    }

    #[test]
    fn a_quoted_cell_over_many_short_lines_is_refused_naming_the_line_it_starts_on() {
        let manifest =
            "type_code,number\nt,1\nt,\"".to_string() + &"short\n".repeat(10) + "\"\nt,2\n";
        let error = check_manifest_lines(manifest.as_bytes(), 40)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("manifest.csv line 3"), "{error}");
        assert!(error.contains("limit of 40 bytes"), "{error}");
        // The same row under the limit passes, and so does a quote inside an unquoted cell,
        // which does not start a quoted cell.
        check_manifest_lines(manifest.as_bytes(), 80).unwrap();
        let stray_quote = "a,b\"c\n".to_string() + &"t,1\n".repeat(20);
        check_manifest_lines(stray_quote.as_bytes(), 10).unwrap();
    }
}
