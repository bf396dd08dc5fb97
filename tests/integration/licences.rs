//! The licence lifecycle through the library, on the backend under test (SQLite by default,
//! PostgreSQL with ELICENCE_TEST_BACKEND=postgres): issue, amend, renew, status changes, events,
//! verification online, and what the store refuses.

use crate::common::*;
use elicence::app::{Actor, Amendment, AppError, Renewal, Role};
use elicence::directory::Validity;
use elicence::identifiers::{LicenceRef, Uscc};
use elicence::licence::{EventKind, Standing};
use elicence::signing::claims::FullRecord;
use elicence::signing::cose::Envelope;
use elicence::time_util;
use elicence::verify::Outcome;
use serde_json::json;
use time::Duration;

fn operator() -> Actor {
    Actor::local_operator()
}

#[tokio::test]
async fn an_issued_licence_verifies_valid_and_shows_its_signed_record() {
    let t = TestApp::new().await;
    let input = sample(&t.app, FOOD, "JY13301220000001");
    let issued = t.app.issue(&operator(), FOOD, &input, None).await.unwrap();
    assert!(issued.qr_text.starts_with("HTTPS://ZZ.EXAMPLE.GOV.CN/V/"));
    assert_eq!(issued.version, 1);

    let verification = t.app.verify(&issued.qr_text).await.unwrap();
    assert_eq!(
        verification.result,
        Outcome::Valid,
        "{}",
        verification.message
    );
    let licence = verification.licence.unwrap();
    assert_eq!(licence.holder_name, "示范县百味餐饮有限公司");
    // Public fields only: the supervisor's name and the contact phone are private.
    let keys: Vec<&str> = licence.fields.iter().map(|f| f.key.as_str()).collect();
    assert!(
        keys.contains(&"business_format")
            && !keys.contains(&"supervisor")
            && !keys.contains(&"contact_phone")
    );
    assert_eq!(verification.current.unwrap().version, 1);

    let view = t
        .app
        .show(&operator(), &issued.licence_id, None)
        .await
        .unwrap();
    assert_eq!(view.number, "JY13301220000001");
    assert_eq!(view.version.fields["supervisor"].to_string(), "李明、赵敏");
    assert_eq!(view.events.len(), 1);
    assert_eq!(view.events[0].kind, EventKind::Issued);
}

#[tokio::test]
async fn a_duplicate_type_and_number_is_refused_and_changes_nothing() {
    let t = TestApp::new().await;
    let input = sample(&t.app, FOOD, "JY-DUP-1");
    let first = t.app.issue(&operator(), FOOD, &input, None).await.unwrap();
    let err = t
        .app
        .issue(&operator(), FOOD, &input, None)
        .await
        .unwrap_err();
    match err {
        AppError::Duplicate {
            existing, number, ..
        } => {
            assert_eq!(existing, first.licence_id);
            assert_eq!(number, "JY-DUP-1");
        }
        other => panic!("expected a duplicate, got {other}"),
    }
    assert_eq!(t.app.store.last_seq().await.unwrap(), first.seq);
    // The same number under another type is a different licence.
    let other_type = sample(&t.app, SOLE_TRADER, "JY-DUP-1");
    t.app
        .issue(&operator(), SOLE_TRADER, &other_type, None)
        .await
        .unwrap();
}

#[tokio::test]
async fn five_wrong_fields_get_five_precise_errors_and_store_nothing() {
    let t = TestApp::new().await;
    let mut input = sample(&t.app, FOOD, "JY-BAD-1");
    input.holder.id = "91350100M000100Y44".into();
    input.valid_from = Some("2024-13-01".into());
    input.fields.insert("business_format".into(), json!("网吧"));
    input.fields.remove("residence");
    input
        .fields
        .insert("legal_representative".into(), json!("王".repeat(51)));
    let err = t
        .app
        .issue(&operator(), FOOD, &input, None)
        .await
        .unwrap_err();
    let AppError::Invalid(errors) = &err else {
        panic!("{err}")
    };
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "holder.id",
            "valid_from",
            "fields.legal_representative",
            "fields.residence",
            "fields.business_format"
        ]
    );
    assert_eq!(
        err.to_json()["error"]["fields"].as_array().unwrap().len(),
        5
    );
    assert_eq!(t.app.store.last_seq().await.unwrap(), 0, "nothing stored");
}

