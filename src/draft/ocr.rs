//! Text recognition by the `tesseract` program (Debian's `tesseract-ocr` with its simplified-Chinese
//! model `chi_sim`): a prepared page image goes in as PNG on stdin, its TSV report comes back,
//! and is read into lines of characters, each with the confidence of the word it was read in.

use std::io::Write;
use std::process::{Command, Stdio};

/// One recognised character and how sure Tesseract was of the word it belongs to (0–100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadChar {
    pub c: char,
    pub confidence: f32,
}

/// One line of a page, left to right.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    pub chars: Vec<ReadChar>,
    /// Left and top edges and height in pixels of the prepared image (a wrapped value's next
    /// line starts under the value, not under the labels).
    pub left: u32,
    pub top: u32,
    pub height: u32,
}

impl Line {
    pub fn text(&self) -> String {
        self.chars.iter().map(|r| r.c).collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error(
        "the tesseract program could not be started ({0}); install Debian's tesseract-ocr and \
         tesseract-ocr-chi-sim (tools/install-test-deps.sh does)"
    )]
    Missing(std::io::Error),
    #[error("tesseract failed: {0}")]
    Failed(String),
}

/// Recognises the text of a PNG image.
pub fn recognise(png: &[u8]) -> Result<Vec<Line>, OcrError> {
    let mut child = Command::new("tesseract")
        .args([
            "stdin", "stdout", "-l", "chi_sim", "--psm", "6", "--dpi", "300", "tsv",
        ])
        // Pages are read in parallel, one per core: Tesseract's own threads would only contend.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(OcrError::Missing)?;
    let mut stdin = child.stdin.take().expect("piped");
    // Written from another thread: a large image would otherwise fill the pipe while tesseract
    // waits for us to read its output.
    let png = png.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&png));
    let output = child
        .wait_with_output()
        .map_err(|e| OcrError::Failed(e.to_string()))?;
    let written = writer
        .join()
        .map_err(|_| OcrError::Failed("writer".into()))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(OcrError::Failed(
            said.lines().last().unwrap_or("").to_string(),
        ));
    }
    written.map_err(|e| OcrError::Failed(e.to_string()))?;
    Ok(lines_of_tsv(&String::from_utf8_lossy(&output.stdout)))
}

/// Reads Tesseract's TSV (level, page, block, paragraph, line, word, left, top, width, height,
/// confidence, text) into lines. Words of one line are joined without a space, as Chinese is
/// written, except where a gap separates two ASCII letters or digits.
pub fn lines_of_tsv(tsv: &str) -> Vec<Line> {
    struct Word<'a> {
        line: (u32, u32, u32),
        left: u32,
        top: u32,
        width: u32,
        height: u32,
        confidence: f32,
        text: &'a str,
    }
    let words = tsv.lines().skip(1).filter_map(|row| {
        let cells: Vec<&str> = row.split('\t').collect();
        let [level, _page, block, par, line, _word, left, top, width, height, confidence, text] =
            cells.as_slice()
        else {
            return None;
        };
        let number = |s: &str| s.parse::<u32>().ok();
        (*level == "5" && !text.trim().is_empty()).then_some(())?;
        Some(Word {
            line: (number(block)?, number(par)?, number(line)?),
            left: number(left)?,
            top: number(top)?,
            width: number(width)?,
            height: number(height)?,
            confidence: confidence.parse().ok()?,
            text: text.trim(),
        })
    });
    let mut lines: Vec<(Line, (u32, u32, u32), u32)> = Vec::new();
    for word in words {
        let same_line = lines.last().is_some_and(|(_, key, _)| *key == word.line);
        if !same_line {
            lines.push((
                Line {
                    chars: Vec::new(),
                    left: word.left,
                    top: word.top,
                    height: word.height,
                },
                word.line,
                word.left,
            ));
        }
        let (line, _, right_edge) = lines.last_mut().expect("pushed above");
        let gap = word.left.saturating_sub(*right_edge);
        let ascii_on_both_sides = line
            .chars
            .last()
            .is_some_and(|r| r.c.is_ascii_alphanumeric())
            && word.text.starts_with(|c: char| c.is_ascii_alphanumeric());
        if ascii_on_both_sides && gap * 2 > word.height {
            line.chars.push(ReadChar {
                c: ' ',
                confidence: word.confidence,
            });
        }
        line.chars.extend(word.text.chars().map(|c| ReadChar {
            c,
            confidence: word.confidence,
        }));
        line.left = line.left.min(word.left);
        line.top = line.top.min(word.top);
        line.height = line.height.max(word.height);
        *right_edge = word.left + word.width;
    }
    lines.into_iter().map(|(line, _, _)| line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_a_line_are_joined_as_chinese_is_written() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
            1\t1\t0\t0\t0\t0\t0\t0\t800\t1100\t-1\t\n\
            5\t1\t1\t1\t1\t1\t80\t100\t120\t30\t96.5\t持证单位：\n\
            5\t1\t1\t1\t1\t2\t200\t100\t200\t30\t71.0\t示范县\n\
            5\t1\t1\t1\t2\t1\t80\t150\t100\t30\t90\tAB12\n\
            5\t1\t1\t1\t2\t2\t200\t150\t100\t30\t88\tCD\n\
            5\t1\t1\t1\t2\t3\t302\t150\t100\t30\t88\tEF\n";
        let lines = lines_of_tsv(tsv);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text(), "持证单位：示范县");
        assert_eq!(lines[0].chars[5].confidence, 71.0);
        // A wide gap between ASCII words is a space; a narrow one is not.
        assert_eq!(lines[1].text(), "AB12 CDEF");
        assert_eq!((lines[1].top, lines[1].height), (150, 30));
    }

    #[test]
    fn a_malformed_report_gives_no_lines_not_a_panic() {
        assert!(lines_of_tsv("").is_empty());
        assert!(
            lines_of_tsv("header\n5\t1\tx\n5\t1\t1\t1\t1\t1\t-3\t0\t0\t0\tnan\t字\n").is_empty()
        );
    }
}
