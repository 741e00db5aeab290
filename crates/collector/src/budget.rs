//! The agent's one memory budget, split between the store, the parsers' state and the ring buffers.
//!
//! Owns how a single figure (`--memory-budget`) becomes the store's table budgets, the ring-buffer
//! sizes (the socket tracer's and the CPU profiler's), the connection cap and the reorder limit, so that the agent's resident memory stays near
//! the budget however much traffic it sees (issue 13). Must not enforce anything itself: the store
//! evicts, the tracker refuses connections past its cap (counted as `conns_dropped{conn_cap}`), the
//! kernel drops records on a full ring (counted); this module only sizes them.

use loupe_store::StoreConfig;

use crate::CollectorConfig;

const MIB: usize = 1024 * 1024;

/// What the budget sets aside before anything is traced: the program's code, thread stacks, the
/// allocator's slack, the tables' open batches and the CPU profiler's parsed binaries (unwind
/// tables and symbols of what it samples). Measured on an idle host: the agent resides at 15 MiB
/// without the profiler and 44 MiB with it (ring buffers aside); `loupe up` adds its servers.
const FIXED_BYTES: usize = 48 * MIB;
/// Resident bytes per byte of ring buffer: the kernel maps a ring's data pages twice, so that a
/// record that wraps around reads as one, and the consumer touches both mappings.
const RING_RESIDENT_FACTOR: usize = 2;

/// The budget's share for connection tracking: parser buffers, reorder buffers, per-connection rows.
const TRACKING_SHARE: usize = 8; // 1/8

/// Memory one tracked connection is assumed to hold on average (its parsers' partial messages and
/// reorder chunks): the connection cap is the tracking share divided by this.
const BYTES_PER_CONNECTION: usize = 8 * 1024;

/// Memory one complete message waiting for its partner is assumed to hold (its head's texts and
/// kept body): a quarter of the tracking share divided by this bounds them over all connections.
const BYTES_PER_PENDING_MESSAGE: usize = 2 * 1024;

/// The share of the store `http_events` gets; the other tables split the rest evenly.
const HTTP_EVENTS_PERCENT: usize = 50;

/// One memory budget for the whole agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Total bytes: store, parser state, ring buffer and the fixed part together.
    pub bytes: usize,
}

/// Why a budget cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    /// Below what the agent needs before storing anything.
    #[error("a memory budget of {got_mib} MiB is below the minimum of {min_mib} MiB")]
    TooSmall {
        /// The budget asked for, in MiB.
        got_mib: usize,
        /// The smallest usable budget, in MiB.
        min_mib: usize,
    },
}

/// How a [`MemoryBudget`] is divided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetSplit {
    /// The socket tracer's ring buffer: a power of two, 1/16 of the budget at most, 8 MiB at most.
    pub ring_bytes: u32,
    /// The CPU profiler's ring buffer (samples with their copied stack bytes), sized like the socket
    /// tracer's. Set aside whether or not the profiler runs, so that turning it on never pushes the
    /// agent past its budget.
    pub profiler_ring_bytes: u32,
    /// Most connections tracked at once.
    pub max_connections: usize,
    /// Bytes held per direction while waiting for a missing chunk.
    pub max_pending_bytes: usize,
    /// Complete messages held waiting for their partner, over all connections.
    pub max_pending_messages_total: usize,
    /// The store's budget in all, split over the tables by [`MemoryBudget::store_config`].
    pub store_bytes: usize,
}

impl MemoryBudget {
    /// The default: 512 MiB (Pixie's PEM asks for a 2 GiB memory limit with a 1 GiB store; Loupe's
    /// rows are smaller).
    pub const DEFAULT_MIB: usize = 512;
    /// The smallest budget accepted: it leaves the store about 20 MiB.
    pub const MIN_MIB: usize = 96;

    /// A budget of `mib` MiB, or why it is unusable.
    pub fn from_mib(mib: usize) -> Result<Self, BudgetError> {
        if mib < Self::MIN_MIB {
            return Err(BudgetError::TooSmall { got_mib: mib, min_mib: Self::MIN_MIB });
        }
        Ok(MemoryBudget { bytes: mib.saturating_mul(MIB) })
    }

