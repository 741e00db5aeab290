//! Store ingest throughput: `http_events` rows built into 1,024-row batches and appended to a
//! bounded table that is evicting, against building the same batches without storing them
//! (the baseline measured in the same run). Goal: ≥ 1M rows/s per core.

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder, http_events};
use loupe_store::Table;

const BATCH: usize = 1024;
const BATCHES: usize = 100;

fn rows() -> Vec<HttpEventRow> {
    (0..BATCH)
        .map(|i| HttpEventRow {
            time_ns: 1_700_000_000_000_000_000 + i as i64,
            upid: format!("0:{}:12345", 1000 + i % 8),
            remote_addr: "127.0.0.1".into(),
            remote_port: 40000 + (i % 500) as i64,
            local_addr: "127.0.0.1".into(),
            local_port: 8080,
            trace_role: 2,
            major_version: 1,
            minor_version: 1,
            req_headers: r#"{"Host":"localhost:8080","User-Agent":"curl/7.88.1","Accept":"*/*"}"#.into(),
            req_method: if i % 4 == 0 { "POST" } else { "GET" }.into(),
            req_path: format!("/api/items/{}", i % 50),
            req_body_size: 0,
            resp_headers: r#"{"Content-Type":"application/json","Content-Length":"27"}"#.into(),
            resp_status: if i % 10 == 0 { 404 } else { 200 },
            resp_message: "OK".into(),
            resp_body: r#"{"id":1,"name":"item-name"}"#.into(),
            resp_body_size: 27,
            latency_ns: 150_000 + i as i64,
            ..Default::default()
        })
        .collect()
}

fn build_only(rows: &[HttpEventRow]) -> usize {
    let mut b = HttpEventsBuilder::new();
    let mut n = 0;
    for _ in 0..BATCHES {
        for r in rows {
            b.append(r);
        }
        n += b.finish().map(|b| b.num_rows()).unwrap_or(0);
    }
    n
}

fn build_and_store(rows: &[HttpEventRow], table: &Table) -> usize {
    let mut b = HttpEventsBuilder::new();
    for _ in 0..BATCHES {
        for r in rows {
            b.append(r);
        }
        if let Ok(batch) = b.finish() {
            table.append(batch).expect("append");
        }
    }
    BATCH * BATCHES
}

fn bench(c: &mut Criterion) {
    let rows = rows();
    // A budget of ~20 batches keeps the table evicting throughout, as in steady state.
    let table = Table::new("http_events", http_events().arrow_schema(), 16 << 20).expect("table");
    let mut g = c.benchmark_group("store_ingest");
    g.throughput(Throughput::Elements((BATCH * BATCHES) as u64));
    g.bench_function("build_batches_baseline", |b| b.iter(|| build_only(&rows)));
    g.bench_function("build_and_append", |b| b.iter(|| build_and_store(&rows, &table)));
    g.finish();

    // One plain summary line with the ratio, measured here in the same run.
    let time = |f: &dyn Fn() -> usize| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            std::hint::black_box(f());
            best = best.min(t.elapsed().as_secs_f64());
        }
        best
    };
    let base = time(&|| build_only(&rows));
    let full = time(&|| build_and_store(&rows, &table));
    let n = (BATCH * BATCHES) as f64;
    println!(
        "store ingest: {:.2} M rows/s per core (baseline build-only {:.2} M rows/s; store overhead ratio {:.3}x); evicted {} rows",
        n / full / 1e6,
        n / base / 1e6,
        full / base,
        table.stats().rows_evicted
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
