//! The parsed HTTP/1.x message and the limits that bound parsing.
//!
//! Owns [`Message`], [`Headers`], [`MessageKind`], [`ParseConfig`] and the derived views the
//! caller turns into table columns (`headers_json`, `content_type`). Must not touch parsing
//! state or stitching; this is plain data.
//!
//! A message's header fields live in one text buffer with spans into it ([`Headers`]), not a
//! `String` per name and value: the agent parses every captured message, and per-field strings
//! (their copies, their emptying for reuse, the moves of the larger message) were a fifth of its
//! CPU.

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
    pub headers: Headers,
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
            headers: Headers::new(),
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
        self.headers.get(name)
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
        let headers = &self.headers;
        // One pass over all the text (values replaced since included) rather than one per value.
        if !needs_escape(&headers.text) && !headers.has_repeated_names() {
            // The common case: names seen once, nothing to escape. Each field is written as is.
            out.write_char('{')?;
            for (i, (name, value)) in headers.iter().enumerate() {
                out.write_str(if i == 0 { "\"" } else { ",\"" })?;
                out.write_str(name)?;
                out.write_str("\":\"")?;
                out.write_str(value)?;
                out.write_char('"')?;
            }
            return out.write_char('}');
        }
        out.write_char('{')?;
        let mut first = true;
        for i in 0..headers.len() {
            let (name, value) = headers.at(i);
            // A repeated name was written with its first occurrence.
            if (0..i).any(|j| headers.same_name(i, j)) {
                continue;
            }
            if !first {
                out.write_char(',')?;
            }
            first = false;
            write_json_string(out, &[name])?;
            out.write_char(':')?;
            if (i + 1..headers.len()).any(|j| headers.same_name(i, j)) {
                let mut values = std::iter::once(value)
                    .chain(headers.iter().skip(i + 1).filter(|(n, _)| *n == name).map(|(_, v)| v));
                write_json_joined(out, &mut values)?;
            } else {
                write_json_string(out, &[value])?;
            }
        }
        out.write_char('}')
    }

    /// Pixie's content-type code: [`CONTENT_TYPE_JSON`] for `application/json…`,
    /// [`CONTENT_TYPE_GRPC`] for `application/grpc…`, otherwise [`CONTENT_TYPE_UNKNOWN`].
    pub fn content_type(&self) -> i64 {
        let Some(value) = self.headers.content_type() else {
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

/// Header fields in wire order: names as sent, values trimmed, all in one text buffer.
///
/// Emptying ([`clear`](Self::clear)) keeps the buffers, so a reused message parses its next head
/// without allocating. Two lists are equal when their fields are, however their text is laid out.
#[derive(Clone, Default)]
pub struct Headers {
    /// Every name and value, one after the other (a replaced value is appended at the end).
    text: String,
    fields: Vec<Field>,
    /// The first `Content-Type` field, found as fields are added: every row asks for it.
    content_type: Option<u32>,
}

/// Where one field's name and value lie in [`Headers::text`].
#[derive(Debug, Clone, Copy)]
struct Field {
    name: (u32, u32),
    value: (u32, u32),
}

impl Headers {
    /// No fields.
    pub const fn new() -> Self {
        Self { text: String::new(), fields: Vec::new(), content_type: None }
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True when there is no field.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Bytes of text held (names and values, and values since replaced): what the fields cost.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// Capacity of the buffers, for callers that free large ones rather than reuse them.
    pub(crate) fn capacity(&self) -> (usize, usize) {
        (self.text.capacity(), self.fields.capacity())
    }

    fn span(&self, (start, end): (u32, u32)) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// The bytes of a span, for comparisons (no character-boundary checks).
    fn span_bytes(&self, (start, end): (u32, u32)) -> &[u8] {
        self.text.as_bytes().get(start as usize..end as usize).unwrap_or_default()
    }

    /// The name and value of field `i`; empty strings past the end.
    pub fn at(&self, i: usize) -> (&str, &str) {
        match self.fields.get(i) {
            Some(f) => (self.span(f.name), self.span(f.value)),
            None => ("", ""),
        }
    }

    /// Whether fields `i` and `j` have the same name (exactly); false past the end.
    pub(crate) fn same_name(&self, i: usize, j: usize) -> bool {
        match (self.fields.get(i), self.fields.get(j)) {
            (Some(a), Some(b)) => {
                a.name.1.saturating_sub(a.name.0) == b.name.1.saturating_sub(b.name.0)
                    && self.span_bytes(a.name) == self.span_bytes(b.name)
            }
            _ => false,
        }
    }

    /// The fields as (name, value), in wire order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&str, &str)> + ExactSizeIterator + '_ {
        self.fields.iter().map(|f| (self.span(f.name), self.span(f.value)))
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values_of(name).next()
    }

    /// Whether `field` is named `wanted` (case-insensitive); lengths first, so that most fields
    /// are ruled out without touching their text.
    fn is_named(&self, field: &Field, wanted: &[u8]) -> bool {
        field.name.1.saturating_sub(field.name.0) as usize == wanted.len()
            && self.span_bytes(field.name).eq_ignore_ascii_case(wanted)
    }

    /// The values of the fields named `name` (case-insensitive), in wire order.
    pub fn values_of<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.fields.iter().filter(move |f| self.is_named(f, name.as_bytes())).map(|f| self.span(f.value))
    }

    /// The value of the first `Content-Type` field ([`get`](Self::get) without the search).
    pub fn content_type(&self) -> Option<&str> {
        let field = self.fields.get(self.content_type? as usize)?;
        Some(self.span(field.value))
    }

    /// Appends the text and returns its span; offsets saturate (a head is bounded far below 4 GiB).
    fn push_text(&mut self, text: &str) -> (u32, u32) {
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        self.text.push_str(text);
        (start, u32::try_from(self.text.len()).unwrap_or(u32::MAX))
    }

    /// Adds a field after the others.
    pub fn push(&mut self, name: &str, value: &str) {
        if self.content_type.is_none() && name.eq_ignore_ascii_case("content-type") {
            self.content_type = u32::try_from(self.fields.len()).ok();
        }
        let name = self.push_text(name);
        let value = self.push_text(value);
        self.fields.push(Field { name, value });
    }

    /// Replaces the value of field `i` (no effect past the end).
    pub fn set_value(&mut self, i: usize, value: &str) {
        if i < self.fields.len() {
            let span = self.push_text(value);
            if let Some(field) = self.fields.get_mut(i) {
                field.value = span;
            }
        }
    }

    /// Continues the last field's value with `more` (an obsolete folded line), joined by a
    /// space; false when there is no field to continue.
    pub(crate) fn continue_last(&mut self, more: &str) -> bool {
        let Some(last) = self.fields.last().copied() else {
            return false;
        };
        let value = if last.value.1 as usize == self.text.len() {
            // The value ends the text (as it does while parsing): extend it where it is.
            last.value
        } else {
            let copy = self.span(last.value).to_owned();
            self.push_text(&copy)
        };
        if value.1 > value.0 && !more.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(more);
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        if let Some(field) = self.fields.last_mut() {
            field.value = (value.0, end);
        }
        true
    }

    /// Removes every field, keeping the buffers.
    pub fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
        self.content_type = None;
    }

    /// Whether any two fields have the same name (exactly). A signature per name (length, first
    /// and last byte) rules out nearly every head in one pass; only a clash compares texts.
    fn has_repeated_names(&self) -> bool {
        let mut seen = 0u64;
        let mut clash = false;
        for f in &self.fields {
            let name = self.span_bytes(f.name);
            let (first, last) = (name.first().copied().unwrap_or(0), name.last().copied().unwrap_or(0));
            let bit = 1u64 << ((name.len() as u64 * 31 + u64::from(first) * 7 + u64::from(last)) % 64);
            clash |= seen & bit != 0;
            seen |= bit;
        }
        clash && (1..self.fields.len()).any(|i| (0..i).any(|j| self.same_name(i, j)))
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(fields: I) -> Self {
        let mut headers = Headers::new();
        headers.extend(fields);
        headers
    }
}

impl<N: AsRef<str>, V: AsRef<str>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, fields: I) {
        for (name, value) in fields {
            self.push(name.as_ref(), value.as_ref());
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

/// Whether `text` has a byte JSON escapes: one branch-free pass the compiler vectorises.
fn needs_escape(text: &str) -> bool {
    text.bytes().fold(false, |escape, b| escape | (b < 0x20) | (b == b'"') | (b == b'\\'))
}

/// Writes `value` as the inside of a JSON string literal. Escapes `"`, `\\` and control
/// characters (as `\n`, `\u001f`, ...), as serde_json does.
fn write_json_escaped(out: &mut impl std::fmt::Write, value: &str) -> std::fmt::Result {
    if !needs_escape(value) {
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
        m.headers = headers.iter().copied().collect();
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
    fn headers_json_fast_and_general_paths_agree_with_serde() {
        // Many distinct names (their signatures clash), one repeated pair, one value to escape.
        let mut fields: Vec<(String, String)> = (0..70).map(|i| (format!("X-{i}"), format!("v{i}"))).collect();
        let distinct = with_headers(&fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>());
        let mut want = serde_json::Map::new();
        for (n, v) in &fields {
            want.insert(n.clone(), serde_json::Value::String(v.clone()));
        }
        let got: serde_json::Value = serde_json::from_str(&distinct.headers_json()).expect("json");
        assert_eq!(got, serde_json::Value::Object(want));
        fields.push(("X-3".into(), "again".into()));
        fields.push(("X-q".into(), "say \"hi\"".into()));
        let general = with_headers(&fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect::<Vec<_>>());
        let got: serde_json::Value = serde_json::from_str(&general.headers_json()).expect("json");
        assert_eq!(got["X-3"], "v3,again");
        assert_eq!(got["X-q"], "say \"hi\"");
        assert_eq!(got.as_object().map(|o| o.len()), Some(71));
    }

    #[test]
    fn content_type_is_found_as_fields_are_added_and_follows_a_replaced_value() {
        let mut m =
            with_headers(&[("Server", "x"), ("content-type", "application/json"), ("Content-Type", "text/html")]);
        assert_eq!(m.headers.content_type(), Some("application/json"));
        assert_eq!(m.content_type(), CONTENT_TYPE_JSON);
        m.headers.set_value(1, "application/grpc");
        assert_eq!(m.content_type(), CONTENT_TYPE_GRPC);
        m.headers.clear();
        assert_eq!(m.headers.content_type(), None);
        m.headers.push("Content-type", "text/plain");
        assert_eq!(m.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(m.headers.content_type(), Some("text/plain"));
    }

    #[test]
    fn a_folded_value_continues_where_it_lies_or_after_a_replacement() {
        let mut h: Headers = [("A", "one"), ("B", "two")].into_iter().collect();
        assert!(h.continue_last("more"));
        assert_eq!(h.at(1), ("B", "two more"));
        h.set_value(1, "x");
        assert!(h.continue_last("y"));
        assert_eq!(h.iter().collect::<Vec<_>>(), vec![("A", "one"), ("B", "x y")]);
        assert!(!Headers::new().continue_last("z"));
        let same: Headers = [("A", "one"), ("B", "x y")].into_iter().collect();
        assert_eq!(h, same);
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
