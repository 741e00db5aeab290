//! Kafka (the binary protocol every client speaks to a broker): an incremental parser per
//! direction and the per-connection entry point [`KafkaConn`], which pairs each request with the
//! response that carries its correlation id (a client may have several in flight), and records a
//! `Produce` with `acks=0`, which gets no response, alone.
//!
//! Owns everything Kafka: framing and header decoding, the summaries of `Produce`, `Fetch`,
//! `Metadata`, `ApiVersions` and the SASL requests and their responses (`wire`), pairing (`conn`).
//! Must not touch other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::kafka::{KafkaConfig, KafkaConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = KafkaConn::new(KafkaConfig::default());
//! // ApiVersions v0, correlation id 7, client id "c"; then its response (error code 0, no keys).
//! conn.feed(Side::Request, b"\0\0\0\x0b\0\x12\0\0\0\0\0\x07\0\x01c", 100);
//! conn.feed(Side::Response, b"\0\0\0\x0a\0\0\0\x07\0\0\0\0\0\0", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!((records[0].req.api_key, records[0].req.client_id.as_str()), (18, "c"));
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{KafkaConfig, KafkaConn, KafkaStats, Record};
pub use wire::{MAX_KEPT_HEADER, Request, Response, looks_like};

pub use crate::framed::ParserStats;

#[cfg(test)]
mod tests;
