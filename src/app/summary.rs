//! The supervision figures (SPEC §15, 电子监察): per department and China Standard Time day,
//! licences converted, issued, amended, renewed, suspended, reinstated and revoked; batch rows
//! rejected, by reason; refused attempts; public verifications; and how long conversion took
//! from upload to issue. Answered on request (`GET /api/v1/supervision/summary`, `elicence
//! supervision summary`, the console's 电子监察 page) and appended once a day to the audit trail
//! as a `supervision.summary` record, which the audit stream carries to the city platform.
//!
//! Where each figure comes from: the kinds of change from the `events` table (the register's
//! own record, written in the same transaction as the change); whether an issue was a
//! conversion from its batch row; rejections from `batch_rows` (day: the batch's creation);
//! refusals from the audit trail; verifications from `verification_counts`, which
//! [`App::flush_verification_counts`] fills from the in-memory tally.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::{Date, Duration, OffsetDateTime};

use super::*;
use crate::store::{FigureRange, HourCount};
use crate::verify::Verification;

/// The longest range one summary covers, in days.
pub const MAX_SUMMARY_DAYS: i64 = 366;
/// The days a summary covers when no range is given: the last 30, today included.
pub const DEFAULT_SUMMARY_DAYS: i64 = 30;
/// The audit action of the daily figures.
pub const DAILY_FIGURES_ACTION: &str = "supervision.summary";
/// How often `serve` adds the verifications counted in memory to the store.
const VERIFICATION_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long after midnight (China Standard Time) the day before is recorded: every instance
/// has added that day's last verifications by then.
const DAILY_FIGURES_DELAY: Duration = Duration::minutes(1);
/// The reason code of rows rejected before reason codes were kept.
pub const UNRECORDED_REASON: &str = "unrecorded";

/// The figures of a range of days.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Summary {
    /// The first day covered (YYYY-MM-DD, China Standard Time).
    pub from: String,
    /// The last day covered, included.
    pub to: String,
    /// The department asked for; null: every department the reader may see.
    pub department: Option<String>,
    /// Per day and department, in that order; a day and department with nothing to count is
    /// left out.
    pub days: Vec<Figures>,
    /// Per department over the whole range.
    pub totals: Vec<Figures>,
}

/// One department's figures for a day (or, in `totals`, for the whole range).
#[derive(utoipa::ToSchema, Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    /// The day (YYYY-MM-DD, China Standard Time); absent in `totals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The department (USCC); null: the whole service's (refused requests without a token).
    pub department: Option<String>,
    /// The department's name in the directory.
    pub department_name: Option<String>,
    /// Licences issued by batch conversion of stock licences.
    pub converted: i64,
    /// Licences issued one by one.
    pub issued: i64,
    pub amended: i64,
    pub renewed: i64,
    pub suspended: i64,
    pub reinstated: i64,
    pub revoked: i64,
    /// Batch rows rejected (of batches created that day).
    pub rejected_rows: i64,
    /// Rejected rows by reason code; a row rejected for several reasons counts under each.
    pub rejected_by_reason: BTreeMap<String, i64>,
    /// Attempts refused by the permission check or for want of a valid token.
    pub refused_attempts: i64,
    /// Public verifications (the verification page and `POST /api/v1/verify`).
    pub verifications: i64,
    /// Seconds from a batch's upload to the issue of each licence it converted.
    pub conversion_seconds: Option<ConversionSeconds>,
}

/// How long conversions took, over the licences converted.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionSeconds {
    pub licences: i64,
    /// Nearest-rank median, in seconds.
    pub median: i64,
    /// Nearest-rank 95th percentile, in seconds.
    pub p95: i64,
}

/// Conversion times: seconds → licences.
type Histogram = BTreeMap<i64, i64>;

/// One department's figures of one day (or of the range) being gathered, with the conversion
/// times as a histogram until the percentiles are taken.
#[derive(Default)]
struct Cell {
    figures: Figures,
    times: Histogram,
}

