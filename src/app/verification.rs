//! The trust list, signed status lists and online verification.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::directory::FieldDef;
use crate::identifiers::{Uscc, VersionId};
use crate::licence::{FieldValue, Standing};
use crate::signing::qr;
use crate::signing::status_list::{list_uri, EntryStatus, StatusList, LIST_LEN};
use crate::signing::trust::{TrustList, TrustStore};
use crate::time_util;
use crate::verify::{self, Current, Outcome, PublicField, Verification};
use crate::verify_cache::Registered;

use super::*;

impl App {
    pub fn trust_list(&self) -> TrustList {
        self.keys().trust_list()
    }

    /// The trust store verification uses (cached; rebuilt when keys change).
    pub fn trust_store(&self) -> Arc<TrustStore> {
        self.trust.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Status list `n` of `issuer`, signed with the department's current key (SPEC §7).
    pub async fn status_list(&self, issuer: &str, n: u64) -> Result<Vec<u8>> {
        let issuer = Uscc::parse(issuer)?;
        if !self.directory.issuers().iter().any(|i| i.uscc == issuer) {
            return Err(AppError::NotFound(format!("issuing department {issuer}")));
        }
        // Indexes are stored as signed 64-bit integers: a list beyond them holds nothing.
        let lo = n
            .checked_mul(LIST_LEN)
            .filter(|lo| {
                lo.checked_add(LIST_LEN)
                    .is_some_and(|hi| hi <= i64::MAX as u64)
            })
            .ok_or_else(|| AppError::BadInput(format!("status list number {n} is too large")))?;
        let entries = self
            .store
            .status_entries(&issuer, lo, lo + LIST_LEN)
            .await?;
        self.sync_keys().await?;
        let now = time_util::now();
        let today = time_util::date_in_cst(now);
        let verify_base = self.verify_base().await?;
        let lifetime = self.settings.status_list_lifetime_seconds;
        let mut list = StatusList::new(
            &verify_base,
            issuer.clone(),
            n,
            now.unix_timestamp(),
            lifetime,
        );
        for e in entries {
            let status = match e.standing {
                Standing::Revoked => EntryStatus::Revoked,
                Standing::Suspended => EntryStatus::Suspended,
                Standing::Active if e.succession.superseded_by(e.version, today).is_some() => {
                    EntryStatus::Superseded
                }
                Standing::Active => continue,
            };
            list.entries.set(e.index - lo, status);
        }
        let keys = self.keys();
        let (key, kid) = keys.signing_key(&issuer)?;
        Ok(list.sign(key, &kid))
    }

    /// The URI of every status list that holds an index (SPEC §7, the draft's Status List
    /// Aggregation): a verifier prefetches them all to check offline later.
    pub async fn status_list_uris(&self) -> Result<Vec<String>> {
        let verify_base = self.verify_base().await?;
        let mut uris = Vec::new();
        for (issuer, n) in self.store.status_lists_in_use().await? {
            let issuer = Uscc::parse(&issuer).map_err(|e| {
                crate::store::StoreError::Corrupt(format!("status slot issuer {issuer:?}: {e}"))
            })?;
            uris.push(list_uri(&verify_base, &issuer, n));
        }
        Ok(uris)
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
        let authentic = match self
            .verify_cache
            .token(token, || verify::check_token(token, &self.trust_store()))
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
        let now = time_util::now();
        let today = time_util::date_in_cst(now);
        let succession = &registered.succession;
        let superseded_by = succession.superseded_by(id.version, today);
        let mut verification = match (registered.standing, superseded_by) {
            (Standing::Revoked, _) => authentic.verification(Outcome::Revoked, "证照已注销"),
            (Standing::Suspended, _) => authentic.verification(Outcome::Suspended, "证照已暂停"),
            (Standing::Active, Some(by)) => {
                authentic.verification(Outcome::Superseded, verify::superseded_message(by.kind))
            }
            (Standing::Active, None) => authentic.by_dates(now.unix_timestamp()),
        };
        if let Some(licence) = &mut verification.licence {
            licence.fields = registered.public_fields.clone();
            licence.number = Some(registered.number.clone());
        }
        let in_effect = succession.in_effect(today);
        verification.current = Some(Current {
            status: registered.standing.as_str().to_string(),
            version: in_effect,
            identifier: id.key.version(in_effect).to_string(),
            superseded_by: superseded_by.map(Into::into),
            pending: succession.pending(today).map(Into::into),
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
        let full = crate::store::decode_full_record(&full_record, id)?;
        let succession = self.store.succession(row.licence_pk).await?;
        let registered = Arc::new(Registered {
            number: row.number,
            succession,
            standing: row.standing,
            payload_hash,
            public_fields: public_fields(&licence_type.fields, &full.record.fields),
        });
        self.verify_cache.keep(cache_key, epoch, registered.clone());
        Ok(Some(registered))
    }
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
