//! Fuzz target: arbitrary bytes into `MysqlConn` on both sides, split at data-derived points,
//! with gaps and closes (the step encoding of `steps`), and every record through redaction. Run
//! with `cargo fuzz run mysql` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::mysql::{MysqlConfig, MysqlConn};
use loupe_protocols::{ConnParser, redact};

fuzz_target!(|data: &[u8]| {
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let config = if config_byte & 1 == 0 {
        MysqlConfig::default()
    } else {
        MysqlConfig { max_value_bytes: usize::from(config_byte >> 2), max_pending: usize::from(config_byte >> 5) + 1 }
    };
    // Per side a packet header and a kept body (text limit + 64).
    let bound = 2 * (4 + config.max_value_bytes + 64);
    let mut conn = MysqlConn::new(config);
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
    });
    for mut record in records {
        redact::mysql_command(&mut record.req);
    }
});
