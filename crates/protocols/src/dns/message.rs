//! DNS message decoding, TCP framing and pairing by transaction id.
//!
//! Owns [`decode`] (header, questions, answers; compressed names with at most [`MAX_HOPS`]
//! pointer hops and [`MAX_NAME`] bytes), the JSON of the four `dns_events` columns, the TCP
//! length framing and [`DnsConn`] over a [`KeyedStitcher`]. Must not touch rows or I/O.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::Value as Json;

use crate::conn_parser::{ConnParser, Side};
use crate::stitch::{DEFAULT_MAX_PENDING, Exchange, KeyedStitcher, StitchCounts, Timed};

/// Questions and answers kept per message; more are counted in the header, not listed.
pub const MAX_RECORDS: usize = 64;
/// Pointer hops followed while decompressing one name (a loop stops here).
const MAX_HOPS: usize = 32;
/// Longest name kept (RFC 1035 allows 255 bytes).
const MAX_NAME: usize = 255;
/// Header length.
const HEADER: usize = 12;

/// How messages are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Each message is preceded by its two-byte length (RFC 1035 4.2.2).
    Tcp,
    /// Each feed is one whole datagram.
    Udp,
}

/// Limits for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsConfig {
    /// TCP or UDP framing.
    pub transport: Transport,
    /// Queries and responses waiting for their partner, each.
    pub max_pending: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self { transport: Transport::Tcp, max_pending: DEFAULT_MAX_PENDING }
    }
}

/// The fixed header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// Transaction id.
    pub txid: u16,
    /// The 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode).
    pub flags: u16,
    /// Questions, answers, authority and additional records, as the header counts them.
    pub counts: [u16; 4],
}

impl Header {
    /// The `req_header`/`resp_header` JSON: Pixie's field names and order.
    pub fn json(&self) -> String {
        // Keys are fixed and values are numbers: one formatted write, no JSON values in between
        // (this runs twice per row on the agent's hot path).
        let f = self.flags;
        let bit = |n: u16| (f >> n) & 1;
        format!(
            "{{\"txid\":{},\"qr\":{},\"opcode\":{},\"aa\":{},\"tc\":{},\"rd\":{},\"ra\":{},\"ad\":{},\"cd\":{},\
             \"rcode\":{},\"num_queries\":{},\"num_answers\":{},\"num_auth\":{},\"num_addl\":{}}}",
            self.txid,
            bit(15),
            (f >> 11) & 0xf,
            bit(10),
            bit(9),
            bit(8),
            bit(7),
            bit(5),
            bit(4),
            f & 0xf,
            self.counts[0],
            self.counts[1],
            self.counts[2],
            self.counts[3],
        )
    }
}

/// A JSON object with its keys in the order given (serde_json's map would sort them).
fn object(fields: &[(&str, Json)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Keys are fixed identifiers; values are strings that need JSON escaping.
        out.push('"');
        out.push_str(k);
        out.push_str("\":");
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The name, dotted, without the final dot.
    pub name: String,
    /// The record type.
    pub qtype: u16,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The owner name.
    pub name: String,
    /// The record type.
    pub rtype: u16,
    /// The address of an A or AAAA record, or the target of a CNAME (empty otherwise).
    pub data: String,
}

/// A decoded message with the capture time pairing uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// The header.
    pub header: Header,
    /// The questions (at most [`MAX_RECORDS`]).
    pub questions: Vec<Question>,
    /// The answer section (at most [`MAX_RECORDS`]).
    pub answers: Vec<Answer>,
    /// For a query its first byte's capture time; for a response its last byte's.
    pub ts_ns: u64,
}

impl Timed for DnsMessage {
    fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
}

impl DnsMessage {
    /// `req_body`: `{"queries":[{"name":..,"type":..}]}`.
    pub fn body_json(&self) -> String {
        let list = |items: Vec<String>| format!("[{}]", items.join(","));
        if self.header.flags & 0x8000 == 0 {
            let queries = self
                .questions
                .iter()
                .map(|q| object(&[("name", Json::String(q.name.clone())), ("type", Json::String(type_name(q.qtype)))]))
                .collect();
            return format!("{{\"queries\":{}}}", list(queries));
        }
        let answers = self
            .answers
            .iter()
            .map(|a| {
                let mut fields =
                    vec![("name", Json::String(a.name.clone())), ("type", Json::String(type_name(a.rtype)))];
                match a.rtype {
                    1 | 28 => fields.push(("addr", Json::String(a.data.clone()))),
                    5 => fields.push(("cname", Json::String(a.data.clone()))),
                    _ => {}
                }
                object(&fields)
            })
            .collect();
        format!("{{\"answers\":{}}}", list(answers))
    }
}

