//! Source functions (Pixie's UDTFs): the rows of `px.GetAgentStatus()`, `px.GetSchemas()`,
//! `px.GetTables()`, `px.GetUDFList()`, `px.GetUDAList()`, `px.GetUDTFList()`, `px.GetTracepointStatus()`,
//! `px.GetLinuxHeadersStatus()` and the `_Heap*` debug sources, computed when the query runs from what
//! this engine knows: its agent ([`AgentInfo`](crate::AgentInfo)), its tables, the PxL function registry.
//!
//! Owns those rows (one agent: the engine answers for its own node). Must not scan the store's rows
//! (only its table list) nor know how the rows are used afterwards.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use loupe_pxl::functions::FUNCTIONS;
use loupe_pxl::{AggFunc, Literal, PercentileKey, PxType, Udtf};

use crate::{Engine, Result};

/// One cell of a source function's row.
enum Cell {
    S(String),
    I(i64),
    B(bool),
    T(i64),
}

/// The rows of `func(args)` as one batch with the columns the compiler promised ([`Udtf::columns`]).
pub(crate) fn rows(eng: &Engine, func: Udtf, args: &[Literal]) -> Result<RecordBatch> {
    let agent = &eng.agent;
    let s = |v: &str| Cell::S(v.to_string());
    let asid_matches = || match args.first() {
        Some(Literal::Int(a)) => *a == -1 || *a == agent.asid,
        _ => true,
    };
    let rows: Vec<Vec<Cell>> = match func {
        Udtf::AgentStatus if eng.cluster.is_some() => {
            let include_kelvin = !matches!(args.first(), Some(Literal::Bool(false)));
            let agents = eng.cluster.as_deref().map(Vec::as_slice).unwrap_or_default();
            agents
                .iter()
                .filter(|a| include_kelvin || !a.kelvin)
                .map(|a| {
                    vec![
                        s(&a.info.agent_id),
                        Cell::I(a.info.asid),
                        s(&a.info.hostname),
                        s(&a.info.ip_address),
                        s(&a.state),
                        Cell::T(a.info.create_time_ns),
                        Cell::I(a.since_heartbeat_ns),
                        Cell::B(false),
                        s(if a.kelvin { "KELVIN" } else { "PEM" }),
                        Cell::I(i64::try_from(a.config_version).unwrap_or(i64::MAX)),
                    ]
                })
                .collect()
        }
        Udtf::AgentStatus => vec![vec![
            s(&agent.agent_id),
            Cell::I(agent.asid),
            s(&agent.hostname),
            s(&agent.ip_address),
            s("AGENT_STATE_HEALTHY"),
            Cell::T(agent.create_time_ns),
            // The engine answers from inside the agent: its last word is now.
            Cell::I(0),
            Cell::B(kernel_headers_installed()),
            // One agent answering alone: a PEM with no configuration from a broker.
            s("PEM"),
            Cell::I(0),
        ]],
        Udtf::LinuxHeadersStatus => vec![vec![Cell::I(agent.asid), Cell::B(kernel_headers_installed())]],
        Udtf::Tables => tables(eng).into_iter().map(|(name, desc, _)| vec![Cell::S(name), Cell::S(desc)]).collect(),
        Udtf::Schemas => {
            let mut out = Vec::new();
            for (table, _, columns) in tables(eng) {
                for (name, ty, desc) in columns {
                    out.push(vec![Cell::S(table.clone()), Cell::S(name), Cell::S(ty), s("GENERAL"), Cell::S(desc)]);
                }
            }
            out
        }
        Udtf::UdfList => FUNCTIONS
            .iter()
            .map(|f| {
                let args: Vec<String> = f
                    .signature()
                    .split_once('(')
                    .map_or(String::new(), |(_, a)| a.trim_end_matches(')').to_string())
                    .split(", ")
                    .filter(|a| !a.is_empty())
                    .map(str::to_string)
                    .collect();
                vec![s(f.name), Cell::S(f.returns_text()), Cell::S(args.join(","))]
            })
            .collect(),
        Udtf::UdaList => uda_list().into_iter().map(|(n, r, a)| vec![s(n), s(r), s(a)]).collect(),
        Udtf::UdtfList => Udtf::ALL
            .iter()
            .map(|u| {
                let init: Vec<String> = u.params().iter().map(|(n, d)| format!("{n}:{}", d.ty())).collect();
                let rel: Vec<String> = u.columns().iter().map(|c| format!("{}:{}", c.name, c.ty)).collect();
                let executor = match u {
                    Udtf::AgentStatus | Udtf::Schemas | Udtf::Tables | Udtf::TracepointStatus => "UDTF_ONE_KELVIN",
                    Udtf::UdfList | Udtf::UdaList | Udtf::UdtfList => "UDTF_ONE_KELVIN",
                    Udtf::LinuxHeadersStatus | Udtf::HeapStats | Udtf::HeapGrowthStacks | Udtf::HeapSampleStacks => {
                        "UDTF_ALL_AGENTS"
                    }
                };
                vec![s(u.name()), s(executor), Cell::S(init.join(",")), Cell::S(rel.join(","))]
            })
            .collect(),
        // Loupe deploys no dynamic tracepoints.
        Udtf::TracepointStatus => Vec::new(),
        Udtf::HeapStats | Udtf::HeapGrowthStacks | Udtf::HeapSampleStacks => {
            if asid_matches() {
                vec![vec![Cell::I(agent.asid), Cell::S(memory_report())]]
            } else {
                Vec::new()
            }
        }
    };
    batch(func, rows)
}

