//! NATS (the client protocol of `nats-server`): an incremental line-and-payload parser per
//! direction and the per-connection entry point [`NatsConn`], which turns every protocol message
//! into a record and pairs the server's `+OK`/`-ERR` acknowledgements with the client message
//! they answer when the client asked for them (`"verbose":true` in `CONNECT`).
//!
//! Owns everything NATS: framing (`wire`), what a message becomes ([`Message`], its `cmd` and
//! JSON `body`) and pairing (`conn`). Must not touch other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::nats::{NatsConfig, NatsConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = NatsConn::new(NatsConfig::default());
//! conn.feed(Side::Response, b"INFO {\"server_id\":\"x\"}\r\n", 10);
//! conn.feed(Side::Request, b"CONNECT {\"verbose\":true}\r\nPUB greet 5\r\nhello\r\n", 20);
//! conn.feed(Side::Response, b"+OK\r\n+OK\r\n", 30);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! let got: Vec<_> = records.iter().map(|r| (r.msg.cmd.as_str(), r.msg.body.as_str(), r.resp.as_str())).collect();
//! assert_eq!(
//!     got,
//!     [
//!         ("INFO", r#"{"server_id":"x"}"#, ""),
//!         ("CONNECT", r#"{"verbose":true}"#, "OK"),
//!         ("PUB", r#"{"subject":"greet","payload":"hello"}"#, "OK"),
//!     ]
//! );
//! ```

mod conn;
mod wire;

pub use conn::{NatsConfig, NatsConn, NatsStats, Record};
pub use wire::{MAX_LINE_BYTES, Message, NatsParser, ParserStats, looks_like};

#[cfg(test)]
mod tests;
