//! The console's Chinese words in one place: roles, statuses, events and what each error code
//! means to a clerk. Pages take their wording from here rather than writing their own.

use crate::alerts::{AlertDetail, Kind, Per};
use crate::app::signin::SignInRefusal;
use crate::app::{AppError, Role};
use crate::batch::{BatchState, RowOutcome};
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

/// Who made a change, as the event records it: a staff member (`staff:LOGIN:NAME`) by name
/// and login; anyone else (an API token, the operator at the command line) as recorded.
pub fn actor(recorded: &str) -> String {
    match crate::app::signin::staff_of_actor(recorded) {
        Some((login, name)) => format!("{name}（{login}）"),
        None => recorded.to_string(),
    }
}

/// A version's validity today (`current`, `expired`, `not_yet_valid`, as the API names it).
pub fn validity(validity: &str) -> &'static str {
    match validity {
        "current" => "在有效期内",
        "expired" => "已过期",
        "not_yet_valid" => "尚未生效",
        _ => "有效期未知",
    }
}

/// A change an officer makes to a licence: its name in the console's forms and addresses
/// (`suspend`, `reinstate`, `revoke`, `renew`, `amend`), the event it makes, and its name.
pub fn licence_change(act: &str) -> Option<(EventKind, &'static str)> {
    match act {
        "suspend" => Some((EventKind::Suspended, "暂停")),
        "reinstate" => Some((EventKind::Reinstated, "恢复")),
        "revoke" => Some((EventKind::Revoked, "注销")),
        "renew" => Some((EventKind::Renewed, "延续")),
        "amend" => Some((EventKind::Amended, "变更")),
        _ => None,
    }
}

/// What the licence page says after the change `act` was made.
pub fn licence_change_done(act: &str) -> Option<&'static str> {
    match act {
        "suspend" => Some("证照已暂停。暂停期间核验结果为无效，可随时恢复。"),
        "reinstate" => Some("证照已恢复，核验结果重新为有效。"),
        "revoke" => Some("证照已注销。核验结果为无效，注销不可撤回。"),
        "renew" => Some("证照已延续，新版本已签发。"),
        "amend" => Some("证照已变更，新版本已签发，原版本保留可查。"),
        _ => None,
    }
}

/// What a change does, said on its confirmation page before it is made.
pub fn licence_change_warning(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Suspended => "暂停后，扫码核验将显示无效，直到恢复为止。",
        EventKind::Reinstated => "恢复后，扫码核验将重新显示有效。",
        EventKind::Revoked => "注销后，扫码核验将永久显示无效，且不能恢复。",
        EventKind::Renewed => "延续将签发新版本，新有效期开始后原版本即被取代。",
        EventKind::Amended => {
            "变更将签发新版本并立即取代原版本，原版本的二维码核验将显示已被取代。"
        }
        EventKind::Issued => "",
    }
}

/// A conversion job's state.
pub fn batch_state(state: BatchState) -> &'static str {
    match state {
        BatchState::Queued => "排队中",
        BatchState::Running => "转换中",
        BatchState::Done => "已完成",
        BatchState::Failed => "未完成",
        BatchState::Interrupted => "已中断",
    }
}

/// What became of a manifest row.
pub fn outcome(outcome: RowOutcome) -> &'static str {
    match outcome {
        RowOutcome::Issued => "已签发",
        RowOutcome::Skipped => "已跳过",
        RowOutcome::Rejected => "已拒绝",
    }
}

/// The name of a manifest's standard column (a field column is named by the directory's label;
/// `*` is the whole row).
pub fn manifest_column(column: &str) -> Option<&'static str> {
    Some(match column {
        "type_code" => "证照类型代码",
        "number" => "证照编号",
        "holder_name" => "持证主体名称",
        "holder_id" => "持证主体代码",
        "valid_from" => "有效期起始日期",
        "valid_until" => "有效期截止日期",
        "scan" => "扫描件",
        "*" => "整行",
        _ => return None,
    })
}

