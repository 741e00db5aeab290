//! A table read from memory and history together: `HistoryTable` is the DataFusion table over one table's
//! memory batches (taken at planning) and the rows history holds that are older than memory's oldest
//! (`TimeBounds::before_ns`, taken under the same lock as the batches), read when DataFusion plans the scan.
//! Time filters pushed down by DataFusion (`px sql`'s `WHERE time_ >= …`) narrow the history read too;
//! they stay inexact, so rows are still filtered above the scan; only the columns the plan reads are read.
//! Owns no storage: `loupe-history` does.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use loupe_history::History;
use loupe_history::reader::TimeBounds;

/// One table's memory batches plus its history.
#[derive(Debug)]
pub(crate) struct HistoryTable {
    table: String,
    schema: SchemaRef,
    memory: Vec<Vec<RecordBatch>>,
    history: Arc<History>,
    bounds: TimeBounds,
}

impl HistoryTable {
    pub(crate) fn new(
        table: &str,
        schema: SchemaRef,
        memory: Vec<Vec<RecordBatch>>,
        history: Arc<History>,
        bounds: TimeBounds,
    ) -> Self {
        HistoryTable { table: table.to_string(), schema, memory, history, bounds }
    }
}

#[async_trait::async_trait]
impl TableProvider for HistoryTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if time_bound(f).is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut bounds = self.bounds;
        for f in filters {
            match time_bound(f) {
                Some(Bound::AtLeast(t)) => bounds.start_ns = Some(bounds.start_ns.map_or(t, |s| s.max(t))),
                Some(Bound::AtMost(t)) => bounds.end_ns = Some(bounds.end_ns.map_or(t, |e| e.min(t))),
                None => {}
            }
        }
        // Only the columns the plan reads come off disk (and count against the history read limit); memory's
        // batches are narrowed the same way (zero-copy) so that both partitions share one schema.
        let (rows, _stats) = self
            .history
            .read(&self.table, &self.schema, projection.map(Vec::as_slice), bounds)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let (schema, mut partitions) = match projection {
            Some(columns) => (
                Arc::new(self.schema.project(columns)?),
                self.memory
                    .iter()
                    .map(|p| p.iter().map(|b| b.project(columns)).collect::<Result<Vec<_>, _>>())
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => (self.schema.clone(), self.memory.clone()),
        };
        if !rows.is_empty() {
            partitions.push(rows);
        }
        Ok(MemorySourceConfig::try_new_exec(&partitions, schema, None)?)
    }
}

/// A bound on `time_` a filter states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    AtLeast(i64),
    AtMost(i64),
}

/// `time_ >= t`, `time_ > t`, `time_ <= t`, `time_ < t` (either side), with `t` a timestamp or integer literal.
fn time_bound(e: &Expr) -> Option<Bound> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else { return None };
    let (op, lit) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) if c.name == loupe_schema::TIME_COLUMN => (*op, v),
        (Expr::Literal(v, _), Expr::Column(c)) if c.name == loupe_schema::TIME_COLUMN => (op.swap()?, v),
        _ => return None,
    };
    let t = match lit {
        ScalarValue::TimestampNanosecond(Some(t), _) | ScalarValue::Int64(Some(t)) => *t,
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000)?,
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000)?,
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000)?,
        _ => return None,
    };
    match op {
        Operator::GtEq | Operator::Gt => Some(Bound::AtLeast(t)),
        Operator::LtEq | Operator::Lt => Some(Bound::AtMost(t)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col, lit};

    use super::*;

    #[test]
    fn time_filters_become_bounds_and_others_do_not() {
        let t = |v: i64| lit(ScalarValue::TimestampNanosecond(Some(v), None));
        assert_eq!(time_bound(&col("time_").gt_eq(t(5))), Some(Bound::AtLeast(5)));
        assert_eq!(time_bound(&col("time_").lt(t(9))), Some(Bound::AtMost(9)));
        // Literal first: the operator is mirrored.
        assert_eq!(time_bound(&t(7).gt(col("time_"))), Some(Bound::AtMost(7)));
        assert_eq!(time_bound(&col("time_").eq(t(7))), None);
        assert_eq!(time_bound(&col("latency").gt_eq(t(5))), None);
        assert_eq!(
            time_bound(&lit(ScalarValue::TimestampSecond(Some(2), None)).lt_eq(col("time_"))),
            Some(Bound::AtLeast(2_000_000_000))
        );
    }

    /// `n` rows from `from`, 1 µs apart, each with a 1 KiB request body.
    fn rows(n: usize, from: i64) -> RecordBatch {
        use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
        let mut b = HttpEventsBuilder::new();
        for i in 0..n {
            b.append(&HttpEventRow {
                time_ns: from + 1_000 * i as i64,
                req_path: "/p".into(),
                req_body: "x".repeat(1024),
                latency_ns: 1 + i as i64,
                ..HttpEventRow::default()
            });
        }
        b.finish().expect("batch")
    }

    /// Only the columns a plan reads come off disk: a count and a sum over 2,000 rows whose bodies alone are
    /// 2 MiB run under a 256 KiB read limit, and give memory's rows plus history's; reading the bodies too is
    /// refused by the same limit.
    #[test]
    fn history_reads_only_the_columns_the_plan_reads() {
        let dir = std::env::temp_dir().join(format!("loupe-engine-history-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = loupe_history::HistoryConfig {
            location: dir.display().to_string(),
            org: "o".into(),
            vizier: "v".into(),
            writer: "w".into(),
            max_read_bytes: 256 << 10,
            s3_options: Vec::new(),
        };
        let history = Arc::new(History::open(&config).expect("history"));
        let day = 1_796_256_000_000_000_000_i64;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            history.write_batches("http_events", &[rows(2_000, day)], day).await.expect("write");
            let memory = rows(10, day + 3_600_000_000_000);
            let schema = memory.schema();
            let bounds = TimeBounds { before_ns: Some(day + 3_600_000_000_000), ..TimeBounds::default() };
            let table = HistoryTable::new("http_events", schema, vec![vec![memory]], Arc::clone(&history), bounds);
            let ctx = datafusion::prelude::SessionContext::new();
            ctx.register_table("t", Arc::new(table)).expect("register");
            let out = ctx
                .sql("SELECT count(*) AS n, sum(latency) AS s FROM t")
                .await
                .expect("plan")
                .collect()
                .await
                .expect("projected read within the limit");
            let n = out[0].column(0).as_any().downcast_ref::<arrow::array::Int64Array>().expect("n").value(0);
            let sum = out[0].column(1).as_any().downcast_ref::<arrow::array::Int64Array>().expect("s").value(0);
            assert_eq!(n, 2_010);
            assert_eq!(sum, (1..=2_000).sum::<i64>() + (1..=10).sum::<i64>());
            let full = ctx.sql("SELECT count(req_body) FROM t").await.expect("plan").collect().await;
            let err = full.expect_err("2 MiB of bodies is over the 256 KiB read limit").to_string();
            assert!(err.contains("exceeds"), "{err}");
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
}
