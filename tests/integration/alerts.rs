//! Alerts (SPEC §15, issue #16 item 4): each shipped rule fires on its scenario, driven through
//! the API where it can be, and stays silent on a normal day's work; one alert per episode; a
//! restart does not alert again and two instances do not both watch; a broken rules file is
//! refused with its line; supervisors see the alerts in the console, within their department.

use std::process::Command;
use std::sync::Arc;

use elicence::alerts::{Alert, AlertDetail, Pass, Rules, Watcher, DEFAULT_RULES};
use elicence::app::{Actor, Role};
use elicence::audit::Record;
use elicence::store::AuditFilter;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::console_signin::{account_in, first_sign_in, Person};
use crate::common::*;

/// The shipped rules with `changes` made to their text (each must match once), and working
/// hours around the clock unless a change says otherwise: the test's clock is whatever the
/// machine's is, and a normal day's work must not depend on it.
fn shipped_rules_with(changes: &[(&str, &str)]) -> Rules {
    let mut text = DEFAULT_RULES.to_string();
    let all_day = [
        (
            "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
            "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"]",
        ),
        ("start = \"08:30\"", "start = \"00:00\""),
        ("end = \"17:30\"", "end = \"24:00\""),
    ];
    for (from, to) in changes.iter().chain(
        all_day
            .iter()
            .filter(|(from, _)| !changes.iter().any(|(f, _)| f == from)),
    ) {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{from:?} in the shipped rules"
        );
        text = text.replace(from, to);
    }
    Rules::parse(&text, "test rules").unwrap()
}

