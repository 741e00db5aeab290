//! One bounded table: batches in arrival order, a min/max time per batch, a byte budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arrow::array::{Array, TimestampNanosecondArray};
use arrow::compute::kernels::aggregate::{max, min};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use parking_lot::Mutex;

use crate::{Result, StoreError};

/// An inclusive time range in wall-clock nanoseconds; `None` ends are open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Earliest time wanted.
    pub start_ns: Option<i64>,
    /// Latest time wanted.
    pub end_ns: Option<i64>,
}

impl TimeRange {
    /// Everything.
    pub const ALL: TimeRange = TimeRange { start_ns: None, end_ns: None };

    fn overlaps(&self, min_t: i64, max_t: i64) -> bool {
        self.start_ns.is_none_or(|s| max_t >= s) && self.end_ns.is_none_or(|e| min_t <= e)
    }
}

/// Counters and sizes of a table, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Rows held now.
    pub rows: u64,
    /// Bytes held now (Arrow buffer memory).
    pub bytes: u64,
    /// Batches held now.
    pub batches: u64,
    /// Rows appended since start.
    pub rows_appended: u64,
    /// Rows evicted to stay within budget.
    pub rows_evicted: u64,
    /// Rows refused (schema mismatch) or cut because one batch alone exceeded the budget.
    pub rows_dropped: u64,
    /// Budget in bytes.
    pub budget_bytes: u64,
    /// Oldest `time_` held.
    pub min_time_ns: Option<i64>,
    /// Newest `time_` held.
    pub max_time_ns: Option<i64>,
}

struct Entry {
    /// The batch's number in append order (0 for the first batch ever appended): a reader's cursor.
    seq: u64,
    batch: RecordBatch,
    min_t: i64,
    max_t: i64,
    bytes: usize,
}

#[derive(Default)]
struct Inner {
    /// Oldest first. A `Vec` with a moving head would save the shift on eviction, but eviction
    /// removes whole batches at the front, and `drain(..n)` on a few thousand handles is cheap.
    entries: Vec<Entry>,
    bytes: usize,
    rows: usize,
    /// The sequence number the next appended batch gets.
    next_seq: u64,
}

/// What [`Table::batches_after`] returns: the batches appended since a cursor, and the cursor to pass next.
#[derive(Debug, Clone, Default)]
pub struct BatchesAfter {
    /// The batches held whose sequence number is at least the cursor, oldest first.
    pub batches: Vec<RecordBatch>,
    /// The cursor to pass next time (one past the newest batch returned).
    pub next: u64,
    /// Batches appended after the cursor but evicted before this call: rows the reader never saw.
    pub missed_batches: u64,
}

/// A bounded, append-only, time-indexed table.
pub struct Table {
    name: String,
    schema: SchemaRef,
    time_index: usize,
    /// Changed live by [`Table::set_budget`]; read on every append.
    budget: AtomicUsize,
    inner: Mutex<Inner>,
    rows_appended: AtomicU64,
    rows_evicted: AtomicU64,
    rows_dropped: AtomicU64,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("name", &self.name).field("budget", &self.budget()).finish()
    }
}

impl Table {
    /// A table with this schema, which must have a `time_` Timestamp(ns) column.
    pub fn new(name: &str, schema: SchemaRef, budget_bytes: usize) -> Result<Self> {
        let time_index = schema
            .index_of(loupe_schema::TIME_COLUMN)
            .ok()
            .filter(|&i| matches!(schema.field(i).data_type(), DataType::Timestamp(TimeUnit::Nanosecond, _)))
            .ok_or_else(|| StoreError::NoTimeColumn { table: name.to_string() })?;
        Ok(Table {
            name: name.to_string(),
            schema,
            time_index,
            budget: AtomicUsize::new(budget_bytes),
            inner: Mutex::new(Inner::default()),
            rows_appended: AtomicU64::new(0),
            rows_evicted: AtomicU64::new(0),
            rows_dropped: AtomicU64::new(0),
        })
    }

    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The table's schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The byte budget now.
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// Changes the byte budget now, without a restart: a smaller one evicts the oldest batches at once
    /// (counted in `rows_evicted`), keeping the newest batch even when it alone is over (the next append
    /// fits batches to the new budget). Returns the rows evicted.
    pub fn set_budget(&self, budget_bytes: usize) -> usize {
        self.budget.store(budget_bytes, Ordering::Relaxed);
        let mut inner = self.inner.lock();
        let evicted = evict_over(&mut inner, budget_bytes);
        drop(inner);
        let rows: usize = evicted.iter().map(|e| e.batch.num_rows()).sum();
        self.rows_evicted.fetch_add(rows as u64, Ordering::Relaxed);
        rows
    }

