//! Org isolation: a user, an API key or a deploy key of org A can read, list, change or delete nothing of org
//! B, on every route that takes an id or a name, and A's listings never include B's items.

use loupe_metastore::{NewVizier, Role};
use serde_json::{Value, json};

use crate::common::{Cred, Harness, harness, pxl};

/// What org B's items contain that must never show up in org A's answers.
pub const B_SECRETS: &[&str] = &["borg", "b.test", "b-key", "b-dep", "b-cluster", "org B secret", "b_secret"];

/// Everything org B owns, by id or name.
pub struct OrgB {
    pub api_key_id: String,
    pub api_key: String,
    pub deploy_key_id: String,
    pub script: &'static str,
    pub user_id: String,
    pub member_id: String,
    pub vizier_id: String,
    pub invitation_id: String,
}

pub async fn populate_b(h: &Harness, b: &Cred) -> OrgB {
    let api = h.call("POST", "/api/v1/api-keys", Some(b), Some(json!({ "description": "b-key" }))).await.expect(201);
    let dep = h.call("POST", "/api/v1/deploy-keys", Some(b), Some(json!({ "description": "b-dep" }))).await.expect(201);
    let script = json!({ "name": "org/shared_name", "pxl": pxl("org B secret"), "description": "b" });
    h.call("POST", "/api/v1/scripts", Some(b), Some(script)).await.expect(201);
    let script = json!({ "name": "org/b_only", "pxl": pxl("org B secret"), "description": "b" });
    h.call("POST", "/api/v1/scripts", Some(b), Some(script)).await.expect(201);
    let inv = h.call("POST", "/api/v1/invitations", Some(b), Some(json!({ "email": "new@b.test" }))).await.expect(201);
    let me = h.call("GET", "/api/v1/auth/me", Some(b), None).await.expect(200);
    let org_id: uuid::Uuid = me.body["org"]["id"].as_str().expect("org").parse().expect("uuid");
    let member_id = h.create_user(org_id, "member@b.test", Role::Member).await;
    let vizier = h
        .state
        .metastore
        .create_vizier(NewVizier {
            org_id,
            name: "b-cluster".into(),
            cluster_uid: "uid-b".into(),
            version: "0.1".into(),
        })
        .await
        .expect("vizier");
    OrgB {
        api_key_id: api.body["id"].as_str().expect("id").to_owned(),
        api_key: api.body["key"].as_str().expect("key").to_owned(),
        deploy_key_id: dep.body["id"].as_str().expect("id").to_owned(),
        script: "org/b_only",
        user_id: me.body["user"]["id"].as_str().expect("id").to_owned(),
        member_id: member_id.to_string(),
        vizier_id: vizier.id.to_string(),
        invitation_id: inv.body["id"].as_str().expect("id").to_owned(),
    }
}

/// B's things are intact: key works, scripts unchanged, member and vizier still there, deploy key not
/// revoked, invitation listed.
pub async fn assert_b_intact(h: &Harness, b_admin: &Cred, b: &OrgB) {
    h.call("GET", "/api/v1/org", Some(&Cred::ApiKey(b.api_key.clone())), None).await.expect(200);
    for name in ["org/shared_name", "org/b_only"] {
        let script = h.call("GET", &format!("/api/v1/scripts/{name}"), Some(b_admin), None).await.expect(200);
        assert_eq!(script.body["pxl"], pxl("org B secret"));
    }
    h.call("GET", &format!("/api/v1/users/{}", b.member_id), Some(b_admin), None).await.expect(200);
    h.call("GET", &format!("/api/v1/viziers/{}", b.vizier_id), Some(b_admin), None).await.expect(200);
    let deploy =
        h.call("GET", &format!("/api/v1/deploy-keys/{}", b.deploy_key_id), Some(b_admin), None).await.expect(200);
    assert!(deploy.body["revoked_at"].is_null());
    let invitations = h.call("GET", "/api/v1/invitations", Some(b_admin), None).await.expect(200);
    assert!(invitations.body.to_string().contains(&b.invitation_id));
}

pub fn ids(b: &OrgB) -> Vec<&str> {
    vec![&b.api_key_id, &b.deploy_key_id, &b.user_id, &b.member_id, &b.vizier_id, &b.invitation_id]
}

/// Every request of A aimed at B's items, with the statuses that count as refused.
fn attacks(b: &OrgB) -> Vec<(&'static str, String, Option<Value>)> {
    let update = json!({ "pxl": pxl("overwritten by A"), "description": "a" });
    vec![
        ("GET", format!("/api/v1/api-keys/{}", b.api_key_id), None),
        ("DELETE", format!("/api/v1/api-keys/{}", b.api_key_id), None),
        ("GET", format!("/api/v1/deploy-keys/{}", b.deploy_key_id), None),
        ("DELETE", format!("/api/v1/deploy-keys/{}", b.deploy_key_id), None),
        ("GET", format!("/api/v1/users/{}", b.user_id), None),
        ("GET", format!("/api/v1/users/{}", b.member_id), None),
        ("DELETE", format!("/api/v1/users/{}", b.member_id), None),
        ("GET", format!("/api/v1/viziers/{}", b.vizier_id), None),
        ("DELETE", format!("/api/v1/viziers/{}", b.vizier_id), None),
        ("DELETE", format!("/api/v1/invitations/{}", b.invitation_id), None),
        ("GET", format!("/api/v1/scripts/{}", b.script), None),
        ("PUT", format!("/api/v1/scripts/{}", b.script), Some(update)),
        ("DELETE", format!("/api/v1/scripts/{}", b.script), None),
    ]
}

