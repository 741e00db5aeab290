//! Password hashing (argon2id, PHC strings) and the policy a new password must satisfy.
//!
//! Owns the argon2 parameters and the password policy. Must not store hashes or know about users: the
//! metastore keeps the PHC string, the API decides when to call these functions.

use std::sync::OnceLock;

use argon2::password_hash::{self, PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::random::{self, RandomError};

/// Argon2id memory cost in KiB: 19 MiB, the OWASP Password Storage Cheat Sheet minimum for argon2id.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id iteration count (OWASP: t=2 with m=19 MiB).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (OWASP: p=1). One lane keeps a login on one core of a shared control plane.
pub const ARGON2_PARALLELISM: u32 = 1;
/// Largest memory cost accepted from a *stored* hash (256 MiB), so a corrupted or hostile row cannot make
/// verification allocate without bound.
pub const MAX_STORED_MEMORY_KIB: u32 = 256 * 1024;

/// Minimum password length, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length, in characters (bounds the work an unauthenticated caller can request).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Passwords refused outright, compared case-insensitively. Deliberately short: the length rule does most of
/// the work, this list catches the defaults people type on a fresh install.
const COMMON_PASSWORDS: &[&str] = &[
    "admin",
    "administrator",
    "password",
    "password1",
    "password123",
    "passw0rd",
    "changeme",
    "changeme1",
    "letmein",
    "welcome",
    "welcome1",
    "12345678",
    "123456789",
    "1234567890",
    "87654321",
    "11111111",
    "00000000",
    "qwertyui",
    "qwerty123",
    "abcdefgh",
    "abcd1234",
    "iloveyou",
    "loupe",
    "loupeadmin",
    "pixie",
    "pixieadmin",
    "admin123",
    "admin1234",
    "adminadmin",
];

/// Errors from hashing or verifying a password.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored hash is not a PHC string this crate can verify (corrupt row, unknown algorithm, bad params).
    #[error("malformed stored password hash: {0}")]
    MalformedHash(String),
    /// The argon2 computation itself failed (should not happen with the fixed parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// No salt could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Why a proposed new password was refused. Messages are meant to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// Equal to the account's email address or its local part.
    #[error("password must not be the account's email address")]
    SameAsEmail,
    /// On the list of common or default passwords.
    #[error("password is too common; choose one that is not a default or widely used password")]
    TooCommon,
    /// Only whitespace characters.
    #[error("password must not consist only of whitespace")]
    Blank,
}

fn hasher() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_PARALLELISM, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `plain` with argon2id (v19, m=19 MiB, t=2, p=1) and a fresh 16-byte random salt.
///
/// Returns a PHC string such as `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, which carries its own
/// parameters, so they can be raised later without invalidating stored hashes.
pub fn hash_password(plain: &str) -> Result<String, PasswordError> {
    let salt_bytes = random::bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
    let hash = hasher()?.hash_password(plain.as_bytes(), &salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(hash.to_string())
}

/// Checks `plain` against a stored argon2id PHC string.
///
/// Returns `Ok(false)` for a wrong password and an error for a hash that cannot be parsed, uses another
/// algorithm or asks for more than [`MAX_STORED_MEMORY_KIB`]. The final comparison is constant-time
/// (`password_hash::Output` compares without early exit).
pub fn verify_password(plain: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::MalformedHash(e.to_string()))?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordError::MalformedHash(format!("unsupported algorithm {}", parsed.algorithm)));
    }
    let params = Params::try_from(&parsed).map_err(|e| PasswordError::MalformedHash(e.to_string()))?;
    if params.m_cost() > MAX_STORED_MEMORY_KIB {
        return Err(PasswordError::MalformedHash(format!(
            "memory cost {} KiB exceeds the {MAX_STORED_MEMORY_KIB} KiB limit",
            params.m_cost()
        )));
    }
    if parsed.hash.is_none() {
        return Err(PasswordError::MalformedHash("missing hash output".to_owned()));
    }
    match Argon2::default().verify_password(plain.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::MalformedHash(e.to_string())),
    }
}

/// Spends the same time as [`verify_password`] against a throwaway hash, always "failing".
///
/// The API calls this when a login names an unknown email, so response time does not reveal which accounts
/// exist.
pub fn verify_dummy_password(plain: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    if let Some(phc) = DUMMY.get_or_init(|| hash_password("loupe-dummy-password-for-timing").ok()) {
        let _ = verify_password(plain, phc);
    }
}

