//! HTTP/1.x: `loupe_protocols::http1` records become `http_events` rows.
//!
//! Owns the HTTP row: which columns come from which message, redaction before the row, and the
//! body truncation marker. Values are written straight into the table's column builders: no
//! owned row and no `String` per column on the way. Must not parse bytes (that is
//! `loupe_protocols::http1`).

use arrow::array::StringBuilder;
use loupe_protocols::http1::{self, Http1Conn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::http::{HttpEventsBuilder, http_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, body_text};
use crate::socket::tracker::TrackerConfig;

/// HTTP/1.0 and HTTP/1.1 into `http_events`.
pub struct Http1;

impl Protocol for Http1 {
    const NAME: &'static str = "http1";
    type Parser = Http1Conn;
    type Builder = HttpEventsBuilder;

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
        Http1Conn::with_max_pending(config.parse, config.max_pending_messages)
    }

    fn losses(parser: &Http1Conn) -> Losses {
        let s = parser.stats();
        Losses {
            parse_errors: s.request.errors + s.response.errors,
            dropped_partial: s.request.dropped_partial + s.response.dropped_partial,
            unpaired: s.stitch.orphan_responses + s.stitch.unanswered_requests,
            overflow: s.stitch.overflow_drops,
        }
    }

    fn append(b: &mut HttpEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        append_row(b, &mut rec, ctx);
    }

    fn append_recycling(b: &mut HttpEventsBuilder, mut rec: Record, ctx: &RowContext<'_>, parser: &mut Http1Conn) {
        append_row(b, &mut rec, ctx);
        parser.recycle(rec);
    }
}

/// Appends the row of one exchange, redacted first when `ctx.config.redact` (in place: the
/// record's buffers are then reused by its parser).
fn append_row(b: &mut HttpEventsBuilder, rec: &mut Record, ctx: &RowContext<'_>) {
    // Whether a body is whole is a fact of the capture: decide it before redaction changes the text.
    let cut = (rec.req.body_truncated(), rec.resp.body_truncated());
    if ctx.config.redact {
        redact::http1_record(rec);
    }
    append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
    b.major_version.append_value(1);
    b.minor_version.append_value(i64::from(rec.req.minor_version));
    b.content_type.append_value(rec.resp.content_type().max(rec.req.content_type()));
    headers_json(&mut b.req_headers, &rec.req);
    b.req_method.append_value(&rec.req.method);
    b.req_path.append_value(&rec.req.path);
    body_text(&mut b.req_body, &rec.req.body, cut.0);
    b.req_body_size.append_value(rec.req.body_size as i64);
    headers_json(&mut b.resp_headers, &rec.resp);
    b.resp_status.append_value(i64::from(rec.resp.status));
    b.resp_message.append_value(&rec.resp.reason);
    body_text(&mut b.resp_body, &rec.resp.body, cut.1);
    b.resp_body_size.append_value(rec.resp.body_size as i64);
    b.latency_ns.append_value(rec.latency_ns as i64);
    b.end_row();
}

/// Appends the message's headers as a JSON object.
fn headers_json(column: &mut StringBuilder, message: &http1::Message) {
    // Built in a reused string, then appended once: the column's own `fmt::Write` is a buffer
    // extension per piece, and a JSON object is many small pieces.
    JSON_SCRATCH.with_borrow_mut(|json| {
        json.clear();
        // Writing to a String cannot fail.
        let _ = message.write_headers_json(json);
        column.append_value(json.as_str());
        if json.capacity() > 64 * 1024 {
            *json = String::new();
        }
    });
}

thread_local! {
    /// The text `headers_json` builds, reused from row to row.
    static JSON_SCRATCH: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}
