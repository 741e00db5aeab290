//! `http_events`: one row per HTTP/1.x or HTTP/2 request-response pair (Pixie's columns).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use crate::ColumnType::{Boolean, Int64, String as Str, Time64Ns, Uint128};
use crate::{TableSpec, col};

/// Name of the HTTP table.
pub const HTTP_EVENTS: &str = "http_events";

/// The `http_events` table: the CONN8 prefix followed by HTTP columns.
pub fn http_events() -> TableSpec {
    TableSpec {
        name: HTTP_EVENTS,
        desc: "HTTP/1.x and HTTP/2 (gRPC) request-response pairs",
        columns: vec![
            col("time_", Time64Ns, "ST_NONE", "time of the response that completed the pair"),
            col("upid", Uint128, "ST_UPID", "process owning the traced socket"),
            col("remote_addr", Str, "ST_IP_ADDRESS", "peer IP address"),
            col("remote_port", Int64, "ST_PORT", "peer port"),
            col("local_addr", Str, "ST_IP_ADDRESS", "own IP address"),
            col("local_port", Int64, "ST_PORT", "own port"),
            col("trace_role", Int64, "ST_NONE", "role of the traced process: 1 client, 2 server, 4 unknown"),
            col("encrypted", Boolean, "ST_NONE", "payload captured as TLS plaintext"),
            col("major_version", Int64, "ST_NONE", "HTTP major version"),
            col("minor_version", Int64, "ST_NONE", "HTTP minor version"),
            col("content_type", Int64, "ST_NONE", "0 unknown, 1 JSON, 2 gRPC"),
            col("req_headers", Str, "ST_NONE", "request headers as a JSON object"),
            col("req_method", Str, "ST_HTTP_REQ_METHOD", "request method"),
            col("req_path", Str, "ST_NONE", "request path and query"),
            col("req_body", Str, "ST_NONE", "request body, truncated; a cut body ends with ... [TRUNCATED]"),
            col(
                "req_body_size",
                Int64,
                "ST_BYTES",
                "request body size before truncation (bytes not captured included)",
            ),
            col("resp_headers", Str, "ST_NONE", "response headers as a JSON object"),
            col("resp_status", Int64, "ST_HTTP_RESP_STATUS", "response status code"),
            col("resp_message", Str, "ST_HTTP_RESP_MESSAGE", "response reason phrase"),
            col("resp_body", Str, "ST_NONE", "response body, truncated; a cut body ends with ... [TRUNCATED]"),
            col(
                "resp_body_size",
                Int64,
                "ST_BYTES",
                "response body size before truncation (bytes not captured included)",
            ),
            col("latency", Int64, "ST_DURATION_NS", "response time minus request time"),
        ],
    }
}

/// One `http_events` row, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpEventRow {
    /// Wall-clock ns of the response.
    pub time_ns: i64,
    /// UPID text form.
    pub upid: String,
    /// Peer IP.
    pub remote_addr: String,
    /// Peer port.
    pub remote_port: i64,
    /// Own IP.
    pub local_addr: String,
    /// Own port.
    pub local_port: i64,
    /// 1 client, 2 server, 4 unknown.
    pub trace_role: i64,
    /// Captured from TLS plaintext.
    pub encrypted: bool,
    /// 1 or 2.
    pub major_version: i64,
    /// 0 or 1.
    pub minor_version: i64,
    /// 0 unknown, 1 JSON, 2 gRPC.
    pub content_type: i64,
    /// JSON object.
    pub req_headers: String,
    /// GET, POST, ...
    pub req_method: String,
    /// Path and query.
    pub req_path: String,
    /// Truncated body; one that is not whole ends with `... [TRUNCATED]`.
    pub req_body: String,
    /// Size before truncation.
    pub req_body_size: i64,
    /// JSON object.
    pub resp_headers: String,
    /// Status code.
    pub resp_status: i64,
    /// Reason phrase.
    pub resp_message: String,
    /// Truncated body; one that is not whole ends with `... [TRUNCATED]`.
    pub resp_body: String,
    /// Size before truncation.
    pub resp_body_size: i64,
    /// Nanoseconds.
    pub latency_ns: i64,
}

