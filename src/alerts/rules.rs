//! The alert rules as a TOML file declares them (`default_rules.toml` is shipped; see its comment
//! for the format): parsed once at start, every problem named with its line and field, so a
//! broken file stops `serve` rather than leaving supervision silently off.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, Weekday};

use crate::time_util;

/// The rules shipped with the service, used when `ELICENCE_ALERT_RULES` names no file.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// The longest window a rule may have: the watcher reads back this far for its counts.
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;

/// The rules in force.
#[derive(Debug, Clone, Serialize)]
pub struct Rules {
    /// Where they were read from: a file's path, or `shipped defaults`.
    pub source: String,
    pub working_hours: WorkingHours,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    /// The alert's audit action is `alert.{name}`.
    pub name: String,
    pub enabled: bool,
    #[serde(flatten)]
    pub check: Check,
}

/// What a rule watches for, with its thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    RevocationOutsideHours {
        window_minutes: u32,
    },
    ChangesByOneActor {
        more_than: u32,
        window_minutes: u32,
    },
    RefusedAttempts {
        per: Per,
        more_than: u32,
        window_minutes: u32,
    },
    RevokedSoonAfterIssue {
        within_minutes: u32,
    },
    VerificationBurst {
        more_than: u32,
        window_minutes: u32,
    },
}

/// The kinds of rule, as the file and an alert's detail name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    RevocationOutsideHours,
    ChangesByOneActor,
    RefusedAttempts,
    RevokedSoonAfterIssue,
    VerificationBurst,
}

/// What refused attempts are counted per: the acting token or account, or the client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    Actor,
    Address,
}

impl Check {
    pub fn kind(&self) -> Kind {
        match self {
            Check::RevocationOutsideHours { .. } => Kind::RevocationOutsideHours,
            Check::ChangesByOneActor { .. } => Kind::ChangesByOneActor,
            Check::RefusedAttempts { .. } => Kind::RefusedAttempts,
            Check::RevokedSoonAfterIssue { .. } => Kind::RevokedSoonAfterIssue,
            Check::VerificationBurst { .. } => Kind::VerificationBurst,
        }
    }

    /// How long an episode lasts: no second alert for the same target within this time of the
    /// record that fired the first, and how far back the rule counts.
    pub fn window_minutes(&self) -> u32 {
        match *self {
            Check::RevocationOutsideHours { window_minutes }
            | Check::ChangesByOneActor { window_minutes, .. }
            | Check::RefusedAttempts { window_minutes, .. }
            | Check::VerificationBurst { window_minutes, .. } => window_minutes,
            Check::RevokedSoonAfterIssue { within_minutes } => within_minutes,
        }
    }
}

impl Rule {
    pub fn action(&self) -> String {
        format!("alert.{}", self.name)
    }

    /// What the rule watches for, in a sentence (`elicence alerts rules`).
    pub fn describe(&self) -> String {
        match self.check {
            Check::RevocationOutsideHours { window_minutes } => format!(
                "a licence revoked outside working hours (one alert per person per {window_minutes} min)"
            ),
            Check::ChangesByOneActor {
                more_than,
                window_minutes,
            } => format!(
                "more than {more_than} revocations or amendments by one person within {window_minutes} min"
            ),
            Check::RefusedAttempts {
                per,
                more_than,
                window_minutes,
            } => format!(
                "more than {more_than} refused attempts from one {} within {window_minutes} min",
                match per {
                    Per::Actor => "token or account",
                    Per::Address => "client address",
                }
            ),
            Check::RevokedSoonAfterIssue { within_minutes } => {
                format!("a licence revoked within {within_minutes} min of its issue")
            }
            Check::VerificationBurst {
                more_than,
                window_minutes,
            } => format!(
                "more than {more_than} public verifications of one licence within {window_minutes} min"
            ),
        }
    }
}

