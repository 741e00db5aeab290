//! The writer: follows selected store tables with a cursor each, and every flush interval writes the rows
//! appended since as segments (split by hour, sorted by `time_`); sweeps retention every sweep interval, and
//! flushes once more when stopped; at start it finds the cron result tables already stored. It runs on a thread
//! of its own with a small runtime, so neither the collector nor queries wait on storage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{Array, RecordBatch, TimestampNanosecondArray};
use arrow::compute::{SortOptions, concat_batches, sort_to_indices, take_record_batch};
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::layout::{self, hour_start};
use crate::{History, HistoryError, MAX_SEGMENT_ROWS, MAX_TABLES, ROW_GROUP_ROWS, Result};

/// What the writer follows and how often.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The store tables written (at most [`MAX_TABLES`]).
    pub tables: Vec<String>,
    /// How often new rows are written (1 s to 1 h). Rows evicted from memory before a flush are not in history.
    pub flush_interval: Duration,
    /// How often retention is enforced (1 s to 1 day).
    pub sweep_interval: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            tables: Vec::new(),
            flush_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(300),
        }
    }
}

/// What one flush wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Rows written.
    pub rows: u64,
    /// Segments written.
    pub segments: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Store batches evicted before the writer saw them.
    pub missed_batches: u64,
}

/// Counters of a running writer, for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Rows written since start.
    pub rows_written: AtomicU64,
    /// Segments written since start.
    pub segments_written: AtomicU64,
    /// Bytes written since start.
    pub bytes_written: AtomicU64,
    /// Store batches evicted before they were written.
    pub batches_missed: AtomicU64,
    /// Flushes or sweeps that failed.
    pub errors: AtomicU64,
}

/// Follows a store's tables with one cursor each.
#[derive(Debug, Default)]
pub struct Flusher {
    cursors: BTreeMap<String, u64>,
}

impl Flusher {
    /// Writes every row appended to `tables` of `store` since the last call.
    pub async fn flush(
        &mut self,
        store: &loupe_store::Store,
        history: &History,
        tables: &[String],
    ) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        for name in tables.iter().take(MAX_TABLES) {
            let Some(table) = store.table(name) else { continue };
            let cursor = self.cursors.get(name).copied().unwrap_or(0);
            let got = table.batches_after(cursor);
            report.missed_batches += got.missed_batches;
            if got.missed_batches > 0 {
                tracing::warn!(table = %name, batches = got.missed_batches, "rows left memory before history saw them");
            }
            let one = history.write_batches(name, &got.batches, loupe_common::time::now_unix_ns()).await?;
            // Moved only once written: a failed write is tried again at the next flush.
            self.cursors.insert(name.clone(), got.next);
            report.rows += one.rows;
            report.segments += one.segments;
            report.bytes += one.bytes;
        }
        Ok(report)
    }
}

impl History {
    /// Writes `batches` of `table` (the store table's schema) as segments, one or more per hour their rows fall in,
    /// named with `written_ns`.
    pub async fn write_batches(&self, table: &str, batches: &[RecordBatch], written_ns: i64) -> Result<FlushReport> {
        layout::check_table(table)?;
        let mut report = FlushReport::default();
        let Some(first) = batches.first() else { return Ok(report) };
        let all = concat_batches(&first.schema(), batches)?;
        if all.num_rows() == 0 {
            return Ok(report);
        }
        let time_index = all.schema().index_of(loupe_schema::TIME_COLUMN)?;
        let order = sort_to_indices(all.column(time_index), Some(SortOptions::default()), None)?;
        let sorted = take_record_batch(&all, &order)?;
        let times = sorted
            .column(time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| HistoryError::Config(format!("`{table}`: time_ is not Timestamp(ns)")))?;
        let mut start = 0;
        while start < sorted.num_rows() {
            let hour = hour_start(times.value(start));
            let mut end = start;
            while end < sorted.num_rows() && end - start < MAX_SEGMENT_ROWS && hour_start(times.value(end)) == hour {
                end += 1;
            }
            let rows = sorted.slice(start, end - start);
            let bytes = self.put_segment(table, hour, times.value(start), &rows, written_ns).await?;
            report.rows += rows.num_rows() as u64;
            report.segments += 1;
            report.bytes += bytes;
            start = end;
        }
        Ok(report)
    }

