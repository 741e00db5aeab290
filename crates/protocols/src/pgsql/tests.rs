//! Tests of the PostgreSQL framer and pairing: exact records for the startup exchange (trust,
//! cleartext and SCRAM), simple queries, the extended protocol with named and unnamed statements,
//! errors in both, TLS negotiation, capture gaps and redaction; proptests that arbitrary input
//! never panics and stays bounded, and that valid exchanges survive any fragmentation.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;
use crate::{ConnParser, Side};

fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn untyped(code: u32, body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32 + 8).to_be_bytes().to_vec();
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn startup(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in params {
        body.extend(cstr(k));
        body.extend(cstr(v));
    }
    body.push(0);
    untyped(PROTOCOL_3, &body)
}

fn auth(code: u32, extra: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(extra);
    typed(b'R', &body)
}

/// What a server sends after AuthenticationOk: a parameter, the key data, ReadyForQuery.
fn after_auth_ok() -> Vec<u8> {
    let mut out = auth(0, b"");
    out.extend(typed(b'S', &[cstr("server_version"), cstr("15.14")].concat()));
    out.extend(typed(b'K', &[0, 0, 0, 7, 1, 2, 3, 4]));
    out.extend(ready());
    out
}

fn ready() -> Vec<u8> {
    typed(b'Z', b"I")
}

fn query(sql: &str) -> Vec<u8> {
    typed(b'Q', &cstr(sql))
}

fn row_desc(names: &[&str]) -> Vec<u8> {
    let mut body = (names.len() as u16).to_be_bytes().to_vec();
    for n in names {
        body.extend(cstr(n));
        body.extend_from_slice(&[0; 18]);
    }
    typed(b'T', &body)
}

fn data_row(values: &[Option<&str>]) -> Vec<u8> {
    let mut body = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    typed(b'D', &body)
}

fn complete(tag: &str) -> Vec<u8> {
    typed(b'C', &cstr(tag))
}

fn error(code: &str, message: &str) -> Vec<u8> {
    let body = [b"S".to_vec(), cstr("ERROR"), b"VERROR\0C".to_vec(), cstr(code), b"M".to_vec(), cstr(message), vec![0]]
        .concat();
    typed(b'E', &body)
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    typed(b'P', &[cstr(name), cstr(sql), vec![0, 0]].concat())
}