/// Working hours on no day: every revocation is outside them.
const NO_WORKING_DAY: (&str, &str) = (
    "days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]",
    "days = []",
);

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> StatusCode {
    s.client
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

/// Issues a food licence (the market bureau's) over HTTP; returns the issue answer.
async fn issue_answer(s: &TestServer, clerk: &str, number: &str) -> Value {
    let response = s.issue(clerk, FOOD, number).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Issues a food licence (the market bureau's) over HTTP; returns its licence id.
async fn issue(s: &TestServer, clerk: &str, number: &str) -> String {
    licence_id(&issue_answer(s, clerk, number).await)
}

fn licence_id(issued: &Value) -> String {
    issued["licence_id"].as_str().unwrap().to_string()
}

async fn revoke(s: &TestServer, officer: &str, id: &str) -> StatusCode {
    let path = format!("/api/v1/licences/{id}/revoke");
    post(s, officer, &path, json!({"reason": "吊销"})).await
}

async fn amend(s: &TestServer, officer: &str, id: &str, name: &str) -> StatusCode {
    let path = format!("/api/v1/licences/{id}/amend");
    post(
        s,
        officer,
        &path,
        json!({"holder_name": name, "reason": "更名"}),
    )
    .await
}

/// One pass of `watcher`, which must hold the lease; the alerts it raised.
async fn pass(watcher: &Watcher) -> Vec<Alert> {
    match watcher.pass().await.unwrap() {
        Pass::Watched { alerts, .. } => alerts,
        Pass::NotLeader => panic!("the watcher did not get the lease"),
    }
}

/// The audit records of `action`, oldest first.
async fn records_of(t: &TestApp, action: &str) -> Vec<Record> {
    let filter = AuditFilter {
        action: Some(action.into()),
        ..Default::default()
    };
    t.app
        .audit_records(&Actor::local_operator(), &filter, 0, 1000)
        .await
        .unwrap()
}

/// Every alert record, oldest first.
async fn alert_records(t: &TestApp) -> Vec<Record> {
    t.app
        .audit_records(&Actor::local_operator(), &AuditFilter::default(), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action.starts_with("alert."))
        .collect()
}

fn rules_of(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.rule.as_str()).collect()
}

fn detail(record: &Record) -> AlertDetail {
    serde_json::from_str(&record.detail).unwrap()
}

/// Moves a licence's issue back a day, as if it had been issued yesterday: a test cannot wait,
/// and the events are immutable, so the guard is lifted as an operator with database access
/// could.
async fn issued_yesterday(t: &TestApp, licence_id: &str) {
    let pool = raw_pool(&t.database_url).await;
    let lift = if postgres_requested() {
        "ALTER TABLE events DISABLE TRIGGER events_immutable"
    } else {
        "DROP TRIGGER events_immutable_update"
    };
    sqlx::query(lift).execute(&pool).await.unwrap();
    let yesterday = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let yesterday = yesterday
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let moved = sqlx::query("UPDATE events SET at = $1 WHERE licence_id = $2 AND kind = 'issued'")
        .bind(yesterday)
        .bind(licence_id)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(moved.rows_affected(), 1);
}

/// Public verifications of the licence `issued` (an issue answer), `times` of them, as phones
/// scanning its QR code make them: by turns the page the code opens (`/V/…`) and the API
/// (`POST /api/v1/verify`). They are counted in memory until
/// `App::flush_verification_counts` stores them, as `serve`'s keeper does every few seconds.
async fn scanned(s: &TestServer, issued: &Value, times: usize) {
    let qr = issued["qr_text"].as_str().unwrap();
    let page = s.url(&format!("/V/{}", qr_b32(issued)));
    for n in 0..times {
        let answer = if n % 2 == 0 {
            s.client.get(&page).send().await.unwrap()
        } else {
            s.client
                .post(s.url("/api/v1/verify"))
                .json(&json!({ "input": qr }))
                .send()
                .await
                .unwrap()
        };
        assert_eq!(answer.status(), StatusCode::OK);
    }
}

/// Moves the stored verification counts of `licence_id` `minutes` back, as if its scans had
/// come that long ago. A test cannot wait out a ten-minute window, and a verification has no
/// time of its own to give, so the stored minutes are moved as an operator with database
/// access could.
async fn scanned_minutes_ago(t: &TestApp, licence_id: &str, minutes: i64) {
    let pool = raw_pool(&t.database_url).await;
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT minute FROM verification_counts WHERE licence = $1 ORDER BY minute",
    )
    .bind(licence_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        !stored.is_empty(),
        "no verifications of {licence_id} stored"
    );
    // Oldest first: a minute is moved to where none of the licence's is yet.
    for minute in stored {
        let at = time::OffsetDateTime::parse(
            &format!("{minute}:00Z"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
            - time::Duration::minutes(minutes);
        let moved = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute()
        );
        sqlx::query(
            "UPDATE verification_counts SET minute = $1 WHERE licence = $2 AND minute = $3",
        )
        .bind(moved)
        .bind(licence_id)
        .bind(minute)
        .execute(&pool)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn a_normal_day_of_work_raises_no_alert() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[]));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let other_clerk = s.token(Some(DISABILITY_FEDERATION), &[Role::Clerk]).await;
    let mut answers = Vec::new();
    for n in 0..8 {
        answers.push(issue_answer(&s, &clerk, &format!("DAY-{n}")).await);
    }
    let ids: Vec<String> = answers.iter().map(licence_id).collect();
    let record = sample(&s.t.app, DISABILITY, "DIS-1");
    let issued = s
        .client
        .post(s.url("/api/v1/licences"))
        .bearer_auth(&other_clerk)
        .json(&json!({"type_code": DISABILITY, "record": record}))
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), StatusCode::CREATED);
    for (n, id) in ids.iter().take(3).enumerate() {
        assert_eq!(
            amend(&s, &officer, id, &format!("更名商店{n}")).await,
            StatusCode::CREATED
        );
    }
    let renew = format!("/api/v1/licences/{}/renew", ids[3]);
    assert_eq!(
        post(&s, &officer, &renew, json!({})).await,
        StatusCode::CREATED
    );
    let suspend = format!("/api/v1/licences/{}/suspend", ids[4]);
    assert_eq!(
        post(&s, &officer, &suspend, json!({"reason": "整改"})).await,
        StatusCode::OK
    );
    let reinstate = format!("/api/v1/licences/{}/reinstate", ids[4]);
    assert_eq!(
        post(&s, &officer, &reinstate, json!({})).await,
        StatusCode::OK
    );
    // A licence issued yesterday is revoked today, in working hours.
    issued_yesterday(&s.t, &ids[5]).await;
    assert_eq!(revoke(&s, &officer, &ids[5]).await, StatusCode::OK);
    // A clerk's mistake: one refused attempt.
    assert_eq!(revoke(&s, &clerk, &ids[6]).await, StatusCode::FORBIDDEN);
    // Licences verified by their customers: many times, but no more than the 100 within ten
    // minutes the shipped rule allows.
    scanned(&s, &answers[0], 60).await;
    scanned(&s, &answers[1], 20).await;
    s.t.app.flush_verification_counts().await.unwrap();

    assert_eq!(pass(&watcher).await, [], "a normal day raises nothing");
    assert!(alert_records(&s.t).await.is_empty());
    // The watcher moved past the day's records (its own row in push_state).
    let head =
        s.t.app
            .audit_records(&Actor::local_operator(), &AuditFilter::default(), 0, 1000)
            .await
            .unwrap()
            .last()
            .unwrap()
            .seq;
    assert_eq!(
        watcher.pass().await.unwrap(),
        Pass::Watched {
            records: 0,
            up_to: head,
            alerts: Vec::new()
        }
    );
}

