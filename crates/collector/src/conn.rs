//! Connection tracking: per-connection state, stream reassembly by byte position, protocol
//! detection and HTTP/1 parsing into `http_events` rows.
//!
//! Owns the step from [`KernelEvent`]s to [`HttpEventRow`]s. Must not touch the kernel, the store
//! or any clock but the one it is given: it is driven entirely by its inputs, so it is tested
//! with hand-made event sequences.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use loupe_common::{ClockConverter, Upid};
use loupe_protocols::http1::{self, Http1Conn, ParseConfig, Record, Side};
use loupe_protocols::redact;
use loupe_schema::http::HttpEventRow;

use crate::events::{ConnKey, Direction, KernelEvent, Role};

/// Tuning for connection tracking.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// The agent's short id, the high half of every UPID.
    pub asid: u32,
    /// Bytes held per direction while waiting for a missing earlier chunk; past this the hole
    /// is declared a gap and parsing resynchronises.
    pub max_pending_bytes: usize,
    /// Out-of-order chunks older than this (monotonic ns) are delivered with a gap.
    pub max_reorder_wait_ns: u64,
    /// Connections without events for this long (monotonic ns) are forgotten.
    pub idle_timeout_ns: u64,
    /// Body truncation and header limits.
    pub parse: ParseConfig,
    /// Replace credentials (auth headers, cookies, secret query parameters and body fields) by
    /// `[REDACTED]` before a row is built; see `docs/redaction.md`. On by default.
    pub redact: bool,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            asid: 0,
            max_pending_bytes: 1 << 20,
            max_reorder_wait_ns: 100_000_000,
            idle_timeout_ns: 300_000_000_000,
            parse: ParseConfig::default(),
            redact: true,
        }
    }
}

/// Counters of what tracking saw and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Connections opened (or first seen).
    pub conns_opened: u64,
    /// Connections closed or expired.
    pub conns_closed: u64,
    /// Connections classified as HTTP/1.
    pub conns_http: u64,
    /// Connections whose traffic was not a supported protocol.
    pub conns_other: u64,
    /// Bytes lost to capture gaps (truncation or missing chunks).
    pub gap_bytes: u64,
    /// Duplicate or overlapping chunks dropped.
    pub duplicate_chunks: u64,
    /// Rows produced.
    pub rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Undecided,
    Http1,
    Other,
}

struct Chunk {
    ts_ns: u64,
    msg_size: u64,
    data: Vec<u8>,
}

/// One direction's bytes, delivered in position order.
#[derive(Default)]
struct DirStream {
    next_pos: Option<u64>,
    pending: BTreeMap<u64, Chunk>,
    pending_bytes: usize,
}

/// What a direction stream hands on: bytes in order, or a hole (bytes the stream moved but
/// nobody copied: past the kernel's per-syscall copy limit, sent by `sendfile`/`splice`, or
/// lost records), stamped with the syscall that reported it.
enum Piece {
    Bytes { ts_ns: u64, data: Vec<u8> },
    Gap { ts_ns: u64, len: u64 },
}

impl DirStream {
    /// Accepts a chunk at `pos` and pushes whatever became contiguous to `out`.
    fn push(&mut self, pos: u64, chunk: Chunk, cfg: &TrackerConfig, stats: &mut TrackerStats, out: &mut Vec<Piece>) {
        let next = *self.next_pos.get_or_insert(pos);
        if pos < next {
            stats.duplicate_chunks += 1;
            return;
        }
        if pos == next && self.pending.is_empty() {
            // The common case, chunks in order: no detour through the reorder map.
            self.deliver(pos, chunk, stats, out);
            return;
        }
        self.pending_bytes += chunk.data.len();
        if self.pending.insert(pos, chunk).is_some() {
            stats.duplicate_chunks += 1;
        }
        self.drain(cfg, None, stats, out);
    }

    /// Delivers contiguous chunks; declares a gap before the oldest pending chunk when too much
    /// is pending or it waited too long (judged against `now_ns` when given).
    fn drain(&mut self, cfg: &TrackerConfig, now_ns: Option<u64>, stats: &mut TrackerStats, out: &mut Vec<Piece>) {
        while let Some((&pos, first)) = self.pending.iter().next() {
            let Some(next) = self.next_pos else { return };
            if pos > next {
                let stale = now_ns.is_some_and(|now| now.saturating_sub(first.ts_ns) > cfg.max_reorder_wait_ns);
                if self.pending_bytes <= cfg.max_pending_bytes && !stale {
                    return;
                }
                out.push(Piece::Gap { ts_ns: first.ts_ns, len: pos - next });
                stats.gap_bytes += pos - next;
                self.next_pos = Some(pos);
            }
            let Some(chunk) = self.pending.remove(&pos) else { return };
            self.pending_bytes -= chunk.data.len();
            self.deliver(pos, chunk, stats, out);
        }
    }

