//! PDF licences (SPEC §2, §6, §11): one A4 page per version, laid out by the type's layout under
//! `templates/layouts/`, with the embedded (subset) CJK font, the QR code as vector modules and the
//! department's seal as vector art. The same version always renders to the same bytes: every
//! date, id and resource name in the file is derived from the version.

use std::collections::BTreeMap;
use std::f32::consts::PI;
use std::path::Path;
use std::sync::Arc;

use lopdf::{dictionary, Object};
use printpdf::{
    Codepoint, Color, FontId, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFont,
    PdfFontHandle, PdfPage, PdfSaveOptions, Point, Polygon, PolygonRing, Pt, Rect, Rgb, TextItem,
    TextMatrix, WindingOrder, XObjectId, XObjectTransform,
};
use serde::Deserialize;

use crate::directory::{Directory, HolderKind, LicenceType};
use crate::licence::HolderId;
use crate::signing::claims::FullRecord;
use crate::signing::qr;
use crate::time_util;

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
}

/// A layout file (`templates/layouts/{name}.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// The renderer that draws this layout: 1 or 2 (`templates/layouts/standard.toml`).
    pub renderer: u8,
    pub page_width: f32,
    pub page_height: f32,
    pub margin: f32,
    pub padding: f32,
    pub border_colour: String,
    pub text_colour: String,
    pub muted_colour: String,
    pub title_size: f32,
    pub number_size: f32,
    pub label_size: f32,
    pub value_size: f32,
    pub min_value_size: f32,
    pub label_width: f32,
    pub line_height: f32,
    pub row_gap: f32,
    pub qr_size: f32,
    pub seal_radius: f32,
    pub seal_colour: String,
    pub footer: String,
}

fn colour(hex: &str) -> Option<Color> {
    let hex = hex.strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let channel = |i: usize| {
        u8::from_str_radix(&hex[i..i + 2], 16)
            .ok()
            .map(|v| f32::from(v) / 255.0)
    };
    Some(Color::Rgb(Rgb {
        r: channel(0)?,
        g: channel(2)?,
        b: channel(4)?,
        icc_profile: None,
    }))
}

impl Layout {
    fn check(&self) -> Result<(), String> {
        for (name, value) in [
            ("border_colour", &self.border_colour),
            ("text_colour", &self.text_colour),
            ("muted_colour", &self.muted_colour),
            ("seal_colour", &self.seal_colour),
        ] {
            if colour(value).is_none() {
                return Err(format!("{name} {value:?} is not #rrggbb"));
            }
        }
        let sizes = [
            self.page_width,
            self.page_height,
            self.title_size,
            self.number_size,
            self.label_size,
            self.value_size,
            self.min_value_size,
            self.label_width,
            self.line_height,
            self.qr_size,
            self.seal_radius,
        ];
        if sizes.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
            return Err("sizes must be positive numbers".into());
        }
        if !matches!(self.renderer, 1 | 2) {
            return Err(format!("renderer {} is not 1 or 2", self.renderer));
        }
        if self.min_value_size > self.value_size {
            return Err("min_value_size is larger than value_size".into());
        }
        Ok(())
    }
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
    font: FontId,
    width: f32,
    height: f32,
    renderer: u8,
}

/// A row of the licence: a label and its value.
struct Row {
    label: String,
    value: String,
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
    pub fn layouts(&self) -> impl Iterator<Item = (&str, u8)> {
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

    /// Breaks `text` into lines no wider than `max` mm: between any two CJK characters, at spaces
    /// otherwise, and inside a word only when the word alone is too wide. Renderer 1 left such a
    /// word uncut when nothing preceded it on its line, as at the start of the text (a long
    /// identifier ran past the border); its output stays as it was, renderer 2 cuts it.
    fn wrap(&self, text: &str, size: f32, max: f32, renderer: u8) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for piece in break_opportunities(text) {
            let candidate = format!("{line}{piece}");
            let alone = line.is_empty();
            if alone || self.width(candidate.trim_end(), size) <= max {
                line = candidate;
                if renderer == 1 || !alone {
                    continue;
                }
            } else {
                lines.push(line.trim_end().to_string());
                line = piece.trim_start().to_string();
            }
            // A single piece wider than the line (a long code): cut it character by character.
            while self.width(&line, size) > max && line.chars().count() > 1 {
                let mut head = String::new();
                for c in line.chars() {
                    if self.width(&format!("{head}{c}"), size) > max {
                        break;
                    }
                    head.push(c);
                }
                let rest = line[head.len()..].to_string();
                lines.push(head);
                line = rest;
            }
        }
        if !line.trim().is_empty() || lines.is_empty() {
            lines.push(line.trim_end().to_string());
        }
        lines
    }

