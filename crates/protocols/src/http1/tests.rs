//! Property tests for the whole HTTP/1 pipeline: arbitrary bytes never panic or grow memory
//! unboundedly, and valid generated exchanges round-trip through any fragmentation.

use proptest::prelude::*;
use proptest::sample::Index;

use super::*;

/// Upper bound on what one connection may buffer for partial messages with `config`.
fn buffer_bound(config: &ParseConfig) -> usize {
    // Per direction: head + replay (each <= max_header_bytes), a chunk/trailer line
    // (<= max(1024, max_header_bytes)) and the kept body.
    2 * (3 * config.max_header_bytes.max(1024) + config.max_body_bytes)
}

/// One fuzz-like operation on a connection.
#[derive(Debug, Clone)]
enum Op {
    Feed(Side, Vec<u8>),
    Gap(Side, u64),
    Close,
}

impl Op {
    /// Does this step to `conn` at time `ts`.
    fn apply(self, conn: &mut Http1Conn, ts: u64) {
        match self {
            Op::Feed(side, bytes) => conn.feed(side, &bytes, ts),
            Op::Gap(side, len) => conn.gap(side, len, ts),
            Op::Close => conn.close(ts),
        }
    }
}

/// Byte fragments that steer the parser into its deeper states far more often than uniform
/// random bytes would.
const FRAGMENTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\n",
    b"HEAD /h HTTP/1.0\r\n",
    b"POST /p HTTP/1.1\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.0 204 No Content\r\n",
    b"HTTP/1.1 100 Continue\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 99999999999999999999\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: x\r\n",
    b"\r\n",
    b"\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"ffffffffffffffff\r\n",
    b" folded\r\n",
    b"GE",
    b"HTTP/1.",
];

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..12).prop_map(|parts| parts.concat()),
    ]
}

fn arb_side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Request), Just(Side::Response)]
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (arb_side(), arb_bytes()).prop_map(|(side, bytes)| Op::Feed(side, bytes)),
        1 => (arb_side(), prop_oneof![0u64..16, any::<u64>()]).prop_map(|(s, n)| Op::Gap(s, n)),
        1 => Just(Op::Close),
    ]
}

fn arb_config() -> impl Strategy<Value = ParseConfig> {
    prop_oneof![
        Just(ParseConfig::default()),
        (0usize..64, 0usize..128)
            .prop_map(|(max_body_bytes, max_header_bytes)| ParseConfig { max_body_bytes, max_header_bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        config in arb_config(),
        ops in prop::collection::vec(arb_op(), 0..40),
    ) {
        let mut conn = Http1Conn::new(config);
        let mut records = Vec::new();
        let bound = buffer_bound(&config);
        let mut ts = 0;
        for op in ops {
            ts += 1;
            op.apply(&mut conn, ts);
            prop_assert!(conn.buffered_bytes() <= bound, "{} > {bound}", conn.buffered_bytes());
            prop_assert!(conn.pending_messages() <= 2 * DEFAULT_MAX_PENDING);
            conn.drain_records(&mut records);
        }
        for record in &records {
            prop_assert!(record.req.body.len() <= config.max_body_bytes);
            prop_assert!(record.resp.body.len() <= config.max_body_bytes);
            prop_assert!(record.resp.body.len() as u64 <= record.resp.body_size);
            let json: Result<serde_json::Value, _> =
                serde_json::from_str(&record.resp.headers_json());
            prop_assert!(json.is_ok());
        }
    }

    #[test]
    fn random_bytes_in_random_chunks_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..4096),
        sizes in prop::collection::vec(1usize..300, 1..20),
    ) {
        let config = ParseConfig::default();
        for kind in [MessageKind::Request, MessageKind::Response] {
            let mut parser = StreamParser::new(kind, config);
            let mut out = Vec::new();
            let mut rest = data.as_slice();
            for &size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, tail) = rest.split_at(size.min(rest.len()));
                parser.feed(piece, 0, &mut out);
                prop_assert!(parser.buffered_bytes() <= buffer_bound(&config) / 2);
                rest = tail;
            }
            parser.close(1, &mut out);
            prop_assert_eq!(parser.buffered_bytes(), 0);
        }
    }
}

