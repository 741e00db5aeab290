//! Benchmark: filter + group by 50 paths + count/mean/p99 over 10M `http_events` rows, PxL
//! through the engine versus the same query as DataFusion SQL over a `MemTable` of the same
//! batches, measured in one run. Prints `pxl/sql ratio: X.XX (goal <= 1.2)`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::catalog::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use loupe_engine::{Engine, ExecOptions};
use loupe_schema::http::http_events;
use loupe_store::{Store, StoreConfig, TimeRange};

#[path = "data.rs"]
mod data;

use data::{PATHS, ROWS};

const PXL: &str = "import px
df = px.DataFrame('http_events')
df = df[df.resp_status >= 200]
s = df.groupby(['req_path']).agg(n=('latency', px.count), mean=('latency', px.mean), p99=('latency', px.p99))
px.display(s)";

const SQL: &str = "SELECT req_path, count(latency), avg(latency), \
    approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) \
    FROM http_events WHERE resp_status >= 200 GROUP BY req_path";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores).enable_all().build().expect("runtime");

    let t0 = Instant::now();
    let mut config = StoreConfig::default();
    config.table_bytes.insert("http_events".into(), 64 << 30);
    let store = Arc::new(Store::new(config));
    let table = store.register(&http_events()).expect("register");
    for b in data::batches(ROWS) {
        table.append(b).expect("append");
    }
    let stats = table.stats();
    eprintln!(
        "generated {} rows in {} batches ({} MiB) in {:.1?}",
        stats.rows,
        stats.batches,
        stats.bytes >> 20,
        t0.elapsed()
    );
    assert_eq!(stats.rows, ROWS as u64, "store evicted rows; raise its budget");

    let engine = Engine::new(store);
    let opts = ExecOptions::default();

    // The SQL baseline reads the same batches, split the same way.
    let sql_ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(engine.target_partitions()));
    let all = table.scan(TimeRange::ALL);
    let per = all.len().div_ceil(engine.target_partitions());
    let parts: Vec<Vec<RecordBatch>> = all.chunks(per).map(<[RecordBatch]>::to_vec).collect();
    sql_ctx
        .register_table("http_events", Arc::new(MemTable::try_new(table.schema(), parts).expect("memtable")))
        .expect("register");

    // Compiled inside the loop, as SQL is parsed and planned inside its own: the comparison stays whole.
    let compile_options = loupe_pxl::CompileOptions { now_ns: 0 };
    let run_pxl = || {
        let program = loupe_pxl::compile(PXL, &engine.catalog(), &compile_options).expect("pxl compiles");
        rt.block_on(engine.execute_program(&program, &opts)).expect("pxl runs")
    };
    let run_sql = || rt.block_on(async { sql_ctx.sql(SQL).await?.collect().await }).expect("sql runs");
    let groups_pxl = run_pxl()[0].num_rows();
    let groups_sql: usize = run_sql().iter().map(RecordBatch::num_rows).sum();
    assert_eq!((groups_pxl, groups_sql), (PATHS, PATHS));

    let mut g = c.benchmark_group("groupby_10m");
    g.sample_size(10).warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(15));
    g.bench_function("pxl", |b| b.iter(|| black_box(run_pxl())));
    g.bench_function("sql", |b| b.iter(|| black_box(run_sql())));
    g.finish();

    // The ratio, measured interleaved so both see the same machine load.
    let (mut p, mut s) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        black_box(run_pxl());
        p.push(t.elapsed());
        let t = Instant::now();
        black_box(run_sql());
        s.push(t.elapsed());
    }
    let (mp, ms) = (median(p), median(s));
    println!("pxl median {mp:.1?}, sql median {ms:.1?} ({cores} cores, {ROWS} rows)");
    println!("pxl/sql ratio: {:.2} (goal <= 1.2)", mp.as_secs_f64() / ms.as_secs_f64());
}

criterion_group!(benches, bench);
criterion_main!(benches);