fn bind(portal: &str, statement: &str, params: &[Option<&str>]) -> Vec<u8> {
    let mut body = [cstr(portal), cstr(statement), vec![0, 0]].concat();
    body.extend_from_slice(&(params.len() as u16).to_be_bytes());
    for p in params {
        match p {
            Some(v) => {
                body.extend_from_slice(&(v.len() as i32).to_be_bytes());
                body.extend_from_slice(v.as_bytes());
            }
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    body.extend_from_slice(&[0, 0]);
    typed(b'B', &body)
}

fn describe(which: u8, name: &str) -> Vec<u8> {
    typed(b'D', &[vec![which], cstr(name)].concat())
}

fn execute(portal: &str) -> Vec<u8> {
    typed(b'E', &[cstr(portal), vec![0, 0, 0, 0]].concat())
}

fn sync() -> Vec<u8> {
    typed(b'S', b"")
}

type Row = (String, String, String, bool);

fn rows(conn: &mut PgConn) -> Vec<Row> {
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    records.into_iter().map(|r| (r.req.cmd.to_string(), r.req.text, r.resp.text, r.resp.error)).collect()
}

fn row(cmd: &str, req: &str, resp: &str, error: bool) -> Row {
    (cmd.to_string(), req.to_string(), resp.to_string(), error)
}

fn conn() -> PgConn {
    PgConn::new(PgConfig::default())
}

/// psql's connection: SSLRequest refused, trust startup, one query, Terminate.
fn psql_session() -> (Vec<u8>, Vec<u8>, Vec<Row>) {
    let requests = [
        untyped(SSL_REQUEST, b""),
        startup(&[("user", "postgres"), ("database", "shop"), ("application_name", "psql")]),
        query("SELECT id, name FROM items ORDER BY id"),
        typed(b'X', b""),
    ]
    .concat();
    let responses = [
        b"N".to_vec(),
        after_auth_ok(),
        row_desc(&["id", "name"]),
        data_row(&[Some("1"), Some("apple")]),
        data_row(&[Some("2"), None]),
        complete("SELECT 2"),
        ready(),
    ]
    .concat();
    let want = vec![
        row("STARTUP", "user=postgres database=shop application_name=psql", "AUTHENTICATION OK", false),
        row("QUERY", "SELECT id, name FROM items ORDER BY id", "id,name\n1,apple\n2,<NULL>\nSELECT 2", false),
    ];
    (requests, responses, want)
}

#[test]
fn a_psql_session_pairs_at_any_split_and_in_either_feed_order() {
    let (requests, responses, want) = psql_session();
    for split in 0..requests.len().max(responses.len()) {
        let (a, b) = requests.split_at(split.min(requests.len()));
        let (x, y) = responses.split_at(split.min(responses.len()));
        let mut c = conn();
        c.feed(Side::Request, a, 1);
        c.feed(Side::Request, b, 1);
        c.feed(Side::Response, x, 2);
        c.feed(Side::Response, y, 2);
        assert_eq!(rows(&mut c), want, "split at {split}");
        let mut c = conn();
        c.feed(Side::Response, x, 2);
        c.feed(Side::Request, a, 1);
        c.feed(Side::Response, y, 2);
        c.feed(Side::Request, b, 1);
        assert_eq!(rows(&mut c), want, "responses first, split at {split}");
    }
    let mut c = conn();
    for byte in requests.chunks(1) {
        c.feed(Side::Request, byte, 1);
    }
    for byte in responses.chunks(1) {
        c.feed(Side::Response, byte, 2);
    }
    assert_eq!(rows(&mut c), want, "byte by byte");
    assert_eq!(c.stats().stitch.records, 2);
    assert_eq!(c.stats().request.errors + c.stats().response.errors, 0);
}

#[test]
fn latency_runs_from_the_first_request_byte_to_the_last_response_byte() {
    let mut c = conn();
    let q = query("SELECT 1");
    c.feed(Side::Request, &q[..3], 100);
    c.feed(Side::Request, &q[3..], 120);
    c.feed(Side::Response, &[row_desc(&["?column?"]), data_row(&[Some("1")])].concat(), 300);
    c.feed(Side::Response, &[complete("SELECT 1"), ready()].concat(), 450);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].req.ts_ns, records[0].resp.ts_ns, records[0].latency_ns), (100, 450, 350));
}

#[test]
fn simple_query_errors_and_multi_statement_queries() {
    let mut c = conn();
    c.feed(Side::Request, &query("SELECT * FROM nope"), 1);
    c.feed(Side::Response, &[error("42P01", "relation \"nope\" does not exist"), ready()].concat(), 2);
    c.feed(Side::Request, &query("INSERT INTO t VALUES (1); SELECT 2"), 3);
    c.feed(
        Side::Response,
        &[complete("INSERT 0 1"), row_desc(&["?column?"]), data_row(&[Some("2")]), complete("SELECT 1"), ready()]
            .concat(),
        4,
    );
    c.feed(Side::Request, &query(""), 5);
    c.feed(Side::Response, &[typed(b'I', b""), ready()].concat(), 6);
    assert_eq!(
        rows(&mut c),
        [
            row("QUERY", "SELECT * FROM nope", "ERROR 42P01 relation \"nope\" does not exist", true),
            row("QUERY", "INSERT INTO t VALUES (1); SELECT 2", "INSERT 0 1\n?column?\n2\nSELECT 1", false),
            row("QUERY", "", "EMPTY QUERY", false),
        ]
    );
}

