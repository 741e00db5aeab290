//! HTTP/2 connection tests: hand-built frames (with a tiny HPACK encoder of our own), mid-connection
//! starts, gaps, limits, and proptests that arbitrary bytes never panic and memory stays bounded.

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

/// A frame: 9-byte header then payload.
fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, ty, flags];
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn int(out: &mut Vec<u8>, first: u8, n: u8, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

fn lit(out: &mut Vec<u8>, s: &str) {
    int(out, 0, 7, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// HPACK: a literal with incremental indexing, new name.
fn indexed_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x40);
    lit(out, name);
    lit(out, value);
}

/// HPACK: a literal without indexing, new name.
fn plain_literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    lit(out, name);
    lit(out, value);
}

const SETTINGS_EMPTY: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

fn records(conn: &mut Http2Conn) -> Vec<Record> {
    let mut out = Vec::new();
    conn.drain_records(&mut out);
    out
}

/// A gRPC unary exchange on `stream`: request headers (indexing the custom ones), a body, then
/// response headers, body and trailers.
fn grpc_call(stream: u32, first: bool) -> (Vec<u8>, Vec<u8>) {
    let mut req = Vec::new();
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    if first {
        indexed_literal(&mut block, ":path", "/helloworld.Greeter/SayHello");
        indexed_literal(&mut block, "content-type", "application/grpc");
        indexed_literal(&mut block, "authorization", "Bearer s3cret");
    } else {
        // The same three, now from the dynamic table (newest first: authorization 62).
        block.extend([0xc0, 0xbf, 0xbe]);
    }
    req.extend(frame(1, 4, stream, &block));
    req.extend(frame(0, 1, stream, b"\0\0\0\0\x07\n\x05world"));
    let mut resp = Vec::new();
    let mut block = vec![0x88];
    plain_literal(&mut block, "content-type", "application/grpc");
    resp.extend(frame(1, 4, stream, &block));
    resp.extend(frame(0, 0, stream, b"\0\0\0\0\x0d\n\x0bHello world"));
    let mut trailers = Vec::new();
    plain_literal(&mut trailers, "grpc-status", if first { "0" } else { "5" });
    if !first {
        plain_literal(&mut trailers, "grpc-message", "not%20found");
    }
    resp.extend(frame(1, 5, stream, &trailers));
    (req, resp)
}

#[test]
fn grpc_calls_pair_by_stream_with_trailers_and_dynamic_table() {
    let mut conn = Http2Conn::new(Http2Config::default());
    let mut req = PREFACE.to_vec();
    req.extend(frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    let mut resp = SETTINGS_EMPTY.to_vec();
    let (q1, r1) = grpc_call(1, true);
    let (q3, r3) = grpc_call(3, false);
    req.extend(q1);
    req.extend(q3);
    resp.extend(r3); // answered out of order
    resp.extend(r1);
    // Fed in 7-byte pieces, the requests before the responses (as the server reads them).
    let mut ts = 0;
    for (side, bytes) in [(Side::Request, &req), (Side::Response, &resp)] {
        for piece in bytes.chunks(7) {
            ts += 10;
            conn.feed(side, piece, ts);
        }
    }
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 2, "{:?}", conn.stats());
    let (a, b) = (&recs[0], &recs[1]);
    assert_eq!(a.stream_id, 3);
    assert_eq!(b.stream_id, 1);
    for r in &recs {
        assert_eq!(r.req.method, "POST");
        assert_eq!(r.req.path, "/helloworld.Greeter/SayHello");
        assert_eq!(r.resp.status, 200);
        assert_eq!(r.req.body, b"\0\0\0\0\x07\n\x05world");
        assert_eq!(r.resp.body_size, 18);
        assert_eq!(r.req.content_type(), crate::http1::CONTENT_TYPE_GRPC);
        assert!(r.latency_ns > 0);
        assert!(!r.unresolved);
        assert_eq!(r.req.header("authorization"), Some("Bearer s3cret"));
    }
    assert_eq!(a.resp.header("grpc-status"), Some("5"));
    assert_eq!(a.resp.header("grpc-message"), Some("not%20found"));
    assert_eq!(b.resp.header("grpc-status"), Some("0"));
    assert_eq!(conn.open_streams(), 0);
    let mut rec = recs[0].clone();
    crate::redact::http2_record(&mut rec);
    assert_eq!(rec.req.header("authorization"), Some("Bearer [REDACTED]"));
}

