//! SHA-256 and HMAC-SHA256, through ring: the digests that bind scans, versions and the audit chain.

use data_encoding::HEXLOWER;
use ring::{digest, hmac};

pub fn sha256(data: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes")
}

/// Lowercase hex SHA-256, the form SPEC §6 uses for `scan` and `prev`.
pub fn sha256_hex(data: &[u8]) -> String {
    HEXLOWER.encode(&sha256(data))
}

/// Lowercase hex HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    HEXLOWER.encode(hmac::sign(&key, data).as_ref())
}

/// Whether two secrets (a CSRF token, a TOTP code) are equal, in time that depends only on their
/// lengths, so that a wrong guess does not tell how much of it was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
