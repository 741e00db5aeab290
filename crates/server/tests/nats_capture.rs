//! End to end: NATS capture. `loupe up` traces a real `nats-server` driven by two raw protocol
//! clients: a quiet subscriber (token in `CONNECT`, `SUB`, `PING`, two delivered `MSG`s) and a
//! verbose publisher (user and password in `CONNECT`, two `PUB`s acknowledged with `+OK`, then an
//! unknown verb the server answers with `-ERR` before closing). `px run` of
//! `px.DataFrame(table='nats_events.beta')` must return exactly those messages once per side
//! (client and server), with the acknowledgements as `resp` and the credentials redacted; a PxL
//! groupby over them must count the same.
//!
//! NATS's own client library (nats-py) too: publish, headers, subscribe, request/reply, drain,
//! counted per side by a PxL groupby.
//!
//! Owns only these acceptance checks; they must not assume they are alone on the host: their
//! queries filter by their own server's port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use loupe_testkit::NatsServer;
use serde_json::Value;

use crate::common::{run_counts, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// One NATS client connection over a plain socket. Reads and writes go through the one fd, as
/// in real clients (a `try_clone`d reader would be a second fd: a connection of its own to the tracer).
struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    /// Connects and reads the server's `INFO`.
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to nats");
        stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut client = Client { stream: BufReader::new(stream) };
        assert!(client.line().starts_with("INFO {"), "nats greets with INFO");
        client
    }

    fn send(&mut self, bytes: &str) {
        self.stream.get_mut().write_all(bytes.as_bytes()).expect("write to nats");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("read from nats");
        line
    }

    /// Sends `bytes` and reads exactly `reply` back.
    fn exchange(&mut self, bytes: &str, reply: &str) {
        self.send(bytes);
        let mut got = vec![0u8; reply.len()];
        self.stream.read_exact(&mut got).expect("read from nats");
        assert_eq!(String::from_utf8_lossy(&got), reply);
    }
}

/// One row as compared: (trace_role, cmd, body, resp). JSON bodies are compared as documents
/// (re-serialised), and `INFO`'s, whose ids vary, by its fixed fields.
type Row = (i64, String, String, String);

const INFO: &str = "<INFO>";

fn canonical(cmd: &str, body: &str) -> String {
    if cmd == "INFO" {
        let doc: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("INFO is JSON ({e}): {body}"));
        assert!(doc["server_id"].is_string() && doc["max_payload"].is_number(), "INFO fields: {body}");
        return INFO.to_string();
    }
    serde_json::from_str::<Value>(body).map_or_else(|_| body.to_string(), |v| v.to_string())
}

