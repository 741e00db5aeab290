//! Unit tests for `StreamParser`: every case is also fed split at every byte boundary.

use super::*;

fn parser(kind: MessageKind, methods: &[&str]) -> StreamParser {
    let mut p = StreamParser::new(kind, ParseConfig::default());
    for method in methods {
        p.note_request(method);
    }
    p
}

fn without_ts(mut messages: Vec<Box<Message>>) -> Vec<Box<Message>> {
    for m in &mut messages {
        m.ts_ns = 0;
    }
    messages
}

/// Parses `input` in one feed, then split at every position and byte by byte, asserting the
/// same messages (timestamps aside) and stats come out; returns the one-feed parser's output.
fn check_splits(kind: MessageKind, input: &[u8], methods: &[&str]) -> (Vec<Message>, ParseStats) {
    let (messages, stats) = check_splits_boxed(kind, input, methods);
    (messages.into_iter().map(|m| *m).collect(), stats)
}

/// [`check_splits`] with the parser's own output type.
fn check_splits_boxed(kind: MessageKind, input: &[u8], methods: &[&str]) -> (Vec<Box<Message>>, ParseStats) {
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
    assert_eq!(m.headers, [("Host", "example.com"), ("Accept", "*/*")].into_iter().collect::<crate::http1::Headers>());
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
    assert_eq!(msgs[0].headers.at(0).1, "part one part two");
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

/// Feeds `input`, then a gap of `gap` bytes at `gap_ts`, then `after`; returns everything emitted.
fn feed_gap_feed(p: &mut StreamParser, input: &[u8], gap: u64, gap_ts: u64, after: &[u8]) -> Vec<Box<Message>> {
    let mut out = Vec::new();
    p.feed(input, 1, &mut out);
    p.gap(gap, gap_ts, &mut out);
    p.feed(after, gap_ts + 1, &mut out);
    out
}

#[test]
fn gap_inside_known_length_body_is_absorbed() {
    let mut p = parser(MessageKind::Response, &[]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
        5,
        2,
        b"xyzHTTP/1.1 204 No Content\r\n\r\n",
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].status, out[0].body.as_slice(), out[0].body_size), (200, &b"ab"[..], 10));
    assert!(out[0].body_truncated());
    assert_eq!((out[0].ts_ns, out[1].status, out[1].body_size), (3, 204, 0));
    assert!(!out[1].body_truncated());
    assert!(p.in_sync());
    let stats = p.stats();
    assert_eq!((stats.gaps, stats.gaps_absorbed, stats.dropped_partial, stats.errors), (1, 1, 0, 0));
    assert_eq!((stats.messages, stats.truncated_bodies), (2, 1));
}

#[test]
fn gap_at_body_start_completes_the_message() {
    // nginx with sendfile: the head is written, the whole body is sent without a copy.
    let mut p = parser(MessageKind::Response, &["GET", "GET"]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nContent-Length: 40960\r\n\r\n",
        40_960,
        7,
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope",
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].status, out[0].body.as_slice(), out[0].body_size, out[0].ts_ns), (200, &b""[..], 40_960, 7));
    assert!(out[0].body_truncated());
    assert_eq!((out[1].status, out[1].body.as_slice(), out[1].body_size), (404, &b"nope"[..], 4));
    assert!(p.in_sync());
    assert_eq!((p.stats().gaps_absorbed, p.stats().errors, p.stats().dropped_partial), (1, 0, 0));
}

#[test]
fn gap_at_body_end_completes_the_message() {
    let mut p = parser(MessageKind::Request, &[]);
    let out = feed_gap_feed(
        &mut p,
        b"POST /up HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789",
        90,
        5,
        b"GET /next HTTP/1.1\r\n\r\n",
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].path.as_str(), out[0].body.as_slice(), out[0].body_size), ("/up", &b"0123456789"[..], 100));
    assert_eq!((out[0].ts_ns, out[1].path.as_str(), out[1].body_size), (1, "/next", 0));
    assert!(p.in_sync());
    assert_eq!((p.stats().gaps, p.stats().gaps_absorbed, p.stats().errors), (1, 1, 0));
}

