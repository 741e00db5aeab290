//! One HTTP/2 connection: frames of each direction, header blocks through each direction's HPACK
//! decoder, and streams paired into [`Record`]s by stream id.
//!
//! Owns framing (RFC 9113 §4, §6), stream bookkeeping and [`Http2Conn`], the [`ConnParser`] of
//! the protocol. Must not touch HPACK internals (see `hpack`) or rows.
//!
//! Bytes are streamed, never held whole: a frame's header (9 bytes), a header block (bounded by
//! [`Http2Config::max_block_bytes`]) and each stream's kept headers and body prefix are all that
//! is buffered; the number of open streams is bounded by [`Http2Config::max_streams`].

use std::collections::{BTreeMap, VecDeque};

use super::hpack::Decoder;
use crate::conn_parser::{ConnParser, Side};
use crate::http1::{Message, MessageKind, ParseConfig};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Header name of the mark a message gets when header fields could not be decoded (HPACK
/// references to table entries sent before the capture started, or a header block lost in a
/// gap). Its value says how many fields are missing (`lost` when the whole block is).
pub const UNRESOLVED_HEADER: &str = ":loupe-unresolved";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY_FLAG: u8 = 0x20;

/// The largest frame accepted when finding a frame boundary without context (the protocol's
/// default `SETTINGS_MAX_FRAME_SIZE`): conservative, so a resync lands on a real frame.
const RESYNC_MAX_FRAME: usize = 16_384;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    /// Body bytes kept per message (the rest is counted in `body_size`), as for HTTP/1.
    pub max_body_bytes: usize,
    /// Header bytes (names and values, trailers included) kept per message, as for HTTP/1.
    pub max_header_bytes: usize,
    /// Largest HPACK dynamic table accepted per direction (HPACK accounting, RFC 7541 §4.1); a
    /// larger table size update makes the decoder give up its table.
    pub max_table_size: usize,
    /// Largest header block (HEADERS plus CONTINUATION payloads) decoded; a larger one is
    /// dropped and the direction's table is no longer trusted.
    pub max_block_bytes: usize,
    /// Streams tracked at once; the oldest is dropped beyond this.
    pub max_streams: usize,
    /// Finished records waiting to be drained.
    pub max_ready: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Self::from(ParseConfig::default())
    }
}

impl From<ParseConfig> for Http2Config {
    fn from(p: ParseConfig) -> Self {
        Self {
            max_body_bytes: p.max_body_bytes,
            max_header_bytes: p.max_header_bytes,
            max_table_size: 65_536,
            max_block_bytes: 65_536,
            max_streams: 128,
            max_ready: crate::stitch::DEFAULT_MAX_PENDING,
        }
    }
}

/// A request paired with its response on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The stream id.
    pub stream_id: u32,
    /// The request: `method` from `:method`, `path` from `:path`, every field (pseudo-headers
    /// and trailers included) in `headers`; `minor_version` 0.
    pub req: Message,
    /// The response: `status` from `:status`, headers then trailers (`grpc-status`,
    /// `grpc-message`) in `headers`.
    pub resp: Message,
    /// Response end minus request start, saturating at 0.
    pub latency_ns: u64,
    /// Some header fields could not be decoded; the messages carry [`UNRESOLVED_HEADER`].
    pub unresolved: bool,
}

/// Counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Http2Stats {
    /// Frames read, both directions.
    pub frames: u64,
    /// Records produced.
    pub records: u64,
    /// Framing or HPACK errors (each loses the direction's table or framing).
    pub errors: u64,
    /// Times a direction lost its framing at a capture gap (or started mid-frame).
    pub lost_sync: u64,
    /// Header blocks with fields that could not be decoded (marked, not guessed).
    pub unresolved_blocks: u64,
    /// Streams dropped without a complete exchange (reset, or left at close).
    pub unpaired: u64,
    /// Streams or records dropped because a bound was reached.
    pub overflow: u64,
    /// Bytes skipped while looking for a frame boundary.
    pub skipped_bytes: u64,
}

