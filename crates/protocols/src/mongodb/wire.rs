//! MongoDB messages: the 16-byte header, the opcodes' bodies and BSON as JSON.
//!
//! Owns [`Message`], the decoding of a whole message's kept bytes (`OP_MSG` sections, `OP_QUERY`,
//! `OP_REPLY`, `OP_COMPRESSED` with zlib or noop inflated within the budget, legacy opcodes by name), the BSON renderer (relaxed
//! extended JSON: `{"$oid":...}`, `{"$date":...}`, `{"$binary":...}`) and [`looks_like`]. Must not
//! touch pairing (see `conn`).
//!
//! The renderer is bounded: documents nest at most [`MAX_DEPTH`] deep and the JSON stops growing
//! past its budget (the message is then marked cut), whatever the input.

use std::fmt::Write as _;

use crate::framed::{Reader, hex, push_json_str};
use crate::stitch::Timed;

/// The largest message accepted (`mongod`'s `maxMessageSizeBytes` is 48 MB).
pub(crate) const MAX_MESSAGE: u64 = 48_000_000;
/// Documents nested deeper are not rendered (the message is marked cut).
pub const MAX_DEPTH: usize = 32;

const OP_REPLY: i32 = 1;
const OP_QUERY: i32 = 2004;
const OP_COMPRESSED: i32 = 2012;
const OP_MSG: i32 = 2013;

/// The name of an opcode (`OP_MSG`, `OP_QUERY`, ...); `OP_UNKNOWN` for others.
pub fn opcode_name(op: i32) -> &'static str {
    match op {
        1 => "OP_REPLY",
        2001 => "OP_UPDATE",
        2002 => "OP_INSERT",
        2004 => "OP_QUERY",
        2005 => "OP_GET_MORE",
        2006 => "OP_DELETE",
        2007 => "OP_KILL_CURSORS",
        2010 => "OP_COMMAND",
        2011 => "OP_COMMANDREPLY",
        2012 => "OP_COMPRESSED",
        2013 => "OP_MSG",
        _ => "OP_UNKNOWN",
    }
}

/// One MongoDB message, request or reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The header's `requestID`.
    pub request_id: i32,
    /// The header's `responseTo` (0 in requests).
    pub response_to: i32,
    /// The header's opcode.
    pub op_code: i32,
    /// The command: the first key of an `OP_MSG` body or of an `OP_QUERY` on `<db>.$cmd`
    /// (`insert`, `find`, `hello`, ...), `query` for other `OP_QUERY`s, the opcode's name for the
    /// rest; empty in replies.
    pub cmd: String,
    /// The documents as JSON: an `OP_MSG` body with its document sequences as arrays under their
    /// identifiers (`documents`, `updates`), an `OP_QUERY`'s query, an `OP_REPLY`'s document (or
    /// `{"documents":[...]}` when several). Credentials are as sent (redaction replaces them).
    pub body: String,
    /// For replies: `ok` when the reply says `ok: 1`, `error` when `ok: 0`, empty when it says
    /// neither.
    pub status: String,
    /// `OP_MSG`'s `moreToCome` (or a legacy write): no reply will follow.
    pub more_to_come: bool,
    /// Some of the message is missing: cut to the limit, lost in a gap, or rendered past the
    /// JSON budget.
    pub cut: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

impl Timed for Message {
    fn ts_ns(&self) -> u64 {
        if self.response_to == 0 { self.first_ns } else { self.last_ns }
    }
}

/// The body length of a header (its first 4 bytes are the whole message's length), or `None` when
/// implausible.
pub(crate) fn body_len(head: &[u8]) -> Option<u64> {
    let len = i32::from_le_bytes(head.get(..4)?.try_into().ok()?);
    let len = u64::try_from(len).ok()?;
    (16..=MAX_MESSAGE).contains(&len).then(|| len - 16)
}

/// The fields of a document's top level the row needs.
#[derive(Default)]
struct Top {
    first_key: Option<String>,
    ok: Option<f64>,
}

/// BSON rendered as JSON into a bounded string.
struct Json {
    out: String,
    budget: usize,
    cut: bool,
}

impl Json {
    fn over(&mut self) -> bool {
        if self.out.len() > self.budget {
            self.cut = true;
        }
        self.cut
    }
}

