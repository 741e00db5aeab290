//! Throughput of `RedisConn` over the recorded streams in `testdata/redis` (RESP2 pipelined, and RESP3
//! with pub/sub pushes, against Debian's `redis-server`), against a plain byte loop counting line
//! feeds over the same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use loupe_protocols::redact;
use loupe_protocols::redis::{RedisConfig, RedisConn};

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/redis/", $name))
    };
}

fn main() {
    common::run(&common::Bench {
        name: "redis",
        parser: "RedisConn",
        // The recorded mix: (request stream, response stream) per connection.
        corpus: &[
            (corpus_file!("pipelined.req"), corpus_file!("pipelined.resp")),
            (corpus_file!("resp3.req"), corpus_file!("resp3.resp")),
        ],
        new: || RedisConn::new(RedisConfig::default()),
        floor_byte: b'\n',
        floor_name: "line-feed",
        redact: |r| redact::redis_command(&mut r.req),
    });
}
