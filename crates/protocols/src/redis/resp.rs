//! The incremental RESP parser for one direction of one Redis connection.
//!
//! Owns [`RespParser`]: RESP2 and RESP3 framing (simple strings, errors, integers, bulk strings,
//! arrays, and RESP3's null, boolean, double, big number, blob error, verbatim string, map, set,
//! attribute and push), inline commands on the request side, stepping over capture gaps inside
//! bulk strings, resynchronisation after garbage or a gap, and [`RespStats`]. Must not touch
//! pairing or what a command means (see `conn`), and does no I/O.
//!
//! Memory is bounded whatever the input: a line is at most [`MAX_LINE_BYTES`], a message keeps at
//! most `max_value_bytes` of string content and [`MAX_ITEMS`] values (the rest is parsed and
//! counted as cut, not stored), and nesting is at most [`MAX_DEPTH`]. Bulk strings are streamed,
//! never buffered beyond the kept prefix, so a 512 MB value costs nothing.

use crate::conn_parser::Side;

/// Longest line (a type line or an inline command) accepted; Redis's own inline limit.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Values kept per message; further elements are parsed but not stored.
pub const MAX_ITEMS: usize = 1024;
/// Deepest nesting of aggregates accepted.
pub const MAX_DEPTH: usize = 32;
/// Largest bulk string length accepted (Redis's `proto-max-bulk-len` tops out at 512 MB by default;
/// this leaves room for raised limits while rejecting garbage lengths).
const MAX_BULK_LEN: u64 = 1 << 32;
/// Largest aggregate length accepted.
const MAX_AGGREGATE_LEN: u64 = 1 << 32;

/// The kind of an aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `*`: an array (every command is one).
    Array,
    /// `~`: a RESP3 set.
    Set,
    /// `%`: a RESP3 map; items alternate key, value.
    Map,
    /// `>`: a RESP3 push (out-of-band data: pub/sub messages, invalidations).
    Push,
    /// `|`: a RESP3 attribute; items alternate key, value.
    Attribute,
}

/// One parsed RESP value, with string content cut to the message's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+` simple string, `:` integer, `,` double, `(` big number, `#` boolean: the text as sent.
    Simple(String),
    /// `-` simple error or `!` blob error: the text as sent (`ERR unknown command`).
    Error(String),
    /// `$` bulk or `=` verbatim string (the verbatim's `txt:` prefix is kept).
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3's `_`.
    Null,
    /// An aggregate and the items kept.
    Aggregate(Aggregate, Vec<Value>),
}

/// One complete top-level value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The value.
    pub value: Value,
    /// When the first byte (request side) or last byte (response side) was captured.
    pub ts_ns: u64,
    /// Some content is missing: cut to the budget, or lost in a gap inside a bulk string.
    pub cut: bool,
}

/// Counters kept by a [`RespParser`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RespStats {
    /// Complete top-level values emitted.
    pub messages: u64,
    /// Times the parser lost sync on malformed input; a run of garbage counts once.
    pub errors: u64,
    /// Bytes discarded while looking for a message start.
    pub skipped_bytes: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Gaps inside a bulk string, stepped over in sync.
    pub gaps_absorbed: u64,
    /// Partial messages discarded because of garbage, a gap or a close.
    pub dropped_partial: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// Reading a line into `line`.
    Line,
    /// Reading a bulk string's payload.
    Bulk { remaining: u64, kept: Vec<u8> },
    /// Expecting the CRLF after a bulk payload; `seen_cr` once the CR came.
    BulkEnd { seen_cr: bool, kept: Vec<u8> },
    /// Lost sync: looking for a line that starts a message. `at_start` when the next byte
    /// follows a newline or a gap.
    Resync { at_start: bool },
}

#[derive(Debug, Clone)]
struct Open {
    kind: Aggregate,
    remaining: u64,
    items: Vec<Value>,
}

/// Incremental RESP parser for one direction of one connection.
#[derive(Debug, Clone)]
pub struct RespParser {
    side: Side,
    max_value_bytes: usize,
    state: State,
    line: Vec<u8>,
    stack: Vec<Open>,
    /// String bytes and values kept for the message being parsed.
    kept_bytes: usize,
    kept_items: usize,
    cut: bool,
    /// The bulk being read is a blob error (`!`).
    blob_error: bool,
    /// When the message being parsed started; `None` between messages.
    started: Option<u64>,
    in_sync: bool,
    stats: RespStats,
}

