//! End to end: HTTP/2 in cleartext and gRPC, from implementations that are not Go. `loupe up`
//! traces nginx (`listen … http2`) driven by `nghttp` and `curl --http2-prior-knowledge`, and a Python
//! `grpcio` server (gRPC's C core, Debian's `python3-grpcio`) called by a `grpcio` client, and a Rust `tonic`
//! server called by a `tonic` client (both in the test process, hyper's HTTP/2 underneath); `px run`
//! over `http_events` must return exactly the requests made, once per side, as HTTP/2 rows with
//! paths, methods, statuses, gRPC status and message from the trailers, redacted credentials,
//! latencies > 0 and addresses that fit each side's role; a PxL groupby must count the same. A gRPC
//! channel opened before the agent started is still traced: its rows are marked where the unseen
//! HPACK dynamic table hides fields, and counted, never guessed.
//!
//! Owns only this acceptance check; it must not assume it is alone on the host: its queries filter
//! by its own servers' ports.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, spawn_ready, start_nginx, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// One row as compared: (trace_role, major_version, method, path, status, resp_message).
type Row = (i64, i64, String, String, i64, String);

/// Every `http_events` row on `port`, sorted, with each row's JSON.
fn query(api_port: u16, script: &Path) -> (Vec<Row>, Vec<Value>) {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
    let mut got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            (
                int("trace_role"),
                int("major_version"),
                text("req_method"),
                text("req_path"),
                int("resp_status"),
                text("resp_message"),
            )
        })
        .collect();
    got.sort();
    (got, rows)
}

/// Polls the rows on `port` until they are `want` (or 20 s pass); returns the last rows' JSON.
fn wait_for_rows(api_port: u16, tag: &str, port: u16, want: &[Row]) -> Vec<Value> {
    wait_for_rows_matching(api_port, tag, port, want, |got, want| got == want)
}

