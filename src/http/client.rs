//! Who is asking: the client's address — what the verification limit counts and the audit trail
//! records as "from where" — and the per-address limit on public verification.
//!
//! Behind a load balancer every connection comes from the balancer, so `X-Forwarded-For` names
//! the client; but anyone can send that header, so it is believed only when the connection comes
//! from a configured trusted proxy (`ELICENCE_TRUSTED_PROXIES`, none by default).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use super::error::ApiError;
use super::SharedState;

/// The client's address (what the audit trail records as "from where").
pub struct Client(pub IpAddr);

impl FromRequestParts<SharedState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(Client(client_address(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// The client behind a connection from `peer`: `peer` itself, unless it is a trusted proxy;
/// then the right-most `X-Forwarded-For` address that is not a trusted proxy itself. Each proxy
/// appends the address it was connected from, so that one was seen by a proxy we trust, while
/// everything to its left is whatever the client chose to send. An entry that is no address
/// stops the walk at the nearest proxy.
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("?").split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(&client) {
            break;
        }
    }
    client
}

/// Whose allowance a verification counts against: the IPv4 address, or the /64 network of an
/// IPv6 address — one subscriber's line gets a whole /64 and could take a fresh address per
/// request (and grow the limiter's map by one each time).
fn allowance_of(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into())
        }
        other => other,
    }
}

/// Public verifications per client address (IPv6: per /64) per minute.
pub struct VerifyLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

/// A verification refused by the limit, and when the client may try again.
#[derive(Debug)]
pub struct RateLimited {
    pub retry_after_seconds: u64,
}

/// The limiter forgets addresses whose allowance is full again once every this many checks, so
/// its map holds the clients of about the last minute, not every address ever seen.
const PRUNE_EVERY: u64 = 1024;

impl VerifyLimiter {
    pub fn per_minute(n: NonZeroU32) -> VerifyLimiter {
        VerifyLimiter {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts a verification against the client's allowance.
    pub fn check(&self, client: IpAddr) -> Result<(), RateLimited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&allowance_of(client))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                RateLimited {
                    retry_after_seconds: whole_seconds_after(wait),
                }
            })
    }

    /// How many addresses the limiter remembers.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.limiter.len()
    }
}

/// A wait in whole seconds for `Retry-After`, rounded up and at least 1.
fn whole_seconds_after(wait: Duration) -> u64 {
    (wait.as_millis().div_ceil(1000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
        let trusted = crate::config::parse_trusted_proxies("10.0.0.0/8, 192.0.2.1").unwrap();
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "10.9.9.9"]);
        // Not from a proxy: the header is the client's own claim.
        assert_eq!(
            client_address(ip("203.0.113.5"), &headers, &trusted),
            ip("203.0.113.5")
        );
        // From a proxy: the right-most entry no trusted proxy added (6.6.6.6 may be forged).
        assert_eq!(
            client_address(ip("192.0.2.1"), &headers, &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &forwarded(&["bogus, 10.2.2.2"]), &trusted),
            ip("10.2.2.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_address(
                ip("10.0.0.1"),
                &forwarded(&["::ffff:198.51.100.9"]),
                &trusted
            ),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.1"), &headers, &[]),
            ip("10.0.0.1")
        );
        assert!(crate::config::parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(crate::config::parse_trusted_proxies("").unwrap().is_empty());
    }

    #[test]
    fn an_ipv6_network_shares_one_allowance_and_ipv4_addresses_have_their_own() {
        let limiter = VerifyLimiter::per_minute(NonZeroU32::new(2).unwrap());
        let in_one_64 = |host: u16| IpAddr::from([0x2001, 0xdb8, 0, 7, 0, 0, 0, host]);
        limiter.check(in_one_64(1)).unwrap();
        limiter.check(in_one_64(2)).unwrap();
        assert!(
            limiter.check(in_one_64(3)).is_err(),
            "a fresh address in the same /64"
        );
        limiter
            .check(IpAddr::from([0x2001, 0xdb8, 0, 8, 0, 0, 0, 1]))
            .unwrap();
        for last in 1..=3 {
            limiter.check(IpAddr::from([192, 0, 2, last])).unwrap();
        }
        assert_eq!(limiter.remembered(), 5);
    }

    #[test]
    fn the_limiter_forgets_clients_whose_allowance_is_full_again() {
        // 60,000 a minute: one verification is forgotten after a millisecond.
        let limiter = VerifyLimiter::per_minute(NonZeroU32::new(60_000).unwrap());
        for n in 0..PRUNE_EVERY - 1 {
            let client = IpAddr::from([10, 0, (n >> 8) as u8, n as u8]);
            limiter.check(client).unwrap();
        }
        assert_eq!(limiter.remembered(), (PRUNE_EVERY - 1) as usize);
        std::thread::sleep(Duration::from_millis(20));
        limiter.check(IpAddr::from([192, 0, 2, 1])).unwrap();
        assert!(limiter.remembered() <= 1, "{}", limiter.remembered());
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(whole_seconds_after(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_after(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds_after(Duration::ZERO), 1);
    }
}
