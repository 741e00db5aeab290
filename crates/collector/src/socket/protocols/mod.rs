//! The protocols the socket tracer parses, and how each one's records become rows.
//!
//! Owns the [`Protocol`] trait (a `loupe_protocols` parser, its table, its first-bytes test and
//! its row building), the registry `PROTOCOLS`, the type-erased per-connection parser the
//! tracker holds (`ConnRows`) and the pending rows of every protocol table ([`TableRows`]).
//! Adding a protocol means: a parser in `loupe_protocols`, its table in `loupe_schema`, a module
//! here implementing [`Protocol`], and one line in `PROTOCOLS` (plus the kernel's first-bytes
//! gate in `crates/bpf/c` when it filters by protocol). Must not touch reassembly or connection
//! state: it sees bytes of one side at a time and one connection's identity when building rows.

mod http;
mod redis;

use std::any::Any;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use loupe_common::ClockConverter;
use loupe_protocols::{ConnParser, Side};
use loupe_schema::TableSpec;

pub use self::http::Http1;
pub use self::redis::Redis;
use super::tracker::TrackerConfig;
use crate::events::Role;

/// Every protocol the socket tracer parses, in the order inference tries them: one line each.
#[rustfmt::skip]
pub(crate) static PROTOCOLS: &[&(dyn DynProtocol + Sync)] = &[
    &Registered::<Http1>::NEW,
    &Registered::<Redis>::NEW,
];

/// Ends a stored value (an HTTP body, Redis arguments or reply) that holds less than the whole
/// value; the size columns, where a table has them, keep the real size. Pixie's marker.
pub const BODY_TRUNCATED_MARKER: &str = loupe_protocols::TRUNCATED_MARKER;

/// Which way the first captured bytes of a connection flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Looks {
    /// They are a request.
    Request,
    /// They are a response.
    Response,
}

/// One protocol, as the socket tracer uses it.
pub trait Protocol: 'static {
    /// The parser of one connection.
    type Parser: ConnParser<Record: Send> + Send + 'static;
    /// One row of the protocol's table.
    type Row: Send + 'static;

    /// The table its rows go to.
    fn table() -> TableSpec;

    /// Whether the first captured bytes of a connection are this protocol, and which way.
    /// Cheap: it runs once per connection, on its first bytes only.
    fn looks_like(first: &[u8]) -> Option<Looks>;

    /// A parser for a new connection.
    fn parser(config: &TrackerConfig) -> Self::Parser;

    /// The row for one record, redacted when `ctx.config.redact`.
    fn row(record: <Self::Parser as ConnParser>::Record, ctx: &RowContext<'_>) -> Self::Row;

    /// The rows as one batch of the table.
    fn batch(rows: &[Self::Row]) -> Result<RecordBatch, ArrowError>;
}

/// What a row needs to know about its connection.
pub struct RowContext<'a> {
    /// The owning process, as text.
    pub upid: &'a str,
    /// The traced process's end.
    pub local: Option<SocketAddr>,
    /// The peer.
    pub remote: Option<SocketAddr>,
    /// Client or server.
    pub role: Role,
    /// Converts capture times to Unix time.
    pub clock: &'a ClockConverter,
    /// Redaction switch and limits.
    pub config: &'a TrackerConfig,
}

impl RowContext<'_> {
    /// `time_` for a capture time.
    pub fn time_ns(&self, mono_ns: u64) -> i64 {
        self.clock.to_unix_ns(mono_ns)
    }

    /// `(remote_addr, remote_port, local_addr, local_port)`.
    pub fn addrs(&self) -> (String, i64, String, i64) {
        let (remote_addr, remote_port) = addr_parts(self.remote);
        let (local_addr, local_port) = addr_parts(self.local);
        (remote_addr, remote_port, local_addr, local_port)
    }
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

/// `text` bounded to `max` bytes (at a character boundary), with [`BODY_TRUNCATED_MARKER`] when
/// it was cut here or is already incomplete (`cut`).
pub fn bounded_text(mut text: String, cut: bool, max: usize) -> String {
    let mut cut = cut;
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        cut = true;
    }
    if cut {
        text.push_str(BODY_TRUNCATED_MARKER);
    }
    text
}

/// A protocol, type-erased, so the registry can hold them all.
pub(crate) trait DynProtocol {
    /// The table its rows go to.
    fn table(&self) -> TableSpec;
    /// See [`Protocol::looks_like`].
    fn looks_like(&self, first: &[u8]) -> Option<Looks>;
    /// A parser for a new connection.
    fn new_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows>;
    /// An empty row buffer for its table.
    fn new_rows(&self) -> Box<dyn PendingRows>;
}

/// The [`DynProtocol`] of a [`Protocol`].
pub(crate) struct Registered<P>(PhantomData<fn() -> P>);

impl<P: Protocol> Registered<P> {
    /// The registry entry.
    pub(crate) const NEW: Registered<P> = Registered(PhantomData);
}

impl<P: Protocol> DynProtocol for Registered<P> {
    fn table(&self) -> TableSpec {
        P::table()
    }

    fn looks_like(&self, first: &[u8]) -> Option<Looks> {
        P::looks_like(first)
    }

