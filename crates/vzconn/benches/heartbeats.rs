//! Load bench: N simulated viziers (default 1,000), each with its own loopback connection and bridge,
//! heartbeating every 5 s against one VZConn with its manager on a SQLite metastore and the in-process bus, for
//! a bounded time. Prints the server side's CPU (the threads of its runtime and of SQLite, not the simulated
//! viziers'), the process's RSS, and heartbeat latency from send to record written (p50, p99, max).
//! Goal: < 1 core and p99 < 100 ms.
//!
//! `cargo bench -p loupe-vzconn --bench heartbeats`; `VIZIERS`, `SECONDS` (default 30) and `INTERVAL_MS`
//! (default 5000) change the load. Owns the simulation only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_bus::InProcessBus;
use loupe_metastore::{KeyKind, NewKey};
use loupe_proto::vzconnpb::vz_conn_service_client::VzConnServiceClient;
use loupe_proto::vzconnpb::{BridgeMessage, BridgeRegister, Heartbeat, RegisterVizierRequest, VizierStatus};
use loupe_vzconn::{ManagerConfig, VizierManager, VzConn, VzConnConfig};
use prost::Message as _;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// CPU seconds (user + system) of this process's threads, split by whether the thread simulates viziers.
fn cpu_seconds() -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let (mut server, mut sim) = (0.0, 0.0);
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        let t = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
            + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
        if name.starts_with("sim-vizier") { sim += t / ticks } else { server += t / ticks }
    }
    (server, sim)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

fn main() {
    let viziers = env("VIZIERS", 1000) as usize;
    let seconds = env("SECONDS", 30);
    let interval = Duration::from_millis(env("INTERVAL_MS", 5000));
    let dir = std::env::temp_dir().join(format!("loupe-vzconn-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vzconn-server")
        .enable_all()
        .build()
        .expect("runtime");
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sim-vizier")
        .enable_all()
        .build()
        .expect("runtime");

    let (addr, key, manager) = server_rt.block_on(async {
        let ms =
            loupe_metastore::connect(&format!("sqlite://{}", dir.join("meta.db").display())).await.expect("metastore");
        let org = ms.create_org("bench").await.expect("org");
        let (key, hash) = loupe_auth::generate_key(KeyKind::Deploy).expect("key");
        ms.create_key(NewKey {
            kind: KeyKind::Deploy,
            org_id: org.id,
            user_id: None,
            description: "bench".into(),
            key_hash: hash.as_str().into(),
            prefix: "px-dep-".into(),
        })
        .await
        .expect("deploy key");
        let bus: Arc<dyn loupe_bus::Bus> = Arc::new(InProcessBus::new());
        let manager =
            VizierManager::start(Arc::clone(&ms), Arc::clone(&bus), ManagerConfig::default()).await.expect("manager");
        let mut config = VzConnConfig::new(vec![9; 32]);
        // Registrations come from one address here, and many at once.
        config.max_concurrent_registrations = 64;
        config.registration_wait = Duration::from_secs(60);
        let vzconn = VzConn::new(ms, bus, config).expect("vzconn");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(vzconn.serve(listener, std::future::pending()));
        (addr, key, manager)
    });

    let started = Instant::now();
    let connected = sim_rt.block_on(async {
        let mut tasks = Vec::new();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(viziers);
        for i in 0..viziers {
            let (key, ready) = (key.clone(), ready_tx.clone());
            tasks.push(tokio::spawn(async move { simulate(addr, key, i, viziers, interval, ready).await }));
        }
        drop(ready_tx);
        let mut n = 0;
        while n < viziers && ready_rx.recv().await.is_some() {
            n += 1;
        }
        std::mem::forget(tasks);
        n
    });
    let setup = started.elapsed();
    println!("{connected} viziers registered and bridged in {setup:.1?}");

    // One interval of warm-up drains what queued during the registration rush.
    sim_rt.block_on(async { tokio::time::sleep(interval + Duration::from_secs(1)).await });
    let (server0, sim0) = cpu_seconds();
    let recorded0 = manager.stats().recorded();
    // Measure the steady state, not the registration rush.
    manager.stats().reset_latency();
    let t0 = Instant::now();
    sim_rt.block_on(async { tokio::time::sleep(Duration::from_secs(seconds)).await });
    let wall = t0.elapsed().as_secs_f64();
    let (server1, sim1) = cpu_seconds();
    let stats = manager.stats();
    let recorded = stats.recorded() - recorded0;
    let expected = (viziers as f64 * wall / interval.as_secs_f64()) as u64;
    println!("heartbeats recorded in {wall:.1} s: {recorded} (about {expected} sent); failed {}", stats.failed());
    println!(
        "server CPU: {:.3} cores (goal < 1); simulated viziers: {:.3} cores",
        (server1 - server0) / wall,
        (sim1 - sim0) / wall
    );
    println!("RSS of the whole process (server and {viziers} simulated viziers): {:.0} MiB", rss_mib());
    let q = |q| stats.latency_quantile_ms(q).map_or("-".to_string(), |ms| format!("{ms} ms"));
    println!("heartbeat send → record written: p50 {} p99 {} (goal < 100 ms) max {}", q(0.5), q(0.99), q(1.0));
    drop(manager);
    std::mem::forget(server_rt);
    std::mem::forget(sim_rt);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One vizier: register, open a bridge, heartbeat every `interval` from a staggered start, forever.
async fn simulate(
    addr: std::net::SocketAddr,
    key: String,
    i: usize,
    total: usize,
    interval: Duration,
    ready: tokio::sync::mpsc::Sender<()>,
) {
    let mut client = VzConnServiceClient::connect(format!("http://{addr}")).await.expect("connect");
    let mut r = tonic::Request::new(RegisterVizierRequest {
        cluster_name: format!("bench-{i}"),
        cluster_uid: format!("uid-{i}"),
        version: "bench".into(),
        ..Default::default()
    });
    r.metadata_mut().insert("x-api-key", key.parse().expect("ascii"));
    let me = client.register_vizier(r).await.expect("registered").into_inner();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let register = BridgeRegister { vizier_id: me.vizier_id.clone(), ..Default::default() };
    tx.send(BridgeMessage { topic: "register".into(), session_id: String::new(), payload: register.encode_to_vec() })
        .await
        .expect("queued");
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.metadata_mut().insert("x-loupe-vizier-id", me.vizier_id.parse().expect("ascii"));
    request.metadata_mut().insert("x-loupe-vizier-credential", me.credential.parse().expect("ascii"));
    let mut down = client.bridge(request).await.expect("bridge").into_inner();
    down.message().await.expect("ack").expect("ack message");
    let _ = ready.send(()).await;
    // Spread the fleet over the interval, as real viziers started at different times are.
    tokio::time::sleep(interval.mul_f64(i as f64 / total as f64)).await;
    let mut tick = tokio::time::interval(interval);
    for seq in 0u64.. {
        tick.tick().await;
        let beat = Heartbeat {
            time_ns: loupe_common::time::now_unix_ns(),
            sequence_number: seq,
            status: VizierStatus::Healthy as i32,
            num_agents: 1,
            version: "bench".into(),
            address: "127.0.0.1:50300".into(),
            ..Default::default()
        };
        if tx
            .send(BridgeMessage { topic: "heartbeat".into(), session_id: String::new(), payload: beat.encode_to_vec() })
            .await
            .is_err()
        {
            return;
        }
    }
}
