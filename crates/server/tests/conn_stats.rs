//! End to end: `conn_stats`. `loupe up` traces this test's own client and server sockets while
//! they exchange known traffic: three HTTP/1.1 exchanges of known sizes on connections that
//! close, one more that stays open, and two connections of bytes no parser knows. `px run` of
//! `px.DataFrame(table='conn_stats')` must report, in its latest row per key, exactly those
//! connection counts (opened, closed, active) and byte counts on both sides, with the role, the
//! protocol (1 HTTP, 0 unknown) and the address family right.
//!
//! Owns only this acceptance check; it must not assume it is alone on the host: its queries
//! filter by its own listener's port and its clients' ports.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::temp_dir;
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

const REQUEST: &[u8] = b"GET /conn-stats HTTP/1.1\r\nHost: loupe\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const RAW_UP: usize = 1234;
const RAW_DOWN: usize = 567;

/// (trace_role, remote_port, protocol, addr_family, conn_open, conn_close, conn_active, bytes_sent, bytes_recv)
type Row = (i64, i64, i64, i64, i64, i64, i64, i64, i64);

/// A row's key (trace_role, remote_port, protocol) and its never-decreasing counters (open,
/// close, sent, received), which tell the latest report apart.
type Key = (i64, i64, i64);
type Progress = (i64, i64, i64, i64);

/// Serves one connection per entry of `kinds`, each on a thread of its own: an HTTP exchange
/// (`true`) or raw bytes (`false`), then waits for the client to close.
fn serve(listener: TcpListener, kinds: Vec<bool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for http in kinds {
            let (mut conn, _) = listener.accept().expect("accept");
            std::thread::spawn(move || {
                let (want, answer) =
                    if http { (REQUEST.len(), RESPONSE.to_vec()) } else { (RAW_UP, vec![b'y'; RAW_DOWN]) };
                let mut buf = vec![0u8; want];
                conn.read_exact(&mut buf).expect("read request");
                conn.write_all(&answer).expect("write answer");
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest);
            });
        }
    })
}

fn run(api_port: u16, script: &std::path::Path) -> Vec<Value> {
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect()
}

#[test]
fn conn_stats_counts_connections_and_bytes_on_both_sides() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = i64::from(listener.local_addr().expect("addr").port());
    let server = serve(listener, vec![true, true, true, true, false, false]);

    let mut client_ports = BTreeSet::new();
    let mut want_server: Vec<Row> = Vec::new();
    let (req, resp) = (REQUEST.len() as i64, RESPONSE.len() as i64);
    // Three HTTP exchanges on connections that close, one on a connection left open.
    let mut open = None;
    for i in 0..4 {
        let mut c = TcpStream::connect(("127.0.0.1", port as u16)).expect("connect");
        let local = i64::from(c.local_addr().expect("local").port());
        client_ports.insert(local);
        c.write_all(REQUEST).expect("write request");
        let mut buf = vec![0u8; RESPONSE.len()];
        c.read_exact(&mut buf).expect("read response");
        let closed = i64::from(i < 3);
        want_server.push((2, local, 1, 2, 1, closed, 1 - closed, resp, req));
        if i < 3 {
            drop(c);
        } else {
            open = Some(c);
        }
    }
    // Two connections of bytes no parser knows: counted from the kernel's totals at close.
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", port as u16)).expect("connect");
        client_ports.insert(i64::from(c.local_addr().expect("local").port()));
        let local = i64::from(c.local_addr().expect("local").port());
        c.write_all(&vec![b'x'; RAW_UP]).expect("write raw");
        let mut buf = vec![0u8; RAW_DOWN];
        c.read_exact(&mut buf).expect("read raw");
        want_server.push((2, local, 0, 2, 1, 1, 0, RAW_DOWN as i64, RAW_UP as i64));
    }
    let mut want: Vec<Row> = vec![
        (1, port, 1, 2, 4, 3, 1, 4 * req, 4 * resp),
        (1, port, 0, 2, 2, 2, 0, 2 * RAW_UP as i64, 2 * RAW_DOWN as i64),
    ];
    want.extend(want_server);
    want.sort();

    let (low, high) = (client_ports.first().copied().unwrap_or(0), client_ports.last().copied().unwrap_or(0));
    let dir = temp_dir("conn-stats");
    let script = write_script(
        &dir,
        "conn_stats.pxl",
        &format!(
            "import px\ndf = px.DataFrame(table='conn_stats')\n\
             df = df[(df.remote_port == {port}) | ((df.remote_port >= {low}) & (df.remote_port <= {high}))]\n\
             px.display(df, 'conn_stats')\n"
        ),
    );
    // Rows are cumulative and written every 10 s: the latest row per key (the one with the highest
    // counters, which never decrease) is the state.
    let deadline = Instant::now() + Duration::from_secs(40);
    let got = loop {
        let mut latest: BTreeMap<Key, (Progress, Row)> = BTreeMap::new();
        for r in run(api_port, &script) {
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            let row: Row = (
                int("trace_role"),
                int("remote_port"),
                int("protocol"),
                int("addr_family"),
                int("conn_open"),
                int("conn_close"),
                int("conn_active"),
                int("bytes_sent"),
                int("bytes_recv"),
            );
            if row.1 != port && !client_ports.contains(&row.1) {
                continue;
            }
            let progress = (row.4, row.5, row.7, row.8);
            let key = (row.0, row.1, row.2);
            if latest.get(&key).is_none_or(|(p, _)| progress >= *p) {
                latest.insert(key, (progress, row));
            }
        }
        let mut got: Vec<Row> = latest.into_values().map(|(_, row)| row).collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(got, want, "(role, remote_port, protocol, family, open, close, active, sent, recv)");
    drop(open);
    server.join().expect("server thread");
}
