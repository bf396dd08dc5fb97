//! The store (SPEC §4, §11): licences, their immutable versions, the ordered change events and
//! the directory versions, behind one interface over two backends — SQLite (embedded, WAL) and
//! PostgreSQL (several instances). Both run the same SQL through sqlx's `Any` driver; each has
//! its own `migrations/`, applied at open.
//!
//! Concurrency: every change to a licence appends an event with the next `change_no`, and
//! `UNIQUE(licence, change_no)` turns a lost race into [`StoreError::Conflict`] instead of two
//! contradicting changes. On PostgreSQL each writing transaction takes one advisory lock before it
//! inserts events, so event `seq`s are assigned in commit order and a feed reader that resumes
//! from its last seq never skips an event that commits late.
//!
//! One file per aggregate: `licences`, `versions` and `events` (the licence tables), `audit`,
//! `directory`, `reservations`, `tokens`, `push`, `signers`, `register`, `batches`, `staff`,
//! `sessions` (console sign-in), `log` (the transparency log), `figures` (the dashboard's counts), `alerts` (what the alert
//! watcher reads and appends) and `summary` (the supervision figures). This file holds what they
//! share: the [`Store`] handle (open, pools, write transactions), [`StoreError`] and the multi-row
//! `placeholders` helper; the public types are re-exported here, so callers name them
//! `crate::store::LicenceRow` whatever file they live in.

use std::path::Path;

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;

mod alerts;
mod audit;
mod batch_state;
mod batches;
mod directory;
mod events;
mod figures;
mod licences;
mod log;
mod push;
mod register;
mod reservations;
mod search;
mod sessions;
mod signers;
mod staff;
mod summary;
mod tokens;
mod versions;

pub use audit::AuditFilter;
pub use batch_state::{BatchState, RowOutcome, UnknownWord};
pub use batches::{BatchRecord, BatchRow, BatchRowOutcome, NewBatch, RejectedRow, RowResult};
pub use events::EventRow;
pub use figures::TypeStatusCount;
pub use licences::{Inserted, LicenceRow, NewLicence, VerificationRow};
pub use log::{LogEntry, StoredHead};
pub use search::{LicenceMatch, LicenceQuery};
pub use sessions::{Credentials, NewSession, SessionRow};
pub use signers::{Revocation, WhenActive};
pub use staff::{NewStaff, StaffRow};
pub use summary::{ConversionTimes, FigureRange, HourCount, RejectedCount};
pub use tokens::{TokenListing, TokenRow};
pub use versions::{decode_full_record, StatusEntry, StoredVersion};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error(
        "the database's disk is full: writes are refused until space is freed (reads still work)"
    )]
    Full,
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL with its password masked.
    #[error("unsupported database URL {0:?}: use sqlite:PATH or postgres://…")]
    Url(String),
    #[error("the database file {0}")]
    File(String),
    #[error(
        "the licence was changed by someone else at the same moment; look at it again and retry"
    )]
    Conflict,
    /// The signer of a version being stored was revoked meanwhile by another process.
    #[error(
        "the signer key {0} was revoked while the licence was being signed: nothing was stored; \
         try again (it will be signed with the department's current key)"
    )]
    SignerRevoked(String),
    /// A conversion run's lease was taken by another process (this one stalled past it) or
    /// the run has ended: this process may no longer commit to it.
    #[error("batch {0}: this process no longer holds the run (another took it up, or it ended)")]
    LeaseLost(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A large blob could not be read to its end while it was stored in parts.
    #[error("reading a blob to store: {0}")]
    Unreadable(String),
}

impl From<sqlx::Error> for StoreError {
    /// Names a full disk as such (SQLite's SQLITE_FULL, PostgreSQL's disk_full), so that the
    /// caller hears the real cause rather than a database error code.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("13" | "53100")) => {
                StoreError::Full
            }
            _ => StoreError::Database(e),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Store {
    reader: AnyPool,
    /// SQLite allows one writer at a time: one connection serialises this process's writes
    /// instead of letting them fail with SQLITE_BUSY. PostgreSQL shares the reader pool.
    writer: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies its migrations.
    pub async fn open(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Url(crate::config::mask_password(url)));
        };
        let (reader, writer) = match backend {
            Backend::Sqlite => {
                create_sqlite_file(url)?;
                let reader = sqlite_pool(url, 8).await?;
                // WAL lets readers go on while the single writer writes; it persists in the file.
                sqlx::query("PRAGMA journal_mode=WAL")
                    .execute(&reader)
                    .await?;
                let writer = sqlite_pool(url, 1).await?;
                (reader, writer)
            }
            Backend::Postgres => {
                let pool = pool_options().max_connections(16).connect(url).await?;
                (pool.clone(), pool)
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&writer).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&writer).await?,
        }
        let store = Store {
            reader,
            writer,
            backend,
        };
        store.fill_holder_names().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
    /// a deferred transaction that reads and then writes gets SQLITE_BUSY without waiting when
    /// another process (the CLI beside the service, a second instance) wrote in between.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.writer.begin().await?,
        })
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// `($1, $2, …), ($n, …)`: the VALUES of a multi-row insert of `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let values: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pool options both backends share: a connection that comes back from a failed transaction
/// still counting itself inside it is replaced, not reused. SQLite rolls a transaction back by
/// itself on "database or disk is full"; the ROLLBACK sqlx then sends fails, and the connection
/// believed itself in a transaction for good, so every later write failed until a restart.
fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new().before_acquire(|conn, _| {
        Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
    })
}

async fn sqlite_pool(url: &str, connections: u32) -> Result<AnyPool> {
    Ok(pool_options()
        .max_connections(connections)
        .after_connect(|conn, _| {
            Box::pin(async move {
                use sqlx::Executor;
                conn.execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON")
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// sqlx opens SQLite files read-write but does not create them (without `mode=rwc`): make the
/// folder and the file so a fresh checkout starts with no setup. The file holds unmasked personal
/// data, so it is made 0600 whatever the umask and whatever mode it had before, and so are its
/// `-wal` and `-shm` files when they exist (SQLite gives the ones it creates the database's
/// mode). A folder made for it is 0700; an existing one is the operator's.
fn create_sqlite_file(url: &str) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    let path = Path::new(path);
    let file_error =
        |path: &Path, e: std::io::Error| StoreError::Url(format!("{}: {e}", path.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .and_then(|()| set_mode(parent, 0o700))
                .map_err(|e| file_error(parent, e))?;
        }
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| file_error(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match set_mode(&file, 0o600) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(file_error(&file, e)),
            _ => {}
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn the_sqlite_database_and_its_wal_and_shm_files_are_0600_even_if_it_was_0644() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("elicence.sqlite");
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&format!("sqlite:{}", file.display()))
            .await
            .unwrap();
        store.record_directory("digest", "{}").await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
        store.close().await;

        let fresh = dir.path().join("new").join("elicence.sqlite");
        let store = Store::open(&format!("sqlite:{}", fresh.display()))
            .await
            .unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(mode(fresh.parent().unwrap()), 0o700, "a folder made for it");
        store.close().await;
    }

    #[tokio::test]
    async fn an_unsupported_database_url_is_named_without_its_password() {
        let Err(err) = Store::open("mysql://el:hunter2-s3cr3t@db.example/el").await else {
            panic!("a MySQL URL opened");
        };
        let text = err.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("mysql://el:***@db.example/el"), "{text}");
    }
}
