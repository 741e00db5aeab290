//! The logical plan a compiled PxL script becomes: operators, typed expressions, outputs.
//!
//! Owns [`Program`], [`Output`], [`Plan`] and [`Expr`]; the value types ([`PxType`]) are `types`'.
//! This is the contract with the engine: every expression is already type-checked and
//! normalized (division operands cast to FLOAT64, time arithmetic spelled with explicit
//! `int64_to_time`/`time_to_int64`), so an executor maps nodes one to one. Must not know how
//! plans execute (no DataFusion here).

pub use crate::functions::ScalarFunc;
pub use crate::types::PxType;

/// A named, typed column of a plan's output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ColumnDef {
    /// Column name.
    pub name: String,
    /// Column type.
    pub ty: PxType,
    /// Pixie's semantic type (`ST_DURATION_NS`, `ST_BYTES`, …) when it has one other than `ST_NONE`: read
    /// from the table's field metadata, carried through operators, set by casts such as
    /// `px.DurationNanos`. It decides how clients show a value (`1.2 ms`), never the value itself.
    pub semantic: Option<String>,
}

impl ColumnDef {
    /// A column without a semantic type.
    pub fn new(name: impl Into<String>, ty: PxType) -> Self {
        ColumnDef { name: name.into(), ty, semantic: None }
    }
}

/// A compiled script: one plan per `px.display` call, in call order.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Program {
    /// Output tables, in the order the script displays them.
    pub outputs: Vec<Output>,
    /// `#px:set max_output_rows_per_table=N`, when the script sets it.
    pub max_output_rows_per_table: Option<usize>,
}

/// One output table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Output {
    /// Table name from `px.display(df, name)` (`output` by default).
    pub name: String,
    /// The plan producing it.
    pub plan: Plan,
    /// Its columns, in order, with types known at compile time.
    pub columns: Vec<ColumnDef>,
    /// `px.export(df, px.otel.Data(...))`: the rows are sent to OpenTelemetry as this says, not to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<crate::otel::ExportSpec>,
}

/// A logical operator tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Plan {
    /// Rows of a table within an inclusive time range on `time_`.
    Source {
        /// Table name.
        table: String,
        /// Columns to keep (`select=`), in order; `None` keeps all.
        columns: Option<Vec<String>>,
        /// Earliest `time_` (ns), inclusive; `None` = from the oldest row.
        start_ns: Option<i64>,
        /// Latest `time_` (ns), inclusive; `None` = up to the newest row.
        end_ns: Option<i64>,
    },
    /// Rows where `predicate` (BOOLEAN) is true.
    Filter {
        /// Input plan.
        input: Box<Plan>,
        /// Predicate.
        predicate: Expr,
    },
    /// Adds `column`, or replaces it in place when it exists.
    Map {
        /// Input plan.
        input: Box<Plan>,
        /// Column written.
        column: String,
        /// Its value.
        expr: Expr,
    },
    /// Keeps `columns`, in this order.
    Project {
        /// Input plan.
        input: Box<Plan>,
        /// Columns kept.
        columns: Vec<String>,
    },
    /// Removes `columns`.
    Drop {
        /// Input plan.
        input: Box<Plan>,
        /// Columns removed.
        columns: Vec<String>,
    },
    /// One row per distinct `group_by` key (one row in all when empty); output is the
    /// group columns then the aggregates, in order.
    Aggregate {
        /// Input plan.
        input: Box<Plan>,
        /// Group keys.
        group_by: Vec<String>,
        /// Aggregates.
        aggs: Vec<Aggregation>,
    },
    /// The first `n` rows.
    Limit {
        /// Input plan.
        input: Box<Plan>,
        /// Row count.
        n: usize,
    },
    /// `left.merge(right, how, left_on, right_on, suffixes)`: an equi-join. Each side's columns are
    /// first renamed (`(input name, output name)`, suffixes already applied to names both sides
    /// have), so the output is the left's renamed columns then the right's, all distinct.
    Join {
        /// Left input.
        left: Box<Plan>,
        /// Right input.
        right: Box<Plan>,
        /// Join type.
        how: JoinHow,
        /// Left columns, renamed, in order.
        left_columns: Vec<(String, String)>,
        /// Right columns, renamed, in order.
        right_columns: Vec<(String, String)>,
        /// Left key columns (output names), pairwise equal to `right_on`.
        left_on: Vec<String>,
        /// Right key columns (output names).
        right_on: Vec<String>,
    },
    /// `df.append(others)`: the rows of every input, which all have the same columns in the same order.
    Union {
        /// Inputs, the first being the frame appended to.
        inputs: Vec<Plan>,
    },
    /// A source function (Pixie's UDTFs: `px.GetAgentStatus()`, `px.GetSchemas()`, ...): rows the engine
    /// computes from what it knows (its agent, its tables, the function registry), columns [`Udtf::columns`].
    Udtf {
        /// The function.
        func: Udtf,
        /// Its arguments, one per [`Udtf::params`] entry, defaults filled in.
        args: Vec<Literal>,
    },
    /// `df.rename({'old': 'new'})`: columns renamed in place.
    Rename {
        /// Input plan.
        input: Box<Plan>,
        /// `(old, new)` pairs.
        renames: Vec<(String, String)>,
    },
}

