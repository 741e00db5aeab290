//! Sources: what the collector thread runs. The socket tracer is one; process stats, the
//! profiler and exit events plug in the same way.
//!
//! Owns the [`Source`] trait and [`Tables`], the named store tables sources append to (with the
//! row and error counters every source shares). Must not know any particular source's data.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use loupe_schema::TableSpec;
use loupe_store::{Store, StoreError, Table};

use crate::CollectorCounters;
use crate::loader::ProbeStatus;

/// Something the collector thread polls: it gathers data of its own kind and appends rows to the
/// store tables it declared.
///
/// Not `Send`: sources are made on the collector thread and never leave it (the profiler's symbolizer
/// keeps `Rc`s).
pub trait Source {
    /// A short name for logs (`socket_tracer`).
    fn name(&self) -> &'static str;

    /// The tables it appends to; the collector registers them before the first poll.
    fn tables(&self) -> Vec<TableSpec>;

    /// Does whatever work is ready without blocking and appends rows due to `tables`; returns
    /// whether there was any work, so the collector knows when to wait.
    fn poll(&mut self, tables: &Tables) -> bool;

    /// Appends every pending row now (the collector is stopping).
    fn flush(&mut self, tables: &Tables);

    /// Blocks for at most `timeout` until this source may have work.
    fn wait(&mut self, timeout: Duration) {
        std::thread::sleep(timeout);
    }

    /// The kernel probes it attached, if any, for health reports.
    fn probes(&self) -> Vec<ProbeStatus> {
        Vec::new()
    }
}

/// The store tables sources append to, by name.
pub struct Tables {
    by_name: HashMap<&'static str, Arc<Table>>,
    counters: Arc<CollectorCounters>,
}

impl Tables {
    /// Registers `specs` in `store` (an existing table of the same name is reused).
    pub fn register(
        store: &Store,
        specs: &[TableSpec],
        counters: Arc<CollectorCounters>,
    ) -> Result<Tables, StoreError> {
        let mut by_name = HashMap::new();
        for spec in specs {
            by_name.insert(spec.name, store.register(spec)?);
        }
        Ok(Tables { by_name, counters })
    }

    /// Rows each registered table evicted to stay within its budget, by table name.
    pub fn rows_evicted(&self) -> Vec<(&'static str, u64)> {
        let mut evicted: Vec<_> = self.by_name.iter().map(|(name, t)| (*name, t.stats().rows_evicted)).collect();
        evicted.sort_unstable();
        evicted
    }

    /// Appends a batch of `rows` rows to `table`; a batch that failed to build, or that the store
    /// refuses, is counted and logged, and dropped.
    pub fn append(&self, table: &str, rows: usize, batch: Result<RecordBatch, ArrowError>) {
        let result = match (self.by_name.get(table), batch) {
            (Some(t), Ok(batch)) => t.append(batch).map_err(|e| e.to_string()),
            (None, _) => Err("table not registered".to_string()),
            (_, Err(e)) => Err(e.to_string()),
        };
        match result {
            Ok(()) => {
                self.counters.rows.fetch_add(rows as u64, Ordering::Relaxed);
            }
            Err(error) => {
                self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
                self.counters.rows_dropped.fetch_add(rows as u64, Ordering::Relaxed);
                tracing::error!(%error, table, rows, "dropping batch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use loupe_schema::protocols::{RedisEventRow, RedisEventsBuilder, redis_events};
    use loupe_store::StoreConfig;

    use super::*;

    #[test]
    fn batches_reach_their_table_and_failures_are_counted() {
        let store = Store::new(StoreConfig::default());
        let counters = Arc::new(CollectorCounters::default());
        let tables = Tables::register(&store, &[redis_events()], counters.clone()).expect("register");
        let mut builder = RedisEventsBuilder::new();
        for cmd in ["GET", "SET"] {
            builder.append(&RedisEventRow { time_ns: 1, req_cmd: cmd.into(), ..Default::default() });
        }
        tables.append("redis_events", 2, builder.finish());
        tables.append("no_such_table", 1, RedisEventsBuilder::new().finish());
        tables.append("redis_events", 1, Err(ArrowError::ComputeError("broken".into())));
        let table = store.table("redis_events").expect("registered");
        assert_eq!(table.stats().rows_appended, 2);
        assert_eq!(counters.rows.load(Ordering::Relaxed), 2);
        assert_eq!(counters.store_errors.load(Ordering::Relaxed), 2);
        assert_eq!(counters.rows_dropped.load(Ordering::Relaxed), 2);
        assert_eq!(tables.rows_evicted(), [("redis_events", 0)]);
    }
}
