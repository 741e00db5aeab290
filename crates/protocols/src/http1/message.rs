//! The parsed HTTP/1.x message and the limits that bound parsing.
//!
//! Owns [`Message`], [`MessageKind`], [`ParseConfig`] and the derived views the caller turns
//! into table columns (`headers_json`, `content_type`). Must not touch parsing state or
//! stitching; this is plain data.

/// Which way a stream flows: requests (client to server) or responses (server to client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// The stream carries requests.
    Request,
    /// The stream carries responses.
    Response,
}

/// Limits for one parser; they bound memory per connection direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseConfig {
    /// Body bytes kept per message; longer bodies are counted in [`Message::body_size`] but not
    /// stored. Defaults to 512, Pixie's `PL_STIRLING_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// Largest message head (start line plus headers, and separately the chunked trailers)
    /// accepted; a longer head is treated as garbage. Defaults to 8192.
    pub max_header_bytes: usize,
}

impl Default for ParseConfig {
    fn default() -> Self {
        Self { max_body_bytes: 512, max_header_bytes: 8192 }
    }
}

/// `Message::content_type` value for an unrecognised or missing content type.
pub const CONTENT_TYPE_UNKNOWN: i64 = 0;
/// `Message::content_type` value for `application/json…`.
pub const CONTENT_TYPE_JSON: i64 = 1;
/// `Message::content_type` value for `application/grpc…`.
pub const CONTENT_TYPE_GRPC: i64 = 2;

/// One complete HTTP/1.x request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or response.
    pub kind: MessageKind,
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    /// Request method (`GET`); empty for responses.
    pub method: String,
    /// Request target as sent (path and query); empty for responses.
    pub path: String,
    /// Response status code; 0 for requests.
    pub status: u16,
    /// Response reason phrase (`OK`); empty for requests.
    pub reason: String,
    /// Header fields in wire order, names as sent, values with surrounding whitespace trimmed.
    /// Folded (obsolete multi-line) values are joined with a space. Chunked trailers are not
    /// included.
    pub headers: Vec<(String, String)>,
    /// The body, truncated to [`ParseConfig::max_body_bytes`]; de-chunked for chunked bodies.
    pub body: Vec<u8>,
    /// The full body size before truncation (de-chunked size for chunked bodies). Bytes lost in
    /// a capture gap inside a body are counted here although they are missing from `body` (when
    /// a gap swallowed chunk framing, the lost framing bytes are counted too).
    pub body_size: u64,
    /// Timestamp of the fed chunk that carried the first byte of a request, or the last byte of
    /// a response, so that `response.ts_ns - request.ts_ns` spans the whole exchange.
    pub ts_ns: u64,
}

impl Message {
    /// An empty message of `kind`, to be filled by the parser.
    pub(crate) fn empty(kind: MessageKind) -> Self {
        Self {
            kind,
            minor_version: 1,
            method: String::new(),
            path: String::new(),
            status: 0,
            reason: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            body_size: 0,
            ts_ns: 0,
        }
    }

    /// True when `body` holds less than the whole body: it was longer than
    /// [`ParseConfig::max_body_bytes`], or part of it was lost in a capture gap (the kept body
    /// stops at the first gap). `body_size` is the real size either way.
    pub fn body_truncated(&self) -> bool {
        self.body_size > self.body.len() as u64
    }

    /// The value of the first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The headers as a JSON object mapping name to value, always valid JSON.
    ///
    /// Names are kept as sent, in first-seen order; repeated names (exact match) are merged into
    /// one entry with their values joined by `,`, as HTTP allows for list-valued fields.
    pub fn headers_json(&self) -> String {
        let mut json = String::with_capacity(2 + self.headers.len() * 32);
        // Writing to a String cannot fail.
        let _ = self.write_headers_json(&mut json);
        json
    }