/// Where a direction is in its byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing seen yet: a preface, a frame, or something mid-frame.
    Start,
    /// Inside the client preface, `n` bytes matched.
    Preface(usize),
    /// Reading a frame header.
    Header,
    /// Inside a frame's payload.
    Payload,
    /// Framing lost: waiting for a piece that starts with a frame header.
    Lost,
}

#[derive(Debug, Clone, Copy, Default)]
struct FrameHead {
    len: usize,
    ty: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(h: &[u8; 9]) -> Self {
        let [l0, l1, l2, ty, flags, s0, s1, s2, s3] = *h;
        Self {
            len: usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2),
            ty,
            flags,
            stream: u32::from_be_bytes([s0 & 0x7f, s1, s2, s3]),
        }
    }

    /// Whether this header is a plausible frame when there is no context to trust: a known type
    /// with its flags, stream and length rules (RFC 9113 §6), and no reserved bit.
    fn plausible(raw: &[u8; 9]) -> bool {
        let f = Self::parse(raw);
        if raw[5] & 0x80 != 0 || f.len > RESYNC_MAX_FRAME {
            return false;
        }
        let on_stream = f.stream != 0;
        match f.ty {
            DATA => on_stream && f.flags & !(END_STREAM | PADDED) == 0,
            HEADERS => on_stream && f.flags & !(END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG) == 0,
            PRIORITY => on_stream && f.len == 5 && f.flags == 0,
            RST_STREAM => on_stream && f.len == 4 && f.flags == 0,
            SETTINGS => !on_stream && f.len.is_multiple_of(6) && f.flags & !ACK == 0 && (f.flags == 0 || f.len == 0),
            PUSH_PROMISE => on_stream && f.flags & !(END_HEADERS | PADDED) == 0 && f.len >= 4,
            PING => !on_stream && f.len == 8 && f.flags & !ACK == 0,
            GOAWAY => !on_stream && f.len >= 8 && f.flags == 0,
            WINDOW_UPDATE => f.len == 4 && f.flags == 0,
            // A CONTINUATION continues a block we did not see: no use starting there.
            _ => false,
        }
    }
}

/// Whether `first` (the first captured bytes of one direction) is HTTP/2: the client preface, or
/// a SETTINGS frame (the first frame a server sends), or, for a connection met mid-way (the agent
/// started after its preface), a header block `mid_connection_headers` recognises.
/// `Some(true)` for the client side.
pub fn looks_like(first: &[u8]) -> Option<bool> {
    let n = first.len().min(PREFACE.len());
    if n >= 8 && first.get(..n) == PREFACE.get(..n) {
        return Some(true);
    }
    let raw: &[u8; 9] = first.get(..9)?.try_into().ok()?;
    let f = FrameHead::parse(raw);
    if f.ty == SETTINGS && f.flags == 0 && FrameHead::plausible(raw) {
        return Some(false);
    }
    mid_connection_headers(first, raw, &f)
}

/// A HEADERS frame met mid-connection: END_HEADERS set, on a client-initiated (odd) stream, at
/// most 16 KiB (the default largest frame), its header block starting with a pseudo-header of
/// HPACK's static table, indexed or as a literal's name, after at most a run of dynamic-table
/// entries (gRPC's C core sends `:path` and `:authority` from the table first), within the first
/// 16 bytes: `:authority`, `:method`, `:path` or `:scheme` (indices 1 to 7) start a request
/// (`Some(true)`), `:status` (8 to 14) a response. Every implementation sends the pseudo-headers
/// first (RFC 9113 §8.3). The kernel's first-bytes test (`is_http2_midway` in `crates/bpf/c`)
/// checks the same bytes, and waits past PING and WINDOW_UPDATE frames.
/// `raw` is `first`'s frame header, `f` that header parsed.
fn mid_connection_headers(first: &[u8], raw: &[u8; 9], f: &FrameHead) -> Option<bool> {
    if f.ty != HEADERS
        || f.flags & END_HEADERS == 0
        || !FrameHead::plausible(raw)
        || f.stream.is_multiple_of(2)
        || f.len == 0
    {
        return None;
    }
    let at = 9 + usize::from(f.flags & PADDED != 0) + if f.flags & PRIORITY_FLAG != 0 { 5 } else { 0 };
    let end = first.len().min(16).min(9 + f.len);
    for &b in first.get(at..end)? {
        match static_name_index(b) {
            Some(1..=7) => return Some(true),
            Some(_) => return Some(false),
            None if b >= 0xbe => {} // a dynamic-table entry (index 62 and up)
            None => return None,
        }
    }
    None
}

