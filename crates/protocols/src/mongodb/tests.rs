//! MongoDB parser tests: an exchange built with `pymongo`'s own `OP_MSG` encoder and `bson` (a legacy
//! `OP_QUERY` handshake answered by `OP_REPLY`, SCRAM `saslStart`/`saslContinue`, `createUser`,
//! `insert` with a document sequence, `find`, an error, an unacknowledged write, `ping`), any
//! fragmentation, gaps, BSON edge cases and garbage; proptests that arbitrary input never panics
//! and stays bounded. No test here talks to a real `mongod` (none is packaged).

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

const REQ: &[u8] = include_bytes!("../../testdata/mongodb/pymongo.req");
const RESP: &[u8] = include_bytes!("../../testdata/mongodb/pymongo.resp");

fn run(config: MongodbConfig, pieces: &[(Side, &[u8])]) -> (Vec<Record>, MongodbStats) {
    let mut c = MongodbConn::new(config);
    for (ts, (side, bytes)) in pieces.iter().enumerate() {
        c.feed(*side, bytes, ts as u64 + 1);
    }
    c.close(u64::MAX);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    (records, c.stats())
}

/// (command, reply status or "-") per record, in request order.
fn summary(records: &[Record]) -> Vec<(String, String)> {
    let mut sorted: Vec<&Record> = records.iter().collect();
    sorted.sort_by_key(|r| REQ.windows(4).position(|w| w == r.req.request_id.to_le_bytes()));
    sorted.iter().map(|r| (r.req.cmd.clone(), r.resp.as_ref().map_or("-".into(), |p| p.status.clone()))).collect()
}

