//! Who sees what (SPEC §10), end to end over HTTP: a department's tokens see their own
//! department's licences, feed, audit records and batch jobs only; the city library and an admin
//! without a department see every department.

use crate::common::*;
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

/// What a cell of the table expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The check lets the request through (it may still fail on its content: the table's
    /// requests are made to fail after the check, so that nothing changes).
    Allowed,
    /// 403 forbidden.
    Refused,
    /// 404: another department's job is answered as if it did not exist.
    Hidden,
    /// Answered, with another department's events or audit records in it (never expected).
    Leaked,
}
use Expect::{Allowed as A, Hidden as H, Refused as R};

/// The protected routes, in the order of the table's columns; each has a library function the
/// command line (and the console) call.
#[derive(Debug, Clone, Copy)]
enum Op {
    Issue,
    Show,
    Versions,
    Pdf,
    Amend,
    Renew,
    Suspend,
    Reinstate,
    Revoke,
    Feed,
    Audit,
    SubmitBatch,
    BatchStatus,
}

const OPS: [Op; 13] = [
    Op::Issue,
    Op::Show,
    Op::Versions,
    Op::Pdf,
    Op::Amend,
    Op::Renew,
    Op::Suspend,
    Op::Reinstate,
    Op::Revoke,
    Op::Feed,
    Op::Audit,
    Op::SubmitBatch,
    Op::BatchStatus,
];

/// Role × the actor's department (relative to the market bureau, whose licence and job the
/// table acts on) → the expectation per route, in the order of [`OPS`]:
///   issue, show, versions, pdf, amend, renew, suspend, reinstate, revoke, feed, audit,
///   submit batch, batch status.
/// A clerk of another department may submit a batch (its rows of the bureau's types are then
/// refused one by one) but not see the bureau's job. Tokens of the shapes `token create`
/// refuses (a library token with a department, a clerk or officer without one) are included:
/// the check at use time must hold for them too.
#[rustfmt::skip]
const TABLE: [(&str, &str, [Expect; 13]); 15] = [
    ("clerk",   "own",   [A, A, A, A, R, R, R, R, R, R, R, A, A]),
    ("clerk",   "other", [R, R, R, R, R, R, R, R, R, R, R, A, H]),
    ("clerk",   "none",  [R, R, R, R, R, R, R, R, R, R, R, R, R]),
    ("officer", "own",   [R, A, A, A, A, A, A, A, A, R, R, R, R]),
    ("officer", "other", [R, R, R, R, R, R, R, R, R, R, R, R, R]),
    ("officer", "none",  [R, R, R, R, R, R, R, R, R, R, R, R, R]),
    ("library", "own",   [R, A, A, A, R, R, R, R, R, A, R, R, R]),
    ("library", "other", [R, R, R, R, R, R, R, R, R, A, R, R, R]),
    ("library", "none",  [R, A, A, A, R, R, R, R, R, A, R, R, R]),
    ("admin",   "own",   [A, A, A, A, A, A, A, A, A, A, A, A, A]),
    ("admin",   "other", [R, R, R, R, R, R, R, R, R, A, A, A, H]),
    ("admin",   "none",  [A, A, A, A, A, A, A, A, A, A, A, A, A]),
    ("",        "own",   [R, R, R, R, R, R, R, R, R, R, R, R, R]),
    ("",        "other", [R, R, R, R, R, R, R, R, R, R, R, R, R]),
    ("",        "none",  [R, R, R, R, R, R, R, R, R, R, R, R, R]),
];

