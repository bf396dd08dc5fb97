//! `issue` and `licence …`: a licence's life from its first version to its revocation — issue,
//! show, versions, PDF, QR code, amend, renew, suspend, reinstate, revoke. A room of its own because these
//! are the commands a clerk uses every day, each one call of [`App`] and one printed answer.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{print, read_json, write_file};
use crate::app::{Actor, Amendment, App, AppError, LicenceView, Renewal};
use crate::licence::{EventKind, RecordInput};
use crate::render::QrImageFormat;

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The licence type code (21 characters).
    type_code: String,
    /// The record as JSON.
    #[arg(long, value_name = "RECORD.json")]
    file: PathBuf,
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
    /// Export the QR code of a version (the latest unless named) alone, with its quiet zone,
    /// for a holder to show on a phone (亮证): PNG (10 px modules) or SVG.
    Qr {
        /// The licence: its identifier, or a version identifier (ID.VERSION.CHECK).
        id: String,
        /// The version whose code to export (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// A PNG image (the default).
        #[arg(long, conflicts_with = "svg")]
        png: bool,
        /// An SVG image, which scales to any screen.
        #[arg(long)]
        svg: bool,
        /// Where to write the image (default: standard output, unless it is a terminal).
        #[arg(
            short = 'o',
            long = "out",
            visible_alias = "output",
            value_name = "FILE"
        )]
        out: Option<PathBuf>,
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

/// `issue`: the first version of a new licence; prints its identifier and QR text.
pub(super) async fn issue(
    app: &App,
    actor: &Actor,
    args: IssueArgs,
    json: bool,
) -> Result<i32, AppError> {
    let input: RecordInput = read_json(&args.file)?;
    let issued = app.issue(actor, &args.type_code, &input, None).await?;
    print(json, &issued, || {
        format!("{}\n{}", issued.id, issued.qr_text)
    });
    Ok(0)
}

/// `licence …`: shows or changes one licence.
pub(super) async fn run(
    app: &App,
    actor: &Actor,
    command: LicenceCommand,
    json: bool,
) -> Result<i32, AppError> {
    match command {
        LicenceCommand::Show { id, version } => {
            let view = app.show(actor, &id, version).await?;
            print(json, &view, || describe_licence(app, &view));
        }
        LicenceCommand::Versions { id } => {
            let versions = app.versions(actor, &id).await?;
            print(json, &versions, || describe_versions(&versions));
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
        LicenceCommand::Qr {
            id,
            version,
            png: _,
            svg,
            out,
        } => {
            let format = if svg {
                QrImageFormat::Svg
            } else {
                QrImageFormat::Png
            };
            let image = app.qr_image(actor, &id, version, format).await?;
            write_image(&image, format, out.as_deref(), json)?;
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
            change_status(app, actor, &id, EventKind::Suspended, reason, json).await?
        }
        LicenceCommand::Reinstate { id, reason } => {
            change_status(app, actor, &id, EventKind::Reinstated, reason, json).await?
        }
        LicenceCommand::Revoke { id, reason } => {
            change_status(app, actor, &id, EventKind::Revoked, reason, json).await?
        }
    }
    Ok(0)
}

/// Writes an exported QR image to `out`, or to standard output when none is named (a PNG
/// never to a terminal, where its bytes would be noise); says what it wrote when it wrote a file.
fn write_image(
    image: &[u8],
    format: QrImageFormat,
    out: Option<&Path>,
    json: bool,
) -> Result<(), AppError> {
    let Some(out) = out else {
        let mut stdout = std::io::stdout().lock();
        if format == QrImageFormat::Png && stdout.is_terminal() {
            return Err(AppError::BadInput(
                "a PNG is not written to a terminal: name a file with --out FILE, or redirect"
                    .into(),
            ));
        }
        return stdout
            .write_all(image)
            .and_then(|()| stdout.flush())
            .map_err(|e| AppError::Config(format!("standard output: {e}")));
    };
    write_file(out, image)?;
    let info = serde_json::json!({"file": out, "format": format, "bytes": image.len()});
    print(json, &info, || {
        format!("{} ({} bytes)", out.display(), image.len())
    });
    Ok(())
}

async fn change_status(
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

fn describe_versions(versions: &[crate::app::VersionView]) -> String {
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
}

fn describe_licence(app: &App, view: &LicenceView) -> String {
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
    out.extend(field_lines(app, view));
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

/// The version's fields in the directory's order, with their labels.
fn field_lines(app: &App, view: &LicenceView) -> Vec<String> {
    let Ok(code) = crate::identifiers::TypeCode::parse(&view.type_code) else {
        return Vec::new();
    };
    let Ok(licence_type) = app.licence_type(&code) else {
        return Vec::new();
    };
    licence_type
        .fields
        .iter()
        .filter_map(|f| {
            let value = view.version.fields.get(&f.key)?;
            Some(format!("  {}: {}", f.label, value))
        })
        .collect()
}
