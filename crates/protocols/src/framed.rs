//! Length-prefixed framing shared by the binary protocols whose every message starts with a fixed
//! header that says how long the rest is (Kafka, MongoDB, CQL): [`Framer`] cuts one direction's
//! bytes into messages, keeps a bounded prefix of each, and steps over the rest.
//!
//! Owns framing only. Must not decode any protocol's fields (each protocol module gets the kept
//! bytes of a whole message and decodes them) nor pair messages.
//!
//! Memory is bounded whatever the input: a message keeps at most the configured number of bytes,
//! its header included; the rest is counted and skipped, never buffered. These protocols have no
//! marker to resynchronise on: a direction that breaks (an implausible header, or a gap that is not
//! inside a message) stays lost, and its bytes are only counted.

/// Counters kept by one direction's parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Messages emitted.
    pub messages: u64,
    /// Times the direction broke (an implausible header) or a whole message did not decode.
    pub errors: u64,
    /// Bytes counted but not parsed after the direction broke.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Partial messages dropped at a gap or a close.
    pub dropped_partial: u64,
}

/// One whole message: its kept bytes (header first) and what is known of the rest.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The kept prefix, header included.
    pub bytes: &'a [u8],
    /// Some of the message is missing: longer than the keep limit, or lost in a gap.
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a header into `buf`.
    Head { first_ns: u64 },
    /// Reading a message's body: `left` bytes still to come, of which the first are kept.
    Body { left: u64, cut: bool, first_ns: u64 },
    /// Broken: everything is counted and dropped.
    Lost,
}

/// How long the body after a header is, or `None` when the header is implausible.
pub(crate) type BodyLen = fn(&[u8]) -> Option<u64>;

/// The framing state of one direction (see the module doc).
#[derive(Debug, Clone)]
pub(crate) struct Framer {
    head_len: usize,
    body_len: BodyLen,
    keep: usize,
    buf: Vec<u8>,
    state: State,
    stats: ParserStats,
}

impl Default for Framer {
    /// A framer that accepts nothing (a placeholder while the real one is borrowed).
    fn default() -> Self {
        Framer::new(0, |_| None, 0)
    }
}

impl Framer {
    /// A framer for headers of `head_len` bytes, keeping at most `keep` bytes of each message
    /// (never less than the header).
    pub(crate) fn new(head_len: usize, body_len: BodyLen, keep: usize) -> Self {
        Framer {
            head_len,
            body_len,
            keep: keep.max(head_len),
            buf: Vec::new(),
            state: State::Head { first_ns: 0 },
            stats: ParserStats::default(),
        }
    }

    /// Counters so far.
    pub(crate) fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Bytes held for the message in progress.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// A whole message did not decode (the framing stays in sync).
    pub(crate) fn count_error(&mut self) {
        self.stats.errors += 1;
    }

