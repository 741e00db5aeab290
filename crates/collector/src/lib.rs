//! The node collector: loads the eBPF programs, tracks connections, parses protocols, fills the store.
//!
//! Owns the path from kernel events to table rows: [`preflight`] checks the host, [`loader`]
//! attaches the BPF programs and decodes ring-buffer records into [`events`], [`conn`] turns
//! them into rows, and [`Collector`] runs that loop on its own thread and appends batches to the
//! store. Must not know about PxL, queries or gRPC.

pub mod conn;
pub mod events;
pub mod loader;
pub mod preflight;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use loupe_common::ClockConverter;
use loupe_schema::http::{HttpEventsBuilder, http_events};
use loupe_store::Store;

pub use conn::{Tracker, TrackerConfig, TrackerStats};
pub use loader::{ProbeStatus, Tracer, TracerConfig};

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
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            tracer: TracerConfig::default(),
            tracker: TrackerConfig::default(),
            poll_interval: Duration::from_millis(20),
            push_interval: Duration::from_millis(100),
            push_rows: 1024,
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
}

/// A running collector; stops and joins its thread when dropped.
pub struct Collector {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    probes: Vec<ProbeStatus>,
    counters: Arc<CollectorCounters>,
}

impl Collector {
    /// Checks the host, loads and attaches the tracer, and starts collecting into `store`.
    pub fn start(store: Arc<Store>, config: CollectorConfig) -> Result<Collector, CollectorError> {
        preflight::check()?;
        let table = store.register(&http_events())?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(CollectorCounters::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = {
            let stop = stop.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("loupe-collector".into())
                .spawn(move || {
                    let tracer = match Tracer::load(&config.tracer) {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(tracer.probes().to_vec()));
                    run(tracer, table, config, &stop, &counters);
                })
                .map_err(|e| CollectorError::Thread(e.to_string()))?
        };
        let probes = ready_rx.recv().map_err(|e| CollectorError::Thread(e.to_string()))??;
        Ok(Collector { stop, thread: Some(thread), probes, counters })
    }

    /// What was attached, and what failed to.
    pub fn probes(&self) -> &[ProbeStatus] {
        &self.probes
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
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut tracer: Tracer,
    table: Arc<loupe_store::Table>,
    config: CollectorConfig,
    stop: &AtomicBool,
    counters: &CollectorCounters,
) {
    let mut tracker = Tracker::new(config.tracker.clone(), ClockConverter::new());
    let mut events = Vec::with_capacity(4096);
    let mut rows = Vec::new();
    let mut builder = HttpEventsBuilder::new();
    let mut last_push = Instant::now();
    let mut last_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let n = tracer.poll(&mut events);
        counters.events.fetch_add(n as u64, Ordering::Relaxed);
        for e in events.drain(..) {
            tracker.handle(e, &mut rows);
        }
        if last_tick.elapsed() >= config.poll_interval {
            tracker.tick(loupe_common::time::monotonic_ns(), &mut rows);
            last_tick = Instant::now();
        }
        for r in rows.drain(..) {
            builder.append(&r);
        }
        if builder.len() >= config.push_rows || (!builder.is_empty() && last_push.elapsed() >= config.push_interval) {
            push(&mut builder, &table, counters);
            last_push = Instant::now();
        }
        counters.open_connections.store(tracker.open_connections() as u64, Ordering::Relaxed);
        counters.gap_bytes.store(tracker.stats().gap_bytes, Ordering::Relaxed);
        if n == 0 {
            tracer.wait(config.poll_interval);
        }
    }
    push(&mut builder, &table, counters);
}

fn push(builder: &mut HttpEventsBuilder, table: &loupe_store::Table, counters: &CollectorCounters) {
    if builder.is_empty() {
        return;
    }
    let n = builder.len() as u64;
    match builder.finish().map_err(|e| e.to_string()).and_then(|b| table.append(b).map_err(|e| e.to_string())) {
        Ok(()) => {
            counters.rows.fetch_add(n, Ordering::Relaxed);
        }
        Err(error) => {
            counters.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, rows = n, "dropping http_events batch");
        }
    }
}
