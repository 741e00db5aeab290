//! `VizierService` over one node's store: compile and run a script, stream Arrow results back.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
use loupe_engine::{Engine, ExecError, ExecOptions};
use loupe_proto::arrow_ipc;
use loupe_proto::vizierpb::vizier_service_server::VizierService;
use loupe_proto::vizierpb::{
    CompilerError, ErrorCode, ExecuteScriptRequest, ExecuteScriptResponse, HealthCheckRequest, HealthCheckResponse,
    QueryData, QueryExecutionStats, QueryMetadata, Status, execute_script_response,
};
use tonic::{Request, Response};

/// The version string servers report.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Largest script accepted, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 1 << 20;

/// Serves scripts against one engine.
pub struct QueryService {
    engine: Arc<Engine>,
    probes: Vec<String>,
}

impl QueryService {
    /// A service over `engine`; `probes` is what the agent reports in health checks.
    pub fn new(engine: Arc<Engine>, probes: Vec<String>) -> Self {
        QueryService { engine, probes }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, tonic::Status>> + Send>>;

fn status_response(query_id: &str, status: Status) -> ExecuteScriptResponse {
    ExecuteScriptResponse {
        query_id: query_id.to_string(),
        result: Some(execute_script_response::Result::Status(status)),
    }
}

/// Maps an execution error to the wire status: compile errors keep every diagnostic.
pub fn error_status(error: &ExecError) -> Status {
    match error {
        ExecError::Compile(diags) => Status {
            code: ErrorCode::InvalidArgument as i32,
            message: diags.first().map_or_else(|| "compilation failed".to_string(), |d| d.message.clone()),
            compiler_errors: diags
                .iter()
                .map(|d| CompilerError {
                    line: d.line,
                    column: d.column,
                    message: d.message.clone(),
                    span_start: d.span.start as u64,
                    span_end: d.span.end as u64,
                    notes: d.notes.clone(),
                    helps: d.helps.clone(),
                })
                .collect(),
        },
        other => Status { code: ErrorCode::Internal as i32, message: other.to_string(), compiler_errors: vec![] },
    }
}

/// Runs a script and renders every response message, in order.
pub async fn execute(engine: &Engine, req: &ExecuteScriptRequest, query_id: &str) -> Vec<ExecuteScriptResponse> {
    let msg = |r| ExecuteScriptResponse { query_id: query_id.to_string(), result: Some(r) };
    if req.query_str.len() > MAX_SCRIPT_BYTES {
        return vec![status_response(
            query_id,
            Status {
                code: ErrorCode::InvalidArgument as i32,
                message: format!("script is {} bytes; the limit is {MAX_SCRIPT_BYTES}", req.query_str.len()),
                compiler_errors: vec![],
            },
        )];
    }
    let opts = ExecOptions { now_ns: (req.now_ns != 0).then_some(req.now_ns), ..ExecOptions::default() };
    let started = Instant::now();
    let outputs = match engine.execute_script(&req.query_str, &opts).await {
        Ok(o) => o,
        Err(e) => {
            if !matches!(e, ExecError::Compile(_)) {
                tracing::warn!(error = %e, query = %req.query_name, "script failed");
            }
            return vec![status_response(query_id, error_status(&e))];
        }
    };
    let exec_ns = started.elapsed().as_nanos() as i64;
    let mut out = Vec::new();
    let mut records = 0i64;
    for (i, o) in outputs.iter().enumerate() {
        let id = i.to_string();
        let schema = match arrow_ipc::encode_schema(&o.schema) {
            Ok(s) => s,
            Err(e) => return vec![internal(query_id, &e)],
        };
        out.push(msg(execute_script_response::Result::MetaData(QueryMetadata {
            name: o.name.clone(),
            id: id.clone(),
            arrow_schema: schema,
        })));
        let n = o.batches.len();
        for (j, b) in o.batches.iter().enumerate() {
            records += b.num_rows() as i64;
            let bytes = match arrow_ipc::encode_batch(b) {
                Ok(s) => s,
                Err(e) => return vec![internal(query_id, &e)],
            };
            out.push(msg(execute_script_response::Result::Data(QueryData {
                table_id: id.clone(),
                arrow_batch: bytes,
                num_rows: b.num_rows() as u64,
                eos: j + 1 == n,
            })));
        }
        if n == 0 {
            out.push(msg(execute_script_response::Result::Data(QueryData {
                table_id: id,
                arrow_batch: vec![],
                num_rows: 0,
                eos: true,
            })));
        }
    }
    out.push(msg(execute_script_response::Result::Stats(QueryExecutionStats {
        compilation_time_ns: 0,
        execution_time_ns: exec_ns,
        records_processed: records,
        bytes_processed: 0,
    })));
    out
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

#[tonic::async_trait]
impl VizierService for QueryService {
    type ExecuteScriptStream = ResponseStream;

    async fn execute_script(
        &self,
        request: Request<ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, tonic::Status> {
        let req = request.into_inner();
        let query_id = format!("{:016x}", rand_id());
        tracing::info!(query_id, name = %req.query_name, bytes = req.query_str.len(), "executing script");
        let msgs = execute(&self.engine, &req, &query_id).await;
        Ok(Response::new(Box::pin(tokio_stream::iter(msgs.into_iter().map(Ok)))))
    }

    async fn health_check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        Ok(Response::new(HealthCheckResponse {
            status: Some(Status { code: ErrorCode::Ok as i32, message: "ok".into(), compiler_errors: vec![] }),
            version: VERSION.to_string(),
            probes: self.probes.clone(),
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