impl Plan {
    /// The plans this one reads, in order (none for a source).
    pub fn inputs(&self) -> Vec<&Plan> {
        match self {
            Plan::Source { .. } | Plan::Udtf { .. } => Vec::new(),
            Plan::Filter { input, .. }
            | Plan::Map { input, .. }
            | Plan::Project { input, .. }
            | Plan::Drop { input, .. }
            | Plan::Aggregate { input, .. }
            | Plan::Limit { input, .. }
            | Plan::Rename { input, .. } => vec![input],
            Plan::Join { left, right, .. } => vec![left, right],
            Plan::Union { inputs } => inputs.iter().collect(),
        }
    }
}

/// Source functions a script reads like tables (Pixie's UDTFs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Udtf {
    /// `px.GetAgentStatus(include_kelvin=True)`: one row per agent.
    AgentStatus,
    /// `px.GetSchemas()`: one row per column of every table.
    Schemas,
    /// `px.GetTables()`: one row per table.
    Tables,
    /// `px.GetUDFList()`: one row per scalar function.
    UdfList,
    /// `px.GetUDAList()`: one row per aggregate function.
    UdaList,
    /// `px.GetUDTFList()`: one row per source function.
    UdtfList,
    /// `px.GetTracepointStatus()`: dynamic tracepoints (none: Loupe deploys none).
    TracepointStatus,
    /// `px.GetLinuxHeadersStatus()`: whether each agent's host has kernel headers.
    LinuxHeadersStatus,
    /// `px._HeapStats(asid=-1)`: each agent's memory use, as text.
    HeapStats,
    /// `px._HeapGrowthStacks(asid=-1)`: each agent's memory growth, as text.
    HeapGrowthStacks,
    /// `px._HeapSampleStacks(asid=-1)`: each agent's memory sample, as text.
    HeapSampleStacks,
}

const fn col(name: &'static str, ty: PxType) -> (&'static str, PxType) {
    (name, ty)
}

impl Udtf {
    /// Every source function.
    pub const ALL: [Udtf; 11] = [
        Udtf::AgentStatus,
        Udtf::Schemas,
        Udtf::Tables,
        Udtf::UdfList,
        Udtf::UdaList,
        Udtf::UdtfList,
        Udtf::TracepointStatus,
        Udtf::LinuxHeadersStatus,
        Udtf::HeapStats,
        Udtf::HeapGrowthStacks,
        Udtf::HeapSampleStacks,
    ];