impl Rules {
    /// The rules of `file`, or the shipped ones when there is none.
    pub fn load(file: Option<&Path>) -> Result<Rules, String> {
        match file {
            None => Rules::parse(DEFAULT_RULES, "shipped defaults"),
            Some(path) => {
                let source = path.display().to_string();
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("alert rules {source}: {e}"))?;
                Rules::parse(&text, &source)
            }
        }
    }

    /// Parses a rules file; an error names the source, the line and the field.
    pub fn parse(text: &str, source: &str) -> Result<Rules, String> {
        let said = |reason: String| format!("alert rules {source}: {reason}");
        let file: RawFile = toml::from_str(text)
            .map_err(|e| said(crate::config::describe_toml_error(text, &e, &[])))?;
        let at_line = |span: std::ops::Range<usize>, reason: String| {
            said(format!(
                "line {}: {reason}",
                crate::config::line_of(text, span.start)
            ))
        };
        let working_hours = match file.working_hours {
            Some(hours) => {
                let span = hours.span();
                WorkingHours::from_raw(hours.into_inner()).map_err(|r| at_line(span, r))?
            }
            None => WorkingHours::default(),
        };
        let mut rules: Vec<Rule> = Vec::new();
        for raw in file.rules {
            let span = raw.span();
            let rule = Rule::from_raw(raw.into_inner()).map_err(|r| at_line(span.clone(), r))?;
            if rules.iter().any(|r| r.name == rule.name) {
                return Err(at_line(
                    span,
                    format!("rule {:?}: name: another rule has this name", rule.name),
                ));
            }
            rules.push(rule);
        }
        Ok(Rules {
            source: source.to_string(),
            working_hours,
            rules,
        })
    }

    pub fn enabled(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(|r| r.enabled)
    }

    /// How far back any enabled rule looks, in minutes.
    pub fn longest_window_minutes(&self) -> u32 {
        self.enabled()
            .map(|r| r.check.window_minutes())
            .max()
            .unwrap_or(0)
    }
}

/// Working hours in China Standard Time: a revocation outside them is worth a supervisor's look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingHours {
    days: Vec<Day>,
    /// Minutes after midnight: from `start` (included) to `end` (excluded).
    start: u16,
    end: u16,
    holidays: BTreeSet<Date>,
    make_up_days: BTreeSet<Date>,
}

impl Default for WorkingHours {
    /// Monday to Friday, 08:30 to 17:30.
    fn default() -> Self {
        WorkingHours {
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            start: 8 * 60 + 30,
            end: 17 * 60 + 30,
            holidays: BTreeSet::new(),
            make_up_days: BTreeSet::new(),
        }
    }
}

impl WorkingHours {
    /// Whether `at` falls within working hours, as a clock in China reads it.
    pub fn covers(&self, at: OffsetDateTime) -> bool {
        let local = at.to_offset(time_util::CST);
        let date = local.date();
        let working_day = if self.holidays.contains(&date) {
            false
        } else if self.make_up_days.contains(&date) {
            true
        } else {
            self.days.iter().any(|d| d.weekday() == date.weekday())
        };
        let minute = u16::from(local.hour()) * 60 + u16::from(local.minute());
        working_day && self.start <= minute && minute < self.end
    }

    /// The hours in a line (`elicence alerts rules`).
    pub fn describe(&self) -> String {
        let days: Vec<&str> = self.days.iter().map(|d| d.as_str()).collect();
        let dates = |set: &BTreeSet<Date>| match set.len() {
            0 => "none".to_string(),
            _ => set
                .iter()
                .map(|d| time_util::format_date(*d))
                .collect::<Vec<_>>()
                .join(", "),
        };
        format!(
            "{} {}–{} China Standard Time; holidays: {}; make-up working days: {}",
            if days.is_empty() {
                "no day".to_string()
            } else {
                days.join(" ")
            },
            clock(self.start),
            clock(self.end),
            dates(&self.holidays),
            dates(&self.make_up_days),
        )
    }

