//! Session flows: the forced first password change, login throttling, and token rejection (expired,
//! tampered, revoked, foreign).

use std::time::Duration;

use loupe_auth::{Role as TokenRole, ThrottlePolicy, UserClaims, unix_now};
use loupe_cloud::{Access, CloudConfig, PASSWORD_CHANGE_REQUIRED};
use serde_json::json;

use crate::common::{Cred, NEW_ADMIN_PASSWORD, concrete_path, harness, harness_with, pxl};

#[tokio::test]
async fn forced_password_change_blocks_everything_else_until_done() {
    let h = harness().await;
    let first = h.login("admin@default.com", "admin").await.expect(200);
    assert_eq!(first.body["must_change_password"], true);
    assert_eq!(first.body["user"]["role"], "admin");
    assert_eq!(first.body["org"]["name"], "default");
    let old = Cred::Bearer(first.body["token"].as_str().expect("token").to_owned());

    // Every authenticated route but password change, logout and me answers 403 with the message.
    let mut checked = 0;
    for spec in loupe_cloud::routes().iter().filter(|s| matches!(s.access, Access::User | Access::Admin)) {
        let path = concrete_path(&spec.path, &uuid::Uuid::new_v4().to_string(), "org/x");
        let body = spec.body.as_ref().map(|_| json!({}));
        let answer = h.call(&spec.method, &path, Some(&old), body).await;
        assert_eq!(answer.status.as_u16(), 403, "{} {path}: {}", spec.method, answer.body);
        assert_eq!(answer.message(), PASSWORD_CHANGE_REQUIRED, "{} {path}", spec.method);
        assert_eq!(answer.body["reason"], "PASSWORD_CHANGE_REQUIRED");
        checked += 1;
    }
    assert!(checked > 20, "only {checked} routes checked");

    let me = h.call("GET", "/api/v1/auth/me", Some(&old), None).await.expect(200);
    assert_eq!(me.body["must_change_password"], true);

    // Policy: the default, a common password and a short one are refused; a wrong current password too.
    for (current, new, status) in [
        ("admin", "admin", 400),
        ("admin", "password", 400),
        ("admin", "short", 400),
        ("wrong-current", NEW_ADMIN_PASSWORD, 403),
    ] {
        let body = json!({ "current_password": current, "new_password": new });
        h.call("POST", "/api/v1/auth/password", Some(&old), Some(body)).await.expect(status);
    }

    let changed = h
        .call(
            "POST",
            "/api/v1/auth/password",
            Some(&old),
            Some(json!({ "current_password": "admin", "new_password": NEW_ADMIN_PASSWORD })),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["must_change_password"], false);
    let new = Cred::Bearer(changed.body["token"].as_str().expect("token").to_owned());

    // The old token is dead, the new one works everywhere.
    let dead = h.call("GET", "/api/v1/org", Some(&old), None).await.expect(401);
    assert!(!dead.message().is_empty());
    h.call("GET", "/api/v1/auth/me", Some(&old), None).await.expect(401);
    h.call("GET", "/api/v1/org", Some(&new), None).await.expect(200);
    h.call("GET", "/api/v1/scripts", Some(&new), None).await.expect(200);
    h.call("POST", "/api/v1/api-keys", Some(&new), Some(json!({ "description": "ci" }))).await.expect(201);

    // The old password is gone; the new one logs in without the flag.
    h.login("admin@default.com", "admin").await.expect(401);
    let again = h.login("admin@default.com", NEW_ADMIN_PASSWORD).await.expect(200);
    assert_eq!(again.body["must_change_password"], false);
}

