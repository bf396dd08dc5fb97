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

/// The host of a normalised verify base when no phone could reach it: a loopback name or
/// address (`localhost`, 127.0.0.0/8; `::1` cannot be written in the QR character set) or the
/// unspecified address 0.0.0.0 that a listen address may be. None for any other host.
pub fn unreachable_host(verify_base: &str) -> Option<&str> {
    let after_scheme = verify_base
        .split_once("://")
        .map_or(verify_base, |(_, rest)| rest);
    let authority = after_scheme.split('/').next().unwrap_or_default();
    let host = authority.split(':').next().unwrap_or_default();
    let loopback_name = host == "LOCALHOST" || host.ends_with(".LOCALHOST");
    let loopback_address = host
        .parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    (loopback_name || loopback_address).then_some(host)
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
/// dark/light balance. Rows and columns are bit sets, so the scores come from whole-word
/// operations rather than a branch per module (those branches, unpredictable on a QR code's
/// noise, were three quarters of building the symbol).
fn penalty(dark: &[bool], width: usize) -> i32 {
    let mut rows = vec![Line::default(); width];
    let mut columns = vec![Line::default(); width];
    for (i, &module) in dark.iter().enumerate() {
        let (y, x) = (i / width, i % width);
        rows[y].put(x, module);
        columns[x].put(y, module);
    }
    let within = Line::first(width);
    let mut score: i32 = rows
        .iter()
        .chain(&columns)
        .map(|&line| line_penalty(line, width))
        .sum();
    let pairs_within = Line::first(width - 1);
    for pair in rows.windows(2) {
        let (upper, lower) = (pair[0], pair[1]);
        let alike_right = |line: Line| line.xor(line.shifted(1)).not().and(pairs_within);
        let blocks = alike_right(upper)
            .and(alike_right(lower))
            .and(upper.xor(lower).not());
        score += 3 * blocks.count();
    }
    let dark_modules: i32 = rows.iter().map(|row| row.and(within).count()).sum();
    let ratio = dark_modules * 200 / (width * width) as i32;
    score + (ratio - 100).abs()
}

/// The penalties of one row or column: runs of five or more alike (length − 2 each), and
/// dark-light-dark-dark-dark-light-dark with four light modules (or the edge) before or after
/// (40 each).
fn line_penalty(line: Line, width: usize) -> i32 {
    let run = |length: usize| if length >= 5 { length as i32 - 2 } else { 0 };
    let mut score = 0;
    let mut start = 0;
    for change in line.xor(line.shifted(1)).and(Line::first(width - 1)).ones() {
        score += run(change + 1 - start);
        start = change + 1;
    }
    score += run(width - start);
    let light = line.not().and(Line::first(width));
    let finders = line
        .and(light.shifted(1))
        .and(line.shifted(2))
        .and(line.shifted(3))
        .and(line.shifted(4))
        .and(light.shifted(5))
        .and(line.shifted(6));
    for j in finders.ones() {
        let all_light = |range: std::ops::Range<usize>| range.into_iter().all(|i| !line.get(i));
        if all_light(j.saturating_sub(4)..j) || all_light(j + 7..(j + 11).min(width)) {
            score += 40;
        }
    }
    score
}

/// A row or column of up to 177 modules (version 40), dark as 1: module `i` is bit `i % 64` of
/// word `i / 64`. Bits past the line's width are 0 in a line, and masked off where a result
/// could set them.
#[derive(Debug, Clone, Copy, Default)]
struct Line([u64; 3]);

impl Line {
    /// Modules `0..n` set.
    fn first(n: usize) -> Line {
        let word = |w: usize| match n.saturating_sub(w * 64) {
            0 => 0,
            k if k >= 64 => u64::MAX,
            k => (1 << k) - 1,
        };
        Line([word(0), word(1), word(2)])
    }

    fn put(&mut self, i: usize, dark: bool) {
        self.0[i / 64] |= u64::from(dark) << (i % 64);
    }

    fn get(self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    /// Module `i` of the result is module `i + k` of `self` (0 < k < 64).
    fn shifted(self, k: u32) -> Line {
        let [a, b, c] = self.0;
        Line([a >> k | b << (64 - k), b >> k | c << (64 - k), c >> k])
    }

    fn and(self, other: Line) -> Line {
        Line([0, 1, 2].map(|w| self.0[w] & other.0[w]))
    }

    fn xor(self, other: Line) -> Line {
        Line([0, 1, 2].map(|w| self.0[w] ^ other.0[w]))
    }

    fn not(self) -> Line {
        Line(self.0.map(|w| !w))
    }

    fn count(self) -> i32 {
        self.0.iter().map(|w| w.count_ones() as i32).sum()
    }

    /// The set modules, in order.
    fn ones(self) -> impl Iterator<Item = usize> {
        (0..3).flat_map(move |w| {
            let mut word = self.0[w];
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = word.trailing_zeros() as usize;
                    word &= word - 1;
                    w * 64 + bit
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_text_is_a_token_or_a_clear_error_never_a_panic(text in proptest::prelude::any::<String>()) {
            if let Err(e) = token_from_text(&text) {
                proptest::prop_assert!(!e.to_string().is_empty());
            }
        }

        #[test]
        fn every_token_survives_its_qr_text(token in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..400)) {
            let text = qr_text("HTTPS://ZZ.EXAMPLE.GOV.CN", &token);
            proptest::prop_assert!(text.chars().all(|c| ALPHANUMERIC.contains(c)));
            proptest::prop_assert_eq!(token_from_text(&text).unwrap(), token);
        }
    }
    use qrcode::QrCode;

    #[test]
    fn the_fast_mask_choice_picks_what_the_qrcode_crate_picks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let alphabet = ALPHANUMERIC.as_bytes();
        // Up to version 20 (two words a line), then a few up to version 40 (three words).
        let lengths = (0..300)
            .map(|n| 1 + n * 2 + rng.gen_range(0..3))
            .chain([700, 1000, 1300, 1700, 2000, 2331])
            .collect::<Vec<_>>();
        for len in lengths {
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

    #[test]
    fn a_loopback_or_unspecified_verify_base_is_named_unreachable() {
        for (base, host) in [
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://127.1.2.3", "127.1.2.3"),
            ("https://localhost/licences", "LOCALHOST"),
            ("http://app.localhost:8080", "APP.LOCALHOST"),
            ("http://0.0.0.0:9000", "0.0.0.0"),
            ("localhost:8080", "LOCALHOST"),
        ] {
            let base = normalise_verify_base(base).unwrap();
            assert_eq!(unreachable_host(&base), Some(host), "{base}");
        }
        for base in [
            "https://zz.example.gov.cn",
            "http://10.0.0.1:8080",
            "https://localhost.example.cn",
            "http://128.0.0.1",
        ] {
            let base = normalise_verify_base(base).unwrap();
            assert_eq!(unreachable_host(&base), None, "{base}");
        }
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
