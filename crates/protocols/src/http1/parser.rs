//! The incremental HTTP/1.x parser for one direction of one connection.
//!
//! Owns [`StreamParser`]: buffering of partial heads (bounded by
//! [`ParseConfig::max_header_bytes`]), body framing (length, chunked, until close, none),
//! resynchronisation after garbage or capture gaps, and [`ParseStats`]. Must not touch the
//! pairing of requests with responses (see `stitch`), and does no I/O.
//!
//! How it works: bytes are consumed by a state machine. A message head is copied into a
//! bounded buffer line by line and each completed line is parsed at once, so malformed input
//! is rejected at the first bad line. When a head turns out to be garbage, its buffered bytes
//! minus the first are replayed through the start-of-message scanner, so a real message that
//! starts inside the garbage is still found; every failure drops at least one byte, so parsing
//! always terminates. Body bytes are never buffered beyond the kept prefix.

// Messages are boxed: they move from parser to queues to records and back for reuse, and a
// boxed move is a pointer where the message itself is about 180 bytes (its copies were a
// visible part of the agent's profile).
#![allow(clippy::vec_box)]

use std::collections::VecDeque;

use super::head::{self, HeaderLine, StartMatch};
use super::message::{Headers, Message, MessageKind, ParseConfig};

/// Longest chunk-size line accepted (hex size, extensions and CRLF).
const MAX_CHUNK_LINE_BYTES: usize = 1024;

/// Longest status line accepted. A reason phrase has no structure to validate, so this cap is
/// what keeps rescanning garbage like `HTTP/1.1 200 HTTP/1.1 200 …` linear in practice.
const MAX_STATUS_LINE_BYTES: usize = 512;

/// Most request methods a response parser remembers (see [`StreamParser::note_request`]).
pub const MAX_PENDING_METHODS: usize = 1024;

/// Counters kept by a [`StreamParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseStats {
    /// Complete messages emitted.
    pub messages: u64,
    /// Times the parser lost sync on malformed input (a bad head, bad chunk framing, or bytes
    /// between messages that do not start one). A run of garbage counts once.
    pub errors: u64,
    /// Bytes discarded while looking for a message start.
    pub skipped_bytes: u64,
    /// Capture gaps reported through [`StreamParser::gap`].
    pub gaps: u64,
    /// Gaps that fell inside a body of known extent, which the parser stepped over in sync.
    pub gaps_absorbed: u64,
    /// Partial messages discarded because of a gap or a close.
    pub dropped_partial: u64,
    /// Messages whose body was longer than [`ParseConfig::max_body_bytes`].
    pub truncated_bodies: u64,
}

/// Where the parser is within the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between messages, looking for the next start.
    Idle,
    /// Reading a message head into `head_buf`.
    Head,
    /// Reading a `Content-Length` body.
    Body { remaining: u64 },
    /// Reading a chunk-size line into `line_buf`.
    ChunkSize,
    /// Reading chunk data.
    ChunkData { remaining: u64 },
    /// A gap swallowed chunk framing: scanning for the next chunk-size line.
    ChunkResync,
    /// Expecting the CRLF after chunk data.
    ChunkDataEnd { seen_cr: bool },
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// Reading a body that ends when the connection closes.
    UntilClose,
}

/// The outcome of one parsing step.
enum Step {
    /// Consumed this many input bytes and can go on.
    Consumed(usize),
    /// Consumed this many bytes, then hit garbage; `replay` holds bytes to rescan first.
    Failed(usize),
}

/// How the body of a message is delimited.
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the response parser needs to know about the request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingMethod {
    Head,
    Connect,
    Other,
}

/// Incremental parser for one direction of one connection.
///
/// Feed it the stream's bytes in order with [`feed`](Self::feed); complete messages come out in
/// order. A response parser must learn which requests were `HEAD` (their responses carry no
/// body) through [`note_request`](Self::note_request); [`Http1Conn`](super::Http1Conn) does
/// this for you.
#[derive(Debug, Clone)]
pub struct StreamParser {
    kind: MessageKind,
    config: ParseConfig,
    state: State,
    /// False after garbage or a gap, until a message head parses again.
    in_sync: bool,
    /// The message being parsed.
    cur: Box<Message>,
    /// After a gap inside a body, further body bytes are counted but no longer kept.
    body_frozen: bool,
    /// A chunk found by resynchronisation is being read: if its framing breaks before its
    /// closing CRLF, the message is lost to the gap (not garbage).
    chunk_resync: bool,
    /// While resynchronising: stream bytes since the CRLF that closed the last chunk known.
    resync_region: u64,
    /// Whether bytes were scanned since the last gap (a chunk-size line right at the gap's end
    /// has no CRLF before it in the input).
    resync_scanned: bool,
    /// Size of the last chunk of this message read in sync; 0 if none.
    last_chunk: u64,
    /// While resynchronising: when the message's bytes were last seen or lost.
    resync_ts: u64,
    /// Raw bytes of the head being parsed (bounded by `max_header_bytes`).
    head_buf: Vec<u8>,
    /// Start of the incomplete line within `head_buf`.
    line_start: usize,
    start_line_done: bool,
    start_confirmed: bool,
    /// Spaces seen so far in a request line, and where its version begins.
    start_spaces: u8,
    version_at: usize,
    /// A chunk-size or trailer line being read.
    line_buf: Vec<u8>,
    trailer_bytes: usize,
    /// Bytes to rescan before the rest of the input, after a failed head.
    replay: Vec<u8>,
    pending_methods: VecDeque<PendingMethod>,
    stats: ParseStats,
    /// Emptied messages handed back by [`recycle`](Self::recycle), reused for the next
    /// messages so that steady traffic parses without allocating (at most [`MAX_SPARE_MESSAGES`]).
    spare: Vec<Box<Message>>,
}

