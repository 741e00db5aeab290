//! The real connector against VZConn: registration, heartbeats into the record, DISCONNECTED after a stop,
//! reconnection after restarts with the same id, and queries passed through to the real query service.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::StreamExt as _;
use loupe_connector::{Connector, ConnectorState, IDENTITY_FILE};
use loupe_metastore::Metastore;
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::{ExecuteScriptRequest, ExecuteScriptResponse, execute_script_response};
use loupe_vizier::http::PemOps;
use loupe_vzconn::{ManagerConfig, Passthrough, PassthroughConfig, PassthroughError, VizierManager, VzConnConfig};
use prost::Message as _;
use uuid::Uuid;

use crate::common::{
    Backend, QUERY_TOKEN, Server, TempDir, connector_config, eventually, metastore, org_with_key, pem,
};

const ROWS_SCRIPT: &str = "import px\n\
    df = px.DataFrame(table='http_events', start_time='-5m')\n\
    px.display(df[['req_path', 'resp_status']], 'rows')\n";

/// Every path's latency quantiles over 10,000 paths: seconds in a debug build.
const HEAVY: &str = "import px\n\
    df = px.DataFrame('http_events', start_time='-5m')\n\
    px.display(df.groupby('req_path').agg(q=('latency', px.quantiles)), 'heavy')\n";

fn manager_config() -> ManagerConfig {
    ManagerConfig {
        disconnect_after: Duration::from_secs(1),
        check_every: Duration::from_millis(100),
        ..ManagerConfig::default()
    }
}

async fn wait_state(c: &Connector, what: &str, f: impl Fn(&ConnectorState) -> bool) -> ConnectorState {
    let mut rx = c.state();
    let s = tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| f(s))).await;
    match s {
        Ok(Ok(s)) => s.clone(),
        _ => panic!("connector never reached: {what}; state {:?}", c.state().borrow().clone()),
    }
}

fn vizier_id(s: &ConnectorState) -> Uuid {
    Uuid::parse_str(&s.vizier.as_ref().expect("registered").0).expect("uuid")
}

