//! Batch conversion of stock licences (SPEC §9): a sample batch with every kind of bad row, a
//! GB18030 manifest, all-or-nothing, a conversion killed mid-batch, and the HTTP job.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::*;
use elicence::app::{Actor, App, Role};
use elicence::batch::{self, sample, BatchState, Quiet, RowOutcome, Summary};
use elicence::blobs::Blobs;
use elicence::store::RowResult;
use sqlx::Row;

fn write_sample(
    app: &App,
    dir: &Path,
    rows: u64,
    bad_rate: f64,
    seed: u64,
    gb18030: bool,
) -> PathBuf {
    write_sample_of(app, dir, rows, bad_rate, seed, gb18030, &[])
}

fn write_sample_of(
    app: &App,
    dir: &Path,
    rows: u64,
    bad_rate: f64,
    seed: u64,
    gb18030: bool,
    types: &[&str],
) -> PathBuf {
    let out = dir.join(format!("batch-{seed}"));
    let font = std::fs::read(templates_dir().join(elicence::render::FONT_FILE)).unwrap();
    let options = sample::Options {
        rows,
        bad_rate,
        seed,
        gb18030,
        max_scan_bytes: app.settings.max_scan_bytes,
        types: types.iter().map(|t| t.to_string()).collect(),
        scans: Default::default(),
    };
    sample::write(&app.directory, &font, &out, &options).unwrap();
    out
}

async fn convert(app: &Arc<App>, dir: &Path, all_or_nothing: bool) -> (Summary, Vec<RowResult>) {
    let actor = Actor::local_operator();
    let run = batch::create(app, &actor, all_or_nothing).await.unwrap();
    let summary = batch::convert(app, &actor, &run, dir, &Quiet)
        .await
        .unwrap();
    let rows = app
        .store
        .batch_rows(run.batch_id(), 0, 100_000)
        .await
        .unwrap();
    (summary, rows)
}

/// (line, kind, column) of the rows the sample broke on purpose.
fn expected_rejections(dir: &Path) -> Vec<(u64, String, String)> {
    let mut reader = csv::Reader::from_path(dir.join("expected-rejections.csv")).unwrap();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_string(), r[2].to_string())
        })
        .collect()
}

async fn licence_count(url: &str) -> i64 {
    let pool = raw_pool(url).await;
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM licences")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    pool.close().await;
    n
}

/// What each kind of bad row must be told, in words a clerk can act on.
fn reason_of(kind: &str) -> &'static str {
    match kind {
        "holder_id_check_digit" => "check character",
        "unknown_type" => "has no licence type",
        "missing_required_field" => "is required",
        "impossible_date" => "is not a date",
        "ends_before_it_starts" => "is before valid_from",
        "expired" => "has passed",
        "scan_missing" => "is not in the batch",
        "scan_path_escapes" => "climbs out of the batch",
        "scan_not_an_image" => "is not a JPEG, PNG, TIFF or PDF",
        "scan_too_large" => "over the limit",
        "duplicate_number" => "appears at line",
        "number_empty" => "keeps the number printed",
        "value_not_allowed" => "is not",
        "extra_cell" => "cells, the header",
        "unprintable_character" => "cannot print",
        other => panic!("a kind without a reason: {other}"),
    }
}