/// The static-table index a header block's first byte names, when it names one in that byte: an
/// indexed field (7-bit index), or a literal with an indexed name (6-bit, or 4-bit prefix).
fn static_name_index(b: u8) -> Option<u8> {
    let index = match b {
        0x80.. => b & 0x7f,
        0x40..=0x7f => b & 0x3f,
        0x20..=0x3f => return None, // a dynamic table size update
        _ => b & 0x0f,              // literal without indexing (0x0_) or never indexed (0x1_)
    };
    (1..=14).contains(&index).then_some(index)
}

/// One direction's framing and HPACK state.
#[derive(Debug, Clone)]
struct Dir {
    side: Side,
    state: State,
    head: [u8; 9],
    head_len: usize,
    frame: FrameHead,
    /// Payload bytes of the current frame not read yet.
    remaining: usize,
    /// When the current frame's header started.
    frame_ts: u64,
    /// Payload kept for frames that need it (header block fragments, RST_STREAM).
    payload: Vec<u8>,
    /// The current frame's payload did not fit (or lost bytes in a gap).
    payload_lost: bool,
    /// DATA: whether the pad length byte was read, and data bytes left before the padding.
    pad_read: bool,
    data_left: usize,
    /// The header block in progress (HEADERS or PUSH_PROMISE plus CONTINUATIONs).
    block: Vec<u8>,
    block_open: bool,
    block_stream: u32,
    block_end_stream: bool,
    block_push: bool,
    block_lost: bool,
    block_ts: u64,
    decoder: Decoder,
}

impl Dir {
    fn new(side: Side, config: &Http2Config) -> Self {
        Self {
            side,
            state: State::Start,
            head: [0; 9],
            head_len: 0,
            frame: FrameHead::default(),
            remaining: 0,
            frame_ts: 0,
            payload: Vec::new(),
            payload_lost: false,
            pad_read: false,
            data_left: 0,
            block: Vec::new(),
            block_open: false,
            block_stream: 0,
            block_end_stream: false,
            block_push: false,
            block_lost: false,
            block_ts: 0,
            decoder: Decoder::new(config.max_table_size, false),
        }
    }

    fn buffered(&self) -> usize {
        self.payload.capacity() + self.block.capacity() + self.decoder.table_size()
    }

    /// Framing is lost: the table may have missed insertions, an open block is gone.
    fn lose_sync(&mut self, streams: &mut Streams) {
        self.state = State::Lost;
        self.head_len = 0;
        self.decoder.lose_context();
        if self.block_open && !self.block_push {
            streams.on_headers_lost(self.side, self.block_stream, self.block_end_stream, self.block_ts);
        }
        self.block_open = false;
        self.block.clear();
        self.payload.clear();
        streams.stats.lost_sync += 1;
    }
}

/// The streams of one connection, and what leaves it.
#[derive(Debug, Clone)]
struct Streams {
    config: Http2Config,
    open: BTreeMap<u32, Stream>,
    ready: VecDeque<Record>,
    stats: Http2Stats,
}

#[derive(Debug, Clone)]
struct Stream {
    req: Half,
    resp: Half,
}

#[derive(Debug, Clone)]
struct Half {
    msg: Message,
    seen: bool,
    ended: bool,
    /// Fields missing from the headers (`u32::MAX`: a whole block was lost).
    unresolved: u32,
    /// A gap hit the body: later bytes are counted, not kept.
    body_gap: bool,
}

impl Half {
    fn new(kind: MessageKind) -> Self {
        let mut msg = Message::empty(kind);
        msg.minor_version = 0;
        Self { msg, seen: false, ended: false, unresolved: 0, body_gap: false }
    }

