//! RegisterVizier: deploy key → org, refusals, names, and keeping an identity across restarts.

use std::sync::Arc;

use loupe_bus::InProcessBus;
use loupe_metastore::{KeyKind, VizierStatusUpdate};
use loupe_vzconn::{CredentialKey, VzConnConfig};
use tonic::Code;
use uuid::Uuid;

use crate::common::{SECRET, Server, TempDir, metastore, org_with_key, register, registration};

#[tokio::test]
async fn a_deploy_key_registers_a_vizier_in_its_own_org_only() {
    let dir = TempDir::new("reg-happy");
    let ms = metastore(dir.path()).await;
    let (org_a, key_a, _) = org_with_key(&ms, "org-a").await;
    let (org_b, _, _) = org_with_key(&ms, "org-b").await;
    let server = Server::start(Arc::clone(&ms), Arc::new(InProcessBus::new())).await;
    let mut client = server.client().await;

    let answer = register(&mut client, Some(&key_a), registration("prod", "uid-1")).await.expect("registered");
    let id = Uuid::parse_str(&answer.vizier_id).expect("uuid");
    assert_eq!(answer.vizier_name, "prod");
    let key = CredentialKey::new(&SECRET).expect("key");
    assert_eq!(key.verify(id, &answer.credential), Some(org_a));
    let record = ms.get_vizier(org_a, id).await.expect("in org a");
    assert_eq!(
        (record.name.as_str(), record.cluster_uid.as_str(), record.status.as_str(), record.version.as_str()),
        ("prod", "uid-1", "disconnected", "0.1.0")
    );
    assert!(ms.list_viziers(org_b).await.expect("list").is_empty(), "nothing in org b");

    // Name collisions get a suffix; no name gets a generated one.
    let second = register(&mut client, Some(&key_a), registration("prod", "uid-2")).await.expect("registered");
    let (base, suffix) = second.vizier_name.split_once('_').expect("suffixed");
    assert_eq!(base, "prod");
    assert!(suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{}", second.vizier_name);
    let unnamed = register(&mut client, Some(&key_a), registration("", "uid-3")).await.expect("registered");
    assert!(unnamed.vizier_name.split('_').count() == 2 && !unnamed.vizier_name.is_empty(), "{}", unnamed.vizier_name);
    assert_eq!(ms.list_viziers(org_a).await.expect("list").len(), 3);
}

#[tokio::test]
async fn missing_malformed_forged_and_revoked_keys_are_refused() {
    let dir = TempDir::new("reg-refused");
    let ms = metastore(dir.path()).await;
    let (org, key, key_id) = org_with_key(&ms, "org").await;
    let server = Server::start(Arc::clone(&ms), Arc::new(InProcessBus::new())).await;
    let mut client = server.client().await;
    let forged = loupe_auth::generate_key(KeyKind::Deploy).expect("key").0;
    let (api_key, _) = loupe_auth::generate_key(KeyKind::Api).expect("key");
    for (what, k) in [
        ("none", None),
        ("malformed", Some("px-dep-short")),
        ("forged", Some(forged.as_str())),
        ("api key", Some(api_key.as_str())),
    ] {
        let e = register(&mut client, k, registration("x", "u")).await.expect_err(what);
        assert_eq!(e.code(), Code::Unauthenticated, "{what}: {e:?}");
    }
    register(&mut client, Some(&key), registration("x", "u")).await.expect("valid before revocation");
    ms.revoke_key(KeyKind::Deploy, org, key_id).await.expect("revoke");
    let e = register(&mut client, Some(&key), registration("y", "v")).await.expect_err("revoked");
    assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "invalid or revoked deploy key"));
    assert_eq!(ms.list_viziers(org).await.expect("list").len(), 1);
}

