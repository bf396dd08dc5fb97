//! The public address in QR codes is a fact of the deployment (SPEC §6, §12): recorded in the
//! register, so that processes with different environments print the same codes and serve the
//! same PDF bytes; loopback refused outside development mode; changed only by an audited command.

use std::process::{Command, Output};

use crate::common::*;
use elicence::app::{Actor, App, Role};
use elicence::config::Settings;

const PUBLIC: &str = "https://zz.example.gov.cn";

/// A data folder and database, and the `elicence` binary run on them with varying settings.
struct Deployment {
    database: TestDatabase,
    dir: tempfile::TempDir,
}

impl Deployment {
    async fn new() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(dir.path()).await;
        Deployment { database, dir }
    }

    /// Runs the binary with the deployment's folders and database and `env` on top.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_elicence"))
            .args(args)
            .env_remove("ELICENCE_VERIFY_BASE")
            .env_remove("ELICENCE_LISTEN")
            .env_remove("ELICENCE_MODE")
            .env("ELICENCE_DATA_DIR", self.dir.path().join("data"))
            .env("ELICENCE_KEYS_DIR", self.dir.path().join("keys"))
            .env("ELICENCE_TEMPLATES_DIR", templates_dir())
            .env("ELICENCE_DATABASE_URL", &self.database.url)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its standard output and standard error.
    fn ok(&self, env: &[(&str, &str)], args: &[&str]) -> (String, String) {
        let out = self.run(env, args);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        (String::from_utf8(out.stdout).unwrap(), stderr)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Issues the directory's example record of FOOD; returns (identifier, QR text).
    fn issue(&self, env: &[(&str, &str)]) -> (String, String) {
        let (example, _) = self.ok(env, &["directory", "show", FOOD, "--example"]);
        let file = self.path("record.json");
        std::fs::write(&file, example).unwrap();
        let (printed, _) = self.ok(env, &["issue", FOOD, "--file", &file]);
        let mut lines = printed.lines();
        (
            lines.next().unwrap().to_string(),
            lines.next().unwrap().to_string(),
        )
    }

    /// The PDF of `id` as `licence pdf` writes it in a process with `env`.
    fn pdf(&self, env: &[(&str, &str)], id: &str) -> Vec<u8> {
        let file = self.path("out.pdf");
        self.ok(env, &["licence", "pdf", id, "-o", &file]);
        std::fs::read(&file).unwrap()
    }

    /// Forgets the PDF archived for version `id`, so that the next request renders it again.
    async fn forget_archived_pdf(&self, id: &str) {
        let key = format!("pdf/{id}.pdf");
        if postgres_requested() {
            let pool = raw_pool(&self.database.url).await;
            let deleted = sqlx::query("DELETE FROM blobs WHERE key = $1")
                .bind(&key)
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(deleted.rows_affected(), 1, "{key} was archived");
        } else {
            std::fs::remove_file(self.dir.path().join("data/blobs").join(&key)).unwrap();
        }
    }

    /// Replaces the PDF archived for version `id` with `bytes`.
    async fn replace_archived_pdf(&self, id: &str, bytes: &[u8]) {
        let key = format!("pdf/{id}.pdf");
        if postgres_requested() {
            let pool = raw_pool(&self.database.url).await;
            let updated = sqlx::query("UPDATE blobs SET bytes = $1 WHERE key = $2")
                .bind(bytes)
                .bind(&key)
                .execute(&pool)
                .await
                .unwrap();
            assert_eq!(updated.rows_affected(), 1, "{key} was archived");
        } else {
            let path = self.dir.path().join("data/blobs").join(&key);
            assert!(path.exists(), "{key} was archived");
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// Settings of a process on this deployment with `env` (over the folders and database).
    fn settings(&self, env: &[(&str, &str)]) -> Settings {
        let base = settings(self.dir.path(), &self.database.url);
        Settings::load_from(None, |name| {
            let fixed = match name {
                "ELICENCE_DATA_DIR" => Some(base.data_dir.display().to_string()),
                "ELICENCE_KEYS_DIR" => Some(base.keys_dir.display().to_string()),
                "ELICENCE_TEMPLATES_DIR" => Some(base.templates_dir.display().to_string()),
                "ELICENCE_DATABASE_URL" => Some(self.database.url.clone()),
                _ => None,
            };
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .or(fixed)
        })
        .unwrap()
    }
}

fn first_process() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ELICENCE_VERIFY_BASE", PUBLIC),
        ("ELICENCE_LISTEN", "127.0.0.1:8080"),
    ]
}

/// A process configured otherwise: another public address, another port.
fn other_process() -> Vec<(&'static str, &'static str)> {
    vec![
        ("ELICENCE_VERIFY_BASE", "https://elsewhere.example.cn"),
        ("ELICENCE_LISTEN", "0.0.0.0:9999"),
    ]
}