#[tokio::test]
async fn an_amendment_makes_version_2_chained_to_version_1_which_becomes_superseded() {
    let t = TestApp::new().await;
    let v1 = t
        .app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-AM-1"), None)
        .await
        .unwrap();
    let change = Amendment {
        holder_name: Some("示范县百味餐饮管理有限公司".into()),
        fields: [("business_premises".to_string(), json!("人民路90号"))].into(),
        reason: Some("名称及经营场所变更".into()),
    };
    let v2 = t
        .app
        .amend(&operator(), &v1.licence_id, &change)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.number, "JY-AM-1");

    let versions = t.app.versions(&operator(), &v1.licence_id).await.unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].superseded && !versions[1].superseded);
    assert_eq!(versions[1].holder.name, "示范县百味餐饮管理有限公司");
    assert_eq!(
        versions[0].valid_until, versions[1].valid_until,
        "an amendment keeps the validity"
    );
    // prev = SHA-256 of version 1's full-record payload.
    let row = t.app.find(&v1.licence_id).await.unwrap();
    let stored = t.app.store.versions(row.pk).await.unwrap();
    let v1_payload = Envelope::parse(&stored[0].full_record)
        .unwrap()
        .payload()
        .to_vec();
    let v2_full =
        FullRecord::from_payload(Envelope::parse(&stored[1].full_record).unwrap().payload())
            .unwrap();
    assert_eq!(
        v2_full.prev.unwrap(),
        elicence::hash::sha256_hex(&v1_payload)
    );

    assert_eq!(
        t.app.verify(&v1.qr_text).await.unwrap().result,
        Outcome::Superseded
    );
    assert_eq!(
        t.app.verify(&v1.id).await.unwrap().result,
        Outcome::Superseded
    );
    assert_eq!(
        t.app.verify(&v2.qr_text).await.unwrap().result,
        Outcome::Valid
    );

    let nothing = Amendment::default();
    assert!(matches!(
        t.app.amend(&operator(), &v1.licence_id, &nothing).await,
        Err(AppError::BadInput(_))
    ));
    let bad = Amendment {
        fields: [("business_format".to_string(), json!("网吧"))].into(),
        ..Default::default()
    };
    assert!(matches!(
        t.app.amend(&operator(), &v1.licence_id, &bad).await,
        Err(AppError::Invalid(_))
    ));
}

