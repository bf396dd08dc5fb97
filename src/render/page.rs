//! The page as drawing operations: border, title, rows, QR code, seal, issuer and footer, in
//! millimetre coordinates from the bottom left. A room of its own because this is what the
//! licence looks like, apart from how the file is written (`document.rs`, `frozen_v1.rs`).

use std::f32::consts::PI;

use printpdf::{
    Color, FontId, LinePoint, Mm, Op, PaintMode, PdfFontHandle, Point, Polygon, PolygonRing, Pt,
    TextItem, TextMatrix, WindingOrder, XObjectId, XObjectTransform,
};

use crate::signing::qr;

use super::frozen_v1;
use super::layout::{colour, Generation, Layout};
use super::lines::Row;
use super::qr_form::{dark_rectangles, QrForm, QR_FORM};
use super::{chinese_date, pt_to_mm, RenderError, Renderer};

/// How far under the QR code the baselines of its caption and of the identifier's first line
/// sit: 5 and 9 mm as first laid out, or, when the layout keeps a quiet zone, that many modules
/// of white, then the caption's ascent (CJK glyphs rise 0.88 em above the baseline), then 4 mm.
fn caption_drops(layout: &Layout, module: f32) -> (f32, f32) {
    match layout.qr_quiet_zone {
        None => (5.0, 9.0),
        Some(modules) => {
            let caption = modules * module + pt_to_mm(9.0) * 0.88;
            (caption, caption + 4.0)
        }
    }
}