    /// Renders one version to PDF bytes.
    pub fn render(
        &self,
        licence_type: &LicenceType,
        full: &FullRecord,
        qr_text: &str,
    ) -> Result<Vec<u8>, RenderError> {
        let page = self.compose(licence_type, full, qr_text)?;
        self.save(page, full)
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
        page.rows(below_title, &rows(licence_type, full))?;
        page.qr(qr_text, &full.claims.cti.to_string())?;
        let issued = time_util::date_in_cst(time_util::from_unix(full.claims.iat));
        page.issuer(&licence_type.issuer.name, issued);
        page.footer(full.claims.cti.version);
        Ok(Composed {
            ops: page.ops,
            qr_form: page.qr_form,
            font,
            width: layout.page_width,
            height: layout.page_height,
            renderer: layout.renderer,
        })
    }

    /// Writes a composed page as PDF bytes (subsetting the font, compressing the streams) with
    /// the renderer its layout names.
    pub fn save(&self, page: Composed, full: &FullRecord) -> Result<Vec<u8>, RenderError> {
        let id = full.claims.cti.to_string();
        let doc = document(full, &id);
        match page.renderer {
            1 => Ok(self.save_subset_by_printpdf(doc, page, &id)),
            _ => self.save_subset_once(doc, page, &id),
        }
    }

    /// Renderer 1: printpdf subsets the font (parsing it again for every page), writes the
    /// file, and its streams are deflated afterwards.
    fn save_subset_by_printpdf(&self, mut doc: PdfDocument, page: Composed, id: &str) -> Vec<u8> {
        doc.resources
            .fonts
            .map
            .insert(page.font, PdfFont::new((*self.font).clone()));
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

    /// Renderer 2: printpdf lays out the document; the font is subset here, once per page
    /// with `subsetter` from bytes parsed at start-up, and written as a CID-keyed CFF
    /// (Type0, Identity-H, with /W and /ToUnicode).
    fn save_subset_once(
        &self,
        mut doc: PdfDocument,
        page: Composed,
        id: &str,
    ) -> Result<Vec<u8>, RenderError> {
        let mut glyphs = PageGlyphs::default();
        let ops = glyphs.encode(self, page.ops);
        let mut pdf = doc
            .with_pages(vec![PdfPage::new(Mm(page.width), Mm(page.height), ops)])
            .to_lopdf_document(&uncompressed(), &mut Vec::new());
        let font = self.embed_subset(&mut pdf, &page.font, &glyphs)?;
        page_resources(&mut pdf, b"Font")?.set(page.font.0.as_bytes(), Object::Reference(font));
        if let Some(form) = page.qr_form {
            let form = pdf.add_object(form.into_stream());
            page_resources(&mut pdf, b"XObject")?.set(QR_FORM, Object::Reference(form));
        }
        deflate_streams(&mut pdf);
        let (first, second) = trailer_id(id);
        pdf.trailer.set(
            "ID",
            vec![
                Object::string_literal(first),
                Object::string_literal(second),
            ],
        );
        let mut out = Vec::with_capacity(48 * 1024);
        pdf.save_to(&mut out)
            .map_err(|e| RenderError::Write(e.to_string()))?;
        Ok(out)
    }

    /// Adds the page's font subset and returns the Type0 font's object id.
    fn embed_subset(
        &self,
        pdf: &mut lopdf::Document,
        font: &FontId,
        glyphs: &PageGlyphs,
    ) -> Result<lopdf::ObjectId, RenderError> {
        // The bytes the font was parsed from, which printpdf's face keeps.
        let source = self
            .font
            .source_bytes()
            .ok_or_else(|| RenderError::Write("the font's bytes were not kept".into()))?;
        let program = subsetter::subset(source.as_slice(), 0, &glyphs.remapper)
            .map_err(|e| RenderError::Write(format!("subsetting the font: {e:?}")))?;
        let cff = printpdf::extract_cid_keyed_cff(&program, 0)
            .ok_or_else(|| RenderError::Write("the font subset is not a CID-keyed CFF".into()))?;
        let metrics = &self.font.pdf_font_metrics;
        let per_em = f32::from(metrics.units_per_em.max(1));
        let scaled = |units: f32| Object::Integer((units * 1000.0 / per_em).round() as i64);
        let name = format!(
            "{}+{}",
            font.0,
            self.font
                .font_name
                .as_deref()
                .unwrap_or("NotoSansCJKsc-Regular")
        );
        // Left uncompressed: deflate saves 8 % of a CFF program and costs a fifth of the render.
        let file = pdf.add_object(
            lopdf::Stream::new(dictionary! { "Subtype" => "CIDFontType0C" }, cff)
                .with_compression(false),
        );
        let ascent = f32::from(metrics.ascender);
        let descriptor = pdf.add_object(dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => Object::Name(name.clone().into_bytes()),
            "Flags" => 4,
            "FontBBox" => [metrics.x_min, metrics.y_min, metrics.x_max, metrics.y_max]
                .map(|v| scaled(f32::from(v)))
                .to_vec(),
            "ItalicAngle" => 0,
            "Ascent" => scaled(ascent),
            "Descent" => scaled(f32::from(metrics.descender)),
            "CapHeight" => scaled(self.font.font_metrics.cap_height.unwrap_or(ascent)),
            "StemV" => 80,
            "FontFile3" => Object::Reference(file),
        });
        // Codes run 1..=n in order of first use, so one /W run covers them all.
        let widths: Vec<Object> = glyphs
            .used
            .iter()
            .map(|glyph| scaled(f32::from(glyph.advance)))
            .collect();
        let cid_font = pdf.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType0",
            "BaseFont" => Object::Name(name.clone().into_bytes()),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => Object::Reference(descriptor),
            "DW" => 1000,
            "W" => vec![Object::Integer(1), Object::Array(widths)],
        });
        let to_unicode = printpdf::ToUnicodeCMap {
            mappings: glyphs
                .used
                .iter()
                .zip(1u32..)
                .map(|(glyph, code)| (code, vec![u32::from(glyph.c)]))
                .collect(),
        }
        .to_cmap_string(&font.0);
        let cmap = pdf.add_object(lopdf::Stream::new(
            lopdf::Dictionary::new(),
            to_unicode.into_bytes(),
        ));
        Ok(pdf.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type0",
            "BaseFont" => Object::Name(name.into_bytes()),
            "Encoding" => "Identity-H",
            "DescendantFonts" => vec![Object::Reference(cid_font)],
            "ToUnicode" => Object::Reference(cmap),
        }))
    }
}

