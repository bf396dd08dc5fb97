//! Renewal (延续) and supersession (SPEC §4, §7): a version stays valid until a later version's
//! validity begins. Online verification, the offline status list, the phone's page and
//! `licence show`/`versions` agree, and the page tells a renewal (已延续) from an amendment
//! (已变更). Dates are relative to today, so no clock is faked. Both backends.

use crate::common::*;
use elicence::app::{Actor, Amendment, App, AppError, Issued, Renewal};
use elicence::licence::{EventKind, Standing};
use elicence::signing::qr;
use elicence::signing::status_list::StatusList;
use elicence::signing::trust::TrustStore;
use elicence::time_util;
use elicence::verify::{verify_offline, Outcome};
use time::{Date, Duration};

fn operator() -> Actor {
    Actor::local_operator()
}

fn day(offset_days: i64) -> Date {
    time_util::today_cst() + Duration::days(offset_days)
}

/// A food licence issued a year ago for five years: valid for four more years.
async fn issue_a_year_ago(app: &App, number: &str) -> Issued {
    let mut input = sample(app, FOOD, number);
    input.valid_from = Some(time_util::format_date(day(-365)));
    app.issue(&operator(), FOOD, &input, None).await.unwrap()
}

async fn renew_from(app: &App, licence: &str, valid_from: Date) -> Issued {
    let renewal = Renewal {
        valid_from: Some(time_util::format_date(valid_from)),
        valid_until: Some(time_util::format_date(valid_from + Duration::days(5 * 365))),
        reason: Some("延续".into()),
    };
    app.renew(&operator(), licence, &renewal).await.unwrap()
}

/// What a verifier app answers offline with the trust list and a freshly fetched status list.
async fn offline(app: &App, qr_text: &str) -> Outcome {
    let trust = TrustStore::new(&app.trust_list(), None).unwrap();
    let signed = app.status_list(MARKET_BUREAU, 0).await.unwrap();
    let lists = [StatusList::parse_signed(&signed).unwrap()];
    let token = qr::token_from_text(qr_text).unwrap();
    let now = time_util::now().unix_timestamp();
    verify_offline(&token, &trust, &lists, false, now).result
}

