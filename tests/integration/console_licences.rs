//! The console's 证照查询 over HTTP (SPEC §14; issue #15 item 2): finding licences within the
//! person's department, a licence's page and PDF, and an officer's status changes — each with a
//! reason, a confirmation step, the API's own operation and its audit record.

use elicence::app::{Actor, Issued, Role};
use elicence::licence::Standing;
use reqwest::StatusCode;

use crate::common::*;
use crate::console_signin::{account, audited, first_sign_in, hidden_value, Person, GOOD_PASSWORD};

/// Issues a licence of `type_code` numbered `number` held by `holder`, as the operator.
async fn issue(server: &TestServer, type_code: &str, number: &str, holder: &str) -> Issued {
    let mut record = sample(&server.t.app, type_code, number);
    record.holder.name = holder.to_string();
    server
        .t
        .app
        .issue(&Actor::local_operator(), type_code, &record, None)
        .await
        .unwrap()
}

async fn standing(server: &TestServer, licence_id: &str) -> Standing {
    server
        .t
        .app
        .show(&Actor::local_operator(), licence_id, None)
        .await
        .unwrap()
        .status
}

/// Signs in a clerk of the market bureau (no second factor).
async fn clerk<'a>(server: &'a TestServer, login: &str) -> Person<'a> {
    let one_time = account(server, login, &[Role::Clerk]).await;
    let mut person = Person::new(server);
    person.sign_in(login, &one_time, "").await;
    let csrf = person.csrf("/console/password").await;
    let (status, _, _) = person
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
    assert_eq!(status, StatusCode::SEE_OTHER);
    person
}

