//! Signing in to the console over HTTP (SPEC §10 "People", §14; issue #15 item 1): a one-time
//! password that must be changed, a TOTP second factor for officers, lockout after five failures,
//! the cookie's flags, CSRF tokens and idle sessions — each refusal audited.

use elicence::app::signin::totp_code_at;
use elicence::app::{Actor, Role};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

use crate::common::*;

/// A person at a browser: follows nothing by itself, keeps the session cookie.
pub struct Person<'a> {
    pub server: &'a TestServer,
    client: reqwest::Client,
    pub cookie: Option<String>,
}

impl<'a> Person<'a> {
    pub fn new(server: &'a TestServer) -> Person<'a> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Person {
            server,
            client,
            cookie: None,
        }
    }

    fn remember(&mut self, response: &reqwest::Response) {
        if let Some(set) = response.headers().get(SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.cookie = Some(pair).filter(|p| !p.ends_with('='));
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let mut request = self.client.get(self.server.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        answer(response).await
    }

    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let mut request = self.client.post(self.server.url(path)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header(COOKIE, cookie);
        }
        let response = request.send().await.unwrap();
        self.remember(&response);
        answer(response).await
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let (status, page, _) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        hidden_value(&page, "csrf").unwrap_or_else(|| panic!("{path} has no CSRF field: {page}"))
    }

    pub async fn sign_in(
        &mut self,
        login: &str,
        password: &str,
        code: &str,
    ) -> (StatusCode, String, Option<String>) {
        self.post(
            "/console/login",
            &[("login", login), ("password", password), ("code", code)],
        )
        .await
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, String, Option<String>) {
    let status = response.status();
    let location = response
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().unwrap().to_string());
    (status, response.text().await.unwrap(), location)
}

/// The value of the hidden input `name` in `page`.
pub fn hidden_value(page: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.find(&marker)? + marker.len();
    Some(page[start..].split('"').next()?.to_string())
}

pub const GOOD_PASSWORD: &str = "Spring-Field-2026";

/// Makes an account of the market bureau; returns its one-time password.
pub async fn account(server: &TestServer, login: &str, roles: &[Role]) -> String {
    account_in(server, login, roles, MARKET_BUREAU).await
}

/// Makes an account of `department`; returns its one-time password.
pub async fn account_in(
    server: &TestServer,
    login: &str,
    roles: &[Role],
    department: &str,
) -> String {
    server
        .t
        .app
        .create_staff(
            &Actor::local_operator(),
            login,
            "王芳",
            Some(department),
            roles,
        )
        .await
        .unwrap()
        .one_time_password
}

/// The audit records of `action` as (outcome, detail).
pub async fn audited(server: &TestServer, action: &str) -> Vec<(String, String)> {
    server
        .t
        .app
        .audit_records(&Actor::local_operator(), &Default::default(), 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == action)
        .map(|r| (r.outcome, r.detail))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Signs a person in for the first time: the one-time password, a new password and, for an
/// officer or admin, a second factor. Returns the TOTP secret (empty when none was needed).
pub async fn first_sign_in(person: &mut Person<'_>, login: &str, one_time: &str) -> String {
    let (status, _, to) = person.sign_in(login, one_time, "").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/password"))
    );
    match set_new_password(person, one_time).await.as_deref() {
        Some("/console/") => return String::new(),
        Some("/console/totp") => {}
        other => panic!("after the new password: {other:?}"),
    }
    let (_, page, _) = person.get("/console/totp").await;
    let secret = page
        .split("class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the enrolment page shows the secret")
        .to_string();
    assert!(page.contains("<svg"), "the enrolment page shows a QR code");
    let code = totp_code_at(&secret, login, now()).unwrap();
    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, _, to) = person
        .post("/console/totp", &[("csrf", &csrf), ("code", &code)])
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/"))
    );
    secret
}

