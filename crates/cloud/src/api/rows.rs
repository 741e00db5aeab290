//! `POST /api/v1/query`: the query API for a browser. It runs a PxL script on one of the caller's viziers
//! through the same passthrough as `loupe.vizier.v1.VizierService` (`query::QueryPassthrough`: the caller's
//! credential, their org's viziers only, the vizier's own limits) and streams the results back as JSON lines
//! (`application/x-ndjson`), so a page reads them with `fetch` and no Arrow or gRPC-web code.
//!
//! Each line is one object: `{"table", "columns": [{"name", "type", "semantic_type"}]}` announces a table,
//! `{"table", "rows": [[…], …]}` carries rows of it (integers, durations and floats as JSON numbers, booleans as
//! booleans, anything else as its text: timestamps in RFC 3339), `{"error": {"code", "message",
//! "compiler_errors"}}` is a failure after the stream began (a compile error with its line and column), and
//! `{"done": true, "rows", "truncated"}` ends it. A function-form script (one with a vis spec) runs its
//! functions as `exec_funcs`, which the page builds from the spec and its variables, as Pixie's UI does.
//!
//! The rows of one call are capped (`max_rows`, at most [`MAX_ROWS`]), and which rows the cap keeps does not
//! depend on which agent answers first: rows stream as they come while the total stays within the cap; once
//! it is exceeded, the rest of the result is read (at most [`MAX_SCANNED`] rows) keeping only the first rows
//! in a stable order (by table name, then by the row's cells in column order, so by `time_` first where a table
//! starts with it), and the stream sends `{"reset": true}` (forget the rows so far), those rows, and
//! `{"done": true, "rows", "truncated": true, "total_rows"}` (`total_rows`: how many the vizier returned, or
//! read before giving up at [`MAX_SCANNED`], then `"complete": false`). A failure before the first line (no
//! credential, no such vizier) is an ordinary REST error.
//!
//! Declared with the REST routes (so the OpenAPI document describes it); the passthrough comes as a request
//! extension that `app` adds. Owns the JSON shape of results. Must not decide who the caller is or which
//! vizier they may reach (`query` and the services do), and holds no state between calls.

use std::collections::HashMap;

use arrow::array::{Array, AsArray as _, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::{Body, Bytes};
use axum::extract::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use futures::{Stream, StreamExt as _};
use loupe_proto::vizierpb::exec_func::ArgValue;
use loupe_proto::vizierpb::vizier_service_server::VizierService as _;
use loupe_proto::vizierpb::{ExecFunc, ExecuteScriptRequest, ExecuteScriptResponse, execute_script_response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiJson;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::gateway::CallContext;
use crate::query::{CLUSTER_METADATA, QueryPassthrough};

/// The most rows one call returns, over all its tables: enough for a page, small enough for a browser.
pub const MAX_ROWS: u64 = 10_000;

/// The most rows one call reads from the vizier to pick the rows it keeps once past the cap (each vizier also
/// caps each output table, `--max-output-rows`): past it the query is dropped and the kept rows are the first
/// of what was read.
pub const MAX_SCANNED: u64 = 100 * MAX_ROWS;

/// The longest script one call may run, as a saved script may be.
pub const MAX_SCRIPT_CHARS: usize = 256 * 1024;

/// The most functions one call may run (a vis spec's global functions and widgets).
pub const MAX_EXEC_FUNCS: usize = 64;

/// The route's path.
pub const PATH: &str = "/api/v1/query";

/// `POST /api/v1/query`: a script to run, and where.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The PxL source.
    #[schema(
        min_length = 1,
        max_length = 262144,
        pattern = r"\S",
        example = "import px\npx.display(px.DataFrame(table='http_events', start_time='-5m'))\n"
    )]
    pub pxl: String,
    /// The vizier, by name or id; may be left out when the org has exactly one.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub vizier: Option<String>,
    /// The script's name, for the vizier's logs (`px/http_data`).
    #[serde(default)]
    #[schema(max_length = 256)]
    pub name: String,
    /// The row cap of this call (at most, and by default, 10000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10000)]
    pub max_rows: Option<u64>,
    /// The script's functions to run, each displayed as its `output_table_prefix` (from the vis spec and its
    /// variables, as `px run` makes them).
    #[serde(default)]
    #[schema(max_items = 64)]
    pub exec_funcs: Vec<RunFunc>,
}