impl Cell {
    /// The figures, named and with their percentiles.
    fn finish(self, department: Option<String>, names: &BTreeMap<String, String>) -> Figures {
        Figures {
            department_name: department.as_ref().and_then(|d| names.get(d)).cloned(),
            department,
            conversion_seconds: percentiles(&self.times),
            ..self.figures
        }
    }
}

/// The figures being gathered, per (day, department).
#[derive(Default)]
struct Gathered {
    cells: BTreeMap<(Date, Option<String>), Cell>,
}

impl Gathered {
    fn cell(&mut self, day: Date, department: Option<String>) -> &mut Cell {
        self.cells.entry((day, department)).or_default()
    }

    fn add_hours(&mut self, counts: Vec<HourCount>, add: impl Fn(&mut Figures, &str, i64)) {
        for c in counts {
            let Some(day) = cst_day_of_hour(&c.hour) else {
                continue;
            };
            add(&mut self.cell(day, c.department).figures, &c.what, c.count);
        }
    }

    /// The days in order, and each department's totals over them.
    fn finish(self, names: &BTreeMap<String, String>) -> (Vec<Figures>, Vec<Figures>) {
        let mut totals: BTreeMap<Option<String>, Cell> = BTreeMap::new();
        let mut days = Vec::with_capacity(self.cells.len());
        for ((day, department), cell) in self.cells {
            let total = totals.entry(department.clone()).or_default();
            total.figures.add(&cell.figures);
            for (seconds, n) in &cell.times {
                *total.times.entry(*seconds).or_default() += n;
            }
            days.push(Figures {
                date: Some(time_util::format_date(day)),
                ..cell.finish(department, names)
            });
        }
        let totals = totals
            .into_iter()
            .map(|(department, cell)| cell.finish(department, names))
            .collect();
        (days, totals)
    }
}

impl Figures {
    /// Adds `other`'s counts to these (not its conversion times: percentiles do not add).
    pub fn add(&mut self, other: &Figures) {
        self.converted += other.converted;
        self.issued += other.issued;
        self.amended += other.amended;
        self.renewed += other.renewed;
        self.suspended += other.suspended;
        self.reinstated += other.reinstated;
        self.revoked += other.revoked;
        self.rejected_rows += other.rejected_rows;
        for (code, n) in &other.rejected_by_reason {
            *self.rejected_by_reason.entry(code.clone()).or_default() += n;
        }
        self.refused_attempts += other.refused_attempts;
        self.verifications += other.verifications;
    }

    /// Counts `n` changes of kind `what` (an event kind, or `converted`).
    fn add_change(&mut self, what: &str, n: i64) {
        let figure = match what {
            "converted" => &mut self.converted,
            "issued" => &mut self.issued,
            "amended" => &mut self.amended,
            "renewed" => &mut self.renewed,
            "suspended" => &mut self.suspended,
            "reinstated" => &mut self.reinstated,
            "revoked" => &mut self.revoked,
            _ => return,
        };
        *figure += n;
    }
}

/// Nearest-rank median and 95th percentile of a histogram (seconds → licences).
fn percentiles(times: &Histogram) -> Option<ConversionSeconds> {
    let licences: i64 = times.values().sum();
    if licences == 0 {
        return None;
    }
    let at_rank = |percent: i64| {
        let rank = ((licences * percent + 99) / 100).max(1);
        let mut seen = 0;
        for (seconds, n) in times {
            seen += n;
            if seen >= rank {
                return *seconds;
            }
        }
        *times.keys().last().expect("not empty")
    };
    Some(ConversionSeconds {
        licences,
        median: at_rank(50),
        p95: at_rank(95),
    })
}

/// The China Standard Time day of a UTC hour written `YYYY-MM-DDTHH`.
fn cst_day_of_hour(hour: &str) -> Option<Date> {
    let date = time_util::parse_date(hour.get(..10)?)?;
    let hour: u8 = hour.get(11..13)?.parse().ok()?;
    let at = date.with_hms(hour, 0, 0).ok()?.assume_utc();
    Some(time_util::date_in_cst(at))
}

