//! A full disk under the embedded SQLite store (SPEC §11; issue #13): writes fail with the real
//! cause while the disk is full, and work again, with nothing lost, once space is back.
//!
//! The data folder is a 6 MiB tmpfs mounted by the test (the tests run as root, as CI does: a
//! mount that fails fails the test).

use std::path::Path;
use std::process::Command;

use crate::common::*;
use elicence::app::{Actor, App};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the tests need root)"
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

async fn issue(app: &App, number: &str) -> Result<String, String> {
    app.issue(
        &Actor::local_operator(),
        FOOD,
        &sample(app, FOOD, number),
        None,
    )
    .await
    .map(|i| i.licence_id)
    .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_full_disk_fails_writes_clearly_and_they_work_again_once_space_is_back() {
    let disk = Tmpfs::mount("6m");
    let keys = tempfile::tempdir().unwrap();
    let mut settings = settings(
        disk.path(),
        &format!(
            "sqlite:{}",
            disk.path().join("data/elicence.sqlite").display()
        ),
    );
    settings.keys_dir = keys.path().join("keys");
    let app = App::open(settings).await.unwrap();
    issue(&app, "DF-0").await.unwrap();

    // Fill the disk to the last few KiB.
    let filler = disk.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 8 << 20]);
    let mut issued = vec![];
    let mut failures = vec![];
    for i in 1..40 {
        match issue(&app, &format!("DF-{i}")).await {
            Ok(id) => issued.push(id),
            Err(e) => failures.push(e),
        }
    }
    assert!(!failures.is_empty(), "the disk never filled");
    for failure in &failures {
        assert!(
            failure.contains("disk is full"),
            "not the real cause: {failure}"
        );
    }
    let readiness = app.write_health.readiness();
    assert!(!readiness.ready, "ready while writes fail");
    let cause = readiness
        .writes_failing
        .expect("the failure is named")
        .cause;
    assert!(cause.contains("disk is full"), "{cause}");

    // Space is back: writes work again at once, and everything issued is there.
    std::fs::remove_file(&filler).unwrap();
    issued.push(issue(&app, "DF-AFTER").await.unwrap());
    for id in &issued {
        app.show(&Actor::local_operator(), id, None).await.unwrap();
    }
    assert!(app.write_health.readiness().ready, "still unready");
    let chain = app.store.verify_audit().await.unwrap();
    assert!(chain.first_break.is_none(), "the audit chain broke");

    // Every failed attempt has its audit record, appended once writes worked again.
    let records = app
        .audit_records(&Actor::local_operator(), &Default::default(), 0, 1000)
        .await
        .unwrap();
    let failed_issues = records
        .iter()
        .filter(|r| r.action == "licence.issue" && r.outcome == "failed: store_full")
        .count();
    assert_eq!(failed_issues, failures.len(), "audit records lost");
    let seqs: Vec<i64> = records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}
