//! Generic request/response stitchers: [`FifoStitcher`] pairs in order (HTTP/1, Redis, most SQL
//! protocols), [`KeyedStitcher`] pairs by a stream or message id (HTTP/2 streams, DNS ids, Kafka
//! correlation ids). Both hand out [`Exchange`]s and keep every queue bounded.
//!
//! Owns pairing only. Must not touch bytes or framing: a protocol's parser produces messages that
//! implement [`Timed`], and the protocol decides which stitcher fits and what its messages' keys are.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;

/// Default bound on each of a stitcher's queues (pending requests, pending responses, ready
/// records).
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// A parsed message with the capture time that pairing and latency use.
pub trait Timed {
    /// For a request, when its first byte was captured; for a response, its last byte, so that
    /// `response - request` spans the whole exchange.
    fn ts_ns(&self) -> u64;
}

impl<T: Timed + ?Sized> Timed for Box<T> {
    fn ts_ns(&self) -> u64 {
        (**self).ts_ns()
    }
}

/// A request paired with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange<Req, Resp> {
    /// The request.
    pub req: Req,
    /// The response.
    pub resp: Resp,
    /// `resp.ts_ns() - req.ts_ns()`, saturating at 0.
    pub latency_ns: u64,
}

impl<Req: Timed, Resp: Timed> Exchange<Req, Resp> {
    /// Pairs `req` with `resp`.
    pub fn new(req: Req, resp: Resp) -> Self {
        Exchange { latency_ns: resp.ts_ns().saturating_sub(req.ts_ns()), req, resp }
    }
}

/// Counters kept by both stitchers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StitchCounts {
    /// Records produced.
    pub records: u64,
    /// Responses dropped because no request could have caused them (in-order: they ended before
    /// the oldest pending request started; keyed: no request had their key), or left over at close.
    pub orphan_responses: u64,
    /// Requests dropped without a response (lost to a gap, replaced by a newer request with the
    /// same key, or left over at close).
    pub unanswered_requests: u64,
    /// Messages or records dropped because a queue was full.
    pub overflow_drops: u64,
}

/// Pairs requests with responses of one connection in order: the protocol has no ids, the n-th
/// response answers the n-th request.
///
/// Pairing is eager: each push pairs what it can, and [`drain`](Self::drain) hands the records out.
/// A response whose timestamp is earlier than the oldest pending request's cannot answer it and is
/// dropped as an orphan; a response with no pending request waits, so the two sides may be fed in
/// either order. Each queue holds at most `max_pending` entries; the oldest goes first.
#[derive(Debug, Clone)]
pub struct FifoStitcher<Req, Resp> {
    requests: VecDeque<Req>,
    responses: VecDeque<Resp>,
    ready: VecDeque<Exchange<Req, Resp>>,
    max_pending: usize,
    counts: StitchCounts,
}

impl<Req: Timed, Resp: Timed> Default for FifoStitcher<Req, Resp> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING)
    }
}

