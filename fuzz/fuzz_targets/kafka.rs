//! Fuzz target: arbitrary bytes into `KafkaConn` on both sides, split at data-derived points, with
//! gaps and closes (the step encoding of `steps`), and every record through redaction. Run with
//! `cargo fuzz run kafka` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::kafka::{KafkaConfig, KafkaConn, MAX_KEPT_HEADER};
use loupe_protocols::{ConnParser, redact};

fuzz_target!(|data: &[u8]| {
    // First byte picks the value limit, so small limits (and their edge cases) get exercised too.
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        KafkaConfig::default()
    } else {
        KafkaConfig { max_value_bytes: usize::from(config_byte >> 2), max_pending: usize::from(config_byte >> 5) + 1 }
    };
    let bound = 2 * (4 + MAX_KEPT_HEADER + config.max_value_bytes);
    let mut conn = KafkaConn::new(config);
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
        assert!(conn.pending_messages() <= 2 * config.max_pending);
    });
    for mut record in records {
        redact::kafka_record(&mut record);
    }
});
