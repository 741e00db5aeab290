//! HTTP/2 in cleartext (h2c) and gRPC over it, from captured bytes of any implementation.
//!
//! Owns frames (RFC 9113), HPACK with each direction's dynamic table (RFC 7541, `hpack`, with
//! the RFC's static and Huffman tables), and pairing a stream's request and response into a
//! [`Record`] (`conn`, whose [`Http2Conn`] is the protocol's [`ConnParser`](crate::ConnParser)).
//! Messages are [`http1::Message`](crate::http1::Message)s, so rows, redaction and truncation
//! are HTTP/1's. Must not touch other protocols, I/O or table rows.
//!
//! A capture that starts mid-connection (or loses a header block to a gap) decodes what HPACK
//! still allows and marks the rest: fields referring to table entries never seen are left out
//! and counted, and the message gets an [`UNRESOLVED_HEADER`] field; nothing is guessed.
//!
//! ```
//! use loupe_protocols::http2::{Http2Config, Http2Conn, PREFACE};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = Http2Conn::new(Http2Config::default());
//! let mut req = PREFACE.to_vec();
//! // HEADERS on stream 1, END_STREAM | END_HEADERS: GET, http, /, then :authority "a" (literal).
//! req.extend([0, 0, 6, 1, 5, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x41, 0x01, b'a']);
//! conn.feed(Side::Request, &req, 100);
//! // SETTINGS, then HEADERS :status 200 with END_STREAM.
//! conn.feed(Side::Response, &[0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1, 5, 0, 0, 0, 1, 0x88], 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!(records.len(), 1);
//! assert_eq!(records[0].req.path, "/");
//! assert_eq!(records[0].resp.status, 200);
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod hpack;
mod huffman_table;

pub use conn::{Http2Config, Http2Conn, Http2Stats, PREFACE, Record, UNRESOLVED_HEADER, looks_like};
pub use hpack::{BlockOutcome, Decoder, HpackError};

#[cfg(test)]
mod tests;
