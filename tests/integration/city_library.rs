//! End to end with the real binaries: `elicence serve` pushing to `city-library serve`, licences
//! issued and revoked over HTTP; the receiver ends up holding exactly the service's events, each
//! verified against the trust list. A second receiver catches up by pulling the feed. The same
//! `serve` pushes its audit trail to `city-library supervise`, which ends up holding all of it,
//! checked, with a checkpoint the county's trail extends.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

/// As many licences as the city-library issue's 1,000-row batch (issued over the API here).
const LICENCES: usize = 1000;

#[tokio::test]
async fn the_receiver_holds_exactly_the_services_events_each_verified() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let service_port = free_port();
    let library_port = free_port();
    let platform_port = free_port();
    let elicence = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_elicence"));
        c.args(args)
            .env("ELICENCE_DATA_DIR", dir.path().join("data"))
            .env("ELICENCE_KEYS_DIR", dir.path().join("keys"))
            .env("ELICENCE_TEMPLATES_DIR", templates_dir())
            .env("ELICENCE_DATABASE_URL", &database.url)
            .env("ELICENCE_LISTEN", format!("127.0.0.1:{service_port}"))
            // QR codes on the loopback address it listens on.
            .env("ELICENCE_MODE", "development")
            .env(
                "ELICENCE_LIBRARY_URL",
                format!("http://127.0.0.1:{library_port}"),
            )
            .env("ELICENCE_LIBRARY_SECRET", "city-secret")
            .env(
                "ELICENCE_SUPERVISION_URL",
                format!("http://127.0.0.1:{platform_port}"),
            )
            .env("ELICENCE_SUPERVISION_SECRET", "supervision-secret")
            .env("RUST_LOG", "warn");
        c
    };
    let run = |args: &[&str]| {
        let out = elicence(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let trust = dir.path().join("trust.json");
    run(&["trust", "export", trust.to_str().unwrap()]);
    let token = |department: Option<&str>, roles: &str| -> String {
        let mut args = vec!["token", "create", "--roles", roles, "--json"];
        if let Some(d) = department {
            args.extend(["--department", d]);
        }
        let created: Value = serde_json::from_str(&run(&args)).unwrap();
        created["token"].as_str().unwrap().to_string()
    };
    let (clerk, officer, library) = (
        token(Some(MARKET_BUREAU), "clerk"),
        token(Some(MARKET_BUREAU), "officer"),
        token(None, "library"),
    );

    let library_db = dir.path().join("library.sqlite");
    let receiver = Killed(
        Command::new(env!("CARGO_BIN_EXE_city-library"))
            .args(["serve", "--listen", &format!("127.0.0.1:{library_port}")])
            .args([
                "--db",
                library_db.to_str().unwrap(),
                "--trust",
                trust.to_str().unwrap(),
            ])
            .env("CITY_LIBRARY_SECRET", "city-secret")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let platform_db = dir.path().join("platform.sqlite");
    let root = dir.path().join("keys/root.crt.pem");
    let platform = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_city-library"));
        c.args(args).args([
            "--db",
            platform_db.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ]);
        c
    };
    let supervision = Killed(
        platform(&[
            "supervise",
            "--listen",
            &format!("127.0.0.1:{platform_port}"),
        ])
        .env("CITY_SUPERVISION_SECRET", "supervision-secret")
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let service = Killed(
        elicence(&["serve", "--verify-per-minute", "0"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{service_port}");
    wait_until_up(&format!("{base}/healthz")).await;
    wait_until_up(&format!("http://127.0.0.1:{library_port}/status")).await;

    let client = reqwest::Client::new();
    let template: Value =
        serde_json::from_str(&run(&["directory", "show", FOOD, "--example"])).unwrap();
    let mut ids = Vec::new();
    for i in 0..LICENCES {
        let mut record = template.clone();
        record["number"] = json!(format!("CITY-{i}"));
        let issued: Value = client
            .post(format!("{base}/api/v1/licences"))
            .bearer_auth(&clerk)
            .json(&json!({"type_code": FOOD, "record": record}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(issued["licence_id"].as_str().unwrap().to_string());
    }
    for id in ids.iter().step_by(10) {
        let r = client
            .post(format!("{base}/api/v1/licences/{id}/revoke"))
            .bearer_auth(&officer)
            .json(&json!({"reason": "注销"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let total = LICENCES + LICENCES / 10;

    let started = Instant::now();
    let report = loop {
        let report: Value = reqwest::get(format!("http://127.0.0.1:{library_port}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["events"] == total || started.elapsed() > Duration::from_secs(60) {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(report["events"], total, "{report}");
    assert_eq!(
        report["verified"], total,
        "every record verifies against the trust list: {report}"
    );
    assert_eq!(report["by_kind"]["revoked"], LICENCES / 10, "{report}");
    assert_eq!(
        report["logged"], total,
        "every pushed event's receipt proves it in the county's log: {report}"
    );
    assert_eq!(report["log"]["problems"], json!([]), "{report}");
    // The trees the pushes showed are all extended by the county's latest head.
    let checked = Command::new(env!("CARGO_BIN_EXE_city-library"))
        .args(["log-check", "--source", &base])
        .args([
            "--db",
            library_db.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // A second receiver catches up by pulling.
    let pulled = Command::new(env!("CARGO_BIN_EXE_city-library"))
        .args(["pull", "--source", &base, "--token", &library])
        .args([
            "--db",
            dir.path().join("pulled.sqlite").to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let pulled: Value = serde_json::from_slice(&pulled.stdout).unwrap();
    assert_eq!(pulled["new"], total);
    assert_eq!(pulled["report"]["verified"], total);
    assert_eq!(pulled["report"]["logged"], total);
    assert_eq!(pulled["report"]["log"]["problems"], json!([]));

    // The supervision platform holds the whole trail, checked, and the county's trail extends
    // the checkpoint it holds.
    let pool = raw_pool(&database.url).await;
    let head: i64 = sqlx::query_scalar("SELECT MAX(seq) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    let started = Instant::now();
    let held = loop {
        let report: Value = reqwest::get(format!("http://127.0.0.1:{platform_port}/status"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if report["held_to"]["seq"] == head || started.elapsed() > Duration::from_secs(60) {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(held["records"], head, "{held}");
    assert_eq!(held["intact"], true, "{held}");
    assert_eq!(held["held_to"]["seq"], head, "{held}");
    let checkpoint = dir.path().join("held.cose");
    let out = platform(&[
        "supervision-report",
        "--checkpoint-out",
        checkpoint.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let verified = run(&[
        "audit",
        "verify",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ]);
    assert!(
        verified.contains(&format!("extends record {head}")),
        "{verified}"
    );
    drop((service, receiver, supervision));
}
