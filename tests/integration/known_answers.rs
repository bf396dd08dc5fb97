//! Known-answer vectors for every signed format (SPEC §6, §7): a fixed key and a fixed record give
//! fixed bytes, committed under `tests/vectors/`. A change to the wire format fails here first.
//! After a deliberate format change, regenerate with `ELICENCE_UPDATE_VECTORS=1 cargo test --test
//! known_answers` and say why in the commit.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use elicence::identifiers::{LicenceKey, ResidentId, TypeCode, Uscc};
use elicence::licence::{FieldValue, Holder, HolderId, Record};
use elicence::signing::claims::{FullRecord, QrToken};
use elicence::signing::cose::Envelope;
use elicence::signing::status_list::{EntryStatus, StatusList};
use elicence::signing::{qr, sign_version, Unsigned};
use time::macros::{date, datetime};

/// The vector key: Ed25519 seed 32 × 0x11. Its public key is in docs/FORMATS.md §7.
fn key() -> SigningKey {
    SigningKey::from_bytes(&[0x11; 32])
}

/// The QR version the vector's 553-character text needs at level M (docs/FORMATS.md quotes it).
const VECTOR_QR_VERSION: i16 = 15;

const KID: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];

fn vector_version() -> elicence::licence::LicenceVersion {
    let record = Record {
        number: "残联证字第330122001号".into(),
        holder: Holder {
            name: "李秀英".into(),
            id: HolderId::Person(ResidentId::parse("11010519491231002X").unwrap()),
        },
        valid_from: date!(2026 - 01 - 01),
        valid_until: Some(date!(2035 - 12 - 31)),
        fields: [
            ("disability_category", FieldValue::Text("肢体残疾".into())),
            ("disability_level", FieldValue::Text("三级".into())),
            ("gender", FieldValue::Text("女".into())),
            (
                "residence",
                FieldValue::Text("浙江省示范县城关镇和平村5组23号".into()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        scan: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
    };
    let id = LicenceKey {
        type_code: TypeCode::parse("13100000MB0000020K001").unwrap(),
        issuer: Uscc::parse("13330122MB0000003M").unwrap(),
        serial: 2430599,
    }
    .version(2);
    sign_version(
        &key(),
        KID,
        Unsigned {
            id,
            licence_name: "中华人民共和国残疾人证",
            record,
            issued_at: datetime!(2026-01-02 03:04:05 UTC),
            directory_version: 3,
            prev: Some("2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae".into()),
            status_index: 123_456,
            verify_base: "HTTPS://ZZ.EXAMPLE.GOV.CN".into(),
        },
    )
}

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn check(name: &str, actual: &str) {
    let path = vector_path(name);
    if std::env::var("ELICENCE_UPDATE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(&path, format!("{actual}\n")).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (generate with ELICENCE_UPDATE_VECTORS=1)",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected.trim_end(),
        "{name} drifted from the committed vector"
    );
}

/// A committed vector written as hex.
fn read_hex(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(vector_path(name)).unwrap();
    data_encoding::HEXLOWER
        .decode(text.trim().as_bytes())
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

#[test]
fn full_record_matches_its_vector_and_decodes_back() {
    let v = vector_version();
    check("full_record.cose.hex", &hex(&v.full_record));
    let envelope = Envelope::parse(&v.full_record).unwrap();
    assert!(envelope.verifies_with(&key().verifying_key()));
    check("full_record.payload.hex", &hex(envelope.payload()));
    let full = FullRecord::from_payload(envelope.payload()).unwrap();
    assert_eq!(full.record, v.record);
    let status = full.status.expect("the status claim (65535)");
    assert_eq!(
        (status.idx, status.uri.as_str()),
        (
            123_456,
            "HTTPS://ZZ.EXAMPLE.GOV.CN/api/v1/status-lists/13330122MB0000003M/0"
        )
    );
    assert_eq!(
        full.claims.exp,
        Some(datetime!(2035-12-31 16:00 UTC).unix_timestamp())
    );
}

/// A version signed before the full record carried the status claim (65535) still decodes,
/// verifies, and encodes back to the very bytes it was signed as: old versions keep their bytes.
#[test]
fn a_full_record_from_before_the_status_claim_keeps_its_bytes() {
    let signed = read_hex("full_record.before-status-claim.cose.hex");
    let envelope = Envelope::parse(&signed).unwrap();
    assert!(envelope.verifies_with(&key().verifying_key()));
    assert_eq!(
        envelope.payload(),
        read_hex("full_record.before-status-claim.payload.hex")
    );
    let full = FullRecord::from_payload(envelope.payload()).unwrap();
    assert_eq!(full.status, None);
    assert_eq!(full.to_payload(), envelope.payload());
    assert_eq!(full.record, vector_version().record);
}

#[test]
fn qr_token_and_qr_text_match_their_vectors() {
    let v = vector_version();
    check("qr_token.cose.hex", &hex(&v.qr_token));
    let text = qr::qr_text("HTTPS://ZZ.EXAMPLE.GOV.CN", &v.qr_token);
    check("qr_text.txt", &text);
    let code = qr::qr_code(&text).unwrap();
    assert_eq!(
        (text.len(), code.version()),
        (553, qrcode::Version::Normal(VECTOR_QR_VERSION))
    );
    let envelope = Envelope::parse(&v.qr_token).unwrap();
    let token = QrToken::from_payload(envelope.payload()).unwrap();
    assert_eq!(token.masked_holder_id, "1101**********002X");
    assert_eq!(hex(&token.record_hash), v.payload_hash);
    assert_eq!(token.status_index, 123_456);
}

#[test]
fn status_list_matches_its_vector() {
    let issuer = Uscc::parse("13330122MB0000003M").unwrap();
    let base = "HTTPS://ZZ.EXAMPLE.GOV.CN";
    let mut list = StatusList::new(base, issuer, 0, 1_767_322_800, 86_400);
    list.entries.set(123_456, EntryStatus::Revoked);
    list.entries.set(7, EntryStatus::Suspended);
    list.entries.set(42, EntryStatus::Superseded);
    check("status_list.cose.hex", &hex(&list.sign(&key(), &KID)));
}

/// The vector seal: P-256 scalar 32 × 0x22 (a published test key, like the Ed25519 seed 0x11),
/// with the self-signed certificate `tests/vectors/seal.crt.pem` made for it once.
fn vector_seal() -> elicence::signing::pdf_seal::PdfSeal {
    let key = p256::ecdsa::SigningKey::from_slice(&[0x22; 32]).unwrap();
    let pem = std::fs::read_to_string(vector_path("seal.crt.pem")).unwrap();
    let der = elicence::signing::cert::pem_der(&pem).unwrap();
    elicence::signing::pdf_seal::PdfSeal::new(key, &der, &[]).unwrap()
}

/// A layout's PDF is a promise (docs/DESIGN.md, "Stability"): a stored version renders to the
/// same bytes under every layout the repository ships, for as long as it ships it. The version
/// rendered is a stored one — the committed full record and QR text of a version signed before
/// the status claim — so that only the renderer can move these hashes. A renderer change that
/// moves them needs a new layout, not a new vector.
#[test]
fn every_layout_renders_the_vector_version_to_its_committed_bytes() {
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let directory = elicence::directory::Directory::load(&templates.join("directory")).unwrap();
    let renderer = elicence::render::Renderer::load(&templates, &directory).unwrap();
    let signed = read_hex("full_record.before-status-claim.cose.hex");
    let full = FullRecord::from_signed(&signed).unwrap();
    let text = std::fs::read_to_string(vector_path("qr_text.before-status-claim.txt")).unwrap();
    let text = text.trim_end();
    let mut licence_type = directory
        .get(&full.claims.cti.key.type_code)
        .unwrap()
        .clone();
    let seal = vector_seal();
    let layouts: Vec<String> = renderer
        .layouts()
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(layouts.len() >= 3, "{layouts:?}");
    for layout in &layouts {
        licence_type.template = layout.clone();
        let pdf = renderer
            .render(&licence_type, &full, text, Some(&seal))
            .unwrap();
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/licences");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("vector-{layout}.pdf")), &pdf).unwrap();
        check(
            &format!("licence.{layout}.pdf.sha256"),
            &hex(&elicence::hash::sha256(&pdf)),
        );
    }
}
