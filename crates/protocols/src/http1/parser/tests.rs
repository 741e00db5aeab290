//! Unit tests for `StreamParser`: every case is also fed split at every byte boundary.

use super::*;

fn parser(kind: MessageKind, methods: &[&str]) -> StreamParser {
    let mut p = StreamParser::new(kind, ParseConfig::default());
    for method in methods {
        p.note_request(method);
    }
    p
}

fn without_ts(mut messages: Vec<Message>) -> Vec<Message> {
    for m in &mut messages {
        m.ts_ns = 0;
    }
    messages
}

/// Parses `input` in one feed, then split at every position and byte by byte, asserting the
/// same messages (timestamps aside) and stats come out; returns the one-feed parser's output.
fn check_splits(kind: MessageKind, input: &[u8], methods: &[&str]) -> (Vec<Message>, ParseStats) {
    let mut whole = parser(kind, methods);
    let mut expected = Vec::new();
    whole.feed(input, 1, &mut expected);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let mut p = parser(kind, methods);
        let mut got = Vec::new();
        p.feed(a, 1, &mut got);
        p.feed(b, 2, &mut got);
        assert_eq!(without_ts(got), without_ts(expected.clone()), "split at {split}");
        assert_eq!(p.stats(), whole.stats(), "stats, split at {split}");
    }
    let mut p = parser(kind, methods);
    let mut got = Vec::new();
    for (i, byte) in input.iter().enumerate() {
        p.feed(std::slice::from_ref(byte), i as u64, &mut got);
    }
    assert_eq!(without_ts(got), without_ts(expected.clone()), "byte by byte");
    (expected, whole.stats())
}

fn requests(input: &[u8]) -> Vec<Message> {
    check_splits(MessageKind::Request, input, &[]).0
}

fn responses(input: &[u8], methods: &[&str]) -> Vec<Message> {
    check_splits(MessageKind::Response, input, methods).0
}

#[test]
fn simple_get_request() {
    let msgs = requests(b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.kind, MessageKind::Request);
    assert_eq!((m.method.as_str(), m.path.as_str()), ("GET", "/index.html?q=1"));
    assert_eq!(m.minor_version, 1);
    assert_eq!(
        m.headers,
        vec![("Host".to_string(), "example.com".to_string()), ("Accept".to_string(), "*/*".to_string())]
    );
    assert!(m.body.is_empty());
    assert_eq!((m.status, m.reason.as_str(), m.body_size), (0, "", 0));
}

#[test]
fn content_length_request_body() {
    let msgs = requests(b"POST /api HTTP/1.0\r\ncontent-LENGTH: 13\r\n\r\n{\"a\":[1,2,3]}GET / HTTP/1.1\r\n\r\n");
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].minor_version, 0);
    assert_eq!(msgs[0].body, b"{\"a\":[1,2,3]}");
    assert_eq!(msgs[0].body_size, 13);
    assert_eq!(msgs[1].method, "GET");
}

#[test]
fn keep_alive_and_pipelining() {
    let mut input = Vec::new();
    for i in 0..3 {
        input.extend_from_slice(format!("GET /item/{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    input.extend_from_slice(b"DELETE /item/0 HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    let msgs = requests(&input);
    let paths: Vec<_> = msgs.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(paths, ["/item/0", "/item/1", "/item/2", "/item/0"]);
    assert_eq!(msgs[3].method, "DELETE");
}

#[test]
fn response_with_content_length_then_another() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    let msgs = responses(input, &[]);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].status, msgs[0].reason.as_str()), (200, "OK"));
    assert_eq!(msgs[0].body, b"hello");
    assert_eq!((msgs[1].status, msgs[1].reason.as_str()), (404, "Not Found"));
}

