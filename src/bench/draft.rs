//! `bench draft` (issue #19): how fast scans are drafted and how often the draft is right,
//! against the manifest `sample-batch` wrote for its own scans — clean, and degraded (askew,
//! noisy, JPEG quality 40, some upside down or on their side). Shared with the accuracy test,
//! so the figures in the README and the test's targets are the same measurement.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use serde::Serialize;

use super::Report;
use crate::app::{Actor, App};
use crate::batch::sample::{Options, ScanLook};
use crate::directory::FieldType;
use crate::identifiers::TypeCode;

/// How one look of scans fared.
#[derive(Debug, Clone, Serialize)]
pub struct Accuracy {
    pub look: String,
    pub scans: usize,
    /// Scans not drafted (each a failure here: every sample scan is a licence of its type).
    pub skipped: Vec<String>,
    /// Cells compared: every column a licence prints.
    pub fields: usize,
    pub exact: usize,
    /// Cells marked for review.
    pub flagged: usize,
    /// Of those, how many were right after all.
    pub false_flags: usize,
    /// Wrong and not marked: what a clerk would convert without knowing.
    pub wrong_unflagged: Vec<String>,
    /// Of those, resident IDs and credit codes (the target is none).
    pub wrong_ids_unflagged: usize,
    /// Every wrong cell, flagged or not: where recognition goes wrong.
    pub wrong: Vec<String>,
    /// Scan latency (on every core at once) and throughput.
    pub report: Report,
}

impl Accuracy {
    pub fn exact_share(&self) -> f64 {
        self.exact as f64 / self.fields.max(1) as f64
    }

    pub fn false_flag_share(&self) -> f64 {
        self.false_flags as f64 / self.flagged.max(1) as f64
    }

    pub fn line(&self) -> String {
        format!(
            "{:<9} {} scans ({} not drafted): {}/{} fields exact ({:.1} %), {} flagged of which {} \
             were right ({:.0} % false flags), {} wrong and unflagged ({} of them IDs)\n{}",
            self.look,
            self.scans,
            self.skipped.len(),
            self.exact,
            self.fields,
            100.0 * self.exact_share(),
            self.flagged,
            self.false_flags,
            100.0 * self.false_flag_share(),
            self.wrong_unflagged.len(),
            self.wrong_ids_unflagged,
            self.report.line()
        )
    }
}

/// Writes `rows` sample licences (every type in turn) with `look` into `dir` and drafts them.
pub async fn measure(
    app: Arc<App>,
    rows: u64,
    look: ScanLook,
    dir: &Path,
) -> anyhow::Result<Accuracy> {
    let font = std::fs::read(app.settings.templates_dir.join(crate::render::FONT_FILE))?;
    let options = Options {
        rows,
        bad_rate: 0.0,
        seed: 19,
        gb18030: false,
        max_scan_bytes: app.settings.max_scan_bytes,
        types: Vec::new(),
        scans: look,
    };
    crate::batch::sample::write(&app.directory, &font, dir, &options)?;
    let expected = read_manifest(&dir.join("manifest.csv"))?;
    let dir = dir.to_path_buf();
    let name = if look.degrade { "degraded" } else { "clean" };
    tokio::task::spawn_blocking(move || compare(&app, &dir, &expected, name)).await?
}

type Row = HashMap<String, String>;

fn read_manifest(path: &Path) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::Reader::from_path(path)?;
    let header = reader.headers()?.clone();
    reader
        .records()
        .map(|record| {
            Ok(header
                .iter()
                .map(String::from)
                .zip(record?.iter().map(String::from))
                .collect())
        })
        .collect()
}

