//! The watcher: a background task of `serve` (and `elicence alerts check`, one pass) that reads
//! the audit trail after its stored cursor in seq order, applies the rules and appends each
//! alert as an audit record; every 30 seconds it also looks at the verification counts, which no
//! audit record tells of. One instance watches at a time (a lease in `push_state`, like the
//! push's), and its cursor moves in the same transaction as the alerts it appends, so a crash or
//! a restart neither loses an alert nor raises one twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::alert::Alert;
use super::evaluate::{minutes, parse_time, Evaluation, VerificationTotal, COUNTED_CHANGES};
use super::rules::{Check, Rules};
use crate::app::{App, AppError};
use crate::audit::Record;
use crate::store::AuditFilter;
use crate::time_util;

/// The watcher's row in `push_state`: its cursor (the last audit seq watched) and its lease.
pub const TARGET: &str = "alerts:audit";
/// Audit records read in one pass.
const PASS_RECORDS: i64 = 500;
/// How often verification counts are looked at.
const VERIFICATION_EVERY: Duration = Duration::from_secs(30);
/// Records are read from this long before a window's start too: instances' clocks differ a
/// little, so time order and seq order may too.
const CLOCK_MARGIN: time::Duration = time::Duration::minutes(5);

/// What one pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Another instance holds the lease and watches.
    NotLeader,
    /// Watched `records` new audit records, up to seq `up_to`, and appended `alerts`.
    Watched {
        records: usize,
        up_to: i64,
        alerts: Vec<Alert>,
    },
}

pub struct Watcher {
    app: Arc<App>,
    rules: Arc<Rules>,
    holder: String,
    lease_seconds: i64,
    /// The cursor after the last pass and when the lease was last taken: a poll that finds no
    /// new record and a fresh lease costs a read, not a write.
    last: Mutex<(i64, Option<Instant>)>,
    /// What the last pass knew (the windows' records, the alerts raised) and the cursor it
    /// ended at: the next pass goes on from it instead of reading the windows back.
    kept: Mutex<Option<(i64, Evaluation)>>,
}

impl Watcher {
    pub fn new(app: Arc<App>, rules: Rules) -> Watcher {
        Watcher {
            app,
            rules: Arc::new(rules),
            holder: format!("{}-{:08x}", std::process::id(), rand::random::<u32>()),
            lease_seconds: 30,
            last: Mutex::new((0, None)),
            kept: Mutex::new(None),
        }
    }

    /// One pass: every audit record not yet watched, then the verification counts.
    pub async fn pass(&self) -> Result<Pass, AppError> {
        let (mut records, mut alerts) = (0, Vec::new());
        let up_to = loop {
            let Pass::Watched {
                records: more,
                up_to: next,
                alerts: raised,
            } = self.watch_records().await?
            else {
                return Ok(Pass::NotLeader);
            };
            records += more;
            alerts.extend(raised);
            if (more as i64) < PASS_RECORDS {
                break next;
            }
        };
        match self.watch_verifications().await? {
            Pass::Watched { alerts: more, .. } => alerts.extend(more),
            Pass::NotLeader => return Ok(Pass::NotLeader),
        }
        Ok(Pass::Watched {
            records,
            up_to,
            alerts,
        })
    }

