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
    fn a_finished_builder_starts_the_next_batch_at_the_last_ones_size() {
        let mut b = HttpEventsBuilder::new();
        let row = HttpEventRow { req_path: "/a/path/of/some/length".into(), ..Default::default() };
        for _ in 0..5000 {
            b.append(&row);
        }
        let first = b.finish().expect("batch");
        assert_eq!(first.num_rows(), 5000);
        // Room for the last batch and an eighth, so the next one of that size never grows by doubling.
        assert!(b.latency_ns.capacity() >= 5000 + 5000 / 8, "{}", b.latency_ns.capacity());
        let before = b.latency_ns.capacity();
        for _ in 0..5000 {
            b.append(&row);
        }
        assert_eq!(b.latency_ns.capacity(), before, "the second batch fit without growing");
        let second = b.finish().expect("batch");
        assert_eq!(HttpEventRow::from_batch(&second), HttpEventRow::from_batch(&first));
        assert_eq!(second.schema(), http_events().arrow_schema());
        // An empty batch leaves a builder that still works.
        let empty = b.finish().expect("empty batch");
        assert_eq!(empty.num_rows(), 0);
        b.append(&row);
        assert_eq!(b.finish().expect("batch").num_rows(), 1);
    }

    #[test]
    fn builder_matches_schema() {
        let mut b = HttpEventsBuilder::new();
        b.append(&HttpEventRow { time_ns: 1, resp_status: 200, ..Default::default() });
        b.append(&HttpEventRow { time_ns: 2, resp_status: 404, ..Default::default() });
        b.time_ns.append_value(3);
        b.upid.append_value("1:2:3");
        for column in [&mut b.remote_addr, &mut b.local_addr, &mut b.req_headers, &mut b.req_method] {
            column.append_value("x");
        }
        for column in [&mut b.req_path, &mut b.req_body, &mut b.resp_headers, &mut b.resp_message, &mut b.resp_body] {
            column.append_value("y");
        }
        for column in [&mut b.remote_port, &mut b.local_port, &mut b.trace_role, &mut b.major_version] {
            column.append_value(1);
        }
        for column in [&mut b.minor_version, &mut b.content_type, &mut b.req_body_size, &mut b.resp_status] {
            column.append_value(2);
        }
        b.resp_body_size.append_value(5);
        b.latency_ns.append_value(6);
        b.encrypted.append_value(true);
        b.end_row();
        let snapshot = b.snapshot().expect("valid snapshot");
        assert_eq!(b.len(), 3, "a snapshot leaves the rows pending");
        let batch = b.finish().expect("valid batch");
        assert_eq!(batch, snapshot);
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema(), http_events().arrow_schema());
        assert!(b.is_empty());
        let rows = HttpEventRow::from_batch(&batch);
        assert_eq!(rows[1], HttpEventRow { time_ns: 2, resp_status: 404, ..Default::default() });
        assert_eq!(
            (rows[2].upid.as_str(), rows[2].req_method.as_str(), rows[2].resp_body.as_str()),
            ("1:2:3", "x", "y")
        );
        assert_eq!(
            (rows[2].minor_version, rows[2].resp_body_size, rows[2].latency_ns, rows[2].encrypted),
            (2, 5, 6, true)
        );
    }
}
