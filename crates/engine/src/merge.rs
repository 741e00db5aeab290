//! The two halves of a cluster query ([`loupe_planner::ClusterPlan`]): the streams a data node (or the
//! broker) produces over its own store, and the merge a Kelvin runs over every producer's batches.
//!
//! Owns the partial/final decomposition of each PxL aggregate (`partial_aggregate`, `final_aggregate`:
//! counts and sums add, min/max/any take min/max, a mean is a sum and a count, percentiles and
//! `px.quantiles` merge the quantile sketches of `sketch`, whose bucket counts add, so the merged
//! answer is the one a single store holding every row gives), and how received batches become the
//! merge program's placeholder tables (in-memory tables; a partial-aggregate stream is read through its
//! finalization). Must not know where batches come from (the vizier services move them) nor decide the
//! split (`loupe-planner` does).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::{MemTable, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{Expr as DfExpr, cast, ident, lit, when};
use datafusion::prelude::SessionContext;
use loupe_planner::{ClusterPlan, Stream, StreamSends, stream_table};
use loupe_pxl::{AggFunc, Aggregation, PercentileKey, Program};

use crate::request_path::{self, ClusterInput};
use crate::sketch::{self, SketchInput, SketchOutput};
use crate::{Engine, ExecError, ExecOptions, QuerySink, Result, lower};

/// The batches each producer sent, by stream index, concatenated over producers.
pub type StreamInputs = HashMap<usize, Vec<RecordBatch>>;

impl Engine {
    /// [`Engine::execute_streams_to`], collecting each stream whole.
    pub async fn execute_streams(
        &self,
        plan: &ClusterPlan,
        ids: &[usize],
        opts: &ExecOptions,
    ) -> Result<Vec<crate::QueryOutput>> {
        let mut sink = crate::CollectSink::default();
        self.execute_streams_to(plan, ids, opts, &mut sink).await?;
        Ok(sink.outputs)
    }

    /// [`Engine::execute_merge_to`], collecting each output whole.
    pub async fn execute_merge(
        &self,
        plan: &ClusterPlan,
        outputs: &[usize],
        inputs: StreamInputs,
        opts: &ExecOptions,
    ) -> Result<Vec<crate::QueryOutput>> {
        let mut sink = crate::CollectSink::default();
        self.execute_merge_to(plan, outputs, inputs, opts, &mut sink).await?;
        Ok(sink.outputs)
    }

    /// Runs streams `ids` of `plan` over this engine's store, each output `i` of the sink being stream
    /// `ids[i]`: its rows (at most its limit), or one partial-state row per group.
    pub async fn execute_streams_to(
        &self,
        plan: &ClusterPlan,
        ids: &[usize],
        opts: &ExecOptions,
        sink: &mut impl QuerySink,
    ) -> Result<u64> {
        let streams = ids
            .iter()
            .map(|&i| plan.streams.get(i).cloned().ok_or_else(|| internal(format!("no stream {i} in the plan"))))
            .collect::<Result<Vec<Stream>>>()?;
        let (engine, limits) = (self.clone(), *opts);
        let plan_frames = move || -> Result<Vec<(String, DataFrame)>> {
            let ctx = engine.session(&limits)?;
            streams
                .iter()
                .zip(ids_names(streams.len()))
                .map(|(s, name)| Ok((name, stream_frame(&ctx, &engine, s)?)))
                .collect()
        };
        self.run_planned(plan_frames, opts, sink).await
    }

