//! Checking a chunk's rows before anything is issued: their fields against the licence type,
//! the actor's department, duplicates within the manifest, numbers converted before, and the
//! scans they name (read on every core). A rejected row leaves here with its column and reason;
//! a good one as [`Pending`], ready to be issued. Apart from issuing because nothing here signs
//! or writes a licence.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::blocking;
use super::manifest::{ManifestRow, NEEDS_REVIEW, STANDARD_COLUMNS};
use super::progress::{Clock, Stage};
use crate::app::{permissions, Action, Actor, App, AppError, Result};
use crate::identifiers::TypeCode;
use crate::licence::{Door, Record, RecordInput};
use crate::messages::{Lang, Reason, Said};
use crate::scans;
use crate::store::{BatchRow, BatchRowOutcome};
use crate::time_util;

/// A row that passed every check, waiting to be issued.
pub(super) struct Pending {
    /// Its index in the chunk's rows.
    pub(super) row: usize,
    pub(super) type_code: TypeCode,
    pub(super) record: Record,
    pub(super) scan: scans::Scan,
}

/// Checks rows: fields, department, duplicates within the manifest, numbers converted before,
/// scans. Remembers the numbers it has seen across chunks.
pub(super) struct Checker<'a> {
    app: &'a Arc<App>,
    actor: &'a Actor,
    root: &'a Path,
    /// (type, number) → the first line with it.
    seen: HashMap<(String, String), u64>,
    /// Types this actor was refused, audited once each.
    refused: HashSet<String>,
    clock: &'a Arc<Clock>,
}

/// Why a row is rejected: its column (several, comma-separated), the reason in both languages,
/// and the reason's code (several, comma-separated) that the supervision figures count by.
struct RowError {
    column: String,
    reason: Said,
    code: String,
}

impl RowError {
    fn new(column: &str, reason: Reason) -> RowError {
        RowError {
            column: column.to_string(),
            code: reason.code().to_string(),
            reason: Said::from(reason),
        }
    }
}