#[test]
fn many_gaps_across_syscalls_add_up_to_the_body() {
    // A 1 MB body sent in 64 KiB syscalls of which the kernel copied 32 KiB each.
    let total: u64 = 1_000_000;
    let mut p = parser(MessageKind::Response, &["GET"]);
    let mut out = Vec::new();
    p.feed(format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n").as_bytes(), 1, &mut out);
    let mut sent = 0u64;
    let mut ts = 1;
    while sent < total {
        let syscall = (total - sent).min(65_536);
        let copied = syscall.min(32_768);
        ts += 1;
        p.feed(&vec![b'z'; copied as usize], ts, &mut out);
        if syscall > copied {
            p.gap(syscall - copied, ts, &mut out);
        }
        sent += syscall;
        assert_eq!(out.len(), usize::from(sent == total), "after {sent} bytes");
    }
    assert_eq!((out[0].body.len(), out[0].body_size, out[0].ts_ns), (512, total, ts));
    assert!(out[0].body_truncated());
    // 15 full syscalls lost 32 KiB each; the last (16,960 bytes) was copied whole.
    assert_eq!(p.stats().gaps, 15);
    assert_eq!(p.stats().gaps_absorbed, 15);
    assert!(p.buffered_bytes() == 0 && p.in_sync());
}

#[test]
fn gap_spanning_the_next_message_boundary_completes_the_first() {
    let mut p = parser(MessageKind::Response, &["GET", "GET", "GET"]);
    // The body's last 5 bytes and the next response's first 10 bytes are lost in one gap.
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nabc",
        5 + 10,
        4,
        b"ength: 3\r\n\r\nxyzHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].status, out[0].body.as_slice(), out[0].body_size, out[0].ts_ns), (200, &b"abc"[..], 8, 4));
    assert_eq!((out[1].status, out[1].body_size), (201, 0));
    let stats = p.stats();
    // Between the gap and the 201 there was no message start: skipped, not a partial message.
    assert_eq!((stats.gaps, stats.gaps_absorbed, stats.dropped_partial, stats.messages), (1, 1, 0, 2));
    assert!(p.in_sync());
}

#[test]
fn gap_of_exactly_one_message_tail_keeps_sync_for_keep_alive() {
    for tail in 1..=20u64 {
        let mut p = parser(MessageKind::Response, &["GET", "GET"]);
        let mut out = Vec::new();
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", 1, &mut out);
        p.feed(&vec![b'b'; 20 - tail as usize], 2, &mut out);
        p.gap(tail, 3, &mut out);
        assert!(p.in_sync(), "tail {tail}");
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 4, &mut out);
        let sizes: Vec<(u64, usize)> = out.iter().map(|m| (m.body_size, m.body.len())).collect();
        assert_eq!(sizes, [(20, 20 - tail as usize), (2, 2)], "tail {tail}");
    }
}

#[test]
fn gap_in_head_resyncs_to_next_message() {
    let mut p = parser(MessageKind::Request, &[]);
    let mut out = Vec::new();
    p.feed(b"GET /lost HTTP/1.1\r\nHo", 1, &mut out);
    p.gap(100, 1, &mut out);
    assert!(!p.in_sync());
    assert_eq!(p.buffered_bytes(), 0);
    p.feed(b"st: tail of lost\r\n\r\nGET /found HTTP/1.1\r\n\r\n", 2, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].path, "/found");
    assert!(p.in_sync());
    let stats = p.stats();
    assert_eq!((stats.gaps, stats.gaps_absorbed, stats.dropped_partial, stats.errors), (1, 0, 1, 0));
}

#[test]
fn gap_inside_chunk_data_is_absorbed() {
    let mut p = parser(MessageKind::Response, &[]);
    let out =
        feed_gap_feed(&mut p, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab", 1, 2, b"c\r\n0\r\n\r\n");
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].body.as_slice(), out[0].body_size, out[0].ts_ns), (&b"ab"[..], 4, 3));
    assert_eq!((p.stats().gaps_absorbed, p.stats().errors), (1, 0));
}

#[test]
fn chunked_gaps_ending_at_chunk_data_or_its_crlf_resume_at_the_next_chunk() {
    // A chunk written in one syscall (size line, data, CRLF) of which only a prefix was copied:
    // the gap ends at the data's end, inside the CRLF or after it.
    for (lost_crlf, after) in
        [(0u64, &b"\r\n3\r\nxyz\r\n0\r\n\r\n"[..]), (1, b"\n3\r\nxyz\r\n0\r\n\r\n"), (2, b"3\r\nxyz\r\n0\r\n\r\n")]
    {
        let mut p = parser(MessageKind::Response, &[]);
        let out = feed_gap_feed(
            &mut p,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\nabcd",
            0x1000 - 4 + lost_crlf,
            2,
            after,
        );
        assert_eq!(out.len(), 1, "lost {lost_crlf} of the CRLF");
        assert_eq!((out[0].body.as_slice(), out[0].body_size), (&b"abcd"[..], 0x1000 + 3), "lost {lost_crlf}");
        assert!(p.in_sync());
        assert_eq!((p.stats().gaps_absorbed, p.stats().errors, p.stats().dropped_partial), (1, 0, 0));
    }
}

#[test]
fn chunked_gap_swallowing_framing_resumes_at_a_chunk_size_line() {
    // The gap covers the rest of one chunk, its CRLF and a whole second chunk ("5\r\nhello\r\n",
    // 10 bytes, 5 of them data): one chunk of about the last size read fits, so 5 are data.
    let mut p = parser(MessageKind::Response, &["GET", "GET"]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nabcd",
        4 + 2 + 10,
        2,
        b"2\r\nyz\r\n0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    );
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].body.as_slice(), out[0].body_size), (&b"abcd"[..], 8 + 5 + 2));
    assert_eq!(out[1].status, 204);
    assert_eq!((p.stats().errors, p.stats().dropped_partial), (0, 0));

    // When the next message starts before any chunk-size line, the message ended in the gap.
    let mut p = parser(MessageKind::Response, &[]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4",
        10,
        2,
        b"garbage\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    // 13 bytes lost or seen after the imaginary CRLF before "4", plus 9 before the 201, less the
    // lost last chunk and that CRLF: 15 (no chunk was read to estimate framing with).
    assert_eq!(out.iter().map(|m| (m.status, m.body_size)).collect::<Vec<_>>(), [(200, 15), (201, 0)]);
    assert_eq!((p.stats().dropped_partial, p.stats().gaps_absorbed), (0, 1));
}

