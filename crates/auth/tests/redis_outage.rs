//! Redis-specific behaviour: outage fails fast and closed with `Unavailable`, the same cache instance recovers
//! after Redis restarts, and key prefixes isolate deployments sharing one server.

use std::time::{Duration, Instant};

use loupe_auth::sessions::{RedisSessionCache, RedisSessionCacheConfig, SessionCache, SessionError};
use loupe_auth::{Role, SigningKey, TokenSigner, UserClaims, ValidationError, unix_now};

use loupe_testkit::RedisServer;

fn config(server: &RedisServer) -> RedisSessionCacheConfig {
    RedisSessionCacheConfig {
        connect_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
        ..RedisSessionCacheConfig::new(server.url())
    }
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, SessionError>, op: &str) {
    match result {
        Err(e @ SessionError::Unavailable { .. }) => {
            assert!(e.to_string().contains(&format!("session store unavailable during {op}")), "{e}");
        }
        other => panic!("{op}: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn redis_restarted_fails_closed_then_same_instance_recovers() {
    let mut server = RedisServer::start();
    let cache = RedisSessionCache::connect(config(&server)).await.expect("connect");
    let exp = unix_now() + 3600;
    cache.revoke("before-outage", exp).await.expect("revoke");
    assert!(cache.is_revoked("before-outage").await.expect("is_revoked"));

    server.stop();
    let start = Instant::now();
    assert_unavailable(cache.is_revoked("before-outage").await, "is_revoked");
    assert_unavailable(cache.revoke("x", exp).await, "revoke");
    assert_unavailable(cache.revoke_all_for_user("u", 1).await, "revoke_all_for_user");
    assert_unavailable(cache.user_revoked_before("u").await, "user_revoked_before");
    assert_unavailable(cache.hit("k", Duration::from_secs(60)).await, "hit");
    assert_unavailable(cache.counter("k").await, "counter");
    assert_unavailable(cache.reset("k").await, "reset");
    assert_unavailable(cache.ping().await, "ping");
    assert!(start.elapsed() < Duration::from_secs(4), "outage errors took {:?}", start.elapsed());

    // Token validation fails closed: an unreadable revocation list never yields a valid session.
    let signer = TokenSigner::new(SigningKey::generate().expect("key"), "loupe.test");
    let issued = signer
        .issue(&UserClaims::user("u", "o", "a@b.c", Role::Admin), Duration::from_secs(60), unix_now())
        .expect("issue");
    let err = signer.validate(&issued.token, unix_now(), &cache).await.expect_err("must fail closed");
    assert!(matches!(err, ValidationError::Session(_)) && err.is_unavailable(), "{err}");

    server.restart();
    // No persistence in this test server, so earlier state is gone; the point is the same instance works again.
    assert!(!cache.is_revoked("before-outage").await.expect("is_revoked after restart"));
    cache.revoke("after-restart", exp).await.expect("revoke after restart");
    assert!(cache.is_revoked("after-restart").await.expect("is_revoked"));
    assert_eq!(cache.hit("k", Duration::from_secs(60)).await.expect("hit"), 1);
    signer.validate(&issued.token, unix_now(), &cache).await.expect("valid again");
}

#[tokio::test]
async fn restart_without_intermediate_calls_is_invisible_to_callers() {
    let mut server = RedisServer::start();
    let cache = RedisSessionCache::connect(config(&server)).await.expect("connect");
    server.restart();
    // The cached connection is dead; the one transparent retry on a fresh connection hides it.
    assert_eq!(cache.hit("k", Duration::from_secs(60)).await.expect("hit after silent restart"), 1);
}

#[tokio::test]
async fn connect_to_absent_server_fails_fast() {
    let mut server = RedisServer::start();
    let cfg = config(&server);
    server.stop();
    let start = Instant::now();
    let err = RedisSessionCache::connect(cfg).await.expect_err("no server");
    assert!(matches!(err, SessionError::Unavailable { operation: "ping", .. }), "{err}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn key_prefixes_isolate_deployments() {
    let server = RedisServer::start();
    let a = RedisSessionCache::connect(RedisSessionCacheConfig { key_prefix: "a:".into(), ..config(&server) })
        .await
        .expect("connect a");
    let b = RedisSessionCache::connect(RedisSessionCacheConfig { key_prefix: "b:".into(), ..config(&server) })
        .await
        .expect("connect b");
    a.revoke("jti", unix_now() + 60).await.expect("revoke");
    assert!(a.is_revoked("jti").await.expect("a"));
    assert!(!b.is_revoked("jti").await.expect("b"));
}

/// Revocations must not be forgotten: a Redis that may evict keys when full is reported at connect.
#[tokio::test]
async fn an_evicting_redis_is_recognised() {
    let server = RedisServer::start();
    let cache = RedisSessionCache::connect(config(&server)).await.expect("connect");
    assert_eq!(cache.eviction_policy().await.expect("policy"), None, "no memory limit: nothing is evicted");
    let client = redis::Client::open(server.url()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg("100mb").query_async(&mut conn).await.expect("set");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .expect("set");
    assert_eq!(cache.eviction_policy().await.expect("policy").as_deref(), Some("allkeys-lru"));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut conn)
        .await
        .expect("set");
    assert_eq!(cache.eviction_policy().await.expect("policy").as_deref(), Some("noeviction"));
}
