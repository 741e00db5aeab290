//! `http_events`: one row per HTTP/1.x or HTTP/2 request-response pair (Pixie's columns).

/// Name of the HTTP table.
pub const HTTP_EVENTS: &str = "http_events";

crate::conn8_table! {
    /// The `http_events` table: the CONN8 prefix followed by HTTP columns.
    http_events = "http_events", "HTTP/1.x and HTTP/2 (gRPC) request-response pairs", HttpEventRow, HttpEventsBuilder {
        major_version: I64 = "major_version", "ST_NONE", "HTTP major version";
        minor_version: I64 = "minor_version", "ST_NONE", "HTTP minor version";
        content_type: I64 = "content_type", "ST_NONE", "0 unknown, 1 JSON, 2 gRPC";
        req_headers: Str = "req_headers", "ST_NONE", "request headers as a JSON object";
        req_method: Str = "req_method", "ST_HTTP_REQ_METHOD", "request method";
        req_path: Str = "req_path", "ST_NONE", "request path and query";
        req_body: Str = "req_body", "ST_NONE", "request body, truncated; a cut body ends with `... [TRUNCATED]`";
        req_body_size: I64 = "req_body_size", "ST_BYTES", "request body size before truncation (bytes not captured included)";
        resp_headers: Str = "resp_headers", "ST_NONE", "response headers as a JSON object";
        resp_status: I64 = "resp_status", "ST_HTTP_RESP_STATUS", "response status code";
        resp_message: Str = "resp_message", "ST_HTTP_RESP_MESSAGE", "response reason phrase";
        resp_body: Str = "resp_body", "ST_NONE", "response body, truncated; a cut body ends with `... [TRUNCATED]`";
        resp_body_size: I64 = "resp_body_size", "ST_BYTES", "response body size before truncation (bytes not captured included)";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
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
