//! PDF licences (SPEC §2, §6, §11): one A4 page per version, laid out by the type's layout under
//! `templates/layouts/`, with the embedded (subset) CJK font, the QR code as vector modules and the
//! department's seal as vector art. The same version always renders to the same bytes: every
//! date, id and resource name in the file is derived from the version.
//!
//! The rooms, in the order a page passes through them: `layout` (the layout files and the
//! renderer generation each names), `lines` (the rows a licence prints and how they break),
//! `qr_form` (the QR code as rectangles; `qr_image` draws the same alone, as PNG or SVG), `page` (drawing), `font_subset` (renderer 2's font
//! subset) and `document` (writing the file). `frozen_v1` is renderer 1, whose bytes never
//! change. This file holds the [`Renderer`] that ties them together.

mod document;
mod font_subset;
mod frozen_v1;
mod layout;
mod lines;
mod pades;
mod page;
mod qr_form;
mod qr_image;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use printpdf::{FontId, Op, ParsedFont};

use crate::directory::{Directory, LicenceType};
use crate::signing::claims::FullRecord;
use crate::signing::pdf_seal::PdfSeal;
use crate::signing::qr;
use crate::time_util;

pub use layout::{Generation, Layout};
pub use qr_image::{QrImageFormat, PNG_MODULE_PX, QUIET_ZONE};

use layout::load_layouts;
use page::Page;
use qr_form::QrForm;

/// The font every licence is set in (`templates/fonts/README.md`).
pub const FONT_FILE: &str = "fonts/NotoSansCJKsc-Regular-county.otf";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("layout {file}: {reason}")]
    Layout { file: String, reason: String },
    #[error("font {0}: cannot be read or parsed")]
    Font(String),
    #[error("the licence does not fit on one page even at the smallest type size")]
    Overflow,
    #[error("QR code: {0}")]
    Qr(#[from] qr::QrError),
    #[error("writing the PDF: {0}")]
    Write(String),
    #[error("the layout signs its PDFs, and no PDF seal was given")]
    NoSeal,
    #[error("signing the PDF: {0}")]
    Sign(String),
}

/// The font and the layouts, loaded once per process and shared by every render.
pub struct Renderer {
    font: Arc<ParsedFont>,
    /// Glyph and advance of each character asked for (see `glyph`).
    glyphs: quick_cache::sync::Cache<char, Option<(u16, u16)>>,
    layouts: BTreeMap<String, Layout>,
}

/// A laid-out page, ready to be written.
pub struct Composed {
    ops: Vec<Op>,
    qr_form: Option<QrForm>,
    /// Renderer 3's seal, drawn as the signature's appearance: operations and square (mm).
    seal: Option<(Vec<Op>, [f32; 4])>,
    font: FontId,
    width: f32,
    height: f32,
    generation: Generation,
    qr_side: f32,
}

impl Composed {
    /// The QR code's side on the page in millimetres.
    pub fn qr_side(&self) -> f32 {
        self.qr_side
    }
}

impl Renderer {
    /// Loads the font and every layout under `templates/layouts/`: the directory's types name
    /// some, and licences issued under earlier directories may name others.
    pub fn load(templates: &Path, directory: &Directory) -> Result<Renderer, RenderError> {
        let font_path = templates.join(FONT_FILE);
        let bytes = std::fs::read(&font_path)
            .map_err(|_| RenderError::Font(font_path.display().to_string()))?;
        let font = ParsedFont::from_bytes(&bytes, 0, &mut Vec::new())
            .ok_or_else(|| RenderError::Font(font_path.display().to_string()))?;
        let layouts = load_layouts(&templates.join("layouts"))?;
        if let Some(t) = directory
            .types()
            .find(|t| !layouts.contains_key(&t.template))
        {
            return Err(RenderError::Layout {
                file: format!("layouts/{}.toml", t.template),
                reason: format!("missing (named by type {})", t.code),
            });
        }
        Ok(Renderer {
            glyphs: quick_cache::sync::Cache::new(GLYPH_CACHE_SIZE),
            font: Arc::new(font),
            layouts,
        })
    }

    /// The layouts loaded, with the renderer that draws each.
    pub fn layouts(&self) -> impl Iterator<Item = (&str, Generation)> {
        self.layouts
            .iter()
            .map(|(name, layout)| (name.as_str(), layout.renderer))
    }

    /// The glyph of `c` and its advance in font units, remembered: the font's own lookup scans
    /// its cmap's 2,500 groups one by one, and breaking lines asks thousands of times a page.
    fn glyph(&self, c: char) -> Option<(u16, u16)> {
        self.glyphs
            .get_or_insert_with(&c, || {
                Ok::<_, std::convert::Infallible>(
                    self.font
                        .lookup_glyph_index(u32::from(c))
                        .map(|glyph| (glyph, self.font.get_horizontal_advance(glyph))),
                )
            })
            .unwrap_or_else(|never| match never {})
    }

