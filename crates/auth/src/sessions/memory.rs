//! [`InMemorySessionCache`]: the process-local [`SessionCache`] used by embedded `loupe up`.
//!
//! Owns a bounded map of expiring entries behind one mutex. Must not be used by more than one API process:
//! revocations made here are invisible to other replicas (use the Redis cache there).
//!
//! The bound fails closed: nothing is ever evicted before it expires. A full cache refuses new counters (the
//! login they would count is refused) and new sessions (`admit_session`), but always takes a revocation, so a
//! logged-out token can never come back. Revocations can outgrow the bound only by the sessions already issued
//! when it was reached, since each revocation names one of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{Counter, DEFAULT_USER_REVOCATION_TTL, SessionCache, SessionError, revocation_ttl};

/// Default maximum number of live entries (revocations + user markers + counters).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
enum Value {
    Revoked,
    UserRevokedBefore(i64),
    Counter(u64),
}

#[derive(Debug)]
struct Entry {
    value: Value,
    expires_at: Instant,
}

/// A bounded, expiring, in-process [`SessionCache`].
///
/// When full, expired entries are purged first; if it is still full, a new counter or a new session is refused
/// with [`SessionError::Full`], and a revocation is stored anyway. Nothing live is ever evicted.
#[derive(Debug)]
pub struct InMemorySessionCache {
    entries: Mutex<HashMap<String, Entry>>,
    max_entries: usize,
    user_revocation_ttl: Duration,
}

impl Default for InMemorySessionCache {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemorySessionCache {
    /// A cache holding at most [`DEFAULT_MAX_ENTRIES`] entries, keeping user markers for
    /// [`DEFAULT_USER_REVOCATION_TTL`].
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_MAX_ENTRIES, DEFAULT_USER_REVOCATION_TTL)
    }

    /// A cache with explicit bounds. `max_entries` is clamped to at least 1.
    pub fn with_limits(max_entries: usize, user_revocation_ttl: Duration) -> Self {
        Self { entries: Mutex::new(HashMap::new()), max_entries: max_entries.max(1), user_revocation_ttl }
    }

    /// Number of entries currently stored, expired ones included until the next purge.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn live(&self, key: &str) -> Option<(Value, Instant)> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some(e) if e.expires_at > now => Some((e.value, e.expires_at)),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Whether the locked map is at its bound once expired entries are purged.
    fn full(&self, entries: &mut HashMap<String, Entry>) -> bool {
        if entries.len() < self.max_entries {
            return false;
        }
        let now = Instant::now();
        entries.retain(|_, e| e.expires_at > now);
        entries.len() >= self.max_entries
    }

    /// Inserts or replaces `key` in the locked map. A new counter is refused when the map is full; a revocation
    /// is stored regardless, since forgetting one would revive a token.
    fn put(
        &self,
        entries: &mut HashMap<String, Entry>,
        key: String,
        value: Value,
        ttl: Duration,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        let expires_at = now.checked_add(ttl).unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        if !entries.contains_key(&key) && self.full(entries) {
            if let Value::Counter(_) = value {
                tracing::warn!(max_entries = self.max_entries, "in-memory session cache full; refusing a new counter");
                return Err(SessionError::Full { max_entries: self.max_entries });
            }
            tracing::warn!(max_entries = self.max_entries, "in-memory session cache full; keeping a revocation anyway");
        }
        entries.insert(key, Entry { value, expires_at });
        Ok(())
    }
}

fn revoked_key(jti: &str) -> String {
    format!("revoked:{jti}")
}

fn user_key(user_id: &str) -> String {
    format!("user_revoked:{user_id}")
}

fn hit_key(key: &str) -> String {
    format!("hit:{key}")
}

