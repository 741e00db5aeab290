//! Redaction of credentials in captured traffic, applied before a row is stored.
//!
//! Owns the one rule every protocol follows: which names carry secrets ([`is_secret_name`]),
//! the one marker that replaces them ([`MARKER`]), and tolerant scanners for where they hide:
//! header values ([`header_value`]), URL queries ([`url`]), form bodies ([`form`]) and JSON
//! bodies ([`json`], which copes with the truncated JSON a capped body leaves). Where no name
//! says what a value is (protobuf and other binary bodies, message payloads, SQL text), known
//! credential shapes are found by their form ([`tokens`]): JWTs and JWEs, Loupe's and Pixie's
//! `px-api-`/`px-dep-` keys, and vizier credentials. Protocol modules
//! gain a thin adapter here ([`http1_record`], [`http2_record`], [`redis_command`], [`pgsql_request`], [`mysql_command`], [`nats_message`], [`mqtt_packet`], [`amqp_method`], [`kafka_record`], [`mongodb_record`], [`cql_record`]); the on/off
//! switch belongs to the caller.
//! Must not touch parsing, framing or rows: it rewrites values of already parsed messages.
//!
//! The scanners never allocate when nothing matches (they return [`Cow::Borrowed`]): they run on
//! the agent's hot path for every captured message. They never panic on any input.

use std::borrow::Cow;

use crate::amqp::Method as AmqpMethod;
use crate::cql::Record as CqlRecord;
use crate::http1::{Message, Record};
use crate::kafka::Record as KafkaRecord;
use crate::mongodb::Record as MongodbRecord;
use crate::mqtt::Packet as MqttPacket;
use crate::mysql::Command as MysqlCommand;
use crate::nats::Message as NatsMessage;
use crate::pgsql::Request as PgRequest;
use crate::redis::Command as RedisCommand;

/// What every redacted value becomes, in every protocol and every place (headers, queries,
/// bodies). In JSON it is written as the string `"[REDACTED]"`.
pub const MARKER: &str = "[REDACTED]";

/// The marker as a JSON string literal, so that redacted JSON stays JSON.
const MARKER_JSON: &[u8] = b"\"[REDACTED]\"";

/// A name carries a secret when, compared case-insensitively and ignoring the separators in
/// the separators of [`is_separator`], it ends with one of these: `password`, `new_password`, `X-Auth-Token`,
/// `accessToken`, `client_secret`, `X-Api-Key`, `X-Amz-Signature` ...
const SECRET_SUFFIXES: &[&[u8]] =
    &[b"password", b"passwd", b"secret", b"token", b"apikey", b"signature", b"credential", b"credentials"];

/// ... or is exactly one of these (after the same normalisation).
const SECRET_NAMES: &[&[u8]] = &[b"sig", b"authorization", b"proxyauthorization", b"cookie", b"setcookie"];

/// Authorization schemes kept in front of the marker (`Bearer [REDACTED]`), because they tell
/// how a client authenticates without giving anything away. Anything else is replaced whole.
const AUTH_SCHEMES: &[&str] = &[
    "Basic",
    "Bearer",
    "Digest",
    "Negotiate",
    "NTLM",
    "Token",
    "DPoP",
    "AWS4-HMAC-SHA256",
    "HOBA",
    "Mutual",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "vapid",
];

/// Headers whose value is a URL that may carry a query with secrets (`Referer: /cb?code=...`).
const URL_HEADERS: &[&str] = &["Referer", "Location", "Content-Location"];

/// Longest decoded name kept for matching; a longer name is matched on its last bytes only.
const NAME_BUF: usize = 64;

/// Whether a header, query parameter, form field or JSON key named `name` holds a secret.
///
/// The comparison is ASCII case-insensitive and ignores `_`, `-`, `.`, space, `[` and `]`. A name
/// is secret when it ends with `password`, `passwd`, `secret`, `token`, `apikey`, `signature`,
/// `credential` or `credentials` (so `access_token`, `new_password`, `X-Auth-Token`, `X-Api-Key`,
/// `X-Amz-Signature`, `x-loupe-vizier-credential`), or is
/// exactly `sig`, `authorization`, `proxy-authorization`, `cookie` or `set-cookie`. Names that
/// only contain such a word elsewhere are kept: `tokens_used`, `password_hint`, `token_type`.
pub fn is_secret_name(name: &str) -> bool {
    secret_name(name.as_bytes(), false)
}

