//! The forms of 延续 (renew: a new validity) and 变更 (amend: the holder's name and the type's
//! fields, filled in with the licence's current values), and reading them back into the
//! [`Renewal`] and [`Amendment`] the API's operations take, with what changes, for the
//! confirmation page. The operations check the values themselves; this only refuses what cannot
//! be a value at all (a date that is no date) and an amendment that changes nothing.

use maud::{html, Markup};

use super::layout::csrf_field;
use super::licence_actions::{change_href, reason_field, value_of, Filled};
use super::words;
use crate::app::signin::ConsoleSession;
use crate::app::{Amendment, AppError, LicenceView, Renewal, Result};
use crate::directory::{FieldType, LicenceType};
use crate::licence::EventKind;
use crate::time_util;

/// What changes, for the confirmation page: (what, before, after).
pub type Rows = Vec<(String, String, String)>;

/// The renewal form: the new validity's start and end (each may be left to the rules).
pub fn renew_form(
    session: &ConsoleSession,
    shown: &LicenceView,
    filled: Option<&Filled>,
) -> Markup {
    let value = |name| Filled::value(filled, "renew", name).unwrap_or_default();
    html! {
        details class="card" open[filled.is_some_and(|f| f.act == "renew")] {
            summary { b { "延续" } span class="hint" { "（签发新有效期的新版本）" } }
            form method="post" action=(change_href(&shown.licence_id)) {
            (csrf_field(session))
            input type="hidden" name="act" value="renew";
            p class="hint" { "现有效期：" (validity(shown)) }
            label for="renew-from" { "新有效期自" span class="hint" { "（留空则自原有效期届满次日起）" } }
            input id="renew-from" name="valid_from" type="date" value=(value("valid_from"));
            label for="renew-until" { "新有效期至" span class="hint" { "（留空则按证照类型的默认有效期）" } }
            input id="renew-until" name="valid_until" type="date" value=(value("valid_until"));
            (reason_field("renew", "延续", EventKind::Renewed, filled))
            div { button type="submit" { "延续…" } }
        }
        }
    }
}

fn validity(shown: &LicenceView) -> String {
    let until = shown
        .version
        .valid_until
        .as_deref()
        .map_or_else(|| "长期".to_string(), words::date);
    format!("{} 至 {until}", words::date(&shown.version.valid_from))
}

/// The renewal a posted form asks for.
pub fn read_renewal(
    values: &[(String, String)],
    shown: &LicenceView,
    reason: Option<String>,
) -> Result<(Renewal, Rows)> {
    let date = |name: &str| -> Result<Option<String>> {
        let text = value_of(values, name).unwrap_or_default().trim();
        if text.is_empty() {
            return Ok(None);
        }
        time_util::parse_date(text)
            .map(|d| Some(time_util::format_date(d)))
            .ok_or_else(|| {
                AppError::BadInput(format!("{name}: {text:?} is not a date (YYYY-MM-DD)"))
            })
    };
    let valid_from = date("valid_from")?;
    let valid_until = date("valid_until")?;
    let after = format!(
        "{} 至 {}",
        valid_from
            .as_deref()
            .map_or_else(|| "原有效期届满次日".to_string(), words::date),
        valid_until
            .as_deref()
            .map_or_else(|| "按默认有效期".to_string(), words::date),
    );
    let rows = vec![("有效期".to_string(), validity(shown), after)];
    let renewal = Renewal {
        valid_from,
        valid_until,
        reason,
    };
    Ok((renewal, rows))
}

/// The current value of a field of the latest version, as text ("" when it has none).
fn current(shown: &LicenceView, key: &str) -> String {
    shown
        .version
        .fields
        .get(key)
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// The amendment form: the holder's name and every field of the type, as they are now.
pub fn amend_form(
    session: &ConsoleSession,
    shown: &LicenceView,
    licence_type: &LicenceType,
    filled: Option<&Filled>,
) -> Markup {
    let value = |name: &str, now: String| Filled::value(filled, "amend", name).unwrap_or(now);
    html! {
        details class="card" open[filled.is_some_and(|f| f.act == "amend")] {
            summary { b { "变更" } span class="hint" { "（修改持证人名称或证照内容，签发新版本）" } }
            form method="post" action=(change_href(&shown.licence_id)) {
            (csrf_field(session))
            input type="hidden" name="act" value="amend";
            p class="hint" { "变更持证人名称或证照内容；证照编号、持证人证件号码和有效期不变（有效期请用延续）。" }
            label for="amend-holder" { "持证人名称" }
            input id="amend-holder" name="holder_name" required maxlength="200"
                value=(value("holder_name", shown.version.holder.name.clone()));
            @for def in &licence_type.fields {
                @let id = format!("amend-{}", def.key);
                @let name = format!("field.{}", def.key);
                @let now = value(&name, current(shown, &def.key));
                label for=(id) {
                    (def.label)
                    @if def.required { span class="hint" { "（必填）" } }
                }
                @match def.field_type {
                    FieldType::Enum => {
                        select id=(id) name=(name) required[def.required] {
                            @if !def.required { option value="" { "（无）" } }
                            @for option in &def.values {
                                option value=(option) selected[*option == now] { (option) }
                            }
                        }
                    }
                    FieldType::Date => {
                        input id=(id) name=(name) type="date" value=(now) required[def.required];
                    }
                    FieldType::Integer => {
                        input id=(id) name=(name) inputmode="numeric" value=(now) required[def.required];
                    }
                    _ => {
                        input id=(id) name=(name) value=(now) required[def.required]
                            maxlength=[def.max_len];
                    }
                }
            }
            (reason_field("amend", "变更", EventKind::Amended, filled))
            div { button type="submit" { "变更…" } }
        }
        }
    }
}

/// The amendment a posted form asks for: what differs from the latest version.
pub fn read_amendment(
    values: &[(String, String)],
    shown: &LicenceView,
    licence_type: &LicenceType,
    reason: Option<String>,
) -> Result<(Amendment, Rows)> {
    let mut rows = Rows::new();
    let shown_or_none = |text: &str| {
        if text.is_empty() {
            "（无）".to_string()
        } else {
            text.to_string()
        }
    };
    let holder_name = value_of(values, "holder_name")
        .map(str::trim)
        .filter(|name| *name != shown.version.holder.name)
        .map(str::to_string);
    if let Some(name) = &holder_name {
        rows.push((
            "持证人名称".into(),
            shown.version.holder.name.clone(),
            shown_or_none(name),
        ));
    }
    let mut fields = std::collections::BTreeMap::new();
    for def in &licence_type.fields {
        let Some(given) = value_of(values, &format!("field.{}", def.key)).map(str::trim) else {
            continue;
        };
        let now = current(shown, &def.key);
        if given != now {
            rows.push((def.label.clone(), shown_or_none(&now), shown_or_none(given)));
            fields.insert(def.key.clone(), serde_json::Value::from(given));
        }
    }
    if rows.is_empty() {
        return Err(AppError::BadInput(
            "the amendment changes nothing: change the holder's name or a field".into(),
        ));
    }
    let amendment = Amendment {
        holder_name,
        fields,
        reason,
    };
    Ok((amendment, rows))
}
