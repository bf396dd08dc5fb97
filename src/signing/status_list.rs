//! Status lists (SPEC §7) in the IETF Token Status List's CWT form
//! (draft-ietf-oauth-status-list-17): per issuing department, lists of L = 131,072 entries of
//! 2 bits; every version holds one randomly chosen index. A signed list lets a verifier check a
//! licence offline without telling anyone which licence it holds.
//!
//! The COSE_Sign1 carries the protected header `{1: -8, 4: kid, 16: "application/statuslist+cwt"}`
//! and the claims `{2: sub (the list's URI), 6: iat, 4: exp, 65534: ttl, 65533: {"bits": 2, "lst":
//! zlib(entries)}}`. Entry i sits in byte i / 4 at bit (i % 4) × 2: entry 0 in the least
//! significant bits of byte 0, as the draft orders them.

use std::io::{Read, Write};

use ciborium::Value;
use ed25519_dalek::SigningKey;
use flate2::{read::ZlibDecoder, write::ZlibEncoder, Compression};

use super::cose::{self, Envelope};
use crate::identifiers::Uscc;

/// Entries per list.
pub const LIST_LEN: u64 = 131_072;

/// Bits per entry: four statuses.
pub const BITS: u8 = 2;

/// The media type the list is served as, also its COSE `typ` header (label 16).
pub const MEDIA_TYPE: &str = "application/statuslist+cwt";

/// How long a verifier that can fetch a fresh list may keep using a cached one (the `ttl`
/// claim), in seconds: the HTTP cache lifetime of the route.
pub const TTL_SECONDS: i64 = 300;

/// The path under the verify base where list `n` of an issuer is served.
const ROUTE: &str = "/api/v1/status-lists/";

const SUB: i64 = 2;
const EXP: i64 = 4;
const IAT: i64 = 6;
const STATUS_LIST: i64 = 65533;
const TTL: i64 = 65534;

const BYTES: usize = (LIST_LEN / 4) as usize;

/// What a status list says of one index: the entry's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    Valid = 0,
    Revoked = 1,
    Suspended = 2,
    /// The application value (3): a newer version of the same licence has taken effect.
    Superseded = 3,
}

impl EntryStatus {
    fn from_bits(bits: u8) -> EntryStatus {
        match bits & 0b11 {
            0 => EntryStatus::Valid,
            1 => EntryStatus::Revoked,
            2 => EntryStatus::Suspended,
            _ => EntryStatus::Superseded,
        }
    }
}

/// A list's entries, four to a byte, entry 0 in the least significant bits of byte 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entries(Vec<u8>);

impl Default for Entries {
    fn default() -> Self {
        Entries(vec![0; BYTES])
    }
}

impl Entries {
    /// Sets entry `i` (an index within the list) to `status`.
    pub fn set(&mut self, i: u64, status: EntryStatus) {
        let (byte, shift) = ((i / 4) as usize, (i % 4) * 2);
        self.0[byte] = (self.0[byte] & !(0b11 << shift)) | ((status as u8) << shift);
    }

    pub fn get(&self, i: u64) -> EntryStatus {
        let byte = self.0.get((i / 4) as usize).copied().unwrap_or(0);
        EntryStatus::from_bits(byte >> ((i % 4) * 2))
    }

    fn deflate(&self) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(&self.0).expect("writing to a Vec");
        encoder.finish().expect("writing to a Vec")
    }

    fn inflate(data: &[u8]) -> Result<Entries, String> {
        let mut out = Vec::new();
        ZlibDecoder::new(data)
            .take(BYTES as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("lst is not zlib: {e}"))?;
        if out.len() != BYTES {
            return Err(format!("lst holds {} bytes, not {BYTES}", out.len()));
        }
        Ok(Entries(out))
    }
}

/// One status list: whose, which, when it was made and until when it may be believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    /// The list's URI (its `sub`), where it is served.
    pub uri: String,
    /// The issuer and list number, read from the URI.
    pub issuer: Uscc,
    pub n: u64,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Seconds a verifier that can refresh may cache the list (absent in lists of others).
    pub ttl: Option<i64>,
    pub entries: Entries,
}

/// `{VERIFY_BASE}/api/v1/status-lists/{issuer}/{n}` (SPEC §7), VERIFY_BASE as the QR text
/// spells it, so a verifier derives it from the code it scanned.
pub fn list_uri(verify_base: &str, issuer: &Uscc, n: u64) -> String {
    format!("{verify_base}{ROUTE}{issuer}/{n}")
}