#[tokio::test]
async fn a_revocation_outside_working_hours_alerts_once_per_person_and_hour() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[NO_WORKING_DAY]));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let night_officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let ids = [
        issue(&s, &clerk, "N-1").await,
        issue(&s, &clerk, "N-2").await,
        issue(&s, &clerk, "N-3").await,
    ];
    assert_eq!(revoke(&s, &officer, &ids[0]).await, StatusCode::OK);
    assert_eq!(revoke(&s, &officer, &ids[1]).await, StatusCode::OK);
    pass(&watcher).await;
    assert_eq!(revoke(&s, &night_officer, &ids[2]).await, StatusCode::OK);
    pass(&watcher).await;

    let revocations = records_of(&s.t, "licence.revoke").await;
    let alerts = records_of(&s.t, "alert.revocation_outside_hours").await;
    assert_eq!(alerts.len(), 2, "one per person: {alerts:#?}");
    let first = &alerts[0];
    assert_eq!(
        (
            first.actor.as_str(),
            first.source.as_str(),
            first.outcome.as_str()
        ),
        ("alerts", "internal", "ok")
    );
    assert_eq!(first.target, revocations[0].actor, "the person who revoked");
    assert_eq!(first.department.as_deref(), Some(MARKET_BUREAU));
    let figures = detail(first);
    assert_eq!(figures.licence.as_deref(), Some(ids[0].as_str()));
    assert_eq!(figures.seqs, [revocations[0].seq]);
    assert_eq!(figures.at, revocations[0].at);
    assert_eq!(alerts[1].target, revocations[2].actor);
    // Alerts are records of the chain like any other.
    let chain =
        s.t.app
            .verify_audit_chain(&Actor::local_operator())
            .await
            .unwrap();
    assert_eq!(chain.first_break, None);
}

