//! Redis (RESP2 and RESP3): an incremental parser per direction and the per-connection entry
//! point [`RedisConn`], which pairs commands with replies in order and turns pub/sub pushes into
//! records of their own.
//!
//! Owns everything Redis: RESP framing (`resp`), what a command and a reply become ([`Command`],
//! [`Reply`]) and pairing (`conn`). Must not touch other protocols, I/O or table rows.
//!
//! ```
//! use loupe_protocols::redis::{RedisConfig, RedisConn};
//! use loupe_protocols::{ConnParser, Side};
//!
//! let mut conn = RedisConn::new(RedisConfig::default());
//! conn.feed(Side::Request, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\nGET k\r\n", 100);
//! conn.feed(Side::Response, b"+OK\r\n$1\r\nv\r\n", 250);
//! let mut records = Vec::new();
//! conn.drain_records(&mut records);
//! let got: Vec<_> = records.iter().map(|r| (r.req.name.as_str(), r.req.args_json(), r.resp.text.as_str())).collect();
//! assert_eq!(got, [("SET", r#"["k","v"]"#.to_string(), "OK"), ("GET", r#"["k"]"#.to_string(), "v")]);
//! assert_eq!(records[0].latency_ns, 150);
//! ```

mod conn;
mod resp;

pub use conn::{Command, PUSH_PUB, Record, RedisConfig, RedisConn, RedisStats, Reply};
pub use resp::{
    Aggregate, Frame, MAX_DEPTH, MAX_ITEMS, MAX_LINE_BYTES, RespParser, RespStats, Value, looks_like_command,
};

#[cfg(test)]
mod tests;