#[tokio::test]
async fn a_sample_batch_issues_good_rows_rejects_each_bad_kind_and_a_rerun_issues_nothing() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 150, 0.15, 11, false);
    let expected = expected_rejections(&dir);
    let kinds: BTreeSet<&str> = expected.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds.len(),
        sample::BAD_KINDS.len(),
        "the sample covers every kind"
    );

    let (summary, rows) = convert(&t.app, &dir, false).await;
    assert_eq!(summary.state, BatchState::Done);
    assert_eq!(rows.len(), 150);
    assert_eq!(summary.counts.rejected, expected.len() as u64);
    assert_eq!(summary.counts.issued, 150 - expected.len() as u64);
    let by_line: HashMap<u64, &RowResult> = rows.iter().map(|r| (r.line, r)).collect();
    for (line, kind, column) in &expected {
        let row = by_line[line];
        assert_eq!(row.outcome, RowOutcome::Rejected, "line {line} ({kind})");
        assert_eq!(
            row.column.as_deref(),
            Some(column.as_str()),
            "line {line} ({kind})"
        );
        let reason = row.reason.as_deref().unwrap();
        assert!(
            reason.contains(reason_of(kind)),
            "line {line} ({kind}): {reason}"
        );
    }

    // An issued row: verifies, binds its scan, and has the scan and the PDF archived.
    let issued = rows
        .iter()
        .find(|r| r.outcome == RowOutcome::Issued)
        .unwrap();
    let licence_id = issued.licence_id.as_deref().unwrap();
    let view = t
        .app
        .show(&Actor::local_operator(), licence_id, None)
        .await
        .unwrap();
    let verification = t.app.verify(&view.version.qr_text).await.unwrap();
    assert_eq!(verification.result, elicence::verify::Outcome::Valid);
    let scan_name = format!(
        "scans/{:07}.{}",
        issued.line - 1,
        if (issued.line - 2) % 4 % 2 == 0 {
            "jpg"
        } else {
            "png"
        }
    );
    let scan = std::fs::read(dir.join(&scan_name)).unwrap();
    let scan_hash = elicence::hash::sha256_hex(&scan);
    assert_eq!(view.version.scan.as_deref(), Some(scan_hash.as_str()));
    assert_eq!(
        t.app.blobs.get(&Blobs::scan_key(&scan_hash)).await.unwrap(),
        Some(scan)
    );
    let pdf = t
        .app
        .blobs
        .get(&Blobs::pdf_key(&view.version.id))
        .await
        .unwrap()
        .expect("the PDF is archived");
    let rendered = t
        .app
        .pdf(&Actor::local_operator(), licence_id, None)
        .await
        .unwrap();
    assert_eq!(pdf, rendered, "the archived PDF is the version's PDF");

    let (again, rows_again) = convert(&t.app, &dir, false).await;
    assert_eq!(again.counts.issued, 0);
    assert_eq!(again.counts.skipped, summary.counts.issued);
    assert_eq!(again.counts.rejected, summary.counts.rejected);
    let skipped = rows_again.iter().find(|r| r.line == issued.line).unwrap();
    assert_eq!(skipped.outcome, RowOutcome::Skipped);
    assert_eq!(skipped.licence_id.as_deref(), Some(licence_id));
    assert_eq!(
        licence_count(&t.database_url).await,
        summary.counts.issued as i64
    );
}

#[tokio::test]
async fn a_gb18030_manifest_and_a_utf8_manifest_with_bom_both_convert() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 12, 0.0, 21, true);
    let raw = std::fs::read(dir.join("manifest.csv")).unwrap();
    assert!(
        std::str::from_utf8(&raw).is_err(),
        "the sample is not UTF-8"
    );
    let (summary, rows) = convert(&t.app, &dir, false).await;
    assert_eq!(summary.encoding, "gb18030");
    assert_eq!(summary.counts.issued, 12, "{rows:?}");
    // The names come through as written, rare characters included.
    let (text, _, _) = encoding_rs::GB18030.decode(&raw);
    let mut manifest = csv::Reader::from_reader(text.as_bytes());
    let first = manifest.records().next().unwrap().unwrap();
    let view = t
        .app
        .show(
            &Actor::local_operator(),
            rows[0].licence_id.as_deref().unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(view.version.holder.name, &first[2]);

    let bom = write_sample(&t.app, t.dir.path(), 4, 0.0, 22, false);
    let utf8 = std::fs::read(bom.join("manifest.csv")).unwrap();
    std::fs::write(
        bom.join("manifest.csv"),
        [b"\xEF\xBB\xBF".as_slice(), &utf8].concat(),
    )
    .unwrap();
    let (summary, _) = convert(&t.app, &bom, false).await;
    assert_eq!(
        (summary.encoding.as_str(), summary.counts.issued),
        ("UTF-8", 4)
    );
}