#[tokio::test]
async fn more_revocations_or_amendments_by_one_person_than_allowed_alert_once_per_burst() {
    let s = TestServer::start().await;
    let rules = shipped_rules_with(&[("more_than = 20\n", "more_than = 2\n")]);
    let watcher = Watcher::new(s.t.app.clone(), rules);
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let busy = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let steady = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(issue(&s, &clerk, &format!("B-{n}")).await);
    }
    // Two changes each: at the limit, not over it.
    assert_eq!(amend(&s, &busy, &ids[0], "甲店").await, StatusCode::CREATED);
    assert_eq!(
        amend(&s, &steady, &ids[1], "乙店").await,
        StatusCode::CREATED
    );
    assert_eq!(amend(&s, &busy, &ids[2], "丙店").await, StatusCode::CREATED);
    assert_eq!(
        amend(&s, &steady, &ids[3], "丁店").await,
        StatusCode::CREATED
    );
    assert!(!rules_of(&pass(&watcher).await).contains(&"changes_by_one_actor"));
    // A third: over it.
    assert_eq!(revoke(&s, &busy, &ids[4]).await, StatusCode::OK);
    assert!(rules_of(&pass(&watcher).await).contains(&"changes_by_one_actor"));
    // More of the same burst raise no second alert.
    assert_eq!(amend(&s, &busy, &ids[5], "戊店").await, StatusCode::CREATED);
    assert_eq!(revoke(&s, &busy, &ids[6]).await, StatusCode::OK);
    assert!(!rules_of(&pass(&watcher).await).contains(&"changes_by_one_actor"));

    let alerts = records_of(&s.t, "alert.changes_by_one_actor").await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let changes: Vec<Record> =
        s.t.app
            .audit_records(&Actor::local_operator(), &AuditFilter::default(), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.actor == alerts[0].target)
            .collect();
    assert_eq!(changes.len(), 5, "the busy officer's changes");
    let figures = detail(&alerts[0]);
    assert_eq!(figures.count, Some(3));
    assert_eq!(figures.more_than, Some(2));
    assert_eq!(
        figures.seqs,
        changes.iter().take(3).map(|r| r.seq).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn repeated_refused_attempts_from_one_token_or_one_address_alert() {
    let s = TestServer::start().await;
    let rules = shipped_rules_with(&[
        ("more_than = 5\n", "more_than = 2\n"),
        ("more_than = 10\n", "more_than = 4\n"),
    ]);
    let watcher = Watcher::new(s.t.app.clone(), rules);
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let id = issue(&s, &clerk, "R-1").await;
    // Another department's officer tries to revoke the bureau's licence, three times.
    let intruder = s.token(Some(DISABILITY_FEDERATION), &[Role::Officer]).await;
    for _ in 0..3 {
        assert_eq!(revoke(&s, &intruder, &id).await, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        rules_of(&pass(&watcher).await),
        ["refused_attempts_by_token"]
    );
    // Unknown tokens from the same address: five refusals from 127.0.0.1 in all.
    for _ in 0..2 {
        assert_eq!(
            revoke(&s, "elt_guessed", &id).await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        rules_of(&pass(&watcher).await),
        ["refused_attempts_by_address"]
    );
    // More of the same episode raise nothing.
    assert_eq!(revoke(&s, &intruder, &id).await, StatusCode::FORBIDDEN);
    assert_eq!(
        revoke(&s, "elt_guessed", &id).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(pass(&watcher).await, []);

    let refusals = records_of(&s.t, "licence.revoke").await;
    let by_token = records_of(&s.t, "alert.refused_attempts_by_token").await;
    assert_eq!(by_token.len(), 1);
    assert_eq!(by_token[0].target, refusals[0].actor);
    assert_eq!(
        by_token[0].department.as_deref(),
        Some(DISABILITY_FEDERATION)
    );
    assert_eq!(detail(&by_token[0]).count, Some(3));
    let by_address = records_of(&s.t, "alert.refused_attempts_by_address").await;
    assert_eq!(by_address.len(), 1);
    assert_eq!(by_address[0].target, "127.0.0.1");
    assert_eq!(
        by_address[0].department, None,
        "refusals of two departments and none"
    );
    assert_eq!(detail(&by_address[0]).count, Some(5));
}

#[tokio::test]
async fn refused_pulls_of_the_supervision_stream_count_as_refused_attempts() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[]));
    // A department's supervisor token (a stolen one, say) pulls the whole trail, which only a
    // city-wide supervisor or admin may.
    let department_supervisor = s.token(Some(MARKET_BUREAU), &[Role::Supervisor]).await;
    let pull = || async {
        s.client
            .get(s.url("/api/v1/supervision/audit?after=0"))
            .bearer_auth(&department_supervisor)
            .send()
            .await
            .unwrap()
            .status()
    };
    // Five refusals: at the shipped limit, not over it.
    for _ in 0..5 {
        assert_eq!(pull().await, StatusCode::FORBIDDEN);
    }
    assert_eq!(pass(&watcher).await, []);
    assert_eq!(pull().await, StatusCode::FORBIDDEN);
    assert_eq!(
        rules_of(&pass(&watcher).await),
        ["refused_attempts_by_token"]
    );

    let refusals = records_of(&s.t, "supervision.read").await;
    assert_eq!(refusals.len(), 6, "{refusals:#?}");
    assert!(refusals.iter().all(|r| r.outcome.starts_with("refused")));
    let alerts = records_of(&s.t, "alert.refused_attempts_by_token").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].target, refusals[0].actor);
    assert_eq!(alerts[0].department.as_deref(), Some(MARKET_BUREAU));
    let figures = detail(&alerts[0]);
    assert_eq!(figures.count, Some(6));
    assert_eq!(
        figures.seqs,
        refusals.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_licence_revoked_minutes_after_its_issue_alerts_and_one_issued_yesterday_does_not() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[]));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let hasty = issue(&s, &clerk, "S-1").await;
    let old = issue(&s, &clerk, "S-2").await;
    issued_yesterday(&s.t, &old).await;
    assert_eq!(revoke(&s, &officer, &hasty).await, StatusCode::OK);
    assert_eq!(revoke(&s, &officer, &old).await, StatusCode::OK);
    // A second revocation fails (a revoked licence stays revoked): no alert of its own.
    assert_eq!(revoke(&s, &officer, &hasty).await, StatusCode::CONFLICT);
    assert_eq!(
        rules_of(&pass(&watcher).await),
        ["revoked_soon_after_issue"]
    );

    let alerts = records_of(&s.t, "alert.revoked_soon_after_issue").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].target, hasty);
    assert_eq!(alerts[0].department.as_deref(), Some(MARKET_BUREAU));
    let figures = detail(&alerts[0]);
    assert!(figures.minutes_after_issue.unwrap() < 2, "{figures:?}");
    assert_eq!(figures.within_minutes, Some(30));
    let revocation = &records_of(&s.t, "licence.revoke").await[0];
    assert_eq!(figures.actor.as_deref(), Some(revocation.actor.as_str()));
    assert_eq!(figures.seqs, [revocation.seq]);
}

