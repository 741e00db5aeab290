//! NATS parser tests: a session as `nats-server` and a client exchange it, verbose acknowledgements,
//! payloads with headers, cut payloads, gaps and garbage; proptests that arbitrary input never
//! panics and stays bounded, and that valid sessions round-trip through any fragmentation.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::{ConnParser, Side};

/// (cmd, body, resp, sent by the client) of every record drained.
fn rows(conn: &mut NatsConn) -> Vec<(String, String, String, bool)> {
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    records.into_iter().map(|r| (r.msg.cmd, r.msg.body, r.resp, r.from == Side::Request)).collect()
}

fn row(cmd: &str, body: &str, resp: &str, client: bool) -> (String, String, String, bool) {
    (cmd.to_string(), body.to_string(), resp.to_string(), client)
}

fn conn() -> NatsConn {
    NatsConn::new(NatsConfig::default())
}

#[test]
fn a_quiet_session_gives_one_record_per_message() {
    let mut c = conn();
    c.feed(Side::Response, b"INFO {\"server_id\":\"S\",\"max_payload\":1048576}\r\n", 1);
    c.feed(Side::Request, b"CONNECT {\"verbose\":false,\"name\":\"t\"}\r\nSUB greet.* q1 7\r\nPUB greet.joe _INBOX.1 5\r\nhello\r\nPING\r\n", 2);
    c.feed(Side::Response, b"MSG greet.joe 7 _INBOX.1 5\r\nhello\r\nPONG\r\n", 3);
    c.feed(Side::Request, b"unsub 7 2\r\n", 4);
    assert_eq!(
        rows(&mut c),
        [
            row("INFO", r#"{"server_id":"S","max_payload":1048576}"#, "", false),
            row("CONNECT", r#"{"verbose":false,"name":"t"}"#, "", true),
            row("SUB", r#"{"subject":"greet.*","queue_group":"q1","sid":"7"}"#, "", true),
            row("PUB", r#"{"subject":"greet.joe","reply_to":"_INBOX.1","payload":"hello"}"#, "", true),
            row("PING", "", "", true),
            row("MSG", r#"{"subject":"greet.joe","sid":"7","reply_to":"_INBOX.1","payload":"hello"}"#, "", false),
            row("PONG", "", "", false),
            row("UNSUB", r#"{"sid":"7","max_msgs":"2"}"#, "", true),
        ]
    );
    assert_eq!(c.stats().request.errors + c.stats().response.errors, 0);
}

#[test]
fn verbose_mode_pairs_acknowledgements_in_order() {
    let mut c = conn();
    c.feed(Side::Request, b"CONNECT {\"verbose\":true}\r\nSUB a 1\r\nPING\r\nPUB a 2\r\nhi\r\nPUB bad\r\n", 10);
    c.feed(Side::Response, b"+OK\r\n+OK\r\nPONG\r\n+OK\r\n", 20);
    c.feed(Side::Response, b"-ERR 'Unknown Protocol Operation'\r\n", 30);
    let got = rows(&mut c);
    assert_eq!(
        got,
        [
            row("PING", "", "", true),
            row("CONNECT", r#"{"verbose":true}"#, "OK", true),
            row("SUB", r#"{"subject":"a","sid":"1"}"#, "OK", true),
            row("PONG", "", "", false),
            row("PUB", r#"{"subject":"a","payload":"hi"}"#, "OK", true),
            row("-ERR", "'Unknown Protocol Operation'", "-ERR 'Unknown Protocol Operation'", false),
        ]
    );
    // `PUB bad` lacks its size: one error, and the record above is the server's complaint.
    assert_eq!(c.stats().request.errors, 1);
}

#[test]
fn an_error_answers_the_waiting_message_in_verbose_mode() {
    let mut c = conn();
    c.feed(Side::Request, b"CONNECT {\"verbose\":true,\"user\":\"u\",\"pass\":\"p\"}\r\n", 1);
    c.feed(Side::Response, b"-ERR 'Authorization Violation'\r\n", 5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].resp, "-ERR 'Authorization Violation'");
    assert_eq!(records[0].ts_ns, 5);
}

#[test]
fn headers_are_shown_apart_from_the_payload() {
    let mut c = conn();
    let hdr = "NATS/1.0\r\nX-Key: v\r\n\r\n";
    let line = format!("HPUB subj {} {}\r\n{hdr}data\r\n", hdr.len(), hdr.len() + 4);
    c.feed(Side::Request, line.as_bytes(), 1);
    let line = format!("HMSG subj 3 reply {} {}\r\n{hdr}data\r\n", hdr.len(), hdr.len() + 4);
    c.feed(Side::Response, line.as_bytes(), 2);
    let got = rows(&mut c);
    assert_eq!(got[0].1, r#"{"subject":"subj","headers":"NATS/1.0\r\nX-Key: v\r\n\r\n","payload":"data"}"#);
    assert_eq!(
        got[1].1,
        r#"{"subject":"subj","sid":"3","reply_to":"reply","headers":"NATS/1.0\r\nX-Key: v\r\n\r\n","payload":"data"}"#
    );
}

#[test]
fn a_long_payload_is_cut_and_streamed_past() {
    let mut c = NatsConn::new(NatsConfig { max_value_bytes: 4, ..NatsConfig::default() });
    c.feed(Side::Request, b"PUB s 100000\r\n", 1);
    let chunk = vec![b'x'; 10_000];
    for _ in 0..10 {
        c.feed(Side::Request, &chunk, 2);
        assert!(c.buffered_bytes() < 64, "payload is not buffered: {}", c.buffered_bytes());
    }
    c.feed(Side::Request, b"\r\nPING\r\n", 3);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].msg.body, r#"{"subject":"s","payload":"xxxx"}"#);
    assert!(records[0].msg.cut);
    assert_eq!(records[1].msg.cmd, "PING");
}

#[test]
fn a_gap_inside_a_payload_is_stepped_over_and_one_elsewhere_resyncs() {
    let mut c = conn();
    c.feed(Side::Request, b"PUB s 10\r\nabc", 1);
    c.gap(Side::Request, 4, 2);
    c.feed(Side::Request, b"xyz\r\nPING\r\n", 3);
    // A gap in a control line: the rest of that line is skipped, the next line is read.
    c.feed(Side::Request, b"SUB a", 4);
    c.gap(Side::Request, 3, 5);
    c.feed(Side::Request, b"b 1\r\nPONG\r\n", 6);
    let got = rows(&mut c);
    let cmds: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(cmds, ["PUB", "PING", "PONG"]);
    assert_eq!(got[0].1, r#"{"subject":"s","payload":"abcxyz"}"#);
    assert_eq!(c.stats().request.dropped_partial, 1);
}

#[test]
fn a_lost_acknowledgement_leaves_the_waiting_messages_unanswered() {
    let mut c = conn();
    c.feed(Side::Request, b"CONNECT {\"verbose\":true}\r\nSUB a 1\r\n", 1);
    c.gap(Side::Response, 5, 2);
    c.feed(Side::Response, b"+OK\r\n", 3);
    let got = rows(&mut c);
    assert_eq!(got.iter().map(|r| r.2.as_str()).collect::<Vec<_>>(), ["", ""]);
    assert_eq!(c.stats().unanswered, 2);
}

#[test]
fn garbage_counts_one_error_per_run_and_the_next_line_is_read() {
    let mut c = conn();
    c.feed(Side::Request, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 1);
    c.feed(Side::Request, &[0xffu8; 20_000], 2);
    c.feed(Side::Request, b"\r\nPING\r\n", 3);
    assert_eq!(rows(&mut c), [row("PING", "", "", true)]);
    assert_eq!(c.stats().request.errors, 1);
}

#[test]
fn a_payload_not_ended_by_crlf_is_an_error() {
    let mut c = conn();
    c.feed(Side::Request, b"PUB s 2\r\nabcd\r\nPING\r\n", 1);
    assert_eq!(rows(&mut c), [row("PING", "", "", true)]);
    assert_eq!(c.stats().request.errors, 1);
}

#[test]
fn first_bytes_are_recognised() {
    assert_eq!(looks_like(b"INFO {\"server_id\""), Some(Side::Response));
    assert_eq!(looks_like(b"CONNECT {\"verbose\""), Some(Side::Request));
    assert_eq!(looks_like(b"connect\t{"), Some(Side::Request));
    for no in [&b"CONNECT example.com:443 HTTP/1.1\r\n"[..], b"INFO", b"PING\r\n", b"PUB a 1\r\n", b"INFOX {", b""] {
        assert_eq!(looks_like(no), None, "{}", String::from_utf8_lossy(no));
    }
}

const BOUND: usize = 2 * (MAX_LINE_BYTES + 512 + 256);

#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

const FRAGMENTS: &[&[u8]] = &[
    b"INFO {\"a\":1}\r\n",
    b"CONNECT {\"verbose\":true}\r\n",
    b"PUB a 3\r\n",
    b"HPUB a 2 5\r\n",
    b"MSG a 1 r 2\r\n",
    b"HMSG a 1 1 1\r\n",
    b"SUB a 1\r\n",
    b"UNSUB 1\r\n",
    b"abc",
    b"+OK\r\n",
    b"-ERR 'x'\r\n",
    b"PING\r\n",
    b"\r\n",
    b"\n",
    b"PUB a 99999999999\r\n",
];

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 1..12).prop_map(|f| f.concat()),
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
        let mut c = conn();
        let mut records = Vec::new();
        for (ts, op) in ops.into_iter().enumerate() {
            match op {
                Op::Feed(side, bytes) => c.feed(side, &bytes, ts as u64),
                Op::Gap(side, len) => c.gap(side, len, ts as u64),
                Op::Close => c.close(ts as u64),
            }
            prop_assert!(c.buffered_bytes() <= BOUND, "{} > {BOUND}", c.buffered_bytes());
            c.drain_records(&mut records);
        }
        c.close(u64::MAX);
        prop_assert_eq!(c.buffered_bytes(), 0);
    }

    /// A valid verbose session round-trips through any fragmentation: every message once, every
    /// acknowledgement on its message.
    #[test]
    fn valid_sessions_round_trip_through_any_fragmentation(
        pubs in prop::collection::vec(("[a-z]{1,8}", "[ -~]{0,20}"), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut requests = b"CONNECT {\"verbose\":true}\r\n".to_vec();
        let mut acks = b"+OK\r\n".to_vec();
        for (subject, payload) in &pubs {
            requests.extend(format!("PUB {subject} {}\r\n{payload}\r\n", payload.len()).as_bytes());
            acks.extend(b"+OK\r\n");
        }
        let mut c = conn();
        for (side, bytes) in [(Side::Request, &requests), (Side::Response, &acks)] {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            points.push(0);
            points.push(bytes.len());
            points.sort_unstable();
            for pair in points.windows(2) {
                c.feed(side, &bytes[pair[0]..pair[1]], 0);
            }
        }
        let got = rows(&mut c);
        prop_assert_eq!(got.len(), pubs.len() + 1);
        for (record, (subject, payload)) in got.iter().skip(1).zip(&pubs) {
            let body: serde_json::Value = serde_json::from_str(&record.1).expect("json body");
            prop_assert_eq!(body["subject"].as_str(), Some(subject.as_str()));
            prop_assert_eq!(body["payload"].as_str(), Some(payload.as_str()));
            prop_assert_eq!(record.2.as_str(), "OK");
        }
    }
}

#[test]
fn connect_credentials_are_redacted() {
    let mut c = conn();
    c.feed(
        Side::Request,
        b"CONNECT {\"verbose\":false,\"user\":\"alice\",\"pass\":\"s3cret\",\"auth_token\":\"t0k\",\"jwt\":\"eyJ\",\"sig\":\"abc\",\"name\":\"n\"}\r\nPUB a 1\r\nx\r\n",
        1,
    );
    let mut records = Vec::new();
    c.drain_records(&mut records);
    for r in &mut records {
        crate::redact::nats_message(&mut r.msg);
    }
    let body: serde_json::Value = serde_json::from_str(&records[0].msg.body).expect("json");
    let want = serde_json::json!({
        "verbose": false, "user": "alice", "pass": "[REDACTED]", "auth_token": "[REDACTED]",
        "jwt": "[REDACTED]", "sig": "[REDACTED]", "name": "n"
    });
    assert_eq!(body, want);
    assert_eq!(records[1].msg.body, r#"{"subject":"a","payload":"x"}"#);
    // A document cut short cannot be searched: it goes whole.
    let mut cut = NatsConn::new(NatsConfig { max_value_bytes: 20, ..NatsConfig::default() });
    cut.feed(Side::Request, b"CONNECT {\"user\":\"alice\",\"pass\":\"s3cret\"}\r\n", 1);
    cut.drain_records(&mut records);
    let last = records.last_mut().expect("record");
    assert!(last.msg.cut);
    crate::redact::nats_message(&mut last.msg);
    assert_eq!(last.msg.body, crate::redact::MARKER);
}

/// Feeds a recorded connection in 1460-byte pieces, the client's bytes first (the recording has no
/// times; acknowledgements pair in order, so they must not come before what they acknowledge).
fn replay(req: &[u8], resp: &[u8]) -> NatsConn {
    let mut c = conn();
    let mut ts = 0;
    for (side, bytes) in [(Side::Request, req), (Side::Response, resp)] {
        for piece in bytes.chunks(1460) {
            ts += 1;
            c.feed(side, piece, ts);
        }
    }
    c.close(ts + 1);
    c
}

#[test]
fn recorded_sessions_parse_whole() {
    let mut publisher = replay(
        include_bytes!("../../testdata/nats/publisher.req"),
        include_bytes!("../../testdata/nats/publisher.resp"),
    );
    let got = rows(&mut publisher);
    let count = |cmd: &str, resp: &str| got.iter().filter(|r| r.0 == cmd && r.2 == resp).count();
    assert_eq!((count("PUB", "OK"), count("HPUB", "OK"), count("CONNECT", "OK")), (360, 40, 1));
    assert_eq!((count("PING", ""), count("PONG", ""), count("INFO", "")), (8, 8, 1));
    assert_eq!(got.len(), 418);
    let mut subscriber = replay(
        include_bytes!("../../testdata/nats/subscriber.req"),
        include_bytes!("../../testdata/nats/subscriber.resp"),
    );
    let got = rows(&mut subscriber);
    let count = |cmd: &str| got.iter().filter(|r| r.0 == cmd).count();
    assert_eq!((count("MSG"), count("HMSG"), count("SUB"), count("UNSUB")), (360, 80, 2, 1));
    let s = subscriber.stats();
    assert_eq!(s.request.errors + s.response.errors + s.unanswered + s.orphan_acks, 0);
}