    fn new_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows> {
        Box::new(ParsedConn::<P> { parser: P::parser(config), records: Vec::new() })
    }

    fn new_rows(&self) -> Box<dyn PendingRows> {
        Box::new(Rows::<P> { table: P::table().name, rows: Vec::new() })
    }
}

/// One connection's parser, type-erased.
pub(crate) trait ConnRows: Send {
    /// Feeds bytes of `side`.
    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64);
    /// `side` lost `len` bytes.
    fn gap(&mut self, side: Side, len: u64, ts_ns: u64);
    /// The connection closed.
    fn close(&mut self, ts_ns: u64);
    /// Takes the finished records from the parser; returns how many wait to become rows.
    fn collect(&mut self) -> usize;
    /// Turns the collected records into rows in `out`; returns how many.
    fn emit(&mut self, ctx: &RowContext<'_>, out: &mut TableRows, slot: usize) -> usize;
}

struct ParsedConn<P: Protocol> {
    parser: P::Parser,
    records: Vec<<P::Parser as ConnParser>::Record>,
}

impl<P: Protocol> ConnRows for ParsedConn<P> {
    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        self.parser.feed(side, data, ts_ns);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        self.parser.gap(side, len, ts_ns);
    }

    fn close(&mut self, ts_ns: u64) {
        self.parser.close(ts_ns);
    }

    fn collect(&mut self) -> usize {
        self.parser.drain_records(&mut self.records);
        self.records.len()
    }

    fn emit(&mut self, ctx: &RowContext<'_>, out: &mut TableRows, slot: usize) -> usize {
        let n = self.records.len();
        let Some(rows) = out.slots.get_mut(slot).and_then(|s| s.rows_any_mut().downcast_mut::<Vec<P::Row>>()) else {
            // The slot belongs to another protocol: a registry mix-up, never expected.
            self.records.clear();
            return 0;
        };
        rows.extend(self.records.drain(..).map(|r| P::row(r, ctx)));
        n
    }
}

/// Pending rows of one table, type-erased.
pub(crate) trait PendingRows: Send {
    /// The table's name.
    fn table(&self) -> &'static str;
    /// Rows pending.
    fn len(&self) -> usize;
    /// The `Vec<Row>` itself.
    fn rows_any(&self) -> &dyn Any;
    /// The `Vec<Row>` itself.
    fn rows_any_mut(&mut self) -> &mut dyn Any;
    /// The pending rows as a batch; they are gone afterwards.
    fn finish(&mut self) -> Result<RecordBatch, ArrowError>;
}

struct Rows<P: Protocol> {
    table: &'static str,
    rows: Vec<P::Row>,
}

impl<P: Protocol> PendingRows for Rows<P> {
    fn table(&self) -> &'static str {
        self.table
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn rows_any(&self) -> &dyn Any {
        &self.rows
    }

    fn rows_any_mut(&mut self) -> &mut dyn Any {
        &mut self.rows
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let batch = P::batch(&self.rows);
        self.rows.clear();
        batch
    }
}

/// Rows waiting to be appended, one buffer per protocol table, in `PROTOCOLS` order.
pub struct TableRows {
    slots: Vec<Box<dyn PendingRows>>,
}

impl Default for TableRows {
    fn default() -> Self {
        TableRows { slots: PROTOCOLS.iter().map(|p| p.new_rows()).collect() }
    }
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.slots.iter().map(|s| (s.table(), s.len()))).finish()
    }
}

impl TableRows {
    /// Rows pending over all tables.
    pub fn len(&self) -> usize {
        self.slots.iter().map(|s| s.len()).sum()
    }

    /// True when no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pending rows of type `R` (`HttpEventRow`, `RedisEventRow`, ...); empty for a type no
    /// registered protocol produces.
    pub fn of<R: 'static>(&self) -> &[R] {
        self.slots.iter().find_map(|s| s.rows_any().downcast_ref::<Vec<R>>()).map_or(&[], Vec::as_slice)
    }

    /// Hands every non-empty table's rows to `append` as one batch, with the table's name and
    /// the row count.
    pub fn finish_each(&mut self, mut append: impl FnMut(&'static str, usize, Result<RecordBatch, ArrowError>)) {
        for slot in &mut self.slots {
            let n = slot.len();
            if n > 0 {
                append(slot.table(), n, slot.finish());
            }
        }
    }
}

/// The tables of every registered protocol.
pub fn tables() -> Vec<TableSpec> {
    PROTOCOLS.iter().map(|p| p.table()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_cuts_at_a_character_boundary_and_marks() {
        assert_eq!(bounded_text("héllo".into(), false, 2), format!("h{BODY_TRUNCATED_MARKER}"));
        assert_eq!(bounded_text("hello".into(), false, 5), "hello");
        assert_eq!(bounded_text("hel".into(), true, 5), format!("hel{BODY_TRUNCATED_MARKER}"));
    }

    #[test]
    fn every_registered_protocol_has_its_own_table() {
        let names: Vec<&str> = tables().iter().map(|t| t.name).collect();
        assert_eq!(names, ["http_events", "redis_events"]);
    }
}
