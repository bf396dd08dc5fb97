//! A department's PDF seal (docs/FORMATS.md §10): a P-256 key whose certificate the county's seal
//! CA issued, and the CMS SignedData (RFC 5652) a PAdES baseline B-B signature carries
//! (ETSI EN 319 142-1: `ETSI.CAdES.detached`, signed attributes content-type, message-digest and
//! signing-certificate-v2, no signing-time). Built with RustCrypto's `cms`/`der`/`x509-cert`
//! types, not by hand, and signed per RFC 6979, so the same digest always gives the same bytes:
//! a PDF re-renders byte for byte.
//!
//! P-256 rather than the licence signers' Ed25519: CMS with Ed25519 (RFC 8419) is refused by
//! the readers a holder opens a PDF in (Acrobat, and poppler's `pdfsig` through NSS 3.87 cannot
//! even load an Ed25519 certificate), while ECDSA P-256 with SHA-256 is read by all of them.

use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Sequence};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-aa-signingCertificateV2 (RFC 5035).
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

/// ESSCertIDv2 (RFC 5035) with the default hash, SHA-256, left out as DER requires.
#[derive(Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
    issuer_serial: IssuerSerial,
}

#[derive(Sequence)]
struct IssuerSerial {
    issuer: Vec<GeneralName>,
    serial_number: SerialNumber,
}

/// SigningCertificateV2 (RFC 5035), without policies.
#[derive(Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("PDF seal: {0}")]
    Certificate(String),
    #[error("PDF seal: encoding the CMS signature: {0}")]
    Encode(#[from] der::Error),
}

/// A department's seal: the private key, its certificate and the certificates between it and the
/// county root (the seal CA's certificate under the root), all carried in every signature so a
/// reader needs only the root.
pub struct PdfSeal {
    key: SigningKey,
    certificate: Certificate,
    chain: Vec<Certificate>,
}

impl PdfSeal {
    /// A seal from its key and DER certificates; refused when the key is not the certificate's.
    pub fn new(
        key: SigningKey,
        certificate_der: &[u8],
        chain_der: &[Vec<u8>],
    ) -> Result<PdfSeal, SealError> {
        let parse = |der: &[u8]| {
            Certificate::from_der(der)
                .map_err(|e| SealError::Certificate(format!("not X.509: {e}")))
        };
        let certificate = parse(certificate_der)?;
        let public = key.verifying_key().to_encoded_point(false);
        let in_certificate = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if public.as_bytes() != in_certificate {
            return Err(SealError::Certificate(
                "the private key does not match its certificate".into(),
            ));
        }
        let chain = chain_der
            .iter()
            .map(|der| parse(der))
            .collect::<Result<_, _>>()?;
        Ok(PdfSeal {
            key,
            certificate,
            chain,
        })
    }

    /// The DER ContentInfo of a detached CMS SignedData over content whose SHA-256 is `digest`.
    pub fn sign_detached(&self, digest: &[u8; 32]) -> Result<Vec<u8>, SealError> {
        let signed_attributes = self.signed_attributes(digest)?;
        let signature: Signature = self.key.sign(&signed_attributes.to_der()?);
        let sha256 = algorithm(ID_SHA256);
        let tbs = &self.certificate.tbs_certificate;
        let signer = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: tbs.issuer.clone(),
                serial_number: tbs.serial_number.clone(),
            }),
            digest_alg: sha256.clone(),
            signed_attrs: Some(signed_attributes),
            signature_algorithm: algorithm(ECDSA_WITH_SHA256),
            signature: OctetString::new(signature.to_der().as_bytes())?,
            unsigned_attrs: None,
        };
        let certificates = std::iter::once(&self.certificate)
            .chain(&self.chain)
            .map(|c| CertificateChoices::Certificate(c.clone()))
            .collect::<Vec<_>>();
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256])?,
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(CertificateSet(SetOfVec::try_from(certificates)?)),
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer])?),
        };
        Ok(ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data)?,
        }
        .to_der()?)
    }

    /// content-type, message-digest and signing-certificate-v2; no signing-time (PAdES puts the
    /// time in the signature dictionary's /M).
    fn signed_attributes(&self, digest: &[u8; 32]) -> Result<SetOfVec<Attribute>, SealError> {
        let certificate_der = self.certificate.to_der()?;
        let essential = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(crate::hash::sha256(&certificate_der).to_vec())?,
                issuer_serial: IssuerSerial {
                    issuer: vec![GeneralName::DirectoryName(
                        self.certificate.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: self.certificate.tbs_certificate.serial_number.clone(),
                },
            }],
        };
        let attribute = |oid, value: Any| -> Result<Attribute, SealError> {
            Ok(Attribute {
                oid,
                values: SetOfVec::try_from(vec![value])?,
            })
        };
        Ok(SetOfVec::try_from(vec![
            attribute(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
            attribute(
                ID_MESSAGE_DIGEST,
                Any::encode_from(&OctetString::new(digest.to_vec())?)?,
            )?,
            attribute(ID_SIGNING_CERTIFICATE_V2, Any::encode_from(&essential)?)?,
        ])?)
    }

    /// The subject's organisation (the department), as the signature dictionary's /Name.
    pub fn signer_name(&self) -> String {
        let der = self.certificate.to_der().unwrap_or_default();
        super::cert::subject_organisation(&der).unwrap_or_default()
    }
}

/// An algorithm identifier without parameters (SHA-256 and ECDSA take none: RFC 5754, 5758).
fn algorithm(oid: ObjectIdentifier) -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    }
}
