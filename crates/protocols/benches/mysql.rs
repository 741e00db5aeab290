//! Throughput of `MysqlConn` over the recorded `mariadb` streams in `testdata/mysql`, against two
//! in-run baselines over the same bytes: a bare packet walk (3-byte lengths only) and a plain
//! byte loop counting zero bytes.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use loupe_protocols::mysql::{MysqlConfig, MysqlConn, Record};
use loupe_protocols::{ConnParser, Side};

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mysql/", $name))
    };
}

const CORPUS: &[(&[u8], &[u8])] = &[
    (corpus_file!("queries.req"), corpus_file!("queries.resp")),
    (corpus_file!("sql_prepare.req"), corpus_file!("sql_prepare.resp")),
];

const SEGMENT: usize = 1460;

fn corpus_bytes() -> u64 {
    CORPUS.iter().map(|(req, resp)| (req.len() + resp.len()) as u64).sum()
}

fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    for (req, resp) in CORPUS {
        let mut conn = MysqlConn::new(MysqlConfig::default());
        for piece in req.chunks(SEGMENT) {
            conn.feed(Side::Request, piece, 1);
        }
        for piece in resp.chunks(SEGMENT) {
            conn.feed(Side::Response, piece, 2);
        }
        conn.close(3);
        conn.drain_records(records);
    }
    records.len()
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
    CORPUS.iter().flat_map(|(a, b)| [*a, *b]).map(|s| black_box(s).iter().filter(|&&b| b == 0).count()).sum()
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
