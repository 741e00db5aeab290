//! Throughput of `MongodbConn` over the recorded stream in `testdata/mongodb` (requests from
//! pymongo's OP_MSG encoder (handshake, SCRAM, insert, find, an error)), against a plain byte loop counting zero bytes over the same bytes measured in the
//! same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::mongodb::{MongodbConfig, MongodbConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mongodb/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "mongodb",
        parser: "MongodbConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[(corpus_file!("pymongo.req"), corpus_file!("pymongo.resp"))],
        new: || MongodbConn::new(MongodbConfig::default()),
        floor_byte: 0,
        floor_name: "zero-byte",
        redact: redact::mongodb_record,
    });
}
