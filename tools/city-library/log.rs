//! What the city library checks of the county's transparency log (SPEC §16), holding nothing but
//! the trust list and the trees it has seen:
//! - every event's receipt proves the event's entry (its record, or its status statement) in a
//!   tree the county's log key signed; the tree (size, root) is kept;
//! - two different roots for one size are a fork;
//! - `log-check` fetches the county's latest head and a consistency proof from every kept tree
//!   not yet linked to a later one: a tree the county's log no longer extends had an entry
//!   removed or its past rewritten.
//!
//! Every problem is kept in `log_problems` and reported; nothing is dropped.

use anyhow::{bail, Context};
use base64::Engine;
use elicence::signing::trust::TrustStore;
use elicence::transparency::head::TreeHead;
use elicence::transparency::receipt::Receipt;
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

pub async fn create_tables(db: &SqlitePool) -> anyhow::Result<()> {
    for statement in [
        "CREATE TABLE IF NOT EXISTS log_trees (
            size INTEGER NOT NULL, root BLOB NOT NULL, linked INTEGER NOT NULL DEFAULT 0,
            seen_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (size, root))",
        "CREATE TABLE IF NOT EXISTS log_problems (
            id INTEGER PRIMARY KEY, problem TEXT NOT NULL,
            found_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    ] {
        sqlx::query(statement).execute(db).await?;
    }
    // Receivers from before the log: their events were never checked against it.
    let has_logged = sqlx::query("SELECT 1 FROM pragma_table_info('events') WHERE name = 'logged'")
        .fetch_optional(db)
        .await?
        .is_some();
    if !has_logged {
        sqlx::query("ALTER TABLE events ADD COLUMN logged INTEGER NOT NULL DEFAULT 0")
            .execute(db)
            .await?;
    }
    Ok(())
}

/// Whether an event's receipt proves its entry in a tree the county signed; the tree is kept
/// (and a fork reported) in `tx`. The problem, when it does not, is kept too.
pub async fn check_receipt(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    trust: &TrustStore,
    seq: i64,
    entry: &[u8],
    receipt: Option<&str>,
) -> anyhow::Result<bool> {
    let checked = receipt
        .context("it carries no receipt")
        .and_then(|r| {
            base64::engine::general_purpose::STANDARD
                .decode(r)
                .context("its receipt is not base64")
        })
        .and_then(|bytes| Ok(Receipt::parse(&bytes)?))
        .and_then(|receipt| {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            Ok(receipt.verify_inclusion(entry, trust, now)?)
        });
    match checked {
        Ok((size, root)) => {
            keep_tree(tx, size, &root).await?;
            Ok(true)
        }
        Err(e) => {
            problem(
                tx,
                format!("event {seq}: not shown to be in the county's log: {e:#}"),
            )
            .await?;
            Ok(false)
        }
    }
}

/// Keeps a tree the county signed; another root for the same size is a fork, reported.
async fn keep_tree(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    size: u64,
    root: &[u8; 32],
) -> anyhow::Result<()> {
    let inserted =
        sqlx::query("INSERT INTO log_trees (size, root) VALUES (?, ?) ON CONFLICT DO NOTHING")
            .bind(size as i64)
            .bind(root.to_vec())
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if inserted == 1 {
        let roots: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_trees WHERE size = ?")
            .bind(size as i64)
            .fetch_one(&mut **tx)
            .await?;
        if roots > 1 {
            problem(
                tx,
                format!("fork: the county signed two different trees of {size} entries"),
            )
            .await?;
        }
    }
    Ok(())
}

async fn problem(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    problem: String,
) -> anyhow::Result<()> {
    tracing::warn!(%problem, "transparency log");
    sqlx::query("INSERT INTO log_problems (problem) VALUES (?)")
        .bind(problem)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Fetches the county's latest head and proves every kept tree not yet linked to a later one
/// consistent with it. Returns the problems found in this check.
pub async fn check_consistency(
    db: &SqlitePool,
    trust: &TrustStore,
    source: &str,
) -> anyhow::Result<Vec<String>> {
    let source = source.trim_end_matches('/');
    let client = reqwest::Client::new();
    let head = fetch(&client, &format!("{source}/api/v1/log/head")).await?;
    let head = TreeHead::verify(&head, trust).context("the county's latest head")?;
    let mut tx = db.begin().await?;
    keep_tree(&mut tx, head.size, &head.root).await?;
    let unlinked = sqlx::query("SELECT size, root FROM log_trees WHERE linked = 0 AND size < ?")
        .bind(head.size as i64)
        .fetch_all(&mut *tx)
        .await?;
    let mut problems = Vec::new();
    for row in unlinked {
        let size: i64 = row.try_get("size")?;
        let root: Vec<u8> = row.try_get("root")?;
        let root: [u8; 32] = root.as_slice().try_into().context("a kept root")?;
        if size == 0 {
            continue; // the empty tree is a prefix of every tree
        }
        let url = format!(
            "{source}/api/v1/log/consistency?from={size}&to={}",
            head.size
        );
        let proved = match fetch(&client, &url).await {
            Ok(bytes) => Receipt::parse(&bytes)
                .map_err(anyhow::Error::from)
                .and_then(|r| Ok(r.verify_consistency(&root, trust, head.time)?))
                .and_then(|(new_size, new_root)| {
                    if new_size != head.size || new_root != head.root {
                        bail!("the proof leads to another tree than the latest head");
                    }
                    Ok(())
                }),
            Err(e) => Err(e),
        };
        match proved {
            Ok(()) => {
                sqlx::query("UPDATE log_trees SET linked = 1 WHERE size = ? AND root = ?")
                    .bind(size)
                    .bind(root.to_vec())
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => {
                let found = format!(
                    "the county's log of {} entries does not extend the tree of {size} entries it \
                     showed before: an entry was removed or the past rewritten ({e:#})",
                    head.size
                );
                problem(&mut tx, found.clone()).await?;
                problems.push(found);
            }
        }
    }
    tx.commit().await?;
    Ok(problems)
}

async fn fetch(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let response = client.get(url).send().await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    Ok(response.bytes().await?.to_vec())
}

/// What the log checks found: trees kept, and every problem.
pub async fn report(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
) -> anyhow::Result<serde_json::Value> {
    let trees: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_trees")
        .fetch_one(&mut **tx)
        .await?;
    let largest: Option<i64> = sqlx::query_scalar("SELECT MAX(size) FROM log_trees")
        .fetch_one(&mut **tx)
        .await?;
    let problems: Vec<String> = sqlx::query_scalar("SELECT problem FROM log_problems ORDER BY id")
        .fetch_all(&mut **tx)
        .await?;
    Ok(serde_json::json!({
        "trees": trees,
        "largest_tree": largest,
        "problems": problems,
    }))
}
