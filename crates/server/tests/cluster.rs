//! A vizier of many processes: one query broker, two Kelvins and four PEMs (each serving rows loaded into
//! its own store; the first also tracing real traffic when the tests run as root, the others `--no-trace`),
//! driven through the broker's query API by `px` and a gRPC client.
//!
//! Checks that a groupby over every PEM is exactly the merged answer, that `px.GetAgentStatus()` on the
//! broker lists every agent, that a lost PEM (killed, or stopped so it never answers) leaves a partial
//! answer with a warning naming it, in bounded time, that `px` prints that warning and exits 0, that a
//! caller without the vizier's token is refused on every link, that PEMs ship partial aggregates (bytes
//! moved against the raw rows' Arrow size), that a client leaving cancels the work on every PEM, and that
//! the agent configuration (`loupe vizier config set`) reaches running PEMs and applies without a restart, and
//! that a cron run's results are kept once for the cluster, in the broker's history, across its restart.
//! Owns only these tests; queries over loaded rows filter on their paths (`/k…`), since a tracing PEM
//! also sees the host's other traffic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type};
use arrow::record_batch::RecordBatch;
use loupe_proto::clusterpb::agent_service_client::AgentServiceClient;
use loupe_proto::clusterpb::broker_service_client::BrokerServiceClient;
use loupe_proto::clusterpb::{AgentKind, RegisterRequest, RunStreamsRequest};
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::{ExecuteScriptRequest, QueryExecutionStats, execute_script_response};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};

use crate::common::{Guard, free_port, loupe_bin, px_bin, temp_dir, wait_for_port};

const TOKEN: &str = "cluster-test-token-0123456789abcdef";

/// Rows of one PEM: `n` requests over `keys` paths, latencies from a seeded generator.
fn rows(seed: u64, n: usize, keys: u64) -> Vec<HttpEventRow> {
    let now = loupe_common_now();
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            HttpEventRow {
                time_ns: now - 60_000_000_000 + i as i64,
                req_path: format!("/k{}", x % keys),
                req_method: "GET".into(),
                resp_status: 200,
                latency_ns: (x % 1000) as i64 * 1000,
                ..HttpEventRow::default()
            }
        })
        .collect()
}

fn loupe_common_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as i64
}

/// Writes `rows` as an Arrow IPC stream file, in batches of 8 Ki rows (so that a smaller table budget has whole
/// batches to evict); returns its size.
fn write_ipc(path: &Path, rows: &[HttpEventRow]) -> u64 {
    let file = std::fs::File::create(path).expect("create ipc file");
    let mut writer: Option<arrow::ipc::writer::StreamWriter<std::io::BufWriter<std::fs::File>>> = None;
    let mut file = Some(std::io::BufWriter::new(file));
    for chunk in rows.chunks(1 << 13) {
        let mut b = HttpEventsBuilder::new();
        for r in chunk {
            b.append(r);
        }
        let batch = b.finish().expect("batch");
        let w = writer.get_or_insert_with(|| {
            arrow::ipc::writer::StreamWriter::try_new(file.take().expect("once"), &batch.schema()).expect("writer")
        });
        w.write(&batch).expect("write");
    }
    writer.expect("some rows").finish().expect("finish");
    std::fs::metadata(path).expect("size").len()
}

struct Node {
    guard: Guard,
    port: u16,
    /// Its operational listener (/healthz, /readyz, /metrics).
    metrics: u16,
}

fn spawn(args: &[String], log: &Path) -> Guard {
    let log = std::fs::File::create(log).expect("log file");
    Guard(
        Command::new(loupe_bin())
            .args(args)
            .env("LOUPE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn loupe"),
    )
}

struct Cluster {
    dir: PathBuf,
    broker: Node,
    /// How the broker was started (to start it again).
    broker_args: Vec<String>,
    kelvins: Vec<Node>,
    pems: Vec<Node>,
}

