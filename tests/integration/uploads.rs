//! Uploads that would exhaust the machine (issue #12, item 4): a declared or actual length over
//! the limit, a zip bomb, entries sharing their bytes, a damaged entry, paths leaving the batch,
//! a manifest line too long — each refused with nothing kept — and what happens to uploads and
//! jobs afterwards: deleted when their job ends (or kept for the configured time), and no more
//! jobs running at once than allowed. Small limits come from the settings; the heavy
//! measurements (a 1 GiB body, a big bomb) are in tools/upload-rss.sh.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use elicence::app::{App, Role};
use sqlx::Row;

/// A running service over a fresh application whose settings have `overrides`.
struct Server {
    app: Arc<App>,
    base: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
    database_url: String,
    _database: TestDatabase,
}

impl Server {
    async fn start(overrides: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(dir.path()).await;
        let defaults = settings(dir.path(), &database.url);
        let settings = elicence::config::Settings::load_from(None, |name| {
            let fixed = match name {
                "ELICENCE_DATA_DIR" => Some(defaults.data_dir.display().to_string()),
                "ELICENCE_KEYS_DIR" => Some(defaults.keys_dir.display().to_string()),
                "ELICENCE_TEMPLATES_DIR" => Some(defaults.templates_dir.display().to_string()),
                "ELICENCE_DATABASE_URL" => Some(database.url.clone()),
                "ELICENCE_VERIFY_BASE" => Some(defaults.verify_base.clone()),
                _ => None,
            };
            overrides
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .or(fixed)
        })
        .unwrap();
        let app = Arc::new(App::open(settings).await.unwrap());
        let base = serve(
            app.clone(),
            elicence::http::HttpOptions {
                verify_per_minute: None,
                ..Default::default()
            },
        )
        .await;
        Server {
            app,
            base,
            client: reqwest::Client::new(),
            database_url: database.url.clone(),
            _database: database,
            dir,
        }
    }

    async fn clerk(&self) -> String {
        let admin = elicence::app::Actor::local_operator();
        self.app
            .create_token(&admin, "test", Some(MARKET_BUREAU), &[Role::Clerk])
            .await
            .unwrap()
            .1
    }

    async fn post(&self, token: &str, zip: Vec<u8>) -> (u16, serde_json::Value) {
        let answer = self
            .client
            .post(format!("{}/api/v1/batches", self.base))
            .bearer_auth(token)
            .header("content-type", "application/zip")
            .body(zip)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    /// Posts `zip` and expects a 400 whose message contains `reason`, with nothing kept.
    async fn refused(&self, zip: Vec<u8>, reason: &str) {
        let token = self.clerk().await;
        let (status, body) = self.post(&token, zip).await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message:?} lacks {reason:?}");
        self.assert_nothing_kept().await;
    }