#[tokio::test]
async fn a_burst_of_verifications_of_one_licence_alerts_once() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[]));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let busy = issue_answer(&s, &clerk, "V-1").await;
    let quiet = issue_answer(&s, &clerk, "V-2").await;
    // Verifications older than the window do not count.
    scanned(&s, &quiet, 101).await;
    s.t.app.flush_verification_counts().await.unwrap();
    scanned_minutes_ago(&s.t, &licence_id(&quiet), 12).await;
    // 100 within the window: at the shipped limit, not over it.
    scanned(&s, &quiet, 100).await;
    scanned(&s, &busy, 100).await;
    s.t.app.flush_verification_counts().await.unwrap();
    assert_eq!(pass(&watcher).await, []);
    // One more: over it, once stored. The watcher reads the store, where every instance's
    // counts meet, so a count still in memory is not seen yet.
    scanned(&s, &busy, 1).await;
    assert_eq!(pass(&watcher).await, []);
    s.t.app.flush_verification_counts().await.unwrap();
    assert_eq!(rules_of(&pass(&watcher).await), ["verification_burst"]);
    // The burst goes on: the same episode.
    scanned(&s, &busy, 20).await;
    s.t.app.flush_verification_counts().await.unwrap();
    assert_eq!(pass(&watcher).await, []);

    let alerts = records_of(&s.t, "alert.verification_burst").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].target, licence_id(&busy));
    assert_eq!(alerts[0].department.as_deref(), Some(MARKET_BUREAU));
    let figures = detail(&alerts[0]);
    assert_eq!((figures.count, figures.more_than), (Some(101), Some(100)));
    assert_eq!(figures.window_minutes, Some(10));
}

