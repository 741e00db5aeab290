//! Shared fixtures: a store filled with a small, known set of `http_events` rows.

use std::sync::Arc;

use datafusion::arrow::util::pretty::pretty_format_batches;
use loupe_engine::{Engine, ExecOptions, QueryOutput};
use loupe_pxl::{CompileOptions, Program};
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder, http_events};
use loupe_store::{Store, StoreConfig};

/// "Now" for every test, in Unix ns.
pub const NOW: i64 = 1_700_000_000_000_000_000;
pub const SEC: i64 = 1_000_000_000;
pub const MS: i64 = 1_000_000;

/// (seconds before NOW, path, method, status, latency ms)
pub const ROWS: &[(i64, &str, &str, i64, i64)] = &[
    (10, "/a", "GET", 200, 10),
    (20, "/a", "GET", 500, 30),
    (30, "/b", "POST", 200, 20),
    (40, "/b", "POST", 404, 40),
    (50, "/a", "GET", 200, 50),
    (600, "/old", "GET", 200, 1000),
];

pub fn row(ago_s: i64, path: &str, method: &str, status: i64, latency_ms: i64) -> HttpEventRow {
    HttpEventRow {
        time_ns: NOW - ago_s * SEC,
        upid: "1:100:1".into(),
        remote_addr: "10.0.0.2".into(),
        remote_port: 40000,
        local_addr: "10.0.0.1".into(),
        local_port: 8080,
        trace_role: 2,
        major_version: 1,
        minor_version: 1,
        content_type: 1,
        req_headers: "{}".into(),
        req_method: method.into(),
        req_path: path.into(),
        req_body: format!("req {path}"),
        resp_headers: "{}".into(),
        resp_status: status,
        resp_message: "OK".into(),
        resp_body: "Hello".into(),
        latency_ns: latency_ms * MS,
        ..HttpEventRow::default()
    }
}

/// An engine over a store holding `rows`, oldest first, in batches of three.
pub fn engine_with(rows: &[HttpEventRow]) -> Engine {
    let store = Arc::new(Store::new(StoreConfig::default()));
    let table = store.register(&http_events()).expect("register http_events");
    let mut sorted = rows.to_vec();
    sorted.sort_by_key(|r| r.time_ns);
    for chunk in sorted.chunks(3) {
        let mut b = HttpEventsBuilder::new();
        for r in chunk {
            b.append(r);
        }
        table.append(b.finish().expect("batch")).expect("append");
    }
    Engine::new(store)
}

/// The standard fixture.
pub fn engine() -> Engine {
    let rows: Vec<HttpEventRow> = ROWS.iter().map(|&(a, p, m, s, l)| row(a, p, m, s, l)).collect();
    engine_with(&rows)
}

pub fn opts() -> ExecOptions {
    ExecOptions::default()
}

/// `script` compiled against `engine`'s catalog with `px.now()` at [`NOW`], as a caller of the engine
/// does (the engine itself takes plans, never text); panics with the rendered diagnostics.
pub fn compile(engine: &Engine, script: &str) -> Program {
    loupe_pxl::compile(script, &engine.catalog(), &CompileOptions { now_ns: NOW })
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(script, "test.pxl")).collect::<String>()))
}

/// Compiles and runs `script` within `opts`.
pub fn execute(engine: &Engine, script: &str, opts: &ExecOptions) -> Result<Vec<QueryOutput>, loupe_engine::ExecError> {
    let program = compile(engine, script);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(engine.execute_program(&program, opts))
}

pub fn run(engine: &Engine, script: &str) -> Vec<QueryOutput> {
    execute(engine, script, &opts()).unwrap_or_else(|e| panic!("{e}: {:?}", std::error::Error::source(&e)))
}

/// An output as table lines; `sort` sorts the data rows.
pub fn lines(out: &QueryOutput, sort: bool) -> Vec<String> {
    let text = pretty_format_batches(&out.batches).expect("format").to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if sort && lines.len() > 4 {
        let n = lines.len();
        lines[3..n - 1].sort();
    }
    lines
}