    /// Applies the rules to the next audit records after the cursor, appends their alerts and
    /// moves the cursor, together.
    pub async fn watch_records(&self) -> Result<Pass, AppError> {
        let store = &self.app.store;
        let now = time_util::now().unix_timestamp();
        let Some(cursor) = store
            .take_push_lease(TARGET, &self.holder, now, now + self.lease_seconds)
            .await?
        else {
            return Ok(Pass::NotLeader);
        };
        let records = store
            .audit_records(&AuditFilter::default(), None, cursor, PASS_RECORDS)
            .await?;
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            self.remember(cursor);
            return Ok(watched_nothing(cursor));
        };
        let first_at = parse_time(&first.at).unwrap_or_else(time_util::now);
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut evaluation = match kept {
            // The last pass ended where this one starts: what it knew still holds.
            Some((end, evaluation)) if end == cursor => evaluation,
            _ => self.evaluation_before(first_at, cursor).await?,
        };
        evaluation.forget_alerts_before(first_at - CLOCK_MARGIN);
        let mut alerts = Vec::new();
        for record in &records {
            let issued_at = self.issued_at_if_revoked(record).await?;
            alerts.extend(evaluation.observe(record, issued_at));
        }
        if !self.append(Some((cursor, last.seq)), &alerts).await? {
            return Ok(Pass::NotLeader);
        }
        self.remember(last.seq);
        *self.kept.lock().unwrap_or_else(|p| p.into_inner()) = Some((last.seq, evaluation));
        Ok(Pass::Watched {
            records: records.len(),
            up_to: last.seq,
            alerts,
        })
    }

    /// An evaluation that knows the trail up to seq `cursor`, as far back as the rules look
    /// from `first_at` (a new watcher, or one whose cursor another instance moved).
    async fn evaluation_before(
        &self,
        first_at: OffsetDateTime,
        cursor: i64,
    ) -> Result<Evaluation, AppError> {
        let store = &self.app.store;
        let since = first_at - self.lookback();
        let from = store
            .first_audit_seq_since(&time_util::format_rfc3339(since))
            .await?;
        let context = store.alert_context(from, cursor, &COUNTED_CHANGES).await?;
        Ok(Evaluation::new(self.rules.clone(), context))
    }

    /// Applies the verification-burst rules to the verification counts now.
    pub async fn watch_verifications(&self) -> Result<Pass, AppError> {
        let store = &self.app.store;
        let bursts: Vec<_> = self
            .rules
            .enabled()
            .filter(|r| matches!(r.check, Check::VerificationBurst { .. }))
            .collect();
        let cursor = self.last.lock().unwrap_or_else(|p| p.into_inner()).0;
        let Some(longest) = bursts.iter().map(|r| r.check.window_minutes()).max() else {
            return Ok(watched_nothing(cursor));
        };
        let now = time_util::now();
        let from = store
            .first_audit_seq_since(&time_util::format_rfc3339(
                now - minutes(longest) - CLOCK_MARGIN,
            ))
            .await?;
        // Only the alerts: no record from `from` up to `from - 1`.
        let context = store
            .alert_context(from, from - 1, &COUNTED_CHANGES)
            .await?;
        let mut evaluation = Evaluation::new(self.rules.clone(), context);
        let mut alerts = Vec::new();
        for rule in bursts {
            let Check::VerificationBurst {
                more_than,
                window_minutes,
            } = rule.check
            else {
                continue;
            };
            // The minutes counted: this one and those before it, `window_minutes` in all.
            let since = minute_of(now - minutes(window_minutes - 1));
            let mut totals = Vec::new();
            for issuer in self.app.directory.issuers() {
                for (licence, count, first) in store
                    .verification_totals(&issuer.uscc, &since, i64::from(more_than))
                    .await?
                {
                    totals.push(VerificationTotal {
                        licence,
                        department: issuer.uscc.to_string(),
                        count,
                        since: first,
                    });
                }
            }
            alerts.extend(evaluation.observe_verifications(rule, now, &totals));
        }
        if !alerts.is_empty() && !self.append(None, &alerts).await? {
            return Ok(Pass::NotLeader);
        }
        Ok(Pass::Watched {
            records: 0,
            up_to: cursor,
            alerts,
        })
    }

    /// Hands the lease back (at a clean stop), so that another instance or the next start
    /// watches at once rather than after the lease runs out.
    pub async fn release(&self) {
        if let Err(e) = self
            .app
            .store
            .release_push_lease(TARGET, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "could not hand the alert watcher's lease back; it runs out by itself");
        }
    }

    /// Watches until `stop` turns true: at once while records wait, every second when idle;
    /// verification counts every 30 seconds.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(rules = %self.rules.source, holder = %self.holder, "watching the audit trail for alerts");
        let mut verifications_checked: Option<Instant> = None;
        loop {
            let pause = match self.poll().await {
                Ok(Some(Pass::Watched { records, .. })) if records as i64 == PASS_RECORDS => {
                    Duration::ZERO
                }
                Ok(Some(Pass::NotLeader)) => {
                    Duration::from_secs((self.lease_seconds / 3).max(1) as u64)
                }
                Ok(_) => {
                    if verifications_checked.is_none_or(|t| t.elapsed() >= VERIFICATION_EVERY) {
                        verifications_checked = Some(Instant::now());
                        if let Err(e) = self.watch_verifications().await {
                            tracing::error!(error = %e, "the alert watcher could not read the verification counts");
                        }
                    }
                    Duration::from_secs(1)
                }
                Err(e) => {
                    tracing::error!(error = %e, "the alert watcher could not read or write the store");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = stop.changed() => break,
                () = tokio::time::sleep(pause) => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        self.release().await;
        tracing::info!("alert watcher stopped");
    }

    /// A pass when there may be something to do; None when nothing was appended since the last
    /// and the lease was renewed lately.
    async fn poll(&self) -> Result<Option<Pass>, AppError> {
        let head = self.app.store.audit_last_seq().await?;
        let (cursor, renewed) = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        let lease_fresh = renewed.is_some_and(|t| {
            t.elapsed() < Duration::from_secs((self.lease_seconds / 3).max(1) as u64)
        });
        if head <= cursor && lease_fresh {
            return Ok(None);
        }
        self.watch_records().await.map(Some)
    }

    fn remember(&self, cursor: i64) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = (cursor, Some(Instant::now()));
    }

    /// How far before a pass's first record the rules need to see.
    fn lookback(&self) -> time::Duration {
        minutes(self.rules.longest_window_minutes()) + CLOCK_MARGIN
    }

    /// When the licence a successful revocation names was issued (for the rule on revocations
    /// soon after issue); None for any other record.
    async fn issued_at_if_revoked(
        &self,
        record: &Record,
    ) -> Result<Option<OffsetDateTime>, AppError> {
        let watched = self
            .rules
            .enabled()
            .any(|r| matches!(r.check, Check::RevokedSoonAfterIssue { .. }));
        if !watched || record.action != "licence.revoke" || record.outcome != "ok" {
            return Ok(None);
        }
        let issued = self.app.store.licence_issued_at(&record.target).await?;
        Ok(issued.as_deref().and_then(parse_time))
    }

    /// Appends `alerts` (moving the cursor as `advance` says) while the lease is ours.
    async fn append(
        &self,
        advance: Option<(i64, i64)>,
        alerts: &[Alert],
    ) -> Result<bool, AppError> {
        let entries: Vec<_> = alerts.iter().map(Alert::entry).collect();
        let appended = self
            .app
            .store
            .append_alerts(TARGET, &self.holder, advance, &entries)
            .await?;
        if appended {
            for alert in alerts {
                tracing::warn!(rule = %alert.rule, target = %alert.target, "alert raised");
            }
        }
        Ok(appended)
    }
}

fn watched_nothing(cursor: i64) -> Pass {
    Pass::Watched {
        records: 0,
        up_to: cursor,
        alerts: Vec::new(),
    }
}

/// The minute of `at` as `verification_counts` names it: `YYYY-MM-DDTHH:MM`, UTC.
pub fn minute_of(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}T{:02}:{:02}",
        time_util::format_date(at.date()),
        at.hour(),
        at.minute()
    )
}
