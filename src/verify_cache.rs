//! What online verification may remember between requests, so a busy verification page does not
//! check the same signature and read the same rows again for every scan:
//!
//! - **signatures**: whether a token's bytes verify under the trust list never changes while the
//!   trust list stays the same, so a verified token is kept (by its SHA-256) until the keys change;
//! - **the register**: a version's standing (active, suspended, revoked, superseded) does change.
//!   It is kept for at most `ttl`, and forgotten at once when this process changes any licence.
//!   Another instance's change is therefore seen within `ttl` (2 s by default; 0 turns the cache
//!   off): the price of not reading the database on every scan (docs/DESIGN.md).
//!
//! Dates are never cached: expiry is judged on every request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::licence::{Standing, Succession};
use crate::verify::{Authentic, PublicField, Rejection};

/// What the register says of one version, as verification shows it.
pub struct Registered {
    pub number: String,
    /// When each version takes effect: which one is superseded is decided per request from the
    /// date, so a cached entry never outlives a successor's first day.
    pub succession: Succession,
    pub standing: Standing,
    /// Hex SHA-256 of the version's full-record payload (the token must name the same).
    pub payload_hash: String,
    pub public_fields: Vec<PublicField>,
}

pub struct VerifyCache {
    ttl: Duration,
    /// Bumped by every licence change in this process: entries from before are stale.
    epoch: AtomicU64,
    /// Bumped by every change of the keys: a signature check begun before is not remembered.
    trust_epoch: AtomicU64,
    tokens: Cache<[u8; 32], (u64, Arc<Authentic>)>,
    register: Cache<String, (Instant, u64, Arc<Registered>)>,
}

/// Entries kept at most, each cache (a few hundred bytes each).
const CAPACITY: usize = 100_000;

impl VerifyCache {
    pub fn new(ttl: Duration) -> VerifyCache {
        VerifyCache {
            ttl,
            epoch: AtomicU64::new(0),
            trust_epoch: AtomicU64::new(0),
            tokens: Cache::new(CAPACITY),
            register: Cache::new(CAPACITY),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The authenticated token, checked by `check` unless these bytes were checked before under
    /// the same trust list. Rejections are not kept (they are cheap to repeat and rare). `check`
    /// must take the trust store itself: the keys' epoch is read before it runs, so a check that
    /// used a trust store replaced meanwhile is not remembered as if it used the new one.
    pub fn token(
        &self,
        bytes: &[u8],
        check: impl FnOnce() -> Result<Authentic, Rejection>,
    ) -> Result<Arc<Authentic>, Rejection> {
        if !self.enabled() {
            return check().map(Arc::new);
        }
        let key = crate::hash::sha256(bytes);
        let trust_epoch = self.trust_epoch.load(Ordering::Acquire);
        if let Some((checked_at, hit)) = self.tokens.get(&key) {
            if checked_at == trust_epoch {
                return Ok(hit);
            }
        }
        let authentic = Arc::new(check()?);
        if self.trust_epoch.load(Ordering::Acquire) == trust_epoch {
            self.tokens.insert(key, (trust_epoch, authentic.clone()));
        }
        Ok(authentic)
    }

    /// The keys changed (after the new trust store is in place): every remembered signature
    /// check is void, and so is any check running now.
    pub fn trust_changed(&self) {
        self.trust_epoch.fetch_add(1, Ordering::AcqRel);
        self.tokens.clear();
    }

    /// The register entry of a version identifier, if remembered and still fresh.
    pub fn registered(&self, version_id: &str) -> Option<Arc<Registered>> {
        if !self.enabled() {
            return None;
        }
        let (at, epoch, entry) = self.register.get(version_id)?;
        (at.elapsed() < self.ttl && epoch == self.epoch.load(Ordering::Acquire)).then_some(entry)
    }

    /// Remembers a register entry read at `epoch` (taken before the read, so that a change
    /// committed during the read makes the entry stale rather than lost).
    pub fn keep(&self, version_id: String, epoch: u64, entry: Arc<Registered>) {
        if self.enabled() {
            self.register
                .insert(version_id, (Instant::now(), epoch, entry));
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A licence changed in this process: forget every register entry.
    pub fn licence_changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(standing: Standing) -> Arc<Registered> {
        Arc::new(Registered {
            number: "N".into(),
            succession: Succession::default(),
            standing,
            payload_hash: String::new(),
            public_fields: Vec::new(),
        })
    }

    #[test]
    fn register_entries_expire_and_are_forgotten_when_a_licence_changes() {
        let cache = VerifyCache::new(Duration::from_millis(200));
        cache.keep("v1".into(), cache.epoch(), entry(Standing::Active));
        assert!(cache.registered("v1").is_some());
        cache.licence_changed();
        assert!(cache.registered("v1").is_none(), "stale after a change");

        // Read before a change that commits during the read: kept, but already stale.
        let epoch = cache.epoch();
        cache.licence_changed();
        cache.keep("v2".into(), epoch, entry(Standing::Active));
        assert!(cache.registered("v2").is_none());

        cache.keep("v3".into(), cache.epoch(), entry(Standing::Active));
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.registered("v3").is_none(), "expired");

        let off = VerifyCache::new(Duration::ZERO);
        off.keep("v4".into(), off.epoch(), entry(Standing::Active));
        assert!(off.registered("v4").is_none());
    }

    #[test]
    fn a_signature_checked_while_the_keys_change_is_checked_again_next_time() {
        use crate::signing::keys::KeyRing;
        use crate::signing::trust::TrustStore;
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::for_tests(dir.path(), &[crate::verify::tests::issuer()]);
        let token = crate::verify::tests::token(&ring);
        let trust = TrustStore::new(&ring.trust_list(), None).unwrap();
        let cache = VerifyCache::new(Duration::from_secs(2));
        let checks = std::cell::Cell::new(0);
        let check = || {
            checks.set(checks.get() + 1);
            crate::verify::check_token(&token, &trust)
        };
        // Another task reloads the keys while this check runs on the trust store it took before.
        cache
            .token(&token, || {
                cache.trust_changed();
                check()
            })
            .ok()
            .unwrap();
        cache.token(&token, check).ok().unwrap();
        assert_eq!(checks.get(), 2, "not remembered from before the change");
        cache.token(&token, check).ok().unwrap();
        assert_eq!(
            checks.get(),
            2,
            "remembered once checked under the new keys"
        );
    }
}
