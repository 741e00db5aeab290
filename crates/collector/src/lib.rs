//! The node collector: loads the eBPF programs, tracks connections, parses protocols, fills the store.
//!
//! Owns the path from the kernel to table rows: [`preflight`] checks the host, [`source`] defines
//! what a data source is ([`Source`]) and the named tables it appends to, [`socket`] is the socket
//! tracer (loader, reassembly, tracker, inference, per-protocol rows), [`host`] the host tables
//! (`process_stats`, `network_stats`, `proc_exit_events`, `tcp_stats_events`), [`profiler`] the CPU profiler
//! (`stack_traces.beta`), and [`Collector`] runs each kind of source on a thread of its own. Must not know about PxL, queries or gRPC.

pub mod budget;
pub mod host;
pub mod preflight;
pub mod profiler;
pub mod socket;
pub mod source;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use loupe_store::Store;

pub use budget::{BudgetError, BudgetSplit, MemoryBudget};
pub use host::{HostEvents, HostEventsConfig, HostStats, HostStatsConfig};
pub use profiler::{Profiler, ProfilerConfig};
pub use socket::live::{LiveSettings, UnknownProtocol};
pub use socket::loader::{ProbeStatus, Tracer, TracerConfig};
pub use socket::port_protocols::{PortProtocol, PortProtocolError};
pub use socket::{SocketConfig, SocketTracer, TableRows, Tracker, TrackerConfig, TrackerStats, events, loader};
pub use socket::{go_tls, static_ssl};
pub use source::{Source, Tables};

/// Errors starting the collector.
#[derive(Debug, thiserror::Error)]
pub enum CollectorError {
    /// The host lacks something the tracer needs.
    #[error(transparent)]
    Preflight(#[from] preflight::PreflightError),
    /// The BPF programs did not load.
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    /// The store refused the table.
    #[error(transparent)]
    Store(#[from] loupe_store::StoreError),
    /// The collector thread could not start.
    #[error("failed to start the collector thread: {0}")]
    Thread(String),
}

/// Settings for [`Collector::start`].
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// Kernel-side settings.
    pub tracer: TracerConfig,
    /// Connection-tracking settings.
    pub tracker: TrackerConfig,
    /// Longest wait for the kernel's wakeup before the ring buffer is drained anyway.
    pub poll_interval: Duration,
    /// Rows are pushed to the store at least this often...
    pub push_interval: Duration,
    /// ...or as soon as this many are pending (Pixie pushes at 1,024 rows).
    pub push_rows: usize,
    /// The agent's counters are written to `agent_stats` this often (and sampled for `/metrics`
    /// every second).
    pub stats_interval: Duration,
    /// `process_stats` and `network_stats`: how often `/proc` is scanned, and where it is.
    pub host_stats: HostStatsConfig,
    /// The CPU profiler (`stack_traces.beta`); `None` turns it off.
    pub profiler: Option<ProfilerConfig>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            tracer: TracerConfig::default(),
            tracker: TrackerConfig::default(),
            poll_interval: Duration::from_millis(20),
            push_interval: Duration::from_millis(100),
            push_rows: 1024,
            stats_interval: Duration::from_secs(10),
            host_stats: HostStatsConfig::default(),
            profiler: Some(ProfilerConfig::default()),
        }
    }
}

/// Live counters of a running collector.
#[derive(Debug, Default)]
pub struct CollectorCounters {
    /// Kernel events consumed.
    pub events: AtomicU64,
    /// Rows appended to the store.
    pub rows: AtomicU64,
    /// Batches the store refused.
    pub store_errors: AtomicU64,
    /// Connections tracked now.
    pub open_connections: AtomicU64,
    /// Bytes lost to capture gaps.
    pub gap_bytes: AtomicU64,
    /// Rows of refused batches.
    pub rows_dropped: AtomicU64,
    /// The latest sample of every counter of what was traced, dropped and why (what `agent_stats` stores).
    pub agent_stats: Mutex<Vec<AgentStat>>,
}

