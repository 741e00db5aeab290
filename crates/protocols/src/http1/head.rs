//! HTTP/1.x message heads: recognising a message start, and parsing start lines and header lines.
//!
//! Owns pure functions over byte slices (no state): the known-method table, the start-of-message
//! recognisers used for resynchronisation and role inference, and line parsers. Must not touch
//! buffering, body framing or stitching; those live in `parser` and `stitch`.

use std::borrow::Cow;

use super::MessageKind;

/// Request methods recognised as a message start. HTTP allows any token as a method, but
/// resynchronising on arbitrary tokens would match almost anything, so only these are accepted.
pub(crate) const METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"PURGE",
];

/// The fixed prefix of every HTTP/1.x status line.
const RESPONSE_MARKER: &[u8] = b"HTTP/1.";

/// Whether some bytes are the beginning of a message start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartMatch {
    /// The bytes begin with a full start marker (`METHOD ` or `HTTP/1.`).
    Yes,
    /// The bytes are too short to decide, but are a prefix of a start marker.
    Partial,
    /// The bytes cannot begin a message.
    No,
}

/// Decides whether `buf` begins with a start marker for `kind`.
pub(crate) fn match_start(kind: MessageKind, buf: &[u8]) -> StartMatch {
    match kind {
        MessageKind::Request => {
            let mut partial = false;
            for method in METHODS {
                match buf.strip_prefix(*method) {
                    Some(rest) => match rest.first() {
                        Some(b' ') => return StartMatch::Yes,
                        Some(_) => {}
                        None => partial = true,
                    },
                    None => partial |= method.starts_with(buf),
                }
            }
            if partial { StartMatch::Partial } else { StartMatch::No }
        }
        MessageKind::Response => {
            if buf.starts_with(RESPONSE_MARKER) {
                StartMatch::Yes
            } else if RESPONSE_MARKER.starts_with(buf) {
                StartMatch::Partial
            } else {
                StartMatch::No
            }
        }
    }
}

/// Whether `byte` can begin a start marker for `kind` (a cheap pre-filter for [`find_start`];
/// the request set is the first letters of [`METHODS`], checked by a test).
fn can_begin(kind: MessageKind, byte: u8) -> bool {
    match kind {
        MessageKind::Request => {
            matches!(byte, b'C' | b'D' | b'G' | b'H' | b'L' | b'M' | b'O' | b'P' | b'R' | b'S' | b'T' | b'U')
        }
        MessageKind::Response => byte == b'H',
    }
}

/// Finds the first offset in `data` where a message start (full or, at the very end, partial)
/// begins, with the kind of match found there.
pub(crate) fn find_start(kind: MessageKind, data: &[u8]) -> Option<(usize, StartMatch)> {
    let mut rest = data;
    let mut offset = 0;
    while let Some((&byte, tail)) = rest.split_first() {
        if can_begin(kind, byte) {
            match match_start(kind, rest) {
                StartMatch::No => {}
                found => return Some((offset, found)),
            }
        }
        rest = tail;
        offset += 1;
    }
    None
}

/// Parses `HTTP/1.<d>` into the minor version digit.
fn parse_version(token: &[u8]) -> Option<u8> {
    match token.strip_prefix(RESPONSE_MARKER) {
        Some([digit]) if digit.is_ascii_digit() => Some(digit - b'0'),
        _ => None,
    }
}

/// A parsed request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestLine<'a> {
    pub(crate) method: Cow<'a, str>,
    pub(crate) path: Cow<'a, str>,
    pub(crate) minor_version: u8,
}

/// A parsed status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLine<'a> {
    pub(crate) minor_version: u8,
    pub(crate) status: u16,
    pub(crate) reason: Cow<'a, str>,
}

/// RFC 9110 `tchar`: the characters a method or header name may contain. A table lookup: every
/// header name byte goes through it (a scan of the symbol list, then a `match`, were visible
/// parts of the agent's profile).
fn is_tchar(byte: u8) -> bool {
    TCHAR.get(usize::from(byte)).copied().unwrap_or(false)
}

/// [`is_tchar`] for every byte value.
// The loop's bound is the table's length: the index is always in range.
#[allow(clippy::indexing_slicing)]
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        byte += 1;
    }
    table
};

/// Whether any byte is a control character HTTP forbids inside a line: one branch-free pass the
/// compiler vectorises (header values are most of a head's bytes).
fn has_forbidden_ctl(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |bad, &b| bad | ((b < 0x20) & (b != b'\t')) | (b == 0x7f))
}

/// Parses `METHOD SP request-target SP HTTP/1.d` (line without its CRLF).
pub(crate) fn parse_request_line(line: &[u8]) -> Option<RequestLine<'_>> {
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !METHODS.contains(&method) {
        return None;
    }
    if target.is_empty() || has_forbidden_ctl(target) || target.contains(&b'\t') {
        return None;
    }
    Some(RequestLine { method: text(method), path: text(target), minor_version: parse_version(version)? })
}

