//! Verification as a verifier app does it offline — with nothing but an exported trust list and
//! signed status lists — compared with the service's own online answer.

use crate::common::*;
use elicence::app::{Actor, Amendment, App};
use elicence::licence::EventKind;
use elicence::signing::claims::FullRecord;
use elicence::signing::qr;
use elicence::signing::status_list::{EntryStatus, StatusList, LIST_LEN};
use elicence::signing::trust::{TrustList, TrustStore};
use elicence::time_util;
use elicence::verify::{verify_offline, Outcome};

/// Exports what an offline verifier caches (as JSON and bytes, the way files carry them) and
/// verifies the QR text with it, pinning the root out of band.
async fn offline(app: &App, qr_text: &str) -> Outcome {
    let exported = serde_json::to_string(&app.trust_list()).unwrap();
    let list: TrustList = serde_json::from_str(&exported).unwrap();
    let pinned = list.roots.clone();
    let trust = TrustStore::new(&list, Some(&pinned)).unwrap();
    let signed = app.status_list(MARKET_BUREAU, 0).await.unwrap();
    let lists = [StatusList::parse_signed(&signed).unwrap()];
    let token = qr::token_from_text(qr_text).unwrap();
    verify_offline(
        &token,
        &trust,
        &lists,
        false,
        time_util::now().unix_timestamp(),
    )
    .result
}

