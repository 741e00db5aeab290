//! The watcher over the replayed API server: list, watch from the list's version, watch again from the last
//! event's version when a watch ends, list again on 410 Gone (an ERROR event, then an HTTP status).

use std::sync::atomic::Ordering;

use loupe_metadata::model::PodField;

use crate::apiserver::{TempDir, watched_cluster};

const B: &str = "6a1d2b3f-4c5e-4d7f-9a01-b2c3d4e5f607";
const C: &str = "7b2e3c40-5d6f-4e80-ab12-c3d4e5f60718";

#[tokio::test]
async fn the_watch_survives_its_end_and_a_410_gone() {
    let dir = TempDir::new("watch");
    let (api, hub, stats, tasks) = watched_cluster(&dir.0).await;
    let pods = api.seen("/api/v1/pods");
    let lists: Vec<_> = pods.iter().filter(|s| !s.watch).collect();
    let watches: Vec<Option<&str>> = pods.iter().filter(|s| s.watch).map(|s| s.version.as_deref()).collect();
    // 100: the first list's; 101: resumed after the watch ended, from its last event; 200: the relist's after
    // the 410 event, and again after the relist that the 410 status forced.
    assert_eq!(watches, [Some("100"), Some("101"), Some("200"), Some("200")]);
    assert_eq!(lists.len(), 3, "{pods:?}");
    assert_eq!(stats.relists_gone.load(Ordering::Relaxed), 2);
    assert_eq!(stats.events.load(Ordering::Relaxed), 2, "ADDED and MODIFIED");

    hub.read(|s| {
        // The pod the relist no longer has is deleted but remembered, with what its last event said.
        let b = s.pod(B).expect("b remembered");
        assert_ne!(b.stop_ns, 0, "deleted by the relist");
        assert!(b.ready && b.containers[0].state == "Running", "the MODIFIED event was applied: {b:?}");
        assert!(s.pod_field(PodField::Status, b).contains("\"Terminated\""));
        // The new pod of the relist, behind shop/cart, owned by the cart deployment.
        let c = s.pod(C).expect("c listed");
        assert_eq!(c.stop_ns, 0);
        assert_eq!(s.pod_field(PodField::Name, c), "shop/cart-7d9-cccc");
        assert_eq!(s.pod_field(PodField::ServiceName, c), "shop/cart");
        assert_eq!(s.pod_field(PodField::DeploymentName, c), "shop/cart");
        assert_eq!(s.pod_field(PodField::ReplicaSetName, c), "shop/cart-7d9");
        assert_eq!(
            s.pod_by_ip_at("10.244.1.9", None).map(|p| s.pod_field(PodField::ServiceName, p)).as_deref(),
            Some("billing/pay")
        );
        assert_eq!(s.pod_named("shop/cart-7d9-bbbb").map(|p| p.uid.as_str()), Some(B), "by name after deletion");
    });
    // The service's operational routes: ready (every kind listed), counters and objects in /metrics.
    let ops = loupe_metadata::serve::ops_router(hub.clone(), stats.clone());
    let (status, body) = get(ops.clone(), "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_, metrics) = get(ops, "/metrics").await;
    assert!(metrics.contains("loupe_metadata_relists_gone_total 2\n"), "{metrics}");
    assert!(metrics.contains("loupe_metadata_objects{kind=\"pod\"} 3\n"), "{metrics}");
    let unready = loupe_metadata::serve::ops_router(hub, std::sync::Arc::default());
    let (status, body) = get(unready, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Pod"), "{body}");
    for t in tasks {
        t.abort();
    }
}

async fn get(router: axum::Router, path: &str) -> (u16, String) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let req = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
    let resp = router.oneshot(req).await.expect("answered");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