impl RespParser {
    /// A parser for the `side` direction (only the request side accepts inline commands), keeping
    /// at most `max_value_bytes` of string content per message.
    pub fn new(side: Side, max_value_bytes: usize) -> Self {
        Self {
            side,
            max_value_bytes,
            state: State::Line,
            line: Vec::new(),
            stack: Vec::new(),
            kept_bytes: 0,
            kept_items: 0,
            cut: false,
            blob_error: false,
            started: None,
            in_sync: true,
            stats: RespStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RespStats {
        self.stats
    }

    /// False after garbage or a gap that was not stepped over, until a message parses again.
    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    /// Bytes held for the message being parsed: at most [`MAX_LINE_BYTES`] plus `max_value_bytes`.
    pub fn buffered_bytes(&self) -> usize {
        self.line.len() + self.kept_bytes
    }

    /// Feeds the next bytes of the stream, captured at `ts_ns`; complete values go to `out`.
    pub fn feed(&mut self, data: &[u8], ts_ns: u64, out: &mut Vec<Frame>) {
        let mut rest = data;
        while !rest.is_empty() {
            let used = match std::mem::replace(&mut self.state, State::Line) {
                State::Line => self.read_line(rest, ts_ns, out),
                State::Bulk { remaining, kept } => self.read_bulk(rest, remaining, kept),
                State::BulkEnd { seen_cr, kept } => self.read_bulk_end(rest, seen_cr, kept, ts_ns, out),
                State::Resync { at_start } => self.resync(rest, at_start),
            };
            // Every step consumes at least one byte, or changes state without input only
            // towards `Line` with a non-empty remainder, so the loop terminates.
            rest = rest.get(used..).unwrap_or_default();
        }
    }

    /// The stream lost `len` bytes at `ts_ns`. Inside a bulk string the parser steps over them
    /// (the value is marked cut); anywhere else the partial message is dropped and the parser
    /// resynchronises at the next line that starts a message.
    pub fn gap(&mut self, len: u64, _ts_ns: u64) {
        if len == 0 {
            return;
        }
        self.stats.gaps += 1;
        if let State::Bulk { remaining, .. } = &mut self.state
            && len <= *remaining
        {
            *remaining -= len;
            self.cut = true;
            self.stats.gaps_absorbed += 1;
            if *remaining == 0
                && let State::Bulk { kept, .. } = std::mem::replace(&mut self.state, State::Line)
            {
                self.state = State::BulkEnd { seen_cr: false, kept };
            }
            return;
        }
        self.lose_sync(false);
        self.state = State::Resync { at_start: true };
    }

    /// The connection closed: a partial message is dropped.
    pub fn close(&mut self) {
        self.drop_partial();
        self.state = State::Line;
    }

    fn drop_partial(&mut self) {
        if self.started.is_some() || !self.stack.is_empty() || !self.line.is_empty() {
            self.stats.dropped_partial += 1;
        }
        self.reset_message();
    }

    fn reset_message(&mut self) {
        self.line.clear();
        self.stack.clear();
        self.kept_bytes = 0;
        self.kept_items = 0;
        self.cut = false;
        self.blob_error = false;
        self.started = None;
    }

    /// Drops the partial message and goes looking for the next message start.
    fn lose_sync(&mut self, garbage: bool) {
        if garbage && self.in_sync {
            self.stats.errors += 1;
        }
        self.in_sync = false;
        self.drop_partial();
        self.state = State::Resync { at_start: false };
    }

    fn read_line(&mut self, rest: &[u8], ts_ns: u64, out: &mut Vec<Frame>) -> usize {
        if self.started.is_none() {
            self.started = Some(ts_ns);
        }
        let newline = rest.iter().position(|&b| b == b'\n');
        let take = newline.unwrap_or(rest.len());
        if self.line.len() + take > MAX_LINE_BYTES {
            // Resynchronisation consumes the rest.
            self.lose_sync(true);
            return 0;
        }
        self.line.extend_from_slice(rest.get(..take).unwrap_or_default());
        let Some(at) = newline else {
            return rest.len();
        };
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.parse_line(&line, ts_ns, out);
        if let State::Resync { at_start } = &mut self.state {
            // The bad line was consumed whole: the next byte starts a line.
            *at_start = true;
        }
        // Reuse the allocation unless the line was huge.
        if line.capacity() <= 4096 && self.line.is_empty() {
            line.clear();
            self.line = line;
        }
        at + 1
    }

    fn parse_line(&mut self, line: &[u8], ts_ns: u64, out: &mut Vec<Frame>) {
        let Some((&marker, text)) = line.split_first() else {
            if self.stack.is_empty() && self.side == Side::Request {
                // Redis ignores empty inline lines.
                self.started = None;
            } else {
                self.lose_sync(true);
            }
            return;
        };
        match marker {
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let kind = match marker {
                    b'*' => Aggregate::Array,
                    b'~' => Aggregate::Set,
                    b'>' => Aggregate::Push,
                    b'%' => Aggregate::Map,
                    _ => Aggregate::Attribute,
                };
                match parse_len(text, MAX_AGGREGATE_LEN) {
                    Some(None) if marker == b'*' => self.complete(Value::Null, ts_ns, out),
                    Some(Some(0)) => self.complete(Value::Aggregate(kind, Vec::new()), ts_ns, out),
                    Some(Some(n)) if self.stack.len() < MAX_DEPTH => {
                        let remaining = if matches!(kind, Aggregate::Map | Aggregate::Attribute) { n * 2 } else { n };
                        self.stack.push(Open { kind, remaining, items: Vec::new() });
                    }
                    _ => self.lose_sync(true),
                }
            }
            b'$' | b'=' | b'!' => match parse_len(text, MAX_BULK_LEN) {
                Some(None) => self.complete(Value::Null, ts_ns, out),
                Some(Some(n)) if marker == b'!' => {
                    // A blob error: its text arrives as a bulk, made an error when complete.
                    self.blob_error = true;
                    self.state = bulk_state(n);
                }
                Some(Some(n)) => self.state = bulk_state(n),
                None => self.lose_sync(true),
            },
            b'+' | b':' | b',' | b'(' | b'#' => {
                if marker != b'+' && !valid_scalar(marker, text) {
                    self.lose_sync(true);
                    return;
                }
                let keep = self.keep_text(text);
                self.complete(Value::Simple(keep), ts_ns, out);
            }
            b'-' => {
                let keep = self.keep_text(text);
                self.complete(Value::Error(keep), ts_ns, out);
            }
            b'_' if text.is_empty() => self.complete(Value::Null, ts_ns, out),
            _ if self.stack.is_empty() && self.side == Side::Request && self.in_sync => {
                // An inline command: words separated by spaces.
                let words: Vec<Value> = line
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .take(MAX_ITEMS)
                    .map(|w| Value::Bulk(self.keep_bytes(w)))
                    .collect();
                if words.is_empty() {
                    self.started = None;
                } else {
                    self.complete(Value::Aggregate(Aggregate::Array, words), ts_ns, out);
                }
            }
            _ => self.lose_sync(true),
        }
    }

    fn read_bulk(&mut self, rest: &[u8], remaining: u64, mut kept: Vec<u8>) -> usize {
        let n = usize::try_from(remaining).unwrap_or(usize::MAX).min(rest.len());
        let room = self.max_value_bytes.saturating_sub(self.kept_bytes);
        let keep = n.min(room);
        kept.extend_from_slice(rest.get(..keep).unwrap_or_default());
        self.kept_bytes += keep;
        if keep < n {
            self.cut = true;
        }
        let remaining = remaining - n as u64;
        self.state =
            if remaining == 0 { State::BulkEnd { seen_cr: false, kept } } else { State::Bulk { remaining, kept } };
        n
    }

    fn read_bulk_end(&mut self, rest: &[u8], seen_cr: bool, kept: Vec<u8>, ts_ns: u64, out: &mut Vec<Frame>) -> usize {
        let Some(&b) = rest.first() else { return 0 };
        match (seen_cr, b) {
            (false, b'\r') => {
                self.state = State::BulkEnd { seen_cr: true, kept };
            }
            (_, b'\n') => {
                let value = if std::mem::take(&mut self.blob_error) {
                    Value::Error(String::from_utf8_lossy(&kept).into_owned())
                } else {
                    Value::Bulk(kept)
                };
                self.complete(value, ts_ns, out);
            }
            _ => self.lose_sync(true),
        }
        1
    }

    fn resync(&mut self, rest: &[u8], mut at_start: bool) -> usize {
        for (i, &b) in rest.iter().enumerate() {
            if at_start && self.starts_message(b) {
                self.stats.skipped_bytes += i as u64;
                self.state = State::Line;
                return i;
            }
            at_start = b == b'\n';
        }
        self.stats.skipped_bytes += rest.len() as u64;
        self.state = State::Resync { at_start };
        rest.len()
    }

    /// Whether a line starting with `b` may start a message on this side after a loss of sync.
    /// Requests are always arrays once sync is lost (inline commands look like any text).
    fn starts_message(&self, b: u8) -> bool {
        match self.side {
            Side::Request => b == b'*',
            Side::Response => b"+-:$*_,#(!=%~>|".contains(&b),
        }
    }

    fn keep_bytes(&mut self, bytes: &[u8]) -> Vec<u8> {
        let room = self.max_value_bytes.saturating_sub(self.kept_bytes);
        let keep = bytes.len().min(room);
        if keep < bytes.len() {
            self.cut = true;
        }
        self.kept_bytes += keep;
        bytes.get(..keep).unwrap_or_default().to_vec()
    }

    fn keep_text(&mut self, bytes: &[u8]) -> String {
        let kept = self.keep_bytes(bytes);
        String::from_utf8_lossy(&kept).into_owned()
    }

    /// A value is complete: add it to the open aggregate, closing those it completes, or emit it.
    fn complete(&mut self, value: Value, ts_ns: u64, out: &mut Vec<Frame>) {
        let mut value = value;
        while let Some(open) = self.stack.last_mut() {
            if self.kept_items < MAX_ITEMS {
                open.items.push(value);
                self.kept_items += 1;
            } else {
                self.cut = true;
            }
            open.remaining -= 1;
            if open.remaining > 0 {
                return;
            }
            let Some(done) = self.stack.pop() else { return };
            value = Value::Aggregate(done.kind, done.items);
        }
        let started = self.started.unwrap_or(ts_ns);
        let cut = self.cut;
        self.reset_message();
        self.in_sync = true;
        if matches!(value, Value::Aggregate(Aggregate::Attribute, _)) {
            // Attributes describe the reply that follows; the reply itself is the message.
            return;
        }
        self.stats.messages += 1;
        let ts_ns = if self.side == Side::Request { started } else { ts_ns };
        out.push(Frame { value, ts_ns, cut });
    }
}

fn bulk_state(n: u64) -> State {
    if n == 0 {
        State::BulkEnd { seen_cr: false, kept: Vec::new() }
    } else {
        State::Bulk { remaining: n, kept: Vec::new() }
    }
}

/// A length line: `Some(None)` for -1 (null), `Some(Some(n))` for 0..=max, `None` for garbage.
fn parse_len(text: &[u8], max: u64) -> Option<Option<u64>> {
    if text == b"-1" {
        return Some(None);
    }
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = text.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    (n <= max).then_some(Some(n))
}

/// Whether the text of a `:`, `,`, `(` or `#` line is plausible, so garbage is caught early.
fn valid_scalar(marker: u8, text: &[u8]) -> bool {
    match marker {
        b':' | b'(' => {
            let digits = text.strip_prefix(b"-").or_else(|| text.strip_prefix(b"+")).unwrap_or(text);
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        b'#' => text == b"t" || text == b"f",
        _ => !text.is_empty() && text.iter().all(|b| b.is_ascii_graphic()),
    }
}

/// Commands recognised when a connection's first bytes are an inline command (`PING\r\n`).
/// Clients send arrays; inline commands come from people at `telnet` and from health checks,
/// so the common ones are enough.
const INLINE_COMMANDS: &[&[u8]] = &[
    b"PING",
    b"AUTH",
    b"HELLO",
    b"SELECT",
    b"ECHO",
    b"INFO",
    b"QUIT",
    b"GET",
    b"SET",
    b"DEL",
    b"EXISTS",
    b"INCR",
    b"DECR",
    b"KEYS",
    b"SCAN",
    b"TYPE",
    b"TTL",
    b"EXPIRE",
    b"MGET",
    b"MSET",
    b"HGET",
    b"HSET",
    b"HGETALL",
    b"LPUSH",
    b"RPUSH",
    b"LPOP",
    b"RPOP",
    b"LRANGE",
    b"SADD",
    b"SMEMBERS",
    b"ZADD",
    b"ZRANGE",
    b"PUBLISH",
    b"SUBSCRIBE",
    b"DBSIZE",
    b"FLUSHDB",
    b"FLUSHALL",
    b"CLIENT",
    b"CONFIG",
    b"COMMAND",
    b"MONITOR",
];

/// Whether the first bytes of a stream are a Redis command: an array of bulk strings
/// (`*<count>\r\n$`), as every client library sends, or a whole inline line starting with a
/// common command name (any case). Cheap: it looks at the first line only.
pub fn looks_like_command(prefix: &[u8]) -> bool {
    if let Some(rest) = prefix.strip_prefix(b"*") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        return (1..=10).contains(&digits) && rest.get(digits..digits + 3) == Some(b"\r\n$".as_slice());
    }
    let Some(end) = prefix.iter().take(MAX_LINE_BYTES).position(|&b| b == b'\n') else { return false };
    let line = prefix.get(..end).unwrap_or_default();
    if line.windows(6).any(|w| w == b" HTTP/") {
        // An HTTP request line whose method is also a Redis command (`GET`).
        return false;
    }
    let word = line.split(|&b| b == b' ' || b == b'\r').next().unwrap_or_default();
    INLINE_COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(word))
}
