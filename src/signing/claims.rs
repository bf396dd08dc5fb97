//! The CWT claim sets of SPEC §6: the full record (claim -65537) and the QR token (claim -65538),
//! encoded as deterministic CBOR (RFC 8949 §4.2.1: map keys sorted by their encoded bytes), so the
//! same version always gives the same bytes and another implementation can reproduce them.

use std::collections::BTreeMap;

use ciborium::Value;
use time::Date;

use crate::directory::HolderKind;
use crate::identifiers::{ResidentId, Uscc, VersionId};
use crate::licence::{FieldValue, Holder, HolderId, Record};
use crate::time_util;

const ISS: i64 = 1;
const EXP: i64 = 4;
const IAT: i64 = 6;
const CTI: i64 = 7;
/// The Token Status List's `status` claim (SPEC §7): where a version's entry is.
const STATUS: i64 = 65535;
const FULL_RECORD: i64 = -65537;
const QR_TOKEN: i64 = -65538;

/// The registered claims both signed forms carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub iss: Uscc,
    /// Issue time, seconds since the epoch (UTC).
    pub iat: i64,
    /// End of validity: the first second after `valid_until` ends in China; None when permanent.
    pub exp: Option<i64>,
    pub cti: VersionId,
}

impl Claims {
    pub fn new(id: &VersionId, iat: i64, valid_until: Option<Date>) -> Claims {
        Claims {
            iss: id.key.issuer.clone(),
            iat,
            exp: valid_until.map(|d| time_util::end_of_day_cst(d).unix_timestamp()),
            cti: id.clone(),
        }
    }
}

/// Everything the full record says about one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullRecord {
    pub claims: Claims,
    pub licence_name: String,
    pub record: Record,
    pub directory_version: i64,
    pub prev: Option<String>,
    /// The version's status-list entry (claim 65535); None in versions signed before SPEC §7
    /// took up the Token Status List, whose bytes stay as they were.
    pub status: Option<StatusReference>,
}

/// `{"status_list": {"idx": …, "uri": …}}`: the entry `idx` of the list at `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReference {
    pub idx: u64,
    pub uri: String,
}

/// What the QR token says: only public data, as little as possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrToken {
    pub claims: Claims,
    pub licence_name: String,
    pub holder_name: String,
    pub masked_holder_id: String,
    pub valid_from: Date,
    pub valid_until: Option<Date>,
    /// SHA-256 of the full record's payload bytes.
    pub record_hash: [u8; 32],
    pub status_index: u64,
}

