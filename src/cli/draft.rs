//! `draft`: a manifest drafted from a folder of scans by OCR, for a clerk to check and convert.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::print;
use crate::app::{Actor, App, AppError};
use crate::identifiers::TypeCode;

#[derive(Debug, Args)]
pub struct DraftArgs {
    /// The folder of scans (JPEG, PNG; subfolders too).
    #[arg(value_name = "SCANS_DIR")]
    scans: PathBuf,
    /// The licence type the scans are of.
    #[arg(long = "type", value_name = "TYPE_CODE")]
    type_code: String,
    /// Where to write the manifest: in SCANS_DIR or a folder above it, since a manifest names
    /// its scans relative to itself [default: SCANS_DIR/../manifest.csv]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Exit 0 when every scan was drafted with nothing in doubt, 2 when a clerk has cells to check
/// or scans were not drafted (both listed).
pub(super) async fn run(
    app: &Arc<App>,
    actor: &Actor,
    args: DraftArgs,
    json: bool,
) -> Result<i32, AppError> {
    let type_code = TypeCode::parse(&args.type_code)?;
    let scans_dir = args
        .scans
        .canonicalize()
        .map_err(|e| AppError::BadInput(format!("{}: {e}", args.scans.display())))?;
    let out = args.out.unwrap_or_else(|| {
        scans_dir
            .parent()
            .unwrap_or(&scans_dir)
            .join("manifest.csv")
    });
    if out.exists() {
        return Err(AppError::BadInput(format!(
            "{} exists already: drafting never overwrites a manifest",
            out.display()
        )));
    }
    let base = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .canonicalize()
        .map_err(|e| AppError::BadInput(format!("{}: {e}", out.display())))?;
    if !scans_dir.starts_with(&base) {
        return Err(AppError::BadInput(format!(
            "{} is not in {} or below it: a manifest can only name scans beside or under it",
            args.scans.display(),
            base.display()
        )));
    }
    let scans = crate::draft::scans_in(&scans_dir, &base)
        .map_err(|e| AppError::BadInput(format!("{}: {e}", args.scans.display())))?;
    if scans.is_empty() {
        return Err(AppError::BadInput(format!(
            "{} holds no JPEG or PNG scans",
            args.scans.display()
        )));
    }
    let (worker, actor, folder) = (app.clone(), actor.clone(), base.clone());
    let draft = tokio::task::spawn_blocking(move || {
        worker.draft_scans(&actor, &type_code, &folder, &scans)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    // Written aside and moved into place only if nothing is there by then: a draft killed while
    // writing leaves no half manifest, and of two drafts racing for one file the second fails.
    let failed = |e: &dyn std::fmt::Display| AppError::BadInput(format!("{}: {e}", out.display()));
    let mut file = tempfile::NamedTempFile::new_in(&base).map_err(|e| failed(&e))?;
    crate::batch::draft_manifest::write_draft(&draft, std::io::BufWriter::new(file.as_file_mut()))
        .map_err(|e| failed(&e))?;
    file.persist_noclobber(&out).map_err(|e| failed(&e.error))?;
    let doubted: usize = draft.rows.iter().map(|r| r.doubts().len()).sum();
    let doubted_rows = draft.rows.iter().filter(|r| !r.doubts().is_empty()).count();
    print(json, &draft, || {
        let mut said = format!(
            "{} scans drafted into {}: {} rows need review ({} cells, listed in needs_review); {} scans not drafted",
            draft.rows.len(),
            out.display(),
            doubted_rows,
            doubted,
            draft.skipped.len()
        );
        for skipped in &draft.skipped {
            said.push_str(&format!("\n  - {}: {}", skipped.scan, skipped.reason));
        }
        said
    });
    Ok(if doubted == 0 && draft.skipped.is_empty() {
        0
    } else {
        2
    })
}