    /// Appends a batch, then evicts the oldest batches until the table fits its budget.
    ///
    /// A batch whose schema differs is refused and counted in `rows_dropped`. A single batch
    /// larger than the whole budget keeps only its newest rows that fit.
    pub fn append(&self, batch: RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.schema.fields() {
            self.rows_dropped.fetch_add(rows as u64, Ordering::Relaxed);
            return Err(StoreError::SchemaMismatch {
                table: self.name.clone(),
                detail: format!("got {:?}", batch.schema().fields().iter().map(|f| f.name()).collect::<Vec<_>>()),
            });
        }
        let batch = self.fit_to_budget(batch);
        let entry = self.entry_for(batch)?;
        self.rows_appended.fetch_add(rows as u64, Ordering::Relaxed);

        let mut inner = self.inner.lock();
        let mut entry = entry;
        entry.seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += entry.bytes;
        inner.rows += entry.batch.num_rows();
        inner.entries.push(entry);
        let gone = evict_over(&mut inner, self.budget());
        // Dropping the evicted batches happens outside the lock to keep it short.
        drop(inner);
        if !gone.is_empty() {
            let rows: usize = gone.iter().map(|e| e.batch.num_rows()).sum();
            drop(gone);
            self.rows_evicted.fetch_add(rows as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    fn fit_to_budget(&self, batch: RecordBatch) -> RecordBatch {
        let bytes = batch.get_array_memory_size();
        let budget = self.budget();
        if bytes <= budget {
            return batch;
        }
        let rows = batch.num_rows();
        let mut keep = (rows as u128 * budget as u128 / bytes as u128) as usize;
        // Slicing shares buffers, so the memory estimate of a slice would still count the whole
        // batch: compact it into fresh buffers, and shrink again if allocation rounding left it
        // over budget (the estimate is not linear in rows).
        let mut kept = compact(&batch.slice(rows - keep, keep));
        while keep > 0 && kept.get_array_memory_size() > budget {
            keep = keep * 9 / 10;
            kept = compact(&batch.slice(rows - keep, keep));
        }
        self.rows_dropped.fetch_add((rows - keep) as u64, Ordering::Relaxed);
        kept
    }

    fn entry_for(&self, batch: RecordBatch) -> Result<Entry> {
        let times = batch
            .column(self.time_index)
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| StoreError::NoTimeColumn { table: self.name.clone() })?;
        let (min_t, max_t) = (min(times).unwrap_or(i64::MIN), max(times).unwrap_or(i64::MAX));
        let bytes = batch.get_array_memory_size();
        Ok(Entry { seq: 0, batch, min_t, max_t, bytes })
    }

    /// The batches that may hold rows in `range`, oldest first.
    ///
    /// Pruning is per batch: a returned batch can still hold rows outside the range, so the
    /// caller filters rows exactly.
    pub fn scan(&self, range: TimeRange) -> Vec<RecordBatch> {
        let inner = self.inner.lock();
        inner.entries.iter().filter(|e| range.overlaps(e.min_t, e.max_t)).map(|e| e.batch.clone()).collect()
    }

    /// The batches that may hold rows in `range` (as [`Table::scan`]), with the oldest `time_` of every batch
    /// held, taken under the same lock: rows older than it are no longer in memory, which lets a reader
    /// of history take from there exactly the rows memory lacks.
    pub fn scan_with_floor(&self, range: TimeRange) -> (Vec<RecordBatch>, Option<i64>) {
        let inner = self.inner.lock();
        let floor = inner.entries.iter().map(|e| e.min_t).min();
        (inner.entries.iter().filter(|e| range.overlaps(e.min_t, e.max_t)).map(|e| e.batch.clone()).collect(), floor)
    }

    /// The batches appended at or after cursor `seq` (0: from the first batch ever) that are still held, for a
    /// reader that must see each batch once (the history writer).
    pub fn batches_after(&self, seq: u64) -> BatchesAfter {
        let inner = self.inner.lock();
        let oldest = inner.entries.first().map_or(inner.next_seq, |e| e.seq);
        let batches: Vec<RecordBatch> =
            inner.entries.iter().filter(|e| e.seq >= seq).map(|e| e.batch.clone()).collect();
        BatchesAfter { batches, next: inner.next_seq, missed_batches: oldest.saturating_sub(seq) }
    }

    /// Counters and sizes now.
    pub fn stats(&self) -> TableStats {
        let inner = self.inner.lock();
        TableStats {
            rows: inner.rows as u64,
            bytes: inner.bytes as u64,
            batches: inner.entries.len() as u64,
            rows_appended: self.rows_appended.load(Ordering::Relaxed),
            rows_evicted: self.rows_evicted.load(Ordering::Relaxed),
            rows_dropped: self.rows_dropped.load(Ordering::Relaxed),
            budget_bytes: self.budget() as u64,
            min_time_ns: inner.entries.iter().map(|e| e.min_t).min(),
            max_time_ns: inner.entries.iter().map(|e| e.max_t).max(),
        }
    }
}

/// Takes the oldest entries out until `inner` fits `budget`; the newest one always stays (an appended
/// batch fits the budget by construction). The caller drops what is returned outside the lock.
fn evict_over(inner: &mut Inner, budget: usize) -> Vec<Entry> {
    let mut evict = 0;
    let (mut bytes, mut rows) = (0, 0);
    while inner.bytes - bytes > budget && evict + 1 < inner.entries.len() {
        bytes += inner.entries[evict].bytes;
        rows += inner.entries[evict].batch.num_rows();
        evict += 1;
    }
    inner.bytes -= bytes;
    inner.rows -= rows;
    inner.entries.drain(..evict).collect()
}

/// Copies a (sliced) batch into buffers of its own size.
fn compact(batch: &RecordBatch) -> RecordBatch {
    let copied: Option<Vec<Arc<dyn Array>>> = batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            let mut m = arrow::array::MutableArrayData::new(vec![&data], false, c.len());
            m.try_extend(0, 0, c.len()).ok()?;
            Some(arrow::array::make_array(m.freeze()))
        })
        .collect();
    copied.and_then(|c| RecordBatch::try_new(batch.schema(), c).ok()).unwrap_or_else(|| batch.clone())
}

