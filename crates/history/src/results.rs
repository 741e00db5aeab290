//! Results of cron (retention) scripts kept in history: each output of a run becomes rows of a table of its own,
//! `cron_<script>` (or `cron_<script>_<output>` for an output not named `output`), written beside the store's
//! tables in the same layout, so `px.DataFrame('cron_<script>', start_time='-1d')` reads them back, also after a
//! restart. These tables are not in the store: their schemas are the written outputs' own, remembered here when
//! written and found again at start ([`History::load_result_tables`]) from each table's newest segment footer.
//!
//! Owns the names (sanitized, bounded), the bounds (at most [`MAX_RESULT_TABLES`] tables, [`MAX_RESULT_RUN_BYTES`]
//! per run) and the `time_` of rows that have none (the run's time). Must not run scripts: the vizier's query
//! service hands over the outputs it computed.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ParquetRecordBatchStreamBuilder;

use crate::layout::{self};
use crate::{FlushReport, History, HistoryError, Result};

/// The prefix of every result table's name.
pub const RESULT_TABLE_PREFIX: &str = "cron_";
/// Most result tables one history keeps (a new one past this is refused).
pub const MAX_RESULT_TABLES: usize = 64;
/// Most bytes (in memory, as Arrow) of one run's outputs written; a larger run is not written at all.
pub const MAX_RESULT_RUN_BYTES: usize = 16 << 20;
/// Longest script or output part of a result table's name.
const MAX_PART: usize = 48;
/// The output name `px.display(df)` gives when the script names none.
const DEFAULT_OUTPUT: &str = "output";

/// The result table of output `output` of cron script `script`: `cron_<script>` for the default output
/// (`output`), else `cron_<script>_<output>`. Each part is lowercased, every run of other characters than
/// `[a-z0-9]` becomes one `_`, and it is cut at 48 characters; so two names may meet (`My Stats` and
/// `my-stats` both give `cron_my_stats`).
pub fn result_table_name(script: &str, output: &str) -> String {
    let script = sanitize(script);
    if output == DEFAULT_OUTPUT || output.is_empty() {
        format!("{RESULT_TABLE_PREFIX}{script}")
    } else {
        format!("{RESULT_TABLE_PREFIX}{script}_{}", sanitize(output))
    }
}

