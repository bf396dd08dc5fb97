//! The QR text of SPEC §6 — `{VERIFY_BASE}/V/{B32}` — and the QR code that carries it: alphanumeric
//! mode, error correction level M, the smallest version that fits.

use data_encoding::BASE32_NOPAD;
use qrcode::bits::Bits;
use qrcode::canvas::{Canvas, MaskPattern};
use qrcode::{Color, EcLevel, Version};

/// Characters of the QR alphanumeric mode (ISO/IEC 18004 §7.4.4).
const ALPHANUMERIC: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QrError {
    #[error("verify base {0:?} has characters outside the QR alphanumeric set (use uppercase, no query string)")]
    Base(String),
    #[error("QR text: the part after /V/ is not base32 (RFC 4648, uppercase, no padding)")]
    Base32,
    #[error("QR text: empty")]
    Empty,
    #[error("QR text: {0} characters do not fit in any QR code at level M")]
    TooLong(usize),
}

/// The configured public URL as it goes into QR codes: uppercase, no trailing slash.
pub fn normalise_verify_base(base: &str) -> Result<String, QrError> {
    let upper = base.trim().trim_end_matches('/').to_ascii_uppercase();
    if upper.is_empty() || !upper.chars().all(|c| ALPHANUMERIC.contains(c)) {
        return Err(QrError::Base(base.to_string()));
    }
    Ok(upper)
}

/// `{VERIFY_BASE}/V/{B32}` for a QR token's COSE_Sign1 bytes.
pub fn qr_text(verify_base: &str, token: &[u8]) -> String {
    format!("{verify_base}/V/{}", BASE32_NOPAD.encode(token))
}

/// The token bytes from a QR text or from its base32 part alone (any host: a verifier app does
/// not care which county's page the code would open).
pub fn token_from_text(input: &str) -> Result<Vec<u8>, QrError> {
    let input = input.trim();
    let b32 = match input.rfind("/V/") {
        Some(i) => &input[i + 3..],
        None => input,
    };
    if b32.is_empty() {
        return Err(QrError::Empty);
    }
    BASE32_NOPAD
        .decode(b32.as_bytes())
        .map_err(|_| QrError::Base32)
}

/// A QR symbol: its version and its modules, dark or light.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrSymbol {
    version: Version,
    width: usize,
    dark: Vec<bool>,
}

impl QrSymbol {
    pub fn version(&self) -> Version {
        self.version
    }

    pub fn error_correction_level(&self) -> EcLevel {
        EcLevel::M
    }

    /// Modules per side, without the quiet zone.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module in `row` (from the top) and `column` (from the left) is dark.
    pub fn is_dark(&self, row: usize, column: usize) -> bool {
        self.dark[row * self.width + column]
    }
}

/// The QR code for a QR text, encoded in alphanumeric mode at level M in the smallest version.
pub fn qr_code(text: &str) -> Result<QrSymbol, QrError> {
    for v in 1..=40 {
        let mut bits = Bits::new(Version::Normal(v));
        if bits.push_alphanumeric_data(text.as_bytes()).is_ok()
            && bits.push_terminator(EcLevel::M).is_ok()
        {
            return symbol(bits).ok_or(QrError::TooLong(text.len()));
        }
    }
    Err(QrError::TooLong(text.len()))
}

/// The mask patterns in the order ISO/IEC 18004 numbers them (000 to 111); the first with the
/// lowest penalty wins.
const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// What `qrcode::QrCode::with_bits` does, with the mask chosen by [`penalty`] — the same scores
/// the qrcode crate computes, so the same mask, but in a fraction of the time (its finder-pattern
/// scan was two thirds of a licence's render time).
fn symbol(bits: Bits) -> Option<QrSymbol> {
    let version = bits.version();
    let data = bits.into_bytes();
    let (data, ec) = qrcode::ec::construct_codewords(&data, version, EcLevel::M).ok()?;
    let mut canvas = Canvas::new(version, EcLevel::M);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ec);
    let width = version.width() as usize;
    let mut best: Option<(i32, Vec<bool>)> = None;
    for mask in MASKS {
        let mut masked = canvas.clone();
        masked.apply_mask(mask);
        let dark: Vec<bool> = masked
            .into_colors()
            .into_iter()
            .map(|c| c == Color::Dark)
            .collect();
        let score = penalty(&dark, width);
        if best.as_ref().is_none_or(|(lowest, _)| score < *lowest) {
            best = Some((score, dark));
        }
    }
    let (_, dark) = best?;
    Some(QrSymbol {
        version,
        width,
        dark,
    })
}