    fn from_raw(raw: RawHours) -> Result<WorkingHours, String> {
        let default = WorkingHours::default();
        let start = match raw.start {
            Some(text) => {
                parse_clock(&text, false).map_err(|r| format!("working_hours: start: {r}"))?
            }
            None => default.start,
        };
        let end = match raw.end {
            Some(text) => {
                parse_clock(&text, true).map_err(|r| format!("working_hours: end: {r}"))?
            }
            None => default.end,
        };
        if start >= end {
            return Err(format!(
                "working_hours: end: {} is not after start {}",
                clock(end),
                clock(start)
            ));
        }
        let dates = |field: &str, texts: Vec<String>| -> Result<BTreeSet<Date>, String> {
            texts
                .iter()
                .map(|t| {
                    time_util::parse_date(t).ok_or_else(|| {
                        format!("working_hours: {field}: {t:?} is not a date (YYYY-MM-DD)")
                    })
                })
                .collect()
        };
        Ok(WorkingHours {
            days: raw.days.unwrap_or(default.days),
            start,
            end,
            holidays: dates("holidays", raw.holidays)?,
            make_up_days: dates("make_up_days", raw.make_up_days)?,
        })
    }
}

impl Serialize for WorkingHours {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let dates = |set: &BTreeSet<Date>| -> Vec<String> {
            set.iter().map(|d| time_util::format_date(*d)).collect()
        };
        serde_json::json!({
            "days": self.days.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
            "start": clock(self.start),
            "end": clock(self.end),
            "holidays": dates(&self.holidays),
            "make_up_days": dates(&self.make_up_days),
        })
        .serialize(serializer)
    }
}

/// `HH:MM` as minutes after midnight; `24:00` is allowed as an end.
fn parse_clock(text: &str, is_end: bool) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time of day (HH:MM, 00:00 to 24:00)");
    let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
    let all_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(hours) || !all_digits(minutes) {
        return Err(bad());
    }
    let (hours, minutes): (u16, u16) = (
        hours.parse().map_err(|_| bad())?,
        minutes.parse().map_err(|_| bad())?,
    );
    match (hours, minutes) {
        (24, 0) if is_end => Ok(24 * 60),
        (0..=23, 0..=59) => Ok(hours * 60 + minutes),
        _ => Err(bad()),
    }
}

fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Day::Mon => "mon",
            Day::Tue => "tue",
            Day::Wed => "wed",
            Day::Thu => "thu",
            Day::Fri => "fri",
            Day::Sat => "sat",
            Day::Sun => "sun",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    working_hours: Option<toml::Spanned<RawHours>>,
    #[serde(default)]
    rules: Vec<toml::Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    days: Option<Vec<Day>>,
    start: Option<String>,
    end: Option<String>,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    make_up_days: Vec<String>,
}

/// A rule as written: every setting any kind has, checked against its kind by [`Rule::from_raw`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    kind: Kind,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    more_than: Option<u32>,
    window_minutes: Option<u32>,
    within_minutes: Option<u32>,
    per: Option<Per>,
}

fn enabled_by_default() -> bool {
    true
}