/// [`is_secret_name`] on raw bytes; `truncated` says the name lost its head (too long to keep
/// whole), so only suffixes can match.
fn secret_name(name: &[u8], truncated: bool) -> bool {
    // The last two letters rule out nearly every name at once (`Host`, `Date`, `Content-Type`
    // and most others end in a pair no listed word ends in); a test checks the pairs.
    let mut last = name.iter().rev().filter(|b| !is_separator(**b)).map(u8::to_ascii_lowercase);
    let (Some(z), Some(y)) = (last.next(), last.next()) else {
        return false;
    };
    if !matches!(
        [y, z],
        [b'r', b'd']
            | [b'w', b'd']
            | [b'e', b't']
            | [b'e', b'n']
            | [b'e', b'y']
            | [b'r', b'e']
            | [b'a', b'l']
            | [b'l', b's']
            | [b'i', b'g']
            | [b'o', b'n']
            | [b'i', b'e']
    ) {
        return false;
    }
    // One pass from the end: the last letters, lowercased and without separators, are all any
    // listed word needs (this runs for every header of every captured message).
    let mut tail = [0u8; TAIL];
    let mut kept = 0;
    let mut normalized = 0;
    for &b in name.iter().rev() {
        if is_separator(b) {
            continue;
        }
        normalized += 1;
        if kept < TAIL {
            kept += 1;
            if let Some(slot) = tail.get_mut(TAIL - kept) {
                *slot = b.to_ascii_lowercase();
            }
        }
    }
    let tail = tail.get(TAIL - kept..).unwrap_or_default();
    SECRET_SUFFIXES.iter().any(|word| tail.ends_with(word))
        || (!truncated && SECRET_NAMES.iter().any(|word| normalized == word.len() && tail.ends_with(word)))
}

/// Letters of a name [`secret_name`] keeps: the longest listed word (`proxyauthorization`) fits.
const TAIL: usize = 24;

/// Whether `b` is ignored when names are compared (`_`, `-`, `.`, space, `[`, `]`), so that `api_key`,
/// `Api-Key`, `apiKey` and `user[password]` all name what they seem to.
fn is_separator(b: u8) -> bool {
    matches!(b, b'_' | b'-' | b'.' | b' ' | b'[' | b']')
}

/// Whether `name`, lowercased and without separators, ends with `word` (lowercase).
fn ends_with_word(name: &[u8], word: &[u8]) -> bool {
    let mut chars = name.iter().rev().filter(|b| !is_separator(**b)).map(u8::to_ascii_lowercase);
    word.iter().rev().all(|&w| chars.next() == Some(w))
}

/// A decoded name (percent-encoding, JSON escapes) on the stack; past [`NAME_BUF`] bytes it
/// keeps the last ones, which is all suffix matching needs.
struct NameBuf {
    bytes: [u8; NAME_BUF],
    len: usize,
    truncated: bool,
}

impl NameBuf {
    fn new() -> Self {
        NameBuf { bytes: [0; NAME_BUF], len: 0, truncated: false }
    }

    fn push(&mut self, byte: u8) {
        if self.len == NAME_BUF {
            self.bytes.copy_within(1.., 0);
            self.len -= 1;
            self.truncated = true;
        }
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn is_secret(&self) -> bool {
        secret_name(self.bytes.get(..self.len).unwrap_or_default(), self.truncated)
    }
}

/// A value of header (or metadata entry) `name` as it may be stored: [`MARKER`] for a secret
/// header (after the scheme for `Authorization: Bearer ...`), the URL with its query redacted
/// for `Referer`, `Location` and `Content-Location`, else unchanged.
pub fn header_value<'a>(name: &str, value: &'a str) -> Cow<'a, str> {
    if is_secret_name(name) {
        if value.is_empty() {
            return Cow::Borrowed(value);
        }
        if ends_with_word(name.as_bytes(), b"authorization") {
            let scheme = value.split(' ').next().unwrap_or_default();
            if scheme.len() < value.len() && AUTH_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
                return Cow::Owned(format!("{scheme} {MARKER}"));
            }
        }
        return Cow::Owned(MARKER.to_string());
    }
    if URL_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        return url(value);
    }
    Cow::Borrowed(value)
}

/// A request target or URL with the values of secret query parameters (and fragment
/// parameters, `#access_token=...`) replaced by [`MARKER`]. Parameter names may be
/// percent-encoded.
pub fn url(target: &str) -> Cow<'_, str> {
    let Some(query_start) = target.bytes().position(|b| b == b'?' || b == b'#') else {
        return Cow::Borrowed(target);
    };
    let (path, query) = target.as_bytes().split_at(query_start);
    match form(query) {
        Cow::Borrowed(_) => Cow::Borrowed(target),
        Cow::Owned(redacted) => {
            let mut out = Vec::with_capacity(path.len() + redacted.len());
            out.extend_from_slice(path);
            out.extend_from_slice(&redacted);
            Cow::Owned(into_string(out))
        }
    }
}

