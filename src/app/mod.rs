//! The application: settings, store, directory and keys put together, and every operation the CLI
//! and the HTTP API offer — one function per operation, so both call the same code. The
//! operations live by job: `licences` (issue, change, read, PDF), `verification` (trust, status
//! lists, online verification), `tokens` (API tokens and the audit trail), `summary` (the
//! supervision figures); `permissions` is the one check of who may do what that every operation
//! asks.
//!
//! Data flows one way: input → validate → licence version → sign → store (→ render, publish).

mod alerts;
mod dashboard;
mod drafts;
pub mod health;
mod jobs;
mod licences;
pub mod log;
pub mod permissions;
mod reading;
mod register;
mod signers;
pub mod signin;
mod staff;
mod summary;
mod tokens;
mod verification;
mod views;

pub use dashboard::{Dashboard, TypeFigures, EXPIRY_WARNING_DAYS};
pub use permissions::{Action, Scope};
pub use reading::{LicenceSearch, LicenceSummary, SearchPage};
pub use register::{VerifyBaseChange, EXISTING_VERSIONS_KEEP_THEIR_ADDRESS};
pub use staff::CreatedStaff;
pub use summary::{
    summary_range, ConversionSeconds, Figures, Summary, DAILY_FIGURES_ACTION, MAX_SUMMARY_DAYS,
    UNRECORDED_REASON,
};
pub use views::{
    Amendment, BatchStatus, DirectoryListing, EventView, HolderView, Issued, LicenceView, Renewal,
    VersionView, DEFAULT_PAGE_LIMIT,
};

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::audit::Entry;
use crate::blobs::Blobs;
use crate::config::{BlobStoreKind, Settings};
use crate::directory::{Directory, DirectoryError, LicenceType};
use crate::identifiers::{IdError, TypeCode, Uscc};
use crate::licence::ValidationErrors;
use crate::messages::Lang;
use crate::render::Renderer;
use crate::signing::keys::{KeyError, KeyRing};
use crate::signing::trust::TrustStore;
use crate::store::{Store, StoreError};
use crate::time_util;
use crate::verify_cache::VerifyCache;

/// What a caller may do (SPEC §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Issue and convert.
    Clerk,
    /// Amend, renew, suspend, reinstate, revoke.
    Officer,
    /// Read the feed.
    Library,
    /// Read the audit trail, licences and conversion jobs (电子监察): watches, changes nothing.
    Supervisor,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Officer => "officer",
            Role::Library => "library",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "clerk" => Some(Role::Clerk),
            "officer" => Some(Role::Officer),
            "library" => Some(Role::Library),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is acting: a token's holder, or the local operator at the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    /// Where the actor acts from: the client address, or `cli`.
    pub source: String,
    /// The department the actor belongs to; None for the local operator, who may act for all.
    pub department: Option<Uscc>,
    pub roles: Vec<Role>,
}

impl Actor {
    /// The operator at the command line: whoever can read `keys/` may act for every department.
    pub fn local_operator() -> Actor {
        let user = std::env::var("USER").unwrap_or_else(|_| "operator".into());
        Actor {
            name: format!("cli:{user}"),
            source: "cli".into(),
            department: None,
            roles: vec![Role::Admin],
        }
    }