/// Checks that `plain` is acceptable as a new password for the account `email`.
///
/// Rules: at least [`MIN_PASSWORD_CHARS`] and at most [`MAX_PASSWORD_CHARS`] characters, not blank, not the
/// email address or its local part (case-insensitive), not on a short list of defaults such as `admin` or
/// `password`. The bootstrap admin's default password fails this on purpose: it must be changed.
pub fn validate_new_password(plain: &str, email: &str) -> Result<(), PolicyError> {
    let chars = plain.chars().count();
    if chars > MAX_PASSWORD_CHARS {
        return Err(PolicyError::TooLong { max: MAX_PASSWORD_CHARS });
    }
    if plain.trim().is_empty() && !plain.is_empty() && chars >= MIN_PASSWORD_CHARS {
        return Err(PolicyError::Blank);
    }
    let lowered = plain.trim().to_lowercase();
    if COMMON_PASSWORDS.contains(&lowered.as_str()) {
        return Err(PolicyError::TooCommon);
    }
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    if !email.is_empty() && (lowered == email || (!local.is_empty() && lowered == local)) {
        return Err(PolicyError::SameAsEmail);
    }
    if chars < MIN_PASSWORD_CHARS {
        return Err(PolicyError::TooShort { min: MIN_PASSWORD_CHARS });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips() {
        let phc = hash_password("correct horse battery staple").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse battery staple", &phc).expect("verify"));
    }

    #[test]
    fn wrong_password_is_false_not_error() {
        let phc = hash_password("right password").expect("hash");
        assert!(!verify_password("wrong password", &phc).expect("verify"));
        assert!(!verify_password("", &phc).expect("verify"));
    }

    #[test]
    fn same_password_hashes_differently_each_time() {
        let a = hash_password("same password").expect("hash");
        let b = hash_password("same password").expect("hash");
        assert_ne!(a, b, "salts must be random");
    }

    #[test]
    fn malformed_stored_hash_is_an_error() {
        for bad in ["", "not a hash", "$argon2id$", "$argon2id$v=19$m=19456,t=2,p=1$", "$$$$", "$argon2id$v=19$m=x"] {
            assert!(
                matches!(verify_password("pw", bad), Err(PasswordError::MalformedHash(_))),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn other_algorithms_are_refused() {
        let phc = hash_password("pw").expect("hash").replacen("argon2id", "argon2i", 1);
        assert!(matches!(verify_password("pw", &phc), Err(PasswordError::MalformedHash(_))));
    }

    #[test]
    fn huge_stored_memory_cost_is_refused() {
        let phc = hash_password("pw").expect("hash").replacen("m=19456", "m=4194304", 1);
        let err = verify_password("pw", &phc).expect_err("must refuse");
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn dummy_verify_does_not_panic() {
        verify_dummy_password("anything");
    }

    #[test]
    fn policy_accepts_reasonable_password() {
        assert_eq!(validate_new_password("long enough pw", "a@b.com"), Ok(()));
    }

    #[test]
    fn policy_rejections() {
        assert_eq!(validate_new_password("short", "a@b.com"), Err(PolicyError::TooShort { min: 8 }));
        assert_eq!(validate_new_password("admin", "a@b.com"), Err(PolicyError::TooCommon));
        assert_eq!(validate_new_password("Password", "a@b.com"), Err(PolicyError::TooCommon));
        assert_eq!(validate_new_password("12345678", "a@b.com"), Err(PolicyError::TooCommon));
        assert_eq!(validate_new_password("Alice@Example.com", "alice@example.com"), Err(PolicyError::SameAsEmail));
        assert_eq!(validate_new_password("alicealice", "alicealice@example.com"), Err(PolicyError::SameAsEmail));
        assert_eq!(validate_new_password("          ", "a@b.com"), Err(PolicyError::Blank));
        let long = "x".repeat(MAX_PASSWORD_CHARS + 1);
        assert_eq!(validate_new_password(&long, "a@b.com"), Err(PolicyError::TooLong { max: MAX_PASSWORD_CHARS }));
    }

    #[test]
    fn policy_counts_characters_not_bytes() {
        // 4 characters, 8+ bytes.
        assert_eq!(validate_new_password("ééééé", "a@b.com"), Err(PolicyError::TooShort { min: 8 }));
        assert_eq!(validate_new_password("éééééééé", "a@b.com"), Ok(()));
    }

    #[test]
    fn policy_messages_are_lowercase_and_clear() {
        let msg = PolicyError::TooShort { min: 8 }.to_string();
        assert_eq!(msg, "password must be at least 8 characters long");
    }
}