fn parse_instant(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// A refusal of a summary's parameter, said in both languages (the API answers in the caller's,
/// the console in Chinese); the English starts with the field's name.
fn refused(en: String, zh: String) -> AppError {
    AppError::Explained(crate::messages::Said { en, zh })
}

/// A day a summary's range names, or the field's error.
fn parse_day(text: Option<&str>, field: &str, label: &str) -> Result<Option<Date>> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    time_util::parse_date(text).map(Some).ok_or_else(|| {
        let shown: String = text.chars().take(40).collect();
        refused(
            format!("{field}: {shown:?} is not a date written YYYY-MM-DD"),
            format!("{label}“{shown}”不是日期，请按 年-月-日 填写，例如 2026-03-01"),
        )
    })
}

/// The days a summary covers: both given, or the last [`DEFAULT_SUMMARY_DAYS`] up to `to`
/// (today when absent), at most [`MAX_SUMMARY_DAYS`].
pub fn summary_range(from: Option<&str>, to: Option<&str>) -> Result<(Date, Date)> {
    let from = parse_day(from, "from", "起始日期")?;
    let to = parse_day(to, "to", "截止日期")?.unwrap_or_else(time_util::today_cst);
    let from = from.unwrap_or(to - Duration::days(DEFAULT_SUMMARY_DAYS - 1));
    let (first, last) = (time_util::format_date(from), time_util::format_date(to));
    if to < from {
        return Err(refused(
            format!("to: {last} is before from {first}"),
            format!("截止日期 {last} 早于起始日期 {first}"),
        ));
    }
    let days = (to - from).whole_days() + 1;
    if days > MAX_SUMMARY_DAYS {
        return Err(refused(
            format!(
                "to: the range from {first} to {last} is {days} days; at most {MAX_SUMMARY_DAYS} \
                 are summarised at once"
            ),
            format!("{first} 至 {last} 共 {days} 天，一次最多统计 {MAX_SUMMARY_DAYS} 天"),
        ));
    }
    Ok((from, to))
}

impl App {
    /// The supervision figures from `from` to `to` (YYYY-MM-DD, China Standard Time, both
    /// included; the last 30 days when absent) of `department` (USCC), or of every department
    /// the actor may read the audit trail of.
    pub async fn supervision_summary(
        &self,
        actor: &Actor,
        from: Option<&str>,
        to: Option<&str>,
        department: Option<&str>,
    ) -> Result<Summary> {
        let scope = self
            .scope_audited(actor, Action::ReadAudit, "supervision.read", "summary")
            .await?;
        let (from, to) = summary_range(from, to)?;
        let department = match department.map(str::trim).filter(|d| !d.is_empty()) {
            Some(text) => {
                let uscc = self.issuing_department(text)?;
                let allowed = permissions::check(actor, Action::ReadAudit, Some(&uscc));
                if allowed.is_err() {
                    let entry = actor.entry("supervision.read", uscc.as_str());
                    self.audit_failure(entry, &allowed).await;
                }
                allowed?;
                Some(uscc)
            }
            None => scope.department().cloned(),
        };
        self.figures(from, to, department.as_ref()).await
    }

    /// A department the summary may be asked for: a USCC that issues licences in the directory.
    fn issuing_department(&self, text: &str) -> Result<Uscc> {
        let uscc = Uscc::parse(text).map_err(|e| {
            refused(
                format!("department: {e}"),
                format!("部门：{}", crate::messages::id_zh(&e)),
            )
        })?;
        if !self.directory.issuers().iter().any(|i| i.uscc == uscc) {
            return Err(refused(
                format!("department: {uscc} issues no licence type in the directory"),
                format!("部门：{uscc} 不是证照目录中的发证部门"),
            ));
        }
        Ok(uscc)
    }