#[tokio::test]
async fn all_or_nothing_issues_nothing_after_one_bad_row_and_everything_once_fixed() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 30, 0.0, 31, false);
    let manifest = dir.join("manifest.csv");
    let good = std::fs::read_to_string(&manifest).unwrap();
    // Line 20 gets an impossible date.
    let broken: Vec<String> = good
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 19 {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells[4] = "2024-13-01";
                cells.join(",")
            } else {
                line.to_string()
            }
        })
        .collect();
    std::fs::write(&manifest, broken.join("\n") + "\n").unwrap();

    let (summary, rows) = convert(&t.app, &dir, true).await;
    assert_eq!(summary.state, BatchState::Failed);
    assert!(summary
        .error
        .as_deref()
        .unwrap()
        .contains("nothing was issued"));
    assert_eq!(summary.counts.issued, 0);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].line, rows[0].column.as_deref()),
        (20, Some("valid_from"))
    );
    assert_eq!(
        licence_count(&t.database_url).await,
        0,
        "nothing left behind"
    );

    std::fs::write(&manifest, good).unwrap();
    let (summary, _) = convert(&t.app, &dir, true).await;
    assert_eq!(
        (summary.state.as_str(), summary.counts.issued),
        ("done", 30)
    );
}

#[tokio::test]
async fn a_conversion_killed_mid_batch_resumes_and_issues_each_good_row_once() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 900, 0.02, 41, false);
    let bad = expected_rejections(&dir).len() as i64;
    let good = 900 - bad;
    let (data, keys, url) = (
        t.dir.path().join("data"),
        t.dir.path().join("keys"),
        t.database_url.clone(),
    );
    let run = move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_elicence"))
            .args(["convert", dir.to_str().unwrap()])
            .env("ELICENCE_DATA_DIR", &data)
            .env("ELICENCE_KEYS_DIR", &keys)
            .env("ELICENCE_TEMPLATES_DIR", templates_dir())
            .env("ELICENCE_DATABASE_URL", &url)
            .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = run();
    // Kill it once some chunks have committed and before the end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n = licence_count(&t.database_url).await;
        assert!(
            n < good,
            "the conversion finished before it could be killed"
        );
        if n >= 256 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let after_kill = licence_count(&t.database_url).await;
    assert!(after_kill < good);

    let status = tokio::task::spawn_blocking(move || run().wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(2), "rows were rejected, so exit 2");
    assert_eq!(licence_count(&t.database_url).await, good);
    let pool = raw_pool(&t.database_url).await;
    let distinct: i64 = sqlx::query("SELECT COUNT(DISTINCT number) AS n FROM licences")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get("n");
    assert_eq!(distinct, good);
    // The rerun skipped exactly what the killed run had committed.
    let skipped: i64 =
        sqlx::query("SELECT skipped AS n FROM batches ORDER BY created_at DESC, id DESC LIMIT 1")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
    assert_eq!(skipped, after_kill);
    // The rerun marked the killed run interrupted, with its audit record; none is left running.
    let states: Vec<(String, String)> =
        sqlx::query("SELECT id, state FROM batches ORDER BY created_at, id")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("id"), r.get("state")))
            .collect();
    let states_only: Vec<&str> = states.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(states_only, ["interrupted", "done"]);
    let killed = t.app.store.batch(&states[0].0).await.unwrap().unwrap();
    assert_eq!(killed.issued as i64, after_kill);
    assert!(killed.error.unwrap().contains("interrupted"));
    let records = t
        .app
        .audit_records(&Actor::local_operator(), &Default::default(), 0, 1000)
        .await
        .unwrap();
    let interrupted = records
        .iter()
        .find(|r| r.action == "batch.convert" && r.target == states[0].0)
        .expect("the interrupted run's audit record");
    assert_eq!(interrupted.outcome, "failed: interrupted");
    let report = t.app.store.verify_audit().await.unwrap();
    assert!(report.first_break.is_none());
}

