//! Cassandra's CQL native protocol (v3, v4 and v5): an incremental parser per direction and the
//! per-connection entry point [`CqlConn`], which pairs each request with the response on the same
//! stream id (a driver multiplexes many), and records server pushes (`EVENT`, on a negative stream
//! id) alone.
//!
//! Owns everything CQL: the frame (envelope) header, v5's segment framing after the handshake
//! (uncompressed segments; their checksums are not verified), the bodies summarised as JSON (query
//! text, consistency, prepared ids, result kind and columns, errors) (`wire`), pairing (`conn`).
//! Must not touch other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::cql::{CqlConfig, CqlConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = CqlConn::new(CqlConfig::default());
//! // OPTIONS (v4) on stream 3, then SUPPORTED with an empty map.
//! conn.feed(Side::Request, b"\x04\x00\x00\x03\x05\x00\x00\x00\x00", 100);
//! conn.feed(Side::Response, b"\x84\x00\x00\x03\x06\x00\x00\x00\x02\x00\x00", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!((records[0].req.opcode, records[0].resp.as_ref().map(|r| r.opcode)), (5, Some(6)));
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{CqlConfig, CqlConn, CqlStats, Record};
pub use wire::{Message, looks_like, opcode_name};

pub use crate::framed::ParserStats;

#[cfg(test)]
mod tests;