async fn status_of(ms: &Arc<dyn Metastore>, org: Uuid, id: Uuid) -> (String, Option<i64>) {
    let v = ms.get_vizier(org, id).await.expect("vizier");
    (v.status, v.last_heartbeat_ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_make_a_vizier_healthy_and_a_stopped_one_disconnected() {
    for backend in Backend::both() {
        let backend = backend();
        let dir = TempDir::new("conn-hb");
        let ms = metastore(dir.path()).await;
        let (org, key, _) = org_with_key(&ms, "org").await;
        let bus = backend.bus().await;
        let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
        let manager = VizierManager::start(Arc::clone(&ms), Arc::clone(&bus), manager_config()).await.expect("manager");
        let (query_addr, _pem, _) = pem(5).await;
        let data = dir.path().join("connector");
        let connector =
            Connector::start(connector_config(&server.url(), &data, query_addr, Some(&key))).expect("start");
        let state = wait_state(&connector, "connected", |s| s.connected).await;
        let id = vizier_id(&state);
        let file = data.join(IDENTITY_FILE);
        assert_eq!(std::fs::metadata(&file).expect("identity").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(&data).expect("dir").permissions().mode() & 0o777, 0o700);

        let started = loupe_common::time::now_unix_ns();
        eventually(Duration::from_secs(10), "status healthy after a heartbeat", || {
            let ms = Arc::clone(&ms);
            async move {
                let (status, beat) = status_of(&ms, org, id).await;
                status == "healthy" && beat.is_some_and(|t| t >= started)
            }
        })
        .await;
        assert!(manager.stats().recorded() >= 1);
        // The heartbeat's report: one agent (the PEM answered its health check) and the query address.
        let v = ms.get_vizier(org, id).await.expect("vizier");
        assert_eq!((v.num_agents, v.address), (1, query_addr.to_string()), "{}", backend.name());

        connector.stop().await;
        eventually(Duration::from_secs(10), "disconnected after the shortened timeout", || {
            let ms = Arc::clone(&ms);
            async move { status_of(&ms, org, id).await.0 == "disconnected" }
        })
        .await;
        assert_eq!(manager.stats().marked_disconnected(), 1, "{}", backend.name());
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_comes_back_by_itself_after_restarts_with_the_same_id() {
    for backend in Backend::both() {
        let mut backend = backend();
        let dir = TempDir::new("conn-restart");
        let ms = metastore(dir.path()).await;
        let (org, key, _) = org_with_key(&ms, "org").await;
        let bus = backend.bus().await;
        let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
        let addr = server.addr;
        let _manager =
            VizierManager::start(Arc::clone(&ms), Arc::clone(&bus), manager_config()).await.expect("manager");
        let (query_addr, _pem, _) = pem(5).await;
        let data = dir.path().join("connector");
        let config = connector_config(&server.url(), &data, query_addr, Some(&key));
        let connector = Connector::start(config.clone()).expect("start");
        let id = vizier_id(&wait_state(&connector, "connected", |s| s.connected).await);

        // The cloud goes away: VZConn and, on NATS, the bus server too.
        server.stop().await;
        wait_state(&connector, "noticed the loss", |s| !s.connected).await;
        if let Backend::Nats(nats) = &mut backend {
            nats.restart();
        }
        let server = Server::start_with(
            Arc::clone(&ms),
            Arc::clone(&bus),
            VzConnConfig::new(crate::common::SECRET.to_vec()),
            addr,
        )
        .await;
        let state = wait_state(&connector, "reconnected", |s| s.connected && s.bridges_opened >= 2).await;
        assert_eq!(vizier_id(&state), id, "{}", backend.name());
        let after = loupe_common::time::now_unix_ns();
        eventually(Duration::from_secs(15), "heartbeats recorded again after the restart", || {
            let ms = Arc::clone(&ms);
            async move {
                let (status, beat) = status_of(&ms, org, id).await;
                status == "healthy" && beat.is_some_and(|t| t > after)
            }
        })
        .await;

        // The vizier restarts: same id from its data dir, with the deploy key or without it.
        connector.stop().await;
        let again = Connector::start(config.clone()).expect("restart");
        assert_eq!(vizier_id(&wait_state(&again, "connected", |s| s.connected).await), id);
        again.stop().await;
        let mut keyless = config.clone();
        keyless.deploy_key = None;
        let again = Connector::start(keyless).expect("restart without key");
        assert_eq!(vizier_id(&wait_state(&again, "connected", |s| s.connected).await), id);
        again.stop().await;
        assert_eq!(ms.list_viziers(org).await.expect("list").len(), 1, "{}", backend.name());
        server.stop().await;
    }
}

/// Each row of every data batch as `table|col=value|…`, sorted.
fn rows(messages: &[ExecuteScriptResponse]) -> Vec<String> {
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::new();
    let options = FormatOptions::default().with_null("null");
    for m in messages {
        match &m.result {
            Some(execute_script_response::Result::MetaData(md)) => {
                names.insert(md.id.clone(), md.name.clone());
            }
            // The end-of-table message carries no batch.
            Some(execute_script_response::Result::Data(d)) if !d.arrow_batch.is_empty() => {
                for batch in loupe_proto::arrow_ipc::decode_batches(&d.arrow_batch).expect("batch") {
                    let cols: Vec<ArrayFormatter<'_>> = batch
                        .columns()
                        .iter()
                        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("fmt"))
                        .collect();
                    for i in 0..batch.num_rows() {
                        let mut line = names.get(&d.table_id).cloned().unwrap_or_default();
                        for (f, c) in batch.schema().fields().iter().zip(&cols) {
                            line.push_str(&format!("|{}={}", f.name(), c.value(i)));
                        }
                        out.push(line);
                    }
                }
            }
            _ => {}
        }
    }
    out.sort();
    out
}

fn request(script: &str) -> ExecuteScriptRequest {
    ExecuteScriptRequest { query_str: script.into(), query_name: "t".into(), now_ns: 0, ..Default::default() }
}

async fn direct(addr: std::net::SocketAddr, script: &str) -> Vec<ExecuteScriptResponse> {
    let mut client = VizierServiceClient::connect(format!("http://{addr}")).await.expect("connect");
    let mut r = tonic::Request::new(request(script));
    r.metadata_mut().insert(loupe_proto::headers::VIZIER_TOKEN, QUERY_TOKEN.parse().expect("ascii"));
    let mut stream = client.execute_script(r).await.expect("accepted").into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await.expect("message") {
        out.push(m);
    }
    out
}

fn running(ops: &PemOps) -> bool {
    !ops.metrics_text().lines().any(|l| l == "loupe_queries_running 0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passthrough_query_returns_what_the_query_service_returns_and_a_drop_cancels_it() {
    for backend in Backend::both() {
        let backend = backend();
        let dir = TempDir::new("conn-query");
        let ms = metastore(dir.path()).await;
        let (_, key, _) = org_with_key(&ms, "org").await;
        let bus = backend.bus().await;
        let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
        let (small, _small_stop, _) = pem(5).await;
        let connector = Connector::start(connector_config(&server.url(), &dir.path().join("c1"), small, Some(&key)))
            .expect("start");
        let id = vizier_id(&wait_state(&connector, "connected", |s| s.connected).await);
        let passthrough = Passthrough::new(
            Arc::clone(&bus),
            PassthroughConfig { accept_timeout: Duration::from_millis(1500), timeout: Duration::from_secs(60) },
        );

        let replies = passthrough.execute(id, request(ROWS_SCRIPT).encode_to_vec().into()).await.expect("accepted");
        let through: Vec<ExecuteScriptResponse> =
            replies.map(|r| ExecuteScriptResponse::decode(r.expect("reply")).expect("decodes")).collect().await;
        let expected: Vec<String> =
            (0..5).map(|i| format!("rows|req_path=/item/{i}|resp_status={}", 200 + i % 3)).collect();
        assert_eq!(rows(&through), expected, "{}", backend.name());
        assert_eq!(rows(&direct(small, ROWS_SCRIPT).await), expected);
        assert!(
            matches!(through.last().and_then(|m| m.result.as_ref()), Some(execute_script_response::Result::Stats(_))),
            "ends with the stats"
        );

        // An unknown (or disconnected) vizier is said so, quickly.
        let started = Instant::now();
        let other = Uuid::new_v4();
        match passthrough.execute(other, request(ROWS_SCRIPT).encode_to_vec().into()).await {
            Err(PassthroughError::NotConnected { vizier_id }) => assert_eq!(vizier_id, other),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("an unknown vizier answered"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        connector.stop().await;

        // A long query on a big store: leaving stops it on the vizier long before it would end.
        let (big, _big_stop, ops) = pem(10_000).await;
        let started = Instant::now();
        let whole = direct(big, HEAVY).await;
        let whole_took = started.elapsed();
        assert!(!whole.is_empty());
        let connector =
            Connector::start(connector_config(&server.url(), &dir.path().join("c2"), big, Some(&key))).expect("start");
        let id = vizier_id(&wait_state(&connector, "connected", |s| s.connected).await);
        let mut replies = passthrough.execute(id, request(HEAVY).encode_to_vec().into()).await.expect("accepted");
        let first =
            ExecuteScriptResponse::decode(replies.next().await.expect("a reply").expect("ok")).expect("decodes");
        assert!(matches!(first.result, Some(execute_script_response::Result::MetaData(_))), "{first:?}");
        assert!(running(&ops), "{}", ops.metrics_text());
        drop(replies);
        let left = Instant::now();
        while running(&ops) {
            assert!(
                left.elapsed() < whole_took / 3,
                "the query kept running after the cloud left (it takes {whole_took:?})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        connector.stop().await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vizier_whose_query_service_is_down_is_unhealthy() {
    let dir = TempDir::new("conn-unhealthy");
    let ms = metastore(dir.path()).await;
    let (org, key, _) = org_with_key(&ms, "org").await;
    let bus = Backend::InProcess.bus().await;
    let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
    let _manager = VizierManager::start(Arc::clone(&ms), Arc::clone(&bus), manager_config()).await.expect("manager");
    // A port nothing listens on.
    let dead: std::net::SocketAddr = format!("127.0.0.1:{}", loupe_testkit::free_port()).parse().expect("addr");
    let connector =
        Connector::start(connector_config(&server.url(), &dir.path().join("c"), dead, Some(&key))).expect("start");
    let id = vizier_id(&wait_state(&connector, "connected", |s| s.connected).await);
    eventually(Duration::from_secs(10), "status unhealthy", || {
        let ms = Arc::clone(&ms);
        async move { status_of(&ms, org, id).await.0 == "unhealthy" }
    })
    .await;
    connector.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_deploy_key_is_reported_as_refused_and_a_good_one_clears_it() {
    let dir = TempDir::new("conn-refused");
    let ms = metastore(dir.path()).await;
    let (org, key, key_id) = org_with_key(&ms, "org").await;
    ms.revoke_key(loupe_metastore::KeyKind::Deploy, org, key_id).await.expect("revoke");
    let server = Server::start(Arc::clone(&ms), Backend::InProcess.bus().await).await;
    let (query_addr, _pem, _) = pem(1).await;
    let data = dir.path().join("connector");
    let refused = Connector::start(connector_config(&server.url(), &data, query_addr, Some(&key))).expect("start");
    let state = wait_state(&refused, "refused", |s| s.refused.is_some()).await;
    assert_eq!(state.refused.as_deref(), Some("registration refused: invalid or revoked deploy key (Unauthenticated)"));
    assert!(!state.connected && state.vizier.is_none(), "{state:?}");
    refused.stop().await;

    let (_, good, _) = org_with_key(&ms, "other").await;
    let connector = Connector::start(connector_config(&server.url(), &data, query_addr, Some(&good))).expect("start");
    let state = wait_state(&connector, "connected", |s| s.connected).await;
    assert_eq!(state.refused, None);
}
