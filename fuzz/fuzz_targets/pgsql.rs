//! Fuzz target: arbitrary bytes into `PgConn` on both sides, split at data-derived points, with
//! gaps and closes (the step encoding of `steps`), and every record through redaction. Run with
//! `cargo fuzz run pgsql` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::pgsql::{PgConfig, PgConn};
use loupe_protocols::{ConnParser, redact};

fuzz_target!(|data: &[u8]| {
    // First byte picks the limits, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        PgConfig::default()
    } else {
        PgConfig { max_value_bytes: usize::from(config_byte >> 2), max_pending: usize::from(config_byte >> 5) + 1 }
    };
    // Per side a header and a kept body (text limit + 256), plus the response being collected.
    let bound = 2 * (8 + config.max_value_bytes + 256) + config.max_value_bytes;
    let mut conn = PgConn::new(config);
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
    });
    for mut record in records {
        redact::pgsql_request(&mut record.req);
    }
});
