//! Lowering of `loupe_pxl` plans and expressions to DataFusion `DataFrame`s.
//!
//! Owns the store scan (time-pruned batches into a partitioned `MemTable`, then an exact
//! `time_` filter), one DataFusion operator per PxL operator, aggregate mapping (percentiles
//! and `px.quantiles`' JSON from the quantile sketch of `sketch`)
//! and the final per-output projection and row cap, and the lowering of every scalar function of
//! the PxL registry (`lower_call`: one exhaustive `match` over `ScalarFunc`, so a function added to
//! the registry does not build until it is lowered here; `tests/functions.rs` runs each one). Must
//! not type-check: the compiler already normalized every expression, so this maps node to node.

use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::functions_aggregate::expr_fn as agg;
use datafusion::logical_expr::{
    Expr as DfExpr, JoinType, Operator, binary_expr, cast, ident, lit, not, try_cast, when,
};
use datafusion::prelude::SessionContext;
use loupe_pxl::{AggFunc, BinaryOp, Expr, JoinHow, Literal, Output, PercentileKey, Plan, PxType, ScalarFunc};
use loupe_store::{Store, TimeRange};

use crate::{Engine, ExecError, Result, sketch, udf, udtf};

/// The schema of `name`: the store's table, else the `loupe_schema` definition, else a cron script's result
/// table in history (which only history holds).
pub(crate) fn table_schema(store: &Store, history: Option<&loupe_history::History>, name: &str) -> Option<SchemaRef> {
    store
        .table(name)
        .map(|t| t.schema())
        .or_else(|| loupe_schema::table(name).map(|t| t.arrow_schema()))
        .or_else(|| history.and_then(|h| h.result_schema(name)))
}

/// The DataFrame computing one output: its plan, the script's column order, the row cap.
pub(crate) fn output_frame(ctx: &SessionContext, eng: &Engine, out: &Output, max_rows: usize) -> Result<DataFrame> {
    let df = lower_plan(ctx, eng, &out.plan)?;
    let cols: Vec<DfExpr> = out
        .columns
        .iter()
        .map(|c| {
            cast_if_needed(
                df.schema().field_with_unqualified_name(&c.name).ok().map(|f| f.data_type()),
                ident(&c.name),
                c.ty,
            )
            .alias_with_metadata(&c.name, Some(semantic_metadata(c.semantic.as_deref())))
        })
        .collect();
    Ok(df.select(cols)?.limit(0, Some(max_rows))?)
}

/// The field metadata naming a column's semantic type (what the compiler inferred, `ST_NONE` when none),
/// as `loupe_schema` tables carry it: responses hand it to clients, which show values by it.
fn semantic_metadata(semantic: Option<&str>) -> datafusion::common::metadata::FieldMetadata {
    let st = semantic.unwrap_or("ST_NONE").to_string();
    std::collections::BTreeMap::from([(loupe_schema::SEMANTIC_TYPE_KEY.to_string(), st)]).into()
}

fn cast_if_needed(current: Option<&DataType>, e: DfExpr, ty: PxType) -> DfExpr {
    let want = ty.arrow_type();
    match current {
        Some(dt) if *dt == want => e,
        _ => cast(e, want),
    }
}

fn time_lit(ns: i64) -> DfExpr {
    lit(ScalarValue::TimestampNanosecond(Some(ns), None))
}