/// Why a payload is not a claim set of SPEC §6.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claims: {0}")]
pub struct ClaimsError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ClaimsError> {
    Err(ClaimsError(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn int(n: i64) -> Value {
    Value::Integer(n.into())
}

fn text(s: &str) -> Value {
    Value::Text(s.to_string())
}

fn optional_date(d: Option<Date>) -> Value {
    d.map_or(Value::Null, |d| text(&time_util::format_date(d)))
}

/// Sorts every map by the bytes of its encoded keys (RFC 8949 core deterministic encoding).
fn deterministic(value: Value) -> Value {
    match value {
        Value::Map(entries) => {
            let mut keyed: Vec<(Vec<u8>, (Value, Value))> = entries
                .into_iter()
                .map(|(k, v)| (encode(&k), (k, deterministic(v))))
                .collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Map(keyed.into_iter().map(|(_, kv)| kv).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(deterministic).collect()),
        other => other,
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn claim_set(claims: &Claims, extra: Vec<(i64, Value)>) -> Vec<u8> {
    let mut entries = vec![
        (int(ISS), text(claims.iss.as_str())),
        (int(IAT), int(claims.iat)),
        (int(CTI), Value::Bytes(claims.cti.to_string().into_bytes())),
    ];
    entries.extend(extra.into_iter().map(|(key, value)| (int(key), value)));
    if let Some(exp) = claims.exp {
        entries.push((int(EXP), int(exp)));
    }
    encode(&deterministic(Value::Map(entries)))
}

impl StatusReference {
    fn to_value(&self) -> Value {
        let idx = Value::Integer(self.idx.into());
        let list = Value::Map(vec![(text("idx"), idx), (text("uri"), text(&self.uri))]);
        Value::Map(vec![(text("status_list"), list)])
    }

    fn from_value(value: Value) -> Result<StatusReference, ClaimsError> {
        let status = TextMap::new(value, "status (65535)")?;
        let list = TextMap::new(status.get("status_list")?.clone(), "status_list")?;
        Ok(StatusReference {
            idx: list.uint("idx")?,
            uri: list.text("uri")?,
        })
    }
}

impl FullRecord {
    /// The payload bytes that get signed (and whose SHA-256 the QR token and the next version carry).
    pub fn to_payload(&self) -> Vec<u8> {
        let r = &self.record;
        let fields = r
            .fields
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    FieldValue::Integer(n) => int(*n),
                    FieldValue::Text(s) => text(s),
                };
                (text(k), value)
            })
            .collect();
        let id = self.claims.cti.to_string();
        let holder = Value::Map(vec![
            (text("name"), text(&r.holder.name)),
            (text("id"), text(r.holder.id.as_str())),
            (text("kind"), text(r.holder.id.kind().as_str())),
        ]);
        let opt_text = |s: &Option<String>| s.as_deref().map_or(Value::Null, text);
        let body = Value::Map(vec![
            (text("id"), text(&id)),
            (text("version"), int(i64::from(self.claims.cti.version))),
            (text("type"), text(self.claims.cti.key.type_code.as_str())),
            (text("name"), text(&self.licence_name)),
            (text("number"), text(&r.number)),
            (text("holder"), holder),
            (
                text("valid_from"),
                text(&time_util::format_date(r.valid_from)),
            ),
            (text("valid_until"), optional_date(r.valid_until)),
            (text("fields"), Value::Map(fields)),
            (text("directory_version"), int(self.directory_version)),
            (text("scan"), opt_text(&r.scan)),
            (text("prev"), opt_text(&self.prev)),
        ]);
        let mut extra = vec![(FULL_RECORD, body)];
        extra.extend(self.status.as_ref().map(|s| (STATUS, s.to_value())));
        claim_set(&self.claims, extra)
    }

    /// The record a signed full record carries (the signature is not checked: for reading back
    /// what this service signed and stored).
    pub fn from_signed(cose_sign1: &[u8]) -> Result<FullRecord, String> {
        let envelope = super::cose::Envelope::parse(cose_sign1).map_err(|e| e.to_string())?;
        FullRecord::from_payload(envelope.payload()).map_err(|e| e.to_string())
    }

    pub fn from_payload(payload: &[u8]) -> Result<FullRecord, ClaimsError> {
        let (claims, body, status) = parse_claim_set(payload, FULL_RECORD)?;
        let body = TextMap::new(body, "full record")?;
        let id = body.text("id")?;
        if id != claims.cti.to_string() {
            return err("full record id differs from cti");
        }
        let version = body.uint("version")?;
        if version != u64::from(claims.cti.version) {
            return err("full record version differs from cti");
        }
        if body.text("type")? != claims.cti.key.type_code.as_str() {
            return err("full record type differs from cti");
        }
        let holder = TextMap::new(body.get("holder")?.clone(), "holder")?;
        let kind = holder.text("kind")?;
        let holder_id = holder.text("id")?;
        let id = match kind.as_str() {
            "person" => HolderId::Person(
                ResidentId::parse(&holder_id).map_err(|e| ClaimsError(e.to_string()))?,
            ),
            "organisation" => HolderId::Organisation(
                Uscc::parse(&holder_id).map_err(|e| ClaimsError(e.to_string()))?,
            ),
            other => return err(format!("holder kind {other:?}")),
        };
        let mut fields = BTreeMap::new();
        for (k, v) in as_map(body.get("fields")?, "fields")? {
            let key = as_text(k, "field key")?;
            let value = match v {
                Value::Integer(n) => FieldValue::Integer(
                    i64::try_from(*n).map_err(|_| ClaimsError(format!("field {key} too large")))?,
                ),
                Value::Text(s) => FieldValue::Text(s.clone()),
                _ => return err(format!("field {key} is neither text nor integer")),
            };
            fields.insert(key, value);
        }
        let record = Record {
            number: body.text("number")?,
            holder: Holder {
                name: holder.text("name")?,
                id,
            },
            valid_from: body.date("valid_from")?,
            valid_until: body.optional_date("valid_until")?,
            fields,
            scan: body.optional_text("scan")?,
        };
        Ok(FullRecord {
            claims,
            licence_name: body.text("name")?,
            record,
            directory_version: i64::try_from(body.uint("directory_version")?)
                .map_err(|_| ClaimsError("directory_version too large".into()))?,
            prev: body.optional_text("prev")?,
            status: status.map(StatusReference::from_value).transpose()?,
        })
    }

    pub fn holder_kind(&self) -> HolderKind {
        self.record.holder.id.kind()
    }
}

impl QrToken {
    pub fn to_payload(&self) -> Vec<u8> {
        let body = Value::Map(vec![
            (int(4), text(&self.licence_name)),
            (int(5), text(&self.holder_name)),
            (int(6), text(&self.masked_holder_id)),
            (int(7), text(&time_util::format_date(self.valid_from))),
            (int(8), optional_date(self.valid_until)),
            (int(9), Value::Bytes(self.record_hash.to_vec())),
            (int(10), Value::Integer(self.status_index.into())),
        ]);
        claim_set(&self.claims, vec![(QR_TOKEN, body)])
    }

    pub fn from_payload(payload: &[u8]) -> Result<QrToken, ClaimsError> {
        let (claims, body, _status) = parse_claim_set(payload, QR_TOKEN)?;
        let body = IntMap::new(body)?;
        let hash = match body.get(9)? {
            Value::Bytes(b) if b.len() == 32 => b.as_slice().try_into().expect("32 bytes"),
            _ => return err("QR claim 9 must be a 32-byte SHA-256"),
        };
        Ok(QrToken {
            claims,
            licence_name: as_text(body.get(4)?, "QR claim 4")?,
            holder_name: as_text(body.get(5)?, "QR claim 5")?,
            masked_holder_id: as_text(body.get(6)?, "QR claim 6")?,
            valid_from: as_date(body.get(7)?, "QR claim 7")?,
            valid_until: match body.get(8)? {
                Value::Null => None,
                v => Some(as_date(v, "QR claim 8")?),
            },
            record_hash: hash,
            status_index: as_uint(body.get(10)?, "QR claim 10")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// The registered claims, claim `extra_key` (which must be there) and the status claim (if it is).
fn parse_claim_set(
    payload: &[u8],
    extra_key: i64,
) -> Result<(Claims, Value, Option<Value>), ClaimsError> {
    let value: Value =
        ciborium::from_reader(payload).map_err(|e| ClaimsError(format!("not CBOR: {e}")))?;
    let entries = as_map(&value, "claims")?;
    let find = |key: i64| {
        entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)))
            .map(|(_, v)| v)
    };
    let iss = as_text(
        find(ISS).ok_or_else(|| ClaimsError("no iss".into()))?,
        "iss",
    )?;
    let iss = Uscc::parse(&iss).map_err(|e| ClaimsError(format!("iss: {e}")))?;
    let iat = as_int(
        find(IAT).ok_or_else(|| ClaimsError("no iat".into()))?,
        "iat",
    )?;
    let exp = find(EXP).map(|v| as_int(v, "exp")).transpose()?;
    let cti = match find(CTI) {
        Some(Value::Bytes(b)) => {
            String::from_utf8(b.clone()).map_err(|_| ClaimsError("cti is not UTF-8".into()))?
        }
        _ => return err("cti must be a byte string"),
    };
    let cti = VersionId::parse(&cti).map_err(|e| ClaimsError(format!("cti: {e}")))?;
    if cti.key.issuer != iss {
        return err("iss differs from the issuer named in cti");
    }
    let body = find(extra_key)
        .ok_or_else(|| ClaimsError(format!("no claim {extra_key}")))?
        .clone();
    let status = find(STATUS).cloned();
    Ok((Claims { iss, iat, exp, cti }, body, status))
}

fn as_map<'a>(v: &'a Value, what: &str) -> Result<&'a Vec<(Value, Value)>, ClaimsError> {
    match v {
        Value::Map(m) => Ok(m),
        _ => err(format!("{what} must be a map")),
    }
}

fn as_text(v: &Value, what: &str) -> Result<String, ClaimsError> {
    match v {
        Value::Text(s) => Ok(s.clone()),
        _ => err(format!("{what} must be text")),
    }
}

fn as_int(v: &Value, what: &str) -> Result<i64, ClaimsError> {
    match v {
        Value::Integer(i) => {
            i64::try_from(*i).map_err(|_| ClaimsError(format!("{what} out of range")))
        }
        _ => err(format!("{what} must be an integer")),
    }
}

fn as_uint(v: &Value, what: &str) -> Result<u64, ClaimsError> {
    match v {
        Value::Integer(i) => {
            u64::try_from(*i).map_err(|_| ClaimsError(format!("{what} must be unsigned")))
        }
        _ => err(format!("{what} must be an unsigned integer")),
    }
}

fn as_date(v: &Value, what: &str) -> Result<Date, ClaimsError> {
    let s = as_text(v, what)?;
    time_util::parse_date(&s).ok_or_else(|| ClaimsError(format!("{what} is not a full-date")))
}

struct TextMap {
    entries: Vec<(Value, Value)>,
    what: &'static str,
}

impl TextMap {
    fn new(v: Value, what: &'static str) -> Result<TextMap, ClaimsError> {
        match v {
            Value::Map(entries) => Ok(TextMap { entries, what }),
            _ => err(format!("{what} must be a map")),
        }
    }

    fn get(&self, key: &str) -> Result<&Value, ClaimsError> {
        self.entries
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v)
            .ok_or_else(|| ClaimsError(format!("{} has no {key:?}", self.what)))
    }

    fn text(&self, key: &str) -> Result<String, ClaimsError> {
        as_text(self.get(key)?, key)
    }

    fn uint(&self, key: &str) -> Result<u64, ClaimsError> {
        as_uint(self.get(key)?, key)
    }

    fn date(&self, key: &str) -> Result<Date, ClaimsError> {
        as_date(self.get(key)?, key)
    }

    fn optional_text(&self, key: &str) -> Result<Option<String>, ClaimsError> {
        match self.get(key)? {
            Value::Null => Ok(None),
            v => as_text(v, key).map(Some),
        }
    }

    fn optional_date(&self, key: &str) -> Result<Option<Date>, ClaimsError> {
        match self.get(key)? {
            Value::Null => Ok(None),
            v => as_date(v, key).map(Some),
        }
    }
}

struct IntMap(Vec<(Value, Value)>);

impl IntMap {
    fn new(v: Value) -> Result<IntMap, ClaimsError> {
        match v {
            Value::Map(entries) => Ok(IntMap(entries)),
            _ => err("QR claims must be a map"),
        }
    }

    fn get(&self, key: u8) -> Result<&Value, ClaimsError> {
        self.0
            .iter()
            .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)))
            .map(|(_, v)| v)
            .ok_or_else(|| ClaimsError(format!("QR token has no claim {key}")))
    }
}