/// The body as it may be stored, by its `content_type` (a header value, if any): JSON for any
/// `…json…` type, a form for `application/x-www-form-urlencoded`. Without either, a body that
/// starts like JSON (`{` or `[`) or like a form (`name=`) is treated as one.
pub fn body<'a>(content_type: Option<&str>, body: &'a [u8]) -> Cow<'a, [u8]> {
    let ct = content_type.unwrap_or_default().as_bytes();
    let ct_is = |kind: &[u8]| ct.windows(kind.len()).any(|w| w.eq_ignore_ascii_case(kind));
    if ct_is(b"json") || (!ct_is(b"x-www-form-urlencoded") && looks_like_json(body)) {
        json(body)
    } else if ct_is(b"x-www-form-urlencoded") || looks_like_form(body) {
        form(body)
    } else {
        Cow::Borrowed(body)
    }
}

fn looks_like_json(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(&(b'{' | b'[')))
}

/// A form starts with a name made of URL-safe bytes and an `=`.
fn looks_like_form(body: &[u8]) -> bool {
    let name_len =
        body.iter().position(|&b| !(b.is_ascii_alphanumeric() || b"_-.~%+*[]".contains(&b))).unwrap_or(body.len());
    name_len > 0 && body.get(name_len) == Some(&b'=')
}

/// Form-encoded pairs (`a=1&password=x`, also a URL's `?query`) with the values of secret names
/// replaced by [`MARKER`]. A name starts at the beginning or after `&`, `;`, `?` or `#`; a
/// secret's value runs to the next `&` or the end, so a truncated value is hidden too.
pub fn form(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut splicer = Splicer::new(bytes);
    let mut name_start = 0;
    while name_start < bytes.len() {
        let rest = bytes.get(name_start..).unwrap_or_default();
        let name_len = rest.iter().position(|b| b"=&;?#".contains(b)).unwrap_or(rest.len());
        let name_end = name_start + name_len;
        if bytes.get(name_end) == Some(&b'=') && form_name_is_secret(rest.get(..name_len).unwrap_or_default()) {
            let value_start = name_end + 1;
            let value_len = bytes.get(value_start..).unwrap_or_default().iter().position(|&b| b == b'&');
            let value_end = value_len.map_or(bytes.len(), |len| value_start + len);
            if value_end > value_start {
                splicer.replace(value_start, value_end, MARKER.as_bytes());
            }
            name_start = value_end + 1;
        } else {
            let after = bytes.get(name_end..).unwrap_or_default();
            match after.iter().position(|b| b"&;?#".contains(b)) {
                Some(offset) => name_start = name_end + offset + 1,
                None => break,
            }
        }
    }
    splicer.finish()
}

/// Decodes `%XX` and `+` only when present, so plain names are matched in place.
fn form_name_is_secret(raw: &[u8]) -> bool {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return secret_name(raw, false);
    }
    let mut name = NameBuf::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let hex = |at: usize| raw.get(at).and_then(|d| char::from(*d).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                name.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', ..) => {
                name.push(b' ');
                i += 1;
            }
            _ => {
                name.push(b);
                i += 1;
            }
        }
    }
    name.is_secret()
}

/// JSON text with the value of every secret key replaced by `"[REDACTED]"`, at any depth and
/// whatever the value's type (string, number, object, array). Truncated or malformed JSON is
/// scanned as far as it goes: a secret value cut short is hidden up to the end. Keys are the
/// strings followed by `:`; escapes in keys and values are understood.
pub fn json(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut splicer = Splicer::new(bytes);
    let mut i = 0;
    while let Some(offset) = bytes.get(i..).and_then(|rest| rest.iter().position(|&b| b == b'"')) {
        let open = i + offset;
        let (end, escaped) = string_end(bytes, open + 1);
        let colon = skip_whitespace(bytes, end);
        if bytes.get(colon) != Some(&b':') {
            // A value, or a string cut off by truncation (then `end` is the end of input).
            i = end;
            continue;
        }
        let key = bytes.get(open + 1..end.saturating_sub(1)).unwrap_or_default();
        let is_secret = if escaped { json_key_is_secret(key) } else { secret_name(key, false) };
        let value_start = skip_whitespace(bytes, colon + 1);
        if !is_secret || value_start >= bytes.len() {
            i = colon + 1;
            continue;
        }
        let value_end = json_value_end(bytes, value_start);
        splicer.replace(value_start, value_end, MARKER_JSON);
        i = value_end;
    }
    splicer.finish()
}

