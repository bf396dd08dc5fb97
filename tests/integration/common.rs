//! Test helpers: a fresh application per test, on SQLite (default) or on PostgreSQL when
//! `ELICENCE_TEST_BACKEND=postgres` (a fresh database per test on the server named by
//! `ELICENCE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`). When PostgreSQL is
//! asked for and unreachable, the test fails: it never quietly runs on SQLite instead.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use elicence::app::App;
use elicence::config::Settings;
use elicence::licence::RecordInput;

pub const FOOD: &str = "11100000000013338W032";
pub const SOLE_TRADER: &str = "11100000000013338W005";
pub const PERMIT: &str = "11100000MB0000010Q001";
pub const DISABILITY: &str = "13100000MB0000020K001";
pub const MARKET_BUREAU: &str = "11330122MB0000001M";
pub const DISABILITY_FEDERATION: &str = "13330122MB0000003M";

pub struct TestApp {
    pub app: Arc<App>,
    pub database_url: String,
    pub dir: tempfile::TempDir,
    _database: TestDatabase,
}

pub fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
}

/// The `elicence` binary on a test deployment in `dir` (its `data/` and `keys/`) over the
/// database at `database_url`, with the sample templates, a fixed public address and quiet logs.
pub fn elicence_command(dir: &Path, database_url: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_elicence"));
    command
        .env("ELICENCE_DATA_DIR", dir.join("data"))
        .env("ELICENCE_KEYS_DIR", dir.join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", database_url)
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("RUST_LOG", "warn");
    command
}

pub fn postgres_requested() -> bool {
    std::env::var("ELICENCE_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// A fresh, empty database of the backend under test; a PostgreSQL one is dropped with it.
pub struct TestDatabase {
    pub url: String,
}

pub async fn fresh_database(dir: &Path) -> TestDatabase {
    if !postgres_requested() {
        let url = format!("sqlite:{}", dir.join("data/elicence.sqlite").display());
        return TestDatabase { url };
    }
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let server = std::env::var("ELICENCE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!(
        "elicence_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>()
    );
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {server} is unreachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = server.rsplit_once('/').expect("URL has a database").0;
    TestDatabase {
        url: format!("{base}/{name}"),
    }
}

impl Drop for TestDatabase {
    /// Drops a PostgreSQL test database (forcing its open connections closed) so runs do not
    /// pile databases up on the server. SQLite files go with the temporary folder.
    fn drop(&mut self) {
        if !self.url.starts_with("postgres") {
            return;
        }
        let Some((server, name)) = self.url.rsplit_once('/') else {
            return;
        };
        let admin = format!("{server}/test");
        let name = name.to_string();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A direct connection to a test database, bypassing the application (to tamper, as an attacker
/// with database access would).
pub async fn raw_pool(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.unwrap()
}

pub fn settings(dir: &Path, database_url: &str) -> Settings {
    let vars = [
        ("ELICENCE_DATA_DIR", dir.join("data").display().to_string()),
        ("ELICENCE_KEYS_DIR", dir.join("keys").display().to_string()),
        (
            "ELICENCE_TEMPLATES_DIR",
            templates_dir().display().to_string(),
        ),
        ("ELICENCE_DATABASE_URL", database_url.to_string()),
        (
            "ELICENCE_VERIFY_BASE",
            "https://zz.example.gov.cn".to_string(),
        ),
    ];
    Settings::load_from(None, |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
}

impl TestApp {
    pub async fn new() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(dir.path()).await;
        let app = App::open(settings(dir.path(), &database.url))
            .await
            .unwrap();
        TestApp {
            app: Arc::new(app),
            database_url: database.url.clone(),
            dir,
            _database: database,
        }
    }

    /// Another application on the same database and keys (a second instance, or a restart).
    pub async fn reopen(&self) -> App {
        App::open(settings(self.dir.path(), &self.database_url))
            .await
            .unwrap()
    }
}

/// The directory's sample record of a type, with the given licence number.
pub fn sample(app: &App, type_code: &str, number: &str) -> RecordInput {
    let code = elicence::identifiers::TypeCode::parse(type_code).unwrap();
    let mut record = elicence::licence::RecordInput::example_of(app.licence_type(&code).unwrap());
    record.number = Some(number.to_string());
    record
}

/// `request` with `token` as its bearer credential, if there is one.
pub fn with_token(
    request: reqwest::RequestBuilder,
    token: Option<&str>,
) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Serves `app` on a random local port, as `serve` does (with client addresses); returns its
/// base URL.
pub async fn serve(app: Arc<App>, options: elicence::http::HttpOptions) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = elicence::http::router(app, options);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    base
}

/// The base32 part of the QR text in an issue answer (`/V/{B32}` is the page it opens).
pub fn qr_b32(issued: &serde_json::Value) -> String {
    let qr = issued["qr_text"]
        .as_str()
        .expect("an issue answer has qr_text");
    qr.rsplit_once("/V/")
        .expect("a QR text has /V/")
        .1
        .to_string()
}

/// A running HTTP service on a random local port, over a fresh application.
pub struct TestServer {
    pub t: TestApp,
    pub base: String,
    pub client: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(elicence::http::HttpOptions {
            verify_per_minute: None,
            ..Default::default()
        })
        .await
    }

    pub async fn start_with(options: elicence::http::HttpOptions) -> TestServer {
        let t = TestApp::new().await;
        let base = serve(t.app.clone(), options).await;
        TestServer {
            t,
            base,
            client: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Issues the directory's sample record of a type with `number` over HTTP; returns the response.
    pub async fn issue(&self, token: &str, type_code: &str, number: &str) -> reqwest::Response {
        let record = sample(&self.t.app, type_code, number);
        self.client
            .post(self.url("/api/v1/licences"))
            .bearer_auth(token)
            .json(&serde_json::json!({"type_code": type_code, "record": record}))
            .send()
            .await
            .unwrap()
    }

    /// GETs `path` (with `token`, if any) and reads the answer as JSON.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        with_token(self.client.get(self.url(path)), token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// A token for `department` (None: no department) with `roles`.
    pub async fn token(&self, department: Option<&str>, roles: &[elicence::app::Role]) -> String {
        let admin = elicence::app::Actor::local_operator();
        self.t
            .app
            .create_token(&admin, "test", department, roles)
            .await
            .unwrap()
            .1
    }
}

/// A child process killed when the test ends, however it ends.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A local port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 20 s) until `url` answers at all.
pub async fn wait_until_up(url: &str) {
    let started = std::time::Instant::now();
    while reqwest::get(url).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{url} did not come up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The purposes of a fresh deployment's trust list, in its order: a licence signer per
/// department, the PDF seal CA and a seal per department, the supervision key, the log key.
pub const TRUST_LIST_PURPOSES: [&str; 9] = [
    "licence",
    "licence",
    "licence",
    "pdf-seal",
    "pdf-seal",
    "pdf-seal",
    "pdf-seal",
    "supervision",
    "log",
];
