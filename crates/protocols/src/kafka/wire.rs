//! Kafka messages: the size-prefixed framing, request and response headers, and the JSON summaries
//! of the bodies the table shows.
//!
//! Owns [`Request`], [`Response`], the header decoding, the body summaries (`Produce` and `Fetch`
//! topics and partitions, `Metadata` topics, `ApiVersions` client software, the SASL mechanism and
//! bytes) and [`looks_like`]. Must not touch pairing (see `conn`).
//!
//! A body is summarised from the kept prefix of its message: a message longer than the keep limit
//! (a `Produce` of large batches) is summarised as far as it was kept and marked cut.

use crate::framed::{Obj, Reader, hex, text};
use crate::stitch::Timed;

/// Bytes of a message kept beyond the body budget: enough for the headers and the topic and
/// partition lists of ordinary requests.
pub const MAX_KEPT_HEADER: usize = 4096;
/// The largest message accepted (the broker's `socket.request.max.bytes` default is 100 MiB).
pub(crate) const MAX_MESSAGE: u64 = 100 << 20;
/// Entries of one list shown in a summary.
const MAX_LIST: usize = 64;
/// Bytes of one string shown in a summary.
const MAX_TEXT: usize = 256;

/// A request: its header, and its body summarised as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The API key (0 `Produce`, 1 `Fetch`, 3 `Metadata`, 18 `ApiVersions`, ...).
    pub api_key: i16,
    /// The API version.
    pub api_version: i16,
    /// The id its response carries.
    pub correlation_id: i32,
    /// The client id of the header (empty when null).
    pub client_id: String,
    /// The body summarised as JSON (`{"acks":-1,"timeout_ms":1500,"topics":[...]}`); `{}` for
    /// APIs not summarised. `SaslAuthenticate` carries its bytes as sent (redaction replaces them).
    pub body: String,
    /// Some of the message is missing (cut to the limit or lost in a gap), so the summary may be
    /// incomplete.
    pub cut: bool,
    /// `Produce` with `acks=0`: the broker sends no response.
    pub no_response: bool,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

impl Timed for Request {
    fn ts_ns(&self) -> u64 {
        self.first_ns
    }
}

/// A response: its correlation id, and (once paired, since the body's shape depends on the
/// request's API) its body summarised as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The correlation id of the request it answers.
    pub correlation_id: i32,
    /// The body summarised as JSON (`{"topics":[{"name":"t","partitions":[{"index":0,"error_code":0,...}]}]}`);
    /// `{"error_code":N}` for APIs whose body starts with an error code, `{}` otherwise.
    pub body: String,
    /// Some of the message is missing.
    pub cut: bool,
    /// The kept bytes after the correlation id, until the body is summarised.
    pub(crate) raw: Vec<u8>,
    /// When its first byte was captured.
    pub first_ns: u64,
    /// When its last byte was captured.
    pub last_ns: u64,
}

impl Timed for Response {
    fn ts_ns(&self) -> u64 {
        self.last_ns
    }
}

/// The body length of a size prefix, or `None` when implausible. Sizes too short for a header
/// are framed anyway (the raw SASL exchange after `SaslHandshake` v0 sends empty tokens) and
/// counted as messages that did not decode.
pub(crate) fn body_len(head: &[u8]) -> Option<u64> {
    let size = i32::from_be_bytes(head.try_into().ok()?);
    let size = u64::try_from(size).ok()?;
    (size <= MAX_MESSAGE).then_some(size)
}

/// The first version of each API whose messages use the flexible encoding (compact strings and
/// arrays, tagged fields); `None` for APIs that have none.
fn first_flexible(api_key: i16) -> Option<i16> {
    Some(match api_key {
        0 => 9,
        1 => 12,
        2 => 6,
        3 => 9,
        4 => 4,
        5 => 2,
        6 => 6,
        7 => 3,
        8 => 8,
        9 => 6,
        10 => 3,
        11 => 6,
        12..=14 => 4,
        15 => 5,
        16 | 18 => 3,
        17 | 47 => return None,
        19 => 5,
        20 => 4,
        21 | 22 => 2,
        23 => 4,
        24..=26 | 28 => 3,
        27 => 1,
        29..=31 | 33..=43 => 2,
        32 => 4,
        44 | 48 | 49 => 1,
        _ => 0,
    })
}

fn is_flexible(api_key: i16, api_version: i16) -> bool {
    first_flexible(api_key).is_some_and(|v| api_version >= v)
}

