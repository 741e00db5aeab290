//! The gRPC twin (`loupe.cloud.v1`) over a real TCP port, through the same gateway as REST: org isolation on
//! every RPC that takes an id or a name, listings that never include another org's items, and refusal of
//! deploy keys and of expired, tampered, foreign and revoked tokens.

use std::net::SocketAddr;
use std::time::Duration;

use loupe_auth::{Role as TokenRole, UserClaims, unix_now};
use loupe_cloud::API_KEY_HEADER;
use loupe_proto::cloudpb::{
    self, api_key_service_client::ApiKeyServiceClient, auth_service_client::AuthServiceClient,
    deploy_key_service_client::DeployKeyServiceClient, profile_service_client::ProfileServiceClient,
    script_service_client::ScriptServiceClient, vizier_info_service_client::VizierInfoServiceClient,
};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::common::{Cred, Harness, harness};
use crate::isolation::{B_SECRETS, OrgB, assert_b_intact, ids, populate_b};

/// Serves `app(state)` (REST and gRPC on one port) on a loopback port and connects a channel to it.
async fn serve(h: &Harness) -> Channel {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(loupe_cloud::serve(listener, h.state.clone(), std::future::pending()));
    Channel::from_shared(format!("http://{addr}")).expect("uri").connect().await.expect("connect")
}

/// A request carrying `cred` as metadata, as `px` or an SDK would send it.
fn req<T>(cred: &Cred, message: T) -> Request<T> {
    let mut request = Request::new(message);
    let metadata = request.metadata_mut();
    match cred {
        Cred::Bearer(token) => metadata.insert("authorization", format!("Bearer {token}").parse().expect("ascii")),
        Cred::ApiKey(key) => metadata.insert(API_KEY_HEADER, key.parse().expect("ascii")),
        Cred::Header(name, value) => metadata.insert(*name, value.parse().expect("ascii")),
    };
    request
}

fn id(id: &str) -> cloudpb::IdRequest {
    cloudpb::IdRequest { id: id.to_owned() }
}

/// The code of a call that must fail.
fn code<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(answer) => panic!("expected a refusal, got {answer:?}"),
        Err(status) => {
            assert!(!status.message().is_empty(), "{status:?} has no message");
            status.code()
        }
    }
}

struct Clients {
    auth: AuthServiceClient<Channel>,
    api_keys: ApiKeyServiceClient<Channel>,
    deploy_keys: DeployKeyServiceClient<Channel>,
    profile: ProfileServiceClient<Channel>,
    viziers: VizierInfoServiceClient<Channel>,
    scripts: ScriptServiceClient<Channel>,
}

impl Clients {
    fn new(channel: Channel) -> Self {
        Self {
            auth: AuthServiceClient::new(channel.clone()),
            api_keys: ApiKeyServiceClient::new(channel.clone()),
            deploy_keys: DeployKeyServiceClient::new(channel.clone()),
            profile: ProfileServiceClient::new(channel.clone()),
            viziers: VizierInfoServiceClient::new(channel.clone()),
            scripts: ScriptServiceClient::new(channel),
        }
    }

    /// Every RPC of A aimed at one of B's items, with its name and the code it got.
    async fn attacks(&mut self, cred: &Cred, b: &OrgB) -> Vec<(&'static str, Code)> {
        let update = cloudpb::SaveScriptRequest {
            name: b.script.to_owned(),
            pxl: crate::common::pxl("overwritten by A"),
            ..Default::default()
        };
        let script = || cloudpb::ScriptName { name: b.script.to_owned() };
        vec![
            ("GetApiKey", code(self.api_keys.get_api_key(req(cred, id(&b.api_key_id))).await)),
            ("DeleteApiKey", code(self.api_keys.delete_api_key(req(cred, id(&b.api_key_id))).await)),
            ("GetDeployKey", code(self.deploy_keys.get_deploy_key(req(cred, id(&b.deploy_key_id))).await)),
            ("DeleteDeployKey", code(self.deploy_keys.delete_deploy_key(req(cred, id(&b.deploy_key_id))).await)),
            ("GetUser", code(self.profile.get_user(req(cred, id(&b.user_id))).await)),
            ("GetUser(member)", code(self.profile.get_user(req(cred, id(&b.member_id))).await)),
            ("DeleteUser", code(self.profile.delete_user(req(cred, id(&b.member_id))).await)),
            ("DeleteInvitation", code(self.profile.delete_invitation(req(cred, id(&b.invitation_id))).await)),
            ("GetVizier", code(self.viziers.get_vizier(req(cred, id(&b.vizier_id))).await)),
            ("DeleteVizier", code(self.viziers.delete_vizier(req(cred, id(&b.vizier_id))).await)),
            ("GetScript", code(self.scripts.get_script(req(cred, script())).await)),
            ("UpdateScript", code(self.scripts.update_script(req(cred, update)).await)),
            ("DeleteScript", code(self.scripts.delete_script(req(cred, script())).await)),
        ]
    }

