//! The protocols the socket tracer parses, and how each one's records become rows.
//!
//! Owns the [`Protocol`] trait (a `loupe_protocols` parser, its table, its first-bytes test and
//! its row building), the registry `PROTOCOLS`, the type-erased per-connection parser the
//! tracker holds (`ConnRows`) and the pending rows of every protocol table ([`TableRows`]).
//! Adding a protocol means: a parser in `loupe_protocols`, its table in `loupe_schema`, a module
//! here implementing [`Protocol`], and one line in `PROTOCOLS` (plus the kernel's first-bytes
//! gate in `crates/bpf/c` when it filters by protocol). Must not touch reassembly or connection
//! state: it sees bytes of one side at a time and one connection's identity when building rows.

mod amqp;
mod cql;
mod dns;
mod http;
mod http2;
mod kafka;
mod mongodb;
mod mqtt;
mod mysql;
mod nats;
mod pgsql;
mod redis;

use std::any::Any;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use loupe_common::ClockConverter;
use loupe_protocols::{ConnParser, Side};
use loupe_schema::TableSpec;
use loupe_schema::table::TableBuilder;

pub use self::amqp::Amqp;
pub use self::cql::Cql;
pub use self::dns::Dns;
pub use self::http::Http1;
pub use self::http2::Http2;
pub use self::kafka::Kafka;
pub use self::mongodb::Mongodb;
pub use self::mqtt::Mqtt;
pub use self::mysql::Mysql;
pub use self::nats::Nats;
pub use self::pgsql::Pgsql;
pub use self::redis::Redis;
use super::tracker::TrackerConfig;
use crate::events::Role;

/// Every protocol the socket tracer parses, in the order inference tries them: one line each.
#[rustfmt::skip]
pub(crate) static PROTOCOLS: &[&(dyn DynProtocol + Sync)] = &[
    &Registered::<Http1>::NEW,
    // Before Redis: "INFO {" is NATS's greeting, and also a line Redis's inline test accepts.
    &Registered::<Nats>::NEW,
    &Registered::<Redis>::NEW,
    &Registered::<Pgsql>::NEW,
    &Registered::<Dns>::NEW,
    &Registered::<Mysql>::NEW,
    &Registered::<Mqtt>::NEW,
    &Registered::<Amqp>::NEW,
    &Registered::<Http2>::NEW,
    // Binary protocols tested on a whole request header each (Pixie's order: CQL, Mongo, Kafka).
    &Registered::<Cql>::NEW,
    &Registered::<Mongodb>::NEW,
    &Registered::<Kafka>::NEW,
];

/// The `agent_stats` counters of one protocol's [`Losses`], in the order parse errors, partial
/// messages dropped, unpaired messages, overflows: `<protocol>_parse_errors`,
/// `<protocol>_messages_dropped`, `<protocol>_messages_unpaired`, `<protocol>_messages_overflow`.
/// Each protocol has its own, so no two series of `/metrics` share their labels; a name not
/// registered here gets `protocol_*` (a test holds every registered protocol to its own set).
pub(crate) fn loss_counters(protocol: &str) -> [&'static str; 4] {
    macro_rules! by_name {
        ($($p:literal),* $(,)?) => {
            match protocol {
                $($p => [
                    concat!($p, "_parse_errors"),
                    concat!($p, "_messages_dropped"),
                    concat!($p, "_messages_unpaired"),
                    concat!($p, "_messages_overflow"),
                ],)*
                _ => ["protocol_parse_errors", "protocol_messages_dropped", "protocol_messages_unpaired", "protocol_messages_overflow"],
            }
        };
    }
    by_name!("http1", "http2", "nats", "redis", "pgsql", "dns", "mysql", "mqtt", "amqp", "cql", "mongodb", "kafka")
}

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

/// What one connection's parser lost, by cause (summed into `agent_stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Times a parser lost sync on malformed bytes (a run of garbage counts once).
    pub parse_errors: u64,
    /// Partial messages dropped at a capture gap or a close.
    pub dropped_partial: u64,
    /// Messages dropped without a partner: responses no request explains, requests left unanswered.
    pub unpaired: u64,
    /// Messages dropped because a bounded queue was full.
    pub overflow: u64,
}

impl Losses {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Losses) {
        self.parse_errors += other.parse_errors;
        self.dropped_partial += other.dropped_partial;
        self.unpaired += other.unpaired;
        self.overflow += other.overflow;
    }
}