/// A reader of Kafka's primitive types, in the classic or the flexible encoding.
struct KReader<'a> {
    r: Reader<'a>,
    flex: bool,
}

impl<'a> KReader<'a> {
    fn new(bytes: &'a [u8], flex: bool) -> Self {
        KReader { r: Reader::new(bytes), flex }
    }

    /// A length of a string or bytes; `None` inside for null.
    fn len(&mut self, classic: impl FnOnce(&mut Reader<'a>) -> Option<i64>) -> Option<Option<usize>> {
        let n = if self.flex { i64::from(self.r.uvarint()?) - 1 } else { classic(&mut self.r)? };
        if n < 0 { Some(None) } else { Some(Some(usize::try_from(n).ok()?)) }
    }

    fn string(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.len(|r| r.i16_be().map(i64::from))?;
        match n {
            None => Some(None),
            Some(n) => self.r.take(n).map(Some),
        }
    }

    /// Bytes (records): their length, stepped over. `None` when they were not kept whole.
    fn bytes_len(&mut self) -> Option<Option<usize>> {
        let n = self.len(|r| r.i32_be().map(i64::from))?;
        if let Some(n) = n {
            self.r.take(n)?;
        }
        Some(n)
    }

    fn bytes(&mut self) -> Option<Option<&'a [u8]>> {
        let n = self.len(|r| r.i32_be().map(i64::from))?;
        match n {
            None => Some(None),
            Some(n) => self.r.take(n).map(Some),
        }
    }

    fn array_len(&mut self) -> Option<usize> {
        let n = self.len(|r| r.i32_be().map(i64::from))?;
        Some(n.unwrap_or(0))
    }

    /// Tagged fields (flexible encoding only): stepped over.
    fn tags(&mut self) -> Option<()> {
        if !self.flex {
            return Some(());
        }
        let n = self.r.uvarint()?;
        for _ in 0..n {
            self.r.uvarint()?;
            let size = self.r.uvarint()?;
            self.r.take(usize::try_from(size).ok()?)?;
        }
        Some(())
    }

    fn i16(&mut self) -> Option<i16> {
        self.r.i16_be()
    }
    fn i32(&mut self) -> Option<i32> {
        self.r.i32_be()
    }
    fn i64(&mut self) -> Option<i64> {
        self.r.i64_be()
    }
    fn uuid(&mut self) -> Option<&'a [u8]> {
        self.r.take(16)
    }
}

/// A request's header fields.
pub(crate) struct Header<'a> {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<&'a [u8]>,
    /// The body after the header.
    pub body: &'a [u8],
}

/// Decodes a request header from a message's bytes after the size; `None` when malformed.
pub(crate) fn request_header(bytes: &[u8]) -> Option<Header<'_>> {
    let mut r = Reader::new(bytes);
    let api_key = r.i16_be()?;
    let api_version = r.i16_be()?;
    let correlation_id = r.i32_be()?;
    if !(0..=127).contains(&api_key) || !(0..=64).contains(&api_version) {
        return None;
    }
    // The client id is a classic nullable string even in the flexible header (v2).
    let n = r.i16_be()?;
    let client_id = if n < 0 { None } else { Some(r.take(usize::try_from(n).ok()?)?) };
    let mut k = KReader { r, flex: is_flexible(api_key, api_version) };
    k.tags()?;
    Some(Header { api_key, api_version, correlation_id, client_id, body: k.r.rest() })
}

/// Topic entries of a summary.
struct Topic {
    name: String,
    partitions: Vec<String>,
}

fn topics_json(topics: &[Topic]) -> String {
    let mut out = String::from("[");
    for (i, t) in topics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut o = Obj::new();
        o.str("name", &t.name);
        o.raw("partitions", &format!("[{}]", t.partitions.join(",")));
        out.push_str(&o.done());
    }
    out.push(']');
    out
}

fn name_of(k: &mut KReader<'_>, by_id: bool, cut: &mut bool) -> Option<String> {
    if by_id {
        return Some(hex(k.uuid()?, 16));
    }
    Some(k.string()?.map(|s| text(s, MAX_TEXT, cut)).unwrap_or_default())
}

