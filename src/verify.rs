//! Verification (SPEC §7): what a QR token proves by itself (signature, signer, dates), then what
//! the status list (offline) or the store (online) adds. Both paths share [`check_token`] and
//! [`Verification`], so the CLI, the API and the page answer alike.

use serde::Serialize;

use crate::identifiers::{Uscc, VersionId};
use crate::licence::{timeliness, EventKind, Timeliness, VersionStart};
use crate::signing::claims::QrToken;
use crate::signing::cose::Envelope;
use crate::signing::status_list::{EntryStatus, StatusList};
use crate::signing::trust::{SignerCert, SignerStatus, TrustStore};
use crate::time_util;

/// The result kinds of SPEC §7, plus `stale` for an offline check whose cached status list is too
/// old to say anything but "do not trust this as valid".
#[derive(utoipa::ToSchema, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Valid,
    Expired,
    NotYetValid,
    Superseded,
    Suspended,
    Revoked,
    BadSignature,
    UnknownSigner,
    SignerRevoked,
    Malformed,
    Stale,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Expired => "expired",
            Outcome::NotYetValid => "not_yet_valid",
            Outcome::Superseded => "superseded",
            Outcome::Suspended => "suspended",
            Outcome::Revoked => "revoked",
            Outcome::BadSignature => "bad_signature",
            Outcome::UnknownSigner => "unknown_signer",
            Outcome::SignerRevoked => "signer_revoked",
            Outcome::Malformed => "malformed",
            Outcome::Stale => "stale",
        }
    }

    /// How the verification page says it (有效 or why not).
    pub fn label_zh(self) -> &'static str {
        match self {
            Outcome::Valid => "签名验证通过，证照在有效期内",
            Outcome::Expired => "已过期",
            Outcome::NotYetValid => "尚未生效",
            Outcome::Superseded => "已被新版本替代",
            Outcome::Suspended => "已暂停",
            Outcome::Revoked => "已注销",
            Outcome::BadSignature => "签名无效",
            Outcome::UnknownSigner => "签发机构不可信",
            Outcome::SignerRevoked => "签发证书已吊销",
            Outcome::Malformed => "无法识别的二维码",
            Outcome::Stale => "状态信息过期，请联网核验",
        }
    }
}

/// What the licence shows publicly (masked holder id; public fields only, online).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct PublicLicence {
    pub id: String,
    pub name: String,
    /// The licence number (online verification only: the QR token does not carry it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub version: u32,
    pub holder_name: String,
    pub holder_id: String,
    pub valid_from: String,
    pub valid_until: Option<String>,
    pub issued_at: String,
    /// Public fields with their Chinese labels, in directory order (online verification only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<PublicField>,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct PublicField {
    pub key: String,
    pub label: String,
    pub value: String,
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Department {
    pub name: String,
    pub uscc: String,
}

/// The licence's state in the store now (online verification only).
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Current {
    pub status: String,
    /// The version in effect today (a renewal made early is `pending` until it begins).
    pub version: u32,
    pub identifier: String,
    /// The version that replaced the one scanned, when it is superseded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<Successor>,
    /// A later version that has yet to take effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<Successor>,
}

/// A later version of the licence: how it came about and from when it is valid.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Successor {
    pub version: u32,
    /// `renewed` (延续) or `amended` (变更).
    pub kind: EventKind,
    pub valid_from: String,
}

impl From<VersionStart> for Successor {
    fn from(v: VersionStart) -> Successor {
        Successor {
            version: v.version,
            kind: v.kind,
            valid_from: time_util::format_date(v.valid_from),
        }
    }
}

/// What the online check says of a superseded version: renewed (延续) or amended (变更).
pub fn superseded_message(by: EventKind) -> &'static str {
    match by {
        EventKind::Renewed => "证照已延续，此版本已被新版本替代",
        _ => "证照已变更，此版本已被新版本替代",
    }
}

#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct Verification {
    pub result: Outcome,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<PublicLicence>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<Department>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<Current>,
}

