//! Fuzz target: arbitrary bytes into `Http1Conn` on both sides, split at data-derived points,
//! with gaps and closes (the step encoding of `steps`). Run with `cargo +nightly fuzz run http1` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The
//! parser must never panic and never hang, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::http1::{Http1Conn, ParseConfig};

fuzz_target!(|data: &[u8]| {
    // First byte picks the limits, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, rest)) = data.split_first() else {
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
    for record in steps::drive(&mut conn, rest, |_| {}) {
        let _ = record.req.headers_json();
        let _ = record.resp.content_type();
    }
});
