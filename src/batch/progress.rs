//! What a run tells about itself: the rows counted so far (for a progress bar), where its time
//! went stage by stage, and how it ended. A room apart from the conversion so that a reader of
//! the pipeline is not walked through bookkeeping, and the command line and the benchmark find
//! the shapes they print in one place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::Serialize;

use super::BatchState;

/// How a run is going, for a progress bar or progress lines.
pub trait Progress: Send + Sync {
    fn started(&self, _batch_id: &str, _rows: u64, _encoding: &str) {}
    fn advanced(&self, _counts: &Counts) {}
}

/// A run with nobody watching (HTTP jobs are polled instead).
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    /// Rows with an outcome so far, including those of an earlier interrupted run of this batch.
    pub done: u64,
    pub issued: u64,
    pub skipped: u64,
    pub rejected: u64,
}

impl Counts {
    /// The outcomes a batch has committed, by any run of it.
    pub(super) fn of(batch: &crate::store::BatchRecord) -> Counts {
        Counts {
            done: batch.issued + batch.skipped + batch.rejected,
            issued: batch.issued,
            skipped: batch.skipped,
            rejected: batch.rejected,
        }
    }
}

/// Where a run's time went, in milliseconds summed over rows: the parallel stages (scans, sign,
/// render) add up the time of every core, so they can exceed the wall-clock time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stages {
    pub check_ms: f64,
    pub scans_ms: f64,
    pub reserve_ms: f64,
    pub sign_ms: f64,
    pub render_ms: f64,
    pub archive_ms: f64,
    pub commit_ms: f64,
}

#[derive(Clone, Copy)]
pub(super) enum Stage {
    Check,
    Scans,
    Reserve,
    Sign,
    Render,
    Archive,
    Commit,
}

/// Accumulates [`Stages`] from every thread of a run.
#[derive(Default)]
pub(super) struct Clock([AtomicU64; 7]);

impl Clock {
    pub(super) fn add(&self, stage: Stage, since: Instant) {
        let nanos = since.elapsed().as_nanos() as u64;
        self.0[stage as usize].fetch_add(nanos, Ordering::Relaxed);
    }

    pub(super) fn stages(&self) -> Stages {
        let ms = |stage: Stage| self.0[stage as usize].load(Ordering::Relaxed) as f64 / 1e6;
        Stages {
            check_ms: ms(Stage::Check),
            scans_ms: ms(Stage::Scans),
            reserve_ms: ms(Stage::Reserve),
            sign_ms: ms(Stage::Sign),
            render_ms: ms(Stage::Render),
            archive_ms: ms(Stage::Archive),
            commit_ms: ms(Stage::Commit),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub batch_id: String,
    /// `Done`, or `Failed` (with `error`): with `--all-or-nothing` any rejected row fails the run.
    pub state: BatchState,
    pub encoding: String,
    pub rows: u64,
    #[serde(flatten)]
    pub counts: Counts,
    pub seconds: f64,
    pub stages: Stages,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