    /// Runs merge outputs `outputs` of `plan` (sink output `i` is `plan.merge.outputs[outputs[i]]`) over
    /// `inputs`, every producer's batches of each stream those outputs read. A stream nobody sent reads
    /// as empty.
    pub async fn execute_merge_to(
        &self,
        plan: &ClusterPlan,
        outputs: &[usize],
        inputs: StreamInputs,
        opts: &ExecOptions,
        sink: &mut impl QuerySink,
    ) -> Result<u64> {
        let program = Program {
            outputs: outputs.iter().filter_map(|&o| plan.merge.outputs.get(o).cloned()).collect(),
            max_output_rows_per_table: plan.merge.max_output_rows_per_table,
        };
        let ids = plan.streams_of(outputs);
        let (engine, limits, plan) = (self.clone(), *opts, plan.clone());
        let plan_frames = move || -> Result<Vec<(String, DataFrame)>> {
            let ctx = engine.session(&limits)?;
            let mut inputs = inputs;
            let mut tables: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
            for id in ids {
                let stream = plan.streams.get(id).ok_or_else(|| internal(format!("no stream {id} in the plan")))?;
                let batches = inputs.remove(&id).unwrap_or_default();
                tables.insert(stream_table(id), stream_table_provider(&ctx, &engine, stream, batches)?);
            }
            let merger = Engine { streams: Arc::new(tables), ..engine.clone() };
            let max_rows = limits.row_cap(&program);
            program
                .outputs
                .iter()
                .map(|out| Ok((out.name.clone(), lower::output_frame(&ctx, &merger, out, max_rows)?)))
                .collect()
        };
        self.run_planned(plan_frames, opts, sink).await
    }
}

fn ids_names(n: usize) -> impl Iterator<Item = String> {
    (0..n).map(|i| format!("stream_{i}"))
}

fn internal(message: String) -> ExecError {
    ExecError::Execution(DataFusionError::Internal(message))
}

/// What a producer computes for `stream`.
pub(crate) fn stream_frame(ctx: &SessionContext, eng: &Engine, stream: &Stream) -> Result<DataFrame> {
    let df = lower::lower_plan(ctx, eng, &stream.plan)?;
    Ok(match &stream.sends {
        StreamSends::Rows { limit: Some(n) } => df.limit(0, Some(*n))?,
        StreamSends::Rows { limit: None } => df,
        StreamSends::PartialAggregates { group_by, aggs } => partial_aggregate(df, group_by, aggs)?,
    })
}

/// The table the merge reads stream `stream` from: the producers' batches (their union), finalized when
/// they are partial aggregates.
fn stream_table_provider(
    ctx: &SessionContext,
    eng: &Engine,
    stream: &Stream,
    batches: Vec<RecordBatch>,
) -> Result<Arc<dyn TableProvider>> {
    // Producers run the same plan with the same engine, so their schemas agree; with no batch at all the
    // schema comes from planning the stream here (over no rows).
    let schema: SchemaRef = match batches.first() {
        Some(b) => b.schema(),
        None => Arc::new(stream_frame(ctx, eng, stream)?.schema().as_arrow().clone()),
    };
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExecError::Execution(DataFusionError::ArrowError(Box::new(e), None)))?;
    let table =
        Arc::new(MemTable::try_new(schema, lower::partition(batches, ctx.copied_config().target_partitions()))?);
    Ok(match &stream.sends {
        StreamSends::Rows { .. } => table,
        StreamSends::PartialAggregates { group_by, aggs } => {
            final_aggregate(ctx.read_table(table)?, group_by, aggs)?.into_view()
        }
    })
}

fn part(k: usize, j: usize) -> String {
    format!("__p{k}_{j}")
}

fn fin(k: usize, j: usize) -> String {
    format!("__f{k}_{j}")
}

fn per_ten_thousand(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * 10_000.0).round() as u32
}

fn quantile_keys() -> Vec<(&'static str, u32)> {
    PercentileKey::ALL.iter().map(|k| (k.name(), per_ten_thousand(k.fraction()))).collect()
}

