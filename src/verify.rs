//! Verification (SPEC §7): what a QR token proves by itself (signature, signer, dates), then what
//! the status list (offline) or the store (online) adds. Both paths share [`check_token`] and
//! [`Verification`], so the CLI, the API and the page answer alike.

use serde::Serialize;

use crate::identifiers::VersionId;
use crate::licence::{timeliness, Timeliness};
use crate::signing::claims::QrToken;
use crate::signing::cose::Envelope;
use crate::signing::status_list::{EntryStatus, StatusList};
use crate::signing::trust::{SignerCert, SignerStatus, TrustStore};
use crate::time_util;

/// The result kinds of SPEC §7, plus `stale` for an offline check whose cached status list is too
/// old to say anything but "do not trust this as valid".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
            Outcome::Valid => "有效",
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
#[derive(Debug, Clone, Serialize)]
pub struct PublicLicence {
    pub id: String,
    pub name: String,
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

#[derive(Debug, Clone, Serialize)]
pub struct PublicField {
    pub key: String,
    pub label: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Department {
    pub name: String,
    pub uscc: String,
}

/// The licence's state in the store now (online verification only).
#[derive(Debug, Clone, Serialize)]
pub struct Current {
    pub status: String,
    pub version: u32,
    pub identifier: String,
}

#[derive(Debug, Clone, Serialize)]
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
            Timeliness::NotYetValid => self.verification(Outcome::NotYetValid, "证照尚未到生效日期"),
        }
    }
}

/// Decodes a QR token, finds its signer and checks the signature. `Err` carries the final
/// verification (malformed, unknown signer, bad signature); a revoked signer is noted in `Ok`.
pub fn check_token(bytes: &[u8], trust: &TrustStore) -> Result<Authentic, Verification> {
    let envelope = Envelope::parse(bytes)
        .map_err(|e| Verification::failed(Outcome::Malformed, e.to_string()))?;
    let token = QrToken::from_payload(envelope.payload())
        .map_err(|e| Verification::failed(Outcome::Malformed, e.to_string()))?;
    let iss = &token.claims.iss;
    // A kid is a truncated hash: try every certificate with it that may sign for this issuer
    // and chains to the root at the time of issue.
    let candidates: Vec<&SignerCert> = trust
        .with_kid(&envelope.kid)
        .filter(|s| &s.uscc == iss && trust.chains_at(s, token.claims.iat))
        .collect();
    if candidates.is_empty() {
        return Err(Verification::failed(
            Outcome::UnknownSigner,
            format!(
                "no certificate under the trusted root signs for {iss} with kid {}",
                crate::signing::keys::kid_text(&envelope.kid)
            ),
        ));
    }
    let Some(signer) = candidates.into_iter().find(|s| envelope.verifies_with(&s.key)) else {
        return Err(Verification::failed(
            Outcome::BadSignature,
            "the signature does not match the content: the code was altered or forged",
        ));
    };
    Ok(Authentic {
        signer_revoked: signer.status == SignerStatus::Revoked,
        signer: signer.clone(),
        token,
    })
}

/// How old a cached status list may be before it can no longer vouch for `valid`.
pub const DEFAULT_MAX_STATUS_AGE_SECONDS: i64 = 24 * 3600;

/// Offline verification: trust list and status lists cached, no network.
///
/// `lists` are status lists already parsed; each is used only when it is for the token's issuer
/// and list number and its signature verifies under a signer of that issuer in `trust`.
pub fn verify_offline(
    bytes: &[u8],
    trust: &TrustStore,
    lists: &[(StatusList, Envelope)],
    max_age_seconds: i64,
    now: i64,
) -> Verification {
    let authentic = match check_token(bytes, trust) {
        Ok(a) => a,
        Err(v) => return v,
    };
    if authentic.signer_revoked {
        return authentic.verification(Outcome::SignerRevoked, "签发证书已被吊销");
    }
    let (n, _) = StatusList::locate(authentic.token.status_index);
    let iss = &authentic.token.claims.iss;
    let list = lists.iter().find(|(list, envelope)| {
        &list.issuer == iss
            && list.n == n
            && trust
                .with_kid(&envelope.kid)
                .any(|s| &s.uscc == iss && envelope.verifies_with(&s.key))
    });
    let Some((list, _)) = list else {
        return authentic.verification(
            Outcome::Stale,
            format!("no signed status list {n} of {iss} is cached: cannot tell whether it was revoked"),
        );
    };
    match list.entry(authentic.token.status_index) {
        EntryStatus::Revoked => return authentic.verification(Outcome::Revoked, "证照已注销"),
        EntryStatus::Suspended => return authentic.verification(Outcome::Suspended, "证照已暂停"),
        EntryStatus::Superseded => {
            return authentic.verification(Outcome::Superseded, "证照已变更，此版本已被新版本替代")
        }
        EntryStatus::Good => {}
    }
    if now - list.issued_at > max_age_seconds {
        return authentic.verification(
            Outcome::Stale,
            format!(
                "status list is {} s old (more than {max_age_seconds} s): verify online",
                now - list.issued_at
            ),
        );
    }
    authentic.by_dates(now)
}
