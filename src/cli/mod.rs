//! The `elicence` command line (SPEC §12): a thin layer over [`crate::app::App`]. Every command
//! that prints a result takes `--json` and then prints the same JSON as the API.
//!
//! This file holds what every command shares: parsing (`Cli`, `Command`), [`run`] with its one
//! dispatch, and the output helpers. Each command group is a file of its own, with its arguments
//! and a `run` the dispatch calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::app::{Actor, App, AppError};
use crate::config::Settings;

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

mod alerts;
mod bench;
mod convert;
mod directory;
mod draft;
mod keys;
mod licence;
mod log;
mod staff;
mod supervision;
mod verify;

pub use alerts::AlertsCommand;
pub use bench::BenchCommand;
pub use convert::{ConvertArgs, SampleBatchArgs};
pub use directory::DirectoryCommand;
pub use draft::DraftArgs;
pub use keys::{KeysCommand, StatusListCommand, TrustCommand};
pub use licence::{IssueArgs, LicenceCommand};
pub use staff::{AuditCommand, RegisterCommand, StaffCommand, TokenCommand};
pub use supervision::SupervisionCommand;
pub use verify::VerifyArgs;

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
    /// Run the HTTP service, the alert watcher (and the push worker when a library URL is
    /// configured).
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
    Issue(IssueArgs),
    /// Show and change licences.
    #[command(subcommand)]
    Licence(LicenceCommand),
    /// Write a synthetic batch of stock licences: manifest.csv, scans, expected-rejections.csv.
    #[command(name = "sample-batch")]
    SampleBatch(SampleBatchArgs),
    /// Convert a batch of stock paper licences (a folder with manifest.csv and its scans).
    /// Exit 0 when every row was issued or skipped, 2 when rows were rejected, 1 on an error.
    Convert(ConvertArgs),
    /// Draft a manifest from a folder of scans by OCR (Tesseract): values a clerk checks, with what is in doubt marked
    Draft(DraftArgs),
    /// Staff accounts for the console (passwords stored hashed; the first one shown once).
    #[command(subcommand)]
    Staff(StaffCommand),
    /// API tokens (stored hashed; shown once when created).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Alerts from the rules of electronic supervision (电子监察): the rules, one pass now.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Supervision figures (电子监察): what each department did, day by day.
    #[command(subcommand)]
    Supervision(SupervisionCommand),
    /// The transparency log (SPEC §16): heads, receipts, and checking the stored tree.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Print the OpenAPI 3 document of the HTTP API (also served at /api/v1/openapi.json).
    Openapi,
    /// Benchmarks: throughput and latency percentiles with the core count.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Verify a QR text, its base32 part or a licence version identifier.
    /// Exit 0 for valid, 2 for any other result, 1 for an error.
    Verify(VerifyArgs),
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

/// Sends each command to its group. Commands that need the service's store open the application
/// here and close it after (which appends or logs audit records still held); the others
/// (`sample-batch`, `verify --offline`, `bench`, `openapi`) run without it.
async fn dispatch(cli: Cli) -> Result<i32, AppError> {
    let settings =
        Settings::load(cli.config.as_deref()).map_err(|e| AppError::Config(e.to_string()))?;
    let json = cli.json;
    let actor = Actor::local_operator();
    match cli.command {
        Command::Openapi => {
            outln!("{}", crate::http::openapi::document());
            Ok(0)
        }
        Command::SampleBatch(args) => convert::sample_batch(&settings, args, json),
        Command::Bench(command) => bench::run(&settings, command, json).await,
        Command::Verify(args) if args.offline => verify::run_offline(args, json),
        Command::Serve { verify_per_minute } => serve(settings, verify_per_minute).await,
        Command::Verify(args) => {
            let app = open(settings).await?;
            closing(&app, verify::run(&app, args, json).await).await
        }
        Command::Directory(command) => {
            let app = open(settings).await?;
            closing(&app, directory::run(&app, command, json)).await
        }
        Command::Convert(args) => {
            let app = open(settings).await?;
            closing(&app, convert::run(&app, &actor, args, json).await).await
        }
        Command::Draft(args) => {
            let app = open(settings).await?;
            closing(&app, draft::run(&app, &actor, args, json).await).await
        }
        Command::Issue(args) => {
            let app = open(settings).await?;
            closing(&app, licence::issue(&app, &actor, args, json).await).await
        }
        Command::Licence(command) => {
            let app = open(settings).await?;
            closing(&app, licence::run(&app, &actor, command, json).await).await
        }
        Command::Keys(command) => {
            let app = open(settings).await?;
            closing(&app, keys::run(&app, &actor, command, json).await).await
        }
        Command::Trust(command) => {
            let app = open(settings).await?;
            closing(&app, keys::export_trust(&app, command, json)).await
        }
        Command::StatusList(command) => {
            let app = open(settings).await?;
            closing(&app, keys::export_status_list(&app, command, json).await).await
        }
        Command::Staff(command) => {
            let app = open(settings).await?;
            closing(&app, staff::staff(&app, &actor, command, json).await).await
        }
        Command::Token(command) => {
            let app = open(settings).await?;
            closing(&app, staff::tokens(&app, &actor, command, json).await).await
        }
        Command::Register(command) => {
            let app = open(settings).await?;
            closing(&app, staff::register(&app, &actor, command, json).await).await
        }
        Command::Audit(command) => {
            let app = open(settings).await?;
            closing(&app, staff::audit(&app, command, json).await).await
        }
        Command::Alerts(AlertsCommand::Rules) => {
            alerts::rules(&alerts::load_rules(&settings)?, json)
        }
        Command::Alerts(AlertsCommand::Check) => {
            let rules = alerts::load_rules(&settings)?;
            let app = open(settings).await?;
            closing(&app, alerts::check(app.clone(), rules, json).await).await
        }
        Command::Supervision(command) => {
            let app = open(settings).await?;
            closing(&app, supervision::run(&app, &actor, command, json).await).await
        }
        Command::Log(command) => {
            let app = open(settings).await?;
            closing(&app, log::run(&app, command, json).await).await
        }
    }
}

async fn open(settings: Settings) -> Result<Arc<App>, AppError> {
    Ok(Arc::new(App::open(settings).await?))
}

/// Closes the application after a command, whatever its result, and passes the result on.
async fn closing(app: &App, result: Result<i32, AppError>) -> Result<i32, AppError> {
    app.close().await;
    result
}

/// `serve`: runs until stopped; the server owns the application.
async fn serve(settings: Settings, verify_per_minute: u32) -> Result<i32, AppError> {
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

/// Prints a result: as the API's JSON with `--json`, else as `human` says it.
fn print<T: Serialize + ?Sized>(json: bool, value: &T, human: impl FnOnce() -> String) {
    if json {
        print_json(value);
    } else {
        outln!("{}", human());
    }
}

fn print_json<T: Serialize + ?Sized>(value: &T) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("results serialise")
    );
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AppError> {
    let text = std::fs::read_to_string(path).map_err(|e| bad_file(path, e))?;
    serde_json::from_str(&text).map_err(|e| bad_file(path, e))
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), AppError> {
    std::fs::write(path, data).map_err(|e| bad_file(path, e))
}

/// A file the user named that cannot be read, written or understood: their input, named.
fn bad_file(path: &Path, e: impl std::fmt::Display) -> AppError {
    AppError::BadInput(format!("{}: {e}", path.display()))
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