    fn bytes(&self) -> usize {
        self.msg.body.capacity() + self.msg.headers.text_bytes()
    }
}

impl Streams {
    fn half(&mut self, side: Side, id: u32) -> Option<&mut Half> {
        let s = self.open.get_mut(&id)?;
        Some(match side {
            Side::Request => &mut s.req,
            Side::Response => &mut s.resp,
        })
    }

    /// The stream `id`, opened if new (dropping the oldest stream when at the bound).
    fn open(&mut self, id: u32) -> &mut Stream {
        if !self.open.contains_key(&id) && self.open.len() >= self.config.max_streams.max(1) {
            self.open.pop_first();
            self.stats.overflow += 1;
        }
        self.open
            .entry(id)
            .or_insert_with(|| Stream { req: Half::new(MessageKind::Request), resp: Half::new(MessageKind::Response) })
    }

    fn on_headers(
        &mut self,
        side: Side,
        id: u32,
        fields: Vec<(String, String)>,
        unresolved: u32,
        end_stream: bool,
        ts: u64,
    ) {
        let max_header_bytes = self.config.max_header_bytes;
        let stream = self.open(id);
        let half = match side {
            Side::Request => &mut stream.req,
            Side::Response => &mut stream.resp,
        };
        if !half.seen {
            half.seen = true;
            half.msg.ts_ns = ts;
            for (name, value) in &fields {
                match name.as_str() {
                    ":method" => half.msg.method.clone_from(value),
                    ":path" => half.msg.path.clone_from(value),
                    ":status" => half.msg.status = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        // Trailers join the headers, within the same byte bound.
        let mut kept: usize = half.msg.headers.text_bytes();
        for field in fields {
            kept += field.0.len() + field.1.len();
            if kept > max_header_bytes {
                break;
            }
            half.msg.headers.push(&field.0, &field.1);
        }
        half.unresolved = half.unresolved.saturating_add(unresolved);
        if unresolved > 0 {
            self.stats.unresolved_blocks += 1;
        }
        if end_stream {
            self.on_end(side, id, ts);
        }
    }

    /// A header block of stream `id` could not be decoded at all.
    fn on_headers_lost(&mut self, side: Side, id: u32, end_stream: bool, ts: u64) {
        self.stats.unresolved_blocks += 1;
        let stream = self.open(id);
        let half = match side {
            Side::Request => &mut stream.req,
            Side::Response => &mut stream.resp,
        };
        if !half.seen {
            half.seen = true;
            half.msg.ts_ns = ts;
        }
        half.unresolved = u32::MAX;
        if end_stream {
            self.on_end(side, id, ts);
        }
    }

    fn on_data(&mut self, side: Side, id: u32, bytes: &[u8]) {
        let max = self.config.max_body_bytes;
        let Some(half) = self.half(side, id) else { return };
        half.msg.body_size += bytes.len() as u64;
        if !half.body_gap {
            let room = max.saturating_sub(half.msg.body.len());
            half.msg.body.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
        }
    }

    fn on_data_gap(&mut self, side: Side, id: u32, len: usize) {
        let Some(half) = self.half(side, id) else { return };
        half.msg.body_size += len as u64;
        half.body_gap = true;
    }

    fn on_end(&mut self, side: Side, id: u32, ts: u64) {
        let Some(stream) = self.open.get_mut(&id) else { return };
        let ready = match side {
            Side::Request => {
                stream.req.ended = true;
                stream.resp.ended && stream.req.seen
            }
            Side::Response => {
                stream.resp.ended = true;
                stream.resp.msg.ts_ns = ts;
                // A request not fed yet (the other direction's bytes lag) completes the
                // exchange when it ends.
                stream.req.seen
            }
        };
        if ready {
            self.emit(id);
        }
    }

    fn on_reset(&mut self, id: u32) {
        if self.open.remove(&id).is_some() {
            self.stats.unpaired += 1;
        }
    }

    fn emit(&mut self, id: u32) {
        let Some(Stream { mut req, mut resp }) = self.open.remove(&id) else { return };
        let unresolved = req.unresolved > 0 || resp.unresolved > 0;
        for half in [&mut req, &mut resp] {
            match half.unresolved {
                0 => {}
                u32::MAX => half.msg.headers.push(UNRESOLVED_HEADER, "lost"),
                n => half.msg.headers.push(UNRESOLVED_HEADER, &n.to_string()),
            }
        }
        if self.ready.len() >= self.config.max_ready.max(1) {
            self.ready.pop_front();
            self.stats.overflow += 1;
        }
        self.stats.records += 1;
        self.ready.push_back(Record {
            stream_id: id,
            latency_ns: resp.msg.ts_ns.saturating_sub(req.msg.ts_ns),
            req: req.msg,
            resp: resp.msg,
            unresolved,
        });
    }
}

/// One HTTP/2 connection, both directions: the [`ConnParser`] of HTTP/2 and gRPC.
#[derive(Debug, Clone)]
pub struct Http2Conn {
    req: Dir,
    resp: Dir,
    streams: Streams,
}

impl Http2Conn {
    /// A parser for a new connection.
    pub fn new(config: Http2Config) -> Self {
        Self {
            req: Dir::new(Side::Request, &config),
            resp: Dir::new(Side::Response, &config),
            streams: Streams { config, open: BTreeMap::new(), ready: VecDeque::new(), stats: Http2Stats::default() },
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> Http2Stats {
        self.streams.stats
    }

    /// Streams tracked now.
    pub fn open_streams(&self) -> usize {
        self.streams.open.len()
    }

    fn split(&mut self, side: Side) -> (&mut Dir, &mut Streams) {
        match side {
            Side::Request => (&mut self.req, &mut self.streams),
            Side::Response => (&mut self.resp, &mut self.streams),
        }
    }
}

impl ConnParser for Http2Conn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let (dir, streams) = self.split(side);
        feed_dir(dir, streams, data, ts_ns);
    }

    fn gap(&mut self, side: Side, len: u64, _ts_ns: u64) {
        let (dir, streams) = self.split(side);
        gap_dir(dir, streams, len);
    }

    fn close(&mut self, _ts_ns: u64) {
        let s = &mut self.streams;
        let ids: Vec<u32> = s.open.keys().copied().collect();
        for id in ids {
            let complete = s.open.get(&id).is_some_and(|st| st.req.seen && st.resp.ended);
            if complete {
                s.emit(id);
            } else {
                s.open.remove(&id);
                s.stats.unpaired += 1;
            }
        }
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.streams.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        let streams: usize = self.streams.open.values().map(|s| s.req.bytes() + s.resp.bytes()).sum();
        self.req.buffered() + self.resp.buffered() + streams
    }
}

fn feed_dir(dir: &mut Dir, streams: &mut Streams, mut data: &[u8], ts: u64) {
    let piece_start = data;
    while !data.is_empty() {
        match dir.state {
            State::Start | State::Lost => {
                let at_piece_start = data.len() == piece_start.len();
                if dir.state == State::Start && dir.side == Side::Request && dir.head_len == 0 {
                    let n = data.len().min(PREFACE.len());
                    if data.get(..n) == PREFACE.get(..n) {
                        dir.state = State::Preface(0);
                        continue;
                    }
                }
                // Only a piece's start can be trusted to be a frame's start (writers write whole
                // frames); a candidate header may span pieces.
                if dir.head_len == 0 && !at_piece_start {
                    streams.stats.skipped_bytes += data.len() as u64;
                    return;
                }
                if dir.head_len == 0 {
                    dir.frame_ts = ts;
                }
                let n = (9 - dir.head_len).min(data.len());
                if let (Some(dst), Some(src)) = (dir.head.get_mut(dir.head_len..dir.head_len + n), data.get(..n)) {
                    dst.copy_from_slice(src);
                }
                dir.head_len += n;
                data = data.get(n..).unwrap_or_default();
                if dir.head_len < 9 {
                    return;
                }
                dir.head_len = 0;
                if FrameHead::plausible(&dir.head) {
                    if dir.state == State::Start && dir.side == Side::Response && dir.head[3..5] == [SETTINGS, 0] {
                        // A server's first frame: its peer's table starts empty here.
                        dir.decoder = Decoder::new(streams.config.max_table_size, true);
                    }
                    start_frame(dir, streams);
                    if dir.remaining == 0 {
                        finish_frame(dir, streams, ts);
                    }
                } else {
                    if dir.state == State::Start {
                        streams.stats.lost_sync += 1;
                    }
                    dir.state = State::Lost;
                    streams.stats.skipped_bytes += 9 + data.len() as u64;
                    return;
                }
            }
            State::Preface(matched) => {
                let want = PREFACE.get(matched..).unwrap_or_default();
                let n = want.len().min(data.len());
                if data.get(..n) != want.get(..n) {
                    streams.stats.errors += 1;
                    dir.lose_sync(streams);
                    continue;
                }
                data = data.get(n..).unwrap_or_default();
                if matched + n == PREFACE.len() {
                    // The connection's start: the table is empty and known.
                    dir.decoder = Decoder::new(streams.config.max_table_size, true);
                    dir.state = State::Header;
                } else {
                    dir.state = State::Preface(matched + n);
                }
            }
            State::Header => {
                if dir.head_len == 0 {
                    dir.frame_ts = ts;
                }
                let n = (9 - dir.head_len).min(data.len());
                if let (Some(dst), Some(src)) = (dir.head.get_mut(dir.head_len..dir.head_len + n), data.get(..n)) {
                    dst.copy_from_slice(src);
                }
                dir.head_len += n;
                data = data.get(n..).unwrap_or_default();
                if dir.head_len == 9 {
                    dir.head_len = 0;
                    start_frame(dir, streams);
                    if dir.remaining == 0 {
                        finish_frame(dir, streams, ts);
                    }
                }
            }
            State::Payload => {
                let n = dir.remaining.min(data.len());
                let (chunk, rest) = data.split_at(n);
                payload(dir, streams, chunk);
                dir.remaining -= n;
                data = rest;
                if dir.remaining == 0 {
                    finish_frame(dir, streams, ts);
                }
            }
        }
    }
}

fn start_frame(dir: &mut Dir, streams: &mut Streams) {
    dir.frame = FrameHead::parse(&dir.head);
    streams.stats.frames += 1;
    dir.remaining = dir.frame.len;
    dir.payload.clear();
    dir.payload_lost = false;
    dir.pad_read = dir.frame.flags & PADDED == 0;
    dir.data_left = dir.frame.len;
    dir.state = State::Payload;
    if dir.block_open && dir.frame.ty != CONTINUATION {
        // RFC 9113 §6.10: nothing may interleave a header block.
        streams.stats.errors += 1;
        dir.lose_sync(streams);
        dir.state = State::Payload;
    }
}

fn payload(dir: &mut Dir, streams: &mut Streams, mut chunk: &[u8]) {
    match dir.frame.ty {
        DATA => {
            if !dir.pad_read {
                let Some((&pad, rest)) = chunk.split_first() else { return };
                dir.pad_read = true;
                dir.data_left = dir.frame.len.saturating_sub(1 + usize::from(pad));
                chunk = rest;
            }
            let n = dir.data_left.min(chunk.len());
            dir.data_left -= n;
            streams.on_data(dir.side, dir.frame.stream, chunk.get(..n).unwrap_or_default());
        }
        HEADERS | PUSH_PROMISE | CONTINUATION | RST_STREAM => {
            let cap = if dir.frame.ty == RST_STREAM { 4 } else { streams.config.max_block_bytes };
            if dir.block.len() + dir.payload.len() + chunk.len() > cap {
                dir.payload_lost = true;
            } else if !dir.payload_lost {
                dir.payload.extend_from_slice(chunk);
            }
        }
        _ => {}
    }
}

fn finish_frame(dir: &mut Dir, streams: &mut Streams, ts: u64) {
    dir.state = State::Header;
    let f = dir.frame;
    match f.ty {
        DATA if f.flags & END_STREAM != 0 => streams.on_end(dir.side, f.stream, ts),
        HEADERS | PUSH_PROMISE => {
            let mut off = 0usize;
            let mut pad = 0usize;
            if f.flags & PADDED != 0 {
                pad = usize::from(dir.payload.first().copied().unwrap_or(0));
                off = 1;
            }
            if f.ty == HEADERS && f.flags & PRIORITY_FLAG != 0 {
                off += 5;
            }
            if f.ty == PUSH_PROMISE {
                off += 4;
            }
            dir.block.clear();
            dir.block_open = true;
            dir.block_stream = f.stream;
            dir.block_end_stream = f.ty == HEADERS && f.flags & END_STREAM != 0;
            dir.block_push = f.ty == PUSH_PROMISE;
            dir.block_ts = dir.frame_ts;
            dir.block_lost = dir.payload_lost;
            match dir.payload.len().checked_sub(pad).and_then(|end| dir.payload.get(off..end)) {
                Some(fragment) if !dir.block_lost => dir.block.extend_from_slice(fragment),
                _ => dir.block_lost = true,
            }
            if f.flags & END_HEADERS != 0 {
                end_block(dir, streams, ts);
            }
        }
        CONTINUATION => {
            if !dir.block_open || f.stream != dir.block_stream {
                streams.stats.errors += 1;
                dir.decoder.lose_context();
                return;
            }
            if dir.payload_lost {
                dir.block_lost = true;
            } else {
                dir.block.extend_from_slice(&dir.payload);
            }
            if f.flags & END_HEADERS != 0 {
                end_block(dir, streams, ts);
            }
        }
        RST_STREAM => streams.on_reset(f.stream),
        _ => {}
    }
    dir.payload.clear();
}

fn end_block(dir: &mut Dir, streams: &mut Streams, ts: u64) {
    dir.block_open = false;
    let (side, id, end_stream, start) = (dir.side, dir.block_stream, dir.block_end_stream, dir.block_ts);
    // A request starts with its first byte; a response that ends here ends now.
    let at = if side == Side::Request { start } else { ts };
    if dir.block_lost {
        streams.stats.errors += 1;
        dir.decoder.lose_context();
        if !dir.block_push {
            streams.on_headers_lost(side, id, end_stream, at);
        }
        dir.block.clear();
        return;
    }
    let mut fields = Vec::new();
    let result = dir.decoder.decode(&dir.block, &mut fields, streams.config.max_header_bytes);
    dir.block.clear();
    if dir.block_push {
        // A promised request: decoded only to keep the table in step.
        if result.is_err() {
            streams.stats.errors += 1;
        }
        return;
    }
    match result {
        Ok(outcome) => streams.on_headers(side, id, fields, outcome.unresolved, end_stream, at),
        Err(_) => {
            streams.stats.errors += 1;
            streams.on_headers_lost(side, id, end_stream, at);
        }
    }
}

fn gap_dir(dir: &mut Dir, streams: &mut Streams, len: u64) {
    let len_usize = usize::try_from(len).unwrap_or(usize::MAX);
    if dir.state == State::Payload && len_usize <= dir.remaining {
        match dir.frame.ty {
            DATA => {
                let lost = if dir.pad_read { len_usize.min(dir.data_left) } else { len_usize };
                dir.pad_read = true;
                dir.data_left = dir.data_left.saturating_sub(lost);
                streams.on_data_gap(dir.side, dir.frame.stream, lost);
            }
            HEADERS | PUSH_PROMISE | CONTINUATION => dir.payload_lost = true,
            _ => {}
        }
        dir.remaining -= len_usize;
        if dir.remaining == 0 {
            // The frame's end is known even though its last bytes are not; its flags still hold.
            let ts = dir.frame_ts;
            finish_frame(dir, streams, ts);
        }
        return;
    }
    if matches!(dir.state, State::Lost) {
        // A candidate frame header cut by the gap is no candidate.
        dir.head_len = 0;
        return;
    }
    dir.lose_sync(streams);
}