/// The name of a record type (`A`, `AAAA`, `CNAME`, ...), or its number.
pub fn type_name(t: u16) -> String {
    let name = match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        41 => "OPT",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        other => return other.to_string(),
    };
    name.to_string()
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[x, y]) => Some(u16::from_be_bytes([x, y])),
        _ => None,
    }
}

/// Reads the (possibly compressed) name at `at`; returns it and the offset after it in place.
fn name(msg: &[u8], at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut pos = at;
    let mut end = None;
    for _ in 0..MAX_HOPS {
        loop {
            let len = *msg.get(pos)?;
            match len & 0xc0 {
                0xc0 => {
                    let target = usize::from(be16(msg, pos)? & 0x3fff);
                    end.get_or_insert(pos + 2);
                    pos = target;
                    break;
                }
                0 if len == 0 => {
                    return Some((out, end.unwrap_or(pos + 1)));
                }
                0 => {
                    let label = msg.get(pos + 1..pos + 1 + usize::from(len))?;
                    if !out.is_empty() {
                        out.push('.');
                    }
                    if out.len() + label.len() > MAX_NAME {
                        return None;
                    }
                    for &c in label {
                        if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                            out.push(char::from(c));
                        } else {
                            let _ = write!(out, "\\{c:03}");
                        }
                    }
                    pos += 1 + usize::from(len);
                }
                _ => return None,
            }
        }
    }
    None
}

/// Decodes one message; `None` when it is not a well-formed DNS message (answers past the first
/// [`MAX_RECORDS`], and sections after the answers, are not read).
pub fn decode(msg: &[u8], ts_ns: u64) -> Option<DnsMessage> {
    if msg.len() < HEADER {
        return None;
    }
    let header = Header {
        txid: be16(msg, 0)?,
        flags: be16(msg, 2)?,
        counts: [be16(msg, 4)?, be16(msg, 6)?, be16(msg, 8)?, be16(msg, 10)?],
    };
    let mut at = HEADER;
    let mut questions = Vec::new();
    for i in 0..header.counts[0] {
        let (n, next) = name(msg, at)?;
        let qtype = be16(msg, next)?;
        be16(msg, next + 2)?;
        at = next + 4;
        if usize::from(i) < MAX_RECORDS {
            questions.push(Question { name: n, qtype });
        }
    }
    let mut answers = Vec::new();
    for _ in 0..usize::from(header.counts[1]).min(MAX_RECORDS) {
        let (n, next) = name(msg, at)?;
        let rtype = be16(msg, next)?;
        let rdlen = usize::from(be16(msg, next + 8)?);
        let rdata_at = next + 10;
        let rdata = msg.get(rdata_at..rdata_at + rdlen)?;
        let data = match (rtype, rdata) {
            (1, &[a, b, c, d]) => Ipv4Addr::new(a, b, c, d).to_string(),
            (28, r) if r.len() == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(r);
                Ipv6Addr::from(o).to_string()
            }
            (5, _) => name(msg, rdata_at).map(|(n, _)| n).unwrap_or_default(),
            _ => String::new(),
        };
        answers.push(Answer { name: n, rtype, data });
        at = rdata_at + rdlen;
    }
    Some(DnsMessage { header, questions, answers, ts_ns })
}

/// Whether a connection's first captured bytes are a DNS query over TCP: a length, then a
/// header with QR = 0, a standard opcode (QUERY, IQUERY, STATUS) and one question, that decodes.
/// A first read of exactly the 2 length bytes (17 to 255: one question), as `dnsmasq` reads, counts
/// too: the parser then checks the message and counts an error if it is not DNS.
pub fn looks_like_tcp_query(first: &[u8]) -> bool {
    if let [0, len] = first {
        return *len >= 17;
    }
    let Some(len) = be16(first, 0) else { return false };
    let Some(msg) = first.get(2..) else { return false };
    let flags = be16(msg, 2).unwrap_or(0xffff);
    if len < 17 || flags & 0x8000 != 0 || (flags >> 11) & 0xf > 2 || be16(msg, 4) != Some(1) {
        return false;
    }
    match msg.get(..usize::from(len)) {
        Some(whole) => decode(whole, 0).is_some(),
        // Only a prefix captured: the question's first label must at least be plausible.
        None => msg.len() >= HEADER,
    }
}

