//! Dates and times as SPEC §6 fixes them: validity dates are calendar dates in China Standard Time
//! (UTC+8); instants are integer seconds since the epoch, shown as RFC 3339 in UTC.

use time::format_description::well_known::Rfc3339;
use time::macros::{format_description, offset};
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

/// China Standard Time, the zone validity dates are counted in.
pub const CST: UtcOffset = offset!(+8);

pub fn now() -> OffsetDateTime {
    // Whole seconds: every instant the service records is signed as integer seconds.
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).expect("0 is a valid nanosecond")
}

pub fn today_cst() -> Date {
    OffsetDateTime::now_utc().to_offset(CST).date()
}

pub fn date_in_cst(at: OffsetDateTime) -> Date {
    at.to_offset(CST).date()
}

/// The first instant of `date` in China Standard Time.
pub fn start_of_day_cst(date: Date) -> OffsetDateTime {
    date.with_time(Time::MIDNIGHT).assume_offset(CST)
}

/// The first instant after `date` ends in China Standard Time: a licence valid until `date`
/// is valid strictly before this instant (the `exp` claim, which RFC 8392 rejects "on or after").
pub fn end_of_day_cst(date: Date) -> OffsetDateTime {
    start_of_day_cst(date) + Duration::days(1)
}

/// `YYYY-MM-DD` (RFC 3339 full-date).
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

/// `YYYYMMDD`, as inside a resident ID number.
pub fn parse_compact_date(s: &str) -> Option<Date> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Date::parse(s, format_description!("[year][month][day]")).ok()
}

pub fn format_date(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .expect("dates format")
}

pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("instants format")
}

pub fn from_unix(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn a_validity_day_ends_at_midnight_china_time() {
        let end = end_of_day_cst(date!(2030 - 06 - 30));
        assert_eq!(end, datetime!(2030-06-30 16:00 UTC));
        assert_eq!(
            start_of_day_cst(date!(2030 - 06 - 30)),
            datetime!(2030-06-29 16:00 UTC)
        );
    }

    #[test]
    fn compact_dates_must_be_real() {
        assert_eq!(parse_compact_date("19491231"), Some(date!(1949 - 12 - 31)));
        assert_eq!(parse_compact_date("19490230"), None);
        assert_eq!(parse_compact_date("1949123"), None);
        assert_eq!(parse_date("2024-02-29"), Some(date!(2024 - 02 - 29)));
        assert_eq!(parse_date("2023-02-29"), None);
    }
}