/// Index just past the string whose contents start at `from` (past its closing quote, or the
/// end of input when truncated), and whether it contains escapes.
fn string_end(bytes: &[u8], from: usize) -> (usize, bool) {
    let mut i = from;
    let mut escaped = false;
    loop {
        let rest = bytes.get(i..).unwrap_or_default();
        match rest.iter().position(|&b| b == b'"' || b == b'\\') {
            None => return (bytes.len(), escaped),
            Some(offset) => {
                let at = i + offset;
                if bytes.get(at) == Some(&b'"') {
                    return (at + 1, escaped);
                }
                escaped = true;
                i = at + 2;
            }
        }
    }
}

fn skip_whitespace(bytes: &[u8], from: usize) -> usize {
    let rest = bytes.get(from..).unwrap_or_default();
    from + rest.iter().position(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')).unwrap_or(rest.len())
}

/// Index just past the JSON value starting at `start`, or the end of input when it is cut off.
fn json_value_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(&b'"') => string_end(bytes, start + 1).0,
        Some(&(b'{' | b'[')) => {
            let mut depth = 0usize;
            let mut i = start;
            while let Some(&b) = bytes.get(i) {
                match b {
                    b'"' => {
                        i = string_end(bytes, i + 1).0;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        // A number, literal or anything malformed: up to the next delimiter. Spaces do not end
        // it, so an unquoted `hunter2 and more` is hidden whole.
        _ => {
            let rest = bytes.get(start..).unwrap_or_default();
            start + rest.iter().position(|&b| matches!(b, b',' | b'}' | b']' | b'\n' | b'\r')).unwrap_or(rest.len())
        }
    }
}

/// Decodes a JSON key with escapes (`"pass\u0077ord"`) before matching it.
fn json_key_is_secret(raw: &[u8]) -> bool {
    let mut name = NameBuf::new();
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            name.push(b);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(b'u') => {
                let code = raw
                    .get(i + 2..i + 6)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u32::from_str_radix(hex, 16).ok());
                // Non-ASCII never matches a listed name; keep a placeholder so lengths stay honest.
                name.push(code.and_then(|c| u8::try_from(c).ok()).filter(u8::is_ascii).unwrap_or(0xff));
                i += 6;
            }
            Some(&other) => {
                name.push(other);
                i += 2;
            }
            None => i += 1,
        }
    }
    name.is_secret()
}

/// Builds the redacted copy only once a first replacement is needed.
struct Splicer<'a> {
    input: &'a [u8],
    out: Option<Vec<u8>>,
    copied: usize,
}

impl<'a> Splicer<'a> {
    fn new(input: &'a [u8]) -> Self {
        Splicer { input, out: None, copied: 0 }
    }

    /// Replaces `input[start..end]` (ranges come in increasing order) by `with`.
    fn replace(&mut self, start: usize, end: usize, with: &[u8]) {
        let out = self.out.get_or_insert_with(|| Vec::with_capacity(self.input.len() + 2 * MARKER_JSON.len()));
        out.extend_from_slice(self.input.get(self.copied..start).unwrap_or_default());
        out.extend_from_slice(with);
        self.copied = end.max(self.copied);
    }

    fn finish(self) -> Cow<'a, [u8]> {
        match self.out {
            None => Cow::Borrowed(self.input),
            Some(mut out) => {
                out.extend_from_slice(self.input.get(self.copied..).unwrap_or_default());
                Cow::Owned(out)
            }
        }
    }
}

/// Text spliced at ASCII delimiters stays valid UTF-8; the lossy path only guards the invariant.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Redacts one HTTP/1 message in place: secret header values, secret query parameters of the
/// request target, and secret fields of the body (by its own `Content-Type`). Allocates only
/// for what it replaces.
pub fn http1_message(message: &mut Message) {
    let headers = &mut message.headers;
    for i in 0..headers.len() {
        let (name, value) = headers.at(i);
        let redacted = match header_value(name, value) {
            Cow::Owned(named) => match tokens(named.as_bytes()) {
                Cow::Owned(shaped) => Some(into_string(shaped)),
                Cow::Borrowed(_) => Some(named),
            },
            Cow::Borrowed(_) => match tokens(value.as_bytes()) {
                Cow::Owned(shaped) => Some(into_string(shaped)),
                Cow::Borrowed(_) => None,
            },
        };
        if let Some(redacted) = redacted {
            headers.set_value(i, &redacted);
        }
    }
    if let Cow::Owned(redacted) = url(&message.path) {
        message.path = redacted;
    }
    tokens_in_place(&mut message.path);
    let redacted_body = match body(message.headers.content_type(), &message.body) {
        Cow::Owned(redacted) => Some(redacted),
        Cow::Borrowed(_) => None,
    };
    if let Some(redacted) = redacted_body {
        message.body = redacted;
    }
    if let Cow::Owned(redacted) = tokens(&message.body) {
        message.body = redacted;
    }
}