/// Renders the document at the start of `r` (`{...}`, or `[...]` when `array`); `None` when it is
/// malformed, cut short, or the budget ran out.
fn document(r: &mut Reader<'_>, json: &mut Json, array: bool, depth: usize, mut top: Option<&mut Top>) -> Option<()> {
    let len = usize::try_from(r.i32_le()?).ok()?.checked_sub(4)?;
    // A document that runs past the kept bytes is rendered as far as it was kept.
    let kept = match r.take(len) {
        Some(kept) => kept,
        None => {
            json.cut = true;
            let rest = r.rest();
            r.take(rest.len())?
        }
    };
    let mut d = Reader::new(kept);
    if depth >= MAX_DEPTH {
        json.cut = true;
        return None;
    }
    json.out.push(if array { '[' } else { '{' });
    let mut first = true;
    loop {
        let kind = d.u8()?;
        if kind == 0 {
            break;
        }
        let name = d.cstring()?;
        if !first {
            json.out.push(',');
        }
        first = false;
        if !array {
            push_json_str(&mut json.out, &String::from_utf8_lossy(name));
            json.out.push(':');
        }
        if let Some(top) = top.as_deref_mut()
            && top.first_key.is_none()
        {
            top.first_key = Some(String::from_utf8_lossy(name).into_owned());
        }
        let is_ok = top.is_some() && name == b"ok";
        let number = value(&mut d, kind, json, depth)?;
        if is_ok && let Some(top) = top.as_deref_mut() {
            top.ok = number;
        }
        if json.over() {
            return None;
        }
    }
    json.out.push(if array { ']' } else { '}' });
    Some(())
}

fn string<'a>(r: &mut Reader<'a>) -> Option<&'a [u8]> {
    let n = usize::try_from(r.i32_le()?).ok()?;
    let s = r.take(n)?;
    s.strip_suffix(b"\0")
}

/// Renders one value of BSON type `kind`; returns its numeric value when it has one (for `ok`).
fn value(r: &mut Reader<'_>, kind: u8, json: &mut Json, depth: usize) -> Option<Option<f64>> {
    let out = &mut json.out;
    let mut number = None;
    match kind {
        0x01 => {
            let v = r.f64_le()?;
            number = Some(v);
            match serde_json::Number::from_f64(v) {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => {
                    let _ = write!(out, "{{\"$numberDouble\":\"{v}\"}}");
                }
            }
        }
        0x02 | 0x0D | 0x0E => {
            let s = String::from_utf8_lossy(string(r)?);
            match kind {
                0x02 => push_json_str(out, &s),
                0x0D => {
                    out.push_str("{\"$code\":");
                    push_json_str(out, &s);
                    out.push('}');
                }
                _ => {
                    out.push_str("{\"$symbol\":");
                    push_json_str(out, &s);
                    out.push('}');
                }
            }
        }
        0x03 | 0x04 => document(r, json, kind == 0x04, depth + 1, None)?,
        0x05 => {
            let n = usize::try_from(r.i32_le()?).ok()?;
            let subtype = r.u8()?;
            let data = r.take(n)?;
            out.push_str("{\"$binary\":{\"base64\":\"");
            base64(out, data);
            let _ = write!(out, "\",\"subType\":\"{subtype:02x}\"}}}}");
        }
        0x06 => out.push_str("{\"$undefined\":true}"),
        0x07 => {
            let _ = write!(out, "{{\"$oid\":\"{}\"}}", hex(r.take(12)?, 12));
        }
        0x08 => {
            let v = r.u8()? != 0;
            number = Some(f64::from(u8::from(v)));
            out.push_str(if v { "true" } else { "false" });
        }
        0x09 => {
            let _ = write!(out, "{{\"$date\":{{\"$numberLong\":\"{}\"}}}}", r.i64_le()?);
        }
        0x0A => out.push_str("null"),
        0x0B => {
            let pattern = String::from_utf8_lossy(r.cstring()?);
            let options = String::from_utf8_lossy(r.cstring()?);
            out.push_str("{\"$regularExpression\":{\"pattern\":");
            push_json_str(out, &pattern);
            out.push_str(",\"options\":");
            push_json_str(out, &options);
            out.push_str("}}");
        }
        0x0C => {
            let ns = String::from_utf8_lossy(string(r)?);
            let id = hex(r.take(12)?, 12);
            out.push_str("{\"$dbPointer\":{\"$ref\":");
            push_json_str(out, &ns);
            let _ = write!(out, ",\"$id\":{{\"$oid\":\"{id}\"}}}}}}");
        }
        0x0F => {
            let n = usize::try_from(r.i32_le()?).ok()?;
            let mut scoped = Reader::new(r.take(n.checked_sub(4)?)?);
            let code = String::from_utf8_lossy(string(&mut scoped)?);
            out.push_str("{\"$code\":");
            push_json_str(out, &code);
            out.push_str(",\"$scope\":");
            document(&mut scoped, json, false, depth + 1, None)?;
            json.out.push('}');
        }
        0x10 => {
            let v = r.i32_le()?;
            number = Some(f64::from(v));
            let _ = write!(out, "{v}");
        }
        0x11 => {
            let i = r.u32_le()?;
            let t = r.u32_le()?;
            let _ = write!(out, "{{\"$timestamp\":{{\"t\":{t},\"i\":{i}}}}}");
        }
        0x12 => {
            let v = r.i64_le()?;
            number = Some(v as f64);
            let _ = write!(out, "{v}");
        }
        0x13 => {
            // The IEEE 754-2008 decimal's bytes; rendering its digits is not worth the code here.
            let _ = write!(out, "{{\"$numberDecimalBytes\":\"{}\"}}", hex(r.take(16)?, 16));
        }
        0xFF => out.push_str("{\"$minKey\":1}"),
        0x7F => out.push_str("{\"$maxKey\":1}"),
        _ => return None,
    }
    Some(number)
}

