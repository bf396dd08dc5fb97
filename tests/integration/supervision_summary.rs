//! The supervision figures (SPEC §15, issue #16 item 3): a day's work of two departments —
//! a conversion with a rejected row, issues, an amendment, a renewal, a suspension and
//! reinstatement, a revocation, refused attempts, public verifications — and the summary that
//! counts it, exactly, per department; a department's supervisor sees its own only; bad
//! parameters are refused naming the field; the day's figures enter the audit trail once.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::common::*;
use elicence::app::{Actor, App, Role};
use elicence::batch::{self, sample, Quiet};
use elicence::identifiers::Uscc;
use elicence::time_util;

/// A sample batch of `rows` food licences, the second row naming a scan that is not in it.
fn batch_with_a_missing_scan(app: &App, dir: &Path, rows: u64) -> PathBuf {
    let out = dir.join("batch");
    let font = std::fs::read(templates_dir().join(elicence::render::FONT_FILE)).unwrap();
    let options = sample::Options {
        rows,
        bad_rate: 0.0,
        seed: 16,
        gb18030: false,
        max_scan_bytes: app.settings.max_scan_bytes,
        types: vec![FOOD.to_string()],
        scans: Default::default(),
    };
    sample::write(&app.directory, &font, &out, &options).unwrap();
    let manifest = out.join("manifest.csv");
    let mut reader = csv::Reader::from_path(&manifest).unwrap();
    let header = reader.headers().unwrap().clone();
    let scan = header.iter().position(|c| c == "scan").unwrap();
    let mut records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    records[1][scan] = "scans/not-there.png".into();
    let mut writer = csv::Writer::from_path(&manifest).unwrap();
    writer.write_record(&header).unwrap();
    for record in &records {
        writer.write_record(record).unwrap();
    }
    writer.flush().unwrap();
    out
}

