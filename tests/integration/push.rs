//! Push delivery to the city library (SPEC §8), against an in-process library that checks the
//! HMAC, deduplicates by seq and can be switched down or made to fail at random.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use elicence::app::{Actor, App};
use elicence::licence::EventKind;
use elicence::sync::{Pusher, Step};

const SECRET: &[u8] = b"shared-hmac-secret";
const UP: u8 = 0;
const DOWN: u8 = 1;
const FLAKY: u8 = 2;

#[derive(Default)]
struct Library {
    mode: AtomicU8,
    /// seq → how many times it arrived.
    events: Mutex<BTreeMap<i64, usize>>,
    /// The seqs of every accepted request, in arrival order.
    arrivals: Mutex<Vec<i64>>,
    requests: AtomicUsize,
}

async fn receive(
    State(library): State<Arc<Library>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = library.requests.fetch_add(1, Ordering::SeqCst);
    match library.mode.load(Ordering::SeqCst) {
        DOWN => return StatusCode::SERVICE_UNAVAILABLE,
        FLAKY if n % 3 != 0 => return StatusCode::BAD_GATEWAY,
        _ => {}
    }
    let signature = headers["x-elicence-signature"].to_str().unwrap();
    if signature != elicence::hash::hmac_sha256_hex(SECRET, &body) {
        return StatusCode::UNAUTHORIZED;
    }
    assert!(headers.contains_key("idempotency-key"));
    let events: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
    let mut stored = library.events.lock().unwrap();
    for e in events {
        let seq = e["seq"].as_i64().unwrap();
        *stored.entry(seq).or_default() += 1;
        library.arrivals.lock().unwrap().push(seq);
    }
    StatusCode::OK
}

