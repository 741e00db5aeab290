//! Pairing Kafka requests and responses of one connection.
//!
//! Owns [`KafkaConn`] and [`Record`]: each direction's [`Framer`](crate::framed), the
//! [`KeyedStitcher`] keyed by correlation id, and the summary of a response's body once its
//! request (and so its API and version) is known. A `Produce` with `acks=0` is a record alone.
//! Must not decode fields itself (see `wire`).

use std::collections::VecDeque;

use super::wire::{self, MAX_KEPT_HEADER, Request, Response};
use crate::conn_parser::{ConnParser, Side};
use crate::framed::{Frame, Framer, ParserStats};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, KeyedStitcher, StitchCounts};

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Body bytes kept per message beyond [`MAX_KEPT_HEADER`]. Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Requests waiting for their response, responses waiting for their request, and finished
    /// records not yet drained (each).
    pub max_pending: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// A request with its response, or alone (`Produce` with `acks=0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request.
    pub req: Request,
    /// Its response, if it has one.
    pub resp: Option<Response>,
    /// The response's last byte minus the request's first byte; 0 without a response.
    pub latency_ns: u64,
}

impl Record {
    /// When the record completed: the response's last byte, else the request's.
    pub fn ts_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.req.last_ns, |r| r.last_ns)
    }
}

/// Counters for one [`KafkaConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KafkaStats {
    /// The client direction's framing.
    pub request: ParserStats,
    /// The broker direction's framing.
    pub response: ParserStats,
    /// Pairing by correlation id.
    pub stitch: StitchCounts,
    /// Records of requests that expect no response.
    pub alone: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
}

/// Kafka for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct KafkaConn {
    config: KafkaConfig,
    requests: Framer,
    responses: Framer,
    stitcher: KeyedStitcher<i32, Request, Response>,
    /// The next request is a raw SASL token (after `SaslHandshake` v0), not a Kafka message.
    raw_sasl_next: bool,
    ready: VecDeque<Record>,
    exchanges: Vec<Exchange<Request, Response>>,
    stats: KafkaStats,
}

impl KafkaConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: KafkaConfig) -> Self {
        let keep = 4 + MAX_KEPT_HEADER + config.max_value_bytes;
        Self {
            config,
            requests: Framer::new(4, wire::body_len, keep),
            responses: Framer::new(4, wire::body_len, keep),
            stitcher: KeyedStitcher::new(config.max_pending),
            raw_sasl_next: false,
            ready: VecDeque::new(),
            exchanges: Vec::new(),
            stats: KafkaStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> KafkaStats {
        KafkaStats {
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

    fn on_request(&mut self, frame: &Frame<'_>) -> bool {
        if std::mem::take(&mut self.raw_sasl_next) {
            return false;
        }
        let Some(h) = frame.bytes.get(4..).and_then(wire::request_header) else { return true };
        let mut cut = frame.cut;
        let (body, no_response) = wire::request_body(h.api_key, h.api_version, h.body, &mut cut);
        let req = Request {
            api_key: h.api_key,
            api_version: h.api_version,
            correlation_id: h.correlation_id,
            client_id: h.client_id.map(|c| String::from_utf8_lossy(c).into_owned()).unwrap_or_default(),
            body,
            cut,
            no_response,
            first_ns: frame.first_ns,
            last_ns: frame.last_ns,
        };
        self.raw_sasl_next = h.api_key == 17 && h.api_version == 0;
        if no_response {
            self.stats.alone += 1;
            self.push_ready(Record { req, resp: None, latency_ns: 0 });
        } else {
            self.stitcher.push_request(h.correlation_id, req);
        }
        false
    }

    fn on_response(&mut self, frame: &Frame<'_>) -> bool {
        let Some(id) = frame.bytes.get(4..8).and_then(|b| b.try_into().ok()).map(i32::from_be_bytes) else {
            return true;
        };
        let resp = Response {
            correlation_id: id,
            body: String::new(),
            cut: frame.cut,
            raw: frame.bytes.get(8..).unwrap_or_default().to_vec(),
            first_ns: frame.first_ns,
            last_ns: frame.last_ns,
        };
        self.stitcher.push_response(id, resp);
        false
    }

    fn take_exchanges(&mut self) {
        let mut exchanges = std::mem::take(&mut self.exchanges);
        self.stitcher.drain(&mut exchanges);
        for Exchange { req, mut resp, latency_ns } in exchanges.drain(..) {
            let raw = std::mem::take(&mut resp.raw);
            resp.body = wire::response_body(req.api_key, req.api_version, &raw, &mut resp.cut);
            self.push_ready(Record { req, resp: Some(resp), latency_ns });
        }
        self.exchanges = exchanges;
    }
}

impl ConnParser for KafkaConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut frames = std::mem::take(match side {
            Side::Request => &mut self.requests,
            Side::Response => &mut self.responses,
        });
        let mut bad = 0;
        frames.feed(data, ts_ns, &mut |frame| {
            let failed = match side {
                Side::Request => self.on_request(&frame),
                Side::Response => self.on_response(&frame),
            };
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
            match side {
                Side::Request => self.on_request(&frame),
                Side::Response => self.on_response(&frame),
            };
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
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }

    fn pending_messages(&self) -> usize {
        self.stitcher.pending_requests() + self.stitcher.pending_responses()
    }

    fn shed_oldest(&mut self, n: usize) -> usize {
        self.stitcher.shed_oldest(n)
    }
}