impl<Req: Timed, Resp: Timed> FifoStitcher<Req, Resp> {
    /// A stitcher whose queues each hold at most `max_pending` entries (at least 1).
    pub fn new(max_pending: usize) -> Self {
        Self {
            requests: VecDeque::new(),
            responses: VecDeque::new(),
            ready: VecDeque::new(),
            max_pending: max_pending.max(1),
            counts: StitchCounts::default(),
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> StitchCounts {
        self.counts
    }

    /// Requests waiting for a response.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Responses waiting for a request.
    pub fn pending_responses(&self) -> usize {
        self.responses.len()
    }

    /// The oldest request still waiting for its response.
    pub fn oldest_request(&self) -> Option<&Req> {
        self.requests.front()
    }

    /// Adds the next request of the connection.
    pub fn push_request(&mut self, request: Req) {
        push_bounded(&mut self.requests, request, self.max_pending, &mut self.counts);
        self.pair();
    }

    /// Adds the next response of the connection.
    pub fn push_response(&mut self, response: Resp) {
        push_bounded(&mut self.responses, response, self.max_pending, &mut self.counts);
        self.pair();
    }

    /// Moves the records paired so far to `out`, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Exchange<Req, Resp>>) {
        out.extend(self.ready.drain(..));
    }

    /// The response stream lost bytes and its parser lost sync: the responses to the pending
    /// requests were probably lost, so drop those requests rather than pair every later response
    /// with the wrong request.
    pub fn response_gap(&mut self) {
        self.counts.unanswered_requests += self.requests.len() as u64;
        self.requests.clear();
    }

    /// The response stream lost `n` whole responses while staying in sync: the `n` oldest pending
    /// requests will get no response.
    pub fn responses_lost(&mut self, n: u64) {
        for _ in 0..n {
            if self.requests.pop_front().is_none() {
                break;
            }
            self.counts.unanswered_requests += 1;
        }
    }

    /// Drops up to `n` of the oldest unpaired messages (requests first, then responses) without
    /// counting them: the caller that asked counts them under its own cause. Returns how many.
    pub fn shed_oldest(&mut self, n: usize) -> usize {
        let from_requests = n.min(self.requests.len());
        self.requests.drain(..from_requests);
        let from_responses = (n - from_requests).min(self.responses.len());
        self.responses.drain(..from_responses);
        from_requests + from_responses
    }

    /// The connection closed: unpaired messages can no longer be paired and are dropped.
    pub fn close(&mut self) {
        self.counts.unanswered_requests += self.requests.len() as u64;
        self.counts.orphan_responses += self.responses.len() as u64;
        self.requests.clear();
        self.responses.clear();
    }

    fn pair(&mut self) {
        while let (Some(req), Some(resp)) = (self.requests.front(), self.responses.front()) {
            if resp.ts_ns() < req.ts_ns() {
                self.responses.pop_front();
                self.counts.orphan_responses += 1;
                continue;
            }
            let (Some(req), Some(resp)) = (self.requests.pop_front(), self.responses.pop_front()) else {
                break;
            };
            push_bounded(&mut self.ready, Exchange::new(req, resp), self.max_pending, &mut self.counts);
            self.counts.records += 1;
        }
    }
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, max: usize, counts: &mut StitchCounts) {
    if queue.len() >= max {
        queue.pop_front();
        counts.overflow_drops += 1;
    }
    queue.push_back(item);
}

/// Messages waiting for their partner, by key, with their arrival order for eviction.
#[derive(Debug, Clone)]
struct Waiting<K, M> {
    by_key: HashMap<K, (u64, M)>,
    order: BTreeMap<u64, K>,
}

impl<K: Eq + Hash + Clone, M> Waiting<K, M> {
    fn new() -> Self {
        Waiting { by_key: HashMap::new(), order: BTreeMap::new() }
    }

    fn len(&self) -> usize {
        self.by_key.len()
    }

    fn take(&mut self, key: &K) -> Option<M> {
        let (seq, message) = self.by_key.remove(key)?;
        self.order.remove(&seq);
        Some(message)
    }

    /// Inserts; returns how many entries were dropped (a replaced one with the same key, or the oldest
    /// when full) as (replaced, evicted).
    fn insert(&mut self, seq: u64, key: K, message: M, max: usize) -> (u64, u64) {
        let replaced = u64::from(self.take(&key).is_some());
        let mut evicted = 0;
        while self.by_key.len() >= max {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.by_key.remove(&oldest);
            evicted += 1;
        }
        self.order.insert(seq, key.clone());
        self.by_key.insert(key, (seq, message));
        (replaced, evicted)
    }

    /// Keeps only the entries for which `keep` holds; returns how many were dropped.
    fn retain(&mut self, keep: impl Fn(&M) -> bool) -> u64 {
        let before = self.by_key.len();
        self.by_key.retain(|_, (_, m)| keep(m));
        let by_key = &self.by_key;
        self.order.retain(|_, k| by_key.contains_key(k));
        (before - self.by_key.len()) as u64
    }

    /// Drops up to `n` of the oldest entries; returns how many.
    fn shed(&mut self, n: usize) -> usize {
        let mut dropped = 0;
        while dropped < n {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.by_key.remove(&oldest);
            dropped += 1;
        }
        dropped
    }

