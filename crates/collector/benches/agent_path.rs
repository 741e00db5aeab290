//! The agent's user-space cost per traced HTTP/1 request: kernel events (as the loader decodes
//! them from the ring buffer) through connection tracking, reassembly, the HTTP/1 parser, the
//! stitcher, redaction and row building, to batches appended to a real store table, exactly as
//! the collector thread runs it. The traffic is `scripts/bench-agent.sh`'s worst case: `wrk`
//! and nginx on one host over 16 keep-alive connections, both ends traced, so every request is
//! four data events (the client's write and read, the server's read and write) and two rows.
//!
//! Prints criterion's figures and one line `agent path: <ns> ns of CPU per request` (both sides,
//! the thread's CPU time, which other load on a shared host skews far less than wall time), the
//! figure to compare with the whole agent's CPU per request in `bench-agent.sh`.
//!
//! Owns benchmarking only; uses the collector's public API.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use loupe_collector::events::{ConnKey, Direction, KernelEvent, Role};
use loupe_collector::{CollectorCounters, MemoryBudget, SocketTracer, TableRows, Tables, Tracker, TrackerConfig};
use loupe_common::ClockConverter;
use loupe_store::Store;

/// What `wrk` sends (`wrk -t1 -c16 http://127.0.0.1:18080/`).
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n";
/// What nginx 1.22 (Debian's nginx-light) answers with bench-agent.sh's configuration.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 05:39:44 GMT\r\n\
Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n";
/// Keep-alive connections, as `wrk -c16`.
const CONNECTIONS: usize = 16;
/// Requests per measured iteration.
const REQUESTS: u64 = 1024;
/// Rows per push to the store, the collector's default (`CollectorConfig::push_rows`).
const PUSH_ROWS: usize = 1024;

/// One traced connection end and how far its two streams have got.
struct End {
    key: ConnKey,
    sent: u64,
    received: u64,
}

/// The tracker, the pending rows and the store, as the socket tracer holds them, with the 16
/// connections open on both ends.
struct AgentPath {
    tracker: Tracker,
    rows: TableRows,
    tables: Tables,
    clients: Vec<End>,
    servers: Vec<End>,
    ts_ns: u64,
}

impl AgentPath {
    fn new() -> Self {
        // The smallest memory budget's store, so that the timed part runs in the steady state
        // of a full store (each batch evicts an old one) after a short warm-up, as a long-running
        // agent does, rather than measuring the kernel handing a growing store fresh pages.
        let budget = MemoryBudget::from_mib(MemoryBudget::MIN_MIB).expect("valid budget");
        let store = Store::new(budget.store_config());
        let tables = Tables::register(&store, &SocketTracer::table_specs(), Arc::new(CollectorCounters::default()))
            .expect("register tables");
        let mut tracker = Tracker::new(TrackerConfig::default(), ClockConverter::new());
        let mut rows = TableRows::default();
        let server: SocketAddr = "127.0.0.1:18080".parse().expect("address");
        let (mut clients, mut servers) = (Vec::new(), Vec::new());
        for i in 0..CONNECTIONS {
            let client: SocketAddr = format!("127.0.0.1:{}", 40_000 + i).parse().expect("address");
            for (tgid, role, local, remote, ends) in
                [(100, Role::Client, client, server, &mut clients), (200, Role::Server, server, client, &mut servers)]
            {
                let key = ConnKey { tgid, fd: 10 + i as i32, generation: 1 };
                let open = KernelEvent::ConnOpen {
                    ts_ns: 1,
                    key,
                    role,
                    local: Some(local),
                    remote: Some(remote),
                    proc_start_ns: 1_000_000_000,
                };
                tracker.handle(open, &mut rows);
                ends.push(End { key, sent: 0, received: 0 });
            }
        }
        AgentPath { tracker, rows, tables, clients, servers, ts_ns: 1_000 }
    }

    fn data(end: &mut End, direction: Direction, bytes: &'static [u8], ts_ns: u64) -> KernelEvent<'static> {
        let at = match direction {
            Direction::Egress => &mut end.sent,
            Direction::Ingress => &mut end.received,
        };
        let pos = *at;
        *at += bytes.len() as u64;
        KernelEvent::Data { ts_ns, key: end.key, direction, pos, msg_size: bytes.len() as u64, data: bytes.into() }
    }

    /// `n` requests round-robin over the connections, each as its four data events; rows are
    /// pushed to the store every `PUSH_ROWS`, as the collector does.
    fn requests(&mut self, n: u64) {
        for i in 0..n {
            let c = i as usize % CONNECTIONS;
            self.ts_ns += 7_700;
            let ts = self.ts_ns;
            let events = [
                Self::data(&mut self.clients[c], Direction::Egress, REQUEST, ts),
                Self::data(&mut self.servers[c], Direction::Ingress, REQUEST, ts + 1_000),
                Self::data(&mut self.servers[c], Direction::Egress, RESPONSE, ts + 3_000),
                Self::data(&mut self.clients[c], Direction::Ingress, RESPONSE, ts + 4_000),
            ];
            for event in events {
                self.tracker.handle(event, &mut self.rows);
            }
            if self.rows.len() >= PUSH_ROWS {
                let tables = &self.tables;
                self.rows.finish_each(|table, n, batch| tables.append(table, n, batch));
            }
        }
    }
}

/// Requests that fill the warm-up store (each request is two rows of about 500 bytes).
const WARM_UP_REQUESTS: u64 = 32 * REQUESTS;

fn bench_agent_path(c: &mut Criterion) {
    let mut path = AgentPath::new();
    path.requests(WARM_UP_REQUESTS);
    let mut group = c.benchmark_group("agent_path");
    group.throughput(Throughput::Elements(REQUESTS));
    group.bench_function("http1_nginx_wrk_requests", |b| b.iter(|| path.requests(black_box(REQUESTS))));
    group.finish();
    assert_eq!(path.tracker.stats().gap_bytes, 0, "the recorded traffic parses without loss");
}

criterion_group!(benches, bench_agent_path);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `--test` (cargo test --benches) runs each bench once: skip the timed line then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let mut path = AgentPath::new();
    path.requests(WARM_UP_REQUESTS);
    let rows_before = path.tracker.stats().rows;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let mut requests = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        path.requests(REQUESTS);
        requests += REQUESTS;
    }
    let wall = start.elapsed().as_nanos() as f64 / requests as f64;
    let cpu = (thread_cpu_ns() - cpu_start) as f64 / requests as f64;
    let rows = path.tracker.stats().rows - rows_before;
    assert_eq!(rows, 2 * requests, "every request makes a row on each side");
    println!(
        "agent path: {cpu:.0} ns of CPU per request ({wall:.0} ns wall; {requests} requests, {rows} rows, both sides traced)"
    );
}

/// This thread's CPU time so far.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
