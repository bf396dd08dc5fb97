//! Key changes take effect everywhere at once (SPEC §5): signer state lives in the register, so a
//! rotation or revocation made by any process — the CLI beside two running services — is seen by
//! every process without a restart.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use elicence::app::{Actor, AppError};
use elicence::signing::keys::KeyError;
use elicence::signing::trust::SignerStatus;
use elicence::verify::Outcome;
use serde_json::{json, Value};

/// A deployment: one database and one `keys/` folder, used by the CLI and by `serve` processes.
struct Deployment {
    dir: tempfile::TempDir,
    database: TestDatabase,
}

/// A running `serve`, stopped when dropped.
struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Deployment {
    async fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(dir.path()).await;
        Deployment { dir, database }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_elicence"));
        command
            .args(args)
            .env("ELICENCE_DATA_DIR", self.dir.path().join("data"))
            .env("ELICENCE_KEYS_DIR", self.dir.path().join("keys"))
            .env("ELICENCE_TEMPLATES_DIR", templates_dir())
            .env("ELICENCE_DATABASE_URL", &self.database.url)
            .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
            .env("RUST_LOG", "warn");
        command
    }

    /// Runs a CLI command that must succeed; returns its standard output.
    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    async fn serve(&self) -> Service {
        let port = free_port();
        let child = self
            .command(&["serve", "--verify-per-minute", "0"])
            .env("ELICENCE_LISTEN", format!("127.0.0.1:{port}"))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let service = Service {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while reqwest::get(format!("{}/healthz", service.base))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve did not come up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        service
    }
}

