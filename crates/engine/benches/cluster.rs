//! Benchmark of the cluster split, one run, printing its figures:
//!
//! 1. A groupby (50 paths: count, mean, p99) over 4 × 5 M `http_events` rows spread over four stores
//!    (each running its agent streams, then one merge) against the same query over one store holding all
//!    20 M rows. Agents would run in parallel on their own nodes, so the cluster's time is the slowest
//!    agent plus the merge; prints that ratio and the Arrow IPC bytes the agents send.
//! 2. Scale by simulation: a broker planning the query for 1,000 agents (compile and split, the plan
//!    encoded once and sent 1,000 times) and a Kelvin merging the partial states of 1,000 agents; prints
//!    planning time, the merge's memory and its time (goal < 1 s).
//!
//! `LOUPE_BENCH_ROWS` sets the total rows (default 20 M, twice `groupby`'s; 4 agents each hold a quarter, sharing the same
//! batches as the single store, so the data is in memory once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use loupe_engine::{Engine, ExecOptions, QueryOutput, StreamInputs};
use loupe_planner::{RunsOn, split_cluster};
use loupe_schema::http::http_events;
use loupe_store::{Store, StoreConfig};

#[path = "data.rs"]
mod data;

const PXL: &str = "import px
df = px.DataFrame('http_events')
df = df[df.resp_status >= 200]
s = df.groupby(['req_path']).agg(n=('latency', px.count), mean=('latency', px.mean), p99=('latency', px.p99))
px.display(s)";

fn engine_over(batches: impl IntoIterator<Item = RecordBatch>) -> Engine {
    let mut config = StoreConfig::default();
    config.table_bytes.insert("http_events".into(), 64 << 30);
    let store = Arc::new(Store::new(config));
    let table = store.register(&http_events()).expect("register");
    for b in batches {
        table.append(b).expect("append");
    }
    Engine::new(store)
}

