//! CQL frames: the 9-byte envelope header and the bodies summarised as JSON.
//!
//! Owns [`Message`], the header checks, the body summaries of every opcode (requests: `STARTUP`
//! options, `QUERY`/`PREPARE` text, `EXECUTE` ids, `BATCH` statements, `REGISTER` events, the
//! `AUTH_RESPONSE` token; responses: `ERROR` code and message, `RESULT` kind with columns and row
//! count, `SUPPORTED` options, `EVENT`s, the SASL tokens) and [`looks_like`]. Must not touch
//! pairing or v5 segments (see `conn`).

use crate::framed::{Obj, Reader, hex, push_json_str, text};
use crate::stitch::Timed;

/// The envelope header's size (protocol v3 and later).
pub(crate) const HEADER: usize = 9;
/// The largest body accepted (Cassandra's `native_transport_max_frame_size` is at most 256 MiB).
const MAX_BODY: u64 = 256 << 20;
/// Entries of one list shown in a summary.
const MAX_LIST: usize = 64;
/// Bytes of one string shown (query texts are bounded by the body budget instead).
const MAX_TEXT: usize = 256;
/// Nesting of column types followed.
const MAX_TYPE_DEPTH: usize = 8;

/// The name of an opcode (`QUERY`, `RESULT`, ...).
pub fn opcode_name(op: u8) -> &'static str {
    match op {
        0x00 => "ERROR",
        0x01 => "STARTUP",
        0x02 => "READY",
        0x03 => "AUTHENTICATE",
        0x05 => "OPTIONS",
        0x06 => "SUPPORTED",
        0x07 => "QUERY",
        0x08 => "RESULT",
        0x09 => "PREPARE",
        0x0A => "EXECUTE",
        0x0B => "REGISTER",
        0x0C => "EVENT",
        0x0D => "BATCH",
        0x0E => "AUTH_CHALLENGE",
        0x0F => "AUTH_RESPONSE",
        0x10 => "AUTH_SUCCESS",
        _ => "UNKNOWN",
    }
}

/// One CQL message (an envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Protocol version, without the direction bit.
    pub version: u8,
    /// Header flags (compression, tracing, custom payload, warning, beta).
    pub flags: u8,
    /// The stream id that pairs a response with its request; negative for server pushes.
    pub stream: i16,
    /// The opcode.
    pub opcode: u8,
    /// The body summarised as JSON (`{"query":"SELECT ...","consistency":"ONE"}`,
    /// `{"kind":"Rows","columns":["k","v"],"rows":3}`). SASL tokens are as sent (redaction
    /// replaces them).
    pub body: String,
    /// Some of the message is missing (cut to the limit, lost in a gap, or compressed).
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

impl Message {
    /// Whether the message is a response (the header's direction bit).
    pub fn is_response(&self) -> bool {
        matches!(self.opcode, 0x00 | 0x02 | 0x03 | 0x06 | 0x08 | 0x0C | 0x0E | 0x10)
    }
}

impl Timed for Message {
    fn ts_ns(&self) -> u64 {
        if self.is_response() { self.last_ns } else { self.first_ns }
    }
}

/// The body length of an envelope header, or `None` when implausible.
pub(crate) fn body_len(head: &[u8]) -> Option<u64> {
    let [version, _flags, _, _, opcode, a, b, c, d] = *head else { return None };
    let len = u64::from(u32::from_be_bytes([a, b, c, d]));
    ((3..=5).contains(&(version & 0x7f)) && opcode <= 0x10 && opcode != 0x04 && len <= MAX_BODY).then_some(len)
}

fn consistency_name(c: u16) -> &'static str {
    match c {
        0x0000 => "ANY",
        0x0001 => "ONE",
        0x0002 => "TWO",
        0x0003 => "THREE",
        0x0004 => "QUORUM",
        0x0005 => "ALL",
        0x0006 => "LOCAL_QUORUM",
        0x0007 => "EACH_QUORUM",
        0x0008 => "SERIAL",
        0x0009 => "LOCAL_SERIAL",
        0x000A => "LOCAL_ONE",
        _ => "UNKNOWN",
    }
}

/// The CQL notation's readers.
fn string<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let n = r.u16_be()?;
    r.take(usize::from(n))
}

fn long_string<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let n = usize::try_from(r.i32_be()?).ok()?;
    r.take(n)
}

fn short_bytes<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    string(r)
}

/// `[bytes]`: `None` inside for null (or "not set").
fn bytes<'a>(r: &mut Reader<'a>) -> Option<Option<&'a [u8]>> {
    let n = r.i32_be()?;
    if n < 0 {
        return Some(None);
    }
    r.take(usize::try_from(n).ok()?).map(Some)
}

fn string_list(r: &mut Reader<'_>, cut: &mut bool) -> Option<String> {
    let n = r.u16_be()?;
    let mut items = Vec::new();
    for _ in 0..n {
        let s = string(r)?;
        if items.len() < MAX_LIST {
            let mut out = String::new();
            push_json_str(&mut out, &text(s, MAX_TEXT, cut));
            items.push(out);
        }
    }
    Some(format!("[{}]", items.join(",")))
}

