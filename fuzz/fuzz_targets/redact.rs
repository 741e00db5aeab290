//! Fuzz target: arbitrary bytes through every redaction scanner (JSON, form, URL, header values,
//! content-type dispatch, credential shapes). Run with `cargo +nightly fuzz run redact` from `fuzz/`.
//!
//! Owns nothing but this harness; must not touch redaction internals (public API only). Redaction
//! must never panic or hang, and it copies a body only to put the marker in.

#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use loupe_protocols::redact;

fuzz_target!(|data: &[u8]| {
    // First byte picks a content type, so each body path is reached from any input.
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 4 {
        0 => None,
        1 => Some("application/json"),
        2 => Some("application/x-www-form-urlencoded"),
        _ => Some("text/plain"),
    };
    let _ = redact::json(bytes);
    let _ = redact::form(bytes);
    let redacted = redact::body(content_type, bytes);
    if let Cow::Owned(out) = &redacted {
        assert!(
            out.windows(redact::MARKER.len()).any(|w| w == redact::MARKER.as_bytes()),
            "an owned copy holds the marker"
        );
    }
    if let Cow::Owned(out) = redact::tokens(bytes) {
        assert!(
            out.windows(redact::MARKER.len()).any(|w| w == redact::MARKER.as_bytes()),
            "a token scan copies only to put the marker in"
        );
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = redact::url(&text);
    let _ = redact::is_secret_name(&text);
    let (name, value) = text.split_once(':').unwrap_or((&text, ""));
    let _ = redact::header_value(name, value);
    let _ = redact::header_value("Authorization", &text);
});
