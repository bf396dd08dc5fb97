//! The rules applied to the audit trail: which records set an alert off, and when an alert
//! would only repeat one already raised (an episode). No I/O here: the watcher reads the
//! records and appends the alerts, so the logic is tested on records made up in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use super::alert::{alert_detail, Alert, AlertDetail, ALERT_PREFIX};
use super::rules::{Check, Per, Rule, Rules};
use crate::app::DAILY_FIGURES_ACTION;
use crate::audit::Record;
use crate::time_util;

/// The changes `changes_by_one_actor` counts.
pub const COUNTED_CHANGES: [&str; 2] = ["licence.revoke", "licence.amend"];
const REVOKE: &str = "licence.revoke";
/// At most this many seqs are listed in an alert (its count says how many there were).
const MAX_SEQS: usize = 50;

/// A licence's public verifications within a window (read from `verification_counts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationTotal {
    pub licence: String,
    pub department: String,
    pub count: i64,
    /// The first minute counted.
    pub since: String,
}

/// The rules applied to records in seq order, remembering what the windows count and which
/// alerts were raised. The watcher keeps one from pass to pass while it holds the lease.
pub struct Evaluation {
    rules: Arc<Rules>,
    /// Records the windows count (changes and refusals), in seq order, with their times.
    counted: VecDeque<(OffsetDateTime, Record)>,
    /// When each (rule, target)'s last alert was set off.
    raised: HashMap<(String, String), OffsetDateTime>,
}

impl Evaluation {
    /// An evaluation that knows `earlier` records (in seq order): the ones the windows count
    /// and the alerts already raised. They raise nothing themselves.
    pub fn new(rules: Arc<Rules>, earlier: impl IntoIterator<Item = Record>) -> Evaluation {
        let mut evaluation = Evaluation {
            rules,
            counted: VecDeque::new(),
            raised: HashMap::new(),
        };
        for record in earlier {
            if !evaluation.note_alert(&record) && !is_daily_figures(&record) {
                if let Some(at) = parse_time(&record.at) {
                    evaluation.note_counted(at, record);
                }
            }
        }
        evaluation
    }

    /// The alerts `record` sets off, the next in seq order. `issued_at` is when the licence a
    /// revocation names was issued, if known.
    pub fn observe(&mut self, record: &Record, issued_at: Option<OffsetDateTime>) -> Vec<Alert> {
        if self.note_alert(record) || is_daily_figures(record) {
            return Vec::new();
        }
        let Some(at) = parse_time(&record.at) else {
            return Vec::new();
        };
        self.note_counted(at, record.clone());
        let rules = self.rules.clone();
        let mut alerts = Vec::new();
        for rule in rules.enabled() {
            let Some(alert) = self.candidate(rule, record, at, issued_at) else {
                continue;
            };
            if self.is_new_episode(rule, &alert.target, at) {
                alerts.push(alert);
            }
        }
        alerts
    }

    /// The alerts `totals` (a verification-burst rule's counts at `now`) set off.
    pub fn observe_verifications(
        &mut self,
        rule: &Rule,
        now: OffsetDateTime,
        totals: &[VerificationTotal],
    ) -> Vec<Alert> {
        let Check::VerificationBurst {
            more_than,
            window_minutes,
        } = rule.check
        else {
            return Vec::new();
        };
        let mut alerts = Vec::new();
        for total in totals.iter().filter(|t| t.count > i64::from(more_than)) {
            if !self.is_new_episode(rule, &total.licence, now) {
                continue;
            }
            alerts.push(Alert {
                rule: rule.name.clone(),
                target: total.licence.clone(),
                department: Some(total.department.clone()),
                detail: AlertDetail {
                    count: Some(total.count as u64),
                    more_than: Some(more_than),
                    window_minutes: Some(window_minutes),
                    since: Some(total.since.clone()),
                    ..detail_of(rule, now)
                },
            });
        }
        alerts
    }

