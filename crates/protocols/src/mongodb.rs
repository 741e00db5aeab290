//! MongoDB (the wire protocol of every driver and `mongod`): an incremental parser per direction
//! and the per-connection entry point [`MongodbConn`], which pairs each request with the reply whose
//! `responseTo` is its `requestID`, and records alone the requests that get no reply (`OP_MSG` with
//! `moreToCome`, the legacy unacknowledged writes).
//!
//! Owns everything MongoDB: framing, `OP_MSG`, `OP_QUERY`, `OP_REPLY`, `OP_COMPRESSED` (zlib and noop
//! decoded within the body budget; snappy and zstd named only),
//! the legacy opcodes' names and BSON rendered as (relaxed extended) JSON (`wire`), pairing
//! (`conn`). Must not touch other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::mongodb::{MongodbConfig, MongodbConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = MongodbConn::new(MongodbConfig::default());
//! // OP_MSG {ping: 1} with requestID 7, then the reply {ok: 1.0} with responseTo 7.
//! conn.feed(Side::Request, b"\x24\0\0\0\x07\0\0\0\0\0\0\0\xdd\x07\0\0\0\0\0\0\0\x0f\0\0\0\x10ping\0\x01\0\0\0\0", 100);
//! conn.feed(Side::Response, b"\x26\0\0\0\x09\0\0\0\x07\0\0\0\xdd\x07\0\0\0\0\0\0\0\x11\0\0\0\x01ok\0\0\0\0\0\0\0\xf0\x3f\0", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!((records[0].req.cmd.as_str(), records[0].req.body.as_str()), ("ping", r#"{"ping":1}"#));
//! assert_eq!(records[0].resp.as_ref().map(|r| r.status.as_str()), Some("ok"));
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{MongodbConfig, MongodbConn, MongodbStats, Record};
pub use wire::{Message, looks_like, opcode_name};

pub use crate::framed::ParserStats;

#[cfg(test)]
mod tests;
