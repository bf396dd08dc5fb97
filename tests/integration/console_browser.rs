//! The console end to end in a real Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, which tools/install-test-deps.sh installs): people sign in with a password
//! and a TOTP code as they would, and the pages they reach are screenshotted under
//! target/screenshots/console-*.png to look at.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use elicence::app::signin::totp_code_at;
use elicence::app::{Actor, Role};
use fantoccini::{Client, ClientBuilder, Locator};

use super::console_signin::GOOD_PASSWORD;
use crate::common::*;

/// A chromedriver on a free local port, stopped when dropped.
struct Driver {
    process: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is needed for this test: run tools/install-test-deps.sh");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/status")).await.is_ok() {
                return Driver { process, url };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = process.kill();
        let _ = process.wait();
        panic!("chromedriver did not start on port {port}");
    }

    /// A new headless Chromium of 1366×768, with a profile of its own.
    async fn browser(&self, profile: &std::path::Path) -> Client {
        let options = serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1366,768", format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.len() > 5_000, "{name}: an empty screenshot");
    std::fs::write(dir.join(format!("console-{name}.png")), png).unwrap();
}

async fn fill(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Presses the button labelled `label` and waits for the page it leads to.
async fn press(browser: &Client, label: &str) {
    let xpath = format!("//button[normalize-space()='{label}']");
    let old_page = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(Locator::XPath(&xpath))
        .await
        .unwrap_or_else(|e| panic!("no button {label}: {e}"))
        .click()
        .await
        .unwrap();
    next_page(browser, old_page).await;
}

/// Waits until `old_page` has gone and the next page has its `main`.
async fn next_page(browser: &Client, old_page: fantoccini::elements::Element) {
    for _ in 0..200 {
        if old_page.tag_name().await.is_err() {
            browser
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css("main"))
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the page did not change");
}

async fn path_of(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_string()
}

async fn text_of(browser: &Client) -> String {
    browser
        .find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs `login` in for the first time in the browser: the one-time password, a new password,
/// and for an officer or admin the second factor read off the enrolment page. Returns the TOTP
/// secret, if one was enrolled.
async fn first_sign_in(
    browser: &Client,
    base: &str,
    login: &str,
    one_time: &str,
    shots: &str,
) -> Option<String> {
    browser.goto(&format!("{base}/console/")).await.unwrap();
    assert_eq!(path_of(browser).await, "/console/login");
    screenshot(browser, &format!("{shots}-1-login")).await;
    fill(browser, "login", login).await;
    fill(browser, "password", one_time).await;
    press(browser, "登录").await;
    assert_eq!(path_of(browser).await, "/console/password");
    fill(browser, "current", one_time).await;
    fill(browser, "new", GOOD_PASSWORD).await;
    fill(browser, "again", GOOD_PASSWORD).await;
    press(browser, "保存").await;
    let mut secret = None;
    if path_of(browser).await == "/console/totp" {
        screenshot(browser, &format!("{shots}-2-totp")).await;
        let shown = browser
            .find(Locator::Css("code.secret"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let code = totp_code_at(&shown, login, now()).unwrap();
        fill(browser, "code", &code).await;
        press(browser, "完成绑定").await;
        secret = Some(shown);
    }
    assert_eq!(path_of(browser).await, "/console/");
    secret
}

#[tokio::test]
async fn people_sign_in_with_password_and_totp_and_a_supervisor_reads_the_trail_in_chromium() {
    let server = TestServer::start().await;
    let base = server.base.clone();
    let operator = Actor::local_operator();
    let officer = server
        .t
        .app
        .create_staff(
            &operator,
            "li.officer",
            "李审批",
            Some(MARKET_BUREAU),
            &[Role::Officer],
        )
        .await
        .unwrap();
    let supervisor = server
        .t
        .app
        .create_staff(&operator, "zhou.jc", "周监察", None, &[Role::Supervisor])
        .await
        .unwrap();
    let driver = Driver::start().await;

    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    let secret = first_sign_in(
        &browser,
        &base,
        "li.officer",
        &officer.one_time_password,
        "officer",
    )
    .await;
    assert!(secret.is_some(), "an officer must enrol a second factor");
    let page = text_of(&browser).await;
    assert!(
        page.contains("工作台") && page.contains("证照数量"),
        "{page}"
    );
    screenshot(&browser, "officer-3-dashboard").await;
    press(&browser, "退出").await;
    assert_eq!(path_of(&browser).await, "/console/login");

    // Signing in again asks for the code from the app.
    fill(&browser, "login", "li.officer").await;
    fill(&browser, "password", GOOD_PASSWORD).await;
    press(&browser, "登录").await;
    assert!(text_of(&browser).await.contains("动态口令不正确"));
    let code = totp_code_at(secret.as_deref().unwrap(), "li.officer", now() + 30).unwrap();
    fill(&browser, "login", "li.officer").await;
    fill(&browser, "password", GOOD_PASSWORD).await;
    fill(&browser, "code", &code).await;
    press(&browser, "登录").await;
    assert_eq!(path_of(&browser).await, "/console/");
    browser.close().await.unwrap();

    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    first_sign_in(
        &browser,
        &base,
        "zhou.jc",
        &supervisor.one_time_password,
        "supervisor",
    )
    .await;
    browser
        .goto(&format!("{base}/console/audit?action=staff.sign_in"))
        .await
        .unwrap();
    let page = text_of(&browser).await;
    assert!(page.contains("staff:li.officer:李审批"), "{page}");
    assert!(
        page.contains("拒绝"),
        "the refused sign-in is listed: {page}"
    );
    screenshot(&browser, "supervisor-audit").await;
    let old_page = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(Locator::LinkText("校验审计链"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    next_page(&browser, old_page).await;
    assert!(text_of(&browser).await.contains("审计链完整"));
    browser.close().await.unwrap();
}