/// Parses `HTTP/1.d SP 3DIGIT [SP reason]` (line without its CRLF).
pub(crate) fn parse_status_line(line: &[u8]) -> Option<StatusLine<'_>> {
    let (version, rest) = line.split_at_checked(8)?;
    let minor_version = parse_version(version)?;
    let rest = rest.strip_prefix(b" ")?;
    let (code, reason) = rest.split_at_checked(3)?;
    let mut status: u16 = 0;
    for &digit in code {
        if !digit.is_ascii_digit() {
            return None;
        }
        status = status * 10 + u16::from(digit - b'0');
    }
    if !(100..=999).contains(&status) {
        return None;
    }
    let reason = match reason {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return None,
    };
    if has_forbidden_ctl(reason) {
        return None;
    }
    Some(StatusLine { minor_version, status, reason: text(reason) })
}

/// The bytes as text, borrowed where they are valid UTF-8 (heads are ASCII almost always: the
/// parser copies the text into buffers it reuses), invalid UTF-8 replaced by U+FFFD. Validating
/// first is several times faster than the replacing decoder on valid text (the agent's profile).
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(valid) => Cow::Borrowed(valid),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Trims HTTP optional whitespace (spaces and tabs) from both ends.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    bytes.get(trimmed_range(bytes)).unwrap_or_default()
}

/// Where [`trim_ows`]'s result lies in `bytes`.
fn trimmed_range(bytes: &[u8]) -> std::ops::Range<usize> {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_ows(b)).map_or(start, |p| p + 1);
    start..end
}

/// A header line: a new field, or an obsolete line folding continuation of the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeaderLine<'a> {
    /// `name: value`, value with surrounding whitespace trimmed.
    Field(Cow<'a, str>, Cow<'a, str>),
    /// A line starting with whitespace, continuing the previous field's value.
    Continuation(Cow<'a, str>),
}

/// Parses one header line (without its CRLF); `None` if it is not a valid field line.
pub(crate) fn parse_header_line(line: &[u8]) -> Option<HeaderLine<'_>> {
    match std::str::from_utf8(line) {
        Ok(text) => parse_header_text(text),
        Err(_) => parse_header_bytes(line),
    }
}

/// [`parse_header_line`] on a line known to be text (nearly every line is: the parser validates
/// a whole input at once, which is far cheaper than a validation per line).
pub(crate) fn parse_header_text(line: &str) -> Option<HeaderLine<'_>> {
    let (field, value) = split_header_line(line.as_bytes())?;
    let value = line.get(value).unwrap_or_default();
    Some(match field {
        Some(colon) => HeaderLine::Field(Cow::Borrowed(line.get(..colon).unwrap_or_default()), Cow::Borrowed(value)),
        None => HeaderLine::Continuation(Cow::Borrowed(value)),
    })
}

/// [`parse_header_line`] on a line that is not valid UTF-8: its invalid bytes are replaced.
fn parse_header_bytes(line: &[u8]) -> Option<HeaderLine<'_>> {
    let (field, value) = split_header_line(line)?;
    let value = text(line.get(value).unwrap_or_default());
    Some(match field {
        // A name of tchars is ASCII, so valid text.
        Some(colon) => HeaderLine::Field(Cow::Borrowed(std::str::from_utf8(line.get(..colon)?).ok()?), value),
        None => HeaderLine::Continuation(value),
    })
}

/// Checks a header line and finds its parts: `Some(colon)` (where the name ends) for a field or
/// `None` for a continuation, and where the value lies, surrounding whitespace trimmed.
fn split_header_line(line: &[u8]) -> Option<(Option<usize>, std::ops::Range<usize>)> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        if has_forbidden_ctl(line) {
            return None;
        }
        return Some((None, trimmed_range(line)));
    }
    // One pass over the name: it is tchars up to the colon (no control byte is a tchar).
    let colon = line.iter().position(|&b| !is_tchar(b))?;
    if colon == 0 || line.get(colon) != Some(&b':') {
        return None;
    }
    // Trimming removes spaces and tabs only, which are allowed: check what is kept.
    let after = colon + 1;
    let kept = trimmed_range(line.get(after..).unwrap_or_default());
    let value = after + kept.start..after + kept.end;
    if has_forbidden_ctl(line.get(value.clone()).unwrap_or_default()) {
        return None;
    }
    Some((Some(colon), value))
}