/// Reads `n` topics with `partition` reading one partition each, into `topics`; stops (returns
/// `None`) where the kept bytes end.
fn read_topics(
    k: &mut KReader<'_>,
    by_id: bool,
    topics: &mut Vec<Topic>,
    cut: &mut bool,
    partition: &mut dyn FnMut(&mut KReader<'_>) -> Option<String>,
) -> Option<()> {
    let n = k.array_len()?;
    for _ in 0..n {
        let name = name_of(k, by_id, cut)?;
        let show = topics.len() < MAX_LIST;
        if show {
            topics.push(Topic { name, partitions: Vec::new() });
        }
        let parts = k.array_len()?;
        for _ in 0..parts {
            let p = partition(k)?;
            if let Some(t) = topics.last_mut().filter(|t| show && t.partitions.len() < MAX_LIST) {
                t.partitions.push(p);
            }
        }
        k.tags()?;
    }
    Some(())
}

/// Summarises a request body; returns the JSON and whether it is `Produce` with `acks=0`.
pub(crate) fn request_body(api_key: i16, v: i16, body: &[u8], cut: &mut bool) -> (String, bool) {
    let mut k = KReader::new(body, is_flexible(api_key, v));
    let mut o = Obj::new();
    let mut no_response = false;
    let complete = match api_key {
        0 => {
            let mut topics = Vec::new();
            let done = (|| {
                if v >= 3 {
                    match k.string()? {
                        Some(id) => o.str("transactional_id", &text(id, MAX_TEXT, cut)),
                        None => o.raw("transactional_id", "null"),
                    }
                }
                let acks = k.i16()?;
                no_response = acks == 0;
                o.num("acks", acks.into());
                o.num("timeout_ms", k.i32()?.into());
                read_topics(&mut k, v >= 13, &mut topics, cut, &mut |k| {
                    let index = k.i32()?;
                    let size = k.bytes_len()?;
                    k.tags()?;
                    Some(format!("{{\"index\":{index},\"message_set_size\":{}}}", size.unwrap_or(0)))
                })
            })();
            o.raw("topics", &topics_json(&topics));
            done
        }
        1 => {
            let mut topics = Vec::new();
            let done = (|| {
                if v <= 14 {
                    k.i32()?;
                }
                o.num("max_wait_ms", k.i32()?.into());
                o.num("min_bytes", k.i32()?.into());
                if v >= 3 {
                    o.num("max_bytes", k.i32()?.into());
                }
                if v >= 4 {
                    o.num("isolation_level", k.r.u8()?.into());
                }
                if v >= 7 {
                    o.num("session_id", k.i32()?.into());
                    o.num("session_epoch", k.i32()?.into());
                }
                read_topics(&mut k, v >= 13, &mut topics, cut, &mut |k| {
                    let index = k.i32()?;
                    if v >= 9 {
                        k.i32()?;
                    }
                    let offset = k.i64()?;
                    if v >= 12 {
                        k.i32()?;
                    }
                    if v >= 5 {
                        k.i64()?;
                    }
                    let max = k.i32()?;
                    k.tags()?;
                    Some(format!("{{\"index\":{index},\"fetch_offset\":{offset},\"partition_max_bytes\":{max}}}"))
                })
            })();
            o.raw("topics", &topics_json(&topics));
            done
        }
        3 => {
            let mut names = Vec::new();
            let done = (|| {
                let n = if v >= 1 {
                    let n = k.len(|r| r.i32_be().map(i64::from))?;
                    let Some(n) = n else {
                        o.raw("topics", "null");
                        return Some(());
                    };
                    n
                } else {
                    k.array_len()?
                };
                for _ in 0..n {
                    if v >= 10 {
                        k.uuid()?;
                    }
                    let name = k.string()?.map(|s| text(s, MAX_TEXT, cut)).unwrap_or_default();
                    if names.len() < MAX_LIST {
                        names.push(serde_json::Value::from(name).to_string());
                    }
                    k.tags()?;
                }
                o.raw("topics", &format!("[{}]", names.join(",")));
                Some(())
            })();
            if done.is_none() {
                o.raw("topics", &format!("[{}]", names.join(",")));
            }
            done
        }
        17 => (|| {
            o.str("mechanism", &text(k.string()??, MAX_TEXT, cut));
            Some(())
        })(),
        18 if v >= 3 => (|| {
            o.str("client_software_name", &text(k.string()??, MAX_TEXT, cut));
            o.str("client_software_version", &text(k.string()??, MAX_TEXT, cut));
            Some(())
        })(),
        36 => (|| {
            // Kept as sent, so that redaction (on by default) finds and replaces it.
            o.str("auth_bytes", &String::from_utf8_lossy(k.bytes()?.unwrap_or_default()));
            Some(())
        })(),
        _ => Some(()),
    };
    if complete.is_none() {
        *cut = true;
    }
    (o.done(), no_response)
}

/// Summarises a response body, given the request it answers.
pub(crate) fn response_body(api_key: i16, v: i16, bytes: &[u8], cut: &mut bool) -> String {
    // ApiVersions responses keep the classic header (v0) so that any client can read them.
    let mut k = KReader::new(bytes, is_flexible(api_key, v));
    let mut o = Obj::new();
    let complete = (|| {
        if api_key != 18 {
            k.tags()?;
        }
        match api_key {
            0 => {
                let mut topics = Vec::new();
                let done = read_topics(&mut k, v >= 13, &mut topics, cut, &mut |k| {
                    let index = k.i32()?;
                    let error = k.i16()?;
                    let offset = k.i64()?;
                    if v >= 2 {
                        k.i64()?;
                    }
                    if v >= 5 {
                        k.i64()?;
                    }
                    if v >= 8 {
                        for _ in 0..k.array_len()? {
                            k.i32()?;
                            k.string()?;
                            k.tags()?;
                        }
                        k.string()?;
                    }
                    k.tags()?;
                    Some(format!("{{\"index\":{index},\"error_code\":{error},\"base_offset\":{offset}}}"))
                });
                o.raw("topics", &topics_json(&topics));
                done?;
                if v >= 1 {
                    o.num("throttle_time_ms", k.i32()?.into());
                }
            }
            1 => {
                if v >= 1 {
                    o.num("throttle_time_ms", k.i32()?.into());
                }
                if v >= 7 {
                    o.num("error_code", k.i16()?.into());
                    o.num("session_id", k.i32()?.into());
                }
                let mut topics = Vec::new();
                let done = read_topics(&mut k, v >= 13, &mut topics, cut, &mut |k| {
                    let index = k.i32()?;
                    let error = k.i16()?;
                    let high = k.i64()?;
                    if v >= 4 {
                        k.i64()?;
                    }
                    if v >= 5 {
                        k.i64()?;
                    }
                    if v >= 4 {
                        let n = k.len(|r| r.i32_be().map(i64::from))?;
                        for _ in 0..n.unwrap_or(0) {
                            k.i64()?;
                            k.i64()?;
                            k.tags()?;
                        }
                    }
                    if v >= 11 {
                        k.i32()?;
                    }
                    let size = k.bytes_len()?;
                    k.tags()?;
                    Some(format!(
                        "{{\"index\":{index},\"error_code\":{error},\"high_watermark\":{high},\"records_size\":{}}}",
                        size.unwrap_or(0)
                    ))
                });
                o.raw("topics", &topics_json(&topics));
                done?;
            }
            17 | 18 | 36 => {
                o.num("error_code", k.i16()?.into());
                if api_key == 36 {
                    if let Some(m) = k.string()? {
                        o.str("error_message", &text(m, MAX_TEXT, cut));
                    }
                    o.str("auth_bytes", &String::from_utf8_lossy(k.bytes()?.unwrap_or_default()));
                }
            }
            // Most responses open with the throttle time, then an error code.
            3 | 9..=16 | 19 | 20 | 22 | 23 | 32 | 33 | 37 | 42 if v >= 1 => {
                o.num("throttle_time_ms", k.i32()?.into());
                if matches!(api_key, 10..=14 | 16 | 22) && v >= 1 {
                    o.num("error_code", k.i16()?.into());
                }
            }
            _ => {}
        }
        Some(())
    })();
    if complete.is_none() {
        *cut = true;
    }
    o.done()
}

/// Whether the first bytes of a connection are a Kafka request: a plausible size, a known API key
/// and version, a non-negative correlation id and a printable client id (or none).
pub fn looks_like(first: &[u8]) -> bool {
    let Some(head) = first.get(..4) else { return false };
    let Some(size) = body_len(head) else { return false };
    let Some(header) = first.get(4..).and_then(request_header) else {
        // A header whose client id runs past the captured bytes: check what was captured.
        return false;
    };
    size >= 10
        && header.api_key <= 74
        && header.api_version <= 20
        && header.correlation_id >= 0
        && header.client_id.is_none_or(|c| {
            usize::try_from(size).is_ok_and(|s| c.len() <= s - 10) && c.iter().all(|b| (0x20..0x7f).contains(b))
        })
}
