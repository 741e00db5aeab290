//! The socket tracer, the first [`Source`]: syscall tracepoints to protocol rows.
//!
//! Owns the pipeline `loader` (attach the BPF programs, decode ring-buffer records into
//! `events`) → `reassembly` (per-direction reorder by byte position, gaps) → `tracker`
//! (per-connection state) → `infer` (which protocol, which role) → `protocols` (each protocol's
//! parser and rows), and [`SocketTracer`], which runs it and pushes rows every `push_interval`
//! or `push_rows`. Must not know PxL, queries or gRPC.

pub mod events;
mod infer;
pub mod loader;
pub mod protocols;
mod reassembly;
mod tracker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_common::ClockConverter;
use loupe_schema::TableSpec;

use self::events::KernelEvent;
use self::loader::{LoadError, ProbeStatus, Tracer, TracerConfig};
pub use self::protocols::{BODY_TRUNCATED_MARKER, TableRows};
pub use self::tracker::{Tracker, TrackerConfig, TrackerStats};
use crate::CollectorCounters;
use crate::source::{Source, Tables};

/// Settings of the socket tracer.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// Kernel-side settings.
    pub tracer: TracerConfig,
    /// Connection-tracking settings.
    pub tracker: TrackerConfig,
    /// Reorder waits and idle connections are checked this often.
    pub tick_interval: Duration,
    /// Rows are pushed to the store at least this often...
    pub push_interval: Duration,
    /// ...or as soon as this many are pending.
    pub push_rows: usize,
}

/// The socket tracer as a [`Source`].
pub struct SocketTracer {
    tracer: Tracer,
    tracker: Tracker,
    config: SocketConfig,
    events: Vec<KernelEvent>,
    rows: TableRows,
    last_push: Instant,
    last_tick: Instant,
    counters: Arc<CollectorCounters>,
}

impl SocketTracer {
    /// Loads and attaches the BPF programs.
    pub fn load(config: SocketConfig, counters: Arc<CollectorCounters>) -> Result<SocketTracer, LoadError> {
        let tracer = Tracer::load(&config.tracer)?;
        let tracker = Tracker::new(config.tracker.clone(), ClockConverter::new());
        Ok(SocketTracer {
            tracer,
            tracker,
            config,
            events: Vec::with_capacity(4096),
            rows: TableRows::default(),
            last_push: Instant::now(),
            last_tick: Instant::now(),
            counters,
        })
    }

    /// The tables of every registered protocol.
    pub fn table_specs() -> Vec<TableSpec> {
        protocols::tables()
    }

    fn push(&mut self, tables: &Tables) {
        self.rows.finish_each(|table, n, batch| tables.append(table, n, batch));
        self.last_push = Instant::now();
    }
}

impl Source for SocketTracer {
    fn name(&self) -> &'static str {
        "socket_tracer"
    }

    fn tables(&self) -> Vec<TableSpec> {
        Self::table_specs()
    }

    fn poll(&mut self, tables: &Tables) -> bool {
        let n = self.tracer.poll(&mut self.events);
        self.counters.events.fetch_add(n as u64, Ordering::Relaxed);
        for e in self.events.drain(..) {
            self.tracker.handle(e, &mut self.rows);
        }
        if self.last_tick.elapsed() >= self.config.tick_interval {
            self.tracker.tick(loupe_common::time::monotonic_ns(), &mut self.rows);
            self.last_tick = Instant::now();
        }
        let pending = self.rows.len();
        if pending >= self.config.push_rows || (pending > 0 && self.last_push.elapsed() >= self.config.push_interval) {
            self.push(tables);
        }
        self.counters.open_connections.store(self.tracker.open_connections() as u64, Ordering::Relaxed);
        self.counters.gap_bytes.store(self.tracker.stats().gap_bytes, Ordering::Relaxed);
        n > 0
    }

    fn flush(&mut self, tables: &Tables) {
        self.push(tables);
    }

    fn wait(&mut self, timeout: Duration) {
        self.tracer.wait(timeout);
    }

    fn probes(&self) -> Vec<ProbeStatus> {
        self.tracer.probes().to_vec()
    }
}