/// Drafts every scan of `expected` on every core, one scan a call, and compares.
fn compare(app: &App, dir: &Path, expected: &[Row], look: &str) -> anyhow::Result<Accuracy> {
    let actor = Actor::local_operator();
    let started = Instant::now();
    let drafted: Vec<(Duration, crate::draft::Draft)> = expected
        .par_iter()
        .map(|row| {
            let type_code = TypeCode::parse(&row["type_code"])?;
            let start = Instant::now();
            let draft = app.draft_scans(&actor, &type_code, dir, &[row["scan"].clone()])?;
            Ok((start.elapsed(), draft))
        })
        .collect::<anyhow::Result<_>>()?;
    let elapsed = started.elapsed();
    let mut accuracy = Accuracy {
        look: look.to_string(),
        scans: expected.len(),
        skipped: Vec::new(),
        fields: 0,
        exact: 0,
        flagged: 0,
        false_flags: 0,
        wrong_unflagged: Vec::new(),
        wrong_ids_unflagged: 0,
        wrong: Vec::new(),
        report: Report::new(
            "draft a scan",
            "tesseract",
            super::cores(),
            drafted.iter().map(|(d, _)| *d).collect(),
            elapsed,
        ),
    };
    for (row, (_, draft)) in expected.iter().zip(&drafted) {
        let t = app.licence_type(&TypeCode::parse(&row["type_code"])?)?;
        for skipped in &draft.skipped {
            accuracy
                .skipped
                .push(format!("{}: {}", skipped.scan, skipped.reason));
        }
        let Some(got) = draft.rows.first() else {
            continue;
        };
        let printed = [
            "number",
            "holder_name",
            "holder_id",
            "valid_from",
            "valid_until",
        ]
        .into_iter()
        .map(|c| (c, c == "holder_id"))
        .chain(t.fields.iter().filter(|f| f.printed).map(|f| {
            (
                f.key.as_str(),
                matches!(f.field_type, FieldType::ResidentId | FieldType::Uscc),
            )
        }));
        for (column, is_id) in printed {
            let want = row.get(column).map_or("", String::as_str);
            let cell = got.cells.get(column).cloned().unwrap_or_default();
            let right = cell.value == want;
            accuracy.fields += 1;
            accuracy.exact += usize::from(right);
            if !right {
                accuracy.wrong.push(format!(
                    "{} {column}: read {:?}, printed {want:?}{}",
                    row["scan"],
                    cell.value,
                    if cell.doubt.is_some() {
                        " (flagged)"
                    } else {
                        ""
                    }
                ));
            }
            if cell.doubt.is_some() {
                accuracy.flagged += 1;
                accuracy.false_flags += usize::from(right);
            } else if !right {
                accuracy.wrong_ids_unflagged += usize::from(is_id);
                accuracy.wrong_unflagged.push(format!(
                    "{} {column}: read {:?}, printed {want:?}",
                    row["scan"], cell.value
                ));
            }
        }
    }
    Ok(accuracy)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #19's targets, on 50 sample scans of every type: at least 97 % of fields exact on
    /// clean scans and 90 % on degraded ones, no scan lost, and nothing wrong left unflagged
    /// (the issue asks that of resident IDs and credit codes; every field holds to it here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drafts_of_fifty_scans_a_type_meet_the_accuracy_targets() {
        let dir = tempfile::tempdir().unwrap();
        let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let app = Arc::new(
            super::super::scratch_app(dir.path(), &templates, None)
                .await
                .unwrap(),
        );
        let types = app.directory.types().count() as u64;
        for (degrade, target) in [(false, 0.97), (true, 0.90)] {
            let look = ScanLook { dpi: 100, degrade };
            let folder = dir.path().join(format!("batch-{degrade}"));
            let accuracy = measure(app.clone(), 50 * types, look, &folder)
                .await
                .unwrap();
            println!("{}", accuracy.line());
            assert!(accuracy.skipped.is_empty(), "{:?}", accuracy.skipped);
            assert!(
                accuracy.exact_share() >= target,
                "{}\n{:#?}",
                accuracy.line(),
                accuracy.wrong
            );
            assert_eq!(
                accuracy.wrong_ids_unflagged, 0,
                "{:#?}",
                accuracy.wrong_unflagged
            );
            assert!(
                accuracy.wrong_unflagged.len() * 200 <= accuracy.fields,
                "{:#?}",
                accuracy.wrong_unflagged
            );
        }
    }
}
