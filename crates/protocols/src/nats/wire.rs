//! The incremental NATS parser for one direction of one connection.
//!
//! Owns [`NatsParser`]: control lines (`INFO`, `CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `MSG`,
//! `HMSG`, `PING`, `PONG`, `+OK`, `-ERR`; verbs in any case, arguments separated by spaces or
//! tabs), the payloads that follow `PUB`/`MSG` and their header forms, stepping over capture gaps
//! inside a payload, resynchronisation at the next line end after garbage or a gap, and
//! [`ParserStats`]. Must not touch pairing (see `conn`), and does no I/O.
//!
//! Memory is bounded whatever the input: a control line is at most [`MAX_LINE_BYTES`] and a
//! payload keeps at most `max_value_bytes`; the rest of a payload is streamed past, never buffered.

use std::fmt::Write as _;

use crate::conn_parser::Side;

/// Longest control line accepted. nats-server's own default (`max_control_line`) is 4 KiB; a
/// `CONNECT` carrying a user JWT can pass that when the server is configured for it.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Largest payload length accepted (nats-server caps `max_payload` at 64 MiB).
const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

/// One NATS protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The verb in upper case (`PUB`, `+OK`, `-ERR`).
    pub cmd: String,
    /// Its options: the JSON document of `INFO` and `CONNECT` as sent; for the other verbs a JSON
    /// object of their arguments (`{"subject":..,"sid":..,"payload":..}`), the payload as text;
    /// for `-ERR` the error text; empty for `PING`, `PONG` and `+OK`.
    pub body: String,
    /// Some of the body is missing: cut to the limit or lost in a gap.
    pub cut: bool,
    /// When its last byte was captured.
    pub ts_ns: u64,
}

/// Counters kept by a [`NatsParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParserStats {
    /// Messages emitted.
    pub messages: u64,
    /// Times the parser met a line it could not read (unknown verb, bad arguments, a line over
    /// the limit, a payload not ended by CRLF); a run of garbage while out of sync counts once.
    pub errors: u64,
    /// Bytes discarded while looking for the next line.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Partial messages dropped at a gap or a close.
    pub dropped_partial: u64,
}

/// Where the parser is in the stream.
#[derive(Debug, Clone)]
enum State {
    /// Reading a control line into `line`.
    Line,
    /// Reading the payload of `pending`: `remaining` bytes of headers and payload, then the CRLF.
    Payload { pending: Pending, remaining: u64, crlf: u8 },
    /// Out of sync: discarding up to the next LF, then reading lines again.
    Skip,
}

/// A `PUB`/`HPUB`/`MSG`/`HMSG` waiting for its payload.
#[derive(Debug, Clone)]
struct Pending {
    cmd: &'static str,
    subject: String,
    sid: Option<String>,
    reply_to: Option<String>,
    /// Header bytes at the start of the payload (the `H` forms), shown apart.
    header_len: u64,
    /// Kept payload bytes (headers first), at most `max_value_bytes`.
    kept: Vec<u8>,
    cut: bool,
}

/// The incremental parser of one direction (see the module doc).
#[derive(Debug, Clone)]
pub struct NatsParser {
    side: Side,
    max_value_bytes: usize,
    line: Vec<u8>,
    state: State,
    /// Set after an error while skipping, so a run of garbage counts as one error.
    lost: bool,
    stats: ParserStats,
}

impl NatsParser {
    /// A parser for `side` keeping at most `max_value_bytes` of each payload.
    pub fn new(side: Side, max_value_bytes: usize) -> Self {
        Self { side, max_value_bytes, line: Vec::new(), state: State::Line, lost: false, stats: ParserStats::default() }
    }

    /// Which direction it parses.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Counters so far.
    pub fn stats(&self) -> ParserStats {
        self.stats
    }

    /// False while the parser is looking for a line start after garbage or a gap.
    pub fn in_sync(&self) -> bool {
        !matches!(self.state, State::Skip)
    }

