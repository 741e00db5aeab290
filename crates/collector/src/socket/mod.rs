//! The socket tracer, the first [`Source`]: syscall tracepoints to protocol rows.
//!
//! Owns the pipeline `loader` (attach the BPF programs, decode ring-buffer records into
//! `events`) → `reassembly` (per-direction reorder by byte position, gaps) → `tracker`
//! (per-connection state) → `infer` (which protocol, which role) → `protocols` (each protocol's
//! parser and rows), `tls` (attaching the TLS library uprobes to the libraries processes map), and
//! [`SocketTracer`], which runs it and pushes rows every `push_interval`
//! or `push_rows`, and samples every counter of what was traced or lost (kernel, reassembly,
//! parsers, store) into `agent_stats`. Must not know PxL, queries or gRPC.

mod conn_stats;
pub mod events;
pub mod go_tls;
mod infer;
pub mod live;
pub mod loader;
pub mod port_protocols;
pub mod protocols;
mod reassembly;
pub use loupe_elf::static_ssl;
pub mod tls;
mod tracker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use loupe_common::{ClockConverter, Upid};
use loupe_schema::TableSpec;
use loupe_schema::host::{AgentStatsBuilder, AgentStatsRow, agent_stats};

use self::loader::{LoadError, ProbeStatus, Tracer, TracerConfig};
pub use self::protocols::{BODY_TRUNCATED_MARKER, TableRows};
pub use self::tracker::{Tracker, TrackerConfig, TrackerStats};
use crate::source::{Source, Tables};
use crate::{AgentStat, CollectorCounters};

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
    /// Counters are written to `agent_stats` this often.
    pub stats_interval: Duration,
}

/// The counters are sampled for `/metrics` this often: reading the kernel's per-CPU counters is a
/// syscall and the parsers' losses a walk over the connections, too much for every poll.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The socket tracer as a [`Source`].
pub struct SocketTracer {
    tracer: Tracer,
    tls: tls::TlsAttacher,
    tracker: Tracker,
    config: SocketConfig,
    rows: TableRows,
    last_push: Instant,
    last_tick: Instant,
    last_sample: Instant,
    last_stats_rows: Instant,
    /// When `conn_stats` was last reported.
    last_conn_stats: Instant,
    /// The agent's own process, as `agent_stats` names it.
    upid: String,
    counters: Arc<CollectorCounters>,
}

impl SocketTracer {
    /// Loads and attaches the BPF programs.
    pub fn load(config: SocketConfig, counters: Arc<CollectorCounters>) -> Result<SocketTracer, LoadError> {
        let mut tracer = Tracer::load(&config.tracer)?;
        let mut tls = tls::TlsAttacher::new("/proc");
        if let Some(error) = tracer.tls_error() {
            tracing::warn!(%error, "OpenSSL TLS plaintext not traced: the uprobe programs did not load");
        }
        if let Some(error) = tracer.go_tls_error() {
            tracing::warn!(%error, "Go crypto/tls plaintext not traced: the uprobe programs did not load");
        }
        tls.scan(&mut tracer);
        tracing::info!(
            libraries = ?tls.attached(),
            go_executables = ?tls.go_attached(),
            linked = ?tls.linked_attached(),
            "TLS plaintext: uprobes on OpenSSL SSL_read/SSL_write (and _ex) and Go crypto/tls.(*Conn).Read/Write, \
             found in /proc/<pid>/maps and /proc/<pid>/exe every {}s",
            tls::SCAN_INTERVAL.as_secs()
        );
        let tracker = Tracker::new(config.tracker.clone(), ClockConverter::new());
        let (asid, pid) = (config.tracker.asid, std::process::id());
        let upid = Upid::for_local_pid(asid, pid).map_or_else(|| format!("{asid}:{pid}:0"), |u| u.to_string());
        Ok(SocketTracer {
            tracer,
            tls,
            tracker,
            config,
            rows: TableRows::default(),
            last_push: Instant::now(),
            last_tick: Instant::now(),
            last_sample: Instant::now(),
            last_stats_rows: Instant::now(),
            last_conn_stats: Instant::now(),
            upid,
            counters,
        })
    }

    /// The tables of every registered protocol, and `agent_stats`.
    pub fn table_specs() -> Vec<TableSpec> {
        let mut specs = protocols::tables();
        specs.push(agent_stats());
        specs.push(loupe_schema::protocols::conn_stats());
        specs
    }

    fn push(&mut self, tables: &Tables) {
        self.rows.finish_each(|table, n, batch| tables.append(table, n, batch));
        self.last_push = Instant::now();
    }

