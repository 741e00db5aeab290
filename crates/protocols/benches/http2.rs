//! Throughput of `Http2Conn` over the recorded streams in `testdata/http2` (nghttp to nginx, five
//! multiplexed GETs; Python grpcio client and server, 41 unary calls), against two in-run baselines
//! over the same bytes: a bare frame walk (9-byte headers and lengths only: no HPACK, no streams)
//! and a plain byte loop counting zero bytes; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::http2::{Http2Config, Http2Conn, PREFACE, Record};
use loupe_protocols::{ConnParser, Side, redact};

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/http2/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: &[(&[u8], &[u8])] = &[
    (corpus_file!("nghttp_nginx.req"), corpus_file!("nghttp_nginx.resp")),
    (corpus_file!("grpc.req"), corpus_file!("grpc.resp")),
];

/// Bytes a socket read typically delivers; the streams are fed in pieces this size.
const SEGMENT: usize = 1460;

fn corpus_bytes() -> u64 {
    CORPUS.iter().map(|(req, resp)| (req.len() + resp.len()) as u64).sum()
}

/// Parses and pairs the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    let mut ts = 0;
    for (req, resp) in CORPUS {
        let mut conn = Http2Conn::new(Http2Config::default());
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
    let mut count = 0;
    for (req, resp) in CORPUS {
        for stream in [req, resp] {
            for &byte in black_box(*stream) {
                if byte == 0 {
                    count += 1;
                }
            }
        }
    }
    count
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
fn measure_mb_per_s(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    while start.elapsed() < budget {
        black_box(f());
        iterations += 1;
    }
    corpus_bytes() as f64 * iterations as f64 / start.elapsed().as_secs_f64() / 1e6
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
