//! Drawing a sample scan: an image of the paper licence of one manifest row, as a flatbed
//! scanner gives it, at a chosen resolution; optionally degraded the way old archives come back
//! (askew, noisy, heavily compressed, now and then upside down or on its side).

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};
use imageproc::geometric_transformations::{rotate_about_center, Interpolation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::directory::{LicenceType, Validity};

/// How sample scans look.
#[derive(Debug, Clone, Copy)]
pub struct ScanLook {
    /// Dots per inch of an A4 page (50 to 300).
    pub dpi: u32,
    /// Degraded as archives are: turned up to 3° either way, Gaussian noise (σ 12 grey
    /// levels), JPEG at quality 40; one scan in eight upside down and one in eight on its side.
    pub degrade: bool,
}

impl Default for ScanLook {
    fn default() -> Self {
        ScanLook {
            dpi: 100,
            degrade: false,
        }
    }
}

/// Everything a scan shows of its row.
pub struct Printed<'a> {
    pub number: &'a str,
    pub holder_name: &'a str,
    pub holder_id: &'a str,
    pub valid_from: &'a str,
    pub valid_until: &'a str,
    /// The printed fields' values, in directory order (empty when the row has none).
    pub fields: Vec<&'a str>,
}

const INK: [u8; 3] = [40, 40, 48];
const RED: [u8; 3] = [200, 30, 30];
const FRAME: [u8; 3] = [150, 110, 60];
const PAPER: [u8; 3] = [236, 232, 222];

/// The scan's bytes: JPEG (colour, quality 70, with grain) or PNG (16 grey levels, a
/// scanner's document mode); degraded scans are always JPEG at quality 40.
pub fn draw(
    font: &FontRef<'_>,
    t: &LicenceType,
    printed: &Printed<'_>,
    look: ScanLook,
    jpeg: bool,
) -> anyhow::Result<Vec<u8>> {
    let seed = crate::hash::sha256(printed.number.as_bytes());
    let seed = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
    let scale = look.dpi.clamp(50, 300) as f32 / 50.0;
    let grain = if jpeg || look.degrade { 6.0 } else { 0.0 };
    let mut page = Page::paper(scale, seed, grain);
    page.licence(font, t, printed);
    if look.degrade {
        let picture = degrade(page.picture, seed);
        return encode_jpeg(&picture, 40);
    }
    if jpeg {
        encode_jpeg(&page.picture, 70)
    } else {
        encode_png(&page.picture)
    }
}

/// A sheet of paper at `scale` times 50 dpi (A4: 420 × 594 at 50 dpi).
struct Page {
    picture: RgbImage,
    scale: f32,
}

impl Page {
    fn paper(scale: f32, seed: u64, grain: f32) -> Page {
        let (width, height) = ((420.0 * scale) as u32, (594.0 * scale) as u32);
        let mut rng = StdRng::seed_from_u64(seed);
        let picture = RgbImage::from_fn(width, height, |x, y| {
            // Uneven light across the sheet and a little grain, as a flatbed scanner gives.
            let light = 236.0 - 18.0 * ((x + y) as f32 / (width + height) as f32);
            let grain: f32 = if grain > 0.0 {
                rng.gen_range(-grain..grain)
            } else {
                0.0
            };
            let v = (light + grain).clamp(0.0, 255.0) as u8;
            Rgb([v, v.saturating_sub(4), v.saturating_sub(14)])
        });
        Page { picture, scale }
    }

    /// The licence: title, number, holder, every printed field (long values wrapped under
    /// themselves), validity, the issuing department and its red seal.
    fn licence(&mut self, font: &FontRef<'_>, t: &LicenceType, printed: &Printed<'_>) {
        self.frame(14.0, 14.0, 405.0, 579.0);
        self.frame(19.0, 19.0, 400.0, 574.0);
        let title = 26.0;
        let title_width = t.name.chars().count() as f32 * title;
        self.text(font, &t.name, title, (420.0 - title_width) / 2.0, 70.0, INK);
        let (holder_label, id_label) = t.holder_kind.labels_zh();
        let mut y = 110.0;
        let mut row = |page: &mut Page, label: &str, value: &str| {
            if !value.is_empty() {
                y = page.labelled(font, label, value, y) + 21.0;
            }
        };
        row(self, "编号", printed.number);
        row(self, holder_label, printed.holder_name);
        row(self, id_label, printed.holder_id);
        for (f, value) in t.fields.iter().filter(|f| f.printed).zip(&printed.fields) {
            row(self, &f.label, value);
        }
        let until = match printed.valid_until {
            "" if t.default_validity == Validity::Permanent => "长期".to_string(),
            "" => "（按规定期限）".to_string(),
            until => until.to_string(),
        };
        let validity = format!("{} 至 {until}", printed.valid_from);
        row(self, "有效期", &validity);
        self.text(font, &t.issuer.name, 13.0, 220.0, 555.0, INK);
        self.ring(320.0, 535.0, 40.0, 4.0, RED);
        self.text(font, "★", 24.0, 308.0, 544.0, RED);
    }