    /// Encodes one hour's rows as a segment and stores it; returns its size.
    async fn put_segment(
        &self,
        table: &str,
        hour: i64,
        first_ns: i64,
        rows: &RecordBatch,
        written_ns: i64,
    ) -> Result<u64> {
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let mut w = ArrowWriter::try_new(Vec::new(), rows.schema(), Some(props))?;
        w.write(rows)?;
        let bytes = w.into_inner()?;
        let size = bytes.len() as u64;
        let path = self
            .table_prefix(table)
            .join(layout::hour_dir(hour).as_str())
            .join(layout::segment_name(&self.writer, first_ns, written_ns).as_str());
        self.store.put(&path, PutPayload::from(bytes)).await?;
        if let Some(root) = &self.local_root {
            let file = path.parts().fold(root.clone(), |p, part| p.join(part.as_ref()));
            layout::make_private_file(root, &file)?;
        }
        Ok(size)
    }
}

/// A running writer; dropping it stops it after one last flush (so a clean shutdown loses no row).
#[derive(Debug)]
pub struct WriterHandle {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    stats: Arc<WriterStats>,
}

impl WriterHandle {
    /// Starts writing `config.tables` of `store` into `history`.
    pub fn start(
        store: Arc<loupe_store::Store>,
        history: Arc<History>,
        config: WriterConfig,
    ) -> std::io::Result<WriterHandle> {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let stats = Arc::new(WriterStats::default());
        let counters = Arc::clone(&stats);
        let flush_every = config.flush_interval.clamp(Duration::from_secs(1), Duration::from_secs(3600));
        let sweep_every = config.sweep_interval.clamp(Duration::from_secs(1), Duration::from_secs(86_400));
        let mut tables = config.tables;
        tables.truncate(MAX_TABLES);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name("loupe-history".into()).spawn(move || {
            let mut flusher = Flusher::default();
            let mut last_sweep = Instant::now();
            // The cron scripts' result tables of earlier runs, so queries find them after a restart.
            match runtime.block_on(history.load_result_tables()) {
                Ok(0) => {}
                Ok(n) => tracing::info!(tables = n, "cron result tables found in history"),
                Err(error) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, "cron result tables in history not read; queries will not find them");
                }
            }
            loop {
                let stopping =
                    !matches!(stopped.recv_timeout(flush_every), Err(std::sync::mpsc::RecvTimeoutError::Timeout));
                match runtime.block_on(flusher.flush(&store, &history, &tables)) {
                    Ok(r) => {
                        counters.rows_written.fetch_add(r.rows, Ordering::Relaxed);
                        counters.segments_written.fetch_add(r.segments, Ordering::Relaxed);
                        counters.bytes_written.fetch_add(r.bytes, Ordering::Relaxed);
                        counters.batches_missed.fetch_add(r.missed_batches, Ordering::Relaxed);
                        if r.rows > 0 {
                            tracing::debug!(rows = r.rows, segments = r.segments, bytes = r.bytes, "history flushed");
                        }
                    }
                    Err(error) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(%error, "history flush failed; retrying at the next interval");
                    }
                }
                if stopping {
                    break;
                }
                if last_sweep.elapsed() >= sweep_every {
                    last_sweep = Instant::now();
                    if let Err(error) = runtime.block_on(history.sweep(loupe_common::time::now_unix_ns())) {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(%error, "history retention sweep failed");
                    }
                }
            }
        })?;
        Ok(WriterHandle { stop: Some(stop), thread: Some(thread), stats })
    }

    /// The writer's counters.
    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.stats
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
