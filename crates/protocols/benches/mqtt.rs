//! Throughput of `MqttConn` over the recorded streams in `testdata/mqtt` (mosquitto's clients at
//! MQTT 3.1.1 and 5, QoS 0 to 2), against a plain byte loop counting zero bytes over the
//! same bytes measured in the same run; and of redacting the parsed records.
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::mqtt::{MqttConfig, MqttConn, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/mqtt/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: common::Corpus = &[
    (corpus_file!("sub_qos1.req"), corpus_file!("sub_qos1.resp")),
    (corpus_file!("pub_311_qos1.req"), corpus_file!("pub_311_qos1.resp")),
    (corpus_file!("pub_5_qos2.req"), corpus_file!("pub_5_qos2.resp")),
    (corpus_file!("pub_5_qos0.req"), corpus_file!("pub_5_qos0.resp")),
];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

/// Parses the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    common::parse_mix(CORPUS, || MqttConn::new(MqttConfig::default()), records)
}

/// The floor: the simplest possible pass over the same bytes.
fn count_zeros() -> usize {
    common::count_byte(CORPUS, 0)
}

fn bench_mqtt(c: &mut Criterion) {
    let mut group = c.benchmark_group("mqtt");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("mqtt_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_zero_scan", |b| b.iter(|| black_box(count_zeros())));
    group.finish();
    let mut records = Vec::new();
    parse_mix(&mut records);
    let mut group = c.benchmark_group("redact_mqtt");
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(|r| redact::mqtt_packet(&mut r.req)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_mqtt);

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
    let floor = measure_mb_per_s(budget, count_zeros);
    let records = parse_mix(&mut records);
    println!(
        "mqtt summary: MqttConn {parser:.1} MB/s, zero-scan floor {floor:.1} MB/s (ratio {:.3}) ({} bytes, \
         {records} records per pass)",
        parser / floor,
        corpus_bytes(),
    );
}