/// The document around the page, its metadata derived from the version so renders repeat.
fn document(full: &FullRecord, id: &str) -> PdfDocument {
    let mut doc = PdfDocument::new(&format!("{} {}", full.licence_name, full.record.number));
    // The version's issue time, not the clock (printpdf's default is 1970 or now).
    let info = &mut doc.metadata.info;
    if let Ok(issued) = printpdf::DateTime::from_unix_timestamp(full.claims.iat) {
        info.creation_date = issued;
        info.modification_date = issued;
        info.metadata_date = issued;
    }
    info.identifier = id.to_string();
    info.author = full.claims.iss.to_string();
    info.creator = "elicence".into();
    info.producer = "elicence".into();
    info.subject = id.to_string();
    doc
}

/// Characters whose glyphs the renderer remembers: more than the county font has.
const GLYPH_CACHE_SIZE: usize = 40_000;

fn load_layouts(folder: &Path) -> Result<BTreeMap<String, Layout>, RenderError> {
    let fail = |file: &Path, reason: String| RenderError::Layout {
        file: file.display().to_string(),
        reason,
    };
    let entries = std::fs::read_dir(folder).map_err(|e| fail(folder, e.to_string()))?;
    let mut layouts = BTreeMap::new();
    for entry in entries {
        let file = entry.map_err(|e| fail(folder, e.to_string()))?.path();
        let (Some(name), Some("toml")) = (
            file.file_stem().and_then(|n| n.to_str()),
            file.extension().and_then(|e| e.to_str()),
        ) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).map_err(|e| fail(&file, e.to_string()))?;
        let layout: Layout = toml::from_str(&text).map_err(|e| fail(&file, e.to_string()))?;
        layout.check().map_err(|reason| fail(&file, reason))?;
        layouts.insert(name.to_string(), layout);
    }
    Ok(layouts)
}

