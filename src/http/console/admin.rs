//! 系统管理 (admins): staff accounts (create, showing the one-time password once; disable;
//! reset), signer keys (rotate; revoke, with a confirmation step) and the licence directory —
//! through the same operations as `elicence staff …` and `elicence keys …`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{csrf_field, error_box, error_page, frame, may, status_of};
use super::session::{check_csrf, Signed};
use super::{page, see_other, words, ConsoleForm, SharedState};
use crate::app::signin::ConsoleSession;
use crate::app::{Action, AppError, CreatedStaff, Role};
use crate::signing::cert::Purpose;

const TITLE: &str = "系统管理";
/// The roles a person may be given (the library's is not a person's).
const PERSON_ROLES: [Role; 4] = [Role::Clerk, Role::Officer, Role::Supervisor, Role::Admin];
/// The roles a token may be given.
const TOKEN_ROLES: [Role; 5] = [
    Role::Clerk,
    Role::Officer,
    Role::Library,
    Role::Supervisor,
    Role::Admin,
];

pub async fn overview(State(state): State<SharedState>, Signed(session): Signed) -> Response {
    overview_with(&state, &session, None, StatusCode::OK).await
}

/// The page, with `notice` (a result or an error box) above it.
async fn overview_with(
    state: &SharedState,
    session: &ConsoleSession,
    notice: Option<Markup>,
    status: StatusCode,
) -> Response {
    let staff = match state.app.staff(&session.actor).await {
        Ok(staff) => staff,
        Err(e) => return error_page(&e, Some(session)),
    };
    let department = session.actor.department.as_ref();
    let departments: Vec<_> = state
        .app
        .directory
        .issuers()
        .into_iter()
        .filter(|i| department.is_none_or(|d| d == &i.uscc))
        .collect();
    let tokens = if may(session, Action::ManageTokens) {
        match state.app.tokens(&session.actor).await {
            Ok(tokens) => Some(tokens),
            Err(e) => return error_page(&e, Some(session)),
        }
    } else {
        None
    };
    let keys = may(session, Action::ManageKeys).then(|| state.app.trust_list().signers);
    // Revoking a key undoes every licence it signed: a city-wide admin's act only, as are
    // making and revoking tokens (a department's admin sees its tokens).
    let city_wide = |action| crate::app::permissions::check(&session.actor, action, None).is_ok();
    let may_revoke_keys = city_wide(Action::ManageKeys);
    let may_make_tokens = city_wide(Action::ManageTokens);
    let body = html! {
        h1 { (TITLE) }
        @if let Some(notice) = notice { (notice) }
        section aria-labelledby="staff" {
            h2 id="staff" { "人员账号" }
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "用户名" } th scope="col" { "姓名" } th scope="col" { "部门" } th scope="col" { "角色" } th scope="col" { "状态" } th scope="col" { "操作" } } }
                tbody {
                    @for a in &staff {
                        tr {
                            td { (a.login) } td { (a.name) }
                            td { (a.department.as_deref().unwrap_or("全县")) }
                            td { (role_words(&a.roles)) }
                            td { @if a.disabled_at.is_some() { span class="tag bad" { "已停用" } } @else { span class="tag ok" { "正常" } } }
                            td {
                                form method="post" action=(format!("/console/admin/staff/{}/reset", a.login)) class="inline" {
                                    (csrf_field(session)) button type="submit" class="link" { "重置密码" }
                                }
                                @if a.disabled_at.is_none() {
                                    " · "
                                    form method="post" action=(format!("/console/admin/staff/{}/disable", a.login)) class="inline" {
                                        (csrf_field(session)) button type="submit" class="link" { "停用" }
                                    }
                                }
                            }
                        }
                    }
                }
            } }
            form method="post" action="/console/admin/staff" class="card stack" {
                h3 { "新建账号" }
                (csrf_field(session))
                label for="login" { "用户名" span class="hint" { "（3–32 位小写字母、数字、. _ -，字母开头）" } }
                input id="login" name="login" required maxlength="32";
                label for="name" { "姓名" }
                input id="name" name="name" required maxlength="50";
                label for="department" { "部门" }
                select id="department" name="department" {
                    @for d in &departments { option value=(d.uscc) { (d.name) } }
                    @if department.is_none() { option value="" { "全县（仅管理员、监察员）" } }
                }
                fieldset {
                    legend { "角色" }
                    @for role in PERSON_ROLES {
                        label { input type="checkbox" name=(format!("role_{}", role.as_str())) value="1"; " " (words::role(role)) }
                    }
                }
                button type="submit" { "创建账号" }
            }
        }
        @if let Some(tokens) = tokens {
            section aria-labelledby="tokens" {
                h2 id="tokens" { "接口令牌" }
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "编号" } th scope="col" { "名称" } th scope="col" { "部门" } th scope="col" { "角色" } th scope="col" { "状态" } th scope="col" { "操作" } } }
                    tbody {
                        @for t in &tokens {
                            tr {
                                td { (t.id) } td { (t.name) }
                                td { (t.department.as_deref().unwrap_or("全县")) }
                                td { (role_words(&t.roles)) }
                                td { @if t.revoked_at.is_some() { span class="tag bad" { "已吊销" } } @else { span class="tag ok" { "有效" } } }
                                td { @if t.revoked_at.is_none() && may_make_tokens {
                                    form method="post" action=(format!("/console/admin/tokens/{}/revoke", t.id)) class="inline" {
                                        (csrf_field(session)) button type="submit" class="link" { "吊销" }
                                    }
                                } }
                            }
                        }
                    }
                } }
                @if may_make_tokens { form method="post" action="/console/admin/tokens" class="card stack" {
                    h3 { "新建令牌" }
                    (csrf_field(session))
                    label for="token-name" { "名称（持有者，如“窗口一”“市证照库”）" }
                    input id="token-name" name="name" required maxlength="50";
                    label for="token-department" { "部门" }
                    select id="token-department" name="department" {
                        @for d in &departments { option value=(d.uscc) { (d.name) } }
                        @if department.is_none() { option value="" { "无部门（市证照库、全县管理员或监察员）" } }
                    }
                    fieldset {
                        legend { "角色" }
                        @for role in TOKEN_ROLES {
                            label { input type="checkbox" name=(format!("role_{}", role.as_str())) value="1"; " " (words::role(role)) }
                        }
                    }
                    button type="submit" { "创建令牌" }
                } }
            }
        }
        @if let Some(keys) = keys {
            section aria-labelledby="keys" {
                h2 id="keys" { "签章密钥" }
                div class="table-wrap" { table {
                    thead { tr { th scope="col" { "密钥标识" } th scope="col" { "部门" } th scope="col" { "状态" } th scope="col" { "操作" } } }
                    tbody {
                        @for k in keys.iter().filter(|k| k.purpose == Purpose::Licence && department.is_none_or(|d| Some(d.as_str()) == k.uscc.as_deref())) {
                            tr {
                                td { code { (k.kid) } } td { (k.department) }
                                td { (format!("{:?}", k.status).to_lowercase()) @if let Some(at) = &k.revoked_at { " （" (words::date_time(at)) " 吊销）" } }
                                td { @if k.revoked_at.is_none() && may_revoke_keys {
                                    form method="post" action="/console/admin/keys/revoke" class="inline" {
                                        (csrf_field(session)) input type="hidden" name="kid" value=(k.kid);
                                        button type="submit" class="link" { "吊销" }
                                    }
                                } }
                            }
                        }
                    }
                } }
                form method="post" action="/console/admin/keys/rotate" class="card stack" {
                    (csrf_field(session))
                    label for="rotate-department" { "为部门更换签章密钥（旧密钥停止签发，仍可核验）" }
                    select id="rotate-department" name="department" {
                        @for d in &departments { option value=(d.uscc) { (d.name) } }
                    }
                    button type="submit" { "更换密钥" }
                }
            }
        }
        section aria-labelledby="directory" {
            h2 id="directory" { "证照目录" }
            div class="table-wrap" { table {
                thead { tr { th scope="col" { "类型代码" } th scope="col" { "名称" } th scope="col" { "发证部门" } th scope="col" { "默认有效期" } } }
                tbody {
                    @for t in state.app.directory.types() {
                        tr { td { (t.code.to_string()) } td { (t.name) } td { (t.issuer.name) } td { (t.default_validity.to_string()) } }
                    }
                }
            } }
        }
    };
    page(status, frame(TITLE, Some(session), body))
}

