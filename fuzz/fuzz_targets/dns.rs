//! Fuzz target: arbitrary bytes into `DnsConn` (TCP or UDP framing, picked by the first byte) on
//! both sides, split at data-derived points, with gaps and closes (the step encoding of `steps`),
//! and every record's JSON columns rendered. Run with `cargo fuzz run dns` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch parser internals (public API only). The parser
//! must never panic, never hang, and stay within its memory bound, whatever the input.

#![no_main]

mod steps;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::ConnParser;
use loupe_protocols::dns::{DnsConfig, DnsConn, MAX_TCP_MESSAGE, Transport};

fuzz_target!(|data: &[u8]| {
    let Some((&config_byte, rest)) = data.split_first() else {
        return;
    };
    let transport = if config_byte & 1 == 0 { Transport::Tcp } else { Transport::Udp };
    let mut conn = DnsConn::new(DnsConfig { transport, max_pending: usize::from(config_byte >> 1) + 1 });
    let records = steps::drive(&mut conn, rest, |conn| {
        assert!(conn.buffered_bytes() <= 2 * MAX_TCP_MESSAGE, "{}", conn.buffered_bytes());
    });
    for record in records {
        let _ = (record.req.header.json(), record.req.body_json(), record.resp.body_json());
    }
});