/// A table's rows in `range` as DataFusion reads them: memory's batches (pruned by batch), plus history's rows
/// older than memory's oldest when the engine has history. Rows are filtered exactly by the caller.
pub(crate) fn scan_table(
    eng: &Engine,
    table: &str,
    schema: SchemaRef,
    range: TimeRange,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>> {
    let (batches, floor) = eng.store.table(table).map(|t| t.scan_with_floor(range)).unwrap_or_default();
    let parts = partition(batches, eng.target_partitions());
    Ok(match &eng.history {
        Some(history) => Arc::new(crate::history::HistoryTable::new(
            table,
            schema,
            parts,
            Arc::clone(history),
            loupe_history::reader::TimeBounds { start_ns: range.start_ns, end_ns: range.end_ns, before_ns: floor },
        )),
        None => Arc::new(MemTable::try_new(schema, parts)?),
    })
}

pub(crate) fn lower_plan(ctx: &SessionContext, eng: &Engine, plan: &Plan) -> Result<DataFrame> {
    // A repeated subtree computed once for this query (`shared`).
    if let Some(table) = eng.shared.get(plan) {
        return Ok(ctx.read_table(table)?);
    }
    Ok(match plan {
        Plan::Udtf { func, args } => {
            let batch = udtf::rows(eng, *func, args)?;
            ctx.read_table(Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]])?))?
        }
        // A merge's placeholder: the rows every producer sent (`merge`).
        Plan::Source { table, .. } if eng.streams.contains_key(table) => {
            ctx.read_table(eng.streams.get(table).cloned().ok_or_else(|| ExecError::UnknownTable(table.clone()))?)?
        }
        Plan::Source { table, columns, start_ns, end_ns } => {
            let store = &eng.store;
            let schema = table_schema(store, eng.history.as_deref(), table)
                .ok_or_else(|| ExecError::UnknownTable(table.clone()))?;
            let range = TimeRange { start_ns: *start_ns, end_ns: *end_ns };
            let mut df = ctx.read_table(scan_table(eng, table, schema, range)?)?;
            // The store prunes whole batches; rows are filtered exactly here.
            if let Some(s) = start_ns {
                df = df.filter(ident(loupe_schema::TIME_COLUMN).gt_eq(time_lit(*s)))?;
            }
            if let Some(e) = end_ns {
                df = df.filter(ident(loupe_schema::TIME_COLUMN).lt_eq(time_lit(*e)))?;
            }
            match columns {
                Some(cols) => df.select(cols.iter().map(ident).collect::<Vec<_>>())?,
                None => df,
            }
        }
        Plan::Filter { input, predicate } => lower_plan(ctx, eng, input)?.filter(lower_expr(predicate))?,
        Plan::Map { input, column, expr } => {
            let df = lower_plan(ctx, eng, input)?;
            let value = lower_expr(expr).alias(column);
            let mut replaced = false;
            let mut exprs: Vec<DfExpr> = Vec::new();
            for f in df.schema().fields() {
                if f.name() == column {
                    exprs.push(value.clone());
                    replaced = true;
                } else {
                    exprs.push(ident(f.name()));
                }
            }
            if !replaced {
                exprs.push(value);
            }
            df.select(exprs)?
        }
        Plan::Project { input, columns } => {
            lower_plan(ctx, eng, input)?.select(columns.iter().map(ident).collect::<Vec<_>>())?
        }
        Plan::Drop { input, columns } => {
            let df = lower_plan(ctx, eng, input)?;
            let keep: Vec<DfExpr> =
                df.schema().fields().iter().filter(|f| !columns.contains(f.name())).map(|f| ident(f.name())).collect();
            df.select(keep)?
        }
        Plan::Aggregate { input, group_by, aggs } => {
            let df = lower_plan(ctx, eng, input)?;
            let input_type = |c: &str| df.schema().field_with_unqualified_name(c).ok().map(|f| f.data_type().clone());
            let mut agg_exprs = Vec::new();
            // Final projection: keys, then each aggregate (quantiles rebuilt as JSON).
            let mut finals: Vec<DfExpr> = group_by.iter().map(ident).collect();
            for a in aggs {
                let is_bool = input_type(&a.column) == Some(DataType::Boolean);
                let col = ident(&a.column);
                match a.func {
                    AggFunc::Quantiles => {
                        // One sketch gives all seven: Pixie's JSON straight from the UDAF.
                        let keys =
                            PercentileKey::ALL.iter().map(|k| (k.name(), per_ten_thousand(k.fraction()))).collect();
                        let q = sketch::udaf(sketch::SketchOutput::Json(keys));
                        agg_exprs.push(q.call(vec![cast(col, DataType::Float64)]).alias(&a.output));
                        finals.push(ident(&a.output));
                        continue;
                    }
                    func => {
                        let e = match func {
                            AggFunc::Count => agg::count(col),
                            AggFunc::Sum if is_bool => agg::sum(cast(col, DataType::Int64)),
                            AggFunc::Sum => agg::sum(col),
                            AggFunc::Mean if is_bool => agg::avg(cast(col, DataType::Float64)),
                            AggFunc::Mean => agg::avg(col),
                            AggFunc::Min | AggFunc::Any => agg::min(col),
                            AggFunc::Max => agg::max(col),
                            AggFunc::Percentile(k) => percentile(col, k.fraction()),
                            AggFunc::RequestPathClusters => {
                                crate::request_path::build_clusters(crate::request_path::ClusterInput::Paths)
                                    .call(vec![col])
                            }
                            AggFunc::Quantiles => agg::count(col),
                        };
                        agg_exprs.push(e.alias(&a.output));
                        finals.push(ident(&a.output));
                    }
                }
            }
            let group_exprs: Vec<DfExpr> = group_by.iter().map(ident).collect();
            df.aggregate(group_exprs, agg_exprs)?.select(finals)?
        }
        Plan::Limit { input, n } => lower_plan(ctx, eng, input)?.limit(0, Some(*n))?,
        Plan::Join { left, right, how, left_columns, right_columns, left_on, right_on } => {
            // Each side is renamed first, so every column of the join has one unambiguous name.
            let side = |plan: &Plan, cols: &[(String, String)]| -> Result<DataFrame> {
                let exprs: Vec<DfExpr> = cols.iter().map(|(i, o)| ident(i).alias(o)).collect();
                Ok(lower_plan(ctx, eng, plan)?.select(exprs)?)
            };
            let (l, r) = (side(left, left_columns)?, side(right, right_columns)?);
            let join = match how {
                JoinHow::Inner => JoinType::Inner,
                JoinHow::Left => JoinType::Left,
                JoinHow::Right => JoinType::Right,
                JoinHow::Outer => JoinType::Full,
            };
            let lk: Vec<&str> = left_on.iter().map(String::as_str).collect();
            let rk: Vec<&str> = right_on.iter().map(String::as_str).collect();
            let out: Vec<DfExpr> = left_columns.iter().chain(right_columns).map(|(_, o)| ident(o)).collect();
            if lk.is_empty() {
                // `left_on=[]`: every left row with every right row. DataFusion wants a condition for an outer
                // join (Pixie's endpoint scripts join a one-row aggregate with `how='outer'`): always true.
                let on = if join == JoinType::Inner { Vec::new() } else { vec![lit(true)] };
                l.join_on(r, join, on)?.select(out)?
            } else {
                l.join(r, join, &lk, &rk, None)?.select(out)?
            }
        }
        Plan::Union { inputs } => {
            let mut it = inputs.iter();
            let first = it.next().ok_or_else(|| {
                ExecError::Execution(datafusion::error::DataFusionError::Internal("append of no dataframes".into()))
            })?;
            let mut df = lower_plan(ctx, eng, first)?;
            let names: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
            for p in it {
                // Same names and order (the compiler projected it); aliases keep DataFusion's union by position honest.
                let other = lower_plan(ctx, eng, p)?;
                let exprs: Vec<DfExpr> = other
                    .schema()
                    .fields()
                    .iter()
                    .zip(&names)
                    .map(|(f, n)| {
                        cast(
                            ident(f.name()),
                            df.schema()
                                .field_with_unqualified_name(n)
                                .map_or(f.data_type().clone(), |t| t.data_type().clone()),
                        )
                        .alias(n)
                    })
                    .collect();
                df = df.union(other.select(exprs)?)?;
            }
            df
        }
        Plan::Rename { input, renames } => {
            let df = lower_plan(ctx, eng, input)?;
            let exprs: Vec<DfExpr> = df
                .schema()
                .fields()
                .iter()
                .map(|f| match renames.iter().find(|(old, _)| old == f.name()) {
                    Some((_, new)) => ident(f.name()).alias(new),
                    None => ident(f.name()),
                })
                .collect();
            df.select(exprs)?
        }
    })
}