#[tokio::test]
async fn a_restart_does_not_alert_again_and_two_instances_do_not_both_watch() {
    let s = TestServer::start().await;
    let rules = || shipped_rules_with(&[NO_WORKING_DAY]);
    let first = Watcher::new(s.t.app.clone(), rules());
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let ids = [
        issue(&s, &clerk, "T-1").await,
        issue(&s, &clerk, "T-2").await,
    ];
    assert_eq!(revoke(&s, &officer, &ids[0]).await, StatusCode::OK);

    // A second instance, on the same database, while the first holds the lease.
    let second = Watcher::new(Arc::new(s.t.reopen().await), rules());
    assert_eq!(
        rules_of(&pass(&first).await),
        ["revocation_outside_hours", "revoked_soon_after_issue"]
    );
    assert_eq!(second.pass().await.unwrap(), Pass::NotLeader);
    first.release().await;

    // A restart: a new process reads its cursor and the alerts raised back from the store.
    let restarted = Watcher::new(Arc::new(s.t.reopen().await), rules());
    assert_eq!(pass(&restarted).await, []);
    // The same officer again within the hour: the night alert's episode goes on; the new
    // licence revoked soon after its issue is a new alert.
    assert_eq!(revoke(&s, &officer, &ids[1]).await, StatusCode::OK);
    assert_eq!(
        rules_of(&pass(&restarted).await),
        ["revoked_soon_after_issue"]
    );
    assert_eq!(
        records_of(&s.t, "alert.revocation_outside_hours")
            .await
            .len(),
        1
    );
    assert_eq!(
        records_of(&s.t, "alert.revoked_soon_after_issue")
            .await
            .len(),
        2
    );
}

/// The `elicence` binary on `database`, with `ELICENCE_ALERT_RULES` = `rules`, if any.
fn elicence_command(
    t: &tempfile::TempDir,
    database: &TestDatabase,
    rules: Option<&str>,
) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_elicence"));
    command
        .env("ELICENCE_DATA_DIR", t.path().join("data"))
        .env("ELICENCE_KEYS_DIR", t.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &database.url)
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("ELICENCE_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    match rules {
        Some(path) => command.env("ELICENCE_ALERT_RULES", path),
        None => command.env_remove("ELICENCE_ALERT_RULES"),
    };
    command
}

fn elicence(
    t: &tempfile::TempDir,
    database: &TestDatabase,
    rules: Option<&str>,
    args: &[&str],
) -> std::process::Output {
    elicence_command(t, database, rules)
        .args(args)
        .output()
        .unwrap()
}

