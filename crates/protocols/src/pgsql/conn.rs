//! Pairing PostgreSQL requests with their responses, and what each becomes.
//!
//! Owns [`PgConn`] (one [`WireParser`] per direction, the request queue and the response
//! messages waiting for it), [`Request`] and [`Response`] with their column text, the prepared
//! statements and portals of the connection (so `BIND` and `EXECUTE` rows show the query they
//! run), the extended protocol's error rule (after an error the server ignores everything up to
//! `Sync`) and [`PgStats`]. Must not touch framing (see `wire`) and does no I/O.

use std::collections::{HashMap, VecDeque};

use serde_json::Value as Json;

use super::wire::{Kind, Message, PROTOCOL_3, WireParser, WireStats};
use crate::conn_parser::{ConnParser, Side};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, StitchCounts, Timed};

/// Prepared statements and portals remembered per connection; more are not remembered (their
/// `BIND`/`EXECUTE` rows then show no query text).
pub const MAX_NAMED: usize = 256;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgConfig {
    /// Text kept per request and per response (the rest is counted and the value marked cut).
    /// Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Requests and response messages waiting for their partner, each.
    pub max_pending: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// What a request is, for pairing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqKind {
    Startup,
    Password,
    Query,
    Parse,
    Bind,
    Describe,
    Execute,
    Close,
    Sync,
    FunctionCall,
}

impl ReqKind {
    /// `req_cmd`.
    fn name(self) -> &'static str {
        match self {
            ReqKind::Startup => "STARTUP",
            ReqKind::Password => "PASSWORD",
            ReqKind::Query => "QUERY",
            ReqKind::Parse => "PARSE",
            ReqKind::Bind => "BIND",
            ReqKind::Describe => "DESCRIBE",
            ReqKind::Execute => "EXECUTE",
            ReqKind::Close => "CLOSE",
            ReqKind::Sync => "SYNC",
            ReqKind::FunctionCall => "FUNCTION CALL",
        }
    }

    /// A message of the extended query protocol: after its error the server skips to `Sync`.
    fn extended(self) -> bool {
        matches!(self, ReqKind::Parse | ReqKind::Bind | ReqKind::Describe | ReqKind::Execute | ReqKind::Close)
    }
}

/// One request as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `req_cmd`: `STARTUP`, `PASSWORD`, `QUERY`, `PARSE`, `BIND`, `DESCRIBE`, `EXECUTE`, `CLOSE`
    /// or `FUNCTION CALL`.
    pub cmd: &'static str,
    /// `req`: the query text (`QUERY`, `PARSE`; for `BIND`, `DESCRIBE`, `EXECUTE` and `CLOSE` the
    /// query of the statement or portal named, with `-- params: [...]` when parameters are
    /// bound), the startup parameters (`user=... database=...`), or a password message's payload.
    pub text: String,
    /// The text holds a credential (a password message, a SASL response): redaction replaces it whole.
    pub credential: bool,
    /// Some bytes are missing (cut to the limit or lost in a gap).
    pub cut: bool,
    /// When its first byte was captured.
    pub ts_ns: u64,
    kind: ReqKind,
}

impl Timed for Request {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// The response to one request, as column text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `resp`, one line per message that says something: column names (`id,name`), one line per
    /// row (values comma-separated, NULL as `<NULL>`), the command tag (`SELECT 2`,
    /// `INSERT 0 1`), `PARSE COMPLETE`, `BIND COMPLETE`, `NO DATA`, `AUTHENTICATION OK`, or an
    /// error (`ERROR 42P01 relation "nope" does not exist`).
    pub text: String,
    /// An `ErrorResponse` came.
    pub error: bool,
    /// Some bytes are missing (cut to the limit or lost in a gap).
    pub cut: bool,
    /// When its last byte was captured.
    pub ts_ns: u64,
}

impl Timed for Response {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// A request with its response.
pub type Record = Exchange<Request, Response>;

/// Counters for one [`PgConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// The request framer's counters.
    pub request: WireStats,
    /// The response framer's counters.
    pub response: WireStats,
    /// Pairing counters.
    pub stitch: StitchCounts,
    /// The connection switched to TLS or GSSAPI encryption (nothing after is readable here).
    pub encrypted: bool,
}

/// A response being collected for the request at the head of the queue.
#[derive(Debug, Default)]
struct Collecting {
    text: String,
    error: bool,
    cut: bool,
}

impl Collecting {
    fn line(&mut self, line: &str, max: usize) {
        if self.cut && self.text.len() >= max {
            return;
        }
        if !self.text.is_empty() {
            line_into(&mut self.text, "\n", max, &mut self.cut);
        }
        line_into(&mut self.text, line, max, &mut self.cut);
    }
}