    /// Forgets the alerts set off before `at`: their episodes are over for every rule.
    pub fn forget_alerts_before(&mut self, at: OffsetDateTime) {
        let horizon = at - minutes(self.rules.longest_window_minutes());
        self.raised.retain(|_, raised| *raised >= horizon);
    }

    /// Remembers an alert record's episode; false when the record is no alert.
    fn note_alert(&mut self, record: &Record) -> bool {
        let Some(rule) = record.action.strip_prefix(ALERT_PREFIX) else {
            return false;
        };
        let at = alert_detail(record).and_then(|d| parse_time(&d.at));
        if let Some(at) = at.or_else(|| parse_time(&record.at)) {
            let key = (rule.to_string(), record.target.clone());
            let last = self.raised.entry(key).or_insert(at);
            *last = (*last).max(at);
        }
        true
    }

    /// Keeps a record the windows count, and forgets those older than the longest window.
    fn note_counted(&mut self, at: OffsetDateTime, record: Record) {
        if is_ok_change(&record) || is_refused(&record) {
            self.counted.push_back((at, record));
        }
        let horizon = at - minutes(self.rules.longest_window_minutes());
        while self.counted.front().is_some_and(|(t, _)| *t < horizon) {
            self.counted.pop_front();
        }
    }

    /// The alert `rule` would raise at `record`, before asking whether it is a new episode.
    fn candidate(
        &self,
        rule: &Rule,
        record: &Record,
        at: OffsetDateTime,
        issued_at: Option<OffsetDateTime>,
    ) -> Option<Alert> {
        let detail = detail_of(rule, at);
        match rule.check {
            Check::RevocationOutsideHours { window_minutes } => {
                let revoked = record.action == REVOKE && record.outcome == "ok";
                (revoked && !self.rules.working_hours.covers(at)).then(|| Alert {
                    rule: rule.name.clone(),
                    target: record.actor.clone(),
                    department: record.department.clone(),
                    detail: AlertDetail {
                        window_minutes: Some(window_minutes),
                        licence: Some(record.target.clone()),
                        seqs: vec![record.seq],
                        ..detail
                    },
                })
            }
            Check::ChangesByOneActor {
                more_than,
                window_minutes,
            } => {
                if !is_ok_change(record) {
                    return None;
                }
                let same = |r: &Record| is_ok_change(r) && r.actor == record.actor;
                self.over_threshold(rule, record, at, more_than, window_minutes, &same)
                    .map(|alert| Alert {
                        target: record.actor.clone(),
                        ..alert
                    })
            }
            Check::RefusedAttempts {
                per,
                more_than,
                window_minutes,
            } => {
                let key = refusal_key(record, per)?;
                let same = |r: &Record| refusal_key(r, per).as_deref() == Some(key.as_str());
                self.over_threshold(rule, record, at, more_than, window_minutes, &same)
                    .map(|alert| Alert {
                        target: key.clone(),
                        detail: AlertDetail {
                            per: Some(per),
                            ..alert.detail
                        },
                        ..alert
                    })
            }
            Check::RevokedSoonAfterIssue { within_minutes } => {
                let issued_at = issued_at.filter(|_| record.action == REVOKE)?;
                let after = at - issued_at;
                let soon = record.outcome == "ok" && after <= minutes(within_minutes);
                soon.then(|| Alert {
                    rule: rule.name.clone(),
                    target: record.target.clone(),
                    department: record.department.clone(),
                    detail: AlertDetail {
                        within_minutes: Some(within_minutes),
                        issued_at: Some(time_util::format_rfc3339(issued_at)),
                        minutes_after_issue: Some(after.whole_minutes()),
                        actor: Some(record.actor.clone()),
                        seqs: vec![record.seq],
                        ..detail
                    },
                })
            }
            Check::VerificationBurst { .. } => None,
        }
    }

