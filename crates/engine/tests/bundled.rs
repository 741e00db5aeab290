//! Golden tests of the bundled `px/*` scripts (`loupe-scripts`): each script runs over the checked-in data set
//! `crates/scripts/testdata/fixture.json`, called as `px run` and the UI call it (a function-form script through
//! its vis spec's `exec_funcs` with every variable at its default), with "now" pinned to the data set's `now_ns`
//! so that `'-5m'` keeps meaning the same rows. Each script's outputs must equal
//! `crates/scripts/testdata/golden/<name>.out` (each output as `== <name>`, then its table with the data rows
//! sorted; an empty one as its column names), and every script must answer at least one row. A few runs with
//! variables set ([`WITH_ARGUMENTS`]) check the other paths, each against `<name>.<case>.out`. Every widget must
//! name columns its output has (a chart of a missing column draws nothing in the UI).
//! `LOUPE_BLESS=1 cargo test -p loupe-engine --test tests bundled` rewrites the `.out` files from what the
//! engine answers: review the diff before committing it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::record_batch::RecordBatch;
use loupe_engine::{AgentInfo, Engine, ExecOptions};
use loupe_pxl::{CompileOptions, ExecFunc};
use loupe_schema::ColumnType;
use loupe_store::{Store, StoreConfig};
use serde_json::Value;

use crate::common::lines;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/testdata")
}

/// The data set: `now_ns`, and per table its `columns` and `rows` (a column left out takes zero values).
struct Fixture {
    now_ns: i64,
    engine: Engine,
}