/// Percentile `p` (0..=1) of `x` as FLOAT64, from the quantile sketch (`sketch`).
fn percentile(x: DfExpr, p: f64) -> DfExpr {
    sketch::udaf(sketch::SketchOutput::Percentile(per_ten_thousand(p))).call(vec![cast(x, DataType::Float64)])
}

fn per_ten_thousand(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * 10_000.0).round() as u32
}

/// Splits batches into `n` contiguous partitions so every core scans a share.
pub(crate) fn partition(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let n = n.max(1);
    if batches.is_empty() {
        return vec![Vec::new()];
    }
    let per = batches.len().div_ceil(n);
    let mut parts: Vec<Vec<RecordBatch>> = Vec::with_capacity(n);
    let mut it = batches.into_iter().peekable();
    while it.peek().is_some() {
        parts.push(it.by_ref().take(per).collect());
    }
    parts
}

pub(crate) fn lower_expr(e: &Expr) -> DfExpr {
    match e {
        Expr::Column(c) => ident(c),
        Expr::Literal(l) => match l {
            Literal::Int(i) => lit(*i),
            Literal::Float(f) => lit(*f),
            Literal::String(s) => lit(s.clone()),
            Literal::Bool(b) => lit(*b),
            Literal::Time(t) => time_lit(*t),
        },
        Expr::Binary { op, left, right } => {
            let op = match op {
                BinaryOp::Add => Operator::Plus,
                BinaryOp::Sub => Operator::Minus,
                BinaryOp::Mul => Operator::Multiply,
                BinaryOp::Div => Operator::Divide,
                BinaryOp::Mod => Operator::Modulo,
                BinaryOp::Eq => Operator::Eq,
                BinaryOp::NotEq => Operator::NotEq,
                BinaryOp::Lt => Operator::Lt,
                BinaryOp::LtE => Operator::LtEq,
                BinaryOp::Gt => Operator::Gt,
                BinaryOp::GtE => Operator::GtEq,
                BinaryOp::And => Operator::And,
                BinaryOp::Or => Operator::Or,
            };
            binary_expr(lower_expr(left), op, lower_expr(right))
        }
        Expr::Not(x) => not(lower_expr(x)),
        Expr::Negate(x) => DfExpr::Negative(Box::new(lower_expr(x))),
        Expr::Cast { expr, to } => cast(lower_expr(expr), to.arrow_type()),
        // The semantic type only travels in the output's field metadata.
        Expr::Semantic { expr, .. } => lower_expr(expr),
        Expr::Call { func, args } => lower_call(*func, args),
    }
}