/// [`wait_for_rows`] with the comparison given: `matches(got, want)`.
fn wait_for_rows_matching(
    api_port: u16,
    tag: &str,
    port: u16,
    want: &[Row],
    matches: impl Fn(&[Row], &[Row]) -> bool,
) -> Vec<Value> {
    let dir = temp_dir(tag);
    let script = write_script(
        &dir,
        "http2.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             px.display(df, 'http')\n"
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (got, rows) = query(api_port, &script);
        if matches(&got, want) {
            check_addresses_and_counts(api_port, &dir, port, &rows, want);
            return rows;
        }
        if Instant::now() > deadline {
            assert_eq!(got, want, "every request once per side (1 client, 2 server)");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Each row's addresses fit its role (the server's local port is `port`, the client's remote port;
/// both ends on loopback), and a PxL groupby counts per (role, method) what `want` holds.
fn check_addresses_and_counts(api_port: u16, dir: &Path, port: u16, rows: &[Value], want: &[Row]) {
    for r in rows {
        let (local, remote) = (r["local_port"].as_i64(), r["remote_port"].as_i64());
        match r["trace_role"].as_i64() {
            Some(2) => assert_eq!(local, Some(i64::from(port)), "a server row's local port: {r}"),
            Some(1) => assert_eq!(remote, Some(i64::from(port)), "a client row's remote port: {r}"),
            _ => panic!("a row without a role: {r}"),
        }
        assert_eq!(r["remote_addr"], "127.0.0.1", "{r}");
        assert_eq!(r["local_addr"], "127.0.0.1", "{r}");
    }
    let script = write_script(
        dir,
        "http2-counts.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'req_method']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Vec<(i64, String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json row"))
        .map(|r| {
            (
                r["trace_role"].as_i64().unwrap_or(-1),
                r["req_method"].as_str().unwrap_or_default().to_string(),
                r["n"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(i64, String, i64)> = Vec::new();
    for w in want {
        match expected.iter_mut().find(|(role, method, _)| *role == w.0 && *method == w.2) {
            Some(e) => e.2 += 1,
            None => expected.push((w.0, w.2.clone(), 1)),
        }
    }
    expected.sort();
    assert_eq!(got, expected, "the groupby counts what the rows hold");
}

fn both_sides(side: &[(&str, &str, i64, &str)]) -> Vec<Row> {
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| {
            side.iter().map(move |(m, p, s, msg)| (role, 2, m.to_string(), p.to_string(), *s, msg.to_string()))
        })
        .collect();
    want.sort();
    want
}

#[test]
fn curl_h2c_to_nginx_gives_one_row_per_request_per_side() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("http2-nginx");
    let (h1_port, port) = (free_port(), free_port());
    let _nginx = start_nginx(
        &dir,
        h1_port,
        "",
        &format!(
            "listen 127.0.0.1:{port} http2;\n\
             location = /hello {{ return 200 \"hello over h2c\\n\"; }}\n\
             location = /created {{ return 201 \"made\\n\"; }}\n\
             location / {{ return 404; }}"
        ),
    );
    crate::common::wait_for_port(port, "nginx h2c");
    let (_loupe, _metrics, api_port) = start_loupe();
    login(api_port);

    let base = format!("http://127.0.0.1:{port}");
    // nghttp multiplexes five requests on one connection (the dynamic table carries over between
    // them); curl 7.88 cannot reuse an h2c connection, so each curl makes one: a GET, and a GET
    // with credentials in a header and in the query.
    let urls: Vec<String> =
        ["/hello", "/hello?x=1", "/missing", "/created", "/hello?x=2"].iter().map(|p| format!("{base}{p}")).collect();
    let out =
        Command::new("nghttp").arg("-n").args(&urls).output().expect("run nghttp (apt-get install nghttp2-client)");
    assert!(out.status.success(), "nghttp: {}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new("curl")
        .args(["--http2-prior-knowledge", "-s", "-S", "-o", "/dev/null", &format!("{base}/hello")])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let secret = format!("{base}/hello?access_token=abc123");
    let out = Command::new("curl")
        .args(["--http2-prior-knowledge", "-s", "-S", "-o", "/dev/null", "-H", "Authorization: Bearer tok-42", &secret])
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl with a token: {}", String::from_utf8_lossy(&out.stderr));

    let want = both_sides(&[
        ("GET", "/hello", 200, "OK"),
        ("GET", "/hello?x=1", 200, "OK"),
        ("GET", "/missing", 404, "Not Found"),
        ("GET", "/created", 201, "Created"),
        ("GET", "/hello?x=2", 200, "OK"),
        ("GET", "/hello", 200, "OK"),
        ("GET", "/hello?access_token=[REDACTED]", 200, "OK"),
    ]);
    // nginx answers the multiplexed connection with one writev of many iovecs (packed into records by the
    // kernel side). Should a response head still be missed (ring pressure), that server row keeps status 0,
    // marked `:loupe-unresolved`: it must still be there, with its request right: marked, not guessed.
    let lost_head = |got: &Row, want: &Row| {
        got.0 == 2 && (got.4, got.5.as_str()) == (0, "") && (got.1, &got.2, &got.3) == (want.1, &want.2, &want.3)
    };
    let same = |got: &[Row], want: &[Row]| {
        got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g == w || lost_head(g, w))
    };
    let rows = wait_for_rows_matching(api_port, "http2-nginx-q", port, &want, same);
    for r in &rows {
        if r["resp_status"].as_i64() == Some(0) {
            assert!(r["resp_headers"].as_str().unwrap_or_default().contains(":loupe-unresolved"), "{r}");
            assert_eq!(r["trace_role"].as_i64(), Some(2), "the client side sees every byte it sends and reads: {r}");
            continue;
        }
        assert!(r["latency"].as_i64().is_some_and(|l| l > 0 && l < 5_000_000_000), "latency: {r}");
        assert_eq!(r["minor_version"].as_i64(), Some(0));
        let req_headers: Value = serde_json::from_str(r["req_headers"].as_str().unwrap_or("{}")).expect("json");
        assert_eq!(req_headers[":authority"], format!("127.0.0.1:{port}"), "{r}");
        assert!(!r["req_headers"].as_str().unwrap_or_default().contains("loupe-unresolved"), "{r}");
        if r["req_path"] == "/hello?access_token=[REDACTED]" {
            assert_eq!(req_headers["authorization"], "Bearer [REDACTED]", "{r}");
        }
        if r["req_path"] == "/hello" {
            assert_eq!(r["resp_body"], "hello over h2c\n");
            assert_eq!(r["resp_body_size"].as_i64(), Some(15));
        }
    }
}

/// A gRPC server with a generic handler (no generated code): `SayHello` answers `hello <name>`,
/// and fails with NOT_FOUND for `nobody`.
const GRPC_SERVER: &str = r#"
import sys
from concurrent import futures
import grpc

def say_hello(request, context):
    if request == b"nobody":
        context.abort(grpc.StatusCode.NOT_FOUND, "no such user: nobody")
    return b"hello " + request

handler = grpc.method_handlers_generic_handler(
    "helloworld.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
server.add_generic_rpc_handlers((handler,))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"#;

/// The client: three calls with a bearer token in metadata, then one that fails, on one channel.
const GRPC_CLIENT: &str = r#"
import sys
import grpc

with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as channel:
    say = channel.unary_unary("/helloworld.Greeter/SayHello")
    for name in (b"alice", b"bob", b"carol"):
        assert say(name, metadata=(("authorization", "Bearer s3cret-token"),), timeout=10) == b"hello " + name
    try:
        say(b"nobody", timeout=10)
        raise SystemExit("the call for nobody should fail")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.NOT_FOUND, e
print("done", flush=True)
"#;

/// [`GRPC_SERVER`] on 127.0.0.1:`port`, once it listens.
fn start_grpc_server(port: u16) -> Guard {
    spawn_ready(
        Command::new("/usr/bin/python3").args(["-c", GRPC_SERVER, &port.to_string()]),
        "the gRPC server (apt-get install python3-grpcio)",
    )
}

#[test]
fn python_grpcio_calls_give_grpc_rows_with_status_from_trailers() {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let _server = start_grpc_server(port);
    let (_loupe, _metrics, api_port) = start_loupe();
    login(api_port);

    let out = Command::new("/usr/bin/python3").args(["-c", GRPC_CLIENT, &port.to_string()]).output().expect("client");
    assert!(
        out.status.success(),
        "grpc client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let path = "/helloworld.Greeter/SayHello";
    let want = both_sides(&[
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "NOT_FOUND: no such user: nobody"),
    ]);
    let rows = wait_for_rows(api_port, "http2-grpc-q", port, &want);
    let mut bodies = Vec::new();
    for r in &rows {
        assert!(r["latency"].as_i64().is_some_and(|l| l > 0 && l < 5_000_000_000), "latency: {r}");
        assert_eq!(r["content_type"].as_i64(), Some(2), "gRPC content type: {r}");
        let req_headers: Value = serde_json::from_str(r["req_headers"].as_str().unwrap_or("{}")).expect("json");
        let resp_headers: Value = serde_json::from_str(r["resp_headers"].as_str().unwrap_or("{}")).expect("json");
        assert!(req_headers.get(":loupe-unresolved").is_none(), "{r}");
        if r["resp_message"] == "OK" {
            assert_eq!(req_headers["authorization"], "Bearer [REDACTED]", "{r}");
            assert_eq!(resp_headers["grpc-status"], "0", "{r}");
        } else {
            assert_eq!(resp_headers["grpc-status"], "5", "{r}");
        }
        // gRPC messages are length-prefixed: 5 bytes, then the payload.
        let body = r["req_body"].as_str().unwrap_or_default();
        bodies.push(body.get(5..).unwrap_or_default().to_string());
        assert_eq!(r["req_body_size"].as_i64(), Some(body.len() as i64), "{r}");
    }
    bodies.sort();
    assert_eq!(bodies, ["alice", "alice", "bob", "bob", "carol", "carol", "nobody", "nobody"]);
}

/// `ServiceHealth` for the tonic test: `Ready` answers, or fails with UNAVAILABLE when asked to by metadata.
struct Health;

#[tonic::async_trait]
impl loupe_proto::cloudpb::service_health_server::ServiceHealth for Health {
    async fn ready(
        &self,
        request: tonic::Request<loupe_proto::cloudpb::Empty>,
    ) -> Result<tonic::Response<loupe_proto::cloudpb::ReadyResponse>, tonic::Status> {
        if request.metadata().get("x-drain").is_some() {
            return Err(tonic::Status::unavailable("draining"));
        }
        Ok(tonic::Response::new(loupe_proto::cloudpb::ReadyResponse { metastore: "tonic-test".into() }))
    }
}

#[test]
fn rust_tonic_calls_give_grpc_rows_with_status_from_trailers() {
    use loupe_proto::cloudpb::service_health_client::ServiceHealthClient;
    use loupe_proto::cloudpb::service_health_server::ServiceHealthServer;

    if !can_trace() {
        return;
    }
    let port = free_port();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port))).expect("bind");
    runtime.spawn(
        tonic::transport::Server::builder()
            .add_service(ServiceHealthServer::new(Health))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let (_loupe, _metrics, api_port) = start_loupe();
    login(api_port);

    // One channel (one HTTP/2 connection): three calls with a bearer token, then one that fails.
    runtime.block_on(async {
        let mut client = ServiceHealthClient::connect(format!("http://127.0.0.1:{port}")).await.expect("connect");
        for _ in 0..3 {
            let mut request = tonic::Request::new(loupe_proto::cloudpb::Empty {});
            request.metadata_mut().insert("authorization", "Bearer s3cret-token".parse().expect("ascii"));
            let reply = client.ready(request).await.expect("ready");
            assert_eq!(reply.into_inner().metastore, "tonic-test");
        }
        let mut request = tonic::Request::new(loupe_proto::cloudpb::Empty {});
        request.metadata_mut().insert("x-drain", "1".parse().expect("ascii"));
        let status = client.ready(request).await.expect_err("the draining call fails");
        assert_eq!(status.code(), tonic::Code::Unavailable);
    });

    let path = "/loupe.cloud.v1.ServiceHealth/Ready";
    let want = both_sides(&[
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "OK"),
        ("POST", path, 200, "UNAVAILABLE: draining"),
    ]);
    let rows = wait_for_rows(api_port, "http2-tonic-q", port, &want);
    for r in &rows {
        assert!(r["latency"].as_i64().is_some_and(|l| l > 0 && l < 5_000_000_000), "latency: {r}");
        assert_eq!(r["content_type"].as_i64(), Some(2), "gRPC content type: {r}");
        let req_headers: Value = serde_json::from_str(r["req_headers"].as_str().unwrap_or("{}")).expect("json");
        let resp_headers: Value = serde_json::from_str(r["resp_headers"].as_str().unwrap_or("{}")).expect("json");
        assert!(req_headers.get(":loupe-unresolved").is_none(), "{r}");
        if r["resp_message"] == "OK" {
            assert_eq!(req_headers["authorization"], "Bearer [REDACTED]", "{r}");
            assert_eq!(resp_headers["grpc-status"], "0", "{r}");
        } else {
            assert_eq!(resp_headers["grpc-status"], "14", "{r}");
        }
    }
}

/// A gRPC client whose channel (one HTTP/2 connection) is already open and has made calls when
/// the agent starts, then makes three more: the HPACK dynamic table those earlier calls built
/// was never seen.
const GRPC_CLIENT_ACROSS_START: &str = r#"
import sys
import grpc

with grpc.insecure_channel("127.0.0.1:" + sys.argv[1]) as channel:
    say = channel.unary_unary("/helloworld.Greeter/SayHello")
    for name in (b"early1", b"early2"):
        assert say(name, metadata=(("x-tenant", "acme"),), timeout=10) == b"hello " + name
    print("warm", flush=True)
    sys.stdin.readline()
    for name in (b"late1", b"late2", b"late3"):
        assert say(name, metadata=(("x-tenant", "acme"),), timeout=10) == b"hello " + name
print("done", flush=True)
"#;

/// A capture that starts mid-connection: header blocks that refer to dynamic-table entries the
/// agent never saw are marked `:loupe-unresolved` and counted, never filled in by a guess; what
/// the frames do carry (bodies, the status from the trailers' literals) is still kept.
#[test]
fn a_capture_starting_mid_connection_marks_what_it_cannot_decode() {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let _server = start_grpc_server(port);
    let mut client = Command::new("/usr/bin/python3")
        .args(["-c", GRPC_CLIENT_ACROSS_START, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the gRPC client");
    let mut client_out = BufReader::new(client.stdout.take().expect("stdout"));
    let mut client_in = client.stdin.take().expect("stdin");
    let _client = Guard(client);
    let mut line = String::new();
    client_out.read_line(&mut line).expect("client output");
    assert_eq!(line.trim(), "warm", "the gRPC client did not make its first calls");

    let (_loupe, _metrics, api_port) = start_loupe();
    login(api_port);
    std::io::Write::write_all(&mut client_in, b"go\n").expect("tell the client to go on");
    line.clear();
    client_out.read_line(&mut line).expect("client output");
    assert_eq!(line.trim(), "done", "the gRPC client failed after the agent started");

    // Three calls per side; their request blocks name :path, content-type and the metadata by
    // entries of the unseen dynamic table: left out and marked, the path never guessed. What the
    // block says itself (:method, :status from the static table) and the bodies are kept.
    let want = both_sides(&[("POST", "", 200, ""), ("POST", "", 200, ""), ("POST", "", 200, "")]);
    let matches = |got: &[Row], want: &[Row]| {
        got.len() == want.len()
            && got.iter().zip(want).all(|(g, w)| (g.0, g.1, &g.2, &g.3, g.4) == (w.0, w.1, &w.2, &w.3, w.4))
    };
    let rows = wait_for_rows_matching(api_port, "http2-mid-q", port, &want, matches);
    let mut bodies = Vec::new();
    for r in &rows {
        let req_headers: Value = serde_json::from_str(r["req_headers"].as_str().unwrap_or("{}")).expect("json");
        assert!(req_headers.get(":loupe-unresolved").is_some(), "the request block is marked: {r}");
        assert!(req_headers.get(":path").is_none(), "never guessed: {r}");
        assert!(r["latency"].as_i64().is_some_and(|l| l > 0 && l < 5_000_000_000), "latency: {r}");
        let body = r["req_body"].as_str().unwrap_or_default();
        bodies.push(body.get(5..).unwrap_or_default().to_string());
    }
    bodies.sort();
    assert_eq!(bodies, ["late1", "late1", "late2", "late2", "late3", "late3"]);
    // Counted: each side's undecodable blocks are parse errors of http2.
    let dir = temp_dir("http2-mid-stats");
    let stats = write_script(
        &dir,
        "stats.pxl",
        "import px\n\
         df = px.DataFrame(table='agent_stats', start_time='-5m')\n\
         df = df[df.counter == 'http2_parse_errors']\n\
         df = df.groupby(['counter']).agg(value=('value', px.max))\n\
         px.display(df, 'stats')\n",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = px(api_port, &["run", "-f", stats.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let value = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|r| r["value"].as_i64())
            .unwrap_or(0);
        if value >= 6 {
            break;
        }
        assert!(Instant::now() < deadline, "http2_parse_errors counts the unresolved blocks: {value}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