/// Renders an `OP_MSG`'s sections: the body (kind 0) into `json`, each document sequence (kind 1)
/// as a JSON array into `sequences`; `None` when malformed or cut short.
fn sections(s: &mut Reader<'_>, json: &mut Json, top: &mut Top, sequences: &mut Vec<(String, String)>) -> Option<()> {
    let mut body_seen = false;
    while !s.is_empty() {
        match s.u8()? {
            0 if !body_seen => {
                body_seen = true;
                document(s, json, false, 0, Some(top))?;
            }
            1 => {
                let n = usize::try_from(s.i32_le()?).ok()?;
                let mut seq = Reader::new(s.take(n.checked_sub(4)?)?);
                let id = String::from_utf8_lossy(seq.cstring()?).into_owned();
                let budget = json.budget.saturating_sub(json.out.len());
                let mut docs = Json { out: String::from("["), budget, cut: false };
                let mut first = true;
                let mut done = Some(());
                while !seq.is_empty() && done.is_some() {
                    if !first {
                        docs.out.push(',');
                    }
                    first = false;
                    done = document(&mut seq, &mut docs, false, 1, None);
                }
                docs.out.push(']');
                json.cut |= docs.cut;
                sequences.push((id, docs.out));
                done?;
            }
            _ => return None,
        }
    }
    body_seen.then_some(())
}

/// The bytes of a compressed message body, at most `budget` of them: `noop` and `zlib` are
/// decoded (never past the budget, whatever the input claims); `snappy` and `zstd` are not.
fn decompress(compressor: u8, data: &[u8], size: i32, budget: usize) -> Option<Vec<u8>> {
    let want = usize::try_from(size).ok()?.min(budget);
    match compressor {
        0 => Some(data.get(..want.min(data.len()))?.to_vec()),
        2 => {
            let mut out = Vec::with_capacity(want);
            let mut z = flate2::Decompress::new(true);
            z.decompress_vec(data, &mut out, flate2::FlushDecompress::Finish).ok()?;
            Some(out)
        }
        _ => None,
    }
}

/// Standard base64 with padding.
fn base64(out: &mut String, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |i: u32| char::from(ALPHABET.get((i & 63) as usize).copied().unwrap_or(b'A'));
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
}