fn ipc_bytes(outputs: &[QueryOutput]) -> usize {
    let mut total = 0;
    for o in outputs {
        for b in &o.batches {
            let mut buf = Vec::new();
            let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &b.schema()).expect("writer");
            w.write(b).expect("write");
            w.finish().expect("finish");
            drop(w);
            total += buf.len();
        }
    }
    total
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The process's peak resident size (`VmHWM`), in bytes.
fn peak_rss_bytes() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").and_then(|v| v.trim().trim_end_matches(" kB").parse().ok()))
        })
        .map_or(0, |kb: usize| kb * 1024)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let rows: usize = std::env::var("LOUPE_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(2 * data::ROWS);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(cores).enable_all().build().expect("runtime");
    let opts = ExecOptions { max_output_rows: 100_000, ..ExecOptions::default() };

    let t0 = Instant::now();
    let batches = data::batches(rows);
    let single = engine_over(batches.iter().cloned());
    const AGENTS: usize = 4;
    let agents: Vec<Engine> = (0..AGENTS)
        .map(|a| engine_over(batches.iter().enumerate().filter(|(i, _)| i % AGENTS == a).map(|(_, b)| b.clone())))
        .collect();
    let merger = engine_over(Vec::new());
    eprintln!("{rows} rows generated and stored in {:.1?}", t0.elapsed());

    let compile =
        |e: &Engine| loupe_pxl::compile(PXL, &e.catalog(), &loupe_pxl::CompileOptions { now_ns: 0 }).expect("compiles");
    let run_single = || rt.block_on(single.execute_program(&compile(&single), &opts)).expect("runs");
    // One cluster run: each agent's time (they would run at once, on their own nodes), the merge's, bytes sent.
    let run_cluster = || {
        let plan = split_cluster(compile(&merger));
        let ids: Vec<usize> = (0..plan.streams.len()).filter(|&i| plan.streams[i].runs_on == RunsOn::Agents).collect();
        let (mut slowest, mut sent, mut inputs) = (Duration::ZERO, 0usize, StreamInputs::new());
        for a in &agents {
            let t = Instant::now();
            let outs = rt.block_on(a.execute_streams(&plan, &ids, &opts)).expect("streams run");
            slowest = slowest.max(t.elapsed());
            sent += ipc_bytes(&outs);
            for (id, o) in ids.iter().zip(outs) {
                inputs.entry(*id).or_default().extend(o.batches);
            }
        }
        let t = Instant::now();
        let merged = rt.block_on(merger.execute_merge(&plan, &[0], inputs, &opts)).expect("merge runs");
        (slowest, t.elapsed(), sent, merged)
    };
    let expected = run_single();
    let (_, _, sent, merged) = run_cluster();
    assert_eq!(merged[0].num_rows(), expected[0].num_rows());
    let (mut s, mut c, mut m) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let _ = run_single();
        s.push(t.elapsed());
        let (slowest, merge, _, _) = run_cluster();
        c.push(slowest + merge);
        m.push(merge);
    }
    let (s, c, m) = (median(s), median(c), median(m));
    let raw: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    println!("groupby over {rows} rows on one store: {s:.1?}");
    println!("same over {AGENTS} agents of {} rows: slowest agent + merge {c:.1?} (merge {m:.1?})", rows / AGENTS);
    println!("one store / cluster ratio: {:.2} ({cores} cores)", s.as_secs_f64() / c.as_secs_f64());
    println!(
        "bytes moved: {sent} (Arrow IPC) for {raw} bytes of rows in memory ({:.5} %)",
        sent as f64 * 100.0 / raw as f64
    );

    // 1,000 simulated agents: planning, the fan-out's bytes, the merge of their partial states.
    const SIMULATED: usize = 1000;
    let catalog = merger.catalog();
    let mut plans = Vec::new();
    let mut plan = None;
    for _ in 0..21 {
        let t = Instant::now();
        let (p, _) =
            loupe_planner::plan_cluster(PXL, &catalog, &loupe_pxl::CompileOptions { now_ns: 0 }, &[]).expect("plans");
        let json = p.to_json().expect("encodes");
        // What a fan-out sends: one request per agent around the same encoded plan.
        let requests: Vec<Vec<u8>> = (0..SIMULATED).map(|_| json.clone()).collect();
        plans.push(t.elapsed());
        std::hint::black_box(requests);
        plan = Some((p, json.len()));
    }
    let (plan, plan_bytes) = plan.expect("planned");
    let ids: Vec<usize> = (0..plan.streams.len()).filter(|&i| plan.streams[i].runs_on == RunsOn::Agents).collect();
    // Each simulated agent sends the partial states of its own share: the four agents' states, each repeated.
    let mut per_agent = Vec::new();
    for a in &agents {
        per_agent.push(rt.block_on(a.execute_streams(&plan, &ids, &opts)).expect("streams run"));
    }
    let mut inputs = StreamInputs::new();
    for k in 0..SIMULATED {
        for (id, o) in ids.iter().zip(&per_agent[k % AGENTS]) {
            inputs.entry(*id).or_default().extend(o.batches.iter().cloned());
        }
    }
    let state_rows: usize = inputs.values().flatten().map(RecordBatch::num_rows).sum();
    let state_bytes: usize = per_agent.iter().map(|o| ipc_bytes(o)).sum::<usize>() * SIMULATED / AGENTS;
    let mut merges = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let out = rt.block_on(merger.execute_merge(&plan, &[0], inputs.clone(), &opts)).expect("merge runs");
        merges.push(t.elapsed());
        assert_eq!(out[0].num_rows(), data::PATHS);
    }
    // What a Kelvin holds for 1,000 distinct agents (the simulation shares four agents' batches).
    let held: usize =
        per_agent.iter().flatten().flat_map(|o| &o.batches).map(RecordBatch::get_array_memory_size).sum::<usize>()
            * SIMULATED
            / AGENTS;
    println!(
        "{SIMULATED} agents: plan + encode + fan-out {:.2?} (plan {plan_bytes} bytes, sent {} KiB in all)",
        median(plans),
        (plan_bytes * SIMULATED) >> 10
    );
    println!(
        "{SIMULATED} agents: merge of {state_rows} partial-state rows ({} KiB on the wire) in {:.1?} (goal < 1 s), \
         holding {} MiB of states; process peak RSS {} MiB",
        state_bytes >> 10,
        median(merges),
        held >> 20,
        peak_rss_bytes() >> 20
    );
}
