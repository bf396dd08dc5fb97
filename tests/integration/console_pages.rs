//! The console's dashboard, 电子监察 and 系统管理 pages over HTTP: what each role reaches, and
//! that the acts they offer go through the same audited operations as the CLI.

use elicence::app::{Actor, Role};
use reqwest::StatusCode;

use super::console_signin::{account, audited, first_sign_in, hidden_value, Person, GOOD_PASSWORD};
use crate::common::*;

/// A clerk signed in (no second factor needed).
async fn signed_in_clerk<'a>(server: &'a TestServer, login: &str) -> Person<'a> {
    let one_time = account(server, login, &[Role::Clerk]).await;
    let mut person = Person::new(server);
    first_sign_in(&mut person, login, &one_time).await;
    person
}

#[tokio::test]
async fn the_dashboard_counts_a_departments_licences_by_type_and_status() {
    let server = TestServer::start().await;
    let token = server.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    for number in ["D-1", "D-2"] {
        assert_eq!(server.issue(&token, FOOD, number).await.status(), 201);
    }
    let mut clerk = signed_in_clerk(&server, "wu.clerk").await;
    let (status, page, _) = clerk.get("/console/").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("食品经营许可证"), "{page}");
    assert!(
        page.contains("<td>2</td>"),
        "two food licences are counted: {page}"
    );
    // A clerk's navigation has no supervision or administration.
    assert!(
        page.contains("存量证照转换") && !page.contains("电子监察") && !page.contains("系统管理")
    );
    for path in ["/console/audit", "/console/admin"] {
        let (status, page, _) = clerk.get(path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {page}");
        assert!(page.contains("您无权进行这项操作"), "{page}");
    }
    assert_eq!(
        audited(&server, "audit.read").await.len(),
        1,
        "the refusal is audited"
    );
}

