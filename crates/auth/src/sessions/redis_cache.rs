//! [`RedisSessionCache`]: the distributed [`SessionCache`] shared by all API replicas.
//!
//! Owns one lazily (re)connected multiplexed Redis connection and the key layout under a prefix. Must not keep
//! any state of its own beyond that connection: everything lives in Redis with a TTL.
//!
//! Reconnection: a failed connection is dropped and the next call dials again (bounded by the connect
//! timeout), so the same instance recovers by itself after Redis restarts. A call that fails on a connection
//! that was already open is retried once on a fresh one, which hides the single error a restart would
//! otherwise leave behind. While Redis is down each call fails with [`SessionError::Unavailable`] within
//! roughly `connect_timeout` (immediately when the port refuses connections).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Cmd, FromRedisValue, Pipeline, RedisError};
use tokio::sync::Mutex;

use super::{Counter, DEFAULT_USER_REVOCATION_TTL, SessionCache, SessionError, revocation_ttl};

/// Sets the user marker only if it is absent or older; KEYS[1] = marker, ARGV[1] = before_ts, ARGV[2] = ttl s.
const RAISE_USER_MARKER_LUA: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return 1
";

/// Takes one hit back without creating the counter or touching its expiry; KEYS[1] = counter.
const UNHIT_LUA: &str = r"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur > 0 then
  redis.call('DECR', KEYS[1])
end
return 1
";

/// Connection settings for [`RedisSessionCache`].
#[derive(Clone)]
pub struct RedisSessionCacheConfig {
    /// `redis://[:password@]host:port[/db]` (or `rediss://` if TLS support is compiled into `redis`).
    pub url: String,
    /// Prefix of every key, so several deployments can share one Redis. Default `loupe:auth:`.
    pub key_prefix: String,
    /// Longest wait to establish a connection. Default 1 s.
    pub connect_timeout: Duration,
    /// Longest wait for a reply on an open connection. Default 1 s.
    pub response_timeout: Duration,
    /// How long "revoke all sessions of a user" markers are kept (at least the longest token TTL).
    pub user_revocation_ttl: Duration,
}

impl RedisSessionCacheConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key_prefix: "loupe:auth:".to_owned(),
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
            user_revocation_ttl: DEFAULT_USER_REVOCATION_TTL,
        }
    }
}

impl fmt::Debug for RedisSessionCacheConfig {
    // The URL may embed a password; never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionCacheConfig")
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("user_revocation_ttl", &self.user_revocation_ttl)
            .finish_non_exhaustive()
    }
}

/// A [`SessionCache`] in Redis, safe to share between API replicas.
pub struct RedisSessionCache {
    client: redis::Client,
    config: RedisSessionCacheConfig,
    /// The current connection and its generation, so a failure only discards the connection it happened on.
    conn: Mutex<(u64, Option<MultiplexedConnection>)>,
}

impl fmt::Debug for RedisSessionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSessionCache").field("config", &self.config).finish_non_exhaustive()
    }
}

