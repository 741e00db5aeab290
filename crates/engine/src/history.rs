//! A table read from memory and history together: `HistoryTable` is the DataFusion table over one table's
//! memory batches (taken at planning) and the rows history holds that are older than memory's oldest
//! (`TimeBounds::before_ns`, taken under the same lock as the batches), read when DataFusion plans the scan.
//! Time filters pushed down by DataFusion (`px sql`'s `WHERE time_ >= …`) narrow the history read too;
//! they stay inexact, so rows are still filtered above the scan. Owns no storage: `loupe-history` does.

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
        let (rows, _stats) = self
            .history
            .read(&self.table, &self.schema, None, bounds)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut partitions = self.memory.clone();
        if !rows.is_empty() {
            partitions.push(rows);
        }
        Ok(MemorySourceConfig::try_new_exec(&partitions, self.schema.clone(), projection.cloned())?)
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
}