/// A process that stalled past its lease while another took the job up can no longer commit:
/// its chunk is rolled back whole, and the audit trail keeps no hole where it was.
#[tokio::test]
async fn a_run_whose_lease_was_taken_commits_nothing_more() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 30, 0.0, 43, false);
    let actor = Actor::local_operator();
    let stalled = batch::create(&t.app, &actor, false).await.unwrap();
    // Another process took the run over (as after this one stalled past its lease).
    let pool = raw_pool(&t.database_url).await;
    sqlx::query("UPDATE batches SET lease_holder = 'another', lease_until = $1 WHERE id = $2")
        .bind(i64::MAX / 2)
        .bind(stalled.batch_id())
        .execute(&pool)
        .await
        .unwrap();
    let audit_before = t
        .app
        .audit_records(&actor, &Default::default(), 0, 1000)
        .await
        .unwrap()
        .len();
    let lost = batch::convert(&t.app, &actor, &stalled, &dir, &Quiet).await;
    let error = lost.expect_err("a run without its lease committed");
    assert_eq!(error.code(), "lease_lost", "{error}");
    assert_eq!(licence_count(&t.database_url).await, 0);
    let records = t
        .app
        .audit_records(&actor, &Default::default(), 0, 1000)
        .await
        .unwrap();
    assert_eq!(
        records.len(),
        audit_before + 1,
        "only the run's own failure"
    );
    let last = records.last().unwrap();
    assert_eq!(
        (last.action.as_str(), last.outcome.as_str()),
        ("batch.convert", "failed: lease_lost")
    );
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "a hole in the audit seqs"
    );
}

fn zip_dir(dir: &Path) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default();
    for entry in walk(dir) {
        let name = entry
            .strip_prefix(dir)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        zip.start_file(name, options).unwrap();
        zip.write_all(&std::fs::read(&entry).unwrap()).unwrap();
    }
    zip.finish().unwrap();
    out.into_inner()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

async fn post_batch(s: &TestServer, token: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let request = s
        .client
        .post(s.url("/api/v1/batches"))
        .header("content-type", "application/zip")
        .body(body);
    with_token(request, token).send().await.unwrap()
}

/// Posts a batch, polls its job until done; returns its location and last answer.
async fn post_and_wait(s: &TestServer, token: &str, body: Vec<u8>) -> (String, serde_json::Value) {
    let accepted = post_batch(s, Some(token), body).await;
    assert_eq!(accepted.status(), 202);
    let location = accepted.headers()["location"].to_str().unwrap().to_string();
    let mut job = serde_json::Value::Null;
    for _ in 0..600 {
        job = s.get_json(&location, Some(token)).await;
        if job["batch"]["state"] == "done" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(job["batch"]["state"], "done", "{job}");
    (location, job)
}

#[tokio::test]
async fn a_zip_posted_over_http_is_converted_as_a_job_and_polled() {
    let s = TestServer::start().await;
    // The market bureau's two types, posted by its clerk.
    let dir = write_sample_of(
        &s.t.app,
        s.t.dir.path(),
        40,
        0.1,
        51,
        false,
        &[FOOD, SOLE_TRADER],
    );
    let expected = expected_rejections(&dir);
    let zip = zip_dir(&dir);
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;

    assert_eq!(post_batch(&s, None, zip.clone()).await.status(), 401);
    let library = s.token(None, &[Role::Library]).await;
    assert_eq!(
        post_batch(&s, Some(&library), zip.clone()).await.status(),
        403
    );
    let evil = {
        let mut out = std::io::Cursor::new(Vec::new());
        let mut z = zip::ZipWriter::new(&mut out);
        z.start_file("manifest.csv", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.start_file("../../evil.png", zip::write::SimpleFileOptions::default())
            .unwrap();
        z.finish().unwrap();
        out.into_inner()
    };
    let refused = post_batch(&s, Some(&clerk), evil).await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("outside the batch"));

    // Another department's clerk may not convert the bureau's licences: every row refused.
    let other = s.token(Some(DISABILITY_FEDERATION), &[Role::Clerk]).await;
    let (_, refused) = post_and_wait(&s, &other, zip.clone()).await;
    assert_eq!(refused["batch"]["issued"], 0);
    let first = &refused["rows"][0];
    assert!(
        first["reason"]
            .as_str()
            .unwrap()
            .contains("may not act for"),
        "{first}"
    );

    let (location, job) = post_and_wait(&s, &clerk, zip).await;
    assert_eq!(job["batch"]["rejected"], expected.len());
    assert_eq!(job["batch"]["issued"], 40 - expected.len());
    let rows = job["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 40);
    for (line, kind, column) in &expected {
        let row = rows.iter().find(|r| r["line"] == *line).unwrap();
        assert_eq!(row["outcome"], "rejected", "{kind}");
        assert_eq!(row["column"], column.as_str(), "{kind}");
    }
    // Another department's clerk does not see the job.
    let hidden = s
        .client
        .get(s.url(&location))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(hidden.status(), 404);
}

#[tokio::test]
async fn a_job_left_queued_by_a_dead_process_is_taken_up_and_finished() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 10, 0.0, 61, false);
    let actor = Actor::local_operator();
    // Recorded and stored, but the process "died" before it started the job.
    let mut upload = tempfile::NamedTempFile::new_in(t.dir.path()).unwrap();
    std::io::Write::write_all(&mut upload, &zip_dir(&dir)).unwrap();
    let id = batch::create_with_upload(&t.app, &actor, false, upload)
        .await
        .unwrap();
    assert_eq!(
        t.app.store.batch(&id).await.unwrap().unwrap().state,
        BatchState::Queued
    );
    let restarted = Arc::new(t.reopen().await);
    batch::job::resume_all(restarted.clone()).await;
    for _ in 0..300 {
        if restarted.store.batch(&id).await.unwrap().unwrap().state == BatchState::Done {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let job = restarted.store.batch(&id).await.unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.issued), ("done", 10));
}