/// Ends the child process when dropped, whatever the test's end.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn serve_watches_the_trail_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        DEFAULT_RULES.replace(NO_WORKING_DAY.0, NO_WORKING_DAY.1),
    )
    .unwrap();
    let rules = rules.display().to_string();
    let run = |args: &[&str]| {
        let out = elicence(&dir, &database, Some(&rules), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let created: Value = serde_json::from_str(&run(&[
        "token",
        "create",
        "--department",
        MARKET_BUREAU,
        "--roles",
        "supervisor",
        "--json",
    ]))
    .unwrap();
    let supervisor = created["token"].as_str().unwrap().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = Running(
        elicence_command(&dir, &database, Some(&rules))
            .env("ELICENCE_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );

    // A licence issued and revoked at the command line, while serve runs.
    let example = run(&["directory", "show", FOOD, "--example"]);
    let file = dir.path().join("food.json");
    std::fs::write(&file, example).unwrap();
    let issued = run(&["issue", FOOD, "--file", &file.display().to_string()]);
    let id = issued
        .lines()
        .next()
        .unwrap()
        .rsplitn(3, '.')
        .nth(2)
        .unwrap()
        .to_string();
    run(&["licence", "revoke", &id, "--reason", "吊销"]);

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/audit?action=alert.revocation_outside_hours");
    let started = std::time::Instant::now();
    let alerts = loop {
        let answer = client.get(&url).bearer_auth(&supervisor).send().await;
        if let Ok(answer) = answer {
            let page: Value = answer.json().await.unwrap();
            if page["records"].as_array().is_some_and(|r| !r.is_empty()) {
                break page["records"].clone();
            }
        }
        assert!(started.elapsed().as_secs() < 30, "no alert from serve");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(alerts[0]["actor"], "alerts");
    assert_eq!(alerts[0]["department"], MARKET_BUREAU);
    assert!(
        alerts[0]["detail"].as_str().unwrap().contains(&id),
        "{alerts}"
    );
    // serve holds the watcher's lease: a pass from the command line leaves the work to it.
    let checked: Value = serde_json::from_str(&run(&["alerts", "check", "--json"])).unwrap();
    assert_eq!(checked["watched"], false, "{checked}");
}

#[tokio::test]
async fn a_broken_rules_file_is_refused_at_start_naming_its_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let shipped = elicence(&dir, &database, None, &["alerts", "rules"]);
    assert!(shipped.status.success());
    let listed = String::from_utf8(shipped.stdout).unwrap();
    assert!(listed.contains("shipped defaults"), "{listed}");
    assert_eq!(listed.matches("(alert.").count(), 6, "{listed}");

    let file = dir.path().join("alerts.toml");
    std::fs::write(
        &file,
        "[[rules]]\nname = \"bursts\"\nkind = \"verification_burst\"\nmore_than = -1\nwindow_minutes = 10\n",
    )
    .unwrap();
    let path = file.display().to_string();
    for args in [&["alerts", "rules"][..], &["alerts", "check"], &["serve"]] {
        let out = elicence(&dir, &database, Some(&path), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(
            said.contains(&path) && said.contains("line 4") && said.contains("more_than"),
            "{args:?}: {said}"
        );
    }

    // A good file is used, and one pass runs from the command line.
    std::fs::write(
        &file,
        "[[rules]]\nname = \"hasty\"\nkind = \"revoked_soon_after_issue\"\nwithin_minutes = 5\n",
    )
    .unwrap();
    let out = elicence(&dir, &database, Some(&path), &["alerts", "rules", "--json"]);
    let rules: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rules["rules"][0]["kind"], "revoked_soon_after_issue");
    assert_eq!(rules["working_hours"]["start"], "08:30");
    let out = elicence(&dir, &database, Some(&path), &["alerts", "check", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked["watched"], true, "{checked}");
}

#[tokio::test]
async fn supervisors_see_alerts_in_the_console_within_their_department() {
    let s = TestServer::start().await;
    let watcher = Watcher::new(s.t.app.clone(), shipped_rules_with(&[NO_WORKING_DAY]));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let id = issue(&s, &clerk, "C-1").await;
    assert_eq!(revoke(&s, &officer, &id).await, StatusCode::OK);
    assert_eq!(pass(&watcher).await.len(), 2);

    let signed_in = |login: &'static str, roles: &'static [Role], department: &'static str| {
        let s = &s;
        async move {
            let one_time = account_in(s, login, roles, department).await;
            let mut person = Person::new(s);
            first_sign_in(&mut person, login, &one_time).await;
            person
        }
    };
    let mut supervisor = signed_in("qian.jc", &[Role::Supervisor], MARKET_BUREAU).await;
    let (status, page, _) = supervisor.get("/console/audit/alerts").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for words in [
        "非工作时间注销证照",
        "签发后不久即注销",
        "alert.revocation_outside_hours",
        &id,
        "不在工作时间内",
        "市场监督管理局",
    ] {
        assert!(page.contains(words), "{words} missing: {page}");
    }
    let (_, audit_page, _) = supervisor.get("/console/audit").await;
    assert!(
        audit_page.contains("href=\"/console/audit/alerts\""),
        "{audit_page}"
    );
    let (_, home, _) = supervisor.get("/console/").await;
    assert!(home.contains("最近 24 小时有 2 条警报"), "{home}");

    // Another department's supervisor sees none of them; a clerk may not look.
    let mut other = signed_in("zhao.jc", &[Role::Supervisor], DISABILITY_FEDERATION).await;
    let (status, page, _) = other.get("/console/audit/alerts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("没有警报") && !page.contains(&id), "{page}");
    let mut clerk = signed_in("sun.clerk", &[Role::Clerk], MARKET_BUREAU).await;
    let (status, _, _) = clerk.get("/console/audit/alerts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
