//! The `elicence` binary as an operator uses it: commands, exit codes, `--json` output.

use std::process::{Command, Output};

use crate::common::*;

struct Cli {
    database: TestDatabase,
    dir: tempfile::TempDir,
}

impl Cli {
    async fn new() -> Cli {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(dir.path()).await;
        Cli { database, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        elicence_command(self.dir.path(), &self.database.url)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Issues the directory's example record of a type; returns (identifier, QR text).
    fn issue_example(&self, type_code: &str) -> (String, String) {
        let example = self.ok(&["directory", "show", type_code, "--example"]);
        let file = self.path(&format!("{type_code}.json"));
        std::fs::write(&file, example).unwrap();
        let printed = self.ok(&["issue", type_code, "--file", &file]);
        let mut lines = printed.lines();
        (
            lines.next().unwrap().to_string(),
            lines.next().unwrap().to_string(),
        )
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap()
}

#[tokio::test]
async fn directory_list_prints_the_four_types_with_codes_and_version() {
    let cli = Cli::new().await;
    let listing = cli.ok(&["directory", "list"]);
    assert!(listing.starts_with("directory version 1"), "{listing}");
    for (code, name) in [
        (FOOD, "食品经营许可证"),
        (SOLE_TRADER, "个体工商户营业执照"),
        (PERMIT, "建筑工程施工许可证"),
        (DISABILITY, "残疾人证"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.contains(code) && l.contains(name)),
            "{code} {name}:\n{listing}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["directory", "list", "--json"])).unwrap();
    assert_eq!(json["types"].as_array().unwrap().len(), 4);
    assert_eq!(json["directory_version"], 1);
}

#[tokio::test]
async fn directory_show_lists_a_types_rules_between_fields() {
    let cli = Cli::new().await;
    let shown = cli.ok(&["directory", "show", PERMIT]);
    assert!(
        shown
            .lines()
            .any(|l| l.trim() == "rule: planned_completion must be after planned_start"),
        "{shown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&cli.ok(&["directory", "show", PERMIT, "--json"])).unwrap();
    assert_eq!(
        json["rules"],
        serde_json::json!([{"field": "planned_completion", "must_be": ">", "other": "planned_start"}])
    );
    // A type without rules carries none.
    let food: serde_json::Value =
        serde_json::from_str(&cli.ok(&["directory", "show", FOOD, "--json"])).unwrap();
    assert!(food.get("rules").is_none(), "{food}");
}

#[tokio::test]
async fn verify_exits_0_for_valid_2_for_revoked_and_superseded_1_for_errors() {
    let cli = Cli::new().await;
    let (id, qr_text) = cli.issue_example(FOOD);
    let out = cli.run(&["verify", &qr_text]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("valid (签名验证通过"));

    // An amendment supersedes version 1.
    let changes = cli.path("changes.json");
    std::fs::write(
        &changes,
        r#"{"fields": {"complaint_hotline": "0571-12345"}, "reason": "电话变更"}"#,
    )
    .unwrap();
    let amended = cli.ok(&["licence", "amend", &id, "--file", &changes]);
    let v2_qr = amended.lines().nth(1).unwrap().to_string();
    let out = cli.run(&["verify", &qr_text, "--json"]);
    assert_eq!(code(&out), 2);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "superseded");
    assert_eq!(v["current"]["version"], 2);

    cli.ok(&["licence", "revoke", &id, "--reason", "吊销许可"]);
    let out = cli.run(&["verify", &v2_qr]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("revoked (已注销)"));

    let out = cli.run(&["verify", "HTTPS://ZZ.EXAMPLE.GOV.CN/V/NOT-BASE32"]);
    assert_eq!(
        code(&out),
        2,
        "a damaged code is a result (malformed), not an error"
    );

    let mut mistyped = id.clone();
    let last = mistyped.pop().unwrap();
    mistyped.push(if last == 'A' { 'B' } else { 'A' });
    let out = cli.run(&["verify", &mistyped]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("mistyped"));
}

#[tokio::test]
async fn offline_verification_uses_only_the_exported_files() {
    let cli = Cli::new().await;
    let (id, qr_text) = cli.issue_example(SOLE_TRADER);
    let trust = cli.path("trust.json");
    let list = cli.path("status-0.cose");
    let root = cli.path("root.pem");
    cli.ok(&["trust", "export", &trust]);
    cli.ok(&[
        "status-list",
        "export",
        "--issuer",
        MARKET_BUREAU,
        "--list",
        "0",
        &list,
    ]);
    let exported: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trust).unwrap()).unwrap();
    std::fs::write(&root, exported["roots"][0].as_str().unwrap()).unwrap();
    let offline = |cli: &Cli| {
        cli.run(&[
            "verify",
            &qr_text,
            "--offline",
            "--trust",
            &trust,
            "--status-list",
            &list,
            "--root",
            &root,
        ])
    };
    assert_eq!(code(&offline(&cli)), 0);

    cli.ok(&["licence", "revoke", &id, "--reason", "注销"]);
    assert_eq!(code(&offline(&cli)), 0, "the cached list still says valid");
    cli.ok(&[
        "status-list",
        "export",
        "--issuer",
        MARKET_BUREAU,
        "--list",
        "0",
        &list,
    ]);
    let out = offline(&cli);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("revoked"));

    // Offline needs no database: point it at one that does not exist.
    let out = Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args([
            "verify",
            &qr_text,
            "--offline",
            "--trust",
            &trust,
            "--status-list",
            &list,
        ])
        .env(
            "ELICENCE_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
}

#[tokio::test]
async fn a_bad_record_lists_every_error_and_exits_1() {
    let cli = Cli::new().await;
    let file = cli.path("bad.json");
    std::fs::write(
        &file,
        r#"{"holder": {"name": "", "id": "11010519491231002X"}, "fields": {"gender": "未知"}}"#,
    )
    .unwrap();
    let out = cli.run(&["issue", DISABILITY, "--file", &file]);
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "holder.name: is empty",
        "fields.gender",
        "fields.disability_category: 残疾类别 is required",
    ] {
        assert!(
            stderr.contains(expected),
            "{expected} missing from:\n{stderr}"
        );
    }
    let out = cli.run(&["issue", DISABILITY, "--file", &file, "--json"]);
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["code"], "invalid_record");
    assert!(body["error"]["fields"].as_array().unwrap().len() >= 4);
}

