//! Throughput of `PgConn` over the recorded streams in `testdata/pgsql` (a psql session, pgbench
//! with prepared and with extended queries), against two in-run baselines over the same bytes: a
//! bare frame walk (tag and length only, as the cheapest correct framer would do, no pairing or
//! text) and a plain byte loop counting NUL bytes; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::pgsql::{PgConfig, PgConn, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/pgsql/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: common::Corpus = &[
    (corpus_file!("psql.req"), corpus_file!("psql.resp")),
    (corpus_file!("pgbench_prepared.req"), corpus_file!("pgbench_prepared.resp")),
    (corpus_file!("pgbench_extended.req"), corpus_file!("pgbench_extended.resp")),
];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

/// Parses and pairs the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    common::parse_mix(CORPUS, || PgConn::new(PgConfig::default()), records)
}

/// The bare framing baseline: walks tag and length of every message on whole contiguous streams
/// (the untyped startup packets and the one-byte SSL answer included); returns the message count.
fn frame_walk() -> usize {
    let mut messages = 0;
    for (req, resp) in CORPUS {
        for (stream, is_req) in [(*req, true), (*resp, false)] {
            let stream = black_box(stream);
            let mut at = 0;
            let mut startup = true;
            while at < stream.len() {
                if startup && is_req && stream[at] == 0 {
                    let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap_or_default()) as usize;
                    startup = u32::from_be_bytes(stream[at + 4..at + 8].try_into().unwrap_or_default()) >> 16 != 3;
                    at += len;
                } else if startup && !is_req && stream[at] == b'N' && stream.get(at + 1) != Some(&0) {
                    at += 1;
                } else {
                    startup = false;
                    let len = u32::from_be_bytes(stream[at + 1..at + 5].try_into().unwrap_or_default()) as usize;
                    at += 1 + len;
                }
                messages += 1;
            }
        }
    }
    messages
}

/// The floor: the simplest possible pass over the same bytes.
fn count_nuls() -> usize {
    common::count_byte(CORPUS, 0)
}

fn bench_pgsql(c: &mut Criterion) {
    let mut group = c.benchmark_group("pgsql");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("pg_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_frame_walk", |b| b.iter(|| black_box(frame_walk())));
    group.bench_function("baseline_nul_scan", |b| b.iter(|| black_box(count_nuls())));
    group.finish();
    let mut records = Vec::new();
    parse_mix(&mut records);
    let mut group = c.benchmark_group("redact_pgsql");
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(|r| redact::pgsql_request(&mut r.req)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_pgsql);

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
    let walk = measure_mb_per_s(budget, frame_walk);
    let floor = measure_mb_per_s(budget, count_nuls);
    let records = parse_mix(&mut records);
    println!(
        "pgsql summary: PgConn {parser:.1} MB/s, frame walk {walk:.1} MB/s (ratio {:.3}), NUL-scan floor \
         {floor:.1} MB/s (ratio {:.3}) ({} bytes, {records} records per pass, {} messages)",
        parser / walk,
        parser / floor,
        corpus_bytes(),
        frame_walk(),
    );
}
