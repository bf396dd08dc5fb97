//! A process's claim on a conversion run. Only the lease's holder commits rows or ends the run
//! (the store checks the holder in the same transaction), so a process that lost its lease — it
//! stalled past the lease, and another instance took the job up — can no longer commit beside
//! the new holder. A run whose holder died (a `convert` killed with SIGKILL, a crashed `serve`)
//! is seen by its lease running out: an HTTP job is taken up again, a folder run is marked
//! `interrupted` by the next process that looks (SPEC §9; issue #13 item 6).

use std::sync::Arc;
use std::time::Duration;

use crate::app::{App, Result};

/// How long a lease lasts; it is renewed every third of that.
pub const LEASE_SECONDS: i64 = 60;

/// A lease on run `batch_id`, renewed in the background until dropped.
pub struct Lease {
    batch_id: String,
    holder: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// A holder name no other process or run shares: where the process runs (see
    /// [`process_place`]), its id and random bits.
    pub fn new_holder() -> String {
        format!(
            "{}/{}/{:08x}",
            process_place(),
            std::process::id(),
            rand::random::<u32>()
        )
    }

    /// Takes the lease on a queued run, or on one whose holder's lease ran out; None when
    /// another process holds it or the run has ended.
    pub async fn take(app: &Arc<App>, batch_id: &str) -> Result<Option<Lease>> {
        let holder = Self::new_holder();
        if !app
            .store
            .lease_batch(batch_id, &holder, LEASE_SECONDS)
            .await?
        {
            return Ok(None);
        }
        Ok(Some(Self::keep(app, batch_id, holder)))
    }

    /// Keeps renewing a lease `holder` already has on `batch_id` (one recorded with the run).
    pub fn keep(app: &Arc<App>, batch_id: &str, holder: String) -> Lease {
        let renewer = tokio::spawn(renew(app.clone(), batch_id.to_string(), holder.clone()));
        Lease {
            batch_id: batch_id.to_string(),
            holder,
            renewer,
        }
    }

    pub fn batch_id(&self) -> &str {
        &self.batch_id
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of its length. A failed renewal (the database briefly away) is
/// tried again at the next tick rather than given up: the lease has two more ticks to run. A
/// lease another process has taken is not fought over; the store refuses this holder's commits.
async fn renew(app: Arc<App>, batch_id: String, holder: String) {
    let mut tick = tokio::time::interval(Duration::from_secs(LEASE_SECONDS as u64 / 3));
    tick.tick().await;
    loop {
        tick.tick().await;
        match app
            .store
            .lease_batch(&batch_id, &holder, LEASE_SECONDS)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(batch = %batch_id, "the run's lease is lost: it ended or another process took it");
                return;
            }
            Err(e) => {
                tracing::warn!(batch = %batch_id, error = %e, "cannot renew the run's lease: trying again")
            }
        }
    }
}

/// The kernel boot and process-id namespace this process runs in: two processes with the same
/// place see each other's process ids. Empty where /proc does not tell.
fn process_place() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    let namespace = std::fs::read_link("/proc/self/ns/pid");
    let (Ok(boot), Ok(namespace)) = (boot, namespace) else {
        return String::new();
    };
    format!("{}:{}", boot.trim(), namespace.display())
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == ':')
        .collect()
}

/// Whether `holder` names a process in this place that no longer exists: its run is abandoned
/// now, without waiting for its lease to run out (a `convert` killed with SIGKILL, run again at
/// once). A holder elsewhere, or whose process may still be there, is judged by its lease alone.
pub fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.split('/');
    let (Some(place), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    !place.is_empty()
        && place == process_place()
        && pid != std::process::id()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_is_gone_only_when_its_process_here_has_ended() {
        let ours = Lease::new_holder();
        assert!(!holder_is_gone(&ours), "this very process");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let ended = format!("{}/{pid}/00000000", process_place());
        assert!(holder_is_gone(&ended));
        assert!(!holder_is_gone(&format!("elsewhere:x/{pid}/00000000")));
        assert!(!holder_is_gone("1234-abcdef01"), "an older holder name");
        assert!(!holder_is_gone("a/b/c"));
    }
}