    /// The name after `px.`.
    pub fn name(self) -> &'static str {
        match self {
            Udtf::AgentStatus => "GetAgentStatus",
            Udtf::Schemas => "GetSchemas",
            Udtf::Tables => "GetTables",
            Udtf::UdfList => "GetUDFList",
            Udtf::UdaList => "GetUDAList",
            Udtf::UdtfList => "GetUDTFList",
            Udtf::TracepointStatus => "GetTracepointStatus",
            Udtf::LinuxHeadersStatus => "GetLinuxHeadersStatus",
            Udtf::HeapStats => "_HeapStats",
            Udtf::HeapGrowthStacks => "_HeapGrowthStacks",
            Udtf::HeapSampleStacks => "_HeapSampleStacks",
        }
    }

    /// The source function called `px.<name>`.
    pub fn from_name(name: &str) -> Option<Udtf> {
        Udtf::ALL.into_iter().find(|u| u.name() == name)
    }

    /// Parameters with their defaults, in order.
    pub fn params(self) -> &'static [(&'static str, Literal)] {
        const INCLUDE_KELVIN: &[(&str, Literal)] = &[("include_kelvin", Literal::Bool(true))];
        const ASID: &[(&str, Literal)] = &[("asid", Literal::Int(-1))];
        match self {
            Udtf::AgentStatus => INCLUDE_KELVIN,
            Udtf::HeapStats | Udtf::HeapGrowthStacks | Udtf::HeapSampleStacks => ASID,
            _ => &[],
        }
    }

    /// The output columns (Pixie's names; UINT128 ids are STRING here, as `upid` is).
    pub fn columns(self) -> Vec<ColumnDef> {
        use PxType::{Boolean, Int64, String, Time};
        let cols: &[(&str, PxType)] = match self {
            Udtf::AgentStatus => &[
                col("agent_id", String),
                col("asid", Int64),
                col("hostname", String),
                col("ip_address", String),
                col("agent_state", String),
                col("create_time", Time),
                col("last_heartbeat_ns", Int64),
                col("kernel_headers_installed", Boolean),
                // Loupe's, after Pixie's columns: PEM or KELVIN, and the agent configuration version applied.
                col("kind", String),
                col("config_version", Int64),
            ],
            Udtf::Schemas => &[
                col("table_name", String),
                col("column_name", String),
                col("column_type", String),
                col("pattern_type", String),
                col("column_desc", String),
            ],
            Udtf::Tables => &[col("table_name", String), col("table_desc", String)],
            Udtf::UdfList | Udtf::UdaList => &[col("name", String), col("return_type", String), col("args", String)],
            Udtf::UdtfList => &[
                col("name", String),
                col("executor", String),
                col("init_args", String),
                col("output_relation", String),
            ],
            Udtf::TracepointStatus => &[
                col("tracepoint_id", String),
                col("name", String),
                col("state", String),
                col("status", String),
                col("output_tables", String),
            ],
            Udtf::LinuxHeadersStatus => &[col("asid", Int64), col("kernel_headers_installed", Boolean)],
            Udtf::HeapStats | Udtf::HeapGrowthStacks | Udtf::HeapSampleStacks => {
                &[col("asid", Int64), col("heap", String)]
            }
        };
        cols.iter().map(|(n, t)| ColumnDef::new(*n, *t)).collect()
    }
}

/// `how=` of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum JoinHow {
    /// Rows with a match on both sides.
    Inner,
    /// Every left row.
    Left,
    /// Every right row.
    Right,
    /// Every row of both sides.
    Outer,
}

/// `out_name=('column', px.func)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Aggregation {
    /// Output column name.
    pub output: String,
    /// Aggregate function.
    pub func: AggFunc,
    /// Input column.
    pub column: String,
}

/// Aggregate functions (Pixie UDAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum AggFunc {
    /// Row count → INT64.
    Count,
    /// Sum → INT64 for INT64/BOOLEAN input, FLOAT64 for FLOAT64.
    Sum,
    /// Arithmetic mean → FLOAT64; for BOOLEAN the fraction of true.
    Mean,
    /// Minimum, same type.
    Min,
    /// Maximum, same type.
    Max,
    /// Any value of the group, same type.
    Any,
    /// A JSON string `{"p01":..,"p10":..,"p25":..,"p50":..,"p75":..,"p90":..,"p99":..}`.
    Quantiles,
    /// Pixie's `px._build_request_path_clusters`: the request paths' endpoints, as a clustering (JSON).
    RequestPathClusters,
    /// Approximate percentile (0..=1) → FLOAT64: `px.p50`, `px.p90`, `px.p99`, ...
    Percentile(PercentileKey),
}