fn lower_call(func: ScalarFunc, args: &[Expr]) -> DfExpr {
    use datafusion::functions::{math, regex, string, unicode};
    let a: Vec<DfExpr> = args.iter().map(lower_expr).collect();
    let arg = |i: usize| a.get(i).cloned().unwrap_or_else(|| lit(ScalarValue::Null));
    match func {
        ScalarFunc::Select => when(arg(0), arg(1)).otherwise(arg(2)).unwrap_or_else(|_| lit(ScalarValue::Null)),
        ScalarFunc::Bin => {
            // Floor toward negative infinity, not toward zero.
            let (x, size) = (arg(0), arg(1));
            x.clone() - ((x % size.clone()) + size.clone()) % size
        }
        ScalarFunc::Contains => string::contains().call(a),
        ScalarFunc::Find => cast(unicode::strpos().call(a), DataType::Int64) - lit(1i64),
        ScalarFunc::Length => cast(string::octet_length().call(a), DataType::Int64),
        ScalarFunc::ToLower => string::lower().call(a),
        ScalarFunc::ToUpper => string::upper().call(a),
        ScalarFunc::Trim => string::btrim().call(a),
        ScalarFunc::Substring => unicode::substr().call(vec![arg(0), arg(1) + lit(1i64), arg(2)]),
        ScalarFunc::RegexMatch => {
            // Pixie matches the whole string (RE2::FullMatch).
            let pattern = match args.first() {
                Some(Expr::Literal(Literal::String(p))) => lit(format!("^(?:{p})$")),
                _ => arg(0),
            };
            regex::regexp_like().call(vec![arg(1), pattern])
        }
        ScalarFunc::Abs => math::abs().call(a),
        ScalarFunc::Floor => math::floor().call(a),
        ScalarFunc::Ceil => math::ceil().call(a),
        ScalarFunc::Round => math::round().call(a),
        ScalarFunc::Sqrt => math::sqrt().call(a),
        ScalarFunc::Exp => math::exp().call(a),
        ScalarFunc::Ln => math::ln().call(a),
        ScalarFunc::Log2 => math::log2().call(a),
        ScalarFunc::Log10 => math::log10().call(a),
        ScalarFunc::Pow => math::power().call(a),
        ScalarFunc::Concat => string::concat().call(a),
        ScalarFunc::Negate => DfExpr::Negative(Box::new(arg(0))),
        ScalarFunc::ExecHostNumCpus => {
            lit(std::thread::available_parallelism().map_or(1i64, |n| i64::try_from(n.get()).unwrap_or(i64::MAX)))
        }
        ScalarFunc::PluckArray => udf::pluck_array().call(a),
        ScalarFunc::UpidToCmdline => udf::cmdline().call(a),
        // Pixie's replace is RE2's GlobalReplace: every match, `\\1` for groups (DataFusion reads those too).
        ScalarFunc::Replace => regex::regexp_replace().call(vec![arg(1), arg(0), arg(2), lit("g")]),
        ScalarFunc::PodNameToStartTime => crate::metadata::start_time().call(a),
        ScalarFunc::ScriptReference => {
            // {"label":<label>,"script":<script>,"args":{"<name>":<value>,...}}, each value a JSON string.
            let mut parts = vec![lit("{\"label\":"), json_string(arg(0)), lit(",\"script\":"), json_string(arg(1))];
            parts.push(lit(",\"args\":{"));
            for (i, pair) in a.get(2..).unwrap_or_default().chunks(2).enumerate() {
                if let [name, value] = pair {
                    parts.push(lit(if i == 0 { "" } else { "," }));
                    parts.push(json_string(name.clone()));
                    parts.push(lit(":"));
                    parts.push(json_string(value.clone()));
                }
            }
            parts.push(lit("}}"));
            string::concat().call(parts)
        }
        ScalarFunc::UpidToPid => {
            try_cast(string::split_part().call(vec![arg(0), lit(":"), lit(2i64)]), DataType::Int64)
        }
        ScalarFunc::UpidToAsid => {
            try_cast(string::split_part().call(vec![arg(0), lit(":"), lit(1i64)]), DataType::Int64)
        }
        // One node answers for its own processes only, so a UPID's host and node are this host.
        ScalarFunc::ExecHostname | ScalarFunc::UpidToHostname | ScalarFunc::UpidToNodeName => lit(hostname()),
        // Kubernetes metadata: asked of the engine's metadata source row by row ('' without one).
        ScalarFunc::UpidToPodName
        | ScalarFunc::UpidToPodId
        | ScalarFunc::UpidToNamespace
        | ScalarFunc::UpidToServiceName
        | ScalarFunc::UpidToServiceId
        | ScalarFunc::UpidToContainerName
        | ScalarFunc::UpidToContainerId
        | ScalarFunc::UpidToDeploymentName
        | ScalarFunc::UpidToDeploymentId
        | ScalarFunc::UpidToReplicasetName
        | ScalarFunc::UpidToReplicasetId
        | ScalarFunc::IpToPodId
        | ScalarFunc::IpToServiceId
        | ScalarFunc::PodIdToPodName
        | ScalarFunc::PodIdToNamespace
        | ScalarFunc::PodIdToServiceName
        | ScalarFunc::PodIdToNodeName
        | ScalarFunc::PodNameToPodId
        | ScalarFunc::PodNameToServiceName
        | ScalarFunc::PodNameToNamespace
        | ScalarFunc::PodNameToPodIp
        | ScalarFunc::PodNameToStatus
        | ScalarFunc::ServiceIdToServiceName
        | ScalarFunc::ServiceNameToServiceId
        | ScalarFunc::ServiceNameToNamespace
        | ScalarFunc::ContainerIdToStatus
        | ScalarFunc::UpidToPodStatus
        | ScalarFunc::PodNameToOwnerReferences
        | ScalarFunc::PodIdToOwnerReferences
        | ScalarFunc::PodNameToServiceId
        | ScalarFunc::PodNameToDeploymentName
        | ScalarFunc::PodNameToDeploymentId
        | ScalarFunc::PodNameToReplicasetName
        | ScalarFunc::PodNameToReplicasetId
        | ScalarFunc::PodIdToServiceId
        | ScalarFunc::PodIdToDeploymentName
        | ScalarFunc::PodIdToDeploymentId
        | ScalarFunc::PodIdToReplicasetName
        | ScalarFunc::PodIdToReplicasetId
        | ScalarFunc::PodIdToPodLabels => crate::metadata::text(func.spec().name).call(a),
        // `services` is one `ns/name` or a JSON list of them (a pod behind several services).
        ScalarFunc::HasServiceName => {
            let quoted = string::concat().call(vec![lit("\""), arg(1), lit("\"")]);
            arg(0).eq(arg(1)).or(unicode::strpos().call(vec![arg(0), quoted]).gt(lit(0i64)))
        }
        ScalarFunc::KafkaApiKeyName => udf::text_udf("px_kafka_api_key_name").call(a),
        ScalarFunc::CqlOpcodeName => udf::text_udf("px_cql_opcode_name").call(a),
        ScalarFunc::AmqpFrameTypeName => udf::text_udf("px_amqp_frame_type_name").call(a),
        ScalarFunc::AmqpMethodName => udf::text_udf("px_amqp_method_name").call(a),
        ScalarFunc::MuxFrameTypeName => udf::text_udf("px_mux_frame_type_name").call(a),
        ScalarFunc::DnsRcodeName => udf::text_udf("px_dns_rcode_name").call(a),
        ScalarFunc::MysqlCommandName => udf::text_udf("px_mysql_command_name").call(a),
        ScalarFunc::ProtocolName => udf::text_udf("px_protocol_name").call(a),
        ScalarFunc::HttpRespMessage => udf::text_udf("px_http_resp_message").call(a),
        ScalarFunc::Split => udf::text_udf("px_split").call(a),
        ScalarFunc::NormalizePgsql => udf::text_udf("px_normalize_pgsql").call(a),
        ScalarFunc::NormalizeMysql => udf::text_udf("px_normalize_mysql").call(a),
        ScalarFunc::Nslookup => udf::nslookup().call(a),
        ScalarFunc::Strptime => udf::strptime().call(a),
        ScalarFunc::MatchEndpoint => crate::request_path::match_endpoint().call(a),
        ScalarFunc::PredictRequestPathCluster => crate::request_path::predict_cluster().call(a),
        ScalarFunc::Itoa => cast(arg(0), DataType::Utf8),
        // absl's SimpleAtoi: surrounding spaces allowed, anything else not a number gives the default.
        ScalarFunc::Atoi => datafusion::functions::core::expr_fn::coalesce(vec![
            try_cast(string::btrim().call(vec![arg(0)]), DataType::Int64),
            arg(1),
        ]),
        ScalarFunc::Pluck => udf::pluck(udf::PluckKind::String).call(a),
        ScalarFunc::PluckInt64 => udf::pluck(udf::PluckKind::Int64).call(a),
        ScalarFunc::PluckFloat64 => udf::pluck(udf::PluckKind::Float64).call(a),
        ScalarFunc::EqualsAny => {
            let mut it = a.into_iter();
            let x = it.next().unwrap_or_else(|| lit(ScalarValue::Null));
            x.in_list(it.collect(), false)
        }
        ScalarFunc::Int64ToTime => cast(arg(0), DataType::Timestamp(TimeUnit::Nanosecond, None)),
        ScalarFunc::TimeToInt64 => cast(arg(0), DataType::Int64),
    }
}