/// Rewrites a sample's manifest with CRLF line endings, as Excel and WPS save it.
fn to_crlf(dir: &Path) {
    let manifest = dir.join("manifest.csv");
    let lf = std::fs::read_to_string(&manifest).unwrap();
    assert!(!lf.contains('\r'));
    std::fs::write(&manifest, lf.replace('\n', "\r\n")).unwrap();
}

/// Every row has its outcome, at lines 2 to `rows + 1`, and the bad rows are rejected at theirs.
fn assert_rows_at_true_lines(
    rows: &[(u64, String)],
    count: u64,
    expected: &[(u64, String, String)],
) {
    let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, (2..count + 2).collect::<Vec<_>>());
    let rejected: Vec<u64> = rows
        .iter()
        .filter(|(_, outcome)| outcome == "rejected")
        .map(|(line, _)| *line)
        .collect();
    let bad: Vec<u64> = expected.iter().map(|(line, _, _)| *line).collect();
    assert_eq!(rejected, bad);
}

#[tokio::test]
async fn a_crlf_manifest_ends_every_row_at_its_true_line() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 20, 0.2, 71, false);
    let expected = expected_rejections(&dir);
    to_crlf(&dir);
    let (summary, rows) = convert(&t.app, &dir, false).await;
    let outcomes: Vec<(u64, String)> = rows
        .iter()
        .map(|r| (r.line, r.outcome.to_string()))
        .collect();
    assert_rows_at_true_lines(&outcomes, 20, &expected);
    assert_eq!(summary.counts.done, 20);
}

#[tokio::test]
async fn a_crlf_manifest_posted_over_http_ends_every_row_at_its_true_line() {
    let s = TestServer::start().await;
    let dir = write_sample_of(&s.t.app, s.t.dir.path(), 12, 0.2, 72, false, &[FOOD]);
    let expected = expected_rejections(&dir);
    to_crlf(&dir);
    let clerk = s.token(Some(MARKET_BUREAU), &[Role::Clerk]).await;
    let (_, job) = post_and_wait(&s, &clerk, zip_dir(&dir)).await;
    let outcomes: Vec<(u64, String)> = job["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_rows_at_true_lines(&outcomes, 12, &expected);
}

#[tokio::test]
async fn report_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 3, 0.0, 81, false);
    let manifest = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut cells = |line: usize, column: usize, value: &str| {
        let mut row: Vec<&str> = lines[line - 1].split(',').collect();
        row[column] = value;
        lines[line - 1] = row.join(",");
    };
    cells(2, 1, "=1+2");
    cells(3, 0, "@SUM(1)");
    cells(4, 1, "-3+cmd");
    std::fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    let (summary, _) = convert(&t.app, &dir, false).await;
    let base = t.dir.path().join("report");
    let (csv_path, json_path) = batch::report::write(&t.app, &summary, &base).await.unwrap();

    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    let csv_rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let cell = |line: &str, column: usize| {
        let row = csv_rows.iter().find(|r| &r[0] == line).unwrap();
        row[column].to_string()
    };
    assert_eq!(cell("2", 3), "'=1+2");
    assert_eq!(cell("3", 2), "'@SUM(1)");
    assert_eq!(cell("4", 3), "'-3+cmd");
    for row in &csv_rows {
        for value in row.iter() {
            assert!(
                !value.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{row:?}"
            );
        }
    }
    // The JSON report keeps the values as they were.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(json_path).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows[0]["number"], "=1+2");
    assert_eq!(rows[1]["type_code"], "@SUM(1)");
    assert_eq!(rows[2]["number"], "-3+cmd");
}

