//! MQTT parser tests: sessions at 3.1.1 and 5 as mosquitto's clients send them (connect, publish
//! at each QoS, subscribe, delivery to a subscriber, ping, disconnect), a refused connect,
//! byte-at-a-time reads, long payloads and gaps; proptests that arbitrary input never panics and
//! stays bounded, and that valid sessions round-trip through any fragmentation.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::{ConnParser, Side};

/// A packet: fixed header byte, remaining length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut n = body.len();
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn s16(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

fn connect(level: u8, client_id: &str, user: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = s16(b"MQTT");
    body.push(level);
    body.push(0x02 | if user.is_some() { 0xc0 } else { 0 });
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.extend_from_slice(&[3, 0x21, 0, 20]); // properties: receive maximum 20
    }
    body.extend(s16(client_id.as_bytes()));
    if let Some((u, p)) = user {
        body.extend(s16(u.as_bytes()));
        body.extend(s16(p.as_bytes()));
    }
    packet(0x10, &body)
}

fn publish(level: u8, qos: u8, id: u16, topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = s16(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&id.to_be_bytes());
    }
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

fn ack(kind: u8, id: u16) -> Vec<u8> {
    packet(kind << 4 | if kind == 6 { 2 } else { 0 }, &id.to_be_bytes())
}

/// (from client, req type, req body, resp type, resp body) of every record drained.
fn rows(conn: &mut MqttConn) -> Vec<(bool, u8, String, u8, String)> {
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    records
        .into_iter()
        .map(|r| {
            let (rt, rb) = r.resp.map_or((0, String::new()), |p| (p.kind, p.body));
            (r.from == Side::Request, r.req.kind, r.req.body, rt, rb)
        })
        .collect()
}