/// The glyphs a renderer-2 page shows, numbered in order of first use: code `n` is the `n`-th
/// distinct glyph (the subset's glyph id and, the subset being CID-keyed with an identity
/// charset, its CID too); code 0 stays `.notdef`.
#[derive(Default)]
struct PageGlyphs {
    remapper: subsetter::GlyphRemapper,
    /// `used[n - 1]`: what code `n` stands for.
    used: Vec<Glyph>,
}

struct Glyph {
    c: char,
    /// In font units.
    advance: u16,
}

impl PageGlyphs {
    /// Rewrites the page's text as glyph codes of the page's own subset.
    fn encode(&mut self, renderer: &Renderer, ops: Vec<Op>) -> Vec<Op> {
        ops.into_iter()
            .map(|op| match op {
                Op::ShowText { items } => Op::ShowText {
                    items: items
                        .into_iter()
                        .map(|item| match item {
                            TextItem::Text(text) => TextItem::GlyphIds(self.codes(renderer, &text)),
                            other => other,
                        })
                        .collect(),
                },
                other => other,
            })
            .collect()
    }

    fn codes(&mut self, renderer: &Renderer, text: &str) -> Vec<Codepoint> {
        text.chars()
            .map(|c| {
                let (original, advance) = renderer.glyph(c).unwrap_or_default();
                let code = self.remapper.remap(original);
                if usize::from(code) > self.used.len() {
                    self.used.push(Glyph { c, advance });
                }
                Codepoint::new(code, 0.0)
            })
            .collect()
    }
}

/// printpdf's save options for a file written uncompressed: its own optimisation deflates at
/// zlib level 9, two thirds of the render time; `deflate_streams` does it at level 2 instead
/// (3 % larger, a tenth of the time; measured with `bench render`).
fn uncompressed() -> PdfSaveOptions {
    PdfSaveOptions {
        optimize: false,
        ..Default::default()
    }
}

/// One of the page's resource dictionaries (/Font, /XObject), which printpdf always writes.
fn page_resources<'a>(
    pdf: &'a mut lopdf::Document,
    kind: &[u8],
) -> Result<&'a mut lopdf::Dictionary, RenderError> {
    let missing = |what: &str| RenderError::Write(format!("printpdf wrote no {what}"));
    let page = *pdf
        .get_pages()
        .values()
        .next()
        .ok_or_else(|| missing("page"))?;
    let reference = |dict: lopdf::Result<&lopdf::Dictionary>, key: &[u8]| {
        dict.and_then(|d| d.get(key)).and_then(Object::as_reference)
    };
    let resources =
        reference(pdf.get_dictionary(page), b"Resources").map_err(|_| missing("page resources"))?;
    let dictionary =
        reference(pdf.get_dictionary(resources), kind).map_err(|_| missing("resources"))?;
    pdf.get_dictionary_mut(dictionary)
        .map_err(|_| missing("resources"))
}

/// The name of the QR code's form XObject in the page's resources (renderer 2).
const QR_FORM: &str = "QR";

/// The QR code as a form XObject in module units: every dark rectangle in one path, one fill.
struct QrForm {
    content: Vec<u8>,
    width: usize,
}

