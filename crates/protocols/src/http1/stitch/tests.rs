//! Unit tests for `Stitcher` and `Http1Conn`, including the recorded-mix corpus.

use super::*;

fn request(path: &str, ts_ns: u64) -> Box<Message> {
    let mut m = Box::new(Message::empty(MessageKind::Request));
    m.method = "GET".into();
    m.path = path.into();
    m.ts_ns = ts_ns;
    m
}

fn response(status: u16, ts_ns: u64) -> Box<Message> {
    let mut m = Box::new(Message::empty(MessageKind::Response));
    m.status = status;
    m.ts_ns = ts_ns;
    m
}

fn drained(stitcher: &mut Stitcher) -> Vec<(String, u16, u64)> {
    let mut out = Vec::new();
    stitcher.drain(&mut out);
    out.into_iter().map(|r| (r.req.path.clone(), r.resp.status, r.latency_ns)).collect()
}

#[test]
fn pairs_in_order_with_latency() {
    let mut s = Stitcher::default();
    s.push_request(request("/a", 10));
    s.push_request(request("/b", 11));
    s.push_response(response(200, 15));
    s.push_response(response(404, 30));
    assert_eq!(drained(&mut s), [("/a".into(), 200, 5), ("/b".into(), 404, 19)]);
    assert_eq!(s.stats().records, 2);
    assert!(drained(&mut s).is_empty());
}

#[test]
fn response_fed_before_its_request_still_pairs() {
    let mut s = Stitcher::default();
    s.push_response(response(200, 20));
    assert!(drained(&mut s).is_empty());
    s.push_request(request("/a", 10));
    assert_eq!(drained(&mut s), [("/a".into(), 200, 10)]);
}

#[test]
fn orphan_response_is_dropped_when_a_newer_request_arrives() {
    let mut s = Stitcher::default();
    s.push_response(response(200, 5));
    s.push_request(request("/late", 10));
    s.push_response(response(201, 12));
    assert_eq!(drained(&mut s), [("/late".into(), 201, 2)]);
    assert_eq!(s.stats().orphan_responses, 1);
}

#[test]
fn informational_responses_are_not_paired() {
    let mut s = Stitcher::default();
    s.push_request(request("/upload", 1));
    s.push_response(response(100, 2));
    s.push_response(response(200, 3));
    assert_eq!(drained(&mut s), [("/upload".into(), 200, 2)]);
    assert_eq!(s.stats().informational_responses, 1);
}

#[test]
fn queues_are_bounded() {
    let mut s = Stitcher::new(4);
    for i in 0..10 {
        s.push_request(request(&format!("/{i}"), i));
    }
    assert_eq!(s.pending_requests(), 4);
    assert_eq!(s.stats().overflow_drops, 6);
    for i in 0..10 {
        s.push_response(response(200, 100 + i));
    }
    assert_eq!(s.pending_responses(), 4);
    let records = drained(&mut s);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0].0, "/6");
}

#[test]
fn close_drops_leftovers() {
    let mut s = Stitcher::default();
    s.push_request(request("/a", 1));
    s.close();
    s.push_response(response(200, 2));
    s.close();
    assert_eq!(s.stats().unanswered_requests, 1);
    assert_eq!(s.stats().orphan_responses, 1);
    assert!(drained(&mut s).is_empty());
}

fn records(conn: &mut Http1Conn) -> Vec<Record> {
    let mut out = Vec::new();
    conn.drain_records(&mut out);
    out
}

#[test]
fn conn_handles_head_and_keep_alive() {
    let mut conn = Http1Conn::new(ParseConfig::default());
    conn.feed_request_side(b"HEAD /big HTTP/1.1\r\n\r\nGET /small HTTP/1.1\r\n\r\n", 1);
    conn.feed_response_side(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        2,
    );
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].req.method.as_str(), recs[0].resp.body_size), ("HEAD", 0));
    assert_eq!(recs[1].resp.body, b"hi");
}

#[test]
fn conn_response_gap_does_not_misalign_later_pairs() {
    let mut conn = Http1Conn::new(ParseConfig::default());
    conn.feed_request_side(b"GET /a HTTP/1.1\r\n\r\n", 1);
    conn.feed_response_side(b"HTTP/1.1 200 OK\r\nContent-Len", 2);
    conn.gap(Side::Response, 50, 2);
    conn.feed_request_side(b"GET /b HTTP/1.1\r\n\r\n", 3);
    conn.feed_response_side(b"gth: 3\r\n\r\nabcHTTP/1.1 404 Not Found\r\n\r\n", 4);
    conn.close(5);
    let recs = records(&mut conn);
    // The 404 ends at the close (no length), and must answer /b, not /a.
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].req.path.as_str(), recs[0].resp.status), ("/b", 404));
    let stats = conn.stats();
    assert_eq!(stats.stitch.unanswered_requests, 1);
    assert_eq!(stats.response.gaps, 1);
}

