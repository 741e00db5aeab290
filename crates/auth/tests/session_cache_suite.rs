//! One `SessionCache` behaviour suite, instantiated for `InMemorySessionCache` and `RedisSessionCache`.
//! Owns behaviour both implementations must share; implementation-specific tests live beside each impl.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use loupe_auth::sessions::{InMemorySessionCache, RedisSessionCache, RedisSessionCacheConfig, SessionCache};
use loupe_auth::{LoginThrottle, Role, SigningKey, ThrottleError, ThrottlePolicy, TokenSigner, UserClaims, unix_now};

use loupe_testkit::RedisServer;

/// A cache under test plus whatever must outlive it.
pub struct Fixture {
    pub cache: Arc<dyn SessionCache>,
    _server: Option<RedisServer>,
}

pub async fn memory() -> Fixture {
    Fixture { cache: Arc::new(InMemorySessionCache::new()), _server: None }
}

pub async fn redis() -> Fixture {
    let server = RedisServer::start();
    let cache = RedisSessionCache::connect(RedisSessionCacheConfig::new(server.url())).await.expect("connect");
    Fixture { cache: Arc::new(cache), _server: Some(server) }
}

macro_rules! session_cache_suite {
    ($name:ident, $fixture:path) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn revoke_marks_only_that_session() {
                let f = $fixture().await;
                let exp = unix_now() + 3600;
                assert!(!f.cache.is_revoked("jti-1").await.expect("is_revoked"));
                f.cache.revoke("jti-1", exp).await.expect("revoke");
                assert!(f.cache.is_revoked("jti-1").await.expect("is_revoked"));
                assert!(!f.cache.is_revoked("jti-2").await.expect("is_revoked"));
                f.cache.revoke("jti-1", exp).await.expect("revoke twice is fine");
                assert!(f.cache.is_revoked("jti-1").await.expect("is_revoked"));
            }

            #[tokio::test]
            async fn revoking_a_long_expired_session_is_a_noop() {
                let f = $fixture().await;
                f.cache.revoke("old", unix_now() - 3600).await.expect("revoke");
                assert!(!f.cache.is_revoked("old").await.expect("is_revoked"));
            }

            #[tokio::test]
            async fn user_marker_only_moves_forward() {
                let f = $fixture().await;
                assert_eq!(f.cache.user_revoked_before("u1").await.expect("get"), None);
                f.cache.revoke_all_for_user("u1", 1_000).await.expect("set");
                assert_eq!(f.cache.user_revoked_before("u1").await.expect("get"), Some(1_000));
                f.cache.revoke_all_for_user("u1", 900).await.expect("older ignored");
                assert_eq!(f.cache.user_revoked_before("u1").await.expect("get"), Some(1_000));
                f.cache.revoke_all_for_user("u1", 2_000).await.expect("newer");
                assert_eq!(f.cache.user_revoked_before("u1").await.expect("get"), Some(2_000));
                assert_eq!(f.cache.user_revoked_before("u2").await.expect("get"), None);
            }

            #[tokio::test]
            async fn hits_count_within_window_and_restart_after() {
                let f = $fixture().await;
                let window = Duration::from_millis(300);
                assert_eq!(f.cache.hit("k", window).await.expect("hit"), 1);
                assert_eq!(f.cache.hit("k", window).await.expect("hit"), 2);
                assert_eq!(f.cache.hit("k", window).await.expect("hit"), 3);
                assert_eq!(f.cache.hit("other", window).await.expect("hit"), 1);
                tokio::time::sleep(Duration::from_millis(400)).await;
                assert_eq!(f.cache.counter("k").await.expect("counter"), None);
                assert_eq!(f.cache.hit("k", window).await.expect("hit"), 1);
            }

            #[tokio::test]
            async fn counter_reads_without_incrementing() {
                let f = $fixture().await;
                let window = Duration::from_secs(60);
                assert_eq!(f.cache.counter("c").await.expect("counter"), None);
                f.cache.hit("c", window).await.expect("hit");
                f.cache.hit("c", window).await.expect("hit");
                let c = f.cache.counter("c").await.expect("counter").expect("present");
                assert_eq!(c.count, 2);
                assert!(c.resets_in <= window && c.resets_in > Duration::from_secs(55), "{c:?}");
                assert_eq!(f.cache.counter("c").await.expect("counter").map(|c| c.count), Some(2));
            }

            #[tokio::test]
            async fn reset_deletes_the_counter() {
                let f = $fixture().await;
                f.cache.hit("r", Duration::from_secs(60)).await.expect("hit");
                f.cache.reset("r").await.expect("reset");
                assert_eq!(f.cache.counter("r").await.expect("counter"), None);
                f.cache.reset("never-existed").await.expect("reset missing is fine");
                assert_eq!(f.cache.hit("r", Duration::from_secs(60)).await.expect("hit"), 1);
            }

            #[tokio::test]
            async fn concurrent_hits_are_all_counted() {
                let f = $fixture().await;
                let mut tasks = Vec::new();
                for _ in 0..50 {
                    let cache = Arc::clone(&f.cache);
                    tasks.push(tokio::spawn(async move { cache.hit("busy", Duration::from_secs(60)).await }));
                }
                let mut seen = Vec::new();
                for t in tasks {
                    seen.push(t.await.expect("join").expect("hit"));
                }
                seen.sort_unstable();
                assert_eq!(seen, (1..=50).collect::<Vec<u64>>(), "every hit gets a distinct count");
            }

            #[tokio::test]
            async fn namespaces_do_not_collide() {
                let f = $fixture().await;
                f.cache.revoke("same", unix_now() + 60).await.expect("revoke");
                assert_eq!(f.cache.counter("same").await.expect("counter"), None);
                assert_eq!(f.cache.user_revoked_before("same").await.expect("get"), None);
                assert_eq!(f.cache.hit("same", Duration::from_secs(60)).await.expect("hit"), 1);
            }

            #[tokio::test]
            async fn login_throttle_works_on_this_cache() {
                let f = $fixture().await;
                let policy = ThrottlePolicy { max_failures_per_account: 3, ..ThrottlePolicy::default() };
                let t = LoginThrottle::new(Arc::clone(&f.cache), policy);
                let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
                for _ in 0..3 {
                    t.reserve("a@b.c", ip).await.expect("not yet throttled");
                }
                match t.reserve("a@b.c", ip).await {
                    Err(ThrottleError::Throttled { retry_after }) => {
                        assert!(retry_after > Duration::from_secs(890), "{retry_after:?}")
                    }
                    other => panic!("expected throttled, got {other:?}"),
                }
                t.succeeded("a@b.c", ip).await.expect("success");
                t.reserve("a@b.c", ip).await.expect("cleared");
            }

            /// Many logins for one account at once: each reservation is one atomic increment, so exactly the
            /// limit of them reach the password check, and a correct password sent after them is refused.
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn parallel_reservations_admit_exactly_the_limit() {
                let f = $fixture().await;
                let t = LoginThrottle::new(Arc::clone(&f.cache), ThrottlePolicy::default());
                let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
                let tasks: Vec<_> = (0..24)
                    .map(|_| {
                        let t = t.clone();
                        tokio::spawn(async move { t.reserve("victim@b.c", ip).await.is_ok() })
                    })
                    .collect();
                let mut admitted = 0;
                for task in tasks {
                    admitted += usize::from(task.await.expect("join"));
                }
                assert_eq!(admitted, 5);
                assert!(matches!(t.reserve("victim@b.c", ip).await, Err(ThrottleError::Throttled { .. })));
                assert_eq!(
                    f.cache.counter("login:account:victim@b.c").await.expect("counter").map(|c| c.count),
                    Some(5)
                );
            }

            #[tokio::test]
            async fn unhit_takes_one_back_without_creating() {
                let f = $fixture().await;
                f.cache.unhit("never").await.expect("unhit");
                assert_eq!(f.cache.counter("never").await.expect("counter"), None);
                f.cache.hit("k", Duration::from_secs(60)).await.expect("hit");
                f.cache.hit("k", Duration::from_secs(60)).await.expect("hit");
                f.cache.unhit("k").await.expect("unhit");
                let left = f.cache.counter("k").await.expect("counter").expect("still counting");
                assert_eq!(left.count, 1);
                assert!(left.resets_in > Duration::from_secs(50), "the window is kept: {:?}", left.resets_in);
                f.cache.unhit("k").await.expect("unhit");
                f.cache.unhit("k").await.expect("unhit below zero");
                assert_eq!(f.cache.counter("k").await.expect("counter"), None);
                assert_eq!(f.cache.hit("k", Duration::from_secs(60)).await.expect("hit"), 1);
            }

            #[tokio::test]
            async fn token_validation_consults_this_cache() {
                let f = $fixture().await;
                let signer = TokenSigner::new(SigningKey::generate().expect("key"), "loupe.test");
                let now = unix_now();
                let user = UserClaims::user("u-9", "o-1", "x@y.z", Role::Member);
                let issued = signer.issue(&user, Duration::from_secs(600), now - 5).expect("issue");
                signer.validate(&issued.token, now, f.cache.as_ref()).await.expect("valid");
                f.cache.revoke_all_for_user("u-9", now).await.expect("revoke all");
                let err = signer.validate(&issued.token, now, f.cache.as_ref()).await.expect_err("revoked");
                assert_eq!(err.to_string(), "session has been revoked");
            }
        }
    };
}

session_cache_suite!(in_memory, memory);
session_cache_suite!(redis_backed, redis);