const LISTINGS: &[&str] = &[
    "/api/v1/api-keys",
    "/api/v1/deploy-keys",
    "/api/v1/users",
    "/api/v1/viziers",
    "/api/v1/invitations",
    "/api/v1/scripts",
    "/api/v1/org",
    "/api/v1/users/me/settings",
];

#[tokio::test]
async fn org_a_cannot_touch_org_b() {
    let h = harness().await;
    let a_admin = Cred::Bearer(h.admin_token().await);
    let b_admin = Cred::Bearer(h.second_org("borg").await);
    let b = populate_b(&h, &b_admin).await;
    h.call("PUT", "/api/v1/users/me/settings", Some(&b_admin), Some(json!({ "settings": { "b_secret": "s3" } })))
        .await
        .expect(200);

    // A's own script of the same name is fine (names are per org) and does not reveal B's.
    let a_script = json!({ "name": "org/shared_name", "pxl": pxl("org A"), "description": "a" });
    h.call("POST", "/api/v1/scripts", Some(&a_admin), Some(a_script)).await.expect(201);
    // A's API key and a member of A.
    let a_key = h.call("POST", "/api/v1/api-keys", Some(&a_admin), Some(json!({}))).await.expect(201);
    let a_api = Cred::ApiKey(a_key.body["key"].as_str().expect("key").to_owned());
    let a_dep = h.call("POST", "/api/v1/deploy-keys", Some(&a_admin), Some(json!({}))).await.expect(201);
    let a_deploy = Cred::ApiKey(a_dep.body["key"].as_str().expect("key").to_owned());

    for cred in [&a_admin, &a_api] {
        for (method, path, body) in attacks(&b) {
            let answer = h.call(method, &path, Some(cred), body).await;
            assert_eq!(answer.status.as_u16(), 404, "{method} {path} with {cred:?}: {}", answer.body);
            assert!(answer.body["message"].is_string());
        }
        let script = h.call("GET", "/api/v1/scripts/org/shared_name", Some(cred), None).await.expect(200);
        assert_eq!(script.body["pxl"], pxl("org A"));
        for listing in LISTINGS {
            let answer = h.call("GET", listing, Some(cred), None).await.expect(200);
            let text = answer.body.to_string();
            for id in ids(&b) {
                assert!(!text.contains(id), "{listing} leaks {id}: {text}");
            }
            for secret in B_SECRETS {
                assert!(!text.contains(secret), "{listing} leaks {secret:?}: {text}");
            }
        }
    }

    // A deploy key of A is no user credential at all.
    for (method, path, body) in attacks(&b) {
        h.call(method, &path, Some(&a_deploy), body).await.expect(401);
    }
    for listing in LISTINGS {
        h.call("GET", listing, Some(&a_deploy), None).await.expect(401);
    }

    assert_b_intact(&h, &b_admin, &b).await;
    let settings = h.call("GET", "/api/v1/users/me/settings", Some(&b_admin), None).await.expect(200);
    assert_eq!(settings.body["settings"]["b_secret"], "s3");
    // And B cannot see A's script either.
    let b_list = h.call("GET", "/api/v1/scripts", Some(&b_admin), None).await.expect(200);
    assert!(!b_list.body.to_string().contains("org A"));
}

#[tokio::test]
async fn a_member_cannot_see_or_revoke_other_members_keys() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let admin_key = h.call("POST", "/api/v1/api-keys", Some(&admin), Some(json!({}))).await.expect(201);
    let admin_key_id = admin_key.body["id"].as_str().expect("id").to_owned();
    let org = h.call("GET", "/api/v1/org", Some(&admin), None).await.expect(200);
    let org_id = org.body["id"].as_str().expect("id").parse().expect("uuid");
    h.create_user(org_id, "carol@default.com", Role::Member).await;
    let carol = h.login("carol@default.com", crate::common::NEW_ADMIN_PASSWORD).await.expect(200);
    let carol = Cred::Bearer(carol.body["token"].as_str().expect("token").to_owned());
    h.call("GET", &format!("/api/v1/api-keys/{admin_key_id}"), Some(&carol), None).await.expect(404);
    h.call("DELETE", &format!("/api/v1/api-keys/{admin_key_id}"), Some(&carol), None).await.expect(404);
    h.call("GET", "/api/v1/invitations", Some(&carol), None).await.expect(403);
    h.call("GET", "/api/v1/org", Some(&Cred::ApiKey(admin_key.body["key"].as_str().expect("k").into())), None)
        .await
        .expect(200);
}