    /// Every counter of what was traced or lost, by cause: kernel, decoder, reassembly, parsers, store.
    pub fn agent_stats(&self, tables: &Tables) -> Vec<AgentStat> {
        let k = self.tracer.stats();
        let t = self.tracker.stats();
        let c = &self.counters;
        let stat = |counter, cause, value| AgentStat { counter, cause, value };
        let mut stats = vec![
            stat("kernel_records", "submitted", k.events),
            stat("kernel_records_dropped", "ring_full", k.ringbuf_reserve_failures),
            stat("kernel_bytes_dropped", "ring_full", k.ringbuf_failed_bytes),
            stat("kernel_syscalls_truncated", "copy_limit", k.truncated_chunks),
            stat("kernel_syscalls_not_copied", "sendfile_splice", k.not_copied),
            stat("kernel_read_failures", "user_memory", k.read_failures),
            stat("kernel_conns_untracked", "conn_map_full", k.conn_map_full),
            stat("kernel_syscalls_untraced", "args_map_full", k.args_map_full),
            stat("kernel_conns_excluded", "agent_port", k.excluded_conns),
            stat("kernel_tls_calls_untraced", "no_socket", k.tls_no_fd),
            stat("kernel_wakeups", "batch", k.wakeups),
            stat("records_decoded", "ok", k.decoded),
            stat("records_dropped", "undecodable", k.decode_errors),
            stat("chunks_dropped", "duplicate", t.duplicate_chunks),
            stat("gap_bytes", "capture_gap", t.gap_bytes),
            stat("rows", "produced", t.rows),
            stat("conns_dropped", "conn_cap", t.conns_over_cap),
            stat("records_dropped", "conn_cap", t.records_over_cap),
            stat("bytes_dropped", "conn_cap", t.bytes_over_cap),
            stat("messages_dropped", "pending_total_cap", t.messages_over_total_cap),
            stat("conns_untraced", "sampling", t.conns_unsampled),
            stat("conns_untraced", "protocol_disabled", t.conns_disabled),
            stat("conn_stats_dropped", "key_cap", self.tracker.conn_stats_dropped()),
            stat("rows_dropped", "store_refused", c.rows_dropped.load(Ordering::Relaxed)),
        ];
        for (protocol, l) in self.tracker.losses() {
            let [parse_errors, dropped, unpaired, overflow] = protocols::loss_counters(protocol);
            stats.push(stat(parse_errors, "malformed", l.parse_errors));
            stats.push(stat(dropped, "gap_or_close", l.dropped_partial));
            stats.push(stat(unpaired, "no_partner", l.unpaired));
            stats.push(stat(overflow, "queue_full", l.overflow));
        }
        for (table, evicted) in tables.rows_evicted() {
            stats.push(stat("rows_evicted", table, evicted));
        }
        stats
    }

    /// Refreshes the `/metrics` sample every second and writes `agent_stats` rows every `stats_interval`
    /// (and when `force`d, at the end).
    fn sample(&mut self, tables: &Tables, force: bool) {
        if !force && self.last_sample.elapsed() < SAMPLE_INTERVAL {
            return;
        }
        self.last_sample = Instant::now();
        let stats = self.agent_stats(tables);
        if force || self.last_stats_rows.elapsed() >= self.config.stats_interval {
            self.last_stats_rows = Instant::now();
            let time_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            let mut builder = AgentStatsBuilder::new();
            for s in &stats {
                builder.append(&AgentStatsRow {
                    time_ns,
                    upid: self.upid.clone(),
                    counter: s.counter.to_string(),
                    cause: s.cause.to_string(),
                    value: i64::try_from(s.value).unwrap_or(i64::MAX),
                });
            }
            tables.append(loupe_schema::host::AGENT_STATS, stats.len(), builder.finish());
        }
        if let Ok(mut sample) = self.counters.agent_stats.lock() {
            *sample = stats;
        }
    }
}

impl SocketTracer {
    /// Writes a `conn_stats` report every `stats_interval` (10 s by default, Pixie's period) and
    /// when `force`d, at the end.
    fn report_conn_stats(&mut self, tables: &Tables, force: bool) {
        if !force && self.last_conn_stats.elapsed() < self.config.stats_interval {
            return;
        }
        self.last_conn_stats = Instant::now();
        let time_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let mut builder = self.tracker.conn_stats(time_ns);
        let n = builder.len();
        if n > 0 {
            tables.append(loupe_schema::protocols::conn_stats().name, n, builder.finish());
        }
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
        let (tracker, rows, tls) = (&mut self.tracker, &mut self.rows, &mut self.tls);
        let n = self.tracer.poll(|e| {
            if let events::KernelEvent::ConnOpen { key, .. } = &e {
                tls.note_connection(key.tgid);
            }
            tracker.handle(e, rows)
        });
        self.counters.events.fetch_add(n as u64, Ordering::Relaxed);
        self.tls.maybe_scan(&mut self.tracer);
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
        self.sample(tables, false);
        self.report_conn_stats(tables, false);
        n > 0
    }

    fn flush(&mut self, tables: &Tables) {
        self.push(tables);
        self.sample(tables, true);
        self.report_conn_stats(tables, true);
    }

    fn wait(&mut self, timeout: Duration) {
        self.tracer.wait(timeout);
    }

    fn probes(&self) -> Vec<ProbeStatus> {
        self.tracer.probes().to_vec()
    }
}
