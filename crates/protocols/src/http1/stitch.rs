//! Pairing HTTP/1.x requests with responses, and the per-connection entry point.
//!
//! Owns [`Stitcher`] (the generic in-order [`FifoStitcher`] plus HTTP's informational-response
//! rule), [`Record`] and [`Http1Conn`], which drives one request parser and one response parser,
//! keeps the `HEAD` bookkeeping between them and implements [`ConnParser`]. Must not touch
//! byte-level parsing (see `parser`) and does no I/O.

// Messages are boxed: they move from parser to queues to records and back for reuse, and a
// boxed move is a pointer where the message itself is about 180 bytes (its copies were a
// visible part of the agent's profile).
#![allow(clippy::vec_box)]

use super::message::{Message, MessageKind, ParseConfig};
use super::parser::{ParseStats, StreamParser};
use crate::conn_parser::ConnParser;
pub use crate::conn_parser::Side;
use crate::stitch::{Exchange, FifoStitcher, Timed};

pub use crate::stitch::DEFAULT_MAX_PENDING;

/// A request paired with its response.
pub type Record = Exchange<Box<Message>, Box<Message>>;

impl Timed for Message {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// Counters kept by a [`Stitcher`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StitchStats {
    /// Records produced.
    pub records: u64,
    /// Responses dropped because no request could have caused them (they ended before the
    /// oldest pending request started, or were left over at close).
    pub orphan_responses: u64,
    /// Requests dropped without a response (after a response-side gap, or left over at close).
    pub unanswered_requests: u64,
    /// Informational (1xx other than 101) responses, which are not paired.
    pub informational_responses: u64,
    /// Messages or records dropped because a queue was full.
    pub overflow_drops: u64,
}

/// Pairs HTTP/1 requests with responses of one connection, in order (HTTP/1 has no ids): the
/// generic [`FifoStitcher`] with HTTP's one rule on top, that informational responses answer
/// nothing.
///
/// Pairing is eager: each push pairs what it can, and [`drain`](Self::drain) hands the records
/// out. A response whose timestamp (its last byte) is earlier than the oldest pending request's
/// (its first byte) cannot answer it and is dropped as an orphan; a response with no pending
/// request waits, so the two sides may be fed in either order. All queues are bounded.
#[derive(Debug, Clone)]
pub struct Stitcher {
    fifo: FifoStitcher<Box<Message>, Box<Message>>,
    informational: u64,
}

impl Default for Stitcher {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING)
    }
}

impl Stitcher {
    /// A stitcher whose queues each hold at most `max_pending` entries (at least 1); the oldest
    /// entry is dropped when a queue is full.
    pub fn new(max_pending: usize) -> Self {
        Self { fifo: FifoStitcher::new(max_pending), informational: 0 }
    }

    /// Counters so far.
    pub fn stats(&self) -> StitchStats {
        let c = self.fifo.counts();
        StitchStats {
            records: c.records,
            orphan_responses: c.orphan_responses,
            unanswered_requests: c.unanswered_requests,
            informational_responses: self.informational,
            overflow_drops: c.overflow_drops,
        }
    }

    /// Requests waiting for a response.
    pub fn pending_requests(&self) -> usize {
        self.fifo.pending_requests()
    }

    /// Responses waiting for a request.
    pub fn pending_responses(&self) -> usize {
        self.fifo.pending_responses()
    }

    /// Adds the next request of the connection.
    pub fn push_request(&mut self, message: Box<Message>) {
        self.fifo.push_request(message);
    }

    /// Adds the next response of the connection. Informational responses (1xx except 101
    /// Switching Protocols) are counted and dropped: the final response answers the request.
    pub fn push_response(&mut self, message: Box<Message>) {
        if (100..200).contains(&message.status) && message.status != 101 {
            self.informational += 1;
            return;
        }
        self.fifo.push_response(message);
    }

    /// Moves the records paired so far to `out`, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        self.fifo.drain(out);
    }

    /// The response stream lost bytes and its parser lost sync: see [`FifoStitcher::response_gap`].
    pub fn response_gap(&mut self) {
        self.fifo.response_gap();
    }

    /// The response stream lost `n` whole responses while staying in sync (a gap swallowed a
    /// body's framing, found again only at the next message): the `n` oldest pending requests
    /// will get no response.
    pub fn responses_lost(&mut self, n: u64) {
        self.fifo.responses_lost(n);
    }

    /// The connection closed: unpaired messages can no longer be paired and are dropped.
    pub fn close(&mut self) {
        self.fifo.close();
    }

    /// Drops up to `n` of the oldest unpaired messages, uncounted: see [`FifoStitcher::shed_oldest`].
    pub fn shed_oldest(&mut self, n: usize) -> usize {
        self.fifo.shed_oldest(n)
    }
}

/// Counters for one [`Http1Conn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// The request parser's counters.
    pub request: ParseStats,
    /// The response parser's counters.
    pub response: ParseStats,
    /// The stitcher's counters.
    pub stitch: StitchStats,
}

