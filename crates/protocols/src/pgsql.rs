//! PostgreSQL (frontend/backend protocol 3.0): a framer per direction and the per-connection
//! entry point [`PgConn`], which pairs each request with its response in order: the startup
//! exchange, password and SASL messages, simple queries, and the extended protocol's `Parse`,
//! `Bind`, `Describe`, `Execute` and `Close` (each a record; `Sync` pairs with its
//! `ReadyForQuery` but makes no record).
//!
//! Owns everything PostgreSQL: framing (`wire`), what a request and a response become
//! ([`Request`], [`Response`]) and pairing (`conn`). Must not touch other protocols, I/O or
//! table rows.
//!
//! ```
//! use loupe_protocols::pgsql::{PgConfig, PgConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = PgConn::new(PgConfig::default());
//! conn.feed(Side::Request, b"Q\0\0\0\x0dSELECT 1\0", 100);
//! // RowDescription (one column, `?column?`), DataRow `1`, CommandComplete, ReadyForQuery.
//! conn.feed(
//!     Side::Response,
//!     b"T\0\0\0\x21\0\x01?column?\0\0\0\0\0\0\0\0\0\0\x17\0\x04\xff\xff\xff\xff\0\0\
//!       D\0\0\0\x0b\0\x01\0\0\0\x011C\0\0\0\x0dSELECT 1\0Z\0\0\0\x05I",
//!     250,
//! );
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!(records.len(), 1);
//! assert_eq!((records[0].req.cmd, records[0].req.text.as_str()), ("QUERY", "SELECT 1"));
//! assert_eq!(records[0].resp.text, "?column?\n1\nSELECT 1");
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{MAX_NAMED, PgConfig, PgConn, PgStats, Record, Request, Response};
pub use wire::{
    CANCEL_REQUEST, GSSENC_REQUEST, Kind, Message, PROTOCOL_3, SSL_REQUEST, WireParser, WireStats, looks_like_request,
};

#[cfg(test)]
mod tests;