#[test]
fn prepared_statements_show_their_query_and_parameters() {
    let mut c = conn();
    // pgbench -M prepared: a named statement parsed once, then bound and executed twice.
    let first = [
        parse("P_0", "SELECT name FROM items WHERE id = $1"),
        bind("", "P_0", &[Some("2")]),
        describe(b'P', ""),
        execute(""),
        sync(),
    ]
    .concat();
    c.feed(Side::Request, &first, 1);
    c.feed(
        Side::Response,
        &[
            typed(b'1', b""),
            typed(b'2', b""),
            row_desc(&["name"]),
            data_row(&[Some("pear")]),
            complete("SELECT 1"),
            ready(),
        ]
        .concat(),
        2,
    );
    c.feed(Side::Request, &[bind("", "P_0", &[None]), execute(""), sync()].concat(), 3);
    c.feed(Side::Response, &[typed(b'2', b""), complete("SELECT 0"), ready()].concat(), 4);
    // Describe of a statement: ParameterDescription, then NoData for a statement with no rows.
    c.feed(Side::Request, &[parse("", "DELETE FROM items"), describe(b'S', ""), sync()].concat(), 5);
    c.feed(Side::Response, &[typed(b'1', b""), typed(b't', &[0, 0]), typed(b'n', b""), ready()].concat(), 6);
    c.feed(Side::Request, &[typed(b'C', &[b"S".to_vec(), cstr("P_0")].concat()), sync()].concat(), 7);
    c.feed(Side::Response, &[typed(b'3', b""), ready()].concat(), 8);
    let with = "SELECT name FROM items WHERE id = $1 -- params: [\"2\"]";
    let with_null = "SELECT name FROM items WHERE id = $1 -- params: [\"<NULL>\"]";
    assert_eq!(
        rows(&mut c),
        [
            row("PARSE", "SELECT name FROM items WHERE id = $1", "PARSE COMPLETE", false),
            row("BIND", with, "BIND COMPLETE", false),
            row("DESCRIBE", with, "name", false),
            row("EXECUTE", with, "pear\nSELECT 1", false),
            row("BIND", with_null, "BIND COMPLETE", false),
            row("EXECUTE", with_null, "SELECT 0", false),
            row("PARSE", "DELETE FROM items", "PARSE COMPLETE", false),
            row("DESCRIBE", "DELETE FROM items", "NO DATA", false),
            row("CLOSE", "SELECT name FROM items WHERE id = $1", "CLOSE COMPLETE", false),
        ]
    );
    let s = c.stats().stitch;
    assert_eq!((s.records, s.unanswered_requests, s.orphan_responses), (9, 0, 0));
}