impl Verification {
    /// The line under the page's headline: the result, and for a superseded version whether it
    /// was renewed (已延续) or amended (已变更) when the online check knows.
    pub fn line_zh(&self) -> String {
        let by = self.current.as_ref().and_then(|c| c.superseded_by.as_ref());
        match (self.result, by) {
            (Outcome::Superseded, Some(by)) => {
                let word = match by.kind {
                    EventKind::Renewed => "已延续",
                    _ => "已变更",
                };
                format!("{word}，此版本已被第 {} 版替代", by.version)
            }
            (result, _) => result.label_zh().to_string(),
        }
    }

    pub fn failed(result: Outcome, message: impl Into<String>) -> Verification {
        Verification {
            result,
            message: message.into(),
            licence: None,
            department: None,
            kid: None,
            current: None,
        }
    }
}

/// A token whose signature verified under a trusted signer.
pub struct Authentic {
    pub token: QrToken,
    pub signer: SignerCert,
    pub signer_revoked: bool,
}

impl Authentic {
    pub fn id(&self) -> &VersionId {
        &self.token.claims.cti
    }

    /// A verification with this token's public data and the given result.
    pub fn verification(&self, result: Outcome, message: impl Into<String>) -> Verification {
        let t = &self.token;
        Verification {
            result,
            message: message.into(),
            licence: Some(PublicLicence {
                id: t.claims.cti.to_string(),
                name: t.licence_name.clone(),
                number: None,
                version: t.claims.cti.version,
                holder_name: t.holder_name.clone(),
                holder_id: t.masked_holder_id.clone(),
                valid_from: time_util::format_date(t.valid_from),
                valid_until: t.valid_until.map(time_util::format_date),
                issued_at: time_util::format_rfc3339(time_util::from_unix(t.claims.iat)),
                fields: Vec::new(),
            }),
            department: Some(Department {
                name: self.signer.department.clone(),
                uscc: self.signer.uscc.to_string(),
            }),
            kid: Some(self.signer.kid_text()),
            current: None,
        }
    }

    /// The result the dates give, when nothing about status says otherwise.
    pub fn by_dates(&self, now: i64) -> Verification {
        let t = &self.token;
        match timeliness(t.valid_from, t.valid_until, time_util::from_unix(now)) {
            Timeliness::Current => self.verification(Outcome::Valid, "证照有效"),
            Timeliness::Expired => self.verification(Outcome::Expired, "证照已超过有效期"),
            Timeliness::NotYetValid => {
                self.verification(Outcome::NotYetValid, "证照尚未到生效日期")
            }
        }
    }
}

/// Why a token proves nothing: malformed, unknown signer or bad signature.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub result: Outcome,
    pub message: String,
}

impl From<Rejection> for Verification {
    fn from(r: Rejection) -> Verification {
        Verification::failed(r.result, r.message)
    }
}

fn reject(result: Outcome, message: impl Into<String>) -> Rejection {
    Rejection {
        result,
        message: message.into(),
    }
}

/// Decodes a QR token, finds its signer and checks the signature. A revoked signer is noted in
/// the `Authentic` it returns: what that means is the caller's to say.
pub fn check_token(bytes: &[u8], trust: &TrustStore) -> Result<Authentic, Rejection> {
    let envelope = Envelope::parse(bytes).map_err(|e| reject(Outcome::Malformed, e.to_string()))?;
    let token = QrToken::from_payload(envelope.payload())
        .map_err(|e| reject(Outcome::Malformed, e.to_string()))?;
    let signer = authenticate(&envelope, &token.claims.iss, token.claims.iat, trust)?;
    Ok(Authentic {
        signer_revoked: signer.status == SignerStatus::Revoked,
        signer: signer.clone(),
        token,
    })
}

