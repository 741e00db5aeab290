//! MySQL packets, the handshake, commands and responses, and their pairing.
//!
//! Owns the framer (`len:3 LE, seq:1, payload`, bodies kept up to a limit, the rest skipped),
//! the handshake phases, [`Command`] and [`Response`] with `mysql_events`' column values, and
//! [`MysqlConn`]. Must not touch rows or I/O.

use std::collections::{HashMap, VecDeque};

use crate::conn_parser::{ConnParser, Side};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, StitchCounts, Timed};

/// `COM_QUERY`.
pub const COM_QUERY: u8 = 0x03;
/// `COM_STMT_PREPARE`.
pub const COM_STMT_PREPARE: u8 = 0x16;
/// `COM_STMT_EXECUTE`.
pub const COM_STMT_EXECUTE: u8 = 0x17;
/// `COM_STMT_CLOSE` (no response).
pub const COM_STMT_CLOSE: u8 = 0x19;
const COM_QUIT: u8 = 0x01;
const COM_STMT_SEND_LONG_DATA: u8 = 0x18;
const COM_INIT_DB: u8 = 0x02;

/// `resp_status`: the command has no response.
pub const STATUS_NONE: i64 = 1;
/// `resp_status`: OK or a result set.
pub const STATUS_OK: i64 = 2;
/// `resp_status`: ERR.
pub const STATUS_ERR: i64 = 3;

const CLIENT_SSL: u32 = 0x800;
const CLIENT_DEPRECATE_EOF: u32 = 1 << 24;
const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;
/// Prepared statement texts remembered per connection.
const MAX_STATEMENTS: usize = 256;

/// Limits for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MysqlConfig {
    /// Text kept per request and response (the rest is counted and marked cut). Defaults to 512.
    pub max_value_bytes: usize,
    /// Commands and response packets waiting for their partner, each.
    pub max_pending: usize,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// One command as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `req_cmd`: the command byte (3 = `COM_QUERY`).
    pub cmd: u8,
    /// `req_body`: the query (`COM_QUERY`, `COM_STMT_PREPARE`), the prepared statement's query
    /// (`COM_STMT_EXECUTE` with `-- params: [...]` when its parameters decode, `COM_STMT_CLOSE`),
    /// the database (`COM_INIT_DB`), else empty.
    pub body: String,
    /// Some bytes are missing.
    pub cut: bool,
    /// When its first byte was captured.
    pub ts_ns: u64,
    /// The statement id of an execute or close.
    stmt_id: Option<u32>,
    /// `COM_STMT_CLOSE` and `COM_STMT_SEND_LONG_DATA` get no response.
    no_response: bool,
}

impl Timed for Command {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// The response to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// `resp_status`: [`STATUS_NONE`], [`STATUS_OK`] or [`STATUS_ERR`].
    pub status: i64,
    /// `resp_body`: `Resultset rows = N` for a result set, the message of an ERR
    /// (`Table 'shop.nope' doesn't exist`), empty for OK.
    pub body: String,
    /// When its last byte was captured.
    pub ts_ns: u64,
}

impl Timed for Response {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// A command with its response.
pub type Record = Exchange<Command, Response>;

/// Counters for one [`MysqlConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MysqlStats {
    /// Packets framed, both sides.
    pub packets: u64,
    /// Sides that lost their framing (garbage or a gap between packets).
    pub errors: u64,
    /// Partial packets dropped at a gap or a close.
    pub dropped_partial: u64,
    /// Pairing counters.
    pub stitch: StitchCounts,
    /// The connection switched to TLS.
    pub encrypted: bool,
}

#[derive(Debug, Clone)]
struct Packet {
    seq: u8,
    body: Vec<u8>,
    len: usize,
    first_ns: u64,
    last_ns: u64,
}

#[derive(Debug, Clone, Default)]
struct Framer {
    head: Vec<u8>,
    body: Vec<u8>,
    remaining: usize,
    len: usize,
    seq: u8,
    first_ns: u64,
    lost: bool,
}

impl Framer {
    fn feed(&mut self, mut data: &[u8], ts_ns: u64, keep: usize, out: &mut Vec<Packet>) {
        while !data.is_empty() && !self.lost {
            if self.head.len() < 4 {
                if self.head.is_empty() {
                    self.first_ns = ts_ns;
                }
                let take = (4 - self.head.len()).min(data.len());
                self.head.extend_from_slice(data.get(..take).unwrap_or_default());
                data = data.get(take..).unwrap_or_default();
                if let [a, b, c, seq] = self.head[..] {
                    self.len = usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16;
                    self.remaining = self.len;
                    self.seq = seq;
                }
            } else {
                let n = self.remaining.min(data.len());
                let room = keep.saturating_sub(self.body.len()).min(n);
                self.body.extend_from_slice(data.get(..room).unwrap_or_default());
                self.remaining -= n;
                data = data.get(n..).unwrap_or_default();
            }
            if self.head.len() == 4 && self.remaining == 0 {
                out.push(Packet {
                    seq: self.seq,
                    body: std::mem::take(&mut self.body),
                    len: self.len,
                    first_ns: self.first_ns,
                    last_ns: ts_ns,
                });
                self.head.clear();
            }
        }
    }
}