impl StreamParser {
    /// A parser for a stream of `kind` messages.
    pub fn new(kind: MessageKind, config: ParseConfig) -> Self {
        Self {
            kind,
            config,
            state: State::Idle,
            in_sync: true,
            cur: Box::new(Message::empty(kind)),
            body_frozen: false,
            chunk_resync: false,
            resync_region: 0,
            resync_scanned: false,
            last_chunk: 0,
            resync_ts: 0,
            head_buf: Vec::new(),
            line_start: 0,
            start_line_done: false,
            start_confirmed: false,
            start_spaces: 0,
            version_at: 0,
            line_buf: Vec::new(),
            trailer_bytes: 0,
            replay: Vec::new(),
            pending_methods: VecDeque::new(),
            stats: ParseStats::default(),
            spare: Vec::new(),
        }
    }

    /// The kind of messages this parser reads.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// Counters so far.
    pub fn stats(&self) -> ParseStats {
        self.stats
    }

    /// False after garbage or a capture gap, until a message head parses again.
    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Bytes currently held for incomplete messages (head, line and kept-body buffers). Bounded
    /// by about `max_header_bytes * 2 + max_body_bytes + 1024`.
    pub fn buffered_bytes(&self) -> usize {
        self.head_buf.len() + self.line_buf.len() + self.replay.len() + self.cur.body.len()
    }

    /// Hands back a message this parser emitted, once the caller is done with it: its buffers
    /// (texts, headers, body) are reused for later messages, so that steady traffic parses
    /// without allocating. Keeps a few; the rest, and buffers grown large, are freed.
    pub fn recycle(&mut self, mut message: Box<Message>) {
        if self.spare.len() < MAX_SPARE_MESSAGES && message.kind == self.kind {
            empty_message(&mut message);
            self.spare.push(message);
        }
    }

    /// Empties the message in progress, keeping its buffers.
    fn reset_cur(&mut self) {
        empty_message(&mut self.cur);
    }

    /// Tells a response parser that a request with `method` was sent, in request order.
    ///
    /// Each final (non-1xx) response consumes one entry; a response to `HEAD` then has no body,
    /// and a 2xx response to `CONNECT` has none either. Responses with no remembered request are
    /// framed as if the request was not `HEAD`. At most [`MAX_PENDING_METHODS`] are kept (the
    /// oldest is forgotten). Has no effect on a request parser.
    pub fn note_request(&mut self, method: &str) {
        if self.kind != MessageKind::Response {
            return;
        }
        if self.pending_methods.len() >= MAX_PENDING_METHODS {
            self.pending_methods.pop_front();
        }
        self.pending_methods.push_back(match method {
            "HEAD" => PendingMethod::Head,
            "CONNECT" => PendingMethod::Connect,
            _ => PendingMethod::Other,
        });
    }