    fn clear(&mut self) -> u64 {
        let n = self.by_key.len() as u64;
        self.by_key.clear();
        self.order.clear();
        n
    }
}

/// Pairs requests with responses that carry the same key (a stream id, a DNS id, a correlation
/// id), in whatever order they complete.
///
/// A request whose key is already pending replaces the older one (counted unanswered: ids are
/// reused only after an exchange ends). A response with no pending request waits for it, so sides
/// may be fed in either order; [`expire`](Self::expire) drops what waited too long. Each table
/// holds at most `max_pending` entries; the oldest is evicted first.
#[derive(Debug, Clone)]
pub struct KeyedStitcher<K, Req, Resp> {
    requests: Waiting<K, Req>,
    responses: Waiting<K, Resp>,
    ready: VecDeque<Exchange<Req, Resp>>,
    seq: u64,
    max_pending: usize,
    counts: StitchCounts,
}

impl<K: Eq + Hash + Clone, Req: Timed, Resp: Timed> Default for KeyedStitcher<K, Req, Resp> {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PENDING)
    }
}

impl<K: Eq + Hash + Clone, Req: Timed, Resp: Timed> KeyedStitcher<K, Req, Resp> {
    /// A stitcher whose tables each hold at most `max_pending` entries (at least 1).
    pub fn new(max_pending: usize) -> Self {
        Self {
            requests: Waiting::new(),
            responses: Waiting::new(),
            ready: VecDeque::new(),
            seq: 0,
            max_pending: max_pending.max(1),
            counts: StitchCounts::default(),
        }
    }

    /// Counters so far.
    pub fn counts(&self) -> StitchCounts {
        self.counts
    }

    /// Requests waiting for a response.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// Responses waiting for a request.
    pub fn pending_responses(&self) -> usize {
        self.responses.len()
    }

    /// Adds a request with `key`.
    pub fn push_request(&mut self, key: K, request: Req) {
        if let Some(response) = self.responses.take(&key) {
            self.ready_push(Exchange::new(request, response));
            return;
        }
        self.seq += 1;
        let (replaced, evicted) = self.requests.insert(self.seq, key, request, self.max_pending);
        self.counts.unanswered_requests += replaced;
        self.counts.overflow_drops += evicted;
    }

    /// Adds a response with `key`.
    pub fn push_response(&mut self, key: K, response: Resp) {
        if let Some(request) = self.requests.take(&key) {
            self.ready_push(Exchange::new(request, response));
            return;
        }
        self.seq += 1;
        let (replaced, evicted) = self.responses.insert(self.seq, key, response, self.max_pending);
        self.counts.orphan_responses += replaced;
        self.counts.overflow_drops += evicted;
    }

    /// Drops requests and responses captured before `cutoff_ns`: their partner is not coming.
    pub fn expire(&mut self, cutoff_ns: u64) {
        self.counts.unanswered_requests += self.requests.retain(|m| m.ts_ns() >= cutoff_ns);
        self.counts.orphan_responses += self.responses.retain(|m| m.ts_ns() >= cutoff_ns);
    }

    /// Moves the records paired so far to `out`, oldest first.
    pub fn drain(&mut self, out: &mut Vec<Exchange<Req, Resp>>) {
        out.extend(self.ready.drain(..));
    }

    /// Drops up to `n` of the oldest unpaired messages (requests first, then responses) without
    /// counting them: the caller that asked counts them under its own cause. Returns how many.
    pub fn shed_oldest(&mut self, n: usize) -> usize {
        let from_requests = self.requests.shed(n);
        from_requests + self.responses.shed(n - from_requests)
    }

    /// The connection closed: unpaired messages are dropped.
    pub fn close(&mut self) {
        self.counts.unanswered_requests += self.requests.clear();
        self.counts.orphan_responses += self.responses.clear();
    }

    fn ready_push(&mut self, exchange: Exchange<Req, Resp>) {
        push_bounded(&mut self.ready, exchange, self.max_pending, &mut self.counts);
        self.counts.records += 1;
    }
}

#[cfg(test)]
mod tests;
