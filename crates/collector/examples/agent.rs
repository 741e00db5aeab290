//! The agent's hot path alone: the node collector tracing this host into an in-memory store, with
//! no query engine, API or cloud around it. `scripts/bench-agent.sh` runs it (it builds in a
//! fraction of `loupe`'s release build time) to measure what tracing costs; `loupe up` runs the
//! same collector. Stops on SIGTERM or SIGINT and prints the rows it stored per table, and with
//! `LOUPE_BENCH_PORT` set, the `http_events` rows of that server port per side and every
//! `agent_stats` counter that is not zero (the completeness check compares them).
//!
//! `LOUPE_BENCH_ONLY_TGID=<pid>` traces that process only: with a pid that does no I/O (1), every
//! event is filtered out in the kernel, which measures what the attached tracepoints cost by themselves.
//! `LOUPE_BENCH_PARSE=none` traces everything but parses nothing: the kernel copies every event into the
//! ring buffer and user space decodes and tracks it, then drops it unparsed, which measures the capture
//! apart from the parsers and rows.
//!
//! `LOUPE_MEMORY_BUDGET_MB=<MiB>` sets the memory budget (`loupe up --memory-budget`; default 512): the
//! bench's memory step checks the resident size against it, printing the tables on SIGUSR1.
//!
//! Usage (root): `[LOUPE_BENCH_PORT=18080] cargo run --release -p loupe-collector --example agent`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use loupe_collector::{Collector, CollectorConfig, MemoryBudget};
use loupe_schema::http::HttpEventRow;
use loupe_store::{Store, TimeRange};

static STOP: AtomicBool = AtomicBool::new(false);
static REPORT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    if signal == libc::SIGUSR1 {
        REPORT.store(true, Ordering::Relaxed);
    } else {
        STOP.store(true, Ordering::Relaxed);
    }
}

/// Rows per table, held and evicted (the bench's memory step reads the `http_events` line).
fn print_tables(store: &Store) {
    for table in store.tables() {
        let stats = table.stats();
        if stats.rows_appended > 0 {
            println!(
                "{}: {} rows appended, {} held in {} bytes (budget {}), {} evicted",
                table.name(),
                stats.rows_appended,
                stats.rows,
                stats.bytes,
                stats.budget_bytes,
                stats.rows_evicted
            );
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib = std::env::var("LOUPE_MEMORY_BUDGET_MB").ok().and_then(|m| m.parse().ok());
    let budget = MemoryBudget::from_mib(mib.unwrap_or(MemoryBudget::DEFAULT_MIB))?;
    let store = Arc::new(Store::new(budget.store_config()));
    for spec in loupe_schema::all_tables() {
        store.register(&spec)?;
    }
    let mut config = CollectorConfig::default();
    budget.apply(&mut config);
    config.tracer.exclude_tgid = std::process::id();
    if let Some(only) = std::env::var("LOUPE_BENCH_ONLY_TGID").ok().and_then(|p| p.parse().ok()) {
        config.tracer.only_tgid = only;
    }
    if std::env::var("LOUPE_BENCH_PARSE").is_ok_and(|p| p == "none") {
        config.tracker.live.set_disabled(loupe_collector::socket::port_protocols::names())?;
    }
    let collector = Collector::start(store.clone(), config)?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGUSR1, on_signal as *const () as libc::sighandler_t);
    }
    println!("tracing");
    while !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if REPORT.swap(false, Ordering::Relaxed) {
            print_tables(&store);
        }
    }
    let counters = collector.shared_counters();
    // Stopping flushes pending rows and takes the last sample of the counters.
    drop(collector);
    if let Some(port) = std::env::var("LOUPE_BENCH_PORT").ok().and_then(|p| p.parse::<i64>().ok()) {
        let (mut server, mut client) = (0, 0);
        for batch in store.table("http_events").map(|t| t.scan(TimeRange::ALL)).unwrap_or_default() {
            for row in HttpEventRow::from_batch(&batch) {
                server += u64::from(row.trace_role == 2 && row.local_port == port);
                client += u64::from(row.trace_role == 1 && row.remote_port == port);
            }
        }
        println!("http_events port={port} server_rows={server} client_rows={client}");
        for s in counters.agent_stats().iter().filter(|s| s.value > 0) {
            println!("agent_stats {} {} {}", s.counter, s.cause, s.value);
        }
    }
    print_tables(&store);
    Ok(())
}
