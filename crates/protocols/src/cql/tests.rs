//! CQL parser tests: exchanges whose requests come from `cassandra-driver`'s own encoder (v4:
//! OPTIONS, STARTUP, password authentication, REGISTER, QUERY, PREPARE, EXECUTE, BATCH, an error,
//! two pipelined queries answered out of order around a server EVENT; v5 with segment framing after
//! the handshake, two envelopes in one segment), any fragmentation, gaps and garbage; proptests that
//! arbitrary input never panics and stays bounded. No test here talks to a real Cassandra (none is
//! packaged).

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

const V4_REQ: &[u8] = include_bytes!("../../testdata/cql/driver_v4.req");
const V4_RESP: &[u8] = include_bytes!("../../testdata/cql/driver_v4.resp");
const V5_REQ: &[u8] = include_bytes!("../../testdata/cql/driver_v5.req");
const V5_RESP: &[u8] = include_bytes!("../../testdata/cql/driver_v5.resp");

fn run(pieces: &[(Side, &[u8])]) -> (Vec<Record>, CqlStats) {
    let mut c = CqlConn::new(CqlConfig::default());
    for (ts, (side, bytes)) in pieces.iter().enumerate() {
        c.feed(*side, bytes, ts as u64 + 1);
    }
    c.close(u64::MAX);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    (records, c.stats())
}

/// (stream, request opcode, response opcode or 0xff) per record, by stream.
fn summary(records: &[Record]) -> Vec<(i16, &'static str, &'static str)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| (r.req.stream, opcode_name(r.req.opcode), r.resp.as_ref().map_or("-", |p| opcode_name(p.opcode))))
        .collect();
    out.sort();
    out
}

fn v4() -> Vec<(i16, &'static str, &'static str)> {
    vec![
        (-1, "EVENT", "-"),
        (0, "OPTIONS", "SUPPORTED"),
        (1, "STARTUP", "AUTHENTICATE"),
        (2, "AUTH_RESPONSE", "AUTH_SUCCESS"),
        (3, "REGISTER", "READY"),
        (4, "QUERY", "RESULT"),
        (5, "QUERY", "RESULT"),
        (6, "PREPARE", "RESULT"),
        (7, "EXECUTE", "RESULT"),
        (8, "QUERY", "ERROR"),
        (9, "BATCH", "RESULT"),
        (10, "QUERY", "RESULT"),
        (11, "QUERY", "RESULT"),
    ]
}