/// The trusted signer whose signature `envelope` carries for issuer `iss` at `at` (seconds): a
/// certificate with the envelope's kid, under the pinned root at that time, signing for `iss`.
/// Used for QR tokens, full records and status lists alike.
pub fn authenticate<'a>(
    envelope: &Envelope,
    iss: &Uscc,
    at: i64,
    trust: &'a TrustStore,
) -> Result<&'a SignerCert, Rejection> {
    // A kid is a truncated hash: try every certificate with it that may sign for this issuer
    // and chains to the root at the time of issue.
    let candidates: Vec<&SignerCert> = trust
        .with_kid(&envelope.kid)
        .into_iter()
        .filter(|s| &s.uscc == iss && trust.chains_at(s, at))
        .collect();
    if candidates.is_empty() {
        return Err(reject(
            Outcome::UnknownSigner,
            format!(
                "no certificate under the trusted root signs for {iss} with kid {}",
                crate::signing::cert::kid_text(&envelope.kid)
            ),
        ));
    }
    candidates
        .into_iter()
        .find(|s| envelope.verifies_with(&s.key))
        .ok_or_else(|| {
            reject(
                Outcome::BadSignature,
                "the signature does not match the content: the code was altered or forged",
            )
        })
}

/// A full record (as the feed and the push carry it) checked against the trust list.
pub fn check_full_record(
    bytes: &[u8],
    trust: &TrustStore,
) -> Result<crate::signing::claims::FullRecord, Rejection> {
    let envelope = Envelope::parse(bytes).map_err(|e| reject(Outcome::Malformed, e.to_string()))?;
    let full = crate::signing::claims::FullRecord::from_payload(envelope.payload())
        .map_err(|e| reject(Outcome::Malformed, e.to_string()))?;
    let signer = authenticate(&envelope, &full.claims.iss, full.claims.iat, trust)?;
    if signer.status == SignerStatus::Revoked {
        return Err(reject(Outcome::SignerRevoked, "signed by a revoked signer"));
    }
    Ok(full)
}

/// Offline verification: trust list and status lists cached, no network.
///
/// `lists` are status lists already parsed; each is used only when it is for the token's issuer
/// and list number and its signature verifies under a signer of that issuer in `trust`; of
/// several, the newest. A list past its `exp` cannot vouch for `valid` (SPEC §7); nor, when the
/// verifier `can_refresh` (it could fetch a fresh list), one older than its `ttl`.
pub fn verify_offline(
    bytes: &[u8],
    trust: &TrustStore,
    lists: &[(StatusList, Envelope)],
    can_refresh: bool,
    now: i64,
) -> Verification {
    let authentic = match check_token(bytes, trust) {
        Ok(a) => a,
        Err(rejection) => return rejection.into(),
    };
    if authentic.signer_revoked {
        return authentic.verification(Outcome::SignerRevoked, "签发证书已被吊销");
    }
    let (n, _) = StatusList::locate(authentic.token.status_index);
    let iss = &authentic.token.claims.iss;
    // A list counts only when signed like a token: chained at its issue time, not revoked.
    let list = lists
        .iter()
        .filter(|(list, envelope)| {
            &list.issuer == iss
                && list.n == n
                && authenticate(envelope, iss, list.issued_at, trust)
                    .is_ok_and(|s| s.status != SignerStatus::Revoked)
        })
        .max_by_key(|(list, _)| list.issued_at);
    let Some((list, _)) = list else {
        return authentic.verification(
            Outcome::Stale,
            format!(
                "no signed status list {n} of {iss} is cached: cannot tell whether it was revoked"
            ),
        );
    };
    match list.entry(authentic.token.status_index) {
        EntryStatus::Revoked => return authentic.verification(Outcome::Revoked, "证照已注销"),
        EntryStatus::Suspended => return authentic.verification(Outcome::Suspended, "证照已暂停"),
        EntryStatus::Superseded => {
            // The list's entry says superseded, not how: renewal and amendment look alike here.
            return authentic
                .verification(Outcome::Superseded, "此版本已被新版本替代（已变更或延续）");
        }
        EntryStatus::Valid => {}
    }
    if let Some(stale) = staleness(list, can_refresh, now) {
        return authentic.verification(Outcome::Stale, stale);
    }
    authentic.by_dates(now)
}