#[async_trait]
impl SessionCache for InMemorySessionCache {
    async fn revoke(&self, jti: &str, until_exp: i64) -> Result<(), SessionError> {
        if let Some(ttl) = revocation_ttl(until_exp, crate::unix_now()) {
            self.put(&mut self.entries.lock(), revoked_key(jti), Value::Revoked, ttl)?;
        }
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, SessionError> {
        Ok(matches!(self.live(&revoked_key(jti)), Some((Value::Revoked, _))))
    }

    async fn revoke_all_for_user(&self, user_id: &str, before_ts: i64) -> Result<(), SessionError> {
        let key = user_key(user_id);
        let now = Instant::now();
        let mut entries = self.entries.lock();
        let current = match entries.get(&key) {
            Some(Entry { value: Value::UserRevokedBefore(ts), expires_at }) if *expires_at > now => Some(*ts),
            _ => None,
        };
        if current.is_none_or(|ts| ts < before_ts) {
            self.put(&mut entries, key, Value::UserRevokedBefore(before_ts), self.user_revocation_ttl)?;
        }
        Ok(())
    }

    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<i64>, SessionError> {
        Ok(match self.live(&user_key(user_id)) {
            Some((Value::UserRevokedBefore(ts), _)) => Some(ts),
            _ => None,
        })
    }

    async fn hit(&self, key: &str, window: Duration) -> Result<u64, SessionError> {
        let key = hit_key(key);
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if let Some(Entry { value: Value::Counter(count), expires_at }) = entries.get_mut(&key)
            && *expires_at > now
        {
            *count = count.saturating_add(1);
            return Ok(*count);
        }
        self.put(&mut entries, key, Value::Counter(1), window.max(Duration::from_millis(1)))?;
        Ok(1)
    }

    async fn unhit(&self, key: &str) -> Result<(), SessionError> {
        let now = Instant::now();
        if let Some(Entry { value: Value::Counter(count), expires_at }) = self.entries.lock().get_mut(&hit_key(key))
            && *expires_at > now
        {
            *count = count.saturating_sub(1);
        }
        Ok(())
    }

    async fn admit_session(&self) -> Result<(), SessionError> {
        if self.full(&mut self.entries.lock()) {
            tracing::warn!(max_entries = self.max_entries, "in-memory session cache full; refusing a new session");
            return Err(SessionError::Full { max_entries: self.max_entries });
        }
        Ok(())
    }

    async fn counter(&self, key: &str) -> Result<Option<Counter>, SessionError> {
        Ok(match self.live(&hit_key(key)) {
            Some((Value::Counter(count), expires_at)) if count > 0 => {
                Some(Counter { count, resets_in: expires_at.saturating_duration_since(Instant::now()) })
            }
            _ => None,
        })
    }

    async fn reset(&self, key: &str) -> Result<(), SessionError> {
        self.entries.lock().remove(&hit_key(key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_cache_refuses_new_counters_and_sessions_instead_of_evicting() {
        let cache = InMemorySessionCache::with_limits(2, Duration::from_secs(3600));
        cache.hit("short", Duration::from_secs(1)).await.expect("hit");
        cache.hit("long", Duration::from_secs(3600)).await.expect("hit");
        let err = cache.hit("third", Duration::from_secs(3600)).await.expect_err("full");
        assert!(matches!(err, SessionError::Full { max_entries: 2 }), "{err}");
        assert!(matches!(cache.admit_session().await, Err(SessionError::Full { max_entries: 2 })));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.counter("short").await.expect("counter").map(|c| c.count), Some(1));
        assert_eq!(cache.counter("long").await.expect("counter").map(|c| c.count), Some(1));
    }

    #[tokio::test]
    async fn full_cache_purges_expired_before_refusing() {
        let cache = InMemorySessionCache::with_limits(2, Duration::from_secs(3600));
        cache.hit("gone", Duration::from_millis(5)).await.expect("hit");
        cache.hit("keep", Duration::from_secs(3600)).await.expect("hit");
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.hit("new", Duration::from_secs(3600)).await.expect("hit");
        assert!(cache.counter("keep").await.expect("counter").is_some());
        assert!(cache.counter("new").await.expect("counter").is_some());
    }

    #[tokio::test]
    async fn updating_existing_key_when_full_does_not_evict() {
        let cache = InMemorySessionCache::with_limits(1, Duration::from_secs(3600));
        cache.hit("only", Duration::from_secs(60)).await.expect("hit");
        assert_eq!(cache.hit("only", Duration::from_secs(60)).await.expect("hit"), 2);
        assert_eq!(cache.len(), 1);
        assert!(!cache.is_empty());
    }

    /// The attack: fill the cache past its bound with short-lived entries and fresh revocations, hoping the
    /// revocation of a stolen token is evicted. It is never evicted; the bound is held by refusing new sessions.
    #[tokio::test]
    async fn revocations_survive_a_cache_filled_past_its_bound() {
        let cache = InMemorySessionCache::with_limits(100, Duration::from_secs(3600));
        let exp = crate::unix_now() + 3600;
        cache.revoke("stolen", exp - 1800).await.expect("revoke");
        cache.revoke_all_for_user("victim", 1_000).await.expect("revoke all");
        for i in 0..500 {
            cache.revoke(&format!("churn-{i}"), exp).await.expect("a revocation is always stored");
        }
        assert_eq!(cache.len(), 502, "revocations are kept past the bound, never evicted");
        assert!(cache.is_revoked("stolen").await.expect("is_revoked"));
        assert_eq!(cache.user_revoked_before("victim").await.expect("marker"), Some(1_000));
        assert!(matches!(cache.admit_session().await, Err(SessionError::Full { max_entries: 100 })));
        assert!(matches!(cache.hit("login:ip:x", Duration::from_secs(60)).await, Err(SessionError::Full { .. })));
    }

    #[tokio::test]
    async fn unhit_takes_one_back_and_never_creates() {
        let cache = InMemorySessionCache::new();
        cache.unhit("absent").await.expect("unhit");
        assert_eq!(cache.counter("absent").await.expect("counter"), None);
        cache.hit("k", Duration::from_secs(60)).await.expect("hit");
        cache.hit("k", Duration::from_secs(60)).await.expect("hit");
        cache.unhit("k").await.expect("unhit");
        assert_eq!(cache.counter("k").await.expect("counter").map(|c| c.count), Some(1));
        cache.unhit("k").await.expect("unhit");
        cache.unhit("k").await.expect("unhit");
        assert_eq!(cache.counter("k").await.expect("counter"), None, "zero reads as no hits");
    }
}