    /// Hands on the chunk at `pos` (the next expected position), and a gap for what it did not capture.
    fn deliver(&mut self, pos: u64, chunk: Chunk, stats: &mut TrackerStats, out: &mut Vec<Piece>) {
        let captured = chunk.data.len() as u64;
        let missing = chunk.msg_size.saturating_sub(captured);
        self.next_pos = Some(pos + chunk.msg_size.max(captured));
        let ts_ns = chunk.ts_ns;
        if !chunk.data.is_empty() {
            out.push(Piece::Bytes { ts_ns, data: chunk.data });
        }
        if missing > 0 {
            out.push(Piece::Gap { ts_ns, len: missing });
            stats.gap_bytes += missing;
        }
    }
}

struct Conn {
    role: Role,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    last_ns: u64,
    protocol: Protocol,
    egress: DirStream,
    ingress: DirStream,
    http: Option<Http1Conn>,
}

impl Conn {
    fn new(role: Role, local: Option<SocketAddr>, remote: Option<SocketAddr>, ts_ns: u64) -> Self {
        Conn {
            role,
            local,
            remote,
            last_ns: ts_ns,
            protocol: Protocol::Undecided,
            egress: DirStream::default(),
            ingress: DirStream::default(),
            http: None,
        }
    }
}

/// Tracks every traced connection of this node.
pub struct Tracker {
    config: TrackerConfig,
    clock: ClockConverter,
    conns: HashMap<ConnKey, Conn>,
    upids: HashMap<u32, String>,
    stats: TrackerStats,
    pieces: Vec<Piece>,
    records: Vec<Record>,
}

impl Tracker {
    /// A tracker converting timestamps with `clock`.
    pub fn new(config: TrackerConfig, clock: ClockConverter) -> Self {
        Tracker {
            config,
            clock,
            conns: HashMap::new(),
            upids: HashMap::new(),
            stats: TrackerStats::default(),
            pieces: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &TrackerStats {
        &self.stats
    }

    /// Connections tracked now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Consumes one event; finished request/response pairs become rows in `rows`.
    pub fn handle(&mut self, event: KernelEvent, rows: &mut Vec<HttpEventRow>) {
        match event {
            KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns } => {
                if proc_start_ns != 0 {
                    // Fresh from the kernel, so it also replaces an entry left by a reused pid.
                    let upid = Upid::from_start_boottime_ns(self.config.asid, key.tgid, proc_start_ns);
                    self.upids.insert(key.tgid, upid.to_string());
                }
                if let Some(old) = self.conns.remove(&key) {
                    self.finish(key, old, ts_ns, rows);
                }
                self.stats.conns_opened += 1;
                let mut conn = Conn::new(role, local, remote, ts_ns);
                // The kernel counts positions from the open event on, so both streams start at 0;
                // a connection first seen on data (its open event lost) starts where it is found.
                conn.egress.next_pos = Some(0);
                conn.ingress.next_pos = Some(0);
                self.conns.insert(key, conn);
            }
            KernelEvent::Data { ts_ns, key, direction, pos, msg_size, data } => {
                let conn = self.conns.entry(key).or_insert_with(|| {
                    self.stats.conns_opened += 1;
                    Conn::new(Role::Unknown, None, None, ts_ns)
                });
                conn.last_ns = ts_ns;
                if conn.protocol == Protocol::Other {
                    return;
                }
                let stream = match direction {
                    Direction::Egress => &mut conn.egress,
                    Direction::Ingress => &mut conn.ingress,
                };
                let mut pieces = std::mem::take(&mut self.pieces);
                stream.push(pos, Chunk { ts_ns, msg_size, data }, &self.config, &mut self.stats, &mut pieces);
                self.deliver(key, direction, &mut pieces, rows);
                self.pieces = pieces;
            }
            KernelEvent::ConnClose { ts_ns, key, .. } => {
                if let Some(conn) = self.conns.remove(&key) {
                    self.finish(key, conn, ts_ns, rows);
                }
            }
        }
    }

    /// Periodic upkeep at monotonic time `now_ns`: delivers chunks that waited too long for a
    /// missing predecessor and forgets idle connections.
    pub fn tick(&mut self, now_ns: u64, rows: &mut Vec<HttpEventRow>) {
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            let mut pieces = std::mem::take(&mut self.pieces);
            for direction in [Direction::Egress, Direction::Ingress] {
                if let Some(conn) = self.conns.get_mut(&key) {
                    let stream = match direction {
                        Direction::Egress => &mut conn.egress,
                        Direction::Ingress => &mut conn.ingress,
                    };
                    stream.drain(&self.config, Some(now_ns), &mut self.stats, &mut pieces);
                }
                self.deliver(key, direction, &mut pieces, rows);
            }
            self.pieces = pieces;
            let idle =
                self.conns.get(&key).is_some_and(|c| now_ns.saturating_sub(c.last_ns) > self.config.idle_timeout_ns);
            if idle && let Some(conn) = self.conns.remove(&key) {
                self.finish(key, conn, now_ns, rows);
            }
        }
        // Forget UPIDs of processes that no longer have connections.
        if self.upids.len() > 4 * self.conns.len() + 64 {
            let live: std::collections::HashSet<u32> = self.conns.keys().map(|k| k.tgid).collect();
            self.upids.retain(|pid, _| live.contains(pid));
        }
    }

