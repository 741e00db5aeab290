//! Regression tests of the authentication hardening: each performs an attack from the security review against
//! the real router (or a real service port) and shows it fails. The bootstrap admin does not come back, parallel
//! logins cannot outrun the throttle, forged client addresses are ignored, a full session cache keeps its
//! revocations, refreshing cannot outlive the absolute session lifetime, and a password change ends API keys.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use loupe_auth::{AdminBootstrap, InMemorySessionCache, SessionCache, ThrottlePolicy, unix_now};
use loupe_cloud::services::{CLIENT_IP_METADATA, GATEWAY_CREDENTIAL_METADATA, GatewayCredential};
use loupe_cloud::{CloudConfig, PROXY_SECRET_HEADER, ServiceKind};
use loupe_metastore::{NewUser, Role};
use loupe_proto::cloudpb::{self, auth_service_client::AuthServiceClient};
use serde_json::json;
use tonic::transport::Channel;

use crate::common::{Cred, Harness, NEW_ADMIN_PASSWORD, harness, harness_with, harness_with_cache, request};

/// A login as the end client `client` would send it through a proxy, arriving from `peer`.
fn login_via(
    peer: [u8; 4],
    forwarded_for: &str,
    extra: Option<(&'static str, &str)>,
    email: &str,
    password: &str,
) -> axum::http::Request<axum::body::Body> {
    let body = json!({ "email": email, "password": password });
    let mut req = request("POST", "/api/v1/auth/login", None, Some(&body));
    req.headers_mut().insert("x-forwarded-for", forwarded_for.parse().expect("header"));
    if let Some((name, value)) = extra {
        req.headers_mut().insert(name, value.parse().expect("header"));
    }
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((peer, 40000))));
    req
}

#[tokio::test]
async fn a_deleted_bootstrap_admin_is_not_recreated_on_restart() {
    let h = harness().await;
    h.admin_token().await;
    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    // The operator invites a real admin and deletes the default one.
    let real = h.create_user(admin.org_id, "ops@example.com", Role::Admin).await;
    h.state.metastore.delete_user(admin.org_id, admin.id).await.expect("delete the default admin");
    // A restart runs the bootstrap again.
    let outcome = loupe_cloud::bootstrap(&h.state, &AdminBootstrap::default()).await.expect("bootstrap");
    assert!(outcome.created.is_none());
    let refused = h.login("admin@default.com", "admin").await.expect(401);
    assert_eq!(refused.message(), "invalid email or password");
    let users = h.state.metastore.list_users(admin.org_id).await.expect("users");
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), vec![real]);
    // The same holds for `loupe setup create-admin`, which runs on a bare metastore.
    let outcome = loupe_cloud::bootstrap_into(h.state.metastore.as_ref(), "default", &AdminBootstrap::default())
        .await
        .expect("create-admin");
    assert!(outcome.created.is_none());
    h.login("admin@default.com", "admin").await.expect(401);
}

/// 24 wrong passwords for one account at once: before the fix all 24 were verified (limit 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_logins_verify_exactly_the_limit() {
    let h = Arc::new(harness().await);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.login("admin@default.com", &format!("wrong-{i}")).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.expect("join"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 19, "{statuses:?}");
    let metrics = h.ops().call("GET", "/metrics", None, None).await.expect(200);
    assert!(metrics.body.as_str().expect("text").contains("loupe_cloud_login_failures_total 5"));
}

