//! The city supervision platform's side of SPEC §15 (电子监察): it takes the county's audit
//! stream (checks the HMAC), checks every record's hash and its link to the one before, checks
//! every checkpoint's signature against the county's trust list and against the records it
//! holds, keeps all of it in its own SQLite file, catches up by pulling, and reports gaps, a
//! trail cut short and a rewritten chain — the tampering the county's own database cannot show.

use std::sync::Arc;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine;
use elicence::signing::checkpoint::Checkpoint;
use elicence::signing::trust::TrustStore;
use elicence::supervision::SupervisionRecord;
use serde::Deserialize;
use sqlx::sqlite::SqlitePool;
use sqlx::Row;

/// Which checkpoint the county is held to: the highest agreeing one.
const HELD_TO: &str = "WHERE consistent = 1 ORDER BY seq DESC, id DESC LIMIT 1";

/// The hash before the first record.
const GENESIS: &str = elicence::audit::GENESIS;

/// A push's body, or a pull's page (SPEC §15).
#[derive(Debug, Deserialize)]
pub struct Delivery {
    pub records: Vec<SupervisionRecord>,
    pub checkpoint: Option<String>,
}

pub struct Platform {
    db: SqlitePool,
    trust: TrustStore,
    secret: Vec<u8>,
}

impl Platform {
    pub async fn open(
        db: SqlitePool,
        trust: TrustStore,
        secret: &[u8],
    ) -> anyhow::Result<Platform> {
        for table in [
            "CREATE TABLE IF NOT EXISTS audit_records (
                seq INTEGER PRIMARY KEY, record TEXT NOT NULL, hash TEXT NOT NULL,
                received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            "CREATE TABLE IF NOT EXISTS audit_checkpoints (
                id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL,
                time INTEGER NOT NULL, cose TEXT NOT NULL, consistent INTEGER NOT NULL,
                received_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            "CREATE TABLE IF NOT EXISTS audit_problems (
                id INTEGER PRIMARY KEY, kind TEXT NOT NULL, seq INTEGER, message TEXT NOT NULL,
                evidence TEXT NOT NULL, found_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        ] {
            sqlx::query(table).execute(&db).await?;
        }
        Ok(Platform {
            db,
            trust,
            secret: secret.to_vec(),
        })
    }