/// Counters for one [`DnsConn`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Messages decoded.
    pub messages: u64,
    /// Messages (or datagrams) that did not decode, and TCP streams that lost their framing.
    pub errors: u64,
    /// Capture gaps reported.
    pub gaps: u64,
    /// Partial messages dropped at a gap or a close.
    pub dropped_partial: u64,
    /// Pairing counters.
    pub stitch: StitchCounts,
}

/// A query with its response.
pub type Record = Exchange<DnsMessage, DnsMessage>;

/// One direction's TCP framing state.
#[derive(Debug, Clone, Default)]
struct Framer {
    buf: Vec<u8>,
    first_ns: u64,
    /// Lost the framing: nothing more is read on this side.
    lost: bool,
}

/// DNS for one connection (or one UDP socket): the main entry point (see the module example).
///
/// Capture gaps: over TCP a gap loses the framing of its side for good (DNS-over-TCP connections
/// are short); over UDP a gap only loses that datagram.
#[derive(Debug)]
pub struct DnsConn {
    config: DnsConfig,
    sides: [Framer; 2],
    stitcher: KeyedStitcher<u16, DnsMessage, DnsMessage>,
    stats: DnsStats,
}

/// Largest TCP message (the length field's limit) plus its length bytes: the framing bound per side.
pub const MAX_TCP_MESSAGE: usize = 2 + 65_535;

impl DnsConn {
    /// A connection with no bytes seen yet.
    pub fn new(config: DnsConfig) -> Self {
        Self {
            config,
            sides: [Framer::default(), Framer::default()],
            stitcher: KeyedStitcher::new(config.max_pending),
            stats: DnsStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> DnsStats {
        DnsStats { stitch: self.stitcher.counts(), ..self.stats }
    }

    fn message(&mut self, side: Side, bytes: &[u8], first_ns: u64, last_ns: u64) {
        let ts = if side == Side::Request { first_ns } else { last_ns };
        let Some(msg) = decode(bytes, ts) else {
            self.stats.errors += 1;
            return;
        };
        self.stats.messages += 1;
        let key = msg.header.txid;
        // The QR bit, not the side, says what a message is: a traced resolver both asks and answers.
        if msg.header.flags & 0x8000 == 0 {
            self.stitcher.push_request(key, msg);
        } else {
            self.stitcher.push_response(key, msg);
        }
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::Request => 0,
        Side::Response => 1,
    }
}

impl ConnParser for DnsConn {
    type Record = Record;

    fn feed(&mut self, side: Side, data: &[u8], ts_ns: u64) {
        if self.config.transport == Transport::Udp {
            self.message(side, data, ts_ns, ts_ns);
            return;
        }
        let i = index(side);
        let Some(framer) = self.sides.get_mut(i) else { return };
        if framer.lost {
            return;
        }
        if framer.buf.is_empty() {
            framer.first_ns = ts_ns;
        }
        let mut rest = data;
        let mut done = Vec::new();
        while !rest.is_empty() {
            // Top up the buffer to the length field, then to the whole message.
            let need = match be16(&framer.buf, 0) {
                Some(len) => 2 + usize::from(len),
                None => 2,
            };
            let take = need.saturating_sub(framer.buf.len()).min(rest.len());
            framer.buf.extend_from_slice(rest.get(..take).unwrap_or_default());
            rest = rest.get(take..).unwrap_or_default();
            if let Some(len) = be16(&framer.buf, 0)
                && framer.buf.len() == 2 + usize::from(len)
            {
                done.push((std::mem::take(&mut framer.buf), framer.first_ns));
                framer.first_ns = ts_ns;
            }
        }
        for (bytes, first_ns) in done {
            self.message(side, bytes.get(2..).unwrap_or_default(), first_ns, ts_ns);
        }
    }

    fn gap(&mut self, side: Side, len: u64, _ts_ns: u64) {
        if len == 0 {
            return;
        }
        self.stats.gaps += 1;
        if self.config.transport == Transport::Tcp
            && let Some(framer) = self.sides.get_mut(index(side))
        {
            if !framer.buf.is_empty() {
                self.stats.dropped_partial += 1;
            }
            framer.buf = Vec::new();
            if !framer.lost {
                framer.lost = true;
                self.stats.errors += 1;
            }
        }
    }

    fn close(&mut self, _ts_ns: u64) {
        for framer in &mut self.sides {
            if !framer.buf.is_empty() {
                self.stats.dropped_partial += 1;
            }
            framer.buf = Vec::new();
        }
        self.stitcher.close();
    }

    fn drain_records(&mut self, out: &mut Vec<Record>) {
        self.stitcher.drain(out);
    }

    fn buffered_bytes(&self) -> usize {
        self.sides.iter().map(|f| f.buf.len()).sum()
    }
}
