//! The audit stream to the city supervision platform (SPEC §15), end to end with the reference
//! platform (`city-library supervise`, a real process): every record arrives in order and once
//! through a platform failing at random; a tail deleted from the county's database, or a chain
//! edited and re-hashed there, is reported by the platform and by `elicence audit verify
//! --checkpoint`; the platform catches up by pulling.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use elicence::app::{Actor, Role};
use elicence::supervision::AuditStream;
use elicence::sync::{Pusher, Step};
use serde_json::Value;

const SECRET: &str = "supervision-hmac-secret";

/// The reference platform, behind a proxy that answers 500 to every other request before it
/// reaches the platform, and otherwise forwards it.
struct Platform {
    _process: Killed,
    db: PathBuf,
    trust: PathBuf,
    /// Where the county pushes: the proxy.
    url: String,
    refused: Arc<AtomicUsize>,
}

struct Proxy {
    platform: String,
    requests: AtomicUsize,
    refused: Arc<AtomicUsize>,
}

async fn flaky_forward(
    State(proxy): State<Arc<Proxy>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Bytes) {
    // Three of every four requests fail: some before the platform sees them, some after it
    // stored them (the answer is lost), as a real network loses either.
    let n = proxy.requests.fetch_add(1, Ordering::SeqCst);
    if n % 4 == 1 {
        proxy.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, Bytes::new());
    }
    let mut forwarded = reqwest::Client::new().post(format!("{}/audit", proxy.platform));
    for name in ["content-type", "idempotency-key", "x-elicence-signature"] {
        if let Some(value) = headers.get(name) {
            forwarded = forwarded.header(name, value.to_str().unwrap());
        }
    }
    let answer = forwarded.body(body).send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let body = answer.bytes().await.unwrap();
    if n % 4 == 2 || n % 4 == 3 && n % 8 == 3 {
        proxy.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::BAD_GATEWAY, Bytes::new());
    }
    (status, body)
}

