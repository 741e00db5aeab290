//! Throughput of `DnsConn` over the recorded DNS-over-TCP stream in `testdata/dns` (50 queries
//! and answers on one `dig +keepopen` connection), decoding, pairing and rendering every record's
//! four JSON columns, against two in-run baselines over the same bytes: a bare frame walk (the
//! two-byte lengths only) and a plain byte loop counting zero bytes.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use loupe_protocols::dns::{DnsConfig, DnsConn, Record};
use loupe_protocols::{ConnParser, Side};

const REQ: &[u8] = include_bytes!("../testdata/dns/dig_keepopen.req");
const RESP: &[u8] = include_bytes!("../testdata/dns/dig_keepopen.resp");

/// Bytes a socket read typically delivers; the streams are fed in pieces this size.
const SEGMENT: usize = 1460;

fn corpus_bytes() -> u64 {
    (REQ.len() + RESP.len()) as u64
}

/// Parses, pairs and renders the stream once; returns the bytes of JSON produced.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    let mut conn = DnsConn::new(DnsConfig::default());
    for piece in REQ.chunks(SEGMENT) {
        conn.feed(Side::Request, piece, 1);
    }
    for piece in RESP.chunks(SEGMENT) {
        conn.feed(Side::Response, piece, 2);
    }
    conn.close(3);
    conn.drain_records(records);
    records
        .iter()
        .map(|r| {
            r.req.header.json().len() + r.req.body_json().len() + r.resp.header.json().len() + r.resp.body_json().len()
        })
        .sum()
}

/// The bare framing baseline: walks the two-byte lengths; returns the message count.
fn frame_walk() -> usize {
    let mut messages = 0;
    for stream in [REQ, RESP] {
        let stream = black_box(stream);
        let mut at = 0;
        while at + 2 <= stream.len() {
            at += 2 + usize::from(u16::from_be_bytes([stream[at], stream[at + 1]]));
            messages += 1;
        }
    }
    messages
}

/// The floor: the simplest possible pass over the same bytes.
fn count_zeros() -> usize {
    [REQ, RESP].iter().map(|s| black_box(*s).iter().filter(|&&b| b == 0).count()).sum()
}

fn bench_dns(c: &mut Criterion) {
    let mut group = c.benchmark_group("dns");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("dns_conn_recorded_stream", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_frame_walk", |b| b.iter(|| black_box(frame_walk())));
    group.bench_function("baseline_zero_scan", |b| b.iter(|| black_box(count_zeros())));
    group.finish();
}

criterion_group!(benches, bench_dns);

/// Runs `f` repeatedly for about `budget` and returns MB/s over the corpus.
fn measure_mb_per_s(budget: Duration, f: impl FnMut() -> usize) -> f64 {
    common::mb_per_s(corpus_bytes(), budget, f)
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();

    let budget = Duration::from_millis(500);
    let mut records = Vec::new();
    let parser = measure_mb_per_s(budget, || parse_mix(&mut records));
    let walk = measure_mb_per_s(budget, frame_walk);
    let floor = measure_mb_per_s(budget, count_zeros);
    parse_mix(&mut records);
    assert_eq!(2 * records.len(), frame_walk(), "the parser paired every framed message");
    println!(
        "dns summary: DnsConn {parser:.1} MB/s, frame walk {walk:.1} MB/s (ratio {:.3}), zero-scan floor \
         {floor:.1} MB/s (ratio {:.3}) ({} bytes, {} records per pass)",
        parser / walk,
        parser / floor,
        corpus_bytes(),
        records.len(),
    );
}
