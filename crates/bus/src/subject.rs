//! Subjects: validation, wildcard matching, and Pixie's layout for vizier ↔ cloud traffic.
//!
//! A vizier's messages to the cloud go on `v2c.<shard>.<vizier id>.<topic>`, where `shard` is two lowercase hex
//! digits of the last byte of the vizier's UUID (`00`–`ff`), so a service can own a range of shards; the
//! cloud's messages to one vizier go on `c2v.<vizier id>.<topic>`. Owns naming only.

use crate::BusError;

/// The cloud-to-vizier subject of `topic` for one vizier.
pub fn c2v(vizier_id: &str, topic: &str) -> String {
    format!("c2v.{vizier_id}.{topic}")
}

/// The vizier-to-cloud subject of `topic` from one vizier.
pub fn v2c(vizier_id: &str, topic: &str) -> String {
    format!("v2c.{}.{vizier_id}.{topic}", shard(vizier_id))
}

/// The pattern matching `topic` from every vizier.
pub fn v2c_all(topic: &str) -> String {
    format!("v2c.*.*.{topic}")
}

/// The shard of a vizier: two hex digits of the last byte of its id (the last two hex digits of the UUID text).
/// An id that does not end in two hex digits (not a UUID) falls in shard `00`.
pub fn shard(vizier_id: &str) -> String {
    let tail = vizier_id.get(vizier_id.len().saturating_sub(2)..).unwrap_or_default();
    if tail.len() == 2 && tail.bytes().all(|b| b.is_ascii_hexdigit()) { tail.to_ascii_lowercase() } else { "00".into() }
}

/// Checks a subject to publish on: non-empty tokens of printable ASCII, no spaces and no wildcards.
pub fn validate_subject(subject: &str) -> Result<(), BusError> {
    validate(subject, false)
}

/// Checks a pattern to subscribe to: like a subject, but a token may be `*`, and the last token may be `>`.
pub fn validate_pattern(pattern: &str) -> Result<(), BusError> {
    validate(pattern, true)
}

fn validate(text: &str, wildcards: bool) -> Result<(), BusError> {
    let invalid = |reason| Err(BusError::InvalidSubject { subject: text.chars().take(200).collect(), reason });
    if text.is_empty() {
        return invalid("empty");
    }
    if text.len() > 1024 {
        return invalid("longer than 1024 bytes");
    }
    let count = text.split('.').count();
    for (i, token) in text.split('.').enumerate() {
        if token.is_empty() {
            return invalid("empty token");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("tokens are printable ASCII without spaces");
        }
        let wild = token == "*" || token == ">";
        if token.contains(['*', '>']) && !wild {
            return invalid("a wildcard must be a whole token");
        }
        if wild && !wildcards {
            return invalid("wildcards are for subscribing, not publishing");
        }
        if token == ">" && i + 1 != count {
            return invalid("`>` must be the last token");
        }
    }
    Ok(())
}

/// Whether `subject` matches `pattern` (`*` one token, a final `>` one or more).
pub fn matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for p in pattern.split('.') {
        match (p, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixie_layout() {
        let id = "3f1c9a2e-7d4b-4c1a-9e2f-0123456789ab";
        assert_eq!(shard(id), "ab");
        assert_eq!(v2c(id, "heartbeat"), format!("v2c.ab.{id}.heartbeat"));
        assert_eq!(c2v(id, "VizierPassthroughRequest"), format!("c2v.{id}.VizierPassthroughRequest"));
        assert!(matches(&v2c_all("heartbeat"), &v2c(id, "heartbeat")));
        assert!(!matches(&v2c_all("heartbeat"), &v2c(id, "reply-1")));
        assert_eq!(shard("AB"), "ab");
        assert_eq!(shard("x"), "00");
        assert_eq!(shard("zz"), "00");
    }

    #[test]
    fn wildcards_match_as_nats_does() {
        assert!(matches("a.*.c", "a.b.c"));
        assert!(!matches("a.*.c", "a.b.d"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(matches("a.>", "a.b"));
        assert!(!matches("a.>", "a"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(!matches("a.b.c", "a.b"));
    }

    #[test]
    fn bad_subjects_are_refused_with_a_reason() {
        for (bad, wild) in
            [("", false), ("a..b", false), ("a b", false), ("a.*", false), ("a.>.b", true), ("a.b*", true)]
        {
            assert!(validate(bad, wild).is_err(), "{bad:?} accepted");
        }
        assert!(validate_pattern("v2c.*.*.heartbeat").is_ok());
        assert!(validate_pattern("c2v.>").is_ok());
        assert!(validate_subject("v2c.ab.id.heartbeat").is_ok());
    }
}