#[test]
fn chunked_response_with_extensions_and_trailers() {
    let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
        5;name=\"a b\"\r\nhello\r\n1A ; ext\r\nabcdefghijklmnopqrstuvwxyz\r\n\
        0\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n\
        HTTP/1.1 204 No Content\r\n\r\n";
    let msgs = responses(input, &[]);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].body, b"helloabcdefghijklmnopqrstuvwxyz");
    assert_eq!(msgs[0].body_size, 31);
    assert_eq!(msgs[0].headers.len(), 1, "trailers are not kept");
    assert_eq!(msgs[1].status, 204);
}

#[test]
fn chunked_request_with_lf_only_lines() {
    let input = b"POST /up HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\nGET / HTTP/1.1\n\n";
    let msgs = requests(input);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].body, b"abc");
    assert_eq!(msgs[1].path, "/");
}

#[test]
fn responses_without_body() {
    let input = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n\
        HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (msgs, stats) = check_splits(MessageKind::Response, input, &["GET", "GET", "GET"]);
    let statuses: Vec<_> = msgs.iter().map(|m| m.status).collect();
    assert_eq!(statuses, [100, 204, 304, 200]);
    assert_eq!(msgs[3].body, b"ok");
    assert_eq!(stats.errors, 0);
}

#[test]
fn head_response_has_no_body() {
    let input = b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    let msgs = responses(input, &["HEAD", "GET"]);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].body_size, msgs[1].body.as_slice()), (0, &b"abc"[..]));
    // Without the HEAD bookkeeping the first response would swallow the second.
    let (msgs, _) = check_splits(MessageKind::Response, input, &[]);
    assert_eq!(msgs.len(), 0);
}

#[test]
fn connect_success_has_no_body() {
    let msgs = responses(b"HTTP/1.1 200 Connection established\r\n\r\n", &["CONNECT"]);
    assert_eq!(msgs.len(), 1);
}

#[test]
fn close_delimited_response_is_flushed_on_close() {
    let input = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until close";
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        let mut p = parser(MessageKind::Response, &[]);
        let mut out = Vec::new();
        p.feed(a, 10, &mut out);
        p.feed(b, 20, &mut out);
        assert!(out.is_empty());
        p.close(30, &mut out);
        assert_eq!(out.len(), 1, "split at {split}");
        assert_eq!(out[0].body, b"all of this until close");
        assert_eq!(out[0].ts_ns, 30);
    }
}

#[test]
fn close_drops_partial_message() {
    let mut p = parser(MessageKind::Request, &[]);
    let mut out = Vec::new();
    p.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 1, &mut out);
    p.close(2, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.stats().dropped_partial, 1);
    assert_eq!(p.buffered_bytes(), 0);
    p.feed(b"GET / HTTP/1.1\r\n\r\n", 3, &mut out);
    assert_eq!(out.len(), 1);
}

#[test]
fn long_bodies_are_truncated_with_full_size() {
    let body = vec![b'x'; 2000];
    let mut input = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for _ in 0..3 {
        input.extend_from_slice(b"12c\r\n");
        input.extend_from_slice(&[b'y'; 300]);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"0\r\n\r\n");
    let (msgs, stats) = check_splits(MessageKind::Response, &input, &[]);
    assert_eq!(msgs.len(), 2);
    assert_eq!((msgs[0].body.len(), msgs[0].body_size), (512, 2000));
    assert_eq!((msgs[1].body.len(), msgs[1].body_size), (512, 900));
    assert_eq!(stats.truncated_bodies, 2);
}

#[test]
fn garbage_is_skipped_and_counted_once() {
    let input = b"\x00\x01junk GE\r\nGARBAGE\r\nGET /ok HTTP/1.1\r\n\r\n";
    let (msgs, stats) = check_splits(MessageKind::Request, input, &[]);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].path, "/ok");
    assert_eq!(stats.errors, 1);
    assert!(stats.skipped_bytes > 0);
}

#[test]
fn message_starting_inside_a_bad_head_is_found() {
    // A false start ("GET " inside a body-like line) followed directly by a real request.
    let input = b"{\"cmd\":\"GET x\"}POST /real HTTP/1.1\r\nContent-Length: 1\r\n\r\nz";
    let (msgs, stats) = check_splits(MessageKind::Request, input, &[]);
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].path.as_str(), msgs[0].body.as_slice()), ("/real", &b"z"[..]));
    assert_eq!(stats.errors, 1);
}

