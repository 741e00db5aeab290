//! `VizierService` over one node's store: compile and split a script (`loupe-planner`), run the plan
//! within the operator's limits (`loupe-engine`), stream Arrow results back as they are produced.
//!
//! Owns the mapping of compile diagnostics, engine events and errors to response messages, and the
//! stats (compile time as the planner measured it). Must not parse, type-check or split PxL itself
//! (the planner does), nor lower plans (the engine does). Must not check credentials:
//! whoever mounts the service puts a check in front (`query_auth` on a PEM's port, the cloud's
//! `require_user` on the API's).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::Stream;
use loupe_engine::{Cancelled, Engine, ExecError, ExecOptions, QueryEvent, QuerySink};
use loupe_planner::PlanError;
use loupe_proto::arrow_ipc;
use loupe_proto::vizierpb::vizier_service_server::VizierService;
use loupe_proto::vizierpb::{
    CompilerError, ErrorCode, ExecuteScriptRequest, ExecuteScriptResponse, HealthCheckRequest, HealthCheckResponse,
    QueryData, QueryExecutionStats, QueryMetadata, Status, execute_script_response,
};
use loupe_pxl::otel::OtelEndpoint;
use loupe_pxl::{CompileOptions, Diagnostic};
use tonic::{Request, Response};

use crate::health::ProbeReport;

/// The version string servers report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Largest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// Serves scripts against one engine.
pub struct QueryService {
    engine: Arc<Engine>,
    limits: ExecOptions,
    probes: ProbeReport,
    running: Arc<AtomicU64>,
}

impl QueryService {
    /// A service over `engine`, running every query within `limits`; `probes` is what the agent
    /// reports in health checks.
    pub fn new(engine: Arc<Engine>, limits: ExecOptions, probes: ProbeReport) -> Self {
        QueryService { engine, limits, probes, running: Arc::default() }
    }

    /// Counts the queries running now in `running` (shared with the metrics).
    pub fn with_running_counter(mut self, running: Arc<AtomicU64>) -> Self {
        self.running = running;
        self
    }
}

/// Holds one count of the running queries while alive.
struct Running(Arc<AtomicU64>);