/// Where the response to the command at the head of the queue stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    Start,
    /// Column definitions still to come, then (without DEPRECATE_EOF) an EOF.
    Columns(u64, bool),
    Rows(u64),
    /// A prepare's parameter then column definitions still to come (each followed by an EOF
    /// without DEPRECATE_EOF).
    Prepare {
        defs: u64,
        eof_after: bool,
        columns: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the server greeting (response side) or handshake response (request side).
    Handshake,
    /// Authentication exchange; ends with the server's OK.
    Auth,
    Command,
    Encrypted,
}

/// MySQL for one connection: the main entry point.
#[derive(Debug)]
pub struct MysqlConn {
    config: MysqlConfig,
    framers: [Framer; 2],
    req_phase: Phase,
    resp_phase: Phase,
    server_caps: u32,
    client_caps: u32,
    pending: VecDeque<Command>,
    replies: VecDeque<Packet>,
    state: Resp,
    statements: HashMap<u32, String>,
    ready: VecDeque<Record>,
    stats: MysqlStats,
    packets: Vec<Packet>,
}

impl MysqlConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: MysqlConfig) -> Self {
        Self {
            config,
            framers: [Framer::default(), Framer::default()],
            req_phase: Phase::Handshake,
            resp_phase: Phase::Handshake,
            server_caps: 0,
            client_caps: 0,
            pending: VecDeque::new(),
            replies: VecDeque::new(),
            state: Resp::Start,
            statements: HashMap::new(),
            ready: VecDeque::new(),
            stats: MysqlStats::default(),
            packets: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MysqlStats {
        self.stats
    }

    fn deprecate_eof(&self) -> bool {
        self.server_caps & self.client_caps & CLIENT_DEPRECATE_EOF != 0
    }

    fn on_request(&mut self, p: Packet) {
        let max = self.config.max_value_bytes;
        match self.req_phase {
            Phase::Encrypted => {}
            Phase::Handshake | Phase::Auth if p.seq != 0 => {
                if self.req_phase == Phase::Handshake {
                    self.client_caps = le32(&p.body, 0);
                    // An SSLRequest is the handshake response cut after its first 32 bytes.
                    if self.client_caps & CLIENT_SSL != 0 && p.len == 32 {
                        self.req_phase = Phase::Encrypted;
                        self.resp_phase = Phase::Encrypted;
                        self.stats.encrypted = true;
                        return;
                    }
                    self.req_phase = Phase::Auth;
                }
                // Auth responses are credentials: never kept.
            }
            _ => {
                // A command (seq 0): the client only sends one after authentication.
                self.req_phase = Phase::Command;
                let Some((&cmd, rest)) = p.body.split_first() else { return };
                let mut cut = p.body.len() < p.len;
                let (body, stmt_id) = match cmd {
                    COM_QUERY | COM_STMT_PREPARE | COM_INIT_DB => (String::from_utf8_lossy(rest).into_owned(), None),
                    COM_STMT_EXECUTE | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => {
                        let id = le32(rest, 0);
                        (String::new(), Some(id))
                    }
                    _ => (String::new(), None),
                };
                let body = bounded(body, max, &mut cut);
                if cmd == COM_QUIT {
                    return;
                }
                let no_response = matches!(cmd, COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA);
                let command = Command { cmd, body, cut, ts_ns: p.first_ns, stmt_id, no_response };
                if self.pending.len() >= self.config.max_pending {
                    self.pending.pop_front();
                    self.stats.stitch.overflow_drops += 1;
                }
                self.pending.push_back(command);
            }
        }
    }

    fn on_reply(&mut self, p: Packet) {
        match self.resp_phase {
            Phase::Encrypted => {}
            Phase::Handshake => {
                // The greeting: protocol 10, version, connection id, salt, capabilities.
                if p.body.first() == Some(&10) {
                    let at = p.body.iter().skip(1).position(|&b| b == 0).map_or(p.body.len(), |n| n + 2);
                    let lower = le16(&p.body, at + 4 + 9);
                    let upper = le16(&p.body, at + 4 + 9 + 2 + 1 + 2);
                    self.server_caps = u32::from(lower) | u32::from(upper) << 16;
                }
                self.resp_phase = Phase::Auth;
            }
            Phase::Auth => {
                if matches!(p.body.first(), Some(0x00)) {
                    self.resp_phase = Phase::Command;
                }
            }
            Phase::Command => {
                if self.replies.len() >= self.config.max_pending {
                    self.replies.pop_front();
                    self.stats.stitch.overflow_drops += 1;
                }
                self.replies.push_back(p);
            }
        }
    }

    fn push_ready(&mut self, record: Record) {
        if self.ready.len() >= self.config.max_pending {
            self.ready.pop_front();
            self.stats.stitch.overflow_drops += 1;
        }
        self.ready.push_back(record);
        self.stats.stitch.records += 1;
    }

    fn finish(&mut self, status: i64, body: String, ts_ns: u64) {
        self.state = Resp::Start;
        let Some(mut command) = self.pending.pop_front() else { return };
        if let Some(text) = command.stmt_id.and_then(|id| self.statements.get(&id)) {
            command.body = text.clone();
        }
        if command.cmd == COM_STMT_CLOSE
            && let Some(id) = command.stmt_id
        {
            self.statements.remove(&id);
        }
        let body = bounded(body, self.config.max_value_bytes, &mut false);
        self.push_ready(Exchange::new(command, Response { status, body, ts_ns }));
    }

    fn pair(&mut self) {
        let deprecate = self.deprecate_eof();
        loop {
            if let Some(cmd) = self.pending.front()
                && cmd.no_response
                && self.state == Resp::Start
            {
                // Answered by nothing: done once every earlier command got its response.
                let ts = cmd.ts_ns;
                self.finish(STATUS_NONE, String::new(), ts);
                continue;
            }
            let (Some(cmd), Some(p)) = (self.pending.front(), self.replies.front()) else { return };
            if p.last_ns < cmd.ts_ns {
                self.replies.pop_front();
                self.stats.stitch.orphan_responses += 1;
                continue;
            }
            let (cmd_byte, cmd_body) = (cmd.cmd, cmd.body.clone());
            let Some(p) = self.replies.pop_front() else { return };
            let first = p.body.first().copied();
            let is_eof = first == Some(0xfe) && p.len < 9;
            let status_of_eof = le16(&p.body, 3);
            match (self.state, first) {
                (_, Some(0xff)) => {
                    // ERR: code, '#', SQL state (5), message.
                    let msg = p.body.get(3..).unwrap_or_default();
                    let msg = if msg.first() == Some(&b'#') { msg.get(6..).unwrap_or_default() } else { msg };
                    self.finish(STATUS_ERR, String::from_utf8_lossy(msg).into_owned(), p.last_ns);
                }
                (Resp::Start, Some(0x00)) if cmd_byte == COM_STMT_PREPARE => {
                    let id = le32(&p.body, 1);
                    let columns = u64::from(le16(&p.body, 5));
                    let params = u64::from(le16(&p.body, 7));
                    if self.statements.len() < MAX_STATEMENTS {
                        self.statements.insert(id, cmd_body);
                    }
                    self.state = Resp::Prepare { defs: params, eof_after: params > 0 && !deprecate, columns };
                    self.advance_prepare(p.last_ns, deprecate);
                }
                (Resp::Start, Some(0x00)) => {
                    let status = ok_status(&p.body);
                    if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        self.finish(STATUS_OK, String::new(), p.last_ns);
                    }
                }
                (Resp::Start, _) => {
                    let n = lenenc(&p.body, 0).map_or(0, |(n, _)| n);
                    self.state = Resp::Columns(n, !deprecate);
                    if n == 0 {
                        self.state = Resp::Rows(0);
                    }
                }
                (Resp::Columns(n, eof), _) => {
                    if n > 0 {
                        self.state = Resp::Columns(n - 1, eof);
                        if n == 1 && !eof {
                            self.state = Resp::Rows(0);
                        }
                    } else {
                        // The EOF after the definitions.
                        self.state = Resp::Rows(0);
                    }
                }
                (Resp::Rows(rows), Some(0xfe)) if is_eof || (deprecate && p.len < 0xff_ffff) => {
                    let status = if is_eof && !deprecate { status_of_eof } else { ok_status(&p.body) };
                    if status & SERVER_MORE_RESULTS_EXISTS == 0 {
                        self.finish(STATUS_OK, format!("Resultset rows = {rows}"), p.last_ns);
                    } else {
                        self.state = Resp::Start;
                    }
                }
                (Resp::Rows(rows), _) => self.state = Resp::Rows(rows + 1),
                (Resp::Prepare { defs, eof_after, columns }, _) => {
                    if defs > 0 {
                        self.state = Resp::Prepare { defs: defs - 1, eof_after, columns };
                    } else if eof_after && is_eof {
                        self.state = Resp::Prepare { defs: 0, eof_after: false, columns };
                    } else {
                        self.stats.stitch.orphan_responses += 1;
                    }
                    self.advance_prepare(p.last_ns, deprecate);
                }
            }
        }
    }

