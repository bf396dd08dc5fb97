//! The verification page as a phone shows it, in headless Chromium (Debian's `chromium`, which
//! tools/install-test-deps.sh installs): valid, revoked and forged codes. Screenshots are kept under
//! target/screenshots/ to look at.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;
use elicence::app::{Actor, Role};
use elicence::licence::EventKind;

fn chromium(args: &[&str]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=412,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("chromium is needed for this test: run tools/install-test-deps.sh");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM as Chromium rendered it, and a screenshot saved as `name`.png. Chromium runs on
/// a blocking thread: the test server shares this test's runtime and must keep answering.
async fn open(url: &str, name: &str) -> String {
    let (url, name) = (url.to_string(), name.to_string());
    tokio::task::spawn_blocking(move || open_blocking(&url, &name))
        .await
        .unwrap()
}

fn open_blocking(url: &str, name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join(format!("{name}.png"));
    chromium(&[&format!("--screenshot={}", shot.display()), url]);
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "{name}: empty screenshot"
    );
    chromium(&["--dump-dom", url])
}

#[tokio::test]
async fn the_page_says_valid_then_revoked_and_refuses_a_forgery_in_chromium() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(DISABILITY_FEDERATION), &[Role::Clerk]).await;
    let issued: serde_json::Value = s
        .issue(&clerk, DISABILITY, "残联证-E2E-1")
        .await
        .json()
        .await
        .unwrap();
    let b32 = qr_b32(&issued);
    let page = s.url(&format!("/V/{b32}"));

    let dom = open(&page, "valid").await;
    assert!(dom.contains("data-result=\"valid\""), "{dom}");
    assert!(dom.contains("<h1>有效</h1>"));
    assert!(
        dom.contains("1101**********002X"),
        "the holder id is masked"
    );
    assert!(
        !dom.contains("11010519491231002X"),
        "the full resident ID must not appear"
    );
    assert!(
        dom.contains("肢体残疾") && !dom.contains("和平村"),
        "public fields only"
    );

    let id = issued["licence_id"].as_str().unwrap();
    s.t.app
        .change_status(
            &Actor::local_operator(),
            id,
            EventKind::Revoked,
            Some("持证人死亡注销"),
        )
        .await
        .unwrap();
    let dom = open(&page, "revoked").await;
    assert!(
        dom.contains("data-result=\"revoked\"")
            && dom.contains("<h1>无效</h1>")
            && dom.contains("已注销")
    );

    // One character of the code changed: a forgery.
    let mut forged = b32.clone();
    let i = forged.len() / 2;
    let c = if &forged[i..=i] == "A" { "B" } else { "A" };
    forged.replace_range(i..=i, c);
    let dom = open(&s.url(&format!("/V/{forged}")), "forged").await;
    assert!(dom.contains("<h1>无效</h1>"), "{dom}");
    assert!(!dom.contains("data-result=\"valid\""));
}
