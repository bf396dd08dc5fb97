//! A scan made ready for recognition: decoded to grey within memory limits, turned upright by
//! quarter turns, and straightened when it lies up to 5° askew (the angle whose rows of ink line
//! up best). Noise and JPEG speckle are left to Tesseract's own thresholding: a median filter,
//! tried, cost more than it gave (at 100 dpi a stroke is two pixels wide, and it thinned them
//! away: see DESIGN "Drafting from scans").

use image::{GrayImage, ImageReader, Luma};
use imageproc::contrast::otsu_level;
use imageproc::geometric_transformations::{rotate_about_center, Interpolation};

/// Largest side a scan may have: A4 at 300 dpi (what archives scan at for OCR). A bigger one is
/// refused, not decoded (a small file can claim a huge picture); with one page a core, this
/// bounds drafting's memory at about 100 MB a core.
const MAX_SIDE: u32 = 3_600;
/// Memory one decoding may take.
const MAX_DECODE_BYTES: u64 = 128 << 20;
/// Greatest skew straightened, either way.
const MAX_SKEW_DEGREES: f32 = 5.0;

#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    // Said in Chinese: the reason a scan was not drafted is shown to the clerk as it is.
    #[error("不是能读取的 JPEG 或 PNG 图片（{0}），未起草")]
    Unreadable(String),
    #[error("图片为 {width}×{height} 像素，每边至多读取 {MAX_SIDE} 像素，未起草")]
    TooLarge { width: u32, height: u32 },
}

/// A quarter-turn count: how far clockwise a page must be turned to stand upright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    None,
    Quarter,
    Half,
    ThreeQuarters,
}

impl Turn {
    pub fn degrees(self) -> u32 {
        match self {
            Turn::None => 0,
            Turn::Quarter => 90,
            Turn::Half => 180,
            Turn::ThreeQuarters => 270,
        }
    }

    /// The turns worth trying, likeliest first: a page wider than tall lies on its side.
    pub fn candidates(width: u32, height: u32) -> [Turn; 2] {
        if width > height {
            [Turn::Quarter, Turn::ThreeQuarters]
        } else {
            [Turn::None, Turn::Half]
        }
    }
}

/// Decodes a JPEG or PNG scan to grey.
pub fn decode(bytes: &[u8]) -> Result<GrayImage, PrepareError> {
    Ok(decode_bounded(bytes)?.to_luma8())
}

/// The scan turned upright by `degrees` (clockwise; 0, 90, 180, 270), in colour, as JPEG: what
/// the console shows a clerk beside the fields.
pub fn upright_jpeg(bytes: &[u8], degrees: u32) -> Result<Vec<u8>, PrepareError> {
    let picture = decode_bounded(bytes)?;
    let turned = match degrees {
        90 => picture.rotate90(),
        180 => picture.rotate180(),
        270 => picture.rotate270(),
        _ => picture,
    };
    let mut out = std::io::Cursor::new(Vec::new());
    turned
        .to_rgb8()
        .write_to(&mut out, image::ImageFormat::Jpeg)
        .map_err(|e| PrepareError::Unreadable(e.to_string()))?;
    Ok(out.into_inner())
}

/// Decodes a JPEG or PNG within [`MAX_SIDE`] and [`MAX_DECODE_BYTES`].
fn decode_bounded(bytes: &[u8]) -> Result<image::DynamicImage, PrepareError> {
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PrepareError::Unreadable(e.to_string()))?;
    // The header alone, with no limit: the size is judged here, with a clearer answer.
    reader.no_limits();
    let (width, height) = reader
        .into_dimensions()
        .map_err(|e| PrepareError::Unreadable(e.to_string()))?;
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PrepareError::TooLarge { width, height });
    }
    reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PrepareError::Unreadable(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| PrepareError::Unreadable(e.to_string()))
}

/// The upright, straightened page, ready for recognition, and the degrees it was
/// straightened by.
pub fn prepare(grey: &GrayImage, turn: Turn) -> (GrayImage, f32) {
    let turned = match turn {
        Turn::None => grey.clone(),
        Turn::Quarter => image::imageops::rotate90(grey),
        Turn::Half => image::imageops::rotate180(grey),
        Turn::ThreeQuarters => image::imageops::rotate270(grey),
    };
    let skew = skew_degrees(&turned);
    if skew.abs() < 0.2 {
        return (turned, 0.0);
    }
    let straight = rotate_about_center(
        &turned,
        (-skew).to_radians(),
        Interpolation::Bilinear,
        Luma([255]),
    );
    (straight, skew)
}