    /// Every listing, debug-printed, or the code it failed with.
    async fn listings(&mut self, cred: &Cred) -> Vec<(&'static str, Result<String, Code>)> {
        fn text<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<String, Code> {
            r.map(|a| format!("{:?}", a.into_inner())).map_err(|s| s.code())
        }
        let empty = || cloudpb::Empty {};
        vec![
            ("ListApiKeys", text(self.api_keys.list_api_keys(req(cred, empty())).await)),
            ("ListDeployKeys", text(self.deploy_keys.list_deploy_keys(req(cred, empty())).await)),
            ("ListUsers", text(self.profile.list_users(req(cred, empty())).await)),
            ("ListInvitations", text(self.profile.list_invitations(req(cred, empty())).await)),
            ("GetOrg", text(self.profile.get_org(req(cred, empty())).await)),
            ("GetSettings", text(self.profile.get_settings(req(cred, empty())).await)),
            ("ListViziers", text(self.viziers.list_viziers(req(cred, empty())).await)),
            ("ListScripts", text(self.scripts.list_scripts(req(cred, empty())).await)),
            ("Me", text(self.auth.me(req(cred, empty())).await)),
        ]
    }
}

#[tokio::test]
async fn org_a_cannot_touch_org_b_over_grpc() {
    let h = harness().await;
    let a_admin = Cred::Bearer(h.admin_token().await);
    let b_admin = Cred::Bearer(h.second_org("borg").await);
    let b = populate_b(&h, &b_admin).await;
    let mut c = Clients::new(serve(&h).await);

    let settings = cloudpb::Settings { settings: [("b_secret".to_owned(), "s3".to_owned())].into() };
    c.profile.update_settings(req(&b_admin, settings)).await.expect("B's settings");
    let a_key = c.api_keys.create_api_key(req(&a_admin, cloudpb::CreateKeyRequest::default())).await.expect("key");
    let a_api = Cred::ApiKey(a_key.into_inner().key);
    let a_dep = c.deploy_keys.create_deploy_key(req(&a_admin, Default::default())).await.expect("deploy key");
    let a_deploy = Cred::ApiKey(a_dep.into_inner().key);

    for cred in [&a_admin, &a_api] {
        let attacks = c.attacks(cred, &b).await;
        assert_eq!(attacks.len(), 13);
        for (rpc, code) in attacks {
            assert_eq!(code, Code::NotFound, "{rpc} with {cred:?}");
        }
        for (rpc, answer) in c.listings(cred).await {
            let text = answer.unwrap_or_else(|code| panic!("{rpc} with {cred:?}: {code:?}"));
            for leaked in ids(&b).into_iter().chain(B_SECRETS.iter().copied()) {
                assert!(!text.contains(leaked), "{rpc} leaks {leaked:?}: {text}");
            }
        }
    }

    // A deploy key is no user credential at all.
    for (rpc, code) in c.attacks(&a_deploy, &b).await {
        assert_eq!(code, Code::Unauthenticated, "{rpc} with a deploy key");
    }
    for (rpc, answer) in c.listings(&a_deploy).await {
        assert_eq!(answer.err(), Some(Code::Unauthenticated), "{rpc} with a deploy key");
    }

    // B's things are intact, seen over REST.
    assert_b_intact(&h, &b_admin, &b).await;
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_over_grpc() {
    let h = harness().await;
    let mut c = Clients::new(serve(&h).await);
    let first = c
        .auth
        .login(Request::new(cloudpb::LoginRequest { email: "admin@default.com".into(), password: "admin".into() }))
        .await
        .expect("login")
        .into_inner();
    assert!(first.must_change_password);
    let pending = Cred::Bearer(first.token);
    let refused = c.profile.get_org(req(&pending, cloudpb::Empty {})).await.expect_err("pending change");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(
        refused.metadata().get(loupe_proto::REASON_METADATA).and_then(|v| v.to_str().ok()),
        Some("PASSWORD_CHANGE_REQUIRED")
    );
    let change = cloudpb::ChangePasswordRequest {
        current_password: "admin".into(),
        new_password: crate::common::NEW_ADMIN_PASSWORD.into(),
    };
    let session = c.auth.change_password(req(&pending, change)).await.expect("change").into_inner();
    let good = Cred::Bearer(session.token.clone());
    c.profile.get_org(req(&good, cloudpb::Empty {})).await.expect("org");

    let admin = h.state.metastore.get_user_by_email("admin@default.com").await.expect("admin");
    let claims =
        UserClaims::user(admin.id.to_string(), admin.org_id.to_string(), admin.email.clone(), TokenRole::Admin);
    let expired = h.state.signer.issue(&claims, Duration::from_secs(60), unix_now() - 3600).expect("issue");
    let foreign = loupe_auth::TokenSigner::new(loupe_auth::SigningKey::generate().expect("key"), "localhost");
    let forged = foreign.issue(&claims, Duration::from_secs(600), unix_now()).expect("issue");
    let mut tampered = session.token.clone().into_bytes();
    let at = tampered.iter().position(|b| *b == b'.').expect("dot") + 3;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("utf8");
    for (what, token) in [("expired", expired.token), ("forged", forged.token), ("tampered", tampered)] {
        let status = c.profile.get_org(req(&Cred::Bearer(token), cloudpb::Empty {})).await.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    }
    let none = c.scripts.list_scripts(Request::new(cloudpb::Empty {})).await.expect_err("no credential");
    assert_eq!(none.code(), Code::Unauthenticated);

    // Logout revokes the session; a revoked API key stops working.
    let key = c.api_keys.create_api_key(req(&good, Default::default())).await.expect("key").into_inner();
    let api = Cred::ApiKey(key.key);
    c.scripts.list_scripts(req(&api, cloudpb::Empty {})).await.expect("key works");
    c.api_keys.delete_api_key(req(&good, id(&key.id))).await.expect("revoke");
    let revoked = c.scripts.list_scripts(req(&api, cloudpb::Empty {})).await.expect_err("revoked key");
    assert_eq!(revoked.code(), Code::Unauthenticated);
    c.auth.logout(req(&good, cloudpb::Empty {})).await.expect("logout");
    let ended = c.auth.me(req(&good, cloudpb::Empty {})).await.expect_err("logged out");
    assert_eq!(ended.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn rest_and_grpc_answer_the_same() {
    let h = harness().await;
    let admin = Cred::Bearer(h.admin_token().await);
    let mut c = Clients::new(serve(&h).await);
    let body =
        json!({ "name": "org/both", "pxl": crate::common::pxl("both"), "description": "same", "vis": { "a": 1 } });
    h.call("POST", "/api/v1/scripts", Some(&admin), Some(body)).await.expect(201);
    let rest = h.call("GET", "/api/v1/scripts", Some(&admin), None).await.expect(200);
    let grpc = c.scripts.list_scripts(req(&admin, cloudpb::Empty {})).await.expect("list").into_inner();
    assert_eq!(rest.body, serde_json::to_value(&grpc.scripts).expect("json"));
    let one = c.scripts.get_script(req(&admin, cloudpb::ScriptName { name: "org/both".into() })).await.expect("get");
    assert_eq!(one.into_inner().vis_json, r#"{"a":1}"#);
}