/// One protocol, as the socket tracer uses it.
pub trait Protocol: 'static {
    /// Short name, the prefix of its `agent_stats` counters (`http1`).
    const NAME: &'static str;
    /// The parser of one connection.
    type Parser: ConnParser<Record: Send> + Send + 'static;
    /// The column builder of the protocol's table: rows are appended to it column by column.
    type Builder: TableBuilder;

    /// The table its rows go to.
    fn table() -> TableSpec;

    /// Whether the first captured bytes of a connection are this protocol, and which way.
    /// Cheap: it runs once per connection, on its first bytes only.
    fn looks_like(first: &[u8]) -> Option<Looks>;

    /// A parser for a new connection.
    fn parser(config: &TrackerConfig) -> Self::Parser;

    /// Whether the first datagram of a UDP socket's exchange with one peer is this protocol, and
    /// which way. `None` (the default) for protocols that never travel in datagrams.
    fn datagram_looks_like(first: &[u8]) -> Option<Looks> {
        let _ = first;
        None
    }

    /// A parser for one UDP peer's datagrams, each fed whole (the default: the stream parser).
    fn datagram_parser(config: &TrackerConfig) -> Self::Parser {
        Self::parser(config)
    }

    /// What the connection's parser lost so far.
    fn losses(parser: &Self::Parser) -> Losses;

    /// Appends the row for one record straight to the table's columns (no owned row in
    /// between), redacted when `ctx.config.redact`.
    fn append(builder: &mut Self::Builder, record: <Self::Parser as ConnParser>::Record, ctx: &RowContext<'_>);

    /// [`append`](Self::append), then the record goes back to the connection's `parser` for
    /// reuse of its buffers ([`ConnParser::recycle`]), when the protocol's row building can hand
    /// it back. The tracker calls this one; by default it is `append`.
    fn append_recycling(
        builder: &mut Self::Builder,
        record: <Self::Parser as ConnParser>::Record,
        ctx: &RowContext<'_>,
        parser: &mut Self::Parser,
    ) {
        let _ = parser;
        Self::append(builder, record, ctx);
    }
}

/// What a row needs to know about its connection.
pub struct RowContext<'a> {
    /// The owning process, as text.
    pub upid: &'a str,
    /// The peer's address as text (`-` when unknown), made once per connection.
    pub remote_addr: &'a str,
    /// The peer's port (-1 when unknown).
    pub remote_port: i64,
    /// The traced process's address as text (`-` when unknown).
    pub local_addr: &'a str,
    /// The traced process's port (-1 when unknown).
    pub local_port: i64,
    /// Client or server.
    pub role: Role,
    /// The bytes were TLS plaintext (the `encrypted` column).
    pub encrypted: bool,
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
}

/// Appends Pixie's CONN8 prefix (`time_` to `encrypted`) of a protocol row to its columns.
macro_rules! append_conn8 {
    ($b:expr, $ctx:expr, $time_ns:expr) => {{
        let (b, ctx) = (&mut *$b, $ctx);
        b.time_ns.append_value($time_ns);
        b.upid.append_value(ctx.upid);
        b.remote_addr.append_value(ctx.remote_addr);
        b.remote_port.append_value(ctx.remote_port);
        b.local_addr.append_value(ctx.local_addr);
        b.local_port.append_value(ctx.local_port);
        b.trace_role.append_value(ctx.role.as_trace_role());
        b.encrypted.append_value(ctx.encrypted);
    }};
}
pub(crate) use append_conn8;