    /// Bytes held for the message in progress.
    pub fn buffered_bytes(&self) -> usize {
        let kept = match &self.state {
            State::Payload { pending, .. } => pending.kept.len() + pending.subject.len(),
            _ => 0,
        };
        self.line.len() + kept
    }

    /// Parses `data`, appending finished messages to `out`.
    pub fn feed(&mut self, mut data: &[u8], ts_ns: u64, out: &mut Vec<Message>) {
        while !data.is_empty() {
            data = match std::mem::replace(&mut self.state, State::Line) {
                State::Skip => self.skip(data),
                State::Line => self.read_line(data, ts_ns, out),
                State::Payload { pending, remaining, crlf } => {
                    self.read_payload(pending, remaining, crlf, data, ts_ns, out)
                }
            };
        }
    }

    /// `len` bytes were lost: a gap inside a payload is stepped over (the message is marked cut);
    /// anywhere else the message in progress is dropped and the parser looks for the next line.
    pub fn gap(&mut self, len: u64, ts_ns: u64, out: &mut Vec<Message>) {
        self.stats.gaps += 1;
        match std::mem::replace(&mut self.state, State::Skip) {
            State::Payload { mut pending, remaining, crlf } if len <= remaining => {
                // Still in sync: the payload's length says where it ends.
                pending.cut = true;
                self.state = State::Payload { pending, remaining: remaining - len, crlf };
            }
            State::Payload { mut pending, .. } => {
                // The gap ran past the payload: emit what we have and resync on the next line.
                pending.cut = true;
                self.emit(pending, ts_ns, out);
                self.lost = true;
            }
            State::Line if self.line.is_empty() => {
                self.lost = true;
            }
            State::Line | State::Skip => {
                if !self.line.is_empty() {
                    self.stats.dropped_partial += 1;
                }
                self.line.clear();
                self.lost = true;
            }
        }
    }

    /// The stream ended: a partial message is dropped.
    pub fn close(&mut self) {
        if !self.line.is_empty() || matches!(self.state, State::Payload { .. }) {
            self.stats.dropped_partial += 1;
        }
        self.line.clear();
        self.state = State::Line;
    }