    fn deliver(&mut self, key: ConnKey, direction: Direction, pieces: &mut Vec<Piece>, rows: &mut Vec<HttpEventRow>) {
        let Some(conn) = self.conns.get_mut(&key) else {
            pieces.clear();
            return;
        };
        for piece in pieces.drain(..) {
            if conn.protocol == Protocol::Undecided {
                let Piece::Bytes { data, .. } = &piece else { continue };
                let is_req = http1::looks_like_request(data);
                let is_resp = http1::looks_like_response(data);
                if !is_req && !is_resp {
                    conn.protocol = Protocol::Other;
                    self.stats.conns_other += 1;
                    break;
                }
                if conn.role == Role::Unknown {
                    // A process that sends a request, or receives one, tells its role.
                    conn.role = match (direction, is_req) {
                        (Direction::Egress, true) | (Direction::Ingress, false) => Role::Client,
                        _ => Role::Server,
                    };
                }
                conn.protocol = Protocol::Http1;
                conn.http = Some(Http1Conn::new(self.config.parse));
                self.stats.conns_http += 1;
            }
            let Some(http) = conn.http.as_mut() else { break };
            let request_side = matches!(
                (conn.role, direction),
                (Role::Client, Direction::Egress) | (Role::Server, Direction::Ingress)
            );
            let side = if request_side { Side::Request } else { Side::Response };
            match piece {
                Piece::Bytes { ts_ns, data } => http.feed(side, &data, ts_ns),
                Piece::Gap { ts_ns, len } => http.gap(side, len, ts_ns),
            }
        }
        pieces.clear();
        if let Some(conn) = self.conns.get_mut(&key) {
            emit(key.tgid, conn, &self.config, &self.clock, &mut self.upids, &mut self.records, &mut self.stats, rows);
        }
    }

    fn finish(&mut self, key: ConnKey, mut conn: Conn, ts_ns: u64, rows: &mut Vec<HttpEventRow>) {
        self.stats.conns_closed += 1;
        if let Some(http) = conn.http.as_mut() {
            http.close(ts_ns);
        }
        emit(key.tgid, &mut conn, &self.config, &self.clock, &mut self.upids, &mut self.records, &mut self.stats, rows);
    }
}

