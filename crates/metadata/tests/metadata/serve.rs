//! The service's stream: a follower without the token is refused; one with it gets the snapshot, then each
//! change, and a new connection after a break starts from a fresh snapshot.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use loupe_metadata::model::{Kind, Update};
use loupe_metadata::serve::{self, FollowError, FollowStats};
use loupe_metadata::{Hub, NodeMetadata};

use crate::apiserver::{TempDir, wait_for, watched_cluster};
use crate::cgroups::{A, C};

const TOKEN: &str = "metadata-test-token-0123456789";

#[tokio::test]
async fn followers_need_the_token_and_get_snapshot_then_updates() {
    let dir = TempDir::new("serve");
    let (_api, hub, _stats, tasks) = watched_cluster(&dir.0).await;
    let port = loupe_testkit::free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = serve::router(hub.clone(), TOKEN);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });

    for wrong in ["", "metadata-test-token-0123456789x", "nope"] {
        let err = serve::follow_once(addr, wrong, &Hub::default(), &FollowStats::default()).await.expect_err("refused");
        assert!(matches!(err, FollowError::Status(s) if s == 401), "{err}");
    }

    let local = Hub::new();
    let stats = Arc::new(FollowStats::default());
    let follower = tokio::spawn(serve::follow(addr, TOKEN.into(), local.clone(), stats.clone()));
    assert!(wait_for(Duration::from_secs(10), || stats.snapshots.load(Ordering::Relaxed) == 1).await);
    let meta = NodeMetadata::new(local.clone());
    assert_eq!(meta.answer("pod_id_to_pod_name", A), "shop/cart-7d9-aaaa");
    assert_eq!(meta.answer("pod_name_to_service_name", "shop/cart-7d9-cccc"), "shop/cart");
    assert_eq!(meta.answer("ip_to_pod_id", "10.244.1.7"), C);
    assert_eq!(meta.answer("pod_id_to_node_name", C), "node-a");
    assert!(meta.answer("pod_name_to_status", "shop/cart-7d9-aaaa").contains(r#""phase":"Running""#));
    assert_eq!(meta.answer("service_name_to_namespace", "billing/pay"), "billing");
    let pay = meta.answer("service_name_to_service_id", "billing/pay");
    assert_eq!(meta.answer("service_id_to_service_name", &pay), "billing/pay");
    assert_eq!(meta.answer("ip_to_service_id", "10.96.56.78"), pay);

    // A change on the service side reaches the follower.
    hub.apply(vec![Update::Delete { kind: Kind::Pod, uid: C.into(), at_ns: i64::MAX / 2 }]);
    assert!(wait_for(Duration::from_secs(10), || stats.updates.load(Ordering::Relaxed) >= 1).await);
    assert!(meta.answer("pod_name_to_status", "shop/cart-7d9-cccc").contains("Terminated"));

    follower.abort();
    server.abort();
    for t in tasks {
        t.abort();
    }
}