struct Fixture {
    s: TestServer,
    /// The market bureau's licence the table acts on.
    licence: String,
    /// A conversion job of the market bureau.
    job: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let s = TestServer::start().await;
        let (licence, _) = one_licence_per_department(&s).await;
        let clerk = elicence::app::Actor {
            name: "market clerk".into(),
            source: "test".into(),
            department: Some(elicence::identifiers::Uscc::parse(MARKET_BUREAU).unwrap()),
            roles: vec![Role::Clerk],
        };
        let job = elicence::batch::create(&s.t.app, &clerk, false)
            .await
            .unwrap()
            .batch_id()
            .to_string();
        Fixture { s, licence, job }
    }

    /// A record the check lets through to validation, which refuses it (422): nothing is issued.
    fn invalid_record(&self) -> elicence::licence::RecordInput {
        let mut record = sample(&self.s.t.app, FOOD, "PERM-TABLE");
        record.holder.id = "not an id".into();
        record
    }

    /// The route's answer to `token`, as the table reads it. A list it answers must hold only
    /// `department`'s items when the token has one.
    async fn over_http(&self, op: Op, token: &str, department: Option<&str>) -> Expect {
        let s = &self.s;
        let licence = format!("/api/v1/licences/{}", self.licence);
        let post = |path: String, body: Value| {
            s.client
                .post(s.url(&path))
                .bearer_auth(token)
                .json(&body)
                .send()
        };
        let get = |path: String| s.client.get(s.url(&path)).bearer_auth(token).send();
        let response = match op {
            Op::Issue => {
                let body = serde_json::json!({"type_code": FOOD, "record": self.invalid_record()});
                post("/api/v1/licences".into(), body).await
            }
            Op::Show => get(licence).await,
            Op::Versions => get(format!("{licence}/versions")).await,
            Op::Pdf => get(format!("{licence}/pdf")).await,
            Op::Amend => post(format!("{licence}/amend"), serde_json::json!({})).await,
            Op::Renew => {
                let dates =
                    serde_json::json!({"valid_from": "2030-01-02", "valid_until": "2030-01-01"});
                post(format!("{licence}/renew"), dates).await
            }
            Op::Suspend => post(format!("{licence}/suspend"), serde_json::json!({})).await,
            Op::Reinstate => post(format!("{licence}/reinstate"), serde_json::json!({})).await,
            Op::Revoke => post(format!("{licence}/revoke"), serde_json::json!({})).await,
            Op::Feed => get("/api/v1/feed?limit=1000".into()).await,
            Op::Audit => get("/api/v1/audit?limit=1000".into()).await,
            Op::SubmitBatch => {
                s.client
                    .post(s.url("/api/v1/batches"))
                    .bearer_auth(token)
                    .header("content-type", "application/zip")
                    .body("not a zip")
                    .send()
                    .await
            }
            Op::BatchStatus => get(format!("/api/v1/batches/{}", self.job)).await,
        }
        .unwrap();
        let status = response.status().as_u16();
        assert!(
            status != 401 && status < 500,
            "{op:?} answered {status}: {}",
            response.text().await.unwrap()
        );
        match status {
            403 => R,
            404 => H,
            _ => {
                if let (Some(department), Op::Feed | Op::Audit) = (department, op) {
                    let page: Value = response.json().await.unwrap();
                    let (items, key) = match op {
                        Op::Feed => (&page["events"], "/metadata/ZZBFJGDM"),
                        _ => (&page["records"], "/department"),
                    };
                    let items = items.as_array().unwrap();
                    assert!(!items.is_empty(), "{op:?}: nothing of {department}");
                    if items
                        .iter()
                        .any(|item| item.pointer(key) != Some(&department.into()))
                    {
                        return Expect::Leaked;
                    }
                }
                A
            }
        }
    }

    /// The library function behind the route (what the command line calls), as the table reads it.
    async fn in_library(&self, op: Op, actor: &elicence::app::Actor) -> Expect {
        use elicence::licence::EventKind;
        let app = &self.s.t.app;
        let licence = self.licence.as_str();
        let result = match op {
            Op::Issue => app
                .issue(actor, FOOD, &self.invalid_record(), None)
                .await
                .map(drop),
            Op::Show => app.show(actor, licence, None).await.map(drop),
            Op::Versions => app.versions(actor, licence).await.map(drop),
            Op::Pdf => app.pdf(actor, licence, None).await.map(drop),
            Op::Amend => app
                .amend(actor, licence, &Default::default())
                .await
                .map(drop),
            Op::Renew => {
                let renewal = elicence::app::Renewal {
                    valid_from: Some("2030-01-02".into()),
                    valid_until: Some("2030-01-01".into()),
                    reason: None,
                };
                app.renew(actor, licence, &renewal).await.map(drop)
            }
            Op::Suspend | Op::Reinstate | Op::Revoke => {
                let kind = match op {
                    Op::Suspend => EventKind::Suspended,
                    Op::Reinstate => EventKind::Reinstated,
                    _ => EventKind::Revoked,
                };
                app.change_status(actor, licence, kind, None)
                    .await
                    .map(drop)
            }
            Op::Feed => app.feed(actor, 0, 1000).await.map(drop),
            Op::Audit => app
                .audit_records(actor, &Default::default(), 0, 1000)
                .await
                .map(drop),
            Op::SubmitBatch => {
                let body = futures_util::stream::iter([Ok::<_, std::io::Error>(b"not a zip")]);
                elicence::batch::job::submit(app, actor, None, body, false)
                    .await
                    .map(drop)
            }
            Op::BatchStatus => elicence::batch::job::status(app, actor, &self.job, 0, 10)
                .await
                .map(drop),
        };
        match result {
            Err(elicence::app::AppError::Forbidden(_)) => R,
            Err(elicence::app::AppError::NotFound(_)) => H,
            Err(e) if e.code() == "store" || e.code() == "config" => panic!("{op:?}: {e}"),
            _ => A,
        }
    }
}

