//! AMQP parser tests: a recorded exchange between Python `pika` and RabbitMQ 3.10 (login, queue
//! declare, publishes with content, get, consume with deliveries and acks, a broker-closed channel,
//! close), gaps and garbage; proptests that arbitrary input never panics and stays bounded.

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

/// Feeds a recorded connection in 1460-byte pieces, both sides alternating, at one capture time
/// (the recording has none): replies may come before the method they answer, as when the two
/// directions of a capture are fed separately.
fn replay(req: &[u8], resp: &[u8]) -> (Vec<Record>, AmqpStats) {
    let mut c = AmqpConn::new(AmqpConfig::default());
    let (mut r, mut s) = (req.chunks(1460), resp.chunks(1460));
    loop {
        let (a, b) = (r.next(), s.next());
        if a.is_none() && b.is_none() {
            break;
        }
        if let Some(a) = a {
            c.feed(Side::Request, a, 1);
        }
        if let Some(b) = b {
            c.feed(Side::Response, b, 1);
        }
    }
    c.close(2);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    (records, c.stats())
}

/// (sender is the client, request method, reply method or "") per record.
fn names(records: &[Record]) -> Vec<(bool, &'static str, &'static str)> {
    records
        .iter()
        .map(|r| {
            (
                r.from == Side::Request,
                method_name(r.req.class_id, r.req.method_id),
                r.resp.as_ref().map_or("", |p| method_name(p.class_id, p.method_id)),
            )
        })
        .collect()
}

