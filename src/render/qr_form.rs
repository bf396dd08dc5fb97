//! The QR code as the page draws it: the symbol's dark modules merged into few rectangles, and
//! (renderer 2) those rectangles as one form XObject with a single fill. A room of its own
//! because it is geometry on the symbol from `signing::qr`, apart from the page around it.

use std::collections::BTreeMap;

use lopdf::dictionary;

use crate::signing::qr;

/// The name of the QR code's form XObject in the page's resources (renderer 2).
pub(super) const QR_FORM: &str = "QR";

/// A dark rectangle in module units: x, top row, width, height.
pub(super) type ModuleRect = (usize, usize, usize, usize);

/// The QR code as a form XObject in module units: every dark rectangle in one path, one fill.
pub(super) struct QrForm {
    content: Vec<u8>,
    width: usize,
}

impl QrForm {
    pub(super) fn new(rectangles: &[ModuleRect], width: usize) -> QrForm {
        use std::fmt::Write;
        let mut content = String::with_capacity(rectangles.len() * 14);
        for &(x, top, w, h) in rectangles {
            let _ = writeln!(content, "{x} {} {w} {h} re", width - top - h);
        }
        content.push_str("f\n");
        QrForm {
            content: content.into_bytes(),
            width,
        }
    }

    pub(super) fn into_stream(self) -> lopdf::Stream {
        let side = i64::try_from(self.width).unwrap_or(i64::MAX);
        lopdf::Stream::new(
            dictionary! {
                "Type" => "XObject",
                "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), side.into(), side.into()],
                "Resources" => lopdf::Dictionary::new(),
            },
            self.content,
        )
    }
}

/// The dark modules of a QR symbol as few rectangles (x, top row, width, height) in module units:
/// each dark run of a row is a rectangle, grown downwards while the rows below repeat the run.
pub(super) fn dark_rectangles(code: &qr::QrSymbol) -> Vec<ModuleRect> {
    let width = code.width();
    let mut open: BTreeMap<(usize, usize), usize> = BTreeMap::new(); // (start, end) → top row
    let mut rectangles = Vec::new();
    for row in 0..=width {
        let runs = if row < width {
            dark_runs(code, row)
        } else {
            Vec::new()
        };
        let ended: Vec<(usize, usize)> = open
            .keys()
            .filter(|run| !runs.contains(run))
            .copied()
            .collect();
        for run in ended {
            let top = open.remove(&run).expect("open");
            rectangles.push((run.0, top, run.1 - run.0, row - top));
        }
        for run in runs {
            open.entry(run).or_insert(row);
        }
    }
    rectangles
}

/// The runs of dark modules in one row, as (first column, column after the last).
fn dark_runs(code: &qr::QrSymbol, row: usize) -> Vec<(usize, usize)> {
    let width = code.width();
    let mut runs = Vec::new();
    let mut col = 0;
    while col < width {
        if !code.is_dark(row, col) {
            col += 1;
            continue;
        }
        let start = col;
        while col < width && code.is_dark(row, col) {
            col += 1;
        }
        runs.push((start, col));
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rectangles_cover_exactly_the_dark_modules() {
        let code = qr::qr_code("HTTPS://ZZ.EXAMPLE.GOV.CN/V/ABC").unwrap();
        let width = code.width();
        let mut covered = vec![vec![0u8; width]; width];
        for (x, top, w, h) in dark_rectangles(&code) {
            for row in covered.iter_mut().skip(top).take(h) {
                for module in row.iter_mut().skip(x).take(w) {
                    *module += 1;
                }
            }
        }
        for (row, modules) in covered.iter().enumerate() {
            for (col, &count) in modules.iter().enumerate() {
                assert_eq!(count, u8::from(code.is_dark(row, col)), "({row}, {col})");
            }
        }
    }
}