/// A rejected row's reason code (the message catalogue's `Reason::code`), as the supervision
/// figures name it; a code this list does not know is shown as it is.
pub fn rejection_reason(code: &str) -> &str {
    match code {
        "empty" => "必填项为空",
        "too_long" => "内容超长",
        "control_character" => "含控制字符",
        "not_text" => "不是文字",
        "not_whole_number" => "不是整数",
        "not_one_of" => "不是可选值",
        "not_a_date" => "日期格式有误",
        "required" => "缺必填项",
        "no_such_field" => "无此登记项",
        "until_before_from" => "有效期截止早于起始",
        "already_expired" => "证照已过期",
        "stock_number_missing" => "缺纸质证照编号",
        "stock_start_missing" => "缺纸质证照生效日期",
        "rule" => "登记项之间不符",
        "holder_id" => "持证主体代码有误",
        "identifier" | "malformed_identifier" => "编号格式有误",
        "unprintable" => "含字库无法打印的字",
        "cell_count" => "单元格数与表头不符",
        "not_a_field" => "不是该类证照的登记项",
        "repeated_in_batch" => "批次内编号重复",
        "forbidden" => "无权转换该类证照",
        "unknown_type" => "目录中无此证照类型",
        "scan_missing" => "缺扫描件",
        "scan_path" => "扫描件路径有误",
        "scan_not_in_batch" => "批次中无此扫描件",
        "scan_not_a_file" => "扫描件不是文件",
        "scan_too_large" => "扫描件过大",
        "scan_unreadable" => "扫描件无法读取",
        "scan_not_an_image" => "扫描件格式不符",
        crate::app::UNRECORDED_REASON => "未记录原因（早期批次）",
        other => other,
    }
}

/// Why sign-in was refused, as the sign-in page says it.
pub fn sign_in_refusal(refusal: &SignInRefusal) -> String {
    match refusal {
        SignInRefusal::WrongCredentials => {
            "用户名、密码或动态口令不正确。已绑定验证器的账号请输入它当前显示的 6 位数字。".into()
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

/// An alert rule's kind, as a supervisor names it.
pub fn alert_rule(kind: Option<Kind>, per: Option<Per>) -> &'static str {
    match (kind, per) {
        (Some(Kind::RevocationOutsideHours), _) => "非工作时间注销证照",
        (Some(Kind::ChangesByOneActor), _) => "一人短时间内大量注销或变更",
        (Some(Kind::RefusedAttempts), Some(Per::Address)) => "同一地址反复被拒绝",
        (Some(Kind::RefusedAttempts), _) => "同一令牌或账号反复被拒绝",
        (Some(Kind::RevokedSoonAfterIssue), _) => "签发后不久即注销",
        (Some(Kind::VerificationBurst), _) => "单个证照核验次数激增",
        (None, _) => "警报",
    }
}

/// What an alert found, in a sentence with its figures.
pub fn alert_figures(d: &AlertDetail) -> String {
    let count = d.count.unwrap_or_default();
    let more_than = d.more_than.unwrap_or_default();
    let window = d.window_minutes.unwrap_or_default();
    match d.kind {
        Some(Kind::RevocationOutsideHours) => format!(
            "{} 注销证照 {}，不在工作时间内",
            date_time(&d.at),
            d.licence.as_deref().unwrap_or("")
        ),
        Some(Kind::ChangesByOneActor) => {
            format!("{window} 分钟内注销或变更 {count} 次（超过 {more_than} 次即报警）")
        }
        Some(Kind::RefusedAttempts) => {
            format!("{window} 分钟内被拒绝 {count} 次（超过 {more_than} 次即报警）")
        }
        Some(Kind::RevokedSoonAfterIssue) => format!(
            "签发后 {} 分钟即由 {} 注销（{} 分钟内注销即报警）",
            d.minutes_after_issue.unwrap_or_default(),
            actor(d.actor.as_deref().unwrap_or("")),
            d.within_minutes.unwrap_or_default()
        ),
        Some(Kind::VerificationBurst) => {
            format!("{window} 分钟内被公开核验 {count} 次（超过 {more_than} 次即报警）")
        }
        None => String::new(),
    }
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

    #[test]
    fn a_staff_actor_is_named_by_name_and_login() {
        assert_eq!(actor("staff:li.officer:王芳"), "王芳（li.officer）");
        assert_eq!(actor("cli:root"), "cli:root");
    }

    #[test]
    fn standard_columns_are_named_in_chinese() {
        assert_eq!(manifest_column("holder_id"), Some("持证主体代码"));
        assert_eq!(manifest_column("business_scope"), None);
    }
}