/// A credential's prefix kept in front of the marker (`px-api-[REDACTED]`): it tells what leaked
/// without giving it away.
const KEY_PREFIXES: &[&[u8]] = &[b"px-api-", b"px-dep-"];

/// The shortest body of a `px-api-`/`px-dep-` key (Pixie's UUIDs have 36 characters, Loupe's
/// base64url bodies 32).
const KEY_BODY_MIN: usize = 32;

/// The starts [`tokens`] looks for: a key prefix's common head, the base64url of `{"` that opens
/// every JWT and JWE, and the version of a vizier credential.
const TOKEN_STARTS: [&[u8]; 3] = [b"px-", b"eyJ", b"v1."];

/// The shortest credential [`tokens`] recognises (a JWT's three short segments).
const TOKEN_MIN: usize = 16;

/// `bytes` with every credential recognised by its shape replaced by [`MARKER`], for text where
/// no name tells a secret apart (protobuf bodies, message payloads, SQL):
/// - JWTs and JWEs (`eyJ…` base64url segments joined by `.`, at least two dots);
/// - `px-api-…` and `px-dep-…` keys (the prefix stays: `px-api-[REDACTED]`);
/// - vizier credentials (`v1.<org uuid>.<hex MAC>`).
///
/// A match runs to the end of its base64url/key characters, so a token is never cut in two.
/// Returns [`Cow::Borrowed`] when nothing matches.
pub fn tokens(bytes: &[u8]) -> Cow<'_, [u8]> {
    // Most header values are shorter than any credential: no search at all. Every start holds
    // one of `-` (`px-`), `J` (`eyJ`) and `.` (`v1.`): text with none of them needs no search
    // for each (one scan instead of three).
    if bytes.len() < TOKEN_MIN || memchr::memchr3(b'-', b'J', b'.', bytes).is_none() {
        return Cow::Borrowed(bytes);
    }
    static FINDERS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 3]> =
        std::sync::LazyLock::new(|| TOKEN_STARTS.map(memchr::memmem::Finder::new));
    let finders = &*FINDERS;
    let mut out = Splicer::new(bytes);
    // The next occurrence of each start at or after `from`; found again only once passed.
    let mut next: [Option<usize>; 3] = [None; 3];
    let mut from = 0;
    loop {
        for (slot, finder) in next.iter_mut().zip(finders) {
            if slot.is_none_or(|at| at < from) {
                *slot = bytes.get(from..).and_then(|hay| finder.find(hay)).map(|at| from + at);
            }
        }
        let Some(at) = next.iter().flatten().copied().min() else { break };
        // No word boundary is asked for in front: in protobuf the byte before a string is its length,
        // which may well be a letter (`h` before a 104-byte credential).
        match token_at(bytes, at) {
            Some((keep, end)) => {
                let mut with = Vec::with_capacity(keep + MARKER.len());
                with.extend_from_slice(bytes.get(at..at + keep).unwrap_or_default());
                with.extend_from_slice(MARKER.as_bytes());
                out.replace(at, end, &with);
                from = end;
            }
            None => from = at + 1,
        }
    }
    out.finish()
}

/// [`tokens`] on a text field, in place (allocates only when something matched).
pub fn tokens_in_place(text: &mut String) {
    if let Cow::Owned(redacted) = tokens(text.as_bytes()) {
        *text = into_string(redacted);
    }
}

/// Bytes of base64url and of key bodies.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// The credential starting at `at`, if any: how many of its leading bytes to keep, and its end.
fn token_at(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let rest = bytes.get(at..)?;
    let run = |from: usize| rest.get(from..).map_or(0, |r| r.iter().take_while(|b| is_token_byte(**b)).count());
    if let Some(prefix) = KEY_PREFIXES.iter().find(|p| rest.starts_with(p)) {
        let body = run(prefix.len());
        return (body >= KEY_BODY_MIN).then_some((prefix.len(), at + prefix.len() + body));
    }
    if rest.starts_with(b"eyJ") {
        // Segments of base64url joined by dots; a JWT has three, a JWE five (some may be empty).
        let mut end = run(0);
        let mut dots = 0;
        while rest.get(end) == Some(&b'.') {
            dots += 1;
            end += 1 + run(end + 1);
        }
        return (dots >= 2 && end >= 16).then_some((0, at + end));
    }
    if rest.starts_with(b"v1.") {
        // `v1.` + a hyphenated UUID (36) + `.` + at least 32 hex digits.
        let uuid = rest.get(3..39)?;
        let uuid_ok = uuid.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-') && uuid.get(8) == Some(&b'-');
        if !uuid_ok || rest.get(39) != Some(&b'.') {
            return None;
        }
        let mac = rest.get(40..).map_or(0, |r| r.iter().take_while(|b| b.is_ascii_hexdigit()).count());
        return (mac >= 32).then_some((0, at + 40 + mac));
    }
    None
}