impl QrForm {
    fn new(rectangles: &[(usize, usize, usize, usize)], width: usize) -> QrForm {
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

    fn into_stream(self) -> lopdf::Stream {
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
fn dark_rectangles(code: &qr::QrSymbol) -> Vec<(usize, usize, usize, usize)> {
    let width = code.width();
    let mut open: BTreeMap<(usize, usize), usize> = BTreeMap::new(); // (start, end) → top row
    let mut rectangles = Vec::new();
    for row in 0..=width {
        let mut runs = Vec::new();
        let mut col = 0;
        while row < width && col < width {
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

/// Pieces of text between which a line may break: each CJK character alone, runs of other
/// characters with their trailing space.
fn break_opportunities(text: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        let cjk = u32::from(c) >= 0x2E80;
        if cjk || c == ' ' {
            if c == ' ' {
                word.push(c);
            }
            if !word.is_empty() {
                pieces.push(std::mem::take(&mut word));
            }
            if cjk {
                pieces.push(c.to_string());
            }
        } else {
            word.push(c);
        }
    }
    if !word.is_empty() {
        pieces.push(word);
    }
    pieces
}

/// `2026-11-29` as 2026年11月29日.
pub fn chinese_date(d: time::Date) -> String {
    format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
}

/// The rows a licence prints: holder, id, the printed fields in directory order, validity.
fn rows(licence_type: &LicenceType, full: &FullRecord) -> Vec<Row> {
    let record = &full.record;
    let (holder_label, id_label) = match licence_type.holder_kind {
        HolderKind::Person => ("持证人", "公民身份号码"),
        HolderKind::Organisation => ("持证单位", "统一社会信用代码"),
    };
    let holder_id = match &record.holder.id {
        HolderId::Person(id) => id.to_string(),
        HolderId::Organisation(id) => id.to_string(),
    };
    let mut rows = vec![
        Row {
            label: holder_label.into(),
            value: record.holder.name.clone(),
        },
        Row {
            label: id_label.into(),
            value: holder_id,
        },
    ];
    for def in licence_type.fields.iter().filter(|f| f.printed) {
        if let Some(value) = record.fields.get(&def.key) {
            let value = match def.field_type {
                crate::directory::FieldType::Date => time_util::parse_date(&value.to_string())
                    .map_or_else(|| value.to_string(), chinese_date),
                _ => value.to_string(),
            };
            rows.push(Row {
                label: def.label.clone(),
                value,
            });
        }
    }
    let until = record
        .valid_until
        .map_or_else(|| "长期".to_string(), chinese_date);
    rows.push(Row {
        label: "有效期".into(),
        value: format!("{} 至 {}", chinese_date(record.valid_from), until),
    });
    rows
}

/// The page being drawn: operations in millimetre coordinates from the bottom left.
struct Page<'a> {
    renderer: &'a Renderer,
    layout: &'a Layout,
    font: FontId,
    ops: Vec<Op>,
    /// Renderer 2 draws the QR code as a form XObject.
    qr_form: Option<QrForm>,
}

fn point(x: f32, y: f32) -> Point {
    Point {
        x: Mm(x).into(),
        y: Mm(y).into(),
    }
}

fn ring(points: impl IntoIterator<Item = (f32, f32)>) -> PolygonRing {
    PolygonRing {
        points: points
            .into_iter()
            .map(|(x, y)| LinePoint {
                p: point(x, y),
                bezier: false,
            })
            .collect(),
    }
}

impl<'a> Page<'a> {
    fn new(renderer: &'a Renderer, layout: &'a Layout, font: FontId) -> Page<'a> {
        Page {
            renderer,
            layout,
            font,
            ops: Vec::new(),
            qr_form: None,
        }
    }

    fn colour(&self, hex: &str) -> Color {
        colour(hex).expect("checked when the layout was loaded")
    }

    fn left(&self) -> f32 {
        self.layout.margin + self.layout.padding
    }

    fn right(&self) -> f32 {
        self.layout.page_width - self.layout.margin - self.layout.padding
    }

    fn top(&self) -> f32 {
        self.layout.page_height - self.layout.margin - self.layout.padding
    }

    /// Text with its left end at (x, y) (baseline), in `colour`.
    fn text(&mut self, text: &str, size: f32, x: f32, y: f32, colour: &str) {
        let colour = self.colour(colour);
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::External(self.font.clone()),
                size: Pt(size),
            },
            Op::SetFillColor { col: colour },
            Op::SetTextCursor { pos: point(x, y) },
            Op::ShowText {
                items: vec![TextItem::Text(text.to_string())],
            },
            Op::EndTextSection,
        ]);
    }

    fn centred(&mut self, text: &str, size: f32, centre_x: f32, y: f32, colour: &str) {
        let width = self.renderer.width(text, size);
        self.text(text, size, centre_x - width / 2.0, y, colour);
    }

    fn rectangle(&mut self, x: f32, y: f32, w: f32, h: f32, thickness: f32, colour: &str) {
        let colour = self.colour(colour);
        self.ops.extend([
            Op::SetOutlineColor { col: colour },
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawPolygon {
                polygon: Polygon {
                    rings: vec![ring([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])],
                    mode: PaintMode::Stroke,
                    winding_order: WindingOrder::NonZero,
                },
            },
        ]);
    }

    fn border(&mut self) {
        let l = self.layout;
        let (w, h, m) = (l.page_width, l.page_height, l.margin);
        self.rectangle(m, m, w - 2.0 * m, h - 2.0 * m, 2.2, &l.border_colour);
        self.rectangle(
            m + 2.2,
            m + 2.2,
            w - 2.0 * m - 4.4,
            h - 2.0 * m - 4.4,
            0.6,
            &l.border_colour,
        );
    }