/// Returns the first line of `prefix` (without CR/LF) if a full line is present.
fn first_line(prefix: &[u8]) -> Option<&[u8]> {
    let end = prefix.iter().position(|&b| b == b'\n')?;
    let line = prefix.get(..end)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// Whether the first bytes of a stream look like an HTTP/1.x request.
///
/// True when `prefix` starts with a known method followed by a space and, if the whole request
/// line is present, that line parses. Prefixes shorter than `METHOD ` give `false`.
pub fn looks_like_request(prefix: &[u8]) -> bool {
    if match_start(MessageKind::Request, prefix) != StartMatch::Yes {
        return false;
    }
    match first_line(prefix) {
        Some(line) => parse_request_line(line).is_some(),
        None => true,
    }
}

/// Whether the first bytes of a stream look like an HTTP/1.x response.
///
/// True when `prefix` starts with `HTTP/1.<digit> <digit>` and, if the whole status line is
/// present, that line parses. Shorter prefixes give `false`.
pub fn looks_like_response(prefix: &[u8]) -> bool {
    match prefix.get(..10) {
        Some([b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ', code]) => {
            if !minor.is_ascii_digit() || !code.is_ascii_digit() {
                return false;
            }
        }
        _ => return false,
    }
    match first_line(prefix) {
        Some(line) => parse_status_line(line).is_some(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_is_exactly_rfc_9110s_set() {
        for byte in 0..=u8::MAX {
            let rfc = byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte);
            assert_eq!(is_tchar(byte), rfc, "{byte:#04x}");
        }
    }

    #[test]
    fn match_start_distinguishes_full_partial_and_none() {
        use MessageKind::{Request, Response};
        assert_eq!(match_start(Request, b"GET /"), StartMatch::Yes);
        assert_eq!(match_start(Request, b"GE"), StartMatch::Partial);
        assert_eq!(match_start(Request, b"GET"), StartMatch::Partial);
        assert_eq!(match_start(Request, b"PUT"), StartMatch::Partial);
        assert_eq!(match_start(Request, b"GETX"), StartMatch::No);
        assert_eq!(match_start(Request, b""), StartMatch::Partial);
        assert_eq!(match_start(Response, b"HTTP/1.1 200"), StartMatch::Yes);
        assert_eq!(match_start(Response, b"HTT"), StartMatch::Partial);
        assert_eq!(match_start(Response, b"HTTP/2"), StartMatch::No);
    }

    #[test]
    fn can_begin_covers_exactly_the_method_initials() {
        for byte in 0..=255u8 {
            let expected = METHODS.iter().any(|m| m.first() == Some(&byte));
            assert_eq!(can_begin(MessageKind::Request, byte), expected, "{byte}");
        }
    }

    #[test]
    fn find_start_skips_garbage_and_reports_partial_tail() {
        assert_eq!(find_start(MessageKind::Request, b"xxGETGET / "), Some((5, StartMatch::Yes)));
        assert_eq!(find_start(MessageKind::Response, b"garbage HT"), Some((8, StartMatch::Partial)));
        assert_eq!(find_start(MessageKind::Response, b"garbage"), None);
    }

    #[test]
    fn request_lines() {
        let line = parse_request_line(b"GET /a?b=1 HTTP/1.1").expect("valid");
        assert_eq!(line.method, "GET");
        assert_eq!(line.path, "/a?b=1");
        assert_eq!(line.minor_version, 1);
        assert!(parse_request_line(b"GET /a HTTP/2.0").is_none());
        assert!(parse_request_line(b"GET  /a HTTP/1.1").is_none());
        assert!(parse_request_line(b"GET /a HTTP/1.1 x").is_none());
        assert!(parse_request_line(b"FOO /a HTTP/1.1").is_none());
    }

    #[test]
    fn status_lines() {
        let line = parse_status_line(b"HTTP/1.0 404 Not Found").expect("valid");
        assert_eq!((line.minor_version, line.status), (0, 404));
        assert_eq!(line.reason, "Not Found");
        assert_eq!(parse_status_line(b"HTTP/1.1 200").map(|l| l.reason), Some("".into()));
        assert!(parse_status_line(b"HTTP/1.1 20x OK").is_none());
        assert!(parse_status_line(b"HTTP/1.1 099 OK").is_none());
        assert!(parse_status_line(b"HTTP/1.1 2000 OK").is_none());
    }

    #[test]
    fn header_lines() {
        assert_eq!(
            parse_header_line(b"Content-Type:  text/html \t"),
            Some(HeaderLine::Field("Content-Type".into(), "text/html".into()))
        );
        assert_eq!(parse_header_line(b"X-Empty:"), Some(HeaderLine::Field("X-Empty".into(), "".into())));
        assert_eq!(parse_header_line(b"  folded"), Some(HeaderLine::Continuation("folded".into())));
        assert!(parse_header_line(b"Bad Name: x").is_none());
        assert!(parse_header_line(b"NoColon").is_none());
        assert!(parse_header_line(b": novalue").is_none());
        assert!(parse_header_line(b"X: a\x01b").is_none());
        assert_eq!(parse_header_line(b"X: a\xffb"), Some(HeaderLine::Field("X".into(), "a\u{fffd}b".into())));
    }

    #[test]
    fn role_inference() {
        assert!(looks_like_request(b"GET / HTTP/1.1\r\nHost: x\r\n"));
        assert!(looks_like_request(b"POST /submit"));
        assert!(!looks_like_request(b"GET / SPDY/3\r\n"));
        assert!(!looks_like_request(b"GE"));
        assert!(!looks_like_request(b"HTTP/1.1 200 OK\r\n"));
        assert!(looks_like_response(b"HTTP/1.1 200 OK\r\n"));
        assert!(looks_like_response(b"HTTP/1.0 3"));
        assert!(!looks_like_response(b"HTTP/1.1 2x0 OK\r\n"));
        assert!(!looks_like_response(b"HTTP/1.1"));
        assert!(!looks_like_response(b"GET / HTTP/1.1\r\n"));
    }
}