fn line_into(text: &mut String, s: &str, max: usize, cut: &mut bool) {
    let room = max.saturating_sub(text.len());
    if s.len() <= room {
        text.push_str(s);
        return;
    }
    let mut end = room;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    text.push_str(s.get(..end).unwrap_or_default());
    *cut = true;
}

/// What one response message does to the request waiting for it.
enum Step {
    /// Part of the response; more follows.
    Continue,
    /// Ends the response.
    End,
    /// Not an answer to this request: it got no answer (the server moved on); try the next.
    Unanswered,
    /// Answers no request: drop the message.
    Orphan,
}

/// PostgreSQL for one connection: the main entry point (see the module example).
///
/// Capture gaps: a gap inside a message body is stepped over (the text is marked cut); a gap
/// elsewhere drops what waits on both sides, and each framer resynchronises at the next capture
/// that starts with a valid message header.
#[derive(Debug)]
pub struct PgConn {
    config: PgConfig,
    requests: WireParser,
    responses: WireParser,
    pending: VecDeque<Request>,
    replies: VecDeque<Message>,
    collecting: Collecting,
    /// An extended-protocol error: requests up to the next `Sync` get no response.
    skip_to_sync: bool,
    statements: HashMap<String, String>,
    portals: HashMap<String, String>,
    ready: VecDeque<Record>,
    counts: StitchCounts,
    messages: Vec<Message>,
}

