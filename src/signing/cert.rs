//! What certificates and their key ids are (SPEC §5), shared by the key ring that makes them
//! and the trust store that checks them: the signer EKU, where a subject carries its USCC, the
//! kid, and reading a PEM certificate.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The extended key usage every signer certificate carries: a UUID-based OID of this project
/// (`2.25.` followed by the UUID 7c2e5a91-4f3b-4d8e-9a61-3b0f5c8d2e47 as an integer).
pub const SIGNER_EKU_OID: &str = "2.25.165064954062291072181676185094143684167";

/// The DER content octets of [`SIGNER_EKU_OID`] (without tag and length).
pub const SIGNER_EKU_DER: &[u8] = &[
    0x69, 0x81, 0xf8, 0xae, 0xad, 0xa4, 0xa9, 0xf3, 0xda, 0xb6, 0x9d, 0x9a, 0xb0, 0xce, 0xe1, 0xf5,
    0xe4, 0xb4, 0xdc, 0x47,
];

/// The extended key usage of the supervision key (SPEC §15): `2.25.` followed by the UUID
/// ae5a5955-9db0-42d3-ae0c-a966afb3984b as an integer.
pub const SUPERVISION_EKU_OID: &str = "2.25.231754789901494268150162404709667936331";

/// The DER content octets of [`SUPERVISION_EKU_OID`].
pub const SUPERVISION_EKU_DER: &[u8] = &[
    0x69, 0x82, 0xdc, 0xda, 0xac, 0xd5, 0xb3, 0xdb, 0x82, 0x8b, 0xa7, 0xae, 0x86, 0xaa, 0xac, 0xea,
    0xfd, 0xce, 0xb0, 0x4b,
];

/// The extended key usage of a department's PDF seal certificate (the PAdES signature of its
/// licences' PDFs): `2.25.` followed by the UUID 5d1c8e3a-7b42-4c9f-a0d6-2e8b91f4c375 as an integer.
pub const PDF_SEAL_EKU_OID: &str = "2.25.123766472655580102874779208098124186485";

/// The DER content octets of [`PDF_SEAL_EKU_OID`].
pub const PDF_SEAL_EKU_DER: &[u8] = &[
    0x69, 0x81, 0xba, 0x9c, 0xc7, 0x8e, 0xcf, 0xb4, 0x92, 0xb2, 0xbf, 0xa0, 0xeb, 0x8b, 0xd1, 0xb9,
    0x8f, 0xd3, 0x86, 0x75,
];

/// The extended key usage of the transparency log's key (SPEC §16: tree heads and receipts):
/// `2.25.` followed by the UUID 9b3e7c52-1d84-4f6a-8c2e-5a7d0f93b164 as an integer.
pub const LOG_EKU_OID: &str = "2.25.206354783276526317115283504312310018404";

/// The DER content octets of [`LOG_EKU_OID`].
pub const LOG_EKU_DER: &[u8] = &[
    0x69, 0x82, 0xb6, 0xbe, 0xbe, 0x94, 0xc3, 0xd8, 0xa2, 0xbd, 0xd5, 0x8c, 0x97, 0x96, 0xcf, 0xd0,
    0xfc, 0xce, 0xe2, 0x64,
];

/// What a certificate under the root may sign (SPEC §5): each purpose has its own EKU, and a
/// verifier accepts a key only for its purpose — a department's licence key cannot sign a
/// supervision checkpoint, nor the supervision key a licence.
#[derive(
    utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A department's licence signer.
    #[default]
    Licence,
    /// The service's supervision key: checkpoints of the audit trail (SPEC §15).
    Supervision,
    /// A department's PDF seal: the PAdES signature of its licences' PDFs (P-256, under the
    /// county's seal CA, itself under the root).
    PdfSeal,
    /// The service's transparency-log key: tree heads and receipts (SPEC §16).
    Log,
    /// A purpose this code does not know (a later one): the key is used for nothing, and the
    /// rest of the list still reads.
    #[serde(other)]
    Unknown,
}

impl Purpose {
    /// The DER content octets of the purpose's EKU (none for an unknown purpose).
    pub fn eku_der(self) -> &'static [u8] {
        match self {
            Purpose::Licence => SIGNER_EKU_DER,
            Purpose::Supervision => SUPERVISION_EKU_DER,
            Purpose::PdfSeal => PDF_SEAL_EKU_DER,
            Purpose::Log => LOG_EKU_DER,
            Purpose::Unknown => &[],
        }
    }

    /// The name of the purpose as the trust list writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Licence => "licence",
            Purpose::Supervision => "supervision",
            Purpose::PdfSeal => "pdf-seal",
            Purpose::Log => "log",
            Purpose::Unknown => "unknown",
        }
    }
}

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

/// The organizationName of a certificate's subject (DER): the department or the county.
pub fn subject_organisation(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_organization().next()?.as_str().ok()?;
    Some(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER content octets of an OID `2.25.{arc}` (X.690 8.19): the first two arcs make one
    /// subidentifier, each written base 128, most significant group first.
    fn uuid_oid_der(oid: &str) -> Vec<u8> {
        let arc: u128 = oid.strip_prefix("2.25.").unwrap().parse().unwrap();
        let mut out = vec![2 * 40 + 25];
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            groups.push((rest & 0x7f) as u8 | 0x80);
            rest >>= 7;
        }
        out.extend(groups.iter().rev());
        out
    }

    #[test]
    fn each_purpose_has_its_own_eku_matching_its_oid() {
        assert_eq!(uuid_oid_der(SIGNER_EKU_OID), SIGNER_EKU_DER);
        assert_eq!(uuid_oid_der(SUPERVISION_EKU_OID), SUPERVISION_EKU_DER);
        assert_eq!(uuid_oid_der(PDF_SEAL_EKU_OID), PDF_SEAL_EKU_DER);
        assert_eq!(uuid_oid_der(LOG_EKU_OID), LOG_EKU_DER);
        let purposes = [
            Purpose::Licence,
            Purpose::Supervision,
            Purpose::PdfSeal,
            Purpose::Log,
        ];
        let ekus: std::collections::HashSet<_> = purposes.map(Purpose::eku_der).into();
        assert_eq!(ekus.len(), purposes.len());
    }
}