enum Request<'a> {
    Cmd(&'a Cmd),
    Pipe(&'a Pipeline),
}

fn is_connection_error(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

impl RedisSessionCache {
    /// Parses the URL; connects lazily on first use. Fails only on an invalid URL.
    pub fn new(config: RedisSessionCacheConfig) -> Result<Self, SessionError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| SessionError::InvalidConfig(format!("redis url: {e}")))?;
        Ok(Self { client, config, conn: Mutex::new((0, None)) })
    }

    /// Like [`RedisSessionCache::new`], then connects and sends `PING`, so a misconfiguration shows at startup.
    /// Warns when Redis may evict keys under memory pressure: revocations would then be forgotten.
    pub async fn connect(config: RedisSessionCacheConfig) -> Result<Self, SessionError> {
        let cache = Self::new(config)?;
        cache.ping().await?;
        match cache.eviction_policy().await {
            Ok(Some(policy)) if policy != "noeviction" => tracing::warn!(
                policy,
                "redis may evict keys when full, revoked sessions included; set maxmemory-policy noeviction so a \
                 full redis refuses writes (and logins) instead of forgetting revocations"
            ),
            Ok(_) => {}
            // Managed Redis often disables CONFIG: nothing to check then.
            Err(error) => tracing::debug!(%error, "cannot read redis' maxmemory-policy"),
        }
        Ok(cache)
    }

    /// Redis' `maxmemory-policy`, or `None` when no memory limit is set (then nothing is ever evicted).
    pub async fn eviction_policy(&self) -> Result<Option<String>, SessionError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CONFIG").arg("GET").arg("maxmemory").cmd("CONFIG").arg("GET").arg("maxmemory-policy");
        let (limit, policy): (Vec<String>, Vec<String>) = self.query("eviction_policy", Request::Pipe(&pipe)).await?;
        let limit = limit.get(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok((limit > 0).then(|| policy.get(1).cloned().unwrap_or_default()))
    }

    /// Round-trips a `PING`; for readiness probes.
    pub async fn ping(&self) -> Result<(), SessionError> {
        let _: String = self.query("ping", Request::Cmd(&redis::cmd("PING"))).await?;
        Ok(())
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.config.key_prefix)
    }

    /// The open connection (and whether it was opened by this call), dialling if there is none.
    async fn connection(&self, operation: &'static str) -> Result<(u64, MultiplexedConnection, bool), SessionError> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = &slot.1 {
            return Ok((slot.0, conn.clone(), false));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.response_timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|source| SessionError::Unavailable { operation, source })?;
        slot.0 = slot.0.wrapping_add(1);
        slot.1 = Some(conn.clone());
        tracing::debug!(generation = slot.0, "connected to redis session store");
        Ok((slot.0, conn, true))
    }

    async fn forget(&self, generation: u64) {
        let mut slot = self.conn.lock().await;
        if slot.0 == generation && slot.1.take().is_some() {
            tracing::warn!("lost connection to redis session store; will reconnect on next call");
        }
    }

    async fn query<T: FromRedisValue>(&self, operation: &'static str, request: Request<'_>) -> Result<T, SessionError> {
        let (generation, mut conn, fresh) = self.connection(operation).await?;
        let result = match &request {
            Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
            Request::Pipe(pipe) => pipe.query_async(&mut conn).await,
        };
        match result {
            Ok(v) => Ok(v),
            Err(e) if is_connection_error(&e) => {
                self.forget(generation).await;
                if fresh {
                    return Err(SessionError::Unavailable { operation, source: e });
                }
                // The connection predates this call and may simply be stale (e.g. Redis restarted): try once
                // more on a new one. A repeated INCR at worst over-counts a failure, erring on the safe side.
                let (generation, mut conn, _) = self.connection(operation).await?;
                let retried = match &request {
                    Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
                    Request::Pipe(pipe) => pipe.query_async(&mut conn).await,
                };
                match retried {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        if is_connection_error(&e) {
                            self.forget(generation).await;
                        }
                        Err(SessionError::Unavailable { operation, source: e })
                    }
                }
            }
            Err(e) => Err(SessionError::Unavailable { operation, source: e }),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl SessionCache for RedisSessionCache {
    async fn revoke(&self, jti: &str, until_exp: i64) -> Result<(), SessionError> {
        let Some(ttl) = revocation_ttl(until_exp, crate::unix_now()) else { return Ok(()) };
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key("revoked", jti)).arg(1).arg("EX").arg(ttl.as_secs().max(1));
        let _: () = self.query("revoke", Request::Cmd(&cmd)).await?;
        Ok(())
    }

    async fn is_revoked(&self, jti: &str) -> Result<bool, SessionError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.key("revoked", jti));
        let n: u64 = self.query("is_revoked", Request::Cmd(&cmd)).await?;
        Ok(n > 0)
    }

    async fn revoke_all_for_user(&self, user_id: &str, before_ts: i64) -> Result<(), SessionError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RAISE_USER_MARKER_LUA)
            .arg(1)
            .arg(self.key("user_revoked", user_id))
            .arg(before_ts)
            .arg(self.config.user_revocation_ttl.as_secs().max(1));
        let _: i64 = self.query("revoke_all_for_user", Request::Cmd(&cmd)).await?;
        Ok(())
    }

    async fn user_revoked_before(&self, user_id: &str) -> Result<Option<i64>, SessionError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key("user_revoked", user_id));
        self.query("user_revoked_before", Request::Cmd(&cmd)).await
    }

    async fn hit(&self, key: &str, window: Duration) -> Result<u64, SessionError> {
        let key = self.key("hit", key);
        // MULTI/EXEC: create the counter with its expiry if absent, then INCR (which keeps the TTL). The window
        // is fixed from the first hit.
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&key)
            .arg(0)
            .arg("PX")
            .arg(millis(window))
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&key);
        let (count,): (u64,) = self.query("hit", Request::Pipe(&pipe)).await?;
        Ok(count)
    }

    async fn unhit(&self, key: &str) -> Result<(), SessionError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(UNHIT_LUA).arg(1).arg(self.key("hit", key));
        let _: i64 = self.query("unhit", Request::Cmd(&cmd)).await?;
        Ok(())
    }

    /// Redis bounds its own memory; revocations carry a TTL and are never deleted early by this crate.
    async fn admit_session(&self) -> Result<(), SessionError> {
        Ok(())
    }

    async fn counter(&self, key: &str) -> Result<Option<Counter>, SessionError> {
        let key = self.key("hit", key);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let (count, pttl): (Option<u64>, i64) = self.query("counter", Request::Pipe(&pipe)).await?;
        Ok(count
            .filter(|c| *c > 0)
            .map(|count| Counter { count, resets_in: Duration::from_millis(u64::try_from(pttl).unwrap_or(0)) }))
    }

    async fn reset(&self, key: &str) -> Result<(), SessionError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key("hit", key));
        let _: u64 = self.query("reset", Request::Cmd(&cmd)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_url_is_a_config_error() {
        let err = RedisSessionCache::new(RedisSessionCacheConfig::new("not a url")).expect_err("invalid");
        assert!(matches!(err, SessionError::InvalidConfig(_)), "{err}");
    }

    #[test]
    fn debug_hides_the_url() {
        let cfg = RedisSessionCacheConfig::new("redis://:hunter2@localhost:6379");
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let cache = RedisSessionCache::new(cfg).expect("valid url");
        assert!(!format!("{cache:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn unreachable_server_is_unavailable_quickly() {
        // Port 1 on loopback refuses connections.
        let cache = RedisSessionCache::new(RedisSessionCacheConfig::new("redis://127.0.0.1:1")).expect("valid url");
        let start = std::time::Instant::now();
        let err = cache.is_revoked("x").await.expect_err("no server");
        assert!(matches!(err, SessionError::Unavailable { operation: "is_revoked", .. }), "{err}");
        assert!(err.to_string().starts_with("session store unavailable during is_revoked"), "{err}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