/// The phone's page for a QR text, fetched over HTTP.
async fn page(server: &TestServer, qr_text: &str) -> String {
    let b32 = qr_text.rsplit_once("/V/").unwrap().1;
    let response = server
        .client
        .get(server.url(&format!("/V/{b32}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn an_early_renewal_leaves_the_old_code_valid_until_the_renewal_begins() {
    let server = TestServer::start().await;
    let app = &server.t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-EARLY").await;
    // The renewal follows on from the old period: it begins in four years.
    let v2 = app
        .renew(&operator(), &v1.licence_id, &Renewal::default())
        .await
        .unwrap();

    let online = app.verify(&v1.qr_text).await.unwrap();
    assert_eq!(online.result, Outcome::Valid, "{}", online.message);
    assert_eq!(offline(app, &v1.qr_text).await, Outcome::Valid);
    let old_page = page(&server, &v1.qr_text).await;
    assert!(old_page.contains(r#"data-result="valid""#), "{old_page}");
    assert!(old_page.contains("<h1>有效</h1>"), "{old_page}");

    let new = app.verify(&v2.qr_text).await.unwrap();
    assert_eq!(new.result, Outcome::NotYetValid);
    assert_eq!(offline(app, &v2.qr_text).await, Outcome::NotYetValid);
    assert!(page(&server, &v2.qr_text).await.contains("<h1>无效</h1>"));

    let versions = app.versions(&operator(), &v1.licence_id).await.unwrap();
    assert!(!versions[0].superseded && !versions[1].superseded);
    assert_eq!(
        (versions[0].validity, versions[1].validity),
        ("current", "not_yet_valid")
    );
}

#[tokio::test]
async fn a_renewal_that_begins_today_supersedes_the_old_code_as_renewed() {
    let server = TestServer::start().await;
    let app = &server.t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-TODAY").await;
    let v2 = renew_from(app, &v1.licence_id, day(0)).await;

    let online = app.verify(&v1.qr_text).await.unwrap();
    assert_eq!(online.result, Outcome::Superseded);
    assert!(online.message.contains("已延续"), "{}", online.message);
    assert_eq!(offline(app, &v1.qr_text).await, Outcome::Superseded);
    let old_page = page(&server, &v1.qr_text).await;
    assert!(old_page.contains(r#"data-result="superseded""#));
    assert!(
        old_page.contains("已延续，此版本已被第 2 版替代"),
        "{old_page}"
    );
    assert!(!old_page.contains("已变更"), "{old_page}");

    assert_eq!(
        app.verify(&v2.qr_text).await.unwrap().result,
        Outcome::Valid
    );
    assert!(page(&server, &v2.qr_text).await.contains("<h1>有效</h1>"));
}

#[tokio::test]
async fn an_amendment_supersedes_at_once_and_the_page_says_amended() {
    let server = TestServer::start().await;
    let app = &server.t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-AMEND").await;
    let change = Amendment {
        holder_name: Some("示范县百味餐饮管理有限公司".into()),
        ..Default::default()
    };
    app.amend(&operator(), &v1.licence_id, &change)
        .await
        .unwrap();

    let online = app.verify(&v1.qr_text).await.unwrap();
    assert_eq!(online.result, Outcome::Superseded);
    assert!(online.message.contains("已变更"), "{}", online.message);
    let old_page = page(&server, &v1.qr_text).await;
    assert!(
        old_page.contains("已变更，此版本已被第 2 版替代"),
        "{old_page}"
    );
    assert!(!old_page.contains("已延续"), "{old_page}");
}

#[tokio::test]
async fn show_and_verification_name_the_version_in_effect_and_the_pending_renewal() {
    let server = TestServer::start().await;
    let app = &server.t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-SHOW").await;
    let starts = day(30);
    let v2 = renew_from(app, &v1.licence_id, starts).await;

    let view = app.show(&operator(), &v1.licence_id, None).await.unwrap();
    assert_eq!((view.latest_version, view.in_effect_version), (2, 1));
    let pending = view.pending.unwrap();
    assert_eq!(pending.version, 2);
    assert_eq!(pending.kind, EventKind::Renewed);
    assert_eq!(pending.valid_from, time_util::format_date(starts));
    assert!(!view.version.superseded, "the latest version is pending");

    let current = app.verify(&v2.qr_text).await.unwrap().current.unwrap();
    assert_eq!(current.version, 1, "version 1 is still the one in effect");
    assert_eq!(current.pending.unwrap().version, 2);
    assert!(current.superseded_by.is_none());

    // The page of the old code says a renewal is coming, and from when.
    let old_page = page(&server, &v1.qr_text).await;
    let when = format!(
        "第 2 版自 {}年{}月{}日起生效",
        starts.year(),
        u8::from(starts.month()),
        starts.day()
    );
    assert!(old_page.contains(&when), "{old_page}");
}

#[tokio::test]
async fn a_third_version_while_a_renewal_is_pending() {
    let t = TestApp::new().await;
    let app = &t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-THIRD").await;
    let v2 = renew_from(app, &v1.licence_id, day(30)).await;

    // An amendment now would only begin with the renewal: refused, naming the way out, nothing stored.
    let seq = app.store.last_seq().await.unwrap();
    let change = Amendment {
        holder_name: Some("新名称有限公司".into()),
        ..Default::default()
    };
    let err = app
        .amend(&operator(), &v1.licence_id, &change)
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::State(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("renewal") && text.contains(&time_util::format_date(day(30))),
        "{text}"
    );
    assert_eq!(app.store.last_seq().await.unwrap(), seq);

    // A second renewal follows on from the pending one; the first version stays valid.
    let v3 = app
        .renew(&operator(), &v1.licence_id, &Renewal::default())
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    for (qr_text, expected) in [
        (&v1.qr_text, Outcome::Valid),
        (&v2.qr_text, Outcome::NotYetValid),
        (&v3.qr_text, Outcome::NotYetValid),
    ] {
        assert_eq!(app.verify(qr_text).await.unwrap().result, expected);
        assert_eq!(offline(app, qr_text).await, expected);
    }

    // Bringing a renewal forward to today supersedes both earlier versions, the never-begun one too.
    let v4 = renew_from(app, &v1.licence_id, day(0)).await;
    for qr_text in [&v1.qr_text, &v2.qr_text, &v3.qr_text] {
        let v = app.verify(qr_text).await.unwrap();
        assert_eq!(v.result, Outcome::Superseded);
        assert_eq!(v.current.unwrap().superseded_by.unwrap().version, 4);
        assert_eq!(offline(app, qr_text).await, Outcome::Superseded);
    }
    assert_eq!(
        app.verify(&v4.qr_text).await.unwrap().result,
        Outcome::Valid
    );
    // And now the amendment goes through.
    app.amend(&operator(), &v1.licence_id, &change)
        .await
        .unwrap();
}

#[tokio::test]
async fn suspension_during_a_pending_renewal_covers_both_versions_until_reinstated() {
    let t = TestApp::new().await;
    let app = &t.app;
    let v1 = issue_a_year_ago(app, "JY-RN-SUSP").await;
    let v2 = renew_from(app, &v1.licence_id, day(30)).await;
    app.change_status(
        &operator(),
        &v1.licence_id,
        EventKind::Suspended,
        Some("整改"),
    )
    .await
    .unwrap();
    for qr_text in [&v1.qr_text, &v2.qr_text] {
        assert_eq!(
            app.verify(qr_text).await.unwrap().result,
            Outcome::Suspended
        );
        assert_eq!(offline(app, qr_text).await, Outcome::Suspended);
    }
    app.change_status(&operator(), &v1.licence_id, EventKind::Reinstated, None)
        .await
        .unwrap();
    assert_eq!(
        app.verify(&v1.qr_text).await.unwrap().result,
        Outcome::Valid
    );
    assert_eq!(
        app.verify(&v2.qr_text).await.unwrap().result,
        Outcome::NotYetValid
    );
    app.change_status(
        &operator(),
        &v1.licence_id,
        EventKind::Revoked,
        Some("吊销"),
    )
    .await
    .unwrap();
    assert_eq!(
        app.find(&v1.licence_id).await.unwrap().standing,
        Standing::Revoked
    );
    for qr_text in [&v1.qr_text, &v2.qr_text] {
        assert_eq!(app.verify(qr_text).await.unwrap().result, Outcome::Revoked);
        assert_eq!(offline(app, qr_text).await, Outcome::Revoked);
    }
}
