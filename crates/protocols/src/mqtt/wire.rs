//! The incremental MQTT parser for one direction of one connection.
//!
//! Owns [`MqttParser`]: the fixed header (type, flags, remaining length), the kept prefix of each
//! packet and the decoding of its fields into a JSON body ([`Packet`]), per protocol level (3.1,
//! 3.1.1, 5; version 5 properties are stepped over). Must not touch pairing (see `conn`).
//!
//! Memory is bounded whatever the input: a packet keeps at most [`MAX_KEPT_HEADER`] bytes plus
//! the payload budget; the rest of a long packet is counted and skipped, never buffered. MQTT has
//! no marker to resynchronise on: a direction that breaks (a malformed fixed header, or a gap
//! inside one) stays lost, and its bytes are only counted.

use std::fmt::Write as _;

/// Bytes of a packet kept beyond the payload budget: enough for any fixed and variable header a
/// client sends in practice (topic names, client ids, version 5 properties).
pub const MAX_KEPT_HEADER: usize = 4096;
/// The largest remaining length MQTT can encode (four length bytes).
const MAX_REMAINING: u64 = 268_435_455;

/// The name of a control packet type (1 `CONNECT` ... 15 `AUTH`).
pub fn packet_type_name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        15 => "AUTH",
        _ => "RESERVED",
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The control packet type, 1 to 15.
    pub kind: u8,
    /// The fixed header's flags (DUP, QoS, RETAIN for `PUBLISH`).
    pub flags: u8,
    /// The packet id, for the packet types that carry one.
    pub packet_id: Option<u16>,
    /// The fields as a JSON object (`{"topic":"a/b","qos":1,...,"payload":"hello"}`); `CONNECT`
    /// carries the password as sent (redaction replaces it).
    pub body: String,
    /// Some of the packet is missing: cut to the limit or lost in a gap.
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

impl Packet {
    /// `PUBLISH`'s QoS (0 for any other packet).
    pub fn qos(&self) -> u8 {
        if self.kind == 3 { (self.flags >> 1) & 3 } else { 0 }
    }
}

/// Counters kept by an [`MqttParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Packets emitted.
    pub packets: u64,
    /// Times the direction broke (malformed fixed header or fields); it then stays lost.
    pub errors: u64,
    /// Bytes counted but not parsed after the direction broke.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Partial packets dropped at a gap or a close.
    pub dropped_partial: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Reading a fixed header into `head`.
    Header,
    /// Reading a packet's body: `left` bytes still to come, of which the first are kept.
    Body { kind: u8, flags: u8, left: u64, first_ns: u64, cut: bool },
    /// Broken: everything is counted and dropped.
    Lost,
}

/// The incremental parser of one direction (see the module doc).
#[derive(Debug, Clone)]
pub struct MqttParser {
    max_value_bytes: usize,
    /// Protocol level: 3 (3.1), 4 (3.1.1) or 5; learnt from `CONNECT`, shared by both directions
    /// through the connection.
    level: u8,
    head: Vec<u8>,
    head_ns: u64,
    kept: Vec<u8>,
    state: State,
    stats: ParserStats,
}

impl MqttParser {
    /// A parser keeping at most `max_value_bytes` of each payload.
    pub fn new(max_value_bytes: usize) -> Self {
        Self {
            max_value_bytes,
            level: 4,
            head: Vec::new(),
            head_ns: 0,
            kept: Vec::new(),
            state: State::Header,
            stats: ParserStats::default(),
        }
    }

    /// Sets the protocol level the packets are decoded with (from the connection's `CONNECT`).
    pub fn set_level(&mut self, level: u8) {
        self.level = level;
    }

    /// Counters so far.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// Bytes held for the packet in progress.
    pub fn buffered_bytes(&self) -> usize {
        self.head.len() + self.kept.len()
    }

    fn keep_limit(&self) -> usize {
        MAX_KEPT_HEADER + self.max_value_bytes
    }

