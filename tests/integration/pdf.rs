//! PDF licences checked with the tools a reader has: poppler (pdftoppm, pdftotext, pdffonts),
//! zbarimg and qpdf (installed by tools/install-test-deps.sh). Renderings are kept under
//! target/licences/ to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use elicence::app::{Actor, AppError};
use elicence::directory::FieldType;
use elicence::identifiers::TypeCode;
use serde_json::json;

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/licences");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (tools/install-test-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(name: &str, pdf: &[u8]) -> PathBuf {
    let path = out_dir().join(format!("{name}.pdf"));
    std::fs::write(&path, pdf).unwrap();
    path
}

/// Fails unless every word pdftotext finds lies inside the page's inner border line (A4: 595 ×
/// 842 pt; the line runs 14.2 mm = 40.25 pt from each edge, 0.6 pt wide).
fn assert_inside_border(pdf: &Path) {
    let html = tool("pdftotext", &["-bbox", pdf.to_str().unwrap(), "-"]);
    let number = |attr: &str, word: &str| -> f32 {
        let start = word.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
        word[start..].split('"').next().unwrap().parse().unwrap()
    };
    let mut words = 0;
    for word in html.lines().filter(|l| l.trim_start().starts_with("<word")) {
        words += 1;
        let (x0, x1) = (number("xMin", word), number("xMax", word));
        let (y0, y1) = (number("yMin", word), number("yMax", word));
        assert!(
            x0 >= 40.6 && x1 <= 554.7 && y0 >= 40.6 && y1 <= 801.3,
            "{}: outside the border: {word}",
            pdf.display()
        );
    }
    assert!(words > 10, "no words found in {}", pdf.display());
}

/// Renders at 150 dpi and decodes the QR code from the image.
fn decode_qr(pdf: &Path) -> String {
    let prefix = pdf.with_extension("");
    tool(
        "pdftoppm",
        &[
            "-r",
            "150",
            "-png",
            "-singlefile",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    let png = prefix.with_extension("png");
    // QR codes only: zbar's linear decoders now and then read a few digits out of the page's
    // lettering or border (a CI run got "649672" after the QR text), which no verifier scans for.
    let decoded = tool(
        "zbarimg",
        &[
            "--quiet",
            "--raw",
            "-Sdisable",
            "-Sqrcode.enable",
            png.to_str().unwrap(),
        ],
    );
    decoded.trim().to_string()
}

#[tokio::test]
async fn every_sample_type_renders_a_checked_pdf_whose_qr_decodes_to_the_qr_text() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    for (code, name) in [
        (FOOD, "food"),
        (SOLE_TRADER, "sole-trader"),
        (PERMIT, "permit"),
        (DISABILITY, "disability"),
    ] {
        let mut record = sample(&t.app, code, &format!("PDF-{name}"));
        record.holder.name = format!("{}（堃喆昇珺玥赟䶮𠮷）", record.holder.name);
        let issued = t.app.issue(&actor, code, &record, None).await.unwrap();
        let pdf = t.app.pdf(&actor, &issued.id, None).await.unwrap();
        let text = check_with_readers(name, &pdf, &issued.qr_text);
        assert!(
            text.contains("堃喆昇珺玥赟䶮𠮷"),
            "{name}: rare characters extract: {text}"
        );
        assert!(
            text.contains(&format!("PDF-{name}")),
            "{name}: the number is printed"
        );
    }
}

/// What a reader's tools say of a licence PDF: its QR decodes (at 150 dpi) to the QR text,
/// qpdf finds no error, one page, the font is embedded, subset and mapped to Unicode, and every
/// word lies inside the border. Returns the text pdftotext extracts.
fn check_with_readers(name: &str, pdf: &[u8], qr_text: &str) -> String {
    // Renderer 3's signature adds about 7 KB (6 KB of room for the CMS, written as hex).
    assert!(pdf.len() < 58_000, "{name}: {} bytes", pdf.len());
    let path = write(name, pdf);
    let file = path.to_str().unwrap();
    assert_eq!(
        decode_qr(&path),
        qr_text,
        "{name}: the QR code carries the QR text"
    );
    tool("qpdf", &["--check", file]);
    let fonts = tool("pdffonts", &[file]);
    let font_line = fonts.lines().nth(2).unwrap_or_default();
    assert!(
        font_line.contains("NotoSansCJK") && font_line.contains("+"),
        "{name}: {fonts}"
    );
    let columns: Vec<&str> = font_line.split_whitespace().collect();
    assert_eq!(
        &columns[columns.len() - 5..columns.len() - 2],
        ["yes", "yes", "yes"],
        "{name}: embedded, subset, unicode: {fonts}"
    );
    let pages = tool("qpdf", &["--show-npages", file]);
    assert_eq!(pages.trim(), "1");
    assert_inside_border(&path);
    let text = tool("pdftotext", &["-layout", file, "-"]);
    assert!(text.contains("扫码核验"), "{name}: {text}");
    text
}

/// Whether renderer 2 drew the file: it writes the QR code as a form XObject.
fn drawn_by_renderer_2(pdf: &[u8]) -> bool {
    let path = write("renderer-probe", pdf);
    let expanded = tool(
        "qpdf",
        &[
            "--qdf",
            "--object-streams=disable",
            path.to_str().unwrap(),
            "-",
        ],
    );
    expanded.contains("/Subtype /Form")
}

/// A templates folder like the shipped one whose directory names the `standard` layout
/// (renderer 1), as the directory did before `standard-v2`.
fn templates_before_v2(dir: &Path) -> PathBuf {
    let templates = dir.join("templates-before-v2");
    std::fs::create_dir_all(templates.join("directory")).unwrap();
    for entry in std::fs::read_dir(templates_dir().join("directory")).unwrap() {
        let file = entry.unwrap().path();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("template = \"signed-v3\""));
        std::fs::write(
            templates.join("directory").join(file.file_name().unwrap()),
            text.replace("template = \"signed-v3\"", "template = \"standard\""),
        )
        .unwrap();
    }
    for shared in ["layouts", "fonts"] {
        std::os::unix::fs::symlink(templates_dir().join(shared), templates.join(shared)).unwrap();
    }
    templates
}

