//! Throughput of `MongodbConn` over the recorded stream in `testdata/mongodb` (requests from
//! pymongo's OP_MSG encoder (handshake, SCRAM, insert, find, an error)), against a plain byte loop counting zero bytes over the same bytes measured in the
//! same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::mongodb::{MongodbConfig, MongodbConn, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mongodb/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: common::Corpus = &[(corpus_file!("pymongo.req"), corpus_file!("pymongo.resp"))];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

/// Parses the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    common::parse_mix(CORPUS, || MongodbConn::new(MongodbConfig::default()), records)
}

/// The floor: the simplest possible pass over the same bytes.
fn count_zero_bytes() -> usize {
    common::count_byte(CORPUS, 0)
}

fn bench_mongodb(c: &mut Criterion) {
    let mut group = c.benchmark_group("mongodb");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("mongodb_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_zero_byte_scan", |b| b.iter(|| black_box(count_zero_bytes())));
    group.finish();
    let mut records = Vec::new();
    parse_mix(&mut records);
    let mut group = c.benchmark_group("redact_mongodb");
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(redact::mongodb_record),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_mongodb);

/// Runs `f` repeatedly for about `budget` and returns MB/s over the corpus.
fn measure_mb_per_s(budget: Duration, f: impl FnMut() -> usize) -> f64 {
    common::mb_per_s(corpus_bytes(), budget, f)
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();

    // A plain summary line, measured in this run so the ratio is meaningful on any machine.
    let budget = Duration::from_millis(500);
    let mut records = Vec::new();
    let parser = measure_mb_per_s(budget, || parse_mix(&mut records));
    let floor = measure_mb_per_s(budget, count_zero_bytes);
    let records = parse_mix(&mut records);
    println!(
        "mongodb summary: MongodbConn {parser:.1} MB/s, zero-byte-scan floor {floor:.1} MB/s (ratio {:.3}) ({} bytes, \
         {records} records per pass)",
        parser / floor,
        corpus_bytes(),
    );
}
