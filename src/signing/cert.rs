//! What certificates and their key ids are (SPEC §5), shared by the key ring that makes them
//! and the trust store that checks them: the signer EKU, where a subject carries its USCC, the
//! kid, and reading a PEM certificate.

use base64::Engine;

/// The extended key usage every signer certificate carries: a UUID-based OID of this project
/// (`2.25.` followed by the UUID 7c2e5a91-4f3b-4d8e-9a61-3b0f5c8d2e47 as an integer).
pub const SIGNER_EKU_OID: &str = "2.25.165064954062291072181676185094143684167";

/// The DER content octets of [`SIGNER_EKU_OID`] (without tag and length).
pub const SIGNER_EKU_DER: &[u8] = &[
    0x69, 0x81, 0xf8, 0xae, 0xad, 0xa4, 0xa9, 0xf3, 0xda, 0xb6, 0x9d, 0x9a, 0xb0, 0xce, 0xe1, 0xf5,
    0xe4, 0xb4, 0xdc, 0x47,
];

/// The X.500 attribute type organizationIdentifier (2.5.4.97): where a subject carries its USCC.
pub const ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

/// `kid` = the first 8 bytes of SHA-256 over the certificate's DER (SPEC §5).
pub fn kid_of(cert_der: &[u8]) -> [u8; 8] {
    crate::hash::sha256(cert_der)[..8]
        .try_into()
        .expect("8 bytes")
}

/// The kid as the trust list writes it: base64url without padding.
pub fn kid_text(kid: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kid)
}

/// The DER bytes of the first certificate in a PEM text.
pub fn pem_der(pem: &str) -> Result<Vec<u8>, String> {
    let (_, parsed) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if parsed.label != "CERTIFICATE" {
        return Err(format!("PEM holds a {}, not a CERTIFICATE", parsed.label));
    }
    Ok(parsed.contents)
}
