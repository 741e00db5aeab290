//! Throughput of `AmqpConn` over the recorded streams in `testdata/amqp` (a `pika` session with
//! RabbitMQ), against a plain byte loop counting frame-end bytes (`0xCE`) over the
//! same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::amqp::{AmqpConfig, AmqpConn, Record};
use loupe_protocols::{ConnParser, Side, redact};

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/amqp/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: &[(&[u8], &[u8])] = &[(corpus_file!("pika.req"), corpus_file!("pika.resp"))];

/// Bytes a socket read typically delivers; the streams are fed in pieces this size.
const SEGMENT: usize = 1460;

fn corpus_bytes() -> u64 {
    CORPUS.iter().map(|(req, resp)| (req.len() + resp.len()) as u64).sum()
}

/// Parses the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    let mut ts = 0;
    for (req, resp) in CORPUS {
        let mut conn = AmqpConn::new(AmqpConfig::default());
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

/// The floor: the simplest possible pass over the same bytes.
fn count_frame_ends() -> usize {
    let mut count = 0;
    for (req, resp) in CORPUS {
        for stream in [req, resp] {
            for &byte in black_box(*stream) {
                if byte == 0xce {
                    count += 1;
                }
            }
        }
    }
    count
}

fn bench_amqp(c: &mut Criterion) {
    let mut group = c.benchmark_group("amqp");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("amqp_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_frame_end_scan", |b| b.iter(|| black_box(count_frame_ends())));
    group.finish();
    let mut records = Vec::new();
    parse_mix(&mut records);
    let mut group = c.benchmark_group("redact_amqp");
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(|r| redact::amqp_method(&mut r.req)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_amqp);

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
    let floor = measure_mb_per_s(budget, count_frame_ends);
    let records = parse_mix(&mut records);
    println!(
        "amqp summary: AmqpConn {parser:.1} MB/s, frame-end-scan floor {floor:.1} MB/s (ratio {:.3}) ({} bytes, \
         {records} records per pass)",
        parser / floor,
        corpus_bytes(),
    );
}