    /// The letter-spaced title and the licence number under it; returns where the rows may start.
    fn title(&mut self, name: &str, number: &str) -> f32 {
        let l = self.layout;
        let centre = l.page_width / 2.0;
        // Letter-spaced, as licence titles are printed: each character placed on its own.
        let size = l.title_size;
        let spacing = pt_to_mm(size) * 0.35;
        let chars: Vec<char> = name.chars().collect();
        let total: f32 = chars
            .iter()
            .map(|c| self.renderer.width(&c.to_string(), size))
            .sum::<f32>()
            + spacing * (chars.len().saturating_sub(1)) as f32;
        let mut x = centre - total / 2.0;
        let y = self.top() - pt_to_mm(size) - 4.0;
        for c in chars {
            let s = c.to_string();
            self.text(&s, size, x, y, &l.text_colour);
            x += self.renderer.width(&s, size) + spacing;
        }
        let number_line = format!("证照编号：{number}");
        let lines = self.renderer.wrap(
            &number_line,
            l.number_size,
            self.right() - self.left(),
            l.renderer,
        );
        let mut y = y - 11.0;
        for line in &lines {
            self.centred(line, l.number_size, centre, y, &l.muted_colour);
            y -= pt_to_mm(l.number_size) * l.line_height;
        }
        y - 8.0
    }

    /// The label/value rows between the title and the QR code; the value size shrinks in half
    /// points until everything fits.
    fn rows(&mut self, top: f32, rows: &[Row]) -> Result<(), RenderError> {
        let l = self.layout;
        let bottom = self.layout.margin + self.layout.padding + l.qr_size + 18.0;
        let value_x = self.left() + 6.0 + l.label_width;
        let value_width = self.right() - 6.0 - value_x;
        let mut size = l.value_size;
        let laid_out = loop {
            let lines: Vec<Vec<String>> = rows
                .iter()
                .map(|r| self.renderer.wrap(&r.value, size, value_width, l.renderer))
                .collect();
            let gap = l.row_gap * size / l.value_size;
            let height: f32 = lines
                .iter()
                .map(|ls| ls.len() as f32 * pt_to_mm(size) * l.line_height + gap)
                .sum();
            if top - height >= bottom {
                break lines;
            }
            size -= 0.5;
            if size < l.min_value_size {
                return Err(RenderError::Overflow);
            }
        };
        let label_size = l.label_size.min(size + 1.0);
        let line = pt_to_mm(size) * l.line_height;
        let gap = l.row_gap * size / l.value_size;
        let mut y = top;
        for (row, lines) in rows.iter().zip(&laid_out) {
            let baseline = y - pt_to_mm(size);
            self.text(
                &row.label,
                label_size,
                self.left() + 6.0,
                baseline,
                &l.muted_colour,
            );
            for (i, text) in lines.iter().enumerate() {
                self.text(
                    text,
                    size,
                    value_x,
                    baseline - i as f32 * line,
                    &l.text_colour,
                );
            }
            y -= lines.len() as f32 * line + gap;
            let rule = y + gap / 2.0;
            self.hairline(self.left() + 6.0, self.right() - 6.0, rule);
        }
        Ok(())
    }

    fn hairline(&mut self, x1: f32, x2: f32, y: f32) {
        let colour = self.colour("#e5e6eb");
        self.ops.extend([
            Op::SetOutlineColor { col: colour },
            Op::SetOutlineThickness { pt: Pt(0.4) },
            Op::DrawPolygon {
                polygon: Polygon {
                    rings: vec![ring([(x1, y), (x2, y)])],
                    mode: PaintMode::Stroke,
                    winding_order: WindingOrder::NonZero,
                },
            },
        ]);
    }

