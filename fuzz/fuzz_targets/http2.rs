//! Fuzz target: arbitrary bytes into `Http2Conn` on both sides, split at data-derived points, with
//! gaps and closes (the step encoding of `steps`), and every record through redaction. Run with
//! `cargo fuzz run http2` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::http2::{Http2Config, Http2Conn, PREFACE};
use loupe_protocols::{ConnParser, Side, redact};

fuzz_target!(|data: &[u8]| {
    // First byte picks the limits (small ones exercise the bounds) and whether the connection
    // starts with the client preface (so HPACK runs with a complete table, not only a partial one).
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        Http2Config::default()
    } else {
        Http2Config {
            max_body_bytes: usize::from(config_byte >> 4),
            max_header_bytes: usize::from(config_byte >> 2) * 4,
            max_table_size: usize::from(config_byte) * 2,
            max_block_bytes: usize::from(config_byte >> 1) + 9,
            max_streams: usize::from(config_byte >> 5) + 1,
            max_ready: usize::from(config_byte >> 6) + 1,
        }
    };
    let c = config;
    let per_stream = 2 * (c.max_header_bytes + c.max_body_bytes + 64) * 2;
    let bound = 2 * (2 * c.max_block_bytes + c.max_table_size + 64) + c.max_streams * per_stream;
    let mut conn = Http2Conn::new(config);
    if config_byte & 2 != 0 {
        conn.feed(Side::Request, PREFACE, 0);
        conn.feed(Side::Response, &[0, 0, 0, 4, 0, 0, 0, 0, 0], 0);
    }
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
        assert!(conn.open_streams() <= c.max_streams.max(1));
    });
    for mut record in records {
        redact::http2_record(&mut record);
        let _ = record.req.headers_json();
    }
});
