//! `POST /api/v1/query`: the query API for a browser. It runs a PxL script on one of the caller's viziers
//! through the same passthrough as `loupe.vizier.v1.VizierService` (`query::QueryPassthrough`: the caller's
//! credential, their org's viziers only, the vizier's own limits) and streams the results back as JSON lines
//! (`application/x-ndjson`), so a page reads them with `fetch` and no Arrow or gRPC-web code.
//!
//! Each line is one object: `{"table", "columns": [{"name", "type", "semantic_type"}]}` announces a table,
//! `{"table", "rows": [[…], …]}` carries rows of it (integers, durations and floats as JSON numbers, booleans as
//! booleans, anything else as its text: timestamps in RFC 3339), `{"error": {"code", "message",
//! "compiler_errors"}}` is a failure after the stream began (a compile error with its line and column), and
//! `{"done": true, "rows", "truncated"}` ends it. The rows of one call are capped (`max_rows`, at most
//! [`MAX_ROWS`]): past the cap the stream ends with `truncated: true` and the query is dropped, which cancels
//! it on the vizier. A failure before the first line (no credential, no such vizier) is an ordinary REST error.
//!
//! Owns the JSON shape of results. Must not decide who the caller is or which vizier they may reach (`query`
//! and the services do), and holds no state between calls.

use std::collections::HashMap;

use arrow::array::{Array, AsArray as _, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use axum::body::{Body, Bytes};
use axum::extract::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse as _, Response};
use futures::{Stream, StreamExt as _};
use loupe_proto::vizierpb::vizier_service_server::VizierService as _;
use loupe_proto::vizierpb::{ExecuteScriptRequest, ExecuteScriptResponse, execute_script_response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiJson;
use crate::error::{ApiError, ApiResult};
use crate::gateway::CallContext;
use crate::query::{CLUSTER_METADATA, QueryPassthrough};

/// The most rows one call returns, over all its tables: enough for a page, small enough for a browser.
pub const MAX_ROWS: u64 = 10_000;

/// The route's path.
pub const PATH: &str = "/api/v1/query";

/// What to run, and where.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The PxL source.
    pub pxl: String,
    /// The vizier, by name or id; may be left out when the org has exactly one.
    #[serde(default)]
    pub vizier: Option<String>,
    /// The script's name, for the vizier's logs (`px/http_data`).
    #[serde(default)]
    pub name: String,
    /// The row cap of this call (at most, and by default, [`MAX_ROWS`]).
    #[serde(default)]
    pub max_rows: Option<u64>,
}

/// `POST /api/v1/query`, mounted with the passthrough as an extension (`app`).
pub async fn run(
    Extension(queries): Extension<QueryPassthrough>,
    context: CallContext,
    ApiJson(run): ApiJson<RunRequest>,
) -> ApiResult<Response> {
    if run.pxl.trim().is_empty() {
        return Err(ApiError::invalid("the script is empty"));
    }
    let cap = run.max_rows.unwrap_or(MAX_ROWS).clamp(1, MAX_ROWS);
    let mut request = context.request(ExecuteScriptRequest {
        query_str: run.pxl,
        query_name: run.name,
        now_ns: 0,
        ..Default::default()
    });
    if let Some(vizier) = run.vizier.filter(|v| !v.trim().is_empty()) {
        let value = vizier.trim().parse().map_err(|_| ApiError::invalid("`vizier` must be a vizier's name or id"))?;
        request.metadata_mut().insert(CLUSTER_METADATA, value);
    }
    request.extensions_mut().insert(context);
    let replies = queries.execute_script(request).await?.into_inner();
    let lines = Lines { tables: HashMap::new(), rows: 0, cap, finished: false };
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
                None => {
                    lines.finished = true;
                    line(&json!({ "done": true, "rows": lines.rows, "truncated": false }))
                }
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

/// The state of one call's stream: its tables by id, and the rows sent so far.
struct Lines {
    tables: HashMap<String, String>,
    rows: u64,
    cap: u64,
    finished: bool,
}

impl Lines {
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
                    let room = usize::try_from(self.cap - self.rows).unwrap_or(usize::MAX);
                    let rows = json_rows(&batch, room);
                    self.rows += rows.len() as u64;
                    if !rows.is_empty() {
                        out.extend(line(&json!({ "table": table, "rows": rows })));
                    }
                    if self.rows >= self.cap && batch.num_rows() > rows.len() {
                        self.finished = true;
                        out.extend(line(&json!({ "done": true, "rows": self.rows, "truncated": true })));
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

    fn fail(&mut self, code: &str, message: &str) -> Vec<u8> {
        self.finished = true;
        line(&json!({ "error": { "code": code, "message": message } }))
    }
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

    #[test]
    fn the_row_cap_ends_the_stream_as_truncated() {
        let schema = batch().schema();
        let meta = ExecuteScriptResponse {
            query_id: String::new(),
            result: Some(execute_script_response::Result::MetaData(loupe_proto::vizierpb::QueryMetadata {
                name: "http_data".into(),
                id: "t1".into(),
                arrow_schema: loupe_proto::arrow_ipc::encode_schema(&schema).expect("schema"),
            })),
        };
        let data = ExecuteScriptResponse {
            query_id: String::new(),
            result: Some(execute_script_response::Result::Data(loupe_proto::vizierpb::QueryData {
                table_id: "t1".into(),
                arrow_batch: loupe_proto::arrow_ipc::encode_batch(&batch()).expect("batch"),
                num_rows: 2,
                eos: true,
            })),
        };
        let mut lines = Lines { tables: HashMap::new(), rows: 0, cap: 3, finished: false };
        let mut eos = data.clone();
        if let Some(execute_script_response::Result::Data(d)) = &mut eos.result {
            d.arrow_batch.clear();
        }
        let first: Value = serde_json::from_slice(&lines.reply(meta)).expect("json");
        assert_eq!(first["table"], "http_data");
        assert_eq!(first["columns"][2], json!({ "name": "resp_status", "type": "Int64", "semantic_type": "" }));
        assert_eq!(lines.reply(data.clone()).iter().filter(|b| **b == b'\n').count(), 1);
        assert!(!lines.finished);
        assert!(lines.reply(eos).is_empty(), "an end of stream alone is no line");
        let last = String::from_utf8(lines.reply(data)).expect("utf8");
        let last: Vec<Value> = last.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(last[0]["rows"].as_array().expect("rows").len(), 1);
        assert_eq!(last[1], json!({ "done": true, "rows": 3, "truncated": true }));
        assert!(lines.finished);
    }

    #[test]
    fn a_compile_error_carries_its_line() {
        let mut lines = Lines { tables: HashMap::new(), rows: 0, cap: 3, finished: false };
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
