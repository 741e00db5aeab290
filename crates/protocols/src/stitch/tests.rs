//! Unit tests of the generic stitchers, on plain timed messages.

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
struct M(&'static str, u64);

impl Timed for M {
    fn ts_ns(&self) -> u64 {
        self.1
    }
}

fn fifo_drained(s: &mut FifoStitcher<M, M>) -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    s.drain(&mut out);
    out.into_iter().map(|e| (e.req.0, e.resp.0, e.latency_ns)).collect()
}

fn keyed_drained(s: &mut KeyedStitcher<u16, M, M>) -> Vec<(&'static str, &'static str, u64)> {
    let mut out = Vec::new();
    s.drain(&mut out);
    out.into_iter().map(|e| (e.req.0, e.resp.0, e.latency_ns)).collect()
}

#[test]
fn fifo_pairs_in_order_whichever_side_comes_first() {
    let mut s = FifoStitcher::default();
    s.push_request(M("a", 10));
    s.push_request(M("b", 11));
    s.push_response(M("A", 15));
    assert_eq!(s.oldest_request(), Some(&M("b", 11)));
    s.push_response(M("B", 30));
    s.push_response(M("C", 40));
    assert!(fifo_drained(&mut s) == [("a", "A", 5), ("b", "B", 19)]);
    assert_eq!(s.pending_responses(), 1);
    s.push_request(M("c", 35));
    assert_eq!(fifo_drained(&mut s), [("c", "C", 5)]);
    assert_eq!(s.counts(), StitchCounts { records: 3, ..StitchCounts::default() });
}

#[test]
fn fifo_drops_a_response_older_than_the_oldest_request() {
    let mut s = FifoStitcher::default();
    s.push_response(M("stale", 5));
    s.push_request(M("a", 10));
    s.push_response(M("A", 12));
    assert_eq!(fifo_drained(&mut s), [("a", "A", 2)]);
    assert_eq!(s.counts().orphan_responses, 1);
}

#[test]
fn fifo_gaps_drop_the_requests_that_lost_their_responses() {
    let mut s = FifoStitcher::default();
    for (name, ts) in [("a", 1), ("b", 2), ("c", 3)] {
        s.push_request(M(name, ts));
    }
    s.responses_lost(1);
    s.push_response(M("B", 5));
    assert_eq!(fifo_drained(&mut s), [("b", "B", 3)]);
    s.response_gap();
    assert_eq!(s.pending_requests(), 0);
    s.push_request(M("d", 6));
    s.push_response(M("D", 7));
    s.push_response(M("E", 8));
    s.close();
    assert_eq!(fifo_drained(&mut s), [("d", "D", 1)]);
    assert_eq!(s.counts(), StitchCounts { records: 2, orphan_responses: 1, unanswered_requests: 2, overflow_drops: 0 });
}

#[test]
fn fifo_queues_are_bounded() {
    let mut s = FifoStitcher::new(3);
    for i in 0..10 {
        s.push_request(M("r", i));
    }
    assert_eq!((s.pending_requests(), s.counts().overflow_drops), (3, 7));
    for i in 0..10 {
        s.push_response(M("R", 100 + i));
    }
    assert_eq!(fifo_drained(&mut s), [("r", "R", 93), ("r", "R", 93), ("r", "R", 93)]);
    assert_eq!(s.pending_responses(), 3);
    assert_eq!(s.counts().overflow_drops, 7 + 4);
}

#[test]
fn keyed_pairs_by_key_in_any_order() {
    let mut s = KeyedStitcher::default();
    s.push_request(1, M("q1", 10));
    s.push_request(2, M("q2", 11));
    s.push_response(2, M("r2", 20));
    s.push_response(3, M("r3", 21));
    s.push_response(1, M("r1", 30));
    assert_eq!(keyed_drained(&mut s), [("q2", "r2", 9), ("q1", "r1", 20)]);
    assert_eq!(s.pending_responses(), 1);
    s.push_request(3, M("q3", 15));
    assert_eq!(keyed_drained(&mut s), [("q3", "r3", 6)]);
    assert_eq!(s.counts().records, 3);
}

#[test]
fn keyed_reused_key_replaces_the_pending_request() {
    let mut s = KeyedStitcher::default();
    s.push_request(7, M("old", 1));
    s.push_request(7, M("new", 2));
    s.push_response(7, M("r", 5));
    assert_eq!(keyed_drained(&mut s), [("new", "r", 3)]);
    assert_eq!(s.counts().unanswered_requests, 1);
}

#[test]
fn keyed_expire_and_close_drop_and_count() {
    let mut s = KeyedStitcher::default();
    s.push_request(1, M("q1", 10));
    s.push_request(2, M("q2", 50));
    s.push_response(9, M("r9", 20));
    s.expire(30);
    assert_eq!((s.pending_requests(), s.pending_responses()), (1, 0));
    s.close();
    assert_eq!((s.pending_requests(), s.pending_responses()), (0, 0));
    assert_eq!(s.counts(), StitchCounts { records: 0, orphan_responses: 1, unanswered_requests: 2, overflow_drops: 0 });
}

#[test]
fn keyed_tables_evict_the_oldest_when_full() {
    let mut s = KeyedStitcher::new(2);
    s.push_request(1, M("q1", 1));
    s.push_request(2, M("q2", 2));
    s.push_request(3, M("q3", 3));
    assert_eq!((s.pending_requests(), s.counts().overflow_drops), (2, 1));
    s.push_response(1, M("r1", 4));
    s.push_response(2, M("r2", 5));
    s.push_response(3, M("r3", 6));
    // q1 was evicted: its response waits as an orphan until close.
    assert_eq!(keyed_drained(&mut s), [("q2", "r2", 3), ("q3", "r3", 3)]);
    assert_eq!(s.pending_responses(), 1);
}

#[test]
fn keyed_shedding_drops_the_oldest_requests_first_uncounted() {
    let mut s: KeyedStitcher<u32, M, M> = KeyedStitcher::new(8);
    s.push_request(1, M("a", 10));
    s.push_request(2, M("b", 20));
    s.push_response(9, M("c", 30));
    assert_eq!(s.shed_oldest(2), 2);
    assert_eq!((s.pending_requests(), s.pending_responses()), (0, 1));
    assert_eq!(s.shed_oldest(5), 1);
    assert_eq!(s.counts(), StitchCounts::default());
}
