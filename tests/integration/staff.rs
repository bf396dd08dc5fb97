//! Staff accounts for the console (SPEC §10 "People", issue #15 item 1): made by an
//! administrator with a one-time password shown once, stored only as an Argon2id hash, audited;
//! bad input and the wrong administrator are refused, change nothing and are audited too.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use elicence::app::{Actor, AppError, Role};
use elicence::identifiers::Uscc;

use crate::common::*;

fn person(roles: &[Role], department: Option<&str>) -> Actor {
    Actor {
        name: "someone".into(),
        source: "test".into(),
        department: department.map(|d| Uscc::parse(d).unwrap()),
        roles: roles.to_vec(),
    }
}

async fn staff_actions(t: &TestApp) -> Vec<(String, String, String)> {
    t.app
        .audit_records(&Actor::local_operator(), &Default::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "staff.create")
        .map(|r| (r.target, r.outcome, r.detail))
        .collect()
}

#[tokio::test]
async fn an_account_is_made_with_a_one_time_password_stored_only_as_an_argon2id_hash() {
    let t = TestApp::new().await;
    let admin = person(&[Role::Admin], Some(MARKET_BUREAU));
    let roles = [Role::Clerk, Role::Officer];
    let created = t
        .app
        .create_staff(&admin, "wang.fang", " 王芳 ", Some(MARKET_BUREAU), &roles)
        .await
        .unwrap();
    assert_eq!(created.account.login, "wang.fang");
    assert_eq!(created.account.name, "王芳");
    assert_eq!(created.account.roles, "clerk,officer");
    assert_eq!(created.account.department.as_deref(), Some(MARKET_BUREAU));

    let pool = raw_pool(&t.database_url).await;
    let (hash, must_change): (String, i64) = sqlx::query_as(
        "SELECT password_hash, must_change_password FROM staff WHERE login = 'wang.fang'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(must_change, 1, "the one-time password must be changed");
    let parsed = PasswordHash::new(&hash).unwrap();
    assert_eq!(parsed.algorithm.as_str(), "argon2id", "{hash}");
    let argon = argon2::Argon2::default();
    argon
        .verify_password(created.one_time_password.as_bytes(), &parsed)
        .expect("the stored hash is the one-time password's");
    assert!(argon.verify_password(b"not-the-password", &parsed).is_err());

    let audited = staff_actions(&t).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let (target, outcome, detail) = &audited[0];
    assert_eq!(
        (target.as_str(), outcome.as_str()),
        ("staff wang.fang", "ok")
    );
    assert!(
        detail.contains("王芳") && detail.contains("clerk,officer"),
        "{detail}"
    );
    let trail = serde_json::to_string(
        &t.app
            .audit_records(&Actor::local_operator(), &Default::default(), 0, 1000)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        !trail.contains(&created.one_time_password),
        "the password is never audited"
    );
    assert!(!trail.contains(&hash), "nor its hash");

    // Department administrators see their own department's accounts; city-wide ones see all.
    let listed = t.app.staff(&admin).await.unwrap();
    assert_eq!(listed.len(), 1);
    let other_admin = person(&[Role::Admin], Some(DISABILITY_FEDERATION));
    assert!(t.app.staff(&other_admin).await.unwrap().is_empty());
    assert_eq!(
        t.app.staff(&Actor::local_operator()).await.unwrap().len(),
        1
    );
}

/// What a case is, its login, name, department and roles, and what its refusal must name.
type BadAccount<'a> = (
    &'a str,
    &'a str,
    &'a str,
    Option<&'a str>,
    &'a [Role],
    &'a str,
);

#[tokio::test]
async fn bad_accounts_and_the_wrong_administrator_are_refused_and_change_nothing() {
    let t = TestApp::new().await;
    let city = Actor::local_operator();
    t.app
        .create_staff(&city, "li.na", "李娜", Some(MARKET_BUREAU), &[Role::Clerk])
        .await
        .unwrap();
    let clerk_role = [Role::Clerk];
    // All by a city-wide admin.
    let cases: [BadAccount; 8] = [
        (
            "taken login",
            "li.na",
            "李娜二",
            Some(MARKET_BUREAU),
            &clerk_role,
            "login",
        ),
        (
            "non-ASCII login",
            "李娜",
            "李娜",
            Some(MARKET_BUREAU),
            &clerk_role,
            "login",
        ),
        (
            "empty name",
            "li.na2",
            "  ",
            Some(MARKET_BUREAU),
            &clerk_role,
            "name",
        ),
        (
            "control in name",
            "li.na3",
            "李\u{7}娜",
            Some(MARKET_BUREAU),
            &clerk_role,
            "name",
        ),
        (
            "no roles",
            "li.na4",
            "李娜",
            Some(MARKET_BUREAU),
            &[],
            "roles",
        ),
        (
            "library person",
            "li.na5",
            "李娜",
            None,
            &[Role::Library],
            "library",
        ),
        (
            "clerk of no department",
            "li.na6",
            "李娜",
            None,
            &clerk_role,
            "department",
        ),
        (
            "unknown department",
            "li.na7",
            "李娜",
            Some("11330122MB0000009E"),
            &clerk_role,
            "department",
        ),
    ];
    for (what, login, name, department, roles, names) in cases {
        let error = t
            .app
            .create_staff(&city, login, name, department, roles)
            .await
            .expect_err(what);
        assert!(matches!(error, AppError::BadInput(_)), "{what}: {error:?}");
        assert!(error.to_string().contains(names), "{what}: {error}");
    }
    let refusals = [
        (
            "a clerk",
            person(&[Role::Clerk], Some(MARKET_BUREAU)),
            Some(MARKET_BUREAU),
        ),
        (
            "another department's admin",
            person(&[Role::Admin], Some(DISABILITY_FEDERATION)),
            Some(MARKET_BUREAU),
        ),
        (
            "a department admin making a city-wide one",
            person(&[Role::Admin], Some(MARKET_BUREAU)),
            None,
        ),
    ];
    for (what, actor, department) in refusals {
        let error = t
            .app
            .create_staff(&actor, "zhao.lei", "赵磊", department, &[Role::Admin])
            .await
            .expect_err(what);
        assert!(matches!(error, AppError::Forbidden(_)), "{what}: {error:?}");
    }
    let pool = raw_pool(&t.database_url).await;
    let (accounts,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM staff")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(accounts, 1, "only the first account exists");
    let audited = staff_actions(&t).await;
    assert_eq!(
        audited.len(),
        1 + 8 + 3,
        "every attempt is audited: {audited:?}"
    );
    assert_eq!(audited.iter().filter(|a| a.1 == "ok").count(), 1);
}
