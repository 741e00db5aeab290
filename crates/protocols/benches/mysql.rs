//! Throughput of `MysqlConn` over the recorded `mariadb` streams in `testdata/mysql`, against two
//! in-run baselines over the same bytes: a bare packet walk (3-byte lengths only) and a plain
//! byte loop counting zero bytes.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group};
use loupe_protocols::mysql::{MysqlConfig, MysqlConn, Record};

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mysql/", $name))
    };
}

const CORPUS: common::Corpus = &[
    (corpus_file!("queries.req"), corpus_file!("queries.resp")),
    (corpus_file!("sql_prepare.req"), corpus_file!("sql_prepare.resp")),
];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

fn parse_mix(records: &mut Vec<Record>) -> usize {
    common::parse_mix(CORPUS, || MysqlConn::new(MysqlConfig::default()), records)
}

/// The bare framing baseline: walks every packet's 3-byte length; returns the packet count.
fn packet_walk() -> usize {
    let mut packets = 0;
    for (req, resp) in CORPUS {
        for stream in [*req, *resp] {
            let stream = black_box(stream);
            let mut at = 0;
            while at + 4 <= stream.len() {
                at += 4
                    + (usize::from(stream[at]) | usize::from(stream[at + 1]) << 8 | usize::from(stream[at + 2]) << 16);
                packets += 1;
            }
        }
    }
    packets
}

fn count_zeros() -> usize {
    common::count_byte(CORPUS, 0)
}

fn bench_mysql(c: &mut Criterion) {
    let mut group = c.benchmark_group("mysql");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("mysql_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_packet_walk", |b| b.iter(|| black_box(packet_walk())));
    group.bench_function("baseline_zero_scan", |b| b.iter(|| black_box(count_zeros())));
    group.finish();
}

criterion_group!(benches, bench_mysql);

fn measure_mb_per_s(budget: Duration, f: impl FnMut() -> usize) -> f64 {
    common::mb_per_s(corpus_bytes(), budget, f)
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();

    let budget = Duration::from_millis(500);
    let mut records = Vec::new();
    let parser = measure_mb_per_s(budget, || parse_mix(&mut records));
    let walk = measure_mb_per_s(budget, packet_walk);
    let floor = measure_mb_per_s(budget, count_zeros);
    let records = parse_mix(&mut records);
    println!(
        "mysql summary: MysqlConn {parser:.1} MB/s, packet walk {walk:.1} MB/s (ratio {:.3}), zero-scan floor \
         {floor:.1} MB/s (ratio {:.3}) ({} bytes, {records} records per pass, {} packets)",
        parser / walk,
        parser / floor,
        corpus_bytes(),
        packet_walk(),
    );
}