#[test]
fn conn_response_lost_to_a_chunk_resync_failure_does_not_misalign_later_pairs() {
    let mut conn = Http1Conn::new(ParseConfig::default());
    conn.feed_request_side(b"GET /a HTTP/1.1\r\n\r\n", 1);
    conn.feed_request_side(b"GET /b HTTP/1.1\r\n\r\n", 2);
    conn.feed_response_side(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab", 3);
    conn.gap(Side::Response, 100, 3);
    // A chunk-size line is found, then its data is not followed by a CRLF: the message is lost.
    conn.feed_response_side(b"3\r\nab", 4);
    conn.feed_response_side(b"cX\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 5);
    let recs = records(&mut conn);
    assert_eq!(recs.iter().map(|r| (r.req.path.as_str(), r.resp.status)).collect::<Vec<_>>(), [("/b", 404)]);
    assert_eq!(conn.stats().stitch.unanswered_requests, 1);
}

#[test]
fn conn_request_gap_leaves_orphan_response_dropped() {
    let mut conn = Http1Conn::new(ParseConfig::default());
    conn.gap(Side::Request, 100, 1);
    conn.feed_response_side(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2);
    conn.feed_request_side(b"GET /next HTTP/1.1\r\n\r\n", 3);
    conn.feed_response_side(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 4);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    assert_eq!((recs[0].req.path.as_str(), recs[0].resp.status), ("/next", 201));
    assert_eq!(conn.stats().stitch.orphan_responses, 1);
}

macro_rules! corpus_file {
    ($name:literal) => {
        include_bytes!(concat!("../../../testdata/http1/", $name))
    };
}

/// The recorded mix: (name, request stream, response stream, records expected).
pub(crate) const CORPUS: &[(&str, &[u8], &[u8], usize)] = &[
    ("curl_get", corpus_file!("curl_get.req"), corpus_file!("curl_get.resp"), 1),
    ("browser", corpus_file!("browser.req"), corpus_file!("browser.resp"), 2),
    ("json_post", corpus_file!("json_post.req"), corpus_file!("json_post.resp"), 2),
    ("chunked", corpus_file!("chunked.req"), corpus_file!("chunked.resp"), 1),
    ("not_found", corpus_file!("not_found.req"), corpus_file!("not_found.resp"), 3),
    ("http10_close", corpus_file!("http10_close.req"), corpus_file!("http10_close.resp"), 1),
];

fn parse_corpus_stream(req: &[u8], resp: &[u8], chunk: usize) -> (Vec<Record>, ConnStats) {
    let mut conn = Http1Conn::new(ParseConfig::default());
    let mut ts = 0;
    for piece in req.chunks(chunk) {
        ts += 1;
        conn.feed_request_side(piece, ts);
    }
    for piece in resp.chunks(chunk) {
        ts += 1;
        conn.feed_response_side(piece, ts);
    }
    conn.close(ts + 1);
    (records(&mut conn), conn.stats())
}

#[test]
fn corpus_parses_at_any_chunk_size() {
    for &(name, req, resp, expected) in CORPUS {
        let (whole, stats) = parse_corpus_stream(req, resp, usize::MAX);
        assert_eq!(whole.len(), expected, "{name}");
        assert_eq!(stats.request.errors + stats.response.errors, 0, "{name}");
        for chunk in [1, 2, 3, 7, 64, 1460] {
            let (got, _) = parse_corpus_stream(req, resp, chunk);
            let strip = |records: Vec<Record>| -> Vec<(Box<Message>, Box<Message>)> {
                records
                    .into_iter()
                    .map(|mut r| {
                        r.req.ts_ns = 0;
                        r.resp.ts_ns = 0;
                        (r.req, r.resp)
                    })
                    .collect()
            };
            assert_eq!(strip(got), strip(whole.clone()), "{name} chunk {chunk}");
        }
        for record in &whole {
            for message in [&record.req, &record.resp] {
                let json: serde_json::Value =
                    serde_json::from_str(&message.headers_json()).expect("valid headers json");
                assert!(json.is_object());
            }
        }
    }
}

#[test]
fn corpus_fields() {
    let all: Vec<Record> =
        CORPUS.iter().flat_map(|&(_, req, resp, _)| parse_corpus_stream(req, resp, usize::MAX).0).collect();
    let summary: Vec<(&str, &str, u16)> =
        all.iter().map(|r| (r.req.method.as_str(), r.req.path.as_str(), r.resp.status)).collect();
    assert_eq!(
        summary,
        [
            ("GET", "/", 200),
            ("GET", "/catalogue?page=2&sort=price", 200),
            ("GET", "/static/app.css", 304),
            ("POST", "/api/v1/orders", 201),
            ("POST", "/api/v1/events", 202),
            ("GET", "/stream", 200),
            ("GET", "/missing/favicon.ico", 404),
            ("HEAD", "/index.html", 200),
            ("OPTIONS", "/api", 204),
            ("GET", "/legacy", 200),
        ]
    );
    // curl_get: the HTML body is longer than the 512 bytes kept.
    assert_eq!(all[0].resp.body.len(), 512);
    assert!(all[0].resp.body_size > 512);
    assert_eq!(all[0].resp.header("content-length"), Some(all[0].resp.body_size.to_string().as_str()));
    // browser: chunked page, duplicate Set-Cookie merged in the JSON.
    let json: serde_json::Value = serde_json::from_str(&all[1].resp.headers_json()).expect("valid json");
    assert_eq!(json["Set-Cookie"], "session=7f3a9c1e2b; Path=/; HttpOnly,seen=1; Path=/");
    assert!(all[1].resp.body.starts_with(b"<html><body><h1>Catalogue</h1><ul>"));
    // json_post: JSON content types, chunked request body.
    assert_eq!(all[3].req.content_type(), crate::http1::CONTENT_TYPE_JSON);
    assert_eq!(all[3].resp.content_type(), crate::http1::CONTENT_TYPE_JSON);
    assert!(all[4].req.body.starts_with(b"{\"event\": \"click\", \"n\": 0}\n"));
    // chunked: de-chunked body, trailers dropped.
    assert!(all[5].resp.body.starts_with(b"data: tick 0\n\ndata: tick 1"));
    // not_found: HEAD response has no body despite its Content-Length.
    assert_eq!(all[7].resp.body_size, 0);
    // http10_close: close-delimited body.
    assert_eq!(all[9].resp.minor_version, 0);
    assert_eq!(all[9].resp.body, b"<html><body>legacy server</body></html>\n");
}
