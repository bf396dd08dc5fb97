//! Renderer 1, frozen: every licence issued under a layout naming `renderer = 1` (`standard`,
//! the directories before 2026-11-29) must re-render to the very bytes it was first issued
//! as, so a PDF handed out can be produced again and compared (docs/DESIGN.md, "Stability";
//! the known-answer hash `tests/vectors/licence.standard.pdf.sha256`). Nothing in this file may
//! change its output, not even to fix or speed it up: a better renderer is a new generation
//! and a new layout. It lives apart so that a reader sees, from the file tree, what is frozen.
//!
//! What is renderer 1's own: printpdf subsets the font and writes the file, which is then
//! deflated and its trailer `/ID` rewritten in place; the QR code is drawn as printpdf
//! rectangles; and a word wider than the line is left uncut when it begins a line. It shares
//! the page drawing (`page.rs`), line breaking (`lines.rs`) and the document helpers
//! (`document.rs`) with renderer 2, so a change there moves its bytes too: the known-answer
//! test is what catches that.

use printpdf::{Mm, Op, PaintMode, PdfDocument, PdfFont, PdfPage, Pt, Rect, WindingOrder};

use super::document::{deflate_streams, trailer_id, uncompressed};
use super::qr_form::ModuleRect;
use super::{Composed, Renderer};

/// Renderer 1 left a word wider than the line uncut when nothing preceded it on its line, as
/// at the start of the text (a long identifier ran past the border); its output stays so.
pub(super) const CUTS_A_LONG_FIRST_WORD: bool = false;

/// The QR code's dark rectangles as one printpdf fill each, in module units.
pub(super) fn qr_modules(rectangles: &[ModuleRect], width: usize) -> impl Iterator<Item = Op> + '_ {
    rectangles
        .iter()
        .map(move |&(x, top, w, h)| Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(x as f32),
                y: Pt((width - top - h) as f32),
                width: Pt(w as f32),
                height: Pt(h as f32),
                mode: Some(PaintMode::Fill),
                winding_order: Some(WindingOrder::NonZero),
            },
        })
}

/// printpdf subsets the font (parsing it again for every page), writes the file, and its
/// streams are deflated afterwards.
pub(super) fn save(renderer: &Renderer, mut doc: PdfDocument, page: Composed, id: &str) -> Vec<u8> {
    doc.resources
        .fonts
        .map
        .insert(page.font, PdfFont::new((*renderer.font).clone()));
    let page = PdfPage::new(Mm(page.width), Mm(page.height), page.ops);
    let raw = doc
        .with_pages(vec![page])
        .save(&uncompressed(), &mut Vec::new());
    let Ok(mut pdf) = lopdf::Document::load_mem(&raw) else {
        return with_trailer_id(raw, id);
    };
    deflate_streams(&mut pdf);
    let mut out = Vec::with_capacity(raw.len() / 2);
    match pdf.save_to(&mut out) {
        Ok(()) => with_trailer_id(out, id),
        Err(_) => with_trailer_id(raw, id),
    }
}

/// Replaces the trailer's `/ID` (drawn from printpdf's process-wide counter) with one derived
/// from the version identifier, of the same length, so the file is byte-identical on every render.
fn with_trailer_id(mut bytes: Vec<u8>, identifier: &str) -> Vec<u8> {
    let (first, second) = trailer_id(identifier);
    let digest = first + &second;
    let Some(start) = find_last(&bytes, b"/ID") else {
        return bytes;
    };
    let mut i = start;
    for part in 0..2 {
        let Some(open) = bytes[i..]
            .iter()
            .position(|&b| b == b'(' || b == b'<')
            .map(|p| i + p)
        else {
            return bytes;
        };
        let close_char = if bytes[open] == b'(' { b')' } else { b'>' };
        let Some(close) = bytes[open..]
            .iter()
            .position(|&b| b == close_char)
            .map(|p| open + p)
        else {
            return bytes;
        };
        let len = close - open - 1;
        let replacement: Vec<u8> = digest.bytes().skip(part * 32).cycle().take(len).collect();
        bytes[open + 1..close].copy_from_slice(&replacement);
        i = close + 1;
    }
    bytes
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}
