//! End to end: DNS capture. `loupe up` traces a real BIND `named` (started by the test on a private
//! port with its own zone, config and state dir) queried by `dig`, over TCP (`+tcp`) and over UDP:
//! an A record, a CNAME chain, an NXDOMAIN, an empty AAAA answer, and two queries in one `dig`
//! (on one kept-open connection over TCP). `px run` of `dns_events` must return exactly those
//! exchanges once per side (client and server), with the headers and bodies as JSON and
//! latencies above zero; a PxL groupby over them must count the same. Over UDP `named` receives
//! with `recvmmsg` and answers with `sendmmsg` naming each peer, and `dig` sends on a connected
//! socket with `sendmmsg` and receives with `recvmsg`.
//!
//! dnsmasq too, over TCP and UDP: it reads a TCP query's 2-byte length one byte at a time, which
//! the kernel's first-bytes gate keeps until the query that follows decides.
//!
//! Owns only these acceptance checks; their queries filter by their own server's port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, temp_dir, wait_for_port};
use crate::e2e::{can_trace, login, poll_keyed_counts, px, start_loupe, write_script};

/// BIND's `named` on 127.0.0.1:`port`, primary for `loupe.test` and nothing else (no recursion,
/// no control channel), with its config, zone and state in `dir`.
fn start_named(port: u16, dir: &Path) -> Guard {
    let d = dir.display();
    std::fs::write(
        dir.join("loupe.test.zone"),
        "$TTL 60\n\
         @    IN SOA ns.loupe.test. admin.loupe.test. 1 60 60 60 60\n\
         @    IN NS  ns.loupe.test.\n\
         ns   IN A   127.0.0.1\n\
         web  IN A   10.0.0.7\n\
         www  IN CNAME web\n\
         api  IN A   10.1.2.3\n",
    )
    .expect("write zone");
    let conf = dir.join("named.conf");
    std::fs::write(
        &conf,
        format!(
            "options {{\n  directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  \
             pid-file none;\n  recursion no;\n  dnssec-validation no;\n  session-keyfile none;\n  \
             managed-keys-directory \"{d}\";\n}};\ncontrols {{ }};\n\
             zone \"loupe.test\" {{ type primary; file \"{d}/loupe.test.zone\"; }};\n"
        ),
    )
    .expect("write named.conf");
    let child = Command::new("named")
        .args(["-g", "-4", "-n", "1", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn named (Debian package bind9)");
    let guard = Guard(child);
    wait_for_port(port, "named");
    guard
}

/// `dig` against the server (`+tcp` or over UDP); returns its short answer.
fn dig(tcp: bool, port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([if tcp { "+tcp" } else { "+notcp" }, "+short", "+tries=1", "+time=5", "@127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("run dig (Debian package bind9-dnsutils)");
    assert!(out.status.success(), "dig {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One row as compared: (trace_role, req_header, req_body, resp_header, resp_body) with the
/// transaction id (random, checked to match) set to 0.
type Row = (i64, String, String, String, String);

/// A response header of `named` (authoritative, no recursion) after `dig`'s query with EDNS.
fn header(rcode: u8, answers: u16, auth: u16) -> String {
    format!(
        r#"{{"txid":0,"qr":1,"opcode":0,"aa":1,"tc":0,"rd":1,"ra":0,"ad":0,"cd":0,"rcode":{rcode},"num_queries":1,"num_answers":{answers},"num_auth":{auth},"num_addl":1}}"#
    )
}

#[test]
fn dns_over_tcp_lands_in_dns_events_once_per_side() {
    dns_lands_in_dns_events_once_per_side(true);
}

#[test]
fn dns_over_udp_lands_in_dns_events_once_per_side() {
    dns_lands_in_dns_events_once_per_side(false);
}

fn dns_lands_in_dns_events_once_per_side(tcp: bool) {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let dir = temp_dir(if tcp { "dns-capture" } else { "dns-capture-udp" });
    let _named = start_named(port, &dir);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);

    assert_eq!(dig(tcp, port, &["web.loupe.test", "A"]), "10.0.0.7\n");
    assert_eq!(dig(tcp, port, &["www.loupe.test", "A"]), "web.loupe.test.\n10.0.0.7\n");
    assert_eq!(dig(tcp, port, &["nope.loupe.test", "A"]), "");
    assert_eq!(dig(tcp, port, &["web.loupe.test", "AAAA"]), "");
    assert_eq!(dig(tcp, port, &["+keepopen", "api.loupe.test", "A", "web.loupe.test", "A"]), "10.1.2.3\n10.0.0.7\n");

    let query = |name: &str, t: &str| format!(r#"{{"queries":[{{"name":"{name}","type":"{t}"}}]}}"#);
    let req_header = r#"{"txid":0,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":1,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":1}"#;
    let web = r#"{"answers":[{"name":"web.loupe.test","type":"A","addr":"10.0.0.7"}]}"#;
    let side: Vec<(String, String, String)> = vec![
        (query("web.loupe.test", "A"), header(0, 1, 0), web.to_string()),
        (
            query("www.loupe.test", "A"),
            header(0, 2, 0),
            r#"{"answers":[{"name":"www.loupe.test","type":"CNAME","cname":"web.loupe.test"},{"name":"web.loupe.test","type":"A","addr":"10.0.0.7"}]}"#.to_string(),
        ),
        (query("nope.loupe.test", "A"), header(3, 0, 1), r#"{"answers":[]}"#.to_string()),
        (query("web.loupe.test", "AAAA"), header(0, 0, 1), r#"{"answers":[]}"#.to_string()),
        (
            query("api.loupe.test", "A"),
            header(0, 1, 0),
            r#"{"answers":[{"name":"api.loupe.test","type":"A","addr":"10.1.2.3"}]}"#.to_string(),
        ),
        (query("web.loupe.test", "A"), header(0, 1, 0), web.to_string()),
    ];
    let mut want: Vec<Row> = [1, 2]
        .into_iter()
        .flat_map(|role| {
            side.iter().map(move |(q, h, b)| (role, req_header.to_string(), q.clone(), h.clone(), b.clone()))
        })
        .collect();
    want.sort();

    let filter = format!("df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n");
    let script = write_script(
        &dir,
        "dns.pxl",
        &format!("import px\ndf = px.DataFrame(table='dns_events')\n{filter}px.display(df, 'dns')\n"),
    );
    let run = |script: &std::path::Path| -> Vec<Value> {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, rows) = loop {
        let rows = run(&script);
        let mut got: Vec<Row> = rows
            .iter()
            .map(|r| {
                let json =
                    |c: &str| -> Value { serde_json::from_str(r[c].as_str().unwrap_or("null")).unwrap_or(Value::Null) };
                let (mut req, mut resp) = (json("req_header"), json("resp_header"));
                assert_eq!(req["txid"], resp["txid"], "paired by transaction id: {r}");
                req["txid"] = 0.into();
                resp["txid"] = 0.into();
                let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
                // Re-rendered in the column's own field order (serde_json sorts keys).
                let ordered = |v: &Value| reorder(v);
                (
                    r["trace_role"].as_i64().unwrap_or(-1),
                    ordered(&req),
                    text("req_body"),
                    ordered(&resp),
                    text("resp_body"),
                )
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            break (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every query once per side (1 client, 2 server), paired with its answer");
    for r in &rows {
        let latency = r["latency"].as_i64().unwrap_or(-1);
        assert!((1..5_000_000_000).contains(&latency), "latency {latency} of {r}");
        assert_eq!(
            r["local_port"].as_i64() == Some(i64::from(port)),
            r["trace_role"] == 2,
            "ports match the role: {r}"
        );
    }

    let counts = write_script(
        &dir,
        "dns_counts.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='dns_events')\n{filter}\
             s = df.groupby(['trace_role']).agg(n=('latency', px.count))\npx.display(s, 'counts')\n"
        ),
    );
    let mut counts: Vec<(i64, i64)> =
        run(&counts).iter().map(|r| (r["trace_role"].as_i64().unwrap_or(-1), r["n"].as_i64().unwrap_or(-1))).collect();
    counts.sort();
    assert_eq!(counts, [(1, side.len() as i64), (2, side.len() as i64)]);
}

/// A header JSON value in the column's field order.
fn reorder(v: &Value) -> String {
    const ORDER: [&str; 14] = [
        "txid",
        "qr",
        "opcode",
        "aa",
        "tc",
        "rd",
        "ra",
        "ad",
        "cd",
        "rcode",
        "num_queries",
        "num_answers",
        "num_auth",
        "num_addl",
    ];
    let fields: Vec<String> = ORDER.iter().map(|k| format!("\"{k}\":{}", v[*k])).collect();
    format!("{{{}}}", fields.join(","))
}

/// dnsmasq (Debian's `dnsmasq-base`) on 127.0.0.1:`port`, answering `*.dnsmasq.test` from its
/// `--address` rules and nothing else (no upstream, no hosts file).
fn start_dnsmasq(port: u16) -> Guard {
    let child = Command::new("dnsmasq")
        .args(["--no-daemon", "--conf-file=/dev/null", "--listen-address=127.0.0.1", "--bind-interfaces"])
        .args([
            "--no-resolv",
            "--no-hosts",
            "--address=/web.dnsmasq.test/10.0.0.7",
            "--address=/api.dnsmasq.test/10.1.2.3",
        ])
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dnsmasq (Debian package dnsmasq-base)");
    let guard = Guard(child);
    wait_for_port(port, "dnsmasq");
    guard
}

/// dnsmasq, queried by `dig` over TCP and UDP. Over TCP it reads a query's 2-byte length one byte
/// at a time: the kernel keeps those two bytes until the query that follows decides DNS.
#[test]
fn dnsmasq_over_tcp_and_udp_lands_in_dns_events_once_per_side() {
    if !can_trace() {
        return;
    }
    let port = free_port();
    let dir = temp_dir("dns-dnsmasq");
    let _dnsmasq = start_dnsmasq(port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    for tcp in [true, false] {
        assert_eq!(dig(tcp, port, &["web.dnsmasq.test", "A"]), "10.0.0.7\n");
        assert_eq!(
            dig(tcp, port, &["+keepopen", "api.dnsmasq.test", "A", "web.dnsmasq.test", "A"]),
            "10.1.2.3\n10.0.0.7\n"
        );
    }
    let script = write_script(
        &dir,
        "dnsmasq.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='dns_events')\n\
             df = df[((df.trace_role == 2) & (df.local_port == {port})) | ((df.trace_role == 1) & (df.remote_port == {port}))]\n\
             s = df.groupby(['trace_role', 'req_body', 'resp_body']).agg(n=('latency', px.count), min_latency=('latency', px.min))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let answer = |name: &str, addr: &str| {
        (
            format!(r#"{{"queries":[{{"name":"{name}","type":"A"}}]}}"#),
            format!(r#"{{"answers":[{{"name":"{name}","type":"A","addr":"{addr}"}}]}}"#),
        )
    };
    // Per side, TCP and UDP together: web three times (twice alone, once after api), api twice.
    let (web, api) = (answer("web.dnsmasq.test", "10.0.0.7"), answer("api.dnsmasq.test", "10.1.2.3"));
    let mut want: Vec<((i64, String, String), i64)> = [1, 2]
        .into_iter()
        .flat_map(|role| [((role, web.0.clone(), web.1.clone()), 4), ((role, api.0.clone(), api.1.clone()), 2)])
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, |r| {
        let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
        (r["trace_role"].as_i64().unwrap_or(-1), text("req_body"), text("resp_body"))
    });
    assert_eq!(got, want, "every query once per side (1 client, 2 server), over TCP and UDP");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
    }
}