/// Whether `table` has the shape [`result_table_name`] gives (`cron_`, then `[a-z0-9_]`, at most 102
/// characters): the names a retention policy may give for results a history may hold.
pub fn is_result_table_name(table: &str) -> bool {
    table.len() <= RESULT_TABLE_PREFIX.len() + 2 * MAX_PART + 1
        && table.strip_prefix(RESULT_TABLE_PREFIX).is_some_and(|rest| {
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

fn sanitize(part: &str) -> String {
    let mut out = String::new();
    for c in part.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed: String = out.trim_matches('_').chars().take(MAX_PART).collect();
    let trimmed = trimmed.trim_end_matches('_');
    if trimmed.is_empty() { "unnamed".to_string() } else { trimmed.to_string() }
}

/// What writing one run's outputs did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultsReport {
    /// Rows, segments and bytes written, over every output.
    pub written: FlushReport,
    /// The tables written to.
    pub tables: Vec<String>,
    /// Outputs left out, with why.
    pub skipped: Vec<(String, String)>,
}

impl History {
    /// Writes one run of cron script `script` at `run_ns`: each `(output name, batches)` into its result table.
    /// Rows without a `time_` column get the run's time. Refuses the whole run past [`MAX_RESULT_RUN_BYTES`];
    /// leaves out an output whose `time_` is not a timestamp, or that would be a table past
    /// [`MAX_RESULT_TABLES`].
    pub async fn write_results(
        &self,
        script: &str,
        outputs: &[(String, Vec<RecordBatch>)],
        run_ns: i64,
    ) -> Result<ResultsReport> {
        let bytes: usize = outputs.iter().flat_map(|(_, b)| b).map(RecordBatch::get_array_memory_size).sum();
        if bytes > MAX_RESULT_RUN_BYTES {
            return Err(HistoryError::Config(format!(
                "cron script {script:?}: its run returned {bytes} bytes; at most {MAX_RESULT_RUN_BYTES} are kept in history"
            )));
        }
        let mut report = ResultsReport::default();
        for (output, batches) in outputs {
            let table = result_table_name(script, output);
            layout::check_table(&table)?;
            let with_time: Result<Vec<RecordBatch>, String> = batches.iter().map(|b| with_time(b, run_ns)).collect();
            let batches = match with_time {
                Ok(b) => b,
                Err(why) => {
                    report.skipped.push((table, why));
                    continue;
                }
            };
            let Some(schema) = batches.first().map(RecordBatch::schema) else { continue };
            {
                let mut known = self.result_schemas.write();
                if !known.contains_key(&table) && known.len() >= MAX_RESULT_TABLES {
                    report.skipped.push((table, format!("history keeps at most {MAX_RESULT_TABLES} result tables")));
                    continue;
                }
                // The newest schema wins: segments of an older one are skipped by the reader.
                known.insert(table.clone(), schema);
            }
            let one = self.write_batches(&table, &batches, run_ns).await?;
            report.written.rows += one.rows;
            report.written.segments += one.segments;
            report.written.bytes += one.bytes;
            report.tables.push(table);
        }
        Ok(report)
    }

    /// The schema of result table `table`, if this history holds it.
    pub fn result_schema(&self, table: &str) -> Option<SchemaRef> {
        self.result_schemas.read().get(table).cloned()
    }

    /// The result tables this history holds, by name.
    pub fn result_tables(&self) -> Vec<String> {
        self.result_schemas.read().keys().cloned().collect()
    }

    /// Finds the result tables already stored (from an earlier run of the agent), each with the schema of its
    /// newest segment of this writer; returns how many. Tables with no segment of this writer are left out.
    pub async fn load_result_tables(&self) -> Result<usize> {
        let mut found = 0;
        for table in self.stored_tables().await? {
            if !table.starts_with(RESULT_TABLE_PREFIX) || layout::check_table(&table).is_err() {
                continue;
            }
            if self.result_schemas.read().contains_key(&table) {
                continue;
            }
            if self.result_schemas.read().len() >= crate::results::MAX_RESULT_TABLES {
                tracing::warn!(table, "history holds more result tables than are read back; left out");
                continue;
            }
            let newest = self
                .segments(&table)
                .await?
                .into_iter()
                .rev()
                .find(|(_, m)| m.location.filename().is_some_and(|f| layout::is_segment_of(f, &self.writer)));
            let Some((_, meta)) = newest else { continue };
            let reader = crate::reader::SegmentReader::new(self.store.clone(), meta.location.clone(), meta.size);
            let schema = ParquetRecordBatchStreamBuilder::new(reader).await?.schema().clone();
            self.result_schemas.write().entry(table).or_insert(schema);
            found += 1;
        }
        Ok(found)
    }
}

/// `batch` with a `time_` of `Timestamp(ns)`: its own, or `run_ns` on every row as the first column.
fn with_time(batch: &RecordBatch, run_ns: i64) -> std::result::Result<RecordBatch, String> {
    let schema = batch.schema();
    if let Ok(field) = schema.field_with_name(loupe_schema::TIME_COLUMN) {
        return match field.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => Ok(batch.clone()),
            other => Err(format!("its time_ is {other}, not a timestamp")),
        };
    }
    let time = Field::new(loupe_schema::TIME_COLUMN, DataType::Timestamp(TimeUnit::Nanosecond, None), false);
    let mut fields = vec![Arc::new(time)];
    fields.extend(schema.fields().iter().cloned());
    let mut columns: Vec<ArrayRef> = vec![Arc::new(TimestampNanosecondArray::from(vec![run_ns; batch.num_rows()]))];
    columns.extend(batch.columns().iter().cloned());
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized_bounded_and_default_outputs_are_left_out() {
        assert_eq!(result_table_name("Service Stats (1m)", "output"), "cron_service_stats_1m");
        assert_eq!(result_table_name("svc-stats", "per pod"), "cron_svc_stats_per_pod");
        assert_eq!(result_table_name("--", ""), "cron_unnamed");
        let long = result_table_name(&"x".repeat(500), &"y".repeat(500));
        assert_eq!(long.len(), RESULT_TABLE_PREFIX.len() + 48 + 1 + 48);
        assert!(layout::check_table(&long).is_ok());
        assert_eq!(result_table_name("é-stats", "output"), "cron_stats");
        for name in [long.as_str(), "cron_service_stats_1m", "cron_unnamed"] {
            assert!(is_result_table_name(name), "{name}");
        }
        for name in ["cron_", "http_events", "cron_A", "cron_../x", &format!("{long}x")] {
            assert!(!is_result_table_name(name), "{name}");
        }
    }
}
