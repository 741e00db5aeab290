//! Pairing CQL requests and responses of one connection, and v5's segment layer.
//!
//! Owns [`CqlConn`] and [`Record`]: per direction, the envelope [`Framer`](crate::framed) and,
//! once a v5 handshake is done, the segments that carry the envelopes; the [`KeyedStitcher`] keyed
//! by stream id. A server push (`EVENT`, negative stream) is a record alone. Must not decode bodies
//! (see `wire`).
//!
//! Protocol v5 frames everything after the handshake in segments (a 6-byte header with the
//! payload length and a CRC24, the payload, a CRC32). The client direction switches after its v5
//! `STARTUP`, the server direction after its v5 `READY` or `AUTHENTICATE`, so each direction
//! decides alone. Compressed segments (negotiated with `COMPRESSION` in `STARTUP`) are not
//! decoded: such a direction is counted lost.

use std::collections::VecDeque;

use super::wire::{self, HEADER, Message};
use crate::conn_parser::{ConnParser, Side};
use crate::framed::{Frame, Framer, ParserStats};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, KeyedStitcher, StitchCounts};

/// Bytes of a message kept beyond the body budget: header, flags and the first fields.
const MAX_KEPT_HEADER: usize = 4096;
/// An uncompressed segment's header: 3 bytes of length and flag, 3 of CRC24.
const SEGMENT_HEADER: usize = 6;
/// A segment's payload is followed by its CRC32.
const SEGMENT_TRAILER: u64 = 4;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqlConfig {
    /// Body bytes kept per message beyond the header budget, and the longest query text shown.
    /// Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Requests waiting for their response, responses waiting for their request, and finished
    /// records not yet drained (each).
    pub max_pending: usize,
}

impl Default for CqlConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// A request with its response, or a message alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The message that started the exchange (for a server push, the `EVENT`).
    pub req: Message,
    /// Who sent `req`: [`Side::Request`] for the client, [`Side::Response`] for the server.
    pub from: Side,
    /// Its response, if it has one.
    pub resp: Option<Message>,
    /// The response's last byte minus the request's first byte; 0 without a response.
    pub latency_ns: u64,
}

impl Record {
    /// When the record completed: the response's last byte, else the message's.
    pub fn ts_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.req.last_ns, |r| r.last_ns)
    }
}

/// Counters for one [`CqlConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CqlStats {
    /// The client direction's envelopes.
    pub request: ParserStats,
    /// The server direction's envelopes.
    pub response: ParserStats,
    /// Pairing by stream id.
    pub stitch: StitchCounts,
    /// Server pushes (`EVENT`s), recorded alone.
    pub events: u64,
    /// v5 segments read (both directions).
    pub segments: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
}

/// v5 segment state of one direction.
#[derive(Debug, Clone, Copy, Default)]
struct Segments {
    head: [u8; SEGMENT_HEADER],
    head_len: usize,
    /// Payload bytes still to come in the current segment.
    payload: u64,
    /// Trailer bytes still to skip.
    trailer: u64,
}

/// One direction: envelopes, and segments once switched.
#[derive(Debug, Clone, Default)]
struct Dir {
    frames: Framer,
    segments: Option<Segments>,
    /// A v5 `STARTUP` asked for compression: segments would be compressed.
    compressed: bool,
}

/// CQL for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct CqlConn {
    config: CqlConfig,
    requests: Dir,
    responses: Dir,
    stitcher: KeyedStitcher<i16, Message, Message>,
    ready: VecDeque<Record>,
    exchanges: Vec<Exchange<Message, Message>>,
    stats: CqlStats,
}

impl CqlConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: CqlConfig) -> Self {
        let keep = HEADER + MAX_KEPT_HEADER + config.max_value_bytes;
        let dir = || Dir { frames: Framer::new(HEADER, wire::body_len, keep), segments: None, compressed: false };
        Self {
            config,
            requests: dir(),
            responses: dir(),
            stitcher: KeyedStitcher::new(config.max_pending),
            ready: VecDeque::new(),
            exchanges: Vec::new(),
            stats: CqlStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> CqlStats {
        CqlStats {
            request: self.requests.frames.stats(),
            response: self.responses.frames.stats(),
            stitch: self.stitcher.counts(),
            ..self.stats
        }
    }

    fn push_ready(&mut self, record: Record) {
        if self.ready.len() >= self.config.max_pending.max(1) {
            self.ready.pop_front();
            self.stats.overflow_drops += 1;
        }
        self.ready.push_back(record);
    }

    /// Takes one envelope; returns (did not decode, switch to segments after it).
    fn on_message(&mut self, side: Side, frame: &Frame<'_>) -> (bool, bool) {
        let max = self.config.max_value_bytes;
        let Some(msg) = wire::decode(frame.bytes, frame.cut, max, frame.first_ns, frame.last_ns) else {
            return (true, false);
        };
        let switch = msg.version >= 5
            && match side {
                Side::Request => msg.opcode == 0x01,
                Side::Response => matches!(msg.opcode, 0x02 | 0x03),
            };
        if side == Side::Request && msg.opcode == 0x01 && msg.body.contains("\"COMPRESSION\"") {
            self.requests.compressed = true;
            self.responses.compressed = true;
        }
        match side {
            Side::Response if msg.stream < 0 => {
                self.stats.events += 1;
                self.push_ready(Record { req: msg, from: Side::Response, resp: None, latency_ns: 0 });
            }
            Side::Request => self.stitcher.push_request(msg.stream, msg),
            Side::Response => self.stitcher.push_response(msg.stream, msg),
        }
        (false, switch)
    }

    fn dir(&mut self, side: Side) -> &mut Dir {
        match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        }
    }

