//! The host tables: what the node's processes and network do, beside the requests they serve.
//!
//! Owns the sources of `process_stats` and `network_stats` ([`stats::HostStats`], a scan of
//! `/proc`) and the `/proc` parsers they use ([`procfs`]). Must not touch the socket tracer's
//! programs or state, nor the CPU profiler.

pub mod procfs;
pub mod stats;

pub use stats::{HostStats, HostStatsConfig, ProcScanner, ScanCounts};
