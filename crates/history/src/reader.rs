//! The reader: one table's rows in a time range, pruned first by hour partition, then by each row group's
//! `time_` statistics, then row by row; only this writer's segments (a vizier's other PEMs answer for theirs).

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampNanosecondArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;

use crate::layout::{self, HOUR_NS};
use crate::{History, HistoryError, Result};

/// Which rows to read: `time_` in `[start_ns, end_ns]` (inclusive, open where `None`) and before `before_ns`
/// (exclusive: the oldest row memory still holds, so history and memory never both return a row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeBounds {
    /// Earliest `time_`.
    pub start_ns: Option<i64>,
    /// Latest `time_`.
    pub end_ns: Option<i64>,
    /// Only rows strictly older than this.
    pub before_ns: Option<i64>,
}

impl TimeBounds {
    fn lo(&self) -> i64 {
        self.start_ns.unwrap_or(i64::MIN)
    }

    /// The latest time wanted, inclusive.
    fn hi(&self) -> i64 {
        let end = self.end_ns.unwrap_or(i64::MAX);
        self.before_ns.map_or(end, |b| end.min(b.saturating_sub(1)))
    }

    fn overlaps(&self, min: i64, max: i64) -> bool {
        max >= self.lo() && min <= self.hi()
    }
}

/// How much a read pruned, for tests and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Hour partitions present.
    pub hours: u64,
    /// Hour partitions opened.
    pub hours_read: u64,
    /// Segments opened.
    pub segments: u64,
    /// Row groups in the segments opened.
    pub row_groups: u64,
    /// Row groups read.
    pub row_groups_read: u64,
    /// Rows returned.
    pub rows: u64,
}

impl History {
    /// `table`'s rows within `bounds`, as `schema.project(columns)` (every column when `None`). Segments whose
    /// columns no longer match `schema` by name and type are skipped with a warning.
    pub async fn read(
        &self,
        table: &str,
        schema: &SchemaRef,
        columns: Option<&[usize]>,
        bounds: TimeBounds,
    ) -> Result<(Vec<RecordBatch>, ReadStats)> {
        layout::check_table(table)?;
        let mut stats = ReadStats::default();
        let mut out = Vec::new();
        if bounds.lo() > bounds.hi() {
            return Ok((out, stats));
        }
        let wanted: Vec<usize> = columns.map_or_else(|| (0..schema.fields().len()).collect(), <[usize]>::to_vec);
        let target = std::sync::Arc::new(schema.project(&wanted)?);
        let mut held: u64 = 0;
        let prefix = self.table_prefix(table);
        let hours = self.store.list_with_delimiter(Some(&prefix)).await?;
        let mut dirs: Vec<(i64, object_store::path::Path)> = hours
            .common_prefixes
            .into_iter()
            .filter_map(|p| Some((layout::parse_hour_dir(p.filename()?)?, p)))
            .collect();
        dirs.sort_by_key(|(h, _)| *h);
        stats.hours = dirs.len() as u64;
        for (hour, dir) in dirs {
            if !bounds.overlaps(hour, hour.saturating_add(HOUR_NS - 1)) {
                continue;
            }
            stats.hours_read += 1;
            let mut files = self.store.list_with_delimiter(Some(&dir)).await?.objects;
            files.retain(|m| m.location.filename().is_some_and(|f| layout::is_segment_of(f, &self.writer)));
            files.sort_by(|a, b| a.location.cmp(&b.location));
            for meta in files {
                stats.segments += 1;
                let reader = SegmentReader { store: self.store.clone(), path: meta.location.clone(), size: meta.size };
                let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
                let file_schema = builder.schema().clone();
                // The file's column for each wanted one, by name and type; time_ is read too, to filter rows.
                let find = |name: &str, ty: &arrow::datatypes::DataType| {
                    file_schema.index_of(name).ok().filter(|&i| file_schema.field(i).data_type() == ty)
                };
                let time_field = schema.field_with_name(loupe_schema::TIME_COLUMN)?;
                let Some(file_time) = find(time_field.name(), time_field.data_type()) else {
                    tracing::warn!(file = %meta.location, "history segment without time_; skipped");
                    continue;
                };
                let mapped: Option<Vec<usize>> =
                    target.fields().iter().map(|f| find(f.name(), f.data_type())).collect();
                let Some(mapped) = mapped else {
                    tracing::warn!(file = %meta.location, table, "history segment's columns differ from the table's; skipped");
                    continue;
                };
                let parquet_schema = builder.parquet_schema();
                let time_leaf = parquet_schema.columns().iter().position(|c| c.name() == loupe_schema::TIME_COLUMN);
                let groups: Vec<usize> = builder
                    .metadata()
                    .row_groups()
                    .iter()
                    .enumerate()
                    .filter(|(_, rg)| {
                        let minmax = time_leaf.and_then(|leaf| match rg.column(leaf).statistics() {
                            Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
                            _ => None,
                        });
                        minmax.is_none_or(|(min, max)| bounds.overlaps(min, max))
                    })
                    .map(|(i, _)| i)
                    .collect();
                stats.row_groups += builder.metadata().num_row_groups() as u64;
                stats.row_groups_read += groups.len() as u64;
                if groups.is_empty() {
                    continue;
                }
                let mut roots: Vec<usize> = mapped.clone();
                roots.push(file_time);
                roots.sort_unstable();
                roots.dedup();
                let mask = ProjectionMask::roots(parquet_schema, roots.iter().copied());
                let mut stream = builder.with_row_groups(groups).with_projection(mask).build()?;
                while let Some(batch) = stream.try_next().await? {
                    // Columns of `batch` are `roots` in order.
                    let pos = |file_col: usize| roots.iter().position(|&r| r == file_col).unwrap_or(0);
                    let times = batch
                        .column(pos(file_time))
                        .as_any()
                        .downcast_ref::<TimestampNanosecondArray>()
                        .ok_or_else(|| HistoryError::Config("time_ is not Timestamp(ns)".into()))?;
                    let keep: BooleanArray =
                        times.iter().map(|t| Some(t.is_some_and(|t| t >= bounds.lo() && t <= bounds.hi()))).collect();
                    let cols = mapped.iter().map(|&c| batch.column(pos(c)).clone()).collect();
                    let projected = RecordBatch::try_new_with_options(
                        target.clone(),
                        cols,
                        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
                    )?;
                    let rows = filter_record_batch(&projected, &keep)?;
                    if rows.num_rows() == 0 {
                        continue;
                    }
                    held += rows.get_array_memory_size() as u64;
                    if held > self.max_read_bytes {
                        return Err(HistoryError::ReadLimit {
                            table: table.to_string(),
                            limit_bytes: self.max_read_bytes,
                        });
                    }
                    stats.rows += rows.num_rows() as u64;
                    out.push(rows);
                }
            }
        }
        Ok((out, stats))
    }
}

/// A segment read through the object store: byte ranges on demand, the footer from the listed size.
pub(crate) struct SegmentReader {
    store: std::sync::Arc<dyn ObjectStore>,
    path: object_store::path::Path,
    size: u64,
}

impl SegmentReader {
    pub(crate) fn new(store: std::sync::Arc<dyn ObjectStore>, path: object_store::path::Path, size: u64) -> Self {
        SegmentReader { store, path, size }
    }
}

fn parquet_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move { self.store.get_range(&self.path, range).await.map_err(parquet_error) }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move { self.store.get_ranges(&self.path, &ranges).await.map_err(parquet_error) }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<std::sync::Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(64 << 10))
                .load_and_finish(self, size)
                .await?;
            Ok(std::sync::Arc::new(metadata))
        }
        .boxed()
    }
}
