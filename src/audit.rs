//! The audit trail (电子监察, SPEC §10): who did what, when, from where, with what outcome —
//! every write and every refused attempt, appended, each record chained to the one before by
//! SHA-256 so that a changed or removed record is detected by [`verify_chain`].
//!
//! Successful licence writes append their record in the same transaction as the write; refused and
//! failed attempts append theirs on their own.
//!
//! Each record belongs to a department, or to the whole service (SPEC §10: a department's admin
//! reads its own department's records only): a licence write to the licence's department, a
//! token's or key's creation to that department, anything else to the acting token's department.

use serde::Serialize;

/// The `prev_hash` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An audit record before it is appended (the store adds time and hashes).
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    /// Where the request came from: the client address, or `cli`.
    pub source: String,
    /// What was attempted, e.g. `licence.issue`, `token.create`.
    pub action: String,
    /// What it was attempted on: a licence identifier, a type code, a token id …
    pub target: String,
    /// `ok`, `refused: …` (authorisation) or `failed: …` (anything else).
    pub outcome: String,
    pub detail: String,
    /// The department (USCC) the record belongs to; None: the whole service's.
    pub department: Option<String>,
}

impl Entry {
    pub fn new(actor: &str, source: &str, action: &str, target: &str) -> Entry {
        Entry {
            actor: actor.to_string(),
            source: source.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: "ok".into(),
            detail: String::new(),
            department: None,
        }
    }

    /// The record as both backends can store it: PostgreSQL refuses text holding NUL, and a
    /// request path or reason may hold one (`%00`); the attempt must be recorded all the same.
    pub fn storable(&self) -> std::borrow::Cow<'_, Entry> {
        let texts = [
            &self.actor,
            &self.source,
            &self.action,
            &self.target,
            &self.outcome,
            &self.detail,
        ];
        let has_nul = |text: &str| text.contains('\0');
        if !texts.iter().any(|t| has_nul(t)) && !self.department.as_deref().is_some_and(has_nul) {
            return std::borrow::Cow::Borrowed(self);
        }
        let clean = |text: &str| text.replace('\0', "\u{fffd}");
        std::borrow::Cow::Owned(Entry {
            actor: clean(&self.actor),
            source: clean(&self.source),
            action: clean(&self.action),
            target: clean(&self.target),
            outcome: clean(&self.outcome),
            detail: clean(&self.detail),
            department: self.department.as_deref().map(clean),
        })
    }

    /// The same record, belonging to `department` (the one whose licence, key or token it is).
    pub fn of_department(self, department: &crate::identifiers::Uscc) -> Entry {
        Entry {
            department: Some(department.to_string()),
            ..self
        }
    }
}

/// An appended audit record as the API answers it.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Record {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub source: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// The department (USCC) the record belongs to; null: the whole service's.
    pub department: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl Record {
    /// The record's content, as it was appended (what its hash covers besides `prev_hash`, `at`).
    pub fn entry(&self) -> Entry {
        Entry {
            actor: self.actor.clone(),
            source: self.source.clone(),
            action: self.action.clone(),
            target: self.target.clone(),
            outcome: self.outcome.clone(),
            detail: self.detail.clone(),
            department: self.department.clone(),
        }
    }
}

/// The hash of a record: SHA-256 over the JSON array of the previous hash and every field, so no
/// choice of field contents can make two different records hash alike. The department, when the
/// record has one, is the array's last element: records written before departments were recorded
/// keep their hashes, and adding, changing or removing a department breaks the chain.
pub fn record_hash(prev_hash: &str, at: &str, e: &Entry) -> String {
    let mut fields = vec![
        prev_hash, at, &e.actor, &e.source, &e.action, &e.target, &e.outcome, &e.detail,
    ];
    fields.extend(e.department.as_deref());
    crate::hash::sha256_hex(
        serde_json::to_string(&fields)
            .expect("strings serialise")
            .as_bytes(),
    )
}

/// Where the chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub records: u64,
    /// The hash of the last record: write it down (or publish it) to detect a cut-off tail later.
    pub head: String,
    pub first_break: Option<Break>,
}

