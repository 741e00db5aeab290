//! Benchmark: filter + group by 50 paths + count/mean/p99 over 10M `http_events` rows, PxL
//! through the engine versus the same query as DataFusion SQL over a `MemTable` of the same
//! batches, measured in one run. Prints `pxl/sql ratio: X.XX (goal <= 1.2)`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::catalog::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use loupe_engine::{Engine, ExecOptions};
use loupe_schema::http::http_events;
use loupe_store::{Store, StoreConfig, TimeRange};

const ROWS: usize = 10_000_000;
const BATCH: usize = 8192;
const PATHS: usize = 50;
const START_NS: i64 = 1_700_000_000_000_000_000;

const PXL: &str = "import px
df = px.DataFrame('http_events')
df = df[df.resp_status >= 200]
s = df.groupby(['req_path']).agg(n=('latency', px.count), mean=('latency', px.mean), p99=('latency', px.p99))
px.display(s)";

const SQL: &str = "SELECT req_path, count(latency), avg(latency), \
    approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) \
    FROM http_events WHERE resp_status >= 200 GROUP BY req_path";

/// xorshift64*: deterministic and fast; quality is irrelevant here.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// ~90 % 2xx, 3 % 3xx, 5 % 4xx, 1.5 % 5xx, 0.5 % 1xx.
fn status(r: u64) -> i64 {
    match r % 1000 {
        0..=849 => 200,
        850..=899 => 201,
        900..=929 => 302,
        930..=969 => 404,
        970..=979 => 401,
        980..=994 => 500,
        _ => 101,
    }
}

fn batches() -> Vec<RecordBatch> {
    let schema = http_events().arrow_schema();
    let paths: Vec<String> = (0..PATHS).map(|i| format!("/api/v1/service{}/endpoint{}", i % 7, i)).collect();
    let upids: Vec<String> = (0..16).map(|i| format!("1:{}:12345", 1000 + i)).collect();
    let addrs: Vec<String> = (0..32).map(|i| format!("10.0.{}.{}", i / 8, i % 8 + 1)).collect();
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(ROWS / BATCH + 1);
    let mut row = 0usize;
    while row < ROWS {
        let n = BATCH.min(ROWS - row);
        let mut time = TimestampNanosecondBuilder::with_capacity(n);
        let mut ints: Vec<Int64Builder> = (0..11).map(|_| Int64Builder::with_capacity(n)).collect();
        let mut strs: Vec<StringBuilder> = (0..10).map(|_| StringBuilder::with_capacity(n, n * 8)).collect();
        let mut encrypted = BooleanBuilder::with_capacity(n);
        for i in 0..n {
            let r = rng.next();
            let path = (r >> 8) as usize % PATHS;
            // Log-uniform-ish latency between ~0.1 ms and ~1 s.
            let latency = (100_000i64 << ((r >> 20) % 14)) | ((r >> 40) as i64 & 0xFFFFF);
            time.append_value(START_NS + (row + i) as i64 * 1_000);
            strs[0].append_value(&upids[(r >> 16) as usize % upids.len()]); // upid
            strs[1].append_value(&addrs[(r >> 24) as usize % addrs.len()]); // remote_addr
            ints[0].append_value(30_000 + (r >> 32) as i64 % 30_000); // remote_port
            strs[2].append_value(&addrs[(r >> 28) as usize % addrs.len()]); // local_addr
            ints[1].append_value(8080); // local_port
            ints[2].append_value(if r & 1 == 0 { 1 } else { 2 }); // trace_role
            encrypted.append_value(r & 2 == 0);
            ints[3].append_value(1); // major_version
            ints[4].append_value(1); // minor_version
            ints[5].append_value(1); // content_type
            strs[3].append_value("{}"); // req_headers
            strs[4].append_value(methods[(r >> 36) as usize % methods.len()]); // req_method
            strs[5].append_value(&paths[path]); // req_path
            strs[6].append_value(""); // req_body
            ints[6].append_value(0); // req_body_size
            strs[7].append_value("{}"); // resp_headers
            ints[7].append_value(status(r >> 44)); // resp_status
            strs[8].append_value("OK"); // resp_message
            strs[9].append_value(""); // resp_body
            ints[8].append_value(64); // resp_body_size
            ints[9].append_value(latency); // latency
        }
        let mut s = strs.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut n64 = ints.into_iter().map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let mut next_s = || s.next().expect("string column");
        let mut next_i = || n64.next().expect("int column");
        let columns: Vec<ArrayRef> = vec![
            Arc::new(time.finish()),
            next_s(),
            next_s(),
            next_i(),
            next_s(),
            next_i(),
            next_i(),
            Arc::new(encrypted.finish()),
            next_i(),
            next_i(),
            next_i(),
            next_s(),
            next_s(),
            next_s(),
            next_s(),
            next_i(),
            next_s(),
            next_i(),
            next_s(),
            next_s(),
            next_i(),
            next_i(),
        ];
        out.push(RecordBatch::try_new(schema.clone(), columns).expect("batch matches http_events"));
        row += n;
    }
    out
}

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
    for b in batches() {
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