/// 30 wrong passwords in flight, then the right one: before the fix the right one got in while the wrong ones
/// were still being hashed, since none had been counted yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_right_password_behind_parallel_wrong_ones_is_refused() {
    let h = Arc::new(harness().await);
    let wrong: Vec<_> = (0..30)
        .map(|i| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.login("admin@default.com", &format!("wrong-{i}")).await.status.as_u16() })
        })
        .collect();
    // Wait until the limit is reserved (the wrong attempts may still be hashing).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.state.sessions.counter("login:account:admin@default.com").await.expect("counter").map_or(0, |c| c.count) < 5
    {
        assert!(std::time::Instant::now() < deadline, "the wrong attempts were not counted");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let right = h.login("admin@default.com", "admin").await.expect(429);
    assert!(right.headers.contains_key("retry-after"));
    let mut statuses = Vec::new();
    for task in wrong {
        statuses.push(task.await.expect("join"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 25, "{statuses:?}");
}

#[tokio::test]
async fn a_success_resets_the_account_and_costs_the_address_nothing() {
    let policy =
        ThrottlePolicy { max_failures_per_account: 2, max_failures_per_ip: 3, window: Duration::from_secs(60) };
    let h = harness_with(CloudConfig { throttle: policy, ..CloudConfig::default() }).await;
    h.login("admin@default.com", "wrong").await.expect(401);
    for _ in 0..5 {
        h.login("admin@default.com", "admin").await.expect(200);
    }
    h.login("admin@default.com", "wrong").await.expect(401);
    h.login("admin@default.com", "wrong").await.expect(401);
    h.login("admin@default.com", "admin").await.expect(429);
    h.login("other@default.com", "wrong").await.expect(429);
}

/// Behind `loupe up` every login arrives from loopback; a local client that skips the proxy must not pick the
/// address it is throttled under by sending `X-Forwarded-For`, and only the proxy's secret makes it count.
#[tokio::test]
async fn forwarded_for_counts_only_with_the_proxy_secret() {
    let policy =
        ThrottlePolicy { max_failures_per_account: 100, max_failures_per_ip: 2, window: Duration::from_secs(60) };
    let config =
        CloudConfig { throttle: policy, proxy_secret: Some("per-process-secret".into()), ..CloudConfig::default() };
    let h = harness_with(config).await;
    let secret = Some((PROXY_SECRET_HEADER, "per-process-secret"));
    // Through the proxy: each end client has its own budget.
    h.send(login_via([127, 0, 0, 1], "203.0.113.1", secret, "a@x.io", "wrong")).await.expect(401);
    h.send(login_via([127, 0, 0, 1], "203.0.113.1", secret, "b@x.io", "wrong")).await.expect(401);
    h.send(login_via([127, 0, 0, 1], "203.0.113.1", secret, "c@x.io", "wrong")).await.expect(429);
    // The client's own prepended entry is not the one the proxy appended: same budget.
    h.send(login_via([127, 0, 0, 1], "198.51.100.9, 203.0.113.1", secret, "d@x.io", "wrong")).await.expect(429);
    h.send(login_via([127, 0, 0, 1], "198.51.100.9", secret, "e@x.io", "wrong")).await.expect(401);
    // Straight to the API from loopback, forging the header, or with a guessed secret: throttled as 127.0.0.1.
    let guessed = Some((PROXY_SECRET_HEADER, "guess"));
    h.send(login_via([127, 0, 0, 1], "192.0.2.1", None, "f@x.io", "wrong")).await.expect(401);
    h.send(login_via([127, 0, 0, 1], "192.0.2.2", guessed, "g@x.io", "wrong")).await.expect(401);
    h.send(login_via([127, 0, 0, 1], "192.0.2.3", None, "h@x.io", "wrong")).await.expect(429);
}

/// Serves one service kind on a loopback port, as `loupe cloud auth` does.
async fn service_port(h: &Harness, kind: ServiceKind) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = loupe_cloud::service_app(h.state.clone(), kind);
    tokio::spawn(loupe_cloud::serve_router(listener, router, std::future::pending()));
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

fn grpc_login(email: &str, client_ip: &str, credential: Option<&str>) -> tonic::Request<cloudpb::LoginRequest> {
    let mut req = tonic::Request::new(cloudpb::LoginRequest { email: email.into(), password: "wrong".into() });
    req.metadata_mut().insert(CLIENT_IP_METADATA, client_ip.parse().expect("ascii"));
    if let Some(credential) = credential {
        req.metadata_mut().insert(GATEWAY_CREDENTIAL_METADATA, credential.parse().expect("ascii"));
    }
    req
}

/// A caller that reaches a service port directly cannot choose its address with `x-loupe-client-ip`; the
/// gateway, which proves itself with the credential derived from the shared signing key, can.
#[tokio::test]
async fn client_ip_metadata_counts_only_from_the_gateway() {
    let policy =
        ThrottlePolicy { max_failures_per_account: 100, max_failures_per_ip: 2, window: Duration::from_secs(60) };
    let h = harness_with(CloudConfig { throttle: policy, ..CloudConfig::default() }).await;
    let mut auth = AuthServiceClient::new(service_port(&h, ServiceKind::Auth).await);
    let code = |r: Result<tonic::Response<cloudpb::Session>, tonic::Status>| r.expect_err("refused").code();
    assert_eq!(code(auth.login(grpc_login("a@x.io", "192.0.2.1", None)).await), tonic::Code::Unauthenticated);
    assert_eq!(code(auth.login(grpc_login("b@x.io", "192.0.2.2", Some("forged"))).await), tonic::Code::Unauthenticated);
    assert_eq!(code(auth.login(grpc_login("c@x.io", "192.0.2.3", None)).await), tonic::Code::ResourceExhausted);

    // The gateway's credential, derived from the shared signing key: now the address it names is believed.
    let credential = GatewayCredential::derive(h.state.signer.key()).expect("derive");
    assert_eq!(format!("{credential:?}"), "GatewayCredential(<redacted>)", "Debug never shows it");
    for i in 0..3 {
        let login = grpc_login(&format!("g{i}@x.io"), &format!("198.51.100.{i}"), Some(credential.as_str()));
        assert_eq!(code(auth.login(login).await), tonic::Code::Unauthenticated);
    }
}

/// Logs in as `user@default.com`: status, token (empty when refused) and message.
async fn user_login(h: &Harness) -> (u16, String, String) {
    let answer = h.login("user@default.com", NEW_ADMIN_PASSWORD).await;
    (answer.status.as_u16(), answer.body["token"].as_str().unwrap_or_default().to_owned(), answer.message().to_owned())
}

/// Fill the in-memory session cache past its bound with logouts: the first revoked token stays revoked, and new
/// sessions are refused with a clear error instead of a revocation being forgotten.
#[tokio::test]
async fn a_full_session_cache_keeps_revocations_and_refuses_new_sessions() {
    let cache = Arc::new(InMemorySessionCache::with_limits(8, Duration::from_secs(3600)));
    let h = harness_with_cache(CloudConfig::default(), Arc::clone(&cache) as Arc<dyn SessionCache>).await;
    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    h.create_user(admin.org_id, "user@default.com", Role::Member).await;
    let (status, stolen, _) = user_login(&h).await;
    assert_eq!(status, 200);
    let stolen = Cred::Bearer(stolen);
    h.call("POST", "/api/v1/auth/logout", Some(&stolen), None).await.expect(200);
    let mut refused = None;
    for _ in 0..20 {
        let (status, token, message) = user_login(&h).await;
        if status != 200 {
            refused = Some((status, message));
            break;
        }
        h.call("POST", "/api/v1/auth/logout", Some(&Cred::Bearer(token)), None).await.expect(200);
    }
    let (status, message) = refused.expect("a full cache refuses new sessions");
    assert_eq!(status, 503);
    assert!(message.starts_with("the session store is full of revoked sessions"), "{message}");
    assert!(cache.len() >= 8);
    let answer = h.call("GET", "/api/v1/auth/me", Some(&stolen), None).await.expect(401);
    assert_eq!(answer.message(), "the session has ended; log in again");
}

/// A session cannot be kept alive by refreshing it: past the absolute lifetime (counted from the login the
/// token carries), refresh is refused.
#[tokio::test]
async fn refresh_past_the_absolute_lifetime_is_refused() {
    let h = harness_with(CloudConfig {
        session_max_lifetime: Duration::from_secs(7 * 24 * 3600),
        ..CloudConfig::default()
    })
    .await;
    let token = h.admin_token().await;
    let claims = h.state.signer.verify(&token, unix_now()).expect("claims");
    assert!(claims.auth_time > 0);
    assert_eq!(claims.exp, claims.auth_time + 7 * 24 * 3600, "capped at the lifetime, not the 90-day ttl");
    let refreshed = h.call("POST", "/api/v1/auth/refresh", Some(&Cred::Bearer(token)), None).await.expect(200);
    let again = h.state.signer.verify(refreshed.body["token"].as_str().expect("token"), unix_now()).expect("claims");
    assert_eq!(again.auth_time, claims.auth_time, "a refresh keeps the login time");

    // The same session, logged in eight days ago and refreshed ever since.
    let mut old = again.clone();
    old.auth_time = unix_now() - 8 * 24 * 3600;
    let old = h.state.signer.sign(&old).expect("sign");
    let refused = h.call("POST", "/api/v1/auth/refresh", Some(&Cred::Bearer(old)), None).await.expect(401);
    assert_eq!(refused.message(), "the session reached its maximum lifetime; log in again");
}

#[tokio::test]
async fn a_password_change_revokes_the_users_api_keys_and_says_so() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let mut keys = Vec::new();
    for description in ["ci", "laptop"] {
        let created = h
            .call("POST", "/api/v1/api-keys", Some(&admin), Some(json!({ "description": description })))
            .await
            .expect(201);
        keys.push((
            created.body["id"].as_str().expect("id").to_owned(),
            Cred::ApiKey(created.body["key"].as_str().expect("key").to_owned()),
        ));
    }
    h.call("DELETE", &format!("/api/v1/api-keys/{}", keys[1].0), Some(&admin), None).await.expect(204);
    // Another user's key is not theirs to lose.
    let org = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin").org_id;
    let other = h
        .state
        .metastore
        .create_user(NewUser {
            org_id: org,
            email: "member@default.com".into(),
            display_name: "m".into(),
            password_hash: loupe_auth::hash_password(NEW_ADMIN_PASSWORD).expect("hash"),
            role: Role::Member,
            must_change_password: false,
        })
        .await
        .expect("user");
    let member = Cred::Bearer(
        h.login("member@default.com", NEW_ADMIN_PASSWORD).await.expect(200).body["token"]
            .as_str()
            .expect("token")
            .to_owned(),
    );
    let member_key =
        h.call("POST", "/api/v1/api-keys", Some(&member), Some(json!({ "description": "m" }))).await.expect(201);
    let member_key = Cred::ApiKey(member_key.body["key"].as_str().expect("key").to_owned());
    h.call("GET", "/api/v1/org", Some(&keys[0].1), None).await.expect(200);

    let body = json!({ "current_password": NEW_ADMIN_PASSWORD, "new_password": "an even longer passphrase" });
    let changed = h.call("POST", "/api/v1/auth/password", Some(&admin), Some(body)).await.expect(200);
    let revoked = changed.body["revoked_api_keys"].as_array().expect("listed");
    assert_eq!(revoked.len(), 1, "only the live key: {revoked:?}");
    assert_eq!(revoked[0]["id"], keys[0].0.as_str());
    assert_eq!(revoked[0]["description"], "ci");
    assert!(revoked[0]["revoked_at"].as_i64().is_some());
    let refused = h.call("GET", "/api/v1/org", Some(&keys[0].1), None).await.expect(401);
    assert_eq!(refused.message(), "unknown or revoked API key");
    h.call("GET", "/api/v1/org", Some(&member_key), None).await.expect(200);
    assert_eq!(other.role, Role::Member);
    // A login answer carries no such list.
    let login = h.login("admin@default.com", "an even longer passphrase").await.expect(200);
    assert_eq!(login.body["revoked_api_keys"], json!([]));
}
