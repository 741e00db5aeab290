//! Pairing MongoDB requests and replies of one connection.
//!
//! Owns [`MongodbConn`] and [`Record`]: each direction's [`Framer`](crate::framed) and the
//! [`KeyedStitcher`] that pairs a request's `requestID` with a reply's `responseTo`. A request that
//! gets no reply (`moreToCome`, a legacy write) is a record alone. An exhaust cursor (a request with
//! `exhaustAllowed`: a streamed `getMore`, the drivers' awaitable `hello`) gets replies flagged
//! `moreToCome`, each answering the previous reply's `requestID`: every reply of the stream is a
//! record with the request, its latency the time since the previous reply. Must not decode fields
//! itself (see `wire`).

use std::collections::VecDeque;

use super::wire::{self, Message};
use crate::conn_parser::{ConnParser, Side};
use crate::framed::{Frame, Framer, ParserStats};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, KeyedStitcher, StitchCounts};

/// Bytes of a message kept beyond the body budget: its header and the command's leading fields.
const MAX_KEPT_HEADER: usize = 4096;

/// Exhaust streams followed at once per connection (drivers keep one for monitoring, a cursor
/// another); past this the oldest is forgotten and its later replies count as unpaired.
const MAX_EXHAUST_STREAMS: usize = 16;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MongodbConfig {
    /// Document bytes kept per message beyond the header budget, and the JSON rendered of them.
    /// Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Requests waiting for their reply, replies waiting for their request, and finished records
    /// not yet drained (each).
    pub max_pending: usize,
}

impl Default for MongodbConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// A request with its reply, or alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request.
    pub req: Message,
    /// Its reply, if it has one.
    pub resp: Option<Message>,
    /// The reply's last byte minus the request's first byte; 0 without a reply.
    pub latency_ns: u64,
}

impl Record {
    /// When the record completed: the reply's last byte, else the request's.
    pub fn ts_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.req.last_ns, |r| r.last_ns)
    }
}

/// Counters for one [`MongodbConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MongodbStats {
    /// The client direction's framing.
    pub request: ParserStats,
    /// The server direction's framing.
    pub response: ParserStats,
    /// Pairing by `requestID`/`responseTo`.
    pub stitch: StitchCounts,
    /// Records of requests that get no reply.
    pub alone: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
    /// Replies of exhaust streams after their first (each a record with the stream's request).
    pub streamed: u64,
}

/// MongoDB for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct MongodbConn {
    config: MongodbConfig,
    requests: Framer,
    responses: Framer,
    stitcher: KeyedStitcher<i32, Message, Message>,
    ready: VecDeque<Record>,
    exchanges: Vec<Exchange<Message, Message>>,
    /// Exhaust streams waiting for their next reply: the last reply's `requestID`, the stream's
    /// request, and when the last reply ended.
    exhaust: VecDeque<(i32, Message, u64)>,
    stats: MongodbStats,
}

impl MongodbConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: MongodbConfig) -> Self {
        let keep = 16 + MAX_KEPT_HEADER + config.max_value_bytes;
        Self {
            config,
            requests: Framer::new(16, wire::body_len, keep),
            responses: Framer::new(16, wire::body_len, keep),
            stitcher: KeyedStitcher::new(config.max_pending),
            ready: VecDeque::new(),
            exchanges: Vec::new(),
            exhaust: VecDeque::new(),
            stats: MongodbStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MongodbStats {
        MongodbStats {
            request: self.requests.stats(),
            response: self.responses.stats(),
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

    /// Takes one message; returns true when it did not decode.
    fn on_message(&mut self, side: Side, frame: &Frame<'_>) -> bool {
        let budget = MAX_KEPT_HEADER + self.config.max_value_bytes;
        let Some(msg) = wire::decode(frame.bytes, frame.cut, budget, frame.first_ns, frame.last_ns) else {
            return true;
        };
        match side {
            Side::Request if msg.more_to_come => {
                self.stats.alone += 1;
                self.push_ready(Record { req: msg, resp: None, latency_ns: 0 });
            }
            Side::Request => self.stitcher.push_request(msg.request_id, msg),
            Side::Response => match self.exhaust.iter().position(|(id, ..)| *id == msg.response_to) {
                Some(at) => {
                    if let Some((_, req, previous_ns)) = self.exhaust.remove(at) {
                        self.stats.streamed += 1;
                        self.streamed_reply(req, msg, previous_ns);
                    }
                }
                None => {
                    let streams = msg.more_to_come;
                    self.stitcher.push_response(msg.response_to, msg);
                    if streams {
                        // Its successor may come in the same bytes: follow the stream now.
                        self.take_exchanges();
                    }
                }
            },
        }
        false
    }

    /// A reply of an exhaust stream: a record with the stream's request, its latency the time
    /// since the previous reply.
    fn streamed_reply(&mut self, req: Message, resp: Message, previous_ns: u64) {
        let latency_ns = resp.last_ns.saturating_sub(previous_ns);
        self.answered(req, resp, latency_ns);
    }

    /// A request with a reply becomes a record; the stream goes on when the reply says more is to
    /// come.
    fn answered(&mut self, req: Message, resp: Message, latency_ns: u64) {
        if resp.more_to_come {
            self.follow(resp.request_id, req.clone(), resp.last_ns);
        }
        self.push_ready(Record { req, resp: Some(resp), latency_ns });
    }

    /// Waits for the reply answering `reply_id` in an exhaust stream of `req`.
    fn follow(&mut self, reply_id: i32, req: Message, last_ns: u64) {
        if self.exhaust.len() >= MAX_EXHAUST_STREAMS {
            self.exhaust.pop_front();
        }
        self.exhaust.push_back((reply_id, req, last_ns));
    }

    fn take_exchanges(&mut self) {
        let mut exchanges = std::mem::take(&mut self.exchanges);
        self.stitcher.drain(&mut exchanges);
        for Exchange { req, resp, latency_ns } in exchanges.drain(..) {
            self.answered(req, resp, latency_ns);
        }
        self.exchanges = exchanges;
    }
}

impl ConnParser for MongodbConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut frames = std::mem::take(match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        });
        let mut bad = 0;
        frames.feed(data, ts_ns, &mut |frame| {
            let failed = self.on_message(side, &frame);
            bad += u64::from(failed);
            false
        });
        for _ in 0..bad {
            frames.count_error();
        }
        match side {
            Side::Request => self.requests = frames,
            Side::Response => self.responses = frames,
        }
        self.take_exchanges();
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let mut frames = std::mem::take(match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        });
        frames.gap(len, ts_ns, &mut |frame| {
            self.on_message(side, &frame);
            false
        });
        match side {
            Side::Request => self.requests = frames,
            Side::Response => self.responses = frames,
        }
        self.take_exchanges();
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.close();
        self.responses.close();
        self.take_exchanges();
        self.stitcher.close();
        self.exhaust.clear();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }

    fn pending_messages(&self) -> usize {
        self.stitcher.pending_requests() + self.stitcher.pending_responses() + self.exhaust.len()
    }

    fn shed_oldest(&mut self, n: usize) -> usize {
        self.stitcher.shed_oldest(n)
    }
}