/// Redacts both messages of an HTTP/1 exchange (see [`http1_message`]).
pub fn http1_record(record: &mut Record) {
    http1_message(&mut record.req);
    http1_message(&mut record.resp);
}

/// Redacts both messages of an HTTP/2 or gRPC exchange as HTTP/1's (see [`http1_message`]):
/// `authorization` metadata, secret query parameters of `:path`, secret body fields.
pub fn http2_record(record: &mut crate::http2::Record) {
    http1_message(&mut record.req);
    http1_message(&mut record.resp);
}

/// `CONFIG SET` parameters that hold a password although their names do not say so.
const REDIS_SECRET_CONFIG: &[&str] = &["requirepass", "masterauth"];

/// Redacts the credentials a Redis command carries, in place: every argument of `AUTH`, the
/// password (and user) after `AUTH` in `HELLO` and after `AUTH`/`AUTH2` in `MIGRATE`, the value of
/// a secret `CONFIG SET` parameter (`requirepass`, `masterauth`, or a secret name), and the
/// password rules of `ACL SETUSER` (`>pw`, `<pw`, `#hash`, `!hash` keep their first character).
pub fn redis_command(command: &mut RedisCommand) {
    let args = &mut command.args;
    let redact_next = |args: &mut [String], from: usize, n: usize| {
        for arg in args.iter_mut().skip(from).take(n) {
            *arg = MARKER.to_string();
        }
    };
    match command.name.as_str() {
        "AUTH" => {
            let n = args.len();
            redact_next(args, 0, n);
        }
        "HELLO" | "MIGRATE" => {
            let mut i = 0;
            while i < args.len() {
                let n = match args.get(i).map(String::as_str) {
                    Some(a) if a.eq_ignore_ascii_case("AUTH") && command.name == "HELLO" => 2,
                    Some(a) if a.eq_ignore_ascii_case("AUTH") => 1,
                    Some(a) if a.eq_ignore_ascii_case("AUTH2") => 2,
                    _ => 0,
                };
                redact_next(args, i + 1, n);
                i += 1 + n;
            }
        }
        "CONFIG SET" => {
            for pair in args.chunks_mut(2) {
                if let [name, value] = pair
                    && (REDIS_SECRET_CONFIG.iter().any(|s| name.eq_ignore_ascii_case(s)) || is_secret_name(name))
                {
                    *value = MARKER.to_string();
                }
            }
        }
        "ACL SETUSER" => {
            for rule in args.iter_mut().skip(1) {
                if let Some(kind @ ('>' | '<' | '#' | '!')) = rule.chars().next() {
                    *rule = format!("{kind}{MARKER}");
                }
            }
        }
        _ => {}
    }
    // A session store's values (`SET sess:1 eyJ…`) carry tokens no command name announces.
    for arg in args.iter_mut() {
        tokens_in_place(arg);
    }
}

#[cfg(test)]
mod tests;

/// Redacts the credentials a PostgreSQL request carries, in place: a password or SASL message
/// whole, and in SQL text the string literal after `PASSWORD` (`CREATE ROLE a PASSWORD 'x'`,
/// `ALTER USER a WITH ENCRYPTED PASSWORD 'md5...'`, which `psql`'s `\password` sends).
pub fn pgsql_request(request: &mut PgRequest) {
    if request.credential {
        request.text = MARKER.to_string();
        return;
    }
    if let Cow::Owned(text) = sql_password_literals(&request.text) {
        request.text = text;
    }
    tokens_in_place(&mut request.text);
}

/// `sql` with the content of every string literal that follows the keyword `PASSWORD` or
/// `IDENTIFIED BY` (any case, then whitespace, `=` or `(`) replaced by the marker; a literal cut
/// short is redacted to its end.
fn sql_password_literals(sql: &str) -> Cow<'_, str> {
    let bytes = sql.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || bytes.get(i - 1).is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'_');
        let Some(after) = starts_word.then(|| password_keyword_end(bytes, i)).flatten() else {
            i += 1;
            continue;
        };
        // Then whitespace, at most one `=` or `(` (`SET PASSWORD = PASSWORD('x')`), whitespace, a quote.
        let mut j = skip_whitespace(bytes, after);
        if matches!(bytes.get(j), Some(b'=' | b'(')) {
            j = skip_whitespace(bytes, j + 1);
        }
        if j == after || bytes.get(j) != Some(&b'\'') {
            i = after;
            continue;
        }
        // The literal runs to the next quote that is not doubled ('it''s').
        let start = j + 1;
        let mut end = start;
        loop {
            match bytes.get(end) {
                None => break,
                Some(b'\'') if bytes.get(end + 1) == Some(&b'\'') => end += 2,
                Some(b'\'') => break,
                Some(_) => end += 1,
            }
        }
        let text = out.get_or_insert_with(|| String::with_capacity(sql.len()));
        text.push_str(sql.get(copied..start).unwrap_or_default());
        text.push_str(MARKER);
        copied = end.min(bytes.len());
        i = end + 1;
    }
    match out {
        Some(mut text) => {
            text.push_str(sql.get(copied..).unwrap_or_default());
            Cow::Owned(text)
        }
        None => Cow::Borrowed(sql),
    }
}

