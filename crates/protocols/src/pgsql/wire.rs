//! The incremental framer for one direction of one PostgreSQL connection (protocol 3.0).
//!
//! Owns [`WireParser`]: the untyped messages of the startup phase (StartupMessage, SSLRequest,
//! GSSENCRequest, CancelRequest; `int32 length, int32 code`), the server's one-byte answers to the
//! encryption requests (`N`, `S`, `G`), typed messages (`tag, int32 length, body`), stepping over
//! capture gaps inside a body, resynchronisation after garbage, and [`WireStats`]. Must not touch
//! what a message means or pairing (see `conn`), and does no I/O.
//!
//! Memory is bounded whatever the input: a header is at most 8 bytes and a message keeps at most
//! `max_keep` bytes of its body (the rest is counted and skipped, never buffered), so a 1 GB
//! `DataRow` costs nothing.

use crate::conn_parser::Side;

/// Largest message length accepted (PostgreSQL's own limit on a field is 1 GB).
const MAX_MESSAGE_LEN: u32 = 0x4000_0000;
/// Largest startup-phase packet (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP_LEN: u32 = 10_000;

/// The code of a StartupMessage for protocol 3.0 (`3 << 16`).
pub const PROTOCOL_3: u32 = 196_608;
/// The code of a CancelRequest.
pub const CANCEL_REQUEST: u32 = 80_877_102;
/// The code of an SSLRequest.
pub const SSL_REQUEST: u32 = 80_877_103;
/// The code of a GSSENCRequest.
pub const GSSENC_REQUEST: u32 = 80_877_104;

/// Tags a client sends (Bind, Close, CopyData/Done/Fail, Describe, Execute, Flush, FunctionCall,
/// password and SASL messages, Parse, Query, Sync, Terminate).
const FRONTEND_TAGS: &[u8] = b"BCdcfDEHFpPQSX";
/// Tags a server sends.
const BACKEND_TAGS: &[u8] = b"RK23CdcGHWDIEVvnNAtS1sZT";

/// What one framed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A typed message and its tag byte.
    Typed(u8),
    /// A startup-phase packet (request side) and its code: [`PROTOCOL_3`] (or another
    /// `major << 16 | minor`), [`SSL_REQUEST`], [`GSSENC_REQUEST`] or [`CANCEL_REQUEST`].
    Startup(u32),
    /// The server's one-byte answer to an encryption request: `N` (go on in the clear), `S`
    /// (TLS follows) or `G` (GSSAPI encryption follows).
    Answer(u8),
}

/// One complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// What it is.
    pub kind: Kind,
    /// The body (after tag and length; for a startup packet, after the code), at most the
    /// parser's `max_keep` bytes.
    pub body: Vec<u8>,
    /// Body bytes are missing: cut to `max_keep` or lost in a gap.
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

/// Counters kept by a [`WireParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Complete messages emitted.
    pub messages: u64,
    /// Times the parser lost sync on malformed input; a run of garbage counts once.
    pub errors: u64,
    /// Bytes discarded while looking for a message start.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Gaps inside a body, stepped over in sync.
    pub gaps_absorbed: u64,
    /// Partial messages discarded because of garbage, a gap or a close.
    pub dropped_partial: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Untyped startup packets may come (request side) or one-byte answers (response side).
    Startup,
    /// Typed messages only.
    Typed,
    /// The connection switched to TLS or GSSAPI encryption: nothing more can be read.
    Encrypted,
}

#[derive(Debug, Clone)]
enum State {
    /// Collecting a header into `head`.
    Header,
    /// Reading a body: `remaining` bytes still to come.
    Body { kind: Kind, remaining: u64 },
    /// Lost sync: bytes are dropped until a feed starts with a valid header.
    Resync,
}

/// Incremental framer for one direction of one connection.
#[derive(Debug, Clone)]
pub struct WireParser {
    side: Side,
    max_keep: usize,
    mode: Mode,
    state: State,
    head: Vec<u8>,
    body: Vec<u8>,
    cut: bool,
    first_ns: u64,
    /// The last startup packet was an encryption request: TLS may follow on this side.
    asked_encryption: bool,
    stats: WireStats,
}