    /// Parses `data`, appending finished packets to `out`.
    pub fn feed(&mut self, mut data: &[u8], ts_ns: u64, out: &mut Vec<Packet>) {
        while !data.is_empty() {
            match self.state {
                State::Lost => {
                    self.stats.skipped_bytes += data.len() as u64;
                    return;
                }
                State::Header => {
                    let Some((&b, rest)) = data.split_first() else { return };
                    if self.head.is_empty() {
                        self.head_ns = ts_ns;
                        if b >> 4 == 0 {
                            self.lose();
                            continue;
                        }
                    }
                    self.head.push(b);
                    data = rest;
                    match remaining_length(self.head.get(1..).unwrap_or_default()) {
                        Length::More if self.head.len() < 5 => {}
                        Length::More | Length::Bad => self.lose(),
                        Length::Done(left) => {
                            let first = self.head.first().copied().unwrap_or_default();
                            self.head.clear();
                            self.kept.clear();
                            self.state = State::Body {
                                kind: first >> 4,
                                flags: first & 0x0f,
                                left,
                                first_ns: self.head_ns,
                                cut: false,
                            };
                            if left == 0 {
                                self.finish(ts_ns, out);
                            }
                        }
                    }
                }
                State::Body { left, .. } => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    let (chunk, rest) = data.split_at(n);
                    let room = self.keep_limit().saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
                    if let State::Body { left, cut, .. } = &mut self.state {
                        *left -= n as u64;
                        *cut |= chunk.len() > room;
                    }
                    data = rest;
                    if matches!(self.state, State::Body { left: 0, .. }) {
                        self.finish(ts_ns, out);
                    }
                }
            }
        }
    }

    /// `len` bytes were lost: inside a packet's body the packet is marked cut and the parser stays
    /// in sync (the length says where the packet ends); elsewhere the direction is lost.
    pub fn gap(&mut self, len: u64, ts_ns: u64, out: &mut Vec<Packet>) {
        self.stats.gaps += 1;
        match &mut self.state {
            State::Body { left, cut, .. } if len <= *left => {
                *left -= len;
                *cut = true;
                if *left == 0 {
                    self.finish(ts_ns, out);
                }
            }
            State::Lost => {}
            State::Header if self.head.is_empty() => {
                // Between packets: the next byte may start one or sit inside one; no way to know.
                self.stats.errors += 1;
                self.state = State::Lost;
            }
            _ => {
                self.stats.dropped_partial += 1;
                self.stats.errors += 1;
                self.head.clear();
                self.kept.clear();
                self.state = State::Lost;
            }
        }
    }

    /// The stream ended: a partial packet is dropped.
    pub fn close(&mut self) {
        if !self.head.is_empty() || matches!(self.state, State::Body { .. }) {
            self.stats.dropped_partial += 1;
        }
        self.head.clear();
        self.kept.clear();
        if !matches!(self.state, State::Lost) {
            self.state = State::Header;
        }
    }

    fn lose(&mut self) {
        self.stats.errors += 1;
        self.head.clear();
        self.kept.clear();
        self.state = State::Lost;
    }

    fn finish(&mut self, ts_ns: u64, out: &mut Vec<Packet>) {
        let State::Body { kind, flags, first_ns, cut, .. } = self.state else { return };
        self.state = State::Header;
        let kept = std::mem::take(&mut self.kept);
        if kind == 1
            && let Some(level) = connect_level(&kept)
        {
            self.level = level;
        }
        let mut cut = cut;
        match decode(kind, flags, &kept, self.level, self.max_value_bytes, &mut cut) {
            Some((packet_id, body)) => {
                self.stats.packets += 1;
                out.push(Packet { kind, flags, packet_id, body, cut, first_ns, last_ns: ts_ns });
            }
            None if cut => {
                // Fields ran past what was kept or captured: the packet is known, its fields not.
                self.stats.packets += 1;
                out.push(Packet { kind, flags, packet_id: None, body: "{}".into(), cut, first_ns, last_ns: ts_ns });
            }
            None => self.lose(),
        }
        // Keep the allocation.
        self.kept = kept;
        self.kept.clear();
    }

    /// The protocol level decoded with.
    pub fn level(&self) -> u8 {
        self.level
    }
}

enum Length {
    Done(u64),
    More,
    Bad,
}

/// The remaining length from its variable-length encoding (1 to 4 bytes).
fn remaining_length(bytes: &[u8]) -> Length {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if i >= 4 {
            return Length::Bad;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return if value <= MAX_REMAINING { Length::Done(value) } else { Length::Bad };
        }
    }
    Length::More
}

/// The protocol level of a `CONNECT` body.
fn connect_level(body: &[u8]) -> Option<u8> {
    let mut r = Reader::new(body);
    let name = r.bytes16()?;
    if name != b"MQTT" && name != b"MQIsdp" {
        return None;
    }
    r.u8().filter(|l| matches!(l, 3..=5))
}