#[tokio::test]
async fn an_officer_changes_the_one_time_password_enrols_a_second_factor_and_signs_in_with_it() {
    let server = TestServer::start().await;
    let one_time = account(&server, "li.officer", &[Role::Officer]).await;
    let mut person = Person::new(&server);

    let (status, _, to) = person.get("/console/").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/login"))
    );

    let (status, _, to) = person.sign_in("li.officer", &one_time, "").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/password"))
    );
    let cookie = person.cookie.clone().unwrap();
    assert!(cookie.starts_with("elicence_console=els_"), "{cookie}");
    // Nothing else opens before the password is changed.
    let (status, _, to) = person.get("/console/").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/password"))
    );

    let csrf = person.csrf("/console/password").await;
    let (status, page, _) = person
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", "short"),
                ("again", "short"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("at least 12 characters"), "{page}");
    let (status, page, _) = person
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", "li.officer-2026-X"),
                ("again", "li.officer-2026-X"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("must not contain the login"), "{page}");

    person.cookie = None;
    let secret = first_sign_in(&mut person, "li.officer", &one_time).await;
    let (status, page, _) = person.get("/console/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("王芳") && page.contains("审批人"), "{page}");

    // Signed out, the cookie is worthless.
    let stale = person.cookie.clone();
    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, _, to) = person.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/login"))
    );
    person.cookie = stale;
    let (_, _, to) = person.get("/console/").await;
    assert_eq!(to.as_deref(), Some("/console/login"));

    // Now the password alone is not enough, and a code is good once only.
    let (status, page, _) = person.sign_in("li.officer", GOOD_PASSWORD, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("动态口令不正确"), "{page}");
    let next_code = totp_code_at(&secret, "li.officer", now() + 30).unwrap();
    let (status, _, to) = person
        .sign_in("li.officer", GOOD_PASSWORD, &next_code)
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/"))
    );
    let (status, _, _) = person
        .sign_in("li.officer", GOOD_PASSWORD, &next_code)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a replayed code is refused"
    );

    let sign_ins = audited(&server, "staff.sign_in").await;
    let outcomes: Vec<&str> = sign_ins.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "ok",
            "ok",
            "refused: wrong or reused TOTP code",
            "ok",
            "refused: wrong or reused TOTP code"
        ]
    );
    assert_eq!(audited(&server, "staff.sign_out").await.len(), 1);
    assert_eq!(audited(&server, "staff.enrol_totp").await.len(), 1);
    let changes = audited(&server, "staff.change_password").await;
    assert_eq!(
        changes.iter().filter(|(o, _)| o == "ok").count(),
        1,
        "{changes:?}"
    );
    assert_eq!(
        changes.len(),
        3,
        "the two refused attempts are recorded too: {changes:?}"
    );
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes_even_against_the_right_password() {
    let server = TestServer::start().await;
    let one_time = account(&server, "zhao.clerk", &[Role::Clerk]).await;
    let mut person = Person::new(&server);
    for attempt in 1..=4 {
        let (status, page, _) = person.sign_in("zhao.clerk", "wrong", "").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
        assert!(page.contains("用户名、密码或动态口令不正确"), "{page}");
    }
    let (status, page, _) = person.sign_in("zhao.clerk", "wrong", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        page.contains("账号已锁定"),
        "the fifth failure locks: {page}"
    );
    let (status, page, to) = person.sign_in("zhao.clerk", &one_time, "").await;
    assert_eq!((status, to), (StatusCode::UNAUTHORIZED, None), "{page}");
    assert!(page.contains("账号已锁定"), "{page}");

    let locks = audited(&server, "staff.lock").await;
    assert_eq!(locks.len(), 1, "{locks:?}");
    assert!(locks[0].1.contains("locked until"), "{locks:?}");
    let sign_ins = audited(&server, "staff.sign_in").await;
    assert_eq!(sign_ins.last().unwrap().0, "refused: account locked");
    assert_eq!(sign_ins.len(), 6);

    // An unknown login is told the same as a wrong password, and recorded; so is one no account
    // could have (PostgreSQL refuses a NUL in text: it must never reach the database).
    let (status, page, _) = person.sign_in("nobody.here", "wrong", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = person.sign_in("nul\u{0}login", "wrong", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("用户名、密码或动态口令不正确"), "{page}");

    // Fifteen minutes later (the lock moved back), the right password works again.
    let pool = raw_pool(&server.t.database_url).await;
    sqlx::query("UPDATE staff SET locked_until = locked_until - 901 WHERE login = 'zhao.clerk'")
        .execute(&pool)
        .await
        .unwrap();
    let (status, _, to) = person.sign_in("zhao.clerk", &one_time, "").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/password"))
    );

    // An administrator's reset unlocks and gives a new one-time password; the old one is dead.
    let reset = server
        .t
        .app
        .reset_staff(&Actor::local_operator(), "zhao.clerk")
        .await
        .unwrap();
    let (status, _, _) = person.sign_in("zhao.clerk", &one_time, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, to) = person
        .sign_in("zhao.clerk", &reset.one_time_password, "")
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/password"))
    );
}

