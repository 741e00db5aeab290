//! The settings key: seals the credentials an org setting holds (the header values of the org's export endpoint)
//! so that the metastore, its backups and anyone who can read its tables see only ciphertext.
//!
//! AES-256-GCM under a key derived from the `settings-key` file (`loupe setup init-secrets` writes it; every
//! process that writes or reads these settings, the scripts service and VZConn, reads the same file), a random
//! nonce per value, and the org and header name as associated data, so a sealed value copied to another org or
//! header does not open. A sealed value reads `sealed1:<hex of nonce and ciphertext>`.
//!
//! Owns the sealing format. Must not log a value, sealed or not, nor decide what is a credential (the callers do).

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use sha2::Digest as _;
use uuid::Uuid;

/// What every sealed value starts with (the format's version).
pub const SEALED_PREFIX: &str = "sealed1:";
/// Fewest characters of key text taken: the file holds 64 hex digits (32 random bytes).
const MIN_KEY_TEXT: usize = 32;
const NONCE_LEN: usize = 12;

/// Why a key could not be made or a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SettingsKeyError {
    /// The key text is too short to be a key.
    #[error("the settings key is {0} characters; at least {MIN_KEY_TEXT} are needed (init-secrets writes 64)")]
    TooShort(usize),
    /// The value is not in the sealed form.
    #[error("the value is not sealed")]
    NotSealed,
    /// The value does not open with this key for this org and name: another key (rotated?), another org, or
    /// altered.
    #[error("the sealed value does not open with this settings key (was the key changed?)")]
    Open,
    /// The random source failed.
    #[error("no randomness for a nonce: {0}")]
    Random(String),
}

/// The key. Cheap to clone (the expanded key is shared); its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct SettingsKey {
    cipher: std::sync::Arc<Aes256Gcm>,
}

impl std::fmt::Debug for SettingsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SettingsKey(..)")
    }
}

impl SettingsKey {
    /// The key from the file's text (trimmed): SHA-256 of a domain label and the text, so that any long enough
    /// secret works and the same secret used elsewhere gives another key.
    pub fn from_text(text: &str) -> Result<SettingsKey, SettingsKeyError> {
        let text = text.trim();
        if text.len() < MIN_KEY_TEXT {
            return Err(SettingsKeyError::TooShort(text.len()));
        }
        let mut h = sha2::Sha256::new();
        h.update(b"loupe settings key v1\0");
        h.update(text.as_bytes());
        let cipher = Aes256Gcm::new(&h.finalize());
        Ok(SettingsKey { cipher: std::sync::Arc::new(cipher) })
    }

    /// `value` sealed for header `name` of `org`'s setting.
    pub fn seal(&self, org: Uuid, name: &str, value: &str) -> Result<String, SettingsKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SettingsKeyError::Random(e.to_string()))?;
        let aad = aad(org, name);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: value.as_bytes(), aad: &aad })
            .map_err(|_| SettingsKeyError::Open)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", crate::hex::encode(&bytes)))
    }

    /// The value `stored` seals for header `name` of `org`'s setting.
    pub fn open(&self, org: Uuid, name: &str, stored: &str) -> Result<String, SettingsKeyError> {
        let hex = stored.strip_prefix(SEALED_PREFIX).ok_or(SettingsKeyError::NotSealed)?;
        let bytes = crate::hex::decode(hex).ok_or(SettingsKeyError::Open)?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(SettingsKeyError::Open);
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SettingsKeyError::Open)?;
        let aad = aad(org, name);
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: body, aad: &aad })
            .map_err(|_| SettingsKeyError::Open)?;
        String::from_utf8(plain).map_err(|_| SettingsKeyError::Open)
    }
}

/// Whether `stored` is in the sealed form.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

fn aad(org: Uuid, name: &str) -> Vec<u8> {
    let mut aad = org.as_bytes().to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn a_sealed_value_opens_only_with_its_key_org_and_name() {
        let key = SettingsKey::from_text(KEY).expect("key");
        let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = key.seal(org, "x-api-key", "s3cret-value").expect("seal");
        assert!(is_sealed(&sealed) && !sealed.contains("s3cret"), "{sealed}");
        assert_eq!(key.open(org, "x-api-key", &sealed).expect("open"), "s3cret-value");
        // A fresh nonce each time: the same value never seals the same.
        assert_ne!(key.seal(org, "x-api-key", "s3cret-value").expect("seal"), sealed);
        assert!(matches!(key.open(other, "x-api-key", &sealed), Err(SettingsKeyError::Open)));
        assert!(matches!(key.open(org, "authorization", &sealed), Err(SettingsKeyError::Open)));
        let rotated = SettingsKey::from_text(&KEY.replace('0', "1")).expect("key");
        assert!(matches!(rotated.open(org, "x-api-key", &sealed), Err(SettingsKeyError::Open)));
        // One flipped hex digit anywhere is refused.
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).expect("ascii");
        assert!(matches!(key.open(org, "x-api-key", &altered), Err(SettingsKeyError::Open)));
        assert!(matches!(key.open(org, "x-api-key", "s3cret-value"), Err(SettingsKeyError::NotSealed)));
        for bad in ["sealed1:", "sealed1:zz", "sealed1:00", &format!("{SEALED_PREFIX}{}", "0".repeat(57))] {
            assert!(key.open(org, "x-api-key", bad).is_err(), "{bad}");
        }
        assert!(format!("{key:?}").eq("SettingsKey(..)"));
    }

    #[test]
    fn a_short_key_text_is_refused() {
        assert!(matches!(SettingsKey::from_text("  short \n"), Err(SettingsKeyError::TooShort(5))));
    }
}