fn recorded() -> Vec<(String, String)> {
    [
        ("isMaster", "ok"),
        ("saslStart", "ok"),
        ("saslContinue", "ok"),
        ("createUser", "ok"),
        ("insert", "ok"),
        ("find", "ok"),
        ("find", "error"),
        ("insert", "-"),
        ("ping", "ok"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

#[test]
fn a_recorded_session_pairs_every_request_with_its_reply() {
    let (records, stats) = run(MongodbConfig::default(), &[(Side::Request, REQ), (Side::Response, RESP)]);
    assert_eq!(summary(&records), recorded());
    assert_eq!((stats.request.errors, stats.response.errors, stats.alone), (0, 0, 1), "{stats:?}");
    assert_eq!((stats.stitch.orphan_responses, stats.stitch.unanswered_requests), (0, 0), "{stats:?}");
    let by_cmd = |cmd: &'static str| records.iter().filter(move |r| r.req.cmd == cmd);
    let hello = by_cmd("isMaster").next().expect("hello");
    assert_eq!(hello.req.op_code, 2004);
    assert_eq!(
        hello.resp.as_ref().map(|r| (r.op_code, r.body.as_str())),
        Some((1, r#"{"helloOk":true,"ismaster":true,"maxWireVersion":21,"ok":1.0}"#))
    );
    let insert = by_cmd("insert").find(|r| r.resp.is_some()).expect("insert");
    assert_eq!(
        insert.req.body,
        r#"{"insert":"things","ordered":true,"$db":"test","documents":[{"_id":{"$oid":"65a1b2c3d4e5f60718293a4b"},"name":"lamp","qty":3},{"_id":{"$oid":"65a1b2c3d4e5f60718293a4c"},"name":"desk","qty":1,"tags":["wood","oak"],"price":129.5}]}"#
    );
    let failed = by_cmd("find").find(|r| r.resp.as_ref().is_some_and(|p| p.status == "error")).expect("error");
    assert_eq!(
        failed.resp.as_ref().map(|p| p.body.as_str()),
        Some(r#"{"ok":0.0,"errmsg":"unknown top level operator: $bad","code":2,"codeName":"BadValue"}"#)
    );
    let unacknowledged = by_cmd("insert").find(|r| r.resp.is_none()).expect("w:0 insert");
    assert!(unacknowledged.req.more_to_come);
    let sasl = by_cmd("saslStart").next().expect("saslStart");
    assert!(
        sasl.req.body.contains(
            r#""payload":{"$binary":{"base64":"biwsbj1hbGljZSxyPXJPcHJOR2Z3RWJlUldnYk5Fa3FP","subType":"00"}}"#
        )
    );
}

#[test]
fn every_reply_of_an_exhaust_cursor_is_a_record_with_its_request() {
    const MORE_TO_COME: i32 = 2;
    const EXHAUST_ALLOWED: i32 = 1 << 16;
    let ok = doc(&[(0x01, "ok", &1f64.to_le_bytes())]);
    let get_more = op_msg_flags(7, 0, EXHAUST_ALLOWED, &doc(&[(0x12, "getMore", &9i64.to_le_bytes())]));
    // Three batches: each answers the previous reply, the last one ends the stream; then a plain
    // request and reply, and a stray reply to an id nobody sent.
    let (a, b, c) =
        (op_msg_flags(100, 7, MORE_TO_COME, &ok), op_msg_flags(101, 100, MORE_TO_COME, &ok), op_msg(102, 101, &ok));
    let ping = op_msg(8, 0, &doc(&[(0x01, "ping", &1f64.to_le_bytes())]));
    let (pong, stray) = (op_msg(103, 8, &ok), op_msg(104, 555, &ok));
    let b_and_c = [b.as_slice(), c.as_slice()].concat();
    let pieces: Vec<(Side, &[u8])> = vec![
        (Side::Request, &get_more),
        (Side::Response, &a),
        // Two replies in one read: the second follows the first at once.
        (Side::Response, &b_and_c),
        (Side::Request, &ping),
        (Side::Response, &pong),
        (Side::Response, &stray),
    ];
    let mut c_conn = MongodbConn::new(MongodbConfig::default());
    for (ts, (side, bytes)) in pieces.iter().enumerate() {
        c_conn.feed(*side, bytes, (ts as u64 + 1) * 10);
    }
    let mut records = Vec::new();
    c_conn.drain_records(&mut records);
    let got: Vec<(String, i32, u64)> = records
        .iter()
        .map(|r| (r.req.cmd.clone(), r.resp.as_ref().map_or(-1, |p| p.request_id), r.latency_ns))
        .collect();
    assert_eq!(
        got,
        vec![
            ("getMore".into(), 100, 10),
            ("getMore".into(), 101, 10),
            ("getMore".into(), 102, 0),
            ("ping".into(), 103, 10)
        ]
    );
    let stats = c_conn.stats();
    assert_eq!(stats.streamed, 2, "{stats:?}");
    assert_eq!(c_conn.pending_messages(), 1, "the stray reply waits, the finished stream does not");
    c_conn.close(1_000);
    assert_eq!(c_conn.stats().stitch.orphan_responses, 1, "only the stray reply is unpaired");
}

#[test]
fn a_long_document_is_cut_to_the_budget_and_marked() {
    let config = MongodbConfig { max_value_bytes: 0, ..MongodbConfig::default() };
    let mut req = Vec::new();
    let big = "x".repeat(10_000);
    req.extend(op_msg(5, 0, &doc(&[(0x02, "insert", &bson_str("things")), (0x02, "note", &bson_str(&big))])));
    let (records, stats) = run(
        config,
        &[(Side::Request, &req), (Side::Response, &op_msg(6, 5, &doc(&[(0x01, "ok", &1f64.to_le_bytes())])))],
    );
    assert_eq!(records.len(), 1, "{stats:?}");
    assert!(records[0].req.cut);
    assert_eq!(records[0].req.cmd, "insert");
    assert!(records[0].req.body.len() <= 4096 + 64, "{}", records[0].req.body.len());
}

#[test]
fn bson_types_render_as_extended_json_and_deep_nesting_is_bounded() {
    let mut fields: Vec<(u8, &str, Vec<u8>)> = vec![
        (0x08, "t", vec![1]),
        (0x09, "d", 1_700_000_000_000i64.to_le_bytes().to_vec()),
        (0x0A, "n", vec![]),
        (0x12, "l", (-5i64).to_le_bytes().to_vec()),
        (0x11, "ts", [2u32.to_le_bytes(), 9u32.to_le_bytes()].concat()),
        (0x0B, "re", b"^a\0i\0".to_vec()),
        (0x01, "nan", f64::NAN.to_le_bytes().to_vec()),
        (0xFF, "min", vec![]),
    ];
    let mut nested = doc(&[(0x10, "x", &1i32.to_le_bytes())]);
    for _ in 0..40 {
        nested = doc(&[(0x03, "a", &nested)]);
    }
    fields.push((0x03, "deep", nested));
    let refs: Vec<(u8, &str, &[u8])> = fields.iter().map(|(k, n, v)| (*k, *n, v.as_slice())).collect();
    let reply = op_msg(2, 1, &doc(&[(0x01, "ok", &1f64.to_le_bytes())]));
    let (records, _) =
        run(MongodbConfig::default(), &[(Side::Request, &op_msg(1, 0, &doc(&refs))), (Side::Response, &reply)]);
    let body = &records[0].req.body;
    assert!(body.starts_with(
        r#"{"t":true,"d":{"$date":{"$numberLong":"1700000000000"}},"n":null,"l":-5,"ts":{"$timestamp":{"t":9,"i":2}},"re":{"$regularExpression":{"pattern":"^a","options":"i"}},"nan":{"$numberDouble":"NaN"},"min":{"$minKey":1},"deep":{"a":"#
    ), "{body}");
    assert!(records[0].req.cut);
}

#[test]
fn gaps_keep_sync_inside_a_message_and_lose_the_direction_between_messages() {
    let first = u32::from_le_bytes(REQ[..4].try_into().expect("4 bytes")) as usize;
    let mut c = MongodbConn::new(MongodbConfig::default());
    c.feed(Side::Request, &REQ[..first - 20], 1);
    c.gap(Side::Request, 20, 2);
    c.feed(Side::Request, &REQ[first..], 3);
    c.feed(Side::Response, RESP, 4);
    c.close(5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 9);
    assert!(records.iter().any(|r| r.req.op_code == 2004 && r.req.cut));
    let mut c = MongodbConn::new(MongodbConfig::default());
    c.feed(Side::Request, &REQ[..first], 1);
    c.gap(Side::Request, 3, 2);
    c.feed(Side::Request, &REQ[first + 3..], 3);
    assert_eq!(c.stats().request.errors, 1);
    assert_eq!(c.stats().request.skipped_bytes, (REQ.len() - first - 3) as u64);
}

#[test]
fn an_implausible_header_loses_the_direction_and_is_counted() {
    let (records, stats) =
        run(MongodbConfig::default(), &[(Side::Request, b"\x03\0\0\0\x01\0\0\0\0\0\0\0\xdd\x07\0\0")]);
    assert!(records.is_empty());
    assert_eq!(stats.request.errors, 1);
    // A whole message whose document is malformed is counted and the next one still parses.
    let mut stream = op_msg(1, 0, b"\x09\0\0\0\x42x\0\0\0");
    stream.extend(op_msg(2, 0, &doc(&[(0x10, "ping", &1i32.to_le_bytes())])));
    let (records, stats) = run(MongodbConfig::default(), &[(Side::Request, &stream)]);
    assert_eq!(stats.request.errors, 1);
    assert_eq!(stats.stitch.unanswered_requests, 1);
    assert!(records.is_empty());
}

/// `message` wrapped in `OP_COMPRESSED` with zlib (compressor 2) or noop (0).
fn compressed(message: &[u8], zlib: bool) -> Vec<u8> {
    use std::io::Write as _;
    let body = &message[16..];
    let data = if zlib {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(body).expect("compress");
        z.finish().expect("compress")
    } else {
        body.to_vec()
    };
    let mut out = ((16 + 9 + data.len()) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(&message[4..12]);
    out.extend_from_slice(&2012i32.to_le_bytes());
    out.extend_from_slice(&message[12..16]);
    out.extend_from_slice(&(body.len() as i32).to_le_bytes());
    out.push(if zlib { 2 } else { 0 });
    out.extend(data);
    out
}

#[test]
fn zlib_and_noop_compressed_messages_are_decoded_and_others_named() {
    let find = op_msg(3, 0, &doc(&[(0x02, "find", &bson_str("things")), (0x02, "$db", &bson_str("test"))]));
    let reply = op_msg(4, 3, &doc(&[(0x01, "ok", &1f64.to_le_bytes())]));
    for zlib in [true, false] {
        let (records, stats) = run(
            MongodbConfig::default(),
            &[(Side::Request, &compressed(&find, zlib)), (Side::Response, &compressed(&reply, zlib))],
        );
        assert_eq!(records.len(), 1, "{stats:?}");
        let r = &records[0];
        assert_eq!(
            (r.req.op_code, r.req.cmd.as_str(), r.req.body.as_str()),
            (2012, "find", r#"{"find":"things","$db":"test"}"#)
        );
        assert_eq!(r.resp.as_ref().map(|p| (p.status.as_str(), p.body.as_str())), Some(("ok", r#"{"ok":1.0}"#)));
    }
    // Snappy is not decoded: the row names the compressed opcode and compressor.
    let mut snappy = compressed(&find, false);
    snappy[24] = 1;
    let (records, _) =
        run(MongodbConfig::default(), &[(Side::Request, &snappy), (Side::Response, &compressed(&reply, true))]);
    assert_eq!(records[0].req.cmd, "OP_MSG");
    assert!(records[0].req.body.contains(r#""compressor":"snappy""#));
    // A zlib bomb is inflated no further than the budget.
    let big = op_msg(5, 0, &doc(&[(0x02, "insert", &bson_str(&"a".repeat(1 << 20)))]));
    let (records, _) = run(
        MongodbConfig::default(),
        &[
            (Side::Request, &compressed(&big, true)),
            (Side::Response, &compressed(&op_msg(6, 5, &doc(&[(0x01, "ok", &1f64.to_le_bytes())])), true)),
        ],
    );
    assert!(records[0].req.cut && records[0].req.cmd == "insert" && records[0].req.body.len() < 8192);
}

#[test]
fn first_bytes_tell_a_mongodb_request_from_other_protocols() {
    assert!(looks_like(REQ));
    assert!(looks_like(&op_msg(1, 0, &doc(&[(0x10, "ping", &1i32.to_le_bytes())]))));
    assert!(!looks_like(RESP));
    for other in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"\0\0\0\x08\x04\xd2\x16\x2f",
        include_bytes!("../../testdata/kafka/kafka_python.req"),
        include_bytes!("../../testdata/cql/driver_v4.req"),
    ] {
        assert!(!looks_like(other));
    }
}

fn bson_str(s: &str) -> Vec<u8> {
    let mut out = ((s.len() + 1) as i32).to_le_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    out
}

fn doc(fields: &[(u8, &str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, name, value) in fields {
        body.push(*kind);
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(value);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as i32).to_le_bytes().to_vec();
    out.extend(body);
    out
}

fn op_msg(request_id: i32, response_to: i32, document: &[u8]) -> Vec<u8> {
    op_msg_flags(request_id, response_to, 0, document)
}

/// `OP_MSG` with flag bits (`moreToCome` 2, `exhaustAllowed` 1 << 16).
fn op_msg_flags(request_id: i32, response_to: i32, flags: i32, document: &[u8]) -> Vec<u8> {
    let mut out = ((16 + 5 + document.len()) as i32).to_le_bytes().to_vec();
    for v in [request_id, response_to, 2013, flags] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(0);
    out.extend_from_slice(document);
    out
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

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (0..REQ.len(), 1..200usize).prop_map(|(at, n)| REQ[at..(at + n).min(REQ.len())].to_vec()),
        (0..RESP.len(), 1..200usize).prop_map(|(at, n)| RESP[at..(at + n).min(RESP.len())].to_vec()),
        Just(REQ.to_vec()),
        Just(RESP.to_vec()),
        // A message header followed by arbitrary bytes: exercises the BSON renderer on garbage.
        prop::collection::vec(any::<u8>(), 0..200).prop_map(|body| {
            let mut m = ((16 + body.len()) as i32).to_le_bytes().to_vec();
            m.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0]);
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
        let config = if small { MongodbConfig { max_value_bytes: 3, max_pending: 2 } } else { MongodbConfig::default() };
        let mut c = MongodbConn::new(config);
        let bound = 2 * (16 + 4096 + config.max_value_bytes);
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

    /// The recorded session gives the same records however its bytes are split.
    #[test]
    fn the_recorded_session_survives_any_fragmentation(
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut pieces = Vec::new();
        for (side, bytes) in [(Side::Request, REQ), (Side::Response, RESP)] {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            for w in points.windows(2) {
                pieces.push((side, &bytes[w[0]..w[1]]));
            }
        }
        let (records, _) = run(MongodbConfig::default(), &pieces);
        prop_assert_eq!(summary(&records), recorded());
    }
}
