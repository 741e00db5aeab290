//! Pairing AMQP methods of one connection.
//!
//! Owns [`AmqpConn`] and [`Record`]. A synchronous method waits for its reply from the other side
//! on the same channel (either side may ask: the broker's `Connection.Start` is answered by the
//! client's `Start-Ok`, its `Channel.Close` by `Close-Ok`); asynchronous methods and replies
//! nothing waited for are records alone. Must not touch framing (see `wire`).

use std::collections::VecDeque;

use super::wire::{AmqpParser, Method, ParserStats};
use crate::conn_parser::{ConnParser, Side};
use crate::stitch::DEFAULT_MAX_PENDING;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmqpConfig {
    /// Message body bytes kept. Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Methods waiting for their reply, and finished records not yet drained.
    pub max_pending: usize,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// A method with its reply, or alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The method that started the exchange.
    pub req: Method,
    /// Who sent `req`: [`Side::Request`] for the client, [`Side::Response`] for the broker.
    pub from: Side,
    /// Its reply, if it has one.
    pub resp: Option<Method>,
    /// The reply's last byte minus the method's first byte; 0 without a reply.
    pub latency_ns: u64,
}

impl Record {
    /// When the record completed: the reply's last byte, else the method's.
    pub fn ts_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.req.last_ns, |r| r.last_ns)
    }
}

/// Counters for one [`AmqpConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmqpStats {
    /// The client direction's parser.
    pub request: ParserStats,
    /// The broker direction's parser.
    pub response: ParserStats,
    /// Records produced.
    pub records: u64,
    /// Replies nothing waited for (recorded alone).
    pub orphan_replies: u64,
    /// Methods whose reply never came (recorded alone).
    pub unanswered: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
}

/// The replies a synchronous method waits for; empty for asynchronous methods and for replies.
fn replies_of(class_id: u16, method_id: u16) -> &'static [u16] {
    match (class_id, method_id) {
        (60, 70) => &[71, 72],
        (40, 40) => &[51],
        (10, 10 | 20 | 30 | 40 | 50)
        | (20, 10 | 20 | 40)
        | (40, 10 | 20 | 30)
        | (50, 10 | 20 | 30 | 40 | 50)
        | (60, 10 | 20 | 30 | 110)
        | (85, 10)
        | (90, 10 | 20 | 30) => match method_id {
            10 => &[11],
            20 => &[21],
            30 => &[31],
            40 => &[41],
            50 => &[51],
            _ => &[111],
        },
        _ => &[],
    }
}

/// A method waiting for its reply.
#[derive(Debug, Clone)]
struct Waiting {
    from_client: bool,
    method: Method,
}

/// AMQP for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct AmqpConn {
    config: AmqpConfig,
    requests: AmqpParser,
    responses: AmqpParser,
    waiting: VecDeque<Waiting>,
    /// Replies that arrived before the method they answer (the two directions are fed separately).
    early: VecDeque<Waiting>,
    ready: VecDeque<Record>,
    methods: Vec<Method>,
    stats: AmqpStats,
}

impl AmqpConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: AmqpConfig) -> Self {
        Self {
            config,
            requests: AmqpParser::new(config.max_value_bytes),
            responses: AmqpParser::new(config.max_value_bytes),
            waiting: VecDeque::new(),
            early: VecDeque::new(),
            ready: VecDeque::new(),
            methods: Vec::new(),
            stats: AmqpStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AmqpStats {
        AmqpStats { request: self.requests.stats(), response: self.responses.stats(), ..self.stats }
    }

    fn max(&self) -> usize {
        self.config.max_pending.max(1)
    }

    fn push_ready(&mut self, req: Method, from_client: bool, resp: Option<Method>) {
        if self.ready.len() >= self.max() {
            self.ready.pop_front();
            self.stats.overflow_drops += 1;
        }
        let latency_ns = resp.as_ref().map_or(0, |r| r.last_ns.saturating_sub(req.first_ns));
        self.stats.records += 1;
        let from = if from_client { Side::Request } else { Side::Response };
        self.ready.push_back(Record { req, from, resp, latency_ns });
    }

    fn on_method(&mut self, method: Method, from_client: bool) {
        let answers = self.waiting.iter().position(|w| {
            w.from_client != from_client
                && w.method.channel == method.channel
                && w.method.class_id == method.class_id
                && replies_of(w.method.class_id, w.method.method_id).contains(&method.method_id)
        });
        if let Some(w) = answers.and_then(|i| self.waiting.remove(i)) {
            self.push_ready(w.method, w.from_client, Some(method));
            return;
        }
        let replies = replies_of(method.class_id, method.method_id);
        if replies.is_empty() {
            if !method.method_id.is_multiple_of(10) && (method.class_id, method.method_id) != (10, 61) {
                // A reply (ids ending in 1 or 2) that nothing waited for yet: its method may still
                // come on the other direction.
                if self.early.len() >= self.max()
                    && let Some(old) = self.early.pop_front()
                {
                    self.stats.orphan_replies += 1;
                    self.push_ready(old.method, old.from_client, None);
                }
                self.early.push_back(Waiting { from_client, method });
                return;
            }
            self.push_ready(method, from_client, None);
            return;
        }
        let early = self.early.iter().position(|e| {
            e.from_client != from_client
                && e.method.channel == method.channel
                && e.method.class_id == method.class_id
                && replies.contains(&e.method.method_id)
                && e.method.last_ns >= method.first_ns
        });
        if let Some(reply) = early.and_then(|i| self.early.remove(i)) {
            self.push_ready(method, from_client, Some(reply.method));
            return;
        }
        if self.waiting.len() >= self.max()
            && let Some(old) = self.waiting.pop_front()
        {
            self.stats.unanswered += 1;
            self.push_ready(old.method, old.from_client, None);
        }
        self.waiting.push_back(Waiting { from_client, method });
    }

    fn take_methods(&mut self, side: Side) {
        let mut methods = std::mem::take(&mut self.methods);
        for m in methods.drain(..) {
            self.on_method(m, side == Side::Request);
        }
        self.methods = methods;
    }
}

impl ConnParser for AmqpConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut methods = std::mem::take(&mut self.methods);
        match side {
            Side::Request => self.requests.feed(data, ts_ns, &mut methods),
            Side::Response => self.responses.feed(data, ts_ns, &mut methods),
        }
        self.methods = methods;
        self.take_methods(side);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        match side {
            Side::Request => self.requests.gap(len, ts_ns),
            Side::Response => self.responses.gap(len, ts_ns),
        }
    }

    fn close(&mut self, _ts_ns: u64) {
        let mut methods = std::mem::take(&mut self.methods);
        self.requests.close(&mut methods);
        self.methods = methods;
        self.take_methods(Side::Request);
        let mut methods = std::mem::take(&mut self.methods);
        self.responses.close(&mut methods);
        self.methods = methods;
        self.take_methods(Side::Response);
        while let Some(w) = self.waiting.pop_front() {
            self.stats.unanswered += 1;
            self.push_ready(w.method, w.from_client, None);
        }
        while let Some(e) = self.early.pop_front() {
            self.stats.orphan_replies += 1;
            self.push_ready(e.method, e.from_client, None);
        }
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }
}