/// One function of a function-form script and its arguments (as text, converted by its parameters' types).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunFunc {
    /// The function's name in the script.
    pub func_name: String,
    /// Its arguments.
    #[serde(default)]
    pub arg_values: Vec<RunArg>,
    /// The name of the output table it makes.
    pub output_table_prefix: String,
}

/// One argument of a [`RunFunc`].
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunArg {
    /// The parameter's name.
    pub name: String,
    /// Its value as text.
    pub value: String,
}

/// Runs a PxL script on one of the caller's viziers and streams its results as JSON lines.
///
/// Each line is one object: `{"table", "columns": [{"name", "type", "semantic_type"}]}` announces a table,
/// `{"table", "rows": [[...]]}` carries rows of it, `{"reset": true}` (past the row cap) drops the rows sent
/// so far before the rows kept are sent again, `{"error": {"code", "message", "compiler_errors": [{"line",
/// "column", "message"}]}}` is a failure after the stream began (a compile error among them), and `{"done":
/// true, "rows", "truncated", "total_rows"}` ends it. Past the cap (`max_rows`, at most 10000 over all tables)
/// the rows kept are the first in a stable order: by table name, then by their cells in column order.
#[utoipa::path(post, path = "/api/v1/query", tag = "query", request_body = RunRequest, responses(
    (status = 200, description = "the results, one JSON object per line", content_type = "application/x-ndjson",
        body = String),
    (status = 404, description = "no vizier of this name or id in the caller's org", body = ErrorBody),
    (status = 412, description = "the caller's org has no vizier", body = ErrorBody),
    (status = 503, description = "the vizier is not connected to the cloud", body = ErrorBody),
))]
pub async fn run(
    Extension(queries): Extension<QueryPassthrough>,
    context: CallContext,
    ApiJson(run): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    if run.pxl.trim().is_empty() {
        return Err(ApiError::invalid("the script is empty"));
    }
    if run.pxl.chars().count() > MAX_SCRIPT_CHARS {
        return Err(ApiError::invalid(format!("the script is longer than {MAX_SCRIPT_CHARS} characters")));
    }
    if run.name.chars().count() > 256 || run.vizier.as_ref().is_some_and(|v| v.chars().count() > 256) {
        return Err(ApiError::invalid("`name` and `vizier` are at most 256 characters"));
    }
    if run.exec_funcs.len() > MAX_EXEC_FUNCS {
        return Err(ApiError::invalid(format!("at most {MAX_EXEC_FUNCS} functions may run in one call")));
    }
    let cap = run.max_rows.unwrap_or(MAX_ROWS);
    if !(1..=MAX_ROWS).contains(&cap) {
        return Err(ApiError::invalid(format!("`max_rows` must be 1 to {MAX_ROWS}")));
    }
    let exec_funcs = run
        .exec_funcs
        .into_iter()
        .map(|f| ExecFunc {
            func_name: f.func_name,
            arg_values: f.arg_values.into_iter().map(|a| ArgValue { name: a.name, value: a.value }).collect(),
            output_table_prefix: f.output_table_prefix,
        })
        .collect();
    let mut request = context.request(ExecuteScriptRequest {
        query_str: run.pxl,
        query_name: run.name,
        now_ns: 0,
        exec_funcs,
        ..Default::default()
    });
    if let Some(vizier) = run.vizier.filter(|v| !v.trim().is_empty()) {
        let value = vizier.trim().parse().map_err(|_| ApiError::invalid("`vizier` must be a vizier's name or id"))?;
        request.metadata_mut().insert(CLUSTER_METADATA, value);
    }
    request.extensions_mut().insert(context);
    let replies = queries.execute_script(request).await?.into_inner();
    let lines = Lines::new(cap);
    let body = futures::stream::unfold((replies, lines), |(mut replies, mut lines)| async move {
        if lines.finished {
            return None;
        }
        // Never an empty chunk: a zero-length chunk would end a chunked HTTP/1.1 body early.
        let chunk = loop {
            let chunk = match replies.next().await {
                Some(Ok(reply)) => lines.reply(reply),
                Some(Err(status)) => {
                    lines.finished = true;
                    let code = loupe_proto::ErrorCode::from_grpc(status.code()).as_str_name();
                    line(&json!({ "error": { "code": code, "message": status.message() } }))
                }
                None => lines.end(true),
            };
            if !chunk.is_empty() {
                break chunk;
            }
        };
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), (replies, lines)))
    });
    Ok(ndjson(body))
}

