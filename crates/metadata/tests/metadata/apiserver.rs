//! A small API server replaying recorded responses: each resource path has its lists (the last one repeats)
//! and its watches in order (a body of events that then ends, or an HTTP status), after which a watch stays
//! open without events. Every request is recorded with its `resourceVersion`.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loupe_metadata::Hub;
use loupe_metadata::watch::{self, Cluster, WatchStats};
use parking_lot::Mutex;

/// One watch response.
#[derive(Clone)]
pub enum WatchReply {
    /// These events (one JSON object a line), then the end of the response.
    Events(&'static str),
    /// An error status with this body.
    Status(u16, &'static str),
}

#[derive(Default)]
struct Resource {
    lists: VecDeque<&'static str>,
    watches: VecDeque<WatchReply>,
}

/// One request: path, watch or list, and the resourceVersion asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub watch: bool,
    pub version: Option<String>,
}

#[derive(Default)]
struct Inner {
    resources: HashMap<&'static str, Resource>,
    seen: Vec<Seen>,
}

/// The replaying server.
pub struct ApiServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/k8s/", $name))
    };
}

/// The recorded cluster: namespaces `shop` and `billing`, deployments with their replica sets, services
/// `shop/cart` and `billing/pay` with endpoints, and pods. The pod watch adds `cart-7d9-bbbb`, ends, resumes,
/// modifies it, then says 410 Gone; the relist no longer has it and has a new pod `cart-7d9-cccc`; the next
/// watch is refused with HTTP 410, so the pods are listed a third time.
pub fn recorded_cluster() -> Vec<(&'static str, Vec<&'static str>, Vec<WatchReply>)> {
    vec![
        ("/api/v1/namespaces", vec![fixture!("namespaces-list.json")], vec![]),
        ("/api/v1/nodes", vec![fixture!("nodes-list.json")], vec![]),
        ("/apis/apps/v1/deployments", vec![fixture!("deployments-list.json")], vec![]),
        ("/apis/apps/v1/replicasets", vec![fixture!("replicasets-list.json")], vec![]),
        ("/api/v1/services", vec![fixture!("services-list.json")], vec![]),
        ("/api/v1/endpoints", vec![fixture!("endpoints-list.json")], vec![]),
        (
            "/api/v1/pods",
            vec![fixture!("pods-list-1.json"), fixture!("pods-list-2.json")],
            vec![
                WatchReply::Events(fixture!("pods-watch-1.jsonl")),
                WatchReply::Events(fixture!("pods-watch-2.jsonl")),
                WatchReply::Status(410, fixture!("gone-status.json")),
            ],
        ),
    ]
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let path = uri.path().to_owned();
    let mut inner = inner.lock();
    inner.seen.push(Seen { path: path.clone(), watch, version: q.get("resourceVersion").cloned() });
    let Some(r) = inner.resources.get_mut(path.as_str()) else {
        return (StatusCode::NOT_FOUND, "{}").into_response();
    };
    if !watch {
        let body = if r.lists.len() > 1 { r.lists.pop_front() } else { r.lists.front().copied() };
        return ([("content-type", "application/json")], body.unwrap_or("{}")).into_response();
    }
    match r.watches.pop_front() {
        Some(WatchReply::Events(body)) => ([("content-type", "application/json")], body).into_response(),
        Some(WatchReply::Status(code, body)) => {
            (StatusCode::from_u16(code).unwrap_or(StatusCode::GONE), [("content-type", "application/json")], body)
                .into_response()
        }
        // Nothing more recorded: an open watch with no events.
        None => Response::new(Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>())),
    }
}

impl ApiServer {
    pub async fn start(script: Vec<(&'static str, Vec<&'static str>, Vec<WatchReply>)>) -> Self {
        let mut inner = Inner::default();
        for (path, lists, watches) in script {
            inner.resources.insert(path, Resource { lists: lists.into(), watches: watches.into() });
        }
        let inner = Arc::new(Mutex::new(inner));
        let port = loupe_testkit::free_port();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ApiServer { addr, inner, task }
    }

    /// Every request so far to `path`.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.inner.lock().seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    /// A kubeconfig naming this server, written in `dir`.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "replay", "cluster": {"server": format!("http://{}", self.addr)}}],
            "users": [{"name": "replay", "user": {"token": "replayed-cluster-token"}}],
            "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "replay"}}],
            "current-context": "replay",
        });
        std::fs::write(&path, config.to_string()).expect("kubeconfig");
        path
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("loupe-metadata-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits up to `limit` for `f` to hold.
pub async fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// The recorded cluster replayed and watched into a hub until its pod watch is idle (4 watches: after the
/// end, after the 410 event, after the 410 status). The server and watch tasks must live as long as the hub
/// is read.
pub async fn watched_cluster(dir: &Path) -> (ApiServer, Arc<Hub>, Arc<WatchStats>, Vec<tokio::task::JoinHandle<()>>) {
    let api = ApiServer::start(recorded_cluster()).await;
    let client = watch::client(&Cluster::Kubeconfig(api.kubeconfig(dir))).await.expect("client");
    let hub = Hub::new();
    let stats = Arc::new(WatchStats::default());
    let tasks = watch::spawn(client, hub.clone(), stats.clone());
    let paths: Vec<&str> = recorded_cluster().into_iter().map(|(p, _, _)| p).collect();
    let idle = wait_for(Duration::from_secs(20), || {
        api.seen("/api/v1/pods").iter().filter(|s| s.watch).count() >= 4
            && paths.iter().all(|p| api.seen(p).iter().any(|s| s.watch))
    })
    .await;
    assert!(idle, "pod requests: {:?}", api.seen("/api/v1/pods"));
    (api, hub, stats, tasks)
}