/// The issuer and list number a list URI names (its last two path segments after the route).
fn parse_uri(uri: &str) -> Result<(Uscc, u64), String> {
    let tail = uri
        .rfind(ROUTE)
        .map(|i| &uri[i + ROUTE.len()..])
        .ok_or_else(|| format!("sub {uri:?} is not a status list URI"))?;
    let (issuer, n) = tail
        .split_once('/')
        .ok_or_else(|| format!("sub {uri:?} names no list number"))?;
    let issuer = Uscc::parse(issuer).map_err(|e| format!("sub {uri:?}: {e}"))?;
    let n = n
        .parse()
        .map_err(|_| format!("sub {uri:?}: list number is not a whole number"))?;
    Ok((issuer, n))
}

impl StatusList {
    /// An empty list `n` of `issuer`, signed at `issued_at` and believed for `lifetime` seconds.
    pub fn new(
        verify_base: &str,
        issuer: Uscc,
        n: u64,
        issued_at: i64,
        lifetime: i64,
    ) -> StatusList {
        StatusList {
            uri: list_uri(verify_base, &issuer, n),
            issuer,
            n,
            issued_at,
            expires_at: issued_at.saturating_add(lifetime),
            ttl: Some(TTL_SECONDS.min(lifetime)), // the settings keep lifetime ≥ TTL_SECONDS
            entries: Entries::default(),
        }
    }

    /// The list and entry an index lives at.
    pub fn locate(index: u64) -> (u64, u64) {
        (index / LIST_LEN, index % LIST_LEN)
    }

    /// The status of a version's index (an index of any list: only its place in the list counts).
    pub fn entry(&self, index: u64) -> EntryStatus {
        self.entries.get(Self::locate(index).1)
    }

    pub fn to_payload(&self) -> Vec<u8> {
        let int = |n: i64| Value::Integer(n.into());
        // Keys in the order of their encoded bytes (RFC 8949 deterministic encoding): the
        // shorter text first.
        let status_list = Value::Map(vec![
            (
                Value::Text("lst".into()),
                Value::Bytes(self.entries.deflate()),
            ),
            (Value::Text("bits".into()), Value::Integer(BITS.into())),
        ]);
        let mut claims = vec![
            (int(SUB), Value::Text(self.uri.clone())),
            (int(EXP), int(self.expires_at)),
            (int(IAT), int(self.issued_at)),
        ];
        claims.push((int(STATUS_LIST), status_list));
        if let Some(ttl) = self.ttl {
            claims.push((int(TTL), int(ttl)));
        }
        let mut out = Vec::new();
        ciborium::into_writer(&Value::Map(claims), &mut out).expect("writing to a Vec");
        out
    }

    pub fn sign(&self, key: &SigningKey, kid: &[u8]) -> Vec<u8> {
        cose::sign_typed(key, kid, MEDIA_TYPE, self.to_payload())
    }

    /// Reads a list's payload (its signature is checked by the caller, who holds the trust list).
    pub fn from_payload(payload: &[u8]) -> Result<StatusList, String> {
        let value: Value = ciborium::from_reader(payload).map_err(|e| format!("not CBOR: {e}"))?;
        let Value::Map(claims) = value else {
            return Err("status list claims must be a map".into());
        };
        let get = |key: i64| {
            claims
                .iter()
                .find(|(k, _)| matches!(k, Value::Integer(i) if i128::from(*i) == i128::from(key)))
                .map(|(_, v)| v)
        };
        let int = |key: i64, name: &str| match get(key) {
            Some(Value::Integer(i)) => {
                i64::try_from(*i).map_err(|_| format!("{name} out of range"))
            }
            Some(_) => Err(format!("{name} ({key}) must be an integer")),
            None => Err(format!("status list has no {name} ({key})")),
        };
        let uri = match get(SUB) {
            Some(Value::Text(s)) => s.clone(),
            _ => return Err("status list has no text sub (2)".into()),
        };
        let (issuer, n) = parse_uri(&uri)?;
        let ttl = match get(TTL) {
            None => None,
            Some(_) => Some(int(TTL, "ttl")?).filter(|t| *t > 0),
        };
        Ok(StatusList {
            uri,
            issuer,
            n,
            issued_at: int(IAT, "iat")?,
            // A list with no end could vouch for a licence forever: SPEC §7 requires exp.
            expires_at: int(EXP, "exp")?,
            ttl,
            entries: read_status_list_claim(get(STATUS_LIST))?,
        })
    }

    /// Parses a signed list; returns it with its envelope for the caller to check the signature.
    pub fn parse_signed(bytes: &[u8]) -> Result<(StatusList, Envelope), String> {
        let envelope = Envelope::parse(bytes).map_err(|e| e.to_string())?;
        if envelope.typ() != Some(MEDIA_TYPE) {
            return Err(format!("protected header typ (16) must be {MEDIA_TYPE:?}"));
        }
        let list = Self::from_payload(envelope.payload())?;
        Ok((list, envelope))
    }
}

