//! Connection tracking: per-connection state from kernel events to protocol rows.
//!
//! Owns [`Tracker`]: one entry per traced socket (role, addresses, last activity), its two
//! [`DirStream`]s (see `reassembly`), the protocol chosen for it (see `infer`) and its parser
//! (see `protocols`), the UPID cache, idle expiry and [`TrackerStats`]. Must not touch the kernel,
//! the store or any clock but the one it is given: it is driven entirely by its inputs, so it is
//! tested with hand-made event sequences.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use loupe_common::{ClockConverter, Upid};
use loupe_protocols::Side;
use loupe_protocols::http1::ParseConfig;

use loupe_schema::protocols::ConnStatsBuilder;

use super::conn_stats::{ClosedStats, ConnStatsKey, traffic_protocol};
use super::infer;
use super::live::LiveSettings;
use super::port_protocols::{self, PortProtocol};
use super::protocols::{ConnRows, Losses, PROTOCOLS, RowContext, TableRows, addr_parts};
use super::reassembly::{Chunk, DirStream, Piece, ReorderLimits, StreamCounters};
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
    /// Body truncation and header limits; `max_body_bytes` also bounds Redis arguments and replies.
    pub parse: ParseConfig,
    /// Replace credentials (auth headers, cookies, secret query parameters and body fields, Redis
    /// `AUTH` arguments) by `[REDACTED]` before a row is built; see `docs/redaction.md`. On by default.
    pub redact: bool,
    /// Most connections tracked at once (the memory budget sets it). Past it a new connection is
    /// not tracked: its open and data records are counted (`conns_over_cap`, `records_over_cap`)
    /// and dropped, until a tracked connection ends.
    pub max_connections: usize,
    /// Most complete messages one connection holds waiting for their partner, per queue
    /// (requests, responses); past it the oldest is dropped (`http1_messages_overflow`,
    /// `queue_full`). Protocols that take no bound keep their own.
    pub max_pending_messages: usize,
    /// Most such messages held over all connections (the memory budget sets it); past it the
    /// connection adding one drops its oldest (`messages_dropped`, `pending_total_cap`).
    pub max_pending_messages_total: usize,
    /// Per-port protocol overrides: a connection with such a local or remote port is parsed as that
    /// protocol (not inferred), or not at all. The kernel applies the same ones (`TracerConfig`).
    pub port_protocols: Vec<PortProtocol>,
    /// Sampling and the protocols parsed, changed while the tracker runs (the agent configuration).
    pub live: Arc<LiveSettings>,
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
            max_connections: 65_536,
            max_pending_messages: 256,
            max_pending_messages_total: 65_536,
            port_protocols: Vec::new(),
            live: Arc::default(),
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
    /// Connections classified as a parsed protocol (HTTP/1, Redis, ...).
    pub conns_parsed: u64,
    /// Connections whose traffic was not a supported protocol.
    pub conns_other: u64,
    /// Connections left out by sampling.
    pub conns_unsampled: u64,
    /// Connections (new or open) left unparsed because their protocol was disabled.
    pub conns_disabled: u64,
    /// Bytes lost to capture gaps (truncation or missing chunks).
    pub gap_bytes: u64,
    /// Duplicate or overlapping chunks dropped.
    pub duplicate_chunks: u64,
    /// Rows produced.
    pub rows: u64,
    /// Connection opens refused because `max_connections` were tracked.
    pub conns_over_cap: u64,
    /// Data records dropped because their connection was not tracked, over the cap.
    pub records_over_cap: u64,
    /// Stream bytes those records accounted for.
    pub bytes_over_cap: u64,
    /// Unpaired messages dropped because `max_pending_messages_total` were held.
    pub messages_over_total_cap: u64,
}

/// What a connection's bytes are known to be.
enum Parsing {
    /// No bytes seen yet.
    Undecided,
    /// Not a protocol we parse: its bytes are ignored.
    Other,
    /// Parsed by `PROTOCOLS[protocol]`.
    Parsed { protocol: usize, parser: Box<dyn ConnRows> },
}

struct Conn {
    role: Role,
    /// Its data is TLS plaintext (rows are `encrypted`).
    encrypted: bool,
    /// Address texts and ports as rows show them, made once per connection.
    local: (String, i64),
    remote: (String, i64),
    last_ns: u64,
    /// Messages its parser holds waiting for their partner, as last counted in `Tracker::pending`.
    pending: usize,
    parsing: Parsing,
    egress: DirStream,
    ingress: DirStream,
    /// For `conn_stats`: the socket's address family, and bytes each way so far.
    family: i64,
    bytes_sent: u64,
    bytes_recv: u64,
}

impl Conn {
    fn new(
        role: Role,
        local: Option<SocketAddr>,
        remote: Option<SocketAddr>,
        ts_ns: u64,
        streams_at: Option<u64>,
    ) -> Self {
        let stream = || streams_at.map_or_else(DirStream::default, DirStream::starting_at);
        Conn {
            role,
            encrypted: false,
            local: addr_parts(local),
            remote: addr_parts(remote),
            last_ns: ts_ns,
            pending: 0,
            parsing: Parsing::Undecided,
            egress: stream(),
            ingress: stream(),
            family: match remote {
                Some(SocketAddr::V4(_)) => 2,
                Some(SocketAddr::V6(_)) => 10,
                None => 0,
            },
            bytes_sent: 0,
            bytes_recv: 0,
        }
    }

    fn stream(&mut self, direction: Direction) -> &mut DirStream {
        match direction {
            Direction::Egress => &mut self.egress,
            Direction::Ingress => &mut self.ingress,
        }
    }

    /// The side of the protocol a direction carries, from the traced process's role.
    fn side(&self, direction: Direction) -> Side {
        match (self.role, direction) {
            (Role::Client, Direction::Egress) | (Role::Server, Direction::Ingress) => Side::Request,
            _ => Side::Response,
        }
    }
}

/// Hashes [`ConnKey`]s for the connection table, which every record looks up, and pids for the
/// UPID cache, which every row looks up: SipHash (the default) was a visible part of the agent's
/// profile, and the keys (pid, fd, kernel timestamp) come from the kernel, not from traffic, so
/// flooding resistance buys nothing here.
#[derive(Default, Clone, Copy)]
struct BuildConnKeyHasher;

