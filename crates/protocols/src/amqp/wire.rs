//! The incremental AMQP 0-9-1 parser for one direction of one connection.
//!
//! Owns [`AmqpParser`]: the protocol header, frames (type, channel, size, payload, the `0xCE` end),
//! the decoding of method frames into a [`Method`] with its main arguments as JSON, and content
//! (header frames with the body size, body frames) attached to the method that carries it. Must
//! not touch pairing (see `conn`).
//!
//! Memory is bounded whatever the input: a frame keeps at most [`MAX_KEPT_FRAME`] bytes and a body
//! at most the value budget; the rest is counted and skipped, never buffered. AMQP has no marker to
//! resynchronise on: a direction whose frame does not end with `0xCE` stays lost.

use std::fmt::Write as _;

/// Bytes of a frame's payload kept for decoding; method arguments beyond it are not read (a
/// `Connection.Start` with its server properties is about 500 bytes).
pub const MAX_KEPT_FRAME: usize = 4096;
/// Largest frame size accepted (RabbitMQ's `frame_max` tops out at 128 KiB by default; 16 MiB
/// leaves room for raised limits while rejecting garbage lengths).
const MAX_FRAME: u64 = 16 * 1024 * 1024;
const FRAME_END: u8 = 0xce;

/// The `class.method` name of an AMQP 0-9-1 method (`queue.declare`), or `unknown`.
pub fn method_name(class_id: u16, method_id: u16) -> &'static str {
    match (class_id, method_id) {
        (10, 10) => "connection.start",
        (10, 11) => "connection.start-ok",
        (10, 20) => "connection.secure",
        (10, 21) => "connection.secure-ok",
        (10, 30) => "connection.tune",
        (10, 31) => "connection.tune-ok",
        (10, 40) => "connection.open",
        (10, 41) => "connection.open-ok",
        (10, 50) => "connection.close",
        (10, 51) => "connection.close-ok",
        (10, 60) => "connection.blocked",
        (10, 61) => "connection.unblocked",
        (20, 10) => "channel.open",
        (20, 11) => "channel.open-ok",
        (20, 20) => "channel.flow",
        (20, 21) => "channel.flow-ok",
        (20, 40) => "channel.close",
        (20, 41) => "channel.close-ok",
        (40, 10) => "exchange.declare",
        (40, 11) => "exchange.declare-ok",
        (40, 20) => "exchange.delete",
        (40, 21) => "exchange.delete-ok",
        (40, 30) => "exchange.bind",
        (40, 31) => "exchange.bind-ok",
        (40, 40) => "exchange.unbind",
        (40, 51) => "exchange.unbind-ok",
        (50, 10) => "queue.declare",
        (50, 11) => "queue.declare-ok",
        (50, 20) => "queue.bind",
        (50, 21) => "queue.bind-ok",
        (50, 30) => "queue.purge",
        (50, 31) => "queue.purge-ok",
        (50, 40) => "queue.delete",
        (50, 41) => "queue.delete-ok",
        (50, 50) => "queue.unbind",
        (50, 51) => "queue.unbind-ok",
        (60, 10) => "basic.qos",
        (60, 11) => "basic.qos-ok",
        (60, 20) => "basic.consume",
        (60, 21) => "basic.consume-ok",
        (60, 30) => "basic.cancel",
        (60, 31) => "basic.cancel-ok",
        (60, 40) => "basic.publish",
        (60, 50) => "basic.return",
        (60, 60) => "basic.deliver",
        (60, 70) => "basic.get",
        (60, 71) => "basic.get-ok",
        (60, 72) => "basic.get-empty",
        (60, 80) => "basic.ack",
        (60, 90) => "basic.reject",
        (60, 100) => "basic.recover-async",
        (60, 110) => "basic.recover",
        (60, 111) => "basic.recover-ok",
        (60, 120) => "basic.nack",
        (85, 10) => "confirm.select",
        (85, 11) => "confirm.select-ok",
        (90, 10) => "tx.select",
        (90, 11) => "tx.select-ok",
        (90, 20) => "tx.commit",
        (90, 21) => "tx.commit-ok",
        (90, 30) => "tx.rollback",
        (90, 31) => "tx.rollback-ok",
        _ => "unknown",
    }
}