    /// Characters of `text` the font has no glyph for (a record containing one is refused).
    pub fn missing_glyphs(&self, text: &str) -> Vec<char> {
        let mut missing: Vec<char> = text
            .chars()
            .filter(|&c| !c.is_whitespace() && self.glyph(c).is_none())
            .collect();
        missing.dedup();
        missing
    }

    /// Width of `text` at `size` points, in millimetres.
    fn width(&self, text: &str, size: f32) -> f32 {
        let per_em = f32::from(self.font.pdf_font_metrics.units_per_em.max(1));
        let units: f32 = text
            .chars()
            .map(|c| {
                self.glyph(c)
                    .map_or(per_em / 2.0, |(_, advance)| f32::from(advance))
            })
            .sum();
        pt_to_mm(units / per_em * size)
    }

    /// Whether the type's layout signs its PDFs (renderer 3): its render needs the seal of the
    /// version's signer.
    pub fn signs(&self, licence_type: &LicenceType) -> bool {
        self.layouts
            .get(&licence_type.template)
            .is_some_and(|layout| layout.renderer.is_signed())
    }

    /// Renders one version to PDF bytes; `seal` signs it when the layout signs (else unused).
    pub fn render(
        &self,
        licence_type: &LicenceType,
        full: &FullRecord,
        qr_text: &str,
        seal: Option<&PdfSeal>,
    ) -> Result<Vec<u8>, RenderError> {
        let page = self.compose(licence_type, full, qr_text)?;
        self.save(page, full, seal)
    }

    /// Lays out the page (everything but writing the file). Public for the benchmark, which
    /// reports the two stages apart.
    pub fn compose(
        &self,
        licence_type: &LicenceType,
        full: &FullRecord,
        qr_text: &str,
    ) -> Result<Composed, RenderError> {
        let layout =
            self.layouts
                .get(&licence_type.template)
                .ok_or_else(|| RenderError::Layout {
                    file: licence_type.template.clone(),
                    reason: "not loaded".into(),
                })?;
        let font = font_id(&full.claims.cti.to_string());
        let mut page = Page::new(self, layout, font.clone());
        page.border();
        let below_title = page.title(&licence_type.name, &full.record.number);
        page.rows(below_title, &lines::rows(licence_type, full))?;
        page.qr(qr_text, &full.claims.cti.to_string())?;
        let issued = time_util::date_in_cst(time_util::from_unix(full.claims.iat));
        page.issuer(&licence_type.issuer.name, issued);
        page.footer(full.claims.cti.version);
        Ok(Composed {
            qr_side: page.qr_side,
            ops: page.ops,
            qr_form: page.qr_form,
            seal: page.seal,
            font,
            width: layout.page_width,
            height: layout.page_height,
            generation: layout.renderer,
        })
    }

    /// Writes a composed page as PDF bytes (subsetting the font, compressing the streams) with
    /// the renderer its layout names.
    pub fn save(
        &self,
        page: Composed,
        full: &FullRecord,
        seal: Option<&PdfSeal>,
    ) -> Result<Vec<u8>, RenderError> {
        let id = full.claims.cti.to_string();
        let doc = document::document(full, &id);
        match page.generation {
            Generation::Frozen1 => Ok(frozen_v1::save(self, doc, page, &id)),
            Generation::Subset2 => document::save_with_own_subset(self, doc, page, &id),
            Generation::Signed3 => {
                let seal = seal.ok_or(RenderError::NoSeal)?;
                pades::save_signed(self, doc, page, full, seal)
            }
        }
    }
}

/// The font's resource name, which printpdf also writes as the subset tag (`XXXXXX+Name`): six
/// uppercase letters, as the PDF reference wants, derived from the version so renders repeat.
fn font_id(identifier: &str) -> FontId {
    let digest = crate::hash::sha256(identifier.as_bytes());
    FontId(
        digest[..6]
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect(),
    )
}

fn pt_to_mm(pt: f32) -> f32 {
    pt * 25.4 / 72.0
}

/// `2026-11-29` as 2026年11月29日.
pub fn chinese_date(d: time::Date) -> String {
    format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
}

/// Characters whose glyphs the renderer remembers: more than the county font has.
const GLYPH_CACHE_SIZE: usize = 40_000;

/// The project's templates folder, for the render tests of every stage.
#[cfg(test)]
fn templates_for_tests() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::templates_for_tests as templates;

    #[test]
    fn a_type_naming_a_layout_that_is_not_there_is_refused_at_start() {
        let directory = Directory::load(&templates().join("directory")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(templates().join("fonts"), dir.path().join("fonts")).unwrap();
        std::fs::create_dir(dir.path().join("layouts")).unwrap();
        std::fs::copy(
            templates().join("layouts/standard.toml"),
            dir.path().join("layouts/standard.toml"),
        )
        .unwrap();
        let error = Renderer::load(dir.path(), &directory)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("layouts/signed-v3.toml") && error.contains("named by type"),
            "{error}"
        );
    }
}
