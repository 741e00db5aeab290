//! The org's history retention (`/api/v1/retention` and `RetentionService` over gRPC): set per table, replaced,
//! read back in table order, deleted; known tables and bounds only; admins only change it; each change told to
//! the `CronChanges` hook and held in the setting the viziers' cron set is built from; one org never sees
//! another's; no credential, no answer.

use std::net::SocketAddr;

use loupe_metastore::Role;
use loupe_proto::cloudpb::{self, retention_service_client::RetentionServiceClient};
use serde_json::json;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::common::{Cred, NEW_ADMIN_PASSWORD, harness_recording_changes};

const PATH: &str = "/api/v1/retention";

#[tokio::test]
async fn retention_is_set_per_table_checked_and_reaches_the_viziers_setting() {
    let (h, recorder) = harness_recording_changes().await;
    let a = Cred::Bearer(h.admin_token().await);
    let me = h.call("GET", "/api/v1/auth/me", Some(&a), None).await.expect(200);
    let org: Uuid = me.body["org"]["id"].as_str().expect("org").parse().expect("uuid");

    // Nothing of the org's own yet; no credential, no answer.
    assert_eq!(h.call("GET", PATH, Some(&a), None).await.expect(200).body, json!([]));
    let limits = json!({ "max_age_s": 7200, "max_bytes": 64u64 << 20 });
    h.call("GET", PATH, None, None).await.expect(401);
    h.call("PUT", &format!("{PATH}/http_events"), None, Some(limits.clone())).await.expect(401);
    h.call("DELETE", &format!("{PATH}/http_events"), None, None).await.expect(401);

    // Two tables, answered in table order; a second PUT replaces.
    h.call(
        "PUT",
        &format!("{PATH}/process_stats"),
        Some(&a),
        Some(json!({ "max_age_s": 86_400, "max_bytes": 1u64 << 30 })),
    )
    .await
    .expect(200);
    h.call("PUT", &format!("{PATH}/http_events"), Some(&a), Some(json!({ "max_age_s": 60, "max_bytes": 1u64 << 20 })))
        .await
        .expect(200);
    let policy = h.call("PUT", &format!("{PATH}/http_events"), Some(&a), Some(limits.clone())).await.expect(200).body;
    let want = json!([
        { "table": "http_events", "max_age_s": 7200, "max_bytes": 64u64 << 20 },
        { "table": "process_stats", "max_age_s": 86_400, "max_bytes": 1u64 << 30 },
    ]);
    assert_eq!(policy, want);
    assert_eq!(h.call("GET", PATH, Some(&a), None).await.expect(200).body, want);
    assert_eq!(recorder.orgs(), [org, org, org]);
    let stored = h.state.metastore.get_org_setting(org, loupe_vzconn::RETENTION_SETTING).await.expect("get");
    let entries = loupe_vzconn::decode_retention(&stored.expect("stored"));
    assert_eq!(
        entries.iter().map(|e| (e.table.as_str(), e.max_age_s, e.max_bytes)).collect::<Vec<_>>(),
        [("http_events", 7200, 64 << 20), ("process_stats", 86_400, 1 << 30)]
    );

    // Refusals, with their reasons; none reaches the hook.
    for (table, body, why) in [
        ("no_such_table", limits.clone(), "unknown table"),
        ("http_events", json!({ "max_age_s": 59, "max_bytes": 1u64 << 20 }), "max_age_s"),
        ("http_events", json!({ "max_age_s": 401 * 86_400, "max_bytes": 1u64 << 20 }), "max_age_s"),
        ("http_events", json!({ "max_age_s": 3600, "max_bytes": 1024 }), "max_bytes"),
    ] {
        let answer = h.call("PUT", &format!("{PATH}/{table}"), Some(&a), Some(body)).await.expect(400);
        assert!(answer.message().contains(why), "{why}: {}", answer.body);
    }
    h.call("PUT", &format!("{PATH}/http_events"), Some(&a), Some(json!({ "max_age_s": 60 }))).await.expect(400);
    assert_eq!(recorder.orgs().len(), 3);

    // A member reads it but cannot change it.
    h.create_user(org, "member@default.com", Role::Member).await;
    let login = h.login("member@default.com", NEW_ADMIN_PASSWORD).await.expect(200);
    let m = Cred::Bearer(login.body["token"].as_str().expect("token").to_owned());
    assert_eq!(h.call("GET", PATH, Some(&m), None).await.expect(200).body, want);
    h.call("PUT", &format!("{PATH}/http_events"), Some(&m), Some(limits.clone())).await.expect(403);
    h.call("DELETE", &format!("{PATH}/http_events"), Some(&m), None).await.expect(403);

    // Another org sees none of it.
    let b = Cred::Bearer(h.second_org("borg").await);
    assert_eq!(h.call("GET", PATH, Some(&b), None).await.expect(200).body, json!([]));
    h.call("DELETE", &format!("{PATH}/http_events"), Some(&b), None).await.expect(404);

    // Over gRPC: the same policy; no credential is refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(loupe_cloud::serve(listener, h.state.clone(), std::future::pending()));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).expect("uri");
    let mut grpc = RetentionServiceClient::new(channel.connect().await.expect("connect"));
    let Cred::Bearer(token) = &a else { unreachable!() };
    let mut authed = Request::new(cloudpb::Empty {});
    authed.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    let got = grpc.get_retention(authed).await.expect("get").into_inner();
    assert_eq!(got.tables.iter().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["http_events", "process_stats"]);
    let none = grpc.get_retention(Request::new(cloudpb::Empty {})).await.expect_err("no credential");
    assert_eq!(none.code(), Code::Unauthenticated);
    let none = grpc
        .set_table_retention(Request::new(cloudpb::TableRetention {
            table: "http_events".into(),
            max_age_s: 3600,
            max_bytes: 1 << 20,
        }))
        .await
        .expect_err("no credential");
    assert_eq!(none.code(), Code::Unauthenticated);

    // Deleted: back to the viziers' defaults, and the viziers are told.
    let left = h.call("DELETE", &format!("{PATH}/http_events"), Some(&a), None).await.expect(200).body;
    assert_eq!(left, json!([{ "table": "process_stats", "max_age_s": 86_400, "max_bytes": 1u64 << 30 }]));
    h.call("DELETE", &format!("{PATH}/http_events"), Some(&a), None).await.expect(404);
    assert_eq!(recorder.orgs().iter().filter(|o| **o == org).count(), 4);
}
