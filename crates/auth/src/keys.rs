//! API keys (`px-api-…`) and deploy keys (`px-dep-…`): one generator, hasher and parser for both, parameterized
//! by [`KeyKind`] (shared with the metastore through `loupe-common`), and display prefixes.
//!
//! Owns the key format. Must not store keys: a key's plaintext is shown to its creator exactly once and only
//! its [`KeyHash`] (plus the [`display_prefix`] for listings) is persisted, by the metastore.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

pub use loupe_common::KeyKind;

use crate::random::{self, RandomError};

/// Number of leading characters of a key kept for listings (`px-api-AbCdE`).
pub const DISPLAY_PREFIX_CHARS: usize = 12;
/// Random bytes in a generated key body: 24 bytes = 192 bits = 32 base64url characters.
const KEY_RANDOM_BYTES: usize = 24;
/// Accepted key body lengths: 32 (ours) up to 64; a Pixie-style UUID body (36) falls inside.
const KEY_BODY_CHARS: std::ops::RangeInclusive<usize> = 32..=64;

/// A random shared secret between two processes (32 bytes, base64url), such as the one `loupe up`'s TLS proxy
/// sends its API to prove a request came through it.
pub fn generate_shared_secret() -> Result<String, RandomError> {
    random::url_safe_string::<32>()
}

/// Constant-time comparison of a presented shared secret or derived credential with the expected one. Only the
/// lengths may leak, and those are public (fixed by the format).
pub fn secrets_match(presented: &[u8], expected: &[u8]) -> bool {
    presented.ct_eq(expected).into()
}

/// Lowercase hex SHA-256 of a key's full plaintext, the only form in which a key is stored.
///
/// SHA-256 rather than argon2 is deliberate: generated keys carry 192 random bits, so no dictionary or
/// brute-force attack on a leaked hash is feasible, and a fast hash lets the API look a key up by its hash
/// with an indexed equality query on every request instead of paying ~20 ms of argon2 per call.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    /// Wraps a stored hash read back from the metastore. Returns `None` unless it is 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| KeyHash(hex.to_owned()))
    }

    /// The hex digest, for storage and lookup.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for comparing a presented key's hash to a stored one outside an indexed lookup.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Display for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", &self.0[..self.0.len().min(12)])
    }
}

/// Generates a new key of `kind`: `<prefix><32 random base64url chars>`, with its hash.
///
/// Show the plaintext once; persist the hash and [`display_prefix`].
pub fn generate_key(kind: KeyKind) -> Result<(String, KeyHash), RandomError> {
    let body = random::url_safe_string::<KEY_RANDOM_BYTES>()?;
    let plaintext = format!("{}{body}", kind.prefix());
    let hash = hash_key(&plaintext);
    Ok((plaintext, hash))
}

/// Hashes a presented key for lookup. Surrounding whitespace is ignored (keys get pasted from terminals).
pub fn hash_key(plaintext: &str) -> KeyHash {
    let digest = Sha256::digest(plaintext.trim().as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    KeyHash(hex)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Reads a key's kind from its prefix, or `None` if it is not a well-formed Loupe/Pixie key.
///
/// Well-formed: a known prefix followed by 32–64 characters of `[A-Za-z0-9_-]` (our base64url bodies and
/// Pixie's UUID bodies both qualify). Use it to route a credential before any lookup.
pub fn key_kind(key: &str) -> Option<KeyKind> {
    let key = key.trim();
    KeyKind::ALL.into_iter().find(|kind| {
        key.strip_prefix(kind.prefix()).is_some_and(|body| {
            KEY_BODY_CHARS.contains(&body.len())
                && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
    })
}

/// The first [`DISPLAY_PREFIX_CHARS`] characters of a key, shown in listings so users can tell keys apart.
pub fn display_prefix(key: &str) -> &str {
    let key = key.trim();
    match key.char_indices().nth(DISPLAY_PREFIX_CHARS) {
        Some((idx, _)) => &key[..idx],
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_secrets_are_random_and_compared_exactly() {
        let a = generate_shared_secret().expect("random");
        let b = generate_shared_secret().expect("random");
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(secrets_match(a.as_bytes(), a.clone().as_bytes()));
        assert!(!secrets_match(a.as_bytes(), b.as_bytes()));
        assert!(!secrets_match(&a.as_bytes()[..42], a.as_bytes()));
        assert!(!secrets_match(b"", a.as_bytes()));
    }

    #[test]
    fn generated_keys_have_prefix_kind_and_matching_hash() {
        let (api, api_hash) = generate_key(KeyKind::Api).expect("random");
        assert!(api.starts_with("px-api-"));
        assert_eq!(api.len(), 7 + 32);
        assert_eq!(key_kind(&api), Some(KeyKind::Api));
        assert_eq!(hash_key(&api), api_hash);

        let (dep, dep_hash) = generate_key(KeyKind::Deploy).expect("random");
        assert!(dep.starts_with("px-dep-"));
        assert_eq!(key_kind(&dep), Some(KeyKind::Deploy));
        assert!(dep_hash.ct_eq(&hash_key(&dep)));
        assert!(!dep_hash.ct_eq(&api_hash));
    }

    #[test]
    fn generated_keys_are_unique() {
        let (a, _) = generate_key(KeyKind::Api).expect("random");
        let (b, _) = generate_key(KeyKind::Api).expect("random");
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // sha256("abc")
        assert_eq!(hash_key("abc").as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(hash_key("  abc\n"), hash_key("abc"));
        assert_eq!(KeyHash::from_hex(hash_key("abc").as_str()), Some(hash_key("abc")));
        assert_eq!(KeyHash::from_hex("ABC"), None);
        assert_eq!(KeyHash::from_hex(&"G".repeat(64)), None);
    }

    #[test]
    fn key_kind_parses_prefixes_and_rejects_garbage() {
        assert_eq!(key_kind("px-api-7f1c1e0a-7a34-4b5a-9a3c-2d4b5f6e7a8b"), Some(KeyKind::Api));
        assert_eq!(key_kind("px-dep-7f1c1e0a-7a34-4b5a-9a3c-2d4b5f6e7a8b"), Some(KeyKind::Deploy));
        assert_eq!(key_kind("px-api-short"), None);
        assert_eq!(key_kind("px-api-"), None);
        assert_eq!(key_kind("px-xyz-7f1c1e0a-7a34-4b5a-9a3c-2d4b5f6e7a8b"), None);
        assert_eq!(key_kind("px-api-7f1c1e0a 7a34-4b5a-9a3c-2d4b5f6e7a8b"), None);
        assert_eq!(key_kind(&format!("px-api-{}", "a".repeat(65))), None);
        assert_eq!(key_kind(""), None);
        assert_eq!(key_kind("eyJhbGciOiJIUzI1NiJ9.e30.sig"), None);
    }

    #[test]
    fn display_prefix_is_first_twelve_chars() {
        assert_eq!(display_prefix("px-api-AbCdEfGhIj"), "px-api-AbCdE");
        assert_eq!(display_prefix("short"), "short");
        assert_eq!(display_prefix("ééééééééééééééé").chars().count(), 12);
    }

    #[test]
    fn debug_does_not_print_full_hash() {
        let h = hash_key("abc");
        assert_eq!(format!("{h:?}"), "KeyHash(ba7816bf8f01)");
    }
}