impl PgConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: PgConfig) -> Self {
        // Bodies are kept a little beyond the text limit: a Bind's names and lengths precede its values.
        let keep = config.max_value_bytes.saturating_add(256);
        Self {
            config,
            requests: WireParser::new(Side::Request, keep),
            responses: WireParser::new(Side::Response, keep),
            pending: VecDeque::new(),
            replies: VecDeque::new(),
            collecting: Collecting::default(),
            skip_to_sync: false,
            statements: HashMap::new(),
            portals: HashMap::new(),
            ready: VecDeque::new(),
            counts: StitchCounts::default(),
            messages: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PgStats {
        PgStats {
            request: self.requests.stats(),
            response: self.responses.stats(),
            stitch: self.counts,
            encrypted: self.requests.encrypted() || self.responses.encrypted(),
        }
    }

    fn on_request(&mut self, msg: Message) {
        let max = self.config.max_value_bytes;
        let mut cut = msg.cut;
        let body = &msg.body;
        let (kind, text, credential) = match msg.kind {
            Kind::Startup(code) if code >> 16 == 3 => (ReqKind::Startup, startup_text(body, code), false),
            // SSLRequest, GSSENCRequest, CancelRequest: no row (the answer is a byte, or none).
            Kind::Startup(_) | Kind::Answer(_) => return,
            Kind::Typed(tag) => match tag {
                b'Q' => (ReqKind::Query, cstr(body, 0).0, false),
                b'p' => (ReqKind::Password, String::from_utf8_lossy(body).trim_end_matches('\0').to_string(), true),
                b'P' => {
                    let (name, at) = cstr(body, 0);
                    let (query, _) = cstr(body, at);
                    remember(&mut self.statements, name, bounded(&query, max, &mut cut));
                    (ReqKind::Parse, query, false)
                }
                b'B' => {
                    let (portal, at) = cstr(body, 0);
                    let (statement, at) = cstr(body, at);
                    let (params, params_cut) = bind_params(body, at);
                    cut |= params_cut;
                    let query = self.statements.get(&statement).cloned().unwrap_or_default();
                    let text = with_params(&query, &params);
                    remember(&mut self.portals, portal, text.clone());
                    (ReqKind::Bind, text, false)
                }
                b'D' | b'C' => {
                    let which = body.first().copied().unwrap_or(b'S');
                    let (name, _) = cstr(body, 1);
                    let map = if which == b'P' { &mut self.portals } else { &mut self.statements };
                    let text = map.get(&name).cloned().unwrap_or_default();
                    if tag == b'C' {
                        map.remove(&name);
                        (ReqKind::Close, text, false)
                    } else {
                        (ReqKind::Describe, text, false)
                    }
                }
                b'E' => {
                    let (portal, _) = cstr(body, 0);
                    (ReqKind::Execute, self.portals.get(&portal).cloned().unwrap_or_default(), false)
                }
                b'S' => (ReqKind::Sync, String::new(), false),
                b'F' => (ReqKind::FunctionCall, format!("oid={}", be32_at(body, 0)), false),
                // Flush, Terminate and COPY data have no response of their own.
                _ => return,
            },
        };
        let text = bounded(&text, max, &mut cut);
        let request = Request { cmd: kind.name(), text, credential, cut, ts_ns: msg.first_ns, kind };
        if self.pending.len() >= self.config.max_pending {
            self.pending.pop_front();
            self.counts.overflow_drops += 1;
        }
        self.pending.push_back(request);
    }

    fn on_reply(&mut self, msg: Message) {
        if matches!(msg.kind, Kind::Answer(_)) {
            return;
        }
        if self.replies.len() >= self.config.max_pending {
            self.replies.pop_front();
            self.counts.overflow_drops += 1;
        }
        self.replies.push_back(msg);
    }

    /// Pairs what can be paired: each response message goes to the request at the head.
    fn pair(&mut self) {
        let max = self.config.max_value_bytes;
        loop {
            if self.skip_to_sync {
                while self.pending.front().is_some_and(|r| r.kind != ReqKind::Sync) {
                    self.pending.pop_front();
                    self.counts.unanswered_requests += 1;
                }
                if self.pending.is_empty() {
                    return;
                }
                self.skip_to_sync = false;
            }
            let (Some(req), Some(msg)) = (self.pending.front(), self.replies.front()) else { return };
            if msg.last_ns < req.ts_ns {
                // Ended before the request started: it answers something we did not see.
                self.replies.pop_front();
                self.counts.orphan_responses += 1;
                continue;
            }
            let kind = req.kind;
            let step = respond(kind, msg, &mut self.collecting, max);
            match step {
                Step::Continue => {
                    self.replies.pop_front();
                }
                Step::Orphan => {
                    self.replies.pop_front();
                    self.counts.orphan_responses += 1;
                }
                Step::Unanswered => {
                    self.pending.pop_front();
                    self.collecting = Collecting::default();
                    self.counts.unanswered_requests += 1;
                }
                Step::End => {
                    let Some(msg) = self.replies.pop_front() else { return };
                    let Some(req) = self.pending.pop_front() else { return };
                    let c = std::mem::take(&mut self.collecting);
                    if c.error && kind.extended() {
                        self.skip_to_sync = true;
                    }
                    if kind == ReqKind::Sync {
                        continue;
                    }
                    let resp = Response { text: c.text, error: c.error, cut: c.cut || msg.cut, ts_ns: msg.last_ns };
                    if self.ready.len() >= self.config.max_pending {
                        self.ready.pop_front();
                        self.counts.overflow_drops += 1;
                    }
                    self.ready.push_back(Exchange::new(req, resp));
                    self.counts.records += 1;
                }
            }
        }
    }

    /// One side lost sync: what waits cannot be paired reliably any more.
    fn lost_sync(&mut self) {
        self.counts.unanswered_requests += self.pending.len() as u64;
        self.counts.orphan_responses += self.replies.len() as u64;
        self.pending.clear();
        self.replies.clear();
        self.collecting = Collecting::default();
        self.skip_to_sync = false;
    }
}

/// What message `msg` does to a request of `kind` whose response is being collected in `c`.
fn respond(kind: ReqKind, msg: &Message, c: &mut Collecting, max: usize) -> Step {
    let Kind::Typed(tag) = msg.kind else { return Step::Orphan };
    let body = &msg.body;
    c.cut |= msg.cut;
    match (kind, tag) {
        // Asynchronous messages may come at any time.
        (_, b'N' | b'A' | b'S' | b'K') => Step::Continue,
        (_, b'E') => {
            c.line(&error_text(body), max);
            c.error = true;
            // A simple query still ends with ReadyForQuery; anything else ends here.
            if kind == ReqKind::Query || kind == ReqKind::Sync { Step::Continue } else { Step::End }
        }
        (ReqKind::Startup | ReqKind::Password, b'R') => {
            let code = be32_at(body, 0);
            let name = match code {
                0 => "AUTHENTICATION OK".to_string(),
                2 => "AUTHENTICATION KERBEROS".to_string(),
                3 => "AUTHENTICATION CLEARTEXT".to_string(),
                5 => "AUTHENTICATION MD5".to_string(),
                7 => "AUTHENTICATION GSS".to_string(),
                8 => "AUTHENTICATION GSS CONTINUE".to_string(),
                9 => "AUTHENTICATION SSPI".to_string(),
                10 => {
                    let mechs: Vec<String> = cstrs(body.get(4..).unwrap_or_default());
                    format!("AUTHENTICATION SASL {}", mechs.join(" ")).trim_end().to_string()
                }
                11 => "AUTHENTICATION SASL CONTINUE".to_string(),
                12 => "AUTHENTICATION SASL FINAL".to_string(),
                other => format!("AUTHENTICATION {other}"),
            };
            c.line(&name, max);
            // Ok and SASL final are followed by more (parameters, ReadyForQuery); the others ask
            // the client for something.
            if matches!(code, 0 | 12) { Step::Continue } else { Step::End }
        }
        (ReqKind::Startup | ReqKind::Password | ReqKind::Query | ReqKind::Sync | ReqKind::FunctionCall, b'Z') => {
            Step::End
        }
        (_, b'Z') => Step::Unanswered,
        (ReqKind::Query, b'T') | (ReqKind::Describe, b'T') => {
            c.line(&row_description(body), max);
            if kind == ReqKind::Describe { Step::End } else { Step::Continue }
        }
        (ReqKind::Query | ReqKind::Execute, b'D') => {
            c.line(&data_row(body), max);
            Step::Continue
        }
        (ReqKind::Query, b'C') | (ReqKind::Execute, b'C') => {
            c.line(&cstr(body, 0).0, max);
            if kind == ReqKind::Execute { Step::End } else { Step::Continue }
        }
        (ReqKind::Query, b'I') => {
            c.line("EMPTY QUERY", max);
            Step::Continue
        }
        (ReqKind::Execute, b'I') => {
            c.line("EMPTY QUERY", max);
            Step::End
        }
        (ReqKind::Query, b'G' | b'H' | b'W' | b'd' | b'c') => Step::Continue,
        (ReqKind::Execute, b's') => {
            c.line("PORTAL SUSPENDED", max);
            Step::End
        }
        (ReqKind::Parse, b'1') => {
            c.line("PARSE COMPLETE", max);
            Step::End
        }
        (ReqKind::Bind, b'2') => {
            c.line("BIND COMPLETE", max);
            Step::End
        }
        (ReqKind::Close, b'3') => {
            c.line("CLOSE COMPLETE", max);
            Step::End
        }
        (ReqKind::Describe, b't') => Step::Continue,
        (ReqKind::Describe, b'n') => {
            c.line("NO DATA", max);
            Step::End
        }
        (ReqKind::FunctionCall, b'V') => Step::Continue,
        _ => Step::Orphan,
    }
}

impl ConnParser for PgConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.messages);
        let parser = match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        };
        let errors = parser.stats().errors;
        parser.feed(data, ts_ns, &mut messages);
        let lost = parser.stats().errors > errors;
        for msg in messages.drain(..) {
            match side {
                Side::Request => self.on_request(msg),
                Side::Response => self.on_reply(msg),
            }
        }
        self.messages = messages;
        if self.requests.encrypted() || self.responses.encrypted() {
            self.requests.set_encrypted();
            self.responses.set_encrypted();
        }
        self.pair();
        if lost {
            self.lost_sync();
        }
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let parser = match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        };
        parser.gap(len, ts_ns);
        if !parser.in_sync() {
            self.pair();
            self.lost_sync();
        }
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.close();
        self.responses.close();
        self.pair();
        self.counts.unanswered_requests += self.pending.iter().filter(|r| r.kind != ReqKind::Sync).count() as u64;
        self.counts.orphan_responses += self.replies.len() as u64;
        self.pending.clear();
        self.replies.clear();
        self.collecting = Collecting::default();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes() + self.collecting.text.len()
    }
}