/// Drives the server on `port`; returns the (cmd, body, resp) rows each side must show.
fn drive(port: u16) -> Vec<(String, String, String)> {
    let mut sub = Client::connect(port);
    sub.send("CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"sub\",\"auth_token\":\"t0ken-secret\"}\r\n");
    sub.exchange("SUB greet.* 1\r\nPING\r\n", "PONG\r\n");

    let mut publisher = Client::connect(port);
    publisher.exchange(
        "CONNECT {\"verbose\":true,\"pedantic\":false,\"name\":\"pub\",\"user\":\"alice\",\"pass\":\"s3cret\"}\r\n",
        "+OK\r\n",
    );
    publisher.exchange("PUB greet.joe 5\r\nhello\r\n", "+OK\r\n");
    publisher.exchange("PUB greet.ann r.1 2\r\nhi\r\n", "+OK\r\n");
    publisher.exchange("FOO\r\n", "-ERR 'Unknown Protocol Operation'\r\n");

    assert_eq!(sub.line(), "MSG greet.joe 1 5\r\n");
    assert_eq!(sub.line(), "hello\r\n");
    assert_eq!(sub.line(), "MSG greet.ann 1 r.1 2\r\n");
    assert_eq!(sub.line(), "hi\r\n");
    sub.exchange("PING\r\n", "PONG\r\n");
    drop(sub);
    drop(publisher);

    let row = |cmd: &str, body: &str, resp: &str| (cmd.to_string(), canonical(cmd, body), resp.to_string());
    let mut want = vec![
        row("INFO", r#"{"server_id":"x","max_payload":1}"#, ""),
        row("CONNECT", r#"{"verbose":false,"pedantic":false,"name":"sub","auth_token":"[REDACTED]"}"#, ""),
        row("SUB", r#"{"subject":"greet.*","sid":"1"}"#, ""),
        row("PING", "", ""),
        row("PONG", "", ""),
        row("MSG", r#"{"subject":"greet.joe","sid":"1","payload":"hello"}"#, ""),
        row("MSG", r#"{"subject":"greet.ann","sid":"1","reply_to":"r.1","payload":"hi"}"#, ""),
        row("PING", "", ""),
        row("PONG", "", ""),
        row("INFO", r#"{"server_id":"x","max_payload":1}"#, ""),
        row("CONNECT", r#"{"verbose":true,"pedantic":false,"name":"pub","user":"alice","pass":"[REDACTED]"}"#, "OK"),
        row("PUB", r#"{"subject":"greet.joe","payload":"hello"}"#, "OK"),
        row("PUB", r#"{"subject":"greet.ann","reply_to":"r.1","payload":"hi"}"#, "OK"),
        row("-ERR", "'Unknown Protocol Operation'", "-ERR 'Unknown Protocol Operation'"),
    ];
    want.sort();
    want
}

fn run(api_port: u16, script: &std::path::Path) -> Vec<Value> {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
}

/// Every row for the server's port, sorted, and the raw rows.
fn query(api_port: u16, script: &std::path::Path) -> (Vec<Row>, Vec<Value>) {
    let rows = run(api_port, script);
    let mut got: Vec<Row> = rows
        .iter()
        .map(|r| {
            let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
            let cmd = text("cmd");
            let body = canonical(&cmd, &text("body"));
            (r["trace_role"].as_i64().unwrap_or(-1), cmd, body, text("resp"))
        })
        .collect();
    got.sort();
    (got, rows)
}

/// A private `nats-server`, and its port.
fn start_nats() -> (NatsServer, u16) {
    let nats = NatsServer::start();
    let port = nats.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("nats port");
    (nats, port)
}

#[test]
fn nats_messages_land_in_nats_events_once_per_side() {
    if !can_trace() {
        return;
    }
    // Started before the agent, so its readiness probe is not traced.
    let (_nats, port) = start_nats();
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let want_side = drive(port);
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| want_side.iter().map(move |(c, b, r)| (role, c.clone(), b.clone(), r.clone())))
        .collect();
    want.sort();

    let dir = temp_dir("nats-capture");
    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let script = write_script(
        &dir,
        "nats.pxl",
        &format!("import px\ndf = px.DataFrame(table='nats_events.beta')\n{filter}px.display(df, 'nats')\n"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, raw) = loop {
        let (got, raw) = query(api_port, &script);
        if got == want || Instant::now() > deadline {
            break (got, raw);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every message once per side (1 client, 2 server), acknowledgements paired");
    for r in &raw {
        let text = r.to_string();
        for secret in ["s3cret", "t0ken-secret"] {
            assert!(!text.contains(secret), "{secret} leaked into nats_events: {text}");
        }
        // Client-side rows name the server's port as remote, server-side rows as local.
        let (local, remote) = (r["local_port"].as_i64(), r["remote_port"].as_i64());
        match r["trace_role"].as_i64() {
            Some(1) => assert_eq!(remote, Some(i64::from(port)), "{text}"),
            Some(2) => assert_eq!(local, Some(i64::from(port)), "{text}"),
            other => panic!("trace_role {other:?}: {text}"),
        }
    }

    // A PxL groupby over the same rows counts the same.
    let counts_script = write_script(
        &dir,
        "nats_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='nats_events.beta')\n{filter}\
             s = df.groupby(['trace_role', 'cmd']).agg(n=('resp', px.count))\npx.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<((i64, String), i64)> = run(api_port, &counts_script)
        .iter()
        .map(|r| {
            let key = (r["trace_role"].as_i64().unwrap_or(-1), r["cmd"].as_str().unwrap_or_default().to_string());
            (key, r["n"].as_i64().unwrap_or(-1))
        })
        .collect();
    counts.sort();
    let want_counts = run_counts(want.iter().map(|(role, cmd, ..)| (*role, cmd.clone())));
    assert_eq!(counts, want_counts);
}

/// NATS's own client library, nats-py (from PyPI, in the venv `scripts/client-venv.sh` makes): a
/// subscriber, a publisher of 10 messages with a header on every fifth, and a request answered by
/// a responder through an inbox subscription, on two connections.
const NATS_PY: &str = r#"
import asyncio, sys
import nats

async def main(port):
    url = "nats://127.0.0.1:%d" % port
    sub = await nats.connect(url, name="sub")
    pub = await nats.connect(url, name="pub")
    got = []
    async def on_order(msg):
        got.append(msg.data)
    async def on_request(msg):
        await msg.respond(b"pong " + msg.data)
    await sub.subscribe("orders.*", cb=on_order)
    await sub.subscribe("svc.ping", cb=on_request)
    await sub.flush()
    for i in range(10):
        headers = {"x-seq": str(i)} if i % 5 == 0 else None
        await pub.publish("orders.%d" % i, b"order %d" % i, headers=headers)
    await pub.flush()
    reply = await pub.request("svc.ping", b"hi", timeout=5)
    assert reply.data == b"pong hi", reply.data
    for _ in range(50):
        if len(got) == 10:
            break
        await asyncio.sleep(0.1)
    assert len(got) == 10, got
    await pub.drain()
    await sub.drain()
    print("done", flush=True)

asyncio.run(main(int(sys.argv[1])))
"#;

#[test]
fn a_client_library_publishes_subscribes_and_requests_counted_per_side() {
    if !can_trace() {
        return;
    }
    let python = crate::common::client_python();
    let (_nats, port) = start_nats();
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let out =
        std::process::Command::new(&python).args(["-c", NATS_PY, &port.to_string()]).output().expect("run nats-py");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "done",
        "nats-py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = temp_dir("nats-py-capture");
    let script = write_script(
        &dir,
        "nats-py.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='nats_events.beta')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             s = df.groupby(['trace_role', 'cmd']).agg(n=('resp', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    // Per side. PUB: 8 orders, the request and its reply; MSG: the 8 orders, the request and the reply
    // delivered; HPUB/HMSG: the two orders with a header; SUB/UNSUB: orders, the service and the inbox.
    let side =
        [("CONNECT", 2), ("HMSG", 2), ("HPUB", 2), ("INFO", 2), ("MSG", 10), ("PUB", 10), ("SUB", 3), ("UNSUB", 3)];
    let mut want: Vec<((i64, String), i64)> =
        [1, 2].into_iter().flat_map(|role| side.iter().map(move |&(cmd, n)| ((role, cmd.to_string()), n))).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, pings) = loop {
        let mut got = Vec::new();
        let mut pings: Vec<((i64, String), i64)> = Vec::new();
        for r in run(api_port, &script) {
            let key = (r["trace_role"].as_i64().unwrap_or(-1), r["cmd"].as_str().unwrap_or_default().to_string());
            let n = r["n"].as_i64().unwrap_or(-1);
            if key.1 == "PING" || key.1 == "PONG" { pings.push((key, n)) } else { got.push((key, n)) }
        }
        got.sort();
        pings.sort();
        if got == want || Instant::now() > deadline {
            break (got, pings);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "each message once per side (1 client, 2 server)");
    // The library's flushes: as many PINGs as PONGs, the same on both sides, at least one per connection.
    let count = |role: i64, cmd: &str| pings.iter().find(|((r, c), _)| *r == role && c == cmd).map_or(0, |p| p.1);
    assert!(count(1, "PING") >= 2, "{pings:?}");
    for (role, cmd) in [(1, "PONG"), (2, "PING"), (2, "PONG")] {
        assert_eq!(count(role, cmd), count(1, "PING"), "{pings:?}");
    }
}