/// The producer half of `aggs` by `group_by`: group columns, then each aggregate's state columns
/// (`__p<k>_<j>`).
pub(crate) fn partial_aggregate(df: DataFrame, group_by: &[String], aggs: &[Aggregation]) -> Result<DataFrame> {
    let is_bool =
        |c: &str| df.schema().field_with_unqualified_name(c).is_ok_and(|f| f.data_type() == &DataType::Boolean);
    let mut exprs: Vec<DfExpr> = Vec::new();
    for (k, a) in aggs.iter().enumerate() {
        let col = ident(&a.column);
        match a.func {
            AggFunc::Count => exprs.push(agg::count(col).alias(part(k, 0))),
            AggFunc::Sum if is_bool(&a.column) => exprs.push(agg::sum(cast(col, DataType::Int64)).alias(part(k, 0))),
            AggFunc::Sum => exprs.push(agg::sum(col).alias(part(k, 0))),
            AggFunc::Mean => {
                exprs.push(agg::sum(cast(col.clone(), DataType::Float64)).alias(part(k, 0)));
                exprs.push(agg::count(col).alias(part(k, 1)));
            }
            // `px.any` is lowered as min everywhere, so the merged value is the one a single store picks.
            AggFunc::Min | AggFunc::Any => exprs.push(agg::min(col).alias(part(k, 0))),
            AggFunc::Max => exprs.push(agg::max(col).alias(part(k, 0))),
            // A clustering's partial state is its JSON, as Pixie's.
            AggFunc::RequestPathClusters => {
                exprs.push(request_path::build_clusters(ClusterInput::Paths).call(vec![col]).alias(part(k, 0)))
            }
            AggFunc::Percentile(_) | AggFunc::Quantiles => exprs.push(
                sketch::udaf_over(SketchInput::Values, SketchOutput::State)
                    .call(vec![cast(col, DataType::Float64)])
                    .alias(part(k, 0)),
            ),
        }
    }
    Ok(df.aggregate(group_by.iter().map(ident).collect(), exprs)?)
}

/// The merge half: every producer's partial states (the union of their [`partial_aggregate`] rows)
/// combined per group and finalized into the columns the single-store aggregate has.
pub(crate) fn final_aggregate(df: DataFrame, group_by: &[String], aggs: &[Aggregation]) -> Result<DataFrame> {
    let mut exprs: Vec<DfExpr> = Vec::new();
    let mut finals: Vec<DfExpr> = group_by.iter().map(ident).collect();
    for (k, a) in aggs.iter().enumerate() {
        let p = |j| ident(part(k, j));
        let f = |j| ident(fin(k, j));
        let value = match a.func {
            AggFunc::Count => {
                exprs.push(agg::sum(p(0)).alias(fin(k, 0)));
                // No producer at all leaves a global count's sum null; a count of nothing is 0.
                datafusion::functions::core::expr_fn::coalesce(vec![f(0), lit(0i64)])
            }
            AggFunc::Sum => {
                exprs.push(agg::sum(p(0)).alias(fin(k, 0)));
                f(0)
            }
            AggFunc::Mean => {
                exprs.push(agg::sum(p(0)).alias(fin(k, 0)));
                exprs.push(agg::sum(p(1)).alias(fin(k, 1)));
                // The mean of no values is null, as `avg` says.
                when(f(1).gt(lit(0i64)), f(0) / cast(f(1), DataType::Float64))
                    .otherwise(lit(ScalarValue::Float64(None)))?
            }
            AggFunc::Min | AggFunc::Any => {
                exprs.push(agg::min(p(0)).alias(fin(k, 0)));
                f(0)
            }
            AggFunc::Max => {
                exprs.push(agg::max(p(0)).alias(fin(k, 0)));
                f(0)
            }
            AggFunc::Percentile(key) => {
                let out = SketchOutput::Percentile(per_ten_thousand(key.fraction()));
                exprs.push(sketch::udaf_over(SketchInput::States, out).call(vec![p(0)]).alias(fin(k, 0)));
                f(0)
            }
            AggFunc::RequestPathClusters => {
                exprs.push(request_path::build_clusters(ClusterInput::Clusterings).call(vec![p(0)]).alias(fin(k, 0)));
                f(0)
            }
            AggFunc::Quantiles => {
                let out = SketchOutput::Json(quantile_keys());
                exprs.push(sketch::udaf_over(SketchInput::States, out).call(vec![p(0)]).alias(fin(k, 0)));
                f(0)
            }
        };
        finals.push(value.alias(&a.output));
    }
    Ok(df.aggregate(group_by.iter().map(ident).collect(), exprs)?.select(finals)?)
}
