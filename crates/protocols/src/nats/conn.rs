//! What NATS messages of one connection become: one record per protocol message, with the
//! server's acknowledgement as `resp` where the client asked for acknowledgements.
//!
//! Owns [`NatsConn`] and [`Record`]. NATS has no request ids and no replies in general: a
//! message is a record of its own (`INFO`, `MSG`, `PING`, ...). In verbose mode (`CONNECT` with
//! `"verbose":true`) the server answers each `CONNECT`, `PUB`, `HPUB`, `SUB` and `UNSUB` with
//! `+OK` or `-ERR`, in order; those are paired. Outside verbose mode a `-ERR` is a record of its
//! own. Must not touch framing (see `wire`), and does no I/O.

use std::collections::VecDeque;

use super::wire::{Message, NatsParser, ParserStats};
use crate::conn_parser::{ConnParser, Side};
use crate::stitch::DEFAULT_MAX_PENDING;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatsConfig {
    /// Payload and option bytes kept per message; the rest is skipped and the message marked cut.
    /// Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Client messages waiting for their acknowledgement, and finished records not yet drained.
    pub max_pending: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// One row's worth: a message, who sent it and the acknowledgement it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The message.
    pub msg: Message,
    /// The side that sent it: [`Side::Request`] for the client, [`Side::Response`] for the server.
    pub from: Side,
    /// `OK`, the `-ERR` line (`-ERR 'Authorization Violation'`), or empty when none was asked for
    /// or none came.
    pub resp: String,
    /// When the record completed: the acknowledgement's capture time, else the message's.
    pub ts_ns: u64,
}

/// Counters for one [`NatsConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatsStats {
    /// The client direction's parser.
    pub request: ParserStats,
    /// The server direction's parser.
    pub response: ParserStats,
    /// Records produced.
    pub records: u64,
    /// Acknowledgements (`+OK`) no message was waiting for.
    pub orphan_acks: u64,
    /// Messages that waited for an acknowledgement that never came (recorded without one).
    pub unanswered: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
}

/// Verbs the server acknowledges in verbose mode.
const ACKED: &[&str] = &["CONNECT", "PUB", "HPUB", "SUB", "UNSUB"];

/// NATS for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct NatsConn {
    config: NatsConfig,
    requests: NatsParser,
    responses: NatsParser,
    /// The client asked for `+OK` after every message.
    verbose: bool,
    awaiting: VecDeque<Message>,
    ready: VecDeque<Record>,
    messages: Vec<Message>,
    stats: NatsStats,
}

impl NatsConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: NatsConfig) -> Self {
        Self {
            config,
            requests: NatsParser::new(Side::Request, config.max_value_bytes),
            responses: NatsParser::new(Side::Response, config.max_value_bytes),
            verbose: false,
            awaiting: VecDeque::new(),
            ready: VecDeque::new(),
            messages: Vec::new(),
            stats: NatsStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> NatsStats {
        NatsStats { request: self.requests.stats(), response: self.responses.stats(), ..self.stats }
    }

    fn push_ready(&mut self, msg: Message, from: Side, resp: String, ts_ns: u64) {
        if self.ready.len() >= self.config.max_pending.max(1) {
            self.ready.pop_front();
            self.stats.overflow_drops += 1;
        }
        self.stats.records += 1;
        self.ready.push_back(Record { msg, from, resp, ts_ns });
    }

    fn on_client(&mut self, msg: Message) {
        if msg.cmd == "CONNECT" {
            self.verbose = asks_verbose(&msg.body);
        }
        if self.verbose && ACKED.contains(&msg.cmd.as_str()) {
            if self.awaiting.len() >= self.config.max_pending.max(1)
                && let Some(old) = self.awaiting.pop_front()
            {
                self.stats.unanswered += 1;
                let ts = old.ts_ns;
                self.push_ready(old, Side::Request, String::new(), ts);
            }
            self.awaiting.push_back(msg);
            return;
        }
        let ts = msg.ts_ns;
        self.push_ready(msg, Side::Request, String::new(), ts);
    }

    fn on_server(&mut self, msg: Message) {
        match msg.cmd.as_str() {
            "+OK" => match self.awaiting.pop_front() {
                Some(req) => self.push_ready(req, Side::Request, "OK".to_string(), msg.ts_ns),
                None => self.stats.orphan_acks += 1,
            },
            "-ERR" => {
                let resp = format!("-ERR {}", msg.body);
                match self.awaiting.pop_front() {
                    Some(req) => self.push_ready(req, Side::Request, resp, msg.ts_ns),
                    None => {
                        let ts = msg.ts_ns;
                        self.push_ready(msg, Side::Response, resp, ts);
                    }
                }
            }
            _ => {
                let ts = msg.ts_ns;
                self.push_ready(msg, Side::Response, String::new(), ts);
            }
        }
    }

    /// The acknowledgements of the waiting messages were lost: record them without one.
    fn flush_awaiting(&mut self) {
        while let Some(msg) = self.awaiting.pop_front() {
            self.stats.unanswered += 1;
            let ts = msg.ts_ns;
            self.push_ready(msg, Side::Request, String::new(), ts);
        }
    }

    fn take_messages(&mut self, side: Side) {
        let mut messages = std::mem::take(&mut self.messages);
        for msg in messages.drain(..) {
            match side {
                Side::Request => self.on_client(msg),
                Side::Response => self.on_server(msg),
            }
        }
        self.messages = messages;
    }
}

/// Whether a `CONNECT` document turns verbose mode on. A document cut short is searched as text.
fn asks_verbose(body: &str) -> bool {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(doc) => doc.get("verbose").and_then(serde_json::Value::as_bool).unwrap_or(false),
        Err(_) => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            compact.contains("\"verbose\":true")
        }
    }
}

impl ConnParser for NatsConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.messages);
        match side {
            Side::Request => self.requests.feed(data, ts_ns, &mut messages),
            Side::Response => self.responses.feed(data, ts_ns, &mut messages),
        }
        self.messages = messages;
        self.take_messages(side);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let mut messages = std::mem::take(&mut self.messages);
        match side {
            Side::Request => self.requests.gap(len, ts_ns, &mut messages),
            Side::Response => self.responses.gap(len, ts_ns, &mut messages),
        }
        self.messages = messages;
        self.take_messages(side);
        if side == Side::Response && !self.responses.in_sync() {
            // Acknowledgements may have been in the lost bytes: later ones must not pair with
            // the wrong message.
            self.flush_awaiting();
        }
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.close();
        self.responses.close();
        self.flush_awaiting();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }
}
