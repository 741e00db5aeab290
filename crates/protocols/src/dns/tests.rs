//! Tests of DNS decoding and pairing: exact JSON for A, AAAA, CNAME chains and NXDOMAIN,
//! compressed names and pointer loops, TCP framing at every split, UDP datagrams, pairing by id
//! out of order; proptests that arbitrary input never panics and stays bounded.

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

/// A query for `name` of type `qtype`, with EDNS's OPT record in the additional section as dig sends.
fn query(txid: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = txid.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    m.extend(encode_name(name));
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    m
}

fn encode_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name.split('.') {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// A response to `query`: flags, then answers as (owner pointer or name, type, rdata).
fn response(query: &[u8], rcode: u8, answers: &[(Vec<u8>, u16, Vec<u8>)]) -> Vec<u8> {
    let qend = query.len() - 11;
    let mut m = query[..qend].to_vec();
    m[2] = 0x81;
    m[3] = 0x80 | rcode;
    m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
    m[10..12].copy_from_slice(&[0, 0]);
    for (owner, rtype, rdata) in answers {
        m.extend_from_slice(owner);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    }
    m
}

fn tcp(msg: &[u8]) -> Vec<u8> {
    let mut out = (msg.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(msg);
    out
}

type Row = (String, String, String, String);

fn rows(conn: &mut DnsConn) -> Vec<Row> {
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    records
        .into_iter()
        .map(|r| (r.req.header.json(), r.req.body_json(), r.resp.header.json(), r.resp.body_json()))
        .collect()
}

const PTR: [u8; 2] = [0xc0, 0x0c];

#[test]
fn a_cname_chain_and_nxdomain_over_tcp_at_any_split() {
    let q1 = query(0xbeef, "www.loupe.test", 1);
    let r1 = response(
        &q1,
        0,
        &[(PTR.to_vec(), 5, encode_name("web.loupe.test")), (encode_name("web.loupe.test"), 1, vec![10, 0, 0, 7])],
    );
    let q2 = query(7, "nope.loupe.test", 28);
    let r2 = response(&q2, 3, &[]);
    let requests = [tcp(&q1), tcp(&q2)].concat();
    let responses = [tcp(&r2), tcp(&r1)].concat();
    let want = vec![
        (
            r#"{"txid":7,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":1,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":1}"#.to_string(),
            r#"{"queries":[{"name":"nope.loupe.test","type":"AAAA"}]}"#.to_string(),
            r#"{"txid":7,"qr":1,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":3,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":0}"#.to_string(),
            r#"{"answers":[]}"#.to_string(),
        ),
        (
            r#"{"txid":48879,"qr":0,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":0,"ad":1,"cd":0,"rcode":0,"num_queries":1,"num_answers":0,"num_auth":0,"num_addl":1}"#.to_string(),
            r#"{"queries":[{"name":"www.loupe.test","type":"A"}]}"#.to_string(),
            r#"{"txid":48879,"qr":1,"opcode":0,"aa":0,"tc":0,"rd":1,"ra":1,"ad":0,"cd":0,"rcode":0,"num_queries":1,"num_answers":2,"num_auth":0,"num_addl":0}"#.to_string(),
            r#"{"answers":[{"name":"www.loupe.test","type":"CNAME","cname":"web.loupe.test"},{"name":"web.loupe.test","type":"A","addr":"10.0.0.7"}]}"#.to_string(),
        ),
    ];
    for split in 0..requests.len().max(responses.len()) {
        let mut c = DnsConn::new(DnsConfig::default());
        let (a, b) = requests.split_at(split.min(requests.len()));
        let (x, y) = responses.split_at(split.min(responses.len()));
        c.feed(Side::Request, a, 1);
        c.feed(Side::Request, b, 1);
        c.feed(Side::Response, x, 2);
        c.feed(Side::Response, y, 2);
        assert_eq!(rows(&mut c), want, "split at {split}");
    }
}

#[test]
fn udp_datagrams_pair_by_id_and_aaaa_prints_as_ipv6() {
    let mut c = DnsConn::new(DnsConfig { transport: Transport::Udp, ..DnsConfig::default() });
    let q = query(1, "v6.test", 28);
    let mut addr = vec![0u8; 16];
    addr[0] = 0xfd;
    addr[15] = 1;
    c.feed(Side::Request, &q, 10);
    c.feed(Side::Request, &query(2, "other.test", 1), 11);
    c.feed(Side::Response, &response(&q, 0, &[(PTR.to_vec(), 28, addr)]), 25);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resp.body_json(), r#"{"answers":[{"name":"v6.test","type":"AAAA","addr":"fd00::1"}]}"#);
    assert_eq!(records[0].latency_ns, 15);
    c.close(30);
    assert_eq!(c.stats().stitch.unanswered_requests, 1);
    // Garbage is one error, not a record.
    c.feed(Side::Response, b"\x00\x01garbage", 40);
    assert_eq!(c.stats().errors, 1);
}

#[test]
fn pointer_loops_and_truncated_records_do_not_decode() {
    let mut looped = query(1, "a.test", 1);
    // Replace the name with a pointer to itself.
    looped.splice(12..20, [0xc0, 0x0c]);
    assert!(decode(&looped, 0).is_none());
    let q = query(1, "a.test", 1);
    let r = response(&q, 0, &[(PTR.to_vec(), 1, vec![10, 0, 0, 1])]);
    assert!(decode(&r[..r.len() - 1], 0).is_none());
    assert!(decode(&r, 0).is_some());
    assert_eq!(type_name(65), "HTTPS");
    assert_eq!(type_name(999), "999");
}

#[test]
fn a_tcp_gap_loses_that_side_and_is_counted() {
    let mut c = DnsConn::new(DnsConfig::default());
    let q = query(9, "a.test", 1);
    c.feed(Side::Request, &tcp(&q)[..5], 1);
    c.gap(Side::Request, 10, 2);
    c.feed(Side::Request, &tcp(&q), 3);
    c.feed(Side::Response, &tcp(&response(&q, 0, &[])), 4);
    assert!(rows(&mut c).is_empty());
    let s = c.stats();
    assert_eq!((s.errors, s.dropped_partial, s.gaps), (1, 1, 1));
}

#[test]
fn first_bytes_of_a_tcp_query_are_recognised_conservatively() {
    assert!(looks_like_tcp_query(&tcp(&query(0x1234, "a.loupe.test", 1))));
    assert!(looks_like_tcp_query(&tcp(&query(0x1234, "a.loupe.test", 1))[..16]));
    assert!(!looks_like_tcp_query(&tcp(&response(&query(1, "a.test", 1), 0, &[]))));
    assert!(!looks_like_tcp_query(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_tcp_query(b"\0\0\0\x08\x04\xd2\x16\x2f"));
    // A server that reads the length on its own first.
    assert!(looks_like_tcp_query(b"\0\x2b"));
    assert!(!looks_like_tcp_query(b"\0\x05"));
    assert!(!looks_like_tcp_query(b"\x01\x2b"));
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Request), Just(Side::Response)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever arrives, over either transport, nothing panics and framing stays bounded.
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        udp in any::<bool>(),
        ops in prop::collection::vec((arb_side(), prop::collection::vec(any::<u8>(), 0..300), 0u64..3), 0..30),
    ) {
        let transport = if udp { Transport::Udp } else { Transport::Tcp };
        let mut c = DnsConn::new(DnsConfig { transport, max_pending: 8 });
        let mut records = Vec::new();
        for (ts, (side, bytes, gap)) in ops.into_iter().enumerate() {
            c.feed(side, &bytes, ts as u64);
            c.gap(side, gap, ts as u64);
            prop_assert!(c.buffered_bytes() <= 2 * MAX_TCP_MESSAGE);
            c.drain_records(&mut records);
        }
        for r in &records {
            let _ = (r.req.body_json(), r.resp.body_json(), r.req.header.json());
        }
        c.close(u64::MAX);
        prop_assert_eq!(c.buffered_bytes(), 0);
    }

    /// Any decodable bytes decode again the same, and names never exceed their bound.
    #[test]
    fn decoding_arbitrary_bytes_is_total(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Some(m) = decode(&bytes, 0) {
            prop_assert!(m.questions.iter().all(|q| q.name.len() <= 4 * 255));
        }
    }
}

#[test]
fn a_recorded_dig_connection_gives_all_fifty_exchanges() {
    let mut c = DnsConn::new(DnsConfig::default());
    for piece in include_bytes!("../../testdata/dns/dig_keepopen.req").chunks(1460) {
        c.feed(Side::Request, piece, 1);
    }
    for piece in include_bytes!("../../testdata/dns/dig_keepopen.resp").chunks(1460) {
        c.feed(Side::Response, piece, 2);
    }
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 50);
    let nx = records.iter().filter(|r| r.resp.header.flags & 0xf == 3).count();
    let cnames = records.iter().filter(|r| r.resp.body_json().contains(r#""cname":"web.loupe.test""#)).count();
    assert_eq!((nx, cnames), (10, 10));
    let s = c.stats();
    assert_eq!((s.messages, s.errors, s.stitch.orphan_responses, s.stitch.unanswered_requests), (100, 0, 0, 0));
}