/// Why a list can no longer vouch for `valid` at `now`, if it cannot.
fn staleness(list: &StatusList, can_refresh: bool, now: i64) -> Option<String> {
    let age = now - list.issued_at;
    if now >= list.expires_at {
        return Some(format!(
            "status list {} expired {} s ago: fetch a fresh one",
            list.uri,
            now - list.expires_at
        ));
    }
    match list.ttl {
        Some(ttl) if can_refresh && age > ttl => Some(format!(
            "status list {} is {age} s old, past its ttl of {ttl} s: fetch a fresh one",
            list.uri
        )),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::directory::Issuer;
    use crate::identifiers::{LicenceKey, TypeCode, Uscc};
    use crate::licence::{Holder, HolderId, Record};
    use crate::signing::keys::KeyRing;
    use crate::signing::status_list::{EntryStatus, StatusList};
    use crate::signing::{sign_version, Unsigned};
    use time::macros::{date, datetime};

    const ISSUER: &str = "11330122MB0000001M";

    pub(crate) fn issuer() -> Issuer {
        Issuer {
            name: "示范县市场监督管理局".into(),
            uscc: Uscc::parse(ISSUER).unwrap(),
        }
    }

    fn ring(dir: &std::path::Path) -> KeyRing {
        KeyRing::for_tests(dir, &[issuer()])
    }

    /// A QR token for a licence valid 2024-01-01 .. 2028-12-31, index 77, signed by `ring`.
    pub(crate) fn token(ring: &KeyRing) -> Vec<u8> {
        let (key, kid) = ring.signing_key(&issuer().uscc).unwrap();
        let record = Record {
            number: "JY13301220000001".into(),
            holder: Holder {
                name: "示范县百味餐饮有限公司".into(),
                id: HolderId::Organisation(Uscc::parse("91350100M000100Y43").unwrap()),
            },
            valid_from: date!(2024 - 01 - 01),
            valid_until: Some(date!(2028 - 12 - 31)),
            fields: Default::default(),
            scan: None,
        };
        let id = LicenceKey {
            type_code: TypeCode::parse("11100000000013338W032").unwrap(),
            issuer: issuer().uscc,
            serial: 42,
        }
        .version(1);
        sign_version(
            key,
            kid,
            Unsigned {
                id,
                licence_name: "食品经营许可证",
                record,
                issued_at: crate::time_util::now(),
                directory_version: 1,
                prev: None,
                status_index: 77,
                verify_base: "HTTPS://ZZ.EXAMPLE.GOV.CN".into(),
            },
        )
        .qr_token
    }

    fn trust(ring: &KeyRing) -> TrustStore {
        TrustStore::new(&ring.trust_list(), None).unwrap()
    }

    const IN_VALIDITY: i64 = datetime!(2027-06-01 0:00 UTC).unix_timestamp();

    #[test]
    fn a_fresh_token_is_valid_and_names_its_department() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let authentic = check_token(&token(&ring), &trust(&ring)).ok().unwrap();
        let v = authentic.by_dates(IN_VALIDITY);
        assert_eq!(v.result, Outcome::Valid);
        assert_eq!(v.department.unwrap().uscc, ISSUER);
        assert_eq!(v.licence.unwrap().holder_id, "91350100M000100Y43");
    }

    #[test]
    fn expiry_falls_at_midnight_china_time_after_the_last_day() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let authentic = check_token(&token(&ring), &trust(&ring)).ok().unwrap();
        assert_eq!(
            authentic.token.claims.exp,
            Some(datetime!(2028-12-31 16:00 UTC).unix_timestamp())
        );
        let last_second = datetime!(2028-12-31 15:59:59 UTC).unix_timestamp();
        assert_eq!(authentic.by_dates(last_second).result, Outcome::Valid);
        assert_eq!(authentic.by_dates(last_second + 1).result, Outcome::Expired);
        let before = datetime!(2023-12-31 15:59:59 UTC).unix_timestamp();
        assert_eq!(authentic.by_dates(before).result, Outcome::NotYetValid);
        assert_eq!(authentic.by_dates(before + 1).result, Outcome::Valid);
    }

    #[test]
    fn every_single_byte_change_of_a_token_is_never_valid() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let trust = trust(&ring);
        let good = token(&ring);
        let mut outcomes = std::collections::BTreeSet::new();
        for i in 0..good.len() {
            for delta in [1u8, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= delta;
                let result = match check_token(&bad, &trust) {
                    Ok(a) => a.by_dates(IN_VALIDITY).result,
                    Err(v) => v.result,
                };
                assert_ne!(result, Outcome::Valid, "byte {i} ^ {delta:#x} still valid");
                outcomes.insert(result.as_str());
            }
        }
        assert!(
            outcomes.contains("bad_signature") && outcomes.contains("malformed"),
            "{outcomes:?}"
        );
    }

    /// A token cut short, lengthened, or spliced with arbitrary bytes: a rejection or a result
    /// other than valid, never a panic.
    #[test]
    fn arbitrary_damage_to_a_token_is_never_valid_and_never_panics() {
        use proptest::prelude::*;
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let trust = trust(&ring);
        let good = token(&ring);
        let damage = (
            0..=good.len(),
            0..=good.len(),
            proptest::collection::vec(any::<u8>(), 0..64),
        );
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(1024))
            .run(&damage, |(from, to, splice)| {
                let (from, to) = (from.min(to), from.max(to));
                let mut bad = good.clone();
                bad.splice(from..to, splice);
                prop_assume!(bad != good);
                let result = match check_token(&bad, &trust) {
                    Ok(a) => a.by_dates(IN_VALIDITY).result,
                    Err(v) => v.result,
                };
                prop_assert_ne!(result, Outcome::Valid);
                Ok(())
            })
            .unwrap();
        let arbitrary = proptest::collection::vec(any::<u8>(), 0..512);
        proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(1024))
            .run(&arbitrary, |bytes| {
                prop_assert!(check_token(&bytes, &trust).is_err());
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn a_token_signed_under_another_root_is_from_an_unknown_signer() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        let (ours, theirs) = (ring(ours.path()), ring(theirs.path()));
        let forged = token(&theirs);
        let err = check_token(&forged, &trust(&ours)).err().unwrap();
        assert_eq!(err.result, Outcome::UnknownSigner);
        // Even with the foreign signer listed, it does not chain to our pinned root.
        let their_list = theirs.trust_list();
        let pinned = ours.trust_list().roots;
        let mixed = TrustStore::new(&their_list, Some(&pinned)).unwrap();
        assert_eq!(
            check_token(&forged, &mixed).err().unwrap().result,
            Outcome::UnknownSigner
        );
    }

    #[test]
    fn two_signers_sharing_a_kid_are_both_tried() {
        let dir = tempfile::tempdir().unwrap();
        let (ring, _) = ring(dir.path()).with_rotated(dir.path(), &issuer());
        let token = token(&ring); // signed by the new (second) signer
        let mut trust = trust(&ring);
        assert_eq!(trust.signer_count(), 2);
        let kid: [u8; 8] = Envelope::parse(&token).unwrap().kid.try_into().unwrap();
        trust.force_kid(0, kid); // the retired signer now shares the kid, and is tried first
        let Ok(authentic) = check_token(&token, &trust) else {
            panic!("the second candidate should verify");
        };
        assert_eq!(authentic.by_dates(IN_VALIDITY).result, Outcome::Valid);
    }

    #[test]
    fn a_signer_revoked_after_issue_makes_its_tokens_signer_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let token = token(&ring);
        let kid = ring.trust_list().signers[0].kid.clone();
        let ring = ring.with_revoked(dir.path(), &kid);
        // Decided before any status list is consulted.
        let v = verify_offline(&token, &trust(&ring), &[], false, IN_VALIDITY);
        assert_eq!(v.result, Outcome::SignerRevoked);
    }

    /// An empty status list 0 of the test issuer made at `iat`, believed for an hour.
    fn list_at(iat: i64) -> StatusList {
        StatusList::new(BASE, issuer().uscc, 0, iat, 3600)
    }

    const BASE: &str = "HTTPS://ZZ.EXAMPLE.GOV.CN";

    #[test]
    fn offline_status_entries_decide_and_a_stale_list_is_never_valid() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let token = token(&ring);
        let trust = trust(&ring);
        let (key, kid) = ring.signing_key(&issuer().uscc).unwrap();
        let offline = |list: &StatusList, can_refresh: bool, now: i64| {
            let lists = [StatusList::parse_signed(&list.sign(key, &kid)).unwrap()];
            verify_offline(&token, &trust, &lists, can_refresh, now).result
        };
        let mut list = list_at(IN_VALIDITY);
        assert_eq!(offline(&list, false, IN_VALIDITY + 60), Outcome::Valid);
        assert_eq!(offline(&list, false, IN_VALIDITY + 3599), Outcome::Valid);
        assert_eq!(
            offline(&list, false, IN_VALIDITY + 3600),
            Outcome::Stale,
            "past exp"
        );
        assert_eq!(
            offline(&list, true, IN_VALIDITY + 301),
            Outcome::Stale,
            "past ttl, and a fresh list could be fetched"
        );
        assert_eq!(offline(&list, true, IN_VALIDITY + 299), Outcome::Valid);
        list.entries.set(77, EntryStatus::Superseded);
        assert_eq!(offline(&list, false, IN_VALIDITY), Outcome::Superseded);
        list.entries.set(77, EntryStatus::Suspended);
        assert_eq!(offline(&list, false, IN_VALIDITY), Outcome::Suspended);
        list.entries.set(77, EntryStatus::Revoked);
        assert_eq!(offline(&list, false, IN_VALIDITY), Outcome::Revoked);
        assert_eq!(
            offline(&list, false, IN_VALIDITY + 99_999),
            Outcome::Revoked,
            "revoked stays revoked when stale"
        );
        // Of two lists, the newer decides.
        let revoked = StatusList::parse_signed(&list.sign(key, &kid)).unwrap();
        let reinstated =
            StatusList::parse_signed(&list_at(IN_VALIDITY + 10).sign(key, &kid)).unwrap();
        let both = [reinstated.clone(), revoked.clone()];
        assert_eq!(
            verify_offline(&token, &trust, &both, false, IN_VALIDITY + 20).result,
            Outcome::Valid
        );
        // No list for the token's issuer at all: cannot vouch.
        assert_eq!(
            verify_offline(&token, &trust, &[], false, IN_VALIDITY).result,
            Outcome::Stale
        );
        // A list signed by a key outside the trust list is ignored.
        let stranger = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let forged =
            [StatusList::parse_signed(&list_at(IN_VALIDITY).sign(&stranger, &kid)).unwrap()];
        assert_eq!(
            verify_offline(&token, &trust, &forged, false, IN_VALIDITY).result,
            Outcome::Stale
        );
    }

    #[test]
    fn a_status_list_signed_by_a_revoked_signer_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(dir.path());
        let token = token(&ring); // by the first signer, retired below but still trusted
        let (ring, second) = ring.with_rotated(dir.path(), &issuer());
        let (key, kid) = ring.signing_key(&issuer().uscc).unwrap();
        let all_good = list_at(IN_VALIDITY).sign(key, &kid);
        let ring = ring.with_revoked(dir.path(), &second);
        let lists = [StatusList::parse_signed(&all_good).unwrap()];
        let v = verify_offline(&token, &trust(&ring), &lists, false, IN_VALIDITY);
        assert_eq!(v.result, Outcome::Stale);
    }
}