    /// After a prepare's packet: moves from parameter to column definitions, and ends when both are done.
    fn advance_prepare(&mut self, ts_ns: u64, deprecate: bool) {
        if let Resp::Prepare { defs: 0, eof_after: false, columns } = self.state {
            if columns == 0 {
                self.finish(STATUS_OK, String::new(), ts_ns);
            } else {
                self.state = Resp::Prepare { defs: columns, eof_after: !deprecate, columns: 0 };
            }
        }
    }

    fn lose(&mut self, side: usize) {
        if let Some(f) = self.framers.get_mut(side)
            && !f.lost
        {
            f.lost = true;
            self.stats.errors += 1;
        }
        self.stats.stitch.unanswered_requests += self.pending.len() as u64;
        self.pending.clear();
        self.replies.clear();
        self.state = Resp::Start;
    }
}

impl ConnParser for MysqlConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let i = usize::from(side == Side::Response);
        let keep = self.config.max_value_bytes.saturating_add(64);
        let mut packets = std::mem::take(&mut self.packets);
        if let Some(f) = self.framers.get_mut(i) {
            f.feed(data, ts_ns, keep, &mut packets);
        }
        self.stats.packets += packets.len() as u64;
        for p in packets.drain(..) {
            if side == Side::Request { self.on_request(p) } else { self.on_reply(p) }
        }
        self.packets = packets;
        self.pair();
    }

    fn gap(&mut self, side: Side, len: u64, _ts_ns: u64) {
        if len == 0 {
            return;
        }
        let i = usize::from(side == Side::Response);
        let Some(f) = self.framers.get_mut(i) else { return };
        if f.head.len() == 4 && (len as usize) < f.remaining {
            f.remaining -= len as usize;
            return;
        }
        if !f.head.is_empty() {
            self.stats.dropped_partial += 1;
        }
        f.head.clear();
        f.body.clear();
        self.lose(i);
    }

    fn close(&mut self, _ts_ns: u64) {
        for f in &mut self.framers {
            if !f.head.is_empty() {
                self.stats.dropped_partial += 1;
            }
            f.head.clear();
            f.body = Vec::new();
        }
        self.stats.stitch.unanswered_requests += self.pending.len() as u64;
        self.stats.stitch.orphan_responses += self.replies.len() as u64;
        self.pending.clear();
        self.replies.clear();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.framers.iter().map(|f| f.head.len() + f.body.len()).sum()
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    match b.get(at..at.saturating_add(2)) {
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

fn le32(b: &[u8], at: usize) -> u32 {
    match b.get(at..at.saturating_add(4)) {
        Some(&[a, c, d, e]) => u32::from_le_bytes([a, c, d, e]),
        _ => 0,
    }
}

/// A length-encoded integer at `at`, and the offset after it.
fn lenenc(b: &[u8], at: usize) -> Option<(u64, usize)> {
    let first = *b.get(at)?;
    let width = match first {
        0..=0xfa => return Some((u64::from(first), at + 1)),
        0xfc => 2,
        0xfd => 3,
        0xfe => 8,
        _ => return None,
    };
    let bytes = b.get(at + 1..at + 1 + width)?;
    let mut v = 0u64;
    for (i, &x) in bytes.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    Some((v, at + 1 + width))
}

/// The status flags of an OK packet (after its affected-rows and last-insert-id).
fn ok_status(b: &[u8]) -> u16 {
    let Some((_, at)) = lenenc(b, 1) else { return 0 };
    let Some((_, at)) = lenenc(b, at) else { return 0 };
    le16(b, at)
}

fn bounded(mut text: String, max: usize, cut: &mut bool) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        *cut = true;
    }
    text
}

/// Whether a connection's first captured bytes are a MySQL server's greeting: a packet with
/// sequence 0 whose payload starts with protocol version 10 and a printable version string.
pub fn looks_like_greeting(first: &[u8]) -> bool {
    match first {
        [a, b, 0, 0, 10, v, ..] => {
            let len = usize::from(*a) | usize::from(*b) << 8;
            (40..1024).contains(&len) && v.is_ascii_digit()
        }
        _ => false,
    }
}