/// A cursor over a packet's kept bytes; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.at..).unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.at >= self.bytes.len()
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
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn text(&mut self) -> Option<String> {
        self.bytes16().map(|b| String::from_utf8_lossy(b).into_owned())
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for i in 0..4 {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Steps over a version 5 property list.
    fn skip_properties(&mut self, level: u8) -> Option<()> {
        if level == 5 {
            let n = usize::try_from(self.varint()?).ok()?;
            self.take(n)?;
        }
        Some(())
    }
}

/// A JSON object built field by field, keys in wire order.
struct Obj(String);

impl Obj {
    fn new() -> Self {
        Obj(String::from("{"))
    }
    fn raw(&mut self, key: &str, json: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "{}:{json}", serde_json::Value::from(key));
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

/// Text of at most `max` bytes of `bytes`, and whether it was cut.
fn bounded(bytes: &[u8], max: usize, cut: &mut bool) -> String {
    if bytes.len() > max {
        *cut = true;
    }
    String::from_utf8_lossy(bytes.get(..max.min(bytes.len())).unwrap_or_default()).into_owned()
}

/// Decodes a packet's fields: its packet id and JSON body, or `None` when they do not parse.
fn decode(kind: u8, flags: u8, body: &[u8], level: u8, max: usize, cut: &mut bool) -> Option<(Option<u16>, String)> {
    let mut r = Reader::new(body);
    let mut o = Obj::new();
    let mut packet_id = None;
    match kind {
        1 => {
            let name = r.text()?;
            let level = r.u8()?;
            let connect_flags = r.u8()?;
            let keep_alive = r.u16()?;
            if !matches!(level, 3..=5) || connect_flags & 1 != 0 {
                return None;
            }
            r.skip_properties(level)?;
            o.str("protocol_name", &name);
            o.num("protocol_level", level.into());
            o.bool("clean_start", connect_flags & 0x02 != 0);
            o.num("keep_alive", keep_alive.into());
            o.str("client_id", &r.text()?);
            if connect_flags & 0x04 != 0 {
                r.skip_properties(level)?;
                o.str("will_topic", &r.text()?);
                let will = r.bytes16()?;
                o.str("will_payload", &bounded(will, max, cut));
                o.num("will_qos", u64::from((connect_flags >> 3) & 3));
                o.bool("will_retain", connect_flags & 0x20 != 0);
            }
            if connect_flags & 0x80 != 0 {
                o.str("username", &r.text()?);
            }
            if connect_flags & 0x40 != 0 {
                let password = r.bytes16()?;
                o.str("password", &String::from_utf8_lossy(password));
            }
        }
        2 => {
            let ack_flags = r.u8()?;
            let code = r.u8()?;
            o.bool("session_present", ack_flags & 1 != 0);
            o.num(if level == 5 { "reason_code" } else { "return_code" }, code.into());
        }
        3 => {
            let qos = (flags >> 1) & 3;
            if qos == 3 {
                return None;
            }
            o.str("topic", &r.text()?);
            o.num("qos", qos.into());
            o.bool("retain", flags & 1 != 0);
            o.bool("dup", flags & 8 != 0);
            if qos > 0 {
                let id = r.u16()?;
                packet_id = Some(id);
                o.num("packet_id", id.into());
            }
            r.skip_properties(level)?;
            o.str("payload", &bounded(r.rest(), max, cut));
        }
        4..=7 => {
            let id = r.u16()?;
            packet_id = Some(id);
            o.num("packet_id", id.into());
            if level == 5
                && let Some(code) = r.u8()
            {
                o.num("reason_code", code.into());
            }
        }
        8 | 10 => {
            let id = r.u16()?;
            packet_id = Some(id);
            o.num("packet_id", id.into());
            r.skip_properties(level)?;
            let mut topics = Vec::new();
            while !r.is_empty() && topics.len() < 64 {
                let filter = r.text()?;
                if kind == 8 {
                    let options = r.u8()?;
                    topics.push(format!("{{\"filter\":{},\"qos\":{}}}", serde_json::Value::from(filter), options & 3));
                } else {
                    topics.push(serde_json::Value::from(filter).to_string());
                }
            }
            o.raw("topics", &format!("[{}]", topics.join(",")));
        }
        9 | 11 => {
            let id = r.u16()?;
            packet_id = Some(id);
            o.num("packet_id", id.into());
            if kind == 9 || level == 5 {
                r.skip_properties(level)?;
                let codes: Vec<String> = r.rest().iter().take(64).map(u8::to_string).collect();
                o.raw(if level == 5 { "reason_codes" } else { "return_codes" }, &format!("[{}]", codes.join(",")));
            }
        }
        12 | 13 => {}
        14 | 15 => {
            if level == 5
                && let Some(code) = r.u8()
            {
                o.num("reason_code", code.into());
            }
        }
        _ => return None,
    }
    Some((packet_id, o.done()))
}

/// Whether the first bytes of a connection are MQTT: a client's `CONNECT` with the protocol name
/// `MQTT` or `MQIsdp`, or exactly the single byte `0x10` (brokers such as mosquitto read the
/// fixed header one byte at a time, so their first read is just the packet type).
pub fn looks_like(first: &[u8]) -> bool {
    if first == [0x10] {
        return true;
    }
    if first.first() != Some(&0x10) {
        return false;
    }
    let mut at = 1;
    while first.get(at).is_some_and(|b| b & 0x80 != 0) && at < 4 {
        at += 1;
    }
    let rest = first.get(at + 1..).unwrap_or_default();
    rest.starts_with(b"\x00\x04MQTT") || rest.starts_with(b"\x00\x06MQIsdp")
}
