//! The limits an operator puts on every query: a deadline, a memory pool and a row cap a script
//! may lower but never raise, and results handed over as they are produced (so a consumer that
//! goes away stops the query). Real DataFusion over a real store filled by the test.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use loupe_engine::{Cancelled, Engine, ExecError, ExecOptions, QueryEvent, QuerySink};
use loupe_schema::http::{HttpEventsBuilder, http_events};
use loupe_store::{Store, StoreConfig};

use crate::common::{NOW, compile, engine, row};

/// Rows in the big store: enough that merging them with each other (100 M pairs) and taking quantiles per
/// path takes a while, few enough to keep tests short.
const BIG_ROWS: usize = 10_000;

/// A store of `BIG_ROWS` rows, each with its own `req_path`, in 1,024-row batches; built once.
fn big_engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut budget = StoreConfig::default();
        budget.table_bytes.insert("http_events".into(), 1 << 30);
        let store = Arc::new(Store::new(budget));
        let table = store.register(&http_events()).expect("register http_events");
        let mut template = row(1, "/", "GET", 200, 5);
        let mut b = HttpEventsBuilder::new();
        for i in 0..BIG_ROWS {
            template.time_ns = NOW - 60_000_000_000 + i as i64;
            template.req_path = format!("/item/{i}");
            template.latency_ns = (i % 1000) as i64 * 1000;
            b.append(&template);
            if (i + 1) % 1024 == 0 || i + 1 == BIG_ROWS {
                table.append(b.finish().expect("batch")).expect("append");
            }
        }
        assert_eq!(table.stats().rows, BIG_ROWS as u64, "the store kept every row");
        Engine::new(store)
    })
}

/// Every row merged with every row (one `req_method`), then quantiles per path: slow and memory-hungry.
const HEAVY: &str = "import px\n\
    df = px.DataFrame('http_events', start_time='-5m')\n\
    j = df.merge(df, how='inner', left_on='req_method', right_on='req_method', suffixes=['', '_o'])\n\
    px.display(j.groupby('req_path').agg(q=('latency_o', px.quantiles), n=('latency', px.count)), 'heavy')\n";

/// A first output that is ready at once, then the heavy one.
const LIGHT_THEN_HEAVY: &str = "import px\n\
    df = px.DataFrame('http_events', start_time='-5m')\n\
    px.display(df[df.req_path == '/item/7'][['req_path']], 'light')\n\
    j = df.merge(df, how='inner', left_on='req_method', right_on='req_method', suffixes=['', '_o'])\n\
    px.display(j.groupby('req_path').agg(q=('latency_o', px.quantiles), r=('remote_port_o', px.quantiles), \
    t=('resp_status_o', px.quantiles), n=('latency', px.count)), 'heavy')\n";

/// The heavy queries share the process's query runtime: run one test at a time, so that one test's
/// query does not delay another's deadline or first batch.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn opts(timeout: Option<Duration>, memory_limit_bytes: Option<usize>) -> ExecOptions {
    ExecOptions { timeout, memory_limit_bytes, max_output_rows: BIG_ROWS * 2 }
}

/// Runs `script` on the big store, returning what came of it and how long it took.
fn timed(script: &str, opts: &ExecOptions) -> (Result<Vec<loupe_engine::QueryOutput>, ExecError>, Duration) {
    let engine = big_engine();
    let program = compile(engine, script);
    let rt = runtime();
    let started = Instant::now();
    let result = rt.block_on(engine.execute_program(&program, opts));
    (result, started.elapsed())
}

#[test]
fn a_script_can_lower_the_row_cap_but_never_raise_it() {
    let e = engine();
    let rt = runtime();
    let capped = ExecOptions { max_output_rows: 4, ..ExecOptions::default() };
    let script = |setting: &str| format!("{setting}import px\npx.display(px.DataFrame('http_events'))\n");
    let run = |text: &str| rt.block_on(e.execute_program(&compile(&e, text), &capped)).expect("runs")[0].num_rows();
    assert_eq!(run(&script("")), 4, "the operator's cap applies");
    assert_eq!(run(&script("#px:set max_output_rows_per_table=1000000\n")), 4, "a script cannot lift it");
    assert_eq!(run(&script("#px:set max_output_rows_per_table=2\n")), 2, "a script may lower it");
    // The fixture has six rows, so without a cap every one comes back.
    let open = ExecOptions { max_output_rows: 1_000_000, ..capped };
    assert_eq!(rt.block_on(e.execute_program(&compile(&e, &script("")), &open)).expect("runs")[0].num_rows(), 6);
}

