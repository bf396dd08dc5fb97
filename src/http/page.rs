//! The verification page `/V/{B32}` (SPEC §7): what a phone camera opens. A mobile page in
//! Chinese, a clear green 有效 or red 无效 with the reason, public fields only, the holder id
//! masked. No JavaScript, nothing loaded from other hosts; maud escapes every value. A link whose
//! code is not base32 gets a Chinese 404 page, a client over the limit a Chinese 429 page.

use maud::{html, Markup, DOCTYPE};

use crate::licence::EventKind;
use crate::time_util;
use crate::verify::{Outcome, Verification};

const STYLE: &str = r#"
* { box-sizing: border-box; }
body { margin: 0; font-family: -apple-system, "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
       background: #f2f3f5; color: #1d2129; }
.state { padding: 28px 20px 22px; text-align: center; color: #fff; }
.state.ok { background: #067647; }
.state.bad { background: #b42318; }
.mark { font-size: 56px; line-height: 1; font-weight: 700; }
.state h1 { margin: 8px 0 4px; font-size: 30px; letter-spacing: 4px; }
.state p { margin: 0; font-size: 17px; opacity: .95; }
main { padding: 14px; max-width: 560px; margin: 0 auto; }
.card { background: #fff; border-radius: 10px; padding: 16px 18px; margin-bottom: 12px;
        box-shadow: 0 1px 3px rgba(0,0,0,.06); }
.card h2 { margin: 0 0 10px; font-size: 19px; }
dl { margin: 0; display: grid; grid-template-columns: 7.5em 1fr; row-gap: 9px; column-gap: 10px; font-size: 15px; }
dt { color: #4e5969; }
dd { margin: 0; overflow-wrap: anywhere; }
.note { color: #4e5969; font-size: 12px; line-height: 1.6; overflow-wrap: anywhere; }
"#;

/// `2026-11-29` as 2026年11月29日.
fn chinese_date(iso: &str) -> String {
    match time_util::parse_date(iso) {
        Some(d) => format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day()),
        None => iso.to_string(),
    }
}

fn headline(v: &Verification) -> (&'static str, &'static str, &'static str) {
    if v.result == Outcome::Valid {
        ("ok", "✓", "有效")
    } else {
        ("bad", "✗", "无效")
    }
}

/// The frame of every page: the coloured headline (`class`, `mark`, `word`, `line`) over `main`.
fn frame(class: &str, mark: &str, word: &str, line: &str, result: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { "电子证照核验 · " (word) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header class={ "state " (class) } data-result=(result) {
                    div class="mark" { (mark) }
                    h1 { (word) }
                    p { (line) }
                }
                main { (main) }
            }
        }
    }
}

/// The page for a link whose code is not base32 at all: no QR code of a licence opens it (404).
pub fn not_found() -> Markup {
    let main = html! {
        section class="card" {
            h2 { "无法识别此核验链接" }
            p { "链接中的核验码不完整或有误。请直接用手机相机扫描证照上的二维码，或向发证机关核实。" }
        }
    };
    frame("bad", "?", "无法识别", "核验链接有误", "not_found", main)
}

/// The page for a client over the verification limit (429).
pub fn too_many_requests(retry_after_seconds: u64) -> Markup {
    let main = html! {
        section class="card" {
            h2 { "核验过于频繁" }
            p { "此网络的核验次数过多，请在 " (retry_after_seconds) " 秒后再试。" }
        }
    };
    frame(
        "bad",
        "…",
        "请稍后再试",
        "核验过于频繁",
        "rate_limited",
        main,
    )
}

/// Renders the page for a verification result.
pub fn render(v: &Verification) -> Markup {
    let (class, mark, word) = headline(v);
    let checked_at = time_util::now().to_offset(time_util::CST);
    let main = html! {
        @if let Some(l) = &v.licence {
            section class="card" {
                h2 { (l.name) }
                dl {
                    @if let Some(number) = &l.number { dt { "证照编号" } dd { (number) } }
                    dt { "持证主体" } dd { (l.holder_name) }
                    dt { "证件号码" } dd { (l.holder_id) }
                    dt { "有效期" }
                    dd {
                        (chinese_date(&l.valid_from)) " 至 "
                        @match &l.valid_until { Some(u) => (chinese_date(u)), None => "长期" }
                    }
                    @for f in &l.fields { dt { (f.label) } dd { (f.value) } }
                    @if let Some(d) = &v.department { dt { "发证机关" } dd { (d.name) } }
                    dt { "签发日期" } dd { (chinese_date(&l.issued_at[..10])) }
                    dt { "版本" }
                    dd {
                        "第 " (l.version) " 版"
                        @if let Some(c) = &v.current {
                            @if c.version != l.version { "（当前为第 " (c.version) " 版）" }
                        }
                    }
                    @if let Some(p) = v.current.as_ref().and_then(|c| c.pending.as_ref()) {
                        @if p.version != l.version {
                            dt { (pending_word(p.kind)) }
                            dd { "第 " (p.version) " 版自 " (chinese_date(&p.valid_from)) "起生效" }
                        }
                    }
                }
            }
        } @else {
            section class="card" {
                h2 { "无法核验" }
                p { "此二维码不是本县签发的有效电子证照，或已被篡改。请向持证人或发证机关核实。" }
            }
        }
        p class="note" {
            "核验时间 " (checked_at.date()) " " (format!("{:02}:{:02}", checked_at.hour(), checked_at.minute())) "（北京时间）"
            @if let Some(l) = &v.licence { br; "证照标识 " (l.id) }
            @if let Some(kid) = &v.kid { br; "签名证书 " (kid) }
        }
    };
    frame(class, mark, word, &v.line_zh(), v.result.as_str(), main)
}

/// How the page names a version still to come: a renewal (已延续) or an amendment.
fn pending_word(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Renewed => "已延续",
        _ => "已变更",
    }
}