#[tokio::test]
async fn offline_and_online_agree_through_amendment_suspension_and_revocation() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let v1 = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-OFF-1"), None)
        .await
        .unwrap();
    let other = t
        .app
        .issue(
            &actor,
            SOLE_TRADER,
            &sample(&t.app, SOLE_TRADER, "GT-OFF-1"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(offline(&t.app, &v1.qr_text).await, Outcome::Valid);

    let v2 = t
        .app
        .amend(
            &actor,
            &v1.licence_id,
            &Amendment {
                holder_name: Some("新名称有限公司".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (qr_text, expected) in [
        (&v1.qr_text, Outcome::Superseded),
        (&v2.qr_text, Outcome::Valid),
    ] {
        assert_eq!(offline(&t.app, qr_text).await, expected);
        assert_eq!(t.app.verify(qr_text).await.unwrap().result, expected);
    }

    t.app
        .change_status(&actor, &v1.licence_id, EventKind::Suspended, Some("整改"))
        .await
        .unwrap();
    assert_eq!(offline(&t.app, &v2.qr_text).await, Outcome::Suspended);
    t.app
        .change_status(&actor, &v1.licence_id, EventKind::Revoked, Some("吊销"))
        .await
        .unwrap();
    assert_eq!(offline(&t.app, &v2.qr_text).await, Outcome::Revoked);
    assert_eq!(
        t.app.verify(&v2.qr_text).await.unwrap().result,
        Outcome::Revoked
    );
    // The other licence of the same department is untouched.
    assert_eq!(offline(&t.app, &other.qr_text).await, Outcome::Valid);
}

#[tokio::test]
async fn a_rotated_key_signs_new_licences_and_old_ones_still_verify() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let before = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-ROT-1"), None)
        .await
        .unwrap();
    let new_kid = t.app.rotate_key(&actor, MARKET_BUREAU).await.unwrap();
    let after = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-ROT-2"), None)
        .await
        .unwrap();
    let v_before = t.app.verify(&before.qr_text).await.unwrap();
    let v_after = t.app.verify(&after.qr_text).await.unwrap();
    assert_eq!(v_before.result, Outcome::Valid);
    assert_eq!(v_after.result, Outcome::Valid);
    assert_eq!(v_after.kid.as_deref(), Some(new_kid.as_str()));
    assert_ne!(v_before.kid, v_after.kid);
    assert_eq!(
        offline(&t.app, &before.qr_text).await,
        Outcome::Valid,
        "status list signed by the new key"
    );

    // Revoking the old key: what it signed is no longer trusted, online and offline.
    t.app
        .revoke_key(&actor, v_before.kid.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(
        t.app.verify(&before.qr_text).await.unwrap().result,
        Outcome::SignerRevoked
    );
    assert_eq!(
        offline(&t.app, &before.qr_text).await,
        Outcome::SignerRevoked
    );
    assert_eq!(
        t.app.verify(&after.qr_text).await.unwrap().result,
        Outcome::Valid
    );
}

#[tokio::test]
async fn garbage_in_a_qr_text_is_malformed_not_an_error() {
    let t = TestApp::new().await;
    for input in [
        "HTTPS://ZZ.EXAMPLE.GOV.CN/V/",
        "HTTPS://ZZ.EXAMPLE.GOV.CN/V/0189",
        "AAAAAAAA",
        "hello world",
    ] {
        let v = t.app.verify(input).await.unwrap();
        assert_eq!(v.result, Outcome::Malformed, "{input}");
    }
}

#[tokio::test]
async fn another_instance_sees_a_revocation_within_the_cache_time_and_this_one_at_once() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    // Instance B remembers for one second; instance A is the test app (two seconds).
    let mut settings = settings(t.dir.path(), &t.database_url);
    settings.verify_cache_seconds = 1;
    let b = App::open(settings).await.unwrap();
    let issued = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-CACHE-1"), None)
        .await
        .unwrap();
    assert_eq!(online(&b, &issued.qr_text).await, Outcome::Valid);
    assert_eq!(online(&t.app, &issued.qr_text).await, Outcome::Valid);

    t.app
        .change_status(&actor, &issued.licence_id, EventKind::Revoked, Some("test"))
        .await
        .unwrap();
    assert_eq!(
        online(&t.app, &issued.qr_text).await,
        Outcome::Revoked,
        "the revoking instance at once"
    );
    assert_eq!(
        online(&b, &issued.qr_text).await,
        Outcome::Valid,
        "B still remembers"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        online(&b, &issued.qr_text).await,
        Outcome::Revoked,
        "B after its cache time"
    );
}

async fn online(app: &App, qr_text: &str) -> Outcome {
    app.verify(qr_text).await.unwrap().result
}

/// SPEC §7: the list a department serves is a Token Status List — typed, its `sub` the URI every
/// full record's status claim (65535) points at, its 2-bit entries telling revoked, suspended,
/// superseded and valid apart — and the aggregation route names it.
#[tokio::test]
async fn full_records_point_into_a_token_status_list_the_aggregation_names() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let mut issued = Vec::new();
    for number in ["JY-TSL-1", "JY-TSL-2", "JY-TSL-3", "JY-TSL-4"] {
        let sample = sample(&t.app, FOOD, number);
        issued.push(t.app.issue(&actor, FOOD, &sample, None).await.unwrap());
    }
    let amended = Amendment {
        holder_name: Some("更名后有限公司".into()),
        ..Default::default()
    };
    let v2 = t
        .app
        .amend(&actor, &issued[0].licence_id, &amended)
        .await
        .unwrap();
    for (licence, kind) in [(1, EventKind::Suspended), (2, EventKind::Revoked)] {
        let licence = &issued[licence].licence_id;
        t.app
            .change_status(&actor, licence, kind, Some("核查"))
            .await
            .unwrap();
    }

    let signed = t.app.status_list(MARKET_BUREAU, 0).await.unwrap();
    let (list, envelope) = StatusList::parse_signed(&signed).unwrap();
    assert_eq!(envelope.typ(), Some("application/statuslist+cwt"));
    assert_eq!(
        list.uri,
        format!("HTTPS://ZZ.EXAMPLE.GOV.CN/api/v1/status-lists/{MARKET_BUREAU}/0")
    );
    assert!(list.expires_at > list.issued_at && list.ttl.is_some());
    let expected = [
        (&issued[0], EntryStatus::Superseded),
        (&v2, EntryStatus::Valid),
        (&issued[1], EntryStatus::Suspended),
        (&issued[2], EntryStatus::Revoked),
        (&issued[3], EntryStatus::Valid),
    ];
    for (version, status) in expected {
        let row = t.app.find(&version.licence_id).await.unwrap();
        let stored = t
            .app
            .store
            .version(row.pk, version.version)
            .await
            .unwrap()
            .unwrap();
        let full = FullRecord::from_signed(&stored.full_record).unwrap();
        let reference = full.status.expect("a status claim");
        assert_eq!(reference.uri, list.uri, "{}", version.id);
        assert_eq!(reference.idx, stored.status_index % LIST_LEN);
        assert_eq!(list.entries.get(reference.idx), status, "{}", version.id);
    }
    assert_eq!(
        t.app.status_list_uris().await.unwrap(),
        vec![list.uri.clone()]
    );
}