impl Rule {
    fn from_raw(raw: RawRule) -> Result<Rule, String> {
        let name = raw.name.clone();
        let said = |field: &str, reason: &str| format!("rule {name:?}: {field}: {reason}");
        let name_ok = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(said(
                "name",
                "use 1 to 40 lowercase letters, digits and _ (the alert's action is alert.{name})",
            ));
        }
        // The settings the kind takes; any other one given is a mistake worth naming.
        let takes: &[&str] = match raw.kind {
            Kind::RevocationOutsideHours => &["window_minutes"],
            Kind::ChangesByOneActor | Kind::VerificationBurst => &["more_than", "window_minutes"],
            Kind::RefusedAttempts => &["per", "more_than", "window_minutes"],
            Kind::RevokedSoonAfterIssue => &["within_minutes"],
        };
        let given = [
            ("more_than", raw.more_than.is_some()),
            ("window_minutes", raw.window_minutes.is_some()),
            ("within_minutes", raw.within_minutes.is_some()),
            ("per", raw.per.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, g)| *g && !takes.contains(f)) {
            return Err(said(
                field,
                &format!("does not apply to a rule of kind {}", raw.kind.as_str()),
            ));
        }
        let window = || minutes(&said, "window_minutes", raw.window_minutes);
        let more_than = || match raw.more_than {
            None => Err(said("more_than", "missing: this kind of rule needs it")),
            Some(0) => Err(said("more_than", "must be at least 1")),
            Some(n) => Ok(n),
        };
        let check = match raw.kind {
            Kind::RevocationOutsideHours => Check::RevocationOutsideHours {
                window_minutes: window()?,
            },
            Kind::ChangesByOneActor => Check::ChangesByOneActor {
                more_than: more_than()?,
                window_minutes: window()?,
            },
            Kind::RefusedAttempts => Check::RefusedAttempts {
                per: raw.per.ok_or_else(|| {
                    said(
                        "per",
                        "missing: give \"actor\" (token or account) or \"address\"",
                    )
                })?,
                more_than: more_than()?,
                window_minutes: window()?,
            },
            Kind::RevokedSoonAfterIssue => Check::RevokedSoonAfterIssue {
                within_minutes: minutes(&said, "within_minutes", raw.within_minutes)?,
            },
            Kind::VerificationBurst => Check::VerificationBurst {
                more_than: more_than()?,
                window_minutes: window()?,
            },
        };
        Ok(Rule {
            name,
            enabled: raw.enabled,
            check,
        })
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RevocationOutsideHours => "revocation_outside_hours",
            Kind::ChangesByOneActor => "changes_by_one_actor",
            Kind::RefusedAttempts => "refused_attempts",
            Kind::RevokedSoonAfterIssue => "revoked_soon_after_issue",
            Kind::VerificationBurst => "verification_burst",
        }
    }
}

