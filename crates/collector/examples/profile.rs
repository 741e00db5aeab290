//! The CPU profiler alone: the same `Profiler` source `loupe up` runs, polled on this thread into an
//! in-memory store, with no socket tracer, query engine or API around it. `scripts/bench-profiler.sh`
//! runs it to measure what profiling costs. Prints `profiling` once attached; on SIGTERM or SIGINT it
//! writes the last window and prints the rows stored and the profiler's counters.
//!
//! `LOUPE_PROFILER_HZ` (default 99), `LOUPE_PROFILER_STACK_BYTES` (default 16384; 0: frame pointers in
//! the kernel), `LOUPE_PROFILER_WINDOW_SECS` (default 30).
//!
//! Usage (root): `cargo run --release -p loupe-collector --example profile`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use loupe_collector::source::{Source, Tables};
use loupe_collector::{CollectorCounters, Profiler, ProfilerConfig};
use loupe_store::{Store, StoreConfig};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ProfilerConfig {
        frequency_hz: env("LOUPE_PROFILER_HZ", 99),
        copy_stack_bytes: env("LOUPE_PROFILER_STACK_BYTES", 16384),
        window: Duration::from_secs(env("LOUPE_PROFILER_WINDOW_SECS", 30)),
        ..Default::default()
    };
    let store = Store::new(StoreConfig::default());
    let mut profiler = Profiler::load(config)?;
    let tables = Tables::register(&store, &profiler.tables(), Arc::new(CollectorCounters::default()))?;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    println!("profiling");
    while !STOP.load(Ordering::Relaxed) {
        if !profiler.poll(&tables) {
            profiler.wait(Duration::from_millis(20));
        }
    }
    profiler.flush(&tables);
    for table in store.tables() {
        println!("{}: {} rows", table.name(), table.stats().rows_appended);
    }
    println!("{:?}", profiler.stats());
    Ok(())
}
