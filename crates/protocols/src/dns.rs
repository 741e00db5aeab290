//! DNS (RFC 1035): message decoding and the per-connection entry point [`DnsConn`], which pairs
//! queries with responses by transaction id. Over TCP each message carries a two-byte length;
//! over UDP each feed is one datagram.
//!
//! Owns everything DNS: the header, questions and answer records (names decompressed, with a
//! bound on pointer hops), their JSON column text, framing and pairing. Must not touch other
//! protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::dns::{DnsConfig, DnsConn, Transport};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = DnsConn::new(DnsConfig { transport: Transport::Udp, ..DnsConfig::default() });
//! // Query 0x1234 for a.test A; the response answers 10.0.0.1 (the name as a pointer to offset 12).
//! let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01";
//! let mut response = b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01".to_vec();
//! response.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01");
//! conn.feed(Side::Request, query, 100);
//! conn.feed(Side::Response, &response, 180);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! assert_eq!(records[0].req.body_json(), r#"{"queries":[{"name":"a.test","type":"A"}]}"#);
//! assert_eq!(records[0].resp.body_json(), r#"{"answers":[{"name":"a.test","type":"A","addr":"10.0.0.1"}]}"#);
//! assert_eq!(records[0].latency_ns, 80);
//! ```

mod message;

pub use message::{
    Answer, DnsConfig, DnsConn, DnsMessage, DnsStats, Header, MAX_RECORDS, MAX_TCP_MESSAGE, Question, Record,
    Transport, decode, looks_like_tcp_query, type_name,
};

#[cfg(test)]
mod tests;
