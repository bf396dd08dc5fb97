//! Limits on batch input that protect the machine rather than judge a row: a manifest line longer
//! than the limit is refused before any CSV reader would hold it whole in memory. Checked on the
//! bytes, so it serves an upload being unpacked and a folder on disk alike.

use std::io::Read;

/// A manifest line over the limit: its number (from 1) and the limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest.csv line {line} is longer than the limit of {limit} bytes")]
pub struct LineTooLong {
    pub line: u64,
    pub limit: u64,
}

/// Follows the lines of bytes fed to it in pieces, refusing the first one over `limit` bytes
/// (its end of line not counted).
pub struct LineLengths {
    limit: u64,
    line: u64,
    length: u64,
    /// The last piece ended with a CR, not yet counted: it ends the line if an LF follows.
    held_cr: bool,
}

impl LineLengths {
    pub fn new(limit: u64) -> LineLengths {
        LineLengths {
            limit,
            line: 1,
            length: 0,
            held_cr: false,
        }
    }

    /// The next piece of the file.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), LineTooLong> {
        if std::mem::take(&mut self.held_cr) && bytes.first() != Some(&b'\n') {
            self.grow(1)?;
        }
        while !bytes.is_empty() {
            let Some(at) = bytes.iter().position(|&b| b == b'\n') else {
                // A CR at the end of a piece may be the first half of a CR LF.
                let held = bytes.last() == Some(&b'\r');
                self.held_cr = held;
                return self.grow(bytes.len() - usize::from(held));
            };
            // A CR before the LF belongs to the line end, not to the line.
            let line = &bytes[..at];
            self.grow(line.len() - usize::from(line.last() == Some(&b'\r')))?;
            self.line += 1;
            self.length = 0;
            bytes = &bytes[at + 1..];
        }
        Ok(())
    }

    fn grow(&mut self, by: usize) -> Result<(), LineTooLong> {
        self.length += by as u64;
        if self.length > self.limit {
            return Err(LineTooLong {
                line: self.line,
                limit: self.limit,
            });
        }
        Ok(())
    }
}

/// Reads `manifest` to its end, refusing the first line over `limit` bytes (CLI `convert` calls
/// it on a folder's manifest; an upload's manifest is checked while it is unpacked).
pub fn check_manifest_lines(manifest: impl Read, limit: u64) -> Result<(), CheckError> {
    let mut lines = LineLengths::new(limit);
    let mut manifest = manifest;
    let mut buffer = vec![0; 64 << 10];
    loop {
        let n = manifest.read(&mut buffer).map_err(CheckError::Read)?;
        if n == 0 {
            return Ok(());
        }
        lines.feed(&buffer[..n]).map_err(CheckError::TooLong)?;
    }
}

/// Checks the line lengths of a batch folder's `manifest.csv` before it is converted (a missing
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
    TooLong(LineTooLong),
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
        let mut lines = LineLengths::new(10);
        let found = text.iter().find_map(|b| lines.feed(&[*b]).err());
        assert_eq!(found, Some(LineTooLong { line: 3, limit: 10 }));
        // Exactly at the limit (CR LF not counted) is fine, and so is a last line without LF,
        // however the pieces break.
        let at_limit = b"0123456789\r\n0123456789";
        check_manifest_lines(&at_limit[..], 10).unwrap();
        let mut lines = LineLengths::new(10);
        assert!(at_limit.iter().all(|b| lines.feed(&[*b]).is_ok()));
        assert!(LineLengths::new(10).feed(b"0123456789\r\r").is_err());
        assert!(check_manifest_lines(&b"0123456789\r\n01234567890"[..], 10).is_err());
    }
}