impl std::hash::BuildHasher for BuildConnKeyHasher {
    type Hasher = ConnKeyHasher;
    fn build_hasher(&self) -> ConnKeyHasher {
        ConnKeyHasher(0)
    }
}

/// A multiply-rotate hash over the key's integers (the FxHash scheme).
struct ConnKeyHasher(u64);

impl std::hash::Hasher for ConnKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
    fn write_u64(&mut self, n: u64) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(K);
    }
}

/// Most keys `conn_stats` keeps for connections gone (a server's clients each have a key of their
/// own, by remote port): about 200 bytes each.
const MAX_CONN_STATS_KEYS: usize = 65_536;

/// Tracks every traced connection of this node.
pub struct Tracker {
    config: TrackerConfig,
    clock: ClockConverter,
    conns: HashMap<ConnKey, Conn, BuildConnKeyHasher>,
    upids: HashMap<u32, String, BuildConnKeyHasher>,
    stats: TrackerStats,
    streams: StreamCounters,
    pieces: Vec<Piece>,
    /// What the parsers of connections already gone lost, per `PROTOCOLS` slot.
    closed_losses: Vec<Losses>,
    /// Unpaired messages held over all connections (the sum of their `pending`).
    pending: usize,
    /// UDP sockets → the keys of their per-peer exchanges in `conns` (see [`datagram_flow`]), so a
    /// socket's close ends them all. Pruned of expired keys on `tick`.
    dgram_flows: HashMap<ConnKey, Vec<ConnKey>, BuildConnKeyHasher>,
    /// `conn_stats` of connections already gone.
    closed_stats: ClosedStats,
}

/// The key a UDP socket's exchanges with one peer are tracked under: the socket's key with the
/// peer mixed into its generation, so each peer gets its own parser, addresses and role.
fn datagram_flow(socket: ConnKey, peer: Option<SocketAddr>) -> ConnKey {
    use std::hash::BuildHasher;
    ConnKey { generation: socket.generation ^ BuildConnKeyHasher.hash_one(peer).max(1), ..socket }
}

impl Tracker {
    /// A tracker converting timestamps with `clock`.
    pub fn new(config: TrackerConfig, clock: ClockConverter) -> Self {
        Tracker {
            config,
            clock,
            conns: HashMap::default(),
            upids: HashMap::default(),
            stats: TrackerStats::default(),
            streams: StreamCounters::default(),
            pieces: Vec::new(),
            closed_losses: vec![Losses::default(); PROTOCOLS.len()],
            pending: 0,
            dgram_flows: HashMap::default(),
            closed_stats: ClosedStats::new(MAX_CONN_STATS_KEYS),
        }
    }

    /// What the parsers lost, per protocol (`(name, losses)` in `PROTOCOLS` order): connections
    /// gone and open ones alike. Walks the open connections: call it for a sample, not per event.
    pub fn losses(&self) -> Vec<(&'static str, Losses)> {
        let mut total = self.closed_losses.clone();
        for conn in self.conns.values() {
            if let Parsing::Parsed { protocol, parser } = &conn.parsing
                && let Some(t) = total.get_mut(*protocol)
            {
                t.add(parser.losses());
            }
        }
        PROTOCOLS.iter().zip(total).map(|(p, l)| (p.name(), l)).collect()
    }

    /// Counters so far.
    pub fn stats(&self) -> TrackerStats {
        TrackerStats {
            gap_bytes: self.streams.gap_bytes,
            duplicate_chunks: self.streams.duplicate_chunks,
            ..self.stats.clone()
        }
    }

    /// One `conn_stats` report at Unix time `time_ns`: every connection seen since tracing began,
    /// cumulative, one row per (process, remote endpoint, role, protocol, TLS).
    pub fn conn_stats(&mut self, time_ns: i64) -> ConnStatsBuilder {
        let Tracker { conns, upids, config, closed_stats, .. } = self;
        let open: Vec<(ConnStatsKey, u64, u64)> = conns
            .iter()
            .map(|(key, conn)| (conn_stats_key(upids, config.asid, *key, conn), conn.bytes_sent, conn.bytes_recv))
            .collect();
        closed_stats.report(open, time_ns)
    }

    /// Closed connections left out of `conn_stats` because its table of keys was full.
    pub fn conn_stats_dropped(&self) -> u64 {
        self.closed_stats.dropped
    }

    /// Connections tracked now.
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    fn limits(&self) -> ReorderLimits {
        ReorderLimits {
            max_pending_bytes: self.config.max_pending_bytes,
            max_reorder_wait_ns: self.config.max_reorder_wait_ns,
        }
    }