#[tokio::test]
async fn every_role_and_department_gets_what_the_table_says_on_every_route_and_its_library_function(
) {
    let f = Fixture::new().await;
    let mut wrong = Vec::new();
    for (role, department, expected) in TABLE {
        let uscc = match department {
            "own" => Some(MARKET_BUREAU),
            "other" => Some(CONSTRUCTION_BUREAU),
            _ => None,
        };
        let token = stored_token(&f.s, uscc, role).await;
        let actor = elicence::app::Actor {
            name: format!("{role}@{department}"),
            source: "test".into(),
            department: uscc.map(|d| elicence::identifiers::Uscc::parse(d).unwrap()),
            roles: Role::parse(role).into_iter().collect(),
        };
        for (op, expect) in OPS.into_iter().zip(expected) {
            let http = f.over_http(op, &token, uscc).await;
            let library = f.in_library(op, &actor).await;
            if (http, library) != (expect, expect) {
                wrong.push(format!(
                    "{role:>7} of {department:<5} {op:?}: expected {expect:?}, HTTP {http:?}, library {library:?}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn token_create_at_the_command_line_refuses_a_library_token_with_a_department() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let out = elicence_command(dir.path(), &database.url)
        .args([
            "token",
            "create",
            "--roles",
            "library",
            "--department",
            MARKET_BUREAU,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("department: a library token belongs to the city library"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no token may be printed");
    let pool = raw_pool(&database.url).await;
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
    pool.close().await;
}

#[tokio::test]
async fn refused_reads_of_the_feed_and_the_audit_trail_are_audited() {
    let s = TestServer::start().await;
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    for path in ["/api/v1/feed", "/api/v1/audit"] {
        let response = with_token(s.client.get(s.url(path)), Some(&clerk))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let admin = elicence::app::Actor::local_operator();
    let records =
        s.t.app
            .audit_records(&admin, &Default::default(), 0, 1000)
            .await
            .unwrap();
    for action in ["feed.read", "audit.read"] {
        let refused = records
            .iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("no {action} record in {records:#?}"));
        assert_eq!(refused.outcome, "refused: forbidden");
        assert_eq!(refused.department.as_deref(), Some(MARKET_BUREAU));
        assert!(refused.actor.starts_with("token:"));
    }
}

#[tokio::test]
async fn another_departments_job_reads_as_absent_and_the_attempt_is_audited() {
    let s = TestServer::start().await;
    let market_clerk = elicence::app::Actor {
        department: Some(elicence::identifiers::Uscc::parse(MARKET_BUREAU).unwrap()),
        ..elicence::app::Actor::local_operator()
    };
    let job = elicence::batch::create(&s.t.app, &market_clerk, false)
        .await
        .unwrap()
        .batch_id()
        .to_string();
    let other = s.token(Some(CONSTRUCTION_BUREAU), &[Role::Clerk]).await;
    let response = with_token(
        s.client.get(s.url(&format!("/api/v1/batches/{job}"))),
        Some(&other),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 404);
    let admin = elicence::app::Actor::local_operator();
    let records =
        s.t.app
            .audit_records(&admin, &Default::default(), 0, 1000)
            .await
            .unwrap();
    let refused = records
        .iter()
        .find(|r| r.action == "batch.read")
        .unwrap_or_else(|| panic!("no batch.read record in {records:#?}"));
    assert_eq!(refused.outcome, "refused: forbidden");
    assert_eq!(refused.target, job);
    assert_eq!(refused.department.as_deref(), Some(CONSTRUCTION_BUREAU));
}