/// Converts `dir` as a clerk of `department` would; returns the identifiers it issued.
async fn convert_as_clerk_of(app: &Arc<App>, department: &str, dir: &Path) -> Vec<String> {
    let clerk = Actor {
        name: "token:0:market clerk".into(),
        source: "127.0.0.1".into(),
        department: Some(Uscc::parse(department).unwrap()),
        roles: vec![Role::Clerk],
    };
    let run = batch::create(app, &clerk, false).await.unwrap();
    batch::convert(app, &clerk, &run, dir, &Quiet)
        .await
        .unwrap();
    app.store
        .batch_rows(run.batch_id(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r| r.licence_id)
        .collect()
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> reqwest::Response {
    s.client
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn verify(s: &TestServer, input: &str) {
    let answer = s
        .client
        .post(s.url("/api/v1/verify"))
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

async fn summary(s: &TestServer, token: &str, query: &str) -> reqwest::Response {
    s.client
        .get(s.url(&format!("/api/v1/supervision/summary{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The one row of `days` (or `totals`) of `department` (None: the whole service's).
fn row_of<'a>(rows: &'a Value, department: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"].as_str() == department)
        .collect();
    assert_eq!(found.len(), 1, "{department:?} in {rows}");
    found[0]
}

/// The counts of a row, in a fixed order, for comparing at a glance.
fn counts(row: &Value) -> [i64; 10] {
    [
        "converted",
        "issued",
        "amended",
        "renewed",
        "suspended",
        "reinstated",
        "revoked",
        "rejected_rows",
        "refused_attempts",
        "verifications",
    ]
    .map(|k| row[k].as_i64().unwrap_or_else(|| panic!("{k} in {row}")))
}

#[tokio::test]
async fn a_days_work_is_counted_exactly_per_department_and_each_sees_its_own() {
    let s = TestServer::start().await;
    let app = s.t.app.clone();
    let today = time_util::format_date(time_util::today_cst());

    // The market bureau converts three stock licences; one row names a missing scan.
    let dir = batch_with_a_missing_scan(&app, s.t.dir.path(), 3);
    let converted = convert_as_clerk_of(&app, MARKET_BUREAU, &dir).await;
    assert_eq!(converted.len(), 2);

    // It issues one licence, amends and renews it; suspends, reinstates and revokes the
    // converted ones.
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let issued: Value = s
        .issue(&clerk, FOOD, "SJ-SUM-1")
        .await
        .json()
        .await
        .unwrap();
    let id = issued["licence_id"].as_str().unwrap().to_string();
    let amend = json!({"holder_name": "示范县监察餐饮有限公司", "reason": "更名"});
    let amended = post(&s, &officer, &format!("/api/v1/licences/{id}/amend"), amend).await;
    assert_eq!(amended.status(), 201);
    let renewed = post(
        &s,
        &officer,
        &format!("/api/v1/licences/{id}/renew"),
        json!({}),
    )
    .await;
    assert_eq!(renewed.status(), 201);
    for (licence, act) in [
        (&converted[0], "suspend"),
        (&converted[0], "reinstate"),
        (&converted[1], "revoke"),
    ] {
        let path = format!("/api/v1/licences/{licence}/{act}");
        let done = post(&s, &officer, &path, json!({"reason": "监察测试"})).await;
        assert_eq!(done.status(), 200, "{act}");
    }

    // The disabled persons' federation issues one.
    let federation_clerk = s.token(Some(DISABILITY_FEDERATION), &[Role::Clerk]).await;
    let federation_issue: Value = s
        .issue(&federation_clerk, DISABILITY, "CJ-SUM-1")
        .await
        .json()
        .await
        .unwrap();

    // Refused: the federation's clerk tries to revoke a bureau licence (twice), and a request
    // comes without a token (the whole service's).
    for _ in 0..2 {
        let path = format!("/api/v1/licences/{id}/revoke");
        let refused = post(&s, &federation_clerk, &path, json!({"reason": "x"})).await;
        assert_eq!(refused.status(), 403);
    }
    let anonymous = s.client.get(s.url("/api/v1/audit")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // Public verifications: the bureau's licence three times by the API and once by its page,
    // the federation's once; a malformed code names no licence and is not counted.
    let qr = issued["qr_text"].as_str().unwrap();
    for _ in 0..3 {
        verify(&s, qr).await;
    }
    let page = s
        .client
        .get(s.url(&format!("/V/{}", qr_b32(&issued))))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    verify(&s, federation_issue["qr_text"].as_str().unwrap()).await;
    verify(&s, "not a code").await;
    app.flush_verification_counts().await.unwrap();

    let county = s.token(None, &[Role::Supervisor]).await;
    let answer = summary(&s, &county, &format!("?from={today}&to={today}")).await;
    assert_eq!(answer.status(), 200);
    let figures: Value = answer.json().await.unwrap();
    assert_eq!(
        (figures["from"].as_str(), figures["to"].as_str()),
        (Some(today.as_str()), Some(today.as_str()))
    );
    let days = &figures["days"];
    assert_eq!(days.as_array().unwrap().len(), 3, "{days}");
    let market = row_of(days, Some(MARKET_BUREAU));
    assert_eq!(market["date"], today.as_str());
    assert_eq!(market["department_name"], "示范县市场监督管理局");
    //                             conv iss amd ren sus rei rev rej ref ver
    assert_eq!(counts(market), [2, 1, 1, 1, 1, 1, 1, 1, 0, 4]);
    assert_eq!(
        market["rejected_by_reason"],
        json!({"scan_not_in_batch": 1})
    );
    let times = &market["conversion_seconds"];
    assert_eq!(times["licences"], 2, "{market}");
    let (median, p95) = (
        times["median"].as_i64().unwrap(),
        times["p95"].as_i64().unwrap(),
    );
    assert!(0 <= median && median <= p95 && p95 < 600, "{times}");
    let federation = row_of(days, Some(DISABILITY_FEDERATION));
    assert_eq!(counts(federation), [0, 1, 0, 0, 0, 0, 0, 0, 2, 1]);
    assert_eq!(federation["conversion_seconds"], Value::Null);
    let service = row_of(days, None);
    assert_eq!(counts(service), [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    // One day: the totals are the day.
    for department in [Some(MARKET_BUREAU), Some(DISABILITY_FEDERATION), None] {
        let mut day = row_of(days, department).clone();
        day.as_object_mut().unwrap().remove("date");
        assert_eq!(&day, row_of(&figures["totals"], department));
    }

    // The bureau's supervisor sees the bureau's figures only, and may not ask for another's.
    let bureau = s.token(Some(MARKET_BUREAU), &[Role::Supervisor]).await;
    let own: Value = summary(&s, &bureau, "").await.json().await.unwrap();
    assert_eq!(own["department"], MARKET_BUREAU);
    let own_days = own["days"].as_array().unwrap();
    assert_eq!(own_days.len(), 1, "{own}");
    assert_eq!(counts(&own_days[0]), counts(market));
    let other = summary(&s, &bureau, &format!("?department={DISABILITY_FEDERATION}")).await;
    assert_eq!(other.status(), 403);
    // A clerk reads no figures at all.
    assert_eq!(summary(&s, &clerk, "").await.status(), 403);
    // Both refusals are counted: the bureau's supervisor's under the bureau.
    let after: Value = summary(&s, &county, &format!("?department={MARKET_BUREAU}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["days"][0]["refused_attempts"], 2, "{after}");
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let county = s.token(None, &[Role::Supervisor]).await;
    for (query, field, why) in [
        ("?from=2026-02-30", "from", "not a date"),
        ("?from=2026-1-1", "from", "not a date"),
        ("?to=tomorrow", "to", "not a date"),
        ("?from=2026-03-02&to=2026-03-01", "to", "before from"),
        ("?from=2025-01-01&to=2026-01-02", "to", "367 days"),
        ("?department=1133012", "department", "18"),
        // A well-formed code, but no department of the directory.
        (
            "?department=11100000000013338W",
            "department",
            "issues no licence type",
        ),
    ] {
        let answer = summary(&s, &county, query).await;
        assert_eq!(answer.status(), 400, "{query}");
        let body: Value = answer.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("{field}:")) && message.contains(why),
            "{query}: {message}"
        );
    }
    let unknown = summary(&s, &county, "?since=2026-01-01").await;
    assert_eq!(unknown.status(), 400);
    // A year, the longest range, is answered.
    let year = summary(&s, &county, "?from=2025-01-01&to=2026-01-01").await;
    assert_eq!(year.status(), 200);
    assert_eq!(summary(&s, &county, "?from=&to=").await.status(), 200);
}

#[tokio::test]
async fn the_days_figures_enter_the_audit_trail_once_whichever_instance_records_them() {
    let t = TestApp::new().await;
    let clerk = Actor {
        name: "token:0:clerk".into(),
        source: "127.0.0.1".into(),
        department: Some(Uscc::parse(MARKET_BUREAU).unwrap()),
        roles: vec![Role::Clerk],
    };
    t.app
        .issue(&clerk, FOOD, &sample(&t.app, FOOD, "SJ-DAY-1"), None)
        .await
        .unwrap();
    let day = time_util::today_cst();
    let second = Arc::new(t.reopen().await);
    let (first, other) = tokio::join!(
        t.app.record_daily_figures(day),
        second.record_daily_figures(day)
    );
    assert_eq!(
        [first.unwrap(), other.unwrap()]
            .iter()
            .filter(|a| **a)
            .count(),
        1,
        "exactly one instance records the day"
    );
    assert!(!t.app.record_daily_figures(day).await.unwrap());

    let date = time_util::format_date(day);
    let operator = Actor::local_operator();
    let filter = elicence::store::AuditFilter {
        action: Some(elicence::app::DAILY_FIGURES_ACTION.into()),
        ..Default::default()
    };
    let records = t
        .app
        .audit_records(&operator, &filter, 0, 100)
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        (record.target.as_str(), record.department.as_deref()),
        (date.as_str(), None)
    );
    assert_eq!(
        (record.actor.as_str(), record.outcome.as_str()),
        ("elicence", "ok")
    );
    let detail: Value = serde_json::from_str(&record.detail).unwrap();
    assert_eq!(detail["date"], date.as_str());
    let market = row_of(&detail["departments"], Some(MARKET_BUREAU));
    assert_eq!(market["issued"], 1);
    assert!(market.get("date").is_none(), "{market}");
    assert!(!record.detail.contains('\n'), "compact JSON");
    assert!(t
        .app
        .store
        .verify_audit()
        .await
        .unwrap()
        .first_break
        .is_none());
}

#[tokio::test]
async fn the_supervision_page_shows_the_figures_as_charts_and_a_table() {
    use crate::console_signin::{account, first_sign_in, Person};
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let issued: Value = s
        .issue(&clerk, FOOD, "SJ-PAGE-1")
        .await
        .json()
        .await
        .unwrap();
    for _ in 0..3 {
        verify(&s, issued["qr_text"].as_str().unwrap()).await;
    }
    s.t.app.flush_verification_counts().await.unwrap();
    let dir = batch_with_a_missing_scan(&s.t.app, s.t.dir.path(), 2);
    convert_as_clerk_of(&s.t.app, MARKET_BUREAU, &dir).await;

    let one_time = account(&s, "qian.jc", &[Role::Supervisor]).await;
    let mut supervisor = Person::new(&s);
    first_sign_in(&mut supervisor, "qian.jc", &one_time).await;
    let (status, page, _) = supervisor.get("/console/audit").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{page}");
    assert!(
        page.contains("监察数据") && page.contains("各部门合计"),
        "{page}"
    );
    // Three charts, drawn on the server: the kinds of change, the rejections, the verifications.
    let charts: Vec<&str> = page.split("<div class=\"svg\"><svg ").skip(1).collect();
    assert_eq!(charts.len(), 3, "{page}");
    assert!(
        charts.iter().all(|c| c.contains("<rect")),
        "every chart has bars: {page}"
    );
    assert!(
        page.contains("批次中无此扫描件"),
        "the rejection reason in Chinese: {page}"
    );
    assert!(!page.contains("<script>"), "no inline script");
    // The table: the bureau's row — converted 1, issued 1, one rejected row, 3 verifications.
    let row = page
        .split("<th scope=\"row\">示范县市场监督管理局</th>")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_else(|| panic!("the bureau's row: {page}"));
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .map(|c| c.split("</td>").next().unwrap())
        .collect();
    assert_eq!(
        &cells[..10],
        ["1", "1", "0", "0", "0", "0", "0", "1", "0", "3"]
    );
    assert!(
        cells[10].contains(" / "),
        "median / p95 of the conversion: {row}"
    );
    // A department's supervisor has no department to choose; a bad date is said in Chinese,
    // and the trail is still shown.
    assert!(!page.contains("name=\"department\""), "{page}");
    let (status, page, _) = supervisor.get("/console/audit?from=2026-02-30").await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(page.contains("起始日期“2026-02-30”不是日期"), "{page}");
    assert!(page.contains("审计记录"), "{page}");
}