    fn skip<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        match data.iter().position(|&b| b == b'\n') {
            Some(at) => {
                self.stats.skipped_bytes += at as u64 + 1;
                self.state = State::Line;
                data.get(at + 1..).unwrap_or_default()
            }
            None => {
                self.stats.skipped_bytes += data.len() as u64;
                self.state = State::Skip;
                &[]
            }
        }
    }

    fn read_line<'a>(&mut self, data: &'a [u8], ts_ns: u64, out: &mut Vec<Message>) -> &'a [u8] {
        let (take, rest, done) = match data.iter().position(|&b| b == b'\n') {
            Some(at) => (data.get(..at).unwrap_or_default(), data.get(at + 1..).unwrap_or_default(), true),
            None => (data, &[][..], false),
        };
        if self.line.len() + take.len() > MAX_LINE_BYTES {
            self.line.clear();
            self.error();
            self.stats.skipped_bytes += take.len() as u64;
            self.state = if done { State::Line } else { State::Skip };
            return rest;
        }
        self.line.extend_from_slice(take);
        if !done {
            self.state = State::Line;
            return rest;
        }
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.on_line(&line, ts_ns, out);
        // Keep the allocation for the next line.
        line.clear();
        self.line = line;
        rest
    }

    fn on_line(&mut self, line: &[u8], ts_ns: u64, out: &mut Vec<Message>) {
        let text = String::from_utf8_lossy(line);
        let trimmed = text.trim_start_matches([' ', '\t']);
        let (verb, rest) = match trimmed.find([' ', '\t']) {
            Some(at) => (trimmed.get(..at).unwrap_or_default(), trimmed.get(at..).unwrap_or_default()),
            None => (trimmed, ""),
        };
        if verb.is_empty() && rest.trim().is_empty() {
            // An empty line: clients send none, but it costs nothing to step over.
            return;
        }
        let upper = verb.to_ascii_uppercase();
        let args: Vec<&str> = rest.split([' ', '\t']).filter(|a| !a.is_empty()).collect();
        let simple = |cmd: &str, body: String, cut: bool| Message { cmd: cmd.to_string(), body, cut, ts_ns };
        let parsed: Option<Message> = match upper.as_str() {
            "INFO" | "CONNECT" => {
                let json = rest.trim_matches([' ', '\t']);
                let (body, cut) = keep_prefix(json, self.max_value_bytes);
                Some(simple(if upper == "INFO" { "INFO" } else { "CONNECT" }, body, cut))
            }
            "PING" | "PONG" | "+OK" if args.is_empty() => Some(simple(
                match upper.as_str() {
                    "PING" => "PING",
                    "PONG" => "PONG",
                    _ => "+OK",
                },
                String::new(),
                false,
            )),
            "-ERR" => {
                let (body, cut) = keep_prefix(rest.trim_matches([' ', '\t']), self.max_value_bytes);
                Some(simple("-ERR", body, cut))
            }
            "SUB" if matches!(args.len(), 2 | 3) => {
                let mut body = object();
                field(&mut body, "subject", args.first().copied().unwrap_or_default());
                if let [_, queue, _] = args.as_slice() {
                    field(&mut body, "queue_group", queue);
                }
                field(&mut body, "sid", args.last().copied().unwrap_or_default());
                Some(simple("SUB", close_object(body), false))
            }
            "UNSUB" if matches!(args.len(), 1 | 2) && args.get(1).is_none_or(|m| m.parse::<u64>().is_ok()) => {
                let mut body = object();
                field(&mut body, "sid", args.first().copied().unwrap_or_default());
                if let Some(max) = args.get(1) {
                    field(&mut body, "max_msgs", max);
                }
                Some(simple("UNSUB", close_object(body), false))
            }
            "PUB" | "HPUB" | "MSG" | "HMSG" => match payload_header(&upper, &args) {
                Some(pending_and_len) => {
                    let (pending, total) = pending_and_len;
                    self.state = State::Payload { pending, remaining: total, crlf: 2 };
                    self.lost = false;
                    return;
                }
                None => None,
            },
            _ => None,
        };
        match parsed {
            Some(message) => {
                self.lost = false;
                self.stats.messages += 1;
                out.push(message);
            }
            None => self.error(),
        }
    }

    fn read_payload<'a>(
        &mut self,
        mut pending: Pending,
        mut remaining: u64,
        mut crlf: u8,
        data: &'a [u8],
        ts_ns: u64,
        out: &mut Vec<Message>,
    ) -> &'a [u8] {
        let mut data = data;
        if remaining > 0 {
            let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(data.len());
            let (chunk, rest) = data.split_at(n);
            let room = self.max_value_bytes.saturating_sub(pending.kept.len());
            pending.kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
            if chunk.len() > room {
                pending.cut = true;
            }
            remaining -= n as u64;
            data = rest;
        }
        while remaining == 0 && crlf > 0 {
            let Some((&b, rest)) = data.split_first() else { break };
            let want = if crlf == 2 { b'\r' } else { b'\n' };
            if b != want {
                // The payload did not end where its length said: not NATS as we read it.
                self.error();
                self.stats.dropped_partial += 1;
                self.state = State::Skip;
                return data;
            }
            crlf -= 1;
            data = rest;
        }
        if remaining == 0 && crlf == 0 {
            self.emit(pending, ts_ns, out);
            self.state = State::Line;
        } else {
            self.state = State::Payload { pending, remaining, crlf };
        }
        data
    }

    fn emit(&mut self, pending: Pending, ts_ns: u64, out: &mut Vec<Message>) {
        let mut body = object();
        field(&mut body, "subject", &pending.subject);
        if let Some(sid) = &pending.sid {
            field(&mut body, "sid", sid);
        }
        if let Some(reply) = &pending.reply_to {
            field(&mut body, "reply_to", reply);
        }
        let header_len = usize::try_from(pending.header_len).unwrap_or(usize::MAX);
        let (headers, payload) = pending.kept.split_at(header_len.min(pending.kept.len()));
        if pending.header_len > 0 {
            field(&mut body, "headers", &String::from_utf8_lossy(headers));
        }
        field(&mut body, "payload", &String::from_utf8_lossy(payload));
        self.stats.messages += 1;
        out.push(Message { cmd: pending.cmd.to_string(), body: close_object(body), cut: pending.cut, ts_ns });
    }

    fn error(&mut self) {
        if !self.lost {
            self.stats.errors += 1;
        }
        self.lost = true;
    }
}

