//! Brute-force login throttling per account (email) and per source address, on top of a [`SessionCache`].
//!
//! Owns the limits and counter keys. Must not verify passwords or decide the HTTP answer; the API calls
//! [`LoginThrottle::check`] before verifying and records the outcome after.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::sessions::{SessionCache, SessionError};

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failed logins allowed per account within `window` before the account is locked for the rest of it.
    pub max_failures_per_account: u64,
    /// Failed logins allowed per source address (IPv6: per /64) within `window`.
    pub max_failures_per_ip: u64,
    /// Length of the fixed window, starting at the first failure.
    pub window: Duration,
}

impl Default for ThrottlePolicy {
    /// 5 failures per account and 20 per address per 15 minutes.
    fn default() -> Self {
        Self { max_failures_per_account: 5, max_failures_per_ip: 20, window: Duration::from_secs(15 * 60) }
    }
}

/// Why a login attempt may not proceed.
#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    /// Too many recent failures for this account or address; answer 429 with `Retry-After`.
    #[error("too many failed login attempts; retry in {} s", ceil_secs(*retry_after))]
    Throttled {
        /// Time until the blocking window ends.
        retry_after: Duration,
    },
    /// Counters could not be read: fail closed (refuse the login), answer 503.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Login brute-force throttling shared by all API replicas through their [`SessionCache`].
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    cache: Arc<dyn SessionCache>,
    policy: ThrottlePolicy,
}

impl LoginThrottle {
    /// Throttling with `policy` on `cache`.
    pub fn new(cache: Arc<dyn SessionCache>, policy: ThrottlePolicy) -> Self {
        Self { cache, policy }
    }

    /// The limits in force.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// Refuses the attempt if the account or the address has used up its failures in the current window.
    /// Call before verifying the password, so a locked account costs no argon2 work.
    pub async fn check(&self, email: &str, ip: IpAddr) -> Result<(), ThrottleError> {
        let checks =
            [(account_key(email), self.policy.max_failures_per_account), (ip_key(ip), self.policy.max_failures_per_ip)];
        let mut retry_after = None::<Duration>;
        for (key, max) in checks {
            if let Some(counter) = self.cache.counter(&key).await?
                && counter.count >= max
            {
                retry_after = Some(retry_after.map_or(counter.resets_in, |r| r.max(counter.resets_in)));
            }
        }
        match retry_after {
            Some(retry_after) => Err(ThrottleError::Throttled { retry_after }),
            None => Ok(()),
        }
    }

    /// Counts a failed login (wrong password or unknown account) against the account and the address.
    pub async fn record_failure(&self, email: &str, ip: IpAddr) -> Result<(), SessionError> {
        let account = self.cache.hit(&account_key(email), self.policy.window).await?;
        let by_ip = self.cache.hit(&ip_key(ip), self.policy.window).await?;
        if account == self.policy.max_failures_per_account || by_ip == self.policy.max_failures_per_ip {
            tracing::info!(account_failures = account, ip_failures = by_ip, %ip, "login throttled");
        }
        Ok(())
    }

    /// Clears the account's failure counter after a successful login. The address counter is kept, so one
    /// valid account cannot be used to reset an address that is guessing others.
    pub async fn record_success(&self, email: &str) -> Result<(), SessionError> {
        self.cache.reset(&account_key(email)).await
    }
}

/// Whole seconds, rounded up and at least 1, for a `Retry-After` header.
pub fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn account_key(email: &str) -> String {
    format!("login:account:{}", email.trim().to_lowercase())
}

/// IPv4 addresses count individually; IPv6 ones per /64, since one host usually owns a whole /64.
fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("login:ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("login:ip:{v4}"),
            None => {
                let s = v6.segments();
                format!("login:ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::sessions::InMemorySessionCache;

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));

    fn throttle(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle::new(Arc::new(InMemorySessionCache::new()), policy)
    }

    #[tokio::test]
    async fn account_locks_after_five_failures_and_success_clears_it() {
        let t = throttle(ThrottlePolicy::default());
        for _ in 0..4 {
            t.record_failure("Alice@Example.com", IP).await.expect("record");
            assert!(t.check("alice@example.com", IP).await.is_ok());
        }
        t.record_failure("alice@example.com ", IP).await.expect("record");
        match t.check("alice@example.com", IP).await {
            Err(ThrottleError::Throttled { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(900) && retry_after > Duration::from_secs(890));
            }
            other => panic!("expected throttled, got {other:?}"),
        }
        assert!(t.check("bob@example.com", IP).await.is_ok(), "other accounts unaffected");
        t.record_success("alice@example.com").await.expect("success");
        assert!(t.check("alice@example.com", IP).await.is_ok());
    }

    #[tokio::test]
    async fn address_locks_after_twenty_failures_across_accounts() {
        let t = throttle(ThrottlePolicy::default());
        for i in 0..20 {
            t.record_failure(&format!("user{i}@example.com"), IP).await.expect("record");
        }
        assert!(matches!(t.check("new@example.com", IP).await, Err(ThrottleError::Throttled { .. })));
        assert!(t.check("new@example.com", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).await.is_ok());
        t.record_success("new@example.com").await.expect("success");
        assert!(t.check("new@example.com", IP).await.is_err(), "success does not reset the address");
    }

    #[tokio::test]
    async fn window_expiry_unlocks() {
        let policy =
            ThrottlePolicy { max_failures_per_account: 1, max_failures_per_ip: 100, window: Duration::from_millis(50) };
        let t = throttle(policy);
        t.record_failure("a@b.c", IP).await.expect("record");
        assert!(t.check("a@b.c", IP).await.is_err());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(t.check("a@b.c", IP).await.is_ok());
    }

    #[test]
    fn ipv6_is_grouped_per_64_and_mapped_v4_as_v4() {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 3, 4, 5, 6));
        let b = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let c = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 3, 4, 5, 6));
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key(IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())), ip_key(IP));
    }

    #[test]
    fn throttled_message_is_clear() {
        let e = ThrottleError::Throttled { retry_after: Duration::from_millis(1500) };
        assert_eq!(e.to_string(), "too many failed login attempts; retry in 2 s");
        assert_eq!(ceil_secs(Duration::ZERO), 1);
        assert_eq!(ceil_secs(Duration::from_secs(900)), 900);
    }
}