/// One method frame, with the content that followed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// The channel it was sent on.
    pub channel: u16,
    /// The class id (10 connection, 20 channel, 40 exchange, 50 queue, 60 basic, ...).
    pub class_id: u16,
    /// The method id within the class.
    pub method_id: u16,
    /// `{"method":"queue.declare","queue":"q",...}`: the name and the main arguments; a content
    /// carrier (`basic.publish`, `basic.deliver`, `basic.get-ok`, `basic.return`) also gets
    /// `"body_size"` and `"body"`. `connection.start-ok` carries the login `response` as sent
    /// (redaction replaces it).
    pub msg: String,
    /// Some of the message is missing: cut to the limit or lost in a gap.
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte (or its content's) was captured.
    pub last_ns: u64,
}

/// Counters kept by an [`AmqpParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Method frames emitted.
    pub methods: u64,
    /// Times the direction broke (bad frame type, size or end); it then stays lost.
    pub errors: u64,
    /// Bytes counted but not parsed after the direction broke.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Partial frames or content dropped at a gap or a close.
    pub dropped_partial: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Reading a frame header (or the protocol header) into `head`.
    Header,
    /// Reading a frame's payload: `left` bytes, then the frame end.
    Payload { kind: u8, channel: u16, size: u64, left: u64, first_ns: u64, cut: bool },
    /// Broken: everything is counted and dropped.
    Lost,
}

/// A frame's header fields, handed from the framing loop to the frame's handler.
struct Frame {
    kind: u8,
    channel: u16,
    size: u64,
    cut: bool,
    first_ns: u64,
}

/// A content carrier waiting for its header and body frames.
#[derive(Debug, Clone)]
struct Carrier {
    method: Method,
    /// `None` until the content header says how big the body is.
    body_size: Option<u64>,
    body_seen: u64,
    body: Vec<u8>,
}

/// The incremental parser of one direction (see the module doc).
#[derive(Debug, Clone)]
pub struct AmqpParser {
    max_value_bytes: usize,
    head: Vec<u8>,
    head_ns: u64,
    kept: Vec<u8>,
    state: State,
    /// The content carrier in progress (one at a time per direction: frames of one message are
    /// not interleaved with other content on the same connection in practice, and a new method
    /// frame ends the previous content).
    carrier: Option<Carrier>,
    stats: ParserStats,
}