/// The mask penalty of ISO/IEC 18004 §7.8.3 as the qrcode crate scores it: runs of five or more
/// alike, 2×2 blocks alike, finder-like 1:1:3:1:1 patterns with light on one side, and the
/// dark/light balance.
fn penalty(dark: &[bool], width: usize) -> i32 {
    let mut columns = vec![false; dark.len()];
    for (i, &module) in dark.iter().enumerate() {
        columns[(i % width) * width + i / width] = module;
    }
    let mut score: i32 = dark
        .chunks(width)
        .chain(columns.chunks(width))
        .map(line_penalty)
        .sum();
    for pair in dark.chunks(width).collect::<Vec<_>>().windows(2) {
        let (upper, lower) = (pair[0], pair[1]);
        for x in 0..width - 1 {
            let c = upper[x];
            if upper[x + 1] == c && lower[x] == c && lower[x + 1] == c {
                score += 3;
            }
        }
    }
    let ratio = (dark.iter().filter(|&&d| d).count() * 200 / dark.len()) as i32;
    score + (ratio - 100).abs()
}

/// The penalties of one row or column: runs of five or more alike (length − 2 each), and
/// dark-light-dark-dark-dark-light-dark with four light modules (or the edge) before or after
/// (40 each). One pass, the last seven modules kept as bits.
fn line_penalty(line: &[bool]) -> i32 {
    const FINDER: u32 = 0b101_1101;
    let light = |modules: &[bool]| modules.iter().all(|&m| !m);
    let mut score = 0;
    let mut run = 0;
    let mut window = 0u32;
    for (j, &module) in line.iter().enumerate() {
        if j > 0 && module == line[j - 1] {
            run += 1;
        } else {
            if run >= 5 {
                score += run - 2;
            }
            run = 1;
        }
        window = (window << 1 | u32::from(module)) & 0x7F;
        if j >= 6 && window == FINDER {
            let start = j - 6;
            let before = light(&line[start.saturating_sub(4)..start]);
            let after = light(&line[j + 1..(j + 5).min(line.len())]);
            if before || after {
                score += 40;
            }
        }
    }
    if run >= 5 {
        score += run - 2;
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::QrCode;

    #[test]
    fn the_fast_mask_choice_picks_what_the_qrcode_crate_picks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let alphabet = ALPHANUMERIC.as_bytes();
        for n in 0..300 {
            let len = 1 + n * 2 + rng.gen_range(0..3);
            let text: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect();
            let ours = qr_code(&text).unwrap();
            let mut bits = Bits::new(ours.version());
            bits.push_alphanumeric_data(text.as_bytes()).unwrap();
            bits.push_terminator(EcLevel::M).unwrap();
            let theirs = QrCode::with_bits(bits, EcLevel::M).unwrap();
            let their_dark: Vec<bool> = theirs
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect();
            assert_eq!(ours.dark, their_dark, "{len} characters");
        }
    }

    #[test]
    fn qr_text_round_trips_and_accepts_the_bare_base32_part() {
        let base = normalise_verify_base("https://zz.example.gov.cn/").unwrap();
        assert_eq!(base, "HTTPS://ZZ.EXAMPLE.GOV.CN");
        let text = qr_text(&base, &[0xd2, 0x84, 0x01]);
        assert_eq!(text, "HTTPS://ZZ.EXAMPLE.GOV.CN/V/2KCAC");
        assert_eq!(token_from_text(&text).unwrap(), vec![0xd2, 0x84, 0x01]);
        assert_eq!(token_from_text("2KCAC").unwrap(), vec![0xd2, 0x84, 0x01]);
        assert_eq!(token_from_text("2kcac"), Err(QrError::Base32));
        assert!(normalise_verify_base("https://x.cn/?a=b").is_err());
    }

    /// The smallest version that holds `text` in byte mode, for comparison.
    fn byte_mode_version(text: &str) -> i16 {
        (1..=40)
            .find(|&v| {
                let mut bits = Bits::new(Version::Normal(v));
                bits.push_byte_data(text.as_bytes()).is_ok()
                    && bits.push_terminator(EcLevel::M).is_ok()
            })
            .unwrap()
    }

    #[test]
    fn a_350_byte_token_is_a_version_15_code_in_alphanumeric_mode() {
        use base64::Engine;
        let token = [0xAB; 350];
        let text = qr_text("HTTPS://ZZ.EXAMPLE.GOV.CN", &token);
        assert!(text.chars().all(|c| ALPHANUMERIC.contains(c)));
        let code = qr_code(&text).unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::M);
        assert_eq!(code.version(), Version::Normal(15));
        // Smallest: the same text in alphanumeric mode does not fit version 14.
        let mut bits = Bits::new(Version::Normal(14));
        let fits_14 = bits.push_alphanumeric_data(text.as_bytes()).is_ok()
            && bits.push_terminator(EcLevel::M).is_ok();
        assert!(!fits_14);
        // Base64 in byte mode would need two versions more (SPEC §6).
        let b64 = format!(
            "https://zz.example.gov.cn/V/{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
        );
        assert_eq!(byte_mode_version(&b64), 17);
    }
}