/// Address text and port; IPv4-mapped IPv6 addresses print as IPv4, as Pixie shows them.
pub(crate) fn addr_parts(addr: Option<SocketAddr>) -> (String, i64) {
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

/// Appends a kept HTTP body as column text (invalid UTF-8 replaced), marked when it is not the
/// whole body (`cut`).
pub(super) fn body_text(column: &mut arrow::array::StringBuilder, body: &[u8], cut: bool) {
    use std::fmt::Write as _;
    // Validating first is cheaper than the replacing decoder on text, which bodies nearly are.
    let _ = match std::str::from_utf8(body) {
        Ok(text) => column.write_str(text),
        Err(_) => column.write_str(&String::from_utf8_lossy(body)),
    };
    if cut {
        let _ = column.write_str(BODY_TRUNCATED_MARKER);
    }
    column.append_value("");
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
    /// See [`Protocol::NAME`].
    fn name(&self) -> &'static str;
    /// The table its rows go to.
    fn table(&self) -> TableSpec;
    /// See [`Protocol::looks_like`].
    fn looks_like(&self, first: &[u8]) -> Option<Looks>;
    /// A parser for a new connection.
    fn new_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows>;
    /// See [`Protocol::datagram_looks_like`].
    fn datagram_looks_like(&self, first: &[u8]) -> Option<Looks>;
    /// A parser for one UDP peer's datagrams.
    fn new_datagram_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows>;
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
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn table(&self) -> TableSpec {
        P::table()
    }

    fn looks_like(&self, first: &[u8]) -> Option<Looks> {
        P::looks_like(first)
    }

    fn new_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows> {
        Box::new(ParsedConn::<P> { parser: P::parser(config), records: Vec::new() })
    }

    fn datagram_looks_like(&self, first: &[u8]) -> Option<Looks> {
        P::datagram_looks_like(first)
    }

    fn new_datagram_conn(&self, config: &TrackerConfig) -> Box<dyn ConnRows> {
        Box::new(ParsedConn::<P> { parser: P::datagram_parser(config), records: Vec::new() })
    }

    fn new_rows(&self) -> Box<dyn PendingRows> {
        Box::new(Rows::<P> { table: P::table().name, builder: P::Builder::default() })
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
    /// What the parser lost so far.
    fn losses(&self) -> Losses;
    /// Complete messages waiting for their partner (see [`ConnParser::pending_messages`]).
    fn pending_messages(&self) -> usize;
    /// Drops up to `n` of the oldest of them; returns how many (see [`ConnParser::shed_oldest`]).
    fn shed_oldest(&mut self, n: usize) -> usize;
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
        let Some(builder) = out.slots.get_mut(slot).and_then(|s| s.builder_any_mut().downcast_mut::<P::Builder>())
        else {
            // The slot belongs to another protocol: a registry mix-up, never expected.
            self.records.clear();
            return 0;
        };
        for record in self.records.drain(..) {
            P::append_recycling(builder, record, ctx, &mut self.parser);
        }
        n
    }

    fn losses(&self) -> Losses {
        P::losses(&self.parser)
    }

    fn pending_messages(&self) -> usize {
        self.parser.pending_messages()
    }

    fn shed_oldest(&mut self, n: usize) -> usize {
        self.parser.shed_oldest(n)
    }
}

/// Pending rows of one table, type-erased.
pub(crate) trait PendingRows: Send {
    /// The table's name.
    fn table(&self) -> &'static str;
    /// Rows pending.
    fn len(&self) -> usize;
    /// The pending rows as owned rows (`Vec<Row>`), for tests and tools.
    fn rows_any(&self) -> Box<dyn Any>;
    /// The table's builder itself.
    fn builder_any_mut(&mut self) -> &mut dyn Any;
    /// The pending rows as a batch; they are gone afterwards.
    fn finish(&mut self) -> Result<RecordBatch, ArrowError>;
}

struct Rows<P: Protocol> {
    table: &'static str,
    builder: P::Builder,
}

impl<P: Protocol> PendingRows for Rows<P> {
    fn table(&self) -> &'static str {
        self.table
    }

    fn len(&self) -> usize {
        self.builder.len()
    }

    fn rows_any(&self) -> Box<dyn Any> {
        let rows = self.builder.snapshot().map(|batch| P::Builder::rows(&batch)).unwrap_or_default();
        Box::new(rows)
    }

    fn builder_any_mut(&mut self) -> &mut dyn Any {
        &mut self.builder
    }

    fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.builder.finish()
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

    /// A copy of the pending rows of type `R` (`HttpEventRow`, `RedisEventRow`, ...), read back
    /// from the columns; empty for a type no registered protocol produces. For tests and tools:
    /// it copies every pending row.
    pub fn of<R: 'static>(&self) -> Vec<R> {
        // Two protocols may share a table (HTTP/1 and HTTP/2 both fill `http_events`).
        self.slots.iter().filter_map(|s| s.rows_any().downcast::<Vec<R>>().ok()).flat_map(|rows| *rows).collect()
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

/// The tables of every registered protocol, each once (HTTP/1 and HTTP/2 share `http_events`).
pub fn tables() -> Vec<TableSpec> {
    let mut specs: Vec<TableSpec> = Vec::new();
    for table in PROTOCOLS.iter().map(|p| p.table()) {
        if !specs.iter().any(|t| t.name == table.name) {
            specs.push(table);
        }
    }
    specs
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
    fn every_registered_protocol_has_its_own_loss_counters() {
        let mut all = Vec::new();
        for p in PROTOCOLS {
            let counters = loss_counters(p.name());
            for c in counters {
                assert!(c.starts_with(&format!("{}_", p.name())), "{} counts its losses as {c}", p.name());
            }
            all.extend(counters);
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a counter name is shared: {all:?}");
        assert_eq!(
            loss_counters("pgsql"),
            ["pgsql_parse_errors", "pgsql_messages_dropped", "pgsql_messages_unpaired", "pgsql_messages_overflow"]
        );
    }

    #[test]
    fn every_registered_protocol_has_its_own_table() {
        let names: Vec<&str> = tables().iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "http_events",
                "nats_events.beta",
                "redis_events",
                "pgsql_events",
                "dns_events",
                "mysql_events",
                "mqtt_events",
                "amqp_events",
                "cql_events",
                "mongodb_events",
                "kafka_events.beta"
            ]
        );
    }
}
