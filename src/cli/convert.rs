//! `convert` and `sample-batch`: batch conversion of stock paper licences from a folder, with a
//! progress bar, and the synthetic batches to try it on. A room of its own because it is the one
//! long-running command: it leases its run, reports progress and writes a report file.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{print, print_json};
use crate::app::{Actor, App, AppError, BatchStatus};
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct SampleBatchArgs {
    /// How many manifest rows (licences) to write.
    #[arg(long)]
    rows: u64,
    /// The share of deliberately bad rows (every kind in turn).
    #[arg(long, default_value_t = 0.0)]
    bad_rate: f64,
    /// The folder to write the batch into (created when missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Seed of the generator: the same seed writes the same batch (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the manifest in GB18030 instead of UTF-8.
    #[arg(long)]
    gb18030: bool,
    /// Only this licence type (repeat for several; default all).
    #[arg(long = "type", value_name = "TYPE_CODE")]
    types: Vec<String>,
    /// Resolution of the scans (dots per inch of an A4 page).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(50..=300))]
    dpi: u32,
    /// Degrade the scans as archives come back: up to 3° askew, Gaussian noise, JPEG quality 40,
    /// one in eight upside down and one in eight on its side (for `bench draft` and its tests).
    #[arg(long)]
    degrade: bool,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The batch folder: manifest.csv and the scans it names.
    #[arg(value_name = "BATCH")]
    batch: PathBuf,
    /// Issue nothing unless every row passes its checks.
    #[arg(long)]
    all_or_nothing: bool,
    /// Write the report to FILE.csv and FILE.json (default: data/reports/BATCH_ID).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

/// `sample-batch`: writes a generated batch; needs no database.
pub(super) fn sample_batch(
    settings: &Settings,
    args: SampleBatchArgs,
    json: bool,
) -> Result<i32, AppError> {
    let directory = crate::directory::Directory::load(&settings.templates_dir.join("directory"))?;
    let font = std::fs::read(settings.templates_dir.join(crate::render::FONT_FILE))
        .map_err(|e| AppError::Config(format!("the licence font: {e}")))?;
    let options = crate::batch::sample::Options {
        rows: args.rows,
        bad_rate: args.bad_rate,
        seed: args.seed.unwrap_or_else(rand::random),
        gb18030: args.gb18030,
        max_scan_bytes: settings.max_scan_bytes,
        types: args.types,
        scans: crate::batch::sample::ScanLook {
            dpi: args.dpi,
            degrade: args.degrade,
        },
    };
    let written = crate::batch::sample::write(&directory, &font, &args.out, &options)
        .map_err(|e| AppError::BadInput(format!("sample-batch: {e}")))?;
    print(json, &written, || {
        format!(
            "{} rows ({} deliberately bad, listed in expected-rejections.csv) and {} scans written to {}",
            written.rows,
            written.bad_rows,
            written.scans,
            args.out.display()
        )
    });
    Ok(0)
}

/// `convert`: converts a folder batch. Exit 0 when every row was issued or skipped, 2 when rows
/// were rejected or the run failed; `--json` prints the job as `GET /api/v1/batches/{id}` does.
pub(super) async fn run(
    app: &Arc<App>,
    actor: &Actor,
    args: ConvertArgs,
    json: bool,
) -> Result<i32, AppError> {
    crate::batch::limits::check_folder_manifest(&args.batch, app.settings.max_manifest_line_bytes)?;
    crate::batch::job::interrupt_abandoned_runs(app).await;
    let run = crate::batch::create(app, actor, args.all_or_nothing).await?;
    let id = run.batch_id().to_string();
    let progress = ConsoleProgress::new();
    let converted = crate::batch::convert(app, actor, &run, &args.batch, &progress).await;
    drop(run);
    progress.finish();
    let base = args
        .report
        .unwrap_or_else(|| crate::batch::default_report_base(app, &id));
    let summary = match converted {
        Ok(summary) => summary,
        Err(error) => {
            write_report_of_stopped_run(app, &id, &base).await;
            return Err(error);
        }
    };
    let (csv, json_report) = crate::batch::report::write(app, &summary, &base).await?;
    if json {
        print_json(&batch_status(app, actor, &id).await?);
    } else {
        outln!("{}", describe_run(&summary, &csv, &json_report));
    }
    let clean = summary.counts.rejected == 0 && summary.state == crate::batch::BatchState::Done;
    Ok(if clean { 0 } else { 2 })
}

fn describe_run(
    summary: &crate::batch::Summary,
    csv: &std::path::Path,
    json_report: &std::path::Path,
) -> String {
    format!(
        "batch {}: {} rows ({}) in {:.1} s: {} issued, {} skipped, {} rejected{}\nreport: {} and {}",
        summary.batch_id,
        summary.rows,
        summary.encoding,
        summary.seconds,
        summary.counts.issued,
        summary.counts.skipped,
        summary.counts.rejected,
        summary
            .error
            .as_deref()
            .map(|e| format!("\n{e}"))
            .unwrap_or_default(),
        csv.display(),
        json_report.display()
    )
}

/// The rows committed before an error still get their report; failing to write it must not hide
/// the error that stopped the conversion, so it is only told.
async fn write_report_of_stopped_run(app: &App, id: &str, base: &std::path::Path) {
    match crate::batch::stored_summary(app, id).await {
        Ok(summary) => match crate::batch::report::write(app, &summary, base).await {
            Ok((csv, json_report)) => {
                errln!("report: {} and {}", csv.display(), json_report.display())
            }
            Err(e) => errln!("no report could be written: {e}"),
        },
        Err(e) => errln!("no report could be written: {e}"),
    }
}

/// The finished job as `GET /api/v1/batches/{id}` answers it (read through the same function):
/// the job and the first page of row outcomes. Every row is in the report files.
async fn batch_status(app: &App, actor: &Actor, id: &str) -> Result<BatchStatus, AppError> {
    let (batch, rows) =
        crate::batch::job::status(app, actor, id, 0, crate::app::DEFAULT_PAGE_LIMIT).await?;
    Ok(BatchStatus::page(batch, rows, 0))
}

/// A progress bar with rate and ETA on a terminal; plain progress lines every few seconds when
/// stderr is a file or a pipe (logs, CI).
struct ConsoleProgress {
    bar: Option<indicatif::ProgressBar>,
    plain: std::sync::Mutex<PlainProgress>,
}

struct PlainProgress {
    started: std::time::Instant,
    last: Option<std::time::Instant>,
    rows: u64,
}

impl ConsoleProgress {
    fn new() -> ConsoleProgress {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("a valid template"),
            );
            bar
        });
        ConsoleProgress {
            bar,
            plain: std::sync::Mutex::new(PlainProgress {
                started: std::time::Instant::now(),
                last: None,
                rows: 0,
            }),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

impl crate::batch::Progress for ConsoleProgress {
    fn started(&self, batch_id: &str, rows: u64, encoding: &str) {
        errln!("batch {batch_id}: {rows} rows, manifest in {encoding}");
        match &self.bar {
            Some(bar) => bar.set_length(rows),
            None => self.plain.lock().expect("progress").rows = rows,
        }
    }

    fn advanced(&self, c: &crate::batch::Counts) {
        let message = format!(
            "issued {} · skipped {} · rejected {}",
            c.issued, c.skipped, c.rejected
        );
        if let Some(bar) = &self.bar {
            bar.set_position(c.done);
            bar.set_message(message);
            return;
        }
        let mut plain = self.plain.lock().expect("progress");
        let now = std::time::Instant::now();
        let due = plain
            .last
            .is_none_or(|last| now - last >= std::time::Duration::from_secs(2));
        if due || c.done == plain.rows {
            plain.last = Some(now);
            let seconds = (now - plain.started).as_secs_f64().max(1e-3);
            let rate = c.done as f64 / seconds;
            let eta = (plain.rows.saturating_sub(c.done)) as f64 / rate.max(1e-3);
            errln!(
                "{}/{} rows, {rate:.0} rows/s, ETA {eta:.0} s ({message})",
                c.done,
                plain.rows
            );
        }
    }
}