#[tokio::test]
async fn keys_can_be_listed_rotated_and_revoked() {
    let cli = Cli::new().await;
    cli.ok(&["keys", "init"]);
    let listing = cli.ok(&["keys", "list", "--json"]);
    let signers: serde_json::Value = serde_json::from_str(&listing).unwrap();
    let purposes: Vec<&str> = signers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes, TRUST_LIST_PURPOSES,
        "one signer and one PDF seal per department, the seal CA and the supervision key"
    );
    let rotated: serde_json::Value =
        serde_json::from_str(&cli.ok(&["keys", "rotate", "--department", MARKET_BUREAU, "--json"]))
            .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap();
    let (_, qr_text) = cli.issue_example(FOOD);
    let verified: serde_json::Value =
        serde_json::from_slice(&cli.run(&["verify", &qr_text, "--json"]).stdout).unwrap();
    assert_eq!(verified["kid"], new_kid);
    cli.ok(&["keys", "revoke", new_kid]);
    let out = cli.run(&["verify", &qr_text]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("signer_revoked"));
}

#[tokio::test]
async fn audit_verify_names_the_first_record_edited_or_deleted_in_the_database() {
    let cli = Cli::new().await;
    for _ in 0..3 {
        cli.issue_example(FOOD);
    }
    let out = cli.run(&["audit", "verify"]);
    assert_eq!(code(&out), 0);
    // The first start made the register (audited) and a signer for each of the three departments
    // (audited), then 3 issues.
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact: 7 records"));

    // Someone with database access removes the append-only guard and rewrites history.
    let pool = raw_pool(&cli.database.url).await;
    let drop_guards: &[&str] = if cli.database.url.starts_with("postgres") {
        &["DROP TRIGGER audit_append_only ON audit"]
    } else {
        &[
            "DROP TRIGGER audit_append_only_update",
            "DROP TRIGGER audit_append_only_delete",
        ]
    };
    assert!(
        sqlx::query("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
            .execute(&pool)
            .await
            .is_err()
    );
    for statement in drop_guards {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    sqlx::query("UPDATE audit SET actor = 'someone else' WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let out = cli.run(&["audit", "verify", "--json"]);
    assert_eq!(code(&out), 2);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["first_break"]["seq"], 2);
    assert!(report["first_break"]["reason"]
        .as_str()
        .unwrap()
        .contains("edited"));

    sqlx::query("DELETE FROM audit WHERE seq = 2")
        .execute(&pool)
        .await
        .unwrap();
    let out = cli.run(&["audit", "verify"]);
    assert_eq!(code(&out), 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("BROKEN at record 3") && stdout.contains("removed"),
        "{stdout}"
    );
    pool.close().await;
}

#[tokio::test]
async fn tokens_are_printed_once_and_stored_only_as_hashes() {
    let cli = Cli::new().await;
    let out: serde_json::Value = serde_json::from_str(&cli.ok(&[
        "token",
        "create",
        "--department",
        MARKET_BUREAU,
        "--roles",
        "clerk,officer",
        "--name",
        "窗口A",
        "--json",
    ]))
    .unwrap();
    let token = out["token"].as_str().unwrap();
    assert!(token.starts_with("elt_") && token.len() > 40);
    let pool = raw_pool(&cli.database.url).await;
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, elicence::hash::sha256_hex(token.as_bytes()));
    assert!(!stored.contains(token));
    let refused = cli.run(&[
        "token",
        "create",
        "--department",
        MARKET_BUREAU,
        "--roles",
        "cleaner",
    ]);
    assert_eq!(code(&refused), 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown role"));
    let id = out["id"].to_string();
    cli.ok(&["token", "revoke", &id]);
    let revoked_at: Option<String> =
        sqlx::query_scalar("SELECT revoked_at FROM tokens WHERE id = 1")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(revoked_at.is_some());
    assert_eq!(
        code(&cli.run(&["token", "revoke", &id])),
        1,
        "revoking twice is an error"
    );
    let listed = cli.ok(&["token", "list"]);
    assert!(
        listed.contains("窗口A") && listed.trim_end().ends_with("revoked"),
        "{listed}"
    );
    assert!(!listed.contains(token), "{listed}");
    pool.close().await;
}

/// Runs `args` with standard output (and, with `close_stderr`, standard error too) a pipe whose
/// reading end is already closed, as `elicence … | head -1` leaves it once `head` has its line.
fn run_into_a_closed_pipe(cli: &Cli, args: &[&str], close_stderr: bool) -> Output {
    use std::process::Stdio;
    let mut command = Command::new(env!("CARGO_BIN_EXE_elicence"));
    command
        .args(args)
        .env("ELICENCE_DATA_DIR", cli.dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", cli.dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &cli.database.url)
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    drop(child.stdout.take());
    if close_stderr {
        drop(child.stderr.take());
    }
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn output_into_a_closed_pipe_ends_quietly_with_the_commands_own_exit_code() {
    let cli = Cli::new().await;
    let (id, qr_text) = cli.issue_example(FOOD);
    let out = run_into_a_closed_pipe(&cli, &["verify", &qr_text], false);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code(&out), 0, "valid stays exit 0: {stderr}");
    cli.ok(&["licence", "revoke", &id, "--reason", "吊销许可"]);
    let out = run_into_a_closed_pipe(&cli, &["verify", &qr_text, "--json"], false);
    assert_eq!(code(&out), 2, "revoked stays exit 2");
    for args in [
        &["openapi"][..],
        &["directory", "list"],
        &["audit", "verify"],
    ] {
        let out = run_into_a_closed_pipe(&cli, args, false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), 0, "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // An error message into a closed pipe: still exit 1, no panic (exit 101).
    let out = run_into_a_closed_pipe(&cli, &["licence", "show", "nonsense"], true);
    assert_eq!(code(&out), 1);
}

#[tokio::test]
async fn the_data_folder_is_0700_and_the_sqlite_database_0600_even_if_they_were_not() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let cli = Cli::new().await;
    let data = cli.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    cli.ok(&["directory", "list"]);
    assert_eq!(mode(&data), 0o700);
    if !postgres_requested() {
        assert_eq!(mode(&data.join("elicence.sqlite")), 0o600);
    }
}

#[tokio::test]
async fn a_database_password_never_reaches_the_terminal_or_the_log() {
    let cli = Cli::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args(["directory", "list"])
        .env("ELICENCE_DATA_DIR", cli.dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", cli.dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env(
            "ELICENCE_DATABASE_URL",
            "mysql://el:hunter2-s3cr3t@db.example/el",
        )
        .env("ELICENCE_LIBRARY_SECRET", "hunter2-s3cr3t")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert_eq!(code(&out), 1);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(
        printed.contains("mysql://el:***@db.example/el"),
        "{printed}"
    );
}

#[tokio::test]
async fn an_early_renewal_shows_as_pending_and_the_old_code_still_verifies() {
    let cli = Cli::new().await;
    let (id, qr_text) = cli.issue_example(FOOD);
    let starts = elicence::time_util::format_date(
        elicence::time_util::today_cst() + time::Duration::days(30),
    );
    cli.ok(&["licence", "renew", &id, "--valid-from", &starts]);
    let shown = cli.ok(&["licence", "show", &id]);
    assert!(
        shown.contains(&format!("pending   renewal (version 2) from {starts}")),
        "{shown}"
    );
    let latest = cli.ok(&["licence", "show", &id, "--version", "2"]);
    assert!(latest.contains("in effect version 1"), "{latest}");
    let versions = cli.ok(&["licence", "versions", &id]);
    let marks: Vec<bool> = versions.lines().map(|l| l.ends_with("(pending)")).collect();
    assert_eq!(marks, [false, true], "{versions}");
    let out = cli.run(&["verify", &qr_text]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("version 2 (renewed) takes effect on {starts}")),
        "{printed}"
    );
}

/// A log that goes to a file or a journal (not a terminal) is plain text, without colour codes.
#[tokio::test]
async fn the_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let cli = Cli::new().await;
    let out = Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args(["register", "show"])
        .env("ELICENCE_DATA_DIR", cli.dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", cli.dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &cli.database.url)
        .env("ELICENCE_MODE", "development")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("WARN"), "nothing was logged: {log}");
    assert!(!log.contains('\u{1b}'), "colour codes in the log: {log:?}");
}

/// A usage error exits 64 (EX_USAGE), never 2, which `verify` and `convert` use for results;
/// `--help` exits 0.
#[tokio::test]
async fn a_usage_error_exits_64_and_help_exits_0() {
    let cli = Cli::new().await;
    for args in [
        &["licence", "show"][..],
        &["verify", "--no-such-flag", "x"],
        &["no-such-command"],
    ] {
        let out = cli.run(args);
        assert_eq!(
            code(&out),
            64,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(code(&cli.run(&["licence", "show", "--help"])), 0);
    assert_eq!(code(&cli.run(&["--version"])), 0);
}

/// The HTTP API over the database and keys a [`Cli`] uses, for comparing `--json` with the API's
/// answer to the same operation; returns the server and an admin token.
async fn api_of(cli: &Cli) -> (String, String, reqwest::Client) {
    let app = elicence::app::App::open(settings(cli.dir.path(), &cli.database.url))
        .await
        .unwrap();
    let (_, token) = app
        .create_token(
            &elicence::app::Actor::local_operator(),
            "api test",
            None,
            &[elicence::app::Role::Admin],
        )
        .await
        .unwrap();
    let base = serve(
        std::sync::Arc::new(app),
        elicence::http::HttpOptions {
            verify_per_minute: None,
            ..Default::default()
        },
    )
    .await;
    (base, token, reqwest::Client::new())
}

async fn api_get(api: &(String, String, reqwest::Client), path: &str) -> serde_json::Value {
    let (base, token, client) = api;
    let response = client
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{path}: {response:?}");
    response.json().await.unwrap()
}

fn cli_json(cli: &Cli, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&cli.ok(&args)).unwrap()
}

#[tokio::test]
async fn directory_list_json_is_the_apis_directory() {
    let cli = Cli::new().await;
    let printed = cli_json(&cli, &["directory", "list"]);
    let api = api_of(&cli).await;
    assert_eq!(printed, api_get(&api, "/api/v1/directory").await);
}

#[tokio::test]
async fn directory_show_json_is_the_apis_licence_type() {
    let cli = Cli::new().await;
    let printed = cli_json(&cli, &["directory", "show", PERMIT]);
    let api = api_of(&cli).await;
    let answered = api_get(&api, &format!("/api/v1/directory/{PERMIT}")).await;
    assert_eq!(printed, answered);
}

/// The one field that differs is `generated_at`: each answer is stamped when it is made.
#[tokio::test]
async fn trust_export_json_and_file_are_the_published_trust_list() {
    let cli = Cli::new().await;
    let file = cli.path("trust.json");
    let mut printed = cli_json(&cli, &["trust", "export", &file]);
    let mut written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let api = api_of(&cli).await;
    let mut answered = api_get(&api, "/.well-known/elicence/trust.json").await;
    for list in [&mut printed, &mut written, &mut answered] {
        assert!(list["generated_at"].is_string(), "{list}");
        list["generated_at"] = serde_json::Value::Null;
    }
    assert_eq!(printed, answered);
    assert_eq!(written, answered);
}

#[tokio::test]
async fn licence_show_json_is_the_apis_licence() {
    let cli = Cli::new().await;
    let (id, _) = cli.issue_example(FOOD);
    let printed = cli_json(&cli, &["licence", "show", &id]);
    let api = api_of(&cli).await;
    assert_eq!(
        printed,
        api_get(&api, &format!("/api/v1/licences/{id}")).await
    );
}

#[tokio::test]
async fn verify_json_is_the_apis_verification() {
    let cli = Cli::new().await;
    let (_, qr_text) = cli.issue_example(SOLE_TRADER);
    let printed = cli_json(&cli, &["verify", &qr_text]);
    let (base, _, client) = api_of(&cli).await;
    let answered: serde_json::Value = client
        .post(format!("{base}/api/v1/verify"))
        .json(&serde_json::json!({"input": qr_text}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(printed, answered);
}

/// `convert --json` prints the finished job as `GET /api/v1/batches/{id}` answers it: the job and
/// the first page of row outcomes (no field differs: both read the stored job). Every row is in
/// the report files.
#[tokio::test]
async fn convert_json_is_the_apis_batch_status() {
    let cli = Cli::new().await;
    let batch = cli.path("batch");
    cli.ok(&[
        "sample-batch",
        "--rows",
        "6",
        "--bad-rate",
        "0.34",
        "--seed",
        "14",
        "--out",
        &batch,
    ]);
    let out = cli.run(&["convert", &batch, "--json"]);
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["rows"].as_array().unwrap().len(), 6, "{printed}");
    let id = printed["batch"]["id"].as_str().unwrap().to_string();
    let api = api_of(&cli).await;
    let answered = api_get(&api, &format!("/api/v1/batches/{id}")).await;
    assert_eq!(printed, answered);
}

/// `staff create` prints the one-time password once (plain and `--json`); `staff list` never
/// shows it; a taken login exits non-zero naming the login and adds no account.
#[tokio::test]
async fn staff_create_prints_the_one_time_password_once_and_list_never_does() {
    let cli = Cli::new().await;
    let create = |login: &str, json: bool| {
        let mut args = vec![
            "staff",
            "create",
            "--department",
            MARKET_BUREAU,
            "--roles",
            "clerk,officer",
            "--login",
            login,
            "--name",
            "王芳",
        ];
        if json {
            args.insert(0, "--json");
        }
        cli.run(&args)
    };
    let out = create("wang.fang", false);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8(out.stdout).unwrap();
    let password = printed.lines().last().unwrap().to_string();
    assert!(printed.starts_with("staff wang.fang (王芳)"), "{printed}");
    assert_eq!(password.len(), 19, "{printed}");

    let out = create("li.na", true);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["login"], "li.na");
    assert_eq!(created["roles"], "clerk,officer");
    let second = created["one_time_password"].as_str().unwrap().to_string();
    assert_ne!(second, password);

    let listed = cli.ok(&["staff", "list"]);
    assert!(
        listed.contains("wang.fang\t王芳\t11330122MB0000001M\tclerk,officer"),
        "{listed}"
    );
    assert!(
        !listed.contains(&password) && !listed.contains(&second),
        "{listed}"
    );
    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "staff", "list"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed[0].get("one_time_password").is_none(), "{listed}");

    let out = create("wang.fang", false);
    assert_ne!(code(&out), 0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("login: \"wang.fang\" is taken"), "{stderr}");
    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "staff", "list"])).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // A reset prints a new one-time password; a disabled account is listed as such.
    let reset = cli.ok(&["staff", "reset", "wang.fang"]);
    let third = reset.lines().last().unwrap();
    assert!(third.len() == 19 && third != password, "{reset}");
    cli.ok(&["staff", "disable", "li.na"]);
    let listed: serde_json::Value =
        serde_json::from_str(&cli.ok(&["--json", "staff", "list"])).unwrap();
    assert!(listed[1]["disabled_at"].is_string(), "{listed}");
    assert_ne!(
        code(&cli.run(&["staff", "disable", "li.na"])),
        0,
        "disabled already"
    );
}

