//! Drafting manifests from scans (`elicence draft`, the console's 识别起草): the one place that
//! decides who may draft for a type and checks each drafted row as conversion will.

use std::path::Path;

use super::{permissions, Action, Actor, App, AppError, Result};
use crate::draft::Draft;
use crate::identifiers::TypeCode;
use crate::licence::{Door, RecordInput};
use crate::time_util;

impl App {
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
