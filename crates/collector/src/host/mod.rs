//! The host tables: what the node's processes and network do, beside the requests they serve.
//!
//! Owns the sources of `process_stats` and `network_stats` ([`stats::HostStats`], a scan of
//! `/proc`), the `/proc` parsers they use ([`procfs`]), and the source of `proc_exit_events` and
//! `tcp_stats_events` ([`events::HostEvents`], tracepoints through `loupe_bpf::HOST_OBJ`). Must not touch the socket tracer's
//! programs or state, nor the CPU profiler.

pub mod events;
pub mod procfs;
pub mod stats;

pub use stats::{HostStats, HostStatsConfig, ProcScanner, ScanCounts};
pub use events::{HostEvents, HostEventsConfig, HostEventsError};