async fn start_library() -> (Arc<Library>, String) {
    let library = Arc::new(Library::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/city", listener.local_addr().unwrap());
    let router = axum::Router::new()
        .route("/city/events", post(receive))
        .with_state(library.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (library, url)
}

/// Issues `n` licences and suspends every third: `n + n/3` events.
async fn make_events(app: &App, n: usize, prefix: &str) {
    let operator = Actor::local_operator();
    for i in 0..n {
        let issued = app
            .issue(
                &operator,
                FOOD,
                &sample(app, FOOD, &format!("{prefix}-{i}")),
                None,
            )
            .await
            .unwrap();
        if i % 3 == 0 {
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
}

async fn all_seqs(t: &TestApp) -> Vec<i64> {
    let pool = raw_pool(&t.database_url).await;
    sqlx::query_scalar("SELECT seq FROM events ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap()
}

/// Steps until the pusher is idle; returns the steps taken.
async fn drain(pusher: &Pusher) -> Vec<Step> {
    let mut steps = Vec::new();
    for _ in 0..500 {
        let step = pusher.step().await.unwrap();
        let idle = step == Step::Idle;
        steps.push(step);
        if idle {
            return steps;
        }
    }
    panic!(
        "the pusher never became idle: {:?}",
        &steps[steps.len() - 5..]
    );
}

#[tokio::test]
async fn a_library_that_is_down_for_a_while_catches_up_in_order() {
    let t = TestApp::new().await;
    let (library, url) = start_library().await;
    make_events(&t.app, 12, "DOWN").await;
    let pusher = Pusher::new(t.app.clone(), &url, SECRET).with_lease_and_batch(30, 5);

    library.mode.store(DOWN, Ordering::SeqCst);
    for _ in 0..3 {
        assert!(matches!(pusher.step().await.unwrap(), Step::Failed(_)));
    }
    assert!(library.events.lock().unwrap().is_empty());

    library.mode.store(UP, Ordering::SeqCst);
    let steps = drain(&pusher).await;
    assert!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::Delivered { .. }))
            .count()
            >= 3
    );
    let arrivals = library.arrivals.lock().unwrap().clone();
    assert_eq!(
        arrivals,
        all_seqs(&t).await,
        "every event once, in seq order"
    );
}

#[tokio::test]
async fn random_5xx_answers_still_leave_every_event_in_the_library_exactly_once() {
    let t = TestApp::new().await;
    let (library, url) = start_library().await;
    make_events(&t.app, 15, "FLAKY").await;
    library.mode.store(FLAKY, Ordering::SeqCst);
    let pusher = Pusher::new(t.app.clone(), &url, SECRET).with_lease_and_batch(30, 4);
    let steps = drain(&pusher).await;
    assert!(
        steps.iter().any(|s| matches!(s, Step::Failed(_))),
        "the library did fail"
    );
    let stored = library.events.lock().unwrap().clone();
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        all_seqs(&t).await
    );
    assert!(
        stored.values().all(|&n| n == 1),
        "failed requests stored nothing: {stored:?}"
    );
}

#[tokio::test]
async fn a_restarted_pusher_resumes_where_the_stored_progress_says() {
    let t = TestApp::new().await;
    let (library, url) = start_library().await;
    make_events(&t.app, 12, "RESTART").await;
    let first = Pusher::new(t.app.clone(), &url, SECRET).with_lease_and_batch(1, 4);
    for _ in 0..2 {
        assert!(matches!(
            first.step().await.unwrap(),
            Step::Delivered { .. }
        ));
    }
    drop(first); // killed: its lease runs out by itself

    // Another process, on the same database, after the lease expired.
    let reopened = Arc::new(t.reopen().await);
    let second = Pusher::new(reopened.clone(), &url, SECRET).with_lease_and_batch(1, 4);
    assert_eq!(
        second.step().await.unwrap(),
        Step::NotLeader,
        "the dead holder's lease still runs"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    drain(&second).await;
    let arrivals = library.arrivals.lock().unwrap().clone();
    assert_eq!(
        arrivals,
        all_seqs(&t).await,
        "nothing skipped, nothing sent twice"
    );

    // Events made after the restart follow.
    make_events(&reopened, 3, "AFTER").await;
    drain(&second).await;
    let arrivals = library.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals, all_seqs(&t).await);
    reopened.store.close().await;
}

#[tokio::test]
async fn the_worker_run_by_serve_delivers_and_stops_on_shutdown() {
    let t = TestApp::new().await;
    let (library, url) = start_library().await;
    make_events(&t.app, 4, "RUN").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(Pusher::new(t.app.clone(), &url, SECRET).run(stopped));
    let expected = all_seqs(&t).await;
    for _ in 0..100 {
        if library.arrivals.lock().unwrap().len() == expected.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(library.arrivals.lock().unwrap().clone(), expected);
    stop.send(true).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), worker)
        .await
        .unwrap()
        .unwrap();

    // A worker that stopped cleanly handed its lease back: the next process (a restarted
    // serve, another instance) delivers at once instead of waiting for the lease to run out.
    make_events(&t.app, 2, "AFTER-STOP").await;
    let next = Pusher::new(t.app.clone(), &url, SECRET);
    let step = next.step().await.unwrap();
    assert!(
        matches!(step, Step::Delivered { .. }),
        "the stopped worker still holds the lease: {step:?}"
    );
    let expected = all_seqs(&t).await;
    assert_eq!(library.arrivals.lock().unwrap().clone(), expected);
}

#[test]
fn backoff_doubles_up_to_a_minute_with_jitter() {
    let ms = |n| elicence::sync::backoff(n).as_millis();
    assert!((250..=375).contains(&ms(1)));
    assert!((500..=750).contains(&ms(2)));
    assert!((60_000..=90_000).contains(&ms(20)));
}

#[test]
fn the_library_urls_password_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_elicence"))
        .arg("serve")
        .env("ELICENCE_DATA_DIR", dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_LISTEN", "127.0.0.1:0")
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("ELICENCE_LIBRARY_URL", "http://city:hunter2@127.0.0.1:9")
        .env("ELICENCE_LIBRARY_SECRET", "s3cr3t")
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    serve.kill().unwrap();
    let out = serve.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(log.contains("http://city:***@127.0.0.1:9"), "{log}");
    assert!(!log.contains("hunter2"), "{log}");
    assert!(!log.contains("s3cr3t"), "{log}");
}