    /// An audit record of this actor attempting `action` on `target`, in the actor's department
    /// (a write on a department's licence, key or token names that department instead).
    pub fn entry(&self, action: &str, target: &str) -> Entry {
        Entry {
            department: self.department.as_ref().map(Uscc::to_string),
            ..Entry::new(&self.name, &self.source, action, target)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid record: {0}")]
    Invalid(ValidationErrors),
    #[error("{0}")]
    BadIdentifier(#[from] IdError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the directory has no licence type {0}")]
    UnknownType(String),
    #[error("a {type_name} numbered {number:?} exists already: {existing}")]
    Duplicate {
        type_name: String,
        number: String,
        existing: String,
    },
    /// A refusal: what the licence is now does not allow it (revoked, a renewal pending, …).
    /// Failures of ours are [`AppError::Internal`], never this.
    #[error("{0}")]
    State(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    BadInput(String),
    /// Bad input the message catalogue words in both languages (a manifest's header, its size).
    #[error("{}", .0.en)]
    Explained(crate::messages::Said),
    /// Input over a size limit (an upload larger than allowed).
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Blob(#[from] crate::blobs::BlobError),
    /// A defect of ours (a panic caught, a worker lost): a 500, never the client's fault.
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub directory: Directory,
    pub directory_version: i64,
    pub renderer: Renderer,
    /// Archived scans and PDFs.
    pub blobs: Blobs,
    keys: RwLock<KeyRing>,
    /// The trust list as verification uses it, rebuilt whenever the keys change.
    trust: RwLock<Arc<TrustStore>>,
    verify_cache: VerifyCache,
    /// Public verifications counted since they were last added to the store.
    verify_tally: crate::verify_tally::VerifyTally,
    /// Conversion jobs started by this process, and how many may run at once.
    pub jobs: jobs::JobSlots,
    /// Whether writes work, and the audit records held while they do not.
    pub write_health: health::WriteHealth,
    /// Leaves the transparency log lacked when this process opened the store, appended then.
    log_caught_up_at_open: u64,
}

impl App {
    /// Opens everything the settings name: the directory (checked), the store (migrated), the key
    /// ring (a development root made on first start, loudly).
    pub async fn open(settings: Settings) -> Result<App> {
        let directory = Directory::load(&settings.templates_dir.join("directory"))?;
        settings
            .prepare_data_dir()
            .map_err(|e| AppError::Config(e.to_string()))?;
        let store = Store::open(settings.database_url.expose()).await?;
        if settings.development {
            tracing::warn!(
                "DEVELOPMENT MODE (ELICENCE_MODE=development): a loopback verify base is allowed, \
                 so QR codes may name an address no phone can reach. Never run a deployment so."
            );
        }
        register::open_verify_base(&store, &settings).await?;
        let directory_version = store
            .record_directory(&directory.digest, &directory.to_json())
            .await?;
        let (keys, created) =
            signers::open_key_ring(&store, &settings.keys_dir, &directory.issuers()).await?;
        if created {
            tracing::warn!(
                keys_dir = %settings.keys_dir.display(),
                "NO KEYS FOUND: generated a DEVELOPMENT root CA and signer keys. Nobody else trusts \
                 this root; a real deployment installs the county's root and department keys."
            );
        }
        let trust = Arc::new(trust_store_of(&keys)?);
        let renderer = Renderer::load(&settings.templates_dir, &directory)
            .map_err(|e| AppError::Config(e.to_string()))?;
        let verify_cache = VerifyCache::new(std::time::Duration::from_secs(
            settings.verify_cache_seconds,
        ));
        let jobs = jobs::JobSlots::new(settings.max_concurrent_jobs);
        let blobs = match settings.blob_store {
            BlobStoreKind::Folder => Blobs::Folder(settings.data_dir.join("blobs")),
            BlobStoreKind::Database => Blobs::Database(store.clone()),
        };
        let mut app = App {
            settings,
            blobs,
            store,
            directory,
            directory_version,
            renderer,
            verify_cache,
            verify_tally: Default::default(),
            jobs,
            write_health: health::WriteHealth::default(),
            keys: RwLock::new(keys),
            trust: RwLock::new(trust),
            log_caught_up_at_open: 0,
        };
        app.log_caught_up_at_open = app.catch_up_log().await?;
        Ok(app)
    }

    pub fn licence_type(&self, code: &TypeCode) -> Result<&LicenceType> {
        self.directory
            .get(code)
            .ok_or_else(|| AppError::UnknownType(code.to_string()))
    }

    fn type_of(&self, code: &str) -> Result<&LicenceType> {
        let code = TypeCode::parse(code)?;
        self.licence_type(&code)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a write as `entry`, appending a refused or failed attempt to the audit trail (a
    /// successful write appends its own record in the same transaction as the write).
    pub(crate) async fn audited<T>(
        &self,
        entry: Entry,
        write: impl AsyncFnOnce(&Entry) -> Result<T>,
    ) -> Result<T> {
        let result = write(&entry).await;
        if result.is_ok() {
            self.write_health.write_succeeded();
            self.flush_held_audit_after_a_write().await;
        }
        self.audit_failure(entry, &result).await;
        result
    }

    fn keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn trust_store_of(keys: &KeyRing) -> Result<TrustStore> {
    TrustStore::new(&keys.trust_list(), None).map_err(|e| AppError::Config(e.to_string()))
}

impl AppError {
    /// The stable machine-readable code of SPEC §10's error body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid(_) => "invalid_record",
            AppError::BadIdentifier(_) => "malformed_identifier",
            AppError::NotFound(_) => "not_found",
            AppError::UnknownType(_) => "unknown_type",
            AppError::Duplicate { .. } => "duplicate",
            AppError::State(_) => "invalid_state",
            AppError::Forbidden(_) => "forbidden",
            AppError::BadInput(_) | AppError::Explained(_) => "bad_input",
            AppError::TooLarge(_) => "too_large",
            AppError::Store(StoreError::Conflict) => "conflict",
            AppError::Store(StoreError::Full) => "store_full",
            AppError::Store(StoreError::LeaseLost(_)) => "lease_lost",
            AppError::Store(StoreError::SignerRevoked(_)) => "signer_revoked",
            AppError::Store(_) => "store",
            AppError::Keys(_) => "keys",
            AppError::Directory(_) => "directory",
            AppError::Config(_) => "config",
            AppError::Blob(_) => "blob_store",
            AppError::Internal(_) => "internal",
        }
    }

    /// The error body of SPEC §10 in English; validation errors list every field and reason.
    pub fn to_json(&self) -> serde_json::Value {
        self.to_json_in(Lang::En)
    }

    /// The error body of SPEC §10 with its message and reasons in `lang` (the code stays).
    pub fn to_json_in(&self, lang: Lang) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code(), "message": self.message(lang)});
        if let AppError::Invalid(errors) = self {
            let fields: Vec<serde_json::Value> = errors
                .0
                .iter()
                .map(|e| serde_json::json!({"field": e.field, "reason": e.reason_in(lang)}))
                .collect();
            error["fields"] = fields.into();
        }
        serde_json::json!({ "error": error })
    }

    /// The error said in both languages, as a job keeps it.
    pub fn said(&self) -> crate::messages::Said {
        crate::messages::Said {
            en: self.to_string(),
            zh: self.message(Lang::Zh),
        }
    }

    /// The error's message in `lang`: in Chinese, the catalogue's words where it has them (a
    /// record's reasons, an identifier's), else the catalogue's sentence for the error's code
    /// followed by the service's own detail.
    pub fn message(&self, lang: Lang) -> String {
        match (lang, self) {
            (Lang::En, _) => self.to_string(),
            (Lang::Zh, AppError::Invalid(errors)) => {
                let reasons: Vec<String> = errors
                    .0
                    .iter()
                    .map(|e| format!("{}：{}", e.field, e.reason_zh))
                    .collect();
                format!("记录有误：{}", reasons.join("；"))
            }
            (Lang::Zh, AppError::BadIdentifier(e)) => crate::messages::id_zh(e),
            (Lang::Zh, AppError::Explained(said)) => said.zh.clone(),
            (Lang::Zh, _) => format!("{}（{self}）", crate::messages::error_zh(self.code())),
        }
    }
}
