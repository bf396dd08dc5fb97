//! The conversion jobs this process runs (`crate::batch::job`): how many at once, which ones it
//! has started, and one zip read at a time. Process state, so the application holds it.

use std::collections::HashSet;
use std::sync::Mutex;

/// The jobs this process has started: at most `max_concurrent_jobs` run at once, the others
/// wait (still `queued`); none is started twice.
pub struct JobSlots {
    pub(crate) running: tokio::sync::Semaphore,
    started: Mutex<HashSet<String>>,
    /// One zip is read at a time (checked on upload or extracted by a job): the zip reader holds
    /// all of a zip's entry metadata, tens of MB for a batch of 100,000 rows.
    pub(crate) unpacking: tokio::sync::Semaphore,
}

impl JobSlots {
    pub fn new(max_running: u64) -> JobSlots {
        JobSlots {
            running: tokio::sync::Semaphore::new(usize::try_from(max_running).unwrap_or(1).max(1)),
            started: Mutex::new(HashSet::new()),
            unpacking: tokio::sync::Semaphore::new(1),
        }
    }

    pub(crate) fn started(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.started
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