#[test]
fn mid_connection_capture_marks_what_it_cannot_decode() {
    // The capture starts at the second call: its header block refers to entries never seen.
    let (_, _) = grpc_call(1, true);
    let (q3, r3) = grpc_call(3, false);
    let mut conn = Http2Conn::new(Http2Config::default());
    conn.feed(Side::Request, &q3, 10);
    conn.feed(Side::Response, &r3, 20);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert!(r.unresolved);
    assert_eq!(r.req.method, "POST");
    assert_eq!(r.req.path, "", "never guessed");
    assert_eq!(r.req.header(UNRESOLVED_HEADER), Some("3"));
    assert_eq!(r.resp.header(UNRESOLVED_HEADER), None);
    assert_eq!(r.resp.header("grpc-status"), Some("5"));
    assert_eq!(conn.stats().unresolved_blocks, 1);
    // A piece that does not start at a frame is skipped, the next frame-aligned one is read.
    let mut conn = Http2Conn::new(Http2Config::default());
    let (q1, r1) = grpc_call(1, true);
    conn.feed(Side::Request, &q1[3..], 10);
    conn.feed(Side::Request, &grpc_call(3, true).0, 11);
    conn.feed(Side::Response, &r1[2..], 12);
    conn.feed(Side::Response, &grpc_call(3, true).1, 13);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].stream_id, 3);
    assert_eq!(recs[0].req.path, "/helloworld.Greeter/SayHello");
    assert!(conn.stats().lost_sync >= 2);
}

#[test]
fn gaps_inside_bodies_count_and_gaps_elsewhere_lose_the_table() {
    let mut conn = Http2Conn::new(Http2Config::default());
    let mut req = PREFACE.to_vec();
    let (q1, r1) = grpc_call(1, true);
    req.extend(&q1);
    conn.feed(Side::Request, &req, 1);
    conn.feed(Side::Response, &SETTINGS_EMPTY, 2);
    // Response: headers, then the DATA frame with 6 of its 18 body bytes lost, then trailers.
    let data_at = r1.len() - 9 - 18 - 9 - 15;
    conn.feed(Side::Response, &r1[..data_at + 9 + 4], 3);
    conn.gap(Side::Response, 6, 3);
    conn.feed(Side::Response, &r1[data_at + 9 + 10..], 4);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1, "{:?}", conn.stats());
    assert_eq!(recs[0].resp.body_size, 18);
    assert_eq!(recs[0].resp.body.len(), 4);
    assert!(recs[0].resp.body_truncated());
    // A gap between frames: framing is lost; the next call decodes only what needs no table.
    conn.gap(Side::Request, 100, 5);
    let (q3, r3) = grpc_call(3, false);
    conn.feed(Side::Request, &q3, 6);
    conn.feed(Side::Response, &r3, 7);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    assert!(recs[0].unresolved);
    assert_eq!(recs[0].req.path, "");
}

#[test]
fn continuation_padding_priority_and_resets() {
    let mut conn = Http2Conn::new(Http2Config::default());
    let mut block = vec![0x82, 0x86];
    indexed_literal(&mut block, ":path", "/a/long/path?x=1");
    indexed_literal(&mut block, "x-custom", "v");
    let (one, two) = block.split_at(5);
    let mut padded = vec![3]; // pad length
    padded.extend([0x80, 0, 0, 0, 0x10]); // priority
    padded.extend(one);
    padded.extend([0, 0, 0]);
    let mut req = PREFACE.to_vec();
    req.extend(frame(1, 0x08 | 0x20 | 0x01, 1, &padded));
    req.extend(frame(9, 4, 1, two));
    // Stream 3 is reset by the client.
    req.extend(frame(1, 5, 3, &[0x82, 0x86, 0x84]));
    req.extend(frame(3, 0, 3, &[0, 0, 0, 8]));
    conn.feed(Side::Request, &req, 1);
    let mut resp = SETTINGS_EMPTY.to_vec();
    resp.extend(frame(1, 4, 1, &[0x8d])); // 404
    resp.extend(frame(0, 0x09, 1, &[2, b'n', b'o', 0, 0])); // padded DATA, END_STREAM
    conn.feed(Side::Response, &resp, 9);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].req.path, "/a/long/path?x=1");
    assert_eq!(recs[0].req.header("x-custom"), Some("v"));
    assert_eq!(recs[0].resp.status, 404);
    assert_eq!(recs[0].resp.body, b"no");
    assert_eq!(recs[0].latency_ns, 8);
    conn.close(10);
    assert_eq!(conn.stats().unpaired, 1);
    assert_eq!(conn.open_streams(), 0);
}

