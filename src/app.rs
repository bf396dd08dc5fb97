//! The application: settings, store, directory and keys put together, and every operation the CLI
//! and the HTTP API offer — one function per operation, so both call the same code.
//!
//! Data flows one way: input → validate → licence version → sign → store (→ render, publish).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use time::{Date, Duration};

use crate::audit::Entry;
use crate::blobs::Blobs;
use crate::config::{BlobStoreKind, Settings};
use crate::directory::{Directory, DirectoryError, FieldDef, LicenceType};
use crate::identifiers::{IdError, LicenceKey, LicenceRef, TypeCode, Uscc, VersionId};
use crate::licence::{
    timeliness, validate, EventKind, FieldValue, LicenceVersion, Record, RecordInput, Standing,
    Timeliness, ValidationErrors,
};
use crate::render::Renderer;
use crate::signing::claims::FullRecord;
use crate::signing::keys::{KeyError, KeyRing};
use crate::signing::status_list::{StatusList, LIST_LEN};
use crate::signing::trust::{TrustList, TrustStore};
use crate::signing::{qr, sign_version, Unsigned};
use crate::store::{EventRow, Inserted, LicenceRow, NewLicence, Store, StoreError, StoredVersion};
use crate::time_util;
use crate::verify::{self, Current, Outcome, PublicField, Verification};
use crate::verify_cache::{Registered, VerifyCache};

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
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Officer => "officer",
            Role::Library => "library",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "clerk" => Some(Role::Clerk),
            "officer" => Some(Role::Officer),
            "library" => Some(Role::Library),
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

    /// An audit record of this actor attempting `action` on `target`.
    pub fn entry(&self, action: &str, target: &str) -> Entry {
        Entry::new(&self.name, &self.source, action, target)
    }

    /// May this actor read the full records of `department`'s licences? The library reads all;
    /// a department's own tokens read their department's.
    pub fn authorise_read(&self, department: &Uscc) -> Result<(), AppError> {
        if self.roles.contains(&Role::Library) && self.department.is_none() {
            return Ok(());
        }
        match &self.department {
            Some(own) if own != department => Err(AppError::Forbidden(format!(
                "{} belongs to department {own} and may not read licences of {department}",
                self.name
            ))),
            _ if self.roles.is_empty() => {
                Err(AppError::Forbidden(format!("{} has no role", self.name)))
            }
            _ => Ok(()),
        }
    }

    /// Refuses unless the actor has `role` (or admin) and belongs to `department` (if scoped).
    pub fn authorise(&self, role: Role, department: &Uscc) -> Result<(), AppError> {
        let has_role = self.roles.contains(&role) || self.roles.contains(&Role::Admin);
        if !has_role {
            return Err(AppError::Forbidden(format!(
                "{} lacks the {role:?} role",
                self.name
            )));
        }
        match &self.department {
            Some(own) if own != department => Err(AppError::Forbidden(format!(
                "{} belongs to department {own} and may not act for {department}",
                self.name
            ))),
            _ => Ok(()),
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
    #[error("{0}")]
    State(String),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    BadInput(String),
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
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// A version just created: its identifier and the text its QR code carries.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Issued {
    pub id: String,
    pub licence_id: String,
    pub version: u32,
    pub number: String,
    pub qr_text: String,
    pub seq: i64,
}

/// A licence as `licence show` and `GET /api/v1/licences/{id}` give it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct LicenceView {
    pub licence_id: String,
    pub type_code: String,
    pub type_name: String,
    pub number: String,
    pub status: Standing,
    pub latest_version: u32,
    pub version: VersionView,
    pub events: Vec<EventView>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct VersionView {
    pub id: String,
    pub version: u32,
    pub superseded: bool,
    pub issued_at: String,
    /// `current`, `expired` or `not_yet_valid`, derived from the dates now.
    pub validity: &'static str,
    pub valid_from: String,
    pub valid_until: Option<String>,
    pub holder: HolderView,
    pub fields: BTreeMap<String, FieldValue>,
    pub directory_version: i64,
    pub scan: Option<String>,
    pub prev: Option<String>,
    pub kid: String,
    pub status_index: u64,
    pub qr_text: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct HolderView {
    pub name: String,
    pub id: String,
    pub kind: &'static str,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct EventView {
    pub seq: i64,
    pub version: u32,
    pub kind: EventKind,
    pub at: String,
    pub reason: Option<String>,
    pub actor: String,
}

impl From<&EventRow> for EventView {
    fn from(e: &EventRow) -> Self {
        EventView {
            seq: e.seq,
            version: e.version,
            kind: e.kind,
            at: e.at.clone(),
            reason: e.reason.clone(),
            actor: e.actor.clone(),
        }
    }
}

/// Changes an amendment (变更) makes: the holder's name and any fields. The number, the holder's
/// id and the validity stay; a different holder is a different licence.
#[derive(utoipa::ToSchema, Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    #[serde(default)]
    pub holder_name: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A renewal (延续): a new validity period; missing dates follow on from the old period.
#[derive(utoipa::ToSchema, Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Renewal {
    #[serde(default)]
    pub valid_from: Option<String>,
    #[serde(default)]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

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
}

impl App {
    /// Opens everything the settings name: the directory (checked), the store (migrated), the key
    /// ring (a development root made on first start, loudly).
    pub async fn open(settings: Settings) -> Result<App> {
        let directory = Directory::load(&settings.templates_dir.join("directory"))?;
        let store = Store::open(&settings.database_url).await?;
        let directory_version = store
            .record_directory(&directory.digest, &directory.to_json())
            .await?;
        let (keys, created) = KeyRing::open_or_init(&settings.keys_dir, &directory.issuers())?;
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
        let blobs = match settings.blob_store {
            BlobStoreKind::Folder => Blobs::Folder(settings.data_dir.join("blobs")),
            BlobStoreKind::Database => Blobs::Database(store.clone()),
        };
        Ok(App {
            settings,
            blobs,
            store,
            directory,
            directory_version,
            renderer,
            verify_cache,
            keys: RwLock::new(keys),
            trust: RwLock::new(trust),
        })
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

    pub fn qr_text(&self, token: &[u8]) -> String {
        qr::qr_text(&self.settings.verify_base, token)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, KeyRing> {
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // -----------------------------------------------------------------------------------------
    // Issuing

    /// Issues a new licence (version 1) of `type_code` from `input`; `scan` is the hex SHA-256 of
    /// an archived scan of the paper licence, if any.
    pub async fn issue(
        &self,
        actor: &Actor,
        type_code: &str,
        input: &RecordInput,
        scan: Option<String>,
    ) -> Result<Issued> {
        let entry = actor.entry("licence.issue", type_code);
        let result = self
            .issue_audited(actor, &entry, type_code, input, scan)
            .await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn issue_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        type_code: &str,
        input: &RecordInput,
        scan: Option<String>,
    ) -> Result<Issued> {
        let licence_type = self.type_of(type_code)?;
        actor.authorise(Role::Clerk, &licence_type.issuer.uscc)?;
        let serial = self
            .store
            .reserve_serials(&licence_type.code, &licence_type.issuer.uscc, 1)
            .await?;
        let today = time_util::today_cst();
        let mut record = validate(licence_type, input, today, || {
            assign_number(licence_type, today, serial)
        })
        .map_err(AppError::Invalid)?;
        self.check_printable(&record)?;
        record.scan = scan;
        let key = LicenceKey {
            type_code: licence_type.code.clone(),
            issuer: licence_type.issuer.uscc.clone(),
            serial,
        };
        let version = self
            .sign(licence_type, key.version(1), record, None)
            .await?;
        let audit = Entry {
            target: version.id.to_string(),
            detail: format!("number {}", version.record.number),
            ..entry.clone()
        };
        let inserted = self
            .store
            .insert_licences(&[NewLicence {
                number: &version.record.number,
                holder_id: version.record.holder.id.as_str(),
                version: &version,
                audit: &audit,
            }])
            .await?;
        match inserted.into_iter().next() {
            Some(Inserted::Issued { seq }) => Ok(self.issued(&version, seq)),
            Some(Inserted::DuplicateNumber { existing }) => Err(AppError::Duplicate {
                type_name: licence_type.name.clone(),
                number: version.record.number.clone(),
                existing,
            }),
            None => Err(AppError::State("the store answered nothing".into())),
        }
    }

    /// Refuses a record with a character the licence font cannot print (it would be an empty box
    /// on the PDF), naming each field and character.
    pub(crate) fn check_printable(&self, record: &Record) -> Result<()> {
        let mut texts = vec![
            ("number".to_string(), record.number.clone()),
            ("holder.name".to_string(), record.holder.name.clone()),
        ];
        texts.extend(
            record
                .fields
                .iter()
                .map(|(k, v)| (format!("fields.{k}"), v.to_string())),
        );
        let errors: Vec<crate::licence::FieldError> = texts
            .into_iter()
            .filter_map(|(field, text)| {
                let missing = self.renderer.missing_glyphs(&text);
                (!missing.is_empty()).then(|| crate::licence::FieldError {
                    field,
                    reason: format!(
                        "the licence font cannot print {}",
                        missing
                            .iter()
                            .map(|c| format!("{c:?} (U+{:04X})", u32::from(*c)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Invalid(ValidationErrors(errors)))
        }
    }

    /// The PDF of a version (the latest unless named), rendered with the directory version it was
    /// issued under, so re-rendering gives the same bytes.
    pub async fn pdf(
        &self,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
    ) -> Result<Vec<u8>> {
        let (row, stored) = self.readable_version(actor, reference, version).await?;
        let full = stored.full()?;
        let licence_type = self
            .type_at(&row.key.type_code, full.directory_version)
            .await?;
        self.renderer
            .render(&licence_type, &full, &self.qr_text(&stored.qr_token))
            .map_err(|e| AppError::State(format!("rendering {}: {e}", stored.identifier)))
    }

    /// A licence type as the directory defined it at `directory_version`.
    async fn type_at(&self, code: &TypeCode, directory_version: i64) -> Result<LicenceType> {
        if directory_version == self.directory_version {
            return Ok(self.licence_type(code)?.clone());
        }
        let json = self
            .store
            .directory_content(directory_version)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("directory version {directory_version}")))?;
        let directory = Directory::from_json(&json).map_err(|e| {
            AppError::Store(StoreError::Corrupt(format!(
                "directory {directory_version}: {e}"
            )))
        })?;
        directory
            .get(code)
            .cloned()
            .ok_or_else(|| AppError::UnknownType(code.to_string()))
    }

    fn issued(&self, version: &LicenceVersion, seq: i64) -> Issued {
        Issued {
            id: version.id.to_string(),
            licence_id: version.id.key.to_string(),
            version: version.id.version,
            number: version.record.number.clone(),
            qr_text: self.qr_text(&version.qr_token),
            seq,
        }
    }

    /// Reserves a status index and signs the version with the department's current key.
    async fn sign(
        &self,
        licence_type: &LicenceType,
        id: VersionId,
        record: Record,
        prev: Option<String>,
    ) -> Result<LicenceVersion> {
        let issuer = &licence_type.issuer.uscc;
        let status_index = self.store.reserve_status_indexes(issuer, 1).await?[0];
        self.sign_reserved(licence_type, id, record, prev, status_index)
    }

    /// Signs a version whose status index is reserved already (batch conversion reserves many
    /// at once and signs on every core).
    pub(crate) fn sign_reserved(
        &self,
        licence_type: &LicenceType,
        id: VersionId,
        record: Record,
        prev: Option<String>,
        status_index: u64,
    ) -> Result<LicenceVersion> {
        let keys = self.keys();
        let (key, kid) = keys.signing_key(&licence_type.issuer.uscc)?;
        Ok(sign_version(
            key,
            kid,
            Unsigned {
                id,
                licence_name: &licence_type.name,
                record,
                issued_at: time_util::now(),
                directory_version: self.directory_version,
                prev,
                status_index,
            },
        ))
    }

    /// The PDF of a version just signed under the current directory (batch conversion archives it).
    pub(crate) fn render_new(
        &self,
        licence_type: &LicenceType,
        version: &LicenceVersion,
    ) -> Result<Vec<u8>> {
        let full = FullRecord::from_signed(&version.full_record)
            .map_err(|e| AppError::State(format!("{}: {e}", version.id)))?;
        self.renderer
            .render(licence_type, &full, &self.qr_text(&version.qr_token))
            .map_err(|e| AppError::State(format!("rendering {}: {e}", version.id)))
    }

    /// Amends (变更) a licence: a new version with changed holder name or fields.
    pub async fn amend(&self, actor: &Actor, licence: &str, change: &Amendment) -> Result<Issued> {
        let entry = actor.entry("licence.amend", licence);
        let result = self.amend_audited(actor, &entry, licence, change).await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn amend_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        licence: &str,
        change: &Amendment,
    ) -> Result<Issued> {
        let (row, licence_type, latest) = self.changeable(actor, licence).await?;
        let full = latest.full()?;
        let mut input = record_input(&full.record);
        if let Some(name) = &change.holder_name {
            input.holder.name = name.clone();
        }
        for (key, value) in &change.fields {
            input.fields.insert(key.clone(), value.clone());
        }
        let mut record = validate(licence_type, &input, time_util::today_cst(), || {
            unreachable!("an amendment keeps its number")
        })
        .map_err(AppError::Invalid)?;
        self.check_printable(&record)?;
        // An amendment changes content, never the validity (that is what a renewal does).
        record.valid_from = full.record.valid_from;
        record.valid_until = full.record.valid_until;
        record.scan = full.record.scan.clone();
        if record == full.record {
            return Err(AppError::BadInput("the amendment changes nothing".into()));
        }
        self.append(
            entry,
            &row,
            licence_type,
            &latest,
            record,
            EventKind::Amended,
            change.reason.as_deref(),
        )
        .await
    }

    /// Renews (延续) a licence: a new version with a new validity period.
    pub async fn renew(&self, actor: &Actor, licence: &str, renewal: &Renewal) -> Result<Issued> {
        let entry = actor.entry("licence.renew", licence);
        let result = self.renew_audited(actor, &entry, licence, renewal).await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn renew_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        licence: &str,
        renewal: &Renewal,
    ) -> Result<Issued> {
        let (row, licence_type, latest) = self.changeable(actor, licence).await?;
        let full = latest.full()?;
        let Some(old_until) = full.record.valid_until else {
            return Err(AppError::State(
                "a permanent licence cannot be renewed".into(),
            ));
        };
        let today = time_util::today_cst();
        let valid_from = match &renewal.valid_from {
            Some(s) => parse_date(s, "valid_from")?,
            None => (old_until + Duration::days(1)).max(today),
        };
        let valid_until = match &renewal.valid_until {
            Some(s) => Some(parse_date(s, "valid_until")?),
            None => licence_type.default_validity.last_day(valid_from),
        };
        if valid_until.is_some_and(|until| until < valid_from) {
            return Err(AppError::BadInput("valid_until: before valid_from".into()));
        }
        let record = Record {
            valid_from,
            valid_until,
            ..full.record
        };
        self.append(
            entry,
            &row,
            licence_type,
            &latest,
            record,
            EventKind::Renewed,
            renewal.reason.as_deref(),
        )
        .await
    }

    /// The licence, its type and latest version, when `actor` may change it and it may be changed.
    async fn changeable(
        &self,
        actor: &Actor,
        licence: &str,
    ) -> Result<(LicenceRow, &LicenceType, StoredVersion)> {
        let row = self.find(licence).await?;
        let licence_type = self.licence_type(&row.key.type_code)?;
        actor.authorise(Role::Officer, &licence_type.issuer.uscc)?;
        match row.standing {
            Standing::Active => {}
            Standing::Suspended => {
                return Err(AppError::State(
                    "the licence is suspended: reinstate it first".into(),
                ))
            }
            Standing::Revoked => return Err(AppError::State("the licence is revoked".into())),
        }
        let latest = self
            .store
            .version(row.pk, row.latest_version)
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!("version {} of {}", row.latest_version, row.key))
            })?;
        Ok((row, licence_type, latest))
    }

    #[allow(clippy::too_many_arguments)]
    async fn append(
        &self,
        entry: &Entry,
        row: &LicenceRow,
        licence_type: &LicenceType,
        latest: &StoredVersion,
        record: Record,
        kind: EventKind,
        reason: Option<&str>,
    ) -> Result<Issued> {
        let next = row.latest_version + 1;
        if next > 999 {
            return Err(AppError::State("a licence has at most 999 versions".into()));
        }
        let version = self
            .sign(
                licence_type,
                row.key.version(next),
                record,
                Some(latest.payload_hash.clone()),
            )
            .await?;
        let audit = Entry {
            target: version.id.to_string(),
            detail: reason.unwrap_or_default().to_string(),
            ..entry.clone()
        };
        let seq = self
            .store
            .append_version(row, kind, &version, reason, &audit)
            .await?;
        self.verify_cache.licence_changed();
        Ok(self.issued(&version, seq))
    }

    /// Suspends (暂停), reinstates or revokes (注销/吊销) a licence: an event, no new version.
    pub async fn change_status(
        &self,
        actor: &Actor,
        licence: &str,
        kind: EventKind,
        reason: Option<&str>,
    ) -> Result<EventView> {
        let entry = actor.entry(&format!("licence.{}", verb(kind)), licence);
        let result = self
            .change_status_audited(actor, &entry, licence, kind, reason)
            .await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn change_status_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        licence: &str,
        kind: EventKind,
        reason: Option<&str>,
    ) -> Result<EventView> {
        let row = self.find(licence).await?;
        let licence_type = self.licence_type(&row.key.type_code)?;
        actor.authorise(Role::Officer, &licence_type.issuer.uscc)?;
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        let allowed = match (kind, row.standing) {
            (EventKind::Suspended, Standing::Active) => Ok(()),
            (EventKind::Reinstated, Standing::Suspended) => Ok(()),
            (EventKind::Revoked, Standing::Active | Standing::Suspended) => Ok(()),
            (EventKind::Suspended | EventKind::Reinstated | EventKind::Revoked, standing) => {
                Err(AppError::State(format!(
                    "cannot {} a licence that is {}",
                    verb(kind),
                    standing.as_str()
                )))
            }
            _ => Err(AppError::BadInput(format!(
                "{} is not a status change",
                kind.as_str()
            ))),
        };
        allowed?;
        if kind != EventKind::Reinstated && reason.is_none() {
            return Err(AppError::BadInput(format!(
                "reason: a reason is required to {} a licence",
                verb(kind)
            )));
        }
        let audit = Entry {
            target: row.key.to_string(),
            detail: reason.unwrap_or_default().to_string(),
            ..entry.clone()
        };
        let seq = self.store.append_status(&row, kind, reason, &audit).await?;
        self.verify_cache.licence_changed();
        let events = self.store.events_of(row.pk).await?;
        let event = events
            .iter()
            .find(|e| e.seq == seq)
            .ok_or_else(|| AppError::NotFound(format!("event {seq}")))?;
        Ok(EventView::from(event))
    }

    // -----------------------------------------------------------------------------------------
    // Reading

    /// The licence a reference names (a licence identifier, with or without version).
    pub async fn find(&self, reference: &str) -> Result<LicenceRow> {
        let reference = LicenceRef::parse(reference.trim())?;
        self.store
            .licence(reference.key())
            .await?
            .ok_or_else(|| AppError::NotFound(format!("licence {}", reference.key())))
    }

    /// The licence a reference names, when `actor` may read it (a refusal is audited).
    async fn readable(&self, actor: &Actor, reference: &str) -> Result<LicenceRow> {
        let row = self.find(reference).await?;
        let allowed = actor.authorise_read(&row.key.issuer);
        if allowed.is_err() {
            self.audit_failure(actor.entry("licence.read", &row.key.to_string()), &allowed)
                .await;
        }
        allowed.map(|()| row)
    }

    /// The version a reference names — `version` if given, else the identifier's own version, else
    /// the latest — of a licence `actor` may read.
    async fn readable_version(
        &self,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
    ) -> Result<(LicenceRow, StoredVersion)> {
        let parsed = LicenceRef::parse(reference.trim())?;
        let row = self.readable(actor, reference).await?;
        let wanted = match (&parsed, version) {
            (_, Some(v)) => v,
            (LicenceRef::Version(v), None) => v.version,
            (LicenceRef::Licence(_), None) => row.latest_version,
        };
        let stored = self
            .store
            .version(row.pk, wanted)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("version {wanted} of {}", row.key)))?;
        Ok((row, stored))
    }

    /// Shows a licence at the version named (or its latest), with its events.
    pub async fn show(
        &self,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
    ) -> Result<LicenceView> {
        let (row, stored) = self.readable_version(actor, reference, version).await?;
        let events = self.store.events_of(row.pk).await?;
        let licence_type = self.licence_type(&row.key.type_code)?;
        Ok(LicenceView {
            licence_id: row.key.to_string(),
            type_code: row.key.type_code.to_string(),
            type_name: licence_type.name.clone(),
            number: row.number.clone(),
            status: row.standing,
            latest_version: row.latest_version,
            version: self.version_view(&stored, row.latest_version)?,
            events: events.iter().map(EventView::from).collect(),
        })
    }

    /// Every version of a licence, oldest first.
    pub async fn versions(&self, actor: &Actor, reference: &str) -> Result<Vec<VersionView>> {
        let row = self.readable(actor, reference).await?;
        self.store
            .versions(row.pk)
            .await?
            .iter()
            .map(|v| self.version_view(v, row.latest_version))
            .collect()
    }

    fn version_view(&self, stored: &StoredVersion, latest: u32) -> Result<VersionView> {
        let full = stored.full()?;
        let r = &full.record;
        let validity = match timeliness(r.valid_from, r.valid_until, time_util::now()) {
            Timeliness::Current => "current",
            Timeliness::Expired => "expired",
            Timeliness::NotYetValid => "not_yet_valid",
        };
        Ok(VersionView {
            id: stored.identifier.clone(),
            version: stored.version,
            superseded: stored.version < latest,
            issued_at: time_util::format_rfc3339(time_util::from_unix(stored.issued_at)),
            validity,
            valid_from: time_util::format_date(r.valid_from),
            valid_until: r.valid_until.map(time_util::format_date),
            holder: HolderView {
                name: r.holder.name.clone(),
                id: r.holder.id.as_str().to_string(),
                kind: r.holder.id.kind().as_str(),
            },
            fields: r.fields.clone(),
            directory_version: full.directory_version,
            scan: r.scan.clone(),
            prev: full.prev.clone(),
            kid: crate::signing::keys::kid_text(&stored.kid),
            status_index: stored.status_index,
            qr_text: self.qr_text(&stored.qr_token),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Trust and verification

    pub fn trust_list(&self) -> TrustList {
        self.keys().trust_list()
    }

    /// The trust store verification uses (cached; rebuilt when keys change).
    pub fn trust_store(&self) -> Arc<TrustStore> {
        self.trust.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rebuilds the cached trust store after the key ring changed.
    fn refresh_trust(&self) -> Result<()> {
        let store = trust_store_of(&self.keys())?;
        *self.trust.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(store);
        self.verify_cache.trust_changed();
        Ok(())
    }

    pub async fn rotate_key(&self, actor: &Actor, department: &str) -> Result<String> {
        let entry = actor.entry("key.rotate", department);
        let result = self.rotate_key_audited(actor, &entry, department).await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn rotate_key_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        department: &str,
    ) -> Result<String> {
        let uscc = Uscc::parse(department)?;
        actor.authorise(Role::Admin, &uscc)?;
        let kid = self.keys_mut().rotate(&uscc)?;
        self.refresh_trust()?;
        let audit = Entry {
            detail: format!("new signer {kid}"),
            ..entry.clone()
        };
        self.store.append_audit(&audit).await?;
        Ok(kid)
    }

    pub async fn revoke_key(&self, actor: &Actor, kid: &str) -> Result<()> {
        let entry = actor.entry("key.revoke", kid);
        let result = self.revoke_key_audited(actor, &entry, kid).await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn revoke_key_audited(&self, actor: &Actor, entry: &Entry, kid: &str) -> Result<()> {
        if !actor.roles.contains(&Role::Admin) || actor.department.is_some() {
            return Err(AppError::Forbidden(format!(
                "{} may not revoke signer keys",
                actor.name
            )));
        }
        self.keys_mut().revoke(kid)?;
        self.refresh_trust()?;
        self.store.append_audit(entry).await?;
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Tokens and the audit trail

    /// Creates an API token for a department with roles; returns its id and the token itself,
    /// which is shown once and stored only as a hash.
    pub async fn create_token(
        &self,
        actor: &Actor,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<(i64, String)> {
        let entry = actor.entry("token.create", name);
        let result = self
            .create_token_audited(actor, &entry, name, department, roles)
            .await;
        self.audit_failure(entry, &result).await;
        result
    }

    async fn create_token_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        name: &str,
        department: Option<&str>,
        roles: &[Role],
    ) -> Result<(i64, String)> {
        if !actor.roles.contains(&Role::Admin) || actor.department.is_some() {
            return Err(AppError::Forbidden(format!(
                "{} may not create tokens",
                actor.name
            )));
        }
        let department = department.map(Uscc::parse).transpose()?;
        if let Some(d) = &department {
            if !self.directory.issuers().iter().any(|i| &i.uscc == d) {
                return Err(AppError::BadInput(format!(
                    "department: {d} issues no licence type of the directory"
                )));
            }
        }
        if roles.is_empty() {
            return Err(AppError::BadInput("roles: give at least one role".into()));
        }
        if department.is_none()
            && roles
                .iter()
                .any(|r| matches!(r, Role::Clerk | Role::Officer))
        {
            return Err(AppError::BadInput(
                "department: clerk and officer tokens belong to a department".into(),
            ));
        }
        let secret: [u8; 32] = rand::random();
        let token = format!("elt_{}", data_encoding::BASE64URL_NOPAD.encode(&secret));
        let role_names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let id = self
            .store
            .insert_token(
                name,
                department.as_ref().map(Uscc::as_str),
                &role_names.join(","),
                &crate::hash::sha256_hex(token.as_bytes()),
            )
            .await?;
        let audit = Entry {
            target: format!("token {id}"),
            detail: format!(
                "{name}; roles {}; department {}",
                role_names.join(","),
                department.as_ref().map_or("-", Uscc::as_str)
            ),
            ..entry.clone()
        };
        self.store.append_audit(&audit).await?;
        Ok((id, token))
    }

    pub async fn revoke_token(&self, actor: &Actor, id: i64) -> Result<()> {
        let entry = actor.entry("token.revoke", &format!("token {id}"));
        let result = async {
            if !actor.roles.contains(&Role::Admin) || actor.department.is_some() {
                return Err(AppError::Forbidden(format!(
                    "{} may not revoke tokens",
                    actor.name
                )));
            }
            if !self.store.revoke_token(id).await? {
                return Err(AppError::NotFound(format!("active token {id}")));
            }
            self.store.append_audit(&entry).await?;
            Ok(())
        }
        .await;
        self.audit_failure(entry, &result).await;
        result
    }

    /// The actor a bearer token stands for, or None for an unknown or revoked token.
    pub async fn actor_for_token(&self, token: &str, source: &str) -> Result<Option<Actor>> {
        let Some(row) = self
            .store
            .active_token(&crate::hash::sha256_hex(token.as_bytes()))
            .await?
        else {
            return Ok(None);
        };
        let department = row
            .department
            .as_deref()
            .map(Uscc::parse)
            .transpose()
            .map_err(|e| AppError::Config(format!("token {}: {e}", row.id)))?;
        Ok(Some(Actor {
            name: format!("token:{}:{}", row.id, row.name),
            source: source.to_string(),
            department,
            roles: row.roles.split(',').filter_map(Role::parse).collect(),
        }))
    }

    /// Records a refused request that never reached an operation (no or unknown token).
    pub async fn audit_refusal(&self, source: &str, action: &str, target: &str, reason: &str) {
        let entry = Entry {
            outcome: "refused: unauthenticated".into(),
            detail: reason.to_string(),
            ..Entry::new("anonymous", source, action, target)
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not append an audit record");
        }
    }

    /// Appends the audit record of a failed attempt: `refused` when authorisation said no.
    pub(crate) async fn audit_failure<T>(&self, mut entry: Entry, result: &Result<T>) {
        let Err(error) = result else { return };
        entry.outcome = match error {
            AppError::Forbidden(_) => format!("refused: {}", error.code()),
            _ => format!("failed: {}", error.code()),
        };
        entry.detail = error.to_string().chars().take(500).collect();
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not append an audit record");
        }
    }

    pub async fn audit_records(
        &self,
        actor: &Actor,
        filter: &crate::store::AuditFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::Record>> {
        if !actor.roles.contains(&Role::Admin) {
            return Err(AppError::Forbidden(format!(
                "{} may not read the audit trail",
                actor.name
            )));
        }
        Ok(self
            .store
            .audit_records(filter, after, limit.clamp(1, 1000))
            .await?)
    }

    /// Status list `n` of `issuer`, signed with the department's current key (SPEC §7).
    pub async fn status_list(&self, issuer: &str, n: u64) -> Result<Vec<u8>> {
        let issuer = Uscc::parse(issuer)?;
        if !self.directory.issuers().iter().any(|i| i.uscc == issuer) {
            return Err(AppError::NotFound(format!("issuing department {issuer}")));
        }
        let lo = n
            .checked_mul(LIST_LEN)
            .ok_or_else(|| AppError::BadInput("list number too large".into()))?;
        let entries = self
            .store
            .status_entries(&issuer, lo, lo + LIST_LEN)
            .await?;
        let mut list = StatusList::new(issuer.clone(), n, time_util::now().unix_timestamp());
        for e in entries {
            let bit = e.index - lo;
            match e.standing {
                Standing::Revoked => list.invalid.set(bit),
                Standing::Suspended => {
                    list.invalid.set(bit);
                    list.suspended.set(bit);
                }
                Standing::Active => {}
            }
            if e.version < e.latest_version {
                list.superseded.set(bit);
            }
        }
        let keys = self.keys();
        let (key, kid) = keys.signing_key(&issuer)?;
        Ok(list.sign(key, &kid))
    }

    /// Online verification of a QR text, its base32 part, or a version identifier (SPEC §7).
    pub async fn verify(&self, input: &str) -> Result<Verification> {
        let input = input.trim();
        let token = if input.starts_with(crate::identifiers::IDENTIFIER_PREFIX) {
            let id = VersionId::parse(input)?;
            let row = self.find(input).await?;
            let stored = self
                .store
                .version(row.pk, id.version)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("version {}", id)))?;
            stored.qr_token
        } else {
            match qr::token_from_text(input) {
                Ok(token) => token,
                Err(e) => return Ok(Verification::failed(Outcome::Malformed, e.to_string())),
            }
        };
        self.verify_token(&token).await
    }

    /// Online verification of QR token bytes: the token's own checks, then the store's state.
    pub async fn verify_token(&self, token: &[u8]) -> Result<Verification> {
        let trust = self.trust_store();
        let authentic = match self
            .verify_cache
            .token(token, || verify::check_token(token, &trust))
        {
            Ok(a) => a,
            Err(rejection) => return Ok(rejection.into()),
        };
        if authentic.signer_revoked {
            return Ok(authentic.verification(Outcome::SignerRevoked, "签发证书已被吊销"));
        }
        let id = authentic.id().clone();
        let Some(registered) = self.registered(&id).await? else {
            return Ok(authentic.verification(
                Outcome::Revoked,
                "本服务的证照登记簿中没有这个证照版本：不能视为有效",
            ));
        };
        if registered.payload_hash != data_encoding::HEXLOWER.encode(&authentic.token.record_hash) {
            return Ok(verify::Verification::failed(
                Outcome::BadSignature,
                "the code does not match the registered record",
            ));
        }
        let mut verification = match registered.standing {
            Standing::Revoked => authentic.verification(Outcome::Revoked, "证照已注销"),
            Standing::Suspended => authentic.verification(Outcome::Suspended, "证照已暂停"),
            Standing::Active if id.version < registered.latest_version => {
                authentic.verification(Outcome::Superseded, "证照已变更，此版本已被新版本替代")
            }
            Standing::Active => authentic.by_dates(time_util::now().unix_timestamp()),
        };
        if let Some(licence) = &mut verification.licence {
            licence.fields = registered.public_fields.clone();
            licence.number = Some(registered.number.clone());
        }
        verification.current = Some(Current {
            status: registered.standing.as_str().to_string(),
            version: registered.latest_version,
            identifier: id.key.version(registered.latest_version).to_string(),
        });
        Ok(verification)
    }

    /// What the register says of a version (None when it holds no such version), remembered for
    /// a moment by the verification cache.
    async fn registered(&self, id: &VersionId) -> Result<Option<Arc<Registered>>> {
        let cache_key = id.to_string();
        if let Some(hit) = self.verify_cache.registered(&cache_key) {
            return Ok(Some(hit));
        }
        let epoch = self.verify_cache.epoch();
        let Some(row) = self.store.verification_row(&id.key, id.version).await? else {
            return Ok(None);
        };
        let Some((payload_hash, full_record)) = row.version else {
            return Ok(None);
        };
        let licence_type = self.licence_type(&id.key.type_code)?;
        let full = FullRecord::from_signed(&full_record).map_err(|e| {
            AppError::Store(StoreError::Corrupt(format!("full record of {id}: {e}")))
        })?;
        let registered = Arc::new(Registered {
            number: row.number,
            latest_version: row.latest_version,
            standing: row.standing,
            payload_hash,
            public_fields: public_fields(&licence_type.fields, &full.record.fields),
        });
        self.verify_cache.keep(cache_key, epoch, registered.clone());
        Ok(Some(registered))
    }
}

fn trust_store_of(keys: &KeyRing) -> Result<TrustStore> {
    TrustStore::new(&keys.trust_list(), None).map_err(|e| AppError::Config(e.to_string()))
}

/// The fields that may appear publicly, in directory order, with their labels.
fn public_fields(defs: &[FieldDef], values: &BTreeMap<String, FieldValue>) -> Vec<PublicField> {
    defs.iter()
        .filter(|d| d.public)
        .filter_map(|d| {
            values.get(&d.key).map(|v| PublicField {
                key: d.key.clone(),
                label: d.label.clone(),
                value: v.to_string(),
            })
        })
        .collect()
}

fn verb(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Suspended => "suspend",
        EventKind::Reinstated => "reinstate",
        EventKind::Revoked => "revoke",
        EventKind::Issued => "issue",
        EventKind::Amended => "amend",
        EventKind::Renewed => "renew",
    }
}

fn parse_date(s: &str, field: &str) -> Result<Date> {
    time_util::parse_date(s.trim()).ok_or_else(|| {
        AppError::BadInput(format!("{field}: {s:?} is not a date written YYYY-MM-DD"))
    })
}

/// The number the service gives a licence that arrives without one: prefix, year, serial.
fn assign_number(licence_type: &LicenceType, today: Date, serial: u64) -> String {
    format!("{}{}{serial:08}", licence_type.number_prefix, today.year())
}

/// A record turned back into input, so an amendment is validated exactly like a new record.
fn record_input(record: &Record) -> RecordInput {
    RecordInput {
        number: Some(record.number.clone()),
        holder: crate::licence::HolderInput {
            name: record.holder.name.clone(),
            id: record.holder.id.as_str().to_string(),
        },
        valid_from: Some(time_util::format_date(record.valid_from)),
        valid_until: record.valid_until.map(time_util::format_date),
        fields: record
            .fields
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    FieldValue::Integer(n) => serde_json::Value::from(*n),
                    FieldValue::Text(s) => serde_json::Value::from(s.as_str()),
                };
                (k.clone(), value)
            })
            .collect(),
    }
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
            AppError::BadInput(_) => "bad_input",
            AppError::Store(StoreError::Conflict) => "conflict",
            AppError::Store(_) => "store",
            AppError::Keys(_) => "keys",
            AppError::Directory(_) => "directory",
            AppError::Config(_) => "config",
            AppError::Blob(_) => "blob_store",
        }
    }

    /// The error body of SPEC §10; validation errors list every field and reason.
    pub fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({"code": self.code(), "message": self.to_string()});
        if let AppError::Invalid(errors) = self {
            error["fields"] = serde_json::to_value(errors).expect("errors serialise");
        }
        serde_json::json!({ "error": error })
    }
}
