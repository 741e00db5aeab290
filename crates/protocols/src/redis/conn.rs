//! Pairing Redis commands with replies, and what each becomes.
//!
//! Owns [`RedisConn`] (one [`RespParser`] per direction and a [`FifoStitcher`]: Redis answers in
//! order, pipelined or not), [`Command`] and [`Reply`] with their column text, the pub/sub rules
//! (a `SUBSCRIBE` of n channels is answered by n confirmations; published messages and RESP3
//! pushes are records without a request) and [`RedisStats`]. Must not touch RESP framing (see
//! `resp`) and does no I/O.

use serde_json::Value as Json;

use super::resp::{Aggregate, Frame, RespParser, RespStats, Value};
use crate::conn_parser::{ConnParser, Side};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, FifoStitcher, StitchCounts, Timed};

/// `req_cmd` of a record made from a published message (`message`, `pmessage`, `smessage`)
/// received by a subscriber: it answers no request.
pub const PUSH_PUB: &str = "PUSH PUB";

/// Commands whose first argument names a subcommand; the command name keeps both words
/// (`CONFIG GET`, `CLIENT SETNAME`), as Redis's own command table does.
const CONTAINER_COMMANDS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE", "OBJECT",
    "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Subscribing commands: each channel or pattern named is confirmed by a reply of its own.
const SUBSCRIBE_COMMANDS: &[&str] =
    &["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"];

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisConfig {
    /// String content kept per message (a command's arguments, a reply); the rest is counted and
    /// the value is marked cut. Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Commands and replies waiting for their partner, each.
    pub max_pending: usize,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// One command as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The command name in upper case, with the subcommand for container commands
    /// (`CONFIG GET`); [`PUSH_PUB`] for a published message.
    pub name: String,
    /// The arguments after the name, as text (invalid UTF-8 replaced).
    pub args: Vec<String>,
    /// Some argument bytes are missing (cut to the limit or lost in a gap).
    pub cut: bool,
    /// When its first byte was captured.
    pub ts_ns: u64,
    /// Replies that answer it: 1, or one per channel for the subscribing commands.
    replies: usize,
}

impl Command {
    /// A command from its words (name first).
    pub fn from_words(words: Vec<String>, cut: bool, ts_ns: u64) -> Self {
        let mut words = words.into_iter();
        let mut name = words.next().unwrap_or_default().to_ascii_uppercase();
        let mut args: Vec<String> = words.collect();
        if CONTAINER_COMMANDS.contains(&name.as_str()) && !args.is_empty() {
            let sub = args.remove(0).to_ascii_uppercase();
            name = format!("{name} {sub}");
        }
        let replies = if SUBSCRIBE_COMMANDS.contains(&name.as_str()) { args.len().max(1) } else { 1 };
        Command { name, args, cut, ts_ns, replies }
    }

    /// The `req_args` column: the arguments as a JSON array of strings.
    pub fn args_json(&self) -> String {
        Json::Array(self.args.iter().map(|a| Json::String(a.clone())).collect()).to_string()
    }
}

impl Timed for Command {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

/// One reply (or several, for a subscribing command), as column text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The `resp` column: a simple string, integer, bulk string or error as its text (errors keep
    /// their `-`: `-ERR unknown command`), a null as `<NULL>`, and aggregates as JSON (arrays and
    /// sets as arrays, maps as objects, nulls as `null`). Several replies to one command are a
    /// JSON array of them.
    pub text: String,
    /// The reply is an error.
    pub error: bool,
    /// Some bytes are missing (cut to the limit or lost in a gap).
    pub cut: bool,
    /// When its last byte was captured.
    pub ts_ns: u64,
}

impl Timed for Reply {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

impl Reply {
    fn from_values(values: &[Value], cut: bool, ts_ns: u64) -> Self {
        match values {
            [one] => Reply { text: top_text(one), error: matches!(one, Value::Error(_)), cut, ts_ns },
            many => Reply {
                text: Json::Array(many.iter().map(json).collect()).to_string(),
                error: many.iter().any(|v| matches!(v, Value::Error(_))),
                cut,
                ts_ns,
            },
        }
    }
}

/// A command with its reply, or a push (`req.name` is [`PUSH_PUB`] or `PUSH <KIND>`, no
/// arguments, latency 0).
pub type Record = Exchange<Command, Reply>;

/// Counters for one [`RedisConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RedisStats {
    /// The request parser's counters.
    pub request: RespStats,
    /// The response parser's counters.
    pub response: RespStats,
    /// The stitcher's counters.
    pub stitch: StitchCounts,
    /// Pushes recorded without a request.
    pub pushes: u64,
}

/// Redis for one connection: the main entry point (see the module example).
///
/// Capture gaps: a gap inside a bulk string is stepped over (the value is marked cut); a gap on
/// the reply side that loses sync drops the commands still waiting, so later replies do not pair
/// with the wrong command. A command lost on the request side leaves its reply unpaired; the
/// in-order stitcher drops a reply older than the oldest waiting command, which covers clients
/// that wait for each reply, but a pipelined batch cut by a gap may pair replies with the wrong
/// command until the pipeline drains.
#[derive(Debug, Clone)]
pub struct RedisConn {
    config: RedisConfig,
    requests: RespParser,
    responses: RespParser,
    stitcher: FifoStitcher<Command, Reply>,
    /// Replies collected for a subscribing command still expecting more.
    partial: Vec<Value>,
    partial_cut: bool,
    /// A subscribing command was seen: arrays starting with `message` are pushes (RESP2).
    subscribed: bool,
    pushes: Vec<Record>,
    push_count: u64,
    frames: Vec<Frame>,
}