/// Turns the connection's finished request/response pairs into rows.
#[allow(clippy::too_many_arguments)] // split borrows of the tracker's fields
fn emit(
    tgid: u32,
    conn: &mut Conn,
    config: &TrackerConfig,
    clock: &ClockConverter,
    upids: &mut HashMap<u32, String>,
    records: &mut Vec<Record>,
    stats: &mut TrackerStats,
    rows: &mut Vec<HttpEventRow>,
) {
    {
        let Some(http) = conn.http.as_mut() else { return };
        http.drain_records(records);
        if records.is_empty() {
            return;
        }
        let asid = config.asid;
        let upid = upids
            .entry(tgid)
            .or_insert_with(|| {
                Upid::for_local_pid(asid, tgid).unwrap_or(Upid { asid, pid: tgid, start_ticks: 0 }).to_string()
            })
            .clone();
        let (local_addr, local_port) = addr_parts(conn.local);
        let (remote_addr, remote_port) = addr_parts(conn.remote);
        for mut rec in records.drain(..) {
            // Whether a body is whole is a fact of the capture: decide it before redaction changes the text.
            let cut = (rec.req.body_truncated(), rec.resp.body_truncated());
            if config.redact {
                redact::http1_record(&mut rec);
            }
            stats.rows += 1;
            rows.push(HttpEventRow {
                time_ns: clock.to_unix_ns(rec.resp.ts_ns),
                upid: upid.clone(),
                remote_addr: remote_addr.clone(),
                remote_port,
                local_addr: local_addr.clone(),
                local_port,
                trace_role: conn.role.as_trace_role(),
                encrypted: false,
                major_version: 1,
                minor_version: i64::from(rec.req.minor_version),
                content_type: rec.resp.content_type().max(rec.req.content_type()),
                req_headers: rec.req.headers_json(),
                req_method: rec.req.method.clone(),
                req_path: rec.req.path.clone(),
                req_body: body_text(&rec.req, cut.0),
                req_body_size: rec.req.body_size as i64,
                resp_headers: rec.resp.headers_json(),
                resp_status: i64::from(rec.resp.status),
                resp_message: rec.resp.reason.clone(),
                resp_body: body_text(&rec.resp, cut.1),
                resp_body_size: rec.resp.body_size as i64,
                latency_ns: rec.latency_ns as i64,
            });
        }
    }
}

/// Ends a `req_body` / `resp_body` value that holds less than the whole body (longer than
/// `max_body_bytes`, or partly not captured); `*_body_size` has the real size. Pixie's marker.
pub const BODY_TRUNCATED_MARKER: &str = "... [TRUNCATED]";

/// The kept body as column text, marked when it is not the whole body (`cut`).
fn body_text(message: &http1::Message, cut: bool) -> String {
    let mut text = String::from_utf8_lossy(&message.body).into_owned();
    if cut {
        text.push_str(BODY_TRUNCATED_MARKER);
    }
    text
}