#[tokio::test]
async fn a_licence_keeps_rendering_with_the_layout_it_was_issued_under() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let actor = Actor::local_operator();
    let mut before = settings(dir.path(), &database.url);
    before.templates_dir = templates_before_v2(dir.path());
    let old = elicence::app::App::open(before).await.unwrap();
    let issued = old
        .issue(&actor, FOOD, &sample(&old, FOOD, "PDF-GEN-1"), None)
        .await
        .unwrap();
    let first = old.pdf(&actor, &issued.id, None).await.unwrap();
    assert!(!drawn_by_renderer_2(&first));
    check_with_readers("renderer-1", &first, &issued.qr_text);

    // The directory moves to `standard-v2`: the licence issued before renders as it did, an
    // amendment signed now renders with renderer 2.
    let app = elicence::app::App::open(settings(dir.path(), &database.url))
        .await
        .unwrap();
    assert_eq!(app.pdf(&actor, &issued.id, None).await.unwrap(), first);
    let change = elicence::app::Amendment {
        holder_name: Some("新名称餐饮有限公司".into()),
        ..Default::default()
    };
    let amended = app
        .amend(&actor, &issued.licence_id, &change)
        .await
        .unwrap();
    let second = app.pdf(&actor, &amended.id, None).await.unwrap();
    assert!(drawn_by_renderer_2(&second));
    let text = check_with_readers("renderer-2", &second, &amended.qr_text);
    assert!(text.contains("新名称餐饮有限公司"), "{text}");
}

#[tokio::test]
async fn re_rendering_is_byte_identical_even_between_other_renders() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let a = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "PDF-SAME-A"), None)
        .await
        .unwrap();
    let b = t
        .app
        .issue(&actor, PERMIT, &sample(&t.app, PERMIT, "PDF-SAME-B"), None)
        .await
        .unwrap();
    let first = t.app.pdf(&actor, &a.id, None).await.unwrap();
    let other = t.app.pdf(&actor, &b.id, None).await.unwrap();
    let again = t.app.pdf(&actor, &a.id, None).await.unwrap();
    assert_eq!(first, again);
    assert_ne!(first, other);
    // A second process (another application on the same store) renders the same bytes.
    let reopened = t.reopen().await;
    assert_eq!(reopened.pdf(&actor, &a.id, None).await.unwrap(), first);
    // Version 1 still renders as it was after an amendment.
    let change = elicence::app::Amendment {
        holder_name: Some("新名称餐饮有限公司".into()),
        ..Default::default()
    };
    t.app.amend(&actor, &a.licence_id, &change).await.unwrap();
    assert_eq!(
        t.app.pdf(&actor, &a.licence_id, Some(1)).await.unwrap(),
        first
    );
    assert_ne!(t.app.pdf(&actor, &a.licence_id, None).await.unwrap(), first);
}