/// Every table the engine can read: `loupe_schema`'s, then any other the store holds, with their
/// descriptions and columns `(name, Pixie type, description)`.
type TableRow = (String, String, Vec<(String, String, String)>);

fn tables(eng: &Engine) -> Vec<TableRow> {
    let mut out: Vec<TableRow> = loupe_schema::all_tables()
        .into_iter()
        .map(|t| {
            let cols = t
                .columns
                .iter()
                .map(|c| (c.name.to_string(), pixie_type(c.ty).to_string(), c.desc.to_string()))
                .collect();
            (t.name.to_string(), t.desc.to_string(), cols)
        })
        .collect();
    for t in eng.store.tables() {
        if out.iter().any(|(n, _, _)| n == t.name()) {
            continue;
        }
        let cols = t
            .schema()
            .fields()
            .iter()
            .map(|f| {
                let ty = PxType::from_arrow(f.data_type()).map_or("UNKNOWN", PxType::name);
                (f.name().clone(), ty.to_string(), String::new())
            })
            .collect();
        out.push((t.name().to_string(), String::new(), cols));
    }
    out
}

fn pixie_type(t: loupe_schema::ColumnType) -> &'static str {
    use loupe_schema::ColumnType;
    match t {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Int64 => "INT64",
        ColumnType::Float64 => "FLOAT64",
        ColumnType::String => "STRING",
        ColumnType::Time64Ns => "TIME64NS",
        ColumnType::Uint128 => "UINT128",
    }
}

/// `(name, return type, argument types)` of every aggregate.
fn uda_list() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = vec![
        (AggFunc::Count.name(), "INT64", "any"),
        (AggFunc::Sum.name(), "INT64/FLOAT64", "INT64/FLOAT64/BOOLEAN"),
        (AggFunc::Mean.name(), "FLOAT64", "INT64/FLOAT64/BOOLEAN"),
        (AggFunc::Min.name(), "the input's type", "INT64/FLOAT64/TIME64NS/STRING"),
        (AggFunc::Max.name(), "the input's type", "INT64/FLOAT64/TIME64NS/STRING"),
        (AggFunc::Any.name(), "the input's type", "any"),
        (AggFunc::Quantiles.name(), "STRING", "INT64/FLOAT64"),
        (AggFunc::RequestPathClusters.name(), "STRING", "STRING"),
    ];
    for k in PercentileKey::ALL {
        out.push((AggFunc::Percentile(k).name(), "FLOAT64", "INT64/FLOAT64"));
    }
    out
}

/// Whether this host has the headers of its running kernel (`/lib/modules/<release>/build`).
fn kernel_headers_installed() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    !release.trim().is_empty() && std::path::Path::new(&format!("/lib/modules/{}/build", release.trim())).exists()
}

/// This process's memory as the kernel counts it (the `Vm*` and `Rss*` lines of /proc/self/status): Loupe
/// has no heap profiler to sample stacks from, so every `_Heap*` source reports this.
fn memory_report() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().filter(|l| l.starts_with("Vm") || l.starts_with("Rss")).collect::<Vec<_>>().join("\n")
}

fn batch(func: Udtf, rows: Vec<Vec<Cell>>) -> Result<RecordBatch> {
    let columns = func.columns();
    let schema =
        Arc::new(Schema::new(columns.iter().map(|c| Field::new(&c.name, c.ty.arrow_type(), true)).collect::<Vec<_>>()));
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, c) in columns.iter().enumerate() {
        let cells = rows.iter().map(|r| r.get(i));
        let array: ArrayRef = match c.ty {
            PxType::String => {
                let mut b = StringBuilder::new();
                cells.for_each(|v| b.append_option(if let Some(Cell::S(s)) = v { Some(s.as_str()) } else { None }));
                Arc::new(b.finish())
            }
            PxType::Int64 => {
                let mut b = Int64Builder::new();
                cells.for_each(|v| b.append_option(if let Some(Cell::I(x)) = v { Some(*x) } else { None }));
                Arc::new(b.finish())
            }
            PxType::Boolean => {
                let mut b = BooleanBuilder::new();
                cells.for_each(|v| b.append_option(if let Some(Cell::B(x)) = v { Some(*x) } else { None }));
                Arc::new(b.finish())
            }
            PxType::Time => {
                let mut b = TimestampNanosecondBuilder::new();
                cells.for_each(|v| b.append_option(if let Some(Cell::T(x)) = v { Some(*x) } else { None }));
                Arc::new(b.finish())
            }
            PxType::Float64 => Arc::new(arrow::array::Float64Array::from(vec![None::<f64>; rows.len()])),
        };
        arrays.push(array);
    }
    Ok(RecordBatch::try_new(schema, arrays).map_err(datafusion::error::DataFusionError::from)?)
}