    /// The QR code as vector modules (one rectangle per horizontal run of dark modules, all in
    /// one path), with the caption and the identifier under it.
    fn qr(&mut self, text: &str, identifier: &str) -> Result<(), RenderError> {
        let l = self.layout;
        let code = qr::qr_code(text)?;
        let width = code.width();
        let x0 = self.left() + 4.0;
        let y0 = l.margin + l.padding + 12.0;
        let module = l.qr_size / width as f32;
        // Drawn in module units under a scaling matrix: integer coordinates keep the content
        // stream (and the PDF) small.
        let rectangles = dark_rectangles(&code);
        let ops = rectangles.iter().map(|&(x, top, w, h)| Op::DrawRectangle {
            rectangle: Rect {
                x: Pt(x as f32),
                y: Pt((width - top - h) as f32),
                width: Pt(w as f32),
                height: Pt(h as f32),
                mode: Some(PaintMode::Fill),
                winding_order: Some(WindingOrder::NonZero),
            },
        });
        let black = self.colour("#000000");
        let scale = Pt::from(Mm(module)).0;
        let (ox, oy) = (Pt::from(Mm(x0)).0, Pt::from(Mm(y0)).0);
        self.ops.extend([
            Op::SaveGraphicsState,
            Op::SetTransformationMatrix {
                matrix: printpdf::CurTransMat::Raw([scale, 0.0, 0.0, scale, ox, oy]),
            },
            Op::SetFillColor { col: black },
        ]);
        if self.layout.renderer == 1 {
            self.ops.extend(ops);
        } else {
            // One path in a form XObject written here: printpdf would write a fill per
            // rectangle and format every coordinate as a float, a fifth of the render time.
            self.ops.push(Op::UseXobject {
                id: XObjectId(QR_FORM.into()),
                transform: XObjectTransform::default(),
            });
            self.qr_form = Some(QrForm::new(&rectangles, width));
        }
        self.ops.push(Op::RestoreGraphicsState);
        let centre = x0 + l.qr_size / 2.0;
        self.centred("扫码核验", 9.0, centre, y0 - 5.0, &l.text_colour);
        let id_lines = self
            .renderer
            .wrap(identifier, 5.5, l.qr_size + 14.0, l.renderer);
        for (i, line) in id_lines.iter().enumerate() {
            self.centred(
                line,
                5.5,
                centre,
                y0 - 9.0 - i as f32 * 2.6,
                &l.muted_colour,
            );
        }
        Ok(())
    }

    /// The issuing department and date, under the department's red seal.
    fn issuer(&mut self, department: &str, issued: time::Date) {
        let l = self.layout;
        let centre_x = self.right() - l.seal_radius - 6.0;
        let base_y = l.margin + l.padding + 20.0;
        // Stamped first, so the printed name and date stay readable through the red ink.
        self.seal(department, centre_x, base_y + 4.0);
        let date = chinese_date(issued);
        self.centred(
            &format!("发证机关：{department}"),
            11.0,
            centre_x,
            base_y + 8.0,
            &l.text_colour,
        );
        self.centred(&date, 11.0, centre_x, base_y, &l.text_colour);
    }

    /// A round seal: double-weight ring, a five-pointed star, the name around the upper rim.
    fn seal(&mut self, name: &str, cx: f32, cy: f32) {
        let l = self.layout;
        let r = l.seal_radius;
        let red = self.colour(&l.seal_colour);
        let circle = |radius: f32| -> PolygonRing {
            ring((0..=96).map(|i| {
                let a = i as f32 / 96.0 * 2.0 * PI;
                (cx + radius * a.cos(), cy + radius * a.sin())
            }))
        };
        self.ops.extend([
            Op::SetOutlineColor { col: red.clone() },
            Op::SetOutlineThickness { pt: Pt(2.4) },
            Op::DrawPolygon {
                polygon: Polygon {
                    rings: vec![circle(r)],
                    mode: PaintMode::Stroke,
                    winding_order: WindingOrder::NonZero,
                },
            },
        ]);
        let star_outer = r * 0.30;
        let star_inner = star_outer * 0.382;
        let star = ring((0..10).map(|i| {
            let radius = if i % 2 == 0 { star_outer } else { star_inner };
            let a = PI / 2.0 + i as f32 * PI / 5.0;
            (cx + radius * a.cos(), cy + radius * a.sin())
        }));
        self.ops.extend([
            Op::SetFillColor { col: red.clone() },
            Op::DrawPolygon {
                polygon: Polygon {
                    rings: vec![star],
                    mode: PaintMode::Fill,
                    winding_order: WindingOrder::NonZero,
                },
            },
        ]);
        // The name around the rim, from lower left over the top to lower right, each character
        // upright towards the centre.
        let chars: Vec<char> = name.chars().collect();
        let size = (r * 0.42 / 25.4 * 72.0).min(14.0);
        let text_radius = r - pt_to_mm(size) - 1.6;
        let span = (200.0_f32).to_radians().min(chars.len() as f32 * 0.42);
        for (i, c) in chars.iter().enumerate() {
            let t = if chars.len() > 1 {
                i as f32 / (chars.len() - 1) as f32
            } else {
                0.5
            };
            let a = PI / 2.0 + span / 2.0 - t * span;
            let half = self.renderer.width(&c.to_string(), size) / 2.0;
            // Baseline point: on the circle, shifted left along the tangent by half a glyph.
            let (tx, ty) = (a.sin(), -a.cos());
            let x = cx + text_radius * a.cos() - half * tx;
            let y = cy + text_radius * a.sin() - half * ty;
            // PDF text matrix [cos sin -sin cos x y]: the glyph turned counter-clockwise by
            // `rotation` (upright at the top, tops facing outwards) with its origin at (x, y).
            let rotation = a - PI / 2.0;
            let (sin, cos) = rotation.sin_cos();
            let (x, y) = (Pt::from(Mm(x)).0, Pt::from(Mm(y)).0);
            self.ops.extend([
                Op::StartTextSection,
                Op::SetFont {
                    font: PdfFontHandle::External(self.font.clone()),
                    size: Pt(size),
                },
                Op::SetFillColor { col: red.clone() },
                Op::SetTextMatrix {
                    matrix: TextMatrix::Raw([cos, sin, -sin, cos, x, y]),
                },
                Op::ShowText {
                    items: vec![TextItem::Text(c.to_string())],
                },
                Op::EndTextSection,
            ]);
        }
    }