#[tokio::test]
async fn an_admin_makes_an_account_in_the_console_and_sees_its_password_once() {
    let server = TestServer::start().await;
    let one_time = account(&server, "sun.admin", &[Role::Admin]).await;
    let mut admin = Person::new(&server);
    first_sign_in(&mut admin, "sun.admin", &one_time).await;
    let csrf = admin.csrf("/console/admin").await;
    let (status, page, _) = admin
        .post(
            "/console/admin/staff",
            &[
                ("csrf", &csrf),
                ("login", "zheng.clerk"),
                ("name", "郑经办"),
                ("department", MARKET_BUREAU),
                ("role_clerk", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let shown = page
        .split("class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the one-time password is shown")
        .to_string();
    assert_eq!(shown.len(), 19, "{shown}");
    // It works, once, and the admin page never shows it again.
    let mut clerk = Person::new(&server);
    first_sign_in(&mut clerk, "zheng.clerk", &shown).await;
    let (_, page, _) = admin.get("/console/admin").await;
    assert!(
        page.contains("zheng.clerk") && !page.contains(&shown),
        "{page}"
    );

    // A bad login is refused with the reason and nothing is made.
    let (status, page, _) = admin
        .post(
            "/console/admin/staff",
            &[
                ("csrf", &csrf),
                ("login", "Bad Login"),
                ("name", "某"),
                ("department", MARKET_BUREAU),
                ("role_clerk", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("login:"), "{page}");

    // Disabling asks for confirmation first, then ends the clerk's session.
    let path = "/console/admin/staff/zheng.clerk/disable";
    let (status, page, _) = admin.post(path, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("请确认"), "{page}");
    assert_eq!(hidden_value(&page, "confirm").as_deref(), Some("yes"));
    let (status, _, to) = admin
        .post(path, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (StatusCode::SEE_OTHER, Some("/console/admin"))
    );
    let (_, _, to) = clerk.get("/console/").await;
    assert_eq!(to.as_deref(), Some("/console/login"));
    let (status, _, _) = clerk.sign_in("zheng.clerk", GOOD_PASSWORD, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let disabled = audited(&server, "staff.disable").await;
    assert_eq!(disabled, [("ok".to_string(), String::new())]);
}

#[tokio::test]
async fn a_supervisor_exports_the_trail_as_a_csv_and_bad_dates_are_named() {
    let server = TestServer::start().await;
    // A login typed as a formula, as an attacker would.
    let mut stranger = Person::new(&server);
    stranger.sign_in("=HYPERLINK(\"x\")", "wrong", "").await;
    // The county's supervisor, of no department, reads the whole trail.
    let one_time = server
        .t
        .app
        .create_staff(
            &Actor::local_operator(),
            "feng.jc",
            "冯监察",
            None,
            &[Role::Supervisor],
        )
        .await
        .unwrap()
        .one_time_password;
    let mut supervisor = Person::new(&server);
    first_sign_in(&mut supervisor, "feng.jc", &one_time).await;
    let (status, csv, _) = supervisor
        .get("/console/audit/export.csv?action=staff.sign_in")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with('\u{feff}'), "a BOM for Excel and WPS");
    assert!(csv.contains("refused: unknown login"), "{csv}");
    assert!(
        !csv.contains(",=") && !csv.contains(",\"="),
        "no cell starts a formula: {csv}"
    );
    let (status, page, _) = supervisor.get("/console/audit?since=2026-13-40").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("起始日期"), "{page}");
    assert_eq!(audited(&server, "audit.export").await.len(), 1);
}

#[tokio::test]
async fn an_admin_makes_a_token_in_the_console_that_works_once_shown_and_revokes_it() {
    let server = TestServer::start().await;
    // A department's admin sees its tokens but may not make one.
    let one_time = account(&server, "wei.admin", &[Role::Admin]).await;
    let mut department_admin = Person::new(&server);
    first_sign_in(&mut department_admin, "wei.admin", &one_time).await;
    let (_, page, _) = department_admin.get("/console/admin").await;
    assert!(
        page.contains("接口令牌") && !page.contains("创建令牌"),
        "{page}"
    );

    let one_time = server
        .t
        .app
        .create_staff(
            &Actor::local_operator(),
            "qin.admin",
            "秦管理",
            None,
            &[Role::Admin],
        )
        .await
        .unwrap()
        .one_time_password;
    let mut admin = Person::new(&server);
    first_sign_in(&mut admin, "qin.admin", &one_time).await;
    let csrf = admin.csrf("/console/admin").await;
    let (status, page, _) = admin
        .post(
            "/console/admin/tokens",
            &[
                ("csrf", &csrf),
                ("name", "窗口二"),
                ("department", MARKET_BUREAU),
                ("role_clerk", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let token = page
        .split("class=\"secret\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .expect("the token is shown")
        .to_string();
    assert!(token.starts_with("elt_"), "{token}");
    assert_eq!(server.issue(&token, FOOD, "TOKEN-1").await.status(), 201);
    let (_, page, _) = admin.get("/console/admin").await;
    assert!(
        page.contains("窗口二") && !page.contains(&token),
        "shown once only"
    );

    let listed = server.t.app.tokens(&Actor::local_operator()).await.unwrap();
    let id = listed.iter().find(|t| t.name == "窗口二").unwrap().id;
    let path = format!("/console/admin/tokens/{id}/revoke");
    let (_, page, _) = admin.post(&path, &[("csrf", &csrf)]).await;
    assert!(page.contains("请确认"), "{page}");
    assert_eq!(
        server.issue(&token, FOOD, "TOKEN-2").await.status(),
        201,
        "not yet revoked"
    );
    let (status, _, _) = admin
        .post(&path, &[("csrf", &csrf), ("confirm", "yes")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(server.issue(&token, FOOD, "TOKEN-3").await.status(), 401);
    assert_eq!(audited(&server, "token.revoke").await.len(), 1);
}
