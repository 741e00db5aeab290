//! What every protocol bench shares: feeding a recorded corpus to a parser in the pieces socket
//! reads deliver, the plain byte-count baseline over the same bytes, and the MB/s figure measured
//! in the same run (so that a ratio means the same on any machine).
//!
//! Owns bench scaffolding only; each bench keeps its corpus, its parser and its framing baseline. The
//! length-prefixed and framed protocols (AMQP, MQTT, NATS, Kafka, MongoDB, CQL) describe themselves in a
//! [`Bench`] and [`run`] does the rest.

// Each bench uses the part it needs.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
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

/// One protocol's bench: a recorded mix through its parser, a one-byte count over the same bytes as the floor,
/// and redaction of the parsed records.
pub struct Bench<P: ConnParser> {
    /// Benchmark group name, also the prefix of the summary line (`kafka`).
    pub name: &'static str,
    /// The parser's type name, for the summary line (`KafkaConn`).
    pub parser: &'static str,
    pub corpus: Corpus,
    /// A parser for one connection.
    pub new: fn() -> P,
    /// The floor counts this byte (a frame end, a zero)...
    pub floor_byte: u8,
    /// ... and is named by this (`zero-byte`, `frame-end`).
    pub floor_name: &'static str,
    /// Redacts one parsed record in place.
    pub redact: fn(&mut P::Record),
}

/// Criterion over the parser, the floor and redaction, then one plain summary line measured in the same run, so
/// that the ratio means the same on any machine.
pub fn run<P: ConnParser>(bench: &Bench<P>)
where
    P::Record: Clone,
{
    let bytes = corpus_bytes(bench.corpus);
    let parse = |records: &mut Vec<P::Record>| parse_mix(bench.corpus, bench.new, records);
    let floor = || count_byte(bench.corpus, bench.floor_byte);
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group(bench.name);
    group.throughput(Throughput::Bytes(bytes));
    let mut records = Vec::new();
    group.bench_function(format!("{}_conn_recorded_mix", bench.name), |b| b.iter(|| black_box(parse(&mut records))));
    group.bench_function(format!("baseline_{}_scan", bench.floor_name.replace('-', "_")), |b| {
        b.iter(|| black_box(floor()))
    });
    group.finish();
    parse(&mut records);
    let mut group = c.benchmark_group(format!("redact_{}", bench.name));
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(bench.redact),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    c.final_summary();

    let budget = Duration::from_millis(500);
    let parser = mb_per_s(bytes, budget, || parse(&mut records));
    let floor_mb = mb_per_s(bytes, budget, floor);
    let n = parse(&mut records);
    println!(
        "{} summary: {} {parser:.1} MB/s, {}-scan floor {floor_mb:.1} MB/s (ratio {:.3}) ({bytes} bytes, {n} records per \
         pass)",
        bench.name,
        bench.parser,
        bench.floor_name,
        parser / floor_mb,
    );
}