    fn footer(&mut self, version: u32) {
        let l = self.layout;
        let text = format!("{}　（第 {version} 版）", l.footer);
        self.centred(
            &text,
            7.5,
            l.page_width / 2.0,
            l.margin + 5.0,
            &l.muted_colour,
        );
    }
}

/// Deflates at zlib level 2 every stream not compressed yet that allows it.
fn deflate_streams(pdf: &mut lopdf::Document) {
    use std::io::Write;
    for object in pdf.objects.values_mut() {
        if let Object::Stream(stream) = object {
            if !stream.allows_compression || stream.dict.get(b"Filter").is_ok() {
                continue;
            }
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(2));
            if encoder.write_all(&stream.content).is_err() {
                continue;
            }
            if let Ok(compressed) = encoder.finish() {
                if compressed.len() < stream.content.len() {
                    stream.dict.set("Filter", "FlateDecode");
                    stream.set_content(compressed);
                }
            }
        }
    }
}

/// The trailer's `/ID` pair: the two halves of the version identifier's SHA-256 in hex.
fn trailer_id(identifier: &str) -> (String, String) {
    let digest = data_encoding::HEXUPPER.encode(&crate::hash::sha256(identifier.as_bytes()));
    let (first, second) = digest.split_at(32);
    (first.to_string(), second.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn templates() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
    }

    #[test]
    fn renderer_2_cuts_a_long_word_that_begins_the_text_and_renderer_1_keeps_it_whole() {
        let directory = Directory::load(&templates().join("directory")).unwrap();
        let renderer = Renderer::load(&templates(), &directory).unwrap();
        let identifier = "1.2.156.3005.2.13100000MB0000020K001.13330122MB0000003M.2430599.002.Q";
        let max = 54.0;
        let cut = renderer.wrap(identifier, 5.5, max, 2);
        assert!(cut.len() > 1, "{cut:?}");
        assert!(
            cut.iter().all(|line| renderer.width(line, 5.5) <= max),
            "{cut:?}"
        );
        assert_eq!(cut.concat(), identifier);
        assert_eq!(renderer.wrap(identifier, 5.5, max, 1), [identifier]);
        // Both cut such a word when it follows a break.
        let after = format!("编号 {identifier}");
        assert_eq!(
            renderer.wrap(&after, 5.5, max, 1),
            renderer.wrap(&after, 5.5, max, 2)
        );
    }

    #[test]
    fn every_shipped_layout_loads_with_its_renderer() {
        let layouts = load_layouts(&templates().join("layouts")).unwrap();
        assert_eq!(layouts["standard"].renderer, 1);
        assert_eq!(layouts["standard-v2"].renderer, 2);
    }

    #[test]
    fn a_layout_naming_an_unknown_renderer_is_refused_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(templates().join("layouts/standard.toml"))
            .unwrap()
            .replace("renderer = 1", "renderer = 3");
        std::fs::write(dir.path().join("odd.toml"), text).unwrap();
        let error = load_layouts(dir.path()).err().unwrap().to_string();
        assert!(
            error.contains("odd.toml") && error.contains("renderer 3 is not 1 or 2"),
            "{error}"
        );
    }

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
            error.contains("layouts/standard-v2.toml") && error.contains("named by type"),
            "{error}"
        );
    }
}
