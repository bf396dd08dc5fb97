//! The `elicence` command line (SPEC §12): a thin layer over [`crate::app::App`]. Every command
//! that prints a result takes `--json` and then prints the same JSON as the API.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::{Actor, Amendment, App, AppError, Renewal, Role};
use crate::config::Settings;
use crate::directory::{HolderKind, LicenceType};
use crate::licence::{EventKind, RecordInput};
use crate::signing::qr;
use crate::signing::status_list::StatusList;
use crate::signing::trust::TrustStore;
use crate::time_util;
use crate::verify::{self, Outcome, Verification};

/// Prints a line of a command's output on standard output.
macro_rules! outln {
    ($($arg:tt)*) => { $crate::cli::output_line(format_args!($($arg)*)) };
}

/// Prints a line of messages (errors, progress) on standard error.
macro_rules! errln {
    ($($arg:tt)*) => { $crate::cli::message_line(format_args!($($arg)*)) };
}

/// Writes one line of output. A reader that has gone (`elicence verify … | head -1`) is no
/// error: the rest of the output is dropped and the command finishes with its own exit code,
/// which for `verify` and `convert` says what happened (`println!` would panic). SIGPIPE stays
/// ignored, as Rust sets it, rather than reset to its default: the same process serves HTTP and
/// talks to PostgreSQL, where a signal must not kill it. Any other failure to write output
/// (a full disk) is an error: the output would be incomplete.
pub(crate) fn output_line(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    match write_line(&mut out, line) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            errln!("error: cannot write the output: {e}");
            std::process::exit(1);
        }
        _ => {}
    }
}

/// Writes one line of messages; when even standard error cannot take it, there is no one left
/// to tell.
pub(crate) fn message_line(line: std::fmt::Arguments) {
    let _ = write_line(&mut std::io::stderr().lock(), line);
}

