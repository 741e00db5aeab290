//! Results sealed for the client, as Pixie's clients ask for them (`encryption_options`): a JWE in compact
//! serialization (RFC 7516) with the content key wrapped by RSA-OAEP-256 for the client's public key (a JWK),
//! the content encrypted with A256GCM and, with `DEF`, deflated first. The vizier encrypts, so the cloud that
//! relays the answer never sees the rows.
//!
//! Owns the JWE format. Must not know what the payload is (an encoded `RowBatchData` to its callers).

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use loupe_proto::pixie::vizierpb::execute_script_request::EncryptionOptions;
use rsa::{BigUint, Oaep, RsaPrivateKey, RsaPublicKey};

/// The key wrap Loupe does.
pub const KEY_ALG: &str = "RSA-OAEP-256";
/// The content encryption Loupe does.
pub const CONTENT_ALG: &str = "A256GCM";
/// The compression Loupe does (raw DEFLATE, RFC 1951), or none when a request names none.
pub const COMPRESSION_ALG: &str = "DEF";

/// Why a result could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum JweError {
    /// The request asks for an algorithm Loupe does not implement.
    #[error("unsupported {what} {name:?}: Loupe encrypts with {supported}")]
    Unsupported {
        /// Which parameter.
        what: &'static str,
        /// What was asked.
        name: String,
        /// What is supported.
        supported: &'static str,
    },
    /// The key is not an RSA public key in JWK form.
    #[error("the encryption key is not an RSA JWK: {0}")]
    BadKey(String),
    /// The cryptography failed (a bad key size, a forged or damaged message).
    #[error("encryption failed: {0}")]
    Crypto(String),
    /// The text is not a JWE of this kind.
    #[error("not a compact JWE: {0}")]
    Malformed(&'static str),
}

/// Seals payloads for one client key. Built once per query.
pub struct Encryptor {
    key: RsaPublicKey,
    /// The protected header, base64url: also the additional authenticated data.
    header: String,
    deflate: bool,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor").field("header", &self.header).finish_non_exhaustive()
    }
}

fn b64(what: &'static str, text: &str) -> Result<Vec<u8>, JweError> {
    B64.decode(text.trim_end_matches('=')).map_err(|_| JweError::BadKey(format!("`{what}` is not base64url")))
}

impl Encryptor {
    /// An encryptor for `options`: `jwk_key` an RSA public key as a JWK, and the algorithms Loupe implements.
    pub fn new(options: &EncryptionOptions) -> Result<Self, JweError> {
        let check = |what, name: &str, supported: &'static str, also_empty: bool| {
            if name == supported || (also_empty && name.is_empty()) {
                Ok(())
            } else {
                Err(JweError::Unsupported { what, name: name.to_owned(), supported })
            }
        };
        check("key algorithm", &options.key_alg, KEY_ALG, false)?;
        check("content algorithm", &options.content_alg, CONTENT_ALG, false)?;
        check("compression", &options.compression_alg, COMPRESSION_ALG, true)?;
        let jwk: serde_json::Value =
            serde_json::from_str(&options.jwk_key).map_err(|e| JweError::BadKey(format!("not JSON: {e}")))?;
        let field = |name: &'static str| {
            jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| JweError::BadKey(format!("no `{name}`")))
        };
        if field("kty")? != "RSA" {
            return Err(JweError::BadKey("`kty` is not RSA".into()));
        }
        let n = BigUint::from_bytes_be(&b64("n", field("n")?)?);
        let e = BigUint::from_bytes_be(&b64("e", field("e")?)?);
        let key = RsaPublicKey::new(n, e).map_err(|e| JweError::BadKey(e.to_string()))?;
        let deflate = !options.compression_alg.is_empty();
        let header = if deflate {
            format!(r#"{{"alg":"{KEY_ALG}","enc":"{CONTENT_ALG}","zip":"{COMPRESSION_ALG}"}}"#)
        } else {
            format!(r#"{{"alg":"{KEY_ALG}","enc":"{CONTENT_ALG}"}}"#)
        };
        Ok(Encryptor { key, header: B64.encode(header), deflate })
    }

    /// `payload` as a compact JWE: header, wrapped key, IV, ciphertext and tag, base64url, joined by dots.
    pub fn encrypt(&self, payload: &[u8]) -> Result<Vec<u8>, JweError> {
        let crypto = |e: &dyn std::fmt::Display| JweError::Crypto(e.to_string());
        let mut cek = [0u8; 32];
        let mut iv = [0u8; 12];
        getrandom::fill(&mut cek).map_err(|e| crypto(&e))?;
        getrandom::fill(&mut iv).map_err(|e| crypto(&e))?;
        let wrapped =
            self.key.encrypt(&mut rsa::rand_core::OsRng, Oaep::new::<sha2::Sha256>(), &cek).map_err(|e| crypto(&e))?;
        let deflated;
        let plain = if self.deflate {
            deflated = deflate(payload).map_err(|e| crypto(&e))?;
            deflated.as_slice()
        } else {
            payload
        };
        let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|e| crypto(&e))?;
        let mut sealed = cipher
            .encrypt(&Nonce::from(iv), Payload { msg: plain, aad: self.header.as_bytes() })
            .map_err(|e| crypto(&e))?;
        let tag = sealed.split_off(sealed.len() - 16);
        let parts = [self.header.clone(), B64.encode(wrapped), B64.encode(iv), B64.encode(sealed), B64.encode(tag)];
        Ok(parts.join(".").into_bytes())
    }
}