    /// Whether the direction broke for good.
    pub(crate) fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Frames `data`, handing each whole message to `on_frame`. Returns the bytes of `data` not
    /// consumed because `stop` said so after a message (the caller switches framing there).
    pub(crate) fn feed<'d>(
        &mut self,
        mut data: &'d [u8],
        ts_ns: u64,
        on_frame: &mut dyn FnMut(Frame<'_>) -> bool,
    ) -> &'d [u8] {
        while !data.is_empty() {
            match self.state {
                State::Lost => {
                    self.stats.skipped_bytes += data.len() as u64;
                    return &[];
                }
                State::Head { first_ns } => {
                    let first_ns = if self.buf.is_empty() { ts_ns } else { first_ns };
                    let n = (self.head_len - self.buf.len()).min(data.len());
                    let (head, rest) = data.split_at(n);
                    self.buf.extend_from_slice(head);
                    data = rest;
                    self.state = State::Head { first_ns };
                    if self.buf.len() < self.head_len {
                        continue;
                    }
                    match (self.body_len)(&self.buf) {
                        Some(body_len) => {
                            self.state = State::Body { left: body_len, cut: false, first_ns };
                            if body_len == 0 && self.finish(ts_ns, on_frame) {
                                return data;
                            }
                        }
                        None => self.lose(),
                    }
                }
                State::Body { left, .. } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    let room = self.keep.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    if let State::Body { left, cut, .. } = &mut self.state {
                        *left -= n as u64;
                        *cut |= chunk.len() > room;
                    }
                    data = rest;
                    if matches!(self.state, State::Body { left: 0, .. }) && self.finish(ts_ns, on_frame) {
                        return data;
                    }
                }
            }
        }
        data
    }

    /// `len` bytes were lost: inside a message's body the message is marked cut and the framing
    /// stays in sync (the length says where the message ends); elsewhere the direction is lost.
    pub(crate) fn gap(&mut self, len: u64, ts_ns: u64, on_frame: &mut dyn FnMut(Frame<'_>) -> bool) {
        self.stats.gaps += 1;
        match &mut self.state {
            State::Body { left, cut, .. } if len <= *left => {
                *left -= len;
                *cut = true;
                if *left == 0 {
                    self.finish(ts_ns, on_frame);
                }
            }
            State::Lost => {}
            State::Head { .. } if self.buf.is_empty() => {
                // Between messages: the next byte may start one or sit inside one; no way to know.
                self.stats.errors += 1;
                self.state = State::Lost;
            }
            _ => {
                self.stats.dropped_partial += 1;
                self.lose();
            }
        }
    }

    /// The stream ended: a partial message is dropped.
    pub(crate) fn close(&mut self) {
        if !self.buf.is_empty() || matches!(self.state, State::Body { .. }) {
            self.stats.dropped_partial += 1;
        }
        self.buf.clear();
        if !self.is_lost() {
            self.state = State::Head { first_ns: 0 };
        }
    }

    fn lose(&mut self) {
        self.stats.errors += 1;
        self.buf.clear();
        self.state = State::Lost;
    }

    /// Hands the finished message out; returns what `on_frame` said (stop after it).
    fn finish(&mut self, ts_ns: u64, on_frame: &mut dyn FnMut(Frame<'_>) -> bool) -> bool {
        let State::Body { cut, first_ns, .. } = self.state else { return false };
        self.state = State::Head { first_ns: 0 };
        self.stats.messages += 1;
        let stop = on_frame(Frame { bytes: &self.buf, cut, first_ns, last_ns: ts_ns });
        self.buf.clear();
        stop
    }
}

/// A cursor over a message's kept bytes; every read is checked, so a cut or malformed message
/// ends in `None`, never a panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    pub(crate) fn i16_be(&mut self) -> Option<i16> {
        self.array().map(i16::from_be_bytes)
    }

    pub(crate) fn u16_be(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn i32_be(&mut self) -> Option<i32> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn i64_be(&mut self) -> Option<i64> {
        self.array().map(i64::from_be_bytes)
    }

    pub(crate) fn i32_le(&mut self) -> Option<i32> {
        self.array().map(i32::from_le_bytes)
    }

    pub(crate) fn u32_le(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn i64_le(&mut self) -> Option<i64> {
        self.array().map(i64::from_le_bytes)
    }

    pub(crate) fn f64_le(&mut self) -> Option<f64> {
        self.array().map(f64::from_le_bytes)
    }

    /// An unsigned LEB128 varint of at most 5 bytes (Kafka's compact lengths).
    pub(crate) fn uvarint(&mut self) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f).checked_shl(7 * i)?;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A NUL-terminated string (MongoDB's cstring), without its NUL.
    pub(crate) fn cstring(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest();
        let end = memchr::memchr(0, rest)?;
        let s = rest.get(..end)?;
        self.at += end + 1;
        Some(s)
    }
}

/// A JSON object built field by field, keys in wire order.
pub(crate) struct Obj(String);

impl Obj {
    pub(crate) fn new() -> Self {
        Obj(String::from("{"))
    }
    pub(crate) fn raw(&mut self, key: &str, json: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_str(&mut self.0, key);
        self.0.push(':');
        self.0.push_str(json);
    }
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        let mut s = String::with_capacity(value.len() + 2);
        push_json_str(&mut s, value);
        self.raw(key, &s);
    }
    pub(crate) fn num(&mut self, key: &str, value: i64) {
        self.raw(key, &value.to_string());
    }
    pub(crate) fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Appends `value` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, value: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `bytes` as JSON-safe text: UTF-8 kept (invalid sequences replaced), at most `max` bytes;
/// `cut` is set when it was shortened.
pub(crate) fn text(bytes: &[u8], max: usize, cut: &mut bool) -> String {
    if bytes.len() > max {
        *cut = true;
    }
    String::from_utf8_lossy(bytes.get(..max.min(bytes.len())).unwrap_or_default()).into_owned()
}

/// Lowercase hex of at most `max` bytes of `bytes`.
pub(crate) fn hex(bytes: &[u8], max: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(2 * max.min(bytes.len()));
    for b in bytes.iter().take(max) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four_byte_len(head: &[u8]) -> Option<u64> {
        let n = u32::from_be_bytes(head.try_into().ok()?);
        (n < 1000).then_some(u64::from(n))
    }

    fn frames(f: &mut Framer, data: &[u8]) -> Vec<(Vec<u8>, bool)> {
        let mut out = Vec::new();
        f.feed(data, 1, &mut |fr| {
            out.push((fr.bytes.to_vec(), fr.cut));
            false
        });
        out
    }

    #[test]
    fn messages_split_anywhere_come_out_whole_and_long_ones_are_cut() {
        let mut f = Framer::new(4, four_byte_len, 6);
        let stream = b"\0\0\0\x02ab\0\0\0\x00\0\0\0\x05hello";
        let mut got = Vec::new();
        for b in stream.chunks(1) {
            got.extend(frames(&mut f, b));
        }
        assert_eq!(
            got,
            [(b"\0\0\0\x02ab".to_vec(), false), (b"\0\0\0\x00".to_vec(), false), (b"\0\0\0\x05he".to_vec(), true)]
        );
        assert_eq!(f.buffered_bytes(), 0);
    }

    #[test]
    fn a_gap_inside_a_body_keeps_sync_and_elsewhere_loses_the_direction() {
        let mut f = Framer::new(4, four_byte_len, 64);
        assert!(frames(&mut f, b"\0\0\0\x04ab").is_empty());
        let mut out = Vec::new();
        f.gap(2, 2, &mut |fr| {
            out.push(fr.cut);
            false
        });
        assert_eq!(out, [true]);
        assert_eq!(frames(&mut f, b"\0\0\0\x01z").len(), 1);
        f.gap(1, 3, &mut |_| false);
        assert!(f.is_lost());
        assert!(frames(&mut f, b"\0\0\0\x01z").is_empty());
        assert_eq!(f.stats().skipped_bytes, 5);
        let mut bad = Framer::new(4, four_byte_len, 64);
        assert!(frames(&mut bad, b"\xff\xff\xff\xff").is_empty());
        assert_eq!(bad.stats().errors, 1);
    }
}