fn ndjson(body: impl Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static) -> Response {
    let mut response = Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One JSON line.
fn line(value: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The state of one call's stream: its tables by id, the rows sent or kept so far, and the cap.
struct Lines {
    tables: HashMap<String, String>,
    /// Rows sent while under the cap (kept to pick from once past it), then the first rows in the stable order.
    kept: Vec<(String, Vec<Value>)>,
    /// Rows the vizier returned so far.
    seen: u64,
    cap: u64,
    /// Past the cap: rows are kept, not sent, until the end.
    over: bool,
    finished: bool,
}

impl Lines {
    fn new(cap: u64) -> Self {
        Lines { tables: HashMap::new(), kept: Vec::new(), seen: 0, cap, over: false, finished: false }
    }

    /// The lines one reply of the vizier becomes (none for statistics).
    fn reply(&mut self, reply: ExecuteScriptResponse) -> Vec<u8> {
        match reply.result {
            Some(execute_script_response::Result::MetaData(meta)) => {
                let columns = match loupe_proto::arrow_ipc::decode_schema(&meta.arrow_schema) {
                    Ok(schema) => columns(&schema),
                    Err(e) => return self.fail("Internal", &format!("the vizier sent an unreadable schema: {e}")),
                };
                self.tables.insert(meta.id, meta.name.clone());
                line(&json!({ "table": meta.name, "columns": columns }))
            }
            Some(execute_script_response::Result::Data(data)) => {
                // A table's end of stream may come alone, with no batch.
                let Some(table) = self.tables.get(&data.table_id).cloned().filter(|_| !data.arrow_batch.is_empty())
                else {
                    return Vec::new();
                };
                let batches = match loupe_proto::arrow_ipc::decode_batches(&data.arrow_batch) {
                    Ok(batches) => batches,
                    Err(e) => return self.fail("Internal", &format!("the vizier sent an unreadable batch: {e}")),
                };
                let mut out = Vec::new();
                for batch in batches {
                    let room = usize::try_from(MAX_SCANNED - self.seen).unwrap_or(usize::MAX);
                    let rows = json_rows(&batch, room);
                    let taken = rows.len();
                    self.seen += taken as u64;
                    if !self.over && self.kept.len() as u64 + rows.len() as u64 <= self.cap {
                        if !rows.is_empty() {
                            out.extend(line(&json!({ "table": table, "rows": rows })));
                        }
                        self.kept.extend(rows.into_iter().map(|r| (table.clone(), cells_of(r))));
                    } else {
                        self.over = true;
                        self.kept.extend(rows.into_iter().map(|r| (table.clone(), cells_of(r))));
                        // Bounded memory: never more than twice the cap held between trims.
                        if self.kept.len() as u64 >= 2 * self.cap {
                            self.trim();
                        }
                    }
                    if self.seen >= MAX_SCANNED && batch.num_rows() > taken {
                        out.extend(self.end(false));
                        break;
                    }
                }
                out
            }
            Some(execute_script_response::Result::Status(status)) if status.code != 0 => {
                self.finished = true;
                let code = loupe_proto::vizierpb::ErrorCode::try_from(status.code)
                    .map(|c| c.as_str_name().to_owned())
                    .unwrap_or_else(|_| status.code.to_string());
                let errors: Vec<Value> = status
                    .compiler_errors
                    .iter()
                    .map(|e| json!({ "line": e.line, "column": e.column, "message": e.message }))
                    .collect();
                line(&json!({ "error": { "code": code, "message": status.message, "compiler_errors": errors } }))
            }
            _ => Vec::new(),
        }
    }

    /// Keeps the first `cap` rows in the stable order.
    fn trim(&mut self) {
        self.kept.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| compare_rows(&a.1, &b.1)));
        self.kept.truncate(usize::try_from(self.cap).unwrap_or(usize::MAX));
    }

    /// The last lines: under the cap, `done`; past it, `reset`, the kept rows by table, and `done` saying so.
    /// `complete` is false when the read stopped at [`MAX_SCANNED`].
    fn end(&mut self, complete: bool) -> Vec<u8> {
        self.finished = true;
        if !self.over {
            return line(&json!({ "done": true, "rows": self.kept.len(), "truncated": false }));
        }
        self.trim();
        let mut out = line(&json!({ "reset": true }));
        let kept = std::mem::take(&mut self.kept);
        let rows = kept.len();
        for chunk in kept.chunk_by(|a, b| a.0 == b.0) {
            for part in chunk.chunks(1000) {
                let cells: Vec<Value> = part.iter().map(|(_, r)| Value::Array(r.clone())).collect();
                out.extend(line(&json!({ "table": part[0].0, "rows": cells })));
            }
        }
        let mut done = json!({ "done": true, "rows": rows, "truncated": true, "total_rows": self.seen });
        if !complete {
            done["complete"] = json!(false);
        }
        out.extend(line(&done));
        out
    }

    fn fail(&mut self, code: &str, message: &str) -> Vec<u8> {
        self.finished = true;
        line(&json!({ "error": { "code": code, "message": message } }))
    }
}