#[test]
fn a_recorded_v4_session_pairs_every_request_by_stream() {
    let (records, stats) = run(&[(Side::Request, V4_REQ), (Side::Response, V4_RESP)]);
    assert_eq!(summary(&records), v4());
    assert_eq!((stats.request.errors, stats.response.errors, stats.events, stats.segments), (0, 0, 1, 0), "{stats:?}");
    assert_eq!((stats.stitch.orphan_responses, stats.stitch.unanswered_requests), (0, 0), "{stats:?}");
    let on = |stream: i16| records.iter().find(|r| r.req.stream == stream).expect("record");
    let bodies = |stream: i16| {
        (on(stream).req.body.clone(), on(stream).resp.as_ref().map(|p| p.body.clone()).unwrap_or_default())
    };
    assert_eq!(
        bodies(4),
        (
            r#"{"query":"SELECT release_version FROM system.local","consistency":"ONE"}"#.into(),
            r#"{"kind":"Rows","columns":["release_version varchar"],"rows":1}"#.into()
        )
    );
    assert_eq!(bodies(6).1, r#"{"kind":"Prepared","id":"0123456789abcdef0123456789abcdef"}"#);
    assert_eq!(bodies(7).0, r#"{"id":"0123456789abcdef0123456789abcdef","consistency":"QUORUM","values":2}"#);
    assert_eq!(bodies(8).1, r#"{"code":8192,"message":"line 1:0 no viable alternative at input 'SELEC'"}"#);
    assert_eq!(
        bodies(9).0,
        r#"{"type":"LOGGED","queries":[{"query":"INSERT INTO ks.t (k, v) VALUES (2, 'two')"},{"id":"0123456789abcdef0123456789abcdef"}],"consistency":"ONE"}"#
    );
    assert_eq!(bodies(10).1, r#"{"kind":"Rows","columns":["k int","v varchar"],"rows":3}"#);
    assert_eq!(
        on(-1).req.body,
        r#"{"type":"SCHEMA_CHANGE","change":"CREATED","target":"TABLE","keyspace":"ks","name":"t2"}"#
    );
    assert_eq!(on(-1).from, Side::Response);
    // The token is kept as sent: redaction is the caller's switch (see `redact`).
    assert!(bodies(2).0.contains("cassandra-secret"));
}

#[test]
fn a_recorded_v5_session_reads_envelopes_inside_segments_after_the_handshake() {
    let (records, stats) = run(&[(Side::Request, V5_REQ), (Side::Response, V5_RESP)]);
    assert_eq!(
        summary(&records),
        [
            (0, "OPTIONS", "SUPPORTED"),
            (1, "STARTUP", "READY"),
            (2, "QUERY", "RESULT"),
            (3, "QUERY", "RESULT"),
            (4, "QUERY", "ERROR")
        ]
    );
    assert_eq!(stats.segments, 4, "{stats:?}");
    assert_eq!(stats.request.errors + stats.response.errors, 0, "{stats:?}");
    assert!(records.iter().all(|r| r.req.version == 5));
}

#[test]
fn gaps_keep_sync_inside_a_body_and_lose_the_direction_between_messages() {
    // Stream 4's QUERY starts after the first four requests.
    let at = nth_envelope(V4_REQ, 4);
    let mut c = CqlConn::new(CqlConfig::default());
    c.feed(Side::Request, &V4_REQ[..at + 20], 1);
    c.gap(Side::Request, 5, 2);
    c.feed(Side::Request, &V4_REQ[at + 25..], 3);
    c.feed(Side::Response, V4_RESP, 4);
    c.close(5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 13);
    assert!(records.iter().any(|r| r.req.stream == 4 && r.req.cut));
    let mut c = CqlConn::new(CqlConfig::default());
    c.feed(Side::Request, &V4_REQ[..at], 1);
    c.gap(Side::Request, 9, 2);
    c.feed(Side::Request, &V4_REQ[at + 9..], 3);
    assert_eq!(c.stats().request.errors, 1);
}

fn nth_envelope(stream: &[u8], n: usize) -> usize {
    let mut at = 0;
    for _ in 0..n {
        at += 9 + u32::from_be_bytes(stream[at + 5..at + 9].try_into().expect("4 bytes")) as usize;
    }
    at
}

#[test]
fn an_implausible_header_loses_the_direction_and_is_counted() {
    let (records, stats) = run(&[(Side::Request, b"\x09\x00\x00\x01\x07\x00\x00\x00\x00")]);
    assert!(records.is_empty());
    assert_eq!(stats.request.errors, 1);
}

#[test]
fn first_bytes_tell_a_cql_request_from_other_protocols() {
    assert!(looks_like(V4_REQ));
    assert!(looks_like(V5_REQ));
    assert!(looks_like(&V4_REQ[nth_envelope(V4_REQ, 1)..]));
    assert!(!looks_like(V4_RESP));
    for other in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"\0\0\0\x08\x04\xd2\x16\x2f",
        b"\0\0\x12\x04\0\0\0\0\0\0\x03\0\0\0\x64",
        include_bytes!("../../testdata/kafka/kafka_python.req"),
        include_bytes!("../../testdata/mongodb/pymongo.req"),
    ] {
        assert!(!looks_like(other));
    }
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

fn slice_of(stream: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    (0..stream.len(), 1..200usize).prop_map(move |(at, n)| stream[at..(at + n).min(stream.len())].to_vec())
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        slice_of(V4_REQ),
        slice_of(V4_RESP),
        slice_of(V5_REQ),
        slice_of(V5_RESP),
        Just(V4_REQ.to_vec()),
        Just(V5_RESP.to_vec()),
        // A header followed by arbitrary bytes: exercises the body decoders on garbage.
        (any::<u8>(), 0u8..0x11, prop::collection::vec(any::<u8>(), 0..120)).prop_map(|(flags, op, body)| {
            let mut m = vec![0x84, flags & 0x0e, 0, 1, op];
            m.extend_from_slice(&(body.len() as u32).to_be_bytes());
            m.extend(body);
            m
        }),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (arb_side(), arb_bytes()).prop_map(|(s, b)| Op::Feed(s, b)),
        2 => (arb_side(), 0u64..100_000).prop_map(|(s, n)| Op::Gap(s, n)),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever arrives, in whatever order, the connection never panics and stays bounded.
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(ops in prop::collection::vec(arb_op(), 0..40), small in any::<bool>()) {
        let config = if small { CqlConfig { max_value_bytes: 3, max_pending: 2 } } else { CqlConfig::default() };
        let mut c = CqlConn::new(config);
        let bound = 2 * (9 + 4096 + config.max_value_bytes);
        let mut records = Vec::new();
        for (ts, op) in ops.into_iter().enumerate() {
            match op {
                Op::Feed(side, bytes) => c.feed(side, &bytes, ts as u64),
                Op::Gap(side, len) => c.gap(side, len, ts as u64),
                Op::Close => c.close(ts as u64),
            }
            prop_assert!(c.buffered_bytes() <= bound, "{} > {bound}", c.buffered_bytes());
            prop_assert!(c.pending_messages() <= 2 * config.max_pending);
            c.drain_records(&mut records);
        }
        c.close(u64::MAX);
        prop_assert_eq!(c.buffered_bytes(), 0);
    }

    /// The recorded sessions give the same records however their bytes are split.
    #[test]
    fn the_recorded_sessions_survive_any_fragmentation(
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        v5 in any::<bool>(),
    ) {
        let (req, resp) = if v5 { (V5_REQ, V5_RESP) } else { (V4_REQ, V4_RESP) };
        let whole = run(&[(Side::Request, req), (Side::Response, resp)]).0;
        let mut pieces = Vec::new();
        for (side, bytes) in [(Side::Request, req), (Side::Response, resp)] {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            for w in points.windows(2) {
                pieces.push((side, &bytes[w[0]..w[1]]));
            }
        }
        let (records, _) = run(&pieces);
        prop_assert_eq!(summary(&records), summary(&whole));
    }
}
