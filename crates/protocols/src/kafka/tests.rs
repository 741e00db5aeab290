//! Kafka parser tests: an exchange recorded from `kafka-python`'s own encoders (`ApiVersions`,
//! SASL, `Metadata`, `Produce` v7/v9 and with `acks=0`, `Fetch` v4/v12, an error), any
//! fragmentation, responses before their requests, gaps and garbage; proptests that arbitrary
//! input never panics and stays bounded. No test here talks to a real broker (none is packaged).

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

const REQ: &[u8] = include_bytes!("../../testdata/kafka/kafka_python.req");
const RESP: &[u8] = include_bytes!("../../testdata/kafka/kafka_python.resp");

fn run(pieces: &[(Side, &[u8])]) -> (Vec<Record>, KafkaStats) {
    let mut c = KafkaConn::new(KafkaConfig::default());
    for (ts, (side, bytes)) in pieces.iter().enumerate() {
        c.feed(*side, bytes, ts as u64 + 1);
    }
    c.close(u64::MAX);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    (records, c.stats())
}

/// (api key, version, correlation id, response body or "-") per record, by correlation id.
fn summary(records: &[Record]) -> Vec<(i16, i16, i32, String)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r.req.api_key,
                r.req.api_version,
                r.req.correlation_id,
                r.resp.as_ref().map_or("-".into(), |p| p.body.clone()),
            )
        })
        .collect();
    out.sort_by_key(|r| r.2);
    out
}