#[tokio::test]
async fn sessions_issued_right_after_a_password_change_are_not_born_revoked() {
    let h = harness().await;
    let changed = Cred::Bearer(h.admin_token().await);
    // Within the same second as the change (argon2 takes milliseconds here): the revocation cut-off is the
    // next second, and a fresh login must still be valid.
    let login = h.login("admin@default.com", NEW_ADMIN_PASSWORD).await.expect(200);
    let fresh = Cred::Bearer(login.body["token"].as_str().expect("token").to_owned());
    h.call("GET", "/api/v1/org", Some(&fresh), None).await.expect(200);
    h.call("GET", "/api/v1/org", Some(&changed), None).await.expect(200);
    // A refresh in that second renews the session without stamping it before the cut-off.
    let refreshed = h.call("POST", "/api/v1/auth/refresh", Some(&changed), None).await.expect(200);
    let refreshed = Cred::Bearer(refreshed.body["token"].as_str().expect("token").to_owned());
    h.call("GET", "/api/v1/org", Some(&refreshed), None).await.expect(200);
}

#[tokio::test]
async fn the_user_row_decides_not_the_token_claim() {
    let h = harness().await;
    let token = Cred::Bearer(h.admin_token().await);
    h.call("GET", "/api/v1/org", Some(&token), None).await.expect(200);
    // An operator forces a change after the token was issued: the same token is now gated.
    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    h.state.metastore.update_user_password(admin.org_id, admin.id, &admin.password_hash, true).await.expect("flag");
    let gated = h.call("GET", "/api/v1/org", Some(&token), None).await.expect(403);
    assert_eq!(gated.message(), PASSWORD_CHANGE_REQUIRED);
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_keeps_no_signing_key() {
    let h = harness().await;
    let again = loupe_cloud::bootstrap(&h.state, &loupe_auth::AdminBootstrap::default()).await.expect("again");
    assert!(again.created.is_none());
    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    assert_eq!(h.state.metastore.list_users(admin.org_id).await.expect("users").len(), 1);
    assert_eq!(h.state.metastore.kv_get(loupe_cloud::LEGACY_SIGNING_KEY_KV).await.expect("kv"), None);
}

#[tokio::test]
async fn login_is_throttled_per_account_with_retry_after() {
    let h = harness().await;
    for _ in 0..5 {
        let answer = h.login("admin@default.com", "wrong").await.expect(401);
        assert_eq!(answer.message(), "invalid email or password");
    }
    let throttled = h.login("admin@default.com", "admin").await.expect(429);
    let retry: u64 = throttled.headers["retry-after"].to_str().expect("ascii").parse().expect("secs");
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    assert_eq!(throttled.body["code"], "RESOURCE_EXHAUSTED");
    // Unknown emails get the very same message as wrong passwords.
    let unknown = h.login("nobody@default.com", "whatever").await.expect(401);
    assert_eq!(unknown.message(), "invalid email or password");

    let metrics = h.ops().call("GET", "/metrics", None, None).await.expect(200);
    let text = metrics.body.as_str().expect("text");
    assert!(text.contains("loupe_cloud_login_failures_total 6"), "{text}");
    assert!(text.contains("loupe_cloud_logins_throttled_total 1"), "{text}");
    assert!(text.contains(r#"route="/api/v1/auth/login",status="4xx"} 7"#), "{text}");
}

#[tokio::test]
async fn login_is_throttled_per_address() {
    let config = CloudConfig {
        throttle: ThrottlePolicy {
            max_failures_per_account: 100,
            max_failures_per_ip: 3,
            window: Duration::from_secs(60),
        },
        ..CloudConfig::default()
    };
    let h = harness_with(config).await;
    for i in 0..3 {
        h.login(&format!("user{i}@example.com"), "x").await.expect(401);
    }
    h.login("admin@default.com", "admin").await.expect(429);
}

#[tokio::test]
async fn expired_tampered_foreign_and_revoked_tokens_are_401() {
    let h = harness().await;
    let token = h.admin_token().await;
    let good = Cred::Bearer(token.clone());
    h.call("GET", "/api/v1/auth/me", Some(&good), None).await.expect(200);

    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    let claims =
        UserClaims::user(admin.id.to_string(), admin.org_id.to_string(), admin.email.clone(), TokenRole::Admin);
    let expired = h.state.signer.issue(&claims, Duration::from_secs(60), unix_now() - 3600).expect("issue");
    let answer = h.call("GET", "/api/v1/org", Some(&Cred::Bearer(expired.token)), None).await.expect(401);
    assert!(answer.message().contains("expired"), "{}", answer.message());

    let mut tampered = token.clone().into_bytes();
    let dot = tampered.iter().position(|b| *b == b'.').expect("dot") + 3;
    tampered[dot] = if tampered[dot] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("utf8");
    h.call("GET", "/api/v1/org", Some(&Cred::Bearer(tampered)), None).await.expect(401);

    let foreign = loupe_auth::TokenSigner::new(loupe_auth::SigningKey::generate().expect("key"), "localhost");
    let forged = foreign.issue(&claims, Duration::from_secs(600), unix_now()).expect("issue");
    h.call("GET", "/api/v1/org", Some(&Cred::Bearer(forged.token)), None).await.expect(401);

    for garbage in ["", "Bearer", "Basic YWRtaW46YWRtaW4=", "Bearer not.a.jwt"] {
        let answer = h.call("GET", "/api/v1/org", Some(&Cred::Header("authorization", garbage.into())), None).await;
        assert_eq!(answer.status.as_u16(), 401, "{garbage:?}: {}", answer.body);
    }
    h.call("GET", "/api/v1/org", None, None).await.expect(401);

    // Refresh keeps the session; logout ends it for the refreshed token too.
    let refreshed = h.call("POST", "/api/v1/auth/refresh", Some(&good), None).await.expect(200);
    let refreshed = Cred::Bearer(refreshed.body["token"].as_str().expect("token").to_owned());
    h.call("POST", "/api/v1/auth/logout", Some(&good), None).await.expect(200);
    h.call("GET", "/api/v1/auth/me", Some(&good), None).await.expect(401);
    h.call("GET", "/api/v1/auth/me", Some(&refreshed), None).await.expect(401);
}

#[tokio::test]
async fn api_keys_authenticate_until_revoked_and_deploy_keys_never_do() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let created =
        h.call("POST", "/api/v1/api-keys", Some(&admin), Some(json!({ "description": "ci" }))).await.expect(201);
    let key = created.body["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("px-api-"));
    let id = created.body["id"].as_str().expect("id").to_owned();
    let listed = h.call("GET", "/api/v1/api-keys", Some(&admin), None).await.expect(200);
    assert!(!listed.body.to_string().contains(&key), "listing leaks key material");

    let api = Cred::ApiKey(key.clone());
    let me = h.call("GET", "/api/v1/auth/me", Some(&api), None).await.expect(200);
    assert_eq!(me.body["is_api_user"], true);
    h.call("GET", "/api/v1/org", Some(&Cred::Bearer(key.clone())), None).await.expect(200);
    let shown = h.call("GET", &format!("/api/v1/api-keys/{id}"), Some(&admin), None).await.expect(200);
    assert!(shown.body["last_used_at"].is_i64(), "{}", shown.body);

    let dep = h.call("POST", "/api/v1/deploy-keys", Some(&admin), Some(json!({}))).await.expect(201);
    let dep_key = dep.body["key"].as_str().expect("key").to_owned();
    assert!(dep_key.starts_with("px-dep-"));
    for cred in [Cred::ApiKey(dep_key.clone()), Cred::Bearer(dep_key.clone()), Cred::Header("x-api-key", dep_key)] {
        let answer = h.call("GET", "/api/v1/org", Some(&cred), None).await.expect(401);
        assert!(answer.message().contains("deploy keys"), "{}", answer.message());
    }

    h.call("DELETE", &format!("/api/v1/api-keys/{id}"), Some(&admin), None).await.expect(204);
    h.call("GET", "/api/v1/org", Some(&api), None).await.expect(401);
    h.call("GET", "/api/v1/org", Some(&Cred::ApiKey("px-api-short".into())), None).await.expect(401);
    // A revoked key is gone from its URL, as any deleted resource, but stays listed with its revocation time.
    let gone = h.call("GET", &format!("/api/v1/api-keys/{id}"), Some(&admin), None).await.expect(404);
    assert_eq!(gone.message(), "api key not found (revoked)");
    h.call("DELETE", &format!("/api/v1/api-keys/{id}"), Some(&admin), None).await.expect(404);
    let listed = h.call("GET", "/api/v1/api-keys", Some(&admin), None).await.expect(200);
    let row = listed.body.as_array().expect("list").iter().find(|k| k["id"] == id.as_str()).expect("still listed");
    assert!(row["revoked_at"].is_i64(), "{row}");
}

#[tokio::test]
async fn invitations_create_members_with_limited_rights() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let invite = h
        .call(
            "POST",
            "/api/v1/invitations",
            Some(&admin),
            Some(json!({ "email": "bob@example.com", "role": "member" })),
        )
        .await
        .expect(201);
    let token = invite.body["invite_token"].as_str().expect("token").to_owned();
    assert_eq!(invite.body["invite_url_path"], format!("/invite?token={token}"));
    let listed = h.call("GET", "/api/v1/invitations", Some(&admin), None).await.expect(200);
    assert!(!listed.body.to_string().contains(&token));

    let accept = json!({ "token": token, "display_name": "Bob", "password": "bob's long password" });
    let bob = h.call("POST", "/api/v1/invitations/accept", None, Some(accept.clone())).await.expect(201);
    assert_eq!(bob.body["user"]["role"], "member");
    assert_eq!(bob.body["org"]["name"], "default");
    h.call("POST", "/api/v1/invitations/accept", None, Some(accept)).await.expect(404);
    let bob = Cred::Bearer(bob.body["token"].as_str().expect("token").to_owned());

    h.call("GET", "/api/v1/scripts", Some(&bob), None).await.expect(200);
    h.call("GET", "/api/v1/scripts/px/http_data", Some(&bob), None).await.expect(200);
    h.call("POST", "/api/v1/api-keys", Some(&bob), Some(json!({}))).await.expect(201);
    h.call("POST", "/api/v1/invitations", Some(&bob), Some(json!({ "email": "eve@example.com" }))).await.expect(403);
    h.call("POST", "/api/v1/deploy-keys", Some(&bob), Some(json!({}))).await.expect(403);
    let script = json!({ "name": "org/bobs", "pxl": pxl("bob") });
    h.call("POST", "/api/v1/scripts", Some(&bob), Some(script)).await.expect(403);
    // Bob sees only his own API keys; the admin sees the org's.
    h.call("POST", "/api/v1/api-keys", Some(&admin), Some(json!({}))).await.expect(201);
    let bobs = h.call("GET", "/api/v1/api-keys", Some(&bob), None).await.expect(200);
    assert_eq!(bobs.body.as_array().map(Vec::len), Some(1));
    let all = h.call("GET", "/api/v1/api-keys", Some(&admin), None).await.expect(200);
    assert_eq!(all.body.as_array().map(Vec::len), Some(2));
    let users = h.call("GET", "/api/v1/users", Some(&bob), None).await.expect(200);
    assert_eq!(users.body.as_array().map(Vec::len), Some(2));
    assert!(!users.body.to_string().contains("argon2"), "password hashes leak");
}

#[tokio::test]
async fn scripts_settings_and_ops_endpoints_work() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let script = json!({ "name": "org/slow_requests", "pxl": pxl("v1"), "vis": { "widgets": [] }, "description": "d" });
    h.call("POST", "/api/v1/scripts", Some(&admin), Some(script.clone())).await.expect(201);
    h.call("POST", "/api/v1/scripts", Some(&admin), Some(script)).await.expect(409);
    let got = h.call("GET", "/api/v1/scripts/org/slow_requests", Some(&admin), None).await.expect(200);
    assert_eq!(got.body["vis"], json!({ "widgets": [] }));
    let update = json!({ "pxl": pxl("v2"), "description": "v2" });
    h.call("PUT", "/api/v1/scripts/org/slow_requests", Some(&admin), Some(update.clone())).await.expect(200);
    // Bundled scripts are read-only: their URL has no PUT or DELETE.
    h.call("PUT", "/api/v1/scripts/px/http_data", Some(&admin), Some(update.clone())).await.expect(405);
    h.call("PUT", "/api/v1/scripts/org/missing", Some(&admin), Some(update)).await.expect(404);
    let list = h.call("GET", "/api/v1/scripts", Some(&admin), None).await.expect(200);
    let names: Vec<&str> = list.body.as_array().expect("list").iter().filter_map(|s| s["name"].as_str()).collect();
    assert!(names.contains(&"px/http_data") && names.contains(&"org/slow_requests"), "{names:?}");
    let bundled = names.iter().filter(|n| n.starts_with("px/")).count();
    assert_eq!(bundled, loupe_pxl::bundled::scripts().len(), "{names:?}");
    assert!(bundled >= 25, "{bundled} bundled scripts");
    // A function-form bundled script comes with its vis spec (the live view calls its functions by it).
    let stats = h.call("GET", "/api/v1/scripts/px/service_stats", Some(&admin), None).await.expect(200);
    let widgets = stats.body["vis"]["widgets"].as_array().expect("vis.widgets");
    assert!(widgets.iter().any(|w| w["name"] == "Endpoints"), "{}", stats.body);
    let top_level = h.call("GET", "/api/v1/scripts/px/http_data", Some(&admin), None).await.expect(200);
    assert!(top_level.body["vis"].is_null(), "{}", top_level.body);
    h.call("DELETE", "/api/v1/scripts/org/slow_requests", Some(&admin), None).await.expect(204);
    h.call("DELETE", "/api/v1/scripts/px/http_data", Some(&admin), None).await.expect(405);

    let put = json!({ "settings": { "theme": "dark", "tour_seen": "true" } });
    h.call("PUT", "/api/v1/users/me/settings", Some(&admin), Some(put)).await.expect(200);
    let got = h.call("GET", "/api/v1/users/me/settings", Some(&admin), None).await.expect(200);
    assert_eq!(got.body["settings"]["theme"], "dark");

    h.ops().call("GET", "/healthz", None, None).await.expect(200);
    let ready = h.ops().call("GET", "/readyz", None, None).await.expect(200);
    // Not on the public router: probes and scrapers use the operational listener.
    for path in ["/healthz", "/readyz", "/metrics"] {
        h.call("GET", path, None, None).await.expect(404);
    }
    assert_eq!(ready.body["metastore"], "sqlite");
    let answer = h.call("GET", "/api/v1/viziers", Some(&admin), None).await.expect(200);
    assert_eq!(answer.body, json!([]));
    // Request ids: echoed when sane, generated otherwise.
    let answer = h.call("GET", "/api/v1/openapi.json", None, None).await;
    assert!(answer.headers.contains_key("x-request-id"));
    let echoed =
        h.call("GET", "/api/v1/openapi.json", Some(&Cred::Header("x-request-id", "abc-123".into())), None).await;
    assert_eq!(echoed.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn forwarded_for_is_used_only_from_a_trusted_proxy() {
    let policy =
        ThrottlePolicy { max_failures_per_account: 100, max_failures_per_ip: 2, window: Duration::from_secs(60) };
    for trusted in [true, false] {
        let trusted_proxies = if trusted { vec!["127.0.0.0/8".parse().expect("cidr")] } else { Vec::new() };
        let config = CloudConfig { throttle: policy.clone(), trusted_proxies, ..CloudConfig::default() };
        let h = harness_with(config).await;
        let login_from = |ip: &'static str, email: &'static str| {
            let body = json!({ "email": email, "password": "wrong" });
            let mut req = crate::common::request("POST", "/api/v1/auth/login", None, Some(&body));
            req.headers_mut().insert("x-forwarded-for", ip.parse().expect("header"));
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
            req
        };
        h.send(login_from("203.0.113.1", "a@example.com")).await.expect(401);
        h.send(login_from("203.0.113.1", "b@example.com")).await.expect(401);
        h.send(login_from("203.0.113.1", "c@example.com")).await.expect(429);
        // Another address is a fresh budget only behind a trusted proxy; otherwise all share the peer's.
        let other = h.send(login_from("198.51.100.7", "d@example.com")).await;
        assert_eq!(other.status.as_u16(), if trusted { 401 } else { 429 }, "trusted={trusted}");
    }
}
