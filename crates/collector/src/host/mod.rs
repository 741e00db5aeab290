//! The host tables: what the node's processes and network do, beside the requests they serve.
//!
//! Owns the sources of `process_stats` and `network_stats` ([`stats::HostStats`], a scan of
//! `/proc` with the parsers of `loupe_common::procfs`) and of `proc_exit_events` and
//! `tcp_stats_events` ([`events::HostEvents`], tracepoints through `loupe_bpf::HOST_OBJ`). Must not
//! touch the socket tracer's programs or state, nor the CPU profiler.

pub mod events;
pub mod stats;

pub use events::{HostEvents, HostEventsConfig, HostEventsError};
pub use stats::{HostStats, HostStatsConfig, ProcScanner, ScanCounts};