impl Cluster {
    /// A broker, `kelvins` Kelvins and one PEM per entry of `loads` (its rows), all registered.
    /// With `trace_first`, the first PEM also traces this host's traffic.
    fn start(
        tag: &str,
        kelvins: usize,
        loads: &[Vec<HttpEventRow>],
        query_timeout: &str,
        trace_first: bool,
    ) -> Cluster {
        let dir = temp_dir(tag);
        let token = dir.join("token");
        std::fs::write(&token, TOKEN).expect("token");
        let tok = || vec!["--query-token-file".to_string(), token.display().to_string()];
        let (port, metrics) = (free_port(), free_port());
        let mut args: Vec<String> = ["vizier", "broker", "--listen"].map(String::from).to_vec();
        args.extend([format!("127.0.0.1:{port}"), "--heartbeat".into(), "300ms".into()]);
        args.extend(["--query-timeout".into(), query_timeout.into()]);
        args.extend(["--metrics-listen".into(), format!("127.0.0.1:{metrics}")]);
        args.extend(["--data-dir".into(), dir.join("broker").display().to_string()]);
        args.extend(["--history-dir".into(), dir.join("broker-history").display().to_string()]);
        args.extend(["--history-sweep-interval".into(), "1s".into()]);
        args.extend(tok());
        let broker = Node { guard: spawn(&args, &dir.join("broker.log")), port, metrics };
        let broker_args = args;
        wait_for_port(port, "the broker");
        let broker_addr = format!("127.0.0.1:{port}");
        let kelvins = (0..kelvins)
            .map(|i| {
                let (port, metrics) = (free_port(), free_port());
                let mut args: Vec<String> = ["vizier", "kelvin", "--broker"].map(String::from).to_vec();
                args.extend([broker_addr.clone(), "--listen".into(), format!("127.0.0.1:{port}")]);
                args.extend(["--metrics-listen".into(), format!("127.0.0.1:{metrics}")]);
                args.extend(tok());
                Node { guard: spawn(&args, &dir.join(format!("kelvin{i}.log"))), port, metrics }
            })
            .collect();
        let pems: Vec<Node> = loads
            .iter()
            .enumerate()
            .map(|(i, rows)| {
                let file = dir.join(format!("pem{i}.arrow"));
                write_ipc(&file, rows);
                let (port, metrics) = (free_port(), free_port());
                let mut args: Vec<String> = ["vizier", "pem", "--broker"].map(String::from).to_vec();
                args.extend([broker_addr.clone(), "--listen".into(), format!("127.0.0.1:{port}")]);
                if !(trace_first && i == 0) {
                    args.push("--no-trace".into());
                }
                args.extend(["--metrics-listen".into(), format!("127.0.0.1:{metrics}")]);
                args.extend(["--memory-budget".into(), "1024".into(), "--http-events-mb".into(), "700".into()]);
                args.extend(["--load".into(), format!("http_events={}", file.display())]);
                args.extend(["--data-dir".into(), dir.join(format!("pem{i}")).display().to_string()]);
                args.extend(tok());
                Node { guard: spawn(&args, &dir.join(format!("pem{i}.log"))), port, metrics }
            })
            .collect();
        for p in &pems {
            wait_for_port(p.port, "a PEM");
        }
        let cluster = Cluster { dir, broker, broker_args, kelvins, pems };
        cluster.wait_registered();
        for i in 0..cluster.pems.len() {
            let _ = std::fs::remove_file(cluster.dir.join(format!("pem{i}.arrow")));
        }
        cluster
    }