#[test]
fn binary_format_parameters_are_shown_in_hex() {
    // Bind with format codes: one code for all (binary), then one each (text, binary).
    let bind_with = |codes: &[u16], params: &[&[u8]]| {
        let mut body = [cstr(""), cstr("s")].concat();
        body.extend_from_slice(&(codes.len() as u16).to_be_bytes());
        codes.iter().for_each(|c| body.extend_from_slice(&c.to_be_bytes()));
        body.extend_from_slice(&(params.len() as u16).to_be_bytes());
        for p in params {
            body.extend_from_slice(&(p.len() as i32).to_be_bytes());
            body.extend_from_slice(p);
        }
        body.extend_from_slice(&[0, 0]);
        typed(b'B', &body)
    };
    let mut c = conn();
    c.feed(Side::Request, &[parse("s", "SELECT $1, $2"), sync()].concat(), 1);
    c.feed(Side::Response, &[typed(b'1', b""), ready()].concat(), 2);
    c.feed(Side::Request, &[bind_with(&[1], &[&[0, 2], &[0, 0, 0, 7]]), sync()].concat(), 3);
    c.feed(Side::Response, &[typed(b'2', b""), ready()].concat(), 4);
    c.feed(Side::Request, &[bind_with(&[0, 1], &[b"fig", &[1]]), sync()].concat(), 5);
    c.feed(Side::Response, &[typed(b'2', b""), ready()].concat(), 6);
    let got = rows(&mut c);
    assert_eq!(got[1], row("BIND", r#"SELECT $1, $2 -- params: ["\\x0002","\\x00000007"]"#, "BIND COMPLETE", false));
    assert_eq!(got[2], row("BIND", r#"SELECT $1, $2 -- params: ["fig","\\x01"]"#, "BIND COMPLETE", false));
}

#[test]
fn an_extended_error_skips_to_sync_and_later_requests_pair_again() {
    let mut c = conn();
    c.feed(Side::Request, &[parse("", "SELEC 1"), bind("", "", &[]), execute(""), sync()].concat(), 1);
    c.feed(Side::Response, &[error("42601", "syntax error at or near \"SELEC\""), ready()].concat(), 2);
    c.feed(Side::Request, &query("SELECT 1"), 3);
    c.feed(
        Side::Response,
        &[row_desc(&["?column?"]), data_row(&[Some("1")]), complete("SELECT 1"), ready()].concat(),
        4,
    );
    assert_eq!(
        rows(&mut c),
        [
            row("PARSE", "SELEC 1", "ERROR 42601 syntax error at or near \"SELEC\"", true),
            row("QUERY", "SELECT 1", "?column?\n1\nSELECT 1", false),
        ]
    );
    // Bind and Execute were skipped by the server: unanswered, not paired with later replies.
    assert_eq!(c.stats().stitch.unanswered_requests, 2);
}

#[test]
fn scram_and_cleartext_authentication_are_records_and_redact_whole() {
    let mut c = conn();
    c.feed(Side::Request, &startup(&[("user", "alice"), ("database", "shop")]), 1);
    c.feed(Side::Response, &auth(10, &[cstr("SCRAM-SHA-256"), vec![0]].concat()), 2);
    let initial = [cstr("SCRAM-SHA-256"), vec![0, 0, 0, 20], b"n,,n=,r=abcdefghijkl".to_vec()].concat();
    c.feed(Side::Request, &typed(b'p', &initial), 3);
    c.feed(Side::Response, &auth(11, b"r=abcdefghijklSERVER,s=c2FsdA==,i=4096"), 4);
    c.feed(Side::Request, &typed(b'p', b"c=biws,r=abcdefghijklSERVER,p=cHJvb2Y="), 5);
    c.feed(Side::Response, &[auth(12, b"v=c2lnbmF0dXJl"), after_auth_ok()].concat(), 6);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    let got: Vec<_> = records.iter().map(|r| (r.req.cmd, r.req.credential, r.resp.text.as_str())).collect();
    assert_eq!(
        got,
        [
            ("STARTUP", false, "AUTHENTICATION SASL SCRAM-SHA-256"),
            ("PASSWORD", true, "AUTHENTICATION SASL CONTINUE"),
            ("PASSWORD", true, "AUTHENTICATION SASL FINAL\nAUTHENTICATION OK"),
        ]
    );
    // The parser keeps the payload and marks it; `redact::pgsql_request` replaces it (tested there).
    assert!(records[2].req.text.contains("p=cHJvb2Y="));

    // Cleartext: the password itself travels in the PasswordMessage.
    let mut c = conn();
    c.feed(Side::Request, &startup(&[("user", "bob")]), 1);
    c.feed(Side::Response, &auth(3, b""), 2);
    c.feed(Side::Request, &typed(b'p', &cstr("hunter2")), 3);
    c.feed(Side::Response, &[error("28P01", "password authentication failed for user \"bob\"")].concat(), 4);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    let got: Vec<_> = records.iter().map(|r| (r.req.cmd, r.req.text.as_str(), r.resp.text.as_str())).collect();
    assert_eq!(
        got,
        [
            ("STARTUP", "user=bob", "AUTHENTICATION CLEARTEXT"),
            ("PASSWORD", "hunter2", "ERROR 28P01 password authentication failed for user \"bob\""),
        ]
    );
    assert!(records[1].req.credential && !records[0].req.credential);
}

#[test]
fn tls_after_ssl_request_makes_the_connection_opaque() {
    let mut c = conn();
    c.feed(Side::Request, &untyped(SSL_REQUEST, b""), 1);
    c.feed(Side::Response, b"S", 2);
    c.feed(Side::Request, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 3);
    c.feed(Side::Response, b"\x16\x03\x03\x00\x7a\x02\x00\x00\x76", 4);
    assert!(rows(&mut c).is_empty());
    let s = c.stats();
    assert!(s.encrypted);
    assert_eq!((s.request.errors, s.response.errors), (0, 0));
    // Fed the other way round, the ClientHello alone tells.
    let mut c = conn();
    c.feed(Side::Request, &untyped(SSL_REQUEST, b""), 1);
    c.feed(Side::Request, b"\x16\x03\x01\x02\x00\x01", 3);
    assert!(c.stats().encrypted);
}

#[test]
fn a_gap_inside_a_row_is_stepped_over_and_one_between_messages_resyncs() {
    let mut c = conn();
    c.feed(Side::Request, &query("SELECT body FROM docs"), 1);
    let big = "x".repeat(100);
    let resp = [row_desc(&["body"]), data_row(&[Some(&big)]), complete("SELECT 1"), ready()].concat();
    let row_at = row_desc(&["body"]).len();
    // Capture the first 20 bytes of the DataRow, lose 50, capture the rest.
    c.feed(Side::Response, &resp[..row_at + 20], 2);
    c.gap(Side::Response, 50, 2);
    c.feed(Side::Response, &resp[row_at + 70..], 3);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!(records.len(), 1);
    assert!(records[0].resp.cut, "marked cut");
    assert!(records[0].resp.text.ends_with("SELECT 1"), "{}", records[0].resp.text);

    // A gap between messages: the waiting query is dropped, and the next capture that starts
    // with a valid header pairs again.
    let mut c = conn();
    c.feed(Side::Request, &query("SELECT 1"), 1);
    c.gap(Side::Response, 30, 2);
    c.feed(Side::Response, b"garbage that is not a header", 3);
    c.feed(Side::Response, &[complete("SELECT 1"), ready()].concat(), 4);
    c.feed(Side::Request, &query("SELECT 2"), 5);
    c.feed(Side::Response, &[row_desc(&["x"]), data_row(&[Some("2")]), complete("SELECT 1"), ready()].concat(), 6);
    assert_eq!(rows(&mut c), [row("QUERY", "SELECT 2", "x\n2\nSELECT 1", false)]);
    assert_eq!(c.stats().stitch.unanswered_requests, 1);
}

#[test]
fn long_text_is_cut_to_the_limit_and_marked() {
    let mut c = PgConn::new(PgConfig { max_value_bytes: 16, ..PgConfig::default() });
    c.feed(Side::Request, &query("SELECT 'a very long literal indeed'"), 1);
    c.feed(Side::Response, &[row_desc(&["?column?"]), data_row(&[Some("a very long literal indeed")])].concat(), 2);
    c.feed(Side::Response, &[complete("SELECT 1"), ready()].concat(), 3);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    assert_eq!((records[0].req.text.as_str(), records[0].req.cut), ("SELECT 'a very l", true));
    assert_eq!((records[0].resp.text.as_str(), records[0].resp.cut), ("?column?\na very ", true));
}

#[test]
fn first_bytes_of_a_client_are_recognised_conservatively() {
    assert!(looks_like_request(&untyped(SSL_REQUEST, b"")));
    assert!(looks_like_request(&untyped(GSSENC_REQUEST, b"")));
    assert!(looks_like_request(&startup(&[("user", "postgres")])));
    assert!(looks_like_request(&query("SELECT 1")));
    assert!(!looks_like_request(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_request(b"*1\r\n$4\r\nPING\r\n"));
    assert!(!looks_like_request(&untyped(0x0002_0000, b"")), "protocol 2 is not spoken by PostgreSQL 15");
    assert!(!looks_like_request(b"Q\0\0\0\x09\x01\x02\x03\x04"));
    assert!(!looks_like_request(&[0, 0, 0, 8, 4, 210]), "too short to tell");
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

/// Bytes that are sometimes valid messages, so the parser gets past its first header.
fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        Just(query("SELECT 1")),
        Just([row_desc(&["a"]), data_row(&[Some("1")])].concat()),
        Just([complete("SELECT 1"), ready()].concat()),
        Just(untyped(SSL_REQUEST, b"")),
        Just(b"N".to_vec()),
        Just([parse("s", "SELECT $1"), bind("", "s", &[Some("x")]), execute(""), sync()].concat()),
        Just(error("XX000", "boom")),
        (any::<u8>(), 0u32..200).prop_map(|(tag, len)| {
            let mut v = vec![tag];
            v.extend_from_slice(&len.to_be_bytes());
            v
        }),
    ]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (arb_side(), arb_bytes()).prop_map(|(s, b)| Op::Feed(s, b)),
        1 => (arb_side(), 0u64..300).prop_map(|(s, n)| Op::Gap(s, n)),
        1 => Just(Op::Close),
    ]
}

/// Framing buffers: a header and a kept body per side, plus a response being collected.
const BOUND: usize = 2 * (8 + 512 + 256) + 512;

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
    }

    /// A valid session survives any fragmentation of both sides.
    #[test]
    fn a_valid_session_round_trips_through_any_fragmentation(
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let (requests, responses, want) = psql_session();
        let mut c = conn();
        let mut req_cuts: Vec<usize> = cuts.iter().map(|i| i.index(requests.len())).collect();
        let mut resp_cuts: Vec<usize> = cuts.iter().map(|i| i.index(responses.len())).collect();
        req_cuts.sort_unstable();
        resp_cuts.sort_unstable();
        let mut at = 0;
        for cut in req_cuts.into_iter().chain([requests.len()]) {
            c.feed(Side::Request, &requests[at..cut], 1);
            at = cut;
        }
        let mut at = 0;
        for cut in resp_cuts.into_iter().chain([responses.len()]) {
            c.feed(Side::Response, &responses[at..cut], 2);
            at = cut;
        }
        prop_assert_eq!(rows(&mut c), want);
    }
}

/// Feeds a recorded connection in 1460-byte pieces, requests before responses; returns its records.
fn recorded(req: &[u8], resp: &[u8]) -> (Vec<Record>, PgStats) {
    let mut c = conn();
    for piece in req.chunks(1460) {
        c.feed(Side::Request, piece, 1);
    }
    for piece in resp.chunks(1460) {
        c.feed(Side::Response, piece, 2);
    }
    c.close(3);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    (records, c.stats())
}

#[test]
fn recorded_psql_and_pgbench_sessions_give_every_exchange() {
    let (records, stats) =
        recorded(include_bytes!("../../testdata/pgsql/psql.req"), include_bytes!("../../testdata/pgsql/psql.resp"));
    let got: Vec<_> = records.iter().map(|r| (r.req.cmd, r.req.text.as_str(), r.resp.error)).collect();
    assert_eq!(
        got,
        [
            ("STARTUP", "user=postgres database=postgres application_name=psql", false),
            ("QUERY", "SELECT id, name FROM items ORDER BY id", false),
            ("QUERY", "UPDATE items SET name = name WHERE id < 10", false),
            ("QUERY", "SELECT * FROM nope", true),
        ]
    );
    assert!(records[1].resp.text.starts_with("id,name\n1,item 1\n2,item 2\n"), "{}", records[1].resp.text);
    assert_eq!(records[2].resp.text, "UPDATE 9");
    assert_eq!((stats.stitch.unanswered_requests, stats.stitch.orphan_responses), (0, 0));

    for (req, resp, parses) in [
        (
            &include_bytes!("../../testdata/pgsql/pgbench_prepared.req")[..],
            &include_bytes!("../../testdata/pgsql/pgbench_prepared.resp")[..],
            2,
        ),
        (
            &include_bytes!("../../testdata/pgsql/pgbench_extended.req")[..],
            &include_bytes!("../../testdata/pgsql/pgbench_extended.resp")[..],
            40,
        ),
    ] {
        let (records, stats) = recorded(req, resp);
        let count = |cmd: &str| records.iter().filter(|r| r.req.cmd == cmd).count();
        // 20 transactions of a SELECT and an UPDATE: each bound, described and executed.
        assert_eq!(
            [count("STARTUP"), count("PARSE"), count("BIND"), count("DESCRIBE"), count("EXECUTE")],
            [1, parses, 40, 40, 40]
        );
        assert_eq!(records.len(), 1 + parses + 120);
        assert!(records.iter().all(|r| !r.resp.error));
        let selects = records.iter().filter(|r| r.req.cmd == "EXECUTE" && r.req.text.starts_with("SELECT"));
        assert!(selects.clone().count() == 20 && selects.clone().all(|r| r.resp.text.starts_with("item ")));
        assert_eq!((stats.stitch.unanswered_requests, stats.stitch.orphan_responses), (0, 0));
        assert_eq!(stats.request.errors + stats.response.errors, 0);
    }
}