    /// An alert when more than `more_than` counted records that are `same` as `record` fall
    /// within `window_minutes` up to it (the target is left to the caller).
    fn over_threshold(
        &self,
        rule: &Rule,
        record: &Record,
        at: OffsetDateTime,
        more_than: u32,
        window_minutes: u32,
        same: &dyn Fn(&Record) -> bool,
    ) -> Option<Alert> {
        let since = at - minutes(window_minutes);
        let within: Vec<&Record> = self
            .counted
            .iter()
            .filter(|(t, r)| *t > since && *t <= at && r.seq <= record.seq && same(r))
            .map(|(_, r)| r)
            .collect();
        if within.len() <= more_than as usize {
            return None;
        }
        let department = within[0].department.clone();
        let one_department = within.iter().all(|r| r.department == department);
        Some(Alert {
            rule: rule.name.clone(),
            target: String::new(),
            department: department.filter(|_| one_department),
            detail: AlertDetail {
                count: Some(within.len() as u64),
                more_than: Some(more_than),
                window_minutes: Some(window_minutes),
                seqs: within.iter().take(MAX_SEQS).map(|r| r.seq).collect(),
                ..detail_of(rule, at)
            },
        })
    }

    /// Whether an alert of `rule` for `target` at `at` starts a new episode (none raised within
    /// the rule's window of it); if so, it is remembered as raised.
    fn is_new_episode(&mut self, rule: &Rule, target: &str, at: OffsetDateTime) -> bool {
        let key = (rule.name.clone(), target.to_string());
        let window = minutes(rule.check.window_minutes());
        if let Some(last) = self.raised.get(&key) {
            if (at - *last).abs() < window {
                return false;
            }
        }
        self.raised.insert(key, at);
        true
    }
}

fn detail_of(rule: &Rule, at: OffsetDateTime) -> AlertDetail {
    AlertDetail {
        rule: rule.name.clone(),
        kind: Some(rule.check.kind()),
        at: time_util::format_rfc3339(at),
        ..AlertDetail::default()
    }
}

pub(super) fn minutes(m: u32) -> Duration {
    Duration::minutes(i64::from(m))
}

/// An RFC 3339 time, as audit records hold them.
pub(super) fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The day's supervision figures, which the service records about itself (as it does its
/// alerts): they are nobody's doing. Every other record counts, `supervision.read` refusals too
/// (someone trying a department's token on the whole trail).
fn is_daily_figures(record: &Record) -> bool {
    record.action == DAILY_FIGURES_ACTION
}

fn is_ok_change(record: &Record) -> bool {
    record.outcome == "ok" && COUNTED_CHANGES.contains(&record.action.as_str())
}

fn is_refused(record: &Record) -> bool {
    record.outcome.starts_with("refused")
}

