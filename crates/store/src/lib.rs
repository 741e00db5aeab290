//! The table store: bounded in-memory Arrow tables, one per schema, on each node.
//!
//! Owns appending batches, the per-table byte budget with oldest-first eviction, the time index
//! used to prune `start_time`/`end_time` scans, and the counters that say what was dropped.
//! Must not know about PxL, DataFusion, protocols or the collector: it stores Arrow batches.
//!
//! Concurrency: a table's batches live in a `Vec` behind a mutex held only to push, evict or
//! clone `Arc`-backed batch handles. A reader clones the handles it needs and scans without the
//! lock, so a long query never blocks the collector (writers never wait on readers' work).

mod table;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

pub use table::{BatchesAfter, Table, TableStats, TimeRange};

/// Errors the store returns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A batch's schema differs from its table's.
    #[error("batch schema does not match table {table}: {detail}")]
    SchemaMismatch {
        /// The table.
        table: String,
        /// What differs.
        detail: String,
    },
    /// The time column has an unexpected type.
    #[error("table {table} has no usable time column `time_`")]
    NoTimeColumn {
        /// The table.
        table: String,
    },
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Budgets for the store.
///
/// Defaults follow Pixie's: 1 GiB in all (`PL_TABLE_STORE_DATA_LIMIT_MB`), of which
/// `http_events` gets 40 % (`PL_TABLE_STORE_HTTP_EVENTS_PERCENT`); every other table gets
/// `default_table_bytes` unless listed in `table_bytes`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Budget for tables not named in `table_bytes`.
    pub default_table_bytes: usize,
    /// Per-table budgets in bytes.
    pub table_bytes: HashMap<String, usize>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        const MIB: usize = 1024 * 1024;
        StoreConfig {
            default_table_bytes: 64 * MIB,
            table_bytes: HashMap::from([("http_events".to_string(), 1024 * MIB * 40 / 100)]),
        }
    }
}

/// All tables of one node.
#[derive(Debug, Default)]
pub struct Store {
    config: StoreConfig,
    tables: RwLock<HashMap<String, Arc<Table>>>,
}

impl Store {
    /// An empty store with these budgets.
    pub fn new(config: StoreConfig) -> Self {
        Store { config, tables: RwLock::new(HashMap::new()) }
    }

    /// Creates the table from its spec, or returns the existing one.
    pub fn register(&self, spec: &loupe_schema::TableSpec) -> Result<Arc<Table>> {
        if let Some(t) = self.tables.read().get(spec.name) {
            return Ok(t.clone());
        }
        let budget = self.configured_budget(spec.name);
        let table = Arc::new(Table::new(spec.name, spec.arrow_schema(), budget)?);
        Ok(self.tables.write().entry(spec.name.to_string()).or_insert(table).clone())
    }

    /// The budget `name` had at start (its own in `table_bytes`, else the default).
    pub fn configured_budget(&self, name: &str) -> usize {
        self.config.table_bytes.get(name).copied().unwrap_or(self.config.default_table_bytes)
    }

    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.tables.read().get(name).cloned()
    }

    /// All tables, sorted by name.
    pub fn tables(&self) -> Vec<Arc<Table>> {
        let mut v: Vec<_> = self.tables.read().values().cloned().collect();
        v.sort_by(|a, b| a.name().cmp(b.name()));
        v
    }
}