/// A generated request/response exchange, with the messages the parser must produce.
#[derive(Debug, Clone)]
struct Exchange {
    request_bytes: Vec<u8>,
    response_bytes: Vec<u8>,
    request: Message,
    response: Message,
}

#[derive(Debug, Clone)]
enum BodyFraming {
    Length,
    Chunked(Vec<Index>),
}

fn arb_headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("X-[A-Za-z0-9-]{0,12}", "([!-~]([ !-~]{0,30}[!-~])?)?"), 0..6)
}

fn arb_framing() -> impl Strategy<Value = BodyFraming> {
    prop_oneof![Just(BodyFraming::Length), prop::collection::vec(any::<Index>(), 0..4).prop_map(BodyFraming::Chunked),]
}

/// Serialises a head plus a framed body and fills in the expected headers and body.
fn serialise(
    start_line: String,
    mut expected: Message,
    body: &[u8],
    framing: Option<&BodyFraming>,
    head_only_length: Option<usize>,
) -> (Vec<u8>, Message) {
    let mut bytes = start_line.into_bytes();
    bytes.extend_from_slice(b"\r\n");
    let mut framing_header = None;
    let mut encoded_body = Vec::new();
    match framing {
        _ if head_only_length.is_some() => {
            framing_header = head_only_length.map(|n| ("Content-Length".to_string(), n.to_string()));
        }
        None => {}
        Some(BodyFraming::Length) => {
            framing_header = Some(("Content-Length".to_string(), body.len().to_string()));
            encoded_body.extend_from_slice(body);
            expected.body_size = body.len() as u64;
        }
        Some(BodyFraming::Chunked(cuts)) => {
            framing_header = Some(("Transfer-Encoding".to_string(), "chunked".to_string()));
            let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
            positions.push(0);
            positions.push(body.len());
            positions.sort_unstable();
            positions.dedup();
            for pair in positions.windows(2) {
                let chunk = &body[pair[0]..pair[1]];
                encoded_body.extend_from_slice(format!("{:X};x=y\r\n", chunk.len()).as_bytes());
                encoded_body.extend_from_slice(chunk);
                encoded_body.extend_from_slice(b"\r\n");
            }
            encoded_body.extend_from_slice(b"0\r\n\r\n");
            expected.body_size = body.len() as u64;
        }
    }
    expected.headers.extend(framing_header);
    for (name, value) in expected.headers.iter() {
        bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    bytes.extend_from_slice(&encoded_body);
    if head_only_length.is_none() && framing.is_some() {
        expected.body = body[..body.len().min(ParseConfig::default().max_body_bytes)].to_vec();
    }
    (bytes, expected)
}

fn arb_exchange() -> impl Strategy<Value = Exchange> {
    let request = (
        prop::sample::select(&["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"][..]),
        "/[A-Za-z0-9/._?=&%-]{0,40}",
        0u8..=1,
        arb_headers(),
        prop::option::of((prop::collection::vec(any::<u8>(), 0..700), arb_framing())),
    );
    let response = (
        prop::sample::select(&[200u16, 201, 204, 301, 304, 400, 404, 500, 503][..]),
        "([A-Za-z][A-Za-z ]{0,20})?",
        0u8..=1,
        arb_headers(),
        prop::collection::vec(any::<u8>(), 0..700),
        arb_framing(),
        0usize..100_000,
    );
    (request, response).prop_map(|(request, response)| {
        let (method, path, req_minor, req_headers, req_body) = request;
        let mut expected_req = Message::empty(MessageKind::Request);
        expected_req.method = method.to_string();
        expected_req.path = path.clone();
        expected_req.minor_version = req_minor;
        expected_req.headers = req_headers.into_iter().collect();
        let (body, framing) = match &req_body {
            Some((body, framing)) => (body.as_slice(), Some(framing)),
            None => (&[][..], None),
        };
        let (request_bytes, request) =
            serialise(format!("{method} {path} HTTP/1.{req_minor}"), expected_req, body, framing, None);

        let (status, reason, resp_minor, resp_headers, resp_body, resp_framing, head_len) = response;
        let mut expected_resp = Message::empty(MessageKind::Response);
        expected_resp.status = status;
        expected_resp.reason = reason.clone();
        expected_resp.minor_version = resp_minor;
        expected_resp.headers = resp_headers.into_iter().collect();
        let no_body = status == 204 || status == 304;
        let (response_bytes, response) = if method == "HEAD" {
            // A HEAD response advertises a length but carries no body.
            serialise(format!("HTTP/1.{resp_minor} {status} {reason}"), expected_resp, &[], None, Some(head_len))
        } else {
            serialise(
                format!("HTTP/1.{resp_minor} {status} {reason}"),
                expected_resp,
                &resp_body,
                (!no_body).then_some(&resp_framing),
                None,
            )
        };
        Exchange { request_bytes, response_bytes, request, response }
    })
}

/// Feeds `bytes` to `side` cut at the given points.
fn feed_cut(conn: &mut Http1Conn, side: Side, bytes: &[u8], cuts: &[Index], ts: &mut u64) {
    let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    positions.push(0);
    positions.push(bytes.len());
    positions.sort_unstable();
    for pair in positions.windows(2) {
        *ts += 1;
        conn.feed(side, &bytes[pair[0]..pair[1]], *ts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_exchanges_round_trip_through_any_fragmentation(
        exchanges in prop::collection::vec(arb_exchange(), 1..6),
        request_cuts in prop::collection::vec(any::<Index>(), 0..24),
        response_cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let request_stream: Vec<u8> =
            exchanges.iter().flat_map(|e| e.request_bytes.clone()).collect();
        let response_stream: Vec<u8> =
            exchanges.iter().flat_map(|e| e.response_bytes.clone()).collect();
        let mut conn = Http1Conn::new(ParseConfig::default());
        let mut ts = 0;
        feed_cut(&mut conn, Side::Request, &request_stream, &request_cuts, &mut ts);
        feed_cut(&mut conn, Side::Response, &response_stream, &response_cuts, &mut ts);
        let mut records = Vec::new();
        conn.drain_records(&mut records);
        let stats = conn.stats();
        prop_assert_eq!(stats.request.errors + stats.response.errors, 0);
        prop_assert_eq!(records.len(), exchanges.len());
        for (record, exchange) in records.iter().zip(&exchanges) {
            let (mut req, mut resp) = (record.req.clone(), record.resp.clone());
            prop_assert!(resp.ts_ns >= req.ts_ns);
            req.ts_ns = 0;
            resp.ts_ns = 0;
            prop_assert_eq!(&*req, &exchange.request);
            prop_assert_eq!(&*resp, &exchange.response);
        }
    }
}

/// One message of a capture-gap scenario: its body length, whether it is chunked, where its
/// body is split into syscalls (or chunks) and how much of each syscall the kernel copied.
#[derive(Debug, Clone)]
struct GappyMessage {
    body_len: usize,
    chunked: bool,
    cuts: Vec<Index>,
    copied: Vec<Index>,
}

fn arb_gappy_message() -> impl Strategy<Value = GappyMessage> {
    (
        prop_oneof![0usize..64, 0usize..5000, Just(8192usize), Just(32_769usize)],
        any::<bool>(),
        prop::collection::vec(any::<Index>(), 0..6),
        prop::collection::vec(any::<Index>(), 1..8),
    )
        .prop_map(|(body_len, chunked, cuts, copied)| GappyMessage { body_len, chunked, cuts, copied })
}

fn gappy_body(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

/// The syscalls a peer makes to send message `i`, each as (bytes, bytes the kernel copied): the
/// head in one syscall, copied whole; a `Content-Length` body in pieces; a chunked body one
/// chunk (size line, data, CRLF) per syscall, of which at least the size line is copied.
fn gappy_syscalls(kind: MessageKind, i: usize, m: &GappyMessage) -> Vec<(Vec<u8>, usize)> {
    let framing =
        if m.chunked { "Transfer-Encoding: chunked".to_string() } else { format!("Content-Length: {}", m.body_len) };
    let head = match kind {
        MessageKind::Request => format!("POST /m{i} HTTP/1.1\r\nHost: h\r\n{framing}\r\n\r\n"),
        MessageKind::Response => format!("HTTP/1.1 200 OK\r\n{framing}\r\n\r\n"),
    };
    let mut calls = vec![(head.clone().into_bytes(), head.len())];
    let body = gappy_body(i, m.body_len);
    let mut positions: Vec<usize> = m.cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    positions.extend([0, body.len()]);
    positions.sort_unstable();
    positions.dedup();
    for (k, pair) in positions.windows(2).enumerate() {
        let piece = &body[pair[0]..pair[1]];
        let copied = &m.copied[k % m.copied.len()];
        if m.chunked {
            let line = format!("{:x}\r\n", piece.len());
            let mut bytes = line.clone().into_bytes();
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
            let n = line.len() + copied.index(piece.len() + 3);
            calls.push((bytes, n));
        } else {
            calls.push((piece.to_vec(), copied.index(piece.len() + 1)));
        }
    }
    if m.chunked {
        calls.push((b"0\r\n\r\n".to_vec(), 5));
    }
    calls
}

fn feed_gappy(conn: &mut Http1Conn, side: Side, calls: &[(Vec<u8>, usize)], ts: &mut u64) {
    for (bytes, copied) in calls {
        *ts += 1;
        conn.feed(side, &bytes[..*copied], *ts);
        if *copied < bytes.len() {
            conn.gap(side, (bytes.len() - copied) as u64, *ts);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What the kernel does to big messages (copies a prefix of each syscall, reports the rest
    /// as a gap) costs body bytes, never a message: every exchange comes out, with its real
    /// body size and a kept body that is a prefix of the real one.
    #[test]
    fn bodies_with_capture_gaps_keep_every_message_and_its_real_size(
        messages in prop::collection::vec(arb_gappy_message(), 1..5),
        max_body_bytes in prop_oneof![Just(512usize), 0usize..64],
    ) {
        let config = ParseConfig { max_body_bytes, ..ParseConfig::default() };
        let mut conn = Http1Conn::new(config);
        let mut ts = 0;
        for (i, m) in messages.iter().enumerate() {
            feed_gappy(&mut conn, Side::Request, &gappy_syscalls(MessageKind::Request, i, m), &mut ts);
            feed_gappy(&mut conn, Side::Response, &gappy_syscalls(MessageKind::Response, i, m), &mut ts);
        }
        let mut records = Vec::new();
        conn.drain_records(&mut records);
        let stats = conn.stats();
        prop_assert_eq!(stats.request.errors + stats.response.errors, 0);
        prop_assert_eq!(stats.request.dropped_partial + stats.response.dropped_partial, 0);
        prop_assert_eq!(records.len(), messages.len());
        for (i, (record, m)) in records.iter().zip(&messages).enumerate() {
            let body = gappy_body(i, m.body_len);
            prop_assert_eq!(&record.req.path, &format!("/m{i}"));
            prop_assert_eq!(record.resp.status, 200);
            for message in [&record.req, &record.resp] {
                prop_assert_eq!(message.body_size, m.body_len as u64);
                prop_assert!(message.body.len() <= max_body_bytes);
                prop_assert!(body.starts_with(&message.body));
                prop_assert_eq!(message.body_truncated(), message.body.len() < m.body_len);
            }
        }
        prop_assert_eq!(conn.buffered_bytes(), 0);
    }

    /// Random gaps anywhere, at any size, between well-formed and random bytes: no panic, and
    /// memory stays within the same bound as without gaps.
    #[test]
    fn random_gaps_never_panic(
        messages in prop::collection::vec(arb_gappy_message(), 0..4),
        ops in prop::collection::vec(arb_op(), 0..20),
        gap_at in prop::collection::vec((any::<Index>(), prop_oneof![1u64..40, any::<u64>()]), 0..6),
    ) {
        let config = ParseConfig::default();
        let mut conn = Http1Conn::new(config);
        let mut ts = 0;
        let mut stream = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            for (bytes, _) in gappy_syscalls(MessageKind::Response, i, m) {
                stream.extend_from_slice(&bytes);
            }
        }
        let mut positions: Vec<(usize, u64)> = gap_at.iter().map(|(at, len)| (at.index(stream.len() + 1), *len)).collect();
        positions.sort_unstable();
        let mut from = 0;
        for (at, len) in positions {
            ts += 1;
            conn.feed(Side::Response, &stream[from..at], ts);
            conn.gap(Side::Response, len, ts);
            from = at;
        }
        conn.feed(Side::Response, &stream[from..], ts + 1);
        for op in ops {
            ts += 1;
            op.apply(&mut conn, ts);
            prop_assert!(conn.buffered_bytes() <= buffer_bound(&config));
        }
        conn.close(ts + 1);
        prop_assert_eq!(conn.buffered_bytes(), 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A client reading a chunked body (chunks of one size, the last smaller, as servers send
    /// files) in reads cut anywhere, of which the kernel copied a prefix of at least its
    /// smallest budget (2 KiB): the response keeps its row and its exact size, and the next
    /// response on the connection parses.
    #[test]
    fn chunked_bodies_read_with_capture_gaps_keep_their_exact_size(
        body_len in 0usize..200_000,
        chunk in prop::sample::select(&[512usize, 1000, 4096, 8192, 16_384, 65_536][..]),
        reads in prop::collection::vec(1usize..100_000, 1..16),
        copied in prop::collection::vec(2048usize..=32_768, 1..8),
    ) {
        let mut stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let head_len = stream.len();
        let body: Vec<u8> = (0..body_len).map(|i| b'g' + (i % 20) as u8).collect();
        for piece in body.chunks(chunk) {
            stream.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            stream.extend_from_slice(piece);
            stream.extend_from_slice(b"\r\n");
        }
        stream.extend_from_slice(b"0\r\n\r\n");
        let mut p = StreamParser::new(MessageKind::Response, ParseConfig::default());
        p.note_request("GET");
        p.note_request("GET");
        let mut out = Vec::new();
        p.feed(&stream[..head_len], 1, &mut out);
        let mut at = head_len;
        let mut ts = 1;
        let mut k = 0;
        while at < stream.len() {
            let end = (at + reads[k % reads.len()]).min(stream.len());
            let n = (end - at).min(copied[k % copied.len()]);
            k += 1;
            ts += 1;
            p.feed(&stream[at..at + n], ts, &mut out);
            if at + n < end {
                p.gap((end - at - n) as u64, ts, &mut out);
            }
            at = end;
        }
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", ts + 1, &mut out);
        let got: Vec<(u16, u64)> = out.iter().map(|m| (m.status, m.body_size)).collect();
        prop_assert_eq!(got, vec![(200, body_len as u64), (200, 2)]);
        prop_assert_eq!(p.stats().dropped_partial, 0);
    }
}

/// Messages built in recycled buffers are exactly those built fresh, whatever the previous
/// message left in them (more headers, a folded value, a longer path, a body, invalid UTF-8).
#[test]
fn recycled_records_parse_the_same_as_fresh_ones() {
    let requests: &[&[u8]] = &[
        b"POST /a/long/path?x=1 HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n  two\r\nX-A: 1\r\nX-A: 2\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: \xfeb\r\n\r\n",
        b"HEAD /h HTTP/1.1\r\nHost: c\r\n\r\n",
    ];
    let responses: &[&[u8]] = &[
        b"HTTP/1.1 201 Created Here\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 204 \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
    ];
    let (mut fresh, mut recycled) = (Http1Conn::new(ParseConfig::default()), Http1Conn::new(ParseConfig::default()));
    let (mut want, mut got) = (Vec::new(), Vec::new());
    let mut ts = 0;
    for _ in 0..3 {
        for (req, resp) in requests.iter().zip(responses) {
            ts += 10;
            for conn in [&mut fresh, &mut recycled] {
                conn.feed_request_side(req, ts);
                conn.feed_response_side(resp, ts + 5);
            }
            let mut records = Vec::new();
            fresh.drain_records(&mut records);
            want.extend(records);
            let mut records = Vec::new();
            recycled.drain_records(&mut records);
            for record in records {
                got.push(record.clone());
                recycled.recycle(record);
            }
        }
    }
    assert_eq!(got.len(), 12);
    assert_eq!(got, want);
}