fn cells_of(row: Value) -> Vec<Value> {
    match row {
        Value::Array(cells) => cells,
        other => vec![other],
    }
}

/// A total order of rows: cell by cell, nulls first, then booleans, numbers, text.
fn compare_rows(a: &[Value], b: &[Value]) -> std::cmp::Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    fn cell(a: &Value, b: &Value) -> std::cmp::Ordering {
        match (a, b) {
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(x), Some(y), _, _) => x.cmp(&y),
                (_, _, Some(x), Some(y)) => x.cmp(&y),
                _ => x.as_f64().unwrap_or(0.0).total_cmp(&y.as_f64().unwrap_or(0.0)),
            },
            (Value::String(x), Value::String(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)).then_with(|| a.to_string().cmp(&b.to_string())),
        }
    }
    a.iter().zip(b).map(|(x, y)| cell(x, y)).find(|o| o.is_ne()).unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// The columns of a table as its first line names them.
fn columns(schema: &SchemaRef) -> Vec<Value> {
    schema
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name(),
                "type": f.data_type().to_string(),
                "semantic_type": f.metadata().get("px.semantic_type").cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// How one column's cells become JSON.
enum Cells<'a> {
    Signed(arrow::array::ArrayRef),
    Unsigned(arrow::array::ArrayRef),
    Float(arrow::array::ArrayRef),
    Bool(&'a arrow::array::BooleanArray),
    Text(ArrayFormatter<'a>),
}

fn cells<'a>(array: &'a dyn Array, options: &'a FormatOptions<'a>) -> Option<Cells<'a>> {
    use DataType::*;
    let cast = |to: &DataType| arrow::compute::cast(array, to).ok();
    Some(match array.data_type() {
        Int8 | Int16 | Int32 | Int64 | Duration(_) => Cells::Signed(cast(&Int64)?),
        UInt8 | UInt16 | UInt32 | UInt64 => Cells::Unsigned(cast(&UInt64)?),
        Float16 | Float32 | Float64 => Cells::Float(cast(&Float64)?),
        Boolean => Cells::Bool(array.as_boolean()),
        _ => Cells::Text(ArrayFormatter::try_new(array, options).ok()?),
    })
}

impl Cells<'_> {
    fn get(&self, row: usize) -> Value {
        match self {
            Cells::Signed(a) => a.as_primitive::<Int64Type>().value(row).into(),
            Cells::Unsigned(a) => a.as_primitive::<UInt64Type>().value(row).into(),
            Cells::Float(a) => a.as_primitive::<Float64Type>().value(row).into(),
            Cells::Bool(a) => a.value(row).into(),
            Cells::Text(f) => f.value(row).to_string().into(),
        }
    }
}

