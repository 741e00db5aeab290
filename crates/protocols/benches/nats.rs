//! Throughput of `NatsConn` over the recorded streams in `testdata/nats` (a verbose publisher and
//! a quiet subscriber of `nats-server`), against a plain byte loop counting line feeds over the
//! same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::nats::{NatsConfig, NatsConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/nats/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "nats",
        parser: "NatsConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[
            (corpus_file!("publisher.req"), corpus_file!("publisher.resp")),
            (corpus_file!("subscriber.req"), corpus_file!("subscriber.resp")),
        ],
        new: || NatsConn::new(NatsConfig::default()),
        floor_byte: b'\n',
        floor_name: "line-feed",
        redact: |r| redact::nats_message(&mut r.msg),
    });
}
