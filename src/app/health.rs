//! Whether writes work (issue #13 item 5): a store that refuses writes (a full disk, a database
//! gone read-only) makes the service unready until a write succeeds again, and the audit records
//! of the attempts that failed meanwhile are held here and appended once writes work, so none
//! is lost to the failure they record.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::audit::Entry;
use crate::time_util;

/// Audit records held at most while writes fail; beyond it the oldest are dropped, counted, and
/// the count itself is recorded when writes work again. 10,000 records are a few MB.
const MAX_HELD_RECORDS: usize = 10_000;

/// How long after a failed attempt held records are tried again: while writes fail, every
/// request would otherwise retry the whole backlog on the one writer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct WriteHealth {
    state: Mutex<State>,
    /// One flush at a time, so held records are appended in the order they were held.
    flushing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    failing: Option<Failure>,
    held: VecDeque<Entry>,
    dropped: u64,
    last_failed_flush: Option<Instant>,
}

/// Since when writes fail, and why (the store's own words).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub since: String,
    pub cause: String,
}

/// The cause `/readyz` shows anyone: a full disk by name; anything else only as a refused write,
/// since a database's own message may name files, hosts or statements (it goes to the log).
pub fn public_cause(error: &crate::store::StoreError) -> String {
    match error {
        crate::store::StoreError::Full => error.to_string(),
        _ => "the database refused a write (the cause is in the log)".into(),
    }
}

/// The record of audit records dropped while writes failed.
pub fn dropped_note(dropped: u64) -> Entry {
    Entry {
        outcome: "failed: store".into(),
        detail: format!(
            "{dropped} audit records of failed attempts were dropped: more than \
             {MAX_HELD_RECORDS} waited while writes failed"
        ),
        ..Entry::new("elicence", "service", "audit.dropped", "audit")
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Writes work: the last write succeeded and no audit record is waiting.
    pub ready: bool,
    pub writes_failing: Option<Failure>,
    /// Audit records of failed attempts waiting for the store to take writes again.
    pub held_audit_records: usize,
}

impl WriteHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A write failed in the store: unready from now on, until one succeeds.
    pub fn write_failed(&self, cause: &str) {
        let mut state = self.state();
        if state.failing.is_none() {
            tracing::error!(cause, "writes to the store fail: the service is unready");
            state.failing = Some(Failure {
                since: time_util::format_rfc3339(time_util::now()),
                cause: cause.to_string(),
            });
        }
    }

    /// A write succeeded: writes work again (held records still make the service unready until
    /// they are appended).
    pub fn write_succeeded(&self) {
        let mut state = self.state();
        if let Some(failure) = state.failing.take() {
            tracing::warn!(since = failure.since, "writes to the store work again");
        }
    }

    /// Keeps an audit record the store refused, noting in it when it was attempted.
    pub fn hold(&self, mut entry: Entry) {
        entry.detail = format!(
            "{} [held: could not be appended at {}]",
            entry.detail,
            time_util::format_rfc3339(time_util::now())
        );
        let mut state = self.state();
        if state.held.len() == MAX_HELD_RECORDS {
            state.held.pop_front();
            state.dropped += 1;
        }
        state.held.push_back(entry);
    }

    /// The held records to append now, and how many were dropped; given back with
    /// [`WriteHealth::give_back`] when appending them fails.
    pub fn take_held(&self) -> (Vec<Entry>, u64) {
        let mut state = self.state();
        let held = state.held.drain(..).collect();
        (held, std::mem::take(&mut state.dropped))
    }

    /// The right to flush held records: None while another flush runs, or within [`RETRY_AFTER`]
    /// of a failed one unless `now` (a write just worked).
    pub fn flush_turn(&self, now: bool) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let recently_failed = self
            .state()
            .last_failed_flush
            .is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if recently_failed && !now {
            return None;
        }
        self.flushing.try_lock().ok()
    }

    /// Waits for the right to flush, whatever happened before (a process about to exit).
    pub async fn last_flush_turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.lock().await
    }

    /// Puts records taken with [`WriteHealth::take_held`] back in front, in their order: the
    /// flush that took them failed.
    pub fn give_back(&self, records: Vec<Entry>, dropped: u64) {
        let mut state = self.state();
        state.last_failed_flush = Some(Instant::now());
        state.dropped += dropped;
        for entry in records.into_iter().rev() {
            state.held.push_front(entry);
        }
        while state.held.len() > MAX_HELD_RECORDS {
            state.held.pop_front();
            state.dropped += 1;
        }
    }

    pub fn readiness(&self) -> Readiness {
        let state = self.state();
        Readiness {
            ready: state.failing.is_none() && state.held.is_empty(),
            writes_failing: state.failing.clone(),
            held_audit_records: state.held.len(),
        }
    }

    pub fn has_held(&self) -> bool {
        let state = self.state();
        !state.held.is_empty() || state.dropped > 0
    }
}
