//! Reading licences back: a licence by reference (with the read permission checked and a refusal
//! audited), its versions as the API shows them, and each version's PDF, archived on first request.

use crate::blobs::Blobs;
use crate::identifiers::LicenceRef;
use crate::licence::{timeliness, Timeliness, VersionStart};
use crate::signing::qr;
use crate::store::{LicenceQuery, LicenceRow, StoredVersion};
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

    /// The licences a search finds among those `actor` may read (its department's, or all for a
    /// city-wide reader), newest first, `limit` a page from page `page` (0 the first). An empty
    /// search lists the most recent. A refusal is audited as `licence.search`.
    pub async fn search(
        &self,
        actor: &Actor,
        search: &LicenceSearch,
        page: u32,
        limit: u32,
    ) -> Result<SearchPage> {
        let scope = self
            .scope_audited(actor, Action::ReadLicence, "licence.search", "licences")
            .await?;
        let given = |name: &str, value: &str| -> Result<Option<String>> {
            let value = value.trim();
            if value.chars().count() > MAX_SEARCH_TEXT {
                return Err(AppError::BadInput(format!(
                    "{name}: at most {MAX_SEARCH_TEXT} characters"
                )));
            }
            Ok(Some(value.to_string()).filter(|v| !v.is_empty()))
        };
        let licence_id = match given("identifier", &search.identifier)? {
            Some(text) => Some(LicenceRef::parse(&text)?.key().to_string()),
            None => None,
        };
        let number = given("number", &search.number)?;
        let holder_id = given("holder_id", &search.holder_id)?.map(|id| id.to_uppercase());
        let holder_name = given("holder_name", &search.holder_name)?;
        let limit = i64::from(limit.max(1));
        let found = self
            .store
            .search_licences(&LicenceQuery {
                issuer: scope.department(),
                licence_id: licence_id.as_deref(),
                number: number.as_deref(),
                holder_id: holder_id.as_deref(),
                holder_name: holder_name.as_deref(),
                offset: i64::from(page) * limit,
                // One more than a page says whether there is a next page.
                limit: limit + 1,
            })
            .await?;
        let more = found.len() as i64 > limit;
        let licences = found
            .into_iter()
            .take(limit as usize)
            .map(|m| LicenceSummary {
                type_name: crate::identifiers::TypeCode::parse(&m.type_code)
                    .ok()
                    .and_then(|code| self.directory.get(&code))
                    .map_or_else(|| m.type_code.clone(), |t| t.name.clone()),
                licence_id: m.licence_id,
                type_code: m.type_code,
                number: m.number,
                holder_name: m.holder_name,
                status: m.standing,
                created_at: m.created_at,
            })
            .collect();
        Ok(SearchPage { licences, more })
    }

    /// Refuses unless `actor` may change the licence `reference` names: what the console asks
    /// before it shows the confirmation of a change, so that a person who may not make it is
    /// refused at once. The refusal is audited as `audit_action`, as the change itself would be;
    /// the change is still checked again by its own operation.
    pub async fn may_change(
        &self,
        actor: &Actor,
        reference: &str,
        audit_action: &str,
    ) -> Result<()> {
        let row = self.find(reference).await?;
        let allowed = permissions::check(actor, Action::ChangeLicence, Some(&row.key.issuer));
        if allowed.is_err() {
            self.audit_failure(actor.entry(audit_action, &row.key.to_string()), &allowed)
                .await;
        }
        allowed
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
        let pdf = self.render(
            &licence_type,
            &full,
            &qr_text,
            &stored.identifier,
            &stored.kid,
        )?;
        self.archive_pdf(&stored.identifier, &pdf).await;
        Ok(pdf)
    }

    /// The QR code of a version (the latest unless named) alone, as an image for a holder to
    /// show on a phone (亮证): whoever may read the version's PDF may have its code.
    pub async fn qr_image(
        &self,
        actor: &Actor,
        reference: &str,
        version: Option<u32>,
        format: crate::render::QrImageFormat,
    ) -> Result<Vec<u8>> {
        let (_, stored) = self.readable_version(actor, reference, version).await?;
        let qr_text = qr::qr_text(&stored.verify_base, &stored.qr_token);
        format
            .encode(&qr_text)
            .map_err(|e| AppError::Internal(format!("QR image of {}: {e}", stored.identifier)))
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

/// The longest text a search field takes (a name or number is far shorter).
const MAX_SEARCH_TEXT: usize = 200;

/// What a licence search asks for: each field empty or a condition that must hold. The
/// identifier (a licence's, or one version's), the number and the holder's id match exactly; the
/// holder's name matches any part of the name in any version.
#[derive(Debug, Clone, Default)]
pub struct LicenceSearch {
    pub identifier: String,
    pub number: String,
    pub holder_name: String,
    pub holder_id: String,
}

/// One licence a search found.
#[derive(Debug, Clone)]
pub struct LicenceSummary {
    pub licence_id: String,
    pub type_code: String,
    pub type_name: String,
    pub number: String,
    /// The holder's name in the latest version.
    pub holder_name: String,
    pub status: crate::licence::Standing,
    pub created_at: String,
}

/// A page of search results, and whether a next page has more.
#[derive(Debug, Clone)]
pub struct SearchPage {
    pub licences: Vec<LicenceSummary>,
    pub more: bool,
}
