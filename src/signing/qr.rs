//! The QR text of SPEC §6 — `{VERIFY_BASE}/V/{B32}` — and the QR code that carries it: alphanumeric
//! mode, error correction level M, the smallest version that fits.

use data_encoding::BASE32_NOPAD;
use qrcode::bits::Bits;
use qrcode::{EcLevel, QrCode, Version};

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

/// The QR code for a QR text, encoded in alphanumeric mode at level M in the smallest version.
pub fn qr_code(text: &str) -> Result<QrCode, QrError> {
    for v in 1..=40 {
        let mut bits = Bits::new(Version::Normal(v));
        if bits.push_alphanumeric_data(text.as_bytes()).is_ok()
            && bits.push_terminator(EcLevel::M).is_ok()
        {
            return QrCode::with_bits(bits, EcLevel::M).map_err(|_| QrError::TooLong(text.len()));
        }
    }
    Err(QrError::TooLong(text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