impl AggFunc {
    /// The semantic type of this aggregate of a column of semantic type `input`: a count has none,
    /// `px.quantiles` of durations is `ST_DURATION_NS_QUANTILES` (of anything else `ST_QUANTILES`),
    /// every other aggregate keeps its input's (the mean of latencies is a latency).
    pub fn output_semantic(self, input: Option<&str>) -> Option<String> {
        match self {
            AggFunc::Count => None,
            AggFunc::Quantiles if input == Some("ST_DURATION_NS") => Some("ST_DURATION_NS_QUANTILES".into()),
            AggFunc::Quantiles => Some("ST_QUANTILES".into()),
            AggFunc::RequestPathClusters => None,
            _ => input.map(str::to_string),
        }
    }
}

/// A fixed percentile, kept as an enum so plans stay `Eq` and `Hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum PercentileKey {
    /// 0.01
    P01,
    /// 0.10
    P10,
    /// 0.25
    P25,
    /// 0.50
    P50,
    /// 0.75
    P75,
    /// 0.90
    P90,
    /// 0.99
    P99,
}

impl PercentileKey {
    /// All keys, in the order `px.quantiles` emits them.
    pub const ALL: [PercentileKey; 7] = [
        PercentileKey::P01,
        PercentileKey::P10,
        PercentileKey::P25,
        PercentileKey::P50,
        PercentileKey::P75,
        PercentileKey::P90,
        PercentileKey::P99,
    ];

    /// The fraction, e.g. 0.99.
    pub fn fraction(self) -> f64 {
        match self {
            PercentileKey::P01 => 0.01,
            PercentileKey::P10 => 0.10,
            PercentileKey::P25 => 0.25,
            PercentileKey::P50 => 0.50,
            PercentileKey::P75 => 0.75,
            PercentileKey::P90 => 0.90,
            PercentileKey::P99 => 0.99,
        }
    }

    /// The JSON key / function suffix, e.g. `p99`.
    pub fn name(self) -> &'static str {
        match self {
            PercentileKey::P01 => "p01",
            PercentileKey::P10 => "p10",
            PercentileKey::P25 => "p25",
            PercentileKey::P50 => "p50",
            PercentileKey::P75 => "p75",
            PercentileKey::P90 => "p90",
            PercentileKey::P99 => "p99",
        }
    }

    /// The key called `name` (`p99`).
    pub fn from_name(name: &str) -> Option<PercentileKey> {
        PercentileKey::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl AggFunc {
    /// The output type for an input of type `input`, or `None` when the function does not
    /// accept it.
    pub fn output_type(self, input: PxType) -> Option<PxType> {
        use PxType::*;
        match (self, input) {
            (AggFunc::Count, _) => Some(Int64),
            (AggFunc::Any, t) => Some(t),
            (AggFunc::Sum, Int64 | Boolean) => Some(Int64),
            (AggFunc::Sum, Float64) => Some(Float64),
            (AggFunc::Mean, Int64 | Float64 | Boolean) => Some(Float64),
            (AggFunc::Min | AggFunc::Max, t @ (Int64 | Float64 | Time | String)) => Some(t),
            (AggFunc::Quantiles, Int64 | Float64) => Some(String),
            (AggFunc::Percentile(_), Int64 | Float64) => Some(Float64),
            (AggFunc::RequestPathClusters, String) => Some(String),
            _ => None,
        }
    }

    /// The `px.` name.
    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Mean => "mean",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Any => "any",
            AggFunc::Quantiles => "quantiles",
            AggFunc::RequestPathClusters => "_build_request_path_clusters",
            AggFunc::Percentile(k) => k.name(),
        }
    }

    /// The aggregate called `px.<name>`.
    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "mean" => AggFunc::Mean,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "any" => AggFunc::Any,
            "quantiles" => AggFunc::Quantiles,
            "_build_request_path_clusters" => AggFunc::RequestPathClusters,
            other => AggFunc::Percentile(PercentileKey::from_name(other)?),
        })
    }
}

