//! The continuous CPU profiler: `stack_traces.beta`.
//!
//! Owns sampling stacks of every process (a perf event per CPU at `frequency_hz`, `loader`), making user
//! stacks whole (`unwind`: the copied stack bytes walked with `.eh_frame`, falling back to the kernel's
//! frame-pointer walk), naming frames (`symbolize`), and writing one row per distinct folded stack per
//! process every window (Pixie writes every 30 s). Must not know about other sources or tables.
//!
//! Two modes, chosen at load: with `copy_stack_bytes > 0` (the default) the kernel sends registers and
//! stack bytes per sample through a ring buffer and samples are counted here (what binaries without
//! frame pointers need); with 0 the kernel counts frame-pointer stacks per window itself and only the
//! window's distinct stacks cross to user space.

pub mod loader;
pub mod symbolize;
pub mod unwind;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_common::Upid;
use loupe_schema::TableSpec;
use loupe_schema::host::{StackTraceRow, StackTracesBuilder, stack_traces};

use crate::loader::ProbeStatus;
use crate::source::{Source, Tables};
pub use loader::{KernelProfileStats, ProfilerLoadConfig, ProfilerLoadError, ProfilerProgram};
use symbolize::Symbols;
use unwind::DwarfUnwinder;

/// Suffix of kernel frames in a folded stack (flamegraph tools colour them apart).
pub const KERNEL_SUFFIX: &str = "_[k]";
/// Distinct stacks kept per window; samples of further ones are counted as dropped.
const MAX_STACKS_PER_WINDOW: usize = 65_536;
/// Sample records handled per poll, so a burst cannot hold the collector thread.
const MAX_RECORDS_PER_POLL: usize = 8192;

/// Settings of the profiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfilerConfig {
    /// Samples per second on each CPU (Pixie: ~91 Hz; 99 keeps clear of 100 Hz timers).
    pub frequency_hz: u64,
    /// Rows are written once per window (Pixie: 30 s).
    pub window: Duration,
    /// User stack bytes copied per sample for `.eh_frame` unwinding (at most 32 KiB); 0 counts
    /// frame-pointer stacks in the kernel instead (cheaper, but binaries without frame pointers then show
    /// their leaf frame only).
    pub copy_stack_bytes: u32,
    /// Ring buffer for the copied stacks: a power of two.
    pub ring_bytes: u32,
    /// A process never sampled (0: none).
    pub exclude_tgid: u32,
    /// If non-zero, the only process sampled (tests).
    pub only_tgid: u32,
    /// Address space id written into each row's `upid`.
    pub asid: u32,
}

impl Default for ProfilerConfig {
    /// 99 Hz, 30 s windows, 16 KiB of stack per sample, an 8 MiB ring.
    fn default() -> Self {
        ProfilerConfig {
            frequency_hz: 99,
            window: Duration::from_secs(30),
            copy_stack_bytes: 16 * 1024,
            ring_bytes: 8 << 20,
            exclude_tgid: 0,
            only_tgid: 0,
            asid: 0,
        }
    }
}

/// One distinct stack of one process in a window, as addresses (leaf first, lookup addresses).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StackKey {
    tgid: u32,
    user: Box<[u64]>,
    kernel: Arc<[u64]>,
}

/// Counters of what the profiler saw and lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfilerStats {
    /// The kernel's counters.
    pub kernel: KernelProfileStats,
    /// Sample records handled in user space.
    pub records: u64,
    /// Records that did not decode (a layout mismatch: a bug).
    pub bad_records: u64,
    /// Samples dropped because the window already held `MAX_STACKS_PER_WINDOW` (65,536) distinct stacks.
    pub stacks_dropped: u64,
    /// Samples whose user stack came from the kernel's frame-pointer walk (the copy unwound to less).
    pub frame_pointer_fallbacks: u64,
    /// Windows written.
    pub windows: u64,
    /// Rows written.
    pub rows: u64,
}

/// Turns a stack's frame names (each list leaf first) into Pixie's folded form: root first, frames
/// joined by `;`, user frames then kernel frames (suffixed [`KERNEL_SUFFIX`]).
pub fn fold<S: AsRef<str>>(user_leaf_first: &[S], kernel_leaf_first: &[S]) -> String {
    let mut out = String::new();
    for name in user_leaf_first.iter().rev() {
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(name.as_ref());
    }
    for name in kernel_leaf_first.iter().rev() {
        if !out.is_empty() {
            out.push(';');
        }
        out.push_str(name.as_ref());
        out.push_str(KERNEL_SUFFIX);
    }
    out
}

/// A stable id for a folded stack: the same stack has the same id in every window and on every node
/// (FNV-1a, 63 bits so it stays a non-negative INT64).
pub fn stack_trace_id(folded: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in folded.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h >> 1) as i64
}