    /// `label：value` at `y`, the value wrapped under itself at the right margin. Returns the
    /// baseline of its last line.
    fn labelled(&mut self, font: &FontRef<'_>, label: &str, value: &str, y: f32) -> f32 {
        const SIZE: f32 = 12.0;
        let value_x = self.text(font, &format!("{label}："), SIZE, 40.0, y, INK);
        let mut y = y;
        let mut rest: &str = value;
        while !rest.is_empty() {
            let fits = self.fitting(font, rest, SIZE, value_x, 395.0).max(1);
            let split = rest.char_indices().nth(fits).map_or(rest.len(), |(i, _)| i);
            self.text(font, &rest[..split], SIZE, value_x, y, INK);
            rest = &rest[split..];
            if !rest.is_empty() {
                y += 16.0;
            }
        }
        y
    }

    /// How many characters of `text` fit between `x` and `right` at `size`.
    fn fitting(&self, font: &FontRef<'_>, text: &str, size: f32, x: f32, right: f32) -> usize {
        let scaled = font.as_scaled(PxScale::from(size * self.scale));
        let mut caret = x * self.scale;
        text.chars()
            .take_while(|&c| {
                caret += scaled.h_advance(scaled.glyph_id(c));
                caret <= right * self.scale
            })
            .count()
    }

    /// Draws `text` at (`x`, `y`) in 50-dpi units; returns where the text ends.
    fn text(
        &mut self,
        font: &FontRef<'_>,
        text: &str,
        size: f32,
        x: f32,
        y: f32,
        ink: [u8; 3],
    ) -> f32 {
        let scaled = font.as_scaled(PxScale::from(size * self.scale));
        let mut caret = x * self.scale;
        for c in text.chars() {
            let mut glyph = scaled.scaled_glyph(c);
            glyph.position = ab_glyph::point(caret, y * self.scale);
            caret += scaled.h_advance(glyph.id);
            if let Some(outlined) = font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let (x, y) = (
                        bounds.min.x as i64 + gx as i64,
                        bounds.min.y as i64 + gy as i64,
                    );
                    self.ink(x, y, ink, coverage)
                });
            }
        }
        caret / self.scale
    }

    /// Darkens the pixel at (x, y) towards `ink` by `coverage`.
    fn ink(&mut self, x: i64, y: i64, ink: [u8; 3], coverage: f32) {
        let (width, height) = self.picture.dimensions();
        if x < 0 || y < 0 || x >= i64::from(width) || y >= i64::from(height) {
            return;
        }
        let pixel = self.picture.get_pixel_mut(x as u32, y as u32);
        for (channel, ink) in pixel.0.iter_mut().zip(ink) {
            let old = *channel as f32;
            *channel = (old + (ink as f32 - old) * coverage.min(1.0)) as u8;
        }
    }

    /// A rectangle's outline, two pixels wide at 100 dpi.
    fn frame(&mut self, x0: f32, y0: f32, x1: f32, y1: f32) {
        let s = self.scale;
        let (x0, y0, x1, y1) = (
            (x0 * s) as i64,
            (y0 * s) as i64,
            (x1 * s) as i64,
            (y1 * s) as i64,
        );
        let width = s.ceil() as i64;
        for w in 0..width {
            for x in x0..=x1 {
                self.ink(x, y0 + w, FRAME, 1.0);
                self.ink(x, y1 - w, FRAME, 1.0);
            }
            for y in y0..=y1 {
                self.ink(x0 + w, y, FRAME, 1.0);
                self.ink(x1 - w, y, FRAME, 1.0);
            }
        }
    }

    fn ring(&mut self, cx: f32, cy: f32, r: f32, width: f32, ink: [u8; 3]) {
        let s = self.scale;
        let (cx, cy, r, width) = (cx * s, cy * s, r * s, width * s);
        let reach = (r + width) as i64 + 1;
        for y in -reach..=reach {
            for x in -reach..=reach {
                let d = ((x * x + y * y) as f32).sqrt();
                if (d - r).abs() <= width / 2.0 {
                    self.ink(cx as i64 + x, cy as i64 + y, ink, 0.85);
                }
            }
        }
    }
}

/// Turned up to 3° either way and given Gaussian noise; one scan in eight upside down, one in
/// eight on its side (a quarter turn either way).
fn degrade(picture: RgbImage, seed: u64) -> RgbImage {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xDE_6A_DE);
    let degrees: f32 = rng.gen_range(-3.0..=3.0);
    let askew = rotate_about_center(
        &picture,
        degrees.to_radians(),
        Interpolation::Bilinear,
        Rgb(PAPER),
    );
    let noisy = imageproc::noise::gaussian_noise(&askew, 0.0, 12.0, rng.gen());
    match rng.gen_range(0..8) {
        0 => image::imageops::rotate180(&noisy),
        1 if rng.gen_bool(0.5) => image::imageops::rotate90(&noisy),
        1 => image::imageops::rotate270(&noisy),
        _ => noisy,
    }
}

fn encode_jpeg(picture: &RgbImage, quality: u8) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality).encode(
        picture.as_raw(),
        u16::try_from(picture.width())?,
        u16::try_from(picture.height())?,
        jpeg_encoder::ColorType::Rgb,
    )?;
    Ok(out)
}

/// PNG in grey (a scanner's greyscale mode): a third of the bytes of colour.
fn encode_png(picture: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let grey: Vec<u8> = picture
        .pixels()
        // 16 grey levels, as a scanner's document mode saves.
        .map(|p| (((p[0] as u32 * 3 + p[1] as u32 * 6 + p[2] as u32) / 10) & 0xF0) as u8)
        .collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, picture.width(), picture.height());
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_compression(png::Compression::Fast);
    encoder.write_header()?.write_image_data(&grey)?;
    Ok(out)
}
