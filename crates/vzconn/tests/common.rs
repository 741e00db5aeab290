//! Shared harness: temp dirs, a metastore with orgs and deploy keys, VZConn served on loopback (restartable
//! on the same port), a PEM query service over known rows, and connector configs with short timings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_bus::{Bus, InProcessBus, NatsBus, NatsBusConfig};
use loupe_connector::ConnectorConfig;
use loupe_metastore::{KeyKind, Metastore, NewKey};
use loupe_proto::vzconnpb::vz_conn_service_client::VzConnServiceClient;
use loupe_proto::vzconnpb::{RegisterVizierRequest, RegisterVizierResponse};
use loupe_testkit::NatsServer;
use loupe_vizier::http::PemOps;
use loupe_vizier::{Pem, PemConfig, QueryToken};
use loupe_vzconn::{VzConn, VzConnConfig};
use tonic::transport::Channel;
use uuid::Uuid;

pub const SECRET: [u8; 32] = [42; 32];
pub const QUERY_TOKEN: &str = "connector-test-query-token-0123456789";

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("loupe-vzconn-{tag}-{}-{}", std::process::id(), Uuid::new_v4()));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which bus a test runs on; the NATS server lives as long as the backend.
pub enum Backend {
    InProcess,
    Nats(NatsServer),
}

impl Backend {
    pub fn both() -> [fn() -> Backend; 2] {
        [|| Backend::InProcess, || Backend::Nats(NatsServer::start())]
    }

    pub async fn bus(&self) -> Arc<dyn Bus> {
        match self {
            Backend::InProcess => Arc::new(InProcessBus::new()),
            Backend::Nats(server) => {
                let bus = NatsBus::connect(NatsBusConfig::new(server.url())).await.expect("nats");
                assert!(bus.wait_connected(Duration::from_secs(10)).await, "nats client connected");
                Arc::new(bus)
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::InProcess => "in-process",
            Backend::Nats(_) => "nats",
        }
    }
}

/// A SQLite metastore in `dir`.
pub async fn metastore(dir: &Path) -> Arc<dyn Metastore> {
    loupe_metastore::connect(&format!("sqlite://{}", dir.join("meta.db").display())).await.expect("metastore")
}

/// A new org and a deploy key of it: (org id, key plaintext, key id).
pub async fn org_with_key(metastore: &Arc<dyn Metastore>, name: &str) -> (Uuid, String, Uuid) {
    let org = metastore.create_org(name).await.expect("org");
    let (key, hash) = loupe_auth::generate_key(KeyKind::Deploy).expect("key");
    let stored = metastore
        .create_key(NewKey {
            kind: KeyKind::Deploy,
            org_id: org.id,
            user_id: None,
            description: "test".into(),
            key_hash: hash.as_str().to_owned(),
            prefix: loupe_auth::display_prefix(&key).to_owned(),
        })
        .await
        .expect("deploy key");
    (org.id, key, stored.id)
}

/// VZConn served on loopback until dropped or stopped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(metastore: Arc<dyn Metastore>, bus: Arc<dyn Bus>) -> Server {
        Server::start_with(metastore, bus, VzConnConfig::new(SECRET.to_vec()), "127.0.0.1:0".parse().expect("addr"))
            .await
    }

    pub async fn start_with(
        metastore: Arc<dyn Metastore>,
        bus: Arc<dyn Bus>,
        config: VzConnConfig,
        addr: SocketAddr,
    ) -> Server {
        let listener = bind(addr).await;
        let addr = listener.local_addr().expect("addr");
        let vzconn = VzConn::new(metastore, bus, config).expect("vzconn");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(vzconn.clone().serve(listener, async move {
            let _ = stopped.await;
        }));
        let task = tokio::spawn(async move {
            task.await.expect("join").expect("serve");
        });
        Server { addr, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (bridges end) and waits until the port is free.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t).await.expect("vzconn stopped in time").expect("join");
        }
    }

    pub async fn client(&self) -> VzConnServiceClient<Channel> {
        VzConnServiceClient::connect(self.url()).await.expect("connect")
    }
}

/// Binds `addr`, retrying briefly while a just-stopped server's port is released.
async fn bind(addr: SocketAddr) -> tokio::net::TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// A registration request.
pub fn registration(name: &str, uid: &str) -> RegisterVizierRequest {
    RegisterVizierRequest {
        cluster_name: name.into(),
        cluster_uid: uid.into(),
        version: "0.1.0".into(),
        ..Default::default()
    }
}

/// Calls RegisterVizier with `key` (if any).
pub async fn register(
    client: &mut VzConnServiceClient<Channel>,
    key: Option<&str>,
    request: RegisterVizierRequest,
) -> Result<RegisterVizierResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    if let Some(k) = key {
        request.metadata_mut().insert(loupe_vzconn::DEPLOY_KEY_METADATA, k.parse().expect("ascii"));
    }
    client.register_vizier(request).await.map(tonic::Response::into_inner)
}

/// Waits until `check` holds, at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A PEM without tracing over `rows` known rows (`/item/<i>`, status 200 + i % 3), serving its token-protected
/// query port on loopback until the sender drops.
pub async fn pem(rows: usize) -> (SocketAddr, tokio::sync::oneshot::Sender<()>, PemOps) {
    use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
    let pem = Pem::start(PemConfig { collector: None, ..PemConfig::default() }).expect("pem");
    let table = pem.store().table("http_events").expect("registered");
    let now = loupe_common::time::now_unix_ns();
    let mut b = HttpEventsBuilder::new();
    for i in 0..rows {
        b.append(&HttpEventRow {
            time_ns: now - 60_000_000_000 + i as i64,
            upid: "1:2:3".into(),
            req_method: "GET".into(),
            req_path: format!("/item/{i}"),
            resp_status: 200 + (i % 3) as i64,
            latency_ns: (i % 1000) as i64 * 1000,
            ..HttpEventRow::default()
        });
        if (i + 1) % 1024 == 0 || i + 1 == rows {
            table.append(b.finish().expect("batch")).expect("append");
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ops = pem.ops();
    tokio::spawn(pem.serve(listener, QueryToken::new(QUERY_TOKEN).expect("token"), async move {
        let _ = stopped.await;
    }));
    (addr, stop, ops)
}

/// A connector config with test timings: 100 ms heartbeats, reconnects from 50 ms up to 500 ms.
pub fn connector_config(cloud: &str, data_dir: &Path, query_addr: SocketAddr, key: Option<&str>) -> ConnectorConfig {
    let mut c = ConnectorConfig::new(cloud, data_dir, format!("http://{query_addr}"));
    c.deploy_key = key.map(str::to_owned);
    c.cluster_name = "test-cluster".into();
    c.query_token = QUERY_TOKEN.into();
    c.heartbeat_interval = Duration::from_millis(100);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(500);
    c
}