#[test]
fn bad_header_line_abandons_message() {
    let input = b"GET /a HTTP/1.1\r\nBad Header\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    let (msgs, stats) = check_splits(MessageKind::Request, input, &[]);
    assert_eq!(msgs.iter().map(|m| m.path.as_str()).collect::<Vec<_>>(), ["/b"]);
    assert_eq!(stats.errors, 1);
}

#[test]
fn invalid_framing_headers_abandon_message() {
    for bad in [
        &b"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ] {
        let mut input = bad.to_vec();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n\r\n");
        let (msgs, stats) = check_splits(MessageKind::Request, &input, &[]);
        assert_eq!(msgs.len(), 1, "{}", String::from_utf8_lossy(bad));
        assert_eq!(msgs[0].path, "/next");
        assert_eq!(stats.errors, 1);
    }
    let msgs = requests(b"POST / HTTP/1.1\r\nContent-Length: 2, 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n");
    assert_eq!(msgs.len(), 2);
}

#[test]
fn oversized_head_is_rejected_and_parser_recovers() {
    let config = ParseConfig { max_header_bytes: 64, ..ParseConfig::default() };
    let mut input = b"GET /big HTTP/1.1\r\nX-Big: ".to_vec();
    input.extend_from_slice(&[b'a'; 200]);
    input.extend_from_slice(b"\r\n\r\nGET /small HTTP/1.1\r\n\r\n");
    for split in 0..=input.len() {
        let mut p = StreamParser::new(MessageKind::Request, config);
        let mut out = Vec::new();
        let (a, b) = input.split_at(split);
        p.feed(a, 1, &mut out);
        assert!(p.buffered_bytes() <= 64);
        p.feed(b, 2, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "/small");
        assert_eq!(p.stats().errors, 1);
    }
}

#[test]
fn zero_limits_do_not_hang() {
    let config = ParseConfig { max_header_bytes: 0, max_body_bytes: 0 };
    let mut p = StreamParser::new(MessageKind::Request, config);
    let mut out = Vec::new();
    p.feed(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.buffered_bytes(), 0);
}

#[test]
fn blank_lines_between_messages_are_not_errors() {
    let (msgs, stats) =
        check_splits(MessageKind::Request, b"\r\nGET /a HTTP/1.1\r\n\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n", &[]);
    assert_eq!(msgs.len(), 2);
    assert_eq!(stats.errors, 0);
}

#[test]
fn folded_header_values_are_joined() {
    let msgs = requests(b"GET / HTTP/1.1\r\nX-Long: part one\r\n\tpart two\r\n\r\n");
    assert_eq!(msgs[0].headers[0].1, "part one part two");
}

