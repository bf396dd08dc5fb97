//! The link to the city e-licence library (SPEC §8): every change as an event with its signed
//! record and the GB/T 36903 metadata codes national libraries use, read in seq order.

use base64::Engine;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::{Actor, App, AppError, Role};
use crate::directory::HolderKind;
use crate::licence::EventKind;
use crate::signing::claims::FullRecord;
use crate::signing::cose::Envelope;
use crate::store::StoreError;
use crate::time_util;

/// Most events one feed page returns.
pub const MAX_PAGE: i64 = 1000;

/// One change event as the feed and the push deliver it.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub seq: i64,
    pub licence_id: String,
    pub version: u32,
    pub kind: EventKind,
    pub at: String,
    pub reason: Option<String>,
    /// Base64 of the version's full-record COSE_Sign1.
    pub record: String,
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedPage {
    pub events: Vec<FeedEvent>,
    /// Resume from here: the last seq returned, or `after` when there was nothing new.
    pub next: i64,
}

/// The GB/T 36903 element codes of a version (SPEC §8).
pub fn metadata(full: &FullRecord, issuer_name: &str) -> Map<String, Value> {
    let r = &full.record;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("ZZMC", full.licence_name.clone().into());
    put("ZZLXDM", full.claims.cti.key.type_code.to_string().into());
    put("ZZBH", r.number.clone().into());
    put("ZZBS", full.claims.cti.to_string().into());
    put("ZZBFJG", issuer_name.into());
    put("ZZBFJGDM", full.claims.iss.to_string().into());
    let issued = time_util::date_in_cst(time_util::from_unix(full.claims.iat));
    put("ZZBFRQ", time_util::format_date(issued).into());
    put("CZZT", r.holder.name.clone().into());
    put("CZZTDM", r.holder.id.as_str().into());
    let code_type = match r.holder.id.kind() {
        HolderKind::Person => "111",
        HolderKind::Organisation => "001",
    };
    put("CZZTDMLX", code_type.into());
    put("ZZYXQQSRQ", time_util::format_date(r.valid_from).into());
    put(
        "ZZYXQJZRQ",
        r.valid_until
            .map_or(Value::Null, |d| time_util::format_date(d).into()),
    );
    for (key, value) in &r.fields {
        put(&format!("KZ_{key}"), value.to_string().into());
    }
    m
}

impl App {
    /// Events with seq greater than `after`, at most `limit` (library and admin tokens).
    pub async fn feed(&self, actor: &Actor, after: i64, limit: i64) -> Result<FeedPage, AppError> {
        if !actor
            .roles
            .iter()
            .any(|r| matches!(r, Role::Library | Role::Admin))
        {
            return Err(AppError::Forbidden(format!(
                "{} may not read the feed",
                actor.name
            )));
        }
        if after < 0 {
            return Err(AppError::BadInput("after: must be 0 or a seq".into()));
        }
        let rows = self
            .store
            .events_after(after, limit.clamp(1, MAX_PAGE))
            .await?;
        let mut events = Vec::with_capacity(rows.len());
        for (event, full_record) in rows {
            let full = Envelope::parse(&full_record)
                .ok()
                .and_then(|e| FullRecord::from_payload(e.payload()).ok())
                .ok_or_else(|| {
                    AppError::Store(StoreError::Corrupt(format!(
                        "full record of event {}",
                        event.seq
                    )))
                })?;
            let issuer_name = self
                .directory
                .issuers()
                .into_iter()
                .find(|i| i.uscc == full.claims.iss)
                .map_or_else(|| full.claims.iss.to_string(), |i| i.name);
            events.push(FeedEvent {
                seq: event.seq,
                licence_id: event.licence_id,
                version: event.version,
                kind: event.kind,
                at: event.at,
                reason: event.reason,
                record: base64::engine::general_purpose::STANDARD.encode(&full_record),
                metadata: metadata(&full, &issuer_name),
            });
        }
        let next = events.last().map_or(after, |e| e.seq);
        Ok(FeedPage { events, next })
    }
}