#[tokio::test]
async fn a_previous_identity_keeps_its_id_only_with_its_credential_and_org() {
    let dir = TempDir::new("reg-again");
    let ms = metastore(dir.path()).await;
    let (org_a, key_a, _) = org_with_key(&ms, "org-a").await;
    let (_, key_b, _) = org_with_key(&ms, "org-b").await;
    let server = Server::start(Arc::clone(&ms), Arc::new(InProcessBus::new())).await;
    let mut client = server.client().await;
    let first = register(&mut client, Some(&key_a), registration("edge", "uid-e")).await.expect("registered");
    // Pretend it is connected, so the cluster-uid path cannot be what keeps the id.
    let id = Uuid::parse_str(&first.vizier_id).expect("uuid");
    ms.update_vizier_status(
        org_a,
        id,
        VizierStatusUpdate {
            status: "healthy".into(),
            last_heartbeat_ns: 1,
            version: None,
            num_agents: None,
            address: None,
        },
    )
    .await
    .expect("status");

    let again = |credential: &str, uid: &str| {
        let mut r = registration("edge", uid);
        r.previous_vizier_id = first.vizier_id.clone();
        r.previous_credential = credential.to_owned();
        r
    };
    let kept = register(&mut client, Some(&key_a), again(&first.credential, "uid-e")).await.expect("kept");
    assert_eq!((kept.vizier_id.as_str(), kept.vizier_name.as_str()), (first.vizier_id.as_str(), "edge"));
    assert_eq!(kept.credential, first.credential);

    // A forged credential, or another org's key, does not buy the id.
    let forged = first.credential.replace('a', "b");
    let e = register(&mut client, Some(&key_a), again(&forged, "uid-e")).await.expect_err("forged");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let e = register(&mut client, Some(&key_b), again(&first.credential, "uid-e")).await.expect_err("other org");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Without an identity, the same cluster cannot register while its vizier is connected...
    let e = register(&mut client, Some(&key_a), registration("edge", "uid-e")).await.expect_err("connected");
    assert_eq!(e.code(), Code::AlreadyExists, "{e:?}");
    // ...but reclaims the record once it is disconnected (Pixie's rule).
    ms.update_vizier_status(
        org_a,
        id,
        VizierStatusUpdate {
            status: "disconnected".into(),
            last_heartbeat_ns: 1,
            version: None,
            num_agents: None,
            address: None,
        },
    )
    .await
    .expect("status");
    let reclaimed = register(&mut client, Some(&key_a), registration("edge", "uid-e")).await.expect("reclaimed");
    assert_eq!(reclaimed.vizier_id, first.vizier_id);

    // A deleted vizier's identity registers anew, under a new id.
    ms.delete_vizier(org_a, id).await.expect("delete");
    let fresh = register(&mut client, Some(&key_a), again(&first.credential, "uid-e")).await.expect("fresh");
    assert_ne!(fresh.vizier_id, first.vizier_id);
    assert_eq!(fresh.vizier_name, "edge");
}

#[tokio::test]
async fn an_address_that_keeps_failing_is_refused_before_any_lookup() {
    let dir = TempDir::new("reg-limit");
    let ms = metastore(dir.path()).await;
    let (_, key, _) = org_with_key(&ms, "org").await;
    let mut config = VzConnConfig::new(SECRET.to_vec());
    config.max_failed_registrations_per_minute = 3;
    let server = Server::start_with(
        Arc::clone(&ms),
        Arc::new(InProcessBus::new()),
        config,
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await;
    let mut client = server.client().await;
    let forged = loupe_auth::generate_key(KeyKind::Deploy).expect("key").0;
    for _ in 0..3 {
        let e = register(&mut client, Some(&forged), registration("x", "u")).await.expect_err("forged");
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // Now even the right key waits out the minute.
    let e = register(&mut client, Some(&key), registration("x", "u")).await.expect_err("blocked");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
}

#[tokio::test]
async fn overlong_or_control_character_fields_are_refused() {
    let dir = TempDir::new("reg-fields");
    let ms = metastore(dir.path()).await;
    let (org, key, _) = org_with_key(&ms, "org").await;
    let server = Server::start(Arc::clone(&ms), Arc::new(InProcessBus::new())).await;
    let mut client = server.client().await;
    let long = "n".repeat(129);
    for r in [registration(&long, "u"), registration("a\u{0}b", "u"), registration("ok", "line\nbreak")] {
        let e = register(&mut client, Some(&key), r).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    }
    assert!(ms.list_viziers(org).await.expect("list").is_empty());
}