impl Running {
    fn start(counter: &Arc<AtomicU64>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Running(Arc::clone(counter))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, tonic::Status>> + Send>>;

fn status_response(query_id: &str, status: Status) -> ExecuteScriptResponse {
    ExecuteScriptResponse {
        query_id: query_id.to_string(),
        result: Some(execute_script_response::Result::Status(status)),
    }
}

/// Why a query failed, at whichever step.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The script does not compile; every diagnostic goes to the client.
    #[error("script does not compile: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Compile(Vec<Diagnostic>),
    /// The plan needs more than this node can run.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The engine failed or stopped the query.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// `px.export` could not deliver its rows.
    #[error(transparent)]
    Export(#[from] loupe_export::ExportError),
}

/// A compiler diagnostic in its wire form: every field, so the client draws the caret from it and
/// the text it sent (`CompilerError::render`).
pub fn compiler_error(d: &Diagnostic) -> CompilerError {
    CompilerError {
        line: d.line,
        column: d.column,
        message: d.message.clone(),
        span_start: d.span.start as u64,
        span_end: d.span.end as u64,
        notes: d.notes.clone(),
        helps: d.helps.clone(),
    }
}

/// Maps a failure to the wire status: compile errors keep every diagnostic.
pub fn error_status(error: &QueryError) -> Status {
    let error = match error {
        QueryError::Compile(diags) => {
            return Status {
                code: ErrorCode::InvalidArgument as i32,
                message: diags.first().map_or_else(|| "compilation failed".to_string(), |d| d.message.clone()),
                compiler_errors: diags.iter().map(compiler_error).collect(),
            };
        }
        QueryError::Plan(e) => {
            return Status {
                code: ErrorCode::FailedPrecondition as i32,
                message: e.to_string(),
                compiler_errors: vec![],
            };
        }
        QueryError::Export(e) => {
            use loupe_export::ExportError as E;
            let code = match e {
                E::NoEndpoint | E::Endpoint(_) => ErrorCode::FailedPrecondition,
                E::Send(_) | E::Refused(_) => ErrorCode::Unavailable,
                E::Convert(_) => ErrorCode::Internal,
            };
            return Status { code: code as i32, message: e.to_string(), compiler_errors: vec![] };
        }
        QueryError::Exec(e) => e,
    };
    match error {
        ExecError::Timeout(_) => {
            Status { code: ErrorCode::DeadlineExceeded as i32, message: error.to_string(), compiler_errors: vec![] }
        }
        ExecError::MemoryLimit { .. } => {
            Status { code: ErrorCode::ResourceExhausted as i32, message: error.to_string(), compiler_errors: vec![] }
        }
        other => Status { code: ErrorCode::Internal as i32, message: other.to_string(), compiler_errors: vec![] },
    }
}

/// The functions a request asks to call (a vis spec's), as the compiler takes them.
pub(crate) fn exec_funcs(req: &ExecuteScriptRequest) -> Vec<loupe_pxl::ExecFunc> {
    req.exec_funcs
        .iter()
        .map(|f| loupe_pxl::ExecFunc {
            name: f.func_name.clone(),
            args: f.arg_values.iter().map(|a| (a.name.clone(), a.value.clone())).collect(),
            output_prefix: f.output_table_prefix.clone(),
        })
        .collect()
}

/// Runs one request within `limits` and sends every response message to `tx` as it is ready: per
/// output its metadata, its batches as DataFusion produces them, an empty `eos` message; then the
/// stats, or a `Status` when the script fails. Returns when the query ends, fails, or `tx`'s
/// receiver is dropped (the client went away), which stops the query at once.
pub async fn run_query(engine: &Engine, req: &ExecuteScriptRequest, query_id: &str, limits: ExecOptions, tx: Sender) {
    run_query_exporting(engine, req, query_id, limits, None, None, tx).await;
}

/// [`run_query`], with `export_default` the endpoint of a `px.export` that names none, and `cron_script` the
/// name of the cron script this query runs, whose outputs are then kept in the engine's history.
pub async fn run_query_exporting(
    engine: &Engine,
    req: &ExecuteScriptRequest,
    query_id: &str,
    limits: ExecOptions,
    export_default: Option<OtelEndpoint>,
    cron_script: Option<String>,
    tx: Sender,
) {
    if req.query_str.len() > MAX_SCRIPT_BYTES {
        let status = Status {
            code: ErrorCode::InvalidArgument as i32,
            message: format!("script is {} bytes; the limit is {MAX_SCRIPT_BYTES}", req.query_str.len()),
            compiler_errors: vec![],
        };
        let _ = tx.send(Ok(status_response(query_id, status))).await;
        return;
    }
    let now_ns = if req.now_ns != 0 { req.now_ns } else { loupe_common::time::now_unix_ns() };
    let mut sink = GrpcSink { tx: tx.clone(), query_id: query_id.to_owned(), encode_error: None };
    // Compile and split here, in the caller of the engine: the engine only ever sees plans.
    let funcs = exec_funcs(req);
    let options = CompileOptions { now_ns };
    // `px sql`: the same engine, limits and stream, over SQL instead of PxL (nothing to compile here).
    if req.language == loupe_proto::vizierpb::QueryLanguage::Sql as i32 {
        let started = Instant::now();
        let run = engine.execute_sql_to(&req.query_str, &limits, &mut sink);
        let result = tokio::select! {
            r = run => r,
            () = tx.closed() => Err(ExecError::Cancelled),
        };
        let last = match (result, sink.encode_error.take()) {
            (_, Some(e)) => internal(query_id, &e),
            (Ok(rows), None) => msg(
                query_id,
                execute_script_response::Result::Stats(QueryExecutionStats {
                    compilation_time_ns: 0,
                    execution_time_ns: i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                    records_processed: rows as i64,
                    bytes_processed: 0,
                    ..Default::default()
                }),
            ),
            (Err(ExecError::Cancelled), None) => return,
            (Err(ExecError::Sql(e)), None) => status_response(
                query_id,
                Status { code: ErrorCode::InvalidArgument as i32, message: e.to_string(), compiler_errors: vec![] },
            ),
            (Err(e), None) => status_response(query_id, error_status(&QueryError::Exec(e))),
        };
        let _ = tx.send(Ok(last)).await;
        return;
    }
    let planned = loupe_planner::plan_single_node_with_funcs(&req.query_str, &engine.catalog(), &options, &funcs)
        .map_err(QueryError::Compile);
    let compile_time = planned.as_ref().map_or(Duration::ZERO, |p| p.compile_time);
    let started = Instant::now();
    let result = match planned.and_then(|p| Ok(p.into_local()?)) {
        Ok(program) => {
            tracing::debug!(query_id, compile_ns = compile_time.as_nanos() as u64, "script compiled");
            // A cron run's outputs are also kept in history (those not exported).
            let keeping = cron_script.is_some() && engine.history().is_some();
            let mut keep = crate::cron_results::ResultsSink::new(&mut sink, keeping);
            // `px.export`'s outputs go to OpenTelemetry, not to the client.
            let mut exporting = crate::export::ExportSink::new(&program, &mut keep, export_default);
            let run = engine.execute_program_to(&program, &limits, &mut exporting);
            // A client that leaves while DataFusion computes (no message to send yet) stops it too.
            let r = tokio::select! {
                r = run => r.map_err(QueryError::Exec),
                () = tx.closed() => Err(QueryError::Exec(ExecError::Cancelled)),
            };
            let r = match (r, exporting.error.take()) {
                (Ok(_), Some(e)) => Err(QueryError::Export(e)),
                (r, _) => r,
            };
            if r.is_ok() {
                keep.write(engine.history(), cron_script.as_deref(), now_ns).await;
            }
            r
        }
        Err(e) => Err(e),
    };
    let last = match (result, sink.encode_error.take()) {
        (_, Some(e)) => internal(query_id, &e),
        (Ok(rows), None) => {
            tracing::info!(
                query_id,
                compile_us = compile_time.as_micros() as u64,
                execute_us = started.elapsed().as_micros() as u64,
                rows,
                "script done"
            );
            msg(
                query_id,
                execute_script_response::Result::Stats(QueryExecutionStats {
                    compilation_time_ns: i64::try_from(compile_time.as_nanos()).unwrap_or(i64::MAX),
                    execution_time_ns: i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                    records_processed: rows as i64,
                    bytes_processed: 0,
                    ..Default::default()
                }),
            )
        }
        (Err(QueryError::Exec(ExecError::Cancelled)), None) => {
            tracing::info!(query_id, "client went away; query stopped");
            return;
        }
        (Err(e), None) => {
            match &e {
                QueryError::Compile(_) => {}
                QueryError::Exec(ExecError::Timeout(_) | ExecError::MemoryLimit { .. }) => {
                    tracing::warn!(query_id, error = %e, query = %req.query_name, "script stopped at a limit")
                }
                _ => tracing::warn!(query_id, error = %e, query = %req.query_name, "script failed"),
            }
            status_response(query_id, error_status(&e))
        }
    };
    let _ = tx.send(Ok(last)).await;
}

/// The sending half of a response stream.
pub type Sender = tokio::sync::mpsc::Sender<Result<ExecuteScriptResponse, tonic::Status>>;

fn msg(query_id: &str, result: execute_script_response::Result) -> ExecuteScriptResponse {
    ExecuteScriptResponse { query_id: query_id.to_string(), result: Some(result) }
}

/// Encodes each engine event as a response message and sends it; a closed stream cancels the query.
struct GrpcSink {
    tx: Sender,
    query_id: String,
    /// Why encoding failed, if it did (the query is then cancelled and an internal error sent).
    encode_error: Option<String>,
}

impl GrpcSink {
    fn encode(&self, event: QueryEvent) -> Result<ExecuteScriptResponse, String> {
        let result = match event {
            QueryEvent::Output { index, name, schema } => execute_script_response::Result::MetaData(QueryMetadata {
                name,
                id: index.to_string(),
                arrow_schema: arrow_ipc::encode_schema(&schema).map_err(|e| e.to_string())?,
            }),
            QueryEvent::Batch { index, batch } => execute_script_response::Result::Data(QueryData {
                table_id: index.to_string(),
                arrow_batch: arrow_ipc::encode_batch(&batch).map_err(|e| e.to_string())?,
                num_rows: batch.num_rows() as u64,
                eos: false,
            }),
            // The end of an output is only known after its last batch: an empty message says so.
            QueryEvent::OutputEnd { index } => execute_script_response::Result::Data(QueryData {
                table_id: index.to_string(),
                arrow_batch: vec![],
                num_rows: 0,
                eos: true,
            }),
        };
        Ok(msg(&self.query_id, result))
    }
}

impl QuerySink for GrpcSink {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        let message = match self.encode(event) {
            Ok(m) => m,
            Err(e) => {
                self.encode_error = Some(e);
                return Err(Cancelled);
            }
        };
        self.tx.send(Ok(message)).await.map_err(|_| Cancelled)
    }
}

fn internal(query_id: &str, e: &dyn std::fmt::Display) -> ExecuteScriptResponse {
    tracing::error!(error = %e, "failed to encode results");
    status_response(
        query_id,
        Status {
            code: ErrorCode::Internal as i32,
            message: "failed to encode results".into(),
            compiler_errors: vec![],
        },
    )
}

/// Messages buffered per query between DataFusion and the client: enough to keep both busy, few
/// enough that a slow client holds the query back rather than growing memory.
const STREAM_BUFFER: usize = 4;

#[tonic::async_trait]
impl VizierService for QueryService {
    type ExecuteScriptStream = ResponseStream;

