//! PDF licences (SPEC §2, §6, §11): one A4 page per version, laid out by the type's layout under
//! `templates/layouts/`, with the embedded (subset) CJK font, the QR code as vector modules and the
//! department's seal as vector art. The same version always renders to the same bytes: every
//! date, id and resource name in the file is derived from the version.

use std::collections::BTreeMap;
use std::f32::consts::PI;
use std::path::Path;
use std::sync::Arc;

use printpdf::{
    Color, FontId, LinePoint, Mm, Op, PaintMode, ParsedFont, PdfDocument, PdfFont, PdfFontHandle,
    PdfPage, PdfSaveOptions, Point, Polygon, PolygonRing, Pt, Rect, Rgb, TextItem, TextMatrix,
    WindingOrder,
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
}

/// A layout file (`templates/layouts/{name}.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
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
        if self.min_value_size > self.value_size {
            return Err("min_value_size is larger than value_size".into());
        }
        Ok(())
    }
}

/// The font and the layouts, loaded once per process and shared by every render.
pub struct Renderer {
    font: Arc<ParsedFont>,
    layouts: BTreeMap<String, Layout>,
}

/// A laid-out page, ready to be written.
pub struct Composed {
    ops: Vec<Op>,
    font: FontId,
    width: f32,
    height: f32,
}

/// A row of the licence: a label and its value.
struct Row {
    label: String,
    value: String,
}

impl Renderer {
    /// Loads the font and every layout the directory's types name.
    pub fn load(templates: &Path, directory: &Directory) -> Result<Renderer, RenderError> {
        let font_path = templates.join(FONT_FILE);
        let bytes = std::fs::read(&font_path)
            .map_err(|_| RenderError::Font(font_path.display().to_string()))?;
        let font = ParsedFont::from_bytes(&bytes, 0, &mut Vec::new())
            .ok_or_else(|| RenderError::Font(font_path.display().to_string()))?;
        let mut layouts = BTreeMap::new();
        for t in directory.types() {
            if layouts.contains_key(&t.template) {
                continue;
            }
            let file = templates
                .join("layouts")
                .join(format!("{}.toml", t.template));
            let fail = |reason: String| RenderError::Layout {
                file: file.display().to_string(),
                reason,
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|e| fail(format!("{e} (named by type {})", t.code)))?;
            let layout: Layout = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
            layout.check().map_err(fail)?;
            layouts.insert(t.template.clone(), layout);
        }
        Ok(Renderer {
            font: Arc::new(font),
            layouts,
        })
    }

    /// Characters of `text` the font has no glyph for (a record containing one is refused).
    pub fn missing_glyphs(&self, text: &str) -> Vec<char> {
        let mut missing: Vec<char> = text
            .chars()
            .filter(|c| !c.is_whitespace() && self.font.lookup_glyph_index(u32::from(*c)).is_none())
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
                self.font
                    .lookup_glyph_index(u32::from(c))
                    .map_or(per_em / 2.0, |g| {
                        f32::from(self.font.get_horizontal_advance(g))
                    })
            })
            .sum();
        pt_to_mm(units / per_em * size)
    }

    /// Breaks `text` into lines no wider than `max` mm: between any two CJK characters, at spaces
    /// otherwise, and inside a word only when the word alone is too wide.
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for piece in break_opportunities(text) {
            let candidate = format!("{line}{piece}");
            if line.is_empty() || self.width(candidate.trim_end(), size) <= max {
                line = candidate;
                continue;
            }
            lines.push(line.trim_end().to_string());
            line = piece.trim_start().to_string();
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
        Ok(self.save(page, full))
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
            font,
            width: layout.page_width,
            height: layout.page_height,
        })
    }

    /// Writes a composed page as PDF bytes (subsetting the font, compressing the streams).
    pub fn save(&self, page: Composed, full: &FullRecord) -> Vec<u8> {
        let Composed {
            ops,
            font,
            width,
            height,
        } = page;
        let id = full.claims.cti.to_string();
        let mut doc = PdfDocument::new(&format!("{} {}", full.licence_name, full.record.number));
        // Our own resource name: printpdf would draw one from a process-wide counter.
        doc.resources
            .fonts
            .map
            .insert(font, PdfFont::new((*self.font).clone()));
        // The version's issue time, not the clock (printpdf's default is 1970 or now).
        let info = &mut doc.metadata.info;
        if let Ok(issued) = printpdf::DateTime::from_unix_timestamp(full.claims.iat) {
            info.creation_date = issued;
            info.modification_date = issued;
            info.metadata_date = issued;
        }
        info.identifier = id.clone();
        info.author = full.claims.iss.to_string();
        info.creator = "elicence".into();
        info.producer = "elicence".into();
        info.subject = id.clone();
        let page = PdfPage::new(Mm(width), Mm(height), ops);
        // printpdf's own optimisation compresses at zlib level 9, two thirds of the render time;
        // level 2 costs 3 % in size and a tenth of the time (measured with `bench render`).
        let raw = doc.with_pages(vec![page]).save(
            &PdfSaveOptions {
                optimize: false,
                ..Default::default()
            },
            &mut Vec::new(),
        );
        with_trailer_id(compress_streams(raw), &id)
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
        let lines = self
            .renderer
            .wrap(&number_line, l.number_size, self.right() - self.left());
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
                .map(|r| self.renderer.wrap(&r.value, size, value_width))
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
        let ops = rectangles
            .into_iter()
            .map(|(x, top, w, h)| Op::DrawRectangle {
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
        self.ops.extend(ops);
        self.ops.push(Op::RestoreGraphicsState);
        let centre = x0 + l.qr_size / 2.0;
        self.centred("扫码核验", 9.0, centre, y0 - 5.0, &l.text_colour);
        let id_lines = self.renderer.wrap(identifier, 5.5, l.qr_size + 14.0);
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

/// Deflates every uncompressed stream at zlib level 2. Falls back to the uncompressed
/// file if it cannot be re-read (it was just written, so that is not expected).
fn compress_streams(raw: Vec<u8>) -> Vec<u8> {
    use std::io::Write;
    let Ok(mut doc) = lopdf::Document::load_mem(&raw) else {
        return raw;
    };
    for object in doc.objects.values_mut() {
        if let lopdf::Object::Stream(stream) = object {
            if stream.dict.get(b"Filter").is_ok() {
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
    let mut out = Vec::with_capacity(raw.len() / 2);
    match doc.save_to(&mut out) {
        Ok(()) => out,
        Err(_) => raw,
    }
}

/// Replaces the trailer's `/ID` (drawn from printpdf's process-wide counter) with one derived
/// from the version identifier, of the same length, so the file is byte-identical on every render.
fn with_trailer_id(mut bytes: Vec<u8>, identifier: &str) -> Vec<u8> {
    let digest = data_encoding::HEXUPPER.encode(&crate::hash::sha256(identifier.as_bytes()));
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