#[test]
fn a_311_session_pairs_every_answer() {
    let mut c = MqttConn::new(MqttConfig::default());
    c.feed(Side::Request, &connect(4, "pub-1", Some(("alice", "s3cret"))), 1);
    c.feed(Side::Response, &packet(0x20, &[0, 0]), 2);
    c.feed(Side::Request, &publish(4, 1, 7, "a/b", b"hello"), 3);
    c.feed(Side::Response, &ack(4, 7), 5);
    c.feed(Side::Request, &publish(4, 2, 8, "a/b", b"two"), 6);
    c.feed(Side::Response, &ack(5, 8), 7);
    c.feed(Side::Request, &ack(6, 8), 8);
    c.feed(Side::Response, &ack(7, 8), 9);
    c.feed(Side::Request, &publish(4, 0, 0, "a/c", b"zero"), 10);
    c.feed(Side::Request, &packet(0xc0, &[]), 11);
    c.feed(Side::Response, &packet(0xd0, &[]), 12);
    c.feed(Side::Request, &packet(0xe0, &[]), 13);
    let got = rows(&mut c);
    let kinds: Vec<(u8, u8)> = got.iter().map(|r| (r.1, r.3)).collect();
    assert_eq!(kinds, [(1, 2), (3, 4), (3, 5), (6, 7), (3, 0), (12, 13), (14, 0)]);
    assert_eq!(
        got[0].2,
        r#"{"protocol_name":"MQTT","protocol_level":4,"clean_start":true,"keep_alive":60,"client_id":"pub-1","username":"alice","password":"s3cret"}"#
    );
    assert_eq!(got[0].4, r#"{"session_present":false,"return_code":0}"#);
    assert_eq!(got[1].2, r#"{"topic":"a/b","qos":1,"retain":false,"dup":false,"packet_id":7,"payload":"hello"}"#);
    assert_eq!(got[1].4, r#"{"packet_id":7}"#);
    assert_eq!(got[4].2, r#"{"topic":"a/c","qos":0,"retain":false,"dup":false,"payload":"zero"}"#);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert!(records.is_empty());
    assert_eq!(c.stats().orphan_answers + c.stats().unanswered, 0);
}

#[test]
fn a_broker_delivery_is_paired_with_the_subscribers_ack() {
    let mut c = MqttConn::new(MqttConfig::default());
    c.feed(Side::Request, &connect(5, "sub", None), 1);
    c.feed(Side::Response, &packet(0x20, &[0, 0, 0]), 2);
    let mut sub = 1u16.to_be_bytes().to_vec();
    sub.push(0);
    sub.extend(s16(b"a/#"));
    sub.push(1);
    c.feed(Side::Request, &packet(0x82, &sub), 3);
    c.feed(Side::Response, &packet(0x90, &[0, 1, 0, 1]), 4);
    // The broker numbers its own deliveries: id 1 again, from the other side.
    c.feed(Side::Response, &publish(5, 1, 1, "a/b", b"hi"), 5);
    c.feed(Side::Request, &packet(0x40, &[0, 1, 0]), 7);
    let got = rows(&mut c);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].2, r#"{"packet_id":1,"topics":[{"filter":"a/#","qos":1}]}"#);
    assert_eq!(got[1].4, r#"{"packet_id":1,"reason_codes":[1]}"#);
    assert!(!got[2].0, "the delivery is the broker's");
    assert_eq!(got[2].2, r#"{"topic":"a/b","qos":1,"retain":false,"dup":false,"packet_id":1,"payload":"hi"}"#);
    assert_eq!(got[2].4, r#"{"packet_id":1,"reason_code":0}"#);
    assert_eq!(got[0].4, r#"{"session_present":false,"reason_code":0}"#);
}

#[test]
fn a_refused_connect_carries_its_return_code_and_the_byte_at_a_time_read_works() {
    let mut c = MqttConn::new(MqttConfig::default());
    for (i, b) in connect(4, "x", Some(("alice", "wrong"))).iter().enumerate() {
        c.feed(Side::Request, std::slice::from_ref(b), i as u64);
    }
    c.feed(Side::Response, &packet(0x20, &[0, 5]), 100);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resp.as_ref().map(|p| p.body.as_str()), Some(r#"{"session_present":false,"return_code":5}"#));
    assert_eq!(records[0].latency_ns, 100);
}

#[test]
fn a_long_payload_is_cut_and_not_buffered() {
    let mut c = MqttConn::new(MqttConfig { max_value_bytes: 8, ..MqttConfig::default() });
    let big = publish(4, 0, 0, "t", &vec![b'x'; 200_000]);
    for piece in big.chunks(10_000) {
        c.feed(Side::Request, piece, 1);
        assert!(c.buffered_bytes() <= MAX_KEPT_HEADER + 8);
    }
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert!(records[0].req.cut);
    assert!(records[0].req.body.ends_with(r#""payload":"xxxxxxxx"}"#), "{}", records[0].req.body);
}

#[test]
fn a_gap_inside_a_packet_is_stepped_over_and_one_between_packets_loses_the_direction() {
    let mut c = MqttConn::new(MqttConfig::default());
    let p = publish(4, 0, 0, "t", b"0123456789");
    c.feed(Side::Request, &p[..8], 1);
    c.gap(Side::Request, 4, 2);
    c.feed(Side::Request, &p[12..], 3);
    c.feed(Side::Request, &packet(0xc0, &[]), 4);
    c.gap(Side::Request, 2, 5);
    c.feed(Side::Request, &packet(0xc0, &[]), 6);
    let got = rows(&mut c);
    assert_eq!(got.iter().map(|r| r.1).collect::<Vec<_>>(), [3]);
    assert_eq!(c.stats().request.errors, 1);
    c.close(7);
    assert_eq!(rows(&mut c).iter().map(|r| (r.1, r.3)).collect::<Vec<_>>(), [(12, 0)]);
}

#[test]
fn first_bytes_are_recognised() {
    assert!(looks_like(&connect(4, "c", None)));
    assert!(looks_like(&connect(5, &"c".repeat(200), None)));
    assert!(looks_like(b"\x10"));
    assert!(looks_like(b"\x10\x0c\x00\x06MQIsdp\x03"));
    for no in [&b"\x10\x0c\x00\x04HTTP"[..], b"\x20\x02\x00\x00", b"", b"\x10\x00", b"GET / HTTP/1.1"] {
        assert!(!looks_like(no), "{no:?}");
    }
}

#[test]
fn connect_password_is_redacted() {
    let mut c = MqttConn::new(MqttConfig::default());
    c.feed(Side::Request, &connect(4, "c", Some(("alice", "s3cret"))), 1);
    c.close(2);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    crate::redact::mqtt_packet(&mut records[0].req);
    assert!(!records[0].req.body.contains("s3cret"), "{}", records[0].req.body);
    let doc: serde_json::Value = serde_json::from_str(&records[0].req.body).expect("json");
    assert_eq!(doc["password"], "[REDACTED]");
    assert_eq!(doc["username"], "alice");
}

#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(connect(4, "c", Some(("u", "p")))),
        Just(connect(5, "c", None)),
        Just(publish(4, 1, 3, "t", b"x")),
        Just(ack(4, 3)),
        Just(packet(0x20, &[0, 0])),
        Just(packet(0xc0, &[])),
        Just(vec![0x30, 0xff, 0xff, 0xff, 0x7f]),
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
        let mut c = MqttConn::new(MqttConfig::default());
        let bound = 2 * (MAX_KEPT_HEADER + 512 + 5);
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

    /// Valid QoS 1 sessions round-trip through any fragmentation: every publish paired with its ack.
    #[test]
    fn valid_sessions_round_trip_through_any_fragmentation(
        pubs in prop::collection::vec(("[a-z/]{1,12}", prop::collection::vec(any::<u8>(), 0..300)), 1..8),
        level in prop_oneof![Just(4u8), Just(5u8)],
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut requests = connect(level, "c", None);
        let mut answers = packet(0x20, if level == 5 { &[0, 0, 0][..] } else { &[0, 0][..] });
        for (i, (topic, payload)) in pubs.iter().enumerate() {
            requests.extend(publish(level, 1, i as u16 + 1, topic, payload));
            answers.extend(ack(4, i as u16 + 1));
        }
        let mut c = MqttConn::new(MqttConfig { max_value_bytes: 1024, ..MqttConfig::default() });
        for (side, bytes) in [(Side::Request, &requests), (Side::Response, &answers)] {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            for pair in points.windows(2) {
                c.feed(side, &bytes[pair[0]..pair[1]], 0);
            }
        }
        let mut records = Vec::new();
        c.drain_records(&mut records);
        prop_assert_eq!(records.len(), pubs.len() + 1);
        for (record, (topic, payload)) in records.iter().skip(1).zip(&pubs) {
            let doc: serde_json::Value = serde_json::from_str(&record.req.body).expect("json");
            prop_assert_eq!(doc["topic"].as_str(), Some(topic.as_str()));
            prop_assert_eq!(doc["payload"].as_str().map(str::to_string), Some(String::from_utf8_lossy(payload).into_owned()));
            prop_assert_eq!(record.resp.as_ref().map(|p| p.kind), Some(4));
        }
    }
}

/// Feeds a recorded connection in 1460-byte pieces, both sides alternating, at one capture time
/// (the recording has none): answers may come before the packet they answer, as when the two
/// directions of a capture are fed separately.
fn replay(req: &[u8], resp: &[u8]) -> Vec<Record> {
    let mut c = MqttConn::new(MqttConfig::default());
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
    let s = c.stats();
    assert_eq!(s.request.errors + s.response.errors + s.orphan_answers + s.unanswered, 0, "{s:?}");
    let mut records = Vec::new();
    c.drain_records(&mut records);
    records
}

/// (req type, resp type) → count.
fn tally(records: &[Record]) -> std::collections::BTreeMap<(u8, u8), usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in records {
        *out.entry((r.req.kind, r.resp.as_ref().map_or(0, |p| p.kind))).or_insert(0) += 1;
    }
    out
}

#[test]
fn recorded_sessions_pair_every_answer() {
    macro_rules! rec {
        ($name:literal) => {
            replay(
                include_bytes!(concat!("../../testdata/mqtt/", $name, ".req")),
                include_bytes!(concat!("../../testdata/mqtt/", $name, ".resp")),
            )
        };
    }
    let t = |records: &[Record]| tally(records).into_iter().collect::<Vec<_>>();
    assert_eq!(t(&rec!("pub_311_qos1")), [((1, 2), 1), ((3, 4), 200), ((14, 0), 1)]);
    assert_eq!(t(&rec!("pub_5_qos2")), [((1, 2), 1), ((3, 5), 200), ((6, 7), 200), ((14, 0), 1)]);
    assert_eq!(t(&rec!("pub_5_qos0")), [((1, 2), 1), ((3, 0), 200), ((14, 0), 1)]);
    let sub = rec!("sub_qos1");
    assert_eq!(t(&sub), [((1, 2), 1), ((3, 0), 200), ((3, 4), 400), ((8, 9), 1), ((14, 0), 1)]);
    assert!(sub.iter().filter(|r| r.req.kind == 3).all(|r| !r.from.eq(&Side::Request)), "deliveries are the broker's");
}
