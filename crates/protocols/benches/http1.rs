//! Throughput of `Http1Conn` over the recorded mix in `testdata/http1`, against two in-run
//! baselines over the same bytes: `httparse` (the parser users would compare against: heads parsed, bodies
//! framed by Content-Length or chunked, on the contiguous streams) and a plain byte loop counting `\n`; and of
//! redacting the mix's parsed records (`redact::http1_record`).
//!
//! Owns benchmarking only; must not touch parser internals (it uses the public API).

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use loupe_protocols::http1::{Http1Conn, Message, ParseConfig, Record};
use loupe_protocols::redact;

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../testdata/http1/", $name))
    };
}

/// The recorded mix: (request stream, response stream) per connection.
const CORPUS: common::Corpus = &[
    (corpus_file!("curl_get.req"), corpus_file!("curl_get.resp")),
    (corpus_file!("browser.req"), corpus_file!("browser.resp")),
    (corpus_file!("json_post.req"), corpus_file!("json_post.resp")),
    (corpus_file!("chunked.req"), corpus_file!("chunked.resp")),
    (corpus_file!("not_found.req"), corpus_file!("not_found.resp")),
    (corpus_file!("http10_close.req"), corpus_file!("http10_close.resp")),
];

fn corpus_bytes() -> u64 {
    common::corpus_bytes(CORPUS)
}

/// Parses and stitches the whole mix once; returns the number of records.
fn parse_mix(records: &mut Vec<Record>) -> usize {
    records.clear();
    let mut ts = 0;
    for (req, resp) in CORPUS {
        let mut conn = Http1Conn::new(ParseConfig::default());
        for piece in req.chunks(common::SEGMENT) {
            ts += 1;
            conn.feed_request_side(piece, ts);
        }
        for piece in resp.chunks(common::SEGMENT) {
            ts += 1;
            conn.feed_response_side(piece, ts);
        }
        conn.close(ts + 1);
        conn.drain_records(records);
    }
    records.len()
}

/// The `httparse` baseline: every message head parsed and every body framed, as a bare parser does it, on
/// whole contiguous streams (no reassembly, no pairing into rows). A response to HEAD has no body whatever its
/// headers say, so requests are framed first and their methods remembered, as any client does. Returns the
/// number of messages.
fn httparse_mix() -> usize {
    let mut messages = 0;
    let mut heads = Vec::new();
    for (req, resp) in CORPUS {
        heads.clear();
        messages += httparse_stream(req, None, &mut heads);
        messages += httparse_stream(resp, Some(&heads), &mut Vec::new());
    }
    messages
}

/// Frames the messages of one stream: requests when `request_was_head` is `None` (pushing whether each was a
/// HEAD onto `heads`), else responses to requests with those flags.
fn httparse_stream(mut stream: &[u8], request_was_head: Option<&[bool]>, heads: &mut Vec<bool>) -> usize {
    let mut messages = 0;
    while !stream.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let (head_len, no_body) = match request_was_head {
            None => {
                let mut r = httparse::Request::new(&mut headers);
                let Ok(httparse::Status::Complete(n)) = r.parse(stream) else { break };
                heads.push(r.method == Some("HEAD"));
                (n, false)
            }
            Some(was_head) => {
                let mut r = httparse::Response::new(&mut headers);
                let Ok(httparse::Status::Complete(n)) = r.parse(stream) else { break };
                let head = was_head.get(messages).copied().unwrap_or(false);
                (n, head || matches!(r.code, Some(100..=199 | 204 | 304)))
            }
        };
        messages += 1;
        stream = &stream[head_len..];
        let header = |name: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
        let body_len = if no_body {
            0
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked")) {
            chunked_len(stream)
        } else if let Some(len) = header("content-length") {
            std::str::from_utf8(len).ok().and_then(|l| l.trim().parse().ok()).unwrap_or(0)
        } else if request_was_head.is_none() {
            0
        } else {
            stream.len() // read until close
        };
        stream = &stream[body_len.min(stream.len())..];
    }
    messages
}

/// Length of a chunked body (chunks, the last chunk, trailers and the final CRLF) at the start of `body`.
fn chunked_len(body: &[u8]) -> usize {
    let mut at = 0;
    while let Ok(httparse::Status::Complete((size_len, size))) = httparse::parse_chunk_size(&body[at..]) {
        at += size_len;
        if size == 0 {
            let rest = &body[at.min(body.len())..];
            // No trailers: one CRLF. Trailers: header lines up to an empty line.
            return at
                + if rest.starts_with(b"\r\n") {
                    2
                } else {
                    rest.windows(4).position(|w| w == b"\r\n\r\n").map_or(rest.len(), |p| p + 4)
                };
        }
        at += usize::try_from(size).unwrap_or(usize::MAX).min(body.len()) + 2;
        if at >= body.len() {
            break;
        }
    }
    at.min(body.len())
}

/// The floor: the simplest possible pass over the same bytes.
fn count_newlines() -> usize {
    common::count_byte(CORPUS, b'\n')
}

fn bench_http1(c: &mut Criterion) {
    let mut group = c.benchmark_group("http1");
    group.throughput(Throughput::Bytes(corpus_bytes()));
    let mut records = Vec::new();
    group.bench_function("http1_conn_recorded_mix", |b| b.iter(|| black_box(parse_mix(&mut records))));
    group.bench_function("baseline_httparse", |b| b.iter(|| black_box(httparse_mix())));
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
    let httparse = measure_mb_per_s(budget, httparse_mix);
    let baseline = measure_mb_per_s(budget, count_newlines);
    let (records, messages) = (parse_mix(&mut records), httparse_mix());
    // Both sides must have seen the same traffic, or the ratio compares different work.
    assert_eq!(messages, 2 * records, "httparse framed {messages} messages, Http1Conn paired {records} records");
    println!(
        "http1 summary: Http1Conn {parser:.1} MB/s, httparse {httparse:.1} MB/s (ratio {:.3}), newline-scan \
         floor {baseline:.1} MB/s (ratio {:.3}) ({} bytes, {records} records per pass)",
        parser / httparse,
        parser / baseline,
        corpus_bytes(),
    );
}
