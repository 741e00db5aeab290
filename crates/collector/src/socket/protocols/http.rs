//! HTTP/1.x: `loupe_protocols::http1` records become `http_events` rows.
//!
//! Owns the HTTP row: which columns come from which message, redaction before the row, and the
//! body truncation marker. Must not parse bytes (that is `loupe_protocols::http1`).

use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use loupe_protocols::http1::{self, Http1Conn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::http::{HttpEventRow, HttpEventsBuilder, http_events};

use super::{BODY_TRUNCATED_MARKER, Looks, Protocol, RowContext};
use crate::socket::tracker::TrackerConfig;

/// HTTP/1.0 and HTTP/1.1 into `http_events`.
pub struct Http1;

impl Protocol for Http1 {
    type Parser = Http1Conn;
    type Row = HttpEventRow;

    fn table() -> TableSpec {
        http_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        if http1::looks_like_request(first) {
            Some(Looks::Request)
        } else if http1::looks_like_response(first) {
            Some(Looks::Response)
        } else {
            None
        }
    }

    fn parser(config: &TrackerConfig) -> Http1Conn {
        Http1Conn::new(config.parse)
    }

    fn row(mut rec: Record, ctx: &RowContext<'_>) -> HttpEventRow {
        // Whether a body is whole is a fact of the capture: decide it before redaction changes the text.
        let cut = (rec.req.body_truncated(), rec.resp.body_truncated());
        if ctx.config.redact {
            redact::http1_record(&mut rec);
        }
        let (remote_addr, remote_port, local_addr, local_port) = ctx.addrs();
        HttpEventRow {
            time_ns: ctx.time_ns(rec.resp.ts_ns),
            upid: ctx.upid.to_string(),
            remote_addr,
            remote_port,
            local_addr,
            local_port,
            trace_role: ctx.role.as_trace_role(),
            encrypted: false,
            major_version: 1,
            minor_version: i64::from(rec.req.minor_version),
            content_type: rec.resp.content_type().max(rec.req.content_type()),
            req_headers: rec.req.headers_json(),
            req_method: rec.req.method.clone(),
            req_path: rec.req.path.clone(),
            req_body: body_text(&rec.req, cut.0),
            req_body_size: rec.req.body_size as i64,
            resp_headers: rec.resp.headers_json(),
            resp_status: i64::from(rec.resp.status),
            resp_message: rec.resp.reason.clone(),
            resp_body: body_text(&rec.resp, cut.1),
            resp_body_size: rec.resp.body_size as i64,
            latency_ns: rec.latency_ns as i64,
        }
    }

    fn batch(rows: &[HttpEventRow]) -> Result<RecordBatch, ArrowError> {
        let mut builder = HttpEventsBuilder::new();
        for row in rows {
            builder.append(row);
        }
        builder.finish()
    }
}

/// The kept body as column text, marked when it is not the whole body (`cut`).
fn body_text(message: &http1::Message, cut: bool) -> String {
    let mut text = String::from_utf8_lossy(&message.body).into_owned();
    if cut {
        text.push_str(BODY_TRUNCATED_MARKER);
    }
    text
}