    /// Feeds the next bytes of the stream, carried by a syscall at `ts_ns`. Complete messages
    /// are pushed to `out`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) {
        let mut rest = data;
        loop {
            if !self.replay.is_empty() {
                let replay = std::mem::take(&mut self.replay);
                let consumed = self.run(&replay, ts_ns, out);
                // On failure `self.replay` holds the new bytes to rescan, which come first.
                self.replay.extend_from_slice(replay.get(consumed..).unwrap_or_default());
                continue;
            }
            if rest.is_empty() {
                break;
            }
            let consumed = self.run(rest, ts_ns, out);
            rest = rest.get(consumed..).unwrap_or_default();
        }
    }

    /// The stream lost `len` bytes (a capture gap) from data carried by a syscall at `ts_ns`;
    /// messages the gap completes are pushed to `out`.
    ///
    /// The kernel copies a bounded prefix of each syscall, so a large body usually arrives as
    /// captured bytes and gaps of known length. Missing bytes that fall inside a body of known
    /// extent are body bytes not seen, wherever they fall: a `Content-Length` body (up to and
    /// including its last byte, which completes the message), chunk data and the CRLF closing
    /// it, or a close-delimited body. `body_size` counts them, so it is the real size; the kept
    /// body stops at the first gap (see [`Message::body_truncated`]). A gap that runs past the
    /// end of a body completes that message first. A gap that swallows a chunk-size line
    /// leaves the parser expecting the next chunk-size line where the gap ends (servers write
    /// a chunk with its framing in one syscall); the lost bytes are counted in `body_size`,
    /// which then also counts the lost chunk framing, and a message whose framing does not
    /// resume is dropped. What is left of a gap outside any body drops the partial message
    /// (and, for a response parser, the remembered request methods) and the parser skips to
    /// the next plausible message start.
    pub fn gap(&mut self, len: u64, ts_ns: u64, out: &mut Vec<Box<Message>>) {
        self.stats.gaps += 1;
        let mut left = len;
        let mut absorbed = false;
        while left > 0 {
            match self.state {
                State::Body { remaining } => {
                    let n = left.min(remaining);
                    left -= n;
                    self.absorb_gap(n);
                    absorbed = true;
                    if n == remaining {
                        self.emit(ts_ns, out);
                    } else {
                        self.state = State::Body { remaining: remaining - n };
                    }
                }
                State::ChunkData { remaining } => {
                    let n = left.min(remaining);
                    left -= n;
                    self.absorb_gap(n);
                    absorbed = true;
                    self.state = if n == remaining {
                        State::ChunkDataEnd { seen_cr: false }
                    } else {
                        State::ChunkData { remaining: remaining - n }
                    };
                }
                // The CRLF closing chunk data carries no body bytes.
                State::ChunkDataEnd { seen_cr: false } => {
                    left -= 1;
                    self.state = State::ChunkDataEnd { seen_cr: true };
                }
                State::ChunkDataEnd { seen_cr: true } => {
                    left -= 1;
                    self.state = State::ChunkSize;
                }
                State::ChunkSize => {
                    // Chunk framing was lost: scan for the next chunk-size line. The region
                    // starts at the CRLF closing the last chunk read (before the first chunk,
                    // an imaginary one keeps the arithmetic uniform).
                    self.resync_region = (2 + self.line_buf.len() as u64).saturating_add(left);
                    self.resync_scanned = false;
                    self.line_buf.clear();
                    self.chunk_resync = false;
                    self.body_frozen = true;
                    self.state = State::ChunkResync;
                    self.resync_ts = ts_ns;
                    absorbed = true;
                    left = 0;
                }
                State::ChunkResync => {
                    self.resync_region = self.resync_region.saturating_add(left);
                    self.resync_scanned = false;
                    self.resync_ts = ts_ns;
                    absorbed = true;
                    left = 0;
                }
                State::UntilClose => {
                    self.absorb_gap(left);
                    absorbed = true;
                    left = 0;
                }
                State::Trailers => {
                    // The body is complete; only trailers (never kept) were lost with the rest.
                    self.line_buf.clear();
                    self.emit(ts_ns, out);
                }
                State::Idle | State::Head => break,
            }
        }
        if absorbed {
            self.stats.gaps_absorbed += 1;
        }
        if left == 0 {
            return;
        }
        if self.state != State::Idle || !self.head_buf.is_empty() {
            self.stats.dropped_partial += 1;
        }
        self.reset_partial();
        self.pending_methods.clear();
        self.in_sync = false;
    }

    /// The connection closed at `ts_ns`: a close-delimited response is complete and pushed to
    /// `out` with `ts_ns` as its timestamp (the close is what ends it), and so is a chunked
    /// message whose framing and end were lost in a gap; any other partial message is dropped. The parser is then ready for a fresh stream.
    pub fn close(&mut self, ts_ns: u64, out: &mut Vec<Box<Message>>) {
        match self.state {
            State::UntilClose => self.emit(ts_ns, out),
            // A gap swallowed the body's framing and its end: the close says it ended there.
            State::ChunkResync => self.end_resynced_message(0, out),
            State::Idle if self.head_buf.is_empty() => {}
            _ => self.stats.dropped_partial += 1,
        }
        self.reset_partial();
        self.pending_methods.clear();
        self.in_sync = true;
    }

    fn absorb_gap(&mut self, len: u64) {
        self.cur.body_size = self.cur.body_size.saturating_add(len);
        self.body_frozen = true;
    }

    /// Forgets the message in progress and any buffered bytes.
    fn reset_partial(&mut self) {
        self.state = State::Idle;
        self.reset_cur();
        self.body_frozen = false;
        self.chunk_resync = false;
        self.head_buf.clear();
        self.line_buf.clear();
        self.replay.clear();
    }

    /// Runs steps over `input` until it is consumed or a step fails; returns bytes consumed.
    fn run(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> usize {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|rest| !rest.is_empty()) {
            match self.step(rest, ts_ns, out) {
                Step::Consumed(0) => {
                    // Unreachable by construction; drop a byte rather than spin.
                    self.skip_garbage(1);
                    self.reset_partial();
                    pos += 1;
                }
                Step::Consumed(n) => pos += n,
                Step::Failed(n) => return pos + n,
            }
        }
        pos
    }

    fn step(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> Step {
        match self.state {
            State::Idle => self.step_idle(input, ts_ns, out),
            State::Head => self.step_head(input, ts_ns, out),
            State::Body { remaining } => {
                let n = self.take_body(input, remaining);
                if n as u64 == remaining {
                    self.emit(ts_ns, out);
                } else {
                    self.state = State::Body { remaining: remaining - n as u64 };
                }
                Step::Consumed(n)
            }
            State::ChunkSize => self.step_chunk_size(input),
            State::ChunkResync => self.step_chunk_resync(input, ts_ns, out),
            State::ChunkData { remaining } => {
                let n = self.take_body(input, remaining);
                self.state = if n as u64 == remaining {
                    State::ChunkDataEnd { seen_cr: false }
                } else {
                    State::ChunkData { remaining: remaining - n as u64 }
                };
                Step::Consumed(n)
            }
            State::ChunkDataEnd { seen_cr } => match input.first() {
                Some(b'\r') if !seen_cr => {
                    self.state = State::ChunkDataEnd { seen_cr: true };
                    Step::Consumed(1)
                }
                Some(b'\n') => {
                    self.state = State::ChunkSize;
                    self.chunk_resync = false;
                    Step::Consumed(1)
                }
                _ => self.fail_body(0),
            },
            State::Trailers => self.step_trailers(input, ts_ns, out),
            State::UntilClose => {
                self.append_body(input);
                Step::Consumed(input.len())
            }
        }
    }

    /// Skips blank lines and garbage up to the next message start, then reads its head.
    fn step_idle(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> Step {
        // Blank lines between messages are tolerated (RFC 9112 section 2.2).
        let blank =
            if self.in_sync { input.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(input.len()) } else { 0 };
        let rest = input.get(blank..).unwrap_or_default();
        if rest.is_empty() {
            return Step::Consumed(blank);
        }
        let Some((offset, _)) = head::find_start(self.kind, rest) else {
            self.skip_garbage(rest.len());
            return Step::Consumed(input.len());
        };
        if offset > 0 {
            self.skip_garbage(offset);
        }
        self.begin_message(ts_ns);
        let skipped = blank + offset;
        match self.step_head(rest.get(offset..).unwrap_or_default(), ts_ns, out) {
            Step::Consumed(n) => Step::Consumed(skipped + n),
            Step::Failed(n) => Step::Failed(skipped + n),
        }
    }

    fn skip_garbage(&mut self, len: usize) {
        self.stats.skipped_bytes = self.stats.skipped_bytes.saturating_add(len as u64);
        if self.in_sync {
            self.stats.errors += 1;
            self.in_sync = false;
        }
    }

    fn begin_message(&mut self, ts_ns: u64) {
        self.state = State::Head;
        self.reset_cur();
        self.cur.ts_ns = ts_ns;
        self.body_frozen = false;
        self.chunk_resync = false;
        self.last_chunk = 0;
        self.head_buf.clear();
        self.line_start = 0;
        self.start_line_done = false;
        self.start_confirmed = false;
        self.start_spaces = 0;
        self.version_at = 0;
    }

    /// Copies head bytes line by line, parsing each completed line.
    fn step_head(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> Step {
        let mut pos = 0;
        // Complete header lines parsed where they lie in `input` and not yet copied to
        // `head_buf`: the head usually completes within one input, and then its bytes are never
        // copied at all. Whatever must outlive this call (a head cut by the input's end, or
        // bytes to replay after a failure) is copied first, so `head_buf` then holds exactly
        // what it would have held had every line been copied.
        let mut uncopied = 0..0;
        // The input as text, validated once when the first line is read in place: as far as it
        // is valid UTF-8, and no further than a head can reach.
        let mut text: Option<&str> = None;
        while let Some(rest) = input.get(pos..).filter(|rest| !rest.is_empty()) {
            let (chunk, line_done) = match memchr::memchr(b'\n', rest) {
                Some(end) => (rest.get(..=end).unwrap_or(rest), true),
                None => (rest, false),
            };
            let held = self.head_buf.len() + uncopied.len();
            let room = self.config.max_header_bytes.saturating_sub(held);
            if chunk.len() > room {
                self.copy_head(input, &mut uncopied);
                let fits = chunk.get(..room).unwrap_or_default();
                self.head_buf.extend_from_slice(fits);
                pos += fits.len();
                if self.head_buf.is_empty() {
                    // Nothing fits at all (`max_header_bytes == 0`): drop the byte itself.
                    pos += 1;
                }
                return self.fail_head(pos);
            }
            if self.start_line_done && self.start_confirmed && line_done && held == self.line_start {
                // A whole header line (or the blank line ending the head), read in place: no
                // part of it came with an earlier input.
                if uncopied.start == uncopied.end {
                    uncopied = pos..pos;
                }
                let line_at = pos;
                pos += chunk.len();
                uncopied.end = pos;
                self.line_start = held + chunk.len();
                let line = chunk.strip_suffix(b"\n").unwrap_or(chunk);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let ok = if line.is_empty() {
                    match self.finish_head(ts_ns, out) {
                        Some(()) => return Step::Consumed(pos),
                        None => false,
                    }
                } else {
                    let max = self.config.max_header_bytes;
                    let text = *text.get_or_insert_with(|| valid_text_prefix(input, max));
                    match text.get(line_at..line_at + line.len()) {
                        Some(line) => add_header_fields(head::parse_header_text(line), &mut self.cur.headers),
                        None => add_header_line(line, &mut self.cur.headers),
                    }
                };
                if !ok {
                    self.copy_head(input, &mut uncopied);
                    return self.fail_head(pos);
                }
                continue;
            }
            self.copy_head(input, &mut uncopied);
            let appended_at = self.head_buf.len();
            self.head_buf.extend_from_slice(chunk);
            pos += chunk.len();
            if !self.start_line_done && !self.partial_start_line_ok(appended_at) {
                return self.fail_head(pos);
            }
            if !self.start_confirmed {
                match head::match_start(self.kind, &self.head_buf) {
                    StartMatch::Yes => self.start_confirmed = true,
                    StartMatch::Partial => {}
                    StartMatch::No => return self.fail_head(pos),
                }
            }
            if !line_done {
                break;
            }
            let line = self.head_buf.get(self.line_start..).unwrap_or_default();
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            self.line_start = self.head_buf.len();
            let ok = if !self.start_line_done {
                self.start_line_done = true;
                parse_start_line(self.kind, line, &mut self.cur)
            } else if line.is_empty() {
                return match self.finish_head(ts_ns, out) {
                    Some(()) => Step::Consumed(pos),
                    None => self.fail_head(pos),
                };
            } else {
                add_header_line(line, &mut self.cur.headers)
            };
            if !ok {
                return self.fail_head(pos);
            }
        }
        self.copy_head(input, &mut uncopied);
        Step::Consumed(pos)
    }

    /// Copies the head lines `step_head` read in place (`input[uncopied]`) to `head_buf`.
    fn copy_head(&mut self, input: &[u8], uncopied: &mut std::ops::Range<usize>) {
        if uncopied.start < uncopied.end {
            self.head_buf.extend_from_slice(input.get(uncopied.clone()).unwrap_or_default());
            *uncopied = 0..0;
        }
    }

    /// Checks the start line read so far (bytes from `appended_at` are new) can still become
    /// valid, so a false start inside garbage is rejected within a few bytes rather than at the
    /// end of a long line (which would make rescanning quadratic).
    fn partial_start_line_ok(&mut self, appended_at: usize) -> bool {
        match self.kind {
            MessageKind::Request => {
                let new = self.head_buf.get(appended_at..).unwrap_or_default();
                for (offset, &byte) in new.iter().enumerate() {
                    if byte == b' ' {
                        self.start_spaces = self.start_spaces.saturating_add(1);
                        if self.start_spaces == 2 {
                            self.version_at = appended_at + offset + 1;
                        }
                    }
                }
                match self.start_spaces {
                    0 | 1 => true,
                    2 => {
                        let version = self.head_buf.get(self.version_at..).unwrap_or_default();
                        let version = version.strip_suffix(b"\n").unwrap_or(version);
                        let version = version.strip_suffix(b"\r").unwrap_or(version);
                        version.len() <= 8 && version.iter().zip(b"HTTP/1.").all(|(a, b)| a == b)
                    }
                    _ => false,
                }
            }
            MessageKind::Response => self.head_buf.len() <= MAX_STATUS_LINE_BYTES,
        }
    }

    /// Abandons the head being read; its bytes after the first are rescanned.
    fn fail_head(&mut self, consumed: usize) -> Step {
        self.skip_garbage(1);
        self.replay.extend_from_slice(self.head_buf.get(1..).unwrap_or_default());
        self.head_buf.clear();
        self.state = State::Idle;
        self.reset_cur();
        Step::Failed(consumed)
    }

    /// Abandons a message whose body framing broke; the bytes of the line being read (which
    /// may be the start of the next message) are rescanned.
    fn fail_body(&mut self, consumed: usize) -> Step {
        if std::mem::take(&mut self.chunk_resync) {
            // Framing did not resume after a gap: the message is lost to the gap, not garbage.
            self.stats.dropped_partial += 1;
        }
        self.skip_garbage(0);
        self.replay.append(&mut self.line_buf);
        self.state = State::Idle;
        self.reset_cur();
        Step::Failed(consumed)
    }

    /// The head is complete: choose the body framing. `None` if the framing headers are bad.
    fn finish_head(&mut self, ts_ns: u64, out: &mut Vec<Box<Message>>) -> Option<()> {
        let framing = self.framing()?;
        self.head_buf.clear();
        self.in_sync = true;
        match framing {
            Framing::Empty | Framing::Length(0) => self.emit(ts_ns, out),
            Framing::Length(len) => self.state = State::Body { remaining: len },
            Framing::Chunked => {
                self.line_buf.clear();
                self.state = State::ChunkSize;
            }
            Framing::UntilClose => self.state = State::UntilClose,
        }
        Some(())
    }

    /// Body framing per RFC 9112 section 6.3.
    fn framing(&mut self) -> Option<Framing> {
        let mut content_length: Option<u64> = None;
        for value in self.cur.headers.values_of("content-length") {
            let len = parse_content_length(value)?;
            if content_length.is_some_and(|seen| seen != len) {
                return None;
            }
            content_length = Some(len);
        }
        // With several fields the last coding listed is the final one.
        let transfer_encoding = self.cur.headers.values_of("transfer-encoding").last();
        let chunked = transfer_encoding
            .map(|te| te.rsplit(',').next().is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked")));
        match self.kind {
            MessageKind::Request => match (chunked, content_length) {
                (Some(true), _) => Some(Framing::Chunked),
                // A request body with a non-chunked final coding cannot be delimited.
                (Some(false), _) => None,
                (None, Some(len)) => Some(Framing::Length(len)),
                (None, None) => Some(Framing::Empty),
            },
            MessageKind::Response => {
                let status = self.cur.status;
                let method = if status >= 200 || status == 101 { self.pending_methods.pop_front() } else { None };
                let no_body = status < 200
                    || status == 204
                    || status == 304
                    || method == Some(PendingMethod::Head)
                    || (method == Some(PendingMethod::Connect) && (200..300).contains(&status));
                Some(match (no_body, chunked, content_length) {
                    (true, _, _) => Framing::Empty,
                    (false, Some(true), _) => Framing::Chunked,
                    (false, Some(false), _) => Framing::UntilClose,
                    (false, None, Some(len)) => Framing::Length(len),
                    (false, None, None) => Framing::UntilClose,
                })
            }
        }
    }

    /// Consumes up to `remaining` body bytes from `input`; returns how many.
    fn take_body(&mut self, input: &[u8], remaining: u64) -> usize {
        let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
        self.append_body(input.get(..n).unwrap_or_default());
        n
    }

    fn append_body(&mut self, bytes: &[u8]) {
        self.cur.body_size = self.cur.body_size.saturating_add(bytes.len() as u64);
        if self.body_frozen {
            return;
        }
        let room = self.config.max_body_bytes.saturating_sub(self.cur.body.len());
        let kept = bytes.get(..room.min(bytes.len())).unwrap_or_default();
        self.cur.body.extend_from_slice(kept);
    }

    /// Reads into `line_buf` up to and including a `\n`; returns bytes consumed and whether the
    /// line is complete, or `None` if the line would exceed `limit`.
    fn read_line(&mut self, input: &[u8], limit: usize) -> Option<(usize, bool)> {
        let (chunk, done) = match input.iter().position(|&b| b == b'\n') {
            Some(end) => (input.get(..=end).unwrap_or(input), true),
            None => (input, false),
        };
        if self.line_buf.len() + chunk.len() > limit {
            return None;
        }
        self.line_buf.extend_from_slice(chunk);
        Some((chunk.len(), done))
    }

    fn step_chunk_size(&mut self, input: &[u8]) -> Step {
        let Some((n, done)) = self.read_line(input, MAX_CHUNK_LINE_BYTES) else {
            return self.fail_body(0);
        };
        if !done {
            return Step::Consumed(n);
        }
        match parse_chunk_size(&self.line_buf) {
            Some(0) => {
                self.line_buf.clear();
                self.chunk_resync = false;
                self.trailer_bytes = 0;
                self.state = State::Trailers;
                Step::Consumed(n)
            }
            Some(size) => {
                // A chunk found by resynchronisation is believed once its closing CRLF is seen.
                self.line_buf.clear();
                self.last_chunk = size;
                self.state = State::ChunkData { remaining: size };
                Step::Consumed(n)
            }
            None => self.fail_body(n),
        }
    }

    /// Scans for the next chunk boundary (CRLF, then a chunk-size line) after a gap swallowed
    /// chunk framing. At the boundary, the body bytes of the region skipped are counted and
    /// parsing resumes at the chunk-size line.
    ///
    /// A message start found instead means the message ended in what was lost: it is completed
    /// there. The region holds the lost chunks' data and framing. Servers mostly write chunks of one
    /// size: when the region is a whole number of chunks of the last size read, the data bytes
    /// are exact; otherwise the number of chunks is estimated with that size (or the region's
    /// framing is counted as body when no chunk was read yet).
    fn step_chunk_resync(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> Step {
        let at_start = !self.resync_scanned;
        self.resync_scanned = true;
        // Chunks of the last size read put the next chunk-size line at a known offset: the
        // exact resync when the server writes chunks of one size.
        let predicted = (self.last_chunk > 0)
            .then(|| {
                let per_chunk = chunk_stream_bytes(self.last_chunk);
                let into = self.resync_region.saturating_sub(2) % per_chunk;
                usize::try_from((per_chunk - into) % per_chunk).ok()
            })
            .flatten()
            .filter(|&at| chunk_line_at(input, at, self.last_chunk));
        let scanned = match predicted {
            Some(at) => Resync::Boundary(at),
            None => find_chunk_boundary(self.kind, input, at_start, self.last_chunk),
        };
        let found = match scanned {
            Resync::Boundary(at) => at,
            Resync::MessageStart(at) => {
                // The next message begins, so this one ended in what was lost, with its last
                // chunk ("0\r\n\r\n"): the usual case on keep-alive, where the read or write
                // of a response's last bytes ends with them. It completes at the time its last
                // bytes were seen or lost.
                self.end_resynced_message(at, out);
                return match at {
                    0 => self.step_idle(input, ts_ns, out),
                    n => Step::Consumed(n),
                };
            }
            Resync::NotYet => {
                // A boundary cut by the end of the input is missed; the next one will do.
                self.resync_region = self.resync_region.saturating_add(input.len() as u64);
                self.resync_ts = ts_ns;
                return Step::Consumed(input.len());
            }
        };
        // The CRLF closing the last lost chunk belongs to the region.
        let skip_crlf = if input.get(found..found + 2) == Some(b"\r\n") { 2 } else { 0 };
        let region = self.resync_region.saturating_add((found + skip_crlf) as u64);
        self.absorb_gap(resync_data_bytes(region, self.last_chunk));
        self.resync_region = 0;
        self.state = State::ChunkSize;
        self.line_buf.clear();
        self.chunk_resync = true;
        match found + skip_crlf {
            // A step must consume something: read the chunk-size line now.
            0 => self.step_chunk_size(input),
            n => Step::Consumed(n),
        }
    }

    /// Completes a message whose chunk framing was lost in a gap and whose end was lost too
    /// (`seen` more bytes of it were scanned): the region less the last chunk (`0\r\n\r\n`)
    /// is counted as chunks, and the message ends when its bytes were last seen or lost.
    fn end_resynced_message(&mut self, seen: usize, out: &mut Vec<Box<Message>>) {
        let region = self.resync_region.saturating_add(seen as u64).saturating_sub(5);
        self.absorb_gap(resync_data_bytes(region, self.last_chunk));
        self.resync_region = 0;
        let end_ts = self.resync_ts;
        self.emit(end_ts, out);
    }

    fn step_trailers(&mut self, input: &[u8], ts_ns: u64, out: &mut Vec<Box<Message>>) -> Step {
        let limit = self.config.max_header_bytes.saturating_sub(self.trailer_bytes);
        let Some((n, done)) = self.read_line(input, limit) else {
            return self.fail_body(0);
        };
        if !done {
            return Step::Consumed(n);
        }
        let line = self.line_buf.as_slice();
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.line_buf.clear();
            self.emit(ts_ns, out);
            return Step::Consumed(n);
        }
        // Trailers are validated (to notice lost framing) but not kept.
        if !matches!(head::parse_header_line(line), Some(HeaderLine::Field(..))) {
            return self.fail_body(n);
        }
        self.trailer_bytes += self.line_buf.len();
        self.line_buf.clear();
        Step::Consumed(n)
    }

    /// Pushes the current message; a response takes `ts_ns` (its last byte) as its timestamp.
    fn emit(&mut self, ts_ns: u64, out: &mut Vec<Box<Message>>) {
        let next = self.spare.pop().unwrap_or_else(|| Box::new(Message::empty(self.kind)));
        let mut message = std::mem::replace(&mut self.cur, next);
        if self.kind == MessageKind::Response {
            message.ts_ns = ts_ns;
        }
        if message.body_size > message.body.len() as u64 {
            self.stats.truncated_bodies += 1;
        }
        self.stats.messages += 1;
        self.state = State::Idle;
        self.body_frozen = false;
        self.chunk_resync = false;
        out.push(message);
    }
}

/// Most emptied messages a parser keeps for reuse: one in flight and one being turned into a
/// row is the steady state; pipelining needs more only briefly.
const MAX_SPARE_MESSAGES: usize = 4;
/// Buffers that grew past this are freed rather than kept for reuse, so that one huge head
/// does not stay resident for the connection's life.
const MAX_SPARE_CAPACITY: usize = 1024;
/// Most header fields whose spans a reused message keeps room for.
const MAX_SPARE_FIELDS: usize = 64;

/// Empties `message` for reuse (as [`Message::empty`] makes it), keeping its buffers unless they
/// grew large.
fn empty_message(message: &mut Message) {
    let Message { kind: _, minor_version, method, path, status, reason, headers, body, body_size, ts_ns } = message;
    *minor_version = 1;
    *status = 0;
    *body_size = 0;
    *ts_ns = 0;
    for text in [method, path, reason] {
        text.clear();
        if text.capacity() > MAX_SPARE_CAPACITY {
            *text = String::new();
        }
    }
    body.clear();
    if body.capacity() > MAX_SPARE_CAPACITY {
        *body = Vec::new();
    }
    let (text, fields) = headers.capacity();
    if text > MAX_SPARE_CAPACITY * 4 || fields > MAX_SPARE_FIELDS {
        *headers = Headers::new();
    } else {
        headers.clear();
    }
}

/// Parses the start line into `message`; false if it is not one.
fn parse_start_line(kind: MessageKind, line: &[u8], message: &mut Message) -> bool {
    match kind {
        MessageKind::Request => match head::parse_request_line(line) {
            Some(request) => {
                message.method.clear();
                message.method.push_str(&request.method);
                message.path.clear();
                message.path.push_str(&request.path);
                message.minor_version = request.minor_version;
                true
            }
            None => false,
        },
        MessageKind::Response => match head::parse_status_line(line) {
            Some(status) => {
                message.status = status.status;
                message.reason.clear();
                message.reason.push_str(&status.reason);
                message.minor_version = status.minor_version;
                true
            }
            None => false,
        },
    }
}

/// Adds a header line (a field, or a folded continuation of the last one); false if invalid.
fn add_header_line(line: &[u8], headers: &mut Headers) -> bool {
    add_header_fields(head::parse_header_line(line), headers)
}

/// Adds a parsed header line; false if it was invalid.
fn add_header_fields(parsed: Option<HeaderLine<'_>>, headers: &mut Headers) -> bool {
    match parsed {
        Some(HeaderLine::Field(name, value)) => {
            headers.push(&name, &value);
            true
        }
        Some(HeaderLine::Continuation(more)) => headers.continue_last(&more),
        None => false,
    }
}

/// The longest prefix of `input`, up to `max` bytes, that is valid UTF-8.
fn valid_text_prefix(input: &[u8], max: usize) -> &str {
    let bounded = input.get(..max.min(input.len())).unwrap_or_default();
    match std::str::from_utf8(bounded) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(bounded.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default(),
    }
}

/// Parses a Content-Length value; a list of identical values (`5, 5`) is accepted.
fn parse_content_length(value: &str) -> Option<u64> {
    let mut result = None;
    for part in value.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u64 = part.parse().ok()?;
        if result.is_some_and(|seen| seen != len) {
            return None;
        }
        result = Some(len);
    }
    result
}

/// What a resynchronisation scan found.
enum Resync {
    /// A chunk boundary starts here: `\r\n` then a chunk-size line, or the line itself at 0.
    Boundary(usize),
    /// The next message starts here (after a line end, or at 0).
    MessageStart(usize),
    /// Neither, in this input.
    NotYet,
}

/// Where in `input` a chunk boundary starts: `\r\n` then a complete chunk-size line (or, with
/// `at_start`, a chunk-size line at offset 0). When the input holds the end of the chunk it
/// announces, the CRLF after its data must be there, which rejects most false boundaries
/// inside body data; otherwise a size larger than `last_chunk` (when known) is not believed.
/// A message start at a line start ends the scan.
fn find_chunk_boundary(kind: MessageKind, input: &[u8], at_start: bool, last_chunk: u64) -> Resync {
    let message_at =
        |from: usize| input.get(from..).is_some_and(|rest| head::match_start(kind, rest) == StartMatch::Yes);
    let line_ok = |from: usize| chunk_line_at(input, from, last_chunk);
    if at_start && line_ok(0) {
        return Resync::Boundary(0);
    }
    // A read or write often begins with the next message (keep-alive), gap or not.
    if message_at(0) {
        return Resync::MessageStart(0);
    }
    let mut from = 0;
    while let Some(offset) = input.get(from..).and_then(|rest| rest.windows(2).position(|w| w == b"\r\n")) {
        let at = from + offset;
        if line_ok(at + 2) {
            return Resync::Boundary(at);
        }
        if message_at(at + 2) {
            return Resync::MessageStart(at + 2);
        }
        from = at + 1;
    }
    Resync::NotYet
}

/// Whether a plausible chunk-size line starts at `input[from]`: complete, and followed by its
/// data and CRLF when the input holds them (for the last chunk, by the CRLF ending the
/// trailers); else no larger than `last_chunk` when that is known (servers write chunks of one
/// size, the last one smaller).
fn chunk_line_at(input: &[u8], from: usize, last_chunk: u64) -> bool {
    let Some(rest) = input.get(from..).filter(|r| r.first().is_some_and(u8::is_ascii_hexdigit)) else {
        return false;
    };
    let window = rest.get(..MAX_CHUNK_LINE_BYTES.min(rest.len())).unwrap_or_default();
    let Some(end) = window.iter().position(|&b| b == b'\n') else { return false };
    let Some(line) = rest.get(..=end) else { return false };
    let Some(size) = parse_chunk_size(line) else { return false };
    let after_line = from + end + 1;
    if size == 0 {
        // "0" is also the tail of many a cut size line ("200"): believe it only with the
        // empty line ending the trailers after it, or nothing after it.
        return input.get(after_line..after_line + 2).is_none_or(|next| next == b"\r\n");
    }
    let data_end = usize::try_from(size).ok().and_then(|s| after_line.checked_add(s));
    match data_end.and_then(|e| input.get(e..e.saturating_add(2))) {
        Some(crlf) => crlf == b"\r\n",
        None => last_chunk == 0 || size <= last_chunk,
    }
}

/// Stream bytes of a chunk of `size` data bytes: "<hex>\r\n<data>\r\n".
fn chunk_stream_bytes(size: u64) -> u64 {
    size.saturating_add(u64::from((64 - size.leading_zeros()).div_ceil(4).max(1)) + 4)
}

/// Data bytes in a resync region of `region` stream bytes (from the CRLF closing the last chunk
/// read up to the next chunk-size line), given the last chunk size read (0 if none).
///
/// Servers write chunks of one size, the last one of a body smaller: the region is read as
/// whole chunks of `last_chunk` bytes plus at most one smaller chunk, which is exact when that
/// is what was sent. Otherwise it is an estimate (the framing of about that many chunks is
/// taken off), or the region's bytes when no chunk was read yet.
fn resync_data_bytes(region: u64, last_chunk: u64) -> u64 {
    let body = region.saturating_sub(2);
    if last_chunk == 0 {
        return body;
    }
    let framing = |size: u64| chunk_stream_bytes(size) - size;
    let per_chunk = chunk_stream_bytes(last_chunk);
    let whole = body / per_chunk;
    let rest = body % per_chunk;
    if rest == 0 {
        return whole.saturating_mul(last_chunk);
    }
    // The rest as one smaller chunk: `rest == size + framing(size)` for some size.
    let smaller = (5..=20u64).filter_map(|f| rest.checked_sub(f)).find(|&size| size + framing(size) == rest);
    match smaller {
        Some(size) => whole.saturating_mul(last_chunk).saturating_add(size),
        None => {
            let chunks = body.saturating_add(per_chunk / 2) / per_chunk;
            body.saturating_sub(chunks.max(1).saturating_mul(framing(last_chunk)))
        }
    }
}

/// Parses a chunk-size line (`1a;ext=1\r\n`) into the size.
fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let size = line.split(|&b| b == b';').next().unwrap_or_default();
    let size = head::trim_ows(size);
    if size.is_empty() || size.len() > 16 {
        return None;
    }
    let mut value: u64 = 0;
    for &digit in size {
        let nibble = char::from(digit).to_digit(16)?;
        value = value.checked_mul(16)?.checked_add(u64::from(nibble))?;
    }
    Some(value)
}

#[cfg(test)]
mod tests;
