//! Issuing and changing licences: issue, amend, renew and status changes, each validated,
//! signed, stored and audited as one step. Reading them back is in `reading.rs`.

use time::{Date, Duration};

use crate::audit::Entry;
use crate::directory::{Directory, LicenceType};
use crate::identifiers::{LicenceKey, TypeCode, VersionId};
use crate::licence::{
    validate, Door, EventKind, FieldValue, LicenceVersion, Record, RecordInput, Standing,
    ValidationErrors,
};
use crate::messages::Reason;
use crate::signing::claims::FullRecord;
use crate::signing::qr;
use crate::signing::{sign_version, Unsigned};
use crate::store::{Inserted, LicenceRow, NewLicence, StoreError, StoredVersion};
use crate::time_util;
use crate::transparency::statement::StatusStatement;

use super::*;

impl App {
    /// Issues a new licence (version 1) of `type_code` from `input`; `scan` is the hex SHA-256 of
    /// an archived scan of the paper licence, if any.
    pub async fn issue(
        &self,
        actor: &Actor,
        type_code: &str,
        input: &RecordInput,
        scan: Option<String>,
    ) -> Result<Issued> {
        self.audited(actor.entry("licence.issue", type_code), async |entry| {
            self.issue_audited(actor, entry, type_code, input, scan)
                .await
        })
        .await
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
        permissions::check(actor, Action::IssueLicence, Some(&licence_type.issuer.uscc))?;
        let serial = self
            .store
            .reserve_serials(&licence_type.code, &licence_type.issuer.uscc, 1)
            .await?;
        let today = time_util::today_cst();
        let mut record = self
            .check_record(licence_type, input, Door::Issue, today, || {
                assign_number(licence_type, today, serial)
            })
            .map_err(AppError::Invalid)?;
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
            None => Err(AppError::Internal(
                "the store answered nothing for an insert".into(),
            )),
        }
    }

    /// The one validation of a record, whichever way it comes in (issue, amend, renew, convert
    /// from a folder or an upload): [`validate`]'s rules of the type, then the licence font.
    pub(crate) fn check_record(
        &self,
        licence_type: &LicenceType,
        input: &RecordInput,
        door: Door,
        today: Date,
        assign_number: impl FnOnce() -> String,
    ) -> std::result::Result<Record, ValidationErrors> {
        let record = validate(licence_type, input, door, today, assign_number)?;
        self.check_printable(&record)?;
        Ok(record)
    }

    /// Refuses a record with a character the licence font cannot print (it would be an empty box
    /// on the PDF), naming each field and character.
    fn check_printable(&self, record: &Record) -> std::result::Result<(), ValidationErrors> {
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
                (!missing.is_empty())
                    .then(|| crate::licence::FieldError::new(&field, &Reason::Unprintable(missing)))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Renders a version's record and QR text with the type as it was when it was issued; a
    /// layout that signs (renderer 3) is signed with the seal of the version's signer `kid`.
    pub(super) fn render(
        &self,
        licence_type: &LicenceType,
        full: &FullRecord,
        qr_text: &str,
        identifier: &str,
        kid: &[u8],
    ) -> Result<Vec<u8>> {
        let seal = if self.renderer.signs(licence_type) {
            Some(self.pdf_seal(kid)?)
        } else {
            None
        };
        self.renderer
            .render(licence_type, full, qr_text, seal.as_ref())
            .map_err(|e| AppError::Internal(format!("rendering {identifier}: {e}")))
    }

    /// The PDF seal of signer `kid` (docs/DESIGN.md, "PDF seals"): the register's certificate
    /// with this host's private key.
    pub fn pdf_seal(&self, kid: &[u8]) -> Result<crate::signing::pdf_seal::PdfSeal> {
        let kid_hex = data_encoding::HEXLOWER.encode(kid);
        let keys = self.keys();
        let certificate = keys.seal_certificate(kid).ok_or_else(|| {
            AppError::Config(format!(
                "signer {kid_hex} has no PDF seal in the register: install the seal CA's key \
                 (keys/pdf-seal-ca.key.pem) and restart, or issue its seal under the county's CA"
            ))
        })?;
        Ok(KeyRing::pdf_seal(
            &self.settings.keys_dir,
            &kid_hex,
            certificate,
        )?)
    }

    /// A licence type as the directory defined it at `directory_version`.
    pub(super) async fn type_at(
        &self,
        code: &TypeCode,
        directory_version: i64,
    ) -> Result<LicenceType> {
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
            qr_text: qr::qr_text(&version.verify_base, &version.qr_token),
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
        self.sync_keys().await?;
        let status_index = self.store.reserve_status_indexes(issuer, 1).await?[0];
        let verify_base = self.verify_base().await?;
        self.sign_reserved(licence_type, id, record, prev, status_index, verify_base)
    }

    /// Signs a version whose status index is reserved already (batch conversion reserves many
    /// at once and signs on every core), for QR codes and a PDF on `verify_base` (the register's).
    pub(crate) fn sign_reserved(
        &self,
        licence_type: &LicenceType,
        id: VersionId,
        record: Record,
        prev: Option<String>,
        status_index: u64,
        verify_base: String,
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
                verify_base,
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
            .map_err(|e| AppError::Internal(format!("{}: {e}", version.id)))?;
        self.render(
            licence_type,
            &full,
            &qr::qr_text(&version.verify_base, &version.qr_token),
            &version.id.to_string(),
            &version.kid,
        )
    }

    /// Amends (变更) a licence: a new version with changed holder name or fields.
    pub async fn amend(&self, actor: &Actor, licence: &str, change: &Amendment) -> Result<Issued> {
        self.audited(actor.entry("licence.amend", licence), async |entry| {
            self.amend_audited(actor, entry, licence, change).await
        })
        .await
    }

    async fn amend_audited(
        &self,
        actor: &Actor,
        entry: &Entry,
        licence: &str,
        change: &Amendment,
    ) -> Result<Issued> {
        let (row, licence_type, latest) = self.changeable(actor, licence).await?;
        self.refuse_amending_before_renewal(&row).await?;
        let full = latest.full()?;
        let mut input = record_input(&full.record);
        if let Some(name) = &change.holder_name {
            input.holder.name = name.clone();
        }
        for (key, value) in &change.fields {
            input.fields.insert(key.clone(), value.clone());
        }
        let today = time_util::today_cst();
        let mut record = self
            .check_record(licence_type, &input, Door::Amendment, today, || {
                unreachable!("an amendment keeps its number")
            })
            .map_err(AppError::Invalid)?;
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

    /// An amendment copies the latest version's validity, so one made while a renewal is pending
    /// would only take effect with that renewal, leaving the old content in force until then;
    /// one given the current version's validity instead would supersede the renewal for good.
    /// Neither is what the holder asked for, so it is refused with the way out.
    async fn refuse_amending_before_renewal(&self, row: &LicenceRow) -> Result<()> {
        let today = time_util::today_cst();
        let pending = self.store.succession(row.pk).await?.pending(today);
        match pending {
            Some(renewal) if renewal.kind == EventKind::Renewed => {
                let starts = time_util::format_date(renewal.valid_from);
                Err(AppError::State(format!(
                    "version {} of {} is a renewal that takes effect on {starts}: an amendment \
                     now would only take effect with it. Amend on or after {starts}, or first \
                     renew again with valid_from {} to bring the renewal forward",
                    renewal.version,
                    row.key,
                    time_util::format_date(today)
                )))
            }
            _ => Ok(()),
        }
    }

    /// Renews (延续) a licence: a new version with a new validity period.
    pub async fn renew(&self, actor: &Actor, licence: &str, renewal: &Renewal) -> Result<Issued> {
        self.audited(actor.entry("licence.renew", licence), async |entry| {
            self.renew_audited(actor, entry, licence, renewal).await
        })
        .await
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
        // The new validity goes through the one validation with the record it renews; a missing
        // end is the type's default validity from the new start.
        let mut input = record_input(&full.record);
        input.valid_from =
            Some(renewal.valid_from.clone().unwrap_or_else(|| {
                time_util::format_date((old_until + Duration::days(1)).max(today))
            }));
        input.valid_until = renewal.valid_until.clone();
        let record = self
            .check_record(licence_type, &input, Door::Renewal, today, || {
                unreachable!("a renewal keeps its number")
            })
            .map_err(AppError::Invalid)?;
        let record = Record {
            scan: full.record.scan.clone(),
            ..record
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
        permissions::check(
            actor,
            Action::ChangeLicence,
            Some(&licence_type.issuer.uscc),
        )?;
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
        self.audited(
            actor.entry(&format!("licence.{}", verb(kind)), licence),
            async |entry| {
                self.change_status_audited(actor, entry, licence, kind, reason)
                    .await
            },
        )
        .await
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
        permissions::check(
            actor,
            Action::ChangeLicence,
            Some(&licence_type.issuer.uscc),
        )?;
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
        let at = time_util::format_rfc3339(time_util::now());
        self.sync_keys().await?;
        let statement = self.sign_statement(&StatusStatement {
            licence_id: &row.key.to_string(),
            version: row.latest_version,
            kind,
            at: &at,
            reason,
        })?;
        let change = (kind, at.as_str(), reason);
        let seq = self
            .store
            .append_status(&row, change, &statement, &audit)
            .await?;
        self.verify_cache.licence_changed();
        let events = self.store.events_of(row.pk).await?;
        let event = events
            .iter()
            .find(|e| e.seq == seq)
            .ok_or_else(|| AppError::NotFound(format!("event {seq}")))?;
        Ok(EventView::from(event))
    }
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

/// The number the service gives a licence that arrives without one: prefix, year, serial.
fn assign_number(licence_type: &LicenceType, today: Date, serial: u64) -> String {
    format!("{}{}{serial:08}", licence_type.number_prefix, today.year())
}

/// A record turned back into input, so an amendment or a renewal is validated exactly like a
/// new record.
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