    /// Waits until every agent is registered (they heartbeat every 300 ms).
    fn wait_registered(&self) {
        let want = self.kelvins.len() + self.pems.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (tables, _, _) = self.query(AGENTS);
            if tables.get("agents").map_or(0, |b| b.iter().map(RecordBatch::num_rows).sum::<usize>()) == want {
                break;
            }
            assert!(Instant::now() < deadline, "agents did not register; logs in {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the broker and starts it again on the same port and data, waiting for the agents to come back.
    fn restart_broker(&mut self) {
        drop(std::mem::replace(&mut self.broker.guard, Guard(Command::new("true").spawn().expect("true"))));
        self.broker.guard = spawn(&self.broker_args, &self.dir.join("broker-restarted.log"));
        wait_for_port(self.broker.port, "the restarted broker");
        self.wait_registered();
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.broker.port)
    }

    /// Runs `script` on the broker: tables by name, the stats, and an error status' message if any.
    fn query(&self, script: &str) -> (BTreeMap<String, Vec<RecordBatch>>, Option<QueryExecutionStats>, Option<String>) {
        run(self.addr(), Some(TOKEN), script)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn with_token<T>(msg: T, token: Option<&str>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(t) = token {
        req.metadata_mut().insert("loupe-vizier-token", t.parse().expect("ascii"));
    }
    req
}

fn run(
    addr: String,
    token: Option<&str>,
    script: &str,
) -> (BTreeMap<String, Vec<RecordBatch>>, Option<QueryExecutionStats>, Option<String>) {
    run_with(addr, token, script, &[])
}

/// [`run`], sending binary metadata as the connector does (`EXPORT_DEFAULT`, `CRON_SCRIPT`).
fn run_with(
    addr: String,
    token: Option<&str>,
    script: &str,
    metadata: &[(&'static str, Vec<u8>)],
) -> (BTreeMap<String, Vec<RecordBatch>>, Option<QueryExecutionStats>, Option<String>) {
    run_at(addr, token, script, metadata, 0)
}

/// [`run_with`] as if run at `now_ns` (0: now).
fn run_at(
    addr: String,
    token: Option<&str>,
    script: &str,
    metadata: &[(&'static str, Vec<u8>)],
    now_ns: i64,
) -> (BTreeMap<String, Vec<RecordBatch>>, Option<QueryExecutionStats>, Option<String>) {
    runtime().block_on(async {
        let mut client = VizierServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("connect")
            .max_decoding_message_size(64 << 20);
        let req = ExecuteScriptRequest { query_str: script.into(), now_ns, ..Default::default() };
        let mut req = with_token(req, token);
        for (key, bytes) in metadata {
            req.metadata_mut().insert_bin(*key, tonic::metadata::MetadataValue::from_bytes(bytes));
        }
        let mut stream = match client.execute_script(req).await {
            Ok(s) => s.into_inner(),
            Err(s) => return (BTreeMap::new(), None, Some(format!("{:?}: {}", s.code(), s.message()))),
        };
        let (mut names, mut tables, mut stats, mut error) = (BTreeMap::new(), BTreeMap::new(), None, None);
        while let Some(m) = stream.message().await.expect("stream") {
            match m.result {
                Some(execute_script_response::Result::MetaData(md)) => {
                    tables.insert(md.name.clone(), Vec::new());
                    names.insert(md.id, md.name);
                }
                Some(execute_script_response::Result::Data(d)) if !d.arrow_batch.is_empty() => {
                    let name = names.get(&d.table_id).expect("announced").clone();
                    let batches = loupe_proto::arrow_ipc::decode_batches(&d.arrow_batch).expect("decodes");
                    tables.entry(name).or_insert_with(Vec::new).extend(batches);
                }
                Some(execute_script_response::Result::Stats(s)) => stats = Some(s),
                Some(execute_script_response::Result::Status(s)) => error = Some(s.message),
                _ => {}
            }
        }
        (tables, stats, error)
    })
}

const AGENTS: &str = "import px\npx.display(px.GetAgentStatus(), 'agents')\n";

const GROUPBY: &str = "import px
df = px.DataFrame('http_events', start_time='-10m')
df = df[px.contains(df.req_path, '/k')]
px.display(df.groupby('req_path').agg(n=('latency', px.count), total=('latency', px.sum),
    lo=('latency', px.min), hi=('latency', px.max), avg=('latency', px.mean)), 'by_path')
px.display(df.agg(n=('latency', px.count)), 'total')
";

/// The expected `by_path`: path → (count, sum, min, max).
fn expected(all: &[&HttpEventRow]) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let mut m: BTreeMap<String, (i64, i64, i64, i64)> = BTreeMap::new();
    for r in all {
        let e = m.entry(r.req_path.clone()).or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += 1;
        e.1 += r.latency_ns;
        e.2 = e.2.min(r.latency_ns);
        e.3 = e.3.max(r.latency_ns);
    }
    m
}

/// `by_path` as path → (count, sum, min, max), checking each mean against sum / count.
fn by_path(batches: &[RecordBatch]) -> BTreeMap<String, (i64, i64, i64, i64)> {
    let mut m = BTreeMap::new();
    for b in batches {
        let col = |n: &str| b.column_by_name(n).unwrap_or_else(|| panic!("column {n}")).clone();
        let (path, n, total, lo, hi, avg) = (col("req_path"), col("n"), col("total"), col("lo"), col("hi"), col("avg"));
        for i in 0..b.num_rows() {
            let (n, total) = (n.as_primitive::<Int64Type>().value(i), total.as_primitive::<Int64Type>().value(i));
            assert_eq!(avg.as_primitive::<Float64Type>().value(i), total as f64 / n as f64);
            m.insert(
                path.as_string::<i32>().value(i).to_string(),
                (n, total, lo.as_primitive::<Int64Type>().value(i), hi.as_primitive::<Int64Type>().value(i)),
            );
        }
    }
    m
}

fn px(addr: &str, token: &str, script_file: &Path) -> std::process::Output {
    let config = temp_dir(&format!("cluster-px-{}", addr.replace(':', "_")));
    Command::new(px_bin())
        .args(["run", "-f"])
        .arg(script_file)
        .args(["--output", "json"])
        .env("PX_CLOUD_ADDR", addr)
        .env("PX_CONFIG_DIR", &config)
        .env("PX_VIZIER_TOKEN", token)
        .env_remove("PX_CA_CERT")
        .output()
        .expect("run px")
}

#[test]
fn a_broker_two_kelvins_and_four_pems_answer_as_one_store_and_name_lost_agents() {
    let loads: Vec<Vec<HttpEventRow>> = (0..4).map(|i| rows(17 + i, 3000 + 500 * i as usize, 40)).collect();
    let traced = crate::e2e::can_trace();
    let mut cluster = Cluster::start("cluster-main", 2, &loads, "4s", traced);
    if traced {
        // Real traffic traced by the first PEM reaches the broker's answers too.
        let dir = temp_dir("cluster-nginx");
        let port = free_port();
        let _nginx = crate::common::start_nginx(&dir, port, "", "location / { return 200 'ok'; }");
        for _ in 0..5 {
            let out =
                Command::new("curl").args(["-sS", &format!("http://127.0.0.1:{port}/traced")]).output().expect("curl");
            assert!(out.status.success());
        }
        let script = format!(
            "import px\ndf = px.DataFrame('http_events', start_time='-5m')\n\
             df = df[(df.req_path == '/traced') & ((df.local_port == {port}) | (df.remote_port == {port}))]\n\
             px.display(df.agg(n=('latency', px.count)), 'traced')\n"
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (tables, _, _) = cluster.query(&script);
            let n = tables
                .get("traced")
                .and_then(|b| b.first())
                .map_or(0, |b| b.column_by_name("n").expect("n").as_primitive::<Int64Type>().value(0));
            if n >= 5 {
                break;
            }
            assert!(Instant::now() < deadline, "traced requests did not reach the broker's answer ({n} rows)");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    // Every agent, with its kind: Kelvins only when asked for.
    let (tables, _, error) = cluster.query(AGENTS);
    assert_eq!(error, None);
    let agents = &tables["agents"];
    let addresses: Vec<String> = agents
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("ip_address").expect("ip_address").as_string::<i32>().clone();
            (0..c.len()).map(move |i| c.value(i).to_string())
        })
        .collect();
    for node in cluster.pems.iter().chain(&cluster.kelvins) {
        assert!(addresses.contains(&format!("127.0.0.1:{}", node.port)), "{addresses:?} lacks {}", node.port);
    }
    let (pems_only, _, _) = cluster.query("import px\npx.display(px.GetAgentStatus(include_kelvin=False), 'agents')\n");
    assert_eq!(pems_only["agents"].iter().map(RecordBatch::num_rows).sum::<usize>(), 4);

    // The merged answer is exactly that of all rows together.
    let all: Vec<&HttpEventRow> = loads.iter().flatten().collect();
    let (tables, stats, error) = cluster.query(GROUPBY);
    assert_eq!(error, None);
    assert_eq!(by_path(&tables["by_path"]), expected(&all));
    let total = tables["total"][0].column_by_name("n").expect("n").as_primitive::<Int64Type>().value(0);
    assert_eq!(total, all.len() as i64);
    let stats = stats.expect("stats");
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    assert!(stats.bytes_moved > 0);

    // px prints the same tables, and nothing on stderr.
    let script = cluster.dir.join("groupby.pxl");
    std::fs::write(&script, GROUPBY).expect("script");
    let out = px(&cluster.addr(), TOKEN, &script);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/k1"));

    // A PEM stopped (its socket open, never answering): the answer comes within the deadline, without its rows.
    let stopped = cluster.pems.remove(3);
    // SAFETY: signalling our own child, which the guard still owns and will kill.
    unsafe { libc::kill(stopped.guard.0.id() as i32, libc::SIGSTOP) };
    let started = Instant::now();
    let (tables, stats, error) = cluster.query(GROUPBY);
    let took = started.elapsed();
    assert_eq!(error, None);
    assert!(took < Duration::from_secs(12), "a stopped agent held the query for {took:?}");
    let warnings = stats.expect("stats").warnings;
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains(&format!("127.0.0.1:{}", stopped.port)), "{warnings:?}");
    let rest: Vec<&HttpEventRow> = loads[..3].iter().flatten().collect();
    assert_eq!(by_path(&tables["by_path"]), expected(&rest));

    // A PEM killed: px shows the other agents' rows, names the lost one on stderr, and exits 0.
    let killed = cluster.pems.remove(2);
    drop(killed.guard);
    drop(stopped);
    let out = px(&cluster.addr(), TOKEN, &script);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: partial result") && stderr.contains(&format!("127.0.0.1:{}", killed.port)),
        "{stderr}"
    );
    let (tables, _, _) = cluster.query(GROUPBY);
    let rest: Vec<&HttpEventRow> = loads[..2].iter().flatten().collect();
    assert_eq!(by_path(&tables["by_path"]), expected(&rest));

    // Once its heartbeats stop, a dead agent leaves the query set: it is listed as unresponsive.
    std::thread::sleep(Duration::from_millis(1500));
    let (tables, _, _) = cluster.query(
        "import px\ndf = px.GetAgentStatus()\npx.display(df[df.agent_state == 'AGENT_STATE_HEALTHY'], 'agents')\n",
    );
    assert_eq!(tables["agents"].iter().map(RecordBatch::num_rows).sum::<usize>(), 4);
}

#[test]
fn every_link_refuses_a_caller_without_the_vizier_token() {
    let loads = vec![rows(5, 100, 5)];
    let cluster = Cluster::start("cluster-auth", 1, &loads, "10s", false);
    let (_, _, error) = run(cluster.addr(), Some("wrong-token-0123456789abcdef"), AGENTS);
    assert!(error.expect("refused").contains("Unauthenticated"));
    let (_, _, error) = run(cluster.addr(), None, AGENTS);
    assert!(error.expect("refused").contains("Unauthenticated"));
    runtime().block_on(async {
        // An agent that cannot prove itself does not join.
        let mut broker = BrokerServiceClient::connect(format!("http://{}", cluster.addr())).await.expect("connect");
        let me = RegisterRequest {
            agent_id: "intruder".into(),
            kind: AgentKind::Pem as i32,
            address: "127.0.0.1:1".into(),
            hostname: "x".into(),
            create_time_ns: 0,
            ..RegisterRequest::default()
        };
        let refused =
            broker.register(with_token(me.clone(), Some("not-the-token-0123456789"))).await.expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        // Nor can anyone pull a PEM's rows or ask a Kelvin to merge without it.
        let mut pem =
            AgentServiceClient::connect(format!("http://127.0.0.1:{}", cluster.pems[0].port)).await.expect("pem");
        let pull = RunStreamsRequest {
            query_id: "x".into(),
            plan_json: b"{}".to_vec(),
            stream_ids: vec![0],
            timeout_ms: 1000,
        };
        assert_eq!(
            pem.run_streams(with_token(pull, None)).await.expect_err("refused").code(),
            tonic::Code::Unauthenticated
        );
        let mut kelvin =
            AgentServiceClient::connect(format!("http://127.0.0.1:{}", cluster.kelvins[0].port)).await.expect("kelvin");
        let merge = loupe_proto::clusterpb::MergeRequest::default();
        let refused = kelvin.merge(with_token(merge, Some("nope-nope-nope-nope-nope"))).await.expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    });
    let (tables, _, _) = cluster.query(AGENTS);
    assert_eq!(tables["agents"].iter().map(RecordBatch::num_rows).sum::<usize>(), 2, "the intruder is not listed");
}

#[test]
fn pems_ship_partial_aggregates_not_rows() {
    // Two PEMs of 1 M rows each, 50 keys: what crosses the wire is a few states per key per PEM.
    const N: usize = 1_000_000;
    let loads: Vec<Vec<HttpEventRow>> = (0..2).map(|i| rows(1000 + i, N, 50)).collect();
    let dir = temp_dir("cluster-raw");
    let raw: u64 = loads.iter().enumerate().map(|(i, r)| write_ipc(&dir.join(format!("{i}.arrow")), r)).sum();
    let _ = std::fs::remove_dir_all(&dir);
    let cluster = Cluster::start("cluster-pushdown", 1, &loads, "60s", false);
    let (tables, stats, error) = cluster.query(
        "import px
df = px.DataFrame('http_events', start_time='-10m')
px.display(df.groupby('req_path').agg(n=('latency', px.count), avg=('latency', px.mean), p99=('latency', px.p99)), 'g')
",
    );
    assert_eq!(error, None);
    let g = &tables["g"];
    assert_eq!(g.iter().map(RecordBatch::num_rows).sum::<usize>(), 50);
    let counted: i64 = g
        .iter()
        .map(|b| arrow::compute::sum(b.column_by_name("n").expect("n").as_primitive::<Int64Type>()).unwrap_or(0))
        .sum();
    assert_eq!(counted, 2 * N as i64);
    let moved = stats.expect("stats").bytes_moved as u64;
    println!("pushdown: {moved} bytes moved for {raw} bytes of raw rows ({:.4} %)", moved as f64 * 100.0 / raw as f64);
    assert!(moved > 0 && moved * 100 <= raw, "{moved} bytes moved, raw rows are {raw} bytes");

    // A client that leaves cancels the query on every PEM (a groupby by a million keys, seconds of work each).
    runtime().block_on(async {
        let mut client = VizierServiceClient::connect(format!("http://{}", cluster.addr())).await.expect("connect");
        let script = "import px\ndf = px.DataFrame('http_events', start_time='-10m')\n\
                      px.display(df.groupby('time_').agg(p=('latency', px.p99)))\n";
        let req = ExecuteScriptRequest { query_str: script.into(), ..Default::default() };
        let stream = client.execute_script(with_token(req, Some(TOKEN))).await.expect("starts").into_inner();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        drop(stream);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..cluster.pems.len() {
        let log = cluster.dir.join(format!("pem{i}.log"));
        while !std::fs::read_to_string(&log).unwrap_or_default().contains("streams cancelled") {
            assert!(Instant::now() < deadline, "PEM {i} kept working for a client that left: {}", log.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Each agent's `(kind, config_version)` by port, from `px.GetAgentStatus()` on the broker.
fn agent_configs(cluster: &Cluster) -> BTreeMap<String, (String, i64)> {
    let (tables, _, error) = cluster.query(AGENTS);
    assert_eq!(error, None);
    let mut m = BTreeMap::new();
    for b in &tables["agents"] {
        let (addr, kind, version) = (
            b.column_by_name("ip_address").expect("ip_address").as_string::<i32>().clone(),
            b.column_by_name("kind").expect("kind").as_string::<i32>().clone(),
            b.column_by_name("config_version").expect("config_version").as_primitive::<Int64Type>().clone(),
        );
        for i in 0..b.num_rows() {
            m.insert(addr.value(i).to_string(), (kind.value(i).to_string(), version.value(i)));
        }
    }
    m
}

/// `loupe vizier config ARGS` against the cluster's broker: exit status success, stdout, stderr.
fn config_cmd(cluster: &Cluster, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(loupe_bin())
        .args(["vizier", "config"])
        .args(args)
        .args(["--broker", &cluster.addr(), "--query-token-file"])
        .arg(cluster.dir.join("token"))
        .output()
        .expect("run loupe vizier config");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// Waits until every live agent reports `version` applied.
fn wait_applied(cluster: &Cluster, version: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let agents = agent_configs(cluster);
        if agents.values().all(|(_, v)| *v == version) {
            return;
        }
        assert!(Instant::now() < deadline, "version {version} not applied everywhere: {agents:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Rows of `http_events` whose path is `path` (or starts with `/k` for `None`), over every PEM.
fn count_rows(cluster: &Cluster, filter: &str) -> i64 {
    let script = format!(
        "import px\ndf = px.DataFrame('http_events', start_time='-10m')\ndf = df[{filter}]\n\
         px.display(df.agg(n=('latency', px.count)), 'n')\n"
    );
    let (tables, _, error) = cluster.query(&script);
    assert_eq!(error, None);
    tables
        .get("n")
        .and_then(|b| b.first())
        .map_or(0, |b| b.column_by_name("n").expect("n").as_primitive::<Int64Type>().value(0))
}

#[test]
fn the_agent_configuration_applies_on_running_pems_without_a_restart() {
    // 40,000 rows a PEM: about 5 MiB of Arrow, in batches of 8 Ki rows.
    let loads: Vec<Vec<HttpEventRow>> = (0..2).map(|i| rows(91 + i, 40_000, 50)).collect();
    let traced = crate::e2e::can_trace();
    let mut cluster = Cluster::start("cluster-config", 1, &loads, "10s", traced);
    let loaded = "px.contains(df.req_path, '/k')";
    assert_eq!(count_rows(&cluster, loaded), 80_000);
    let agents = agent_configs(&cluster);
    let kinds: Vec<&str> = agents.values().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        (kinds.iter().filter(|k| **k == "PEM").count(), kinds.iter().filter(|k| **k == "KELVIN").count()),
        (2, 1)
    );
    assert!(agents.values().all(|(_, v)| *v == 0), "{agents:?}");

    // Bad changes are refused by the broker, before any agent sees them.
    let (ok, _, err) = config_cmd(&cluster, &["set", "--table-budget", "no_such_table=4"]);
    assert!(!ok && err.contains("unknown table `no_such_table`"), "{err}");
    let (ok, _, err) = config_cmd(&cluster, &["set", "--protocol", "gopher=off"]);
    assert!(!ok && err.contains("unknown protocol `gopher`"), "{err}");

    // A smaller http_events budget (and HTTP parsing off): every PEM applies it live and evicts its oldest rows.
    let (ok, out, err) = config_cmd(&cluster, &["set", "--table-budget", "http_events=1", "--protocol", "http=off"]);
    assert!(ok, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(printed["version"], 1, "{out}");
    assert_eq!(printed["table_budget_mib"]["http_events"], 1.0, "{out}");
    assert_eq!(printed["protocols"]["http"], "off", "{out}");
    wait_applied(&cluster, 1);
    let kept = count_rows(&cluster, loaded);
    assert!(kept > 0 && kept < 80_000 / 2, "{kept} of 80,000 rows kept under a 1 MiB budget per PEM");
    for pem in &mut cluster.pems {
        assert!(pem.guard.0.try_wait().expect("status").is_none(), "a PEM exited");
    }
    let (ok, out, _) = config_cmd(&cluster, &["get"]);
    assert!(ok && out.contains("\"version\": 1"), "{out}");
    // The operational listeners say the same: every agent on version 1, none behind, the Kelvin ready.
    let broker_metrics = http_get(cluster.broker.metrics, "/metrics");
    assert!(broker_metrics.contains("loupe_agent_config_version 1"), "{broker_metrics}");
    assert!(broker_metrics.contains("loupe_agents_config_pending 0"), "{broker_metrics}");
    assert!(
        broker_metrics.contains("loupe_broker_agents{kind=\"PEM\",state=\"AGENT_STATE_HEALTHY\"} 2"),
        "{broker_metrics}"
    );
    for pem in &cluster.pems {
        assert!(http_get(pem.metrics, "/metrics").contains("loupe_agent_config_version 1"));
    }
    let kelvin = &cluster.kelvins[0];
    assert!(http_get(kelvin.metrics, "/readyz").starts_with("ok"));
    assert!(http_get(kelvin.metrics, "/metrics").contains("loupe_broker_registered 1"));
    assert!(http_get(cluster.broker.metrics, "/healthz").starts_with("ok"));

    // The cloud's history retention (`px retention`, handed over by the connector): only with the token, kept
    // by the broker as the next version, applied by every PEM, and kept by an operator's later change.
    let retention = |token: Option<&str>| {
        use loupe_proto::clusterpb::{
            RetentionLimits, SetHistoryRetentionRequest, vizier_config_service_client::VizierConfigServiceClient,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", cluster.addr()))
                .expect("uri")
                .connect()
                .await
                .expect("connect");
            let tables = [("http_events".to_string(), RetentionLimits { max_age_s: 7200, max_bytes: 64 << 20 })];
            let mut request = tonic::Request::new(SetHistoryRetentionRequest { tables: tables.into() });
            if let Some(t) = token {
                request.metadata_mut().insert(loupe_proto::headers::VIZIER_TOKEN, t.parse().expect("ascii"));
            }
            VizierConfigServiceClient::new(channel).set_history_retention(request).await.map(|_| ())
        })
    };
    let refused = retention(None).expect_err("no token");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let token = std::fs::read_to_string(cluster.dir.join("token")).expect("token");
    retention(Some(token.trim())).expect("taken");
    let (ok, out, _) = config_cmd(&cluster, &["get"]);
    let printed: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(ok && printed["version"] == 2, "{out}");
    assert_eq!(printed["history_retention"]["http_events"]["max_age_s"], 7200, "{out}");
    wait_applied(&cluster, 2);
    retention(Some(token.trim())).expect("taken again");
    let (_, out, _) = config_cmd(&cluster, &["get"]);
    assert!(out.contains("\"version\": 2"), "the same retention again is no new version: {out}");

    if traced {
        // HTTP off on the tracing PEM: requests made now leave no rows; back on, they do, with no restart between.
        let dir = temp_dir("cluster-config-nginx");
        let port = free_port();
        let _nginx = crate::common::start_nginx(&dir, port, "", "location / { return 200 'ok'; }");
        let curl = |path: &str| {
            for _ in 0..5 {
                let url = format!("http://127.0.0.1:{port}{path}");
                assert!(Command::new("curl").args(["-sS", &url]).output().expect("curl").status.success());
            }
        };
        curl("/while-off");
        let (ok, out, err) = config_cmd(&cluster, &["set", "--protocol", "http=on"]);
        assert!(ok, "{err}");
        let printed: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(
            printed["history_retention"]["http_events"]["max_age_s"], 7200,
            "an operator's change keeps it: {out}"
        );
        wait_applied(&cluster, 3);
        curl("/while-on");
        let deadline = Instant::now() + Duration::from_secs(30);
        while count_rows(&cluster, "df.req_path == '/while-on'") < 5 {
            assert!(Instant::now() < deadline, "HTTP turned back on, yet no rows for new requests");
            std::thread::sleep(Duration::from_millis(500));
        }
        assert_eq!(count_rows(&cluster, "df.req_path == '/while-off'"), 0, "HTTP was off, yet its requests have rows");
        for pem in &mut cluster.pems {
            assert!(pem.guard.0.try_wait().expect("status").is_none(), "a PEM exited");
        }
    }
}

/// The body of `GET path` on a local port (an operational listener: plain HTTP/1.1, no credential).
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// `px.export` over the cluster: the Kelvins that merge the exported outputs send them, to the endpoint the
/// script names or to the caller's default (the org's, which the connector sends); the client gets only the
/// displayed outputs; an endpoint nobody listens on fails the query with the reason.
#[test]
fn px_export_through_the_broker_sends_the_merged_rows_from_the_kelvins() {
    use loupe_export::otlp::common::v1::any_value;
    use loupe_export::otlp::metrics::v1::{metric, number_data_point};
    use prost::Message as _;

    let loads: Vec<Vec<HttpEventRow>> = (0..2).map(|i| rows(71 + i, 2000, 12)).collect();
    let cluster = Cluster::start("cluster-export", 2, &loads, "10s", false);
    let receiver = crate::otel_export::Receiver::default();
    let (_rt, receiver_port) = crate::otel_export::start_receiver(receiver.clone());
    let script = |endpoint: &str| {
        format!(
            "import px
df = px.DataFrame('http_events', start_time='-10m')
df = df[px.contains(df.req_path, '/k')]
df = df.groupby('req_path').agg(n=('latency', px.count), time_=('time_', px.max))
px.display(df, 'by_path')
px.export(df, px.otel.Data(resource={{'service.name': df.req_path}},
  data=[px.otel.metric.Gauge(name='path.requests', value=df.n)]{endpoint}))
"
        )
    };
    let all: Vec<&HttpEventRow> = loads.iter().flatten().collect();
    let want: BTreeMap<String, i64> = expected(&all).into_iter().map(|(k, v)| (k, v.0)).collect();
    let sent = |r: &crate::otel_export::Receiver| -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for req in r.metrics.lock().expect("lock").iter() {
            for rm in &req.resource_metrics {
                let service = match rm.resource.as_ref().and_then(|r| r.attributes[0].value.clone()) {
                    Some(v) => match v.value {
                        Some(any_value::Value::StringValue(s)) => s,
                        other => panic!("service.name: {other:?}"),
                    },
                    None => panic!("no resource"),
                };
                let metric = &rm.scope_metrics[0].metrics[0];
                assert_eq!(metric.name, "path.requests");
                let Some(metric::Data::Gauge(g)) = &metric.data else { panic!("a gauge: {metric:?}") };
                for p in &g.data_points {
                    let Some(number_data_point::Value::AsInt(v)) = p.value else { panic!("an integer: {p:?}") };
                    assert!(p.time_unix_nano > 0);
                    *m.entry(service.clone()).or_insert(0) += v;
                }
            }
        }
        m
    };

    // The endpoint named in the script.
    let named = format!(",\n  endpoint=px.otel.Endpoint(url='127.0.0.1:{receiver_port}', insecure=True)");
    let (tables, stats, error) = cluster.query(&script(&named));
    assert_eq!(error, None, "logs in {}", cluster.dir.display());
    assert!(stats.is_some());
    assert_eq!(tables.keys().collect::<Vec<_>>(), ["by_path"], "the exported output is not sent to the client");
    let shown: BTreeMap<String, i64> = by_path_counts(&tables["by_path"]);
    assert_eq!(shown, want);
    assert_eq!(sent(&receiver), want, "the exported points are the merged rows, once each");

    // No endpoint in the script: the caller's default, with its header.
    receiver.metrics.lock().expect("lock").clear();
    receiver.keys.lock().expect("lock").clear();
    let default = loupe_proto::vzconnpb::ExportDefault {
        url: format!("127.0.0.1:{receiver_port}"),
        headers: vec![loupe_proto::vzconnpb::ExportHeader { name: "x-api-key".into(), value: "org-key".into() }],
        insecure: true,
        timeout_s: 5,
    };
    let (_, _, error) = run_with(
        cluster.addr(),
        Some(TOKEN),
        &script(""),
        &[(loupe_proto::headers::EXPORT_DEFAULT, default.encode_to_vec())],
    );
    assert_eq!(error, None);
    assert_eq!(sent(&receiver), want);
    let keys = receiver.keys.lock().expect("lock").clone();
    assert!(!keys.is_empty() && keys.iter().all(|k| k == "org-key"), "the default's header is sent: {keys:?}");
    // ...and none at all: the query fails, saying so.
    let (_, _, error) = cluster.query(&script(""));
    assert!(error.as_deref().is_some_and(|e| e.contains("endpoint")), "{error:?}");

    // Nobody listening: the query fails and names the endpoint.
    let dead = free_port();
    let (_, _, error) =
        cluster.query(&script(&format!(",\n  endpoint=px.otel.Endpoint(url='127.0.0.1:{dead}', insecure=True)")));
    assert!(error.as_deref().is_some_and(|e| e.contains(&dead.to_string())), "{error:?}");
}

/// `by_path` as path → count.
fn by_path_counts(batches: &[RecordBatch]) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for b in batches {
        let (path, n) = (b.column_by_name("req_path").expect("req_path"), b.column_by_name("n").expect("n"));
        for i in 0..b.num_rows() {
            m.insert(path.as_string::<i32>().value(i).to_string(), n.as_primitive::<Int64Type>().value(i));
        }
    }
    m
}

#[test]
fn a_cron_runs_results_are_kept_once_for_the_cluster_by_the_broker_across_its_restart() {
    let loads = [rows(31, 3_000, 7), rows(32, 2_000, 7)];
    let all: Vec<&HttpEventRow> = loads.iter().flatten().collect();
    let want = expected(&all);
    let total: i64 = want.values().map(|v| v.0).sum();
    let mut cluster = Cluster::start("cron-broker", 1, &loads, "20s", false);
    // What a cron script of the cloud sends, run as the connector runs it (named by `CRON_SCRIPT`).
    let cron = "import px
df = px.DataFrame('http_events', start_time='-1h')
df = df[px.contains(df.req_path, '/k')]
px.display(df.groupby('req_path').agg(n=('latency', px.count)))
px.display(df.agg(n=('latency', px.count)), 'total')
";
    let name = (loupe_proto::headers::CRON_SCRIPT, b"Service Stats (1m)".to_vec());
    for run in 1..=2 {
        let (tables, _, error) = run_with(cluster.addr(), Some(TOKEN), cron, std::slice::from_ref(&name));
        assert_eq!(error, None, "cron run {run}; logs in {}", cluster.dir.display());
        assert_eq!(by_path_counts(&tables["output"]).len(), want.len(), "the client still gets its rows");
    }
    // Kept once for the cluster, as the broker's segments, not once per PEM or Kelvin.
    let tables_dir = cluster.dir.join("broker-history");
    for table in ["cron_service_stats_1m", "cron_service_stats_1m_total"] {
        let mut segments = Vec::new();
        let mut stack = vec![tables_dir.join(table)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    segments.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        assert_eq!(segments.len(), 2, "{table}: one segment per run: {segments:?}");
        assert!(segments.iter().all(|s| s.starts_with("broker-")), "{table}: the broker's own: {segments:?}");
    }
    let read = "import px
df = px.DataFrame('cron_service_stats_1m', start_time='-1h')
px.display(df, 'runs')
px.display(df.groupby('req_path').agg(n=('n', px.sum), runs=('n', px.count)), 'per_path')
t = px.DataFrame('cron_service_stats_1m_total', start_time='-1h')
px.display(t[t.n > 0].agg(n=('n', px.sum)), 'total')
";
    for when in ["before the broker's restart", "after it"] {
        let (tables, _, error) = cluster.query(read);
        assert_eq!(error, None, "{when}; logs in {}", cluster.dir.display());
        let runs: usize = tables["runs"].iter().map(RecordBatch::num_rows).sum();
        assert_eq!(runs, 2 * want.len(), "{when}: each run's rows once");
        let per_path = &tables["per_path"];
        let mut got = BTreeMap::new();
        for b in per_path {
            let paths = b.column_by_name("req_path").expect("req_path").as_string::<i32>();
            let n = b.column_by_name("n").expect("n").as_primitive::<Int64Type>();
            let count = b.column_by_name("runs").expect("runs").as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                got.insert(paths.value(i).to_string(), (n.value(i), count.value(i)));
            }
        }
        let want_per_path: BTreeMap<String, (i64, i64)> = want.iter().map(|(p, v)| (p.clone(), (2 * v.0, 2))).collect();
        assert_eq!(got, want_per_path, "{when}: the kept counts add up to both runs'");
        let kept_total = tables["total"][0].column_by_name("n").expect("n").as_primitive::<Int64Type>().value(0);
        assert_eq!(kept_total, 2 * total, "{when}");
        if when.starts_with("before") {
            cluster.restart_broker();
        }
    }
    // The cloud's retention reaches the broker's history too: a run from three hours ago goes at the next
    // sweep under a two-hour limit for its table; the run of now stays.
    let agents = "import px\npx.display(px.GetAgentStatus().agg(n=('agent_id', px.count)))\n";
    let name = (loupe_proto::headers::CRON_SCRIPT, b"agents".to_vec());
    let hours_ago = loupe_common_now() - 3 * 3_600_000_000_000;
    for at in [hours_ago, 0] {
        let (_, _, error) = run_at(cluster.addr(), Some(TOKEN), agents, std::slice::from_ref(&name), at);
        assert_eq!(error, None, "logs in {}", cluster.dir.display());
    }
    let kept_runs = |cluster: &Cluster| {
        let (tables, _, error) =
            cluster.query("import px\npx.display(px.DataFrame('cron_agents', start_time='-1d'), 'runs')\n");
        assert_eq!(error, None);
        tables["runs"].iter().map(RecordBatch::num_rows).sum::<usize>()
    };
    assert_eq!(kept_runs(&cluster), 2, "both runs kept under the default 7 days");
    runtime().block_on(async {
        use loupe_proto::clusterpb::vizier_config_service_client::VizierConfigServiceClient;
        let mut client =
            VizierConfigServiceClient::connect(format!("http://{}", cluster.addr())).await.expect("connect");
        let limits = loupe_proto::clusterpb::RetentionLimits { max_age_s: 7200, max_bytes: 1 << 30 };
        let tables = [("cron_agents".to_string(), limits)].into();
        let req = with_token(loupe_proto::clusterpb::SetHistoryRetentionRequest { tables }, Some(TOKEN));
        client.set_history_retention(req).await.expect("the broker takes a cron table's retention");
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while kept_runs(&cluster) != 1 {
        assert!(Instant::now() < deadline, "the old run was not swept; logs in {}", cluster.dir.display());
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(kept_runs(&cluster), 1, "the run of now stays");
}