/// HTTP/1.x for one connection: the main entry point.
///
/// Feed each direction's bytes as they are captured, then take the paired records with
/// [`drain_records`](Self::drain_records). Each parsed request's method is passed to the
/// response parser, so responses to `HEAD` are framed without a body; for that, feed a
/// request before the response that answers it (true when events are fed in capture order).
#[derive(Debug, Clone)]
pub struct Http1Conn {
    requests: StreamParser,
    responses: StreamParser,
    stitcher: Stitcher,
    scratch: Vec<Box<Message>>,
}

impl Http1Conn {
    /// A connection with no bytes seen yet.
    pub fn new(config: ParseConfig) -> Self {
        Self::with_max_pending(config, DEFAULT_MAX_PENDING)
    }

    /// A connection whose stitcher queues each hold at most `max_pending` messages (see
    /// [`Stitcher::new`]).
    pub fn with_max_pending(config: ParseConfig, max_pending: usize) -> Self {
        Self {
            requests: StreamParser::new(MessageKind::Request, config),
            responses: StreamParser::new(MessageKind::Response, config),
            stitcher: Stitcher::new(max_pending),
            scratch: Vec::new(),
        }
    }

    /// Feeds bytes of the direction carrying requests, captured at `ts_ns`.
    pub fn feed_request_side(&mut self, data: &[u8], ts_ns: u64) {
        self.feed(Side::Request, data, ts_ns);
    }

    /// Feeds bytes of the direction carrying responses, captured at `ts_ns`.
    pub fn feed_response_side(&mut self, data: &[u8], ts_ns: u64) {
        self.feed(Side::Response, data, ts_ns);
    }

    /// Feeds bytes of `side`, captured at `ts_ns`.
    pub fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.scratch);
        match side {
            Side::Request => self.requests.feed(data, ts_ns, &mut messages),
            Side::Response => {
                let dropped = self.responses.stats().dropped_partial;
                self.responses.feed(data, ts_ns, &mut messages);
                // Feeding drops a partial message only when it was being resynchronised after
                // a gap, and that message precedes any emitted by this feed.
                self.stitcher.responses_lost(self.responses.stats().dropped_partial - dropped);
            }
        }
        self.push_messages(side, &mut messages);
        self.scratch = messages;
    }

    /// `side` lost `len` bytes (a capture gap) from data carried at `ts_ns`. See
    /// [`StreamParser::gap`]: a gap that ends a body completes its message, which is paired as
    /// usual. When the response side loses sync, the requests still waiting for a response
    /// are dropped.
    pub fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.scratch);
        match side {
            Side::Request => self.requests.gap(len, ts_ns, &mut messages),
            Side::Response => self.responses.gap(len, ts_ns, &mut messages),
        }
        self.push_messages(side, &mut messages);
        self.scratch = messages;
        if side == Side::Response && !self.responses.in_sync() {
            self.stitcher.response_gap();
        }
    }

    /// The connection closed at `ts_ns`: a close-delimited response is completed and paired,
    /// then everything still unpaired is dropped (and counted).
    pub fn close(&mut self, ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.scratch);
        self.requests.close(ts_ns, &mut messages);
        self.push_messages(Side::Request, &mut messages);
        self.responses.close(ts_ns, &mut messages);
        self.push_messages(Side::Response, &mut messages);
        self.scratch = messages;
        self.stitcher.close();
    }

    /// Moves the records paired so far to `out`, oldest first.
    pub fn drain_records(&mut self, out: &mut Vec<Record>) {
        self.stitcher.drain(out);
    }

    /// Counters so far.
    pub fn stats(&self) -> ConnStats {
        ConnStats { request: self.requests.stats(), response: self.responses.stats(), stitch: self.stitcher.stats() }
    }

    /// Hands back a record once its row is built: its messages' buffers are reused for the
    /// next messages (see [`StreamParser::recycle`]).
    pub fn recycle(&mut self, record: Record) {
        self.requests.recycle(record.req);
        self.responses.recycle(record.resp);
    }

    /// Bytes buffered by both parsers for incomplete messages.
    pub fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }

    /// Messages waiting in the stitcher (pending requests plus pending responses).
    pub fn pending_messages(&self) -> usize {
        self.stitcher.pending_requests() + self.stitcher.pending_responses()
    }

    fn push_messages(&mut self, side: Side, messages: &mut Vec<Box<Message>>) {
        for message in messages.drain(..) {
            match side {
                Side::Request => {
                    self.responses.note_request(&message.method);
                    self.stitcher.push_request(message);
                }
                Side::Response => self.stitcher.push_response(message),
            }
        }
    }
}

impl ConnParser for Http1Conn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        Http1Conn::feed(self, side, data, ts_ns);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        Http1Conn::gap(self, side, len, ts_ns);
    }

    fn close(&mut self, ts_ns: u64) {
        Http1Conn::close(self, ts_ns);
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        Http1Conn::drain_records(self, out);
    }

    fn buffered_bytes(&self) -> usize {
        Http1Conn::buffered_bytes(self)
    }

    fn recycle(&mut self, record: Record) {
        Http1Conn::recycle(self, record);
    }

    fn pending_messages(&self) -> usize {
        Http1Conn::pending_messages(self)
    }

    fn shed_oldest(&mut self, n: usize) -> usize {
        self.stitcher.shed_oldest(n)
    }
}

#[cfg(test)]
mod tests;