/// The end of `PASSWORD` or `IDENTIFIED BY` (any case, whole words) at `i`, if one starts there.
fn password_keyword_end(bytes: &[u8], i: usize) -> Option<usize> {
    let word_at = |at: usize, word: &[u8]| {
        let end = at + word.len();
        let matches = bytes.get(at..end).is_some_and(|w| w.eq_ignore_ascii_case(word));
        let ends = bytes.get(end).is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'_');
        (matches && ends).then_some(end)
    };
    if let Some(end) = word_at(i, b"password") {
        return Some(end);
    }
    let end = word_at(i, b"identified")?;
    let by = skip_whitespace(bytes, end);
    if by == end {
        return None;
    }
    word_at(by, b"by")
}

/// Redacts the credentials a MySQL command's SQL carries, in place: the literal after
/// `IDENTIFIED BY` or `PASSWORD` (`CREATE USER a IDENTIFIED BY 'x'`, `SET PASSWORD = PASSWORD('x')`).
/// Authentication responses never reach a record (the parser does not keep them).
pub fn mysql_command(command: &mut MysqlCommand) {
    if let Cow::Owned(text) = sql_password_literals(&command.body) {
        command.body = text;
    }
    tokens_in_place(&mut command.body);
}

/// `CONNECT` fields that hold credentials besides the names [`is_secret_name`] knows (`auth_token`,
/// `sig`): the password and the user JWT.
const NATS_SECRET_FIELDS: &[&str] = &["pass", "jwt"];

/// Redacts the credentials a NATS message carries, in place: in `CONNECT`, the values of `pass`,
/// `auth_token`, `jwt`, `sig` and any other secret-named field. A `CONNECT` document that does not
/// parse (cut to the value limit, or not JSON) is replaced whole, since its secrets cannot be found.
pub fn nats_message(message: &mut NatsMessage) {
    if !message.cmd.eq_ignore_ascii_case("CONNECT") {
        tokens_in_place(&mut message.body);
        return;
    }
    let mut doc = match serde_json::from_str::<serde_json::Value>(&message.body) {
        Ok(serde_json::Value::Object(doc)) => doc,
        _ => {
            message.body = MARKER.to_string();
            return;
        }
    };
    let mut changed = false;
    for (name, value) in doc.iter_mut() {
        if NATS_SECRET_FIELDS.contains(&name.as_str()) || is_secret_name(name) {
            *value = serde_json::Value::String(MARKER.to_string());
            changed = true;
        }
    }
    if changed {
        message.body = serde_json::Value::Object(doc).to_string();
    }
}

/// Redacts the credentials an MQTT packet carries, in place: the `password` of a `CONNECT` (and
/// any other secret-named field). A `CONNECT` body that does not parse is replaced whole.
pub fn mqtt_packet(packet: &mut MqttPacket) {
    if packet.kind != 1 {
        tokens_in_place(&mut packet.body);
        return;
    }
    let mut doc = match serde_json::from_str::<serde_json::Value>(&packet.body) {
        Ok(serde_json::Value::Object(doc)) => doc,
        _ => {
            packet.body = MARKER.to_string();
            return;
        }
    };
    let mut changed = false;
    for (name, value) in doc.iter_mut() {
        if is_secret_name(name) {
            *value = serde_json::Value::String(MARKER.to_string());
            changed = true;
        }
    }
    if changed {
        packet.body = serde_json::Value::Object(doc).to_string();
    }
}

/// Redacts the credentials an AMQP method carries, in place: the login `response` of
/// `Connection.Start-Ok` and `Connection.Secure-Ok` (the PLAIN mechanism's is `\0user\0password`).
/// A message that does not parse is replaced whole.
pub fn amqp_method(method: &mut AmqpMethod) {
    if !matches!((method.class_id, method.method_id), (10, 11) | (10, 21)) {
        tokens_in_place(&mut method.msg);
        return;
    }
    let mut doc = match serde_json::from_str::<serde_json::Value>(&method.msg) {
        Ok(serde_json::Value::Object(doc)) => doc,
        _ => {
            method.msg = MARKER.to_string();
            return;
        }
    };
    for (name, value) in doc.iter_mut() {
        if name == "response" || is_secret_name(name) {
            *value = serde_json::Value::String(MARKER.to_string());
        }
    }
    method.msg = serde_json::Value::Object(doc).to_string();
}