    /// Consumes one event; finished exchanges become rows of their protocol's table in `rows`.
    pub fn handle(&mut self, event: KernelEvent<'_>, rows: &mut TableRows) {
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
                if self.conns.len() >= self.config.max_connections {
                    self.stats.conns_over_cap += 1;
                    return;
                }
                self.stats.conns_opened += 1;
                // Seen opening, so both streams start at byte 0 (`pos` counts from the open); a
                // connection first seen on data (its open event lost) starts where it is found.
                self.conns.insert(key, Conn::new(role, local, remote, ts_ns, Some(0)));
            }
            KernelEvent::Data { ts_ns, key, direction, pos, msg_size, data } => {
                let limits = self.limits();
                if self.conns.len() >= self.config.max_connections && !self.conns.contains_key(&key) {
                    self.stats.records_over_cap += 1;
                    self.stats.bytes_over_cap += msg_size;
                    return;
                }
                let conn = self.conns.entry(key).or_insert_with(|| {
                    self.stats.conns_opened += 1;
                    Conn::new(Role::Unknown, None, None, ts_ns, None)
                });
                conn.last_ns = ts_ns;
                let end = pos.saturating_add(msg_size);
                match direction {
                    Direction::Egress => conn.bytes_sent = conn.bytes_sent.max(end),
                    Direction::Ingress => conn.bytes_recv = conn.bytes_recv.max(end),
                }
                if matches!(conn.parsing, Parsing::Other) {
                    return;
                }
                // The common case, in order: the parser reads the bytes where the ring buffer has them.
                if let Some(missing) =
                    conn.stream(direction).take_in_order(pos, msg_size, data.len(), &mut self.streams)
                {
                    let stats = &mut self.stats;
                    if !data.is_empty() {
                        feed_piece(conn, stats, &self.config, direction, PieceRef::Bytes { ts_ns, data: &data });
                    }
                    if missing > 0 {
                        feed_piece(conn, stats, &self.config, direction, PieceRef::Gap { ts_ns, len: missing });
                    }
                    bound_pending(conn, &mut self.pending, stats, self.config.max_pending_messages_total);
                    // The connection is at hand: no second lookup.
                    emit_rows(key, conn, &mut self.upids, &self.clock, &self.config, stats, rows);
                    return;
                }
                let mut pieces = std::mem::take(&mut self.pieces);
                conn.stream(direction).push(
                    pos,
                    Chunk { ts_ns, msg_size, data: data.into_owned() },
                    &limits,
                    &mut self.streams,
                    &mut pieces,
                );
                self.deliver(key, direction, &mut pieces, rows);
                self.pieces = pieces;
            }
            KernelEvent::Datagram { ts_ns, key, direction, local, remote, msg_size, data } => {
                self.datagram(ts_ns, key, direction, (local, remote), msg_size, &data, rows);
            }
            KernelEvent::TlsConn { key, .. } => {
                if let Some(conn) = self.conns.get_mut(&key) {
                    conn.encrypted = true;
                }
            }
            KernelEvent::ConnClose { ts_ns, key, bytes_sent, bytes_recv } => {
                if let Some(mut conn) = self.conns.remove(&key) {
                    // The kernel's totals also count what was never exported.
                    conn.bytes_sent = conn.bytes_sent.max(bytes_sent);
                    conn.bytes_recv = conn.bytes_recv.max(bytes_recv);
                    self.finish(key, conn, ts_ns, rows);
                }
                for flow in self.dgram_flows.remove(&key).unwrap_or_default() {
                    if let Some(conn) = self.conns.remove(&flow) {
                        self.finish(flow, conn, ts_ns, rows);
                    }
                }
            }
            KernelEvent::ProcExit { ts_ns, tgid } => {
                // The exit closed every fd of the process without a close syscall.
                let ended: Vec<ConnKey> = self.conns.keys().filter(|k| k.tgid == tgid).copied().collect();
                for key in ended {
                    if let Some(conn) = self.conns.remove(&key) {
                        self.finish(key, conn, ts_ns, rows);
                    }
                }
                self.upids.remove(&tgid);
                self.dgram_flows.retain(|k, _| k.tgid != tgid);
            }
        }
    }

    /// One whole datagram of a UDP socket: fed to the parser of the socket's exchange with its peer,
    /// started on the first datagram that a protocol recognises (the others are dropped).
    #[allow(clippy::too_many_arguments)]
    fn datagram(
        &mut self,
        ts_ns: u64,
        socket: ConnKey,
        direction: Direction,
        (local, remote): (Option<SocketAddr>, Option<SocketAddr>),
        msg_size: u64,
        data: &[u8],
        rows: &mut TableRows,
    ) {
        let flow = datagram_flow(socket, remote);
        if !self.conns.contains_key(&flow) {
            if self.conns.len() >= self.config.max_connections {
                self.stats.records_over_cap += 1;
                self.stats.bytes_over_cap += msg_size;
                return;
            }
            let Some(found) = infer::infer_datagram(data, direction) else {
                self.stats.conns_other += 1;
                return;
            };
            let Some(protocol) = PROTOCOLS.get(found.protocol) else { return };
            if !self.config.live.enabled(found.protocol) {
                self.stats.conns_disabled += 1;
                return;
            }
            if !self.config.live.sampled((flow, ts_ns)) {
                self.stats.conns_unsampled += 1;
                return;
            }
            let mut conn = Conn::new(found.role, local, remote, ts_ns, Some(0));
            conn.parsing =
                Parsing::Parsed { protocol: found.protocol, parser: protocol.new_datagram_conn(&self.config) };
            self.stats.conns_opened += 1;
            self.stats.conns_parsed += 1;
            self.conns.insert(flow, conn);
            self.dgram_flows.entry(socket).or_default().push(flow);
        }
        let Some(conn) = self.conns.get_mut(&flow) else { return };
        conn.last_ns = ts_ns;
        let side = conn.side(direction);
        if let Parsing::Parsed { protocol, .. } = conn.parsing
            && !self.config.live.enabled(protocol)
        {
            conn.parsing = Parsing::Other;
            self.stats.conns_disabled += 1;
        }
        if let Parsing::Parsed { parser, .. } = &mut conn.parsing {
            if data.len() as u64 == msg_size {
                parser.feed(side, data, ts_ns);
            } else {
                // Cut by the kernel's copy limit: the datagram is lost, the next one is whole.
                self.streams.gap_bytes += msg_size;
                parser.gap(side, msg_size, ts_ns);
            }
        }
        self.emit(flow, None, rows);
    }

    /// Periodic upkeep at monotonic time `now_ns`: delivers chunks that waited too long for a
    /// missing predecessor and forgets idle connections.
    pub fn tick(&mut self, now_ns: u64, rows: &mut TableRows) {
        let limits = self.limits();
        let keys: Vec<ConnKey> = self.conns.keys().copied().collect();
        for key in keys {
            let mut pieces = std::mem::take(&mut self.pieces);
            for direction in [Direction::Egress, Direction::Ingress] {
                if let Some(conn) = self.conns.get_mut(&key) {
                    conn.stream(direction).drain(&limits, Some(now_ns), &mut self.streams, &mut pieces);
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
        let conns = &self.conns;
        self.dgram_flows.retain(|_, flows| {
            flows.retain(|k| conns.contains_key(k));
            !flows.is_empty()
        });
        // Forget UPIDs of processes that no longer have connections.
        if self.upids.len() > 4 * self.conns.len() + 64 {
            let live: std::collections::HashSet<u32> = self.conns.keys().map(|k| k.tgid).collect();
            self.upids.retain(|pid, _| live.contains(pid));
        }
    }

    /// Feeds a direction's pieces to the connection's parser, choosing the protocol on its first bytes.
    fn deliver(&mut self, key: ConnKey, direction: Direction, pieces: &mut Vec<Piece>, rows: &mut TableRows) {
        let Some(conn) = self.conns.get_mut(&key) else {
            pieces.clear();
            return;
        };
        for piece in pieces.drain(..) {
            let piece = match &piece {
                Piece::Bytes { ts_ns, data } => PieceRef::Bytes { ts_ns: *ts_ns, data },
                Piece::Gap { ts_ns, len } => PieceRef::Gap { ts_ns: *ts_ns, len: *len },
            };
            if !feed_piece(conn, &mut self.stats, &self.config, direction, piece) {
                break;
            }
        }
        bound_pending(conn, &mut self.pending, &mut self.stats, self.config.max_pending_messages_total);
        pieces.clear();
        self.emit(key, None, rows);
    }

    /// Ends a connection: its parser completes what a close completes, and the rest is dropped.
    fn finish(&mut self, key: ConnKey, mut conn: Conn, ts_ns: u64, rows: &mut TableRows) {
        self.stats.conns_closed += 1;
        // The close drops whatever is unpaired (counted by the parser as such).
        self.pending -= conn.pending.min(self.pending);
        conn.pending = 0;
        let stats_key = conn_stats_key(&mut self.upids, self.config.asid, key, &conn);
        self.closed_stats.add(stats_key, conn.bytes_sent, conn.bytes_recv);
        if let Parsing::Parsed { protocol, parser } = &mut conn.parsing {
            parser.close(ts_ns);
            if let Some(total) = self.closed_losses.get_mut(*protocol) {
                total.add(parser.losses());
            }
        }
        self.emit(key, Some(conn), rows);
    }

    /// Turns the connection's finished records into rows: the tracked one for `key`, or
    /// `detached`, one just removed from the table.
    fn emit(&mut self, key: ConnKey, detached: Option<Conn>, rows: &mut TableRows) {
        let Tracker { config, clock, conns, upids, stats, .. } = self;
        let mut detached = detached;
        let Some(conn) = detached.as_mut().or_else(|| conns.get_mut(&key)) else { return };
        emit_rows(key, conn, upids, clock, config, stats, rows);
    }
}

/// Turns the finished records of `conn` (the connection of `key`) into rows.
fn emit_rows(
    key: ConnKey,
    conn: &mut Conn,
    upids: &mut HashMap<u32, String, BuildConnKeyHasher>,
    clock: &ClockConverter,
    config: &TrackerConfig,
    stats: &mut TrackerStats,
    rows: &mut TableRows,
) {
    let Parsing::Parsed { protocol, parser } = &mut conn.parsing else { return };
    if parser.collect() == 0 {
        return;
    }
    let asid = config.asid;
    let upid = upids.entry(key.tgid).or_insert_with(|| {
        Upid::for_local_pid(asid, key.tgid).unwrap_or(Upid { asid, pid: key.tgid, start_ticks: 0 }).to_string()
    });
    let ctx = RowContext {
        upid,
        remote_addr: &conn.remote.0,
        remote_port: conn.remote.1,
        local_addr: &conn.local.0,
        local_port: conn.local.1,
        role: conn.role,
        encrypted: conn.encrypted,
        clock,
        config,
    };
    stats.rows += parser.emit(&ctx, rows, *protocol) as u64;
}

/// Recounts the connection's unpaired messages into the total over all connections; when that
/// passes `max_total`, the connection drops its oldest until the total is back at the bound, and
/// the drops are counted. Whichever connection pushes the total over pays, so one flooding
/// connection cannot make the others lose theirs first.
fn bound_pending(conn: &mut Conn, total: &mut usize, stats: &mut TrackerStats, max_total: usize) {
    let Parsing::Parsed { parser, .. } = &mut conn.parsing else { return };
    let now = parser.pending_messages();
    *total = total.saturating_sub(conn.pending) + now;
    conn.pending = now;
    if *total > max_total {
        let shed = parser.shed_oldest(*total - max_total);
        stats.messages_over_total_cap += shed as u64;
        conn.pending -= shed;
        *total -= shed;
    }
}

/// The `conn_stats` key a connection counts under now.
fn conn_stats_key(
    upids: &mut HashMap<u32, String, BuildConnKeyHasher>,
    asid: u32,
    key: ConnKey,
    conn: &Conn,
) -> ConnStatsKey {
    let upid = upids.entry(key.tgid).or_insert_with(|| {
        Upid::for_local_pid(asid, key.tgid).unwrap_or(Upid { asid, pid: key.tgid, start_ticks: 0 }).to_string()
    });
    let protocol = match &conn.parsing {
        Parsing::Parsed { protocol, .. } => PROTOCOLS.get(*protocol).map_or(0, |p| traffic_protocol(p.name())),
        _ => 0,
    };
    ConnStatsKey {
        upid: upid.clone(),
        remote_addr: conn.remote.0.clone(),
        remote_port: conn.remote.1,
        trace_role: conn.role.as_trace_role(),
        addr_family: conn.family,
        protocol,
        ssl: false,
    }
}

/// A piece of one direction, borrowed: from the ring buffer (in order) or from reassembly.
enum PieceRef<'a> {
    Bytes { ts_ns: u64, data: &'a [u8] },
    Gap { ts_ns: u64, len: u64 },
}

/// The connection's port override: `Some(Some(index into PROTOCOLS))` forced, `Some(None)` disabled,
/// `None` when it has none.
fn forced_protocol(conn: &Conn, config: &TrackerConfig) -> Option<Option<usize>> {
    if config.port_protocols.is_empty() {
        return None;
    }
    let port = |p: i64| u16::try_from(p).unwrap_or(0);
    let o = port_protocols::lookup(&config.port_protocols, port(conn.local.1), port(conn.remote.1))?;
    Some(o.protocol.and_then(|name| PROTOCOLS.iter().position(|p| p.name() == name)))
}

/// Whether the override that applies is the connection's local port's (the traced process serves it).
fn forced_port_is_local(conn: &Conn, config: &TrackerConfig) -> bool {
    config.port_protocols.iter().any(|o| i64::from(o.port) == conn.local.1)
}

/// Feeds one piece to the connection's parser, choosing the protocol on its first bytes; false
/// once the connection's bytes are known not to be parsed (the rest of its pieces are dropped).
fn feed_piece(
    conn: &mut Conn,
    stats: &mut TrackerStats,
    config: &TrackerConfig,
    direction: Direction,
    piece: PieceRef<'_>,
) -> bool {
    if matches!(conn.parsing, Parsing::Undecided) {
        let PieceRef::Bytes { data, .. } = &piece else { return true };
        let inferred = match forced_protocol(conn, config) {
            None => infer::infer(data, direction),
            Some(forced) => forced.map(|protocol| {
                // The role the bytes imply if they look like the forced protocol, else the port's side.
                let role = match infer::infer(data, direction) {
                    Some(i) if i.protocol == protocol => i.role,
                    _ if forced_port_is_local(conn, config) => Role::Server,
                    _ => Role::Client,
                };
                infer::Inferred { protocol, role }
            }),
        };
        let Some(found) = inferred else {
            conn.parsing = Parsing::Other;
            stats.conns_other += 1;
            return false;
        };
        if conn.role == Role::Unknown {
            conn.role = found.role;
        }
        let Some(protocol) = PROTOCOLS.get(found.protocol) else { return false };
        if !config.live.enabled(found.protocol) {
            conn.parsing = Parsing::Other;
            stats.conns_disabled += 1;
            return false;
        }
        if !config.live.sampled((&conn.local, &conn.remote, conn.last_ns)) {
            conn.parsing = Parsing::Other;
            stats.conns_unsampled += 1;
            return false;
        }
        conn.parsing = Parsing::Parsed { protocol: found.protocol, parser: protocol.new_conn(config) };
        stats.conns_parsed += 1;
    }
    // A protocol disabled while its connection is open: the connection's rows stop here.
    if let Parsing::Parsed { protocol, .. } = conn.parsing
        && !config.live.enabled(protocol)
    {
        conn.parsing = Parsing::Other;
        stats.conns_disabled += 1;
        return false;
    }
    let side = conn.side(direction);
    let Parsing::Parsed { parser, .. } = &mut conn.parsing else { return false };
    match piece {
        PieceRef::Bytes { ts_ns, data } => parser.feed(side, data, ts_ns),
        PieceRef::Gap { ts_ns, len } => parser.gap(side, len, ts_ns),
    }
    true
}

#[cfg(test)]
mod tests {
    use loupe_schema::http::HttpEventRow;
    use loupe_schema::protocols::RedisEventRow;

    use super::*;
    use crate::socket::protocols::BODY_TRUNCATED_MARKER;

    fn http(rows: &TableRows) -> Vec<HttpEventRow> {
        rows.of()
    }

    const KEY: ConnKey = ConnKey { tgid: 4242, fd: 7, generation: 1 };

    fn tracker() -> Tracker {
        Tracker::new(TrackerConfig::default(), ClockConverter::new())
    }

    fn open(role: Role) -> KernelEvent<'static> {
        KernelEvent::ConnOpen {
            ts_ns: 1,
            key: KEY,
            role,
            local: Some("127.0.0.1:5000".parse().expect("addr")),
            remote: Some("[::ffff:127.0.0.1]:8080".parse().expect("addr")),
            proc_start_ns: 0,
        }
    }

    fn data(ts_ns: u64, direction: Direction, pos: u64, bytes: &[u8]) -> KernelEvent<'_> {
        KernelEvent::Data { ts_ns, key: KEY, direction, pos, msg_size: bytes.len() as u64, data: bytes.into() }
    }

    const REQ: &[u8] = b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";

    #[test]
    fn client_request_and_response_become_one_row() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1_000, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(5_000, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(http(&rows).len(), 1);
        let r = &http(&rows)[0];
        assert_eq!((r.req_method.as_str(), r.req_path.as_str(), r.resp_status), ("GET", "/a?x=1", 200));
        assert_eq!((r.trace_role, r.latency_ns, r.resp_body.as_str()), (1, 4_000, "hi"));
        assert_eq!((r.remote_addr.as_str(), r.remote_port, r.local_port), ("127.0.0.1", 8080, 5000));
        assert!(r.upid.starts_with("0:4242:"));
        assert_eq!(r.minor_version, 1);
    }

    /// Issue 13: past the connection cap a new connection is refused and what it sends is counted,
    /// not tracked; once a tracked connection ends, new ones are tracked again.
    #[test]
    fn connections_past_the_cap_are_counted_and_dropped() {
        let mut t =
            Tracker::new(TrackerConfig { max_connections: 1, ..TrackerConfig::default() }, ClockConverter::new());
        let mut rows = TableRows::default();
        let other = ConnKey { fd: KEY.fd + 1, ..KEY };
        t.handle(open(Role::Client), &mut rows);
        let KernelEvent::ConnOpen { ts_ns, role, local, remote, proc_start_ns, .. } = open(Role::Client) else {
            unreachable!()
        };
        t.handle(KernelEvent::ConnOpen { ts_ns, key: other, role, local, remote, proc_start_ns }, &mut rows);
        let on_other = |pos: u64, bytes: &'static [u8]| KernelEvent::Data {
            ts_ns: 2,
            key: other,
            direction: Direction::Egress,
            pos,
            msg_size: bytes.len() as u64,
            data: bytes.into(),
        };
        t.handle(on_other(0, REQ), &mut rows);
        t.handle(data(1_000, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(2_000, Direction::Ingress, 0, RESP), &mut rows);
        let s = t.stats();
        assert_eq!(
            (s.conns_opened, s.conns_over_cap, s.records_over_cap, s.bytes_over_cap),
            (1, 1, 1, REQ.len() as u64)
        );
        assert_eq!((t.open_connections(), http(&rows).len()), (1, 1));
        t.handle(KernelEvent::ConnClose { ts_ns: 3_000, key: KEY, bytes_sent: 0, bytes_recv: 0 }, &mut rows);
        t.handle(on_other(REQ.len() as u64, REQ), &mut rows);
        assert_eq!((t.stats().conns_opened, t.stats().records_over_cap, t.open_connections()), (2, 1, 1));
    }

    /// Unanswered requests are bounded per connection (the stitcher drops its oldest, counted as
    /// overflow) and over all connections (the connection pushing the total past the bound drops
    /// its oldest, counted as `messages_over_total_cap`); what is kept still pairs in order.
    #[test]
    fn unpaired_messages_are_bounded_per_connection_and_in_total() {
        let config =
            TrackerConfig { max_pending_messages: 2, max_pending_messages_total: 3, ..TrackerConfig::default() };
        let mut t = Tracker::new(config, ClockConverter::new());
        let mut rows = TableRows::default();
        let other = ConnKey { fd: KEY.fd + 1, ..KEY };
        let mut pos = [[0u64; 2]; 2];
        let mut ts = 10;
        let mut send = |t: &mut Tracker, rows: &mut TableRows, conn: usize, direction: Direction, bytes: &str| {
            let key = [KEY, other][conn];
            let at = &mut pos[conn][usize::from(direction == Direction::Ingress)];
            let event = KernelEvent::Data {
                ts_ns: ts,
                key,
                direction,
                pos: *at,
                msg_size: bytes.len() as u64,
                data: bytes.as_bytes().to_vec().into(),
            };
            *at += bytes.len() as u64;
            ts += 10;
            t.handle(event, rows);
        };
        let req = |path: &str| format!("GET /{path} HTTP/1.1\r\nHost: x\r\n\r\n");
        for key in [KEY, other] {
            let KernelEvent::ConnOpen { ts_ns, role, local, remote, proc_start_ns, .. } = open(Role::Client) else {
                unreachable!()
            };
            t.handle(KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns }, &mut rows);
        }
        send(&mut t, &mut rows, 0, Direction::Egress, &req("a1"));
        send(&mut t, &mut rows, 0, Direction::Egress, &req("a2"));
        send(&mut t, &mut rows, 1, Direction::Egress, &req("b1"));
        assert_eq!(t.stats().messages_over_total_cap, 0, "3 held: at the bound");
        send(&mut t, &mut rows, 1, Direction::Egress, &req("b2"));
        assert_eq!(t.stats().messages_over_total_cap, 1, "the 4th makes its connection drop its oldest (b1)");
        send(&mut t, &mut rows, 0, Direction::Egress, &req("a3"));
        let http1 = |t: &Tracker| t.losses().into_iter().find(|(name, _)| *name == "http1").map(|(_, l)| l);
        assert_eq!(http1(&t).map(|l| l.overflow), Some(1), "a's queue holds 2: a1 dropped");
        assert_eq!(t.stats().messages_over_total_cap, 1, "the total did not grow");
        let resp = String::from_utf8(RESP.to_vec()).expect("text");
        for conn in [0, 0, 1] {
            send(&mut t, &mut rows, conn, Direction::Ingress, &resp);
        }
        let paths: Vec<String> = http(&rows).iter().map(|r| r.req_path.clone()).collect();
        assert_eq!(paths, ["/a2", "/a3", "/b2"]);
        assert_eq!(t.pending, 0);
    }

    #[test]
    fn upid_comes_from_the_kernel_start_time_when_given() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        let KernelEvent::ConnOpen { ts_ns, key, role, local, remote, .. } = open(Role::Client) else { unreachable!() };
        t.handle(KernelEvent::ConnOpen { ts_ns, key, role, local, remote, proc_start_ns: 1_230_000_000 }, &mut rows);
        t.handle(data(1, Direction::Egress, 0, REQ), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(http(&rows)[0].upid, "0:4242:123");
    }

    #[test]
    fn out_of_order_chunks_are_reassembled() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Server), &mut rows);
        t.handle(data(10, Direction::Ingress, 0, REQ), &mut rows);
        let (a, b) = RESP.split_at(20);
        t.handle(data(30, Direction::Egress, 20, b), &mut rows);
        assert!(http(&rows).is_empty());
        t.handle(data(20, Direction::Egress, 0, a), &mut rows);
        assert_eq!(http(&rows).len(), 1);
        assert_eq!(http(&rows)[0].trace_role, 2);
        assert_eq!(t.stats().gap_bytes, 0);
    }

    #[test]
    fn unknown_role_is_inferred_from_the_first_bytes() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        // No open event: a connection that predates tracing, first seen receiving a request.
        t.handle(data(10, Direction::Ingress, 500, REQ), &mut rows);
        t.handle(data(20, Direction::Egress, 900, RESP), &mut rows);
        assert_eq!(http(&rows).len(), 1);
        assert_eq!(http(&rows)[0].trace_role, 2);
        assert_eq!(http(&rows)[0].remote_addr, "-");
    }

    #[test]
    fn other_protocols_are_ignored() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(10, Direction::Egress, 0, b"SSH-2.0-OpenSSH_9.2\r\n"), &mut rows);
        t.handle(data(20, Direction::Egress, 21, REQ), &mut rows);
        assert!(http(&rows).is_empty());
        assert_eq!(t.stats().conns_other, 1);
    }

    #[test]
    fn truncated_capture_is_a_gap_and_parsing_resumes() {
        let mut t = tracker();
        let mut rows = TableRows::default();
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
                data: head.to_vec().into(),
            },
            &mut rows,
        );
        assert_eq!(t.stats().gap_bytes, 100_000 - 4);
        assert_eq!(http(&rows).len(), 1, "the gap completes the response");
        // Keep-alive: the next exchange on the same connection parses from its first byte.
        t.handle(data(3_000, Direction::Egress, REQ.len() as u64, REQ), &mut rows);
        t.handle(data(4_500, Direction::Ingress, resp_len, RESP), &mut rows);
        let got: Vec<(i64, String, i64, i64)> =
            http(&rows).iter().map(|r| (r.resp_status, r.resp_body.clone(), r.resp_body_size, r.latency_ns)).collect();
        assert_eq!(got, [(200, "xxxx... [TRUNCATED]".to_string(), 100_000, 1_000), (200, "hi".to_string(), 2, 1_500)]);
        assert_eq!(t.stats().rows, 2);
        assert_eq!(t.stats().gap_bytes, 100_000 - 4);
    }

    /// One syscall as the loader decodes it: records of `copied` bytes at most, contiguous from
    /// `pos`, the last accounting for what the kernel did not copy.
    fn syscall(ts_ns: u64, direction: Direction, pos: u64, bytes: &[u8], copied: usize) -> Vec<KernelEvent<'static>> {
        let copied = copied.min(bytes.len());
        let records: Vec<&[u8]> = bytes[..copied].chunks(8192).collect();
        let n = records.len().max(1);
        let mut at = pos;
        (0..n)
            .map(|i| {
                let data: Vec<u8> = records.get(i).copied().unwrap_or_default().to_vec();
                let msg_size = if i + 1 == n { pos + bytes.len() as u64 - at } else { data.len() as u64 };
                let event = KernelEvent::Data { ts_ns, key: KEY, direction, pos: at, msg_size, data: data.into() };
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
        let mut rows = TableRows::default();
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
        let got: Vec<(String, i64, i64, usize)> = http(&rows)
            .iter()
            .map(|r| (r.req_path.clone(), r.resp_status, r.resp_body_size, r.resp_body.len()))
            .collect();
        let marked = 512 + BODY_TRUNCATED_MARKER.len();
        assert_eq!(
            got,
            [
                ("/big".to_string(), 200, 1_000_000, marked),
                ("/file".to_string(), 200, 40_960, BODY_TRUNCATED_MARKER.len()),
                ("/small".to_string(), 200, 2, 2),
            ]
        );
        assert!(http(&rows).iter().all(|r| r.trace_role == 2));
        assert_eq!(t.stats().gap_bytes, 15 * 32_768 + 40_960);
    }

    #[test]
    fn close_flushes_a_close_delimited_response() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1, Direction::Egress, 0, b"GET / HTTP/1.0\r\n\r\n"), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, b"HTTP/1.0 200 OK\r\n\r\nbody until close"), &mut rows);
        assert!(http(&rows).is_empty());
        t.handle(KernelEvent::ConnClose { ts_ns: 3, key: KEY, bytes_sent: 0, bytes_recv: 0 }, &mut rows);
        assert_eq!(http(&rows).len(), 1);
        assert_eq!(http(&rows)[0].resp_body, "body until close");
        assert_eq!(http(&rows)[0].minor_version, 0);
        assert_eq!(t.open_connections(), 0);
    }

    #[test]
    fn a_process_exit_ends_its_connections_and_no_others() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Client), &mut rows);
        let other = ConnKey { tgid: KEY.tgid + 1, ..KEY };
        let KernelEvent::ConnOpen { ts_ns, role, local, remote, proc_start_ns, .. } = open(Role::Client) else {
            unreachable!()
        };
        t.handle(KernelEvent::ConnOpen { ts_ns, key: other, role, local, remote, proc_start_ns }, &mut rows);
        t.handle(data(1, Direction::Egress, 0, b"GET / HTTP/1.0\r\n\r\n"), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, b"HTTP/1.0 200 OK\r\n\r\nuntil the end"), &mut rows);
        assert!(http(&rows).is_empty());
        t.handle(KernelEvent::ProcExit { ts_ns: 3, tgid: KEY.tgid }, &mut rows);
        assert_eq!(http(&rows).len(), 1, "the exit ends the close-delimited response");
        assert_eq!(http(&rows)[0].resp_body, "until the end");
        assert_eq!((t.open_connections(), t.stats().conns_closed), (1, 1));
    }

    #[test]
    fn a_missing_chunk_is_given_up_on_after_the_reorder_wait() {
        let mut t = tracker();
        let mut rows = TableRows::default();
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
        assert_eq!(http(&rows).len(), 2, "the intact request after the gap pairs with its response");
    }

    #[test]
    fn idle_connections_are_forgotten() {
        let mut t = tracker();
        let mut rows = TableRows::default();
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
            let mut rows = TableRows::default();
            t.handle(open(Role::Client), &mut rows);
            t.handle(data(1, Direction::Egress, 0, SECRET_REQ), &mut rows);
            t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
            assert_eq!(http(&rows)[0].req_path, path);
            assert_eq!(http(&rows)[0].req_headers, format!(r#"{{"Authorization":"{auth}"}}"#));
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
        let mut rows = TableRows::default();
        t.handle(open(Role::Client), &mut rows);
        t.handle(data(1, Direction::Egress, 0, req.as_bytes()), &mut rows);
        t.handle(data(2, Direction::Ingress, 0, RESP), &mut rows);
        assert_eq!(http(&rows)[0].req_body, r#"{"user":"a","password":"[REDACTED]"}"#);
        assert_eq!(http(&rows)[0].req_body_size, BODY.len() as i64);
    }

    #[test]
    fn redis_commands_become_redis_rows_redacted_and_bounded() {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Server), &mut rows);
        let big = "v".repeat(600);
        let requests = format!(
            "*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$6\r\ns3cret\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n{big}\r\n",
            big.len()
        );
        t.handle(data(10, Direction::Ingress, 0, requests.as_bytes()), &mut rows);
        t.handle(data(25, Direction::Egress, 0, b"+OK\r\n-ERR no\r\n"), &mut rows);
        assert!(http(&rows).is_empty());
        let got: Vec<(String, String, String, i64, i64, i64)> = rows
            .of::<RedisEventRow>()
            .iter()
            .map(|r| (r.req_cmd.clone(), r.req_args.clone(), r.resp.clone(), r.latency_ns, r.trace_role, r.local_port))
            .collect();
        let kept_args = format!(r#"["k","{}"#, "v".repeat(512 - r#"["k",""#.len()));
        assert_eq!(
            got,
            [
                ("AUTH".into(), r#"["[REDACTED]","[REDACTED]"]"#.into(), "OK".into(), 15, 2, 5000),
                ("SET".into(), format!("{kept_args}{BODY_TRUNCATED_MARKER}"), "-ERR no".into(), 15, 2, 5000),
            ]
        );
        assert_eq!(t.stats().conns_parsed, 1);
    }

    /// Feeds a recorded exchange to a server-side connection (requests in, responses out).
    fn serve_recorded(req: &[u8], resp: &[u8]) -> (Tracker, TableRows) {
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(open(Role::Server), &mut rows);
        t.handle(data(1_000, Direction::Ingress, 0, req), &mut rows);
        t.handle(data(4_000, Direction::Egress, 0, resp), &mut rows);
        (t, rows)
    }

    #[test]
    fn a_recorded_kafka_exchange_becomes_kafka_rows_redacted() {
        use loupe_schema::protocols::KafkaEventRow;
        let (t, rows) = serve_recorded(
            include_bytes!("../../../protocols/testdata/kafka/kafka_python.req"),
            include_bytes!("../../../protocols/testdata/kafka/kafka_python.resp"),
        );
        let got = rows.of::<KafkaEventRow>();
        let mut keys: Vec<i64> = got.iter().map(|r| r.req_cmd).collect();
        keys.sort_unstable();
        assert_eq!(keys, [0, 0, 0, 0, 1, 1, 3, 17, 18, 36]);
        assert!(got.iter().all(|r| r.client_id == "loupe-test" && r.trace_role == 2 && r.local_port == 5000));
        // Every row with a response waited 3 µs; the acks=0 Produce has none.
        assert_eq!(got.iter().filter(|r| r.latency_ns == 3_000 && !r.resp.is_empty()).count(), 9);
        let sasl = got.iter().find(|r| r.req_cmd == 36).expect("SaslAuthenticate");
        assert_eq!(sasl.req_body, r#"{"auth_bytes":"[REDACTED]"}"#);
        assert!(got.iter().any(|r| r.req_cmd == 0 && r.resp.contains(r#""error_code":3"#)));
        assert_eq!(t.stats().conns_parsed, 1);
    }

    #[test]
    fn a_recorded_mongodb_exchange_becomes_mongodb_rows_redacted() {
        use loupe_schema::protocols::MongodbEventRow;
        let (_, rows) = serve_recorded(
            include_bytes!("../../../protocols/testdata/mongodb/pymongo.req"),
            include_bytes!("../../../protocols/testdata/mongodb/pymongo.resp"),
        );
        let got = rows.of::<MongodbEventRow>();
        let mut cmds: Vec<(String, String)> = got.iter().map(|r| (r.req_cmd.clone(), r.resp_status.clone())).collect();
        cmds.sort();
        let want = [
            ("createUser", "ok"),
            ("find", "error"),
            ("find", "ok"),
            ("insert", ""),
            ("insert", "ok"),
            ("isMaster", "ok"),
            ("ping", "ok"),
            ("saslContinue", "ok"),
            ("saslStart", "ok"),
        ];
        assert_eq!(cmds, want.map(|(a, b)| (a.to_string(), b.to_string())));
        let all = format!("{got:?}");
        assert!(!all.contains("bob-secret") && all.contains(r#"\"pwd\":\"[REDACTED]\""#), "{all}");
        // Bodies are bounded like HTTP bodies and marked when cut.
        let insert = got.iter().find(|r| r.req_cmd == "insert" && !r.resp_status.is_empty()).expect("insert");
        assert!(insert.req_body.starts_with(r#"{"insert":"things","ordered":true,"$db":"test","documents":["#));
        assert!(got.iter().all(|r| r.req_body.len() <= 512 + BODY_TRUNCATED_MARKER.len()));
    }

    #[test]
    fn a_recorded_cql_exchange_becomes_cql_rows_redacted() {
        use loupe_schema::protocols::CqlEventRow;
        let (_, rows) = serve_recorded(
            include_bytes!("../../../protocols/testdata/cql/driver_v4.req"),
            include_bytes!("../../../protocols/testdata/cql/driver_v4.resp"),
        );
        let got = rows.of::<CqlEventRow>();
        let mut ops: Vec<(i64, i64)> = got.iter().map(|r| (r.req_op, r.resp_op)).collect();
        ops.sort_unstable();
        assert_eq!(
            ops,
            [
                (1, 3),
                (5, 6),
                (7, 0),
                (7, 8),
                (7, 8),
                (7, 8),
                (7, 8),
                (9, 8),
                (10, 8),
                (11, 2),
                (12, 0),
                (13, 8),
                (15, 16)
            ]
        );
        let auth = got.iter().find(|r| r.req_op == 15).expect("AUTH_RESPONSE");
        assert_eq!(auth.req_body, r#"{"token":"[REDACTED]"}"#);
        let error = got.iter().find(|r| r.resp_op == 0 && r.req_op == 7).expect("error");
        assert_eq!(error.req_body, r#"{"query":"SELEC 1","consistency":"ONE"}"#);
        assert!(got.iter().filter(|r| r.req_op != 12).all(|r| r.latency_ns == 3_000));
    }

    /// A DNS message: `qr` selects query or response (one A answer, 10.0.0.7), for `a.test`.
    fn dns_msg(txid: u16, qr: bool) -> Vec<u8> {
        let mut m = txid.to_be_bytes().to_vec();
        m.extend_from_slice(if qr {
            &[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]
        } else {
            &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        });
        m.extend_from_slice(b"\x01a\x04test\0\0\x01\0\x01");
        if qr {
            m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 7]);
        }
        m
    }

    fn dgram(ts_ns: u64, direction: Direction, peer: &str, bytes: &[u8]) -> KernelEvent<'static> {
        KernelEvent::Datagram {
            ts_ns,
            key: KEY,
            direction,
            local: Some("127.0.0.1:53".parse().expect("addr")),
            remote: Some(peer.parse().expect("addr")),
            msg_size: bytes.len() as u64,
            data: bytes.to_vec().into(),
        }
    }

    /// A UDP server socket: each peer's exchange is its own flow with the peer's address, the role
    /// comes from the QR bit, and the socket's close ends every flow.
    #[test]
    fn datagrams_pair_per_peer_and_end_with_their_socket() {
        use loupe_schema::protocols::DnsEventRow;
        let mut t = tracker();
        let mut rows = TableRows::default();
        t.handle(dgram(10, Direction::Ingress, "127.0.0.1:4000", &dns_msg(7, false)), &mut rows);
        t.handle(dgram(20, Direction::Ingress, "127.0.0.1:4001", &dns_msg(7, false)), &mut rows);
        t.handle(dgram(50, Direction::Egress, "127.0.0.1:4001", &dns_msg(7, true)), &mut rows);
        t.handle(dgram(60, Direction::Egress, "127.0.0.1:4000", &dns_msg(7, true)), &mut rows);
        // Cut by the kernel: counted as a gap, never parsed.
        let mut cut = dgram(70, Direction::Ingress, "127.0.0.1:4000", &dns_msg(8, false));
        if let KernelEvent::Datagram { msg_size, .. } = &mut cut {
            *msg_size += 100;
        }
        t.handle(cut, &mut rows);
        let got: Vec<(i64, i64, i64, String)> = rows
            .of::<DnsEventRow>()
            .iter()
            .map(|r| (r.remote_port, r.trace_role, r.latency_ns, r.resp_body.clone()))
            .collect();
        let body = r#"{"answers":[{"name":"a.test","type":"A","addr":"10.0.0.7"}]}"#.to_string();
        assert_eq!(got, [(4001, 2, 30, body.clone()), (4000, 2, 50, body)]);
        assert_eq!((t.open_connections(), t.stats().conns_parsed), (2, 2));
        assert_eq!(t.stats().gap_bytes, dns_msg(8, false).len() as u64 + 100);
        // Not DNS: no flow.
        t.handle(dgram(80, Direction::Ingress, "127.0.0.1:4002", b"hello, not dns at all"), &mut rows);
        assert_eq!((t.open_connections(), t.stats().conns_other), (2, 1));
        t.handle(KernelEvent::ConnClose { ts_ns: 90, key: KEY, bytes_sent: 0, bytes_recv: 0 }, &mut rows);
        assert_eq!(t.open_connections(), 0);
    }
}
