//! Throughput of `Http2Conn` over the recorded streams in `testdata/http2` (nghttp to nginx, five
//! multiplexed GETs; Python grpcio client and server, 41 unary calls), against two in-run baselines
//! over the same bytes: a bare frame walk (9-byte headers and lengths only: no HPACK, no streams)
//! and a plain byte loop counting zero bytes; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::http2::{Http2Config, Http2Conn, PREFACE, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/http2/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: common::Corpus = &[
    (corpus_file!("nghttp_nginx.req"), corpus_file!("nghttp_nginx.resp")),
    (corpus_file!("grpc.req"), corpus_file!("grpc.resp")),
];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

/// Parses and pairs the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    common::parse_mix(CORPUS, || Http2Conn::new(Http2Config::default()), records)
}

/// The bare framing baseline: walks every frame header on whole contiguous streams (after the
/// client preface); returns the frame count.
fn frame_walk() -> usize {
    let mut frames = 0;
    for (req, resp) in CORPUS {
        for (stream, skip) in [(*req, PREFACE.len()), (*resp, 0)] {
            let stream = black_box(stream);
            let mut at = skip;
            while let Some(h) = stream.get(at..at + 9) {
                let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                at += 9 + len;
                frames += 1;
            }
        }
    }
    frames
}

/// The floor: the simplest possible pass over the same bytes.
fn count_zeros() -> usize {
    common::count_byte(CORPUS, 0)
}

fn bench_http2(c: &mut Criterion) {
    let mut group = c.benchmark_group("http2");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("http2_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_frame_walk", |b| b.iter(|| black_box(frame_walk())));
    group.bench_function("baseline_zero_scan", |b| b.iter(|| black_box(count_zeros())));
    group.finish();
    let mut records = Vec::new();
    parse_mix(&mut records);
    let mut group = c.benchmark_group("redact_http2");
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(redact::http2_record),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_http2);

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
    let floor = measure_mb_per_s(budget, count_zeros);
    let records = parse_mix(&mut records);
    println!(
        "http2 summary: Http2Conn {parser:.1} MB/s, frame walk {walk:.1} MB/s (ratio {:.3}), zero-scan floor \
         {floor:.1} MB/s (ratio {:.3}) ({} bytes, {records} records per pass, {} frames)",
        parser / walk,
        parser / floor,
        corpus_bytes(),
        frame_walk(),
    );
}