impl CollectorCounters {
    /// The latest sample of the agent's counters (empty before the first).
    pub fn agent_stats(&self) -> Vec<AgentStat> {
        self.agent_stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// One counter of what the agent traced, dropped or could not parse, by cause: a row of
/// `agent_stats` and a sample of `loupe_agent_stat_total` on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentStat {
    /// What is counted (`kernel_records_dropped`).
    pub counter: &'static str,
    /// Why (`ring_full`).
    pub cause: &'static str,
    /// Total since the collector started.
    pub value: u64,
}

/// A running collector; stops and joins its thread when dropped.
pub struct Collector {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    probes: Vec<ProbeStatus>,
    counters: Arc<CollectorCounters>,
    live: Arc<LiveSettings>,
}

impl Collector {
    /// Checks the host, loads and attaches the socket tracer, and starts collecting into `store`.
    pub fn start(store: Arc<Store>, config: CollectorConfig) -> Result<Collector, CollectorError> {
        preflight::check()?;
        let counters = Arc::new(CollectorCounters::default());
        let mut specs = SocketTracer::table_specs();
        specs.extend(HostStats::table_specs());
        specs.extend(HostEvents::table_specs());
        specs.push(loupe_schema::host::stack_traces());
        let tables = Tables::register(&store, &specs, counters.clone())?;
        let live = Arc::clone(&config.tracker.live);
        let mut host_stats = config.host_stats.clone();
        host_stats.asid = config.tracker.asid;
        let socket = SocketConfig {
            tracer: config.tracer.clone(),
            tracker: config.tracker.clone(),
            tick_interval: config.poll_interval,
            push_interval: config.push_interval,
            push_rows: config.push_rows,
            stats_interval: config.stats_interval,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let tables = Arc::new(tables);
        let poll = config.poll_interval;
        // Each kind of source has a thread of its own: a profiler symbolizing a new binary or a slow
        // /proc scan then never holds back the socket tracer's rows (on one shared thread, rows came
        // seconds late on a busy host).
        let socket_counters = counters.clone();
        let socket = spawn_sources("loupe-collector", &tables, poll, &stop, true, move || {
            let tracer = SocketTracer::load(socket, socket_counters)?;
            let probes = tracer.probes();
            Ok((vec![Box::new(tracer) as Box<dyn Source>], probes))
        })?;
        let mut threads = vec![socket];
        let host_asid = host_stats.asid;
        threads.push(spawn_sources("loupe-host", &tables, poll, &stop, false, move || {
            let mut sources: Vec<Box<dyn Source>> = vec![Box::new(HostStats::new(host_stats))];
            // Host events are an addition: without them the socket tracer and the /proc tables
            // still run.
            let events = HostEventsConfig { asid: host_asid, ..HostEventsConfig::default() };
            match HostEvents::load(events) {
                Ok(events) => sources.push(Box::new(events)),
                Err(error) => tracing::warn!(
                    error = %ErrorChain(&error),
                    "proc_exit_events and tcp_stats_events are not collected"
                ),
            }
            Ok((sources, Vec::new()))
        })?);
        if let Some(profiler) = config.profiler {
            threads.push(spawn_sources("loupe-profiler", &tables, poll, &stop, false, move || {
                // The profiler is optional: where it cannot run, it is reported as a failed probe and
                // the socket tracer goes on alone.
                match Profiler::load(profiler) {
                    Ok(p) => {
                        let probes = p.probes();
                        Ok((vec![Box::new(p) as Box<dyn Source>], probes))
                    }
                    Err(error) => {
                        let error = ErrorChain(&error).to_string();
                        tracing::warn!(%error, "CPU profiler not running (turn it off with --no-profiler)");
                        let failed =
                            ProbeStatus { name: "perf_event/cpu_clock".into(), attached: false, error: Some(error) };
                        Ok((Vec::new(), vec![failed]))
                    }
                }
            })?);
        }
        let mut probes = Vec::new();
        let mut failure = None;
        let mut handles = Vec::new();
        for (handle, ready) in threads {
            match ready.recv().map_err(|e| CollectorError::Thread(e.to_string())) {
                Ok(Ok(p)) => probes.extend(p),
                Ok(Err(e)) | Err(e) => failure = failure.or(Some(e)),
            }
            handles.push(handle);
        }
        let collector = Collector { stop, threads: handles, probes, counters, live };
        if let Some(e) = failure {
            // Dropping stops and joins the threads that did start.
            drop(collector);
            return Err(e);
        }
        Ok(collector)
    }

    /// What was attached, and what failed to.
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
    }