/// Up to `limit` rows of `batch`, each an array of cells in column order (`null` for a null cell).
fn json_rows(batch: &RecordBatch, limit: usize) -> Vec<Value> {
    let options = FormatOptions::default();
    let columns: Vec<Option<Cells<'_>>> = batch.columns().iter().map(|c| cells(c.as_ref(), &options)).collect();
    (0..batch.num_rows().min(limit))
        .map(|row| {
            Value::Array(
                batch
                    .columns()
                    .iter()
                    .zip(&columns)
                    .map(|(array, cells)| match cells {
                        Some(cells) if !array.is_null(row) => cells.get(row),
                        _ => Value::Null,
                    })
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampNanosecondArray;
    use arrow::array::{BooleanArray, DurationNanosecondArray, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time_", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Field::new("req_path", DataType::Utf8, true),
            Field::new("resp_status", DataType::Int64, false),
            Field::new("latency", DataType::Duration(TimeUnit::Nanosecond), false),
            Field::new("ratio", DataType::Float64, false),
            Field::new("ok", DataType::Boolean, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![1_700_000_000_000_000_000, 1_700_000_001_500_000_000])),
                Arc::new(StringArray::from(vec![Some("/<script>alert(1)</script>"), None])),
                Arc::new(Int64Array::from(vec![200, 404])),
                Arc::new(DurationNanosecondArray::from(vec![1_500_000, 7])),
                Arc::new(Float64Array::from(vec![0.5, 2.0])),
                Arc::new(BooleanArray::from(vec![true, false])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn cells_keep_numbers_as_numbers_and_text_as_text() {
        let rows = json_rows(&batch(), 10);
        assert_eq!(
            Value::Array(rows),
            json!([
                ["2023-11-14T22:13:20", "/<script>alert(1)</script>", 200, 1_500_000, 0.5, true],
                ["2023-11-14T22:13:21.500", null, 404, 7, 2.0, false],
            ])
        );
        assert_eq!(json_rows(&batch(), 1).len(), 1);
    }

    fn meta(name: &str, id: &str) -> ExecuteScriptResponse {
        ExecuteScriptResponse {
            query_id: String::new(),
            result: Some(execute_script_response::Result::MetaData(loupe_proto::vizierpb::QueryMetadata {
                name: name.into(),
                id: id.into(),
                arrow_schema: loupe_proto::arrow_ipc::encode_schema(&batch().schema()).expect("schema"),
            })),
        }
    }

    fn data(id: &str, batch: &RecordBatch) -> ExecuteScriptResponse {
        ExecuteScriptResponse {
            query_id: String::new(),
            result: Some(execute_script_response::Result::Data(loupe_proto::vizierpb::QueryData {
                table_id: id.into(),
                arrow_batch: loupe_proto::arrow_ipc::encode_batch(batch).expect("batch"),
                num_rows: batch.num_rows() as u64,
                eos: false,
            })),
        }
    }

    fn parse(out: &[u8]) -> Vec<Value> {
        String::from_utf8_lossy(out).lines().map(|l| serde_json::from_str(l).expect("json")).collect()
    }

    #[test]
    fn under_the_cap_rows_stream_as_they_come() {
        let mut lines = Lines::new(4);
        let first = parse(&lines.reply(meta("http_data", "t1")));
        assert_eq!(first[0]["table"], "http_data");
        assert_eq!(first[0]["columns"][2], json!({ "name": "resp_status", "type": "Int64", "semantic_type": "" }));
        assert_eq!(parse(&lines.reply(data("t1", &batch())))[0]["rows"].as_array().expect("rows").len(), 2);
        let mut eos = data("t1", &batch());
        if let Some(execute_script_response::Result::Data(d)) = &mut eos.result {
            d.arrow_batch.clear();
        }
        assert!(lines.reply(eos).is_empty(), "an end of stream alone is no line");
        assert_eq!(parse(&lines.reply(data("t1", &batch())))[0]["rows"].as_array().expect("rows").len(), 2);
        assert!(!lines.finished);
        assert_eq!(parse(&lines.end(true)), [json!({ "done": true, "rows": 4, "truncated": false })]);
        assert!(lines.finished);
    }

    /// Rows 0..n of one table: `time_` counting up, a status that says which row it is.
    fn numbered(from: i64, to: i64) -> RecordBatch {
        let n = usize::try_from(to - from).expect("n");
        let schema = batch().schema();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(
                    (from..to).map(|i| 1_700_000_000_000_000_000 + i).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(vec![Some("/"); n])),
                Arc::new(Int64Array::from((from..to).collect::<Vec<_>>())),
                Arc::new(DurationNanosecondArray::from(vec![1; n])),
                Arc::new(Float64Array::from(vec![0.5; n])),
                Arc::new(BooleanArray::from(vec![true; n])),
            ],
        )
        .expect("batch")
    }

    /// Every line of a call that gets `batches` (table id, rows from, rows to) in this order.
    fn stream(cap: u64, batches: &[(&str, i64, i64)]) -> Vec<Value> {
        let mut lines = Lines::new(cap);
        let mut out = lines.reply(meta("a", "ta"));
        out.extend(lines.reply(meta("b", "tb")));
        for (id, from, to) in batches {
            out.extend(lines.reply(data(id, &numbered(*from, *to))));
        }
        out.extend(lines.end(true));
        parse(&out)
    }

    /// What the page keeps: the rows after the last `reset`, by table.
    fn kept(lines: &[Value]) -> Vec<(String, i64)> {
        let from = lines.iter().rposition(|l| l["reset"] == true).map_or(0, |i| i + 1);
        lines[from..]
            .iter()
            .filter_map(|l| Some((l["table"].as_str()?.to_owned(), l["rows"].as_array()?)))
            .flat_map(|(t, rows)| rows.iter().map(move |r| (t.clone(), r[2].as_i64().expect("status"))))
            .collect()
    }

    #[test]
    fn past_the_cap_the_first_rows_in_a_stable_order_are_kept_whoever_answers_first() {
        // Two agents' partitions of two tables, arriving in two different orders.
        let one = stream(5, &[("ta", 4, 8), ("tb", 0, 3), ("ta", 0, 4), ("tb", 3, 6)]);
        let two = stream(5, &[("tb", 3, 6), ("ta", 0, 4), ("tb", 0, 3), ("ta", 4, 8)]);
        let want: Vec<(String, i64)> = (0..5).map(|i| ("a".to_owned(), i)).collect();
        assert_eq!(kept(&one), want);
        assert_eq!(kept(&two), want);
        for lines in [&one, &two] {
            assert_eq!(lines.iter().filter(|l| l["reset"] == true).count(), 1);
            assert_eq!(lines.last(), Some(&json!({ "done": true, "rows": 5, "truncated": true, "total_rows": 14 })));
        }
        // Within the cap nothing is reset and every row comes.
        let all = stream(20, &[("tb", 0, 3), ("ta", 0, 4)]);
        assert_eq!(all.iter().filter(|l| l["reset"] == true).count(), 0);
        assert_eq!(kept(&all).len(), 7);
        assert_eq!(all.last(), Some(&json!({ "done": true, "rows": 7, "truncated": false })));
        // Many batches past the cap: memory stays bounded and the answer is the same.
        let many: Vec<(&str, i64, i64)> = (0..50).rev().map(|i| ("ta", i * 10, i * 10 + 10)).collect();
        let lines = stream(25, &many);
        assert_eq!(kept(&lines), (0..25).map(|i| ("a".to_owned(), i)).collect::<Vec<_>>());
    }

    #[test]
    fn a_compile_error_carries_its_line() {
        let mut lines = Lines::new(3);
        let status = loupe_proto::vizierpb::Status {
            code: loupe_proto::vizierpb::ErrorCode::InvalidArgument.into(),
            message: "compilation failed".into(),
            compiler_errors: vec![loupe_proto::vizierpb::CompilerError {
                line: 3,
                column: 5,
                message: "unknown column 'nope'".into(),
                ..Default::default()
            }],
        };
        let out = lines.reply(ExecuteScriptResponse {
            query_id: String::new(),
            result: Some(execute_script_response::Result::Status(status)),
        });
        let value: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(
            value,
            json!({ "error": { "code": "INVALID_ARGUMENT", "message": "compilation failed",
                "compiler_errors": [{ "line": 3, "column": 5, "message": "unknown column 'nope'" }] } })
        );
        assert!(lines.finished);
    }
}
