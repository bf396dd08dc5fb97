//! Who sees what (SPEC §10), end to end over HTTP: a department's tokens see their own
//! department's licences, feed, audit records and batch jobs only; the city library and an admin
//! without a department see every department.

mod common;

use common::*;
use elicence::app::Role;
use serde_json::Value;

const CONSTRUCTION_BUREAU: &str = "11330122MB0000002Q";

/// Issues a FOOD licence (the market bureau's) and a PERMIT (the construction bureau's);
/// returns their licence ids.
async fn one_licence_per_department(s: &TestServer) -> (String, String) {
    let market_clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let construction_clerk = s.token(Some(CONSTRUCTION_BUREAU), &[Role::Clerk]).await;
    let market: Value = s
        .issue(&market_clerk, FOOD, "PERM-M-1")
        .await
        .json()
        .await
        .unwrap();
    let construction: Value = s
        .issue(&construction_clerk, PERMIT, "PERM-C-1")
        .await
        .json()
        .await
        .unwrap();
    (
        market["licence_id"].as_str().unwrap().to_string(),
        construction["licence_id"].as_str().unwrap().to_string(),
    )
}

/// A token stored with `department` and `roles` directly, as an older release (or a hand-edited
/// database) may have left it, bypassing the checks of `token create`.
async fn stored_token(s: &TestServer, department: Option<&str>, roles: &str) -> String {
    let token = format!("elt_test_{}", rand::random::<u64>());
    s.t.app
        .store
        .insert_token(
            "legacy",
            department,
            roles,
            &elicence::hash::sha256_hex(token.as_bytes()),
        )
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn a_library_token_with_a_department_reads_only_that_departments_feed() {
    let s = TestServer::start().await;
    let (market, construction) = one_licence_per_department(&s).await;

    let scoped = stored_token(&s, Some(MARKET_BUREAU), "library").await;
    let page = s.get_json("/api/v1/feed?after=0", Some(&scoped)).await;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {page}"))
        .iter()
        .map(|e| e["licence_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [market.as_str()], "{page}");

    // The city library (no department) reads both departments.
    let city = s.token(None, &[Role::Library]).await;
    let page = s.get_json("/api/v1/feed?after=0", Some(&city)).await;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["licence_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [market.as_str(), construction.as_str()]);
}

#[tokio::test]
async fn a_library_token_cannot_be_created_with_a_department() {
    let s = TestServer::start().await;
    let operator = elicence::app::Actor::local_operator();
    let refused =
        s.t.app
            .create_token(&operator, "lib", Some(MARKET_BUREAU), &[Role::Library])
            .await
            .unwrap_err();
    assert_eq!(refused.code(), "bad_input");
    assert!(
        refused.to_string().contains("the city library"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_department_admin_reads_only_its_own_departments_audit_records() {
    let s = TestServer::start().await;
    let (market, construction) = one_licence_per_department(&s).await;
    let market_admin = s.token(Some(MARKET_BUREAU), &[Role::Admin]).await;

    let trail = s
        .get_json("/api/v1/audit?limit=1000", Some(&market_admin))
        .await;
    let records = trail["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {trail}"));
    let targets: Vec<&str> = records
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.iter().any(|t| t.starts_with(&market)),
        "the market bureau's own issue is missing: {targets:?}"
    );
    assert!(
        !targets.iter().any(|t| t.starts_with(&construction)),
        "another department's record leaked: {targets:?}"
    );
    assert!(
        records.iter().all(|r| r["department"] == MARKET_BUREAU),
        "{records:#?}"
    );

    // A department-less admin reads the whole trail.
    let city_admin = s.token(None, &[Role::Admin]).await;
    let trail = s
        .get_json("/api/v1/audit?limit=1000", Some(&city_admin))
        .await;
    let targets: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert!(targets.iter().any(|t| t.starts_with(&market)));
    assert!(targets.iter().any(|t| t.starts_with(&construction)));
}
