//! Fuzz target: arbitrary bytes into `CqlConn` on both sides, split at data-derived points, with
//! gaps and closes (the step encoding of `steps`), and every record through redaction. Run with
//! `cargo fuzz run cql` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::cql::{CqlConfig, CqlConn};
use loupe_protocols::{ConnParser, redact};

fuzz_target!(|data: &[u8]| {
    // First byte picks the value limit, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        CqlConfig::default()
    } else {
        CqlConfig { max_value_bytes: usize::from(config_byte >> 2), max_pending: usize::from(config_byte >> 5) + 1 }
    };
    let bound = 2 * (9 + 4096 + config.max_value_bytes);
    let mut conn = CqlConn::new(config);
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
        assert!(conn.pending_messages() <= 2 * config.max_pending);
    });
    for mut record in records {
        redact::cql_record(&mut record);
    }
});