/// The page being drawn: operations in millimetre coordinates from the bottom left.
pub(super) struct Page<'a> {
    renderer: &'a Renderer,
    layout: &'a Layout,
    font: FontId,
    pub(super) ops: Vec<Op>,
    /// Renderer 2 draws the QR code as a form XObject.
    pub(super) qr_form: Option<QrForm>,
    /// Renderer 3 draws the seal apart, as the signature's appearance: its operations and the
    /// square it fills (left, bottom, right, top in millimetres).
    pub(super) seal: Option<(Vec<Op>, [f32; 4])>,
    /// The QR code's side: the layout's `qr_size`, or less when the rows needed the room.
    pub(super) qr_side: f32,
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
    pub(super) fn new(renderer: &'a Renderer, layout: &'a Layout, font: FontId) -> Page<'a> {
        Page {
            renderer,
            layout,
            font,
            ops: Vec::new(),
            qr_form: None,
            seal: None,
            qr_side: layout.qr_size,
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

    pub(super) fn border(&mut self) {
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
    pub(super) fn title(&mut self, name: &str, number: &str) -> f32 {
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
    pub(super) fn rows(&mut self, top: f32, rows: &[Row]) -> Result<(), RenderError> {
        let l = self.layout;
        let value_x = self.left() + 6.0 + l.label_width;
        let value_width = self.right() - 6.0 - value_x;
        let (size, laid_out) = self.fit_above_code(rows, top, value_width)?;
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

    /// The rows fitted above the QR code; when they do not fit even at the smallest value size
    /// and the layout allows it (`qr_min_size`), above a code a millimetre smaller, and so on:
    /// legible text first, then the largest code that leaves room for it.
    fn fit_above_code(
        &mut self,
        rows: &[Row],
        top: f32,
        value_width: f32,
    ) -> Result<(f32, Vec<Vec<String>>), RenderError> {
        let l = self.layout;
        let smallest = l.qr_min_size.unwrap_or(l.qr_size);
        let mut side = l.qr_size;
        loop {
            let bottom = l.margin + l.padding + side + 18.0;
            match self.fit_rows(rows, top, bottom, value_width) {
                Err(RenderError::Overflow) if side - 1.0 >= smallest => side -= 1.0,
                fitted => {
                    self.qr_side = side;
                    return fitted;
                }
            }
        }
    }

    /// The largest value size, from the layout's down in half points, at which the rows' values
    /// fit between `top` and `bottom`; with each value broken into lines at that size.
    fn fit_rows(
        &self,
        rows: &[Row],
        top: f32,
        bottom: f32,
        value_width: f32,
    ) -> Result<(f32, Vec<Vec<String>>), RenderError> {
        let l = self.layout;
        let mut size = l.value_size;
        loop {
            let lines: Vec<Vec<String>> = rows
                .iter()
                .map(|r| self.renderer.wrap(&r.value, size, value_width, l.renderer))
                .collect();
            let gap = l.row_gap * size / l.value_size;
            let height: f32 = lines
                .iter()
                .map(|ls| ls.len() as f32 * pt_to_mm(size) * l.line_height + gap)
                .sum();
            // Not `height <= top - bottom`: in floating point the two can round apart at the
            // edge, and a different size would move renderer 1's bytes.
            if top - height >= bottom {
                return Ok((size, lines));
            }
            size -= 0.5;
            if size < l.min_value_size {
                return Err(RenderError::Overflow);
            }
        }
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
    pub(super) fn qr(&mut self, text: &str, identifier: &str) -> Result<(), RenderError> {
        let l = self.layout;
        let side = self.qr_side;
        let code = qr::qr_code(text)?;
        let width = code.width();
        let x0 = self.left() + 4.0;
        let y0 = l.margin + l.padding + 12.0;
        let module = side / width as f32;
        // Drawn in module units under a scaling matrix: integer coordinates keep the content
        // stream (and the PDF) small.
        let rectangles = dark_rectangles(&code);
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
        match l.renderer {
            Generation::Frozen1 => self.ops.extend(frozen_v1::qr_modules(&rectangles, width)),
            Generation::Subset2 | Generation::Signed3 => {
                // One path in a form XObject written here: printpdf would write a fill per
                // rectangle and format every coordinate as a float, a fifth of the render time.
                self.ops.push(Op::UseXobject {
                    id: XObjectId(QR_FORM.into()),
                    transform: XObjectTransform::default(),
                });
                self.qr_form = Some(QrForm::new(&rectangles, width));
            }
        }
        self.ops.push(Op::RestoreGraphicsState);
        let centre = x0 + side / 2.0;
        let (caption_drop, identifier_drop) = caption_drops(l, module);
        self.centred("扫码核验", 9.0, centre, y0 - caption_drop, &l.text_colour);
        let id_lines = self.renderer.wrap(identifier, 5.5, side + 14.0, l.renderer);
        for (i, line) in id_lines.iter().enumerate() {
            self.centred(
                line,
                5.5,
                centre,
                y0 - identifier_drop - i as f32 * 2.6,
                &l.muted_colour,
            );
        }
        Ok(())
    }

    /// The issuing department and date, under the department's red seal.
    pub(super) fn issuer(&mut self, department: &str, issued: time::Date) {
        let l = self.layout;
        let centre_x = self.right() - l.seal_radius - 6.0;
        let base_y = l.margin + l.padding + 20.0;
        // Stamped first, so the printed name and date stay readable through the red ink.
        if l.renderer.is_signed() {
            let page_ops = std::mem::take(&mut self.ops);
            self.seal(department, centre_x, base_y + 4.0);
            let r = l.seal_radius + 1.0;
            let (x, y) = (centre_x, base_y + 4.0);
            let drawn = std::mem::replace(&mut self.ops, page_ops);
            self.seal = Some((drawn, [x - r, y - r, x + r, y + r]));
        } else {
            self.seal(department, centre_x, base_y + 4.0);
        }
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
        self.seal_name(name, cx, cy, red);
    }

    /// The name around the seal's rim, from lower left over the top to lower right, each
    /// character upright towards the centre.
    fn seal_name(&mut self, name: &str, cx: f32, cy: f32, red: Color) {
        let r = self.layout.seal_radius;
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

    pub(super) fn footer(&mut self, version: u32) {
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