impl Platform {
    async fn start(t: &TestApp) -> Platform {
        let trust = t.dir.path().join("trust.json");
        std::fs::write(&trust, serde_json::to_vec(&t.app.trust_list()).unwrap()).unwrap();
        let db = t.dir.path().join("platform.sqlite");
        let port = free_port();
        let process = Killed(
            Command::new(env!("CARGO_BIN_EXE_city-library"))
                .args(["supervise", "--listen", &format!("127.0.0.1:{port}")])
                .args([
                    "--db",
                    db.to_str().unwrap(),
                    "--trust",
                    trust.to_str().unwrap(),
                ])
                .env("CITY_SUPERVISION_SECRET", SECRET)
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let platform = format!("http://127.0.0.1:{port}");
        wait_until_up(&format!("{platform}/status")).await;
        let refused = Arc::new(AtomicUsize::new(0));
        let proxy = Arc::new(Proxy {
            platform,
            requests: AtomicUsize::new(0),
            refused: refused.clone(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/platform", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/platform/audit", axum::routing::post(flaky_forward))
            .with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Platform {
            _process: process,
            db,
            trust,
            url,
            refused,
        }
    }

    /// The county's audit stream from `app` to this platform (through the failing proxy).
    fn pusher(&self, app: &Arc<elicence::app::App>) -> Pusher<AuditStream> {
        Pusher::of(
            AuditStream::new(app).unwrap(),
            app.clone(),
            &self.url,
            SECRET.as_bytes(),
        )
    }

    fn command(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_city-library"))
            .args(args)
            .args([
                "--db",
                self.db.to_str().unwrap(),
                "--trust",
                self.trust.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    }

    /// The platform's report, and the last checkpoint it received written to `checkpoint`.
    fn report(&self, checkpoint: &Path) -> (Value, i32) {
        let out = self.command(&[
            "supervision-report",
            "--checkpoint-out",
            checkpoint.to_str().unwrap(),
        ]);
        let report = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (report, out.status.code().unwrap())
    }
}

/// Steps `pusher` until it is idle, failures included; panics if it never is.
async fn drain(pusher: &Pusher<AuditStream>) -> usize {
    let mut failures = 0;
    for _ in 0..2000 {
        match pusher.step().await.unwrap() {
            Step::Idle => return failures,
            Step::Failed(_) => failures += 1,
            Step::Delivered { .. } => {}
            Step::NotLeader => panic!("no other pusher runs"),
        }
    }
    panic!("the supervision push never became idle");
}

/// A day's ordinary work: issues and a suspension, a refused attempt, and an API token made.
async fn some_work(t: &TestApp, prefix: &str) {
    let operator = Actor::local_operator();
    for i in 0..7 {
        let issued = t
            .app
            .issue(
                &operator,
                FOOD,
                &sample(&t.app, FOOD, &format!("{prefix}-{i}")),
                None,
            )
            .await
            .unwrap();
        if i % 3 == 0 {
            t.app
                .change_status(
                    &operator,
                    &issued.licence_id,
                    elicence::licence::EventKind::Suspended,
                    Some("检查"),
                )
                .await
                .unwrap();
        }
    }
    let stranger = Actor {
        name: "token:99".into(),
        source: "203.0.113.9".into(),
        department: Some(elicence::identifiers::Uscc::parse(DISABILITY_FEDERATION).unwrap()),
        roles: vec![Role::Clerk],
    };
    let refused = t
        .app
        .issue(
            &stranger,
            FOOD,
            &sample(&t.app, FOOD, &format!("{prefix}-x")),
            None,
        )
        .await;
    assert!(refused.is_err(), "another department's clerk is refused");
}

async fn audit_count(t: &TestApp) -> i64 {
    let pool = raw_pool(&t.database_url).await;
    sqlx::query_scalar("SELECT COUNT(*) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap()
}

/// `elicence audit verify` with `args`, against the test application's database and keys.
fn audit_verify(t: &TestApp, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args(["audit", "verify"])
        .args(args)
        .env("ELICENCE_DATA_DIR", t.dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", t.dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &t.database_url)
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

/// Removes the audit trail's append-only guard, as someone with database access could.
async fn drop_guards(t: &TestApp) -> sqlx::AnyPool {
    let pool = raw_pool(&t.database_url).await;
    let statements: &[&str] = if t.database_url.starts_with("postgres") {
        &["DROP TRIGGER audit_append_only ON audit"]
    } else {
        &[
            "DROP TRIGGER audit_append_only_update",
            "DROP TRIGGER audit_append_only_delete",
        ]
    };
    for statement in statements {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool
}

fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_audit_record_reaches_the_platform_in_order_and_once_through_failures() {
    let t = TestApp::new().await;
    let platform = Platform::start(&t).await;
    let pusher = platform.pusher(&t.app).with_lease_and_batch(30, 4);
    some_work(&t, "ONE").await;
    let failures = drain(&pusher).await;
    some_work(&t, "TWO").await;
    let failures = failures + drain(&pusher).await;
    assert!(failures > 5, "the platform failed often: {failures}");
    assert!(platform.refused.load(Ordering::SeqCst) > 5);

    let checkpoint = t.dir.path().join("checkpoint.cose");
    let (report, code) = platform.report(&checkpoint);
    let total = audit_count(&t).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["records"], total, "{report}");
    assert_eq!(report["last_seq"], total, "gap-free seqs: {report}");
    assert_eq!(
        report["intact"], true,
        "in order, linked, each hash right: {report}"
    );
    assert_eq!(
        report["held_to"]["seq"], total,
        "the head is checkpointed: {report}"
    );
    let head = t.app.store.audit_head().await.unwrap().unwrap();
    assert_eq!(report["held_to"]["hash"], head.1.as_str());
    // A monitor that allows a few minutes of silence is content; one that allows none, a second
    // later, reports the stream silent.
    let watched = |max: &str| {
        platform
            .command(&["supervision-report", "--max-silence", max])
            .status
            .code()
            .unwrap()
    };
    assert_eq!(watched("180"), 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(watched("0"), 2);

    // The checkpoint the platform holds proves the county's trail to the county's own tool.
    let (code, text) = audit_verify(&t, &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("extends record {total}")), "{text}");
    let (code, _) = audit_verify(&t, &["--expect-head", &format!("{}:{}", head.0, head.1)]);
    assert_eq!(code, 0);
    // A checkpoint file that is not one is refused with its reason, not believed.
    std::fs::write(&checkpoint, b"0oAAAA").unwrap();
    let (code, text) = audit_verify(&t, &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("checkpoint"), "{text}");
    let (code, text) = audit_verify(&t, &["--expect-head", "7:abc"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("SEQ:HASH"), "{text}");
}

#[tokio::test]
async fn a_deleted_tail_is_reported_by_the_platform_and_by_audit_verify() {
    let t = TestApp::new().await;
    let platform = Platform::start(&t).await;
    let pusher = platform.pusher(&t.app);
    some_work(&t, "CUT").await;
    drain(&pusher).await;
    let checkpoint = t.dir.path().join("held.cose");
    let (before, _) = platform.report(&checkpoint);
    let total = audit_count(&t).await;
    assert_eq!(before["held_to"]["seq"], total);

    // The last three records go, and the county's own chain check cannot tell.
    let pool = drop_guards(&t).await;
    sqlx::query("DELETE FROM audit WHERE seq > $1")
        .bind(total - 3)
        .execute(&pool)
        .await
        .unwrap();
    let (code, text) = audit_verify(&t, &[]);
    assert_eq!(code, 0, "a cut tail leaves a chain that checks: {text}");
    // One more write, and the count looks right again.
    some_work(&t, "AFTER").await;
    drain(&pusher).await;

    let after_report = t.dir.path().join("after.cose");
    let (report, code) = platform.report(&after_report);
    assert_eq!(code, 2, "{report}");
    let found = problems(&report);
    let replaced = format!("record {} arrived again", total - 2);
    assert!(
        found
            .iter()
            .any(|(kind, message)| kind == "rewritten" && message.starts_with(&replaced)),
        "what now stands under the deleted records' seqs reaches the platform, which holds the \
         originals: {found:?}"
    );
    // The platform still holds the county to the checkpoint from before, not to the newer one
    // of the cut trail.
    assert_eq!(report["held_to"]["seq"], total, "{report}");
    for held in [&checkpoint, &after_report] {
        let (code, text) = audit_verify(&t, &["--checkpoint", held.to_str().unwrap()]);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains(&format!("record {total}")), "{text}");
    }
}

#[tokio::test]
async fn a_tail_deleted_without_a_write_after_it_is_reported_as_cut_short() {
    let t = TestApp::new().await;
    let platform = Platform::start(&t).await;
    let pusher = platform.pusher(&t.app);
    some_work(&t, "TAIL").await;
    drain(&pusher).await;
    let total = audit_count(&t).await;
    let pool = drop_guards(&t).await;
    sqlx::query("DELETE FROM audit WHERE seq > $1")
        .bind(total - 2)
        .execute(&pool)
        .await
        .unwrap();
    // The pusher states the new head; the platform holds more than it.
    drain(&pusher).await;
    let (report, code) = platform.report(&t.dir.path().join("cp.cose"));
    assert_eq!(code, 2, "{report}");
    let found = problems(&report);
    assert!(
        found.iter().any(|(kind, message)| kind == "truncated"
            && message.contains(&format!("ends at record {}", total - 2))),
        "{found:?}"
    );
}

#[tokio::test]
async fn an_edited_and_rehashed_chain_is_caught_at_the_next_checkpoint() {
    let t = TestApp::new().await;
    let platform = Platform::start(&t).await;
    let pusher = platform.pusher(&t.app);
    some_work(&t, "EDIT").await;
    drain(&pusher).await;
    let checkpoint = t.dir.path().join("held.cose");
    platform.report(&checkpoint);

    // Record 5 says someone else did it, and every hash after it is recomputed so the chain
    // checks again.
    let pool = drop_guards(&t).await;
    let records = t
        .app
        .store
        .audit_records(&Default::default(), None, 0, 10_000)
        .await
        .unwrap();
    let mut prev = elicence::audit::GENESIS.to_string();
    for mut r in records {
        if r.seq == 5 {
            r.actor = "someone else".into();
        }
        let hash = elicence::audit::record_hash(&prev, &r.at, &r.entry());
        sqlx::query("UPDATE audit SET actor = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&r.actor)
            .bind(&prev)
            .bind(&hash)
            .bind(r.seq)
            .execute(&pool)
            .await
            .unwrap();
        prev = hash;
    }
    let (code, text) = audit_verify(&t, &[]);
    assert_eq!(code, 0, "the re-hashed chain checks by itself: {text}");
    let (code, text) = audit_verify(&t, &["--checkpoint", checkpoint.to_str().unwrap()]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("rewritten"), "{text}");

    // The next checkpoint the platform receives names the rewrite.
    drain(&pusher).await;
    let (report, code) = platform.report(&t.dir.path().join("after.cose"));
    assert_eq!(code, 2, "{report}");
    assert!(
        problems(&report)
            .iter()
            .any(|(kind, _)| kind == "rewritten"),
        "{report}"
    );
}

#[tokio::test]
async fn the_platform_catches_up_by_pulling_with_a_city_wide_supervisor_token_only() {
    let server = TestServer::start().await;
    let supervisor = server.token(None, &[Role::Supervisor]).await;
    let departmental = server.token(Some(MARKET_BUREAU), &[Role::Supervisor]).await;
    for i in 0..3 {
        let clerk = server.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
        assert!(server
            .issue(&clerk, FOOD, &format!("PULL-{i}"))
            .await
            .status()
            .is_success());
    }
    let client = reqwest::Client::new();
    let refused = client
        .get(server.url("/api/v1/supervision/audit?after=0"))
        .bearer_auth(&departmental)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        403,
        "a department's share of the trail does not chain"
    );
    let page: Value = client
        .get(server.url("/api/v1/supervision/audit?after=2&limit=3"))
        .bearer_auth(&supervisor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seqs: Vec<i64> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(page["next"], 5);
    assert_eq!(page["records"][1]["prev"], page["records"][0]["hash"]);
    assert!(page["checkpoint"].is_string());

    // The reference platform pulls everything and checks it.
    let t = &server.t.app;
    let dir = tempfile::tempdir().unwrap();
    let trust = dir.path().join("trust.json");
    std::fs::write(&trust, serde_json::to_vec(&t.trust_list()).unwrap()).unwrap();
    let db = dir.path().join("pulled.sqlite");
    // Off this test's thread: the service answering the pull runs on it.
    let source = server.url("");
    let token = supervisor.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_city-library"))
            .args(["supervision-pull", "--source", &source, "--token", &token])
            .args([
                "--db",
                db.to_str().unwrap(),
                "--trust",
                trust.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pulled: Value = serde_json::from_slice(&out.stdout).unwrap();
    let head = t.store.audit_head().await.unwrap().unwrap();
    assert_eq!(pulled["report"]["last_seq"], head.0, "{pulled}");
    assert_eq!(
        pulled["report"]["held_to"]["hash"],
        head.1.as_str(),
        "{pulled}"
    );
    assert_eq!(pulled["report"]["intact"], true, "{pulled}");
}

#[tokio::test]
async fn a_service_killed_mid_stream_resumes_where_the_platform_acknowledged() {
    let t = TestApp::new().await;
    let platform = Platform::start(&t).await;
    let killed = platform.pusher(&t.app).with_lease_and_batch(1, 4);
    some_work(&t, "BEFORE").await;
    for _ in 0..3 {
        killed.step().await.unwrap();
    }
    // Gone without handing its lease back or finishing its batch, as after kill -9.
    drop(killed);
    some_work(&t, "AFTER").await;

    let restarted = Arc::new(t.reopen().await);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let pusher = platform.pusher(&restarted).with_lease_and_batch(1, 4);
    drain(&pusher).await;
    let (report, code) = platform.report(&t.dir.path().join("held.cose"));
    let head = restarted.store.audit_head().await.unwrap().unwrap();
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["records"], head.0, "nothing lost: {report}");
    assert_eq!(
        report["intact"], true,
        "nothing twice, nothing out of order: {report}"
    );
    assert_eq!(report["held_to"]["seq"], head.0, "{report}");
}