fn role_words(roles: &str) -> String {
    roles
        .split(',')
        .filter_map(Role::parse)
        .map(words::role)
        .collect::<Vec<_>>()
        .join("、")
}

/// The new-account form; each role is a checkbox named `role_{role}`.
#[derive(Deserialize)]
pub struct NewStaffForm {
    csrf: String,
    login: String,
    name: String,
    #[serde(default)]
    department: String,
    #[serde(flatten)]
    checked: std::collections::HashMap<String, String>,
}

pub async fn create_staff(
    State(state): State<SharedState>,
    Signed(session): Signed,
    ConsoleForm(form): ConsoleForm<NewStaffForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.create").await?;
    let roles: Vec<Role> = PERSON_ROLES
        .into_iter()
        .filter(|r| form.checked.contains_key(&format!("role_{}", r.as_str())))
        .collect();
    let department = Some(form.department.as_str()).filter(|d| !d.is_empty());
    let created = state
        .app
        .create_staff(
            &session.actor,
            form.login.trim(),
            &form.name,
            department,
            &roles,
        )
        .await;
    Ok(match created {
        Ok(created) => {
            overview_with(
                &state,
                &session,
                Some(password_notice(&created)),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => failed(&state, &session, &e).await,
    })
}

/// The new-token form; each role is a checkbox named `role_{role}`.
#[derive(Deserialize)]
pub struct NewTokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    department: String,
    #[serde(flatten)]
    checked: std::collections::HashMap<String, String>,
}

pub async fn create_token(
    State(state): State<SharedState>,
    Signed(session): Signed,
    ConsoleForm(form): ConsoleForm<NewTokenForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "token.create").await?;
    let roles: Vec<Role> = TOKEN_ROLES
        .into_iter()
        .filter(|r| form.checked.contains_key(&format!("role_{}", r.as_str())))
        .collect();
    let department = Some(form.department.as_str()).filter(|d| !d.is_empty());
    let name = form.name.trim();
    let created = state
        .app
        .create_token(&session.actor, name, department, &roles)
        .await;
    Ok(match created {
        Ok((id, token)) => {
            let notice = html! {
                div class="message ok" role="status" {
                    p { "已创建令牌 " (id) "（" (name) "）。令牌只显示这一次，请复制后以安全方式交给使用方：" }
                    p { code class="secret" { (token) } }
                }
            };
            overview_with(&state, &session, Some(notice), StatusCode::OK).await
        }
        Err(e) => failed(&state, &session, &e).await,
    })
}