/// Query parameters (`QUERY`, `EXECUTE`): consistency and the number of bound values.
fn query_params(r: &mut Reader<'_>, version: u8, o: &mut Obj) -> Option<()> {
    o.str("consistency", consistency_name(r.u16_be()?));
    let flags = if version >= 5 { r.i32_be()? as u32 } else { u32::from(r.u8()?) };
    if flags & 0x01 != 0 {
        o.num("values", r.u16_be()?.into());
    }
    Some(())
}

/// A column type, rendered by name (`int`, `list<text>`, ...).
fn col_type(r: &mut Reader<'_>, depth: usize, out: &mut String, cut: &mut bool) -> Option<()> {
    if depth > MAX_TYPE_DEPTH {
        return None;
    }
    let id = r.u16_be()?;
    let simple = match id {
        0x0000 => {
            out.push_str(&text(string(r)?, MAX_TEXT, cut));
            return Some(());
        }
        0x0001 => "ascii",
        0x0002 => "bigint",
        0x0003 => "blob",
        0x0004 => "boolean",
        0x0005 => "counter",
        0x0006 => "decimal",
        0x0007 => "double",
        0x0008 => "float",
        0x0009 => "int",
        0x000B => "timestamp",
        0x000C => "uuid",
        0x000D => "varchar",
        0x000E => "varint",
        0x000F => "timeuuid",
        0x0010 => "inet",
        0x0011 => "date",
        0x0012 => "time",
        0x0013 => "smallint",
        0x0014 => "tinyint",
        0x0015 => "duration",
        0x0020 | 0x0022 => {
            out.push_str(if id == 0x0020 { "list<" } else { "set<" });
            col_type(r, depth + 1, out, cut)?;
            out.push('>');
            return Some(());
        }
        0x0021 => {
            out.push_str("map<");
            col_type(r, depth + 1, out, cut)?;
            out.push(',');
            col_type(r, depth + 1, out, cut)?;
            out.push('>');
            return Some(());
        }
        0x0030 => {
            string(r)?;
            out.push_str(&text(string(r)?, MAX_TEXT, cut));
            for _ in 0..r.u16_be()? {
                string(r)?;
                col_type(r, depth + 1, &mut String::new(), cut)?;
            }
            return Some(());
        }
        0x0031 => {
            out.push_str("tuple<");
            for i in 0..r.u16_be()? {
                if i > 0 {
                    out.push(',');
                }
                col_type(r, depth + 1, out, cut)?;
            }
            out.push('>');
            return Some(());
        }
        _ => return None,
    };
    out.push_str(simple);
    Some(())
}

/// Rows metadata: the column names (and types); returns whether the metadata was present.
fn metadata(r: &mut Reader<'_>, version: u8, o: &mut Obj, cut: &mut bool) -> Option<()> {
    let flags = r.i32_be()?;
    let count = usize::try_from(r.i32_be()?).ok()?;
    if flags & 0x0002 != 0 {
        bytes(r)?;
    }
    if version >= 5 && flags & 0x0008 != 0 {
        short_bytes(r)?;
    }
    if flags & 0x0004 != 0 {
        o.num("columns_count", count as i64);
        return Some(());
    }
    let global = flags & 0x0001 != 0;
    if global {
        string(r)?;
        string(r)?;
    }
    let mut columns = Vec::new();
    for _ in 0..count {
        if !global {
            string(r)?;
            string(r)?;
        }
        let name = text(string(r)?, MAX_TEXT, cut);
        let mut ty = String::new();
        col_type(r, 0, &mut ty, cut)?;
        if columns.len() < MAX_LIST {
            let mut c = String::new();
            push_json_str(&mut c, &format!("{name} {ty}"));
            columns.push(c);
        }
    }
    o.raw("columns", &format!("[{}]", columns.join(",")));
    Some(())
}

