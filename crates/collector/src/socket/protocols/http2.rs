//! HTTP/2 and gRPC in cleartext: `loupe_protocols::http2` records become `http_events` rows.
//!
//! Owns the HTTP/2 row: `major_version` 2, `minor_version` 0, `:method`/`:path`/`:status` as
//! `req_method`/`req_path`/`resp_status`, every field (pseudo-headers and trailers included) in the
//! header JSON, bodies bounded and marked as HTTP/1's, and `resp_message`: for gRPC the status name
//! and `grpc-message` from the trailers (`NOT_FOUND: no such user`), otherwise the status's reason
//! phrase. Rows whose header fields could not be decoded carry `:loupe-unresolved` in their header
//! JSON. Redaction is HTTP/1's. Must not parse bytes (that is `loupe_protocols::http2`).

use arrow::array::StringBuilder;
use loupe_protocols::http1::Message;
use loupe_protocols::http2::{self, Http2Config, Http2Conn, Record};
use loupe_protocols::redact;
use loupe_schema::TableSpec;
use loupe_schema::http::{HttpEventsBuilder, http_events};

use super::{Looks, Losses, Protocol, RowContext, append_conn8, body_text};
use crate::socket::tracker::TrackerConfig;

/// HTTP/2 (h2c) and gRPC into `http_events`.
pub struct Http2;

impl Protocol for Http2 {
    const NAME: &'static str = "http2";
    type Parser = Http2Conn;
    type Builder = HttpEventsBuilder;

    fn table() -> TableSpec {
        http_events()
    }

    fn looks_like(first: &[u8]) -> Option<Looks> {
        http2::looks_like(first).map(|client| if client { Looks::Request } else { Looks::Response })
    }

    fn parser(config: &TrackerConfig) -> Http2Conn {
        Http2Conn::new(Http2Config::from(config.parse))
    }

    fn losses(parser: &Http2Conn) -> Losses {
        let s = parser.stats();
        Losses {
            // Undecodable header blocks are marked in their rows and counted here with framing errors.
            parse_errors: s.errors + s.unresolved_blocks,
            dropped_partial: s.lost_sync,
            unpaired: s.unpaired,
            overflow: s.overflow,
        }
    }

    fn append(b: &mut HttpEventsBuilder, mut rec: Record, ctx: &RowContext<'_>) {
        let cut = (rec.req.body_truncated(), rec.resp.body_truncated());
        if ctx.config.redact {
            redact::http2_record(&mut rec);
        }
        append_conn8!(b, ctx, ctx.time_ns(rec.resp.ts_ns));
        b.major_version.append_value(2);
        b.minor_version.append_value(0);
        b.content_type.append_value(rec.resp.content_type().max(rec.req.content_type()));
        headers_json(&mut b.req_headers, &rec.req);
        b.req_method.append_value(&rec.req.method);
        b.req_path.append_value(&rec.req.path);
        body_text(&mut b.req_body, &rec.req.body, cut.0);
        b.req_body_size.append_value(rec.req.body_size as i64);
        headers_json(&mut b.resp_headers, &rec.resp);
        b.resp_status.append_value(i64::from(rec.resp.status));
        b.resp_message.append_value(resp_message(&rec.resp));
        body_text(&mut b.resp_body, &rec.resp.body, cut.1);
        b.resp_body_size.append_value(rec.resp.body_size as i64);
        b.latency_ns.append_value(rec.latency_ns as i64);
        b.end_row();
    }
}

/// gRPC status codes by number (grpc/doc/statuscodes.md).
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The response's message: gRPC's status and message when the trailers carry them, else the
/// HTTP reason phrase HTTP/2 no longer sends.
pub(crate) fn resp_message(resp: &Message) -> String {
    if let Some(code) = resp.header("grpc-status") {
        let name = code.trim().parse::<usize>().ok().and_then(|c| GRPC_CODES.get(c)).copied().unwrap_or(code);
        return match resp.header("grpc-message").map(percent_decode) {
            Some(message) if !message.is_empty() => format!("{name}: {message}"),
            _ => name.to_string(),
        };
    }
    reason(resp.status).to_string()
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses").
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |at: usize| b.get(at).and_then(|&h| char::from(h).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason phrase of the common status codes (RFC 9110 §15); empty for others.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

fn headers_json(column: &mut StringBuilder, message: &Message) {
    // Writing to a string builder cannot fail.
    let _ = message.write_headers_json(column);
    column.append_value("");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(headers: &[(&str, &str)], status: u16) -> Message {
        Message {
            kind: loupe_protocols::http1::MessageKind::Response,
            minor_version: 0,
            method: String::new(),
            path: String::new(),
            status,
            reason: String::new(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Vec::new(),
            body_size: 0,
            ts_ns: 0,
        }
    }

    #[test]
    fn grpc_status_and_message_make_the_response_message() {
        assert_eq!(resp_message(&resp(&[("grpc-status", "0")], 200)), "OK");
        assert_eq!(
            resp_message(&resp(&[("grpc-status", "5"), ("grpc-message", "no%20such%20user%3A%20%C3%A9")], 200)),
            "NOT_FOUND: no such user: é"
        );
        assert_eq!(resp_message(&resp(&[("grpc-status", "99")], 200)), "99");
        assert_eq!(resp_message(&resp(&[], 404)), "Not Found");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
    }
}