fn deflate(payload: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut z = flate2::write::DeflateEncoder::new(Vec::with_capacity(payload.len() / 2), flate2::Compression::fast());
    z.write_all(payload)?;
    z.finish()
}

/// Opens a compact JWE made by [`Encryptor::encrypt`] with the private key: what a client does (Loupe's tests
/// and tools; Pixie's clients use their own JOSE library).
pub fn decrypt(key: &RsaPrivateKey, jwe: &[u8]) -> Result<Vec<u8>, JweError> {
    let text = std::str::from_utf8(jwe).map_err(|_| JweError::Malformed("not text"))?;
    let parts: Vec<&str> = text.split('.').collect();
    let [header, wrapped, iv, sealed, tag] = parts.as_slice() else {
        return Err(JweError::Malformed("not five parts"));
    };
    let decode = |what, t: &str| B64.decode(t).map_err(|_| JweError::Malformed(what));
    let h: serde_json::Value = serde_json::from_slice(&decode("header", header)?)
        .map_err(|_| JweError::Malformed("the header is not JSON"))?;
    if h["alg"] != KEY_ALG || h["enc"] != CONTENT_ALG {
        return Err(JweError::Malformed("other algorithms"));
    }
    let crypto = |e: &dyn std::fmt::Display| JweError::Crypto(e.to_string());
    let cek = key.decrypt(Oaep::new::<sha2::Sha256>(), &decode("key", wrapped)?).map_err(|e| crypto(&e))?;
    let iv: [u8; 12] = decode("iv", iv)?.try_into().map_err(|_| JweError::Malformed("the IV is not 96 bits"))?;
    let mut body = decode("ciphertext", sealed)?;
    body.extend(decode("tag", tag)?);
    let cipher = Aes256Gcm::new_from_slice(&cek).map_err(|e| crypto(&e))?;
    let plain =
        cipher.decrypt(&Nonce::from(iv), Payload { msg: &body, aad: header.as_bytes() }).map_err(|e| crypto(&e))?;
    if h["zip"] == COMPRESSION_ALG {
        use std::io::Read as _;
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(plain.as_slice()).read_to_end(&mut out).map_err(|e| crypto(&e))?;
        return Ok(out);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use rsa::traits::PublicKeyParts as _;

    use super::*;

    fn options(key: &RsaPrivateKey, compression: &str) -> EncryptionOptions {
        let public = key.to_public_key();
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": B64.encode(public.n().to_bytes_be()),
            "e": B64.encode(public.e().to_bytes_be()),
        });
        EncryptionOptions {
            jwk_key: jwk.to_string(),
            key_alg: KEY_ALG.into(),
            content_alg: CONTENT_ALG.into(),
            compression_alg: compression.into(),
        }
    }

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("key")
    }

    #[test]
    fn a_sealed_payload_opens_with_the_private_key_only() {
        let key = key();
        let payload = b"row batch bytes, row batch bytes, row batch bytes".repeat(20);
        for compression in ["DEF", ""] {
            let sealed =
                Encryptor::new(&options(&key, compression)).expect("encryptor").encrypt(&payload).expect("sealed");
            let text = String::from_utf8(sealed.clone()).expect("ascii");
            assert_eq!(text.split('.').count(), 5, "{text}");
            let header = B64.decode(text.split('.').next().unwrap_or_default()).expect("b64");
            let expected_header = if compression.is_empty() {
                r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#
            } else {
                r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#
            };
            assert_eq!(String::from_utf8(header).expect("utf8"), expected_header);
            assert_eq!(decrypt(&key, &sealed).expect("opens"), payload);
            // Another key cannot open it; a flipped ciphertext byte fails authentication.
            assert!(matches!(decrypt(&self::key(), &sealed), Err(JweError::Crypto(_))));
            let mut parts: Vec<String> = text.split('.').map(str::to_owned).collect();
            let mut body = B64.decode(&parts[3]).expect("b64");
            body[0] ^= 1;
            parts[3] = B64.encode(body);
            assert!(matches!(decrypt(&key, parts.join(".").as_bytes()), Err(JweError::Crypto(_))));
        }
    }

    #[test]
    fn other_algorithms_and_keys_are_refused_with_what_is_supported() {
        let key = key();
        let mut o = options(&key, "DEF");
        o.content_alg = "A128CBC-HS256".into();
        assert_eq!(
            Encryptor::new(&o).expect_err("refused").to_string(),
            "unsupported content algorithm \"A128CBC-HS256\": Loupe encrypts with A256GCM"
        );
        let mut o = options(&key, "DEF");
        o.jwk_key = r#"{"kty":"EC","crv":"P-256"}"#.into();
        assert_eq!(
            Encryptor::new(&o).expect_err("refused").to_string(),
            "the encryption key is not an RSA JWK: `kty` is not RSA"
        );
    }
}