/// A typed scalar expression over the columns of its input.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Expr {
    /// A column of the input.
    Column(String),
    /// A constant.
    Literal(Literal),
    /// `left op right`; operands already have compatible types.
    Binary {
        /// Operator.
        op: BinaryOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// Logical not of a BOOLEAN.
    Not(Box<Expr>),
    /// Arithmetic negation.
    Negate(Box<Expr>),
    /// Type conversion (the checker inserts these).
    Cast {
        /// Operand.
        expr: Box<Expr>,
        /// Target type.
        to: PxType,
    },
    /// A scalar `px.` function (declared in `crate::functions`).
    Call {
        /// The function (by its `px.` name on the wire: the registry's order is no contract).
        #[serde(with = "scalar_func_by_name")]
        func: ScalarFunc,
        /// Arguments, type-checked against the function's signature.
        args: Vec<Expr>,
    },
    /// A semantic cast (`px.DurationNanos(x)`, `px.Bytes(x)`, …): the value of `expr` unchanged, shown
    /// as `semantic` (a Pixie `ST_*` name).
    Semantic {
        /// Operand.
        expr: Box<Expr>,
        /// The semantic type it now has.
        semantic: String,
    },
}

impl Expr {
    /// The semantic type of this expression over columns `input` (`None` for `ST_NONE`), by Pixie's
    /// rules where it has them: a column keeps its own, a cast sets one, `+`/`-` keep the type their
    /// operands share (or that of the non-constant one), a function whose registry entry says
    /// `SameAs(n)` takes argument `n`'s. Anything else (`*`, `/`, comparisons) has none: a latency
    /// divided by 1e6 is no longer nanoseconds.
    pub fn semantic(&self, input: &[ColumnDef]) -> Option<String> {
        match self {
            Expr::Column(c) => input.iter().find(|d| &d.name == c).and_then(|d| d.semantic.clone()),
            Expr::Semantic { semantic, .. } => Some(semantic.clone()),
            Expr::Negate(x) | Expr::Cast { expr: x, .. } => x.semantic(input),
            Expr::Binary { op: BinaryOp::Add | BinaryOp::Sub, left, right } => {
                match (left.semantic(input), right.semantic(input)) {
                    (Some(l), Some(r)) if l == r => Some(l),
                    (Some(s), None) if matches!(**right, Expr::Literal(_)) => Some(s),
                    (None, Some(s)) if matches!(**left, Expr::Literal(_)) => Some(s),
                    _ => None,
                }
            }
            Expr::Call { func, args } => match func.spec().semantic {
                crate::functions::Semantic::SameAs(n) => args.get(n).and_then(|a| a.semantic(input)),
                crate::functions::Semantic::None => None,
            },
            Expr::Literal(_) | Expr::Binary { .. } | Expr::Not(_) => None,
        }
    }
}

/// A constant value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Literal {
    /// INT64
    Int(i64),
    /// FLOAT64
    Float(f64),
    /// STRING
    String(String),
    /// BOOLEAN
    Bool(bool),
    /// TIME64NS (ns since the epoch)
    Time(i64),
}

impl Literal {
    /// The literal's type.
    pub fn ty(&self) -> PxType {
        match self {
            Literal::Int(_) => PxType::Int64,
            Literal::Float(_) => PxType::Float64,
            Literal::String(_) => PxType::String,
            Literal::Bool(_) => PxType::Boolean,
            Literal::Time(_) => PxType::Time,
        }
    }
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (operands are FLOAT64)
    Div,
    /// `%`
    Mod,
    /// `==`
    Eq,
    /// `!=`
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtE,
    /// `>`
    Gt,
    /// `>=`
    GtE,
    /// `and`, `&`
    And,
    /// `or`, `|`
    Or,
}

/// [`ScalarFunc`] serialized as its `px.` name, so a plan shipped between processes (a query broker to its
/// agents) does not depend on the registry's declaration order.
mod scalar_func_by_name {
    use super::ScalarFunc;

    pub(super) fn serialize<S: serde::Serializer>(f: &ScalarFunc, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.spec().name)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ScalarFunc, D::Error> {
        let name = <String as serde::Deserialize>::deserialize(d)?;
        ScalarFunc::from_name(&name).ok_or_else(|| serde::de::Error::custom(format!("unknown function px.{name}")))
    }
}
