//! Drafting a manifest from scans (`elicence draft`, issue #19) as a clerk uses it: a folder of
//! scans in, a manifest out whose unflagged cells are right, other pages reported, and
//! conversion refusing a row until its doubts are cleared. The accuracy targets are measured
//! on 200 scans by `bench draft`'s own test (`src/bench/draft.rs`).

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;

fn run(dir: &Path, database: &TestDatabase, args: &[&str]) -> std::process::Output {
    elicence_command(dir, &database.url)
        .args(args)
        .output()
        .unwrap()
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.unwrap().iter().map(String::from))
                .collect()
        })
        .collect();
    (header, rows)
}

fn write_csv(path: &Path, header: &[String], rows: &[HashMap<String, String>]) {
    let mut writer = csv::Writer::from_path(path).unwrap();
    writer.write_record(header).unwrap();
    for row in rows {
        writer
            .write_record(header.iter().map(|c| row[c].as_str()))
            .unwrap();
    }
    writer.flush().unwrap();
}

#[tokio::test]
async fn a_clerk_drafts_checks_only_the_flagged_cells_and_converts() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let batch = dir.path().join("batch");
    let sample = |out: &Path, type_code: &str, rows: &str, seed: &str| {
        let out = out.display().to_string();
        let args = [
            "sample-batch",
            "--rows",
            rows,
            "--type",
            type_code,
            "--seed",
            seed,
            "--out",
            &out,
        ];
        assert!(run(dir.path(), &database, &args).status.success());
    };
    sample(&batch, FOOD, "6", "31");
    // The printed truth moves aside: the draft writes the manifest.
    std::fs::rename(batch.join("manifest.csv"), dir.path().join("truth.csv")).unwrap();
    // A building permit and a blank page among the food licences.
    sample(&dir.path().join("other"), PERMIT, "1", "32");
    std::fs::copy(
        dir.path().join("other/scans/0000001.jpg"),
        batch.join("scans/permit.jpg"),
    )
    .unwrap();
    image::GrayImage::from_pixel(840, 1188, image::Luma([235]))
        .save(batch.join("scans/blank.png"))
        .unwrap();

    let scans = batch.join("scans").display().to_string();
    let out = run(dir.path(), &database, &["draft", &scans, "--type", FOOD]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("6 scans drafted"), "{said}");
    assert!(
        said.contains("scans/permit.jpg: 这是一张“建筑工程施工许可证”"),
        "{said}"
    );
    assert!(said.contains("scans/blank.png: 空白页"), "{said}");
    // Drafting never overwrites a manifest.
    let again = run(dir.path(), &database, &["draft", &scans, "--type", FOOD]);
    assert_eq!(again.status.code(), Some(1));

    let (header, mut drafted) = read_csv(&batch.join("manifest.csv"));
    let (_, truth) = read_csv(&dir.path().join("truth.csv"));
    assert!(
        header.contains(&"holder_id_confidence".to_string()),
        "{header:?}"
    );
    assert_eq!(drafted.len(), 6);
    // The clerk corrects the flagged cells (from the paper) and clears needs_review; every cell
    // the draft did not flag must already be right.
    for (row, right) in drafted.iter_mut().zip(&truth) {
        let flagged: Vec<String> = row["needs_review"]
            .split("; ")
            .filter(|d| !d.is_empty())
            .map(|d| d.split(':').next().unwrap().to_string())
            .collect();
        let scan = row["scan"].clone();
        for (column, value) in row.iter_mut() {
            let Some(printed) = right.get(column) else {
                continue;
            };
            if flagged.contains(column) {
                *value = printed.clone();
            } else if column != "contact_phone" {
                // contact_phone is not printed on the licence: the draft leaves it empty.
                assert_eq!(value, printed, "{column} of {scan} unflagged but wrong");
            }
        }
        row.insert("needs_review".into(), String::new());
    }
    // One row still carries a doubt: it is refused, the others are converted.
    drafted[0].insert("needs_review".into(), "holder_id: 待核对".into());
    write_csv(&batch.join("manifest.csv"), &header, &drafted);
    let batch_dir = batch.display().to_string();
    let report = dir.path().join("report").display().to_string();
    let first = run(
        dir.path(),
        &database,
        &["convert", &batch_dir, "--report", &report],
    );
    assert_eq!(
        first.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let rejected = std::fs::read_to_string(dir.path().join("report.csv")).unwrap();
    assert!(
        rejected.contains("needs_review") && rejected.contains("待核对"),
        "{rejected}"
    );
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("5 issued"),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );

    drafted[0].insert("needs_review".into(), String::new());
    write_csv(&batch.join("manifest.csv"), &header, &drafted);
    let second = run(
        dir.path(),
        &database,
        &["convert", &batch_dir, "--report", &report],
    );
    let said = String::from_utf8_lossy(&second.stdout);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(said.contains("1 issued"), "{said}");
}

#[tokio::test]
async fn a_manifest_outside_the_scans_folder_tree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(dir.path()).await;
    let scans = dir.path().join("scans");
    std::fs::create_dir_all(&scans).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    let out = dir
        .path()
        .join("elsewhere/manifest.csv")
        .display()
        .to_string();
    let scans = scans.display().to_string();
    let refused = run(
        dir.path(),
        &database,
        &["draft", &scans, "--type", FOOD, "--out", &out],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("can only name scans beside or under it"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn unsent_console_drafts_are_removed_after_a_week_and_cut_short_ones_marked_failed() {
    let t = TestApp::new().await;
    let drafts = t.app.drafts_dir();
    let aged = |name: &str, hours: u64, finished: bool| {
        let dir = drafts.join(name);
        std::fs::create_dir_all(dir.join("scans")).unwrap();
        if finished {
            std::fs::write(dir.join("draft.json"), "{}").unwrap();
        }
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(hours * 3600);
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(then)
            .unwrap();
        dir
    };
    let week_old = aged("a".repeat(32).as_str(), 8 * 24, true);
    let fresh = aged("b".repeat(32).as_str(), 1, true);
    let cut_short = aged("c".repeat(32).as_str(), 2, false);
    let reading = aged("d".repeat(32).as_str(), 0, false);
    t.app.forget_old_drafts();
    assert!(!week_old.exists());
    assert!(fresh.join("draft.json").exists());
    assert!(std::fs::read_to_string(cut_short.join("failed"))
        .unwrap()
        .contains("中断"));
    assert!(!reading.join("failed").exists());
}
