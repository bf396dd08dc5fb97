//! The font subset of one renderer-2 page: the glyphs the page shows, the glyph map that numbers
//! them, their widths and their ToUnicode entries, and the PDF objects that carry them (a
//! Type0 font over a CID-keyed CFF, Identity-H). One type owns all of it, as krilla's `CIDFont`
//! does, because the codes in the content stream, the /W array and the ToUnicode map must agree
//! glyph for glyph; built in one place, they cannot drift apart.

use lopdf::{dictionary, Object};
use printpdf::{Codepoint, FontId, Op, ParsedFont, TextItem};

use super::{RenderError, Renderer};

/// The glyphs a renderer-2 page shows, numbered in order of first use: code `n` is the `n`-th
/// distinct glyph (the subset's glyph id and, the subset being CID-keyed with an identity
/// charset, its CID too); code 0 stays `.notdef`.
#[derive(Default)]
pub(super) struct FontSubset {
    remapper: subsetter::GlyphRemapper,
    /// `used[n - 1]`: what code `n` stands for.
    used: Vec<Glyph>,
}

struct Glyph {
    c: char,
    /// In font units.
    advance: u16,
}

impl FontSubset {
    /// Rewrites the page's text as glyph codes of the page's own subset.
    pub(super) fn encode(&mut self, renderer: &Renderer, ops: Vec<Op>) -> Vec<Op> {
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

    /// Adds the subset of `font` under the resource name `id` to `pdf` and returns the Type0
    /// font's object id.
    pub(super) fn write(
        &self,
        pdf: &mut lopdf::Document,
        font: &ParsedFont,
        id: &FontId,
    ) -> Result<lopdf::ObjectId, RenderError> {
        let name = format!(
            "{}+{}",
            id.0,
            font.font_name.as_deref().unwrap_or("NotoSansCJKsc-Regular")
        );
        let descriptor = self.write_descriptor(pdf, font, &name)?;
        let widths: Vec<Object> = self
            .used
            .iter()
            .map(|glyph| scaled(font, f32::from(glyph.advance)))
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
            // Codes run 1..=n in order of first use, so one /W run covers them all.
            "W" => vec![Object::Integer(1), Object::Array(widths)],
        });
        let cmap = pdf.add_object(lopdf::Stream::new(
            lopdf::Dictionary::new(),
            self.to_unicode(id).into_bytes(),
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

    /// Adds the subset program and its font descriptor; returns the descriptor's object id.
    fn write_descriptor(
        &self,
        pdf: &mut lopdf::Document,
        font: &ParsedFont,
        name: &str,
    ) -> Result<lopdf::ObjectId, RenderError> {
        // The bytes the font was parsed from, which printpdf's face keeps.
        let source = font
            .source_bytes()
            .ok_or_else(|| RenderError::Write("the font's bytes were not kept".into()))?;
        let program = subsetter::subset(source.as_slice(), 0, &self.remapper)
            .map_err(|e| RenderError::Write(format!("subsetting the font: {e:?}")))?;
        let cff = printpdf::extract_cid_keyed_cff(&program, 0)
            .ok_or_else(|| RenderError::Write("the font subset is not a CID-keyed CFF".into()))?;
        // Left uncompressed: deflate saves 8 % of a CFF program and costs a fifth of the render.
        let file = pdf.add_object(
            lopdf::Stream::new(dictionary! { "Subtype" => "CIDFontType0C" }, cff)
                .with_compression(false),
        );
        let metrics = &font.pdf_font_metrics;
        let ascent = f32::from(metrics.ascender);
        Ok(pdf.add_object(dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => Object::Name(name.as_bytes().to_vec()),
            "Flags" => 4,
            "FontBBox" => [metrics.x_min, metrics.y_min, metrics.x_max, metrics.y_max]
                .map(|v| scaled(font, f32::from(v)))
                .to_vec(),
            "ItalicAngle" => 0,
            "Ascent" => scaled(font, ascent),
            "Descent" => scaled(font, f32::from(metrics.descender)),
            "CapHeight" => scaled(font, font.font_metrics.cap_height.unwrap_or(ascent)),
            "StemV" => 80,
            "FontFile3" => Object::Reference(file),
        }))
    }

    /// The ToUnicode CMap: code `n` shows the character it was first used for.
    fn to_unicode(&self, id: &FontId) -> String {
        printpdf::ToUnicodeCMap {
            mappings: self
                .used
                .iter()
                .zip(1u32..)
                .map(|(glyph, code)| (code, vec![u32::from(glyph.c)]))
                .collect(),
        }
        .to_cmap_string(&id.0)
    }
}

/// Font units as the thousandths of an em PDF font dictionaries count in.
fn scaled(font: &ParsedFont, units: f32) -> Object {
    let per_em = f32::from(font.pdf_font_metrics.units_per_em.max(1));
    Object::Integer((units * 1000.0 / per_em).round() as i64)
}