    async fn job(&self, token: &str, id: &str) -> serde_json::Value {
        self.client
            .get(format!("{}/api/v1/batches/{id}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()["batch"]
            .clone()
    }

    async fn wait_until_ended(&self, token: &str, id: &str) -> serde_json::Value {
        for _ in 0..600 {
            let job = self.job(token, id).await;
            if job["state"] == "done" || job["state"] == "failed" {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not end");
    }

    fn data(&self, path: &str) -> PathBuf {
        self.dir.path().join("data").join(path)
    }

    /// The uploads the blob store holds, folder or database.
    async fn stored_uploads(&self) -> usize {
        let in_folder = std::fs::read_dir(self.data("blobs/uploads")).map_or(0, |d| d.count());
        let pool = raw_pool(&self.database_url).await;
        let in_database: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM blob_parts) + (SELECT COUNT(*) FROM blobs
             WHERE key LIKE 'uploads/%') AS n",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
        in_folder + in_database as usize
    }

    /// No job, no stored upload, no file left in the incoming or work folders.
    async fn assert_nothing_kept(&self) {
        assert_eq!(self.stored_uploads().await, 0, "an upload was kept");
        let pool = raw_pool(&self.database_url).await;
        let jobs: i64 = sqlx::query("SELECT COUNT(*) AS n FROM batches")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
        assert_eq!(jobs, 0, "a job was recorded");
        for folder in ["incoming", "work"] {
            let left = std::fs::read_dir(self.data(folder)).map_or(0, |d| d.count());
            assert_eq!(left, 0, "{folder} is not empty");
        }
    }
}

fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn deflated(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_of(entries, zip::CompressionMethod::Deflated)
}

/// A sample batch of `rows` rows of the market bureau's food licences, zipped.
fn sample_zip(app: &App, dir: &Path, rows: u64, seed: u64) -> Vec<u8> {
    zip_folder(&sample_folder(app, dir, rows, 0.0, seed, &[FOOD]))
}

/// A sample batch of `types` with a share `bad_rate` of deliberately bad rows, as a folder.
pub fn sample_folder(
    app: &App,
    dir: &Path,
    rows: u64,
    bad_rate: f64,
    seed: u64,
    types: &[&str],
) -> PathBuf {
    sample_folder_looking(app, dir, rows, bad_rate, seed, types, Default::default())
}

/// A sample batch whose scans look as `scans` says (resolution, degraded).
pub fn sample_folder_looking(
    app: &App,
    dir: &Path,
    rows: u64,
    bad_rate: f64,
    seed: u64,
    types: &[&str],
    scans: elicence::batch::sample::ScanLook,
) -> PathBuf {
    let out = dir.join(format!("batch-{seed}"));
    let font = std::fs::read(templates_dir().join(elicence::render::FONT_FILE)).unwrap();
    let options = elicence::batch::sample::Options {
        rows,
        bad_rate,
        seed,
        gb18030: false,
        max_scan_bytes: app.settings.max_scan_bytes,
        types: types.iter().map(|t| t.to_string()).collect(),
        scans,
    };
    elicence::batch::sample::write(&app.directory, &font, &out, &options).unwrap();
    out
}

/// Every file under `out`, zipped with paths relative to it.
pub fn zip_folder(out: &Path) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut folders = vec![out.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path
                    .strip_prefix(out)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_string();
                entries.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    let entries: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    deflated(&entries)
}

/// Sends `head` (request line and headers) and, after it, `body`, on a raw connection; returns
/// what the server answered within five seconds.
pub fn raw_request(base: &str, head: &str, body: &[u8]) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before the body is all sent.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    while let Ok(n) = stream.read(&mut buffer) {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_length_over_the_limit_is_refused_before_the_body_is_read() {
    let s = Server::start(&[("ELICENCE_MAX_UPLOAD_BYTES", "100000")]).await;
    let token = s.clerk().await;
    let base = s.base.clone();
    // Only the headers are sent: the 413 must come without waiting for the body.
    let head = format!(
        "POST /api/v1/batches HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/zip\r\ncontent-length: 100001\r\n\r\n"
    );
    let answer = tokio::task::spawn_blocking(move || raw_request(&base, &head, b""))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");

    // A body without a declared length is cut off as soon as it passes the limit.
    let base = s.base.clone();
    let head = format!(
        "POST /api/v1/batches HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/zip\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    let mut chunked = Vec::new();
    for _ in 0..20 {
        chunked.extend_from_slice(b"2710\r\n"); // 10,000 bytes
        chunked.extend_from_slice(&[b'z'; 10_000]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || raw_request(&base, &head, &chunked))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    s.assert_nothing_kept().await;
}

#[tokio::test]
async fn a_zip_bomb_is_refused_before_it_is_expanded_and_nothing_is_kept() {
    let s = Server::start(&[("ELICENCE_MAX_EXPANDED_BYTES", "1000000")]).await;
    // 4 MB of zeros deflates to a few KB, each entry under the scan limit.
    let zeros = vec![0u8; 4_000_000];
    let bomb = deflated(&[("manifest.csv", b"x"), ("scans/a.png", &zeros)]);
    assert!(bomb.len() < 10_000);
    s.refused(bomb, "over the limit of 1000000 bytes").await;
    // Many small entries add up the same way.
    let names: Vec<String> = (0..5).map(|i| format!("scans/{i}.png")).collect();
    let mut entries: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), &zeros[..300_000]))
        .collect();
    entries.push(("manifest.csv", b"x"));
    s.refused(deflated(&entries), "expand to").await;
}

/// `zip` with a second central-directory entry, named `alias` (as long as `name`), pointing at
/// the same local entry and data as `name`.
fn with_shared_entry(zip: &[u8], name: &str, alias: &str) -> Vec<u8> {
    assert_eq!(name.len(), alias.len());
    let u16_at = |at: usize| u16::from_le_bytes([zip[at], zip[at + 1]]) as usize;
    let u32_at = |at: usize| u32::from_le_bytes(zip[at..at + 4].try_into().unwrap()) as usize;
    let end = zip.len() - 22; // no comment
    assert_eq!(&zip[end..end + 4], b"PK\x05\x06");
    let (entries, directory_size, directory_start) =
        (u16_at(end + 10), u32_at(end + 12), u32_at(end + 16));
    let mut at = directory_start;
    let record = loop {
        let length = 46 + u16_at(at + 28) + u16_at(at + 30) + u16_at(at + 32);
        if &zip[at + 46..at + 46 + name.len()] == name.as_bytes() {
            break zip[at..at + length].to_vec();
        }
        at += length;
    };
    let mut copy = record.clone();
    copy[46..46 + alias.len()].copy_from_slice(alias.as_bytes());
    let mut out = zip[..end].to_vec();
    out.extend_from_slice(&copy);
    let mut tail = zip[end..].to_vec();
    tail[8..10].copy_from_slice(&((entries + 1) as u16).to_le_bytes());
    tail[10..12].copy_from_slice(&((entries + 1) as u16).to_le_bytes());
    tail[12..16].copy_from_slice(&((directory_size + copy.len()) as u32).to_le_bytes());
    out.extend_from_slice(&tail);
    out
}

#[tokio::test]
async fn entries_sharing_their_bytes_are_refused() {
    let s = Server::start(&[]).await;
    let zip = deflated(&[("manifest.csv", b"x"), ("scans/a.png", &[0u8; 50_000])]);
    let shared = with_shared_entry(&zip, "scans/a.png", "scans/b.png");
    s.refused(shared, "two entries share the same bytes").await;
}

#[tokio::test]
async fn a_damaged_entry_is_refused_by_its_crc() {
    let s = Server::start(&[]).await;
    let scan = b"\x89PNG\r\n\x1a\n and the rest of a scan";
    let mut zip = zip_of(
        &[("manifest.csv", b"x"), ("scans/a.png", scan)],
        zip::CompressionMethod::Stored,
    );
    let at = zip.windows(scan.len()).position(|w| w == scan).unwrap();
    zip[at + 12] ^= 0x20; // same size, different bytes
    s.refused(zip, "\"scans/a.png\" is damaged").await;
}

#[tokio::test]
async fn absolute_and_climbing_paths_are_refused() {
    let s = Server::start(&[]).await;
    for name in ["/etc/evil.png", "../evil.png", "scans/../../evil.png"] {
        let zip = deflated(&[("manifest.csv", b"x"), (name, b"x")]);
        s.refused(zip, "would be written outside the batch").await;
    }
}

#[tokio::test]
async fn a_manifest_line_over_the_limit_is_refused_naming_the_line() {
    let s = Server::start(&[("ELICENCE_MAX_MANIFEST_LINE_BYTES", "200")]).await;
    let manifest = format!("type_code,number\r\nshort,1\r\n{}\r\n", "x".repeat(201));
    let zip = deflated(&[("manifest.csv", manifest.as_bytes())]);
    s.refused(
        zip,
        "manifest.csv line 3 is longer than the limit of 200 bytes",
    )
    .await;
}

#[tokio::test]
async fn a_quoted_cell_running_over_many_short_lines_is_refused_naming_its_first_line() {
    let s = Server::start(&[("ELICENCE_MAX_MANIFEST_LINE_BYTES", "200")]).await;
    let manifest = format!(
        "type_code,number\r\nshort,1\r\nt,\"{}\"\r\n",
        "ab\r\n".repeat(100)
    );
    let zip = deflated(&[("manifest.csv", manifest.as_bytes())]);
    s.refused(
        zip,
        "manifest.csv line 3: the row starting there runs over several lines (a quoted cell) \
         and is longer than the limit of 200 bytes",
    )
    .await;
}

#[tokio::test]
async fn an_upload_is_deleted_when_its_job_ends_unless_kept_for_a_while() {
    let s = Server::start(&[]).await;
    let token = s.clerk().await;
    let zip = sample_zip(&s.app, s.dir.path(), 3, 71);
    let (status, body) = s.post(&token, zip.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["batch"]["id"].as_str().unwrap();
    let job = s.wait_until_ended(&token, id).await;
    assert_eq!((&job["state"], &job["issued"]), (&"done".into(), &3.into()));
    // The job's own clean-up runs just after it ends: it deletes the upload, then forgets it.
    for _ in 0..100 {
        let forgotten = s
            .app
            .store
            .batch(id)
            .await
            .unwrap()
            .unwrap()
            .upload
            .is_none();
        if s.stored_uploads().await == 0 && forgotten {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.stored_uploads().await, 0);
    assert_eq!(s.app.store.batch(id).await.unwrap().unwrap().upload, None);

    let keeping = Server::start(&[("ELICENCE_UPLOAD_RETENTION_SECONDS", "3600")]).await;
    let token = keeping.clerk().await;
    let (status, body) = keeping.post(&token, zip).await;
    assert_eq!(status, 202, "{body}");
    let id = body["batch"]["id"].as_str().unwrap();
    keeping.wait_until_ended(&token, id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    elicence::batch::job::forget_finished_uploads(&keeping.app).await;
    assert!(
        keeping.stored_uploads().await > 0,
        "deleted before its time"
    );
}

#[tokio::test]
async fn jobs_over_the_limit_wait_queued_until_one_ends() {
    let s = Server::start(&[("ELICENCE_MAX_CONCURRENT_JOBS", "1")]).await;
    let token = s.clerk().await;
    let mut ids = Vec::new();
    for seed in [81, 82] {
        let (status, body) = s
            .post(&token, sample_zip(&s.app, s.dir.path(), 30, seed))
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push(body["batch"]["id"].as_str().unwrap().to_string());
    }
    let mut seen_waiting = false;
    for _ in 0..1200 {
        let state = |job: serde_json::Value| job["state"].as_str().unwrap().to_string();
        let states = [
            state(s.job(&token, &ids[0]).await),
            state(s.job(&token, &ids[1]).await),
        ];
        if states.iter().all(|s| s == "running") {
            // The two reads are not one snapshot: the first job may have ended and the second
            // started between them. If so, the first reads as ended now.
            let first_again = state(s.job(&token, &ids[0]).await);
            assert_ne!(first_again, "running", "two jobs ran at once");
        }
        seen_waiting |=
            states.contains(&"running".to_string()) && states.contains(&"queued".to_string());
        if states.iter().all(|s| s == "done") {
            assert!(seen_waiting, "the second job never waited");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the jobs did not finish");
}

#[tokio::test]
async fn the_command_line_refuses_a_folder_whose_manifest_has_a_line_over_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let batch = dir.path().join("batch");
    std::fs::create_dir(&batch).unwrap();
    let manifest = format!("type_code,number\n{}\n", "x".repeat(201));
    std::fs::write(batch.join("manifest.csv"), manifest).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args(["convert", batch.to_str().unwrap()])
        .env("ELICENCE_DATA_DIR", dir.path().join("data"))
        .env("ELICENCE_KEYS_DIR", dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &database.url)
        .env("ELICENCE_MAX_MANIFEST_LINE_BYTES", "200")
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("manifest.csv line 2 is longer than the limit of 200 bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_upload_whose_job_cannot_be_recorded_is_not_kept() {
    let s = Server::start(&[]).await;
    let token = s.clerk().await;
    let zip = sample_zip(&s.app, s.dir.path(), 2, 73);
    // Recording the job fails once the upload is in the blob store.
    let pool = raw_pool(&s.database_url).await;
    sqlx::query("ALTER TABLE batches RENAME TO batches_gone")
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = s.post(&token, zip).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(s.stored_uploads().await, 0, "the upload was kept");
}

/// (line, outcome, column, reason) of every row of a batch, as the API shows them: what a clerk
/// is told, whichever way the batch came in (identifiers differ between two services, so they
/// are left out).
fn outcomes(rows: &serde_json::Value) -> Vec<[serde_json::Value; 4]> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ["line", "outcome", "column", "reason"]
                .map(|key| r.get(key).cloned().unwrap_or_default())
        })
        .collect()
}

#[tokio::test]
async fn the_sample_batch_with_its_bad_rows_gives_the_same_rows_over_http_as_from_a_folder() {
    // One service converts the folder from the command line's library call, another takes the
    // same folder zipped over HTTP; neither has seen the batch before.
    let folder_side = TestApp::new().await;
    let s = Server::start(&[]).await;
    let types = [FOOD, SOLE_TRADER]; // the market bureau's own
    let folder = sample_folder(&s.app, s.dir.path(), 80, 0.3, 41, &types);
    let expected = std::fs::read_to_string(folder.join("expected-rejections.csv")).unwrap();
    assert!(expected.contains(",scan_too_large,scan"), "{expected}");

    let actor = elicence::app::Actor::local_operator();
    let id = elicence::batch::create(&folder_side.app, &actor, false)
        .await
        .unwrap();
    elicence::batch::convert(
        &folder_side.app,
        &actor,
        &id,
        &folder,
        &elicence::batch::Quiet,
    )
    .await
    .unwrap();
    let from_folder = folder_side
        .app
        .store
        .batch_rows(id.batch_id(), 0, 1000)
        .await
        .unwrap();

    let token = s.clerk().await;
    let (status, queued) = s.post(&token, zip_folder(&folder)).await;
    assert_eq!(status, 202, "the zip is accepted: {queued}");
    let id = queued["batch"]["id"].as_str().unwrap().to_string();
    let job = s.wait_until_ended(&token, &id).await;
    assert_eq!(job["state"], "done", "{job}");
    let page: serde_json::Value = s
        .client
        .get(format!("{}/api/v1/batches/{id}?limit=1000", s.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let over_http = outcomes(&page["rows"]);
    assert_eq!(over_http.len(), 80);
    assert_eq!(
        over_http,
        outcomes(&serde_json::to_value(&from_folder).unwrap())
    );
    let limit = s.app.settings.max_scan_bytes;
    let too_large = over_http
        .iter()
        .find(|[.., reason]| {
            reason
                .as_str()
                .is_some_and(|r| r.contains("over the limit"))
        })
        .expect("the oversize scan is one rejected row");
    assert_eq!(too_large[2], "scan");
    let reason = too_large[3].as_str().unwrap();
    assert!(
        reason.ends_with(&format!(
            "is {} bytes, over the limit of {limit} bytes",
            limit + 1
        )),
        "{reason}"
    );
    assert!(over_http.iter().any(|[_, outcome, ..]| outcome == "issued"));
}