/// What a refusal is counted under: its actor (not `anonymous`, which is nobody in
/// particular) or its client address (not `cli` or `internal`, which are no address).
fn refusal_key(record: &Record, per: Per) -> Option<String> {
    if !is_refused(record) || record.action.starts_with(ALERT_PREFIX) {
        return None;
    }
    match per {
        Per::Actor => (record.actor != "anonymous").then(|| record.actor.clone()),
        Per::Address => record
            .source
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| ip.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const BUREAU: &str = "11330122MB0000001M";
    const FEDERATION: &str = "13330122MB0000003M";

    /// Rules with low thresholds; working hours Monday to Friday 08:30–17:30.
    fn rules() -> Arc<Rules> {
        Arc::new(
            Rules::parse(
                r#"
            [[rules]]
            name = "night"
            kind = "revocation_outside_hours"
            window_minutes = 60
            [[rules]]
            name = "changes"
            kind = "changes_by_one_actor"
            more_than = 2
            window_minutes = 60
            [[rules]]
            name = "refused_actor"
            kind = "refused_attempts"
            per = "actor"
            more_than = 2
            window_minutes = 10
            [[rules]]
            name = "refused_address"
            kind = "refused_attempts"
            per = "address"
            more_than = 3
            window_minutes = 10
            [[rules]]
            name = "soon"
            kind = "revoked_soon_after_issue"
            within_minutes = 30
            [[rules]]
            name = "burst"
            kind = "verification_burst"
            more_than = 100
            window_minutes = 10
            "#,
                "test",
            )
            .unwrap(),
        )
    }

    /// Records made one after another from `seq`.
    struct Trail {
        seq: i64,
    }

    impl Trail {
        fn record(
            &mut self,
            at: OffsetDateTime,
            actor: &str,
            action: &str,
            outcome: &str,
        ) -> Record {
            self.seq += 1;
            Record {
                seq: self.seq,
                at: time_util::format_rfc3339(at),
                actor: actor.into(),
                source: "10.0.0.7".into(),
                action: action.into(),
                target: format!("L{}", self.seq),
                outcome: outcome.into(),
                detail: String::new(),
                department: Some(BUREAU.into()),
                prev_hash: String::new(),
                hash: String::new(),
            }
        }
    }

    /// Thursday 2026-12-03, 10:00 China time.
    const MORNING: OffsetDateTime = datetime!(2026-12-03 02:00 UTC);

    fn rule_names(alerts: &[Alert]) -> Vec<&str> {
        alerts.iter().map(|a| a.rule.as_str()).collect()
    }

    #[test]
    fn ordinary_work_raises_nothing() {
        let rules = rules();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let mut trail = Trail { seq: 0 };
        let issued_yesterday = Some(MORNING - Duration::days(1));
        for i in 0..40 {
            let at = MORNING + Duration::minutes(i * 10);
            let actor = ["token:1:a", "token:2:b", "staff:li:李"][i as usize % 3];
            let (action, outcome) = match i % 8 {
                0 => ("licence.amend", "ok"),
                1 => ("licence.revoke", "ok"),
                2 => ("staff.sign_in", "refused: wrong password"),
                _ => ("licence.issue", "ok"),
            };
            let record = trail.record(at, actor, action, outcome);
            let alerts = evaluation.observe(&record, issued_yesterday);
            assert!(alerts.is_empty(), "{record:?} raised {alerts:?}");
        }
    }

    #[test]
    fn a_revocation_at_night_alerts_once_per_person_and_window() {
        let rules = rules();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let mut trail = Trail { seq: 0 };
        let night = datetime!(2026-12-03 14:00 UTC); // 22:00 in China
        let first = trail.record(night, "token:1:a", "licence.revoke", "ok");
        let alerts = evaluation.observe(&first, None);
        assert_eq!(rule_names(&alerts), ["night"]);
        let alert = &alerts[0];
        assert_eq!(
            (alert.target.as_str(), alert.department.as_deref()),
            ("token:1:a", Some(BUREAU))
        );
        assert_eq!(alert.detail.licence.as_deref(), Some("L1"));
        assert_eq!(alert.detail.seqs, [1]);
        let entry = alert.entry();
        assert_eq!(
            (
                entry.actor.as_str(),
                entry.action.as_str(),
                entry.outcome.as_str()
            ),
            ("alerts", "alert.night", "ok")
        );
        let detail: AlertDetail = serde_json::from_str(&entry.detail).unwrap();
        assert_eq!(detail, alert.detail);

        // The same person later that hour: the same episode. Another person: a new one.
        let again = trail.record(
            night + Duration::minutes(20),
            "token:1:a",
            "licence.revoke",
            "ok",
        );
        assert!(evaluation.observe(&again, None).is_empty());
        let other = trail.record(
            night + Duration::minutes(21),
            "token:2:b",
            "licence.revoke",
            "ok",
        );
        assert_eq!(rule_names(&evaluation.observe(&other, None)), ["night"]);
        // An hour after the first alert, a new episode.
        let later = trail.record(
            night + Duration::minutes(61),
            "token:1:a",
            "licence.revoke",
            "ok",
        );
        assert_eq!(rule_names(&evaluation.observe(&later, None)), ["night"]);
        // A refused or failed revocation at night is no revocation.
        let refused = trail.record(
            night + Duration::minutes(200),
            "token:3:c",
            "licence.revoke",
            "refused: forbidden",
        );
        assert!(!rule_names(&evaluation.observe(&refused, None)).contains(&"night"));
    }

    #[test]
    fn more_than_n_changes_by_one_person_within_the_window_alert_once_per_burst() {
        let rules = rules();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let mut trail = Trail { seq: 0 };
        let mut raised = Vec::new();
        for i in 0..6 {
            let action = if i % 2 == 0 {
                "licence.amend"
            } else {
                "licence.revoke"
            };
            let record = trail.record(
                MORNING + Duration::minutes(i * 5),
                "token:1:a",
                action,
                "ok",
            );
            raised.extend(evaluation.observe(&record, None));
        }
        assert_eq!(rule_names(&raised), ["changes"], "{raised:?}");
        assert_eq!(raised[0].detail.count, Some(3));
        assert_eq!(raised[0].detail.seqs, [1, 2, 3]);
        assert_eq!(raised[0].target, "token:1:a");
        // Two changes an hour apart each are never more than two within an hour.
        let mut evaluation = Evaluation::new(rules.clone(), []);
        for i in 0..6 {
            let record = trail.record(
                MORNING + Duration::minutes(i * 31),
                "token:2:b",
                "licence.amend",
                "ok",
            );
            assert!(evaluation.observe(&record, None).is_empty());
        }
    }

    #[test]
    fn refusals_are_counted_per_actor_and_per_address_but_not_for_anonymous_or_the_cli() {
        let rules = rules();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let mut trail = Trail { seq: 0 };
        let mut raised = Vec::new();
        for i in 0..3 {
            let mut record = trail.record(
                MORNING + Duration::minutes(i),
                "token:9:x",
                "licence.revoke",
                "refused: forbidden",
            );
            record.department = Some(if i == 0 { FEDERATION } else { BUREAU }.into());
            raised.extend(evaluation.observe(&record, None));
        }
        assert_eq!(rule_names(&raised), ["refused_actor"]);
        assert_eq!(raised[0].target, "token:9:x");
        assert_eq!(raised[0].detail.per, Some(Per::Actor));
        assert_eq!(raised[0].department, None, "records of two departments");
        // Anonymous refusals from the same address: counted for the address only.
        let record = trail.record(
            MORNING + Duration::minutes(4),
            "anonymous",
            "http.get",
            "refused: unauthenticated",
        );
        let alerts = evaluation.observe(&record, None);
        assert_eq!(rule_names(&alerts), ["refused_address"]);
        assert_eq!(
            (alerts[0].target.as_str(), alerts[0].detail.count),
            ("10.0.0.7", Some(4))
        );
        // The command line is no address.
        let mut evaluation = Evaluation::new(rules.clone(), []);
        for i in 0..6 {
            let mut record = trail.record(
                MORNING + Duration::minutes(i),
                "anonymous",
                "http.get",
                "refused: unauthenticated",
            );
            record.source = "cli".into();
            assert!(evaluation.observe(&record, None).is_empty());
        }
    }

    #[test]
    fn refused_reads_of_the_supervision_stream_count_like_any_refusal() {
        let rules = rules();
        let mut trail = Trail { seq: 0 };
        let refused_read = |trail: &mut Trail, i: i64| {
            trail.record(
                MORNING + Duration::minutes(i),
                "token:4:stolen",
                "supervision.read",
                "refused: forbidden",
            )
        };
        let earlier: Vec<Record> = (0..3).map(|i| refused_read(&mut trail, i)).collect();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let raised: Vec<Alert> = earlier
            .iter()
            .flat_map(|r| evaluation.observe(r, None))
            .collect();
        assert_eq!(rule_names(&raised), ["refused_actor"]);
        assert_eq!(raised[0].target, "token:4:stolen");
        // Read back at a restart, they count too.
        let mut restarted = Evaluation::new(rules.clone(), earlier);
        let fourth = refused_read(&mut trail, 3);
        assert_eq!(
            rule_names(&restarted.observe(&fourth, None)),
            ["refused_actor", "refused_address"]
        );
    }

    #[test]
    fn a_licence_revoked_soon_after_issue_alerts_and_one_revoked_later_does_not() {
        let rules = rules();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let mut trail = Trail { seq: 0 };
        let record = trail.record(MORNING, "token:1:a", "licence.revoke", "ok");
        let alerts = evaluation.observe(&record, Some(MORNING - Duration::minutes(12)));
        assert_eq!(rule_names(&alerts), ["soon"]);
        assert_eq!(alerts[0].target, "L1");
        assert_eq!(alerts[0].detail.minutes_after_issue, Some(12));
        assert_eq!(alerts[0].detail.actor.as_deref(), Some("token:1:a"));
        let record = trail.record(MORNING, "token:1:a", "licence.revoke", "ok");
        assert!(evaluation
            .observe(&record, Some(MORNING - Duration::minutes(31)))
            .is_empty());
    }

    #[test]
    fn alerts_already_raised_are_remembered_from_the_trail_so_a_restart_does_not_repeat_them() {
        let rules = rules();
        let mut trail = Trail { seq: 0 };
        let night = datetime!(2026-12-03 14:00 UTC);
        let first = trail.record(night, "token:1:a", "licence.revoke", "ok");
        let raised = Evaluation::new(rules.clone(), []).observe(&first, None);
        let mut alert_record =
            trail.record(night + Duration::minutes(1), "alerts", "alert.night", "ok");
        alert_record.target = raised[0].target.clone();
        alert_record.detail = raised[0].entry().detail;
        // A new evaluation (a restart) that reads the alert back does not raise it again.
        let mut evaluation = Evaluation::new(rules.clone(), [first, alert_record.clone()]);
        let again = trail.record(
            night + Duration::minutes(30),
            "token:1:a",
            "licence.revoke",
            "ok",
        );
        assert!(evaluation.observe(&again, None).is_empty());
        // An alert never sets a rule off, nor do the day's figures: the service's own records.
        let mut evaluation = Evaluation::new(rules.clone(), []);
        assert!(evaluation.observe(&alert_record, None).is_empty());
        let daily = trail.record(night, "elicence", DAILY_FIGURES_ACTION, "refused: odd");
        for _ in 0..5 {
            assert!(evaluation.observe(&daily, None).is_empty());
        }
    }

    #[test]
    fn a_burst_of_verifications_alerts_once_per_window() {
        let rules = rules();
        let burst = rules.rules.iter().find(|r| r.name == "burst").unwrap();
        let mut evaluation = Evaluation::new(rules.clone(), []);
        let totals = [
            VerificationTotal {
                licence: "L-busy".into(),
                department: BUREAU.into(),
                count: 101,
                since: "2026-12-03T01:51".into(),
            },
            VerificationTotal {
                licence: "L-quiet".into(),
                department: BUREAU.into(),
                count: 100,
                since: "2026-12-03T01:51".into(),
            },
        ];
        let alerts = evaluation.observe_verifications(burst, MORNING, &totals);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            (alerts[0].target.as_str(), alerts[0].detail.count),
            ("L-busy", Some(101))
        );
        let soon = MORNING + Duration::minutes(9);
        assert!(evaluation
            .observe_verifications(burst, soon, &totals)
            .is_empty());
        let later = MORNING + Duration::minutes(10);
        assert_eq!(
            evaluation
                .observe_verifications(burst, later, &totals)
                .len(),
            1
        );
    }
}
