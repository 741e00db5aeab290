//! The cost of one `process_stats`/`network_stats` scan of `/proc`, per 1,000 processes.
//!
//! Brings the host to at least `HOST_SCAN_PROCESSES` (default 1,000) user processes by starting
//! idle `sleep`s (killed at the end), then times `ProcScanner::scan` over the live `/proc`, rows
//! built, against a baseline measured in the same run: the least any scan must do, listing
//! `/proc` and reading each process's `stat`. Prints criterion's figures and one line
//! `host scan: <us> us of CPU per 1000 processes (<ratio>x the stat-only baseline)`, in the
//! thread's CPU time, which other load on a shared host skews far less than wall time.
//!
//! Owns benchmarking only; uses the collector's public API.

use std::hint::black_box;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use loupe_collector::host::ProcScanner;
use loupe_schema::host::{NetworkStatsBuilder, ProcessStatsBuilder};

/// The user processes of this host now.
fn user_processes() -> usize {
    let mut scanner = ProcScanner::new(0, "/proc");
    scanner.scan(0, &mut ProcessStatsBuilder::new(), &mut NetworkStatsBuilder::new()).processes
}

/// Idle children that bring the host up to `want` user processes; killed when dropped.
struct Sleepers(Vec<Child>);

impl Sleepers {
    fn up_to(want: usize) -> Self {
        let missing = want.saturating_sub(user_processes());
        let children = (0..missing)
            .map(|_| Command::new("sleep").arg("600").stdin(Stdio::null()).spawn().expect("spawn sleep"))
            .collect();
        Sleepers(children)
    }
}

impl Drop for Sleepers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The baseline: list `/proc` and read every process's `stat`, nothing else.
fn stat_only() -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|p| p.bytes().all(|b| b.is_ascii_digit())) else { continue };
        if std::fs::read(format!("/proc/{pid}/stat")).is_ok() {
            n += 1;
        }
    }
    n
}

fn scan(scanner: &mut ProcScanner, p: &mut ProcessStatsBuilder, n: &mut NetworkStatsBuilder) -> usize {
    let counts = scanner.scan(black_box(1), p, n);
    // Emitting the batches is part of a scan's cost.
    let _ = black_box(p.finish());
    let _ = black_box(n.finish());
    counts.processes
}

fn bench_host_scan(c: &mut Criterion) {
    let mut scanner = ProcScanner::new(0, "/proc");
    let (mut p, mut n) = (ProcessStatsBuilder::new(), NetworkStatsBuilder::new());
    let mut group = c.benchmark_group("host_scan");
    group.bench_function("process_stats_scan", |b| b.iter(|| scan(&mut scanner, &mut p, &mut n)));
    group.bench_function("stat_only_baseline", |b| b.iter(stat_only));
    group.finish();
}

criterion_group!(benches, bench_host_scan);

fn main() {
    let want = std::env::var("HOST_SCAN_PROCESSES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let _sleepers = Sleepers::up_to(want);
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `--test` (cargo test --benches) runs each bench once: skip the timed line then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let mut scanner = ProcScanner::new(0, "/proc");
    let (mut p, mut n) = (ProcessStatsBuilder::new(), NetworkStatsBuilder::new());
    let (scan_ns, processes) = timed(|| scan(&mut scanner, &mut p, &mut n));
    let (base_ns, _) = timed(stat_only);
    let per_1000 = scan_ns / processes.max(1) as f64 * 1000.0;
    println!(
        "host scan: {:.0} us of CPU per 1000 processes ({:.2}x the stat-only baseline; {processes} processes, \
         {:.0} us per scan)",
        per_1000 / 1000.0,
        scan_ns / base_ns,
        scan_ns / 1000.0
    );
}

/// Thread CPU ns per call of `f`, over 3 s, and its last result.
fn timed(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let (cpu_start, start) = (thread_cpu_ns(), Instant::now());
    let (mut calls, mut last) = (0u64, 0);
    while start.elapsed() < Duration::from_secs(3) {
        last = f();
        calls += 1;
    }
    ((thread_cpu_ns() - cpu_start) as f64 / calls as f64, last)
}

/// This thread's CPU time so far.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for clock_gettime to write; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}
