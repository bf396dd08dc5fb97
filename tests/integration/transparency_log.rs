//! The transparency log as outsiders use it (SPEC §16): heads, receipts and consistency proofs
//! over HTTP, checked with nothing but the trust list; `log verify` and the reference city
//! library catching an edited entry, a removed one, a rewritten past and a fork. Runs on both
//! backends.

use std::process::Command;

use base64::Engine;
use elicence::app::{Actor, Role};
use elicence::licence::EventKind;
use elicence::signing::cose::Envelope;
use elicence::signing::trust::TrustStore;
use elicence::transparency::head::TreeHead;
use elicence::transparency::receipt::{Proof, Receipt};
use elicence::transparency::statement;
use serde_json::Value;

use crate::common::*;

async fn get_bytes(s: &TestServer, path: &str) -> (u16, Vec<u8>) {
    let r = s.client.get(s.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        let media = r.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(media, "application/cose", "{path}");
    }
    (status, r.bytes().await.unwrap().to_vec())
}

async fn trust_of(s: &TestServer) -> TrustStore {
    let text = s
        .client
        .get(s.url("/.well-known/elicence/trust.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    TrustStore::from_json(&text).unwrap()
}

fn now() -> i64 {
    elicence::time_util::now().unix_timestamp()
}

#[tokio::test]
async fn an_outsider_proves_every_change_is_logged_and_the_log_only_grew() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let mut ids = Vec::new();
    let mut licences = Vec::new();
    for n in 0..3 {
        let issued: Value = s
            .issue(&clerk, FOOD, &format!("LOG-{n}"))
            .await
            .json()
            .await
            .unwrap();
        ids.push(issued["id"].as_str().unwrap().to_string());
        licences.push(issued["licence_id"].as_str().unwrap().to_string());
    }
    let trust = trust_of(&s).await;
    let (_, head) = get_bytes(&s, "/api/v1/log/head").await;
    let first = TreeHead::verify(&head, &trust).unwrap();
    assert_eq!(first.size, 3);

    s.t.app
        .change_status(
            &Actor::local_operator(),
            &licences[1],
            EventKind::Revoked,
            Some("注销"),
        )
        .await
        .unwrap();
    let (_, head) = get_bytes(&s, "/api/v1/log/head").await;
    let second = TreeHead::verify(&head, &trust).unwrap();
    assert_eq!(second.size, 4, "the revocation is the fourth entry");

    // The history of heads, and a consistency proof between them.
    let heads = s.get_json("/api/v1/log/heads", None).await;
    let sizes: Vec<u64> = heads["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let bytes = base64::engine::general_purpose::STANDARD.decode(h.as_str().unwrap());
            TreeHead::verify(&bytes.unwrap(), &trust).unwrap().size
        })
        .collect();
    assert_eq!(sizes, [3, 4]);
    assert_eq!(
        s.get_json("/api/v1/log/heads?after=3", None).await["heads"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (_, consistency) = get_bytes(&s, "/api/v1/log/consistency?from=3&to=4").await;
    let receipt = Receipt::parse(&consistency).unwrap();
    assert_eq!(
        receipt
            .verify_consistency(&first.root, &trust, now())
            .unwrap(),
        (4, second.root)
    );
    let rewritten = elicence::transparency::merkle::leaf_hash(&first.root);
    assert!(receipt
        .verify_consistency(&rewritten, &trust, now())
        .is_err());
    for (query, status) in [
        ("from=0&to=4", 400),
        ("from=5&to=4", 400),
        ("from=1&to=99", 404),
        ("from=x&to=4", 400),
    ] {
        let (got, _) = get_bytes(&s, &format!("/api/v1/log/consistency?{query}")).await;
        assert_eq!(got, status, "{query}");
    }

    // Every feed event carries a receipt for its entry; a status change carries its statement.
    let library = s.token(None, &[Role::Library]).await;
    let feed = s.get_json("/api/v1/feed?after=0", Some(&library)).await;
    let base64 = base64::engine::general_purpose::STANDARD;
    for event in feed["events"].as_array().unwrap() {
        let record = base64.decode(event["record"].as_str().unwrap()).unwrap();
        let entry = match event["statement"].as_str() {
            Some(statement) => {
                let statement = base64.decode(statement).unwrap();
                let typ = Envelope::parse(&statement)
                    .unwrap()
                    .typ()
                    .map(str::to_string);
                assert_eq!(typ.as_deref(), Some(statement::MEDIA_TYPE));
                assert_eq!(event["kind"], "revoked");
                statement
            }
            None => record.clone(),
        };
        let receipt = base64.decode(event["receipt"].as_str().unwrap()).unwrap();
        let receipt = Receipt::parse(&receipt).unwrap();
        assert_eq!(
            receipt.verify_inclusion(&entry, &trust, now()).unwrap(),
            (4, second.root)
        );
        // The same receipt does not prove another entry.
        assert!(receipt
            .verify_inclusion(b"not logged", &trust, now())
            .is_err());

        // The version's own receipt, at the latest head and at an earlier one.
        if event["statement"].is_null() {
            let id = event["metadata"]["ZZBS"].as_str().unwrap();
            let (_, bytes) = get_bytes(&s, &format!("/api/v1/log/receipts/{id}")).await;
            let receipt = Receipt::parse(&bytes).unwrap();
            assert_eq!(
                receipt.verify_inclusion(&record, &trust, now()).unwrap(),
                (4, second.root)
            );
            let (_, bytes) = get_bytes(&s, &format!("/api/v1/log/receipts/{id}?size=3")).await;
            let receipt = Receipt::parse(&bytes).unwrap();
            assert_eq!(
                receipt.verify_inclusion(&record, &trust, now()).unwrap(),
                (3, first.root)
            );
            assert!(matches!(receipt.proof, Proof::Inclusion { size: 3, .. }));
        }
    }
    for (path, status) in [
        (format!("/api/v1/log/receipts/{}?size=2", ids[2]), 404),
        (format!("/api/v1/log/receipts/{}?size=7", ids[0]), 404),
        ("/api/v1/log/receipts/1.2.156.nonsense".to_string(), 400),
        ("/api/v1/log/receipts/%E8%AF%81%E7%85%A7".to_string(), 400),
    ] {
        assert_eq!(get_bytes(&s, &path).await.0, status, "{path}");
    }
    // A receipt with a proof hash changed (the last one, before the detached payload's nil and
    // the 66 bytes of signature) does not verify.
    let (_, bytes) = get_bytes(&s, &format!("/api/v1/log/receipts/{}", ids[0])).await;
    let record = s.t.app.full_record_of(&ids[0]).await.unwrap();
    let receipt = Receipt::parse(&bytes).unwrap();
    assert!(receipt.verify_inclusion(&record, &trust, now()).is_ok());
    let mut forged = bytes.clone();
    let at = forged.len() - 70;
    forged[at] ^= 1;
    let forged = Receipt::parse(&forged).unwrap();
    assert_eq!(
        forged.verify_inclusion(&record, &trust, now()),
        Err(elicence::transparency::LogError::BadSignature)
    );
    assert!(s.t.app.verify_log().await.unwrap().problems.is_empty());
}

/// Statements an attacker with the database runs after dropping the tables' triggers.
fn drop_triggers() -> &'static [&'static str] {
    if postgres_requested() {
        &[
            "DROP TRIGGER versions_immutable ON versions",
            "DROP TRIGGER log_nodes_append_only ON log_nodes",
            "DROP TRIGGER log_heads_append_only ON log_heads",
        ]
    } else {
        &[
            "DROP TRIGGER versions_immutable_update",
            "DROP TRIGGER log_nodes_append_only_delete",
            "DROP TRIGGER log_heads_append_only_delete",
        ]
    }
}

// Several threads: the city library's processes are waited for on this one while the service
// answers them on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_entry_and_a_rewritten_past_are_reported_by_log_verify_and_the_city_library() {
    let s = TestServer::start().await;
    let app = &s.t.app;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let library = s.token(None, &[Role::Library]).await;
    for n in 0..3 {
        assert_eq!(
            s.issue(&clerk, FOOD, &format!("EDIT-{n}")).await.status(),
            201
        );
    }
    let trust = s.t.dir.path().join("trust.json");
    let list = s
        .client
        .get(s.url("/.well-known/elicence/trust.json"))
        .send()
        .await
        .unwrap();
    std::fs::write(&trust, list.bytes().await.unwrap()).unwrap();
    let library_db = s.t.dir.path().join("library.sqlite");
    let city = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_city-library"))
            .args(args)
            .args([
                "--db",
                library_db.to_str().unwrap(),
                "--trust",
                trust.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (code, pulled) = city(&["pull", "--source", &s.base, "--token", &library]);
    assert_eq!(code, Some(0));
    assert_eq!(pulled["report"]["logged"], 3, "{pulled}");
    let (code, report) = city(&["log-check", "--source", &s.base]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["log"]["problems"], serde_json::json!([]));
    let sound = app.verify_log().await.unwrap();
    assert!(sound.problems.is_empty(), "{:?}", sound.problems);
    assert_eq!((sound.entries, sound.leaves, sound.heads), (3, 3, 1));

    // Someone with the database edits the second licence's record.
    let pool = raw_pool(&s.t.database_url).await;
    for statement in drop_triggers() {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let (licence, record): (i64, Vec<u8>) = sqlx::query_as(
        "SELECT v.licence, v.full_record FROM versions v JOIN events e
         ON e.licence = v.licence AND e.version = v.version WHERE e.seq = 2",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut edited = record.clone();
    let last = edited.len() - 1;
    edited[last] ^= 1;
    sqlx::query("UPDATE versions SET full_record = $1 WHERE licence = $2")
        .bind(edited)
        .bind(licence)
        .execute(&pool)
        .await
        .unwrap();
    let report = app.verify_log().await.unwrap();
    assert_eq!(
        report.problems,
        [
            "leaf 1 (event 2) is not the hash of the event's entry: the entry was changed",
            "the head of size 3 signs a root the entries no longer give: the logged past was rewritten"
        ]
    );

    // … then rebuilds the tree from the edited entries and hides the old heads: the county's
    // new head of the same size is a fork to the library, and `log verify` sees no head left
    // to betray it only because the heads went too — the library kept its own.
    sqlx::query("DELETE FROM log_nodes")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM log_heads")
        .execute(&pool)
        .await
        .unwrap();
    app.catch_up_log().await.unwrap();
    let (code, report) = city(&["log-check", "--source", &s.base]);
    assert_eq!(code, Some(2), "{report}");
    let problems = report["log"]["problems"].to_string();
    assert!(
        problems.contains("fork: the county signed two different trees of 3 entries"),
        "{problems}"
    );

    // One more licence: the county's log of 4 no longer extends the tree of 3 the library kept.
    assert_eq!(s.issue(&clerk, FOOD, "EDIT-3").await.status(), 201);
    let (code, report) = city(&["log-check", "--source", &s.base]);
    assert_eq!(code, Some(2));
    let problems = report["log"]["problems"].to_string();
    assert!(
        problems.contains("does not extend the tree of 3 entries it signed before"),
        "{problems}"
    );

    // Where the heads were kept, `log verify` itself reports the rewritten past.
    let kept = app.log_head().await.unwrap();
    assert_eq!(kept.size, 4);
    sqlx::query("UPDATE versions SET full_record = $1 WHERE licence = $2")
        .bind(record)
        .bind(licence)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM log_nodes")
        .execute(&pool)
        .await
        .unwrap();
    app.catch_up_log().await.unwrap();
    let report = app.verify_log().await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("the head of size 4 signs a root the entries no longer give")),
        "{:?}",
        report.problems
    );
}

#[tokio::test]
async fn an_offline_verifier_checks_a_record_is_in_the_log_of_a_head_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let run = |args: &[&str]| {
        let out = elicence_command(dir.path(), &database.url)
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code().unwrap(), stdout, stderr)
    };
    let ok = |args: &[&str]| {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        stdout
    };
    let example = ok(&["directory", "show", FOOD, "--example"]);
    let mut issued = Vec::new();
    for n in 0..3 {
        let mut record: Value = serde_json::from_str(&example).unwrap();
        record["number"] = format!("OFFLINE-{n}").into();
        let file = path(&format!("{n}.json"));
        std::fs::write(&file, record.to_string()).unwrap();
        let printed = ok(&["issue", FOOD, "--file", &file]);
        let mut lines = printed.lines().map(str::to_string);
        issued.push((lines.next().unwrap(), lines.next().unwrap()));
        if n == 1 {
            let head: Value = serde_json::from_str(&ok(&[
                "log",
                "head",
                "--out",
                &path("head2.cose"),
                "--json",
            ]))
            .unwrap();
            assert_eq!(head["size"], 2);
        }
    }
    ok(&["trust", "export", &path("trust.json")]);
    ok(&[
        "status-list",
        "export",
        "--issuer",
        MARKET_BUREAU,
        &path("list.cwt"),
    ]);
    ok(&[
        "log",
        "receipt",
        &issued[0].0,
        "--size",
        "2",
        "--out",
        &path("r0.cose"),
        "--record",
        &path("rec0.cose"),
    ]);
    ok(&["log", "head"]); // of all three
    ok(&[
        "log",
        "receipt",
        &issued[1].0,
        "--size",
        "3",
        "--out",
        &path("r1.cose"),
        "--record",
        &path("rec1.cose"),
    ]);
    let verify = |qr: &str, head: &str, receipt: &str, record: &str| {
        let (code, stdout, stderr) = run(&[
            "verify",
            "--offline",
            "--trust",
            &path("trust.json"),
            "--status-list",
            &path("list.cwt"),
            qr,
            "--log-head",
            &path(head),
            "--receipt",
            &path(receipt),
            "--record",
            &path(record),
        ]);
        (code, stdout + &stderr)
    };
    let (code, text) = verify(&issued[0].1, "head2.cose", "r0.cose", "rec0.cose");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("logged: entry 0 of the county's log, in the tree of 2 entries"),
        "{text}"
    );
    // Another version's record for this QR code; a receipt for another tree than the head's.
    let (code, text) = verify(&issued[0].1, "head2.cose", "r0.cose", "rec1.cose");
    assert_eq!(code, 2);
    assert!(text.contains("not the record this QR code names"), "{text}");
    let (code, text) = verify(&issued[1].1, "head2.cose", "r1.cose", "rec1.cose");
    assert_eq!(code, 2);
    assert!(
        text.contains("the receipt is for the tree of 3 entries, the head for 2"),
        "{text}"
    );
    // A head from elsewhere is not the log key's.
    std::fs::write(path("forged.cose"), b"\xd2\x84\x40\xa0\x40\x40").unwrap();
    let (code, text) = verify(&issued[0].1, "forged.cose", "r0.cose", "rec0.cose");
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("NOT shown to be in the county's log"),
        "{text}"
    );

    let report = ok(&["log", "verify"]);
    assert!(
        report.contains("3 entries, 3 leaves, 2 signed heads checked"),
        "{report}"
    );
    let (code, _, stderr) = run(&[
        "log",
        "receipt",
        &issued[2].0,
        "--size",
        "2",
        "--out",
        &path("r2.cose"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("is logged after the tree of 2 entries"),
        "{stderr}"
    );
    assert!(report.contains("the log is sound"), "{report}");
}

/// A database from before the log (its tables empty beside the events) is logged when the
/// service opens it: status changes get their signed statements then, and the tree is sound.
#[tokio::test]
async fn events_from_before_the_log_are_logged_at_open() {
    let t = TestApp::new().await;
    let operator = Actor::local_operator();
    let mut licences = Vec::new();
    for n in 0..3 {
        let record = sample(&t.app, FOOD, &format!("OLD-{n}"));
        licences.push(
            t.app
                .issue(&operator, FOOD, &record, None)
                .await
                .unwrap()
                .licence_id,
        );
    }
    t.app
        .change_status(&operator, &licences[0], EventKind::Suspended, Some("整改"))
        .await
        .unwrap();
    let pool = raw_pool(&t.database_url).await;
    let forget = if postgres_requested() {
        vec![
            "DROP TRIGGER log_nodes_append_only ON log_nodes",
            "DROP TRIGGER log_statements_append_only ON log_statements",
            "DELETE FROM log_nodes",
            "DELETE FROM log_statements",
        ]
    } else {
        vec![
            "DROP TRIGGER log_nodes_append_only_delete",
            "DROP TRIGGER log_statements_append_only_delete",
            "DELETE FROM log_nodes",
            "DELETE FROM log_statements",
        ]
    };
    for statement in forget {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let reopened = t.reopen().await;
    let report = reopened.verify_log().await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!((report.entries, report.leaves), (4, 4));
    let statements = reopened.store.log_statements(&[4]).await.unwrap();
    let envelope = Envelope::parse(&statements[&4]).unwrap();
    assert_eq!(envelope.typ(), Some(statement::MEDIA_TYPE));
    // New changes append after the caught-up leaves.
    reopened
        .change_status(&operator, &licences[0], EventKind::Reinstated, None)
        .await
        .unwrap();
    assert_eq!(reopened.store.log_size().await.unwrap(), 5);
    reopened.store.close().await;
}