impl AmqpParser {
    /// A parser keeping at most `max_value_bytes` of each message body.
    pub fn new(max_value_bytes: usize) -> Self {
        Self {
            max_value_bytes,
            head: Vec::new(),
            head_ns: 0,
            kept: Vec::new(),
            state: State::Header,
            carrier: None,
            stats: ParserStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Bytes held for the frame and content in progress.
    pub fn buffered_bytes(&self) -> usize {
        self.head.len() + self.kept.len() + self.carrier.as_ref().map_or(0, |c| c.body.len() + c.method.msg.len())
    }

    /// Parses `data`, appending finished methods to `out`.
    pub fn feed(&mut self, mut data: &[u8], ts_ns: u64, out: &mut Vec<Method>) {
        while !data.is_empty() {
            match self.state {
                State::Lost => {
                    self.stats.skipped_bytes += data.len() as u64;
                    return;
                }
                State::Header => {
                    if self.head.is_empty() {
                        self.head_ns = ts_ns;
                    }
                    let want = 7 - self.head.len().min(7);
                    let n = want.min(data.len());
                    self.head.extend_from_slice(data.get(..n).unwrap_or_default());
                    data = data.get(n..).unwrap_or_default();
                    if self.head.starts_with(b"AMQP") {
                        // The protocol header: 8 bytes, then frames.
                        if self.head.len() == 7 {
                            let Some((_, rest)) = data.split_first() else { continue };
                            data = rest;
                            self.head.clear();
                        }
                        continue;
                    }
                    if self.head.len() < 7 {
                        continue;
                    }
                    let h = &self.head;
                    let (kind, channel) = (h.first().copied().unwrap_or_default(), be16(h.get(1..3)));
                    let size = u64::from(be32(h.get(3..7)));
                    self.head.clear();
                    if !matches!(kind, 1 | 2 | 3 | 8) || size > MAX_FRAME {
                        self.lose();
                        continue;
                    }
                    self.kept.clear();
                    self.state = State::Payload { kind, channel, size, left: size, first_ns: self.head_ns, cut: false };
                }
                State::Payload { left, .. } if left > 0 => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    let room = MAX_KEPT_FRAME.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    if let State::Payload { left, cut, .. } = &mut self.state {
                        *left -= n as u64;
                        *cut |= chunk.len() > room;
                    }
                    data = rest;
                }
                State::Payload { kind, channel, size, first_ns, cut, .. } => {
                    let Some((&end, rest)) = data.split_first() else { return };
                    data = rest;
                    if end != FRAME_END {
                        self.stats.dropped_partial += 1;
                        self.lose();
                        continue;
                    }
                    self.state = State::Header;
                    let kept = std::mem::take(&mut self.kept);
                    self.on_frame(Frame { kind, channel, size, cut, first_ns }, &kept, ts_ns, out);
                    self.kept = kept;
                    self.kept.clear();
                }
            }
        }
    }

    /// `len` bytes were lost: inside a frame's payload it is stepped over (the frame is marked
    /// cut); anywhere else the direction is lost.
    pub fn gap(&mut self, len: u64, _ts_ns: u64) {
        self.stats.gaps += 1;
        match &mut self.state {
            State::Payload { left, cut, .. } if len <= *left => {
                *left -= len;
                *cut = true;
            }
            State::Lost => {}
            _ => {
                if !self.head.is_empty() || matches!(self.state, State::Payload { .. }) {
                    self.stats.dropped_partial += 1;
                }
                self.lose();
            }
        }
    }

    /// The stream ended: a content carrier still waiting is emitted as it is, a partial frame dropped.
    pub fn close(&mut self, out: &mut Vec<Method>) {
        if !self.head.is_empty() || matches!(self.state, State::Payload { .. }) {
            self.stats.dropped_partial += 1;
        }
        self.head.clear();
        self.kept.clear();
        self.flush_carrier(true, out);
        if !matches!(self.state, State::Lost) {
            self.state = State::Header;
        }
    }

    fn lose(&mut self) {
        self.stats.errors += 1;
        self.head.clear();
        self.kept.clear();
        self.carrier = None;
        self.state = State::Lost;
    }

    fn on_frame(&mut self, frame: Frame, payload: &[u8], ts_ns: u64, out: &mut Vec<Method>) {
        let Frame { kind, channel, size, cut, first_ns } = frame;
        match kind {
            1 => {
                self.flush_carrier(true, out);
                let mut r = Reader::new(payload);
                let (Some(class_id), Some(method_id)) = (r.u16(), r.u16()) else {
                    self.lose();
                    return;
                };
                let mut msg_cut = cut;
                let msg = decode_args(class_id, method_id, &mut r, &mut msg_cut);
                let method = Method { channel, class_id, method_id, msg, cut: msg_cut, first_ns, last_ns: ts_ns };
                self.stats.methods += 1;
                if matches!((class_id, method_id), (60, 40) | (60, 50) | (60, 60) | (60, 71)) {
                    self.carrier = Some(Carrier { method, body_size: None, body_seen: 0, body: Vec::new() });
                } else {
                    out.push(method);
                }
            }
            2 => {
                // Content header: class, weight, body size, properties.
                let mut r = Reader::new(payload);
                let size = r.u16().and_then(|_| r.u16()).and_then(|_| r.u64());
                if let Some(c) = self.carrier.as_mut().filter(|c| c.method.channel == channel) {
                    c.body_size = size;
                    c.method.last_ns = ts_ns;
                }
                self.flush_carrier(false, out);
            }
            3 => {
                let max = self.max_value_bytes;
                if let Some(c) = self.carrier.as_mut().filter(|c| c.method.channel == channel) {
                    let room = max.saturating_sub(c.body.len());
                    c.body.extend_from_slice(payload.get(..room.min(payload.len())).unwrap_or_default());
                    c.method.cut |= cut || payload.len() > room;
                    c.body_seen += size;
                    c.method.last_ns = ts_ns;
                }
                self.flush_carrier(false, out);
            }
            _ => {} // Heartbeats carry nothing.
        }
    }

    /// Emits the content carrier when its body is complete, or now when `force`d.
    fn flush_carrier(&mut self, force: bool, out: &mut Vec<Method>) {
        let done = self.carrier.as_ref().is_some_and(|c| c.body_size.is_some_and(|size| c.body_seen >= size));
        if !(done || force) {
            return;
        }
        let Some(mut c) = self.carrier.take() else { return };
        if !done {
            c.method.cut = true;
        }
        // Close the JSON object with the content.
        if c.method.msg.ends_with('}') {
            c.method.msg.pop();
            let _ = write!(
                c.method.msg,
                ",\"body_size\":{},\"body\":{}}}",
                c.body_size.unwrap_or(c.body_seen),
                serde_json::Value::from(String::from_utf8_lossy(&c.body).into_owned())
            );
        }
        out.push(c.method);
    }
}

fn be16(b: Option<&[u8]>) -> u16 {
    match b {
        Some([a, b]) => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

fn be32(b: Option<&[u8]>) -> u32 {
    match b {
        Some([a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]),
        _ => 0,
    }
}

/// A cursor over a frame's kept bytes; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }
    fn u16(&mut self) -> Option<u16> {
        Some(be16(Some(self.take(2)?)))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(be32(Some(self.take(4)?)))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }
    fn shortstr(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        self.take(n).map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn longstr(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// A JSON object built field by field, keys in wire order.
struct Obj(String);

impl Obj {
    fn new(name: &str) -> Self {
        Obj(format!("{{\"method\":{}", serde_json::Value::from(name)))
    }
    fn raw(&mut self, key: &str, json: &str) {
        let _ = write!(self.0, ",{}:{json}", serde_json::Value::from(key));
    }
    fn str(&mut self, key: &str, value: &str) {
        self.raw(key, &serde_json::Value::from(value).to_string());
    }
    fn num(&mut self, key: &str, value: u64) {
        self.raw(key, &value.to_string());
    }
    fn bool(&mut self, key: &str, value: bool) {
        self.raw(key, if value { "true" } else { "false" });
    }
    fn done(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// Decodes the main arguments of a method; what does not parse (cut or unknown) is left out.
fn decode_args(class_id: u16, method_id: u16, r: &mut Reader<'_>, cut: &mut bool) -> String {
    let mut o = Obj::new(method_name(class_id, method_id));
    let parsed = decode_into(&mut o, class_id, method_id, r);
    if parsed.is_none() {
        *cut = true;
    }
    o.done()
}

fn bits(o: &mut Obj, byte: u8, names: &[&str]) {
    for (i, name) in names.iter().enumerate() {
        o.bool(name, byte & (1 << i) != 0);
    }
}

fn decode_into(o: &mut Obj, class_id: u16, method_id: u16, r: &mut Reader<'_>) -> Option<()> {
    match (class_id, method_id) {
        (10, 10) => {
            let (major, minor) = (r.u8()?, r.u8()?);
            o.str("version", &format!("{major}-{minor}"));
            r.longstr()?; // server properties
            o.str("mechanisms", &String::from_utf8_lossy(r.longstr()?));
            o.str("locales", &String::from_utf8_lossy(r.longstr()?));
        }
        (10, 11) => {
            r.longstr()?; // client properties
            o.str("mechanism", &r.shortstr()?);
            o.str("response", &String::from_utf8_lossy(r.longstr()?));
            o.str("locale", &r.shortstr()?);
        }
        (10, 30) | (10, 31) => {
            o.num("channel_max", r.u16()?.into());
            o.num("frame_max", r.u32()?.into());
            o.num("heartbeat", r.u16()?.into());
        }
        (10, 40) => o.str("virtual_host", &r.shortstr()?),
        (10, 50) | (20, 40) => {
            o.num("reply_code", r.u16()?.into());
            o.str("reply_text", &r.shortstr()?);
            o.num("class_id", r.u16()?.into());
            o.num("method_id", r.u16()?.into());
        }
        (40, 10) => {
            r.u16()?;
            o.str("exchange", &r.shortstr()?);
            o.str("type", &r.shortstr()?);
            bits(o, r.u8()?, &["passive", "durable", "auto_delete", "internal", "no_wait"]);
        }
        (50, 10) => {
            r.u16()?;
            o.str("queue", &r.shortstr()?);
            bits(o, r.u8()?, &["passive", "durable", "exclusive", "auto_delete", "no_wait"]);
        }
        (50, 11) => {
            o.str("queue", &r.shortstr()?);
            o.num("message_count", r.u32()?.into());
            o.num("consumer_count", r.u32()?.into());
        }
        (50, 20) | (50, 50) => {
            r.u16()?;
            o.str("queue", &r.shortstr()?);
            o.str("exchange", &r.shortstr()?);
            o.str("routing_key", &r.shortstr()?);
        }
        (50, 30) | (50, 40) => {
            r.u16()?;
            o.str("queue", &r.shortstr()?);
        }
        (60, 10) => {
            o.num("prefetch_size", r.u32()?.into());
            o.num("prefetch_count", r.u16()?.into());
            o.bool("global", r.u8()? & 1 != 0);
        }
        (60, 20) => {
            r.u16()?;
            o.str("queue", &r.shortstr()?);
            o.str("consumer_tag", &r.shortstr()?);
            bits(o, r.u8()?, &["no_local", "no_ack", "exclusive", "no_wait"]);
        }
        (60, 21) | (60, 30) | (60, 31) => o.str("consumer_tag", &r.shortstr()?),
        (60, 40) => {
            r.u16()?;
            o.str("exchange", &r.shortstr()?);
            o.str("routing_key", &r.shortstr()?);
            bits(o, r.u8()?, &["mandatory", "immediate"]);
        }
        (60, 50) => {
            o.num("reply_code", r.u16()?.into());
            o.str("reply_text", &r.shortstr()?);
            o.str("exchange", &r.shortstr()?);
            o.str("routing_key", &r.shortstr()?);
        }
        (60, 60) => {
            o.str("consumer_tag", &r.shortstr()?);
            o.num("delivery_tag", r.u64()?);
            o.bool("redelivered", r.u8()? & 1 != 0);
            o.str("exchange", &r.shortstr()?);
            o.str("routing_key", &r.shortstr()?);
        }
        (60, 70) => {
            r.u16()?;
            o.str("queue", &r.shortstr()?);
            o.bool("no_ack", r.u8()? & 1 != 0);
        }
        (60, 71) => {
            o.num("delivery_tag", r.u64()?);
            o.bool("redelivered", r.u8()? & 1 != 0);
            o.str("exchange", &r.shortstr()?);
            o.str("routing_key", &r.shortstr()?);
            o.num("message_count", r.u32()?.into());
        }
        (60, 80) | (60, 120) => {
            o.num("delivery_tag", r.u64()?);
            o.bool("multiple", r.u8()? & 1 != 0);
        }
        (60, 90) => {
            o.num("delivery_tag", r.u64()?);
            o.bool("requeue", r.u8()? & 1 != 0);
        }
        _ => {}
    }
    Some(())
}

/// Whether the first bytes of a connection are AMQP 0-9-1, and which side sent them: the client's
/// protocol header (`AMQP\0\0\x09\x01`) or the broker's first frame, `Connection.Start`.
pub fn looks_like(first: &[u8]) -> Option<crate::Side> {
    if first.starts_with(b"AMQP\x00\x00\x09\x01") || first == b"AMQP" {
        return Some(crate::Side::Request);
    }
    match first.get(..11) {
        Some([1, 0, 0, 0, _, _, _, 0, 10, 0, 10]) => Some(crate::Side::Response),
        _ => None,
    }
}
