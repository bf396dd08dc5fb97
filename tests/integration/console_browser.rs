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
        self.browser_downloading(profile, profile).await
    }

    /// … that saves downloads in `downloads` without asking.
    async fn browser_downloading(
        &self,
        profile: &std::path::Path,
        downloads: &std::path::Path,
    ) -> Client {
        let options = serde_json::json!({
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
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

/// What a page does against issue #15's "accessible and legible", as a list of problems: a
/// control without a label, text below WCAG AA contrast (4.5:1, or 3:1 for large text) against
/// the background it is drawn on, a page wider than the window.
const LEGIBILITY: &str = r#"
const problems = [];
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const labelled = (el.id && document.querySelector(`label[for="${el.id}"]`))
    || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
  if (!labelled) problems.push('no label: ' + el.outerHTML.slice(0, 80));
}
const rgb = c => (c.match(/[\d.]+/g) || []).map(Number);
const channel = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
const background = el => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c;
  }
  return [255, 255, 255];
};
for (const el of document.querySelectorAll('body *')) {
  const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
  if (!text || el.getClientRects().length === 0) continue;
  const style = getComputedStyle(el);
  const [hi, lo] = [luminance(rgb(style.color)), luminance(background(el))].sort((a, b) => b - a);
  const ratio = (hi + 0.05) / (lo + 0.05);
  const size = parseFloat(style.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) {
    problems.push(`contrast ${ratio.toFixed(2)}: <${el.tagName}> ${el.textContent.trim().slice(0, 30)}`);
  }
}
if (document.documentElement.scrollWidth > window.innerWidth + 1) {
  problems.push(`wider than the window: ${document.documentElement.scrollWidth} > ${window.innerWidth}`);
}
return problems;
"#;

/// Fails on anything [`LEGIBILITY`] finds on the page.
async fn assert_legible(browser: &Client, name: &str) {
    let problems = browser.execute(LEGIBILITY, Vec::new()).await.unwrap();
    assert_eq!(problems, serde_json::json!([]), "{name}");
}

async fn screenshot(browser: &Client, name: &str) {
    assert_legible(browser, name).await;
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
    follow(browser, Locator::XPath(&xpath)).await;
}

/// Clicks what `target` finds (a button, a link) and waits for the page it leads to.
async fn follow(browser: &Client, target: Locator<'_>) {
    let old_page = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(target)
        .await
        .unwrap_or_else(|e| panic!("nothing to click at {target:?}: {e}"))
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
    follow(&browser, Locator::LinkText("校验审计链")).await;
    assert!(text_of(&browser).await.contains("审计链完整"));
    browser.close().await.unwrap();
}