/// Replaces the values of the top-level fields `fields` (and of any secret-named field) of the
/// JSON object `body`; a body that does not parse (cut to the value limit) is replaced whole, since
/// its secrets cannot be found. With `deep`, fields are found at any depth.
fn json_fields(body: &mut String, fields: &[&str], deep: bool) {
    fn walk(value: &mut serde_json::Value, fields: &[&str], deep: bool) {
        match value {
            serde_json::Value::Object(doc) => {
                for (name, v) in doc.iter_mut() {
                    if fields.contains(&name.as_str()) || is_secret_name(name) {
                        *v = serde_json::Value::String(MARKER.to_string());
                    } else if deep {
                        walk(v, fields, deep);
                    }
                }
            }
            serde_json::Value::Array(items) if deep => items.iter_mut().for_each(|v| walk(v, fields, deep)),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut doc @ serde_json::Value::Object(_)) => {
            walk(&mut doc, fields, deep);
            *body = doc.to_string();
        }
        _ => *body = MARKER.to_string(),
    }
}

/// Redacts the credentials a Kafka exchange carries, in place: the `auth_bytes` of
/// `SaslAuthenticate` (API key 36) and of its response (`\0user\0password` with PLAIN, SCRAM
/// proofs); elsewhere credentials found by their shape ([`tokens`]).
pub fn kafka_record(record: &mut KafkaRecord) {
    if record.req.api_key == 36 {
        json_fields(&mut record.req.body, &["auth_bytes"], false);
        if let Some(resp) = record.resp.as_mut() {
            json_fields(&mut resp.body, &["auth_bytes"], false);
        }
        return;
    }
    tokens_in_place(&mut record.req.client_id);
    tokens_in_place(&mut record.req.body);
    if let Some(resp) = record.resp.as_mut() {
        tokens_in_place(&mut resp.body);
    }
}

/// MongoDB commands whose documents carry credentials, and the fields that hold them: SASL
/// payloads (SCRAM proofs, PLAIN passwords) at any depth (`speculativeAuthenticate` nests one in
/// the handshake), `createUser`/`updateUser` passwords, `authenticate`'s key.
const MONGODB_SECRET_COMMANDS: &[&str] = &[
    "saslStart",
    "saslContinue",
    "authenticate",
    "createUser",
    "updateUser",
    "hello",
    "isMaster",
    "ismaster",
    "copydbsaslstart",
    "copydb",
];
const MONGODB_SECRET_FIELDS: &[&str] = &["payload", "pwd", "key", "digestPassword"];

/// Redacts the credentials a MongoDB exchange carries, in place: in the authentication and user
/// commands (`saslStart`, `saslContinue`, `authenticate`, `createUser`, `updateUser`, and the
/// `hello`/`isMaster` handshake that may carry `speculativeAuthenticate`) and their replies, the
/// fields `payload`, `pwd`, `key` and `digestPassword` at any depth (a body cut too short to parse is replaced whole); in every document, secret-named
/// fields ([`json`]) and credentials found by their shape ([`tokens`]).
pub fn mongodb_record(record: &mut MongodbRecord) {
    let sensitive = MONGODB_SECRET_COMMANDS.iter().any(|c| c.eq_ignore_ascii_case(&record.req.cmd));
    let bodies = std::iter::once(&mut record.req.body).chain(record.resp.as_mut().map(|r| &mut r.body));
    for body in bodies {
        if sensitive {
            json_fields(body, MONGODB_SECRET_FIELDS, true);
            continue;
        }
        if let Cow::Owned(redacted) = json(body.as_bytes()) {
            *body = into_string(redacted);
        }
        tokens_in_place(body);
    }
}

/// Redacts the credentials a CQL exchange carries, in place: the SASL `token` of `AUTH_RESPONSE`,
/// `AUTH_CHALLENGE` and `AUTH_SUCCESS` (PLAIN's is `\0user\0password`); in query text the
/// literal after `PASSWORD` (`CREATE ROLE r WITH PASSWORD = 'x'`); elsewhere credentials found by
/// their shape ([`tokens`]).
pub fn cql_record(record: &mut CqlRecord) {
    let messages = std::iter::once(&mut record.req).chain(record.resp.as_mut());
    for message in messages {
        if matches!(message.opcode, 0x0E..=0x10) {
            json_fields(&mut message.body, &["token"], false);
            continue;
        }
        if let Cow::Owned(text) = sql_password_literals(&message.body) {
            message.body = text;
        }
        tokens_in_place(&mut message.body);
    }
}