pub async fn revoke_token(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(id): Path<i64>,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "token.revoke").await?;
    if form.confirm != "yes" {
        let what = html! { p { "吊销接口令牌 " strong { (id) } "：使用它的系统将立即无法访问，不可撤回。" } };
        return Ok(confirmation(
            &session,
            what,
            &format!("/console/admin/tokens/{id}/revoke"),
            &[],
        ));
    }
    Ok(match state.app.revoke_token(&session.actor, id).await {
        Ok(()) => see_other("/console/admin"),
        Err(e) => failed(&state, &session, &e).await,
    })
}

/// The one-time password, shown once on the page that answers the form (never stored, never
/// in a URL).
fn password_notice(created: &CreatedStaff) -> Markup {
    html! {
        div class="message ok" role="status" {
            p { "已为 " (created.account.name) "（" (created.account.login) "）设置一次性密码，只显示这一次，请当面或以安全方式交给本人；首次登录须修改：" }
            p { code class="secret" { (created.one_time_password) } }
        }
    }
}

async fn failed(state: &SharedState, session: &ConsoleSession, error: &AppError) -> Response {
    overview_with(state, session, Some(error_box(error)), status_of(error)).await
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    department: String,
}

/// The confirmation step of an act that cannot be undone from here: what it is, 确认 and 取消.
fn confirmation(
    session: &ConsoleSession,
    what: Markup,
    action: &str,
    hidden: &[(&str, &str)],
) -> Response {
    let body = html! {
        h1 { "请确认" }
        div class="card" {
            (what)
            form method="post" action=(action) {
                (csrf_field(session))
                @for (name, value) in hidden { input type="hidden" name=(name) value=(value); }
                input type="hidden" name="confirm" value="yes";
                button type="submit" class="danger" { "确认" }
                " "
                a href="/console/admin" { "取消" }
            }
        }
    };
    page(StatusCode::OK, frame(TITLE, Some(session), body))
}