/// Opens `path` until its `main` says `words` (a job's page reloads itself until the job ends).
async fn wait_for_text(browser: &Client, words: &str) -> String {
    for _ in 0..300 {
        if let Ok(main) = browser.find(Locator::Css("main")).await {
            if let Ok(text) = main.text().await {
                if text.contains(words) {
                    return text;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the page never said {words}: {}", text_of(browser).await);
}

/// The rejected rows' CSV the browser downloaded into `dir`.
async fn downloaded_csv(dir: &std::path::Path) -> Vec<u8> {
    for _ in 0..100 {
        let done = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(path) = done {
            return std::fs::read(path).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing was downloaded");
}

#[tokio::test]
async fn a_clerk_converts_and_resubmits_an_officer_revokes_and_a_supervisor_finds_both_in_chromium()
{
    use super::console_batches::broken_rows;
    use super::uploads::{sample_folder, zip_folder};

    let server = TestServer::start().await;
    let base = server.base.clone();
    let operator = Actor::local_operator();
    let app = &server.t.app;
    let made = |login: &'static str, name: &'static str, department, roles: &'static [Role]| {
        app.create_staff(&operator, login, name, department, roles)
    };
    let clerk = made("zhao.clerk", "赵经办", Some(MARKET_BUREAU), &[Role::Clerk])
        .await
        .unwrap();
    let officer = made(
        "li.officer",
        "李审批",
        Some(MARKET_BUREAU),
        &[Role::Officer],
    )
    .await
    .unwrap();
    let supervisor = made("zhou.jc", "周监察", None, &[Role::Supervisor])
        .await
        .unwrap();
    let batch = sample_folder(app, server.t.dir.path(), 30, 0.4, 71, &[FOOD]);
    let broken = broken_rows(&batch);
    let (fix_line, _) = broken
        .iter()
        .find(|(_, kind)| kind == "impossible_date")
        .expect("the sample breaks a date")
        .clone();
    let zip_path = server.t.dir.path().join("batch.zip");
    std::fs::write(&zip_path, zip_folder(&batch)).unwrap();
    let driver = Driver::start().await;

    // The clerk uploads the batch and watches it end.
    let profile = tempfile::tempdir().unwrap();
    let downloads = tempfile::tempdir().unwrap();
    let browser = driver
        .browser_downloading(profile.path(), downloads.path())
        .await;
    first_sign_in(
        &browser,
        &base,
        "zhao.clerk",
        &clerk.one_time_password,
        "clerk",
    )
    .await;
    browser
        .goto(&format!("{base}/console/batches"))
        .await
        .unwrap();
    let zip_input = browser.find(Locator::Id("zip")).await.unwrap();
    zip_input
        .send_keys(zip_path.to_str().unwrap())
        .await
        .unwrap();
    press(&browser, "上传并开始转换").await;
    let page = wait_for_text(&browser, "已完成").await;
    assert!(page.contains("被拒绝的行"), "{page}");
    screenshot(&browser, "conversion-clerk-job").await;

    // It downloads the rejected rows, corrects the impossible date and resubmits the file as it
    // is, with that row's scan.
    browser
        .find(Locator::Css("a[href$='/rejected.csv']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let csv = downloaded_csv(downloads.path()).await;
    let (text, _, unmappable) = encoding_rs::GB18030.decode(&csv);
    assert!(!unmappable);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.last().map(String::as_str), Some("rejection_reason"));
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut corrected = csv::Writer::from_writer(Vec::new());
    corrected.write_record(&header).unwrap();
    let mut fixed = None;
    for record in reader.records() {
        let mut cells: Vec<String> = record.unwrap().iter().map(String::from).collect();
        if cells
            .last()
            .unwrap()
            .starts_with(&format!("第{fix_line}行"))
        {
            assert!(cells.last().unwrap().contains("不是日期"), "{cells:?}");
            cells[column("valid_from")] = elicence::time_util::format_date(
                elicence::time_util::today_cst() - time::Duration::days(3),
            );
            fixed = Some((
                cells[column("number")].clone(),
                cells[column("scan")].clone(),
            ));
        }
        corrected.write_record(&cells).unwrap();
    }
    let (number, scan) = fixed.expect("the broken date's row is in the download");
    let corrected = String::from_utf8(corrected.into_inner().unwrap()).unwrap();
    let (corrected, _, _) = encoding_rs::GB18030.encode(&corrected);
    let corrected_path = server.t.dir.path().join("rejected-corrected.csv");
    std::fs::write(&corrected_path, &corrected).unwrap();
    let manifest_input = browser.find(Locator::Id("manifest")).await.unwrap();
    manifest_input
        .send_keys(corrected_path.to_str().unwrap())
        .await
        .unwrap();
    let scans_input = browser.find(Locator::Id("scans")).await.unwrap();
    scans_input
        .send_keys(batch.join(&scan).to_str().unwrap())
        .await
        .unwrap();
    press(&browser, "提交更正后的文件").await;
    wait_for_text(&browser, "已完成").await;
    let issued = browser
        .find(Locator::Css("[data-figure=issued]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(issued, "1", "the corrected row is issued");
    screenshot(&browser, "conversion-clerk-resubmitted").await;
    browser.close().await.unwrap();

    // The officer finds that licence and revokes it with a reason, after confirming.
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    first_sign_in(
        &browser,
        &base,
        "li.officer",
        &officer.one_time_password,
        "revoking-officer",
    )
    .await;
    browser
        .goto(&format!("{base}/console/licences?number={number}"))
        .await
        .unwrap();
    follow(&browser, Locator::LinkText(&number)).await;
    let qr_text = app
        .show(
            &operator,
            browser
                .current_url()
                .await
                .unwrap()
                .path()
                .rsplit('/')
                .next()
                .unwrap(),
            None,
        )
        .await
        .unwrap()
        .version
        .qr_text;
    fill(&browser, "reason-revoke", "经营者申请注销").await;
    press(&browser, "注销…").await;
    screenshot(&browser, "revoking-officer-confirm").await;
    press(&browser, "确认注销").await;
    assert!(text_of(&browser).await.contains("证照已注销"));
    screenshot(&browser, "revoking-officer-revoked").await;
    // On a tablet held upright the pages still fit and read.
    let licence_page = browser.current_url().await.unwrap().to_string();
    browser.set_window_size(768, 1024).await.unwrap();
    browser.goto(&licence_page).await.unwrap();
    screenshot(&browser, "tablet-licence").await;
    browser.goto(&format!("{base}/console/")).await.unwrap();
    screenshot(&browser, "tablet-dashboard").await;
    // The phone's page, at this server (the QR text names the deployment's public address).
    let b32 = qr_text.rsplit_once("/V/").unwrap().1;
    browser.goto(&format!("{base}/V/{b32}")).await.unwrap();
    let public = browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        public.contains("无效") && public.contains("已注销"),
        "{public}"
    );
    screenshot(&browser, "public-revoked").await;
    browser.close().await.unwrap();

    // The supervisor finds both acts in the audit trail.
    let profile = tempfile::tempdir().unwrap();
    let browser = driver.browser(profile.path()).await;
    first_sign_in(
        &browser,
        &base,
        "zhou.jc",
        &supervisor.one_time_password,
        "finding-supervisor",
    )
    .await;
    for (action, who) in [
        ("batch.submit", "zhao.clerk"),
        ("licence.revoke", "li.officer"),
    ] {
        browser
            .goto(&format!("{base}/console/audit?action={action}"))
            .await
            .unwrap();
        let page = text_of(&browser).await;
        assert!(
            page.contains(who) && page.contains("成功"),
            "{action}: {page}"
        );
    }
    screenshot(&browser, "finding-supervisor-audit").await;
    browser.close().await.unwrap();
}
