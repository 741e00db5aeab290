//! Throughput of `KafkaConn` over the recorded stream in `testdata/kafka` (requests from
//! kafka-python's encoders (ApiVersions, SASL, Metadata, Produce, Fetch)), against a plain byte loop counting zero bytes over the same bytes measured in the
//! same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::kafka::{KafkaConfig, KafkaConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/kafka/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "kafka",
        parser: "KafkaConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[(corpus_file!("kafka_python.req"), corpus_file!("kafka_python.resp"))],
        new: || KafkaConn::new(KafkaConfig::default()),
        floor_byte: 0,
        floor_name: "zero-byte",
        redact: redact::kafka_record,
    });
}