#[tokio::test]
async fn a_forged_csrf_token_an_idle_session_and_a_disabled_account_are_refused_and_audited() {
    let server = TestServer::start().await;
    let one_time = account(&server, "qian.clerk", &[Role::Clerk]).await;
    let mut person = Person::new(&server);
    person.sign_in("qian.clerk", &one_time, "").await;
    let csrf = person.csrf("/console/password").await;

    let (status, page, _) = person
        .post(
            "/console/password",
            &[
                ("csrf", "forged"),
                ("current", &one_time),
                ("new", GOOD_PASSWORD),
                ("again", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let refused = audited(&server, "staff.change_password").await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].1.contains("CSRF"), "{refused:?}");

    let (status, _, to) = person
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", &one_time),
                ("new", GOOD_PASSWORD),
                ("again", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/"))
    );
    let (status, _, _) = person.get("/console/").await;
    assert_eq!(status, StatusCode::OK, "a clerk needs no second factor");

    // Thirty-one idle minutes later the session has ended.
    let pool = raw_pool(&server.t.database_url).await;
    sqlx::query("UPDATE console_sessions SET last_seen = last_seen - 31 * 60")
        .execute(&pool)
        .await
        .unwrap();
    let (_, _, to) = person.get("/console/").await;
    assert_eq!(to.as_deref(), Some("/console/login"));
    let ended = audited(&server, "staff.session_end").await;
    assert_eq!(ended.len(), 1);
    assert!(ended[0].0.contains("idle"), "{ended:?}");

    // A disabled account cannot sign in; its sessions end at once.
    let (status, _, _) = person.sign_in("qian.clerk", GOOD_PASSWORD, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    server
        .t
        .app
        .disable_staff(&Actor::local_operator(), "qian.clerk")
        .await
        .unwrap();
    let (_, _, to) = person.get("/console/").await;
    assert_eq!(to.as_deref(), Some("/console/login"));
    let (status, _, _) = person.sign_in("qian.clerk", GOOD_PASSWORD, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stored: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM console_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored.0, 0);
}

#[tokio::test]
async fn console_pages_are_never_cached_and_load_nothing_from_other_hosts() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.url("/console/login")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["cache-control"], "no-store");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("lang=\"zh-CN\"") && page.contains("登录"),
        "{page}"
    );
    for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!page.contains(attribute), "{attribute} in {page}");
    }
}

#[tokio::test]
async fn attempts_sent_at_once_get_five_guesses_in_all_and_a_signed_in_session_cannot_replace_the_second_factor(
) {
    let server = TestServer::start().await;
    let one_time = account(&server, "sun.officer", &[Role::Officer]).await;
    let mut person = Person::new(&server);
    let secret = first_sign_in(&mut person, "sun.officer", &one_time).await;

    // A signed-in officer's session may not enrol another phone: the page sends it home and a
    // posted code changes nothing.
    let (status, _, to) = person.get("/console/totp").await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/"))
    );
    let csrf = person.csrf("/console/").await;
    let code = totp_code_at(&secret, "sun.officer", now()).unwrap();
    person
        .post("/console/totp", &[("csrf", &csrf), ("code", &code)])
        .await;
    let pool = raw_pool(&server.t.database_url).await;
    let (stored,): (String,) =
        sqlx::query_as("SELECT totp_secret FROM staff WHERE login = 'sun.officer'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, secret, "the enrolled secret stays");

    // Twenty guesses sent together: five are checked, the rest meet the lock.
    let guesses = (0..20).map(|i| {
        let client = reqwest::Client::new();
        let url = server.url("/console/login");
        async move {
            let password = format!("guess-{i}");
            client
                .post(url)
                .form(&[
                    ("login", "sun.officer"),
                    ("password", &password),
                    ("code", ""),
                ])
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let answers = futures_util::future::join_all(guesses).await;
    assert!(answers.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    let checked = audited(&server, "staff.sign_in")
        .await
        .into_iter()
        .filter(|(outcome, _)| outcome == "refused: wrong password")
        .count();
    assert_eq!(checked, 5, "only five guesses were checked");
    assert_eq!(audited(&server, "staff.lock").await.len(), 1);
    // The lock ended the officer's own session too.
    let (_, _, to) = person.get("/console/").await;
    assert_eq!(to.as_deref(), Some("/console/login"));
}

#[tokio::test]
async fn a_form_posted_from_another_site_is_refused_and_a_new_password_ends_other_sessions() {
    let server = TestServer::start().await;
    let one_time = account(&server, "he.clerk", &[Role::Clerk]).await;
    let answer = reqwest::Client::new()
        .post(server.url("/console/login"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("login", "he.clerk"), ("password", one_time.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(
        answer.headers().get(SET_COOKIE).is_none(),
        "no session was made"
    );
    assert_eq!(audited(&server, "console.post").await.len(), 1);

    // Two browsers sign in with the one-time password; the one that sets a new password keeps
    // its session, the other is signed out.
    let mut first = Person::new(&server);
    let mut second = Person::new(&server);
    first.sign_in("he.clerk", &one_time, "").await;
    second.sign_in("he.clerk", &one_time, "").await;
    set_new_password(&mut first, &one_time).await;
    let (status, _, _) = first.get("/console/").await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, to) = second.get("/console/password").await;
    assert_eq!(to.as_deref(), Some("/console/login"));
}

/// Sets GOOD_PASSWORD on the password page of a session signed in with `one_time`; returns
/// where the page sends the person next.
async fn set_new_password(person: &mut Person<'_>, one_time: &str) -> Option<String> {
    let csrf = person.csrf("/console/password").await;
    let (status, _, to) = person
        .post(
            "/console/password",
            &[
                ("csrf", &csrf),
                ("current", one_time),
                ("new", GOOD_PASSWORD),
                ("again", GOOD_PASSWORD),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    to
}

#[tokio::test]
async fn a_hand_made_form_missing_a_field_gets_the_chinese_error_page_naming_it() {
    let server = TestServer::start().await;
    let mut person = Person::new(&server);
    let (status, page, _) = person.post("/console/login", &[("login", "x")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("无法完成"), "{page}");
    assert!(
        page.contains("password"),
        "the missing field is named: {page}"
    );
}
