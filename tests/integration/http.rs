//! The HTTP API as clients use it: tokens and roles, the error format, limits, the verification
//! page, trust and status lists, the audit trail, health and metrics.

use crate::common::*;
use elicence::app::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};

const CONSTRUCTION_BUREAU: &str = "11330122MB0000002Q";

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> reqwest::Response {
    s.client
        .post(s.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_role_is_refused_what_it_may_not_do() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let other_clerk = s.token(Some(CONSTRUCTION_BUREAU), &[Role::Clerk]).await;
    let library = s.token(None, &[Role::Library]).await;

    let response = s.issue(&clerk, FOOD, "JY-H-1").await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let issued: Value = response.json().await.unwrap();
    let id = issued["licence_id"].as_str().unwrap().to_string();

    // A department acts only on its own licence types.
    let refused = s.issue(&other_clerk, FOOD, "JY-H-2").await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    assert_eq!(
        s.issue(&other_clerk, PERMIT, "P-H-1").await.status(),
        StatusCode::CREATED
    );

    // A clerk issues but does not revoke; an officer revokes but does not issue.
    let revoke_path = format!("/api/v1/licences/{id}/revoke");
    assert_eq!(
        post(&s, &clerk, &revoke_path, json!({"reason": "x"}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.issue(&officer, FOOD, "JY-H-3").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        s.issue(&library, FOOD, "JY-H-4").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&s, &officer, &revoke_path, json!({"reason": "吊销"}))
            .await
            .status(),
        StatusCode::OK
    );

    // Reading: the department's own tokens and the library may; another department may not.
    let show = |token: String| {
        let url = s.url(&format!("/api/v1/licences/{id}"));
        let client = s.client.clone();
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(show(clerk.clone()).await, StatusCode::OK);
    assert_eq!(show(library.clone()).await, StatusCode::OK);
    assert_eq!(show(other_clerk.clone()).await, StatusCode::FORBIDDEN);

    // No token, or an unknown one: 401. The audit trail is for admins only.
    let anonymous = s
        .client
        .get(s.url(&format!("/api/v1/licences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        show("elt_not-a-token".into()).await,
        StatusCode::UNAUTHORIZED
    );
    let audit = s
        .client
        .get(s.url("/api/v1/audit"))
        .bearer_auth(&officer)
        .send()
        .await
        .unwrap();
    assert_eq!(audit.status(), StatusCode::FORBIDDEN);

    // A revoked token stops working.
    let admin = elicence::app::Actor::local_operator();
    let (token_id, token) =
        s.t.app
            .create_token(&admin, "temp", Some(MARKET_BUREAU), &[Role::Clerk])
            .await
            .unwrap();
    assert_eq!(show(token.clone()).await, StatusCode::OK);
    s.t.app.revoke_token(&admin, token_id).await.unwrap();
    assert_eq!(show(token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audit_trail_shows_who_did_what_from_where_including_refusals() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let admin = s.token(None, &[Role::Admin]).await;
    let issued: Value = s.issue(&clerk, FOOD, "JY-AU-1").await.json().await.unwrap();
    let id = issued["licence_id"].as_str().unwrap();
    post(
        &s,
        &officer,
        &format!("/api/v1/licences/{id}/revoke"),
        json!({"reason": "注销"}),
    )
    .await;
    post(
        &s,
        &clerk,
        &format!("/api/v1/licences/{id}/suspend"),
        json!({"reason": "x"}),
    )
    .await;
    s.client
        .post(s.url("/api/v1/licences"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    let audit = s.get_json("/api/v1/audit?limit=50", Some(&admin)).await;
    let records = audit["records"].as_array().unwrap();
    let find = |action: &str, outcome_prefix: &str| {
        records
            .iter()
            .find(|r| {
                r["action"] == action && r["outcome"].as_str().unwrap().starts_with(outcome_prefix)
            })
            .unwrap_or_else(|| panic!("no {action} {outcome_prefix} in {records:#?}"))
    };
    let issue_record = find("licence.issue", "ok");
    assert_eq!(issue_record["source"], "127.0.0.1");
    assert!(issue_record["actor"]
        .as_str()
        .unwrap()
        .starts_with("token:"));
    assert!(issue_record["target"].as_str().unwrap().starts_with(id));
    assert_eq!(find("licence.revoke", "ok")["detail"], "注销");
    find("licence.suspend", "refused: forbidden");
    find("http.post", "refused: unauthenticated");

    // Filters narrow the trail.
    let only = s
        .get_json("/api/v1/audit?action=licence.revoke", Some(&admin))
        .await;
    assert!(only["records"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["action"] == "licence.revoke"));
    let report = s.t.app.store.verify_audit().await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
}

#[tokio::test]
async fn a_wrong_bearer_token_is_neither_echoed_nor_recorded() {
    let s = TestServer::start().await;
    let admin = s.token(None, &[Role::Admin]).await;
    let wrong = "elt_hunter2-s3cr3t-token";
    let refused = post(&s, wrong, "/api/v1/licences", json!({})).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body = refused.text().await.unwrap();
    assert!(!body.contains("hunter2"), "{body}");
    let audit = s.get_json("/api/v1/audit?limit=50", Some(&admin)).await;
    let records = audit["records"].to_string();
    assert!(records.contains("unknown or revoked token"), "{records}");
    assert!(
        !records.contains("hunter2") && !records.contains(&admin),
        "{records}"
    );
}

#[tokio::test]
async fn malformed_requests_get_clear_4xx_errors_never_500() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let licences = s.url("/api/v1/licences");
    let c = &s.client;
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("not JSON", c.post(&licences).bearer_auth(&clerk).header("content-type", "application/json").body("{")),
        ("no content type", c.post(&licences).bearer_auth(&clerk).body("{}")),
        ("unknown member", c.post(&licences).bearer_auth(&clerk).json(&json!({"type_code": FOOD, "record": {}, "x": 1}))),
        ("record missing", c.post(&licences).bearer_auth(&clerk).json(&json!({"type_code": FOOD}))),
        ("bad type code", c.post(&licences).bearer_auth(&clerk).json(&json!({"type_code": "X", "record": {"holder": {"name": "a", "id": "b"}}}))),
        ("unknown type", c.post(&licences).bearer_auth(&clerk).json(&json!({"type_code": "11100000000013338W999", "record": {"holder": {"name": "a", "id": "b"}}}))),
        ("invalid record", c.post(&licences).bearer_auth(&clerk).json(&json!({"type_code": FOOD, "record": {"holder": {"name": "", "id": "b"}}}))),
        ("body too large", c.post(&licences).bearer_auth(&clerk).header("content-type", "application/json").body(vec![b' '; 2 * 1024 * 1024])),
        ("mistyped identifier", c.get(s.url("/api/v1/licences/1.2.156.3005.2.11100000000013338W032.11330122MB0000001M.1.001.Z")).bearer_auth(&clerk)),
        ("not an identifier", c.get(s.url("/api/v1/licences/hello")).bearer_auth(&clerk)),
        ("unknown licence", c.get(s.url("/api/v1/licences/1.2.156.3005.2.11100000000013338W032.11330122MB0000001M.99")).bearer_auth(&clerk)),
        ("bad version query", c.get(s.url("/api/v1/licences/1.2.156.3005.2.11100000000013338W032.11330122MB0000001M.1?version=x")).bearer_auth(&clerk)),
        ("revoke without reason", c.post(s.url("/api/v1/licences/1.2.156.3005.2.11100000000013338W032.11330122MB0000001M.99/revoke")).bearer_auth(&officer).json(&json!({}))),
        ("verify without input", c.post(s.url("/api/v1/verify")).json(&json!({}))),
        ("status list number", c.get(s.url(&format!("/api/v1/status-lists/{MARKET_BUREAU}/x")))),
        ("status list issuer", c.get(s.url("/api/v1/status-lists/91350100M000100Y43/0"))),
        ("status list bad uscc", c.get(s.url("/api/v1/status-lists/hello/0"))),
        ("status list past the indexes", c.get(s.url(&format!("/api/v1/status-lists/{MARKET_BUREAU}/140737488355327")))),
        ("unknown route", c.get(s.url("/api/v2/nothing"))),
        ("bad audit filter", c.get(s.url("/api/v1/audit?after=soon")).bearer_auth(&clerk)),
    ];
    for (what, request) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_client_error(), "{what}: {status} {body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{what}: {body}"
        );
    }
    // A damaged QR text is a verification result, not an error.
    let v: Value = c
        .post(s.url("/api/v1/verify"))
        .json(&json!({"input": "HTTPS://X/V/!!"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["result"], "malformed");
}

/// Non-ASCII text where the service expects ASCII identifiers used to panic on byte slicing and
/// drop the connection; every such request is now answered, and nothing panics.
#[tokio::test]
async fn non_ascii_where_ascii_is_expected_is_answered_never_a_panic() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let c = &s.client;
    let bad_code = "00000000000000000ä000";
    let bad_id = format!("1.2.156.3005.2.{bad_code}.11330122MB0000001M.1.001.A");
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "directory type",
            c.get(s.url(&format!("/api/v1/directory/{bad_code}"))),
        ),
        (
            "verify identifier",
            c.post(s.url("/api/v1/verify"))
                .json(&json!({ "input": bad_id })),
        ),
        (
            "verify text",
            c.post(s.url("/api/v1/verify"))
                .json(&json!({"input": "HTTPS://X/V/ÄÖ名"})),
        ),
        (
            "licence",
            c.get(s.url(&format!("/api/v1/licences/{bad_id}")))
                .bearer_auth(&clerk),
        ),
        (
            "issue",
            c.post(s.url("/api/v1/licences")).bearer_auth(&clerk).json(
                &json!({"type_code": bad_code, "record": {"holder": {"name": "a", "id": "b"}}}),
            ),
        ),
        (
            "status list",
            c.get(s.url("/api/v1/status-lists/11330122MB00000ä1M/0")),
        ),
        ("page", c.get(s.url("/V/ÄÖ名"))),
    ];
    for (what, request) in cases {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(!status.is_server_error(), "{what}: {status} {body}");
        if body.starts_with('{') {
            let body: Value = serde_json::from_str(&body).unwrap();
            let said = body["error"]["message"]
                .as_str()
                .or(body["message"].as_str());
            assert!(said.is_some_and(|m| !m.is_empty()), "{what}: {body}");
        }
    }
    let metrics = c
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("elicence_http_panics_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_page_and_the_api_answer_alike_and_show_only_public_data() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(CONSTRUCTION_BUREAU), &[Role::Clerk]).await;
    let issued: Value = s
        .issue(&clerk, PERMIT, "330122202600001")
        .await
        .json()
        .await
        .unwrap();
    let qr = issued["qr_text"].as_str().unwrap();
    let b32 = qr_b32(&issued);
    let page = s
        .client
        .get(s.url(&format!("/V/{b32}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("data-result=\"valid\"") && html.contains("有效"));
    assert!(html.contains("示范县第二人民医院门诊综合楼工程") && html.contains("长期"));
    assert!(!html.contains("备注"), "a private field leaked: {html}");
    assert!(!html.contains("<script"));

    let api: Value = s
        .client
        .post(s.url("/api/v1/verify"))
        .json(&json!({"input": qr}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["result"], "valid");
    assert_eq!(api["licence"]["number"], "330122202600001");
    assert!(api["licence"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["key"] != "remarks"));

    let forged_page = s
        .client
        .get(s.url("/V/2KCE3IQBE4CEQAICAMCAKBQH"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(forged_page.contains("无效") && forged_page.contains("无法核验"));
}

#[tokio::test]
async fn public_verification_is_rate_limited_per_client() {
    let s = start_behind_proxy(&[], 3).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = s
            .client
            .post(s.url("/api/v1/verify"))
            .json(&json!({"input": "AAAA"}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let api = s
        .client
        .post(s.url("/api/v1/verify"))
        .json(&json!({"input": "AAAA"}))
        .send()
        .await
        .unwrap();
    let wait: u64 = api.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let page = s.client.get(s.url("/V/AAAA")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = page.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("核验过于频繁") && html.contains(&format!("{wait} 秒")),
        "{html}"
    );
}

#[tokio::test]
async fn a_link_that_is_not_base32_gets_a_chinese_404_page_and_every_answer_is_hardened() {
    let s = TestServer::start().await;
    let missing = s.client.get(s.url("/V/hello-world!")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(missing.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    let html = missing.text().await.unwrap();
    assert!(
        html.contains("lang=\"zh-CN\"") && html.contains("无法识别"),
        "{html}"
    );

    let clerk = s.token(Some(CONSTRUCTION_BUREAU), &[Role::Clerk]).await;
    let issued: Value = s
        .issue(&clerk, PERMIT, "330122202600009")
        .await
        .json()
        .await
        .unwrap();
    let b32 = qr_b32(&issued);
    for path in [
        format!("/V/{b32}"),
        "/V/hello-world!".into(),
        "/healthz".into(),
        "/.well-known/elicence/trust.json".into(),
        "/api/v1/no-such-thing".into(),
        "/api/v1/licences".into(),
    ] {
        let r = s.client.get(s.url(&path)).send().await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers()["referrer-policy"], "no-referrer", "{path}");
    }
    let page = s
        .client
        .get(s.url(&format!("/V/{b32}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
}

/// A service behind a load balancer at 127.0.0.1 (where the tests connect from), or not.
async fn start_behind_proxy(trusted: &[&str], verify_per_minute: u32) -> TestServer {
    TestServer::start_with(elicence::http::HttpOptions {
        verify_per_minute: std::num::NonZeroU32::new(verify_per_minute),
        trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
    })
    .await
}

/// The "from where" the audit trail recorded for a request without a token that came through
/// `forwarded_for`.
async fn recorded_source(s: &TestServer, forwarded_for: &str) -> String {
    let refused = s
        .client
        .post(s.url("/api/v1/licences"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let records =
        s.t.app
            .store
            .audit_records(&Default::default(), None, 0, 100)
            .await
            .unwrap();
    records.last().unwrap().source.clone()
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let direct = start_behind_proxy(&[], 0).await;
    assert_eq!(recorded_source(&direct, "198.51.100.7").await, "127.0.0.1");

    let proxied = start_behind_proxy(&["127.0.0.0/8", "10.0.0.0/8"], 1).await;
    // The client may forge entries on the left; each trusted proxy appends whom it heard from.
    assert_eq!(
        recorded_source(&proxied, "203.0.113.9, 198.51.100.7, 10.1.2.3").await,
        "198.51.100.7"
    );
    // Each client behind the proxy has its own allowance.
    let verify = |client: &'static str| {
        proxied
            .client
            .get(proxied.url("/V/AAAA"))
            .header("x-forwarded-for", client)
            .send()
    };
    assert_eq!(
        verify("198.51.100.7").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        verify("198.51.100.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        verify("198.51.100.8").await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn trust_list_status_lists_health_and_metrics_are_public() {
    let s = TestServer::start().await;
    let trust = s.get_json("/.well-known/elicence/trust.json", None).await;
    let purposes: Vec<&str> = trust["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes, TRUST_LIST_PURPOSES,
        "a signer and a PDF seal per department, the seal CA and the supervision key"
    );
    assert!(trust["roots"][0]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));

    let list = s
        .client
        .get(s.url(&format!("/api/v1/status-lists/{MARKET_BUREAU}/0")))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    assert_eq!(list.headers()["content-type"], "application/statuslist+cwt");
    let bytes = list.bytes().await.unwrap();
    let (parsed, _) = elicence::signing::status_list::StatusList::parse_signed(&bytes).unwrap();
    assert_eq!(parsed.issuer.as_str(), MARKET_BUREAU);
    // The aggregation names the lists that hold an index: none before a licence is issued.
    let aggregation = s.get_json("/api/v1/status-lists", None).await;
    assert_eq!(aggregation, json!({"status_lists": []}));
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    assert_eq!(s.issue(&clerk, FOOD, "JY-AGG-1").await.status(), 201);
    let aggregation = s.get_json("/api/v1/status-lists", None).await;
    assert_eq!(aggregation, json!({"status_lists": [parsed.uri]}));

    let health = s.get_json("/healthz", None).await;
    assert_eq!(health["status"], "ok");
    s.client
        .post(s.url("/api/v1/verify"))
        .json(&json!({"input": "AAAA"}))
        .send()
        .await
        .unwrap();
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("elicence_verifications_total{result=\"malformed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("elicence_http_requests_total{class=\"2xx\"}"));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_service_answers() {
    let s = TestServer::start().await;
    let doc = s.get_json("/api/v1/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let admin = s.token(None, &[Role::Admin]).await;
    let paths = doc["paths"].as_object().unwrap();
    // Every route the README lists is documented …
    for route in [
        "/api/v1/licences",
        "/api/v1/licences/{id}/revoke",
        "/api/v1/verify",
        "/api/v1/batches",
        "/api/v1/batches/{id}",
        "/api/v1/feed",
        "/api/v1/audit",
        "/V/{b32}",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    // … and every documented operation is one the service routes (not "no such route", not
    // "method not allowed").
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "1.2.156.3005.2.X")
            .replace("{code}", FOOD)
            .replace("{b32}", "AAAA")
            .replace("{issuer}", MARKET_BUREAU)
            .replace("{n}", "0");
        for method in operations.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => s.client.get(s.url(&concrete)),
                "post" => s.client.post(s.url(&concrete)).json(&json!({})),
                other => panic!("{path}: unexpected method {other}"),
            };
            let response = request.bearer_auth(&admin).send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(!body.contains("no_route"), "{method} {path}: {body}");
        }
    }
}

/// `/readyz` is 503 with the cause while writes fail, and ready again once a write succeeds and
/// the audit records held meanwhile are appended; `/healthz` says which.
#[tokio::test]
async fn readiness_follows_whether_writes_work() {
    let s = TestServer::start().await;
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let health = &s.t.app.write_health;
    health.write_failed("the database's disk is full");
    health.hold(elicence::audit::Entry::new(
        "clerk",
        "test",
        "licence.issue",
        "x",
    ));
    let unready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = unready.json().await.unwrap();
    assert_eq!(
        body["writes_failing"]["cause"],
        "the database's disk is full"
    );
    assert_eq!(body["held_audit_records"], 1);
    assert_eq!(s.get_json("/healthz", None).await["writes"], "failing");

    assert!(s.t.app.flush_held_audit().await, "the store takes writes");
    let ready = s.client.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(s.get_json("/healthz", None).await["writes"], "ok");
    let records =
        s.t.app
            .audit_records(
                &elicence::app::Actor::local_operator(),
                &Default::default(),
                0,
                100,
            )
            .await
            .unwrap();
    let held = records.iter().find(|r| r.actor == "clerk").unwrap();
    assert!(
        held.detail.contains("held: could not be appended at"),
        "{}",
        held.detail
    );
}

/// serde reads a struct from a JSON array too (`[]` as a renewal with every field left out):
/// schemathesis found a renewal made from `[]`. A body must be an object, and nothing changes.
#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_refused_and_changes_nothing() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let officer = s.token(Some(MARKET_BUREAU), &[Role::Officer]).await;
    let issued: Value = s.issue(&clerk, FOOD, "ARRAY-1").await.json().await.unwrap();
    let id = issued["licence_id"].as_str().unwrap();
    for body in [json!([]), json!([{}]), json!("renew"), json!(1)] {
        let response = post(
            &s,
            &officer,
            &format!("/api/v1/licences/{id}/renew"),
            body.clone(),
        )
        .await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{answer}"
        );
    }
    let versions = s
        .get_json(&format!("/api/v1/licences/{id}/versions"), Some(&officer))
        .await;
    assert_eq!(versions.as_array().map(Vec::len), Some(1), "{versions}");
}
