//! Cron scripts' results kept in history: the connector names the cron script it runs (`CRON_SCRIPT` metadata);
//! each output's batches (those not exported) are copied on their way to the client, and when the run ends well
//! they are written to history as the script's result tables (`loupe_history::results`). On a lone agent a sink
//! in front of the client's copies them ([`ResultsSink`]); on a query broker, the answers relayed from the
//! Kelvins are decoded and copied ([`KeptRun::observe`]) into the broker's history, the cluster's one copy.
//!
//! Owns which runs are kept and the copy's bound. Must not name tables or write segments itself
//! (`loupe-history` does), nor hold back or change what the client receives.

use std::sync::Arc;

use arrow::array::RecordBatch;
use loupe_engine::{Cancelled, QueryEvent, QuerySink};
use loupe_history::History;
use loupe_history::results::MAX_RESULT_RUN_BYTES;
use loupe_proto::vizierpb::{ExecuteScriptResponse, execute_script_response};

/// The cron script a query runs, as the caller named it (`CRON_SCRIPT` metadata), if any and readable.
pub(crate) fn cron_script(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let bytes = metadata.get_bin(loupe_proto::headers::CRON_SCRIPT)?.to_bytes().ok()?;
    let name = String::from_utf8(bytes.to_vec()).ok()?;
    (!name.is_empty() && name.len() <= 256).then_some(name)
}

/// One cron run's outputs as they pass, kept for history up to [`MAX_RESULT_RUN_BYTES`].
#[derive(Default)]
pub(crate) struct KeptRun {
    outputs: Vec<(String, Vec<RecordBatch>)>,
    /// The wire ids of the outputs, in `outputs`' order ([`KeptRun::observe`]).
    ids: Vec<String>,
    bytes: usize,
    /// Why nothing of the run is kept, once that is so: part of a result would read as the whole.
    dropped: Option<&'static str>,
}

impl KeptRun {
    /// A new output begins.
    pub(crate) fn output(&mut self, name: &str) {
        if self.dropped.is_none() {
            self.outputs.push((name.to_string(), Vec::new()));
        }
    }

    /// A batch of output `index` (in the order [`KeptRun::output`] named them; the last one when unknown).
    pub(crate) fn batch(&mut self, index: Option<usize>, batch: &RecordBatch) {
        if self.dropped.is_some() {
            return;
        }
        self.bytes += batch.get_array_memory_size();
        if self.bytes > MAX_RESULT_RUN_BYTES {
            self.drop_run("its outputs are larger than a run may keep");
            return;
        }
        let slot = match index {
            Some(i) => self.outputs.get_mut(i),
            None => self.outputs.last_mut(),
        };
        if let Some((_, batches)) = slot {
            batches.push(batch.clone());
        }
    }

    /// Copies what one relayed answer carries: an output's start or one of its batches. An answer that does
    /// not decode fails the copy (nothing of the run is kept), never the relay.
    pub(crate) fn observe(&mut self, response: &ExecuteScriptResponse) {
        match &response.result {
            Some(execute_script_response::Result::MetaData(meta)) => {
                self.output(&meta.name);
                self.ids.push(meta.id.clone());
            }
            Some(execute_script_response::Result::Data(data)) if !data.arrow_batch.is_empty() => {
                let index = self.ids.iter().position(|id| *id == data.table_id);
                match loupe_proto::arrow_ipc::decode_batches(&data.arrow_batch) {
                    Ok(batches) if index.is_some() => batches.iter().for_each(|b| self.batch(index, b)),
                    _ => self.drop_run("a relayed answer did not decode"),
                }
            }
            _ => {}
        }
    }

    fn drop_run(&mut self, why: &'static str) {
        self.dropped = Some(why);
        self.outputs.clear();
    }

    /// Writes the outputs as `script`'s run at `run_ns`; a failure is logged (the client has its rows).
    pub(crate) async fn write(self, history: &History, script: &str, run_ns: i64) {
        if let Some(why) = self.dropped {
            tracing::warn!(script, why, limit_bytes = MAX_RESULT_RUN_BYTES, "cron script's run not kept in history");
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

/// Copies every output passing through to `inner` into a [`KeptRun`].
pub(crate) struct ResultsSink<'a, S> {
    inner: &'a mut S,
    /// Whether this run is kept at all (a cron run, on an agent with history).
    keeping: bool,
    run: KeptRun,
}

impl<'a, S: QuerySink> ResultsSink<'a, S> {
    pub(crate) fn new(inner: &'a mut S, keeping: bool) -> Self {
        ResultsSink { inner, keeping, run: KeptRun::default() }
    }

    /// Writes the copied outputs as `script`'s run at `run_ns`; a failure is logged (the client has its rows).
    pub(crate) async fn write(self, history: Option<&Arc<History>>, script: Option<&str>, run_ns: i64) {
        if let (true, Some(history), Some(script)) = (self.keeping, history, script) {
            self.run.write(history, script, run_ns).await;
        }
    }
}

impl<S: QuerySink> QuerySink for ResultsSink<'_, S> {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        if self.keeping {
            match &event {
                QueryEvent::Output { name, .. } => self.run.output(name),
                QueryEvent::Batch { batch, .. } => self.run.batch(None, batch),
                QueryEvent::OutputEnd { .. } => {}
            }
        }
        self.inner.send(event).await
    }
}