/// This host's name (`/proc/sys/kernel/hostname`), read once; `localhost` where that file does not exist.
pub(crate) fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "localhost".into(), |s| s.trim().to_string())
    })
    .clone()
}

/// `e` as a quoted JSON string: backslashes and quotes escaped (a null becomes `""`).
fn json_string(e: DfExpr) -> DfExpr {
    use datafusion::functions::string;
    let text = datafusion::functions::core::expr_fn::coalesce(vec![e, lit("")]);
    let escaped = string::replace().call(vec![text, lit("\\"), lit("\\\\")]);
    let escaped = string::replace().call(vec![escaped, lit("\""), lit("\\\"")]);
    string::concat().call(vec![lit("\""), escaped, lit("\"")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};

    fn batch(rows: usize) -> RecordBatch {
        let mut b = HttpEventsBuilder::new();
        for i in 0..rows {
            b.append(&HttpEventRow { time_ns: i as i64, ..HttpEventRow::default() });
        }
        b.finish().expect("batch")
    }

    #[test]
    fn partition_spreads_batches_contiguously() {
        let parts = partition((0..5).map(|_| batch(1)).collect(), 2);
        assert_eq!(parts.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!(partition(Vec::new(), 4).len(), 1, "an empty scan still needs one partition");
        assert_eq!(partition(vec![batch(2)], 8).len(), 1);
    }

    #[tokio::test]
    async fn bin_floors_toward_negative_infinity() {
        use arrow::array::AsArray;
        use arrow::datatypes::Int64Type;
        let ctx = SessionContext::new();
        let bin =
            |x: i64| lower_call(ScalarFunc::Bin, &[Expr::Literal(Literal::Int(x)), Expr::Literal(Literal::Int(5))]);
        let exprs = vec![bin(-7).alias("a"), bin(7).alias("b"), bin(10).alias("c")];
        let batches = ctx.read_empty().expect("empty").select(exprs).expect("select").collect().await.expect("runs");
        let got: Vec<i64> = batches[0].columns().iter().map(|c| c.as_primitive::<Int64Type>().value(0)).collect();
        assert_eq!(got, vec![-10, 5, 10]);
    }
}