/// Checks records given in seq order: each must link to the one before and hash to its `hash`.
pub fn verify_chain(records: impl IntoIterator<Item = Record>) -> ChainReport {
    let mut prev = GENESIS.to_string();
    let mut count = 0;
    for r in records {
        count += 1;
        // Seqs are gap-free (appended one past the last, under the chain's lock): a hole is a
        // removed record even where the links were mended around it.
        if r.seq != count as i64 {
            return ChainReport {
                records: count,
                head: prev,
                first_break: Some(Break {
                    seq: r.seq,
                    reason: format!("record {count} is missing before it (a record was removed)"),
                }),
            };
        }
        if r.prev_hash != prev {
            return ChainReport {
                records: count,
                head: prev,
                first_break: Some(Break {
                    seq: r.seq,
                    reason: "does not link to the record before it (a record was removed or changed before it)".into(),
                }),
            };
        }
        if record_hash(&r.prev_hash, &r.at, &r.entry()) != r.hash {
            return ChainReport {
                records: count,
                head: prev,
                first_break: Some(Break {
                    seq: r.seq,
                    reason: "its content does not match its hash (the record was edited)".into(),
                }),
            };
        }
        prev = r.hash;
    }
    ChainReport {
        records: count,
        head: prev,
        first_break: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        (0..n)
            .map(|i| {
                let mut e = Entry::new("clerk", "127.0.0.1", "licence.issue", &format!("L{i}"));
                // Older records have no department; newer ones do.
                e.department = (i % 2 == 1).then(|| "11330122MB0000001M".to_string());
                let at = format!("2026-11-29T12:00:{i:02}Z");
                let hash = record_hash(&prev, &at, &e);
                let r = Record {
                    seq: i as i64 + 1,
                    at,
                    actor: e.actor,
                    source: e.source,
                    action: e.action,
                    target: e.target,
                    outcome: e.outcome,
                    detail: e.detail,
                    department: e.department,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                r
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies_and_an_edit_or_removal_is_named() {
        let good = chain(5);
        let report = verify_chain(good.clone());
        assert_eq!((report.records, report.first_break), (5, None));
        assert_eq!(report.head, good[4].hash);

        let mut edited = good.clone();
        edited[2].outcome = "refused: forbidden".into();
        assert_eq!(verify_chain(edited).first_break.unwrap().seq, 3);

        let mut removed = good.clone();
        removed.remove(1);
        let broken = verify_chain(removed).first_break.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("removed"));

        // Removed, and the next record's link mended to skip it: the hole in the seqs still shows.
        let mut mended = good;
        mended.remove(1);
        mended[1].prev_hash = mended[0].hash.clone();
        let entry = mended[1].entry();
        mended[1].hash = record_hash(&mended[1].prev_hash, &mended[1].at, &entry);
        let broken = verify_chain(mended).first_break.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("record 2 is missing"));
    }

    #[test]
    fn moving_a_record_to_another_department_or_to_none_breaks_the_chain() {
        let good = chain(4);
        let mut moved = good.clone();
        moved[1].department = Some("11330122MB0000002Q".into());
        assert_eq!(verify_chain(moved).first_break.unwrap().seq, 2);
        let mut hidden = good.clone();
        hidden[1].department = None;
        assert_eq!(verify_chain(hidden).first_break.unwrap().seq, 2);
        let mut claimed = good;
        claimed[0].department = Some("11330122MB0000001M".into());
        assert_eq!(verify_chain(claimed).first_break.unwrap().seq, 1);
    }

    #[test]
    fn a_record_without_a_department_hashes_as_records_always_have() {
        let e = Entry::new("clerk", "127.0.0.1", "licence.issue", "L");
        let fields = [
            GENESIS,
            "2026-11-29T12:00:00Z",
            "clerk",
            "127.0.0.1",
            "licence.issue",
            "L",
            "ok",
            "",
        ];
        assert_eq!(
            record_hash(GENESIS, "2026-11-29T12:00:00Z", &e),
            crate::hash::sha256_hex(serde_json::to_string(&fields).unwrap().as_bytes())
        );
    }
}