#[tokio::test]
async fn a_renewal_follows_on_from_the_old_period() {
    let t = TestApp::new().await;
    // Issued a year ago for five years: the renewal starts the day after the old period ends.
    let from = time_util::today_cst() - Duration::days(365);
    let old_until = Validity::Years(5).last_day(from).unwrap();
    let mut input = sample(&t.app, FOOD, "JY-RN-1");
    input.valid_from = Some(time_util::format_date(from));
    let v1 = t.app.issue(&operator(), FOOD, &input, None).await.unwrap();
    let shown = t.app.show(&operator(), &v1.id, None).await.unwrap();
    assert_eq!(
        shown.version.valid_until,
        Some(time_util::format_date(old_until))
    );
    let v2 = t
        .app
        .renew(&operator(), &v1.id, &Renewal::default())
        .await
        .unwrap();
    let view = t.app.show(&operator(), &v2.id, None).await.unwrap();
    let new_from = old_until + Duration::days(1);
    assert_eq!(view.version.valid_from, time_util::format_date(new_from));
    assert_eq!(
        view.version.valid_until,
        Validity::Years(5)
            .last_day(new_from)
            .map(time_util::format_date)
    );
    assert_eq!(view.events.last().unwrap().kind, EventKind::Renewed);

    // A permanent licence has nothing to renew.
    let permit = t
        .app
        .issue(&operator(), PERMIT, &sample(&t.app, PERMIT, "P-1"), None)
        .await
        .unwrap();
    let err = t
        .app
        .renew(&operator(), &permit.id, &Renewal::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permanent"), "{err}");
}

#[tokio::test]
async fn status_changes_are_events_that_change_what_verification_answers() {
    let t = TestApp::new().await;
    let issued = t
        .app
        .issue(
            &operator(),
            DISABILITY,
            &sample(&t.app, DISABILITY, "DC-1"),
            None,
        )
        .await
        .unwrap();
    let id = issued.licence_id.as_str();
    let verify = |qr: String| {
        let app = &t.app;
        async move { app.verify(&qr).await.unwrap() }
    };
    let valid = verify(issued.qr_text.clone()).await;
    assert_eq!(
        valid.licence.as_ref().unwrap().holder_id,
        "1101**********002X",
        "resident IDs are masked"
    );

    let err = t
        .app
        .change_status(&operator(), id, EventKind::Suspended, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reason"), "{err}");
    t.app
        .change_status(&operator(), id, EventKind::Suspended, Some("复核中"))
        .await
        .unwrap();
    assert_eq!(
        verify(issued.qr_text.clone()).await.result,
        Outcome::Suspended
    );
    let err = t
        .app
        .amend(
            &operator(),
            id,
            &Amendment {
                holder_name: Some("李秀芳".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::State(_)), "{err}");

    t.app
        .change_status(&operator(), id, EventKind::Reinstated, None)
        .await
        .unwrap();
    assert_eq!(verify(issued.qr_text.clone()).await.result, Outcome::Valid);
    t.app
        .change_status(&operator(), id, EventKind::Revoked, Some("持证人申请注销"))
        .await
        .unwrap();
    assert_eq!(
        verify(issued.qr_text.clone()).await.result,
        Outcome::Revoked
    );
    let err = t
        .app
        .change_status(&operator(), id, EventKind::Revoked, Some("again"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");

    let view = t.app.show(&operator(), id, None).await.unwrap();
    assert_eq!(view.status, Standing::Revoked);
    assert_eq!(view.latest_version, 1, "status changes create no version");
    let kinds: Vec<EventKind> = view.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::Issued,
            EventKind::Suspended,
            EventKind::Reinstated,
            EventKind::Revoked
        ]
    );
    let seqs: Vec<i64> = view.events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

/// A library that checks continuity must see 1, 2, 3 … (SPEC §8): a change that loses a race
/// must not use up a seq, on PostgreSQL as on SQLite.
#[tokio::test]
async fn a_lost_race_leaves_no_gap_in_event_seqs() {
    let t = TestApp::new().await;
    let issued = t
        .app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-GAP"), None)
        .await
        .unwrap();
    let stale = t.app.find(&issued.licence_id).await.unwrap();
    let entry = operator().entry("licence.status", &issued.licence_id);
    t.app
        .store
        .append_status(
            &stale,
            (EventKind::Suspended, "2026-12-03T00:00:00Z", Some("a")),
            b"statement",
            &entry,
        )
        .await
        .unwrap();
    for _ in 0..3 {
        let lost = t
            .app
            .store
            .append_status(
                &stale,
                (EventKind::Revoked, "2026-12-03T00:00:00Z", Some("b")),
                b"statement",
                &entry,
            )
            .await;
        assert!(
            matches!(lost, Err(elicence::store::StoreError::Conflict)),
            "{lost:?}"
        );
    }
    let fresh = t.app.find(&issued.licence_id).await.unwrap();
    t.app
        .store
        .append_status(
            &fresh,
            (EventKind::Reinstated, "2026-12-03T00:00:00Z", Some("c")),
            b"statement",
            &entry,
        )
        .await
        .unwrap();
    let seqs: Vec<i64> = t
        .app
        .show(&operator(), &issued.licence_id, None)
        .await
        .unwrap()
        .events
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test]
async fn concurrent_changes_to_one_licence_never_both_land() {
    let t = TestApp::new().await;
    let issued = t
        .app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-RACE"), None)
        .await
        .unwrap();
    let second = t.reopen().await;
    let row_a = t.app.find(&issued.licence_id).await.unwrap();
    let row_b = second.find(&issued.licence_id).await.unwrap();
    // Both instances read the licence as active, then both try to append the next change.
    let entry = operator().entry("licence.status", &issued.licence_id);
    let a = t
        .app
        .store
        .append_status(
            &row_a,
            (EventKind::Suspended, "2026-12-03T00:00:00Z", Some("a")),
            b"statement",
            &entry,
        )
        .await;
    let b = second
        .store
        .append_status(
            &row_b,
            (EventKind::Revoked, "2026-12-03T00:00:00Z", Some("b")),
            b"statement",
            &entry,
        )
        .await;
    assert!(a.is_ok());
    assert!(
        matches!(b, Err(elicence::store::StoreError::Conflict)),
        "{b:?}"
    );
    assert_eq!(
        t.app
            .show(&operator(), &issued.licence_id, None)
            .await
            .unwrap()
            .events
            .len(),
        2
    );
    second.store.close().await;
}

#[tokio::test]
async fn versions_and_events_cannot_be_updated_or_deleted() {
    let t = TestApp::new().await;
    t.app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-IMM"), None)
        .await
        .unwrap();
    let pool = raw_pool(&t.database_url).await;
    for statement in [
        "UPDATE versions SET valid_until = '2099-12-31'",
        "DELETE FROM versions",
        "UPDATE events SET kind = 'revoked'",
        "DELETE FROM events",
        "DELETE FROM licences",
    ] {
        let result = sqlx::query(statement).execute(&pool).await;
        assert!(result.is_err(), "{statement} was allowed");
    }
}

#[tokio::test]
async fn identifiers_are_checked_before_anything_is_looked_up() {
    let t = TestApp::new().await;
    let issued = t
        .app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-ID"), None)
        .await
        .unwrap();
    let mut mistyped = issued.id.clone();
    mistyped.pop();
    mistyped.push(if issued.id.ends_with('A') { 'B' } else { 'A' });
    assert!(matches!(
        t.app.show(&operator(), &mistyped, None).await,
        Err(AppError::BadIdentifier(_))
    ));
    assert!(matches!(
        t.app.verify(&mistyped).await,
        Err(AppError::BadIdentifier(_))
    ));
    let LicenceRef::Version(v) = LicenceRef::parse(&issued.id).unwrap() else {
        panic!()
    };
    let unknown = v.key.version(7).to_string();
    assert!(matches!(
        t.app.show(&operator(), &unknown, None).await,
        Err(AppError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_department_acts_only_on_its_own_types_and_roles_are_enforced() {
    let t = TestApp::new().await;
    let market_clerk = Actor {
        name: "clerk@market".into(),
        source: "test".into(),
        department: Some(Uscc::parse(MARKET_BUREAU).unwrap()),
        roles: vec![Role::Clerk],
    };
    let issued = t
        .app
        .issue(&market_clerk, FOOD, &sample(&t.app, FOOD, "JY-SCOPE"), None)
        .await
        .unwrap();
    let err = t
        .app
        .issue(
            &market_clerk,
            PERMIT,
            &sample(&t.app, PERMIT, "P-SCOPE"),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::Forbidden(_)), "{err}");
    let err = t
        .app
        .change_status(
            &market_clerk,
            &issued.licence_id,
            EventKind::Revoked,
            Some("x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppError::Forbidden(_)),
        "a clerk may not revoke: {err}"
    );
}

#[tokio::test]
async fn a_changed_directory_file_becomes_a_new_directory_version() {
    let t = TestApp::new().await;
    assert_eq!(t.app.directory_version, 1);
    assert_eq!(
        t.reopen().await.directory_version,
        1,
        "same content, same version"
    );
    // Copy the directory, change one label, and start on the same database.
    let templates = t.dir.path().join("templates");
    std::fs::create_dir_all(templates.join("directory")).unwrap();
    for shared in ["fonts", "layouts"] {
        std::os::unix::fs::symlink(templates_dir().join(shared), templates.join(shared)).unwrap();
    }
    for entry in std::fs::read_dir(templates_dir().join("directory")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("投诉举报电话", "投诉举报热线");
        std::fs::write(
            templates.join("directory").join(path.file_name().unwrap()),
            text,
        )
        .unwrap();
    }
    let mut s = settings(t.dir.path(), &t.database_url);
    s.templates_dir = templates;
    let changed = elicence::app::App::open(s).await.unwrap();
    assert_eq!(changed.directory_version, 2);
    let issued = changed
        .issue(&operator(), FOOD, &sample(&changed, FOOD, "JY-DV2"), None)
        .await
        .unwrap();
    assert_eq!(
        changed
            .show(&operator(), &issued.id, None)
            .await
            .unwrap()
            .version
            .directory_version,
        2
    );
}

/// The field names of an `Invalid` refusal, and its errors as text.
fn refused_fields(err: &AppError) -> (Vec<String>, String) {
    let AppError::Invalid(errors) = err else {
        panic!("expected field errors, got {err}")
    };
    let fields = errors.0.iter().map(|e| e.field.clone()).collect();
    (fields, errors.to_string())
}

#[tokio::test]
async fn an_already_expired_record_is_refused_on_issue_naming_valid_until_as_convert_does() {
    let t = TestApp::new().await;
    let today = time_util::today_cst();
    let mut input = sample(&t.app, FOOD, "JY-EXP-1");
    input.valid_from = Some(time_util::format_date(today - Duration::days(3000)));
    input.valid_until = Some(time_util::format_date(today - Duration::days(1)));
    let err = t
        .app
        .issue(&operator(), FOOD, &input, None)
        .await
        .unwrap_err();
    let (fields, text) = refused_fields(&err);
    assert_eq!(fields, ["valid_until"], "{text}");
    assert!(
        text.contains("has passed: an already expired licence is not issued"),
        "{text}"
    );
    assert_eq!(err.to_json()["error"]["fields"][0]["field"], "valid_until");
    assert_eq!(t.app.store.last_seq().await.unwrap(), 0, "nothing stored");

    // Ending today, it is still in force and issued.
    input.valid_until = Some(time_util::format_date(today));
    t.app.issue(&operator(), FOOD, &input, None).await.unwrap();
}

#[tokio::test]
async fn a_renewal_into_a_period_already_over_is_refused_like_an_issue() {
    let t = TestApp::new().await;
    let today = time_util::today_cst();
    let v1 = t
        .app
        .issue(&operator(), FOOD, &sample(&t.app, FOOD, "JY-RN-PAST"), None)
        .await
        .unwrap();
    let renewal = Renewal {
        valid_from: Some(time_util::format_date(today - Duration::days(400))),
        valid_until: Some(time_util::format_date(today - Duration::days(2))),
        reason: None,
    };
    let err = t
        .app
        .renew(&operator(), &v1.id, &renewal)
        .await
        .unwrap_err();
    let (fields, text) = refused_fields(&err);
    assert_eq!(fields, ["valid_until"], "{text}");
    assert!(text.contains("is not renewed"), "{text}");
    // A start after the end is a field error too, as on issue.
    let backwards = Renewal {
        valid_from: Some("2030-01-02".into()),
        valid_until: Some("2030-01-01".into()),
        reason: None,
    };
    let err = t
        .app
        .renew(&operator(), &v1.id, &backwards)
        .await
        .unwrap_err();
    let (fields, text) = refused_fields(&err);
    assert_eq!(fields, ["valid_until"], "{text}");
    assert!(text.contains("is before valid_from"), "{text}");
    assert_eq!(
        t.app.store.last_seq().await.unwrap(),
        v1.seq,
        "nothing stored"
    );
}

#[tokio::test]
async fn a_permit_completed_before_it_starts_is_refused_on_issue_and_amend_naming_both_fields() {
    let t = TestApp::new().await;
    let mut input = sample(&t.app, PERMIT, "P-RULE-1");
    input
        .fields
        .insert("planned_completion".into(), json!("2026-02-01"));
    let err = t
        .app
        .issue(&operator(), PERMIT, &input, None)
        .await
        .unwrap_err();
    let (fields, text) = refused_fields(&err);
    assert_eq!(fields, ["fields.planned_completion"], "{text}");
    assert!(
        text.contains("2026-02-01 must be after 合同开工日期 (fields.planned_start) 2026-03-01"),
        "{text}"
    );
    assert_eq!(t.app.store.last_seq().await.unwrap(), 0, "nothing stored");

    let issued = t
        .app
        .issue(
            &operator(),
            PERMIT,
            &sample(&t.app, PERMIT, "P-RULE-1"),
            None,
        )
        .await
        .unwrap();
    // Moving the start past the completion breaks the rule the same way.
    let change = Amendment {
        holder_name: None,
        fields: [("planned_start".to_string(), json!("2028-07-01"))].into(),
        reason: Some("开工日期变更".into()),
    };
    let err = t
        .app
        .amend(&operator(), &issued.licence_id, &change)
        .await
        .unwrap_err();
    let (fields, text) = refused_fields(&err);
    assert_eq!(fields, ["fields.planned_completion"], "{text}");
    assert!(
        text.contains("2028-06-30 must be after 合同开工日期 (fields.planned_start) 2028-07-01"),
        "{text}"
    );
    assert_eq!(
        t.app.store.last_seq().await.unwrap(),
        issued.seq,
        "nothing stored"
    );
}