/// A window in minutes: given, and from 1 minute to a day.
fn minutes(
    said: &impl Fn(&str, &str) -> String,
    field: &str,
    value: Option<u32>,
) -> Result<u32, String> {
    match value {
        None => Err(said(field, "missing: this kind of rule needs it")),
        Some(m) if (1..=MAX_WINDOW_MINUTES).contains(&m) => Ok(m),
        Some(_) => Err(said(
            field,
            &format!("must be from 1 to {MAX_WINDOW_MINUTES} minutes"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_shipped_rules_parse_with_every_kind_enabled() {
        let rules = Rules::load(None).unwrap();
        assert_eq!(rules.source, "shipped defaults");
        let kinds: BTreeSet<&str> = rules.enabled().map(|r| r.check.kind().as_str()).collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        assert_eq!(rules.working_hours, WorkingHours::default());
        assert_eq!(rules.longest_window_minutes(), 60);
    }

    #[test]
    fn working_hours_are_read_on_a_clock_in_china_with_holidays_and_make_up_days() {
        let hours = Rules::parse(
            "[working_hours]\nholidays = [\"2026-10-01\"]\nmake_up_days = [\"2026-09-27\"]\n",
            "t",
        )
        .unwrap()
        .working_hours;
        // Thursday 2026-12-03: 08:30 and 17:29 China time are in, 08:29 and 17:30 out.
        assert!(hours.covers(datetime!(2026-12-03 00:30 UTC)));
        assert!(hours.covers(datetime!(2026-12-03 09:29:59 UTC)));
        assert!(!hours.covers(datetime!(2026-12-03 00:29:59 UTC)));
        assert!(!hours.covers(datetime!(2026-12-03 09:30 UTC)));
        // 01:00 UTC on a Friday is 09:00 in China; 23:00 UTC Friday is Saturday 07:00.
        assert!(hours.covers(datetime!(2026-12-04 01:00 UTC)));
        assert!(!hours.covers(datetime!(2026-12-05 02:00 UTC)), "a Saturday");
        assert!(!hours.covers(datetime!(2026-10-01 02:00 UTC)), "a holiday");
        assert!(
            hours.covers(datetime!(2026-09-27 02:00 UTC)),
            "a Sunday worked"
        );

        let always = Rules::parse(
            "[working_hours]\ndays = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]\nstart = \"00:00\"\nend = \"24:00\"\n",
            "t",
        )
        .unwrap()
        .working_hours;
        assert!(always.covers(datetime!(2026-12-05 15:59:59 UTC)));
        let never = Rules::parse("[working_hours]\ndays = []\n", "t").unwrap();
        assert!(!never.working_hours.covers(datetime!(2026-12-03 02:00 UTC)));
    }

    /// Every mistake names the file, the line and the field.
    #[test]
    fn a_broken_file_is_refused_naming_its_line_and_field() {
        let rule = |body: &str| format!("# rules\n\n[[rules]]\nname = \"r\"\n{body}\n");
        for (text, line, words) in [
            (rule("kind = \"changes_by_one_actor\"\nwindow_minutes = 60"), 3, "more_than: missing"),
            (rule("kind = \"changes_by_one_actor\"\nmore_than = 0\nwindow_minutes = 60"), 3, "more_than: must be at least 1"),
            (rule("kind = \"revoked_soon_after_issue\"\nwithin_minutes = 10\nmore_than = 3"), 3, "more_than: does not apply"),
            (rule("kind = \"refused_attempts\"\nmore_than = 3\nwindow_minutes = 10"), 3, "per: missing"),
            (rule("kind = \"verification_burst\"\nmore_than = 3\nwindow_minutes = 9999"), 3, "window_minutes: must be from 1 to 1440"),
            (rule("kind = \"burst\""), 5, "unknown variant `burst`"),
            (rule("kind = \"verification_burst\"\ncolour = 1"), 6, "unknown field `colour`"),
            (rule("kind = \"verification_burst\"\nmore_than = \"3\"\nwindow_minutes = 1"), 6, "more_than"),
            ("[[rules]]\nname = \"Bad Name\"\nkind = \"revoked_soon_after_issue\"\nwithin_minutes = 5\n".into(), 1, "name: use 1 to 40"),
            ("[working_hours]\nstart = \"8:30\"\n".into(), 1, "start: \"8:30\" is not a time"),
            ("[working_hours]\nstart = \"18:00\"\n".into(), 1, "end: 17:30 is not after start 18:00"),
            ("[working_hours]\nholidays = [\"2026-02-30\"]\n".into(), 1, "holidays: \"2026-02-30\" is not a date"),
            ("[working_hours]\ndays = [\"monday\"]\n".into(), 2, "unknown variant `monday`"),
        ] {
            let err = Rules::parse(&text, "rules.toml").unwrap_err();
            assert!(err.starts_with("alert rules rules.toml: "), "{err}");
            assert!(err.contains(&format!("line {line}")), "{err} (wanted line {line})");
            assert!(err.contains(words), "{err} (wanted {words:?})");
        }
        let twice = "[[rules]]\nname = \"a\"\nkind = \"revoked_soon_after_issue\"\nwithin_minutes = 5\n\n[[rules]]\nname = \"a\"\nkind = \"revoked_soon_after_issue\"\nwithin_minutes = 9\n";
        let err = Rules::parse(twice, "t").unwrap_err();
        assert!(
            err.contains("line 6") && err.contains("another rule has this name"),
            "{err}"
        );
    }

    #[test]
    fn a_disabled_rule_is_kept_but_not_applied() {
        let rules = Rules::parse(
            "[[rules]]\nname = \"a\"\nkind = \"revoked_soon_after_issue\"\nwithin_minutes = 5\nenabled = false\n",
            "t",
        )
        .unwrap();
        assert_eq!(rules.rules.len(), 1);
        assert_eq!(rules.enabled().count(), 0);
        assert_eq!(rules.longest_window_minutes(), 0);
    }
}
