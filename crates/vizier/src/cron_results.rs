//! Cron scripts' results kept in history: the connector names the cron script it runs (`CRON_SCRIPT` metadata);
//! a sink in front of the client's copies each output's batches (those not exported), and when the run ends well
//! they are written to the engine's history as the script's result tables (`loupe_history::results`).
//!
//! Owns which runs are kept and the copy's bound. Must not name tables or write segments itself
//! (`loupe-history` does), nor hold back or change what the client receives.

use std::sync::Arc;

use arrow::array::RecordBatch;
use loupe_engine::{Cancelled, QueryEvent, QuerySink};
use loupe_history::History;
use loupe_history::results::MAX_RESULT_RUN_BYTES;

/// The cron script a query runs, as the caller named it (`CRON_SCRIPT` metadata), if any and readable.
pub(crate) fn cron_script(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let bytes = metadata.get_bin(loupe_proto::headers::CRON_SCRIPT)?.to_bytes().ok()?;
    let name = String::from_utf8(bytes.to_vec()).ok()?;
    (!name.is_empty() && name.len() <= 256).then_some(name)
}

/// Copies every output passing through to `inner`, up to [`MAX_RESULT_RUN_BYTES`].
pub(crate) struct ResultsSink<'a, S> {
    inner: &'a mut S,
    /// Whether this run is kept at all (a cron run, on an agent with history).
    keeping: bool,
    outputs: Vec<(String, Vec<RecordBatch>)>,
    bytes: usize,
    over: bool,
}

impl<'a, S: QuerySink> ResultsSink<'a, S> {
    pub(crate) fn new(inner: &'a mut S, keeping: bool) -> Self {
        ResultsSink { inner, keeping, outputs: Vec::new(), bytes: 0, over: false }
    }

    /// Writes the copied outputs as `script`'s run at `run_ns`; a failure is logged (the client has its rows).
    pub(crate) async fn write(self, history: Option<&Arc<History>>, script: Option<&str>, run_ns: i64) {
        let (Some(history), Some(script)) = (history, script) else { return };
        if !self.keeping {
            return;
        }
        if self.over {
            tracing::warn!(
                script,
                limit_bytes = MAX_RESULT_RUN_BYTES,
                "cron script's run too large for history; not kept"
            );
            return;
        }
        match history.write_results(script, &self.outputs, run_ns).await {
            Ok(report) => {
                for (table, why) in &report.skipped {
                    tracing::warn!(script, table, why, "cron script's output not kept in history");
                }
                tracing::debug!(script, rows = report.written.rows, tables = ?report.tables, "cron results kept");
            }
            Err(error) => tracing::error!(script, %error, "cron script's results not written to history"),
        }
    }
}

impl<S: QuerySink> QuerySink for ResultsSink<'_, S> {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        if self.keeping && !self.over {
            match &event {
                QueryEvent::Output { name, .. } => self.outputs.push((name.clone(), Vec::new())),
                QueryEvent::Batch { batch, .. } => {
                    self.bytes += batch.get_array_memory_size();
                    if self.bytes > MAX_RESULT_RUN_BYTES {
                        // Nothing of the run is kept: part of a result would read as the whole.
                        self.over = true;
                        self.outputs.clear();
                    } else if let Some((_, batches)) = self.outputs.last_mut() {
                        batches.push(batch.clone());
                    }
                }
                QueryEvent::OutputEnd { .. } => {}
            }
        }
        self.inner.send(event).await
    }
}