#[test]
fn limits_bound_streams_headers_and_bodies() {
    let config = Http2Config { max_streams: 4, max_body_bytes: 3, max_header_bytes: 40, ..Http2Config::default() };
    let mut conn = Http2Conn::new(config);
    let mut req = PREFACE.to_vec();
    for id in (1..40).step_by(2) {
        let mut block = vec![0x82, 0x86, 0x84];
        plain_literal(&mut block, "x-long", &"v".repeat(100));
        req.extend(frame(1, 4, id, &block));
        req.extend(frame(0, 1, id, b"0123456789"));
    }
    conn.feed(Side::Request, &req, 1);
    assert_eq!(conn.open_streams(), 4);
    assert_eq!(conn.stats().overflow, 16);
    let mut resp = SETTINGS_EMPTY.to_vec();
    resp.extend(frame(1, 5, 39, &[0x88]));
    conn.feed(Side::Response, &resp, 2);
    let recs = records(&mut conn);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].req.body, b"012");
    assert_eq!(recs[0].req.body_size, 10);
    assert!(recs[0].req.header("x-long").is_none(), "over the header byte bound");
    assert_eq!(recs[0].req.path, "/");
}

#[test]
fn first_bytes() {
    assert_eq!(looks_like(PREFACE), Some(true));
    assert_eq!(looks_like(&PREFACE[..8]), Some(true));
    assert_eq!(looks_like(&[0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3]), Some(false));
    assert_eq!(looks_like(&[0, 0, 18, 4, 1, 0, 0, 0, 0]), None, "an ACK is not a first frame");
    assert_eq!(looks_like(&[0, 0, 17, 4, 0, 0, 0, 0, 0]), None);
    assert_eq!(looks_like(b"PRI * HTTP/1.1\r\n"), None);
    assert_eq!(looks_like(b"GET / HTTP/1.1\r\n"), None);
    // Met mid-connection: a request's or a response's HEADERS frame, led by a static pseudo-header.
    let (q3, r3) = grpc_call(3, false);
    assert_eq!(looks_like(&q3), Some(true), "request headers (:method POST)");
    assert_eq!(looks_like(&r3), Some(false), "response headers (:status 200)");
    // A literal with incremental indexing whose name is static entry 4 (:path), value "/x".
    assert_eq!(looks_like(&frame(1, 4, 5, &[0x44, 2, b'/', b'x'])), Some(true), "a literal with :path's name");
    assert_eq!(looks_like(&frame(1, 4, 5, &[0x40, 1, b'a', 1, b'b'])), None, "a literal with a new name");
    let mut padded_priority = vec![2, 0, 0, 0, 0, 16, 0x88];
    padded_priority.extend([0, 0]);
    assert_eq!(looks_like(&frame(1, 4 | 8 | 0x20, 7, &padded_priority)), Some(false));
    assert_eq!(looks_like(&frame(1, 4, 2, &[0x83])), None, "an even (server-pushed) stream");
    assert_eq!(looks_like(&frame(1, 1, 3, &[0x83])), None, "without END_HEADERS: a CONTINUATION follows");
    assert_eq!(looks_like(&frame(1, 4, 3, &[0xbe])), None, "a dynamic-table entry alone says nothing");
    // gRPC's C core: :path and :authority from the dynamic table, then :method POST, :scheme http.
    assert_eq!(looks_like(&frame(1, 4, 3, &[0xc4, 0xc3, 0x83, 0x86, 0xc2])), Some(true));
    assert_eq!(looks_like(&frame(1, 4, 3, &[0xc4, 0x88])), Some(false));
    assert_eq!(looks_like(&frame(1, 4, 3, &[0xc4, 0x00, 1, b'a', 1, b'b'])), None, "a new name after entries");
    assert_eq!(looks_like(&frame(1, 4, 3, &[0x8f])), None, "a static entry that is no pseudo-header");
    assert_eq!(looks_like(&frame(1, 4, 3, &[0x3f, 0xe1, 0x1f])), None, "a table size update first");
    assert_eq!(looks_like(&frame(0, 0, 3, b"\0\0\0\0\x01x")), None, "a DATA frame");
    assert_eq!(looks_like(&frame(1, 4, 3, &[])), None, "an empty block");
}

/// The bound `buffered_bytes` must respect for `config`.
fn buffer_bound(c: &Http2Config) -> usize {
    let per_stream = 2 * (c.max_header_bytes + c.max_body_bytes + 64) * 2;
    2 * (2 * c.max_block_bytes + c.max_table_size + 64) + c.max_streams * per_stream
}

#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Request), Just(Side::Response)]
}