    /// How this budget is divided.
    pub fn split(&self) -> BudgetSplit {
        let ring = prev_power_of_two((self.bytes / 16).min(8 * MIB));
        let tracking = self.bytes / TRACKING_SHARE;
        let max_connections = (tracking / BYTES_PER_CONNECTION).max(64);
        // A connection waiting on a hole holds at most this much per direction; a few of them
        // at once fit the tracking share.
        let max_pending_bytes = (tracking / 16).clamp(64 * 1024, MIB);
        // Two rings (the socket tracer's and the profiler's), each resident twice over.
        let store_bytes = self.bytes.saturating_sub(FIXED_BYTES + 2 * RING_RESIDENT_FACTOR * ring + tracking);
        let ring_bytes = u32::try_from(ring).unwrap_or(1 << 23);
        BudgetSplit {
            ring_bytes,
            profiler_ring_bytes: ring_bytes,
            max_connections,
            max_pending_bytes,
            max_pending_messages_total: (tracking / 4 / BYTES_PER_PENDING_MESSAGE).max(1024),
            store_bytes,
        }
    }

    /// The store's table budgets: `http_events` gets half the store share, every other table of
    /// `loupe_schema::all_tables` an even part of the rest.
    pub fn store_config(&self) -> StoreConfig {
        let store = self.split().store_bytes;
        let http = store / 100 * HTTP_EVENTS_PERCENT;
        let others = loupe_schema::all_tables().iter().filter(|t| t.name != "http_events").count().max(1);
        let mut config = StoreConfig { default_table_bytes: (store - http) / others, ..StoreConfig::default() };
        config.table_bytes.insert("http_events".to_string(), http);
        config
    }

    /// Sizes the collector's ring buffers (the profiler's too, when `collector.profiler` is set),
    /// connection cap and reorder limit.
    pub fn apply(&self, collector: &mut CollectorConfig) {
        let split = self.split();
        collector.tracer.ring_bytes = split.ring_bytes;
        if let Some(profiler) = collector.profiler.as_mut() {
            profiler.ring_bytes = split.profiler_ring_bytes;
        }
        collector.tracker.max_connections = split.max_connections;
        collector.tracker.max_pending_bytes = split.max_pending_bytes;
        collector.tracker.max_pending_messages_total = split.max_pending_messages_total;
    }
}

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget { bytes: Self::DEFAULT_MIB * MIB }
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 { 1 } else { 1 << (usize::BITS - 1 - n.leading_zeros()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_add_up_to_the_budget() {
        for mib in [96, 100, 512, 4096] {
            let budget = MemoryBudget::from_mib(mib).expect("valid");
            let split = budget.split();
            let tracking = budget.bytes / TRACKING_SHARE;
            let rings = RING_RESIDENT_FACTOR * (split.ring_bytes as usize + split.profiler_ring_bytes as usize);
            assert_eq!(split.store_bytes + rings + tracking + FIXED_BYTES, budget.bytes, "{mib}");
            assert!(split.ring_bytes.is_power_of_two() && split.ring_bytes as usize <= budget.bytes / 16);
            let names = loupe_schema::all_tables().iter().map(|t| t.name).collect::<Vec<_>>();
            let store = budget.store_config();
            let total: usize =
                names.iter().map(|n| store.table_bytes.get(*n).copied().unwrap_or(store.default_table_bytes)).sum();
            assert!(total <= split.store_bytes, "{mib}: tables {total} > store share {}", split.store_bytes);
            assert!(total + names.len() >= split.store_bytes, "{mib}: rounding lost more than a byte per table");
        }
    }

    #[test]
    fn default_and_limits() {
        let split = MemoryBudget::default().split();
        assert_eq!(split.ring_bytes, 8 << 20);
        assert_eq!(split.max_connections, 8192);
        assert_eq!(split.max_pending_bytes, 1 << 20);
        assert_eq!(split.max_pending_messages_total, 8192);
        assert_eq!(split.profiler_ring_bytes, 8 << 20);
        assert_eq!(split.store_bytes, (512 - 48 - 2 * 2 * 8 - 64) << 20);
        let small = MemoryBudget::from_mib(96).expect("valid").split();
        assert_eq!((small.ring_bytes, small.max_connections, small.max_pending_bytes), (4 << 20, 1536, 768 << 10));
        assert_eq!(small.store_bytes, (96 - 48 - 2 * 2 * 4 - 12) << 20);
        assert_eq!(MemoryBudget::from_mib(95), Err(BudgetError::TooSmall { got_mib: 95, min_mib: 96 }));
        let mut config =
            CollectorConfig { profiler: Some(crate::ProfilerConfig::default()), ..CollectorConfig::default() };
        MemoryBudget::from_mib(96).expect("valid").apply(&mut config);
        assert_eq!((config.tracer.ring_bytes, config.tracker.max_connections), (4 << 20, 1536));
        assert_eq!(config.profiler.map(|p| p.ring_bytes), Some(4 << 20));
    }
}
