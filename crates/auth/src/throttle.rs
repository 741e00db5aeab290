//! Brute-force login throttling per account (email) and per source address, on top of a [`SessionCache`].
//!
//! Owns the limits and counter keys. Must not verify passwords or decide the HTTP answer.
//!
//! An attempt is counted *before* the password is verified, atomically: [`LoginThrottle::reserve`] adds one
//! to the account's and the address's counters and refuses the attempt if either is then past its limit, so
//! however many attempts arrive at once, at most the limit of them reach the password check. The caller then
//! reports how it ended: [`LoginThrottle::succeeded`] clears the account counter and takes the attempt back
//! from the address, [`LoginThrottle::cancel`] takes it back from both (the check never ran), and a failure
//! needs no call: it was counted up front.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::sessions::{SessionCache, SessionError};

/// Limits for [`LoginThrottle`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Password checks allowed per account within `window`; a success starts the count again.
    pub max_failures_per_account: u64,
    /// Failed password checks allowed per source address (IPv6: per /64) within `window`.
    pub max_failures_per_ip: u64,
    /// Length of the fixed window, starting at the first attempt.
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
    /// Too many recent attempts for this account or address; answer 429 with `Retry-After`.
    #[error("too many failed login attempts; retry in {} s", ceil_secs(*retry_after))]
    Throttled {
        /// Time until the blocking window ends.
        retry_after: Duration,
    },
    /// Counters could not be read or written: fail closed (refuse the login), answer 503.
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

    /// Counts one attempt against the account and the address, and refuses it if either is now past its limit
    /// (the refused attempt is taken back, so the counters hold the attempts that were let through). Call
    /// before verifying the password: a refused attempt costs no argon2 work, and parallel attempts cannot all
    /// pass a check that none of them has counted yet.
    ///
    /// The account is counted first and the address only for attempts the account admits, so a burst against
    /// one account cannot push the address over its limit with attempts that are refused anyway (which would
    /// refuse attempts the account still allows).
    pub async fn reserve(&self, email: &str, ip: IpAddr) -> Result<(), ThrottleError> {
        let (account, by_ip) = (account_key(email), ip_key(ip));
        let account_count = self.cache.hit(&account, self.policy.window).await?;
        if account_count > self.policy.max_failures_per_account {
            let limit = self.policy.max_failures_per_account;
            return Err(self.refuse(&[&account], &account, (account_count, limit), ip).await?);
        }
        let ip_count = match self.cache.hit(&by_ip, self.policy.window).await {
            Ok(count) => count,
            Err(err) => {
                self.cache.unhit(&account).await?;
                return Err(err.into());
            }
        };
        if ip_count > self.policy.max_failures_per_ip {
            let limit = self.policy.max_failures_per_ip;
            return Err(self.refuse(&[&account, &by_ip], &by_ip, (ip_count, limit), ip).await?);
        }
        Ok(())
    }

    /// Takes back the attempt on `counted` and answers how long `over` (at `count` of its `limit`) stays past its
    /// limit. Logs once per window, when the limit is first passed.
    async fn refuse(
        &self,
        counted: &[&str],
        over: &str,
        (count, limit): (u64, u64),
        ip: IpAddr,
    ) -> Result<ThrottleError, SessionError> {
        let retry_after = self.cache.counter(over).await?.map_or(Duration::ZERO, |c| c.resets_in);
        for key in counted {
            self.cache.unhit(key).await?;
        }
        if count == limit + 1 {
            tracing::info!(attempts = count, %ip, key = over, "login throttled");
        }
        Ok(ThrottleError::Throttled { retry_after: retry_after.max(Duration::from_secs(1)) })
    }

    /// The reserved attempt proved the password: clears the account's counter and takes the attempt back from
    /// the address. Earlier failures of the address stay counted, so one valid account cannot be used to reset
    /// an address that is guessing others.
    pub async fn succeeded(&self, email: &str, ip: IpAddr) -> Result<(), SessionError> {
        self.cache.reset(&account_key(email)).await?;
        self.cache.unhit(&ip_key(ip)).await
    }

    /// The reserved attempt never reached the password check (e.g. no hashing capacity): takes it back.
    pub async fn cancel(&self, email: &str, ip: IpAddr) -> Result<(), SessionError> {
        self.cache.unhit(&account_key(email)).await?;
        self.cache.unhit(&ip_key(ip)).await
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
    async fn account_locks_after_five_attempts_and_success_clears_it() {
        let t = throttle(ThrottlePolicy::default());
        for _ in 0..5 {
            t.reserve("Alice@Example.com", IP).await.expect("within the limit");
        }
        match t.reserve("alice@example.com ", IP).await {
            Err(ThrottleError::Throttled { retry_after }) => {
                assert!(retry_after <= Duration::from_secs(900) && retry_after > Duration::from_secs(890));
            }
            other => panic!("expected throttled, got {other:?}"),
        }
        t.reserve("bob@example.com", IP).await.expect("other accounts unaffected");
        t.succeeded("alice@example.com", IP).await.expect("success");
        t.reserve("alice@example.com", IP).await.expect("cleared");
    }

    #[tokio::test]
    async fn address_locks_after_twenty_attempts_across_accounts() {
        let t = throttle(ThrottlePolicy::default());
        for i in 0..20 {
            t.reserve(&format!("user{i}@example.com"), IP).await.expect("within the limit");
        }
        assert!(matches!(t.reserve("new@example.com", IP).await, Err(ThrottleError::Throttled { .. })));
        t.reserve("new@example.com", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).await.expect("another address");
        t.succeeded("new@example.com", IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).await.expect("success");
        assert!(t.reserve("new@example.com", IP).await.is_err(), "success elsewhere does not reset the address");
    }

    #[tokio::test]
    async fn successes_and_cancels_cost_the_address_nothing() {
        let policy =
            ThrottlePolicy { max_failures_per_account: 100, max_failures_per_ip: 2, window: Duration::from_secs(60) };
        let t = throttle(policy);
        for _ in 0..10 {
            t.reserve("a@b.c", IP).await.expect("reserve");
            t.succeeded("a@b.c", IP).await.expect("success");
            t.reserve("a@b.c", IP).await.expect("reserve");
            t.cancel("a@b.c", IP).await.expect("cancel");
        }
        t.reserve("x@b.c", IP).await.expect("first failure");
        t.reserve("y@b.c", IP).await.expect("second failure");
        assert!(t.reserve("z@b.c", IP).await.is_err());
    }

    #[tokio::test]
    async fn window_expiry_unlocks() {
        let policy =
            ThrottlePolicy { max_failures_per_account: 1, max_failures_per_ip: 100, window: Duration::from_millis(50) };
        let t = throttle(policy);
        t.reserve("a@b.c", IP).await.expect("first");
        assert!(t.reserve("a@b.c", IP).await.is_err());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(t.reserve("a@b.c", IP).await.is_ok());
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