#[test]
fn a_query_past_its_time_limit_stops_with_a_clear_error() {
    let _serial = serial();
    let (full, took) = timed(HEAVY, &opts(None, None));
    assert_eq!(full.expect("the heavy query runs without limits")[0].num_rows(), BIG_ROWS);
    // The limit is a fifth of what the whole query takes on this machine now (0.6 s to 7 s measured,
    // with and without other builds running), so the test proves the same thing at any load.
    let limit = Duration::from_millis((took.as_millis() / 5).max(20) as u64);
    let (stopped, took_limited) = timed(HEAVY, &opts(Some(limit), None));
    let error = stopped.expect_err("the limit stops it");
    assert!(matches!(error, ExecError::Timeout(d) if d == limit), "{error:?}");
    assert_eq!(error.to_string(), format!("query stopped: it exceeded its time limit of {}ms", limit.as_millis()));
    // Measured: 201 ms for a 200 ms limit.
    assert!(
        took_limited >= limit && took_limited < limit + took / 2,
        "stopped after {took_limited:?} with a limit of {limit:?}; the whole query takes {took:?}"
    );
}

#[test]
fn a_query_over_its_memory_pool_fails_at_the_limit() {
    let _serial = serial();
    let (result, _) = timed(HEAVY, &opts(None, Some(4 << 20)));
    let error = result.expect_err("a self-merge of every row with every row does not fit in 4 MiB");
    assert!(matches!(error, ExecError::MemoryLimit { limit_bytes, .. } if limit_bytes == 4 << 20), "{error:?}");
    assert_eq!(error.to_string(), "query stopped: it needs more than its memory limit of 4 MiB");
    // The same query fits a generous pool: the limit, not the query, was the cause.
    let (result, _) = timed(HEAVY, &opts(None, Some(4 << 30)));
    assert_eq!(result.expect("fits in 4 GiB")[0].num_rows(), BIG_ROWS);
}

/// Notes when each event arrives; cancels at the first batch if asked.
struct Clock {
    started: Instant,
    first_batch: Option<Duration>,
    events: Vec<String>,
    cancel_at_first_batch: bool,
}

impl QuerySink for Clock {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        match event {
            QueryEvent::Output { name, .. } => self.events.push(format!("output {name}")),
            QueryEvent::Batch { index, batch } => {
                self.first_batch.get_or_insert(self.started.elapsed());
                self.events.push(format!("batch {index} rows {}", batch.num_rows()));
                if self.cancel_at_first_batch {
                    return Err(Cancelled);
                }
            }
            QueryEvent::OutputEnd { index } => self.events.push(format!("end {index}")),
        }
        Ok(())
    }
}

fn clocked(cancel_at_first_batch: bool) -> (Result<u64, ExecError>, Clock, Duration) {
    let engine = big_engine();
    let rt = runtime();
    let o = opts(None, None);
    let program = compile(engine, LIGHT_THEN_HEAVY);
    let mut clock = Clock { started: Instant::now(), first_batch: None, events: Vec::new(), cancel_at_first_batch };
    let result = rt.block_on(engine.execute_program_to(&program, &o, &mut clock));
    let took = clock.started.elapsed();
    (result, clock, took)
}

#[test]
fn the_first_batch_reaches_the_consumer_before_the_query_ends_and_leaving_stops_it() {
    let _serial = serial();
    let (result, clock, took) = clocked(false);
    assert_eq!(result.expect("runs"), 1 + BIG_ROWS as u64, "rows sent");
    assert_eq!(clock.events[..4], ["output light", "batch 0 rows 1", "end 0", "output heavy"]);
    assert_eq!(clock.events.last().map(String::as_str), Some("end 1"));
    let first = clock.first_batch.expect("a batch came");
    // Held back, the light output would come at the very end (≈ `took`); streamed, early. Half leaves room for a
    // loaded host, where compiling and planning the light part take longer than on a quiet one.
    assert!(first < took / 2, "the light output came at {first:?} of {took:?}: results were held back");

    // A consumer that goes away at the first batch stops the query there.
    let (result, clock, took_cancelled) = clocked(true);
    assert!(matches!(result, Err(ExecError::Cancelled)), "{result:?}");
    assert_eq!(clock.events, ["output light", "batch 0 rows 1"]);
    assert!(took_cancelled < took / 2, "cancelled after {took_cancelled:?}; the whole query takes {took:?}");
}
