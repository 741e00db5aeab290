//! End to end: Kafka, MongoDB and Cassandra capture through the kernel. No server for them is packaged here, so
//! each recorded exchange (requests made by the real client libraries' encoders, `crates/protocols/testdata`) is
//! replayed over a real loopback TCP connection: one side writes the requests and reads the responses, the other
//! reads the requests and writes the responses. `loupe up` must classify each connection in the kernel, and
//! `kafka_events.beta`, `mongodb_events` and `cql_events` must hold every pair once per side.
//!
//! Owns only this check; it must not assume it is alone on the host: each query filters by its own port.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::temp_dir;
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// One recorded exchange and the pairs its parser makes of it (the parsers' own tests count the same).
struct Recorded {
    table: &'static str,
    requests: &'static [u8],
    responses: &'static [u8],
    pairs: usize,
}

const RECORDED: &[Recorded] = &[
    Recorded {
        table: "kafka_events.beta",
        requests: include_bytes!("../../protocols/testdata/kafka/kafka_python.req"),
        responses: include_bytes!("../../protocols/testdata/kafka/kafka_python.resp"),
        pairs: 10,
    },
    Recorded {
        table: "mongodb_events",
        requests: include_bytes!("../../protocols/testdata/mongodb/pymongo.req"),
        responses: include_bytes!("../../protocols/testdata/mongodb/pymongo.resp"),
        pairs: 9,
    },
    Recorded {
        table: "cql_events",
        requests: include_bytes!("../../protocols/testdata/cql/driver_v4.req"),
        responses: include_bytes!("../../protocols/testdata/cql/driver_v4.resp"),
        pairs: 13,
    },
];

/// Replays `r` over a fresh loopback connection; returns the server's port.
fn replay(r: &Recorded) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (requests, responses) = (r.requests, r.responses);
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = vec![0u8; requests.len()];
        conn.read_exact(&mut got).expect("read the requests");
        assert_eq!(got, requests);
        conn.write_all(responses).expect("write the responses");
        // Wait for the client to close, so that both sides see every byte.
        let _ = conn.read(&mut [0u8; 1]);
    });
    let mut client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    client.write_all(requests).expect("write the requests");
    let mut got = vec![0u8; responses.len()];
    client.read_exact(&mut got).expect("read the responses");
    drop(client);
    server.join().expect("the replaying server");
    port
}

#[test]
fn kafka_mongodb_and_cql_exchanges_are_classified_in_the_kernel_and_paired_once_per_side() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("replay-capture");
    for r in RECORDED {
        let port = replay(r);
        let script = write_script(
            &dir,
            &format!("{}.pxl", r.table.replace('.', "_")),
            &format!(
                "import px\n\
                 df = px.DataFrame(table='{}', start_time='-5m')\n\
                 df = df[(df.remote_port == {port}) | (df.local_port == {port})]\n\
                 df = df.groupby(['trace_role']).agg(n=('latency', px.count))\n\
                 px.display(df, 'counts')\n",
                r.table
            ),
        );
        let want = vec![(1, r.pairs), (2, r.pairs)];
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = px(api_port, &["run", "-f", script.to_str().expect("utf8"), "-o", "json"]);
            assert!(out.status.success(), "{}: {}", r.table, String::from_utf8_lossy(&out.stderr));
            let mut got: Vec<(i64, usize)> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .map(|row| {
                    (row["trace_role"].as_i64().unwrap_or(-1), row["n"].as_u64().unwrap_or(0).try_into().unwrap_or(0))
                })
                .collect();
            got.sort();
            if got == want {
                break;
            }
            assert!(Instant::now() < deadline, "{}: want {want:?} (role, pairs), got {got:?}", r.table);
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}
