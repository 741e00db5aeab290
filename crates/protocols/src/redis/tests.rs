//! Tests of the Redis parser and pairing: exact records for RESP2, RESP3, inline commands,
//! pipelining, errors, pub/sub and capture gaps; proptests that arbitrary input never panics and
//! stays bounded, and that valid pipelines round-trip through any fragmentation.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::{ConnParser, Side};

/// (req_cmd, req_args, resp, latency) of every record drained.
fn rows(conn: &mut RedisConn) -> Vec<(String, String, String, u64)> {
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    records.into_iter().map(|r| (r.req.name.clone(), r.req.args_json(), r.resp.text, r.latency_ns)).collect()
}

fn row(cmd: &str, args: &str, resp: &str, latency: u64) -> (String, String, String, u64) {
    (cmd.to_string(), args.to_string(), resp.to_string(), latency)
}

fn conn() -> RedisConn {
    RedisConn::new(RedisConfig::default())
}

/// A command as `redis-cli` sends it: an array of bulk strings.
fn command(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

#[test]
fn set_and_get_pair_with_their_replies() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["SET", "greeting", "hello world"]), 10);
    c.feed(Side::Response, b"+OK\r\n", 25);
    c.feed(Side::Request, &command(&["get", "greeting"]), 30);
    c.feed(Side::Response, b"$11\r\nhello world\r\n", 32);
    c.feed(Side::Request, &command(&["GET", "missing"]), 40);
    c.feed(Side::Response, b"$-1\r\n", 41);
    assert_eq!(
        rows(&mut c),
        [
            row("SET", r#"["greeting","hello world"]"#, "OK", 15),
            row("GET", r#"["greeting"]"#, "hello world", 2),
            row("GET", r#"["missing"]"#, "<NULL>", 1),
        ]
    );
}

#[test]
fn pipelined_commands_pair_in_order_at_any_split() {
    let mut requests = command(&["HSET", "h", "f1", "v1", "f2", "v2"]);
    requests.extend(command(&["INCR", "n"]));
    requests.extend(b"PING\r\n");
    requests.extend(command(&["HGETALL", "h"]));
    requests.extend(command(&["LRANGE", "empty", "0", "-1"]));
    let replies: &[u8] = b":2\r\n:7\r\n+PONG\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n*0\r\n";
    let want = [
        row("HSET", r#"["h","f1","v1","f2","v2"]"#, "2", 0),
        row("INCR", r#"["n"]"#, "7", 0),
        row("PING", "[]", "PONG", 0),
        row("HGETALL", r#"["h"]"#, r#"["f1","v1","f2","v2"]"#, 0),
        row("LRANGE", r#"["empty","0","-1"]"#, "[]", 0),
    ];
    for split in 0..requests.len().max(replies.len()) {
        let mut c = conn();
        let (a, b) = requests.split_at(split.min(requests.len()));
        let (x, y) = replies.split_at(split.min(replies.len()));
        c.feed(Side::Request, a, 0);
        c.feed(Side::Request, b, 0);
        c.feed(Side::Response, x, 0);
        c.feed(Side::Response, y, 0);
        assert_eq!(rows(&mut c), want, "split at {split}");
    }
    // Byte by byte, too.
    let mut c = conn();
    for b in &requests {
        c.feed(Side::Request, std::slice::from_ref(b), 0);
    }
    for b in replies {
        c.feed(Side::Response, std::slice::from_ref(b), 0);
    }
    assert_eq!(rows(&mut c), want);
}

#[test]
fn error_replies_keep_their_marker() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["NOSUCH", "x"]), 1);
    c.feed(Side::Response, b"-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n", 3);
    c.feed(Side::Request, &command(&["INCR", "greeting"]), 4);
    c.feed(Side::Response, b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", 5);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    let got: Vec<(&str, &str, bool)> =
        records.iter().map(|r| (r.req.name.as_str(), r.resp.text.as_str(), r.resp.error)).collect();
    assert_eq!(
        got,
        [
            ("NOSUCH", "-ERR unknown command 'NOSUCH', with args beginning with: 'x' ", true),
            ("INCR", "-WRONGTYPE Operation against a key holding the wrong kind of value", true),
        ]
    );
}

#[test]
fn resp3_replies_render_as_text_or_json() {
    let mut c = conn();
    let cases: &[(&[&str], &[u8], &str)] = &[
        (
            &["HELLO", "3"],
            b"%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n",
            r#"{"proto":"3","server":"redis"}"#,
        ),
        (&["GET", "nope"], b"_\r\n", "<NULL>"),
        (&["EXISTS", "k"], b"#t\r\n", "t"),
        (&["INCRBYFLOAT", "f", "0.5"], b",3.5\r\n", "3.5"),
        (&["SMEMBERS", "s"], b"~2\r\n$1\r\na\r\n:5\r\n", r#"["a","5"]"#),
        (&["X"], b"(3492890328409238509324850943850943825024385\r\n", "3492890328409238509324850943850943825024385"),
        (&["LOLWUT"], b"=15\r\ntxt:Some string\r\n", "txt:Some string"),
        (&["FCALL"], b"!21\r\nSYNTAX invalid syntax\r\n", "-SYNTAX invalid syntax"),
        (&["CLIENT", "TRACKINGINFO"], b"|1\r\n+key-popularity\r\n*1\r\n,0.19\r\n*2\r\n_\r\n*-1\r\n", "[null,null]"),
    ];
    for (ts, (words, reply, _)) in cases.iter().enumerate() {
        c.feed(Side::Request, &command(words), ts as u64);
        c.feed(Side::Response, reply, ts as u64);
    }
    let got: Vec<(String, String)> = rows(&mut c).into_iter().map(|(cmd, _, resp, _)| (cmd, resp)).collect();
    let want: Vec<(String, String)> = cases
        .iter()
        .map(|(words, _, resp)| {
            let name = if words[0] == "CLIENT" { "CLIENT TRACKINGINFO".to_string() } else { words[0].to_string() };
            (name, resp.to_string())
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn nested_null_array_inside_array_is_json_null() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["EXEC"]), 1);
    c.feed(Side::Response, b"*3\r\n+OK\r\n*-1\r\n*1\r\n:1\r\n", 2);
    assert_eq!(rows(&mut c), [row("EXEC", "[]", r#"["OK",null,["1"]]"#, 1)]);
}

#[test]
fn inline_commands_are_split_on_spaces() {
    let mut c = conn();
    c.feed(Side::Request, b"SET  k   v\r\n\r\nget k\n", 1);
    c.feed(Side::Response, b"+OK\r\n$1\r\nv\r\n", 2);
    assert_eq!(rows(&mut c), [row("SET", r#"["k","v"]"#, "OK", 1), row("GET", r#"["k"]"#, "v", 1)]);
}

#[test]
fn container_commands_keep_their_subcommand() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["config", "get", "maxmemory"]), 1);
    c.feed(Side::Response, b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n", 2);
    assert_eq!(rows(&mut c), [row("CONFIG GET", r#"["maxmemory"]"#, r#"["maxmemory","0"]"#, 1)]);
}

#[test]
fn subscribe_confirmations_pair_and_messages_are_pushes() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["SUBSCRIBE", "news", "sport"]), 10);
    c.feed(
        Side::Response,
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$5\r\nsport\r\n:2\r\n",
        11,
    );
    c.feed(Side::Response, b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n", 50);
    c.feed(Side::Response, b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n", 60);
    assert_eq!(
        rows(&mut c),
        [
            row("SUBSCRIBE", r#"["news","sport"]"#, r#"[["subscribe","news","1"],["subscribe","sport","2"]]"#, 1),
            row(PUSH_PUB, "[]", r#"["message","news","hello"]"#, 0),
            row(PUSH_PUB, "[]", r#"["pmessage","n*","news","hi"]"#, 0),
        ]
    );
    assert_eq!(c.stats().pushes, 2);
}

#[test]
fn resp3_pushes_are_records_without_a_request() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["GET", "k"]), 1);
    // An invalidation push arrives before the reply to GET.
    c.feed(Side::Response, b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n", 5);
    c.feed(Side::Request, &command(&["SUBSCRIBE", "c"]), 6);
    c.feed(
        Side::Response,
        b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n",
        7,
    );
    assert_eq!(
        rows(&mut c),
        [
            row("GET", r#"["k"]"#, "v", 4),
            row("SUBSCRIBE", r#"["c"]"#, r#"["subscribe","c","1"]"#, 1),
            row("PUSH INVALIDATE", "[]", r#"["invalidate",["k"]]"#, 0),
            row(PUSH_PUB, "[]", r#"["message","c","x"]"#, 0),
        ]
    );
}

#[test]
fn long_values_are_cut_to_the_limit_and_marked() {
    let mut c = RedisConn::new(RedisConfig { max_value_bytes: 8, ..RedisConfig::default() });
    let big = "x".repeat(100_000);
    c.feed(Side::Request, &command(&["SET", "k", &big]), 1);
    c.feed(Side::Response, b"+OK\r\n", 2);
    c.feed(Side::Request, &command(&["GET", "k"]), 3);
    let reply = format!("${}\r\n{big}\r\n", big.len());
    for piece in reply.as_bytes().chunks(4096) {
        c.feed(Side::Response, piece, 4);
        assert!(c.buffered_bytes() <= MAX_LINE_BYTES + 16);
    }
    let mut records = Vec::new();
    c.drain_records(&mut records);
    let got: Vec<(String, bool, String, bool)> =
        records.iter().map(|r| (r.req.args_json(), r.req.cut, r.resp.text.clone(), r.resp.cut)).collect();
    assert_eq!(
        got,
        [
            (r#"["k","xxxx"]"#.to_string(), true, "OK".to_string(), false),
            (r#"["k"]"#.to_string(), false, "xxxxxxxx".to_string(), true)
        ]
    );
}

#[test]
fn a_gap_inside_a_bulk_string_is_stepped_over() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["GET", "k"]), 1);
    c.feed(Side::Request, &command(&["GET", "j"]), 1);
    c.feed(Side::Response, b"$10\r\nabc", 2);
    c.gap(Side::Response, 5, 3);
    c.feed(Side::Response, b"ij\r\n:1\r\n", 4);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    let got: Vec<(&str, bool)> = records.iter().map(|r| (r.resp.text.as_str(), r.resp.cut)).collect();
    assert_eq!(got, [("abcij", true), ("1", false)]);
    assert_eq!(c.stats().response.gaps_absorbed, 1);
}

#[test]
fn a_gap_between_replies_drops_the_waiting_commands_and_resyncs() {
    let mut c = conn();
    for key in ["a", "b", "c"] {
        c.feed(Side::Request, &command(&["GET", key]), 1);
    }
    c.feed(Side::Response, b"$1\r\nA\r\n", 2);
    // The replies to b and c are lost, and part of the next one.
    c.gap(Side::Response, 20, 3);
    c.feed(Side::Response, b"\r\n", 4);
    c.feed(Side::Request, &command(&["GET", "d"]), 5);
    c.feed(Side::Response, b"$1\r\nD\r\n", 6);
    assert_eq!(rows(&mut c), [row("GET", r#"["a"]"#, "A", 1), row("GET", r#"["d"]"#, "D", 1)]);
    let stats = c.stats();
    assert_eq!((stats.stitch.unanswered_requests, stats.response.gaps), (2, 1));
}

#[test]
fn a_request_gap_resyncs_at_the_next_array() {
    let mut c = conn();
    c.feed(Side::Request, b"*2\r\n$3\r\nGET\r\n", 1);
    c.gap(Side::Request, 3, 1);
    c.feed(Side::Request, b"\r\n", 1);
    c.feed(Side::Request, &command(&["PING"]), 2);
    c.feed(Side::Response, b"+PONG\r\n", 3);
    assert_eq!(rows(&mut c), [row("PING", "[]", "PONG", 1)]);
    assert_eq!(c.stats().request.dropped_partial, 1);
}

#[test]
fn garbage_is_skipped_and_counted_once() {
    let mut c = conn();
    c.feed(Side::Response, b"?what is this\r\nmore junk\r\n", 1);
    c.feed(Side::Request, &command(&["PING"]), 2);
    c.feed(Side::Response, b"+PONG\r\n", 3);
    assert_eq!(rows(&mut c), [row("PING", "[]", "PONG", 1)]);
    assert_eq!(c.stats().response.errors, 1);
    assert_eq!(c.stats().response.skipped_bytes, 11);
}

#[test]
fn close_drops_partial_and_unanswered() {
    let mut c = conn();
    c.feed(Side::Request, &command(&["GET", "k"]), 1);
    c.feed(Side::Response, b"$5\r\nab", 2);
    c.close(3);
    assert!(rows(&mut c).is_empty());
    let stats = c.stats();
    assert_eq!((stats.response.dropped_partial, stats.stitch.unanswered_requests), (1, 1));
    assert_eq!(c.buffered_bytes(), 0);
}

#[test]
fn deep_nesting_is_refused() {
    let mut c = conn();
    c.feed(Side::Response, "*1\r\n".repeat(MAX_DEPTH + 1).as_bytes(), 1);
    assert_eq!(c.stats().response.errors, 1);
}

// ---- properties ----

/// The most a connection may buffer: a line and the kept content, per direction.
const BOUND: usize = 2 * (MAX_LINE_BYTES + 512);

#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

const FRAGMENTS: &[&[u8]] = &[
    b"*2\r\n",
    b"*-1\r\n",
    b"$3\r\nGET\r\n",
    b"$-1\r\n",
    b"$99999999999\r\n",
    b"+OK\r\n",
    b"-ERR x\r\n",
    b":12\r\n",
    b">3\r\n",
    b"%1\r\n",
    b"|1\r\n",
    b"~2\r\n",
    b"!3\r\nERR\r\n",
    b"$7\r\nmessage\r\n",
    b"$9\r\nsubscribe\r\n",
    b"PING\r\n",
    b"\r\n",
    b"\n",
    b"_\r\n",
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

/// A command name (never a container or subscribing one, whose names and replies differ) and arguments.
fn arb_words() -> impl Strategy<Value = Vec<String>> {
    ("(GET|SET|DEL|HSET|LPUSH|EXPIRE)", prop::collection::vec("[A-Za-z0-9:_ \\-]{0,12}", 0..5)).prop_map(
        |(name, args)| {
            let mut words = vec![name];
            words.extend(args);
            words
        },
    )
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

    /// Valid pipelines of commands and bulk replies round-trip through any fragmentation.
    #[test]
    fn valid_pipelines_round_trip_through_any_fragmentation(
        commands in prop::collection::vec(arb_words(), 1..8),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut requests = Vec::new();
        let mut replies = Vec::new();
        for (i, words) in commands.iter().enumerate() {
            let refs: Vec<&str> = words.iter().map(String::as_str).collect();
            requests.extend(command(&refs));
            let body = format!("reply {i}");
            replies.extend(format!("${}\r\n{body}\r\n", body.len()).as_bytes());
        }
        let mut c = conn();
        for (side, bytes) in [(Side::Request, &requests), (Side::Response, &replies)] {
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
        prop_assert_eq!(records.len(), commands.len());
        for (i, (record, words)) in records.iter().zip(&commands).enumerate() {
            prop_assert_eq!(&record.req.args, &words[1..].to_vec());
            prop_assert_eq!(record.resp.text.clone(), format!("reply {i}"));
        }
    }
}

#[test]
fn commands_are_recognised_from_their_first_bytes() {
    for yes in [&b"*1\r\n$4\r\nPING\r\n"[..], b"*3\r\n$3", b"PING\r\n", b"ping\n", b"AUTH pw\r\n", b"get k\r\n"] {
        assert!(looks_like_command(yes), "{}", String::from_utf8_lossy(yes));
    }
    for no in [&b"*\r\n$"[..], b"*1\r\n:1", b"+OK\r\n", b"GET / HTTP/1.1\r\n", b"PING", b"SSH-2.0\r\n", b"*12", b""] {
        assert!(!looks_like_command(no), "{}", String::from_utf8_lossy(no));
    }
}