/// Decodes a whole message from its kept bytes (header first); `None` when its header or first
/// document is malformed. `budget` bounds the JSON.
pub(crate) fn decode(bytes: &[u8], cut: bool, budget: usize, first_ns: u64, last_ns: u64) -> Option<Message> {
    let mut r = Reader::new(bytes);
    r.i32_le()?;
    let request_id = r.i32_le()?;
    let response_to = r.i32_le()?;
    let op_code = r.i32_le()?;
    let mut json = Json { out: String::new(), budget, cut: false };
    let mut top = Top::default();
    let mut cmd = String::new();
    let mut more_to_come = false;
    // Whether the bytes rendered so far end where they should (false: cut short).
    let complete: Option<()> = match op_code {
        OP_MSG => {
            let flags = r.u32_le()?;
            more_to_come = flags & 2 != 0;
            let mut rest = r.rest();
            if flags & 1 != 0 && !cut {
                rest = rest.get(..rest.len().checked_sub(4)?)?;
            }
            let mut sequences: Vec<(String, String)> = Vec::new();
            let done = sections(&mut Reader::new(rest), &mut json, &mut top, &mut sequences);
            // Document sequences become arrays of the body, as drivers' command monitoring shows them.
            if json.out.ends_with('}') && !sequences.is_empty() {
                json.out.pop();
                for (id, docs) in &sequences {
                    if json.out.len() > 1 {
                        json.out.push(',');
                    }
                    push_json_str(&mut json.out, id);
                    json.out.push(':');
                    json.out.push_str(docs);
                }
                json.out.push('}');
            }
            if response_to == 0 {
                cmd = top.first_key.clone().unwrap_or_default();
            }
            done
        }
        OP_QUERY => (|| {
            r.i32_le()?;
            let collection = String::from_utf8_lossy(r.cstring()?).into_owned();
            r.i32_le()?;
            r.i32_le()?;
            if collection.ends_with(".$cmd") {
                document(&mut r, &mut json, false, 0, Some(&mut top))?;
                cmd = top.first_key.clone().unwrap_or_default();
            } else {
                cmd = "query".into();
                json.out.push_str("{\"collection\":");
                push_json_str(&mut json.out, &collection);
                json.out.push_str(",\"query\":");
                document(&mut r, &mut json, false, 1, None)?;
                json.out.push('}');
            }
            Some(())
        })(),
        OP_REPLY => (|| {
            r.i32_le()?;
            r.i64_le()?;
            r.i32_le()?;
            let n = r.i32_le()?;
            if n == 1 {
                document(&mut r, &mut json, false, 0, Some(&mut top))?;
            } else {
                json.out.push_str("{\"documents\":[");
                let mut first = true;
                while !r.is_empty() {
                    if !first {
                        json.out.push(',');
                    }
                    first = false;
                    let mut t = Top::default();
                    document(&mut r, &mut json, false, 1, Some(&mut t))?;
                    if top.ok.is_none() {
                        top.ok = t.ok;
                    }
                }
                json.out.push_str("]}");
            }
            Some(())
        })(),
        OP_COMPRESSED => (|| {
            let original = r.i32_le()?;
            let size = r.i32_le()?;
            let id = r.u8()?;
            if original != OP_COMPRESSED
                && !cut
                && let Some(inner) = decompress(id, r.rest(), size, budget)
            {
                let mut whole = bytes.get(..16)?.to_vec();
                whole.get_mut(12..16)?.copy_from_slice(&original.to_le_bytes());
                let inner_cut = inner.len() < usize::try_from(size).unwrap_or(0);
                whole.extend(inner);
                return decode(&whole, inner_cut, budget, first_ns, last_ns).map(|m| {
                    cmd = m.cmd;
                    json.out = m.body;
                    json.cut = m.cut;
                    more_to_come = m.more_to_come;
                    top.ok = match m.status.as_str() {
                        "ok" => Some(1.0),
                        "error" => Some(0.0),
                        _ => None,
                    };
                });
            }
            let compressor = match id {
                0 => "noop",
                1 => "snappy",
                2 => "zlib",
                3 => "zstd",
                _ => "unknown",
            };
            if response_to == 0 {
                cmd = opcode_name(original).into();
            }
            let _ = write!(
                json.out,
                "{{\"compressed\":{{\"original_opcode\":\"{}\",\"compressor\":\"{compressor}\",\"uncompressed_size\":{size}}}}}",
                opcode_name(original)
            );
            more_to_come = false;
            Some(())
        })(),
        2001..=2007 | 2010 | 2011 => (|| {
            cmd = opcode_name(op_code).into();
            more_to_come = matches!(op_code, 2001 | 2002 | 2006 | 2007);
            if op_code != 2007 {
                r.i32_le()?;
                let collection = String::from_utf8_lossy(r.cstring()?).into_owned();
                json.out.push_str("{\"collection\":");
                push_json_str(&mut json.out, &collection);
                json.out.push('}');
            } else {
                json.out.push_str("{}");
            }
            Some(())
        })(),
        _ => return None,
    };
    if complete.is_none() && !cut && !json.cut {
        return None;
    }
    let status = match top.ok {
        Some(1.0) => "ok",
        Some(_) => "error",
        None => "",
    };
    Some(Message {
        request_id,
        response_to,
        op_code,
        cmd,
        body: json.out,
        status: if response_to == 0 { String::new() } else { status.to_string() },
        more_to_come,
        cut: cut || json.cut || complete.is_none(),
        first_ns,
        last_ns,
    })
}

/// Whether the first bytes of a connection are a MongoDB request: a plausible length, `responseTo`
/// 0, and an `OP_MSG` with valid flags and section kind, or an `OP_QUERY` on a `<db>.<coll>` name.
pub fn looks_like(first: &[u8]) -> bool {
    let mut r = Reader::new(first);
    let (Some(len), Some(_), Some(to), Some(op)) = (r.i32_le(), r.i32_le(), r.i32_le(), r.i32_le()) else {
        return false;
    };
    if !(21..=48_000_000).contains(&len) || to != 0 {
        return false;
    }
    match op {
        OP_MSG => {
            let (Some(flags), Some(kind)) = (r.u32_le(), r.u8()) else { return false };
            flags & !0x0001_0003 == 0 && kind <= 1
        }
        OP_QUERY => {
            r.i32_le();
            r.cstring().is_some_and(|c| c.len() >= 3 && c.contains(&b'.') && c.iter().all(|b| (0x20..0x7f).contains(b)))
        }
        _ => false,
    }
}
