//! Fuzz target: arbitrary bytes into `RedisConn` on both sides, split at data-derived points,
//! with gaps and closes, and every record through redaction and the column text. Run with
//! `cargo fuzz run redis` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The
//! parser must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_protocols::redis::{MAX_LINE_BYTES, RedisConfig, RedisConn};
use loupe_protocols::{ConnParser, Side, redact};

fuzz_target!(|data: &[u8]| {
    // First byte picks the value limit, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, mut rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        RedisConfig::default()
    } else {
        RedisConfig { max_value_bytes: usize::from(config_byte >> 2), max_pending: usize::from(config_byte >> 5) + 1 }
    };
    let bound = 2 * (MAX_LINE_BYTES + config.max_value_bytes);
    let mut conn = RedisConn::new(config);
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
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
        conn.drain_records(&mut records);
    }
    conn.close(ts + 1);
    conn.drain_records(&mut records);
    for mut record in records {
        redact::redis_command(&mut record.req);
        let _ = record.req.args_json();
    }
});