/// Summarises a body; `None` when it does not decode (the summary so far is then returned with
/// `cut` set by the caller).
fn summary(opcode: u8, version: u8, r: &mut Reader<'_>, o: &mut Obj, max: usize, cut: &mut bool) -> Option<()> {
    match opcode {
        0x00 => {
            o.num("code", r.i32_be()?.into());
            o.str("message", &text(string(r)?, max, cut));
        }
        0x01 => {
            for _ in 0..r.u16_be()? {
                let k = text(string(r)?, MAX_TEXT, cut);
                let v = text(string(r)?, MAX_TEXT, cut);
                o.str(&k, &v);
            }
        }
        0x03 => o.str("authenticator", &text(string(r)?, MAX_TEXT, cut)),
        0x06 => {
            for _ in 0..r.u16_be()? {
                let k = text(string(r)?, MAX_TEXT, cut);
                let list = string_list(r, cut)?;
                o.raw(&k, &list);
            }
        }
        0x07 => {
            o.str("query", &text(long_string(r)?, max, cut));
            query_params(r, version, o)?;
        }
        0x08 => match r.i32_be()? {
            1 => o.str("kind", "Void"),
            2 => {
                o.str("kind", "Rows");
                metadata(r, version, o, cut)?;
                o.num("rows", r.i32_be()?.into());
            }
            3 => {
                o.str("kind", "SetKeyspace");
                o.str("keyspace", &text(string(r)?, MAX_TEXT, cut));
            }
            4 => {
                o.str("kind", "Prepared");
                o.str("id", &hex(short_bytes(r)?, 32));
            }
            5 => {
                o.str("kind", "SchemaChange");
                schema_change(r, o, cut)?;
            }
            k => o.num("kind", k.into()),
        },
        0x09 => o.str("query", &text(long_string(r)?, max, cut)),
        0x0A => {
            o.str("id", &hex(short_bytes(r)?, 32));
            if version >= 5 {
                short_bytes(r)?;
            }
            query_params(r, version, o)?;
        }
        0x0B => o.raw("events", &string_list(r, cut)?),
        0x0C => {
            let kind = text(string(r)?, MAX_TEXT, cut);
            o.str("type", &kind);
            if kind == "SCHEMA_CHANGE" {
                schema_change(r, o, cut)?;
            } else {
                o.str("change", &text(string(r)?, MAX_TEXT, cut));
            }
        }
        0x0D => {
            let kind = r.u8()?;
            o.str(
                "type",
                match kind {
                    0 => "LOGGED",
                    1 => "UNLOGGED",
                    2 => "COUNTER",
                    _ => "UNKNOWN",
                },
            );
            let n = r.u16_be()?;
            let mut queries = Vec::new();
            let done = (|| {
                for _ in 0..n {
                    let q = match r.u8()? {
                        0 => {
                            let mut s = String::from("{\"query\":");
                            push_json_str(&mut s, &text(long_string(r)?, MAX_TEXT, cut));
                            s.push('}');
                            s
                        }
                        1 => format!("{{\"id\":\"{}\"}}", hex(short_bytes(r)?, 32)),
                        _ => return None,
                    };
                    for _ in 0..r.u16_be()? {
                        bytes(r)?;
                    }
                    if queries.len() < MAX_LIST {
                        queries.push(q);
                    }
                }
                Some(())
            })();
            o.raw("queries", &format!("[{}]", queries.join(",")));
            done?;
            o.str("consistency", consistency_name(r.u16_be()?));
        }
        0x0E..=0x10 => {
            // Kept as sent, so that redaction (on by default) finds and replaces it.
            match bytes(r)? {
                Some(token) => o.str("token", &String::from_utf8_lossy(token)),
                None => o.raw("token", "null"),
            }
        }
        _ => {}
    }
    Some(())
}

fn schema_change(r: &mut Reader<'_>, o: &mut Obj, cut: &mut bool) -> Option<()> {
    o.str("change", &text(string(r)?, MAX_TEXT, cut));
    let target = text(string(r)?, MAX_TEXT, cut);
    o.str("target", &target);
    o.str("keyspace", &text(string(r)?, MAX_TEXT, cut));
    if target != "KEYSPACE" {
        o.str("name", &text(string(r)?, MAX_TEXT, cut));
    }
    Some(())
}

/// Decodes a whole envelope from its kept bytes (header first).
pub(crate) fn decode(kept: &[u8], cut: bool, max: usize, first_ns: u64, last_ns: u64) -> Option<Message> {
    let mut r = Reader::new(kept);
    let version_byte = r.u8()?;
    let flags = r.u8()?;
    let stream = r.i16_be()?;
    let opcode = r.u8()?;
    r.i32_be()?;
    let version = version_byte & 0x7f;
    let is_response = version_byte & 0x80 != 0;
    let mut cut = cut;
    let mut o = Obj::new();
    if flags & 0x01 != 0 {
        // Compressed with LZ4 or Snappy: not decoded.
        o.raw("compressed", "true");
        cut = true;
    } else {
        let body = (|| {
            if is_response && flags & 0x02 != 0 {
                r.take(16)?;
            }
            if flags & 0x08 != 0 && is_response {
                string_list(&mut r, &mut cut)?;
            }
            if flags & 0x04 != 0 {
                for _ in 0..r.u16_be()? {
                    string(&mut r)?;
                    bytes(&mut r)?;
                }
            }
            summary(opcode, version, &mut r, &mut o, max, &mut cut)
        })();
        if body.is_none() {
            cut = true;
        }
    }
    Some(Message { version, flags, stream, opcode, body: o.done(), cut, first_ns, last_ns })
}

/// Whether the first bytes of a connection are a CQL request: a v3 to v5 request header of
/// `OPTIONS` (empty body) or `STARTUP` (a string map holding `CQL_VERSION`).
pub fn looks_like(first: &[u8]) -> bool {
    let Some(head) = first.get(..HEADER) else { return false };
    let Some(len) = body_len(head) else { return false };
    let [version, flags, _, _, opcode, ..] = *head else { return false };
    if !(3..=5).contains(&version) || flags & !0x1e != 0 {
        return false;
    }
    match opcode {
        0x05 => len == 0,
        0x01 => (4..=64 * 1024).contains(&len) && memchr::memmem::find(first, b"CQL_VERSION").is_some(),
        _ => false,
    }
}