#[tokio::test]
async fn a_pdf_fetched_by_two_processes_with_different_environments_is_the_same_bytes() {
    let d = Deployment::new().await;
    let (id, _) = d.issue(&first_process());
    let first = d.pdf(&first_process(), &id);
    assert!(first.starts_with(b"%PDF"));
    let other = d.run(
        &other_process(),
        &["licence", "pdf", &id, "-o", &d.path("b.pdf")],
    );
    assert!(other.status.success());
    assert!(
        std::fs::read(d.path("b.pdf")).unwrap() == first,
        "the other process's PDF differs"
    );
    // The other process said loudly that its setting is not the one used, naming both.
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("HTTPS://ELSEWHERE.EXAMPLE.CN")
            && stderr.contains("HTTPS://ZZ.EXAMPLE.GOV.CN"),
        "{stderr}"
    );

    // Without the archived bytes, a process renders the same ones from the version.
    d.forget_archived_pdf(&id).await;
    assert!(
        d.pdf(&other_process(), &id) == first,
        "the PDF rendered again differs"
    );

    // And so does the PDF route of a service configured otherwise.
    let service = std::sync::Arc::new(App::open(d.settings(&other_process())).await.unwrap());
    let base = serve(service.clone(), Default::default()).await;
    let token = service
        .create_token(&Actor::local_operator(), "reader", None, &[Role::Admin])
        .await
        .unwrap()
        .1;
    let served = reqwest::Client::new()
        .get(format!("{base}/api/v1/licences/{id}/pdf"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    assert!(
        served.bytes().await.unwrap() == first,
        "the PDF route's differs"
    );
}

/// The first rendering of a version's PDF is archived, and what is archived is what is served
/// (the renderer may change in a later release; a PDF handed out may not).
#[tokio::test]
async fn the_pdf_served_is_the_archived_bytes() {
    let d = Deployment::new().await;
    let (id, _) = d.issue(&first_process());
    d.pdf(&first_process(), &id);
    let archived = b"%PDF-1.3 the bytes archived\n%%EOF\n";
    d.replace_archived_pdf(&id, archived).await;
    assert_eq!(d.pdf(&other_process(), &id), archived);
}

#[tokio::test]
async fn issue_from_the_cli_prints_the_registers_address_not_its_own_listen_address() {
    let d = Deployment::new().await;
    d.ok(&first_process(), &["register", "show"]);
    // The CLI beside the service, run without the service's settings.
    let (_, qr_text) = d.issue(&[("ELICENCE_LISTEN", "127.0.0.1:7777")]);
    assert!(
        qr_text.starts_with("HTTPS://ZZ.EXAMPLE.GOV.CN/V/"),
        "{qr_text}"
    );
    let (shown, _) = d.ok(&[], &["register", "show", "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["verify_base"], "HTTPS://ZZ.EXAMPLE.GOV.CN");
}

#[tokio::test]
async fn a_loopback_verify_base_is_refused_outside_development_mode_and_records_nothing() {
    let d = Deployment::new().await;
    // A fresh machine's defaults: the listen address, 127.0.0.1:8080.
    let refused = d.run(&[], &["register", "show"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HTTP://127.0.0.1:8080")
            && stderr.contains("no phone can reach")
            && stderr.contains("ELICENCE_MODE=development"),
        "{stderr}"
    );
    let localhost = d.run(
        &[("ELICENCE_VERIFY_BASE", "http://localhost:8080")],
        &["register", "show"],
    );
    assert_eq!(localhost.status.code(), Some(1));

    // Nothing was recorded: the first accepted address is the register's.
    let (shown, _) = d.ok(&first_process(), &["register", "show"]);
    assert_eq!(shown.trim(), "HTTPS://ZZ.EXAMPLE.GOV.CN");

    // Changing it to a loopback address is refused too, and changes nothing.
    let refused = d.run(
        &[],
        &["register", "set-verify-base", "http://127.0.0.1:9000"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("127.0.0.1"));
    let (shown, _) = d.ok(&[], &["register", "show"]);
    assert_eq!(shown.trim(), "HTTPS://ZZ.EXAMPLE.GOV.CN");
}

#[tokio::test]
async fn development_mode_allows_a_loopback_verify_base_and_says_so_loudly() {
    let d = Deployment::new().await;
    let dev = [("ELICENCE_MODE", "development")];
    let (shown, stderr) = d.ok(&dev, &["register", "show"]);
    assert_eq!(shown.trim(), "HTTP://127.0.0.1:8080");
    assert!(stderr.contains("DEVELOPMENT MODE"), "{stderr}");
    // A process outside development mode refuses the register's loopback address, and says how
    // to record the public one.
    let refused = d.run(&first_process(), &["register", "show"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("register set-verify-base"), "{stderr}");
    d.ok(&dev, &["register", "set-verify-base", PUBLIC]);
    let (shown, _) = d.ok(&first_process(), &["register", "show"]);
    assert_eq!(shown.trim(), "HTTPS://ZZ.EXAMPLE.GOV.CN");
}

#[tokio::test]
async fn changing_the_verify_base_is_audited_and_existing_versions_keep_their_address() {
    let d = Deployment::new().await;
    let (id, old_qr) = d.issue(&first_process());
    let old_pdf = d.pdf(&first_process(), &id);

    let (printed, _) = d.ok(
        &[],
        &["register", "set-verify-base", "https://new.example.cn/"],
    );
    assert!(
        printed.contains("HTTPS://ZZ.EXAMPLE.GOV.CN -> HTTPS://NEW.EXAMPLE.CN")
            && printed.contains("keep the address they were made with"),
        "{printed}"
    );
    // The same address again is no change, and says so.
    let again = d.run(
        &[],
        &["register", "set-verify-base", "https://new.example.cn"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to change"));

    // Existing versions keep their codes and PDFs, even in a process told the old address.
    let (shown, _) = d.ok(&first_process(), &["licence", "show", &id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["version"]["qr_text"], old_qr.as_str());
    assert!(d.pdf(&first_process(), &id) == old_pdf, "the PDF changed");
    // New versions get the new address, whatever the process was told.
    let changes = d.path("changes.json");
    std::fs::write(
        &changes,
        r#"{"holder_name": "新名称有限公司", "reason": "更名"}"#,
    )
    .unwrap();
    let (amended, _) = d.ok(
        &first_process(),
        &["licence", "amend", &id, "--file", &changes],
    );
    let new_qr = amended.lines().nth(1).unwrap();
    assert!(new_qr.starts_with("HTTPS://NEW.EXAMPLE.CN/V/"), "{amended}");

    // The change is in the audit trail, with both addresses; so are the refusals.
    let app = App::open(d.settings(&[])).await.unwrap();
    let admin = Actor::local_operator();
    let records = app
        .audit_records(&admin, &Default::default(), 0, 1000)
        .await
        .unwrap();
    let changes: Vec<_> = records
        .iter()
        .filter(|r| r.action == "register.set_verify_base")
        .map(|r| (r.outcome.as_str(), r.detail.as_str()))
        .collect();
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(
        changes[0],
        ("ok", "HTTPS://ZZ.EXAMPLE.GOV.CN -> HTTPS://NEW.EXAMPLE.CN")
    );
    assert!(changes[1].0.starts_with("failed"), "{changes:?}");
    assert!(records
        .iter()
        .any(|r| r.action == "register.init" && r.detail == "HTTPS://ZZ.EXAMPLE.GOV.CN"));

    // Only an administrator may change it; a refusal is audited and changes nothing.
    let clerk = Actor {
        name: "clerk".into(),
        source: "test".into(),
        department: Some(elicence::identifiers::Uscc::parse(MARKET_BUREAU).unwrap()),
        roles: vec![Role::Clerk],
    };
    let refused = app
        .set_verify_base(&clerk, "https://evil.example.cn")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "forbidden");
    assert_eq!(app.verify_base().await.unwrap(), "HTTPS://NEW.EXAMPLE.CN");
    let records = app
        .audit_records(&admin, &Default::default(), 0, 1000)
        .await
        .unwrap();
    assert!(records
        .iter()
        .any(|r| r.action == "register.set_verify_base"
            && r.actor == "clerk"
            && r.outcome.starts_with("refused")));
}

/// Versions are immutable, so those made before the register existed have no address of their
/// own: they read as made with the address recorded at initialisation, whatever changed since.
#[tokio::test]
async fn a_version_from_before_the_register_reads_as_made_with_the_initial_address() {
    let t = TestApp::new().await;
    let admin = Actor::local_operator();
    let issued = t
        .app
        .issue(&admin, FOOD, &sample(&t.app, FOOD, "OLD-1"), None)
        .await
        .unwrap();
    t.app
        .set_verify_base(&admin, "https://new.example.cn")
        .await
        .unwrap();
    // What a database from before migration 0008 holds: no address on the version.
    let pool = raw_pool(&t.database_url).await;
    let lift = if postgres_requested() {
        "ALTER TABLE versions DISABLE TRIGGER versions_immutable"
    } else {
        "DROP TRIGGER versions_immutable_update"
    };
    sqlx::query(lift).execute(&pool).await.unwrap();
    sqlx::query("UPDATE versions SET verify_base = NULL")
        .execute(&pool)
        .await
        .unwrap();
    let shown = t.app.show(&admin, &issued.id, None).await.unwrap();
    assert_eq!(shown.version.qr_text, issued.qr_text);
    assert!(issued.qr_text.starts_with("HTTPS://ZZ.EXAMPLE.GOV.CN/V/"));
}