    /// [`headers_json`](Self::headers_json) written to `out` (an Arrow string builder, say)
    /// without allocating.
    pub fn write_headers_json(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        out.write_char('{')?;
        let mut first = true;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            // A repeated name was written with its first occurrence.
            if self.headers.get(..i).unwrap_or_default().iter().any(|(n, _)| n == name) {
                continue;
            }
            if !first {
                out.write_char(',')?;
            }
            first = false;
            write_json_string(out, &[name.as_str()])?;
            out.write_char(':')?;
            let later = self.headers.get(i + 1..).unwrap_or_default();
            if later.iter().any(|(n, _)| n == name) {
                let mut values = std::iter::once(value.as_str())
                    .chain(later.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()));
                write_json_joined(out, &mut values)?;
            } else {
                // The common case, a name seen once: no iterator chain.
                write_json_string(out, &[value.as_str()])?;
            }
        }
        out.write_char('}')
    }

    /// Pixie's content-type code: [`CONTENT_TYPE_JSON`] for `application/json…`,
    /// [`CONTENT_TYPE_GRPC`] for `application/grpc…`, otherwise [`CONTENT_TYPE_UNKNOWN`].
    pub fn content_type(&self) -> i64 {
        let Some(value) = self.header("content-type") else {
            return CONTENT_TYPE_UNKNOWN;
        };
        let starts_with =
            |prefix: &str| value.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix));
        if starts_with("application/json") {
            CONTENT_TYPE_JSON
        } else if starts_with("application/grpc") {
            CONTENT_TYPE_GRPC
        } else {
            CONTENT_TYPE_UNKNOWN
        }
    }
}

/// Writes the pieces as one JSON string literal, escaped as serde_json escapes.
fn write_json_string(out: &mut impl std::fmt::Write, pieces: &[&str]) -> std::fmt::Result {
    out.write_char('"')?;
    for piece in pieces {
        write_json_escaped(out, piece)?;
    }
    out.write_char('"')
}

/// Writes the values joined by `,` as one JSON string literal.
fn write_json_joined(out: &mut impl std::fmt::Write, values: &mut dyn Iterator<Item = &str>) -> std::fmt::Result {
    out.write_char('"')?;
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write_json_escaped(out, value)?;
    }
    out.write_char('"')
}

/// Writes `value` as the inside of a JSON string literal. Escapes `"`, `\\` and control
/// characters (as `\n`, `\u001f`, ...), as serde_json does.
fn write_json_escaped(out: &mut impl std::fmt::Write, value: &str) -> std::fmt::Result {
    if !value.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Nothing to escape (nearly every header): one write.
        return out.write_str(value);
    }
    let mut plain = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(value.get(plain..at).unwrap_or_default())?;
        if escape.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escape)?;
        }
        plain = at + 1;
    }
    out.write_str(value.get(plain..).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headers(headers: &[(&str, &str)]) -> Message {
        let mut m = Message::empty(MessageKind::Response);
        m.headers = headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        m
    }

    #[test]
    fn headers_json_is_valid_and_merges_duplicates() {
        let m = with_headers(&[
            ("Content-Type", "application/json"),
            ("Set-Cookie", "a=1"),
            ("X-Quote", "say \"hi\"\\ \u{7f} é"),
            ("Set-Cookie", "b=2"),
        ]);
        let parsed: serde_json::Value = serde_json::from_str(&m.headers_json()).expect("valid json");
        assert_eq!(parsed["Content-Type"], "application/json");
        assert_eq!(parsed["Set-Cookie"], "a=1,b=2");
        assert_eq!(parsed["X-Quote"], "say \"hi\"\\ \u{7f} é");
        assert_eq!(with_headers(&[]).headers_json(), "{}");
        // Byte for byte what serde_json writes, control characters included.
        let nasty = "a\u{0}b\u{8}\u{c}\n\r\t\u{1f}\"\\\u{7f}é";
        let m = with_headers(&[(nasty, nasty), ("k", "1"), (nasty, "2")]);
        let want = format!(
            "{{{}:{},\"k\":\"1\"}}",
            serde_json::to_string(nasty).expect("json"),
            serde_json::to_string(&format!("{nasty},2")).expect("json")
        );
        assert_eq!(m.headers_json(), want);
    }

    #[test]
    fn content_type_codes() {
        let ct = |v: &str| with_headers(&[("content-TYPE", v)]).content_type();
        assert_eq!(ct("application/json; charset=utf-8"), CONTENT_TYPE_JSON);
        assert_eq!(ct("Application/JSON"), CONTENT_TYPE_JSON);
        assert_eq!(ct("application/grpc+proto"), CONTENT_TYPE_GRPC);
        assert_eq!(ct("text/html"), CONTENT_TYPE_UNKNOWN);
        assert_eq!(ct("é"), CONTENT_TYPE_UNKNOWN);
        assert_eq!(with_headers(&[]).content_type(), CONTENT_TYPE_UNKNOWN);
    }
}