#[cfg(test)]
mod tests {
    use loupe_schema::http::{HttpEventRow, HttpEventsBuilder, http_events};
    use proptest::prelude::*;

    use super::*;

    fn batch(times: &[i64]) -> RecordBatch {
        let mut b = HttpEventsBuilder::new();
        for &t in times {
            b.append(&HttpEventRow { time_ns: t, req_path: "/x".into(), ..Default::default() });
        }
        b.finish().expect("batch")
    }

    fn table(budget: usize) -> Table {
        Table::new("http_events", http_events().arrow_schema(), budget).expect("table")
    }

    #[test]
    fn batches_after_sees_each_batch_once_and_counts_evicted_ones() {
        let one = batch(&[10, 20]).get_array_memory_size();
        let t = table(one * 2 + one / 2);
        t.append(batch(&[10, 20])).expect("append");
        let first = t.batches_after(0);
        assert_eq!((first.batches.len(), first.next, first.missed_batches), (1, 1, 0));
        assert!(t.batches_after(first.next).batches.is_empty());
        for _ in 0..3 {
            t.append(batch(&[30, 40])).expect("append");
        }
        // Budget for two: batches 0 and 1 were evicted, the cursor at 1 missed batch 1.
        let next = t.batches_after(first.next);
        assert_eq!((next.batches.len(), next.next, next.missed_batches), (2, 4, 1));
        let (_, floor) = t.scan_with_floor(TimeRange::ALL);
        assert_eq!(floor, Some(30));
    }