/// Accumulates `http_events` rows column by column and emits record batches.
pub struct HttpEventsBuilder {
    schema: SchemaRef,
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    remote_addr: StringBuilder,
    remote_port: Int64Builder,
    local_addr: StringBuilder,
    local_port: Int64Builder,
    trace_role: Int64Builder,
    encrypted: BooleanBuilder,
    major_version: Int64Builder,
    minor_version: Int64Builder,
    content_type: Int64Builder,
    req_headers: StringBuilder,
    req_method: StringBuilder,
    req_path: StringBuilder,
    req_body: StringBuilder,
    req_body_size: Int64Builder,
    resp_headers: StringBuilder,
    resp_status: Int64Builder,
    resp_message: StringBuilder,
    resp_body: StringBuilder,
    resp_body_size: Int64Builder,
    latency: Int64Builder,
    rows: usize,
}

impl HttpEventsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        HttpEventsBuilder {
            schema: http_events().arrow_schema(),
            time: TimestampNanosecondBuilder::new(),
            upid: StringBuilder::new(),
            remote_addr: StringBuilder::new(),
            remote_port: Int64Builder::new(),
            local_addr: StringBuilder::new(),
            local_port: Int64Builder::new(),
            trace_role: Int64Builder::new(),
            encrypted: BooleanBuilder::new(),
            major_version: Int64Builder::new(),
            minor_version: Int64Builder::new(),
            content_type: Int64Builder::new(),
            req_headers: StringBuilder::new(),
            req_method: StringBuilder::new(),
            req_path: StringBuilder::new(),
            req_body: StringBuilder::new(),
            req_body_size: Int64Builder::new(),
            resp_headers: StringBuilder::new(),
            resp_status: Int64Builder::new(),
            resp_message: StringBuilder::new(),
            resp_body: StringBuilder::new(),
            resp_body_size: Int64Builder::new(),
            latency: Int64Builder::new(),
            rows: 0,
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no rows are pending.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &HttpEventRow) {
        self.time.append_value(r.time_ns);
        self.upid.append_value(&r.upid);
        self.remote_addr.append_value(&r.remote_addr);
        self.remote_port.append_value(r.remote_port);
        self.local_addr.append_value(&r.local_addr);
        self.local_port.append_value(r.local_port);
        self.trace_role.append_value(r.trace_role);
        self.encrypted.append_value(r.encrypted);
        self.major_version.append_value(r.major_version);
        self.minor_version.append_value(r.minor_version);
        self.content_type.append_value(r.content_type);
        self.req_headers.append_value(&r.req_headers);
        self.req_method.append_value(&r.req_method);
        self.req_path.append_value(&r.req_path);
        self.req_body.append_value(&r.req_body);
        self.req_body_size.append_value(r.req_body_size);
        self.resp_headers.append_value(&r.resp_headers);
        self.resp_status.append_value(r.resp_status);
        self.resp_message.append_value(&r.resp_message);
        self.resp_body.append_value(&r.resp_body);
        self.resp_body_size.append_value(r.resp_body_size);
        self.latency.append_value(r.latency_ns);
        self.rows += 1;
    }

    /// Emits the pending rows as one batch and resets the builder.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.upid.finish()),
            Arc::new(self.remote_addr.finish()),
            Arc::new(self.remote_port.finish()),
            Arc::new(self.local_addr.finish()),
            Arc::new(self.local_port.finish()),
            Arc::new(self.trace_role.finish()),
            Arc::new(self.encrypted.finish()),
            Arc::new(self.major_version.finish()),
            Arc::new(self.minor_version.finish()),
            Arc::new(self.content_type.finish()),
            Arc::new(self.req_headers.finish()),
            Arc::new(self.req_method.finish()),
            Arc::new(self.req_path.finish()),
            Arc::new(self.req_body.finish()),
            Arc::new(self.req_body_size.finish()),
            Arc::new(self.resp_headers.finish()),
            Arc::new(self.resp_status.finish()),
            Arc::new(self.resp_message.finish()),
            Arc::new(self.resp_body.finish()),
            Arc::new(self.resp_body_size.finish()),
            Arc::new(self.latency.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}

impl Default for HttpEventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_matches_schema() {
        let mut b = HttpEventsBuilder::new();
        b.append(&HttpEventRow { time_ns: 1, resp_status: 200, ..Default::default() });
        b.append(&HttpEventRow { time_ns: 2, resp_status: 404, ..Default::default() });
        let batch = b.finish().expect("valid batch");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), http_events().arrow_schema());
        assert!(b.is_empty());
    }
}