#[test]
fn a_recorded_pika_session_pairs_every_synchronous_method() {
    let (records, stats) =
        replay(include_bytes!("../../testdata/amqp/pika.req"), include_bytes!("../../testdata/amqp/pika.resp"));
    assert_eq!(stats.request.errors + stats.response.errors + stats.orphan_replies, 0, "{stats:?}");
    // The passive declare of a missing queue is answered by the broker closing the channel.
    assert_eq!(stats.unanswered, 1, "{stats:?}");
    let mut got = names(&records);
    got.sort();
    let mut want = vec![
        (false, "connection.start", "connection.start-ok"),
        (false, "connection.tune", "connection.tune-ok"),
        (true, "connection.open", "connection.open-ok"),
        (true, "channel.open", "channel.open-ok"),
        (true, "queue.declare", "queue.declare-ok"),
        (true, "basic.publish", ""),
        (true, "basic.publish", ""),
        (true, "basic.publish", ""),
        (true, "basic.get", "basic.get-ok"),
        (true, "basic.ack", ""),
        (true, "basic.consume", "basic.consume-ok"),
        (false, "basic.deliver", ""),
        (false, "basic.deliver", ""),
        (true, "basic.ack", ""),
        (true, "basic.ack", ""),
        (true, "basic.cancel", "basic.cancel-ok"),
        (true, "queue.declare", ""),
        (false, "channel.close", "channel.close-ok"),
        (true, "connection.close", "connection.close-ok"),
    ];
    want.sort();
    assert_eq!(got, want);
    let publish = records.iter().find(|r| r.req.method_id == 40 && r.req.class_id == 60).expect("publish");
    assert_eq!(
        publish.req.msg,
        r#"{"method":"basic.publish","exchange":"","routing_key":"loupe.q","mandatory":false,"immediate":false,"body_size":7,"body":"hello 0"}"#
    );
    let get = records.iter().find(|r| r.req.method_id == 70).expect("get");
    let get_ok = get.resp.as_ref().expect("get-ok");
    assert!(get_ok.msg.ends_with(r#""body_size":7,"body":"hello 0"}"#), "{}", get_ok.msg);
    let close = records.iter().find(|r| (r.req.class_id, r.req.method_id) == (20, 40)).expect("channel.close");
    assert!(close.req.msg.contains(r#""reply_code":404"#), "{}", close.req.msg);
    let login = records.iter().find(|r| r.req.method_id == 10 && r.req.class_id == 10).expect("start");
    let start_ok = login.resp.as_ref().expect("start-ok");
    assert!(start_ok.msg.contains(r#""mechanism":"PLAIN""#), "{}", start_ok.msg);
}

#[test]
fn the_login_response_is_redacted() {
    let (mut records, _) =
        replay(include_bytes!("../../testdata/amqp/pika.req"), include_bytes!("../../testdata/amqp/pika.resp"));
    for r in &mut records {
        crate::redact::amqp_method(&mut r.req);
        if let Some(resp) = r.resp.as_mut() {
            crate::redact::amqp_method(resp);
        }
    }
    let text: String = records
        .iter()
        .flat_map(|r| [r.req.msg.clone(), r.resp.as_ref().map(|p| p.msg.clone()).unwrap_or_default()])
        .collect();
    assert!(!text.contains("\\u0000guest"), "the PLAIN response leaked: {text}");
    assert!(text.contains(r#""response":"[REDACTED]""#), "{text}");
}

#[test]
fn a_bad_frame_end_loses_the_direction_once() {
    let mut c = AmqpConn::new(AmqpConfig::default());
    c.feed(Side::Request, b"\x01\x00\x01\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xcf", 1);
    c.feed(Side::Request, b"\x01\x00\x01\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xce", 2);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert!(records.is_empty());
    assert_eq!(c.stats().request.errors, 1);
}

#[test]
fn a_gap_inside_a_body_frame_is_stepped_over() {
    let mut c = AmqpConn::new(AmqpConfig::default());
    // basic.publish on channel 1, a content header for 6 bytes, the body with a 2-byte gap.
    let mut publish = vec![1u8, 0, 1, 0, 0, 0, 13, 0, 60, 0, 40, 0, 0, 0, 3, b'k', b'e', b'y', 0, 0xce];
    publish[6] = (publish.len() - 8) as u8;
    c.feed(Side::Request, &publish, 1);
    c.feed(Side::Request, &[2, 0, 1, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0xce], 2);
    c.feed(Side::Request, &[3, 0, 1, 0, 0, 0, 6, b'a', b'b'], 3);
    c.gap(Side::Request, 2, 4);
    c.feed(Side::Request, &[b'e', b'f', 0xce], 5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert!(records[0].req.cut);
    assert!(
        records[0]
            .req
            .msg
            .ends_with(r#""routing_key":"key","mandatory":false,"immediate":false,"body_size":6,"body":"abef"}"#),
        "{}",
        records[0].req.msg
    );
}

#[test]
fn first_bytes_are_recognised() {
    assert_eq!(looks_like(b"AMQP\x00\x00\x09\x01"), Some(Side::Request));
    assert_eq!(looks_like(&include_bytes!("../../testdata/amqp/pika.resp")[..16]), Some(Side::Response));
    assert_eq!(looks_like(b"GET / HTTP/1.1\r\n"), None);
    assert_eq!(looks_like(b"\x01\x00\x00\x00\x00\x01\x00\x00\x0b"), None);
}

#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    let req = include_bytes!("../../testdata/amqp/pika.req");
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (0usize..req.len(), 1usize..200).prop_map(move |(at, n)| req[at..(at + n).min(req.len())].to_vec()),
        Just(b"AMQP\x00\x00\x09\x01".to_vec()),
        Just(vec![1, 0, 1, 0, 0, 0, 5, 0, 20, 0, 10, 0, 0xce]),
        Just(vec![3, 0, 1, 0xff, 0xff, 0xff, 0xff]),
    ]
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Request), Just(Side::Response)]
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
    fn arbitrary_input_never_panics_and_stays_bounded(ops in prop::collection::vec(arb_op(), 0..40)) {
        let mut c = AmqpConn::new(AmqpConfig::default());
        let bound = 2 * (MAX_KEPT_FRAME + 7 + 512 + MAX_KEPT_FRAME + 256);
        let mut records = Vec::new();
        for (ts, op) in ops.into_iter().enumerate() {
            match op {
                Op::Feed(side, bytes) => c.feed(side, &bytes, ts as u64),
                Op::Gap(side, len) => c.gap(side, len, ts as u64),
                Op::Close => c.close(ts as u64),
            }
            prop_assert!(c.buffered_bytes() <= bound, "{} > {bound}", c.buffered_bytes());
            c.drain_records(&mut records);
        }
        c.close(u64::MAX);
        prop_assert_eq!(c.buffered_bytes(), 0);
    }

    /// The recorded session parses the same whatever the fragmentation.
    #[test]
    fn the_recorded_session_round_trips_through_any_fragmentation(size in 1usize..600) {
        let (req, resp) = (include_bytes!("../../testdata/amqp/pika.req"), include_bytes!("../../testdata/amqp/pika.resp"));
        let mut c = AmqpConn::new(AmqpConfig::default());
        for piece in req.chunks(size) {
            c.feed(Side::Request, piece, 1);
        }
        for piece in resp.chunks(size) {
            c.feed(Side::Response, piece, 1);
        }
        c.close(3);
        let mut records = Vec::new();
        c.drain_records(&mut records);
        prop_assert_eq!(records.len(), 19);
    }
}
