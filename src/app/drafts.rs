//! Drafting manifests from scans (`elicence draft`, the console's 识别起草): the one place that
//! decides who may draft for a type and checks each drafted row as conversion will.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{permissions, Action, Actor, App, AppError, Result};
use crate::draft::Draft;
use crate::identifiers::TypeCode;
use crate::licence::{Door, RecordInput};
use crate::time_util;

/// How long a console draft's scans are kept unsent (personal data: not for good).
const DRAFT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// A draft still being read after this was cut short (the process stopped while reading).
const DRAFTING_AT_MOST: Duration = Duration::from_secs(3600);

impl App {
    /// Where the console keeps drafts: `data/drafts/{id}`.
    pub fn drafts_dir(&self) -> PathBuf {
        self.settings.data_dir.join("drafts")
    }

    /// Removes drafts left unsent for [`DRAFT_RETENTION`] (and any a send left behind), and
    /// marks failed those whose reading was cut short, so their page says so instead of
    /// waiting for ever.
    pub fn forget_old_drafts(&self) {
        let Ok(entries) = std::fs::read_dir(self.drafts_dir()) else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let dir = entry.path();
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|modified| now.duration_since(modified).ok())
                .unwrap_or_default();
            let unfinished = !dir.join("draft.json").exists() && !dir.join("failed").exists();
            let outcome = if age > DRAFT_RETENTION {
                std::fs::remove_dir_all(&dir)
            } else if unfinished && age > DRAFTING_AT_MOST {
                std::fs::write(
                    dir.join("failed"),
                    "识别被中断（服务曾停止），请重新上传扫描件",
                )
            } else {
                Ok(())
            };
            if let Err(e) = outcome {
                tracing::error!(draft = %dir.display(), error = %e, "cannot tidy a console draft");
            }
        }
    }

    /// Records that `actor` started drafting `scans` scans of `type_code` in the console (the
    /// scans are kept until the draft is sent to conversion), after checking they may.
    pub async fn record_draft_started(
        &self,
        actor: &Actor,
        type_code: &TypeCode,
        scans: usize,
    ) -> Result<()> {
        let mut entry = actor.entry("batch.draft", type_code.as_str());
        entry.detail = format!("{scans} scans");
        self.audited(entry.clone(), async |_| {
            let licence_type = self.licence_type(type_code)?;
            permissions::check(actor, Action::ConvertBatch, Some(&licence_type.issuer.uscc))
        })
        .await?;
        self.append_audit_or_hold(entry).await;
        Ok(())
    }

    /// Drafts the scans `scans` (paths relative to `base`) as licences of `type_code`. Reads
    /// only: nothing is stored. Runs Tesseract on every core; call it off the async runtime.
    pub fn draft_scans(
        &self,
        actor: &Actor,
        type_code: &TypeCode,
        base: &Path,
        scans: &[String],
    ) -> Result<Draft> {
        let licence_type = self.licence_type(type_code)?;
        permissions::check(actor, Action::ConvertBatch, Some(&licence_type.issuer.uscc))?;
        let today = time_util::today_cst();
        let check = |input: &RecordInput| {
            self.check_record(licence_type, input, Door::Conversion, today, String::new)
                .map(|_| ())
        };
        crate::draft::draft_scans(
            &self.directory,
            licence_type,
            base,
            scans,
            self.settings.max_scan_bytes,
            today,
            &check,
        )
        .map_err(|e| AppError::Internal(e.to_string()))
    }
}
