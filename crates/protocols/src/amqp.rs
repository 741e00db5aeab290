//! AMQP 0-9-1 (RabbitMQ's protocol): an incremental frame parser per direction and the
//! per-connection entry point [`AmqpConn`], which pairs each synchronous method with its reply on
//! the same channel (`Queue.Declare` with `Declare-Ok`, `Basic.Get` with `Get-Ok` or `Get-Empty`,
//! a broker's `Channel.Close` with the client's `Close-Ok`, ...) and records asynchronous ones
//! (`Basic.Publish`, `Basic.Deliver`, `Basic.Ack`) alone, each with the content (header and body
//! frames) that follows it.
//!
//! Owns everything AMQP: framing and method decoding (`wire`), pairing (`conn`). Must not touch
//! other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::amqp::{AmqpConfig, AmqpConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = AmqpConn::new(AmqpConfig::default());
//! // Channel.Open on channel 1, then Channel.Open-Ok.
//! conn.feed(Side::Request, b"\x01\x00\x01\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xce", 100);
//! conn.feed(Side::Response, b"\x01\x00\x01\x00\x00\x00\x08\x00\x14\x00\x0b\x00\x00\x00\x00\xce", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!((records[0].req.class_id, records[0].req.method_id), (20, 10));
//! assert_eq!(records[0].resp.as_ref().map(|r| r.method_id), Some(11));
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod wire;

pub use conn::{AmqpConfig, AmqpConn, AmqpStats, Record};
pub use wire::{AmqpParser, MAX_KEPT_FRAME, Method, ParserStats, looks_like, method_name};

#[cfg(test)]
mod tests;
