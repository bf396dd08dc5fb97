//! The console's Chinese words in one place: roles, statuses, events and what each error code
//! means to a clerk. Pages take their wording from here rather than writing their own.

use crate::app::signin::SignInRefusal;
use crate::app::{AppError, Role};
use crate::licence::{EventKind, Standing};
use crate::time_util;

pub fn role(role: Role) -> &'static str {
    match role {
        Role::Clerk => "经办人",
        Role::Officer => "审批人",
        Role::Library => "市证照库",
        Role::Supervisor => "监察员",
        Role::Admin => "管理员",
    }
}

pub fn standing(standing: Standing) -> &'static str {
    match standing {
        Standing::Active => "有效",
        Standing::Suspended => "已暂停",
        Standing::Revoked => "已注销",
    }
}

pub fn event(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Issued => "签发",
        EventKind::Amended => "变更",
        EventKind::Renewed => "延续",
        EventKind::Suspended => "暂停",
        EventKind::Reinstated => "恢复",
        EventKind::Revoked => "注销",
    }
}

/// Why sign-in was refused, as the sign-in page says it.
pub fn sign_in_refusal(refusal: &SignInRefusal) -> String {
    match refusal {
        SignInRefusal::WrongCredentials => "用户名或密码不正确。".into(),
        SignInRefusal::WrongCode => {
            "动态口令不正确或已使用过，请输入验证器当前显示的 6 位数字。".into()
        }
        SignInRefusal::Locked { until } => format!(
            "连续登录失败次数过多，账号已锁定，请于 {} 后再试，或联系管理员重置。",
            time_of_day(*until)
        ),
    }
}

/// What went wrong, in a sentence a clerk understands (the message catalogue's words for the
/// error's code); the service's own detail follows it on the page.
pub fn error(error: &AppError) -> &'static str {
    crate::messages::error_zh(error.code())
}

/// `2026-12-02T20:15:00Z` as 2026年12月2日 20:15 (China Standard Time, as clerks read clocks).
pub fn date_time(rfc3339: &str) -> String {
    match time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) {
        Ok(at) => {
            let at = at.to_offset(time::macros::offset!(+8));
            format!(
                "{}年{}月{}日 {:02}:{:02}",
                at.year(),
                u8::from(at.month()),
                at.day(),
                at.hour(),
                at.minute()
            )
        }
        Err(_) => rfc3339.to_string(),
    }
}

/// `2026-11-29` as 2026年11月29日.
pub fn date(iso: &str) -> String {
    match time_util::parse_date(iso) {
        Some(d) => format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day()),
        None => iso.to_string(),
    }
}

/// Unix seconds as the time of day in China, `20:15`.
fn time_of_day(unix: i64) -> String {
    let at = time_util::from_unix(unix).to_offset(time::macros::offset!(+8));
    format!("{:02}:{:02}", at.hour(), at.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_written_the_chinese_way_in_china_time() {
        assert_eq!(date_time("2026-12-02T16:05:00Z"), "2026年12月3日 00:05");
        assert_eq!(date("2026-01-09"), "2026年1月9日");
        assert_eq!(date_time("not a time"), "not a time");
    }
}
