//! Benchmark command: PxL against DataFusion SQL and a hand-written Rust loop on the same 10 M
//! `http_events` rows, for two queries, in one run; `scripts/bench-pxl.sh` adds Polars and DuckDB on
//! the very same rows (written here once as an Arrow IPC file) and prints the comparison.
//!
//! - `groupby`: `resp_status >= 200`, by `req_path`: count, mean and p99 of `latency`.
//! - `merge`: each peer's (`remote_addr`) mean latency merged back onto every row; rows slower than
//!   twice their peer's mean, counted by `req_path` (a 10 M-row probe of a hash join).
//!
//! PxL goes the way `px run` does minus the network: `loupe_planner` compiles and splits the script,
//! `Engine::execute_program` runs it over the store. SQL runs on a DataFusion `MemTable` of the same
//! batches. The Rust loop reads the Arrow arrays directly with one thread per partition (p99 exact,
//! by selection). Each figure is the median of `PXL_VS_RUNS` (5) runs after one warm-up, the engines
//! interleaved so all see the same machine load.
//!
//! Prints `RESULT <query> <engine> <median_ms> <check>` lines (the check is a total every engine
//! must agree on), the PxL phases (compile, then execution), and `EXPLAIN ANALYZE` of the SQL form
//! (where DataFusion spends its time per operator) when `PXL_VS_EXPLAIN=1`.
//!
//! Environment: `PXL_VS_ROWS` (10 000 000), `PXL_VS_THREADS` (2: DataFusion partitions and loop
//! threads), `PXL_VS_RUNS` (5), `PXL_VS_DATA` (write the rows there as Arrow IPC for the Python side: the
//! columns the queries read).

#[path = "data.rs"]
mod data;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::catalog::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use loupe_engine::{Engine, ExecOptions, QueryOutput};
use loupe_schema::http::http_events;
use loupe_store::{Store, StoreConfig, TimeRange};

const GROUPBY_PXL: &str = "import px
df = px.DataFrame('http_events')
df = df[df.resp_status >= 200]
s = df.groupby(['req_path']).agg(n=('latency', px.count), mean=('latency', px.mean), p99=('latency', px.p99))
px.display(s)";

const GROUPBY_SQL: &str = "SELECT req_path, count(latency) AS n, avg(latency) AS mean, \
    approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY latency) AS p99 \
    FROM http_events WHERE resp_status >= 200 GROUP BY req_path";

const MERGE_PXL: &str = "import px
df = px.DataFrame('http_events')
peers = df.groupby('remote_addr').agg(peer_mean=('latency', px.mean))
j = df.merge(peers, how='inner', left_on='remote_addr', right_on='remote_addr', suffixes=['', '_p'])
j = j[j.latency > j.peer_mean * 2]
s = j.groupby('req_path').agg(slow=('latency', px.count))
px.display(s)";

const MERGE_SQL: &str = "WITH peers AS (SELECT remote_addr, avg(latency) AS peer_mean FROM http_events GROUP BY remote_addr) \
    SELECT e.req_path, count(e.latency) AS slow FROM http_events e JOIN peers p ON e.remote_addr = p.remote_addr \
    WHERE e.latency > p.peer_mean * 2 GROUP BY e.req_path";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// FNV-1a: what a hand-written loop over short keys would use (std's SipHash is built for hostile keys).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a Arc<dyn Array> {
    b.column(b.schema().index_of(name).expect("column of http_events"))
}

fn ints<'a>(b: &'a RecordBatch, name: &str) -> &'a Int64Array {
    col(b, name).as_primitive::<Int64Type>()
}

/// Runs `f` over each of `parts` on its own thread and returns the results in order.
fn per_part<'a, T: Send>(parts: &'a [Vec<RecordBatch>], f: impl Fn(&'a [RecordBatch]) -> T + Sync) -> Vec<T> {
    let f = &f;
    std::thread::scope(|s| {
        let hs: Vec<_> = parts.iter().map(|p| s.spawn(move || f(p.as_slice()))).collect();
        hs.into_iter().map(|h| h.join().expect("loop thread")).collect()
    })
}