    async fn execute_script(
        &self,
        request: Request<ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, tonic::Status> {
        let export_default = crate::export::default_endpoint(request.metadata());
        let cron_script = crate::cron_results::cron_script(request.metadata());
        let req = request.into_inner();
        let query_id = format!("{:016x}", rand_id());
        tracing::info!(query_id, name = %req.query_name, bytes = req.query_str.len(), "executing script");
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let engine = Arc::clone(&self.engine);
        let limits = self.limits;
        let running = Running::start(&self.running);
        tokio::spawn(async move {
            run_query_exporting(&engine, &req, &query_id, limits, export_default, cron_script, tx).await;
            drop(running);
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn health_check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        let status = match self.probes.readiness() {
            Ok(()) => Status { code: ErrorCode::Ok as i32, message: "ok".into(), compiler_errors: vec![] },
            Err(why) => Status { code: ErrorCode::Unavailable as i32, message: why, compiler_errors: vec![] },
        };
        Ok(Response::new(HealthCheckResponse {
            status: Some(status),
            version: VERSION.to_string(),
            probes: self.probes.lines(),
        }))
    }
}

/// A process-unique id: time-seeded counter, good enough to correlate logs.
fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seq = NEXT.fetch_add(1, Ordering::Relaxed);
    (loupe_common::time::now_unix_ns() as u64).rotate_left(17) ^ seq
}

#[cfg(test)]
mod tests {
    use loupe_collector::ProbeStatus;
    use loupe_store::{Store, StoreConfig};

    use super::*;

    async fn health(probes: ProbeReport) -> HealthCheckResponse {
        let engine = Arc::new(Engine::new(Arc::new(Store::new(StoreConfig::default()))));
        let service = QueryService::new(engine, ExecOptions::default(), probes);
        service.health_check(Request::new(HealthCheckRequest {})).await.expect("answers").into_inner()
    }

    /// Every message `run_query` sends for `script`, over a store with `http_events` registered and empty.
    async fn answer(script: &str) -> Vec<execute_script_response::Result> {
        let store = Arc::new(Store::new(StoreConfig::default()));
        store.register(&loupe_schema::http::http_events()).expect("register");
        let engine = Engine::new(store);
        let req =
            ExecuteScriptRequest { query_str: script.into(), query_name: "t".into(), now_ns: 0, ..Default::default() };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        run_query(&engine, &req, "q", ExecOptions::default(), tx).await;
        let mut out = Vec::new();
        while let Some(m) = rx.recv().await {
            out.push(m.expect("no transport error").result.expect("a result"));
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_report_the_time_the_planner_spent_compiling_a_bundled_script() {
        let script = loupe_pxl::bundled::get("px/http_request_stats").expect("bundled");
        let messages = answer(script.pxl).await;
        assert_eq!(messages.len(), 3, "metadata, end of the (empty) table, stats: {messages:?}");
        let Some(execute_script_response::Result::Stats(stats)) = messages.last() else {
            panic!("ends with stats: {messages:?}")
        };
        assert!(stats.compilation_time_ns > 0, "{stats:?}");
        // Measured here (debug build): 0.7 to 1.0 ms to compile and split px/http_request_stats.
        assert!(stats.compilation_time_ns < 5_000_000_000, "{stats:?}");
        assert_eq!(stats.records_processed, 0);
        println!("px/http_request_stats compiled in {} ns", stats.compilation_time_ns);
    }

    /// A vis spec's functions (`exec_funcs`) run through the request: each output is named by its prefix.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exec_funcs_in_the_request_call_the_scripts_functions() {
        use loupe_proto::vizierpb::{ExecFunc, exec_func::ArgValue};
        let store = Arc::new(Store::new(StoreConfig::default()));
        store.register(&loupe_schema::http::http_events()).expect("register");
        let engine = Engine::new(store);
        let script = "import px\ndef rows(start_time: str, n: int):\n    return px.DataFrame('http_events', start_time=start_time).head(n)\n";
        let arg = |name: &str, value: &str| ArgValue { name: name.into(), value: value.into() };
        let req = ExecuteScriptRequest {
            query_str: script.into(),
            exec_funcs: vec![ExecFunc {
                func_name: "rows".into(),
                arg_values: vec![arg("start_time", "-5m"), arg("n", "3")],
                output_table_prefix: "Table".into(),
            }],
            ..Default::default()
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        run_query(&engine, &req, "q", ExecOptions::default(), tx).await;
        let first = rx.recv().await.expect("a message").expect("no transport error").result;
        let Some(execute_script_response::Result::MetaData(meta)) = first else { panic!("metadata first: {first:?}") };
        assert_eq!(meta.name, "Table");
    }

    /// `px sql`: the same run over SQL; a statement that would change anything, or names no table, is refused.
    #[tokio::test]
    async fn sql_requests_run_over_the_same_tables_and_refuse_changes() {
        use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
        let store = Arc::new(Store::new(StoreConfig::default()));
        let table = store.register(&loupe_schema::http::http_events()).expect("register");
        let mut b = HttpEventsBuilder::new();
        for (path, status) in [("/a", 200), ("/a", 500), ("/b", 200)] {
            b.append(&HttpEventRow { req_path: path.into(), resp_status: status, ..HttpEventRow::default() });
        }
        table.append(b.finish().expect("batch")).expect("append");
        let engine = Engine::new(store);
        let run = async |sql: &str| {
            let req = ExecuteScriptRequest {
                query_str: sql.into(),
                language: loupe_proto::vizierpb::QueryLanguage::Sql as i32,
                ..Default::default()
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel(64);
            run_query(&engine, &req, "q", ExecOptions::default(), tx).await;
            let mut out = Vec::new();
            while let Some(m) = rx.recv().await {
                out.push(m.expect("no transport error").result.expect("a result"));
            }
            out
        };
        let messages = run("SELECT req_path, count(*) AS n FROM http_events GROUP BY req_path").await;
        let Some(execute_script_response::Result::MetaData(meta)) = messages.first() else {
            panic!("metadata first: {messages:?}")
        };
        assert_eq!(meta.name, "output");
        let rows: u64 = messages
            .iter()
            .map(|m| match m {
                execute_script_response::Result::Data(d) => d.num_rows,
                _ => 0,
            })
            .sum();
        assert_eq!(rows, 2);
        assert!(matches!(messages.last(), Some(execute_script_response::Result::Stats(_))), "{messages:?}");
        for (sql, says) in [("DROP TABLE http_events", "DDL"), ("SELECT * FROM nope", "nope")] {
            let messages = run(sql).await;
            let [execute_script_response::Result::Status(status)] = messages.as_slice() else {
                panic!("one status: {messages:?}")
            };
            assert_eq!(status.code, ErrorCode::InvalidArgument as i32, "{sql}");
            assert!(status.message.contains(says), "{sql}: {}", status.message);
        }
    }

    #[tokio::test]
    async fn compile_errors_travel_with_every_field_and_draw_the_same_caret_as_the_compiler() {
        let src = "import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_statu >= 400]\npx.display(df)\n";
        let messages = answer(src).await;
        let [execute_script_response::Result::Status(status)] = messages.as_slice() else {
            panic!("one status: {messages:?}")
        };
        assert_eq!(status.code, ErrorCode::InvalidArgument as i32);
        let at = src.find("resp_statu").expect("in the script") as u64;
        let expected = CompilerError {
            line: 3,
            column: 12,
            message: "unknown column `resp_statu` in table `http_events`".into(),
            span_start: at,
            span_end: at + 10,
            notes: vec![],
            helps: vec!["did you mean `resp_status`?".into()],
        };
        assert_eq!(status.compiler_errors, vec![expected]);
        let d = loupe_pxl::compile(src, &loupe_pxl::SchemaCatalog, &CompileOptions { now_ns: 0 }).expect_err("fails");
        assert_eq!(status.compiler_errors[0].render(src, "t.pxl"), d[0].render(src, "t.pxl"));
    }

    #[tokio::test]
    async fn the_health_check_is_not_ok_when_a_probe_failed_to_attach() {
        let probes = [
            ProbeStatus { name: "syscalls/sys_enter_read".into(), attached: true, error: None },
            ProbeStatus { name: "syscalls/sys_enter_nope".into(), attached: false, error: Some("absent".into()) },
        ];
        let failing = health(ProbeReport::tracing(&probes)).await;
        let status = failing.status.expect("status");
        assert_eq!(
            (status.code, status.message.as_str()),
            (ErrorCode::Unavailable as i32, "1 of 2 probes not attached: syscalls/sys_enter_nope (absent)")
        );
        assert_eq!(failing.probes, ["syscalls/sys_enter_read: ok", "syscalls/sys_enter_nope: absent"]);
        for ok in [ProbeReport::tracing(&probes[..1]), ProbeReport::not_tracing()] {
            let status = health(ok).await.status.expect("status");
            assert_eq!((status.code, status.message.as_str()), (ErrorCode::Ok as i32, "ok"));
        }
    }
}
