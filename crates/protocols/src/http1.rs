//! HTTP/1.0 and HTTP/1.1: an incremental parser per direction and a request/response stitcher.
//!
//! Owns everything HTTP/1.x: message heads (`head`), the parsed [`Message`] (`message`), the
//! per-direction [`StreamParser`] (`parser`) and pairing into [`Record`]s with the
//! per-connection entry point [`Http1Conn`] (`stitch`). Must not touch other protocols, I/O or
//! table rows.
//!
//! ```
//! use loupe_protocols::http1::{Http1Conn, ParseConfig};
//!
//! let mut conn = Http1Conn::new(ParseConfig::default());
//! conn.feed_request_side(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n", 100);
//! conn.feed_response_side(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].req.path, "/health");
//! assert_eq!(records[0].resp.body, b"ok");
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod head;
mod message;
mod parser;
mod stitch;

pub use head::{looks_like_request, looks_like_response};
pub use message::{
    CONTENT_TYPE_GRPC, CONTENT_TYPE_JSON, CONTENT_TYPE_UNKNOWN, Headers, Message, MessageKind, ParseConfig,
};
pub use parser::{MAX_PENDING_METHODS, ParseStats, StreamParser};
pub use stitch::{ConnStats, DEFAULT_MAX_PENDING, Http1Conn, Record, Side, StitchStats, Stitcher};

#[cfg(test)]
mod tests;
