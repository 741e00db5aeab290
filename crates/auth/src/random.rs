//! Operating-system randomness for salts, signing keys, session ids and API keys.
//!
//! Owns the single call into `getrandom`; must not offer a seedable or non-cryptographic generator.

/// The operating system's random source failed; no secret can be generated safely.
#[derive(Debug, thiserror::Error)]
#[error("operating system random source failed: {0}")]
pub struct RandomError(String);

/// Fills `buf` with cryptographically secure random bytes.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

/// Returns `N` cryptographically secure random bytes.
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    fill(&mut buf)?;
    Ok(buf)
}

/// Returns a URL-safe (base64url, unpadded) string encoding `N` random bytes.
pub(crate) fn url_safe_string<const N: usize>() -> Result<String, RandomError> {
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes::<N>()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_differ_between_calls() {
        let a = bytes::<32>().expect("random");
        let b = bytes::<32>().expect("random");
        assert_ne!(a, b);
    }

    #[test]
    fn url_safe_string_has_expected_alphabet_and_length() {
        let s = url_safe_string::<24>().expect("random");
        assert_eq!(s.len(), 32);
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }
}
