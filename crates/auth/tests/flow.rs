//! End-to-end use of the pieces as the API will glue them: bootstrap admin, throttled login, forced password
//! change, logout everywhere. Uses the in-memory cache; the Redis cache is covered by the shared suite.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use loupe_auth::{
    AdminBootstrap, InMemorySessionCache, LoginThrottle, SessionCache, SigningKey, ThrottlePolicy, TokenSigner,
    UserClaims, ValidationError, hash_password, validate_new_password, verify_password,
};

#[tokio::test]
async fn bootstrap_admin_must_change_password_then_old_sessions_die() {
    let cache: Arc<dyn SessionCache> = Arc::new(InMemorySessionCache::new());
    let throttle = LoginThrottle::new(Arc::clone(&cache), ThrottlePolicy::default());
    let signer = TokenSigner::new(SigningKey::generate().expect("key"), "loupe.local");
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    // Bootstrap: the row the API would insert.
    let admin = AdminBootstrap::from_lookup(|_| None).expect("defaults").prepare().expect("prepare");

    // A wrong guess is counted; the right password logs in and clears the account counter.
    throttle.reserve(&admin.email, ip).await.expect("not throttled");
    assert!(!verify_password("guess", &admin.password_hash).expect("verify"));
    throttle.reserve(&admin.email, ip).await.expect("not throttled");
    assert!(verify_password("admin", &admin.password_hash).expect("verify"));
    throttle.succeeded(&admin.email, ip).await.expect("success");

    let now = loupe_auth::unix_now() - 1;
    let claims = UserClaims {
        must_change_password: admin.must_change_password,
        ..UserClaims::user("admin-id", "", admin.email.clone(), admin.role)
    };
    let first = signer.issue(&claims, Duration::from_secs(3600), now).expect("issue");
    let seen = signer.validate(&first.token, now, cache.as_ref()).await.expect("valid");
    assert!(seen.must_change_password);

    // Change password: policy, new hash, revoke older tokens, new token without the flag.
    assert!(validate_new_password("admin", &admin.email).is_err());
    validate_new_password("a much better passphrase", &admin.email).expect("policy");
    let new_hash = hash_password("a much better passphrase").expect("hash");
    let changed_at = now + 1;
    cache.revoke_all_for_user("admin-id", changed_at).await.expect("revoke all");
    let second = signer
        .issue(&UserClaims { must_change_password: false, ..seen.user_claims() }, Duration::from_secs(3600), changed_at)
        .expect("issue");

    assert!(matches!(signer.validate(&first.token, changed_at, cache.as_ref()).await, Err(ValidationError::Revoked)));
    let fresh = signer.validate(&second.token, changed_at, cache.as_ref()).await.expect("new token valid");
    assert!(!fresh.must_change_password);
    assert!(verify_password("a much better passphrase", &new_hash).expect("verify"));
    assert!(!verify_password("admin", &new_hash).expect("verify"));
}