#[tokio::test]
async fn an_officer_finds_a_licence_and_revokes_it_with_a_reason_through_a_confirmation() {
    let server = TestServer::start().await;
    let mine = issue(&server, FOOD, "JY-CONSOLE-1", "青山食品有限公司").await;
    let other = issue(&server, FOOD, "JY-CONSOLE-2", "绿水餐饮店").await;
    let one_time = account(&server, "li.officer", &[Role::Officer]).await;
    let mut officer = Person::new(&server);
    first_sign_in(&mut officer, "li.officer", &one_time).await;

    // Nothing asked: the most recent licences of the department.
    let (status, page, _) = officer.get("/console/licences").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("JY-CONSOLE-1") && page.contains("JY-CONSOLE-2"));
    assert!(page.contains("aria-current=\"page\">证照查询"), "{page}");
    // By number exactly, by a part of the holder's name, by identifier.
    for query in [
        "number=JY-CONSOLE-1".to_string(),
        "holder_name=青山".to_string(),
        format!("identifier={}", mine.licence_id),
        format!("identifier={}", mine.id),
    ] {
        let (status, page, _) = officer.get(&format!("/console/licences?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert!(page.contains("青山食品有限公司"), "{query}: {page}");
        assert!(!page.contains("JY-CONSOLE-2"), "{query}: {page}");
    }
    let (_, page, _) = officer.get("/console/licences?number=JY-CONSOLE").await;
    assert!(page.contains("没有找到"), "a number matches whole: {page}");
    let (_, page, _) = officer.get("/console/licences?holder_name=%25").await;
    assert!(page.contains("没有找到"), "% is no wildcard: {page}");
    let (status, page, _) = officer.get("/console/licences?identifier=1.2.3").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("编号格式不正确"), "{page}");
    let (status, _, _) = officer.get("/console/licences?page=0").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The licence's page: summary, QR code, the PDF inline, the officer's forms.
    let href = format!("/console/licences/{}", mine.licence_id);
    let (status, page, _) = officer.get(&href).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for expected in [
        "青山食品有限公司",
        "<svg",
        "<iframe",
        "/pdf?version=1",
        "name=\"act\" value=\"revoke\"",
        "name=\"act\" value=\"suspend\"",
    ] {
        assert!(page.contains(expected), "{expected} in {page}");
    }
    let csrf = hidden_value(&page, "csrf").unwrap();
    let status_href = format!("{href}/change");

    // Without a reason: the form again, saying so; nothing changes.
    let (status, page, _) = officer
        .post(
            &status_href,
            &[("csrf", &csrf), ("act", "revoke"), ("reason", "  ")],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("请填写注销理由"), "{page}");
    let (status, _, _) = officer
        .post(
            &status_href,
            &[
                ("csrf", &csrf),
                ("act", "revoke"),
                ("reason", ""),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A forged CSRF token is refused, even confirmed.
    let (status, _, _) = officer
        .post(
            &status_href,
            &[
                ("csrf", "forged"),
                ("act", "revoke"),
                ("reason", "伪造"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // With a reason: a confirmation page restating it; still nothing changed.
    let reason = "以欺骗手段取得许可";
    let (status, page, _) = officer
        .post(
            &status_href,
            &[("csrf", &csrf), ("act", "revoke"), ("reason", reason)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("确认注销") && page.contains(reason) && page.contains("JY-CONSOLE-1"));
    assert!(page.contains("name=\"confirm\" value=\"yes\"") && page.contains("取消"));
    assert_eq!(standing(&server, &mine.licence_id).await, Standing::Active);
    assert!(
        audited(&server, "licence.revoke")
            .await
            .iter()
            .all(|(outcome, _)| outcome != "ok"),
        "nothing done before the confirmation"
    );

    let (status, _, to) = officer
        .post(
            &status_href,
            &[
                ("csrf", &csrf),
                ("act", "revoke"),
                ("reason", reason),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(
        (status, to.as_deref()),
        (
            StatusCode::SEE_OTHER,
            Some(format!("{href}?done=revoke").as_str())
        )
    );
    let (_, page, _) = officer.get(&format!("{href}?done=revoke")).await;
    assert!(
        page.contains("证照已注销") && page.contains("已注销"),
        "{page}"
    );
    assert!(
        page.contains(reason) && page.contains("王芳（li.officer）"),
        "{page}"
    );
    assert!(
        !page.contains("name=\"act\""),
        "a revoked licence has no actions left: {page}"
    );
    assert_eq!(standing(&server, &mine.licence_id).await, Standing::Revoked);
    assert_eq!(standing(&server, &other.licence_id).await, Standing::Active);

    // The public page now says 无效.
    let b32 = mine.qr_text.rsplit_once("/V/").unwrap().1;
    let public = reqwest::get(server.url(&format!("/V/{b32}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        public.contains("data-result=\"revoked\"") && public.contains("无效"),
        "{public}"
    );

    // The audit trail has the revocation by the officer, and the refusals before it.
    let records = server
        .t
        .app
        .audit_records(&Actor::local_operator(), &Default::default(), 0, 10_000)
        .await
        .unwrap();
    let revokes: Vec<_> = records
        .iter()
        .filter(|r| r.action == "licence.revoke")
        .collect();
    let done: Vec<_> = revokes.iter().filter(|r| r.outcome == "ok").collect();
    assert_eq!(done.len(), 1, "{revokes:?}");
    assert!(done[0].actor.starts_with("staff:li.officer"), "{done:?}");
    assert_eq!(done[0].detail, reason);
    assert_eq!(done[0].target, mine.licence_id);
    assert!(
        revokes.iter().any(|r| r.detail.contains("CSRF")),
        "{revokes:?}"
    );
    assert!(
        revokes.iter().any(|r| r.detail.contains("reason")),
        "the confirmed revocation without a reason: {revokes:?}"
    );

    // The PDF: a PDF, framed by the console only, or downloaded.
    let client = reqwest::Client::new();
    let pdf = client
        .get(server.url(&format!("{href}/pdf?version=1")))
        .header(reqwest::header::COOKIE, officer.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(pdf.status(), StatusCode::OK);
    assert_eq!(pdf.headers()["content-type"], "application/pdf");
    assert_eq!(
        pdf.headers()["content-security-policy"],
        "frame-ancestors 'self'"
    );
    assert!(pdf.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    assert!(pdf.bytes().await.unwrap().starts_with(b"%PDF-"));
    let download = client
        .get(server.url(&format!("{href}/pdf?version=1&download=1")))
        .header(reqwest::header::COOKIE, officer.cookie.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let (status, _, _) = officer.get(&format!("{href}/pdf?version=9")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_clerk_sees_no_actions_and_is_refused_them_and_another_departments_licence_is_hidden() {
    let server = TestServer::start().await;
    let mine = issue(&server, FOOD, "JY-CLERK-1", "青山食品有限公司").await;
    let theirs = issue(&server, DISABILITY, "DIS-OTHER-1", "张三").await;
    let mut clerk = clerk(&server, "zhao.clerk").await;

    let href = format!("/console/licences/{}", mine.licence_id);
    let (status, page, _) = clerk.get(&href).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(!page.contains("name=\"act\""), "no action forms: {page}");
    let csrf = hidden_value(&page, "csrf").unwrap();
    for confirm in ["", "yes"] {
        let (status, page, _) = clerk
            .post(
                &format!("{href}/change"),
                &[
                    ("csrf", &csrf),
                    ("act", "revoke"),
                    ("reason", "试试"),
                    ("confirm", confirm),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    }
    assert_eq!(standing(&server, &mine.licence_id).await, Standing::Active);
    let refusals = audited(&server, "licence.revoke").await;
    assert_eq!(refusals.len(), 2, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|(outcome, _)| outcome.starts_with("refused")),
        "{refusals:?}"
    );

    // Another department's licence: not found, by address, PDF or search (which finds the
    // department's own).
    let (_, page, _) = clerk.get("/console/licences?holder_name=青山").await;
    assert!(page.contains(&format!("href=\"{href}\"")), "{page}");
    let theirs_href = format!("/console/licences/{}", theirs.licence_id);
    let (status, _, _) = clerk.get(&theirs_href).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = clerk.get(&format!("{theirs_href}/pdf?version=1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for query in [
        "number=DIS-OTHER-1".to_string(),
        "holder_name=张三".to_string(),
        format!("identifier={}", theirs.licence_id),
        String::new(),
    ] {
        let (status, page, _) = clerk.get(&format!("/console/licences?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert!(
            !page.contains(&format!("href=\"{theirs_href}\"")) && !page.contains("张三</td>"),
            "{query}: {page}"
        );
    }
    let (status, page, _) = clerk
        .post(
            &format!("{theirs_href}/change"),
            &[("csrf", &csrf), ("act", "revoke"), ("reason", "试试")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert_eq!(
        standing(&server, &theirs.licence_id).await,
        Standing::Active
    );
}

/// Versions stored before the holder-name column of the search existed get their names when the
/// store opens (the names are read from the signed records), so the search finds them too.
#[tokio::test]
async fn holder_names_of_versions_stored_before_the_search_existed_are_filled_in_at_open() {
    let t = TestApp::new().await;
    let operator = Actor::local_operator();
    let mut record = sample(&t.app, FOOD, "JY-OLD-1");
    record.holder.name = "老字号酱园 Jiang Yuan".into();
    let old = t.app.issue(&operator, FOOD, &record, None).await.unwrap();
    let by_name = elicence::app::LicenceSearch {
        holder_name: "字号".into(),
        ..Default::default()
    };
    let found = t.app.search(&operator, &by_name, 0, 20).await.unwrap();
    assert_eq!(found.licences.len(), 1);
    let any_case = elicence::app::LicenceSearch {
        holder_name: "jIANG yUAN".into(),
        ..Default::default()
    };
    let found = t.app.search(&operator, &any_case, 0, 20).await.unwrap();
    assert_eq!(found.licences.len(), 1, "a name is matched in any case");

    // As a database from before migration 0012 would be: versions without their names.
    let pool = raw_pool(&t.database_url).await;
    let unguard = if postgres_requested() {
        "DROP TRIGGER holder_names_immutable ON holder_names"
    } else {
        "DROP TRIGGER holder_names_immutable_delete"
    };
    sqlx::query(unguard).execute(&pool).await.unwrap();
    sqlx::query("DELETE FROM holder_names")
        .execute(&pool)
        .await
        .unwrap();
    let found = t.app.search(&operator, &by_name, 0, 20).await.unwrap();
    assert!(found.licences.is_empty(), "the names are gone");

    let reopened = t.reopen().await;
    let found = reopened.search(&operator, &by_name, 0, 20).await.unwrap();
    let names: Vec<(&str, &str)> = found
        .licences
        .iter()
        .map(|l| (l.licence_id.as_str(), l.holder_name.as_str()))
        .collect();
    assert_eq!(names, [(old.licence_id.as_str(), "老字号酱园 Jiang Yuan")]);
}

#[tokio::test]
async fn an_officer_amends_and_renews_through_confirmations_and_bad_values_change_nothing() {
    let server = TestServer::start().await;
    let licence = issue(&server, FOOD, "JY-CHANGE-1", "青山食品有限公司").await;
    let one_time = account(&server, "sun.officer", &[Role::Officer]).await;
    let mut officer = Person::new(&server);
    first_sign_in(&mut officer, "sun.officer", &one_time).await;
    let href = format!("/console/licences/{}", licence.licence_id);
    let change = format!("{href}/change");
    let (_, page, _) = officer.get(&href).await;
    assert!(
        page.contains("name=\"act\" value=\"renew\"")
            && page.contains("name=\"act\" value=\"amend\"")
            && page.contains("value=\"青山食品有限公司\"")
            && page.contains("name=\"field.legal_representative\" value=\"王建国\""),
        "the forms, filled in with the licence as it is: {page}"
    );
    let csrf = hidden_value(&page, "csrf").unwrap();
    let latest = async || {
        server
            .t
            .app
            .show(&Actor::local_operator(), &licence.licence_id, None)
            .await
            .unwrap()
            .latest_version
    };

    // Refused before any confirmation, each saying why: no reason, nothing changed.
    for (form, expected) in [
        (
            vec![("holder_name", "青山食品集团有限公司"), ("reason", "")],
            "请填写变更理由",
        ),
        (
            vec![("holder_name", "青山食品有限公司"), ("reason", "更名")],
            "changes nothing",
        ),
    ] {
        let mut form = form;
        form.extend([("csrf", csrf.as_str()), ("act", "amend")]);
        let (status, page, _) = officer.post(&change, &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
        assert!(page.contains(expected), "{expected}: {page}");
    }
    // A value the type refuses is refused by the operation when confirmed, naming the field.
    let (status, page, _) = officer
        .post(
            &change,
            &[
                ("csrf", &csrf),
                ("act", "amend"),
                ("field.legal_representative", ""),
                ("reason", "更正"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("fields.legal_representative"), "{page}");
    assert_eq!(latest().await, 1);

    // The amendment: confirmed, a new version.
    let amend = [
        ("csrf", csrf.as_str()),
        ("act", "amend"),
        ("holder_name", "青山食品集团有限公司"),
        ("field.legal_representative", "王建国"),
        ("reason", "企业更名"),
    ];
    let (status, page, _) = officer.post(&change, &amend).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("确认变更")
            && page.contains("青山食品有限公司 → <b>青山食品集团有限公司</b>"),
        "{page}"
    );
    assert_eq!(latest().await, 1, "nothing before the confirmation");
    let mut confirmed = amend.to_vec();
    confirmed.push(("confirm", "yes"));
    let (status, _, to) = officer.post(&change, &confirmed).await;
    assert_eq!(
        (status, to.as_deref()),
        (
            StatusCode::SEE_OTHER,
            Some(format!("{href}?done=amend").as_str())
        )
    );
    assert_eq!(latest().await, 2);
    let (_, page, _) = officer.get("/console/licences?holder_name=集团").await;
    assert!(
        page.contains("JY-CHANGE-1"),
        "the new name is found: {page}"
    );

    // The renewal: a date that is no date is refused; a real one renews.
    let until = server
        .t
        .app
        .show(&Actor::local_operator(), &licence.licence_id, None)
        .await
        .unwrap()
        .version
        .valid_until
        .unwrap();
    let (year, rest) = until.split_once('-').unwrap();
    let new_until = format!("{}-{rest}", year.parse::<i32>().unwrap() + 5);
    let (status, page, _) = officer
        .post(
            &change,
            &[
                ("csrf", &csrf),
                ("act", "renew"),
                ("valid_until", "明年"),
                ("reason", "到期延续"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.contains("valid_until: &quot;明年&quot; is not a date"),
        "{page}"
    );
    let renew = [
        ("csrf", csrf.as_str()),
        ("act", "renew"),
        ("valid_until", new_until.as_str()),
        ("reason", "到期延续"),
    ];
    let (status, page, _) = officer.post(&change, &renew).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("确认延续"), "{page}");
    let mut confirmed = renew.to_vec();
    confirmed.push(("confirm", "yes"));
    let (status, _, to) = officer.post(&change, &confirmed).await;
    assert_eq!(
        (status, to.as_deref()),
        (
            StatusCode::SEE_OTHER,
            Some(format!("{href}?done=renew").as_str())
        )
    );
    assert_eq!(latest().await, 3);

    for action in ["licence.amend", "licence.renew"] {
        let done: Vec<_> = audited(&server, action)
            .await
            .into_iter()
            .filter(|(outcome, _)| outcome == "ok")
            .collect();
        assert_eq!(done.len(), 1, "{action}: {done:?}");
    }
    let (_, page, _) = officer.get(&format!("{href}?done=renew")).await;
    assert!(
        page.contains("证照已延续") && page.contains("企业更名"),
        "{page}"
    );
}
