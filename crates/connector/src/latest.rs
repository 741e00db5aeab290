//! The rows of each cron script's newest successful run, kept in memory for a Prometheus view of script results
//! (`loupe up` renders them on its metrics listener with `loupe_export::prometheus`).
//!
//! Owns the bound: at most [`MAX_SCRIPTS`] scripts, and a run whose rows exceed [`MAX_KEPT_BYTES`] of Arrow IPC is
//! not kept (its previous rows are dropped too, so nothing stale is shown). Must not render or serve anything.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;

/// Most scripts whose rows are kept.
pub const MAX_SCRIPTS: usize = 64;
/// Most Arrow IPC bytes kept from one run.
pub const MAX_KEPT_BYTES: usize = 4 << 20;

/// Output tables of one run: (table name, its batches), in display order.
pub type Tables = Vec<(String, Vec<RecordBatch>)>;

/// The newest rows per cron script name; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct LatestResults(Arc<Mutex<BTreeMap<String, Tables>>>);

impl std::fmt::Debug for LatestResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map_or(0, |m| m.len());
        f.debug_struct("LatestResults").field("scripts", &n).finish()
    }
}

impl LatestResults {
    /// Keeps `tables` as `script`'s newest rows (`None`: the run's rows were too large; forget the old ones).
    pub(crate) fn set(&self, script: &str, tables: Option<Tables>) {
        let Ok(mut m) = self.0.lock() else { return };
        match tables {
            Some(t) if m.contains_key(script) || m.len() < MAX_SCRIPTS => {
                m.insert(script.to_owned(), t);
            }
            _ => {
                m.remove(script);
            }
        }
    }

    /// Forgets scripts no longer in the set.
    pub(crate) fn retain(&self, names: &HashSet<&str>) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|k, _| names.contains(k.as_str()));
        }
    }

    /// Every script's newest rows, by name.
    pub fn snapshot(&self) -> Vec<(String, Tables)> {
        self.0.lock().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    }
}