/// The groupby query by hand; returns (groups, total count).
fn groupby_loop(parts: &[Vec<RecordBatch>]) -> (usize, u64) {
    let partials = per_part(parts, |batches| {
        let mut groups: FnvMap<&str, (u64, i64, Vec<i64>)> = FnvMap::default();
        for b in batches {
            let (status, latency) = (ints(b, "resp_status"), ints(b, "latency"));
            let path = col(b, "req_path").as_string::<i32>();
            for i in 0..b.num_rows() {
                if status.value(i) >= 200 {
                    let g = groups.entry(path.value(i)).or_default();
                    let l = latency.value(i);
                    g.0 += 1;
                    g.1 += l;
                    g.2.push(l);
                }
            }
        }
        groups
    });
    let mut all: FnvMap<&str, (u64, i64, Vec<i64>)> = FnvMap::default();
    for part in partials {
        for (k, (n, sum, mut v)) in part {
            let g = all.entry(k).or_default();
            g.0 += n;
            g.1 += sum;
            g.2.append(&mut v);
        }
    }
    let mut total = 0;
    let out: Vec<(&str, u64, f64, i64)> = all
        .into_iter()
        .map(|(k, (n, sum, mut v))| {
            total += n;
            let rank = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
            let p99 = *v.select_nth_unstable(rank).1;
            (k, n, sum as f64 / n as f64, p99)
        })
        .collect();
    (black_box(out).len(), total)
}

/// The merge query by hand; returns (groups, total slow rows).
fn merge_loop(parts: &[Vec<RecordBatch>]) -> (usize, u64) {
    let sums = per_part(parts, |batches| {
        let mut peers: FnvMap<&str, (i64, u64)> = FnvMap::default();
        for b in batches {
            let (addr, latency) = (col(b, "remote_addr").as_string::<i32>(), ints(b, "latency"));
            for i in 0..b.num_rows() {
                let p = peers.entry(addr.value(i)).or_default();
                p.0 += latency.value(i);
                p.1 += 1;
            }
        }
        peers
    });
    let mut peers: FnvMap<&str, (i64, u64)> = FnvMap::default();
    for part in sums {
        for (k, (s, n)) in part {
            let p = peers.entry(k).or_default();
            p.0 += s;
            p.1 += n;
        }
    }
    let means: FnvMap<&str, f64> = peers.into_iter().map(|(k, (s, n))| (k, s as f64 / n as f64)).collect();
    let counts = per_part(parts, |batches| {
        let mut slow: FnvMap<&str, u64> = FnvMap::default();
        for b in batches {
            let (addr, latency) = (col(b, "remote_addr").as_string::<i32>(), ints(b, "latency"));
            let path = col(b, "req_path").as_string::<i32>();
            for i in 0..b.num_rows() {
                if let Some(m) = means.get(addr.value(i))
                    && latency.value(i) as f64 > m * 2.0
                {
                    *slow.entry(path.value(i)).or_default() += 1;
                }
            }
        }
        slow
    });
    let mut all: FnvMap<&str, u64> = FnvMap::default();
    for part in counts {
        for (k, n) in part {
            *all.entry(k).or_default() += n;
        }
    }
    (all.len(), all.values().sum())
}