    #[test]
    fn scan_prunes_by_time() {
        let t = table(usize::MAX);
        t.append(batch(&[10, 20])).expect("append");
        t.append(batch(&[30, 40])).expect("append");
        t.append(batch(&[50, 60])).expect("append");
        let got = |s, e| t.scan(TimeRange { start_ns: s, end_ns: e }).len();
        assert_eq!(got(None, None), 3);
        assert_eq!(got(Some(35), None), 2);
        assert_eq!(got(Some(41), Some(49)), 0);
        assert_eq!(got(None, Some(10)), 1);
    }

    #[test]
    fn evicts_oldest_first_and_counts() {
        let one = batch(&[1; 100]).get_array_memory_size();
        let t = table(one * 3 + one / 2);
        for i in 0..10 {
            t.append(batch(&[i; 100])).expect("append");
        }
        let s = t.stats();
        assert_eq!(s.batches, 3);
        assert_eq!(s.rows, 300);
        assert_eq!(s.rows_appended, 1000);
        assert_eq!(s.rows_evicted, 700);
        assert_eq!(s.min_time_ns, Some(7));
        assert!(s.bytes <= s.budget_bytes);
    }

    #[test]
    fn oversized_batch_keeps_newest_rows_within_budget() {
        let times: Vec<i64> = (0..1000).collect();
        let full = batch(&times).get_array_memory_size();
        let t = table(full / 4);
        t.append(batch(&times)).expect("append");
        let s = t.stats();
        assert!(s.bytes <= s.budget_bytes, "{s:?}");
        assert!(s.rows > 0 && s.rows < 1000);
        assert_eq!(s.max_time_ns, Some(999));
        assert_eq!(s.rows + s.rows_dropped, 1000);
    }

    #[test]
    fn a_smaller_budget_evicts_the_oldest_at_once_and_a_larger_one_keeps_more() {
        let one = batch(&[1; 100]).get_array_memory_size();
        let t = table(one * 10);
        for i in 0..8 {
            t.append(batch(&[i; 100])).expect("append");
        }
        assert_eq!(t.stats().rows, 800);
        assert_eq!(t.set_budget(one * 2), 600);
        let s = t.stats();
        assert_eq!((s.rows, s.rows_evicted, s.min_time_ns, s.budget_bytes), (200, 600, Some(6), (one * 2) as u64));
        t.set_budget(one * 4);
        for i in 8..12 {
            t.append(batch(&[i; 100])).expect("append");
        }
        assert_eq!((t.stats().rows, t.stats().min_time_ns), (400, Some(8)));
        // Even a budget of nothing keeps the newest batch for queries.
        t.set_budget(0);
        assert_eq!(t.stats().rows, 100);
    }

    #[test]
    fn refuses_foreign_schema() {
        let t = table(usize::MAX);
        let other = RecordBatch::try_from_iter(vec![(
            "time_",
            Arc::new(TimestampNanosecondArray::from(vec![1])) as Arc<dyn Array>,
        )])
        .expect("batch");
        assert!(matches!(t.append(other), Err(StoreError::SchemaMismatch { .. })));
        assert_eq!(t.stats().rows_dropped, 1);
    }

    proptest! {
        #[test]
        fn budget_always_holds_and_rows_are_accounted(sizes in proptest::collection::vec(1usize..200, 1..40), budget_batches in 1usize..6) {
            let unit = batch(&[0; 100]).get_array_memory_size();
            let t = table(unit * budget_batches);
            let mut total = 0u64;
            for (i, n) in sizes.iter().enumerate() {
                t.append(batch(&vec![i as i64; *n])).expect("append");
                total += *n as u64;
                let s = t.stats();
                prop_assert!(s.bytes <= s.budget_bytes);
                prop_assert_eq!(s.rows + s.rows_evicted + s.rows_dropped, total);
            }
            // The newest batch always survives.
            prop_assert_eq!(t.stats().max_time_ns, Some(sizes.len() as i64 - 1));
        }
    }
}