/// The pending message and the byte count (headers and payload) of a `PUB`, `HPUB`, `MSG` or
/// `HMSG` line, or `None` when its arguments do not fit the verb.
fn payload_header(verb: &str, args: &[&str]) -> Option<(Pending, u64)> {
    let size = |s: &str| s.parse::<u64>().ok().filter(|&n| n <= MAX_PAYLOAD);
    let (cmd, subject, sid, reply_to, header_len, total): (&'static str, &str, Option<&str>, Option<&str>, u64, u64) =
        match (verb, args) {
            ("PUB", [subject, n]) => ("PUB", subject, None, None, 0, size(n)?),
            ("PUB", [subject, reply, n]) => ("PUB", subject, None, Some(reply), 0, size(n)?),
            ("HPUB", [subject, h, n]) => ("HPUB", subject, None, None, size(h)?, size(n)?),
            ("HPUB", [subject, reply, h, n]) => ("HPUB", subject, None, Some(reply), size(h)?, size(n)?),
            ("MSG", [subject, sid, n]) => ("MSG", subject, Some(sid), None, 0, size(n)?),
            ("MSG", [subject, sid, reply, n]) => ("MSG", subject, Some(sid), Some(reply), 0, size(n)?),
            ("HMSG", [subject, sid, h, n]) => ("HMSG", subject, Some(sid), None, size(h)?, size(n)?),
            ("HMSG", [subject, sid, reply, h, n]) => ("HMSG", subject, Some(sid), Some(reply), size(h)?, size(n)?),
            _ => return None,
        };
    if header_len > total {
        return None;
    }
    let pending = Pending {
        cmd,
        subject: subject.to_string(),
        sid: sid.map(str::to_string),
        reply_to: reply_to.map(str::to_string),
        header_len,
        kept: Vec::new(),
        cut: false,
    };
    Some((pending, total))
}

/// `text` cut to at most `max` bytes at a character boundary, and whether it was cut.
fn keep_prefix(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_string(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text.get(..end).unwrap_or_default().to_string(), true)
}

/// The start of a JSON object built field by field, keys in protocol order.
fn object() -> String {
    String::from("{")
}

fn field(out: &mut String, key: &str, value: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    let _ = write!(out, "{}:{}", serde_json::Value::from(key), serde_json::Value::from(value));
}

fn close_object(mut out: String) -> String {
    out.push('}');
    out
}

/// Whether the first bytes of a connection are NATS, and which side sent them: the server's
/// greeting (`INFO {`) or a client's `CONNECT {`. Only these two: a connection caught after its
/// start is not guessed from `PUB` or `PING`, which other line protocols share.
pub fn looks_like(first: &[u8]) -> Option<Side> {
    let upper = |prefix: &[u8]| {
        first.len() > prefix.len() + 1
            && first.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
            && matches!(first.get(prefix.len()), Some(b' ' | b'\t'))
    };
    let json_after = |n: usize| {
        first.get(n..).and_then(|rest| rest.iter().find(|b| !matches!(b, b' ' | b'\t'))).is_some_and(|&b| b == b'{')
    };
    if upper(b"INFO") && json_after(4) {
        Some(Side::Response)
    } else if upper(b"CONNECT") && json_after(7) {
        Some(Side::Request)
    } else {
        None
    }
}
