//! The change feed the city library pulls (SPEC §8): each event with its signed record and the
//! GB/T 36903 metadata, and — with several instances writing at once — a reader that resumes from
//! its last seq sees every event exactly once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::common::*;
use base64::Engine;
use elicence::app::{Actor, Role};
use elicence::licence::EventKind;
use elicence::signing::claims::FullRecord;
use elicence::signing::cose::Envelope;
use elicence::transparency::receipt::Receipt;

fn library() -> Actor {
    Actor {
        name: "library".into(),
        source: "test".into(),
        department: None,
        roles: vec![Role::Library],
    }
}

#[tokio::test]
async fn feed_events_carry_the_signed_record_and_the_national_metadata_codes() {
    let t = TestApp::new().await;
    let operator = Actor::local_operator();
    let issued = t
        .app
        .issue(
            &operator,
            DISABILITY,
            &sample(&t.app, DISABILITY, "FEED-1"),
            None,
        )
        .await
        .unwrap();
    t.app
        .change_status(
            &operator,
            &issued.licence_id,
            EventKind::Suspended,
            Some("复核"),
        )
        .await
        .unwrap();

    let page = t.app.feed(&library(), 0, 100).await.unwrap();
    assert_eq!(page.events.len(), 2);
    assert_eq!(page.next, page.events[1].seq);
    let (issue, suspend) = (&page.events[0], &page.events[1]);
    assert_eq!(
        (issue.kind, suspend.kind),
        (EventKind::Issued, EventKind::Suspended)
    );
    assert_eq!(suspend.reason.as_deref(), Some("复核"));
    assert_eq!(issue.licence_id, issued.licence_id);

    let record = base64::engine::general_purpose::STANDARD
        .decode(&issue.record)
        .unwrap();
    let full = FullRecord::from_payload(Envelope::parse(&record).unwrap().payload()).unwrap();
    assert_eq!(full.claims.cti.to_string(), issued.id);
    let m = &issue.metadata;
    assert_eq!(m["ZZMC"], "中华人民共和国残疾人证");
    assert_eq!(m["ZZLXDM"], DISABILITY);
    assert_eq!(m["ZZBH"], "FEED-1");
    assert_eq!(m["ZZBS"], issued.id.as_str());
    assert_eq!(m["ZZBFJG"], "示范县残疾人联合会");
    assert_eq!(m["ZZBFJGDM"], DISABILITY_FEDERATION);
    assert_eq!(m["CZZT"], "李秀英");
    assert_eq!(m["CZZTDM"], "11010519491231002X");
    assert_eq!(m["CZZTDMLX"], "111");
    assert_eq!(m["KZ_disability_level"], "三级");
    assert!(m["ZZYXQJZRQ"].is_string());

    // Resuming after the last seq returns nothing new; clerks may not read the feed.
    let again = t.app.feed(&library(), page.next, 100).await.unwrap();
    assert!(again.events.is_empty() && again.next == page.next);
    assert!(t
        .app
        .feed(&operator_without_library(), 0, 10)
        .await
        .is_err());
}

fn operator_without_library() -> Actor {
    Actor {
        name: "clerk".into(),
        source: "test".into(),
        department: Some(elicence::identifiers::Uscc::parse(MARKET_BUREAU).unwrap()),
        roles: vec![Role::Clerk],
    }
}

/// The event's receipt proves its entry — the record, or a status change's statement — in a
/// tree the log key signed (SPEC §16).
fn assert_logged(app: &elicence::app::App, event: &elicence::sync::FeedEvent) {
    let base64 = base64::engine::general_purpose::STANDARD;
    let entry = match &event.statement {
        Some(statement) => base64.decode(statement).unwrap(),
        None => base64.decode(&event.record).unwrap(),
    };
    let receipt = Receipt::parse(&base64.decode(&event.receipt).unwrap()).unwrap();
    let now = elicence::time_util::now().unix_timestamp();
    let (size, _) = receipt
        .verify_inclusion(&entry, &app.trust_store(), now)
        .unwrap_or_else(|e| panic!("event {}: {e}", event.seq));
    assert!(size >= event.seq as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_resuming_from_its_last_seq_misses_nothing_while_two_instances_write() {
    let t = TestApp::new().await;
    let second = Arc::new(t.reopen().await);
    let instances = [t.app.clone(), second.clone()];
    let writing = Arc::new(AtomicBool::new(true));

    let mut writers = Vec::new();
    for (i, app) in instances.iter().enumerate() {
        for task in 0..3 {
            let app = app.clone();
            writers.push(tokio::spawn(async move {
                let operator = Actor::local_operator();
                for n in 0..12 {
                    let code = [FOOD, SOLE_TRADER, PERMIT, DISABILITY][(n + task) % 4];
                    let number = format!("RACE-{i}-{task}-{n}");
                    let issued = app
                        .issue(&operator, code, &sample(&app, code, &number), None)
                        .await
                        .unwrap();
                    if n % 3 == 0 {
                        app.change_status(
                            &operator,
                            &issued.licence_id,
                            EventKind::Suspended,
                            Some("x"),
                        )
                        .await
                        .unwrap();
                    }
                }
            }));
        }
    }
    let reader = {
        let app = t.app.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            loop {
                let done = !writing.load(Ordering::SeqCst);
                let page = app.feed(&library(), after, 5).await.unwrap();
                for event in &page.events {
                    assert_logged(&app, event);
                }
                seen.extend(page.events.iter().map(|e| e.seq));
                after = page.next;
                if done && page.events.is_empty() {
                    return seen;
                }
            }
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let pool = raw_pool(&t.database_url).await;
    let all: Vec<i64> = sqlx::query_scalar("SELECT seq FROM events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        2 * 3 * (12 + 4),
        "every issue and suspension is an event"
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, never repeated"
    );
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    let all_set: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        seen_set, all_set,
        "the reader saw exactly the events in the table"
    );
    // Both instances appended to one transparency log, while the reader's pages made heads
    // and receipts: one tree, every leaf its event's entry, every head's root its size's.
    let report = t.app.verify_log().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        (report.entries, report.leaves),
        (all.len() as u64, all.len() as u64)
    );
    assert!(report.heads >= 1);
    second.store.close().await;
}

#[tokio::test]
async fn the_feed_is_served_to_library_tokens_over_http() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let library = s.token(None, &[Role::Library]).await;
    s.issue(&clerk, FOOD, "FEED-H-1").await;
    s.issue(&clerk, SOLE_TRADER, "FEED-H-2").await;
    let get = |token: String, query: &'static str| {
        let url = s.url(&format!("/api/v1/feed{query}"));
        let client = s.client.clone();
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    let page: serde_json::Value = get(library.clone(), "?after=0&limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["next"], page["events"][0]["seq"]);
    let rest: serde_json::Value = get(library.clone(), "?after=1").await.json().await.unwrap();
    assert_eq!(rest["events"][0]["metadata"]["ZZBH"], "FEED-H-2");
    assert_eq!(get(clerk, "").await.status(), 403);
    assert_eq!(get(library, "?after=soon").await.status(), 400);
}