fn recorded() -> Vec<(i16, i16, i32, String)> {
    let topic = |error: i32, offset: i64| {
        format!(
            r#"{{"topics":[{{"name":"events","partitions":[{{"index":0,"error_code":{error},"base_offset":{offset}}}]}}],"throttle_time_ms":0}}"#
        )
    };
    let fetch = r#"{"name":"events","partitions":[{"index":0,"error_code":0,"high_watermark":44,"records_size":85}]}"#;
    vec![
        (18, 3, 1, r#"{"error_code":0}"#.into()),
        (17, 1, 2, r#"{"error_code":0}"#.into()),
        (36, 2, 3, r#"{"error_code":0,"auth_bytes":""}"#.into()),
        (3, 9, 4, r#"{"throttle_time_ms":0}"#.into()),
        (0, 9, 5, topic(0, 41)),
        (0, 7, 6, topic(0, 43)),
        (0, 8, 7, "-".into()),
        (1, 12, 8, format!(r#"{{"throttle_time_ms":0,"error_code":0,"session_id":0,"topics":[{fetch}]}}"#)),
        (1, 4, 9, format!(r#"{{"throttle_time_ms":0,"topics":[{fetch}]}}"#)),
        (
            0,
            9,
            10,
            r#"{"topics":[{"name":"missing","partitions":[{"index":5,"error_code":3,"base_offset":-1}]}],"throttle_time_ms":0}"#
                .into(),
        ),
    ]
}

#[test]
fn a_recorded_session_pairs_every_request_by_correlation_id() {
    let (records, stats) = run(&[(Side::Request, REQ), (Side::Response, RESP)]);
    assert_eq!(summary(&records), recorded());
    assert_eq!((stats.request.errors, stats.response.errors, stats.alone), (0, 0, 1), "{stats:?}");
    assert_eq!((stats.stitch.orphan_responses, stats.stitch.unanswered_requests), (0, 0), "{stats:?}");
    assert!(records.iter().all(|r| r.req.client_id == "loupe-test" && !r.req.cut));
    let by_id = |id: i32| records.iter().find(|r| r.req.correlation_id == id).expect("record");
    assert_eq!(by_id(1).req.body, r#"{"client_software_name":"kafka-python","client_software_version":"3.0"}"#);
    assert_eq!(by_id(2).req.body, r#"{"mechanism":"PLAIN"}"#);
    assert_eq!(by_id(4).req.body, r#"{"topics":["events"]}"#);
    assert_eq!(
        by_id(5).req.body,
        r#"{"transactional_id":null,"acks":-1,"timeout_ms":1500,"topics":[{"name":"events","partitions":[{"index":0,"message_set_size":85}]}]}"#
    );
    assert!(by_id(7).req.no_response && by_id(7).req.body.contains(r#""acks":0"#));
    assert!(by_id(8).req.body.contains(r#""fetch_offset":41"#));
    // The SASL bytes are kept as sent: redaction is the caller's switch (see `redact`).
    assert!(by_id(3).req.body.contains("alice-secret"));
}

#[test]
fn responses_fed_before_their_requests_still_pair_with_latency() {
    let mut c = KafkaConn::new(KafkaConfig::default());
    c.feed(Side::Response, RESP, 500);
    c.feed(Side::Request, REQ, 100);
    c.close(1000);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(summary(&records), recorded());
    assert!(records.iter().filter(|r| r.resp.is_some()).all(|r| r.latency_ns == 400));
}

#[test]
fn a_gap_inside_a_request_marks_it_cut_and_keeps_the_stream_in_sync() {
    // Cut the Produce v9 request (correlation id 5) in its record batch.
    let mut c = KafkaConn::new(KafkaConfig::default());
    let at = find_request(REQ, 5) + 90;
    c.feed(Side::Request, &REQ[..at], 1);
    c.gap(Side::Request, 10, 2);
    c.feed(Side::Request, &REQ[at + 10..], 3);
    c.feed(Side::Response, RESP, 4);
    c.close(5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 10);
    let produce = records.iter().find(|r| r.req.correlation_id == 5).expect("produce");
    assert!(produce.req.cut);
    assert_eq!(c.stats().request.gaps, 1);
    // A gap between two messages loses the direction: what follows is counted, not guessed.
    let mut c = KafkaConn::new(KafkaConfig::default());
    let at = find_request(REQ, 5);
    c.feed(Side::Request, &REQ[..at], 1);
    c.gap(Side::Request, 4, 2);
    c.feed(Side::Request, &REQ[at + 4..], 3);
    let stats = c.stats();
    assert_eq!(stats.request.errors, 1);
    assert_eq!(stats.request.skipped_bytes, (REQ.len() - at - 4) as u64);
}

/// The offset of the request with `correlation_id` in a request stream.
fn find_request(stream: &[u8], correlation_id: i32) -> usize {
    let mut at = 0;
    while at + 12 <= stream.len() {
        let size = u32::from_be_bytes(stream[at..at + 4].try_into().expect("4 bytes")) as usize;
        if i32::from_be_bytes(stream[at + 8..at + 12].try_into().expect("4 bytes")) == correlation_id {
            return at;
        }
        at += 4 + size;
    }
    panic!("no request {correlation_id}");
}

#[test]
fn a_raw_sasl_token_after_a_v0_handshake_never_becomes_a_record() {
    let mut req = Vec::new();
    // SaslHandshake v0 "PLAIN", correlation id 1, then the raw token with only a size.
    let body = b"\0\x11\0\0\0\0\0\x01\0\x01c\0\x05PLAIN";
    req.extend_from_slice(&(body.len() as u32).to_be_bytes());
    req.extend_from_slice(body);
    let token = b"\0alice\0alice-secret";
    req.extend_from_slice(&(token.len() as u32).to_be_bytes());
    req.extend_from_slice(token);
    // The broker's answer, then its raw (empty) SASL reply, then an ApiVersions exchange that must
    // still pair: the empty reply neither breaks the direction nor becomes a record.
    req.extend_from_slice(b"\0\0\0\x0b\0\x12\0\0\0\0\0\x02\0\x01c");
    let resp = b"\0\0\0\x11\0\0\0\x01\0\0\0\0\0\x01\0\x05PLAIN\0\0\0\0\0\0\0\x0a\0\0\0\x02\0\0\0\0\0\0";
    let (records, stats) = run(&[(Side::Request, &req), (Side::Response, resp)]);
    assert_eq!(records.len(), 2, "{stats:?}");
    assert_eq!(records[0].req.body, r#"{"mechanism":"PLAIN"}"#);
    assert!(!format!("{records:?}").contains("secret"));
    assert_eq!((stats.request.errors, stats.response.errors), (0, 1));
}

#[test]
fn an_implausible_size_loses_the_direction_and_is_counted() {
    let (records, stats) = run(&[(Side::Request, b"\x7f\xff\xff\xff\0\x12\0\0"), (Side::Response, b"\xff\0\0\x01")]);
    assert!(records.is_empty());
    assert_eq!((stats.request.errors, stats.response.errors), (1, 1));
}

#[test]
fn first_bytes_tell_a_kafka_request_from_other_protocols() {
    assert!(looks_like(REQ));
    assert!(looks_like(&REQ[..find_request(REQ, 2)]));
    for other in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"\0\0\0\x08\x04\xd2\x16\x2f",
        b"\0\0\0\x54\0\x03\0\0user\0postgres\0",
        b"*1\r\n$4\r\nPING\r\n",
        b"\x16\x03\x01\x02\0\x01\0\x01\xfc\x03\x03",
        include_bytes!("../../testdata/mongodb/pymongo.req"),
        include_bytes!("../../testdata/cql/driver_v4.req"),
    ] {
        assert!(!looks_like(other), "{other:?}");
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

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (0..REQ.len(), 1..200usize).prop_map(|(at, n)| REQ[at..(at + n).min(REQ.len())].to_vec()),
        (0..RESP.len(), 1..200usize).prop_map(|(at, n)| RESP[at..(at + n).min(RESP.len())].to_vec()),
        Just(REQ.to_vec()),
        Just(RESP.to_vec()),
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
        let config = if small { KafkaConfig { max_value_bytes: 3, max_pending: 2 } } else { KafkaConfig::default() };
        let mut c = KafkaConn::new(config);
        let bound = 2 * (4 + MAX_KEPT_HEADER + config.max_value_bytes);
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
        let (records, _) = run(&pieces);
        prop_assert_eq!(summary(&records), recorded());
    }
}
