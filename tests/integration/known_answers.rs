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
use elicence::signing::status_list::StatusList;
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
    assert_eq!(
        full.claims.exp,
        Some(datetime!(2035-12-31 16:00 UTC).unix_timestamp())
    );
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
    let mut list = StatusList::new(Uscc::parse("13330122MB0000003M").unwrap(), 0, 1_767_322_800);
    list.invalid.set(123_456);
    list.invalid.set(7);
    list.suspended.set(7);
    list.superseded.set(42);
    check("status_list.cose.hex", &hex(&list.sign(&key(), &KID)));
}

/// A layout's PDF is a promise (docs/DESIGN.md, "Stability"): the vector version renders to the
/// same bytes under every layout the repository ships, for as long as it ships it. A renderer
/// change that moves these hashes needs a new layout, not a new vector.
#[test]
fn every_layout_renders_the_vector_version_to_its_committed_bytes() {
    let templates = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("templates");
    let directory = elicence::directory::Directory::load(&templates.join("directory")).unwrap();
    let renderer = elicence::render::Renderer::load(&templates, &directory).unwrap();
    let v = vector_version();
    let full = FullRecord::from_signed(&v.full_record).unwrap();
    let text = qr::qr_text("HTTPS://ZZ.EXAMPLE.GOV.CN", &v.qr_token);
    let mut licence_type = directory.get(&v.id.key.type_code).unwrap().clone();
    let layouts: Vec<String> = renderer
        .layouts()
        .map(|(name, _)| name.to_string())
        .collect();
    assert!(layouts.len() >= 3, "{layouts:?}");
    for layout in &layouts {
        licence_type.template = layout.clone();
        let pdf = renderer.render(&licence_type, &full, &text).unwrap();
        let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/licences");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join(format!("vector-{layout}.pdf")), &pdf).unwrap();
        check(
            &format!("licence.{layout}.pdf.sha256"),
            &hex(&elicence::hash::sha256(&pdf)),
        );
    }
}
