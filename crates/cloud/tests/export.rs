//! The org's export target (`/api/v1/export-target` and `ExportTargetService` over gRPC): set, read with header
//! values redacted, replaced, deleted; admins only change it; each change told to the `CronChanges` hook (the
//! viziers learn it with their cron set); one org never sees another's; no credential, no answer.

use std::net::SocketAddr;

use loupe_metastore::Role;
use loupe_proto::cloudpb::{self, export_target_service_client::ExportTargetServiceClient};
use serde_json::json;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::common::{Cred, NEW_ADMIN_PASSWORD, harness, harness_recording_changes};

const PATH: &str = "/api/v1/export-target";
const SECRET: &str = "s3cret-api-key-value";

#[tokio::test]
async fn the_export_target_is_set_read_redacted_and_deleted_per_org() {
    let (h, recorder) = harness_recording_changes().await;
    let a = Cred::Bearer(h.admin_token().await);
    let me = h.call("GET", "/api/v1/auth/me", Some(&a), None).await.expect(200);
    let org: Uuid = me.body["org"]["id"].as_str().expect("org").parse().expect("uuid");

    // None yet; no credential, no answer.
    h.call("GET", PATH, Some(&a), None).await.expect(404);
    for method in ["GET", "PUT", "DELETE"] {
        let body = (method == "PUT").then(|| json!({ "url": "c:4317" }));
        h.call(method, PATH, None, body).await.expect(401);
    }

    let body = json!({ "url": "otel-collector:4317", "headers": { "api-key": SECRET }, "insecure": true,
        "timeout_s": 9 });
    let set = h.call("PUT", PATH, Some(&a), Some(body)).await.expect(200).body;
    assert_eq!(
        set,
        json!({ "url": "otel-collector:4317", "headers": { "api-key": "<redacted>" }, "insecure": true,
        "timeout_s": 9 })
    );
    let read = h.call("GET", PATH, Some(&a), None).await.expect(200).body;
    assert_eq!(read, set);
    assert!(!read.to_string().contains(SECRET));
    assert_eq!(recorder.orgs(), [org]);
    // The metastore holds the value sealed; what the viziers receive holds the value itself.
    let stored = h.state.metastore.get_org_setting(org, loupe_vzconn::EXPORT_DEFAULT_SETTING).await.expect("get");
    let stored = stored.expect("stored");
    let kept = loupe_vzconn::decode_export_default(&stored).expect("decodes");
    assert_eq!(kept.headers[0].name, "api-key");
    assert!(kept.headers[0].value.starts_with("sealed1:"), "{}", kept.headers[0].value);
    assert!(!kept.headers[0].value.contains(SECRET) && !stored.contains(&hex(SECRET)), "kept in clear");
    let sent = loupe_vzconn::open_export_default(&stored, Some(&crate::common::settings_key()), org).expect("opens");
    assert_eq!((sent.headers[0].name.as_str(), sent.headers[0].value.as_str()), ("api-key", SECRET));
    // Another org's id, another key or none: not opened, so not sent.
    assert!(loupe_vzconn::open_export_default(&stored, Some(&crate::common::settings_key()), Uuid::new_v4()).is_none());
    assert!(loupe_vzconn::open_export_default(&stored, None, org).is_none());
    let other = loupe_vzconn::SettingsKey::from_text(&"f".repeat(64)).expect("key");
    assert!(loupe_vzconn::open_export_default(&stored, Some(&other), org).is_none());

    // Refusals, with their reasons; none reaches the hook.
    for (body, why) in [
        (json!({ "url": "https://user:pw@c:4318" }), "headers, not in the url"),
        (json!({ "url": "collector" }), "host:port"),
        (json!({ "url": "c:4317", "headers": { "API-Key": "x" } }), "header names"),
        (json!({ "url": "c:4317", "headers": { "k": "<redacted>" } }), "redacted value"),
        (json!({ "url": "c:4317", "timeout_s": 61 }), "at most 60"),
    ] {
        let answer = h.call("PUT", PATH, Some(&a), Some(body)).await.expect(400);
        assert!(answer.message().contains(why), "{why}: {}", answer.body);
    }
    assert_eq!(recorder.orgs().len(), 1);

    // A member reads it but cannot change it.
    h.create_user(org, "member@default.com", Role::Member).await;
    let login = h.login("member@default.com", NEW_ADMIN_PASSWORD).await.expect(200);
    let m = Cred::Bearer(login.body["token"].as_str().expect("token").to_owned());
    assert_eq!(h.call("GET", PATH, Some(&m), None).await.expect(200).body, set);
    h.call("PUT", PATH, Some(&m), Some(json!({ "url": "evil:4317" }))).await.expect(403);
    h.call("DELETE", PATH, Some(&m), None).await.expect(403);

    // Another org sees none of it and has its own.
    let b = Cred::Bearer(h.second_org("borg").await);
    h.call("GET", PATH, Some(&b), None).await.expect(404);
    h.call("DELETE", PATH, Some(&b), None).await.expect(404);
    let b_set = h.call("PUT", PATH, Some(&b), Some(json!({ "url": "http://b:4318" }))).await.expect(200).body;
    assert_eq!(b_set["url"], "http://b:4318");
    assert_eq!(h.call("GET", PATH, Some(&a), None).await.expect(200).body, set);

    // Over gRPC: the same answers, redacted too; no credential is refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(loupe_cloud::serve(listener, h.state.clone(), std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri");
    let mut grpc = ExportTargetServiceClient::new(channel.connect().await.expect("connect"));
    let Cred::Bearer(token) = &a else { unreachable!() };
    let mut authed = Request::new(cloudpb::Empty {});
    authed.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    let got = grpc.get_export_target(authed).await.expect("get").into_inner();
    assert_eq!((got.url.as_str(), got.headers["api-key"].as_str()), ("otel-collector:4317", "<redacted>"));
    let none = grpc.get_export_target(Request::new(cloudpb::Empty {})).await.expect_err("no credential");
    assert_eq!(none.code(), Code::Unauthenticated);
    let none = grpc
        .set_export_target(Request::new(cloudpb::ExportTarget { url: "x:1".into(), ..Default::default() }))
        .await
        .expect_err("no credential");
    assert_eq!(none.code(), Code::Unauthenticated);

    // Deleted: gone, and the viziers are told.
    h.call("DELETE", PATH, Some(&a), None).await.expect(204);
    h.call("GET", PATH, Some(&a), None).await.expect(404);
    h.call("DELETE", PATH, Some(&a), None).await.expect(404);
    assert_eq!(recorder.orgs().iter().filter(|o| **o == org).count(), 2);
    assert_eq!(h.call("GET", PATH, Some(&b), None).await.expect(200).body, b_set);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A process without a settings key refuses to keep header values rather than keep them in clear.
#[tokio::test]
async fn without_a_settings_key_header_values_are_refused_not_kept_in_clear() {
    let mut h = harness().await;
    h.state.settings_key = None;
    let h = crate::common::Harness { app: loupe_cloud::app(h.state.clone()), state: h.state };
    let a = Cred::Bearer(h.admin_token().await);
    let body = json!({ "url": "c:4317", "headers": { "api-key": SECRET } });
    let answer = h.call("PUT", PATH, Some(&a), Some(body)).await.expect(503);
    assert!(answer.message().contains("settings key"), "{}", answer.body);
}