/// Address text and port; IPv4-mapped IPv6 addresses print as IPv4, as Pixie shows them.
fn addr_parts(addr: Option<SocketAddr>) -> (String, i64) {
    match addr {
        Some(a) => {
            let ip = match a.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            (ip.to_string(), i64::from(a.port()))
        }
        None => ("-".to_string(), -1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: ConnKey = ConnKey { tgid: 4242, fd: 7, generation: 1 };

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default(), ClockConverter::new())
    }

    fn open(role: Role) -> KernelEvent {
        KernelEvent::ConnOpen {
            ts_ns: 1,
            key: KEY,
            role,
            local: Some("127.0.0.1:5000".parse().expect("addr")),
            remote: Some("[::ffff:127.0.0.1]:8080".parse().expect("addr")),
            proc_start_ns: 0,
        }
    }

    fn data(ts_ns: u64, direction: Direction, pos: u64, bytes: &[u8]) -> KernelEvent {
        KernelEvent::Data { ts_ns, key: KEY, direction, pos, msg_size: bytes.len() as u64, data: bytes.to_vec() }
    }

    const REQ: &[u8] = b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

    #[test]
    fn client_request_and_response_become_one_row() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1_000, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(5_000, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.req_method.as_str(), r.req_path.as_str(), r.resp_status), ("GET", "/a?x=1", 200));
        assert_eq!((r.trace_role, r.latency_ns, r.resp_body.as_str()), (1, 4_000, "hi"));
        assert_eq!((r.remote_addr.as_str(), r.remote_port, r.local_port), ("127.0.0.1", 8080, 5000));
        assert!(r.upid.starts_with("0:4242:"));
        assert_eq!(r.minor_version, 1);
    }

    #[test]
    fn upid_comes_from_the_kernel_start_time_when_given() {
        let mut t = tracker();
        let mut rows = Vec::new();
        let KernelEvent::ConnOpen { ts_ns, key, role, local, remote, .. } = open(Role::Client) else { unreachable!() };
        t.handle(KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns: 1_230_000_000 }, &mut rows);
        t.handle(data(1, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(rows[0].upid, "0:4242:123");
    }

    #[test]
    fn out_of_order_chunks_are_reassembled() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Server), &mut rows);
        t.handle(data(10, Direction::Ingress, 0, REQ), &mut rows);
        let (a, b) = RESP.split_at(20);
        t.handle(data(30, Direction::Egress, 20, b), &mut rows);
        assert!(rows.is_empty());
        t.handle(data(20, Direction::Egress, 0, a), &mut rows);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].trace_role, 2);
        assert_eq!(t.stats().gap_bytes, 0);
    }

    #[test]
    fn unknown_role_is_inferred_from_the_first_bytes() {
        let mut t = tracker();
        let mut rows = Vec::new();
        // No open event: a connection that predates tracing, first seen receiving a request.
        t.handle(data(10, Direction::Ingress, 500, REQ), &mut rows);
        t.handle(data(20, Direction::Egress, 900, RESP), &mut rows);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].trace_role, 2);
        assert_eq!(rows[0].remote_addr, "-");
    }

    #[test]
    fn other_protocols_are_ignored() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(10, Direction::Egress, 0, b"SSH-2.0-OpenSSH_9.2\r\n"), &mut rows);
        t.handle(data(20, Direction::Egress, 21, REQ), &mut rows);
        assert!(rows.is_empty());
        assert_eq!(t.stats().conns_other, 1);
    }

    #[test]
    fn truncated_capture_is_a_gap_and_parsing_resumes() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1_000, Direction::Egress, 0, REQ), &mut rows);
        // A big response of which only the first bytes were captured: the gap runs to the
        // body's last byte, which completes the response.
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nxxxx";
        let resp_len = head.len() as u64 - 4 + 100_000;
        t.handle(
            KernelEvent::Data {
                ts_ns: 2_000,
                key: KEY,
                direction: Direction::Ingress,
                pos: 0,
                msg_size: resp_len,
                data: head.to_vec(),
            },
            &mut rows,
        );
        assert_eq!(t.stats().gap_bytes, 100_000 - 4);
        assert_eq!(rows.len(), 1, "the gap completes the response");
        // Keep-alive: the next exchange on the same connection parses from its first byte.
        t.handle(data(3_000, Direction::Egress, REQ.len() as u64, REQ), &mut rows);
        t.handle(data(4_500, Direction::Ingress, resp_len, RESP), &mut rows);
        let got: Vec<(i64, String, i64, i64)> =
            rows.iter().map(|r| (r.resp_status, r.resp_body.clone(), r.resp_body_size, r.latency_ns)).collect();
        assert_eq!(got, [(200, "xxxx... [TRUNCATED]".to_string(), 100_000, 1_000), (200, "hi".to_string(), 2, 1_500)]);
        assert_eq!(t.stats().rows, 2);
        assert_eq!(t.stats().gap_bytes, 100_000 - 4);
    }

    /// One syscall as the loader decodes it: records of `copied` bytes at most, contiguous from
    /// `pos`, the last accounting for what the kernel did not copy.
    fn syscall(ts_ns: u64, direction: Direction, pos: u64, bytes: &[u8], copied: usize) -> Vec<KernelEvent> {
        let copied = copied.min(bytes.len());
        let records: Vec<&[u8]> = bytes[..copied].chunks(8192).collect();
        let n = records.len().max(1);
        let mut at = pos;
        (0..n)
            .map(|i| {
                let data = records.get(i).copied().unwrap_or_default().to_vec();
                let msg_size = if i + 1 == n { pos + bytes.len() as u64 - at } else { data.len() as u64 };
                let event = KernelEvent::Data { ts_ns, key: KEY, direction, pos: at, msg_size, data };
                at += msg_size;
                event
            })
            .collect()
    }

    #[test]
    fn server_rows_keep_the_real_size_of_bodies_larger_than_a_capture() {
        // A server writes the head, then a 1 MB body in 64 KiB writes of which 32 KiB are
        // copied, then `sendfile`s a 40 KB body (nothing copied), on one keep-alive connection.
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Server), &mut rows);
        let mut out_pos = 0u64;
        let mut in_pos = 0u64;
        let mut ts = 10;
        for (path, size, sendfile) in [("/big", 1_000_000u64, false), ("/file", 40_960, true), ("/small", 2, false)] {
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
            ts += 10;
            for e in syscall(ts, Direction::Ingress, in_pos, req.as_bytes(), 32_768) {
                t.handle(e, &mut rows);
            }
            in_pos += req.len() as u64;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n");
            ts += 10;
            for e in syscall(ts, Direction::Egress, out_pos, head.as_bytes(), 32_768) {
                t.handle(e, &mut rows);
            }
            out_pos += head.len() as u64;
            let mut sent = 0;
            while sent < size {
                let n = (size - sent).min(65_536);
                let copied = if sendfile { 0 } else { 32_768 };
                ts += 10;
                for e in syscall(ts, Direction::Egress, out_pos, &vec![b'b'; n as usize], copied) {
                    t.handle(e, &mut rows);
                }
                out_pos += n;
                sent += n;
            }
        }
        let got: Vec<(String, i64, i64, usize)> =
            rows.iter().map(|r| (r.req_path.clone(), r.resp_status, r.resp_body_size, r.resp_body.len())).collect();
        let marked = 512 + BODY_TRUNCATED_MARKER.len();
        assert_eq!(
            got,
            [
                ("/big".to_string(), 200, 1_000_000, marked),
                ("/file".to_string(), 200, 40_960, BODY_TRUNCATED_MARKER.len()),
                ("/small".to_string(), 200, 2, 2),
            ]
        );
        assert!(rows.iter().all(|r| r.trace_role == 2));
        assert_eq!(t.stats().gap_bytes, 15 * 32_768 + 40_960);
    }

    #[test]
    fn close_flushes_a_close_delimited_response() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1, Direction::Egress, 0, b"GET / HTTP/1.0\r\n\r\n"), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, b"HTTP/1.0 200 OK\r\n\r\nbody until close"), &mut rows);
        assert!(rows.is_empty());
        t.handle(KernelEvent::ConnClose { ts_ns: 3, key: KEY, bytes_sent: 0, bytes_recv: 0 }, &mut rows);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].resp_body, "body until close");
        assert_eq!(rows[0].minor_version, 0);
        assert_eq!(t.open_connections(), 0);
    }

    #[test]
    fn a_missing_chunk_is_given_up_on_after_the_reorder_wait() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
        // The next request's first 10 bytes never arrive; the rest and a whole request do.
        let second = [REQ, REQ].concat();
        let base = REQ.len() as u64;
        t.handle(data(3, Direction::Egress, base + 10, &second[10..]), &mut rows);
        t.tick(3 + TrackerConfig::default().max_reorder_wait_ns / 2, &mut rows);
        assert_eq!(t.stats().gap_bytes, 0, "waits for the missing chunk first");
        t.tick(3 + TrackerConfig::default().max_reorder_wait_ns * 2, &mut rows);
        assert_eq!(t.stats().gap_bytes, 10);
        t.handle(data(9, Direction::Ingress, RESP.len() as u64, RESP), &mut rows);
        assert_eq!(rows.len(), 2, "the intact request after the gap pairs with its response");
    }

    #[test]
    fn idle_connections_are_forgotten() {
        let mut t = tracker();
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.tick(2 + TrackerConfig::default().idle_timeout_ns, &mut rows);
        assert_eq!(t.open_connections(), 0);
        assert_eq!(t.stats().conns_closed, 1);
    }

    #[test]
    fn credentials_are_redacted_before_the_row_unless_turned_off() {
        const SECRET_REQ: &[u8] = b"GET /a?token=t0k HTTP/1.1\r\nAuthorization: Bearer b3arer\r\n\r\n";
        for (redact, path, auth) in
            [(true, "/a?token=[REDACTED]", "Bearer [REDACTED]"), (false, "/a?token=t0k", "Bearer b3arer")]
        {
            let mut t = Tracker::new(TrackerConfig { redact, ..TrackerConfig::default() }, ClockConverter::new());
            let mut rows = Vec::new();
            t.handle(open(Role::Client), &mut rows);
            t.handle(data(1, Direction::Egress, 0, SECRET_REQ), &mut rows);
            t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
            assert_eq!(rows[0].req_path, path);
            assert_eq!(rows[0].req_headers, format!(r#"{{"Authorization":"{auth}"}}"#));
        }
    }

    /// A whole body stays unmarked when redaction shortens it: whether a body is cut is a fact of the capture.
    #[test]
    fn a_whole_body_that_redaction_shortened_is_not_marked_truncated() {
        const BODY: &str = r#"{"user":"a","password":"a long secret value"}"#;
        let req = format!(
            "POST /login HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
            BODY.len()
        );
        let mut t = Tracker::new(TrackerConfig::default(), ClockConverter::new());
        let mut rows = Vec::new();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1, Direction::Egress, 0, req.as_bytes()), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(rows[0].req_body, r#"{"user":"a","password":"[REDACTED]"}"#);
        assert_eq!(rows[0].req_body_size, BODY.len() as i64);
    }
}