/// `supervision summary --json` prints what `GET /api/v1/supervision/summary` answers for the
/// same range, and a bad range exits 1 naming the field.
#[tokio::test]
async fn supervision_summary_json_is_the_apis_summary() {
    let cli = Cli::new().await;
    cli.issue_example(FOOD);
    let today = elicence::time_util::format_date(elicence::time_util::today_cst());
    let printed = cli_json(
        &cli,
        &["supervision", "summary", "--from", &today, "--to", &today],
    );
    assert_eq!(printed["totals"][0]["issued"], 1, "{printed}");
    let api = api_of(&cli).await;
    let answered = api_get(
        &api,
        &format!("/api/v1/supervision/summary?from={today}&to={today}"),
    )
    .await;
    assert_eq!(printed, answered);
    let table = cli.ok(&["supervision", "summary"]);
    assert!(table.contains(MARKET_BUREAU), "{table}");
    let refused = cli.run(&["supervision", "summary", "--from", "2026-02-30"]);
    assert_eq!(code(&refused), 1);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("from:"));
}

#[tokio::test]
async fn licence_qr_exports_the_code_alone_as_a_png_and_an_svg_that_read_back() {
    let cli = Cli::new().await;
    let (id, qr_text) = cli.issue_example(FOOD);
    let png = cli.path("code.png");
    let said = cli.ok(&["licence", "qr", &id, "--out", &png]);
    assert!(said.starts_with(&png), "{said}");
    let svg = cli.path("code.svg");
    cli.ok(&["licence", "qr", &id, "--version", "1", "--svg", "-o", &svg]);
    // An SVG on standard output is the same file.
    let printed = cli.ok(&["licence", "qr", &id, "--svg"]);
    assert_eq!(printed, std::fs::read_to_string(&svg).unwrap());
    let svg_png = crate::qr_screen::svg_to_png(std::path::Path::new(&svg));
    for image in [std::path::PathBuf::from(&png), svg_png] {
        let read = elicence::bench::qr::read_qr(&image).unwrap();
        assert_eq!(
            read.as_deref(),
            Some(qr_text.as_str()),
            "{}",
            image.display()
        );
    }
    let both = cli.run(&["licence", "qr", &id, "--png", "--svg"]);
    assert_eq!(
        code(&both),
        64,
        "--png and --svg together are a usage error"
    );
    let missing = cli.run(&["licence", "qr", &id, "--version", "9", "--out", &png]);
    assert_eq!(code(&missing), 1);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