pub async fn disable_staff(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(login): Path<String>,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.disable").await?;
    if form.confirm != "yes" {
        let what = html! { p { "停用账号 " strong { (login) } "：其登录立即失效，之后不能再登录（可通过重置恢复）。" } };
        return Ok(confirmation(
            &session,
            what,
            &format!("/console/admin/staff/{login}/disable"),
            &[],
        ));
    }
    Ok(
        match state.app.disable_staff(&session.actor, &login).await {
            Ok(()) => see_other("/console/admin"),
            Err(e) => failed(&state, &session, &e).await,
        },
    )
}

pub async fn reset_staff(
    State(state): State<SharedState>,
    Signed(session): Signed,
    Path(login): Path<String>,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "staff.reset").await?;
    if form.confirm != "yes" {
        let what = html! { p { "重置账号 " strong { (login) } "：生成新的一次性密码，解除锁定，清除其动态口令（须重新绑定），其登录立即失效。" } };
        return Ok(confirmation(
            &session,
            what,
            &format!("/console/admin/staff/{login}/reset"),
            &[],
        ));
    }
    Ok(match state.app.reset_staff(&session.actor, &login).await {
        Ok(created) => {
            overview_with(
                &state,
                &session,
                Some(password_notice(&created)),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => failed(&state, &session, &e).await,
    })
}

pub async fn rotate_key(
    State(state): State<SharedState>,
    Signed(session): Signed,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "key.rotate").await?;
    if form.confirm != "yes" {
        let what = html! { p { "为部门 " strong { (form.department) } " 生成新的签章密钥：此后签发都用新密钥，旧密钥签发的证照仍可核验。" } };
        return Ok(confirmation(
            &session,
            what,
            "/console/admin/keys/rotate",
            &[("department", &form.department)],
        ));
    }
    Ok(
        match state.app.rotate_key(&session.actor, &form.department).await {
            Ok(kid) => {
                let notice = html! { div class="message ok" role="status" { p { "已生成新密钥 " code { (kid) } "。" } } };
                overview_with(&state, &session, Some(notice), StatusCode::OK).await
            }
            Err(e) => failed(&state, &session, &e).await,
        },
    )
}

pub async fn revoke_key(
    State(state): State<SharedState>,
    Signed(session): Signed,
    ConsoleForm(form): ConsoleForm<ConfirmForm>,
) -> Result<Response, Response> {
    check_csrf(&state, &session, &form.csrf, "key.revoke").await?;
    if form.confirm != "yes" {
        let what = html! { p { "吊销签章密钥 " code { (form.kid) } "：它签发的所有证照核验时都将显示为无效（签章密钥已吊销），不可撤回。仅在密钥泄露时使用。" } };
        return Ok(confirmation(
            &session,
            what,
            "/console/admin/keys/revoke",
            &[("kid", &form.kid)],
        ));
    }
    Ok(
        match state.app.revoke_key(&session.actor, &form.kid).await {
            Ok(()) => see_other("/console/admin"),
            Err(e) => failed(&state, &session, &e).await,
        },
    )
}
