//! PAdES-signed licence PDFs (renderer 3, docs/FORMATS.md §10) checked by readers that are not
//! ours: pyHanko (from PyPI, `tools/pades-venv.sh`) trusting only the county root, and poppler's
//! `pdfsig` with an NSS database trusting only the county's seal CA. Each sample type's PDF is
//! intact and trusted in both; one changed byte fails both.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use elicence::app::Actor;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (tools/install-test-deps.sh): {e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The bin folder of the pyHanko venv, built once by the project's script.
fn pyhanko() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/pades-venv.sh");
    let out = run(script.to_str().unwrap(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("pyhanko")
}

/// An NSS database (`sql:` folder) trusting only `anchor` for signatures.
fn nss_trusting(dir: &Path, anchor: &Path) -> String {
    let db = format!("sql:{}", dir.display());
    std::fs::create_dir_all(dir).unwrap();
    let made = run("certutil", &["-N", "-d", &db, "--empty-password"]);
    assert!(made.status.success(), "{}", text(&made));
    let anchor = anchor.to_str().unwrap();
    let added = run(
        "certutil",
        &[
            "-A", "-d", &db, "-n", "seal-ca", "-t", "CT,C,C", "-i", anchor,
        ],
    );
    assert!(added.status.success(), "{}", text(&added));
    db
}

/// pyHanko's and pdfsig's verdicts on `pdf`: (intact and trusted, valid and trusted).
fn verdicts(pyhanko: &Path, root: &Path, nss: &str, pdf: &Path) -> (String, String) {
    let file = pdf.to_str().unwrap();
    let hanko = run(
        pyhanko.to_str().unwrap(),
        &[
            "sign",
            "validate",
            "--trust",
            root.to_str().unwrap(),
            "--trust-replace",
            file,
        ],
    );
    let sig = run("pdfsig", &["-nssdir", nss, file]);
    (text(&hanko), text(&sig))
}

#[tokio::test]
async fn every_sample_types_signed_pdf_is_trusted_by_pyhanko_and_pdfsig_and_a_changed_byte_fails_both(
) {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let pyhanko = pyhanko();
    let keys = t.dir.path().join("keys");
    let root = keys.join("root.crt.pem");
    let nss = nss_trusting(
        &t.dir.path().join("nss"),
        &keys.join("pdf-seal-ca.self.crt.pem"),
    );
    for (code, name) in [
        (FOOD, "food"),
        (SOLE_TRADER, "sole-trader"),
        (PERMIT, "permit"),
        (DISABILITY, "disability"),
    ] {
        let record = sample(&t.app, code, &format!("PADES-{name}"));
        let issued = t.app.issue(&actor, code, &record, None).await.unwrap();
        let pdf = t.app.pdf(&actor, &issued.id, None).await.unwrap();
        let path = t.dir.path().join(format!("{name}.pdf"));
        std::fs::write(&path, &pdf).unwrap();
        let (hanko, sig) = verdicts(&pyhanko, &root, &nss, &path);
        assert!(
            hanko.contains(":INTACT:TRUSTED,UNTOUCHED"),
            "{name}: pyHanko: {hanko}"
        );
        assert!(
            sig.contains("Signature is Valid.")
                && sig.contains("Certificate is Trusted.")
                && sig.contains("Total document signed")
                && sig.contains("ETSI.CAdES.detached"),
            "{name}: pdfsig: {sig}"
        );

        // One byte of the signed page changed: both refuse.
        let mut changed = pdf.clone();
        let at = changed.len() / 3;
        changed[at] ^= 0x01;
        let path = t.dir.path().join(format!("{name}-changed.pdf"));
        std::fs::write(&path, &changed).unwrap();
        let (hanko, sig) = verdicts(&pyhanko, &root, &nss, &path);
        assert!(
            !hanko.contains(":INTACT:"),
            "{name}: pyHanko took a changed file: {hanko}"
        );
        assert!(
            !sig.contains("Signature is Valid."),
            "{name}: pdfsig took a changed file: {sig}"
        );
    }
}

#[tokio::test]
async fn a_signed_pdf_re_renders_byte_identical_in_another_process() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let issued = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "PADES-SAME"), None)
        .await
        .unwrap();
    let first = t.app.pdf(&actor, &issued.id, None).await.unwrap();
    // Not from the archive: a second process renders it again from the record.
    let blobs = t.dir.path().join("data/blobs");
    if blobs.exists() {
        std::fs::remove_dir_all(&blobs).unwrap();
    }
    let reopened = t.reopen().await;
    assert_eq!(reopened.pdf(&actor, &issued.id, None).await.unwrap(), first);
}

/// The register holds each signer's seal certificate: a seal whose files were lost is named in
/// the error, never made again with another key (the trust list would change under the same
/// seal, and a PDF re-rendered later would differ from the one handed out).
#[tokio::test]
async fn a_lost_seal_is_named_and_never_made_again() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let issued = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-SEAL-1"), None)
        .await
        .unwrap();
    let seals = |list: &elicence::signing::trust::TrustList| -> Vec<String> {
        list.signers
            .iter()
            .filter(|s| s.purpose == elicence::signing::cert::Purpose::PdfSeal)
            .map(|s| s.certificate.clone())
            .collect()
    };
    let before = seals(&t.app.trust_list());
    assert_eq!(before.len(), 4, "the seal CA and a seal per department");
    let signers = t.dir.path().join("keys/signers");
    for file in std::fs::read_dir(&signers).unwrap() {
        let path = file.unwrap().path();
        if path.to_string_lossy().contains(".seal.") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let reopened = elicence::app::App::open(settings(t.dir.path(), &t.database_url))
        .await
        .unwrap();
    assert_eq!(seals(&reopened.trust_list()), before);
    let error = reopened
        .pdf(&actor, &issued.id, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains(".seal.key.pem"), "{error}");
    let left: Vec<_> = std::fs::read_dir(&signers)
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .to_string_lossy()
                .contains(".seal.")
        })
        .collect();
    assert!(left.is_empty(), "no new seal was made: {left:?}");
}