impl<'a> Checker<'a> {
    pub(super) fn new(
        app: &'a Arc<App>,
        actor: &'a Actor,
        root: &'a Path,
        clock: &'a Arc<Clock>,
    ) -> Checker<'a> {
        Checker {
            app,
            actor,
            root,
            seen: HashMap::new(),
            refused: HashSet::new(),
            clock,
        }
    }

    pub(super) async fn check(
        &mut self,
        chunk: &[ManifestRow],
    ) -> Result<(Vec<BatchRow>, Vec<Pending>)> {
        let checking = Instant::now();
        let mut rows = Vec::with_capacity(chunk.len());
        let mut good = Vec::new();
        for row in chunk {
            let outcome = match self.check_fields(row).await {
                Ok((type_code, record)) => {
                    good.push((rows.len(), type_code, record, row.get("scan").to_string()));
                    BatchRowOutcome::Issue(0)
                }
                Err(RowError {
                    column,
                    reason,
                    code,
                }) => BatchRowOutcome::Rejected {
                    column,
                    reason,
                    code,
                },
            };
            rows.push(BatchRow {
                line: row.line,
                type_code: row.get("type_code").to_string(),
                number: row.get("number").to_string(),
                outcome,
                // Kept by the store for a rejected row only (a scan may still reject this one).
                cells: serde_json::to_string(&row.cells).ok(),
            });
        }
        self.skip_converted(&mut rows, &mut good).await?;
        self.clock.add(Stage::Check, checking);
        let pending = self.read_scans(&mut rows, good).await?;
        Ok((rows, pending))
    }

    async fn check_fields(
        &mut self,
        row: &ManifestRow,
    ) -> std::result::Result<(TypeCode, Record), RowError> {
        let err = RowError::new;
        if let Some(reason) = &row.cell_count_error {
            return Err(err("*", reason.clone()));
        }
        let doubts = row.get(NEEDS_REVIEW);
        if !doubts.is_empty() {
            return Err(err(
                NEEDS_REVIEW,
                Reason::DraftNeedsReview(doubts.to_string()),
            ));
        }
        let type_code = TypeCode::parse(row.get("type_code"))
            .map_err(|e| err("type_code", Reason::Identifier(e)))?;
        let licence_type = self
            .app
            .licence_type(&type_code)
            .map_err(|e| err("type_code", refused(&e)))?;
        if let Err(refusal) = permissions::check(
            self.actor,
            Action::ConvertBatch,
            Some(&licence_type.issuer.uscc),
        ) {
            let reason = refused(&refusal);
            if self.refused.insert(type_code.to_string()) {
                let entry = self.actor.entry("batch.convert", type_code.as_str());
                self.app.audit_failure(entry, &Err::<(), _>(refusal)).await;
            }
            return Err(err("type_code", reason));
        }
        let number = row.get("number");
        let mut fields = BTreeMap::new();
        for (column, value) in &row.cells {
            if STANDARD_COLUMNS.contains(&column.as_str())
                || column == NEEDS_REVIEW
                || value.is_empty()
            {
                continue;
            }
            if licence_type.field(column).is_none() {
                return Err(err(
                    column,
                    Reason::NotAFieldOf {
                        type_name: licence_type.name.clone(),
                    },
                ));
            }
            fields.insert(column.clone(), serde_json::Value::String(value.clone()));
        }
        let input = RecordInput::from_columns(|column| row.get(column), fields);
        let today = time_util::today_cst();
        let record = self
            .app
            .check_record(licence_type, &input, Door::Conversion, today, || {
                number.to_string()
            })
            .map_err(|errors| invalid_row(&errors))?;
        let key = (type_code.to_string(), record.number.clone());
        if let Some(first) = self.seen.get(&key) {
            return Err(err(
                "number",
                Reason::RepeatedInBatch {
                    number: record.number.clone(),
                    first_line: *first,
                },
            ));
        }
        self.seen.insert(key, row.line);
        Ok((type_code, record))
    }

    /// Marks rows whose type and number exist already as skipped (a rerun issues nothing twice).
    async fn skip_converted(
        &self,
        rows: &mut [BatchRow],
        good: &mut Vec<(usize, TypeCode, Record, String)>,
    ) -> Result<()> {
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, type_code, record, _) in good.iter() {
            by_type
                .entry(type_code.as_str())
                .or_default()
                .push(&record.number);
        }
        let mut existing = HashMap::new();
        for (type_code, numbers) in by_type {
            for (number, id) in self.app.store.existing_numbers(type_code, &numbers).await? {
                existing.insert((type_code.to_string(), number), id);
            }
        }
        good.retain(|(i, type_code, record, _)| {
            match existing.get(&(type_code.to_string(), record.number.clone())) {
                Some(id) => {
                    rows[*i].outcome = BatchRowOutcome::Skipped {
                        licence_id: id.clone(),
                    };
                    false
                }
                None => true,
            }
        });
        Ok(())
    }

    /// Reads and checks the good rows' scans on every core.
    async fn read_scans(
        &self,
        rows: &mut [BatchRow],
        good: Vec<(usize, TypeCode, Record, String)>,
    ) -> Result<Vec<Pending>> {
        let root = self.root.to_path_buf();
        let max = self.app.settings.max_scan_bytes;
        let clock = self.clock.clone();
        let read = blocking(move || {
            good.into_par_iter()
                .map(|(row, type_code, record, scan)| {
                    let reading = Instant::now();
                    let read = scans::read_scan(&root, &scan, max);
                    clock.add(Stage::Scans, reading);
                    match read {
                        Ok(scan) => Ok(Pending {
                            row,
                            type_code,
                            record,
                            scan,
                        }),
                        Err(reason) => Err((row, reason)),
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let mut pending = Vec::with_capacity(read.len());
        for r in read {
            match r {
                Ok(p) => pending.push(p),
                Err((row, reason)) => {
                    rows[row].outcome = BatchRowOutcome::Rejected {
                        column: "scan".into(),
                        code: reason.code().into(),
                        reason: reason.into(),
                    }
                }
            }
        }
        Ok(pending)
    }
}

/// Validation errors as a rejected row gives them: the columns, and each column's reason.
fn invalid_row(errors: &crate::licence::ValidationErrors) -> RowError {
    let column = |field: &str| crate::licence::column_of_field(field).to_string();
    let mut codes: Vec<&str> = Vec::new();
    for e in &errors.0 {
        if !codes.contains(&e.code) {
            codes.push(e.code);
        }
    }
    let code = codes.join(",");
    if let [only] = errors.0.as_slice() {
        let reason = Said {
            en: only.reason.clone(),
            zh: only.reason_zh.clone(),
        };
        return RowError {
            column: column(&only.field),
            reason,
            code,
        };
    }
    let columns: Vec<String> = errors.0.iter().map(|e| column(&e.field)).collect();
    let each = |lang: Lang, between: &str| {
        let reasons: Vec<String> = errors
            .0
            .iter()
            .map(|e| format!("{}: {}", column(&e.field), e.reason_in(lang)))
            .collect();
        reasons.join(between)
    };
    RowError {
        column: columns.join(","),
        reason: Said {
            en: each(Lang::En, "; "),
            zh: each(Lang::Zh, "；"),
        },
        code,
    }
}

/// A refusal of the service as a row's reason: its own words, and its code's in Chinese.
fn refused(error: &AppError) -> Reason {
    Reason::Refused {
        code: error.code(),
        detail: error.to_string(),
    }
}
