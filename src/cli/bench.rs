//! `bench …`: throughput and latency of signing, rendering, the feed, conversion and online
//! verification, each on a scratch application of its own. A room of its own because nothing
//! here touches the service's data: it measures, on a throwaway copy.

use std::sync::Arc;

use clap::Subcommand;

use super::print;
use crate::app::AppError;
use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Signing a version and checking a QR token, on one core.
    Sign {
        /// How many versions to sign and tokens to check.
        #[arg(long, default_value_t = 20_000)]
        count: usize,
    },
    /// Rendering licence PDFs on one core, over the sample types (time per page, size).
    Render {
        /// How many pages to render.
        #[arg(long, default_value_t = 400)]
        count: usize,
    },
    /// Whether each sample licence's QR code reads from its whole page at 72/96/100/150 dpi,
    /// clean and blurred + JPEG (pdftoppm, zbarimg); prints a markdown table per layout.
    Qr {
        /// A layout to measure (repeatable; default: every layout under templates/layouts).
        #[arg(long = "layout", value_name = "NAME")]
        layouts: Vec<String>,
        /// Keep the PDFs and page images in this folder (to look at) instead of a temporary one.
        #[arg(long, value_name = "DIR")]
        keep: Option<std::path::PathBuf>,
    },
    /// Reading the change feed, and pushing it into the reference receiver (city-library).
    Feed {
        /// Licences issued first (one event each).
        #[arg(long, default_value_t = 2000)]
        events: usize,
        /// Run on this database instead of a fresh SQLite file (e.g. a PostgreSQL URL).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Batch conversion end to end (check, sign, store, render, archive) of a generated batch:
    /// licences per second, time per stage, peak memory.
    Convert {
        /// Rows of the generated batch (licences to convert).
        #[arg(long, default_value_t = 10_000)]
        rows: u64,
        /// Run on this database instead of a fresh SQLite file (e.g. a PostgreSQL URL).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// The transparency log: appends (in conversion's chunks and one by one), inclusion and
    /// consistency receipts per second and their size, at each tree size.
    Log {
        /// Tree sizes to grow a scratch log to and measure receipts at (ascending).
        #[arg(long, value_delimiter = ',', default_value = "100000")]
        entries: Vec<u64>,
        /// Run on this empty database instead of a fresh SQLite file (e.g. a PostgreSQL URL);
        /// its log holds leaves of no event afterwards, so it is good for nothing else.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Drafting manifests from scans by OCR: scans per second, and how many fields come out
    /// exact against the sample's own manifest, clean and degraded.
    Draft {
        /// Sample licences per look (every type in turn).
        #[arg(long, default_value_t = 200)]
        rows: u64,
        /// Resolution of the sample scans.
        #[arg(long, default_value_t = 100)]
        dpi: u32,
    },
    /// Online verification over HTTP under concurrent load (a server in this process).
    Verify {
        /// Verification requests to send in all.
        #[arg(long, default_value_t = 50_000)]
        requests: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Licences issued first and verified round-robin.
        #[arg(long, default_value_t = 200)]
        licences: usize,
        /// Run on this database instead of a fresh SQLite file (e.g. a PostgreSQL URL).
        #[arg(long)]
        database_url: Option<String>,
    },
}

impl BenchCommand {
    /// The database a benchmark was told to run on, if any (a fresh SQLite file otherwise).
    fn database_url(&self) -> Option<&str> {
        match self {
            BenchCommand::Feed { database_url, .. }
            | BenchCommand::Verify { database_url, .. }
            | BenchCommand::Convert { database_url, .. }
            | BenchCommand::Log { database_url, .. } => database_url.as_deref(),
            BenchCommand::Sign { .. }
            | BenchCommand::Render { .. }
            | BenchCommand::Qr { .. }
            | BenchCommand::Draft { .. } => None,
        }
    }
}

/// `bench …`: runs one benchmark on a scratch application and prints its report.
pub(super) async fn run(
    settings: &Settings,
    command: BenchCommand,
    json: bool,
) -> Result<i32, AppError> {
    let failed = |e: anyhow::Error| AppError::Config(format!("benchmark: {e}"));
    let dir = tempfile::tempdir().map_err(|e| AppError::Config(e.to_string()))?;
    let app =
        crate::bench::scratch_app(dir.path(), &settings.templates_dir, command.database_url())
            .await
            .map_err(failed)?;
    let reports = match command {
        BenchCommand::Sign { count } => crate::bench::sign(&app, count).await.map_err(failed)?,
        BenchCommand::Render { count } => {
            let (reports, sizes) = crate::bench::render(&app, count).await.map_err(failed)?;
            if !json {
                for (name, bytes) in &sizes {
                    outln!("{name:<28} {bytes:>7} bytes");
                }
            }
            reports
        }
        BenchCommand::Qr { layouts, keep } => {
            let images = match &keep {
                Some(folder) => {
                    std::fs::create_dir_all(folder)
                        .map_err(|e| AppError::Config(format!("{}: {e}", folder.display())))?;
                    folder.clone()
                }
                None => dir.path().to_path_buf(),
            };
            let results = crate::bench::qr::run_all(&app, &layouts, &images)
                .await
                .map_err(failed)?;
            print(json, &results, || crate::bench::qr::markdown(&results));
            return Ok(0);
        }
        BenchCommand::Feed { events, .. } => crate::bench::feed(app, events, dir.path())
            .await
            .map_err(failed)?,
        BenchCommand::Convert { rows, .. } => {
            let report = crate::bench::convert(app, rows, dir.path())
                .await
                .map_err(failed)?;
            print(json, &report, || report.lines());
            return Ok(0);
        }
        BenchCommand::Draft { rows, dpi } => {
            let app = Arc::new(app);
            let mut results = Vec::new();
            for degrade in [false, true] {
                let folder = dir.path().join(if degrade { "degraded" } else { "clean" });
                let look = crate::batch::sample::ScanLook { dpi, degrade };
                let accuracy = crate::bench::draft::measure(app.clone(), rows, look, &folder)
                    .await
                    .map_err(failed)?;
                results.push(accuracy);
            }
            print(json, &results, || {
                let lines: Vec<String> = results.iter().map(|a| a.line()).collect();
                lines.join("\n")
            });
            return Ok(0);
        }
        BenchCommand::Log { mut entries, .. } => {
            entries.sort_unstable();
            let report = crate::bench::log::run(&app, &entries)
                .await
                .map_err(failed)?;
            print(json, &report, || report.lines());
            return Ok(0);
        }
        BenchCommand::Verify {
            requests,
            concurrency,
            licences,
            ..
        } => vec![
            crate::bench::verify_http(app, licences, requests, concurrency)
                .await
                .map_err(failed)?,
        ],
    };
    print(json, &reports, || {
        reports
            .iter()
            .map(|r| r.line())
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(0)
}
