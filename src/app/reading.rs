//! Reading licences back: a licence by reference (with the read permission checked and a refusal
//! audited), its versions as the API shows them, and each version's PDF, archived on first request.

use crate::blobs::Blobs;
use crate::identifiers::LicenceRef;
use crate::licence::{timeliness, Timeliness, VersionStart};
use crate::signing::qr;
use crate::store::{LicenceRow, StoredVersion};
use crate::time_util;

use super::*;

impl App {
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
        let allowed = permissions::check(actor, Action::ReadLicence, Some(&row.key.issuer));
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
        let succession = self.store.succession(row.pk).await?;
        let today = time_util::today_cst();
        Ok(LicenceView {
            licence_id: row.key.to_string(),
            type_code: row.key.type_code.to_string(),
            type_name: licence_type.name.clone(),
            number: row.number.clone(),
            status: row.standing,
            latest_version: row.latest_version,
            in_effect_version: succession.in_effect(today),
            pending: succession.pending(today).map(Into::into),
            version: self.version_view(&stored, succession.superseded_by(stored.version, today))?,
            events: events.iter().map(EventView::from).collect(),
        })
    }

    /// Every version of a licence, oldest first.
    pub async fn versions(&self, actor: &Actor, reference: &str) -> Result<Vec<VersionView>> {
        let row = self.readable(actor, reference).await?;
        let succession = self.store.succession(row.pk).await?;
        let today = time_util::today_cst();
        self.store
            .versions(row.pk)
            .await?
            .iter()
            .map(|v| self.version_view(v, succession.superseded_by(v.version, today)))
            .collect()
    }

    fn version_view(
        &self,
        stored: &StoredVersion,
        superseded_by: Option<VersionStart>,
    ) -> Result<VersionView> {
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
            superseded: superseded_by.is_some(),
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
            kid: crate::signing::cert::kid_text(&stored.kid),
            status_index: stored.status_index,
            qr_text: qr::qr_text(&stored.verify_base, &stored.qr_token),
        })
    }

    /// The PDF of a version (the latest unless named): the archived bytes. A version without
    /// them (issued singly and not fetched yet; conversion archives at once) is rendered with
    /// what it was made with — the directory version and the verify base it recorded — so every
    /// process, whatever its settings, makes the same bytes; they are archived then.
    pub async fn pdf(
        &self,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
    ) -> Result<Vec<u8>> {
        let (row, stored) = self.readable_version(actor, reference, version).await?;
        if let Some(archived) = self.blobs.get(&Blobs::pdf_key(&stored.identifier)).await? {
            return Ok(archived);
        }
        let full = stored.full()?;
        let licence_type = self
            .type_at(&row.key.type_code, full.directory_version)
            .await?;
        let qr_text = qr::qr_text(&stored.verify_base, &stored.qr_token);
        let pdf = self.render(&licence_type, &full, &qr_text, &stored.identifier)?;
        self.archive_pdf(&stored.identifier, &pdf).await;
        Ok(pdf)
    }

    /// Archives a version's PDF on its first rendering, so that later requests serve these
    /// bytes. Not at issue: rendering there cost every issue a page (2 ms in release, 45 ms in
    /// debug builds) for PDFs often never fetched, and the bytes are the same whenever they are
    /// made. A failure is logged, not returned: the reader has the PDF, and the next request
    /// renders the same bytes again.
    async fn archive_pdf(&self, identifier: &str, pdf: &[u8]) {
        if let Err(e) = self.blobs.put(&Blobs::pdf_key(identifier), pdf).await {
            tracing::warn!(version = identifier, error = %e, "could not archive the PDF");
        }
    }
}
