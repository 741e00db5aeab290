//! The shape every protocol parser has: [`ConnParser`], one connection with both of its
//! directions, and [`Side`], which names a direction by what it carries.
//!
//! Owns only the trait and the side names. Must not hold any protocol's framing (that is each
//! protocol module's) nor any connection tracking (that is the collector's): the collector feeds
//! the bytes of one direction in stream order, reports the holes it could not fill as gaps, and
//! drains the finished records.

/// One direction of a connection, named by what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The direction carrying requests (egress for a client, ingress for a server).
    Request,
    /// The direction carrying responses.
    Response,
}

/// A parser for one connection of one protocol, both directions.
///
/// Contract, for every implementation:
/// - bytes of each side are fed in stream order; a side's capture hole is reported with
///   [`gap`](Self::gap) and its length, so a parser inside a length-delimited value steps over it;
/// - records come out with [`drain_records`](Self::drain_records) in the order they completed;
///   a record may be a request paired with its response, or a message that has no partner
///   (a Redis pub/sub push);
/// - it never panics, whatever the bytes; [`buffered_bytes`](Self::buffered_bytes) stays under a
///   bound fixed by its configuration, and its stitcher's queues are bounded by count;
/// - [`close`](Self::close) completes what the end of the connection completes (a close-delimited
///   body) and drops the rest.
pub trait ConnParser {
    /// What one finished exchange becomes.
    type Record;

    /// Feeds bytes of `side`, captured at `ts_ns`.
    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64);

    /// `side` lost `len` bytes (a capture gap) from data carried at `ts_ns`.
    fn gap(&mut self, side: Side, len: u64, ts_ns: u64);

    /// The connection closed at `ts_ns`.
    fn close(&mut self, ts_ns: u64);

    /// Moves the records finished so far to `out`, oldest first.
    fn drain_records(&mut self, out: &mut Vec<Self::Record>);

    /// Bytes held for incomplete messages, bounded by the parser's configuration (the bound the
    /// proptests and fuzz targets check). Complete messages waiting for their partner are bounded
    /// by count in the stitcher instead.
    fn buffered_bytes(&self) -> usize;

    /// Hands back a record the caller is done with, so that its buffers serve later records
    /// (steady traffic then parses without allocating). Optional: by default it is dropped.
    fn recycle(&mut self, record: Self::Record) {
        drop(record);
    }

    /// Complete messages waiting for their partner in the stitcher (0 for a parser that does not
    /// report them): what the collector bounds over all connections.
    fn pending_messages(&self) -> usize {
        0
    }

    /// Drops up to `n` of the oldest messages waiting for their partner, the collector's bound
    /// over all connections being reached; returns how many were dropped. The caller counts
    /// them (the parser's own counters do not), so each drop is counted once.
    fn shed_oldest(&mut self, n: usize) -> usize {
        let _ = n;
        0
    }
}