fn load_fixture() -> Fixture {
    let path = testdata().join("fixture.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_json::from_str(&text).expect("fixture.json is JSON");
    let now_ns = doc["now_ns"].as_i64().expect("now_ns");
    let store = Arc::new(Store::new(StoreConfig::default()));
    let tables = doc["tables"].as_object().expect("tables");
    for (name, table) in tables {
        let spec = loupe_schema::table(name).unwrap_or_else(|| panic!("fixture table {name} is not a known table"));
        let columns: Vec<&str> =
            table["columns"].as_array().expect("columns").iter().map(|c| c.as_str().expect("column name")).collect();
        for c in &columns {
            assert!(spec.column(c).is_some(), "fixture column {name}.{c} is not in the schema");
        }
        let mut rows: Vec<&Vec<Value>> =
            table["rows"].as_array().expect("rows").iter().map(|r| r.as_array().expect("row")).collect();
        for r in &rows {
            assert_eq!(r.len(), columns.len(), "a row of {name} has {} values for {} columns", r.len(), columns.len());
        }
        // The store keeps rows in time order, as a collector appends them.
        let time_at = columns.iter().position(|c| *c == loupe_schema::TIME_COLUMN).expect("time_ column");
        rows.sort_by_key(|r| r[time_at].as_i64().expect("time_ is Unix ns"));
        let arrays: Vec<ArrayRef> = spec
            .columns
            .iter()
            .map(|col| {
                let at = columns.iter().position(|c| *c == col.name);
                let cell = |r: &Vec<Value>| at.map(|i| r[i].clone()).unwrap_or(Value::Null);
                let what = |v: &Value| format!("{name}.{} = {v}", col.name);
                match col.ty {
                    ColumnType::Int64 => {
                        let mut b = Int64Builder::new();
                        for r in &rows {
                            let v = cell(r);
                            b.append_value(if v.is_null() {
                                0
                            } else {
                                v.as_i64().unwrap_or_else(|| panic!("{}", what(&v)))
                            });
                        }
                        Arc::new(b.finish()) as ArrayRef
                    }
                    ColumnType::Float64 => {
                        let mut b = Float64Builder::new();
                        for r in &rows {
                            let v = cell(r);
                            b.append_value(if v.is_null() {
                                0.0
                            } else {
                                v.as_f64().unwrap_or_else(|| panic!("{}", what(&v)))
                            });
                        }
                        Arc::new(b.finish())
                    }
                    ColumnType::Boolean => {
                        let mut b = BooleanBuilder::new();
                        for r in &rows {
                            let v = cell(r);
                            b.append_value(!v.is_null() && v.as_bool().unwrap_or_else(|| panic!("{}", what(&v))));
                        }
                        Arc::new(b.finish())
                    }
                    ColumnType::String | ColumnType::Uint128 => {
                        let mut b = StringBuilder::new();
                        for r in &rows {
                            let v = cell(r);
                            b.append_value(if v.is_null() {
                                ""
                            } else {
                                v.as_str().unwrap_or_else(|| panic!("{}", what(&v)))
                            });
                        }
                        Arc::new(b.finish())
                    }
                    ColumnType::Time64Ns => {
                        let mut b = TimestampNanosecondBuilder::new();
                        for r in &rows {
                            let v = cell(r);
                            b.append_value(v.as_i64().unwrap_or_else(|| panic!("{}", what(&v))));
                        }
                        Arc::new(b.finish())
                    }
                }
            })
            .collect();
        let batch = RecordBatch::try_new(spec.arrow_schema(), arrays).expect("fixture batch matches the schema");
        store.register(&spec).expect("register").append(batch).expect("append");
    }
    // A fixed agent: `px.GetAgentStatus()` must not answer with this machine's name.
    let agent = AgentInfo {
        agent_id: "5f1c0ffe-0000-4000-8000-00000000a001".into(),
        asid: 0,
        hostname: "node-1".into(),
        ip_address: "10.0.0.5".into(),
        create_time_ns: now_ns - 3_600_000_000_000,
    };
    Fixture { now_ns, engine: Engine::new(store).with_agent(agent) }
}

/// `out` with this machine's host name, which the engine answers for a UPID's node, written as the fixture's
/// agent's (`node-1`), so that the expected tables do not depend on where the tests run.
fn as_fixture_node(mut out: loupe_engine::QueryOutput) -> loupe_engine::QueryOutput {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "localhost".into(), |s| s.trim().to_string());
    out.batches = out
        .batches
        .iter()
        .map(|b| {
            let columns: Vec<ArrayRef> = b
                .columns()
                .iter()
                .map(|c| match c.as_any().downcast_ref::<arrow::array::StringArray>() {
                    Some(strings) => Arc::new(
                        strings
                            .iter()
                            .map(|v| v.map(|v| if v == host { "node-1" } else { v }))
                            .collect::<arrow::array::StringArray>(),
                    ) as ArrayRef,
                    None => c.clone(),
                })
                .collect();
            RecordBatch::try_new(b.schema(), columns).expect("same schema")
        })
        .collect();
    out
}

/// The calls a vis spec makes with every variable at its default, named as `px run` and the UI name them:
/// each global function by its `outputName`, then each widget that calls a function by its `name`
/// (`widget_<index>` without one).
fn default_calls(script: &str, vis: &str) -> Vec<ExecFunc> {
    calls_with(script, vis, &[])
}