impl RedisConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: RedisConfig) -> Self {
        Self {
            config,
            requests: RespParser::new(Side::Request, config.max_value_bytes),
            responses: RespParser::new(Side::Response, config.max_value_bytes),
            stitcher: FifoStitcher::new(config.max_pending),
            partial: Vec::new(),
            partial_cut: false,
            subscribed: false,
            pushes: Vec::new(),
            push_count: 0,
            frames: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RedisStats {
        RedisStats {
            request: self.requests.stats(),
            response: self.responses.stats(),
            stitch: self.stitcher.counts(),
            pushes: self.push_count,
        }
    }

    fn on_request(&mut self, frame: Frame) {
        let words = match frame.value {
            Value::Aggregate(Aggregate::Array, items) => items.iter().map(plain_text).collect(),
            // A request that is not an array is not a command; the parser only emits arrays on
            // this side unless the peer misbehaves.
            other => vec![plain_text(&other)],
        };
        let command = Command::from_words(words, frame.cut, frame.ts_ns);
        if command.replies > 1 || SUBSCRIBE_COMMANDS.contains(&command.name.as_str()) {
            self.subscribed = true;
        }
        self.stitcher.push_request(command);
    }

    fn on_reply(&mut self, frame: Frame) {
        let is_push = matches!(frame.value, Value::Aggregate(Aggregate::Push, _));
        let head = match &frame.value {
            Value::Aggregate(Aggregate::Push | Aggregate::Array, items) => {
                items.first().map(|h| plain_text(h).to_ascii_lowercase())
            }
            _ => None,
        };
        let published = matches!(head.as_deref(), Some("message" | "pmessage" | "smessage"));
        let awaited = self.stitcher.oldest_request().map(|c| (c.name.clone(), c.replies));
        let confirms = head.as_deref().is_some_and(|h| SUBSCRIBE_COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(h)));
        let answers_subscribe =
            confirms && awaited.as_ref().is_some_and(|(name, _)| SUBSCRIBE_COMMANDS.contains(&name.as_str()));
        if (published && (is_push || self.subscribed))
            || (is_push && !answers_subscribe)
            || (confirms && !answers_subscribe && self.subscribed)
        {
            let name = if published {
                PUSH_PUB.to_string()
            } else {
                format!("PUSH {}", head.unwrap_or_default().to_ascii_uppercase())
            };
            let reply = Reply::from_values(std::slice::from_ref(&frame.value), frame.cut, frame.ts_ns);
            let command = Command { name, args: Vec::new(), cut: false, ts_ns: frame.ts_ns, replies: 1 };
            self.push_count += 1;
            if self.pushes.len() >= self.config.max_pending {
                self.pushes.remove(0);
            }
            self.pushes.push(Exchange::new(command, reply));
            return;
        }
        let expected = awaited.map_or(1, |(_, n)| n);
        self.partial.push(frame.value);
        self.partial_cut |= frame.cut;
        if self.partial.len() < expected {
            return;
        }
        let reply = Reply::from_values(&self.partial, self.partial_cut, frame.ts_ns);
        self.partial.clear();
        self.partial_cut = false;
        self.stitcher.push_response(reply);
    }

    fn take_frames(&mut self, side: Side) {
        let mut frames = std::mem::take(&mut self.frames);
        for frame in frames.drain(..) {
            match side {
                Side::Request => self.on_request(frame),
                Side::Response => self.on_reply(frame),
            }
        }
        self.frames = frames;
    }
}

impl ConnParser for RedisConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut frames = std::mem::take(&mut self.frames);
        match side {
            Side::Request => self.requests.feed(data, ts_ns, &mut frames),
            Side::Response => {
                let lost = self.responses.stats().dropped_partial;
                self.responses.feed(data, ts_ns, &mut frames);
                if self.responses.stats().dropped_partial > lost {
                    // Garbage broke a reply: the commands waiting were answered by bytes we
                    // could not read, so later replies must not pair with them.
                    self.stitcher.response_gap();
                    self.partial.clear();
                }
            }
        }
        self.frames = frames;
        self.take_frames(side);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        match side {
            Side::Request => self.requests.gap(len, ts_ns),
            Side::Response => {
                self.responses.gap(len, ts_ns);
                if !self.responses.in_sync() {
                    self.stitcher.response_gap();
                    self.partial.clear();
                }
            }
        }
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.close();
        self.responses.close();
        self.partial.clear();
        self.stitcher.close();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        // Pushes and exchanges each keep their order; a push is rarely interleaved with pending
        // commands (a subscribed connection only sends subscription commands).
        self.stitcher.drain(out);
        out.append(&mut self.pushes);
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }
}

/// A value as plain text: strings unquoted, aggregates as JSON.
fn plain_text(value: &Value) -> String {
    match value {
        Value::Simple(s) | Value::Error(s) => s.clone(),
        Value::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => "<NULL>".to_string(),
        Value::Aggregate(..) => json(value).to_string(),
    }
}

/// A top-level reply's text: errors keep their `-`.
fn top_text(value: &Value) -> String {
    match value {
        Value::Error(s) => format!("-{s}"),
        other => plain_text(other),
    }
}

/// A value nested in an aggregate, as JSON.
fn json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Error(s) => Json::String(format!("-{s}")),
        Value::Aggregate(Aggregate::Map | Aggregate::Attribute, items) => {
            let mut map = serde_json::Map::new();
            let mut it = items.iter();
            while let Some(k) = it.next() {
                let v = it.next().map_or(Json::Null, json);
                map.insert(plain_text(k), v);
            }
            Json::Object(map)
        }
        Value::Aggregate(_, items) => Json::Array(items.iter().map(json).collect()),
        other => Json::String(plain_text(other)),
    }
}
