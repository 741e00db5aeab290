//! Revocation and throttling state shared by every API replica: the [`SessionCache`] trait and its two
//! implementations, [`InMemorySessionCache`] (embedded `loupe up`) and [`RedisSessionCache`] (distributed).
//!
//! Owns short-lived, expiring state only: revoked session ids, "logged out everywhere" markers and
//! fixed-window counters. Must not hold users, passwords or anything that cannot be lost on a restart of
//! Redis; durable session rows live in the metastore.
//!
//! **Fail closed.** When the cache is unreachable every operation returns [`SessionError::Unavailable`]. The
//! API must then refuse the request (treat "cannot tell whether this token is revoked" as "revoked", and
//! "cannot count login failures" as "throttled") rather than skip the check; logins and authenticated calls
//! are unavailable while Redis is down, which is the price of never honouring a revoked token.

mod memory;
mod redis_cache;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::{DEFAULT_MAX_ENTRIES, InMemorySessionCache};
pub use redis_cache::{RedisSessionCache, RedisSessionCacheConfig};

/// Extra time a revocation is kept after the token's `exp`, covering the verifier's clock leeway.
pub const REVOCATION_GRACE: Duration = Duration::from_secs(60);
/// Default time a "revoke all sessions of this user" marker is kept: the 90-day login token lifetime plus a
/// day. It must be at least the longest token TTL the API issues, or an old token would come back to life.
pub const DEFAULT_USER_REVOCATION_TTL: Duration = Duration::from_secs((90 + 1) * 24 * 3600);

/// Errors from a [`SessionCache`].
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The backing store could not be reached or did not answer in time. Callers must fail closed.
    #[error("session store unavailable during {operation}: {source}")]
    Unavailable {
        /// The cache operation that failed, e.g. `is_revoked`.
        operation: &'static str,
        /// The underlying Redis error.
        #[source]
        source: redis::RedisError,
    },
    /// The cache was configured with something unusable (e.g. a malformed Redis URL).
    #[error("invalid session store configuration: {0}")]
    InvalidConfig(String),
    /// The in-memory cache holds its maximum of live entries. Revocations are never dropped to make room (a
    /// forgotten revocation would bring a logged-out token back), so new sessions and new throttling counters
    /// are refused until entries expire: answer 503.
    #[error(
        "the session store is full ({max_entries} live revocations and counters); new sessions are refused until \
         some expire"
    )]
    Full {
        /// The configured bound.
        max_entries: usize,
    },
}

/// The state of one throttling counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Hits recorded in the current window.
    pub count: u64,
    /// Time until the window ends and the counter disappears.
    pub resets_in: Duration,
}

/// Expiring revocation and throttling state. Dyn-compatible: the API holds an `Arc<dyn SessionCache>`.
///
/// Times given as `i64` are Unix seconds, the unit of JWT claims. Implementations bound their memory by
/// expiring every entry; nothing here lives forever. A revocation is never dropped before it expires (fail
/// closed): a bounded implementation refuses new sessions ([`SessionCache::admit_session`]) and new counters
/// instead.
#[async_trait]
pub trait SessionCache: Send + Sync + std::fmt::Debug {
    /// Marks the session `jti` revoked until `until_exp` (the latest `exp` any token of that session can
    /// carry) plus [`REVOCATION_GRACE`]. Revoking an already-expired session is a no-op.
    async fn revoke(&self, jti: &str, until_exp: i64) -> Result<(), SessionError>;

    /// Whether the session `jti` was revoked.
    async fn is_revoked(&self, jti: &str) -> Result<bool, SessionError>;

    /// Revokes every token of `user_id` issued (`iat`) strictly before `before_ts`: logout everywhere, password
    /// change. The marker only moves forward: a smaller `before_ts` than the stored one is ignored.
    async fn revoke_all_for_user(&self, user_id: &str, before_ts: i64) -> Result<(), SessionError>;

    /// The cut-off set by [`SessionCache::revoke_all_for_user`], if any.
    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<i64>, SessionError>;

    /// Adds one hit to the fixed-window counter `key` and returns the new count. The window starts at the
    /// first hit and lasts `window`; after it the counter starts again from zero.
    async fn hit(&self, key: &str, window: Duration) -> Result<u64, SessionError>;

    /// Takes one hit back from the counter `key` (never below zero, never creating it): an attempt that was
    /// counted up front and then turned out not to need counting (a successful login, a refused hashing slot).
    async fn unhit(&self, key: &str) -> Result<(), SessionError>;

    /// Whether a new session may be issued now: [`SessionError::Full`] when the cache could not hold that
    /// session's revocation later without exceeding its bound.
    async fn admit_session(&self) -> Result<(), SessionError>;

    /// Reads the counter `key` without changing it; `None` if it has no hits in the current window.
    async fn counter(&self, key: &str) -> Result<Option<Counter>, SessionError>;

    /// Deletes the counter `key`.
    async fn reset(&self, key: &str) -> Result<(), SessionError>;
}

/// How long to keep a revocation for a session whose tokens expire at `until_exp`, seen at `now`; `None` if
/// the session is already past expiry plus grace (nothing to remember).
pub(crate) fn revocation_ttl(until_exp: i64, now: i64) -> Option<Duration> {
    let grace = i64::try_from(REVOCATION_GRACE.as_secs()).unwrap_or(i64::MAX);
    let secs = until_exp.saturating_add(grace).saturating_sub(now);
    u64::try_from(secs).ok().filter(|s| *s > 0).map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_ttl_adds_grace_and_skips_expired() {
        assert_eq!(revocation_ttl(1_000, 900), Some(Duration::from_secs(160)));
        assert_eq!(revocation_ttl(1_000, 1_030), Some(Duration::from_secs(30)));
        assert_eq!(revocation_ttl(1_000, 1_060), None);
        assert_eq!(revocation_ttl(i64::MIN, 0), None);
        assert!(revocation_ttl(i64::MAX, 0).is_some());
    }
}