    /// Feeds envelope bytes of `side` (after any segment layer); returns the bytes left when the
    /// direction switched to segments part-way.
    fn feed_envelopes<'d>(&mut self, side: Side, data: &'d [u8], ts_ns: u64) -> &'d [u8] {
        let mut frames = std::mem::take(&mut self.dir(side).frames);
        let (mut bad, mut switch) = (0, false);
        let rest = frames.feed(data, ts_ns, &mut |frame| {
            let (failed, now) = self.on_message(side, &frame);
            bad += u64::from(failed);
            switch = now;
            now
        });
        for _ in 0..bad {
            frames.count_error();
        }
        let dir = self.dir(side);
        dir.frames = frames;
        if switch && dir.segments.is_none() {
            dir.segments = Some(Segments::default());
        }
        rest
    }

    /// Feeds segment bytes of `side`: headers and trailers are stepped over, payloads go to the
    /// envelope framer.
    fn feed_segments(&mut self, side: Side, mut data: &[u8], ts_ns: u64) {
        while !data.is_empty() {
            let dir = self.dir(side);
            let Some(mut seg) = dir.segments else { return };
            if dir.compressed || dir.frames.is_lost() {
                // Compressed segments are not decoded: count the direction lost once.
                if !dir.frames.is_lost() {
                    dir.frames.gap(u64::MAX, ts_ns, &mut |_| false);
                }
                return;
            }
            if seg.trailer > 0 {
                let n = seg.trailer.min(data.len() as u64);
                seg.trailer -= n;
                data = data.get(usize::try_from(n).unwrap_or(usize::MAX)..).unwrap_or_default();
            } else if seg.payload > 0 {
                let n = usize::try_from(seg.payload).unwrap_or(usize::MAX).min(data.len());
                let (chunk, rest) = data.split_at(n);
                seg.payload -= n as u64;
                if seg.payload == 0 {
                    seg.trailer = SEGMENT_TRAILER;
                }
                dir.segments = Some(seg);
                self.feed_envelopes(side, chunk, ts_ns);
                data = rest;
                continue;
            } else {
                let n = (SEGMENT_HEADER - seg.head_len).min(data.len());
                let (head, rest) = data.split_at(n);
                for (slot, b) in seg.head.iter_mut().skip(seg.head_len).zip(head) {
                    *slot = *b;
                }
                seg.head_len += n;
                data = rest;
                if seg.head_len == SEGMENT_HEADER {
                    let [a, b, c, ..] = seg.head;
                    seg.payload = u64::from(u32::from_le_bytes([a, b, c, 0]) & 0x1_ffff);
                    seg.head_len = 0;
                    self.stats.segments += 1;
                    if seg.payload == 0 {
                        seg.trailer = SEGMENT_TRAILER;
                    }
                }
            }
            self.dir(side).segments = Some(seg);
        }
    }

    fn take_exchanges(&mut self) {
        let mut exchanges = std::mem::take(&mut self.exchanges);
        self.stitcher.drain(&mut exchanges);
        for Exchange { req, resp, latency_ns } in exchanges.drain(..) {
            self.push_ready(Record { req, from: Side::Request, resp: Some(resp), latency_ns });
        }
        self.exchanges = exchanges;
    }
}

impl ConnParser for CqlConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let rest = if self.dir(side).segments.is_none() { self.feed_envelopes(side, data, ts_ns) } else { data };
        if !rest.is_empty() {
            self.feed_segments(side, rest, ts_ns);
        }
        self.take_exchanges();
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let dir = self.dir(side);
        let mut frames = std::mem::take(&mut dir.frames);
        // Inside a segment's payload the envelope framer takes the gap; elsewhere in the segment
        // layer the direction's framing is lost.
        let seg = dir.segments;
        match seg {
            Some(s) if s.payload >= len && s.head_len == 0 && s.trailer == 0 => {
                let mut seg = s;
                seg.payload -= len;
                if seg.payload == 0 {
                    seg.trailer = SEGMENT_TRAILER;
                }
                dir.segments = Some(seg);
            }
            Some(_) => {
                frames.gap(u64::MAX, ts_ns, &mut |_| false);
                self.dir(side).frames = frames;
                return;
            }
            None => {}
        }
        frames.gap(len, ts_ns, &mut |frame| {
            self.on_message(side, &frame);
            false
        });
        self.dir(side).frames = frames;
        self.take_exchanges();
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.frames.close();
        self.responses.frames.close();
        self.take_exchanges();
        self.stitcher.close();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.frames.buffered_bytes() + self.responses.frames.buffered_bytes()
    }

    fn pending_messages(&self) -> usize {
        self.stitcher.pending_requests() + self.stitcher.pending_responses()
    }

    fn shed_oldest(&mut self, n: usize) -> usize {
        self.stitcher.shed_oldest(n)
    }
}
