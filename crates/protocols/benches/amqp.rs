//! Throughput of `AmqpConn` over the recorded streams in `testdata/amqp` (a `pika` session with
//! RabbitMQ), against a plain byte loop counting frame-end bytes (`0xCE`) over the
//! same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::amqp::{AmqpConfig, AmqpConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/amqp/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "amqp",
        parser: "AmqpConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[(corpus_file!("pika.req"), corpus_file!("pika.resp"))],
        new: || AmqpConn::new(AmqpConfig::default()),
        floor_byte: 0xce,
        floor_name: "frame-end",
        redact: |r| redact::amqp_method(&mut r.req),
    });
}
