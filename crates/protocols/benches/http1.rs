//! Throughput of `Http1Conn` over the recorded mix in `testdata/http1`, against an in-run
//! baseline: a plain byte loop counting `\n` over the same bytes; and of redacting the mix's
//! parsed records (`redact::http1_record`).
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::http1::{Http1Conn, Message, ParseConfig, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/http1/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: &[(&[u8], &[u8])] = &[
    (corpus_file!("curl_get.req"), corpus_file!("curl_get.resp")),
    (corpus_file!("browser.req"), corpus_file!("browser.resp")),
    (corpus_file!("json_post.req"), corpus_file!("json_post.resp")),
    (corpus_file!("chunked.req"), corpus_file!("chunked.resp")),
    (corpus_file!("not_found.req"), corpus_file!("not_found.resp")),
    (corpus_file!("http10_close.req"), corpus_file!("http10_close.resp")),
];

/// Bytes a socket read typically delivers; the streams are fed in pieces this size.
const SEGMENT: usize = 1460;

fn corpus_bytes() -> u64 {
    CORPUS.iter().map(|(req, resp)| (req.len() + resp.len()) as u64).sum()
}

/// Parses and stitches the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    let mut ts = 0;
    for (req, resp) in CORPUS {
        let mut conn = Http1Conn::new(ParseConfig::default());
        for piece in req.chunks(SEGMENT) {
            ts += 1;
            conn.feed_request_side(piece, ts);
        }
        for piece in resp.chunks(SEGMENT) {
            ts += 1;
            conn.feed_response_side(piece, ts);
        }
        conn.close(ts + 1);
        conn.drain_records(records);
    }
    records.len()
}

/// The baseline: the simplest possible pass over the same bytes.
fn count_newlines() -> usize {
    let mut count = 0;
    for (req, resp) in CORPUS {
        for stream in [req, resp] {
            for &byte in black_box(*stream) {
                if byte == b'\n' {
                    count += 1;
                }
            }
        }
    }
    count
}

fn bench_http1(c: &mut Criterion) {
    let mut group = c.benchmark_group("http1");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("http1_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_newline_scan", |b| b.iter(|| black_box(count_newlines())));
    group.finish();
}

/// Bytes redaction reads in one message: the target, the headers and the kept body.
fn redacted_bytes(message: &Message) -> u64 {
    let headers: usize = message.headers.iter().map(|(name, value)| name.len() + value.len()).sum();
    (message.path.len() + headers + message.body.len()) as u64
}

/// Redaction of the mix's parsed records, as the collector runs it on every row. The records are
/// cloned outside the timed part; throughput counts the bytes redaction reads.
fn bench_redact(c: &mut Criterion) {
    let mut records = Vec::new();
    parse_mix(&mut records);
    let bytes = records.iter().map(|r| redacted_bytes(&r.req) + redacted_bytes(&r.resp)).sum();
    let mut group = c.benchmark_group("redact");
    group.throughput(Throughput::BytesDecimal(bytes));
    group.bench_function("redact_recorded_mix_records", |b| {
        b.iter_batched_ref(
            || records.clone(),
            |records| records.iter_mut().for_each(redact::http1_record),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_http1, bench_redact);

/// Runs `f` repeatedly for about `budget` and returns MB/s over the corpus.
fn measure_mb_per_s(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut iterations: u64 = 0;
    while start.elapsed() < budget {
        black_box(f());
        iterations += 1;
    }
    let bytes = corpus_bytes() as f64 * iterations as f64;
    bytes / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();

    // A plain summary line, measured in this run so the ratio is meaningful on any machine.
    let budget = Duration::from_millis(500);
    let mut records = Vec::new();
    let parser = measure_mb_per_s(budget, || parse_mix(&mut records));
    let baseline = measure_mb_per_s(budget, count_newlines);
    println!(
        "http1 summary: Http1Conn {parser:.1} MB/s, newline-scan baseline {baseline:.1} MB/s, \
         ratio {:.3} ({} bytes, {} records per pass)",
        parser / baseline,
        corpus_bytes(),
        parse_mix(&mut records),
    );
}
