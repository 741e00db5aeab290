//! Stream reassembly: one direction's captured chunks put back in byte order, with holes turned
//! into gaps of known length.
//!
//! Owns [`DirStream`] (per-direction reorder by stream position, bounded by bytes held and by
//! time waited), [`Chunk`], [`Piece`] and [`StreamCounters`]. Must not know connections, roles or
//! protocols: the tracker decides what a direction's pieces are for.

use std::collections::BTreeMap;

/// How long and how much a direction may hold back waiting for a missing earlier chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderLimits {
    /// Bytes held per direction; past this the hole is declared a gap.
    pub max_pending_bytes: usize,
    /// Chunks older than this (monotonic ns) are delivered after a gap.
    pub max_reorder_wait_ns: u64,
}

/// What reassembly saw and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounters {
    /// Bytes lost to capture gaps (truncation or missing chunks).
    pub gap_bytes: u64,
    /// Duplicate or overlapping chunks dropped.
    pub duplicate_chunks: u64,
}

/// One captured chunk: `data` holds the first bytes of the `msg_size` the syscall moved.
pub struct Chunk {
    /// When the syscall finished (monotonic ns).
    pub ts_ns: u64,
    /// Bytes of the stream the chunk accounts for.
    pub msg_size: u64,
    /// Bytes captured.
    pub data: Vec<u8>,
}

/// What a direction stream hands on: bytes in order, or a hole (bytes the stream moved but
/// nobody copied: past the kernel's per-syscall copy limit, sent by `sendfile`/`splice`, or
/// lost records), stamped with the syscall that reported it.
pub enum Piece {
    /// Bytes, in stream order.
    Bytes {
        /// Capture time.
        ts_ns: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A hole of `len` bytes.
    Gap {
        /// Capture time of the chunk that revealed it.
        ts_ns: u64,
        /// Its length.
        len: u64,
    },
}

/// One direction's bytes, delivered in position order.
#[derive(Default)]
pub struct DirStream {
    next_pos: Option<u64>,
    pending: BTreeMap<u64, Chunk>,
    pending_bytes: usize,
}

impl DirStream {
    /// A stream whose next expected byte is at `pos` (a connection seen opening starts at 0;
    /// one first seen on data starts wherever its first chunk is).
    pub fn starting_at(pos: u64) -> Self {
        DirStream { next_pos: Some(pos), ..DirStream::default() }
    }

    /// The zero-copy path: when a chunk at `pos` is the next expected one and nothing waits,
    /// accepts it without holding it (the caller hands its bytes straight to the parser) and
    /// returns how many of the `msg_size` bytes it accounts for were not captured (a gap after
    /// its `captured` bytes). `None` when the chunk must go through [`push`](Self::push).
    pub fn take_in_order(
        &mut self,
        pos: u64,
        msg_size: u64,
        captured: usize,
        counters: &mut StreamCounters,
    ) -> Option<u64> {
        let next = *self.next_pos.get_or_insert(pos);
        if pos != next || !self.pending.is_empty() {
            return None;
        }
        let captured = captured as u64;
        let missing = msg_size.saturating_sub(captured);
        self.next_pos = Some(pos + msg_size.max(captured));
        counters.gap_bytes += missing;
        Some(missing)
    }

    /// Accepts a chunk at `pos` and pushes whatever became contiguous to `out`.
    pub fn push(
        &mut self,
        pos: u64,
        chunk: Chunk,
        limits: &ReorderLimits,
        counters: &mut StreamCounters,
        out: &mut Vec<Piece>,
    ) {
        let next = *self.next_pos.get_or_insert(pos);
        if pos < next {
            counters.duplicate_chunks += 1;
            return;
        }
        if pos == next && self.pending.is_empty() {
            // The common case, chunks in order: no detour through the reorder map.
            self.deliver(pos, chunk, counters, out);
            return;
        }
        self.pending_bytes += chunk.data.len();
        if self.pending.insert(pos, chunk).is_some() {
            counters.duplicate_chunks += 1;
        }
        self.drain(limits, None, counters, out);
    }

    /// Delivers contiguous chunks; declares a gap before the oldest pending chunk when too much
    /// is pending or it waited too long (judged against `now_ns` when given).
    pub fn drain(
        &mut self,
        limits: &ReorderLimits,
        now_ns: Option<u64>,
        counters: &mut StreamCounters,
        out: &mut Vec<Piece>,
    ) {
        while let Some((&pos, first)) = self.pending.iter().next() {
            let Some(next) = self.next_pos else { return };
            if pos > next {
                let stale = now_ns.is_some_and(|now| now.saturating_sub(first.ts_ns) > limits.max_reorder_wait_ns);
                if self.pending_bytes <= limits.max_pending_bytes && !stale {
                    return;
                }
                out.push(Piece::Gap { ts_ns: first.ts_ns, len: pos - next });
                counters.gap_bytes += pos - next;
                self.next_pos = Some(pos);
            }
            let Some(chunk) = self.pending.remove(&pos) else { return };
            self.pending_bytes -= chunk.data.len();
            self.deliver(pos, chunk, counters, out);
        }
    }

