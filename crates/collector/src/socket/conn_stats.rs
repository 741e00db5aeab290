//! `conn_stats`: cumulative connection counters per (process, remote endpoint, role, protocol,
//! TLS), reported periodically as Pixie does (every 10 s by default).
//!
//! Owns the aggregate of connections gone ([`ClosedStats`]), the key a connection counts under
//! ([`ConnStatsKey`]) and how one report becomes rows. The tracker owns the connections; it hands
//! each finished one here and lists the open ones at report time, so a connection whose protocol
//! became known after it opened counts under that protocol from then on. Must not touch parsing or
//! the kernel.
//!
//! Bytes are the stream positions the tracer reported: live for connections whose bytes are
//! exported (a parsed protocol), and from the kernel's close totals for the others.

use std::collections::HashMap;

use loupe_schema::protocols::{ConnStatsBuilder, ConnStatsRow};

/// Pixie's `traffic_protocol_t` for a registered protocol's short name (0 when it has none).
pub fn traffic_protocol(name: &str) -> i64 {
    match name {
        "http1" => 1,
        "http2" => 2,
        "mysql" => 3,
        "cql" => 4,
        "pgsql" => 5,
        "dns" => 6,
        "redis" => 7,
        "nats" => 8,
        "mongodb" => 9,
        "kafka" => 10,
        "mux" => 11,
        "amqp" => 12,
        "tls" => 13,
        // Not in Pixie's list (it has no MQTT table): the next free number, as in the kernel.
        "mqtt" => 14,
        _ => 0,
    }
}

/// What a connection counts under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnStatsKey {
    /// The owning process, as text.
    pub upid: String,
    /// The peer's address as text.
    pub remote_addr: String,
    /// The peer's port.
    pub remote_port: i64,
    /// 1 client, 2 server, 4 unknown.
    pub trace_role: i64,
    /// Linux address family (2 IPv4, 10 IPv6, 0 unknown).
    pub addr_family: i64,
    /// `traffic_protocol_t`.
    pub protocol: i64,
    /// TLS was seen on it.
    pub ssl: bool,
}

/// Counters of one key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Connections opened.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Bytes sent to the peer.
    pub bytes_sent: u64,
    /// Bytes received from the peer.
    pub bytes_recv: u64,
}

/// Connections gone, by key; bounded by `max_keys` (further keys are counted, not kept).
#[derive(Debug, Clone, Default)]
pub struct ClosedStats {
    by_key: HashMap<ConnStatsKey, ConnCounts>,
    max_keys: usize,
    /// Closed connections left out because the table was full.
    pub dropped: u64,
}

impl ClosedStats {
    /// An empty aggregate holding at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        ClosedStats { by_key: HashMap::new(), max_keys, dropped: 0 }
    }

    /// A connection ended with these totals.
    pub fn add(&mut self, key: ConnStatsKey, bytes_sent: u64, bytes_recv: u64) {
        let full = self.by_key.len() >= self.max_keys;
        let counts = match self.by_key.get_mut(&key) {
            Some(c) => c,
            None if full => {
                self.dropped += 1;
                return;
            }
            None => self.by_key.entry(key).or_default(),
        };
        counts.opened += 1;
        counts.closed += 1;
        counts.bytes_sent += bytes_sent;
        counts.bytes_recv += bytes_recv;
    }

    /// One report: the closed totals plus the `open` connections (key, bytes sent, bytes received),
    /// one row per key, stamped `time_ns`.
    pub fn report(&self, open: impl IntoIterator<Item = (ConnStatsKey, u64, u64)>, time_ns: i64) -> ConnStatsBuilder {
        let mut active: HashMap<ConnStatsKey, ConnCounts> = HashMap::new();
        for (key, sent, recv) in open {
            let c = active.entry(key).or_default();
            c.opened += 1;
            c.bytes_sent += sent;
            c.bytes_recv += recv;
        }
        let mut keys: Vec<&ConnStatsKey> = self.by_key.keys().chain(active.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut builder = ConnStatsBuilder::new();
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        for key in keys {
            let closed = self.by_key.get(key).copied().unwrap_or_default();
            let open = active.get(key).copied().unwrap_or_default();
            builder.append(&ConnStatsRow {
                time_ns,
                upid: key.upid.clone(),
                remote_addr: key.remote_addr.clone(),
                remote_port: key.remote_port,
                trace_role: key.trace_role,
                addr_family: key.addr_family,
                protocol: key.protocol,
                ssl: key.ssl,
                conn_open: as_i64(closed.opened + open.opened),
                conn_close: as_i64(closed.closed),
                conn_active: as_i64(open.opened),
                bytes_sent: as_i64(closed.bytes_sent + open.bytes_sent),
                bytes_recv: as_i64(closed.bytes_recv + open.bytes_recv),
            });
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_schema::table::TableBuilder as _;

    fn key(port: i64, protocol: i64) -> ConnStatsKey {
        ConnStatsKey {
            upid: "1:2:3".into(),
            remote_addr: "127.0.0.1".into(),
            remote_port: port,
            trace_role: 1,
            addr_family: 2,
            protocol,
            ssl: false,
        }
    }

    #[test]
    fn a_report_adds_open_connections_to_the_closed_totals() {
        let mut closed = ClosedStats::new(2);
        closed.add(key(80, 1), 10, 20);
        closed.add(key(80, 1), 1, 2);
        closed.add(key(6379, 7), 5, 5);
        // Full: a third key is counted as dropped, an existing one still adds up.
        closed.add(key(5432, 5), 1, 1);
        assert_eq!(closed.dropped, 1);
        let batch = closed.report([(key(80, 1), 100, 200), (key(4222, 8), 7, 9)], 42).finish().expect("batch");
        let rows = ConnStatsBuilder::rows(&batch);
        let got: Vec<(i64, i64, i64, i64, i64, i64)> = rows
            .iter()
            .map(|r| (r.remote_port, r.conn_open, r.conn_close, r.conn_active, r.bytes_sent, r.bytes_recv))
            .collect();
        assert_eq!(got, [(80, 3, 2, 1, 111, 222), (4222, 1, 0, 1, 7, 9), (6379, 1, 1, 0, 5, 5)]);
        assert!(rows.iter().all(|r| r.time_ns == 42));
    }

    #[test]
    fn protocol_numbers_are_pixies() {
        assert_eq!(traffic_protocol("http1"), 1);
        assert_eq!(traffic_protocol("pgsql"), 5);
        assert_eq!(traffic_protocol("nats"), 8);
        assert_eq!(traffic_protocol("amqp"), 12);
        assert_eq!(traffic_protocol("nope"), 0);
    }
}
