//! The QR code alone, for a holder to show on a phone (亮证) or a page to embed: a PNG with
//! large modules or an SVG that scales to any screen, each with the four-module quiet zone a
//! reader needs (ISO/IEC 18004). A room of its own because it is the code without the page:
//! the same symbol (`signing::qr`) and the same rectangles as the PDF's form (`qr_form`).

use std::fmt::Write;

use serde::Serialize;

use crate::signing::qr;

use super::qr_form::dark_rectangles;
use super::RenderError;

/// Light modules kept around the code on every side.
pub const QUIET_ZONE: usize = 4;

/// A PNG module's side in pixels: a version-15 code is 850 px square, the width of a phone
/// screen at its usual zoom, and each module is 10 px whatever the screen scales it to.
pub const PNG_MODULE_PX: usize = 10;

/// The image formats the code is exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QrImageFormat {
    Png,
    Svg,
}

impl QrImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            QrImageFormat::Png => "image/png",
            QrImageFormat::Svg => "image/svg+xml",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            QrImageFormat::Png => "png",
            QrImageFormat::Svg => "svg",
        }
    }

    /// The QR code of `qr_text` (SPEC §6: alphanumeric, level M) as an image file's bytes.
    pub fn encode(self, qr_text: &str) -> Result<Vec<u8>, RenderError> {
        let code = qr::qr_code(qr_text)?;
        match self {
            QrImageFormat::Png => png(&code),
            QrImageFormat::Svg => Ok(svg(&code).into_bytes()),
        }
    }
}

/// Modules per side with the quiet zone.
fn side_in_modules(code: &qr::QrSymbol) -> usize {
    code.width() + 2 * QUIET_ZONE
}

/// 8-bit grey, black on white, [`PNG_MODULE_PX`] pixels a module.
fn png(code: &qr::QrSymbol) -> Result<Vec<u8>, RenderError> {
    let side = side_in_modules(code) * PNG_MODULE_PX;
    let mut pixels = vec![255u8; side * side];
    for row in 0..code.width() {
        for column in (0..code.width()).filter(|&c| code.is_dark(row, c)) {
            let x = (column + QUIET_ZONE) * PNG_MODULE_PX;
            for y in (row + QUIET_ZONE) * PNG_MODULE_PX..(row + QUIET_ZONE + 1) * PNG_MODULE_PX {
                pixels[y * side + x..y * side + x + PNG_MODULE_PX].fill(0);
            }
        }
    }
    let failed = |e: png::EncodingError| RenderError::Write(format!("QR PNG: {e}"));
    let side = u32::try_from(side).map_err(|_| RenderError::Write("QR PNG: too large".into()))?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(&pixels).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

/// One module a user unit, the dark modules as one path of rectangles; drawn with crisp edges
/// so a browser scales it without grey seams between modules.
fn svg(code: &qr::QrSymbol) -> String {
    let side = side_in_modules(code);
    let mut path = String::new();
    for (x, top, w, h) in dark_rectangles(code) {
        let _ = write!(
            path,
            "M{} {}h{w}v{h}h-{w}z",
            x + QUIET_ZONE,
            top + QUIET_ZONE
        );
    }
    let pixels = side * PNG_MODULE_PX;
    format!(
        concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" viewBox=\"0 0 {side} {side}\" ",
            "width=\"{pixels}\" height=\"{pixels}\" shape-rendering=\"crispEdges\">\n",
            "<rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/>\n",
            "<path fill=\"#000000\" d=\"{path}\"/>\n",
            "</svg>\n"
        ),
        side = side,
        pixels = pixels,
        path = path
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "HTTPS://ZZ.EXAMPLE.GOV.CN/V/2KCACABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    #[test]
    fn the_png_has_a_quiet_zone_and_ten_pixel_modules() {
        let bytes = QrImageFormat::Png.encode(TEXT).unwrap();
        let code = qr::qr_code(TEXT).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let side = (code.width() + 8) * 10;
        assert_eq!((info.width as usize, info.height as usize), (side, side));
        let at = |module_row: usize, module_column: usize| {
            pixels[(module_row * 10 + 5) * side + module_column * 10 + 5]
        };
        for i in 0..side / 10 {
            assert_eq!(at(i, 3), 255, "quiet zone, left");
            assert_eq!(at(3, i), 255, "quiet zone, top");
        }
        for row in 0..code.width() {
            for column in 0..code.width() {
                let expected = if code.is_dark(row, column) { 0 } else { 255 };
                assert_eq!(at(row + 4, column + 4), expected, "({row}, {column})");
            }
        }
    }

    #[test]
    fn the_svg_draws_every_dark_module_in_one_path() {
        let svg = String::from_utf8(QrImageFormat::Svg.encode(TEXT).unwrap()).unwrap();
        let code = qr::qr_code(TEXT).unwrap();
        let side = code.width() + 8;
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
            "{svg}"
        );
        assert_eq!(svg.matches("<path").count(), 1);
        // The top-left finder pattern's outer ring starts at the quiet zone's corner.
        assert!(svg.contains("d=\"M4 4h7v1h-7z"), "{svg}");
    }

    #[test]
    fn a_text_no_code_can_hold_is_an_error_not_a_panic() {
        let text = "A".repeat(5000);
        for format in [QrImageFormat::Png, QrImageFormat::Svg] {
            assert!(matches!(format.encode(&text), Err(RenderError::Qr(_))));
        }
    }
}