/// The page's skew in degrees (positive: its lines fall to the right). Lines of text are
/// level when the ink, counted per row, is most unevenly spread (full rows, empty gaps). Tried
/// in half degrees, then refined in tenths around the best.
pub fn skew_degrees(grey: &GrayImage) -> f32 {
    let ink = ink_points(grey);
    if ink.len() < 100 {
        return 0.0;
    }
    let height = grey.height() as f32;
    let width = grey.width() as f32;
    let spread = |degrees: f32| -> f64 {
        let (sin, cos) = degrees.to_radians().sin_cos();
        let reach = (height + width) as usize / 2 + 2;
        let mut rows = vec![0u32; reach];
        for &(x, y) in &ink {
            // The band of two pixel rows this point falls in once the page is turned back by
            // `degrees` (two, as points are taken every other row: with one, level would win).
            let row = (y * cos - x * sin + width) / 2.0;
            rows[(row.max(0.0) as usize).min(reach - 1)] += 1;
        }
        rows.iter().map(|&n| f64::from(n) * f64::from(n)).sum()
    };
    let best_of = |angles: Vec<f32>| {
        angles
            .into_iter()
            .map(|a| (a, spread(a)))
            .fold(
                (0.0, f64::MIN),
                |best, next| if next.1 > best.1 { next } else { best },
            )
            .0
    };
    let steps = (MAX_SKEW_DEGREES * 2.0) as i32;
    let coarse = best_of((-steps..=steps).map(|i| i as f32 * 0.5).collect());
    best_of((-5..=5).map(|i| coarse + i as f32 * 0.1).collect())
}

/// Dark pixels (below Otsu's threshold), every other row and column: enough to find the lines.
fn ink_points(grey: &GrayImage) -> Vec<(f32, f32)> {
    let level = otsu_level(grey);
    let mut points = Vec::new();
    for y in (0..grey.height()).step_by(2) {
        for x in (0..grey.width()).step_by(2) {
            if grey.get_pixel(x, y).0[0] < level {
                points.push((x as f32, y as f32));
            }
        }
    }
    points
}

/// The prepared page as PNG, as Tesseract reads it on stdin.
pub fn png(grey: &GrayImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut out, image::ImageFormat::Png)
        .expect("an in-memory PNG of a valid image");
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Black bars like lines of text on white, turned by `degrees`.
    fn lines_of_text(degrees: f32) -> GrayImage {
        let mut page = GrayImage::from_pixel(600, 800, Luma([240]));
        for line in 0..12 {
            let top = 80 + line * 50;
            for y in top..top + 18 {
                for x in 60..540 {
                    if (x / 9) % 3 != 2 {
                        page.put_pixel(x, y, Luma([20]));
                    }
                }
            }
        }
        rotate_about_center(
            &page,
            degrees.to_radians(),
            Interpolation::Bilinear,
            Luma([240]),
        )
    }

    #[test]
    fn the_skew_is_found_within_a_fifth_of_a_degree() {
        for degrees in [-4.5, -3.0, -1.2, 0.0, 0.7, 3.0, 5.0] {
            let found = skew_degrees(&lines_of_text(degrees));
            assert!(
                (found - degrees).abs() <= 0.2,
                "turned {degrees}°, found {found}°"
            );
        }
        // Straightened, the lines are level.
        let (straight, by) = prepare(&lines_of_text(3.0), Turn::None);
        assert!((by - 3.0).abs() <= 0.2);
        assert!(skew_degrees(&straight).abs() <= 0.2);
    }

    #[test]
    fn a_blank_page_has_no_skew_and_garbage_is_refused() {
        assert_eq!(
            skew_degrees(&GrayImage::from_pixel(100, 100, Luma([250]))),
            0.0
        );
        assert!(matches!(
            decode(b"\xFF\xD8\xFFnot really"),
            Err(PrepareError::Unreadable(_))
        ));
    }

    #[test]
    fn a_scan_is_shown_upright_as_the_draft_found_it() {
        let mut png = std::io::Cursor::new(Vec::new());
        GrayImage::from_pixel(40, 30, Luma([200]))
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        for (degrees, size) in [
            (0, (40, 30)),
            (90, (30, 40)),
            (180, (40, 30)),
            (270, (30, 40)),
        ] {
            let upright =
                image::load_from_memory(&upright_jpeg(png.get_ref(), degrees).unwrap()).unwrap();
            assert_eq!((upright.width(), upright.height()), size, "{degrees}°");
        }
    }

    #[test]
    fn a_picture_claiming_a_huge_size_is_refused_before_decoding() {
        // A PNG saying 100,000 × 100,000 pixels, with a few bytes of data behind the header.
        let mut png = Vec::new();
        let mut writer = png::Encoder::new(&mut png, 100_000, 100_000)
            .write_header()
            .expect("a header");
        writer
            .write_chunk(png::chunk::IDAT, &[0x78, 0x9C, 0x03, 0x00])
            .expect("a chunk");
        drop(writer);
        let refused = decode(&png).err();
        assert!(
            matches!(refused, Some(PrepareError::TooLarge { .. })),
            "{refused:?}"
        );
    }
}
