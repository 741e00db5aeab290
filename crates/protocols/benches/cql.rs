//! Throughput of `CqlConn` over the recorded stream in `testdata/cql` (requests from
//! cassandra-driver's encoder (v4: auth, queries, prepare, execute, batch, an event)), against a plain byte loop counting zero bytes over the same bytes measured in the
//! same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::cql::{CqlConfig, CqlConn};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/cql/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "cql",
        parser: "CqlConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[(corpus_file!("driver_v4.req"), corpus_file!("driver_v4.resp"))],
        new: || CqlConn::new(CqlConfig::default()),
        floor_byte: 0,
        floor_name: "zero-byte",
        redact: redact::cql_record,
    });
}
