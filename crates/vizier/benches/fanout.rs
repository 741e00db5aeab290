//! Benchmark, one run: a query broker with 1,000 simulated PEMs. The broker, one Kelvin and one real PEM
//! (10,000 `http_events` rows) run in this process over loopback gRPC; 999 more agent ids register at the
//! PEM's address, so the broker plans once and the Kelvin pulls the streams of 1,000 agents, each a real
//! `RunStreams` call, then merges their partial aggregates. Prints the compile-and-split time, the whole
//! query's time, the bytes moved and the process's peak memory.

use std::time::{Duration, Instant};

use loupe_engine::ExecOptions;
use loupe_proto::clusterpb::{AgentKind, RegisterRequest};
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::{ExecuteScriptRequest, execute_script_response};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
use loupe_vizier::cluster::{Broker, KelvinConfig, broker_client, serve_broker, serve_kelvin};
use loupe_vizier::{ClusterLink, Pem, PemConfig, QueryToken};

const AGENTS: usize = 1000;
const ROWS: usize = 10_000;
const SCRIPT: &str = "import px
df = px.DataFrame('http_events', start_time='-10m')
px.display(df.groupby('req_path').agg(n=('latency', px.count), avg=('latency', px.mean), p99=('latency', px.p99)))
";

fn peak_rss_mib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()))
        })
        .map_or(0, |kb: usize| kb >> 10)
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    (l, addr)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let token = QueryToken::new("bench-token-0123456789abcdef").expect("token");
        let limits = ExecOptions { timeout: Some(Duration::from_secs(120)), ..ExecOptions::default() };
        let broker = Broker::new(limits, token.clone(), Duration::from_secs(30));
        let (l, broker_addr) = listener().await;
        tokio::spawn(serve_broker(l, broker.clone(), token.clone(), std::future::pending()));
        let (l, kelvin_addr) = listener().await;
        let kelvin = KelvinConfig {
            limits,
            token: token.clone(),
            broker: broker_addr.clone(),
            advertise: kelvin_addr,
            link: std::sync::Arc::default(),
            metadata: loupe_vizier::PemMetadata::host_only(),
        };
        tokio::spawn(serve_kelvin(l, kelvin, std::future::pending()));

        let pem = Pem::start(PemConfig { collector: None, limits, ..PemConfig::default() }).expect("pem");
        let now = loupe_common::time::now_unix_ns();
        let mut b = HttpEventsBuilder::new();
        for i in 0..ROWS {
            b.append(&HttpEventRow {
                time_ns: now - 1_000_000_000 + i as i64,
                req_path: format!("/p{}", i % 50),
                latency_ns: (i as i64 * 7919) % 1_000_000,
                ..HttpEventRow::default()
            });
        }
        pem.store().table("http_events").expect("table").append(b.finish().expect("batch")).expect("append");
        let (l, pem_addr) = listener().await;
        let link = ClusterLink { broker: broker_addr.clone(), advertise: pem_addr.clone() };
        tokio::spawn(pem.serve_in_cluster(l, token.clone(), link, std::future::pending()));
        // 999 more agents at the same address: each is pulled on its own call.
        let mut client = broker_client(&broker_addr, &token).expect("client");
        for i in 1..AGENTS {
            let me = RegisterRequest {
                agent_id: format!("simulated-{i:04}"),
                kind: AgentKind::Pem as i32,
                address: pem_addr.clone(),
                hostname: "sim".into(),
                create_time_ns: now,
                ..RegisterRequest::default()
            };
            client.register(me).await.expect("registers");
        }
        while broker.registry().live(AgentKind::Pem).len() < AGENTS
            || broker.registry().live(AgentKind::Kelvin).is_empty()
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{broker_addr}")).expect("url").connect_lazy();
        let mut query = VizierServiceClient::new(channel).max_decoding_message_size(64 << 20);
        let mut req = tonic::Request::new(ExecuteScriptRequest { query_str: SCRIPT.into(), ..Default::default() });
        req.metadata_mut().insert("loupe-vizier-token", token.expose().parse().expect("ascii"));
        let started = Instant::now();
        let mut stream = query.execute_script(req).await.expect("query").into_inner();
        let (mut rows, mut stats) = (0usize, None);
        while let Some(m) = stream.message().await.expect("stream") {
            match m.result {
                Some(execute_script_response::Result::Data(d)) if !d.arrow_batch.is_empty() => {
                    rows += d.num_rows as usize
                }
                Some(execute_script_response::Result::Stats(s)) => stats = Some(s),
                Some(execute_script_response::Result::Status(s)) => panic!("query failed: {}", s.message),
                _ => {}
            }
        }
        let took = started.elapsed();
        let stats = stats.expect("stats");
        assert_eq!(rows, 50);
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
        println!(
            "{AGENTS} agents: compile and split {:.2?}, query {took:.2?} ({} KiB moved), peak RSS {} MiB",
            Duration::from_nanos(stats.compilation_time_ns as u64),
            stats.bytes_moved >> 10,
            peak_rss_mib()
        );
    });
}