    /// Hands on the chunk at `pos` (the next expected position), and a gap for what it did not capture.
    fn deliver(&mut self, pos: u64, chunk: Chunk, counters: &mut StreamCounters, out: &mut Vec<Piece>) {
        let captured = chunk.data.len() as u64;
        let missing = chunk.msg_size.saturating_sub(captured);
        self.next_pos = Some(pos + chunk.msg_size.max(captured));
        let ts_ns = chunk.ts_ns;
        if !chunk.data.is_empty() {
            out.push(Piece::Bytes { ts_ns, data: chunk.data });
        }
        if missing > 0 {
            out.push(Piece::Gap { ts_ns, len: missing });
            counters.gap_bytes += missing;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReorderLimits = ReorderLimits { max_pending_bytes: 8, max_reorder_wait_ns: 100 };

    fn chunk(ts_ns: u64, data: &[u8], msg_size: u64) -> Chunk {
        Chunk { ts_ns, msg_size, data: data.to_vec() }
    }

    /// Pieces as text: bytes as they are, gaps as `<gap n>`.
    fn text(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes { data, .. } => String::from_utf8_lossy(data).into_owned(),
                Piece::Gap { len, .. } => format!("<gap {len}>"),
            })
            .collect()
    }

    #[test]
    fn out_of_order_chunks_come_out_in_order_and_duplicates_are_dropped() {
        let mut s = DirStream::starting_at(0);
        let mut c = StreamCounters::default();
        let mut out = Vec::new();
        s.push(3, chunk(2, b"def", 3), &LIMITS, &mut c, &mut out);
        assert!(out.is_empty());
        s.push(0, chunk(1, b"abc", 3), &LIMITS, &mut c, &mut out);
        s.push(0, chunk(3, b"abc", 3), &LIMITS, &mut c, &mut out);
        assert_eq!(text(&out), ["abc", "def"]);
        assert_eq!(c, StreamCounters { gap_bytes: 0, duplicate_chunks: 1 });
    }

    #[test]
    fn uncaptured_bytes_and_holes_become_gaps() {
        let mut s = DirStream::starting_at(10);
        let mut c = StreamCounters::default();
        let mut out = Vec::new();
        // A syscall of 100 bytes of which 2 were copied.
        s.push(10, chunk(1, b"ab", 100), &LIMITS, &mut c, &mut out);
        // A hole of 5 bytes, then more pending than the limit allows: the hole is given up.
        s.push(115, chunk(2, b"0123456789", 10), &LIMITS, &mut c, &mut out);
        assert_eq!(text(&out), ["ab", "<gap 98>", "<gap 5>", "0123456789"]);
        assert_eq!(c.gap_bytes, 103);
    }

    #[test]
    fn in_order_chunks_are_taken_without_holding_and_others_are_refused() {
        let mut s = DirStream::starting_at(0);
        let mut c = StreamCounters::default();
        let mut out = Vec::new();
        // 3 bytes of a 10-byte syscall captured: next expected is 10, 7 bytes missing.
        assert_eq!(s.take_in_order(0, 10, 3, &mut c), Some(7));
        assert_eq!(s.take_in_order(12, 2, 2, &mut c), None, "ahead of the stream: must be held");
        s.push(12, chunk(1, b"yz", 2), &LIMITS, &mut c, &mut out);
        assert_eq!(s.take_in_order(10, 2, 2, &mut c), None, "a chunk waits: order goes through push");
        s.push(10, chunk(2, b"wx", 2), &LIMITS, &mut c, &mut out);
        assert_eq!(text(&out), ["wx", "yz"]);
        assert_eq!(s.take_in_order(14, 1, 1, &mut c), Some(0));
        assert_eq!(c, StreamCounters { gap_bytes: 7, duplicate_chunks: 0 });
    }

    #[test]
    fn a_hole_is_given_up_after_the_reorder_wait() {
        let mut s = DirStream::starting_at(0);
        let mut c = StreamCounters::default();
        let mut out = Vec::new();
        s.push(4, chunk(50, b"x", 1), &LIMITS, &mut c, &mut out);
        s.drain(&LIMITS, Some(100), &mut c, &mut out);
        assert!(out.is_empty(), "waits while the hole is young");
        s.drain(&LIMITS, Some(151), &mut c, &mut out);
        assert_eq!(text(&out), ["<gap 4>", "x"]);
    }
}