/// Bytes that often look like frames: a valid header with arbitrary payload, or noise.
fn arb_chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (0u8..10, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(ty, flags, stream, payload)| frame(ty, flags, stream, &payload)),
        Just(PREFACE.to_vec()),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (arb_side(), arb_chunk()).prop_map(|(s, b)| Op::Feed(s, b)),
        1 => (arb_side(), 0u64..200).prop_map(|(s, n)| Op::Gap(s, n)),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(ops in proptest::collection::vec(arb_op(), 0..60),
                                                       small in any::<bool>()) {
        let config = if small {
            Http2Config { max_body_bytes: 4, max_header_bytes: 16, max_table_size: 64, max_block_bytes: 32,
                          max_streams: 2, max_ready: 2 }
        } else {
            Http2Config::default()
        };
        let mut conn = Http2Conn::new(config);
        let mut out = Vec::new();
        for (ts, op) in ops.into_iter().enumerate() {
            match op {
                Op::Feed(side, bytes) => conn.feed(side, &bytes, ts as u64),
                Op::Gap(side, n) => conn.gap(side, n, ts as u64),
                Op::Close => conn.close(ts as u64),
            }
            prop_assert!(conn.buffered_bytes() <= buffer_bound(&config));
            prop_assert!(conn.open_streams() <= config.max_streams);
            conn.drain_records(&mut out);
        }
    }

    #[test]
    fn any_split_of_real_calls_gives_the_same_records(cuts in proptest::collection::vec(any::<usize>(), 0..12)) {
        let mut req = PREFACE.to_vec();
        let mut resp = SETTINGS_EMPTY.to_vec();
        for (id, first) in [(1, true), (3, false), (5, false)] {
            let (q, r) = grpc_call(id, first);
            req.extend(q);
            resp.extend(r);
        }
        let mut conn = Http2Conn::new(Http2Config::default());
        let split = |bytes: &[u8], cuts: &[usize]| {
            let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            at.push(0);
            at.push(bytes.len());
            at.sort_unstable();
            at.windows(2).map(|w| bytes[w[0]..w[1]].to_vec()).collect::<Vec<_>>()
        };
        for piece in split(&req, &cuts) {
            conn.feed(Side::Request, &piece, 1);
        }
        for piece in split(&resp, &cuts) {
            conn.feed(Side::Response, &piece, 2);
        }
        let recs = records(&mut conn);
        prop_assert_eq!(recs.len(), 3);
        for r in &recs {
            prop_assert_eq!(&r.req.path, "/helloworld.Greeter/SayHello");
            prop_assert!(!r.unresolved);
        }
    }

    #[test]
    fn hpack_never_panics(block in proptest::collection::vec(any::<u8>(), 0..200), complete in any::<bool>()) {
        let mut d = Decoder::new(256, complete);
        let mut out = Vec::new();
        let _ = d.decode(&block, &mut out, 128);
        prop_assert!(d.table_size() <= 256);
        prop_assert!(out.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() <= 128);
    }
}

/// Streams recorded from real peers (through a recording TCP relay): nghttp to nginx 1.22 (five
/// GETs multiplexed on one connection, nghttp's idle PRIORITY streams included), and Python
/// grpcio 1.51 client and server (41 unary calls, the last failing with NOT_FOUND).
#[test]
fn recorded_streams_from_real_peers_decode_fully() {
    let cases: [(&[u8], &[u8], usize); 2] = [
        (
            include_bytes!("../../testdata/http2/nghttp_nginx.req"),
            include_bytes!("../../testdata/http2/nghttp_nginx.resp"),
            5,
        ),
        (include_bytes!("../../testdata/http2/grpc.req"), include_bytes!("../../testdata/http2/grpc.resp"), 41),
    ];
    for (req, resp, n) in cases {
        let mut conn = Http2Conn::new(Http2Config::default());
        for (i, piece) in req.chunks(1460).enumerate() {
            conn.feed(Side::Request, piece, 10 + i as u64);
        }
        for (i, piece) in resp.chunks(1460).enumerate() {
            conn.feed(Side::Response, piece, 1000 + i as u64);
        }
        conn.close(10_000);
        let recs = records(&mut conn);
        let s = conn.stats();
        assert_eq!((s.errors, s.unresolved_blocks, s.lost_sync), (0, 0, 0), "{s:?}");
        let paths: Vec<(&str, u16)> = recs.iter().map(|r| (r.req.path.as_str(), r.resp.status)).collect();
        assert_eq!(recs.len(), n, "{paths:?} {s:?}");
        for r in &recs {
            assert!(r.req.path.starts_with('/'));
            assert!(r.req.header(":authority").is_some());
            assert!(r.resp.status == 200 || r.resp.status == 404, "{paths:?}");
        }
    }
}
