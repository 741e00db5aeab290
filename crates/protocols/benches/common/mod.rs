//! What every protocol bench shares: feeding a recorded corpus to a parser in the pieces socket
//! reads deliver, the plain byte-count baseline over the same bytes, and the MB/s figure measured
//! in the same run (so that a ratio means the same on any machine).
//!
//! Owns bench scaffolding only; each bench keeps its corpus, its parser and its framing baseline.

// Each bench uses the part it needs.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use loupe_protocols::{ConnParser, Side};

/// A recorded mix: (request stream, response stream) per connection.
pub type Corpus = &'static [(&'static [u8], &'static [u8])];

/// Bytes a socket read typically delivers; the streams are fed in pieces this size.
pub const SEGMENT: usize = 1460;

/// Bytes in `corpus`, both directions.
pub fn corpus_bytes(corpus: Corpus) -> u64 {
    corpus.iter().map(|(req, resp)| (req.len() + resp.len()) as u64).sum()
}

/// Parses and pairs the whole mix once, one parser from `new` per connection, requests first;
/// returns the number of records.
pub fn parse_mix<P: ConnParser>(corpus: Corpus, mut new: impl FnMut() -> P, records: &mut Vec<P::Record>) -> usize {
    records.clear();
    let mut ts = 0;
    for (req, resp) in corpus {
        let mut conn = new();
        for piece in req.chunks(SEGMENT) {
            ts += 1;
            conn.feed(Side::Request, piece, ts);
        }
        for piece in resp.chunks(SEGMENT) {
            ts += 1;
            conn.feed(Side::Response, piece, ts);
        }
        conn.close(ts + 1);
        conn.drain_records(records);
    }
    records.len()
}

/// The floor: the simplest pass over the same bytes, counting one byte value.
pub fn count_byte(corpus: Corpus, byte: u8) -> usize {
    corpus
        .iter()
        .flat_map(|(req, resp)| [*req, *resp])
        .map(|s| black_box(s).iter().filter(|&&b| b == byte).count())
        .sum()
}

/// Runs `f` repeatedly for about `budget` and returns MB/s over `bytes` per run.
pub fn mb_per_s(bytes: u64, budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    while start.elapsed() < budget {
        black_box(f());
        iterations += 1;
    }
    bytes as f64 * iterations as f64 / start.elapsed().as_secs_f64() / 1e6
}