impl WireParser {
    /// A framer for the `side` direction keeping at most `max_keep` bytes of each body.
    pub fn new(side: Side, max_keep: usize) -> Self {
        Self {
            side,
            max_keep,
            mode: Mode::Startup,
            state: State::Header,
            head: Vec::with_capacity(8),
            body: Vec::new(),
            cut: false,
            first_ns: 0,
            asked_encryption: false,
            stats: WireStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> WireStats {
        self.stats
    }

    /// True once the connection switched to encryption: the rest of this side is opaque.
    pub fn encrypted(&self) -> bool {
        self.mode == Mode::Encrypted
    }

    /// Marks this side opaque (the other side saw the switch to encryption).
    pub fn set_encrypted(&mut self) {
        if self.mode != Mode::Encrypted {
            self.mode = Mode::Encrypted;
            self.drop_partial();
            self.state = State::Header;
        }
    }

    /// False while resynchronising after garbage or a gap.
    pub fn in_sync(&self) -> bool {
        !matches!(self.state, State::Resync)
    }

    /// Bytes held for the message being read: at most 8 + `max_keep`.
    pub fn buffered_bytes(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Feeds the next bytes of the stream, captured at `ts_ns`; complete messages go to `out`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<Message>) {
        if self.mode == Mode::Encrypted {
            return;
        }
        let mut rest = data;
        if matches!(self.state, State::Resync) {
            // Resynchronise only where a capture starts (a syscall's first bytes usually start a
            // message) and only on a header that is valid for this side.
            if !self.valid_typed_header(rest) {
                self.stats.skipped_bytes += rest.len() as u64;
                return;
            }
            self.mode = Mode::Typed;
            self.state = State::Header;
        }
        while !rest.is_empty() && self.mode != Mode::Encrypted {
            let used = match std::mem::replace(&mut self.state, State::Header) {
                State::Header => self.read_header(rest, ts_ns, out),
                State::Body { kind, remaining } => self.read_body(rest, kind, remaining, ts_ns, out),
                State::Resync => {
                    self.state = State::Resync;
                    self.stats.skipped_bytes += rest.len() as u64;
                    rest.len()
                }
            };
            rest = rest.get(used..).unwrap_or_default();
        }
    }

    /// The stream lost `len` bytes. Inside a body the parser steps over them (the message is
    /// marked cut); anywhere else the partial message is dropped and the parser resynchronises.
    pub fn gap(&mut self, len: u64, _ts_ns: u64) {
        if len == 0 || self.mode == Mode::Encrypted {
            return;
        }
        self.stats.gaps += 1;
        if let State::Body { remaining, .. } = &mut self.state
            && len < *remaining
        {
            *remaining -= len;
            self.cut = true;
            self.stats.gaps_absorbed += 1;
            return;
        }
        // A gap that ends exactly with the body also loses sync: what follows may be anything.
        self.drop_partial();
        self.state = State::Resync;
    }

    /// The connection closed: a partial message is dropped.
    pub fn close(&mut self) {
        self.drop_partial();
        self.state = State::Header;
    }

    fn drop_partial(&mut self) {
        if !self.head.is_empty() || matches!(self.state, State::Body { .. }) {
            self.stats.dropped_partial += 1;
        }
        self.head.clear();
        self.body = Vec::new();
        self.cut = false;
    }

    fn lose_sync(&mut self) {
        self.stats.errors += 1;
        self.drop_partial();
        self.state = State::Resync;
    }

    fn tags(&self) -> &'static [u8] {
        match self.side {
            Side::Request => FRONTEND_TAGS,
            Side::Response => BACKEND_TAGS,
        }
    }

    /// `bytes` start with a typed header valid on this side (as far as they go).
    fn valid_typed_header(&self, bytes: &[u8]) -> bool {
        let Some(&tag) = bytes.first() else { return false };
        if !self.tags().contains(&tag) {
            return false;
        }
        match bytes.get(1..5) {
            Some(&[a, b, c, d]) => (4..=MAX_MESSAGE_LEN).contains(&u32::from_be_bytes([a, b, c, d])),
            _ => true,
        }
    }

    /// Collects a header; returns the bytes used.
    fn read_header(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<Message>) -> usize {
        if self.head.is_empty() {
            self.first_ns = ts_ns;
        }
        let Some(&first) = self.head.first().or(data.first()) else { return 0 };
        let need = match (self.mode, self.side) {
            (Mode::Startup, Side::Request) if first == 0 => 8,
            (Mode::Startup, Side::Request) if first == 0x16 && self.asked_encryption => {
                // A TLS record after an SSLRequest: the client switched to TLS.
                self.mode = Mode::Encrypted;
                return data.len();
            }
            (Mode::Startup, Side::Response) if matches!(first, b'N' | b'S' | b'G') => 2,
            _ => 5,
        };
        let take = (need - self.head.len()).min(data.len());
        self.head.extend_from_slice(data.get(..take).unwrap_or_default());
        if self.head.len() < need {
            return take;
        }
        let head = std::mem::take(&mut self.head);
        match (self.mode, self.side, need) {
            (Mode::Startup, Side::Request, 8) => {
                let len = be32(head.get(0..4));
                let code = be32(head.get(4..8));
                let known = code >> 16 == 3 || matches!(code, SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST);
                if !(8..=MAX_STARTUP_LEN).contains(&len) || !known {
                    self.lose_sync();
                    return take;
                }
                self.asked_encryption = matches!(code, SSL_REQUEST | GSSENC_REQUEST);
                if code >> 16 == 3 {
                    self.mode = Mode::Typed;
                }
                self.start_body(Kind::Startup(code), u64::from(len - 8), ts_ns, out);
                take
            }
            (Mode::Startup, Side::Response, 2) => {
                // A notice during startup has a length whose first byte is 0; an answer is
                // followed by the next message's tag.
                if head.get(1).is_some_and(|&b| b != 0) {
                    self.emit(Kind::Answer(first), ts_ns, out);
                    if matches!(first, b'S' | b'G') {
                        self.mode = Mode::Encrypted;
                        return data.len();
                    }
                    // The second byte starts the next message: give it back.
                    return take - 1;
                }
                // A typed message after all: keep the two bytes and read the rest of the header.
                self.mode = Mode::Typed;
                self.head = head;
                take
            }
            _ => {
                let len = be32(head.get(1..5));
                if !self.tags().contains(&first) || !(4..=MAX_MESSAGE_LEN).contains(&len) {
                    self.lose_sync();
                    return take;
                }
                self.mode = Mode::Typed;
                self.start_body(Kind::Typed(first), u64::from(len - 4), ts_ns, out);
                take
            }
        }
    }

    fn start_body(&mut self, kind: Kind, len: u64, ts_ns: u64, out: &mut Vec<Message>) {
        if len == 0 {
            self.emit(kind, ts_ns, out);
        } else {
            self.state = State::Body { kind, remaining: len };
        }
    }

    fn read_body(&mut self, data: &[u8], kind: Kind, remaining: u64, ts_ns: u64, out: &mut Vec<Message>) -> usize {
        let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(data.len());
        let room = self.max_keep.saturating_sub(self.body.len()).min(n);
        self.body.extend_from_slice(data.get(..room).unwrap_or_default());
        if room < n {
            self.cut = true;
        }
        let remaining = remaining - n as u64;
        if remaining == 0 {
            self.emit(kind, ts_ns, out);
        } else {
            self.state = State::Body { kind, remaining };
        }
        n
    }

    fn emit(&mut self, kind: Kind, ts_ns: u64, out: &mut Vec<Message>) {
        self.stats.messages += 1;
        out.push(Message {
            kind,
            body: std::mem::take(&mut self.body),
            cut: std::mem::take(&mut self.cut),
            first_ns: self.first_ns,
            last_ns: ts_ns,
        });
        self.state = State::Header;
    }
}

fn be32(bytes: Option<&[u8]>) -> u32 {
    match bytes {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// Whether a connection's first captured bytes are a PostgreSQL client's: a startup-phase packet
/// (StartupMessage for protocol 3, SSLRequest, GSSENCRequest, CancelRequest) or a simple `Query`
/// whose text starts with a letter (a capture that began mid-connection).
pub fn looks_like_request(first: &[u8]) -> bool {
    match first {
        [0, _, _, _, _, _, _, _, ..] => {
            let len = be32(first.get(0..4));
            let code = be32(first.get(4..8));
            (8..=MAX_STARTUP_LEN).contains(&len)
                && (code == PROTOCOL_3 || matches!(code, SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST))
        }
        [b'Q', 0, _, _, _, c, ..] => {
            let len = be32(first.get(1..5));
            (6..MAX_MESSAGE_LEN).contains(&len) && (c.is_ascii_alphabetic() || *c == b'(' || c.is_ascii_whitespace())
        }
        _ => false,
    }
}
