//! Fuzz target: arbitrary bytes into `Http1Conn` on both sides, split at data-derived points,
//! with gaps and closes. Run with `cargo +nightly fuzz run http1` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The
//! parser must never panic and never hang, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_protocols::http1::{Http1Conn, ParseConfig, Side};

fuzz_target!(|data: &[u8]| {
    // First byte picks the limits, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, mut rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        ParseConfig::default()
    } else {
        ParseConfig {
            max_body_bytes: usize::from(config_byte >> 4),
            max_header_bytes: usize::from(config_byte & 0x0e) * 8,
        }
    };
    let mut conn = Http1Conn::new(config);
    let mut records = Vec::new();
    let mut ts: u64 = 0;
    // Each step: one control byte, then a piece of the following bytes.
    // control bit 0: side; bits 1-2: 0/1 = feed, 2 = gap, 3 = close (rarely); bits 3-7: length.
    while let Some((&control, tail)) = rest.split_first() {
        ts += 1;
        let side = if control & 1 == 0 { Side::Request } else { Side::Response };
        let len = usize::from(control >> 3) + 1;
        match (control >> 1) & 3 {
            2 => {
                conn.gap(side, len as u64, ts);
                rest = tail;
            }
            3 if control >> 3 == 0 => {
                conn.close(ts);
                rest = tail;
            }
            _ => {
                let (piece, remaining) = tail.split_at(len.min(tail.len()));
                conn.feed(side, piece, ts);
                rest = remaining;
            }
        }
        conn.drain_records(&mut records);
        records.clear();
    }
    conn.close(ts + 1);
    conn.drain_records(&mut records);
    for record in &records {
        let _ = record.req.headers_json();
        let _ = record.resp.content_type();
    }
});