/// Frames of a kernel stack map entry (leaf first) as lookup addresses: return addresses minus one, so
/// they fall inside the call.
fn lookup_addresses(frames: Vec<u64>) -> Vec<u64> {
    frames.into_iter().enumerate().map(|(i, a)| if i == 0 { a } else { a.saturating_sub(1) }).collect()
}

/// The profiler source.
pub struct Profiler {
    config: ProfilerConfig,
    program: ProfilerProgram,
    unwinder: DwarfUnwinder,
    symbols: Symbols,
    counts: HashMap<StackKey, u64>,
    /// Stacks first seen since the last symbolization pass.
    unnamed: Vec<StackKey>,
    /// Kernel stacks of the window by stack id (the map is cleared at each window's end).
    kernel_stacks: [HashMap<i32, Arc<[u64]>>; 2],
    /// Each process's upid, taken when it is first sampled in the window (it may exit before the end).
    upids: HashMap<u32, String>,
    window_start: Instant,
    stats: ProfilerStats,
    scratch: Vec<u64>,
}

impl std::fmt::Debug for Profiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiler").field("config", &self.config).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Profiler {
    /// Loads the perf_event program and attaches it on every online CPU.
    pub fn load(config: ProfilerConfig) -> Result<Profiler, ProfilerLoadError> {
        let program = ProfilerProgram::load(&ProfilerLoadConfig {
            frequency_hz: config.frequency_hz,
            copy_stack_bytes: config.copy_stack_bytes,
            exclude_tgid: config.exclude_tgid,
            only_tgid: config.only_tgid,
            ring_bytes: config.ring_bytes,
        })?;
        let attached = program.probes().iter().filter(|p| p.attached).count();
        tracing::info!(
            hz = config.frequency_hz,
            cpus = attached,
            window_s = config.window.as_secs_f64(),
            unwinding = if config.copy_stack_bytes > 0 { "eh_frame of copied stacks" } else { "frame pointers" },
            "CPU profiler running"
        );
        Ok(Profiler {
            config,
            program,
            unwinder: DwarfUnwinder::new("/proc"),
            symbols: Symbols::new(),
            counts: HashMap::new(),
            unnamed: Vec::new(),
            kernel_stacks: [HashMap::new(), HashMap::new()],
            upids: HashMap::new(),
            window_start: Instant::now(),
            stats: ProfilerStats::default(),
            scratch: Vec::with_capacity(unwind::MAX_FRAMES),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> ProfilerStats {
        ProfilerStats { kernel: self.program.stats(), ..self.stats }
    }

    fn kernel_stack(&mut self, window: u32, id: i32) -> Arc<[u64]> {
        if id < 0 {
            return Arc::from(Vec::new());
        }
        let program = &self.program;
        self.kernel_stacks[(window & 1) as usize]
            .entry(id)
            .or_insert_with(|| Arc::from(lookup_addresses(program.stack(window, id))))
            .clone()
    }

    fn count(&mut self, key: StackKey, n: u64) {
        if let Some(c) = self.counts.get_mut(&key) {
            *c += n;
            return;
        }
        if self.counts.len() >= MAX_STACKS_PER_WINDOW {
            self.stats.stacks_dropped += n;
            return;
        }
        let asid = self.config.asid;
        self.upids.entry(key.tgid).or_insert_with(|| {
            Upid::for_local_pid(asid, key.tgid).unwrap_or(Upid { asid, pid: key.tgid, start_ticks: 0 }).to_string()
        });
        self.unnamed.push(key.clone());
        self.counts.insert(key, n);
    }

    /// Unwinds and counts the waiting sample records; returns how many.
    fn drain(&mut self, max: usize) -> usize {
        let mut records = Vec::new();
        let n = self.program.drain(max, |r| records.push(r.to_vec()));
        for record in &records {
            let Some(s) = loader::Sample::decode(record) else {
                self.stats.bad_records += 1;
                continue;
            };
            self.stats.records += 1;
            let mut user = std::mem::take(&mut self.scratch);
            user.clear();
            if s.sp != 0 {
                self.unwinder.unwind(s.tgid, s.ip, s.sp, s.bp, s.stack, &mut user);
            }
            if user.len() < 2 && s.user_stack_id >= 0 {
                let fp = lookup_addresses(self.program.stack(s.window, s.user_stack_id));
                if fp.len() > user.len() {
                    self.stats.frame_pointer_fallbacks += 1;
                    user = fp;
                }
            }
            let kernel = self.kernel_stack(s.window, s.kernel_stack_id);
            self.count(StackKey { tgid: s.tgid, user: user.as_slice().into(), kernel }, 1);
            self.scratch = user;
        }
        n
    }

    /// Names the frames of stacks first seen since the last pass, one symbolizer pass per process
    /// (while the process most likely still runs).
    fn name_new_stacks(&mut self) {
        if self.unnamed.is_empty() {
            return;
        }
        let mut by_tgid: HashMap<u32, Vec<u64>> = HashMap::new();
        let mut kernel = Vec::new();
        for key in self.unnamed.drain(..) {
            by_tgid.entry(key.tgid).or_default().extend_from_slice(&key.user);
            kernel.extend_from_slice(&key.kernel);
        }
        for (tgid, addrs) in by_tgid {
            let unwinder = &self.unwinder;
            self.symbols.resolve_user(tgid, &addrs, |a| unwinder.locate(tgid, a));
        }
        self.symbols.resolve_kernel(&kernel);
    }

    /// Ends the window: the kernel switches to the other maps, this window's stacks are read, named and
    /// written, and its maps cleared.
    fn end_window(&mut self, tables: &Tables) {
        // Bounded by what a full ring holds: samples keep coming while it drains.
        let full_ring = self.config.ring_bytes as usize / loader::SAMPLE_HEADER;
        self.drain(full_ring);
        let old = match self.program.flip() {
            Ok(old) => old,
            Err(error) => {
                tracing::warn!(%error, "profiler window not switched; trying again next window");
                self.window_start = Instant::now();
                return;
            }
        };
        // Records written before the switch.
        self.drain(full_ring);
        for (key, n) in self.program.counts(old) {
            let user = lookup_addresses(self.program.stack(old, key.user_stack_id));
            let kernel = self.kernel_stack(old, key.kernel_stack_id);
            self.count(StackKey { tgid: key.tgid, user: user.into(), kernel }, n);
        }
        self.name_new_stacks();
        self.write_rows(tables);
        self.program.clear(old);
        self.kernel_stacks[(old & 1) as usize].clear();
        for tgid in self.upids.keys() {
            if !std::path::Path::new(&format!("/proc/{tgid}")).exists() {
                self.symbols.forget_process(*tgid);
            }
        }
        self.upids.clear();
        self.unwinder.forget_idle(self.config.window * 2);
        self.window_start = Instant::now();
        self.stats.windows += 1;
        tracing::debug!(stats = ?self.stats(), "profiler window written");
    }

    fn write_rows(&mut self, tables: &Tables) {
        let mut folded: HashMap<(u32, String), i64> = HashMap::new();
        for (key, n) in self.counts.drain() {
            let user: Vec<Arc<str>> = key.user.iter().map(|&a| self.symbols.user(key.tgid, a)).collect();
            let kernel: Vec<Arc<str>> = key.kernel.iter().map(|&a| self.symbols.kernel(a)).collect();
            let stack = fold(&user, &kernel);
            *folded.entry((key.tgid, stack)).or_default() += i64::try_from(n).unwrap_or(i64::MAX);
        }
        if folded.is_empty() {
            return;
        }
        let time_ns = loupe_common::time::now_unix_ns();
        let mut builder = StackTracesBuilder::new();
        let rows = folded.len();
        for ((tgid, stack_trace), count) in folded {
            let upid = self.upids.get(&tgid).cloned().unwrap_or_else(|| format!("{}:{tgid}:0", self.config.asid));
            builder.append(&StackTraceRow {
                time_ns,
                upid,
                stack_trace_id: stack_trace_id(&stack_trace),
                stack_trace,
                count,
            });
        }
        tables.append(stack_traces().name, rows, builder.finish());
        self.stats.rows += rows as u64;
    }
}

impl Source for Profiler {
    fn name(&self) -> &'static str {
        "perf_profiler"
    }

    fn tables(&self) -> Vec<TableSpec> {
        vec![stack_traces()]
    }

    fn poll(&mut self, tables: &Tables) -> bool {
        let n = self.drain(MAX_RECORDS_PER_POLL);
        self.name_new_stacks();
        if self.window_start.elapsed() >= self.config.window {
            self.end_window(tables);
        }
        n > 0
    }

    fn flush(&mut self, tables: &Tables) {
        self.end_window(tables);
    }

    fn wait(&mut self, timeout: Duration) {
        self.program.wait(timeout);
    }

    fn probes(&self) -> Vec<ProbeStatus> {
        self.program.probes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_stacks_are_root_first_with_kernel_frames_last() {
        assert_eq!(
            fold(&["hot", "b", "a", "main"], &["do_syscall_64", "entry"]),
            "main;a;b;hot;entry_[k];do_syscall_64_[k]"
        );
        assert_eq!(fold::<&str>(&[], &["worker_thread"]), "worker_thread_[k]");
        assert_eq!(fold::<&str>(&[], &[]), "");
    }

    #[test]
    fn ids_are_stable_non_negative_and_differ() {
        let a = stack_trace_id("main;a;b;hot");
        assert_eq!(a, stack_trace_id("main;a;b;hot"));
        assert!(a >= 0);
        assert_ne!(a, stack_trace_id("main;a;b;cold"));
    }

    #[test]
    fn return_addresses_point_inside_the_call() {
        assert_eq!(lookup_addresses(vec![0x1000, 0x2005, 0x3000]), [0x1000, 0x2004, 0x2fff]);
        assert!(lookup_addresses(Vec::new()).is_empty());
    }
}