/// [`default_calls`] with some variables set, as `px run <script> -- --name=value` sets them.
fn calls_with(script: &str, vis: &str, set: &[(&str, &str)]) -> Vec<ExecFunc> {
    let vis: Value = serde_json::from_str(vis).unwrap_or_else(|e| panic!("{script}: vis.json: {e}"));
    let empty = Vec::new();
    let list = |key: &str| vis[key].as_array().unwrap_or(&empty).clone();
    for (name, _) in set {
        assert!(list("variables").iter().any(|v| v["name"] == *name), "{script}: no variable {name}");
    }
    let default_of = |var: &str| -> String {
        if let Some((_, value)) = set.iter().find(|(n, _)| *n == var) {
            return value.to_string();
        }
        let v = list("variables").into_iter().find(|v| v["name"] == var);
        let v = v.unwrap_or_else(|| panic!("{script}: vis.json reads undeclared variable {var}"));
        v["defaultValue"].as_str().unwrap_or_else(|| panic!("{script}: variable {var} has no default")).to_string()
    };
    let call = |func: &Value, output: String| -> ExecFunc {
        let args = func["args"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .map(|a| {
                let name = a["name"].as_str().expect("argument name").to_string();
                let value = match (a["variable"].as_str(), a["value"].as_str()) {
                    (Some(var), _) => default_of(var),
                    (None, Some(v)) => v.to_string(),
                    (None, None) => panic!("{script}: argument {name} has neither a value nor a variable"),
                };
                (name, value)
            })
            .collect();
        ExecFunc { name: func["name"].as_str().expect("func name").to_string(), args, output_prefix: output }
    };
    let mut out = Vec::new();
    for g in list("globalFuncs") {
        out.push(call(&g["func"], g["outputName"].as_str().expect("outputName").to_string()));
    }
    for (i, w) in list("widgets").iter().enumerate() {
        if w["func"].is_object() {
            let name =
                w["name"].as_str().filter(|n| !n.is_empty()).map_or_else(|| format!("widget_{i}"), str::to_string);
            out.push(call(&w["func"], name));
        } else if let Some(global) = w["globalFuncOutputName"].as_str() {
            assert!(
                list("globalFuncs").iter().any(|g| g["outputName"] == global),
                "{script}: widget {i} reads global function output {global}, which the spec does not declare"
            );
        }
    }
    out
}

/// Each widget of `vis` names columns its output has: a widget drawing a column its table lacks draws nothing
/// in the UI (which falls back to a table without a word), so the spec and the script must agree.
fn check_widget_columns(script: &str, vis: &str, outputs: &[loupe_engine::QueryOutput]) {
    let vis: Value = serde_json::from_str(vis).expect("vis.json");
    let empty = Vec::new();
    // A time series is drawn over `time_`.
    let time = Value::String(loupe_schema::TIME_COLUMN.into());
    for (i, w) in vis["widgets"].as_array().unwrap_or(&empty).iter().enumerate() {
        let output = match (w["globalFuncOutputName"].as_str(), w["name"].as_str()) {
            (Some(global), _) => global.to_string(),
            (None, Some(name)) if !name.is_empty() => name.to_string(),
            _ => format!("widget_{i}"),
        };
        let out = outputs.iter().find(|o| o.name == output);
        let out = out.unwrap_or_else(|| panic!("{script}: widget {i} reads output {output}, which is not made"));
        let spec = &w["displaySpec"];
        let kind = spec["@type"].as_str().unwrap_or_default().rsplit('.').next().unwrap_or_default();
        let columns: Vec<&Value> = match kind {
            "Table" => Vec::new(),
            "TimeseriesChart" => {
                let series = spec["timeseries"].as_array().unwrap_or(&empty);
                let named = series.iter().flat_map(|t| [&t["value"], &t["series"]]);
                named.filter(|v| !v.is_null()).chain([&time]).collect()
            }
            "BarChart" => [&spec["bar"]["value"], &spec["bar"]["label"], &spec["bar"]["groupBy"]]
                .into_iter()
                .filter(|v| !v.is_null())
                .collect(),
            "StatChart" => vec![&spec["stat"]["value"]],
            "Graph" => {
                let hover = spec["edgeHoverInfo"].as_array().unwrap_or(&empty).iter();
                [&spec["adjacencyList"]["fromColumn"], &spec["adjacencyList"]["toColumn"], &spec["edgeWeightColumn"]]
                    .into_iter()
                    .chain(hover)
                    .collect()
            }
            "StackTraceFlameGraph" => [&spec["stacktraceColumn"], &spec["countColumn"], &spec["pidColumn"]]
                .into_iter()
                .filter(|v| !v.is_null())
                .collect(),
            other => panic!("{script}: widget {i} has display type {other:?}, which the UI does not draw"),
        };
        for c in columns {
            let c = c.as_str().unwrap_or_else(|| panic!("{script}: widget {i}: column {c} is not a name"));
            assert!(out.schema.index_of(c).is_ok(), "{script}: widget {i} ({output}) draws column {c}, which it lacks");
        }
    }
}

/// (script, variables set, golden file stem).
type ArgumentCase = (&'static str, &'static [(&'static str, &'static str)], &'static str);

/// Runs with some variables set, beside every script's run with the defaults: (script, variables, golden file).
const WITH_ARGUMENTS: &[ArgumentCase] = &[
    ("px/http_data_filtered", &[("method", "POST"), ("status", "500")], "http_data_filtered.post_500"),
    ("px/slow_http_requests", &[("min_latency_ms", "500.5"), ("start_time", "-15m")], "slow_http_requests.500ms"),
    ("px/service_stats", &[("service", "10.0.0.1:8080"), ("start_time", "-1m"), ("window", "1m")], "service_stats.one"),
    ("px/dns_data", &[("query_contains", "nothing.such")], "dns_data.none"),
    ("px/redis_data", &[("command", "GET"), ("max_rows", "2")], "redis_data.get"),
    ("px/schemas", &[("table_contains", "redis")], "schemas.redis"),
];

#[test]
fn bundled_scripts_match_their_expected_output() {
    let fixture = load_fixture();
    let dir = testdata().join("golden");
    let bless = std::env::var_os("LOUPE_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).expect("golden dir");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut failures = Vec::new();
    let mut expected_files = Vec::new();
    let mut cases: Vec<(&loupe_pxl::bundled::BundledScript, Vec<ExecFunc>, String)> = Vec::new();
    for s in loupe_pxl::bundled::scripts() {
        let calls = s.vis.map(|v| default_calls(s.name, v)).unwrap_or_default();
        cases.push((s, calls, s.name.trim_start_matches("px/").to_string()));
    }
    for (name, set, stem) in WITH_ARGUMENTS {
        let s = loupe_pxl::bundled::get(name).unwrap_or_else(|| panic!("no bundled script {name}"));
        let vis = s.vis.unwrap_or_else(|| panic!("{name} has no vis spec"));
        cases.push((s, calls_with(name, vis, set), stem.to_string()));
    }
    for (s, calls, stem) in &cases {
        let options = CompileOptions { now_ns: fixture.now_ns };
        let program = loupe_pxl::compile_with_funcs(s.pxl, &fixture.engine.catalog(), &options, calls)
            .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(s.pxl, s.name)).collect::<String>()));
        let outputs = rt
            .block_on(fixture.engine.execute_program(&program, &ExecOptions::default()))
            .unwrap_or_else(|e| panic!("{}: {e}: {:?}", s.name, std::error::Error::source(&e)));
        let outputs: Vec<_> = outputs.into_iter().map(as_fixture_node).collect();
        assert!(!outputs.is_empty(), "{} has no output", s.name);
        // The data set must exercise every script; a run with arguments may select nothing.
        let with_defaults = *stem == s.name.trim_start_matches("px/");
        assert!(!with_defaults || outputs.iter().any(|o| o.num_rows() > 0), "{} answers no row", s.name);
        if let Some(vis) = s.vis {
            check_widget_columns(s.name, vis, &outputs);
        }
        let mut actual = String::new();
        for out in &outputs {
            actual.push_str(&format!("== {}\n", out.name));
            if out.num_rows() == 0 {
                // A table printer shows nothing of an empty result: its columns still matter.
                let names: Vec<&str> = out.schema.fields().iter().map(|f| f.name().as_str()).collect();
                actual.push_str(&format!("(no rows) {}\n", names.join(", ")));
                continue;
            }
            for line in lines(out, true) {
                actual.push_str(line.trim_end());
                actual.push('\n');
            }
        }
        let file = format!("{stem}.out");
        let path = dir.join(&file);
        expected_files.push(file.clone());
        if bless {
            std::fs::write(&path, &actual).expect("write .out");
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{file}\nexpected:\n{expected}actual:\n{actual}"));
        }
    }
    // A golden file without its script is a script that was renamed or removed: it must go too.
    let mut stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    stale.retain(|f| !expected_files.contains(f));
    assert!(stale.is_empty(), "golden files without a bundled script: {stale:?}");
    assert!(
        failures.is_empty(),
        "{} of {} bundled script runs differ (LOUPE_BLESS=1 rewrites testdata/golden/*.out):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
