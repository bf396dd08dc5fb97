//! The frame every console page shares: the header with the person and sign-out, the navigation
//! their roles open, and the error page.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};

use super::words;
use crate::app::signin::{ConsoleSession, Stage};
use crate::app::{Action, AppError};
use crate::messages::Lang;

/// The sections of the console, each shown to those whose roles grant its action.
const SECTIONS: [(&str, &str, Option<Action>); 5] = [
    ("工作台", "/console/", None),
    (
        "存量证照转换",
        "/console/batches",
        Some(Action::ConvertBatch),
    ),
    ("证照查询", "/console/licences", Some(Action::ReadLicence)),
    ("电子监察", "/console/audit", Some(Action::ReadAudit)),
    ("系统管理", "/console/admin", Some(Action::ManageStaff)),
];

/// `text` for a URL's path segment or query value: every byte but the unreserved ASCII
/// characters (RFC 3986) percent-encoded.
pub fn url_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

/// Whether the session's roles grant `action` somewhere (its department or the service).
pub fn may(session: &ConsoleSession, action: Action) -> bool {
    crate::app::permissions::scope(&session.actor, action).is_ok()
}

/// The hidden field that carries the session's CSRF token in every form.
pub fn csrf_field(session: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
}

/// A whole page: `title`, the header and navigation of `session` (none on the sign-in pages),
/// and `main`.
pub fn frame(title: &str, session: Option<&ConsoleSession>, main: Markup) -> Markup {
    frame_with_head(title, session, html! {}, main)
}

/// [`frame`] with more in the page's head (a page that reloads itself while a job runs).
pub fn frame_with_head(
    title: &str,
    session: Option<&ConsoleSession>,
    head: Markup,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="zh-CN" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · 电子证照部门工作台" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
                (head)
            }
            body {
                a class="skip" href="#main" { "跳到正文" }
                header class="top" {
                    span class="brand" { "电子证照 · 部门工作台" }
                    @if let Some(session) = session {
                        span class="who" {
                            (session.name) " （" (roles_of(session)) "）"
                        }
                        form method="post" action="/console/logout" class="inline" {
                            (csrf_field(session))
                            button type="submit" class="link" { "退出" }
                        }
                    }
                }
                @if let Some(session) = session.filter(|s| s.stage == Stage::SignedIn) {
                    nav aria-label="主导航" {
                        ul {
                            @for (name, href, action) in SECTIONS {
                                @if action.is_none_or(|a| may(session, a)) {
                                    li { a href=(href) aria-current=[(name == title).then_some("page")] { (name) } }
                                }
                            }
                        }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

fn roles_of(session: &ConsoleSession) -> String {
    let roles: Vec<&str> = session
        .actor
        .roles
        .iter()
        .map(|r| words::role(*r))
        .collect();
    roles.join("、")
}

/// The status an error answers with on a page.
pub fn status_of(error: &AppError) -> StatusCode {
    match error.code() {
        "not_found" | "unknown_type" => StatusCode::NOT_FOUND,
        "forbidden" => StatusCode::FORBIDDEN,
        "invalid_state" | "duplicate" | "conflict" => StatusCode::CONFLICT,
        "too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "invalid_record" | "bad_input" | "malformed_identifier" => StatusCode::UNPROCESSABLE_ENTITY,
        "signer_revoked" => StatusCode::CONFLICT,
        "store_full" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A message box: what went wrong in Chinese, then the service's own words, which name the
/// field and the reason.
pub fn error_box(error: &AppError) -> Markup {
    if status_of(error).is_server_error() {
        tracing::error!(%error, "a console page failed");
    }
    let detail = match error {
        // A defect of ours is not explained to the visitor (the log has it).
        AppError::Internal(_) | AppError::Store(_) | AppError::Config(_) | AppError::Blob(_) => {
            None
        }
        // The catalogue words these in Chinese, field by field.
        AppError::Invalid(_) | AppError::BadIdentifier(_) | AppError::Explained(_) => {
            Some(error.message(Lang::Zh))
        }
        _ => Some(error.to_string()),
    };
    html! {
        div class="message error" role="alert" {
            p { (words::error(error)) }
            @if let Some(detail) = detail { p class="detail" { (detail) } }
        }
    }
}

/// A page saying what went wrong, with the navigation when signed in.
pub fn error_page(error: &AppError, session: Option<&ConsoleSession>) -> Response {
    if matches!(
        error.code(),
        "store" | "internal" | "config" | "blob_store" | "keys"
    ) {
        tracing::error!(%error, "a console page failed");
    }
    let body = html! {
        h1 { "无法完成" }
        (error_box(error))
        p { a href="/console/" { "返回工作台" } }
    };
    super::page(status_of(error), frame("无法完成", session, body))
}

/// The QR code of `text` as inline SVG (no image request, nothing a policy has to allow),
/// described to a screen reader as `label`.
pub fn qr_svg(text: &str, label: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(text.as_bytes()) else {
        return html! {};
    };
    let width = code.width();
    let quiet = 4;
    let size = width + 2 * quiet;
    let mut path = String::new();
    for (i, colour) in code.to_colors().iter().enumerate() {
        if *colour == qrcode::Color::Dark {
            let (x, y) = (i % width + quiet, i / width + quiet);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {size} {size}")) width="220" height="220" role="img" aria-label=(label) {
            rect width=(size) height=(size) fill="#fff" {}
            path d=(path) fill="#000" {}
        }
    }
}