#[test]
fn http10_response_without_length_reads_until_close() {
    let mut p = parser(MessageKind::Response, &["GET"]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.0 200 OK\r\n\r\nbody", 5, &mut out);
    p.feed(b" more", 6, &mut out);
    assert!(out.is_empty());
    p.close(7, &mut out);
    assert_eq!(out[0].body, b"body more");
    assert_eq!(out[0].body_size, 9);
}

#[test]
fn timestamps_are_first_byte_for_requests_and_last_byte_for_responses() {
    let mut p = parser(MessageKind::Request, &[]);
    let mut out = Vec::new();
    p.feed(b"POST / HTTP/1.1\r\nContent-Le", 100, &mut out);
    p.feed(b"ngth: 4\r\n\r\nab", 200, &mut out);
    p.feed(b"cd", 300, &mut out);
    assert_eq!(out[0].ts_ns, 100);

    let mut p = parser(MessageKind::Response, &[]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab", 400, &mut out);
    p.feed(b"cd", 500, &mut out);
    assert_eq!(out[0].ts_ns, 500);
}

#[test]
fn gap_inside_known_length_body_is_absorbed() {
    let mut p = parser(MessageKind::Response, &[]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab", 1, &mut out);
    p.gap(5);
    p.feed(b"xyzHTTP/1.1 204 No Content\r\n\r\n", 2, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].body.as_slice(), out[0].body_size), (&b"ab"[..], 10));
    assert!(p.in_sync());
    assert_eq!(p.stats().gaps_absorbed, 1);
}

#[test]
fn gap_in_head_resyncs_to_next_message() {
    let mut p = parser(MessageKind::Request, &[]);
    let mut out = Vec::new();
    p.feed(b"GET /lost HTTP/1.1\r\nHo", 1, &mut out);
    p.gap(100);
    assert!(!p.in_sync());
    assert_eq!(p.buffered_bytes(), 0);
    p.feed(b"st: tail of lost\r\n\r\nGET /found HTTP/1.1\r\n\r\n", 2, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path, "/found");
    assert!(p.in_sync());
    assert_eq!(p.stats().dropped_partial, 1);
}

#[test]
fn gap_in_chunked_framing_resyncs() {
    let mut p = parser(MessageKind::Response, &[]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab", 1, &mut out);
    p.gap(2);
    p.feed(b"\r\n0\r\n\r\n", 2, &mut out);
    assert_eq!(out.len(), 1, "gap inside chunk data is absorbed");
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4", 3, &mut out);
    p.gap(10);
    p.feed(b"garbage\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4, &mut out);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].status, 201);
}

#[test]
fn request_parser_ignores_note_request() {
    let mut p = parser(MessageKind::Request, &["HEAD"]);
    let mut out = Vec::new();
    p.feed(b"HEAD / HTTP/1.1\r\n\r\n", 1, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(p.kind(), MessageKind::Request);
}

#[test]
fn chunk_size_and_content_length_parsers() {
    assert_eq!(parse_chunk_size(b"ff\r\n"), Some(255));
    assert_eq!(parse_chunk_size(b"0;a=b\r\n"), Some(0));
    assert_eq!(parse_chunk_size(b" 1 \n"), Some(1));
    assert_eq!(parse_chunk_size(b"ffffffffffffffff\r\n"), Some(u64::MAX));
    assert_eq!(parse_chunk_size(b"1ffffffffffffffff\r\n"), None);
    assert_eq!(parse_chunk_size(b"\r\n"), None);
    assert_eq!(parse_chunk_size(b"g\r\n"), None);
    assert_eq!(parse_content_length("42"), Some(42));
    assert_eq!(parse_content_length("+42"), None);
    assert_eq!(parse_content_length(""), None);
    assert_eq!(parse_content_length("1,2"), None);
}

#[test]
fn repeated_false_starts_are_rejected_quickly() {
    // Each false start must fail within a few bytes, not at the end of a long line; otherwise
    // rescanning would be quadratic. These inputs finish fast even in debug builds.
    for (kind, unit) in [
        (MessageKind::Request, &b"GET "[..]),
        (MessageKind::Request, b"GET /xGET /x"),
        (MessageKind::Response, b"HTTP/1.1 200 "),
    ] {
        let input = unit.repeat(100_000 / unit.len());
        let mut p = StreamParser::new(kind, ParseConfig::default());
        let mut out = Vec::new();
        let start = std::time::Instant::now();
        p.feed(&input, 1, &mut out);
        assert!(out.is_empty());
        assert!(p.buffered_bytes() <= MAX_STATUS_LINE_BYTES);
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "{kind:?}");
    }
}

#[test]
fn long_request_targets_are_fine() {
    let mut input = b"GET /".to_vec();
    input.extend_from_slice(&[b'a'; 4000]);
    input.extend_from_slice(b" HTTP/1.1\r\n\r\n");
    let mut p = StreamParser::new(MessageKind::Request, ParseConfig::default());
    let mut out = Vec::new();
    for piece in input.chunks(7) {
        p.feed(piece, 1, &mut out);
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path.len(), 4001);
}