    /// Takes one delivery: every record checked and kept (a record that fails a check is kept
    /// as evidence with the problem, never dropped), then the checkpoint. Returns how many
    /// records were new.
    pub async fn ingest(&self, delivery: &Delivery) -> anyhow::Result<usize> {
        let mut tx = self.db.begin().await?;
        let mut new = 0;
        for record in &delivery.records {
            new += self.take_record(&mut tx, record).await? as usize;
        }
        if let Some(cose) = &delivery.checkpoint {
            self.take_checkpoint(&mut tx, cose).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn take_record(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        record: &SupervisionRecord,
    ) -> anyhow::Result<bool> {
        let evidence = serde_json::to_string(record)?;
        let seq = record.seq;
        if record.content_hash() != record.hash {
            problem(
                tx,
                "edited",
                seq,
                format!("record {seq}: its content does not match its hash"),
                &evidence,
            )
            .await?;
        }
        if let Some(held) = held_hash(tx, seq).await? {
            if held != record.hash {
                problem(tx, "rewritten", seq, format!(
                    "record {seq} arrived again with hash {} but {held} was received before: the county's trail was rewritten",
                    record.hash
                ), &evidence).await?;
            }
            return Ok(false);
        }
        let last = last_seq(tx).await?;
        if seq > last + 1 {
            problem(
                tx,
                "gap",
                seq,
                format!("records {} to {} never arrived", last + 1, seq - 1),
                &evidence,
            )
            .await?;
        }
        let before = if seq == 1 {
            Some(GENESIS.to_string())
        } else {
            held_hash(tx, seq - 1).await?
        };
        if before.as_ref().is_some_and(|b| *b != record.prev) {
            problem(tx, "rewritten", seq, format!(
                "record {seq} does not link to record {} received before: the county's trail was rewritten",
                seq - 1
            ), &evidence).await?;
        }
        sqlx::query("INSERT INTO audit_records (seq, record, hash) VALUES (?, ?, ?)")
            .bind(seq)
            .bind(&evidence)
            .bind(&record.hash)
            .execute(&mut **tx)
            .await?;
        Ok(true)
    }

    /// Checks a checkpoint against the records held. The county signs its checkpoints over the
    /// last record of a delivery or over its head, never below what it delivered: one naming a
    /// seq below the last held says its trail was cut short. Only a checkpoint that agrees with
    /// what is held, over a chain with no problem found at or below it, is one the county is
    /// held to (`last_checkpoint`).
    async fn take_checkpoint(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        cose: &str,
    ) -> anyhow::Result<()> {
        let checked = base64::engine::general_purpose::STANDARD
            .decode(cose)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Checkpoint::verify(&bytes, &self.trust).map_err(|e| e.to_string()));
        let checkpoint = match checked {
            Ok(checkpoint) => checkpoint,
            Err(why) => {
                return problem(
                    tx,
                    "bad-checkpoint",
                    None,
                    format!("a checkpoint was refused: {why}"),
                    cose,
                )
                .await;
            }
        };
        let seq = checkpoint.seq;
        let last = last_seq(tx).await?;
        let mut consistent = true;
        match held_hash(tx, seq).await? {
            Some(held) if held != checkpoint.hash => {
                consistent = false;
                problem(tx, "rewritten", seq, format!(
                    "the county now signs record {seq} as {} but {held} was received: its trail was rewritten at or before record {seq}",
                    checkpoint.hash
                ), cose).await?;
            }
            None => {
                consistent = false;
                problem(
                    tx,
                    "gap",
                    seq,
                    format!("a checkpoint names record {seq}, which never arrived"),
                    cose,
                )
                .await?;
            }
            Some(_) => {}
        }
        if seq < last {
            consistent = false;
            problem(tx, "truncated", seq, format!(
                "the county's trail now ends at record {seq}, but records up to {last} were received: its tail was removed"
            ), cose).await?;
        }
        // A checkpoint over a chain that was found broken at or below it proves nothing.
        let broken_below: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_problems WHERE seq <= ?")
                .bind(seq)
                .fetch_one(&mut **tx)
                .await?;
        consistent &= broken_below == 0;
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, time, cose, consistent) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(&checkpoint.hash)
        .bind(checkpoint.time)
        .bind(cose)
        .bind(consistent)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// What the platform holds, and every problem found, in one read transaction.
    pub async fn report(&self) -> anyhow::Result<serde_json::Value> {
        let mut tx = self.db.begin().await?;
        let counts =
            sqlx::query("SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS last FROM audit_records")
                .fetch_one(&mut *tx)
                .await?;
        let checkpoint = sqlx::query(&format!(
            "SELECT seq, hash, time FROM audit_checkpoints {HELD_TO}"
        ))
        .fetch_optional(&mut *tx)
        .await?;
        let problems = sqlx::query("SELECT kind, seq, message FROM audit_problems ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|r| {
                Ok(serde_json::json!({
                    "kind": r.try_get::<String, _>("kind")?,
                    "seq": r.try_get::<Option<i64>, _>("seq")?,
                    "message": r.try_get::<String, _>("message")?,
                }))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let checkpoints: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints")
            .fetch_one(&mut *tx)
            .await?;
        // The county checkpoints at least once a minute, idle or not: a long silence is a
        // stopped stream, which is how tampering that stops the pusher would show.
        let silent_seconds: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(strftime('%s', 'now') - strftime('%s', MAX(received_at)) AS INTEGER)
             FROM audit_checkpoints",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let held_to = match checkpoint {
            Some(r) => serde_json::json!({
                "seq": r.try_get::<i64, _>("seq")?,
                "hash": r.try_get::<String, _>("hash")?,
                "time": r.try_get::<i64, _>("time")?,
            }),
            None => serde_json::Value::Null,
        };
        Ok(serde_json::json!({
            "records": counts.try_get::<i64, _>("n")?,
            "last_seq": counts.try_get::<i64, _>("last")?,
            "checkpoints": checkpoints,
            "silent_seconds": silent_seconds,
            "held_to": held_to,
            "intact": problems.is_empty(),
            "problems": problems,
        }))
    }

    /// The checkpoint the county is held to, as base64 (for `elicence audit verify
    /// --checkpoint`): the highest seq of those that agreed with what was held when they came,
    /// so a later checkpoint of a tampered trail never replaces it.
    pub async fn last_checkpoint(&self) -> anyhow::Result<Option<String>> {
        Ok(
            sqlx::query_scalar(&format!("SELECT cose FROM audit_checkpoints {HELD_TO}"))
                .fetch_optional(&self.db)
                .await?,
        )
    }

    /// Catches up by pulling `GET /api/v1/supervision/audit` from the last seq held.
    pub async fn pull(&self, source: &str, token: &str) -> anyhow::Result<usize> {
        let client = reqwest::Client::new();
        let mut new = 0;
        loop {
            let after = last_seq(&mut *self.db.acquire().await?).await?;
            let url = format!(
                "{}/api/v1/supervision/audit?after={after}&limit=1000",
                source.trim_end_matches('/')
            );
            let response = client.get(&url).bearer_auth(token).send().await?;
            if !response.status().is_success() {
                bail!(
                    "{url}: {} {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            let page: Delivery = response.json().await.context("not a supervision page")?;
            let done = page.records.is_empty();
            new += self.ingest(&page).await?;
            if done {
                return Ok(new);
            }
        }
    }
}

async fn held_hash(conn: &mut sqlx::SqliteConnection, seq: i64) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT hash FROM audit_records WHERE seq = ?")
            .bind(seq)
            .fetch_optional(conn)
            .await?,
    )
}

async fn last_seq(conn: &mut sqlx::SqliteConnection) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM audit_records")
            .fetch_one(conn)
            .await?,
    )
}

/// Records a problem once (the same kind at the same seq is one problem), and logs it.
async fn problem(
    conn: &mut sqlx::SqliteConnection,
    kind: &str,
    seq: impl Into<Option<i64>>,
    message: String,
    evidence: &str,
) -> anyhow::Result<()> {
    let seq = seq.into();
    let known: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_problems WHERE kind = ? AND seq IS ? AND message = ?",
    )
    .bind(kind)
    .bind(seq)
    .bind(&message)
    .fetch_one(&mut *conn)
    .await?;
    if known == 0 {
        tracing::error!(kind, seq, %message, "the county's audit trail");
        sqlx::query(
            "INSERT INTO audit_problems (kind, seq, message, evidence) VALUES (?, ?, ?, ?)",
        )
        .bind(kind)
        .bind(seq)
        .bind(&message)
        .bind(evidence)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// POST /audit: the delivery is taken.
pub async fn receive(
    State(platform): State<Arc<Platform>>,
    headers: HeaderMap,
    body: Bytes,
) -> crate::Answer {
    crate::take_signed(
        &platform.secret,
        &headers,
        &body,
        async |delivery: Delivery| {
            let new = platform.ingest(&delivery).await?;
            Ok(serde_json::json!({"received": delivery.records.len(), "new": new}))
        },
    )
    .await
}

pub async fn status(State(platform): State<Arc<Platform>>) -> crate::Answer {
    crate::answer(platform.report().await)
}