impl Service {
    /// Issues the sample food licence numbered `number` with `token`; returns its QR text.
    async fn issue(&self, token: &str, template: &Value, number: &str) -> String {
        let mut record = template.clone();
        record["number"] = json!(number);
        let issued: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/licences", self.base))
            .bearer_auth(token)
            .json(&json!({"type_code": FOOD, "record": record}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        issued["qr_text"]
            .as_str()
            .unwrap_or_else(|| panic!("not issued: {issued}"))
            .to_string()
    }

    /// The kid that signed a QR text, as this service's verification API reports it.
    async fn kid_of(&self, qr_text: &str) -> String {
        let verification: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/verify", self.base))
            .json(&json!({"input": qr_text}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        verification["kid"].as_str().unwrap().to_string()
    }

    /// The public verification page of a QR text.
    async fn page(&self, qr_text: &str) -> String {
        let b32 = qr_text.rsplit_once("/V/").unwrap().1;
        reqwest::get(format!("{}/V/{b32}", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The status of signer `kid` in this service's trust.json.
    async fn trust_status(&self, kid: &str) -> String {
        let list: Value = reqwest::get(format!("{}/.well-known/elicence/trust.json", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        list["signers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kid"] == kid)
            .map(|s| s["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{kid} not in {list}"))
    }
}

const VALID_PAGE: &str = r#"data-result="valid""#;
const SIGNER_REVOKED_PAGE: &str = r#"data-result="signer_revoked""#;

#[tokio::test]
async fn a_cli_rotation_and_revocation_reach_two_running_services_without_a_restart() {
    let d = Deployment::new().await;
    d.run(&["keys", "init"]);
    let created: Value = serde_json::from_str(&d.run(&[
        "token",
        "create",
        "--roles",
        "clerk",
        "--department",
        MARKET_BUREAU,
        "--json",
    ]))
    .unwrap();
    let clerk = created["token"].as_str().unwrap().to_string();
    let template: Value =
        serde_json::from_str(&d.run(&["directory", "show", FOOD, "--example"])).unwrap();
    let services = [d.serve().await, d.serve().await];

    let old = services[0].issue(&clerk, &template, "JY-KEYS-0").await;
    let old_kid = services[0].kid_of(&old).await;
    for service in &services {
        let page = service.page(&old).await;
        assert!(page.contains(VALID_PAGE) && page.contains("有效"), "{page}");
    }

    // A rotation: each service signs its very next licence with the new key (it checks the
    // register before signing, whatever its background poll has seen yet).
    let rotated: Value =
        serde_json::from_str(&d.run(&["keys", "rotate", "--department", MARKET_BUREAU, "--json"]))
            .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap();
    assert_ne!(new_kid, old_kid);
    for (i, service) in services.iter().enumerate() {
        let issued = service
            .issue(&clerk, &template, &format!("JY-KEYS-{}", i + 1))
            .await;
        assert_eq!(service.kid_of(&issued).await, new_kid, "service {i}");
    }

    // A revocation: both pages of the old key's licence turn 无效 within 2 s.
    d.run(&["keys", "revoke", &old_kid]);
    let revoked = Instant::now();
    for (i, service) in services.iter().enumerate() {
        loop {
            let page = service.page(&old).await;
            if page.contains(SIGNER_REVOKED_PAGE) {
                assert!(page.contains("无效"), "{page}");
                break;
            }
            assert!(
                revoked.elapsed() < Duration::from_secs(2),
                "service {i} still shows the revoked signer's licence as valid: {page}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            service.trust_status(&old_kid).await,
            "revoked",
            "service {i}"
        );
        assert_eq!(service.trust_status(new_kid).await, "active", "service {i}");
    }
}

#[tokio::test]
async fn another_instance_reloads_the_keys_when_the_register_changes_and_forgets_checked_signatures(
) {
    let t = TestApp::new().await;
    let other = t.reopen().await;
    let actor = Actor::local_operator();
    let old = t
        .app
        .issue(&actor, FOOD, &sample(&t.app, FOOD, "JY-SYNC-1"), None)
        .await
        .unwrap();
    // The other instance checks the signature once and remembers it.
    let seen = other.verify(&old.qr_text).await.unwrap();
    assert_eq!(seen.result, Outcome::Valid);
    let old_kid = seen.kid.unwrap();

    let new_kid = t.app.rotate_key(&actor, MARKET_BUREAU).await.unwrap();
    let issued = other
        .issue(&actor, FOOD, &sample(&other, FOOD, "JY-SYNC-2"), None)
        .await
        .unwrap();
    assert_eq!(
        other.verify(&issued.qr_text).await.unwrap().kid.as_deref(),
        Some(new_kid.as_str()),
        "signs with the new key at once"
    );

    t.app.revoke_key(&actor, &old_kid).await.unwrap();
    other.sync_keys().await.unwrap();
    assert_eq!(
        other.verify(&old.qr_text).await.unwrap().result,
        Outcome::SignerRevoked
    );
    let states = |list: elicence::signing::trust::TrustList| {
        let signers: Vec<_> = list
            .signers
            .into_iter()
            .map(|s| (s.kid, s.status))
            .collect();
        (list.version, signers)
    };
    assert_eq!(states(other.trust_list()), states(t.app.trust_list()));
}

#[tokio::test]
async fn an_existing_state_json_is_imported_once_and_the_register_is_the_truth_afterwards() {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let before = t.app.trust_list();
    let revoked_kid = before.signers[0].kid.clone();
    // A deployment from before the register: its state.json, and a database with no signers.
    let keys = t.dir.path().join("keys");
    let hex = |kid: &str| elicence::signing::keys::kid_hex(kid).unwrap();
    // state.json held the departments' signers only: the service's own keys live in files.
    let signers: Vec<Value> = before
        .signers
        .iter()
        .filter(|s| s.purpose == elicence::signing::cert::Purpose::Licence)
        .map(|s| {
            let revoked = s.kid == revoked_kid;
            json!({"kid": hex(&s.kid), "department": s.department, "uscc": s.uscc,
                   "status": if revoked { "revoked" } else { "active" },
                   "created_at": "2026-01-01T00:00:00Z",
                   "revoked_at": if revoked { json!("2026-02-01T00:00:00Z") } else { Value::Null }})
        })
        .collect();
    std::fs::write(
        keys.join("state.json"),
        json!({"version": 41, "signers": signers}).to_string(),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let db = fresh_database(elsewhere.path()).await;
    let imported = elicence::app::App::open(settings(t.dir.path(), &db.url))
        .await
        .unwrap();
    let list = imported.trust_list();
    // Import (41), then a new signer with its PDF seal for the department whose only signer
    // was revoked (42), and the seals of the two imported active signers recorded (43, 44): the
    // seal files were there already, so the same seals.
    assert_eq!(list.version, 44);
    // One more signer; the revoked one's seal is gone from the list (state.json held no seals,
    // and only active signers get theirs recorded).
    assert_eq!(list.signers.len(), before.signers.len() + 1);
    assert_eq!(list.signers[0].status, SignerStatus::Revoked);
    assert_eq!(
        list.signers[0].revoked_at.as_deref(),
        Some("2026-02-01T00:00:00Z")
    );
    let trail = imported
        .audit_records(&actor, &Default::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(trail.iter().filter(|r| r.action == "key.import").count(), 1);

    // Afterwards the register decides: state.json is not read again.
    std::fs::write(keys.join("state.json"), "not json").unwrap();
    let again = elicence::app::App::open(settings(t.dir.path(), &db.url))
        .await
        .unwrap();
    assert_eq!(again.trust_list().version, 44);
}

#[tokio::test]
async fn an_active_signer_whose_private_key_is_missing_is_named_with_its_file_and_nothing_is_issued(
) {
    let t = TestApp::new().await;
    let actor = Actor::local_operator();
    let kid = t.app.rotate_key(&actor, MARKET_BUREAU).await.unwrap();
    let key_file = t.dir.path().join("keys/signers").join(format!(
        "{}.key.pem",
        elicence::signing::keys::kid_hex(&kid).unwrap()
    ));
    std::fs::remove_file(&key_file).unwrap();
    let other = t.reopen().await;
    let last_seq = other.store.last_seq().await.unwrap();
    let error = other
        .issue(&actor, FOOD, &sample(&other, FOOD, "JY-NOKEY-1"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, AppError::Keys(KeyError::UnusableKey { .. })),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&kid) && message.contains(&key_file.display().to_string()),
        "{message}"
    );
    assert_eq!(
        other.store.last_seq().await.unwrap(),
        last_seq,
        "nothing issued"
    );
}
