//! Benchmark: history against memory. A day of per-minute service stats for 1,000 services (1.44 M rows) is
//! queried with the same PxL (a groupby over the day) from the store and from history (Parquet on a local disk,
//! via `Engine::with_history`), interleaved; prints both medians and `history/memory ratio`. Then one million
//! `http_events` rows are written to history: prints their bytes on disk against their Arrow size in memory.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Float64Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use loupe_engine::{Engine, ExecOptions};
use loupe_history::{History, HistoryConfig};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
use loupe_schema::{ColumnSpec, ColumnType, TableSpec};
use loupe_store::{Store, StoreConfig};

const SERVICES: usize = 1_000;
const MINUTES: usize = 24 * 60;
const MINUTE: i64 = 60_000_000_000;

fn service_stats() -> TableSpec {
    let col = |name, ty| ColumnSpec { name, ty, semantic: "ST_NONE", desc: "" };
    TableSpec {
        name: "service_stats",
        desc: "per-minute service stats",
        columns: vec![
            col("time_", ColumnType::Time64Ns),
            col("service", ColumnType::String),
            col("requests", ColumnType::Int64),
            col("errors", ColumnType::Int64),
            col("latency_p99", ColumnType::Float64),
        ],
    }
}

/// One batch per minute: a row per service.
fn day_of_stats(start: i64) -> Vec<RecordBatch> {
    let schema = service_stats().arrow_schema();
    (0..MINUTES)
        .map(|m| {
            let (mut t, mut s, mut r, mut e, mut l) = (
                TimestampNanosecondBuilder::new(),
                StringBuilder::new(),
                Int64Builder::new(),
                Int64Builder::new(),
                Float64Builder::new(),
            );
            for i in 0..SERVICES {
                t.append_value(start + m as i64 * MINUTE);
                s.append_value(format!("ns-{}/svc-{i}", i % 20));
                r.append_value(((i * 7 + m) % 500) as i64);
                e.append_value(((i + m) % 11) as i64);
                l.append_value(((i * 13 + m) % 997) as f64 * 0.1);
            }
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(t.finish()),
                    Arc::new(s.finish()),
                    Arc::new(r.finish()),
                    Arc::new(e.finish()),
                    Arc::new(l.finish()),
                ],
            )
            .expect("batch")
        })
        .collect()
}

fn history(dir: &std::path::Path) -> Arc<History> {
    let _ = std::fs::remove_dir_all(dir);
    Arc::new(
        History::open(&HistoryConfig {
            location: dir.display().to_string(),
            org: "bench".into(),
            vizier: "bench".into(),
            writer: "bench".into(),
            max_read_bytes: 8 << 30,
            s3_options: Vec::new(),
        })
        .expect("history"),
    )
}

const PXL: &str = "import px
df = px.DataFrame('service_stats', start_time='-2d')
s = df.groupby(['service']).agg(req=('requests', px.sum), err=('errors', px.sum), p99=('latency_p99', px.max))
px.display(s)";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let now = loupe_common::time::now_unix_ns();
    let start = now - 25 * 60 * MINUTE;
    let batches = day_of_stats(start);
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();

    // Memory: every row in the store.
    let mut config = StoreConfig::default();
    config.table_bytes.insert("service_stats".into(), 16 << 30);
    let mem_store = Arc::new(Store::new(config.clone()));
    let table = mem_store.register(&service_stats()).expect("register");
    for b in &batches {
        table.append(b.clone()).expect("append");
    }
    let memory = Engine::new(mem_store);

    // History: the same rows as Parquet, an empty store above them.
    let dir = std::env::temp_dir().join(format!("loupe-bench-history-{}", std::process::id()));
    let h = history(&dir);
    let t0 = Instant::now();
    let written = rt.block_on(h.write_batches("service_stats", &batches, now)).expect("write");
    eprintln!(
        "wrote {} rows in {} segments, {} KiB, in {:.1?}",
        written.rows,
        written.segments,
        written.bytes >> 10,
        t0.elapsed()
    );
    let hist_store = Arc::new(Store::new(config));
    hist_store.register(&service_stats()).expect("register");
    let from_history = Engine::new(hist_store).with_history(Arc::clone(&h));

    let opts = ExecOptions { max_output_rows: 10_000, ..ExecOptions::default() };
    let options = loupe_pxl::CompileOptions { now_ns: now };
    let run = |engine: &Engine| {
        let program = loupe_pxl::compile(PXL, &engine.catalog(), &options).expect("compiles");
        rt.block_on(engine.execute_program(&program, &opts)).expect("runs")
    };
    assert_eq!(run(&memory)[0].num_rows(), SERVICES);
    assert_eq!(run(&from_history)[0].num_rows(), SERVICES);

    let mut g = c.benchmark_group("day_of_service_stats");
    g.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));
    g.bench_function("memory", |b| b.iter(|| black_box(run(&memory))));
    g.bench_function("history", |b| b.iter(|| black_box(run(&from_history))));
    g.finish();
    let (mut m, mut hi) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let t = Instant::now();
        black_box(run(&memory));
        m.push(t.elapsed());
        let t = Instant::now();
        black_box(run(&from_history));
        hi.push(t.elapsed());
    }
    let (m, hi) = (median(m), median(hi));
    println!(
        "a day of per-minute stats for {SERVICES} services ({rows} rows): memory {m:.1?}, history {hi:.1?}, \
         history/memory ratio: {:.2}",
        hi.as_secs_f64() / m.as_secs_f64()
    );

    // Bytes on disk per million http_events rows against their Arrow size.
    let mut b = HttpEventsBuilder::new();
    let mut http = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..1_000_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.append(&HttpEventRow {
            time_ns: start + (i as i64) * 86_400_000,
            req_path: format!("/api/v1/items/{}", x % 5_000),
            req_method: if x.is_multiple_of(5) { "POST" } else { "GET" }.into(),
            req_headers: format!("{{\"Host\":\"svc-{}.ns\",\"User-Agent\":\"curl/8.5\"}}", x % 50),
            resp_status: if x.is_multiple_of(97) { 500 } else { 200 },
            resp_body: format!("{{\"id\":{},\"ok\":true}}", x % 100_000),
            latency_ns: (x % 2_000_000) as i64,
            ..HttpEventRow::default()
        });
        if (i + 1) % 65_536 == 0 {
            http.push(b.finish().expect("batch"));
            b = HttpEventsBuilder::new();
        }
    }
    http.push(b.finish().expect("batch"));
    let raw: usize = http.iter().map(RecordBatch::get_array_memory_size).sum();
    let written = rt.block_on(h.write_batches("http_events", &http, now)).expect("write");
    println!(
        "1,000,000 http_events rows: {} MiB as Arrow in memory, {} MiB of Parquet on disk ({} segments): {:.1}x smaller",
        raw >> 20,
        written.bytes >> 20,
        written.segments,
        raw as f64 / written.bytes as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