    /// The settings that change while it runs (sampling, protocols parsed): `config.tracker.live`.
    pub fn live(&self) -> Arc<LiveSettings> {
        Arc::clone(&self.live)
    }

    /// Live counters.
    pub fn counters(&self) -> &CollectorCounters {
        &self.counters
    }

    /// Live counters, shareable with other threads (metrics endpoints).
    pub fn shared_counters(&self) -> Arc<CollectorCounters> {
        self.counters.clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Shows an error with its sources, `a: b: c`, in one log field.
struct ErrorChain<'a>(&'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// How often freed heap memory is handed back to the kernel.
const TRIM_INTERVAL: Duration = Duration::from_secs(1);

/// Hands free heap pages back to the kernel. The store frees whole batches as it evicts, but glibc
/// keeps freed memory in this thread's arena, in holes between live batches that its automatic
/// trimming (top of the heap only) never returns: under sustained traffic the resident size then
/// grew 14% past the memory budget (bench-agent.sh's memory step). `malloc_trim` releases the holes
/// too; once a second it costs well under a millisecond.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// What a collector thread makes its sources with, on the thread itself (sources are not `Send`):
/// the sources and the probes they attached, or why the collector cannot run.
type Loaded = Result<(Vec<Box<dyn Source>>, Vec<ProbeStatus>), CollectorError>;

/// A collector thread and the channel it reports its probes on once its sources are loaded.
type SourceThread = (JoinHandle<()>, std::sync::mpsc::Receiver<Result<Vec<ProbeStatus>, CollectorError>>);

/// Starts a thread named `name` that loads its sources with `load`, reports their probes, and
/// polls them until `stop` (handing freed memory back to the kernel too when `trim`).
fn spawn_sources(
    name: &str,
    tables: &Arc<Tables>,
    poll_interval: Duration,
    stop: &Arc<AtomicBool>,
    trim: bool,
    load: impl FnOnce() -> Loaded + Send + 'static,
) -> Result<SourceThread, CollectorError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let tables = tables.clone();
    let stop = stop.clone();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || match load() {
            Ok((sources, probes)) => {
                let _ = ready_tx.send(Ok(probes));
                if !sources.is_empty() {
                    run(sources, &tables, poll_interval, &stop, trim);
                }
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
            }
        })
        .map_err(|e| CollectorError::Thread(e.to_string()))?;
    Ok((handle, ready_rx))
}

/// Polls every source until `stop`; when none had work, waits on each in turn for its share
/// of `poll_interval`.
fn run(mut sources: Vec<Box<dyn Source>>, tables: &Tables, poll_interval: Duration, stop: &AtomicBool, trim: bool) {
    let mut last_trim = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if trim && last_trim.elapsed() >= TRIM_INTERVAL {
            release_freed_memory();
            last_trim = std::time::Instant::now();
        }
        let mut busy = false;
        for source in &mut sources {
            busy |= source.poll(tables);
        }
        if !busy {
            let share = poll_interval / sources.len().max(1) as u32;
            for source in &mut sources {
                source.wait(share);
            }
        }
    }
    for source in &mut sources {
        source.flush(tables);
        tracing::debug!(source = source.name(), "source stopped");
    }
}