/// Remembers a statement's or portal's text, up to [`MAX_NAMED`] names.
fn remember(map: &mut HashMap<String, String>, name: String, text: String) {
    if map.len() < MAX_NAMED || map.contains_key(&name) {
        map.insert(name, text);
    }
}

/// `text` cut to `max` bytes at a character boundary; sets `cut` when it was.
fn bounded(text: &str, max: usize, cut: &mut bool) -> String {
    let mut out = String::new();
    line_into(&mut out, text, max, cut);
    out
}

/// The NUL-terminated string at `at` (lossy), and the offset after its NUL (or the end).
fn cstr(body: &[u8], at: usize) -> (String, usize) {
    let rest = body.get(at..).unwrap_or_default();
    match rest.iter().position(|&b| b == 0) {
        Some(n) => (String::from_utf8_lossy(rest.get(..n).unwrap_or_default()).into_owned(), at + n + 1),
        None => (String::from_utf8_lossy(rest).into_owned(), body.len()),
    }
}

/// Every NUL-terminated string of `body`, up to an empty one.
fn cstrs(body: &[u8]) -> Vec<String> {
    body.split(|&b| b == 0).take_while(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

fn be16_at(body: &[u8], at: usize) -> Option<u16> {
    match body.get(at..at.checked_add(2)?) {
        Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

fn be32_at(body: &[u8], at: usize) -> u32 {
    match at.checked_add(4).and_then(|end| body.get(at..end)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// A value as text: UTF-8 as is, anything else as `\x` and hex (PostgreSQL's bytea output).
fn value_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => hex_text(bytes),
    }
}

/// `bytes` as `\x` and two hex digits each.
fn hex_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for b in bytes {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// `user=... database=...`: the StartupMessage's parameters in their order (a protocol minor
/// version other than 0 is shown first).
fn startup_text(body: &[u8], code: u32) -> String {
    let words = cstrs(body);
    let mut pairs: Vec<String> = words.chunks(2).map(|kv| kv.join("=")).collect();
    if code != PROTOCOL_3 {
        pairs.insert(0, format!("protocol=3.{}", code & 0xffff));
    }
    pairs.join(" ")
}

/// A Bind's parameter values, starting at `at` (after the names): text-format ones as text,
/// binary-format ones in hex (`\x0001`, as PostgreSQL prints bytea), NULL as `<NULL>`; and whether
/// some were cut off.
fn bind_params(body: &[u8], at: usize) -> (Vec<String>, bool) {
    let Some(formats) = be16_at(body, at) else { return (Vec::new(), true) };
    let formats_at = at + 2;
    // No code: all text; one code: it applies to every parameter; else one code each.
    let binary = |i: usize| {
        let code_at = match formats {
            0 => return false,
            1 => formats_at,
            _ => formats_at + 2 * i,
        };
        be16_at(body, code_at) == Some(1)
    };
    let mut at = formats_at + 2 * usize::from(formats);
    let Some(count) = be16_at(body, at) else { return (Vec::new(), true) };
    at += 2;
    let mut params = Vec::new();
    for i in 0..usize::from(count) {
        let Some(&[a, b, c, d]) = at.checked_add(4).and_then(|end| body.get(at..end)) else { return (params, true) };
        let len = i32::from_be_bytes([a, b, c, d]);
        at += 4;
        if len < 0 {
            params.push("<NULL>".to_string());
            continue;
        }
        let end = at.saturating_add(len as usize);
        let text = |value: &[u8]| if binary(i) { hex_text(value) } else { value_text(value) };
        match body.get(at..end) {
            Some(value) => params.push(text(value)),
            None => {
                params.push(text(body.get(at..).unwrap_or_default()));
                return (params, true);
            }
        }
        at = end;
    }
    (params, false)
}

/// `query -- params: ["1","x"]`, or the query alone when nothing is bound.
fn with_params(query: &str, params: &[String]) -> String {
    if params.is_empty() {
        return query.to_string();
    }
    let list = Json::Array(params.iter().map(|p| Json::String(p.clone())).collect());
    format!("{query} -- params: {list}")
}

/// A RowDescription as its column names, comma-separated.
fn row_description(body: &[u8]) -> String {
    let Some(n) = be16_at(body, 0) else { return String::new() };
    let mut at: usize = 2;
    let mut names = Vec::new();
    for _ in 0..n {
        let (name, next) = cstr(body, at);
        names.push(name);
        // table oid, column number, type oid, type size, type modifier, format code
        at = next + 18;
        if at > body.len() {
            break;
        }
    }
    names.join(",")
}

/// A DataRow as its values, comma-separated (NULL as `<NULL>`).
fn data_row(body: &[u8]) -> String {
    let Some(n) = be16_at(body, 0) else { return String::new() };
    let mut at: usize = 2;
    let mut values = Vec::new();
    for _ in 0..n {
        let Some(&[a, b, c, d]) = at.checked_add(4).and_then(|end| body.get(at..end)) else { break };
        let len = i32::from_be_bytes([a, b, c, d]);
        at += 4;
        if len < 0 {
            values.push("<NULL>".to_string());
            continue;
        }
        let end = at.saturating_add(len as usize);
        let value = body.get(at..end.min(body.len())).unwrap_or_default();
        values.push(value_text(value));
        at = end;
        if at > body.len() {
            break;
        }
    }
    values.join(",")
}

/// An ErrorResponse as `SEVERITY CODE message`.
fn error_text(body: &[u8]) -> String {
    let (mut severity, mut code, mut message) = (String::new(), String::new(), String::new());
    let mut at = 0;
    while let Some(&field) = body.get(at) {
        if field == 0 {
            break;
        }
        let (value, next) = cstr(body, at + 1);
        match field {
            b'V' => severity = value,
            b'S' if severity.is_empty() => severity = value,
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        at = next;
    }
    format!("{severity} {code} {message}").trim().to_string()
}