/// Sum of the integer column `name` over every batch of `out` (a check total).
fn total(batches: &[RecordBatch], name: &str) -> u64 {
    batches.iter().map(|b| ints(b, name).values().iter().map(|&v| v as u64).sum::<u64>()).sum()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The columns the queries read: all the Python side loads (a column store reads no others either).
const QUERY_COLUMNS: [&str; 6] = ["time_", "remote_addr", "req_method", "req_path", "resp_status", "latency"];

fn write_ipc(path: &str, batches: &[RecordBatch]) {
    if let Some(dir) = std::path::Path::new(path).parent() {
        std::fs::create_dir_all(dir).expect("data directory");
    }
    let schema = batches[0].schema();
    let indices: Vec<usize> = QUERY_COLUMNS.iter().map(|c| schema.index_of(c).expect("column")).collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).expect("data file"));
    let projected = schema.project(&indices).expect("projection");
    let mut w = arrow::ipc::writer::FileWriter::try_new(file, &projected).expect("ipc writer");
    for b in batches {
        w.write(&b.project(&indices).expect("projection")).expect("ipc write");
    }
    w.finish().expect("ipc finish");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would too. This command takes neither.
    let rows = env_usize("PXL_VS_ROWS", data::ROWS);
    let threads = env_usize("PXL_VS_THREADS", 2);
    let runs = env_usize("PXL_VS_RUNS", 5).max(1);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().expect("runtime");

    let t0 = Instant::now();
    let generated = data::batches(rows);
    eprintln!("generated {rows} rows in {} batches in {:.1?}", generated.len(), t0.elapsed());
    if let Ok(path) = std::env::var("PXL_VS_DATA") {
        let t = Instant::now();
        write_ipc(&path, &generated);
        eprintln!("wrote {path} in {:.1?}", t.elapsed());
    }

    let mut config = StoreConfig::default();
    config.table_bytes.insert("http_events".into(), 64 << 30);
    let store = Arc::new(Store::new(config));
    let table = store.register(&http_events()).expect("register");
    for b in generated {
        table.append(b).expect("append");
    }
    let stats = table.stats();
    eprintln!("store: {} rows, {} batches, {} MiB", stats.rows, stats.batches, stats.bytes >> 20);
    assert_eq!(stats.rows, rows as u64, "store evicted rows; raise its budget");

    let engine = Engine::new(store).with_target_partitions(threads);
    let opts = ExecOptions::default();
    let all = table.scan(TimeRange::ALL);
    let per = all.len().div_ceil(threads);
    let parts: Vec<Vec<RecordBatch>> = all.chunks(per).map(<[RecordBatch]>::to_vec).collect();
    let sql_ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(threads));
    sql_ctx
        .register_table("http_events", Arc::new(MemTable::try_new(table.schema(), parts.clone()).expect("memtable")))
        .expect("register");

    let compile_options = loupe_pxl::CompileOptions { now_ns: 0 };
    let compile = |src: &str| {
        let planned = loupe_planner::plan_single_node(src, &engine.catalog(), &compile_options).expect("pxl compiles");
        let compile_time = planned.compile_time;
        (planned.into_local().expect("runs on one node"), compile_time)
    };
    let run_pxl = |src: &str| -> (Vec<QueryOutput>, Duration) {
        let (program, compile_time) = compile(src);
        (rt.block_on(engine.execute_program(&program, &opts)).expect("pxl runs"), compile_time)
    };
    let run_sql = |sql: &str| -> Vec<RecordBatch> {
        rt.block_on(async { sql_ctx.sql(sql).await?.collect().await }).expect("sql runs")
    };

    type Side<'a> = (&'a str, Box<dyn Fn() -> (usize, u64) + 'a>);
    type Query<'q> = (&'q str, &'q str, &'q str, &'q str, fn(&[Vec<RecordBatch>]) -> (usize, u64));
    let queries: [Query; 2] =
        [("groupby", GROUPBY_PXL, GROUPBY_SQL, "n", groupby_loop), ("merge", MERGE_PXL, MERGE_SQL, "slow", merge_loop)];
    for (query, pxl, sql, check_col, by_hand) in queries {
        let compile_times = std::cell::RefCell::new(Vec::new());
        let sides: Vec<Side> = vec![
            (
                "pxl",
                Box::new(|| {
                    let (out, ct) = run_pxl(pxl);
                    compile_times.borrow_mut().push(ct);
                    (out[0].num_rows(), total(&out[0].batches, check_col))
                }),
            ),
            (
                "datafusion_sql",
                Box::new(|| {
                    let out = run_sql(sql);
                    (out.iter().map(RecordBatch::num_rows).sum(), total(&out, check_col))
                }),
            ),
            ("rust_loop", Box::new(|| by_hand(&parts))),
        ];
        // Warm-up, and every side must give the same answer.
        let checks: Vec<(usize, u64)> = sides.iter().map(|(_, f)| f()).collect();
        for ((name, _), c) in sides.iter().zip(&checks) {
            assert_eq!(*c, checks[0], "{query}: {name} disagrees with pxl (groups, total)");
        }
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
        for _ in 0..runs {
            for ((_, f), t) in sides.iter().zip(&mut times) {
                let start = Instant::now();
                black_box(f());
                t.push(start.elapsed());
            }
        }
        for ((name, _), t) in sides.iter().zip(times) {
            println!("RESULT {query} {name} {:.1} {}", median(t).as_secs_f64() * 1e3, checks[0].1);
        }
        let ct = median(compile_times.take());
        println!(
            "PHASE {query} pxl compile+split {:.2} ms (the rest of its time is execution)",
            ct.as_secs_f64() * 1e3
        );
        if std::env::var("PXL_VS_EXPLAIN").is_ok_and(|v| v == "1") {
            let plan = run_sql(&format!("EXPLAIN ANALYZE {sql}"));
            let text = arrow::util::pretty::pretty_format_batches(&plan).expect("explain text");
            println!("EXPLAIN {query}\n{text}");
        }
    }
    println!(
        "INFO rows={rows} threads={threads} runs={runs} cores={}",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
}
