//! The bridge's topics: the names both ends agree on (spelled in `loupe_proto::vzconn_topic`), the cloud's own
//! internal one, and which topics a vizier may send.
//!
//! Owns topic names and their validation. Must not touch subjects beyond appending a topic (that layout is
//! `loupe_bus::subject`'s).

pub use loupe_proto::vzconn_topic::*;

/// Internal, on `c2v.<id>.bridge_opened`: a new bridge of this vizier announces itself (payload: its nonce),
/// and any older bridge of the same vizier, on any replica, closes. Never forwarded to the vizier.
pub const BRIDGE_OPENED: &str = "bridge_opened";

/// Longest topic a vizier may send.
pub const MAX_TOPIC_LEN: usize = 128;

/// Whether a vizier may send on `topic`: one or two dot-separated tokens of `[A-Za-z0-9_-]`, at most
/// [`MAX_TOPIC_LEN`] bytes, and not a handshake topic. Anything else could reach other subjects (wildcards,
/// extra tokens) or confuse the handshake.
pub fn vizier_may_send(topic: &str) -> bool {
    let tokens: Vec<&str> = topic.split('.').collect();
    topic.len() <= MAX_TOPIC_LEN
        && (1..=2).contains(&tokens.len())
        && tokens
            .iter()
            .all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        && topic != REGISTER
        && topic != REGISTER_ACK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vizier_sends_only_plain_topics() {
        for ok in ["heartbeat", "reply.4f1c", "VZMetrics", "reply.a-b_c"] {
            assert!(vizier_may_send(ok), "{ok}");
        }
        let long = "x".repeat(MAX_TOPIC_LEN + 1);
        for bad in ["", "register", "registerAck", "a.b.c", "reply.*", ">", "a..b", "a b", "reply.", long.as_str()] {
            assert!(!vizier_may_send(bad), "{bad:?}");
        }
    }
}