    /// The figures of `from`..=`to`, of `department` or of all (no permission asked: the
    /// callers have).
    async fn figures(&self, from: Date, to: Date, department: Option<&Uscc>) -> Result<Summary> {
        let from_text = time_util::format_rfc3339(time_util::start_of_day_cst(from));
        let until_text = time_util::format_rfc3339(time_util::end_of_day_cst(to));
        let range = FigureRange {
            from: &from_text,
            until: &until_text,
            department: department.map(Uscc::as_str),
        };
        let mut gathered = Gathered::default();
        gathered.add_hours(self.store.change_counts(&range).await?, |f, what, n| {
            f.add_change(what, n)
        });
        gathered.add_hours(self.store.refusal_counts(&range).await?, |f, _, n| {
            f.refused_attempts += n
        });
        gathered.add_hours(self.store.verification_counts(&range).await?, |f, _, n| {
            f.verifications += n
        });
        self.gather_rejections(&mut gathered, &range).await?;
        for t in self.store.conversion_times(&range).await? {
            let (Some(issued), Some(created)) =
                (parse_instant(&t.issued_at), parse_instant(&t.created_at))
            else {
                continue;
            };
            let seconds = (issued - created).whole_seconds().max(0);
            let day = time_util::date_in_cst(issued);
            *gathered
                .cell(day, Some(t.department))
                .times
                .entry(seconds)
                .or_default() += t.count;
        }
        let names: BTreeMap<String, String> = self
            .directory
            .issuers()
            .into_iter()
            .map(|i| (i.uscc.to_string(), i.name))
            .collect();
        let (days, totals) = gathered.finish(&names);
        Ok(Summary {
            from: time_util::format_date(from),
            to: time_util::format_date(to),
            department: department.map(Uscc::to_string),
            days,
            totals,
        })
    }

    /// Rejected rows, each under the department its batch was submitted for (a department-less
    /// admin's batch: the row's type's issuer, when the directory knows the type).
    async fn gather_rejections(
        &self,
        gathered: &mut Gathered,
        range: &FigureRange<'_>,
    ) -> Result<()> {
        for r in self.store.rejected_counts(range).await? {
            let department = r.batch_department.or_else(|| {
                let code = crate::identifiers::TypeCode::parse(&r.type_code).ok()?;
                Some(self.directory.get(&code)?.issuer.uscc.to_string())
            });
            if range.department.is_some() && department.as_deref() != range.department {
                continue;
            }
            let Some(day) = cst_day_of_hour(&r.hour) else {
                continue;
            };
            let figures = &mut gathered.cell(day, department).figures;
            figures.rejected_rows += r.count;
            let codes = r.codes.as_deref().unwrap_or(UNRECORDED_REASON);
            for code in codes.split(',') {
                *figures
                    .rejected_by_reason
                    .entry(code.to_string())
                    .or_default() += r.count;
            }
        }
        Ok(())
    }

    /// Appends `day`'s figures of every department to the audit trail as one
    /// `supervision.summary` record (target: the day), unless it is there already; whether it
    /// appended. Two instances, or a restart, never record a day twice.
    pub async fn record_daily_figures(&self, day: Date) -> Result<bool> {
        let summary = self.figures(day, day, None).await?;
        let departments: Vec<Figures> = summary
            .days
            .into_iter()
            .map(|f| Figures { date: None, ..f })
            .collect();
        let date = time_util::format_date(day);
        let detail = serde_json::json!({"date": date, "departments": departments});
        let entry = Entry {
            detail: detail.to_string(),
            ..Entry::new("elicence", "service", DAILY_FIGURES_ACTION, &date)
        };
        Ok(self.store.append_audit_once(&entry).await?)
    }

    /// Counts a public verification (the page, `POST /api/v1/verify`) of the licence it names,
    /// in memory: [`App::flush_verification_counts`] stores the counts. A code that names no
    /// licence of ours (malformed, forged) is not counted.
    pub fn note_public_verification(&self, verification: &Verification) {
        let (Some(licence), Some(department)) = (&verification.licence, &verification.department)
        else {
            return;
        };
        if let Some(key) = crate::verify_tally::licence_of(&licence.id) {
            self.verify_tally
                .note(key, &department.uscc, time_util::now().unix_timestamp());
        }
    }