#[tokio::test]
async fn a_conversion_that_fails_exits_1_with_the_reason_and_still_writes_its_report() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 3, 0.0, 91, false);
    let manifest = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    // The header loses its scan column: nothing can be converted.
    std::fs::write(&manifest, text.replacen(",scan", ",scans", 1)).unwrap();
    let data = t.dir.path().join("data");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_elicence"))
        .args(["convert", dir.to_str().unwrap()])
        .env("ELICENCE_DATA_DIR", &data)
        .env("ELICENCE_KEYS_DIR", t.dir.path().join("keys"))
        .env("ELICENCE_TEMPLATES_DIR", templates_dir())
        .env("ELICENCE_DATABASE_URL", &t.database_url)
        .env("ELICENCE_VERIFY_BASE", "https://zz.example.gov.cn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let reason = "line 1: column \"scan\" is missing";
    assert!(stderr.contains(reason), "{stderr}");
    let reports: Vec<PathBuf> = std::fs::read_dir(data.join("reports"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let json = reports
        .iter()
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    assert_eq!(report["summary"]["state"], "failed");
    assert!(report["summary"]["error"]
        .as_str()
        .unwrap()
        .contains(reason));
    assert!(reports
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "csv")));
}

#[tokio::test]
async fn a_type_code_with_a_non_ascii_character_is_rejected_at_its_line() {
    let t = TestApp::new().await;
    let dir = write_sample(&t.app, t.dir.path(), 3, 0.0, 92, false);
    let manifest = dir.join("manifest.csv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut row: Vec<&str> = lines[2].split(',').collect();
    row[0] = "00000000000000000ä000";
    lines[2] = row.join(",");
    std::fs::write(&manifest, lines.join("\r\n") + "\r\n").unwrap();
    let (summary, rows) = convert(&t.app, &dir, false).await;
    assert_eq!(summary.state, BatchState::Done);
    let rejected: Vec<(u64, Option<&str>)> = rows
        .iter()
        .filter(|r| r.outcome == RowOutcome::Rejected)
        .map(|r| (r.line, r.column.as_deref()))
        .collect();
    assert_eq!(rejected, [(3, Some("type_code"))]);
    assert_eq!(summary.counts.issued, 2);
}

#[tokio::test]
async fn a_permit_row_completed_before_it_starts_is_rejected_naming_both_fields() {
    let t = TestApp::new().await;
    // Generated permits keep the rule (completion after start); one is then broken by hand.
    let dir = write_sample_of(&t.app, t.dir.path(), 3, 0.0, 61, false, &[PERMIT]);
    let manifest = dir.join("manifest.csv");
    let mut reader = csv::Reader::from_path(&manifest).unwrap();
    let header = reader.headers().unwrap().clone();
    let at = |name: &str| header.iter().position(|c| c == name).unwrap();
    let mut rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    let start = rows[1][at("planned_start")].clone();
    rows[1][at("planned_completion")] = start.clone();
    let mut writer = csv::Writer::from_path(&manifest).unwrap();
    writer.write_record(&header).unwrap();
    for row in &rows {
        writer.write_record(row).unwrap();
    }
    writer.flush().unwrap();

    let (summary, rows) = convert(&t.app, &dir, false).await;
    assert_eq!((summary.counts.issued, summary.counts.rejected), (2, 1));
    let broken = rows.iter().find(|r| r.line == 3).unwrap();
    assert_eq!(broken.outcome, RowOutcome::Rejected);
    assert_eq!(broken.column.as_deref(), Some("planned_completion"));
    let reason = broken.reason.as_deref().unwrap();
    assert_eq!(
        reason,
        format!("合同竣工日期 {start} must be after 合同开工日期 (fields.planned_start) {start}")
    );
}