/// The `status_list` claim (65533): `{"bits": 2, "lst": zlib bytes}`.
fn read_status_list_claim(claim: Option<&Value>) -> Result<Entries, String> {
    let Some(Value::Map(fields)) = claim else {
        return Err("status list has no status_list map (65533)".into());
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == name))
            .map(|(_, v)| v)
    };
    match field("bits") {
        Some(Value::Integer(b)) if i128::from(*b) == i128::from(BITS) => {}
        _ => return Err(format!("status_list bits must be {BITS}")),
    }
    match field("lst") {
        Some(Value::Bytes(lst)) => Entries::inflate(lst),
        _ => Err("status_list lst must be a byte string".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "HTTPS://ZZ.EXAMPLE.GOV.CN";

    #[test]
    fn entries_count_from_the_least_significant_bits_and_survive_signing() {
        let issuer = Uscc::parse("11330122MB0000001M").unwrap();
        let mut list = StatusList::new(BASE, issuer.clone(), 2, 1_700_000_000, 86_400);
        let (n, i) = StatusList::locate(2 * LIST_LEN + 9);
        assert_eq!((n, i), (2, 9));
        list.entries.set(8, EntryStatus::Revoked);
        list.entries.set(9, EntryStatus::Suspended);
        list.entries.set(11, EntryStatus::Superseded);
        assert_eq!(list.entries.0[2], 0b1100_1001);
        list.entries.set(8, EntryStatus::Valid);
        assert_eq!(list.entries.0[2], 0b1100_1000, "set clears the old value");
        let key = SigningKey::from_bytes(&[3; 32]);
        let signed = list.sign(&key, &[9; 8]);
        let (back, envelope) = StatusList::parse_signed(&signed).unwrap();
        assert!(envelope.verifies_with(&key.verifying_key()));
        assert_eq!(back, list);
        assert_eq!(
            back.uri,
            "HTTPS://ZZ.EXAMPLE.GOV.CN/api/v1/status-lists/11330122MB0000001M/2"
        );
        assert_eq!((&back.issuer, back.n), (&issuer, 2));
        assert_eq!(back.expires_at - back.issued_at, 86_400);
        assert_eq!(back.ttl, Some(TTL_SECONDS));
        assert_eq!(back.entry(2 * LIST_LEN + 9), EntryStatus::Suspended);
        assert_eq!(back.entry(2 * LIST_LEN + 11), EntryStatus::Superseded);
        assert_eq!(back.entry(2 * LIST_LEN + 8), EntryStatus::Valid);
        assert!(
            signed.len() < 400,
            "a sparse list compresses to {} bytes",
            signed.len()
        );
    }

    /// The list's payload with claim `key` replaced by `value` (removed when None).
    fn with_claim(list: &StatusList, key: i64, value: Option<Value>) -> Vec<u8> {
        let claims: Value = ciborium::from_reader(&list.to_payload()[..]).unwrap();
        let Value::Map(mut claims) = claims else {
            unreachable!("claims are a map")
        };
        claims.retain(|(k, _)| k != &Value::Integer(key.into()));
        claims.extend(value.map(|v| (Value::Integer(key.into()), v)));
        let mut payload = Vec::new();
        ciborium::into_writer(&Value::Map(claims), &mut payload).unwrap();
        payload
    }

    #[test]
    fn a_list_without_its_typ_exp_or_two_bits_is_refused() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let list = StatusList::new(BASE, Uscc::parse("11330122MB0000001M").unwrap(), 0, 1, 60);
        let untyped = cose::sign(&key, &[9; 8], list.to_payload());
        let refusal = StatusList::parse_signed(&untyped).unwrap_err();
        assert!(refusal.contains("typ"), "{refusal}");
        let no_exp = with_claim(&list, EXP, None);
        let refusal = StatusList::from_payload(&no_exp).unwrap_err();
        assert!(refusal.contains("exp"), "{refusal}");
        let one_bit = Value::Map(vec![
            (
                Value::Text("lst".into()),
                Value::Bytes(list.entries.deflate()),
            ),
            (Value::Text("bits".into()), Value::Integer(1.into())),
        ]);
        let one_bit = with_claim(&list, STATUS_LIST, Some(one_bit));
        let refusal = StatusList::from_payload(&one_bit).unwrap_err();
        assert!(refusal.contains("bits"), "{refusal}");
        let foreign = with_claim(
            &list,
            SUB,
            Some(Value::Text("https://x.example/l/1".into())),
        );
        let refusal = StatusList::from_payload(&foreign).unwrap_err();
        assert!(refusal.contains("not a status list URI"), "{refusal}");
    }
}
