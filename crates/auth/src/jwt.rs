//! The `jsonwebtoken` crypto provider Loupe installs: HS256 (HMAC-SHA256, RustCrypto's `hmac`) and nothing else.
//!
//! Owns the one algorithm tokens may use. Must not touch: token claims or their checks (`token`), keys at rest.
//!
//! Why a provider of our own rather than the crate's `rust_crypto` feature: that feature links RSA, P-256, P-384
//! and Ed25519 (31 more crates) that Loupe never uses, and `aws_lc_rs` needs cmake. This one uses the `hmac` and
//! `sha2` the workspace already builds, and it refuses every other algorithm at the crypto layer as well, a second
//! wall behind the header check in `TokenSigner::verify`.
//!
//! `jsonwebtoken` looks its provider up process-wide, so [`install`] runs (once) before any sign or verify. If
//! another provider was installed first it is kept: every provider implements HS256 the same way.

use std::sync::Once;

use hmac::{Hmac, KeyInit as _, Mac as _};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Signer, Verifier};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::Sha256;

/// HMAC-SHA256 keyed once, cloned per message.
struct Hs256(Hmac<Sha256>);

impl Hs256 {
    fn new(key: &[u8]) -> Result<Self> {
        Ok(Hs256(Hmac::new_from_slice(key).map_err(|_| ErrorKind::InvalidKeyFormat)?))
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    /// Constant-time comparison (`verify_slice`).
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        let mut mac = self.0.clone();
        mac.update(msg);
        mac.verify_slice(signature).map_err(|_| SignatureError::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.as_bytes())?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    match algorithm {
        Algorithm::HS256 => Ok(Box::new(Hs256::new(key.try_get_as_bytes()?)?)),
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

/// HS256 only; no JWK support (Loupe never reads JWKs).
static HS256_ONLY: CryptoProvider =
    CryptoProvider { signer_factory: signer, verifier_factory: verifier, key_utils: KeyUtils::new_unimplemented() };

/// Makes [`HS256_ONLY`] the process's `jsonwebtoken` provider unless one is already installed.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An `Err` means another provider won the race; it serves HS256 just as well.
        let _ = HS256_ONLY.install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hs256_is_provided() {
        let encoding = EncodingKey::from_secret(&[7u8; 32]).expect("key");
        let decoding = DecodingKey::from_secret(&[7u8; 32]).expect("key");
        assert!(signer(&Algorithm::HS256, &encoding).is_ok());
        assert!(verifier(&Algorithm::HS256, &decoding).is_ok());
        for other in [Algorithm::HS384, Algorithm::HS512, Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            assert!(signer(&other, &encoding).is_err(), "{other:?} signer");
            assert!(verifier(&other, &decoding).is_err(), "{other:?} verifier");
        }
    }

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signer = Hs256::new(b"Jefe").expect("key");
        let mac = signer.try_sign(b"what do ya want for nothing?").expect("sign");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(Verifier::verify(&signer, b"what do ya want for nothing?", &mac).is_ok());
        assert!(Verifier::verify(&signer, b"what do ya want for nothing!", &mac).is_err());
    }
}
