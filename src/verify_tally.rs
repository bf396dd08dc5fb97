//! Public verifications counted in memory (SPEC §15 supervision figures): a scan of a QR code
//! must not cost a database write, so each verification adds one to a count per licence and
//! minute here, and `serve` adds the counts to `verification_counts` every few seconds and when
//! it stops ([`crate::app::App::flush_verification_counts`]).

use std::collections::HashMap;
use std::sync::Mutex;

/// What one licence was verified in one minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// The licence identifier (without its version).
    pub licence: String,
    /// The licence's issuing department (USCC).
    pub department: String,
    /// Minutes since the Unix epoch (UTC).
    pub minute: i64,
    pub count: i64,
}

/// Verifications not yet added to the store, by minute and licence.
#[derive(Default)]
pub struct VerifyTally {
    counts: Mutex<HashMap<i64, HashMap<String, Tallied>>>,
}

struct Tallied {
    department: String,
    count: i64,
}

impl VerifyTally {
    /// Counts one verification of `licence` (of `department`) at `unix_seconds`. A licence
    /// verified again in the same minute costs a lookup and an addition, no allocation.
    pub fn note(&self, licence: &str, department: &str, unix_seconds: i64) {
        let minute = unix_seconds.div_euclid(60);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let licences = counts.entry(minute).or_default();
        match licences.get_mut(licence) {
            Some(tallied) => tallied.count += 1,
            None => {
                licences.insert(
                    licence.to_string(),
                    Tallied {
                        department: department.to_string(),
                        count: 1,
                    },
                );
            }
        }
    }

    /// Everything counted so far, leaving the tally empty.
    pub fn take(&self) -> Vec<MinuteCount> {
        let taken = std::mem::take(&mut *self.counts.lock().unwrap_or_else(|p| p.into_inner()));
        taken
            .into_iter()
            .flat_map(|(minute, licences)| {
                licences
                    .into_iter()
                    .map(move |(licence, tallied)| MinuteCount {
                        licence,
                        department: tallied.department,
                        minute,
                        count: tallied.count,
                    })
            })
            .collect()
    }

    /// Puts back counts that could not be stored (the store refused the write), so that the
    /// next flush adds them with whatever was counted meanwhile.
    pub fn restore(&self, counts: Vec<MinuteCount>) {
        let mut held = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for c in counts {
            let tallied = held
                .entry(c.minute)
                .or_default()
                .entry(c.licence)
                .or_insert(Tallied {
                    department: c.department,
                    count: 0,
                });
            tallied.count += c.count;
        }
    }
}

/// The licence a version identifier names: the identifier without `.{version}.{check}`.
pub fn licence_of(version_id: &str) -> Option<&str> {
    let mut parts = version_id.rsplitn(3, '.');
    let (_check, _version) = (parts.next()?, parts.next()?);
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_licence_and_minute_until_taken() {
        let tally = VerifyTally::default();
        tally.note("L1", "D1", 120);
        tally.note("L1", "D1", 179);
        tally.note("L1", "D1", 180);
        tally.note("L2", "D2", 121);
        let mut taken = tally.take();
        taken.sort_by(|a, b| (a.minute, &a.licence).cmp(&(b.minute, &b.licence)));
        let seen: Vec<(&str, &str, i64, i64)> = taken
            .iter()
            .map(|c| (c.licence.as_str(), c.department.as_str(), c.minute, c.count))
            .collect();
        assert_eq!(
            seen,
            [("L1", "D1", 2, 2), ("L2", "D2", 2, 1), ("L1", "D1", 3, 1)]
        );
        assert!(tally.take().is_empty());
    }

    #[test]
    fn restored_counts_add_to_what_came_meanwhile() {
        let tally = VerifyTally::default();
        tally.note("L1", "D1", 60);
        let failed = tally.take();
        tally.note("L1", "D1", 61);
        tally.restore(failed);
        let taken = tally.take();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].count, 2);
    }

    #[test]
    fn the_licence_is_the_version_identifier_without_version_and_check() {
        assert_eq!(
            licence_of("1.2.156.3005.2.T.U.7.002.K"),
            Some("1.2.156.3005.2.T.U.7")
        );
        assert_eq!(licence_of("7"), None);
    }
}
