//! Pairing MQTT packets of one connection.
//!
//! Owns [`MqttConn`] and [`Record`]. A packet that expects an answer waits for it: `CONNECT` and
//! `PINGREQ` (always from the client) in order; `PUBLISH` at QoS 1 or 2, `PUBREL`, `SUBSCRIBE` and
//! `UNSUBSCRIBE` by (the side that sent it, packet id), since a broker publishes to its
//! subscribers too and both ends number their own packets. Everything else is a record alone, as
//! is an answer nothing waited for. Must not touch framing (see `wire`).

use std::collections::{HashMap, VecDeque};

use super::wire::{MqttParser, Packet, ParserStats};
use crate::conn_parser::{ConnParser, Side};
use crate::stitch::DEFAULT_MAX_PENDING;

/// Limits for one connection; they bound its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MqttConfig {
    /// Payload bytes kept per packet. Defaults to 512, like HTTP bodies.
    pub max_value_bytes: usize,
    /// Packets waiting for their answer, and finished records not yet drained.
    pub max_pending: usize,
}

impl Default for MqttConfig {
    fn default() -> Self {
        Self { max_value_bytes: 512, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// A packet with its answer, or alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The packet that started the exchange.
    pub req: Packet,
    /// Who sent `req`: [`Side::Request`] for the client, [`Side::Response`] for the broker.
    pub from: Side,
    /// Its answer, if it has one.
    pub resp: Option<Packet>,
    /// The answer's last byte minus the packet's first byte; 0 without an answer.
    pub latency_ns: u64,
}

impl Record {
    /// When the record completed: the answer's last byte, else the packet's.
    pub fn ts_ns(&self) -> u64 {
        self.resp.as_ref().map_or(self.req.last_ns, |r| r.last_ns)
    }
}

/// Counters for one [`MqttConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttStats {
    /// The client direction's parser.
    pub request: ParserStats,
    /// The broker direction's parser.
    pub response: ParserStats,
    /// Records produced.
    pub records: u64,
    /// Answers nothing waited for (recorded alone).
    pub orphan_answers: u64,
    /// Packets whose answer never came (recorded alone at close, or pushed out by newer ones).
    pub unanswered: u64,
    /// Records dropped because the ready queue was full.
    pub overflow_drops: u64,
}

/// Where a packet waits for its answer: (sender is the client, answer type, packet id).
type IdKey = (bool, u8, u16);

/// What answers a packet: the answer's type, and whether pairing is by packet id.
fn answer_of(packet: &Packet) -> Option<(u8, bool)> {
    match packet.kind {
        1 => Some((2, false)),
        12 => Some((13, false)),
        3 if packet.qos() == 1 => Some((4, true)),
        3 if packet.qos() == 2 => Some((5, true)),
        6 => Some((7, true)),
        8 => Some((9, true)),
        10 => Some((11, true)),
        _ => None,
    }
}

/// MQTT for one connection: the main entry point (see the module example).
#[derive(Debug, Clone)]
pub struct MqttConn {
    config: MqttConfig,
    requests: MqttParser,
    responses: MqttParser,
    /// `CONNECT` and `PINGREQ` waiting, in order, with the answer type they wait for.
    in_order: VecDeque<(u8, Packet)>,
    /// Packets waiting by (sender, answer type, packet id), with an arrival number for eviction.
    by_id: HashMap<IdKey, (u64, Packet)>,
    /// Answers by id that arrived before the packet they answer (the two directions are fed
    /// separately), by (sender is the client, answer type, packet id).
    early: HashMap<IdKey, Packet>,
    seq: u64,
    ready: VecDeque<Record>,
    packets: Vec<Packet>,
    stats: MqttStats,
}

impl MqttConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: MqttConfig) -> Self {
        Self {
            config,
            requests: MqttParser::new(config.max_value_bytes),
            responses: MqttParser::new(config.max_value_bytes),
            in_order: VecDeque::new(),
            by_id: HashMap::new(),
            early: HashMap::new(),
            seq: 0,
            ready: VecDeque::new(),
            packets: Vec::new(),
            stats: MqttStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> MqttStats {
        MqttStats { request: self.requests.stats(), response: self.responses.stats(), ..self.stats }
    }

    fn max(&self) -> usize {
        self.config.max_pending.max(1)
    }

    fn push_ready(&mut self, req: Packet, from: Side, resp: Option<Packet>) {
        if self.ready.len() >= self.max() {
            self.ready.pop_front();
            self.stats.overflow_drops += 1;
        }
        let latency_ns = resp.as_ref().map_or(0, |r| r.last_ns.saturating_sub(req.first_ns));
        self.stats.records += 1;
        self.ready.push_back(Record { req, from, resp, latency_ns });
    }

    fn on_packet(&mut self, packet: Packet, from: Side) {
        // An answer to something waiting?
        let from_client = from == Side::Request;
        if let Some(pos) = self.in_order.iter().position(|(want, _)| *want == packet.kind)
            && !from_client
        {
            // Only the oldest waiting one can be answered; older ones of other types stay.
            if let Some((_, req)) = self.in_order.remove(pos) {
                self.push_ready(req, Side::Request, Some(packet));
                return;
            }
        }
        if let Some(id) = packet.packet_id
            && let Some((_, req)) = self.by_id.remove(&(!from_client, packet.kind, id))
        {
            let sender = if from_client { Side::Response } else { Side::Request };
            self.push_ready(req, sender, Some(packet));
            return;
        }
        match answer_of(&packet) {
            Some((want, false)) if from_client => {
                if self.in_order.len() >= self.max()
                    && let Some((_, old)) = self.in_order.pop_front()
                {
                    self.stats.unanswered += 1;
                    self.push_ready(old, Side::Request, None);
                }
                self.in_order.push_back((want, packet));
            }
            Some((want, true)) if packet.packet_id.is_some() => {
                let id = packet.packet_id.unwrap_or_default();
                if let Some(answer) = self.early.remove(&(!from_client, want, id)) {
                    if answer.last_ns >= packet.first_ns {
                        self.push_ready(packet, from, Some(answer));
                        return;
                    }
                    // Older than the packet: it answered an earlier use of the id.
                    self.stats.orphan_answers += 1;
                    self.push_ready(answer, if from_client { Side::Response } else { Side::Request }, None);
                }
                if self.by_id.len() >= self.max() {
                    self.evict_oldest();
                }
                self.seq += 1;
                if let Some((_, old)) = self.by_id.insert((from_client, want, id), (self.seq, packet)) {
                    // The id was reused before its answer: that answer is not coming.
                    self.stats.unanswered += 1;
                    self.push_ready(old, from, None);
                }
            }
            _ if matches!(packet.kind, 4 | 5 | 7 | 9 | 11) && packet.packet_id.is_some() => {
                let key = (from_client, packet.kind, packet.packet_id.unwrap_or_default());
                if self.early.len() >= self.max() {
                    let oldest = self.early.iter().min_by_key(|(_, p)| p.last_ns).map(|(k, _)| *k);
                    if let Some(old) = oldest.and_then(|k| self.early.remove(&k)) {
                        self.stats.orphan_answers += 1;
                        self.push_ready(old, from, None);
                    }
                }
                if let Some(old) = self.early.insert(key, packet) {
                    self.stats.orphan_answers += 1;
                    self.push_ready(old, from, None);
                }
            }
            _ => {
                if matches!(packet.kind, 2 | 4 | 5 | 7 | 9 | 11 | 13) {
                    self.stats.orphan_answers += 1;
                }
                self.push_ready(packet, from, None);
            }
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self.by_id.iter().min_by_key(|(_, (seq, _))| *seq).map(|(k, _)| *k);
        if let Some(key) = oldest
            && let Some((_, old)) = self.by_id.remove(&key)
        {
            self.stats.unanswered += 1;
            self.push_ready(old, if key.0 { Side::Request } else { Side::Response }, None);
        }
    }

    fn take_packets(&mut self, side: Side) {
        let mut packets = std::mem::take(&mut self.packets);
        for packet in packets.drain(..) {
            self.on_packet(packet, side);
        }
        self.packets = packets;
        // Both directions decode with the level the client's CONNECT named.
        let level = self.requests.level();
        self.responses.set_level(level);
    }

    fn flush_waiting(&mut self) {
        let in_order: Vec<Packet> = self.in_order.drain(..).map(|(_, p)| p).collect();
        let mut early: Vec<(IdKey, Packet)> = self.early.drain().collect();
        early.sort_by_key(|(_, p)| p.last_ns);
        for ((from_client, ..), p) in early {
            self.stats.orphan_answers += 1;
            self.push_ready(p, if from_client { Side::Request } else { Side::Response }, None);
        }
        let mut by_id: Vec<(IdKey, (u64, Packet))> = self.by_id.drain().collect();
        by_id.sort_by_key(|(_, (seq, _))| *seq);
        for p in in_order {
            self.stats.unanswered += 1;
            self.push_ready(p, Side::Request, None);
        }
        for ((from_client, ..), (_, p)) in by_id {
            self.stats.unanswered += 1;
            self.push_ready(p, if from_client { Side::Request } else { Side::Response }, None);
        }
    }
}

impl ConnParser for MqttConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        let mut packets = std::mem::take(&mut self.packets);
        match side {
            Side::Request => self.requests.feed(data, ts_ns, &mut packets),
            Side::Response => self.responses.feed(data, ts_ns, &mut packets),
        }
        self.packets = packets;
        self.take_packets(side);
    }

    fn gap(&mut self, side: Side, len: u64, ts_ns: u64) {
        let mut packets = std::mem::take(&mut self.packets);
        match side {
            Side::Request => self.requests.gap(len, ts_ns, &mut packets),
            Side::Response => self.responses.gap(len, ts_ns, &mut packets),
        }
        self.packets = packets;
        self.take_packets(side);
    }

    fn close(&mut self, _ts_ns: u64) {
        self.requests.close();
        self.responses.close();
        self.flush_waiting();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        out.extend(self.ready.drain(..));
    }

    fn buffered_bytes(&self) -> usize {
        self.requests.buffered_bytes() + self.responses.buffered_bytes()
    }
}