#[tokio::test]
async fn the_longest_values_the_directory_allows_fit_on_one_page() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    for code in [FOOD, SOLE_TRADER, PERMIT, DISABILITY] {
        let licence_type = t
            .app
            .licence_type(&TypeCode::parse(code).unwrap())
            .unwrap()
            .clone();
        let mut record = sample(&t.app, code, &"号".repeat(64));
        record.holder.name = "长".repeat(200);
        for f in licence_type
            .fields
            .iter()
            .filter(|f| f.field_type == FieldType::Text)
        {
            let len = f.max_len.unwrap_or(1000);
            record.fields.insert(f.key.clone(), json!("鑫".repeat(len)));
        }
        let issued = t.app.issue(&actor, code, &record, None).await.unwrap();
        let expected: usize = licence_type
            .fields
            .iter()
            .filter(|f| f.field_type == FieldType::Text && f.printed)
            .map(|f| f.max_len.unwrap_or(1000))
            .sum();
        let pdf = t.app.pdf(&actor, &issued.id, None).await.unwrap();
        check_longest(&format!("longest-{code}"), &pdf, &issued.qr_text, expected);
    }
}

/// One page, every word inside the border, the QR code readable, and all `expected` 鑫 of the
/// longest values on the page.
fn check_longest(name: &str, pdf: &[u8], qr_text: &str, expected: usize) {
    let path = write(name, pdf);
    let file = path.to_str().unwrap();
    assert_eq!(tool("qpdf", &["--show-npages", file]).trim(), "1");
    assert_inside_border(&path);
    assert_eq!(
        decode_qr(&path),
        qr_text,
        "{name}: the QR stays clear of the text"
    );
    let text: String = tool("pdftotext", &[file, "-"])
        .chars()
        .filter(|c| *c == '鑫')
        .collect();
    assert_eq!(text.chars().count(), expected, "{name}: clipped text");
}

#[tokio::test]
async fn a_character_the_font_lacks_is_refused_at_validation() {
    let t = TestApp::new().await;
    let mut record = sample(&t.app, DISABILITY, "PDF-GLYPH");
    record.holder.name = "王\u{E000}明".into();
    record
        .fields
        .insert("residence".into(), json!("和平村🏠5组"));
    let err = t
        .app
        .issue(&Actor::local_operator(), DISABILITY, &record, None)
        .await
        .unwrap_err();
    let AppError::Invalid(errors) = err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["holder.name", "fields.residence"]);
    assert!(
        errors.0[0].reason.contains("U+E000"),
        "{}",
        errors.0[0].reason
    );
    assert_eq!(t.app.store.last_seq().await.unwrap(), 0);
}

#[tokio::test]
async fn the_pdf_is_served_over_http_and_from_the_cli_alike() {
    let s = TestServer::start().await;
    let clerk = s
        .token(Some(MARKET_BUREAU), &[elicence::app::Role::Clerk])
        .await;
    let issued: serde_json::Value = s
        .issue(&clerk, FOOD, "PDF-HTTP")
        .await
        .json()
        .await
        .unwrap();
    let id = issued["id"].as_str().unwrap();
    let response = s
        .client
        .get(s.url(&format!("/api/v1/licences/{id}/pdf")))
        .bearer_auth(&clerk)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let body = response.bytes().await.unwrap();
    let direct =
        s.t.app
            .pdf(&Actor::local_operator(), id, None)
            .await
            .unwrap();
    assert_eq!(body.as_ref(), direct.as_slice());
    let anonymous = s
        .client
        .get(s.url(&format!("/api/v1/licences/{id}/pdf")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