    /// Adds the verifications counted in memory to the store; counts the store refuses are
    /// kept for the next flush.
    pub async fn flush_verification_counts(&self) -> Result<()> {
        let counts = self.verify_tally.take();
        if counts.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.store.add_verification_counts(&counts).await {
            self.verify_tally.restore(counts);
            return Err(e.into());
        }
        Ok(())
    }

    /// `serve`'s keeper of the figures: adds the verification counts to the store every few
    /// seconds and when stopped, and records the day before once a day, a minute after
    /// midnight China Standard Time (or at start, if that day is not recorded yet).
    pub async fn keep_figures(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(VERIFICATION_FLUSH_INTERVAL);
        let mut recorded: Option<Date> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {
                    if let Err(e) = self.flush_verification_counts().await {
                        tracing::error!(error = %e, "verification counts lost at exit: the store refused them");
                    }
                    return;
                }
            }
            let mut result = self.flush_verification_counts().await;
            let day = day_to_record(time_util::now());
            if result.is_ok() && recorded != Some(day) {
                result = self.record_daily_figures(day).await.map(|appended| {
                    if appended {
                        tracing::info!(day = %time_util::format_date(day), "recorded the day's supervision figures");
                    }
                    recorded = Some(day);
                });
            }
            match result {
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot store the supervision figures: retrying");
                }
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the supervision figures are stored again");
                }
                _ => {}
            }
        }
    }
}

/// The day whose figures are due at `now`: the day before, once a minute of the new day has
/// passed (China Standard Time).
fn day_to_record(now: OffsetDateTime) -> Date {
    let today = time_util::date_in_cst(now - DAILY_FIGURES_DELAY);
    today.previous_day().unwrap_or(today)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn an_hour_falls_on_its_china_standard_time_day() {
        assert_eq!(
            cst_day_of_hour("2026-03-01T15"),
            Some(date!(2026 - 03 - 01))
        );
        assert_eq!(
            cst_day_of_hour("2026-03-01T16"),
            Some(date!(2026 - 03 - 02))
        );
        assert_eq!(cst_day_of_hour("2026-03-01"), None);
        assert_eq!(cst_day_of_hour("2026-03-01T24"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let times: BTreeMap<i64, i64> = [(1, 10), (2, 8), (30, 2)].into();
        let p = percentiles(&times).unwrap();
        assert_eq!((p.licences, p.median, p.p95), (20, 1, 30));
        let one: BTreeMap<i64, i64> = [(7, 1)].into();
        assert_eq!(percentiles(&one).unwrap().p95, 7);
        assert_eq!(percentiles(&BTreeMap::new()), None);
    }

    #[test]
    fn a_range_is_checked_and_named_by_its_field() {
        let err =
            |from: Option<&str>, to: Option<&str>| summary_range(from, to).unwrap_err().to_string();
        assert!(err(Some("2026-02-30"), None).starts_with("from:"));
        assert!(err(None, Some("yesterday")).starts_with("to:"));
        assert!(err(Some("2026-03-02"), Some("2026-03-01")).starts_with("to:"));
        assert!(err(Some("2025-01-01"), Some("2026-01-02")).contains("367 days"));
        let (from, to) = summary_range(Some("2025-01-01"), Some("2026-01-01")).unwrap();
        assert_eq!((to - from).whole_days() + 1, 366);
        let (from, to) = summary_range(None, Some("2026-03-31")).unwrap();
        assert_eq!((from, to), (date!(2026 - 03 - 02), date!(2026 - 03 - 31)));
    }

    #[test]
    fn the_day_before_is_due_a_minute_after_midnight_china_time() {
        // 00:00:30 and 00:01:00 China Standard Time on 2026-03-02.
        assert_eq!(
            day_to_record(datetime!(2026-03-01 16:00:30 UTC)),
            date!(2026 - 02 - 28)
        );
        assert_eq!(
            day_to_record(datetime!(2026-03-01 16:01:00 UTC)),
            date!(2026 - 03 - 01)
        );
    }
}
