//! `staff …`, `token …`, `register …` and `audit verify`: who may use the service and what it
//! keeps about itself — staff accounts, API tokens, the deployment register (the public address
//! in QR codes) and the audit trail's hash chain. A room of its own because these are an administrator's commands,
//! not a clerk's.

use clap::Subcommand;

use super::print;
use crate::app::{Actor, App, AppError, Role};

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Create a staff account for the console; prints its one-time password once (it must be
    /// changed at first sign-in).
    Create {
        /// The department the person works for (omit only for a city-wide administrator).
        #[arg(long, value_name = "USCC")]
        department: Option<String>,
        /// Comma-separated roles: clerk, officer, supervisor, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// What the person signs in with: 3–32 of a-z, 0-9, '.', '_', '-'.
        #[arg(long)]
        login: String,
        /// The person's name (姓名), as the console and the audit trail show it.
        #[arg(long)]
        name: String,
    },
    /// The accounts you administer: your department's, or all for a city-wide administrator.
    List,
    /// Disable an account: it can no longer sign in, and its sessions end.
    Disable {
        /// The account's login.
        login: String,
    },
    /// Reset an account: a new one-time password (printed once), unlocked and enabled, its
    /// second factor cleared so that the person enrols again, its sessions ended.
    Reset {
        /// The account's login.
        login: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token for a department with roles (clerk, officer, library, supervisor, admin);
    /// prints it once.
    Create {
        /// The issuing department the token acts for (omit for a library or admin token).
        #[arg(long, value_name = "USCC")]
        department: Option<String>,
        /// Comma-separated roles: clerk, officer, library, supervisor, admin.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Who holds the token (shown in the audit trail).
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// The tokens you administer, newest first (never the tokens themselves).
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id, as `token create` printed it.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegisterCommand {
    /// The public address (VERIFY_BASE) new QR codes and PDFs are made with.
    Show,
    /// Change the public address of new QR codes and PDFs; existing versions keep theirs.
    SetVerifyBase {
        /// The service's public URL, e.g. https://zz.example.gov.cn
        url: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; names the first broken record. With a checkpoint the supervision
    /// platform holds (or a head written down), also that the trail still extends it: a deleted
    /// tail or a rewritten chain is named. Exit 0 when intact, 2 when not.
    Verify {
        /// A checkpoint (COSE_Sign1 bytes or their base64), checked against the supervision key.
        #[arg(long, value_name = "FILE", conflicts_with = "expect_head")]
        checkpoint: Option<std::path::PathBuf>,
        /// A head written down earlier: the seq and the record's hash.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
}

/// `staff …`: creates an account (printing its one-time password once) or lists accounts.
pub(super) async fn staff(
    app: &App,
    actor: &Actor,
    command: StaffCommand,
    json: bool,
) -> Result<i32, AppError> {
    match command {
        StaffCommand::Create {
            department,
            roles,
            login,
            name,
        } => {
            let roles = parse_roles(&roles)?;
            let created = app
                .create_staff(actor, &login, &name, department.as_deref(), &roles)
                .await?;
            print_one_time_password(json, &created);
        }
        StaffCommand::Disable { login } => {
            app.disable_staff(actor, &login).await?;
            print(json, &serde_json::json!({"disabled": login}), || {
                format!("staff {login} disabled; its sessions have ended")
            });
        }
        StaffCommand::Reset { login } => {
            let created = app.reset_staff(actor, &login).await?;
            print_one_time_password(json, &created);
        }
        StaffCommand::List => {
            let accounts = app.staff(actor).await?;
            print(json, &accounts, || {
                accounts
                    .iter()
                    .map(|a| {
                        format!(
                            "{}\t{}\t{}\t{}",
                            a.login,
                            a.name,
                            a.department.as_deref().unwrap_or("-"),
                            a.roles
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(0)
}

fn print_one_time_password(json: bool, created: &crate::app::CreatedStaff) {
    print(json, created, || {
        format!(
            "staff {} ({}) — one-time password, shown once; it must be changed at first \
             sign-in:\n{}",
            created.account.login, created.account.name, created.one_time_password
        )
    });
}

/// `token …`: creates (and prints once) or revokes an API token.
pub(super) async fn tokens(
    app: &App,
    actor: &Actor,
    command: TokenCommand,
    json: bool,
) -> Result<i32, AppError> {
    match command {
        TokenCommand::Create {
            department,
            roles,
            name,
        } => {
            let roles = parse_roles(&roles)?;
            let (id, token) = app
                .create_token(actor, &name, department.as_deref(), &roles)
                .await?;
            let created = serde_json::json!({"id": id, "token": token, "name": name, "department": department});
            print(json, &created, || {
                format!("token {id} ({name}) — shown once, keep it safe:\n{token}")
            });
        }
        TokenCommand::List => {
            let tokens = app.tokens(actor).await?;
            print(json, &tokens, || {
                tokens
                    .iter()
                    .map(|t| {
                        format!(
                            "{}\t{}\t{}\t{}\t{}",
                            t.id,
                            t.name,
                            t.department.as_deref().unwrap_or("-"),
                            t.roles,
                            t.revoked_at.as_deref().map_or("active", |_| "revoked")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        TokenCommand::Revoke { id } => {
            app.revoke_token(actor, id).await?;
            print(json, &serde_json::json!({"revoked": id}), || {
                format!("token {id} revoked")
            });
        }
    }
    Ok(0)
}

fn parse_roles(names: &[String]) -> Result<Vec<Role>, AppError> {
    names
        .iter()
        .map(|r| {
            Role::parse(r.trim())
                .ok_or_else(|| AppError::BadInput(format!("roles: unknown role {r:?}")))
        })
        .collect()
}

/// `register …`: shows or changes the public address new versions are made with.
pub(super) async fn register(
    app: &App,
    actor: &Actor,
    command: RegisterCommand,
    json: bool,
) -> Result<i32, AppError> {
    match command {
        RegisterCommand::Show => {
            let verify_base = app.verify_base().await?;
            print(
                json,
                &serde_json::json!({"verify_base": verify_base}),
                || verify_base.clone(),
            );
        }
        RegisterCommand::SetVerifyBase { url } => {
            let change = app.set_verify_base(actor, &url).await?;
            print(json, &change, || {
                format!(
                    "verify base {} -> {}\n{}",
                    change.previous, change.verify_base, change.existing_versions
                )
            });
        }
    }
    Ok(0)
}

/// `audit verify`: exit 0 when the hash chain is intact (and extends the checkpoint or head
/// given), 2 when it does not.
pub(super) async fn audit(app: &App, command: AuditCommand, json: bool) -> Result<i32, AppError> {
    let AuditCommand::Verify {
        checkpoint,
        expect_head,
    } = command;
    let expected = match (checkpoint, expect_head) {
        (Some(path), _) => {
            let bytes = std::fs::read(&path)
                .map_err(|e| AppError::BadInput(format!("{}: {e}", path.display())))?;
            let checkpoint = app.read_checkpoint(&bytes)?;
            Some((checkpoint.seq, checkpoint.hash))
        }
        (None, Some(head)) => Some(parse_head(&head)?),
        (None, None) => None,
    };
    let Some((seq, hash)) = expected else {
        let report = app.store.verify_audit().await?;
        print(json, &report, || match &report.first_break {
            None => format!(
                "audit trail intact: {} records, head {}",
                report.records, report.head
            ),
            Some(b) => format!("audit trail BROKEN at record {}: {}", b.seq, b.reason),
        });
        return Ok(if report.first_break.is_none() { 0 } else { 2 });
    };
    let report = app.check_audit_against(seq, &hash).await?;
    print(json, &report, || match &report.problem {
        None => format!(
            "audit trail intact: {} records, extends record {seq} of the checkpoint; head {}",
            report.chain.records, report.chain.head
        ),
        Some(problem) => format!("audit trail does NOT extend the checkpoint: {problem}"),
    });
    Ok(if report.problem.is_none() { 0 } else { 2 })
}

/// `SEQ:HASH` as `--expect-head` takes it.
fn parse_head(text: &str) -> Result<(i64, String), AppError> {
    let bad = || {
        AppError::BadInput(format!(
            "--expect-head: {text:?} is not SEQ:HASH (a record number, a colon, 64 hex digits)"
        ))
    };
    let (seq, hash) = text.split_once(':').ok_or_else(bad)?;
    let seq: i64 = seq.parse().ok().filter(|s| *s > 0).ok_or_else(bad)?;
    let hash = hash.to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok((seq, hash))
}