#[test]
fn chunked_gaps_at_any_read_size_resync_with_the_exact_size() {
    // A client reads a chunked body (nine 1000-byte chunks and a last one of 123 bytes, as a
    // server writing a file in fixed chunks sends it) in reads that cut chunks anywhere, of
    // which the kernel copied only the first 300 bytes each.
    let mut stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    let head_len = stream.len();
    for i in 0..10u8 {
        let size = if i < 9 { 1000 } else { 123 };
        stream.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        stream.extend(std::iter::repeat_n(b'a' + i, size));
        stream.extend_from_slice(b"\r\n");
    }
    stream.extend_from_slice(b"0\r\n\r\n");
    for read in [700usize, 1000, 1006, 1500, 2345, 3333, 4096] {
        let mut p = parser(MessageKind::Response, &["GET", "GET"]);
        let mut out = Vec::new();
        p.feed(&stream[..head_len], 1, &mut out);
        let mut at = head_len;
        let mut ts = 1;
        while at < stream.len() {
            let end = (at + read).min(stream.len());
            let copied = (end - at).min(300);
            ts += 1;
            p.feed(&stream[at..at + copied], ts, &mut out);
            if at + copied < end {
                p.gap((end - at - copied) as u64, ts, &mut out);
            }
            at = end;
        }
        // Keep-alive: the next response comes in a read of its own.
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ts + 1, &mut out);
        let got: Vec<(u16, u64)> = out.iter().map(|m| (m.status, m.body_size)).collect();
        assert_eq!(got, [(200, 9_123), (200, 2)], "reads of {read}");
        assert_eq!((p.stats().errors, p.stats().dropped_partial), (0, 0), "reads of {read}");
    }
}

#[test]
fn chunk_resync_ends_the_message_at_the_next_message() {
    let mut p = parser(MessageKind::Response, &["GET", "GET"]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcd",
        100,
        2,
        b"zzzz no framing here\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
    );
    // 16 bytes of the first chunk, then 105 bytes of region before the 201 (less the lost last
    // chunk): read as 4 chunks of 16 bytes (22 with framing) and one of 10 (15), 74 more bytes.
    assert_eq!(out.iter().map(|m| (m.status, m.body_size, m.ts_ns)).collect::<Vec<_>>(), [(200, 90, 2), (201, 0, 3)]);
    assert_eq!((p.stats().dropped_partial, p.stats().errors), (0, 0));
}

#[test]
fn close_ends_a_chunked_message_whose_end_was_lost() {
    // Two 16-byte chunks read in sync, then a gap holding the last data chunk (3 bytes), the
    // last chunk and everything up to the close.
    let mut p = parser(MessageKind::Response, &["GET"]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n10\r\n01", 1, &mut out);
    p.gap(14 + 2 + 8 + 5, 2, &mut out);
    assert!(out.is_empty());
    p.close(9, &mut out);
    assert_eq!(out.iter().map(|m| (m.status, m.body_size, m.ts_ns)).collect::<Vec<_>>(), [(200, 35, 2)]);
    assert_eq!(p.stats().dropped_partial, 0);
}

#[test]
fn gap_in_trailers_completes_the_message() {
    let mut p = parser(MessageKind::Response, &[]);
    let out = feed_gap_feed(
        &mut p,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Tr",
        30,
        9,
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(out.iter().map(|m| (m.status, m.body_size, m.ts_ns)).collect::<Vec<_>>(), [(200, 2, 9), (202, 0, 10)]);
    assert_eq!((p.stats().dropped_partial, p.stats().gaps_absorbed), (0, 0));
}

#[test]
fn gap_in_close_delimited_body_is_counted() {
    let mut p = parser(MessageKind::Response, &["GET"]);
    let mut out = Vec::new();
    p.feed(b"HTTP/1.0 200 OK\r\n\r\nstart", 1, &mut out);
    p.gap(1000, 2, &mut out);
    p.feed(b"end", 3, &mut out);
    p.close(4, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].body.as_slice(), out[0].body_size, out[0].ts_ns), (&b"start"[..], 1008, 4));
}

#[test]
fn gap_between_messages_loses_sync_until_a_start() {
    let mut p = parser(MessageKind::Request, &[]);
    let out = feed_gap_feed(&mut p, b"GET /a HTTP/1.1\r\n\r\n", 50, 2, b"T /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n");
    assert_eq!(out.iter().map(|m| m.path.as_str()).collect::<Vec<_>>(), ["/a", "/c"]);
    let stats = p.stats();
    assert_eq!((stats.gaps, stats.gaps_absorbed, stats.dropped_partial), (1, 0, 0));
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