fn write_line(out: &mut impl std::io::Write, line: std::fmt::Arguments) -> std::io::Result<()> {
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[derive(Debug, Parser)]
#[command(
    name = "elicence",
    version,
    about = "Signed electronic licences: issue, convert, verify, publish"
)]
pub struct Cli {
    /// A TOML settings file; ELICENCE_* environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print results as JSON (the same JSON the HTTP API answers).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (and the push worker when a library URL is configured).
    Serve {
        /// Public verifications allowed per client address per minute (0: no limit).
        #[arg(long, default_value_t = 600)]
        verify_per_minute: u32,
    },
    /// Keys and certificates under the keys folder.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The trust list verifiers start from.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Deployment facts every process shares: the public address in QR codes.
    #[command(subcommand)]
    Register(RegisterCommand),
    /// Signed status lists, for offline verifiers.
    #[command(subcommand, name = "status-list")]
    StatusList(StatusListCommand),
    /// The licence directory (证照目录).
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Issue a new licence from a JSON record (see `directory show TYPE --example`).
    Issue {
        /// The licence type code (21 characters).
        type_code: String,
        /// The record as JSON.
        #[arg(long, value_name = "RECORD.json")]
        file: PathBuf,
    },
    /// Show and change licences.
    #[command(subcommand)]
    Licence(LicenceCommand),
    /// Write a synthetic batch of stock licences: manifest.csv, scans, expected-rejections.csv.
    #[command(name = "sample-batch")]
    SampleBatch {
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
    },
    /// Convert a batch of stock paper licences (a folder with manifest.csv and its scans).
    /// Exit 0 when every row was issued or skipped, 2 when rows were rejected, 1 on an error.
    Convert {
        /// The batch folder: manifest.csv and the scans it names.
        #[arg(value_name = "BATCH")]
        batch: PathBuf,
        /// Issue nothing unless every row passes its checks.
        #[arg(long)]
        all_or_nothing: bool,
        /// Write the report to FILE.csv and FILE.json (default: data/reports/BATCH_ID).
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// API tokens (stored hashed; shown once when created).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the OpenAPI 3 document of the HTTP API (also served at /api/v1/openapi.json).
    Openapi,
    /// Benchmarks: throughput and latency percentiles with the core count.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Verify a QR text, its base32 part or a licence version identifier.
    /// Exit 0 for valid, 2 for any other result, 1 for an error.
    Verify {
        /// A QR text, its base32 part after /V/, or a licence version identifier.
        #[arg(value_name = "INPUT")]
        input: String,
        /// Check with a cached trust list and status lists only, without the service's store.
        #[arg(long, requires = "trust")]
        offline: bool,
        /// The trust list file (from `trust export`).
        #[arg(long, value_name = "FILE")]
        trust: Option<PathBuf>,
        /// Signed status list files (from `status-list export`); repeat for several.
        #[arg(long = "status-list", value_name = "FILE")]
        status_lists: Vec<PathBuf>,
        /// The root certificate (PEM) to pin instead of trusting the trust list's own root.
        #[arg(long, value_name = "PEM")]
        root: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a development root and a signer per department, unless keys exist already.
    Init,
    /// List signer certificates.
    List,
    /// Give a department a new signing key; the old one is retired (still verifies).
    Rotate {
        /// The issuing department (its USCC) that gets a new key.
        #[arg(long, value_name = "USCC")]
        department: String,
    },
    /// Revoke a signer certificate: what it signed verifies as `signer_revoked`.
    Revoke {
        /// The key id (base64url, so it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a department with roles (clerk, officer, library, admin); prints it once.
    Create {
        /// The issuing department the token acts for (omit for a library or admin token).
        #[arg(long, value_name = "USCC")]
        department: Option<String>,
        /// Comma-separated roles: clerk, officer, library, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Who holds the token (shown in the audit trail).
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// Revoke a token by its id.
    Revoke {
        /// The token's id, as `token create` printed it.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken record. Exit 0 when intact, 2 when broken.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum RegisterCommand {
    /// The public address (VERIFY_BASE) new QR codes and PDFs are made with.
    Show,
    /// Change the public address of new QR codes and PDFs; existing versions keep theirs.
    SetVerifyBase {
        /// The service's public URL, e.g. https://zz.example.gov.cn
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Write the trust list (JSON) to FILE.
    Export {
        /// Where to write the trust list.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum StatusListCommand {
    /// Write status list N of an issuing department (signed COSE_Sign1) to FILE.
    Export {
        /// The issuing department (its USCC) whose list to export.
        #[arg(long, value_name = "USCC")]
        issuer: String,
        /// The list's number n (entry i lives in list i div 131072).
        #[arg(long, default_value_t = 0)]
        list: u64,
        /// Where to write the signed list.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// The licence types with their codes and the directory version.
    List,
    /// One licence type with its fields.
    Show {
        /// The licence type code (21 characters).
        type_code: String,
        /// Print a valid sample record instead: the starting point for `issue --file`.
        #[arg(long)]
        example: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LicenceCommand {
    /// A licence at one version (the latest unless named), with its events.
    Show {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// The version to show (default: the latest).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Every version of a licence.
    Versions {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
    },
    /// Write the PDF of a version (the latest unless named).
    Pdf {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// The version whose PDF to write (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// Where to write the PDF.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
    },
    /// Amend (变更): a new version with changed holder name or fields, from a JSON file
    /// `{"holder_name": …, "fields": {…}, "reason": …}`.
    Amend {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// The changes as JSON.
        #[arg(long, value_name = "CHANGES.json")]
        file: PathBuf,
    },
    /// Renew (延续): a new version with a new validity period.
    Renew {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// First day of the new validity (default: the day after the current one ends, or today).
        #[arg(long, value_name = "YYYY-MM-DD")]
        valid_from: Option<String>,
        /// Last day of the new validity (default: the type's validity from the first day).
        #[arg(long, value_name = "YYYY-MM-DD")]
        valid_until: Option<String>,
        /// Why, for the event and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Suspend (暂停) a licence.
    Suspend {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// Why, for the event and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reinstate a suspended licence.
    Reinstate {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// Why, for the event and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Revoke (注销/吊销) a licence.
    Revoke {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// Why, for the event and the audit trail.
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let json = cli.json;
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            if json {
                outln!("{}", e.to_json());
            }
            errln!("error: {e}");
            if let AppError::Invalid(errors) = &e {
                for error in &errors.0 {
                    errln!("  - {error}");
                }
            }
            1
        }
    }
}

async fn dispatch(cli: Cli) -> Result<i32, AppError> {
    let settings =
        Settings::load(cli.config.as_deref()).map_err(|e| AppError::Config(e.to_string()))?;
    let json = cli.json;
    match cli.command {
        Command::Directory(command) => directory(settings, command, json).await,
        Command::Verify {
            input,
            offline: true,
            trust,
            status_lists,
            root,
        } => {
            let trust = trust.expect("clap requires --trust with --offline");
            verify_offline(
                &settings,
                &input,
                &trust,
                &status_lists,
                root.as_deref(),
                json,
            )
        }
        Command::Bench(command) => bench(&settings, command, json).await,
        Command::Openapi => {
            outln!("{}", crate::http::openapi::document());
            Ok(0)
        }
        Command::SampleBatch {
            rows,
            bad_rate,
            out,
            seed,
            gb18030,
            types,
        } => {
            let directory =
                crate::directory::Directory::load(&settings.templates_dir.join("directory"))?;
            let font = std::fs::read(settings.templates_dir.join(crate::render::FONT_FILE))
                .map_err(|e| AppError::Config(format!("the licence font: {e}")))?;
            let options = crate::batch::sample::Options {
                rows,
                bad_rate,
                seed: seed.unwrap_or_else(rand::random),
                gb18030,
                max_scan_bytes: settings.max_scan_bytes,
                types,
            };
            let written = crate::batch::sample::write(&directory, &font, &out, &options)
                .map_err(|e| AppError::BadInput(format!("sample-batch: {e}")))?;
            print(json, &written, || {
                format!(
                    "{} rows ({} deliberately bad, listed in expected-rejections.csv) and {} scans written to {}",
                    written.rows,
                    written.bad_rows,
                    written.scans,
                    out.display()
                )
            });
            Ok(0)
        }
        Command::Convert {
            batch,
            all_or_nothing,
            report,
        } => {
            let app = std::sync::Arc::new(App::open(settings).await?);
            let code = convert(&app, &batch, all_or_nothing, report, json).await;
            app.close().await;
            code
        }
        Command::Serve { verify_per_minute } => {
            let app = App::open(settings).await?;
            let options = crate::http::HttpOptions {
                verify_per_minute: std::num::NonZeroU32::new(verify_per_minute),
                trusted_proxies: app.settings.trusted_proxies.clone(),
            };
            crate::http::serve(app, options)
                .await
                .map_err(|e| AppError::Config(e.to_string()))?;
            Ok(0)
        }
        command => {
            let app = App::open(settings).await?;
            let code = with_app(&app, command, json).await;
            app.close().await;
            code
        }
    }
}

async fn with_app(app: &App, command: Command, json: bool) -> Result<i32, AppError> {
    let actor = Actor::local_operator();
    match command {
        Command::Trust(TrustCommand::Export { file }) => {
            let list = app.trust_list();
            write_file(
                &file,
                serde_json::to_string_pretty(&list)
                    .expect("serialises")
                    .as_bytes(),
            )?;
            print(json, &list, || {
                format!(
                    "trust list version {} written to {}",
                    list.version,
                    file.display()
                )
            });
        }
        Command::StatusList(StatusListCommand::Export { issuer, list, file }) => {
            let signed = app.status_list(&issuer, list).await?;
            write_file(&file, &signed)?;
            let info = serde_json::json!({"issuer": issuer, "list": list, "bytes": signed.len(), "file": file});
            print(json, &info, || {
                format!(
                    "status list {list} of {issuer} ({} bytes) written to {}",
                    signed.len(),
                    file.display()
                )
            });
        }
        Command::Issue { type_code, file } => {
            let input: RecordInput = read_json(&file)?;
            let issued = app.issue(&actor, &type_code, &input, None).await?;
            print(json, &issued, || {
                format!("{}\n{}", issued.id, issued.qr_text)
            });
        }
        Command::Licence(command) => licence(app, &actor, command, json).await?,
        Command::Keys(command) => keys(app, &actor, command, json).await?,
        Command::Register(RegisterCommand::Show) => {
            let verify_base = app.verify_base().await?;
            print(
                json,
                &serde_json::json!({"verify_base": verify_base}),
                || verify_base.clone(),
            );
        }
        Command::Register(RegisterCommand::SetVerifyBase { url }) => {
            let change = app.set_verify_base(&actor, &url).await?;
            print(json, &change, || {
                format!(
                    "verify base {} -> {}\n{}",
                    change.previous, change.verify_base, change.existing_versions
                )
            });
        }
        Command::Token(TokenCommand::Create {
            department,
            roles,
            name,
        }) => {
            let roles = roles
                .iter()
                .map(|r| {
                    Role::parse(r.trim())
                        .ok_or_else(|| AppError::BadInput(format!("roles: unknown role {r:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let (id, token) = app
                .create_token(&actor, &name, department.as_deref(), &roles)
                .await?;
            let created = serde_json::json!({"id": id, "token": token, "name": name, "department": department});
            print(json, &created, || {
                format!("token {id} ({name}) — shown once, keep it safe:\n{token}")
            });
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            app.revoke_token(&actor, id).await?;
            print(json, &serde_json::json!({"revoked": id}), || {
                format!("token {id} revoked")
            });
        }
        Command::Audit(AuditCommand::Verify) => {
            let report = app.store.verify_audit().await?;
            print(json, &report, || match &report.first_break {
                None => format!(
                    "audit trail intact: {} records, head {}",
                    report.records, report.head
                ),
                Some(b) => format!("audit trail BROKEN at record {}: {}", b.seq, b.reason),
            });
            return Ok(if report.first_break.is_none() { 0 } else { 2 });
        }
        Command::Verify { input, .. } => {
            let verification = app.verify(&input).await?;
            return Ok(report_verification(&verification, json));
        }
        Command::Directory(_)
        | Command::Serve { .. }
        | Command::Bench(_)
        | Command::SampleBatch { .. }
        | Command::Convert { .. }
        | Command::Openapi => {
            unreachable!("handled in dispatch")
        }
    }
    Ok(0)
}

async fn convert(
    app: &std::sync::Arc<App>,
    batch: &Path,
    all_or_nothing: bool,
    report: Option<PathBuf>,
    json: bool,
) -> Result<i32, AppError> {
    let actor = Actor::local_operator();
    crate::batch::limits::check_folder_manifest(batch, app.settings.max_manifest_line_bytes)?;
    crate::batch::job::interrupt_abandoned_runs(app).await;
    let run = crate::batch::create(app, &actor, all_or_nothing).await?;
    let id = run.batch_id().to_string();
    let progress = ConsoleProgress::new();
    let converted = crate::batch::convert(app, &actor, &run, batch, &progress).await;
    drop(run);
    progress.finish();
    let base = report.unwrap_or_else(|| crate::batch::default_report_base(app, &id));
    let summary = match converted {
        Ok(summary) => summary,
        Err(error) => {
            // The rows committed before the error still get their report; failing to write it
            // must not hide the error that stopped the conversion.
            match crate::batch::stored_summary(app, &id).await {
                Ok(summary) => match crate::batch::report::write(app, &summary, &base).await {
                    Ok((csv, json_report)) => {
                        errln!("report: {} and {}", csv.display(), json_report.display())
                    }
                    Err(e) => errln!("no report could be written: {e}"),
                },
                Err(e) => errln!("no report could be written: {e}"),
            }
            return Err(error);
        }
    };
    let (csv, json_report) = crate::batch::report::write(app, &summary, &base).await?;
    print(json, &summary, || {
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
    });
    let clean = summary.counts.rejected == 0 && summary.state == crate::batch::BatchState::Done;
    Ok(if clean { 0 } else { 2 })
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

async fn licence(
    app: &App,
    actor: &Actor,
    command: LicenceCommand,
    json: bool,
) -> Result<(), AppError> {
    match command {
        LicenceCommand::Show { id, version } => {
            let view = app.show(actor, &id, version).await?;
            print(json, &view, || describe_licence(app, &view));
        }
        LicenceCommand::Versions { id } => {
            let versions = app.versions(actor, &id).await?;
            print(json, &versions, || {
                versions
                    .iter()
                    .map(|v| {
                        format!(
                            "{}  issued {}  valid {} .. {}{}",
                            v.id,
                            v.issued_at,
                            v.valid_from,
                            v.valid_until.as_deref().unwrap_or("permanent"),
                            match (v.superseded, v.validity) {
                                (true, _) => "  (superseded)",
                                (false, "not_yet_valid") => "  (pending)",
                                _ => "",
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        LicenceCommand::Pdf {
            id,
            version,
            output,
        } => {
            let pdf = app.pdf(actor, &id, version).await?;
            write_file(&output, &pdf)?;
            let info = serde_json::json!({"file": output, "bytes": pdf.len()});
            print(json, &info, || {
                format!("{} ({} bytes)", output.display(), pdf.len())
            });
        }
        LicenceCommand::Amend { id, file } => {
            let change: Amendment = read_json(&file)?;
            let issued = app.amend(actor, &id, &change).await?;
            print(json, &issued, || {
                format!("{}\n{}", issued.id, issued.qr_text)
            });
        }
        LicenceCommand::Renew {
            id,
            valid_from,
            valid_until,
            reason,
        } => {
            let renewal = Renewal {
                valid_from,
                valid_until,
                reason,
            };
            let issued = app.renew(actor, &id, &renewal).await?;
            print(json, &issued, || {
                format!("{}\n{}", issued.id, issued.qr_text)
            });
        }
        LicenceCommand::Suspend { id, reason } => {
            status(app, actor, &id, EventKind::Suspended, reason, json).await?
        }
        LicenceCommand::Reinstate { id, reason } => {
            status(app, actor, &id, EventKind::Reinstated, reason, json).await?
        }
        LicenceCommand::Revoke { id, reason } => {
            status(app, actor, &id, EventKind::Revoked, reason, json).await?
        }
    }
    Ok(())
}

async fn status(
    app: &App,
    actor: &Actor,
    id: &str,
    kind: EventKind,
    reason: Option<String>,
    json: bool,
) -> Result<(), AppError> {
    let event = app
        .change_status(actor, id, kind, reason.as_deref())
        .await?;
    print(json, &event, || {
        format!("{} {} (event {})", id, kind.as_str(), event.seq)
    });
    Ok(())
}

fn describe_licence(app: &App, view: &crate::app::LicenceView) -> String {
    let v = &view.version;
    let mut out = vec![
        format!("{} {}", view.type_name, view.number),
        format!("licence   {}", view.licence_id),
        format!(
            "version   {} of {}{}",
            v.id,
            view.latest_version,
            if v.superseded { " (superseded)" } else { "" }
        ),
        format!("status    {} ({})", view.status.as_str(), v.validity),
    ];
    if view.in_effect_version != v.version {
        out.push(format!("in effect version {}", view.in_effect_version));
    }
    if let Some(p) = &view.pending {
        let what = match p.kind {
            EventKind::Renewed => "renewal",
            _ => "amendment",
        };
        out.push(format!(
            "pending   {what} (version {}) from {}",
            p.version, p.valid_from
        ));
    }
    out.extend([
        format!("holder    {} {}", v.holder.name, v.holder.id),
        format!(
            "validity  {} .. {}",
            v.valid_from,
            v.valid_until.as_deref().unwrap_or("permanent")
        ),
    ]);
    if let Ok(code) = crate::identifiers::TypeCode::parse(&view.type_code) {
        if let Ok(t) = app.licence_type(&code) {
            for f in &t.fields {
                if let Some(value) = v.fields.get(&f.key) {
                    out.push(format!("  {}: {}", f.label, value));
                }
            }
        }
    }
    out.push(format!("QR        {}", v.qr_text));
    for e in &view.events {
        out.push(format!(
            "event {:>6}  {}  {:<10} v{} {}{}",
            e.seq,
            e.at,
            e.kind.as_str(),
            e.version,
            e.actor,
            e.reason
                .as_deref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ));
    }
    out.join("\n")
}

async fn keys(app: &App, actor: &Actor, command: KeysCommand, json: bool) -> Result<(), AppError> {
    match command {
        KeysCommand::Init => {
            // Opening the application made the keys if there were none (and said so loudly).
            let list = app.trust_list();
            let message = format!(
                "{} signer certificates under {}",
                list.signers.len(),
                app.settings.keys_dir.display()
            );
            print(json, &list, || message.clone());
        }
        KeysCommand::List => {
            let list = app.trust_list();
            print(json, &list.signers, || {
                list.signers
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {:<8} {} {}{}",
                            s.kid,
                            format!("{:?}", s.status).to_lowercase(),
                            s.uscc,
                            s.department,
                            s.revoked_at
                                .as_deref()
                                .map(|t| format!(" (revoked {t})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Rotate { department } => {
            let kid = app.rotate_key(actor, &department).await?;
            print(
                json,
                &serde_json::json!({"kid": kid, "department": department}),
                || format!("new signer {kid} for {department}; the previous one is retired"),
            );
        }
        KeysCommand::Revoke { kid } => {
            app.revoke_key(actor, &kid).await?;
            print(json, &serde_json::json!({"revoked": kid}), || {
                format!("signer {kid} revoked")
            });
        }
    }
    Ok(())
}

async fn directory(
    settings: Settings,
    command: DirectoryCommand,
    json: bool,
) -> Result<i32, AppError> {
    // The directory version lives in the store, so listing opens it (and records a changed file).
    let app = App::open(settings).await?;
    match command {
        DirectoryCommand::List => {
            let types: Vec<_> = app.directory.types().map(TypeSummary::from).collect();
            let listing =
                serde_json::json!({"directory_version": app.directory_version, "types": types});
            print(json, &listing, || {
                let mut lines = vec![format!("directory version {}", app.directory_version)];
                lines.extend(types.iter().map(|t| {
                    format!(
                        "{}  {}  ({}, {}, {})",
                        t.code,
                        t.name,
                        t.issuer,
                        t.holder_kind.as_str(),
                        t.default_validity
                    )
                }));
                lines.join("\n")
            });
        }
        DirectoryCommand::Show { type_code, example } => {
            let code = crate::identifiers::TypeCode::parse(&type_code)?;
            let t = app.licence_type(&code)?;
            if example {
                let record = RecordInput::example_of(t);
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&record).expect("serialises")
                );
            } else {
                print(json, t, || describe_type(t));
            }
        }
    }
    app.close().await;
    Ok(0)
}

#[derive(Serialize)]
struct TypeSummary {
    code: String,
    name: String,
    issuer: String,
    holder_kind: HolderKind,
    default_validity: String,
}

impl From<&LicenceType> for TypeSummary {
    fn from(t: &LicenceType) -> Self {
        TypeSummary {
            code: t.code.to_string(),
            name: t.name.clone(),
            issuer: t.issuer.name.clone(),
            holder_kind: t.holder_kind,
            default_validity: t.default_validity.to_string(),
        }
    }
}

fn describe_type(t: &LicenceType) -> String {
    let mut lines = vec![
        format!("{} {}", t.code, t.name),
        format!("issuer  {} ({})", t.issuer.name, t.issuer.uscc),
        format!(
            "holder  {}; default validity {}",
            t.holder_kind.as_str(),
            t.default_validity
        ),
    ];
    for f in &t.fields {
        lines.push(format!(
            "  {:<24} {:<14} {:?}{}{}{}",
            f.key,
            f.label,
            f.field_type,
            if f.required { " required" } else { "" },
            if f.public { " public" } else { " private" },
            if f.values.is_empty() {
                String::new()
            } else {
                format!(" [{}]", f.values.join("|"))
            }
        ));
    }
    for rule in &t.rules {
        let words = t
            .field(&rule.field)
            .map_or(rule.must_be.symbol(), |f| rule.must_be.words(f.field_type));
        lines.push(format!(
            "  rule: {} must be {words} {}",
            rule.field, rule.other
        ));
    }
    lines.join("\n")
}

async fn bench(settings: &Settings, command: BenchCommand, json: bool) -> Result<i32, AppError> {
    let failed = |e: anyhow::Error| AppError::Config(format!("benchmark: {e}"));
    let dir = tempfile::tempdir().map_err(|e| AppError::Config(e.to_string()))?;
    let database_url = match &command {
        BenchCommand::Feed { database_url, .. }
        | BenchCommand::Verify { database_url, .. }
        | BenchCommand::Convert { database_url, .. } => database_url.clone(),
        BenchCommand::Sign { .. } | BenchCommand::Render { .. } => None,
    };
    let app =
        crate::bench::scratch_app(dir.path(), &settings.templates_dir, database_url.as_deref())
            .await
            .map_err(failed)?;
    let reports = match command {
        BenchCommand::Sign { count } => crate::bench::sign(&app, count).await.map_err(failed)?,
        BenchCommand::Render { count } => {
            let (reports, sizes) = crate::bench::render(&app, count).await.map_err(failed)?;
            for (name, bytes) in &sizes {
                if !json {
                    outln!("{name:<28} {bytes:>7} bytes");
                }
            }
            reports
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

fn verify_offline(
    settings: &Settings,
    input: &str,
    trust: &Path,
    status_lists: &[PathBuf],
    root: Option<&Path>,
    json: bool,
) -> Result<i32, AppError> {
    let trust_json = std::fs::read_to_string(trust)
        .map_err(|e| AppError::BadInput(format!("{}: {e}", trust.display())))?;
    let list: crate::signing::trust::TrustList = serde_json::from_str(&trust_json)
        .map_err(|e| AppError::BadInput(format!("{}: not a trust list: {e}", trust.display())))?;
    let pinned = root
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|e| AppError::BadInput(format!("{}: {e}", p.display())))
        })
        .transpose()?;
    let pinned_roots = pinned.map(|p| vec![p]);
    let store = TrustStore::new(&list, pinned_roots.as_deref())
        .map_err(|e| AppError::BadInput(format!("{}: {e}", trust.display())))?;
    let mut lists = Vec::new();
    for path in status_lists {
        let bytes = std::fs::read(path)
            .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
        let parsed = StatusList::parse_signed(&bytes)
            .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
        lists.push(parsed);
    }
    let verification = match qr::token_from_text(input) {
        Ok(token) => verify::verify_offline(
            &token,
            &store,
            &lists,
            settings.status_list_max_age_seconds,
            time_util::now().unix_timestamp(),
        ),
        Err(e) => Verification::failed(Outcome::Malformed, e.to_string()),
    };
    Ok(report_verification(&verification, json))
}

fn report_verification(v: &Verification, json: bool) -> i32 {
    print(json, v, || {
        let mut lines = vec![format!(
            "{} ({}) — {}",
            v.result.as_str(),
            v.line_zh(),
            v.message
        )];
        if let Some(l) = &v.licence {
            lines.push(format!("{} {} v{}", l.name, l.id, l.version));
            lines.push(format!("holder {} {}", l.holder_name, l.holder_id));
            lines.push(format!(
                "valid {} .. {}",
                l.valid_from,
                l.valid_until.as_deref().unwrap_or("permanent")
            ));
        }
        if let Some(d) = &v.department {
            lines.push(format!(
                "issued by {} ({}), kid {}",
                d.name,
                d.uscc,
                v.kid.as_deref().unwrap_or("")
            ));
        }
        if let Some(c) = &v.current {
            lines.push(format!("now {} at version {}", c.status, c.version));
            if let Some(p) = &c.pending {
                lines.push(format!(
                    "version {} ({}) takes effect on {}",
                    p.version,
                    p.kind.as_str(),
                    p.valid_from
                ));
            }
        }
        lines.join("\n")
    });
    if v.result == Outcome::Valid {
        0
    } else {
        2
    }
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(value).expect("results serialise")
        );
    } else {
        outln!("{}", human());
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AppError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), AppError> {
    std::fs::write(path, data).map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument of every command says what it is in `--help` (SPEC §12), and clap's own
    /// consistency checks hold.
    #[test]
    fn every_argument_has_a_help_line() {
        use clap::CommandFactory;
        fn missing(command: &clap::Command, path: &str, out: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    out.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                missing(sub, &format!("{path} {}", sub.get_name()), out);
            }
        }
        let command = Cli::command();
        command.clone().debug_assert();
        let mut out = Vec::new();
        missing(&command, "elicence", &mut out);
        assert!(out.is_empty(), "arguments without help: {out:#?}");
    }
    use clap::Parser;

    #[test]
    fn a_key_id_beginning_with_a_hyphen_is_a_key_id_not_an_option() {
        let cli = Cli::try_parse_from(["elicence", "keys", "revoke", "-PeT2umUePs"]).unwrap();
        let Command::Keys(KeysCommand::Revoke { kid }) = cli.command else {
            panic!("parsed as another command");
        };
        assert_eq!(kid, "-PeT2umUePs");
    }
}
