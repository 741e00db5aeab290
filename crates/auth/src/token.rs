//! Signed, expiring session tokens: HS256 JWTs with Pixie-style claims, plus revocation-aware validation and
//! refresh on top of a [`SessionCache`].
//!
//! Owns the token format, signing key handling and the claim checks. Must not decide who may log in or what a
//! role may do (that is the API's job) and must not store sessions (the metastore's).
//!
//! Format: compact JWS (RFC 7515) with `HS256`, encoded, signed and verified by the `jsonwebtoken` crate over the
//! HS256-only provider in `jwt`. Verification rejects any `alg` but `HS256` (so `none` and algorithm-confusion
//! tricks fail), compares the MAC in constant time, and only then trusts the claims. The claim checks (`iss`,
//! `aud`, `exp`, `nbf` with leeway) stay here because they take the caller's `now`, which refresh and the tests
//! rely on, and report the offending value.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::random::{self, RandomError};
use crate::sessions::{SessionCache, SessionError};

/// The `iss` claim of every Loupe token.
pub const ISSUER: &str = "loupe";
/// The only accepted `alg`.
pub const ALGORITHM: &str = "HS256";
/// Minimum signing key length in bytes (256 bits, the HS256 output size, per RFC 7518 §3.2).
pub const MIN_KEY_BYTES: usize = 32;
/// Clock skew tolerated on `exp` and `nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(5);
/// Tokens longer than this are rejected before any decoding, bounding the work an attacker can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The scope carried by user tokens (Pixie's `Scopes = "user"`).
pub const USER_SCOPE: &str = "user";

/// Errors from signing keys, issuing and verifying tokens.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON with the expected claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm other than HS256 (including `none`).
    #[error("unsupported token algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The signature does not match: the token was tampered with or signed by another key.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` (plus leeway) is in the past.
    #[error("token expired at {exp}")]
    Expired {
        /// The token's `exp`, Unix seconds.
        exp: i64,
    },
    /// `nbf` (minus leeway) is in the future.
    #[error("token not valid before {nbf}")]
    NotYetValid {
        /// The token's `nbf`, Unix seconds.
        nbf: i64,
    },
    /// `aud` is not this deployment's domain.
    #[error("token audience {0:?} does not match this deployment")]
    WrongAudience(String),
    /// `iss` is not `loupe`.
    #[error("token issuer {0:?} is not loupe")]
    WrongIssuer(String),
    /// A signing key that is too short or not valid base64.
    #[error("invalid signing key: {0}")]
    InvalidKey(String),
    /// A token was asked for with a zero or out-of-range lifetime.
    #[error("invalid token lifetime: {0}")]
    InvalidTtl(String),
    /// Claims could not be serialised (should not happen).
    #[error("cannot encode token: {0}")]
    Encode(String),
    /// No session id could be generated.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Why a token was not accepted by [`TokenSigner::validate`] or [`TokenSigner::refresh`].
#[derive(Debug, thiserror::Error)]
pub enum ValidationError {
    /// The token itself is bad (see [`TokenError`]): answer 401.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The session was revoked (logout, logout everywhere, password change): answer 401.
    #[error("session has been revoked")]
    Revoked,
    /// Revocation state could not be read: fail closed, answer 503.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The session reached its absolute lifetime (counted from the login that started it): refresh refused,
    /// answer 401 and log in again.
    #[error("session reached its maximum lifetime; log in again")]
    LifetimeExceeded,
}

impl ValidationError {
    /// True when the failure is the session store's, not the caller's (map to 503, not 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ValidationError::Session(_))
    }
}

/// The HMAC key tokens are signed with. There is no default: generate one at setup and keep it secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(<{} bytes redacted>)", self.0.len())
    }
}

impl SigningKey {
    /// A new random 32-byte key.
    pub fn generate() -> Result<Self, RandomError> {
        Ok(SigningKey(random::bytes::<MIN_KEY_BYTES>()?.to_vec()))
    }

    /// Wraps raw key bytes; at least [`MIN_KEY_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TokenError> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(TokenError::InvalidKey(format!(
                "key is {} bytes, at least {MIN_KEY_BYTES} are required",
                bytes.len()
            )));
        }
        Ok(SigningKey(bytes.to_vec()))
    }

    /// Decodes a key stored as base64 (standard or URL-safe alphabet, padding optional; surrounding
    /// whitespace such as a secret file's trailing newline is ignored).
    pub fn from_base64(encoded: &str) -> Result<Self, TokenError> {
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        let lenient = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
        let encoded = encoded.trim();
        let bytes = GeneralPurpose::new(&base64::alphabet::STANDARD, lenient)
            .decode(encoded)
            .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient).decode(encoded))
            .map_err(|e| TokenError::InvalidKey(format!("not base64: {e}")))?;
        Self::from_bytes(&bytes)
    }

    /// Standard padded base64 of the key, for storing in a secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    fn encoding_key(&self) -> Result<EncodingKey, TokenError> {
        EncodingKey::from_secret(&self.0).map_err(|e| TokenError::InvalidKey(e.to_string()))
    }

    fn decoding_key(&self) -> Result<DecodingKey, TokenError> {
        DecodingKey::from_secret(&self.0).map_err(|e| TokenError::InvalidKey(e.to_string()))
    }

    /// A credential for `purpose` derived from this key (HMAC-SHA256 of the purpose, base64url): what processes
    /// sharing the key prove to each other with, such as the gateway to the services. Reveals nothing of the
    /// key, and differs per purpose, so it cannot be used to sign tokens.
    pub fn derive_credential(&self, purpose: &str) -> Result<String, TokenError> {
        crate::jwt::install();
        let message = [b"loupe derived credential\0".as_slice(), purpose.as_bytes()].concat();
        jsonwebtoken::crypto::sign(&message, &self.encoding_key()?, Algorithm::HS256)
            .map_err(|e| TokenError::InvalidKey(e.to_string()))
    }
}

/// A user's role in their org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, keys and clusters of the org.
    Admin,
    /// Uses the org's clusters.
    Member,
}

/// Who a new session is for: the non-registered claims of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserClaims {
    /// The user's id (`sub`).
    pub user_id: String,
    /// The user's org id (`OrgID`), empty if the user has no org yet.
    pub org_id: String,
    /// The user's email (`Email`).
    pub email: String,
    /// Scopes (`Scopes`), `["user"]` for user sessions.
    pub scopes: Vec<String>,
    /// Whether the session was obtained with an API key (`IsAPIUser`).
    pub is_api_user: bool,
    /// The user's role (`Role`).
    pub role: Role,
    /// Whether the user must change their password before doing anything else (`MustChangePassword`).
    pub must_change_password: bool,
}

impl UserClaims {
    /// A normal interactive user session with the `user` scope.
    pub fn user(user_id: impl Into<String>, org_id: impl Into<String>, email: impl Into<String>, role: Role) -> Self {
        Self {
            user_id: user_id.into(),
            org_id: org_id.into(),
            email: email.into(),
            scopes: vec![USER_SCOPE.to_owned()],
            is_api_user: false,
            role,
            must_change_password: false,
        }
    }
}

/// All claims of a Loupe token, with Pixie's JSON names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Audience: the deployment's domain.
    pub aud: String,
    /// Issuer: always [`ISSUER`].
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// Session id; stable across refreshes, the unit of revocation.
    pub jti: String,
    /// The user's org id.
    #[serde(rename = "OrgID", default)]
    pub org_id: String,
    /// The user's email.
    #[serde(rename = "Email", default)]
    pub email: String,
    /// Scopes, serialised comma-joined like Pixie (`"user"`).
    #[serde(rename = "Scopes", default, with = "scopes_csv")]
    pub scopes: Vec<String>,
    /// Whether the session came from an API key.
    #[serde(rename = "IsAPIUser", default)]
    pub is_api_user: bool,
    /// The user's role.
    #[serde(rename = "Role")]
    pub role: Role,
    /// Whether only the password-change routes may be used.
    #[serde(rename = "MustChangePassword", default)]
    pub must_change_password: bool,
    /// When the user authenticated (logged in) to start this session, Unix seconds (OpenID Connect's name).
    /// Refreshes keep it, so the session's absolute lifetime counts from the login. 0 in tokens issued before
    /// it existed: those cannot be refreshed.
    #[serde(default)]
    pub auth_time: i64,
}

impl Claims {
    /// The identity part of these claims, e.g. to issue a new session for the same user.
    pub fn user_claims(&self) -> UserClaims {
        UserClaims {
            user_id: self.sub.clone(),
            org_id: self.org_id.clone(),
            email: self.email.clone(),
            scopes: self.scopes.clone(),
            is_api_user: self.is_api_user,
            role: self.role,
            must_change_password: self.must_change_password,
        }
    }
}

mod scopes_csv {
    use serde::{Deserialize as _, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(scopes: &[String], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&scopes.join(","))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let joined = String::deserialize(d)?;
        Ok(joined.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}

/// A freshly signed token with the claims it carries (the API stores `claims.jti` and `claims.exp`).
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWT to hand to the client.
    pub token: String,
    /// The claims inside it.
    pub claims: Claims,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken").field("token", &"<redacted>").field("claims", &self.claims).finish()
    }
}

/// The one header field read before `jsonwebtoken` parses the token, so that a refused algorithm is named in the
/// error even when the crate does not know it (`none`, `hs256`).
#[derive(Deserialize)]
struct AlgorithmOnly {
    alg: String,
}

/// What `jsonwebtoken` checks on decode: the algorithm and signature, and the claims' JSON. Times, issuer and
/// audience are checked by `TokenSigner::verify` against the caller's clock, so the crate's own (wall-clock)
/// checks are off and no claim is required by it (`Claims` requires its fields itself).
fn signature_only_validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// Default absolute session lifetime: 30 days from the login, however often the session is refreshed (OWASP
/// ASVS 3.3.2 asks for periodic re-authentication of sessions that stay logged in; 30 days is its level 2).
pub const DEFAULT_MAX_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Issues and verifies tokens for one deployment (one key, one audience).
#[derive(Debug, Clone)]
pub struct TokenSigner {
    key: SigningKey,
    audience: String,
    leeway: Duration,
    max_lifetime: Duration,
}

impl TokenSigner {
    /// A signer for tokens whose `aud` is `audience` (the deployment's domain), with [`DEFAULT_LEEWAY`] and
    /// [`DEFAULT_MAX_SESSION_LIFETIME`].
    pub fn new(key: SigningKey, audience: impl Into<String>) -> Self {
        Self { key, audience: audience.into(), leeway: DEFAULT_LEEWAY, max_lifetime: DEFAULT_MAX_SESSION_LIFETIME }
    }

    /// Replaces the absolute session lifetime: no token of a session expires later than its `auth_time` plus
    /// this, and refreshing past it is refused.
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime;
        self
    }

    /// The absolute session lifetime.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// The key tokens are signed with (to derive credentials from, see [`SigningKey::derive_credential`]).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Replaces the clock-skew leeway applied to `exp` and `nbf`.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The audience this signer issues for and accepts.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Starts a new session for `user`: a random `jti`, `iat = nbf = auth_time = now`, `exp = now + ttl`, capped
    /// at the absolute lifetime.
    pub fn issue(&self, user: &UserClaims, ttl: Duration, now: i64) -> Result<IssuedToken, TokenError> {
        let jti = random::url_safe_string::<16>()?;
        self.sign_session(user, jti, ttl, now, now)
    }

    /// Re-signs an existing session (same `jti`, identity and `auth_time`) with fresh times; what
    /// [`TokenSigner::refresh`] uses after its checks. Callers must have verified `claims` first.
    pub fn reissue(&self, claims: &Claims, ttl: Duration, now: i64) -> Result<IssuedToken, TokenError> {
        self.sign_session(&claims.user_claims(), claims.jti.clone(), ttl, now, claims.auth_time)
    }

    /// The last second a session that started at `auth_time` may be used.
    pub fn session_deadline(&self, auth_time: i64) -> i64 {
        auth_time.saturating_add(i64::try_from(self.max_lifetime.as_secs()).unwrap_or(i64::MAX))
    }

    fn sign_session(
        &self,
        user: &UserClaims,
        jti: String,
        ttl: Duration,
        now: i64,
        auth_time: i64,
    ) -> Result<IssuedToken, TokenError> {
        let secs = i64::try_from(ttl.as_secs()).map_err(|_| TokenError::InvalidTtl(format!("{ttl:?} is too long")))?;
        if secs <= 0 {
            return Err(TokenError::InvalidTtl(format!("{ttl:?} is shorter than one second")));
        }
        let exp = now.checked_add(secs).ok_or_else(|| TokenError::InvalidTtl(format!("{ttl:?} overflows")))?;
        let exp = exp.min(self.session_deadline(auth_time));
        if exp <= now {
            return Err(TokenError::InvalidTtl("the session has reached its maximum lifetime".to_owned()));
        }
        let claims = Claims {
            aud: self.audience.clone(),
            iss: ISSUER.to_owned(),
            sub: user.user_id.clone(),
            exp,
            iat: now,
            nbf: now,
            jti,
            org_id: user.org_id.clone(),
            email: user.email.clone(),
            scopes: user.scopes.clone(),
            is_api_user: user.is_api_user,
            role: user.role,
            must_change_password: user.must_change_password,
            auth_time,
        };
        let token = self.sign(&claims)?;
        Ok(IssuedToken { token, claims })
    }

    /// Signs `claims` exactly as given. Prefer [`TokenSigner::issue`]; this exists for tests and tools.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        crate::jwt::install();
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key.encoding_key()?)
            .map_err(|e| TokenError::Encode(e.to_string()))
    }

    /// Checks the signature and claims of `token` at time `now` (Unix seconds). Does not consult revocation;
    /// use [`TokenSigner::validate`] for requests.
    ///
    /// Order: shape, header `alg`, signature (constant-time, by `jsonwebtoken`), then `iss`, `aud`, `exp`, `nbf`.
    /// Never panics.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed(format!("longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated segments".to_owned()));
        };
        let header = URL_SAFE_NO_PAD
            .decode(header_b64)
            .map_err(|e| TokenError::Malformed(format!("header is not base64url: {e}")))?;
        let header: AlgorithmOnly =
            serde_json::from_slice(&header).map_err(|e| TokenError::Malformed(format!("header: {e}")))?;
        if header.alg != ALGORITHM {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }

        crate::jwt::install();
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key.decoding_key()?, &signature_only_validation())
            .map_err(|err| match err.kind() {
                // The header was read above, and the claims are decoded only once the signature matched: a
                // base64 failure here is the signature segment's.
                ErrorKind::InvalidSignature | ErrorKind::Base64(_) => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => {
                    TokenError::UnsupportedAlgorithm(ALGORITHM.to_owned())
                }
                _ => TokenError::Malformed(err.to_string()),
            })?
            .claims;

        if claims.iss != ISSUER {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience(claims.aud));
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        if now > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired { exp: claims.exp });
        }
        if now.saturating_add(leeway) < claims.nbf {
            return Err(TokenError::NotYetValid { nbf: claims.nbf });
        }
        Ok(claims)
    }

    /// [`TokenSigner::verify`] plus the revocation checks: the session `jti` is not revoked and the token was
    /// not issued before the user's "revoke all" cut-off. Fails closed: if the cache is unreachable the result
    /// is [`ValidationError::Session`], never success.
    pub async fn validate(&self, token: &str, now: i64, cache: &dyn SessionCache) -> Result<Claims, ValidationError> {
        let claims = self.verify(token, now)?;
        ensure_not_revoked(&claims, cache).await?;
        Ok(claims)
    }

    /// Extends a valid, unrevoked session: same `jti`, identity and `auth_time`, `exp = now + ttl` capped at the
    /// absolute lifetime. [`ValidationError::LifetimeExceeded`] once that is reached (or for a token without
    /// `auth_time`): refreshing cannot keep a session alive past it.
    ///
    /// When the API later revokes the session it must pass the latest `exp` it issued for that `jti`.
    pub async fn refresh(
        &self,
        token: &str,
        ttl: Duration,
        now: i64,
        cache: &dyn SessionCache,
    ) -> Result<IssuedToken, ValidationError> {
        let claims = self.validate(token, now, cache).await?;
        if claims.auth_time <= 0 || now >= self.session_deadline(claims.auth_time) {
            return Err(ValidationError::LifetimeExceeded);
        }
        // A valid token is at or after the user's cut-off, so stamping the renewal no earlier than the token it
        // renews keeps it valid, even in the second a "revoke all" put its cut-off ahead of the clock.
        Ok(self.reissue(&claims, ttl, now.max(claims.iat))?)
    }
}

/// The time to stamp a new session of `user_id` with: `now`, or the user's "revoke all" cut-off when that is
/// still ahead (a password change sets it to the next second, token times being whole seconds), so that a
/// session issued in that second is not born revoked by [`ensure_not_revoked`]. Within the verifier's leeway.
pub async fn session_issue_time(cache: &dyn SessionCache, user_id: &str, now: i64) -> Result<i64, SessionError> {
    Ok(cache.user_revoked_before(user_id).await?.map_or(now, |cutoff| now.max(cutoff)))
}

/// Fails with [`ValidationError::Revoked`] if the session was revoked or the token predates the user's
/// "revoke all" cut-off (`iat < before_ts`; a token issued in the cut-off second itself stays valid, so the
/// token handed out by a password change survives it).
pub async fn ensure_not_revoked(claims: &Claims, cache: &dyn SessionCache) -> Result<(), ValidationError> {
    if cache.is_revoked(&claims.jti).await? {
        return Err(ValidationError::Revoked);
    }
    if let Some(before) = cache.user_revoked_before(&claims.sub).await?
        && claims.iat < before
    {
        return Err(ValidationError::Revoked);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sessions::InMemorySessionCache;

    const NOW: i64 = 1_750_000_000;
    const HOUR: Duration = Duration::from_secs(3600);

    fn signer() -> TokenSigner {
        TokenSigner::new(SigningKey::from_bytes(&[7u8; 32]).expect("key"), "loupe.example.com")
    }

    fn user() -> UserClaims {
        UserClaims::user("user-1", "org-1", "alice@example.com", Role::Admin)
    }

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn issue_then_verify_round_trips() {
        let s = signer();
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        let claims = s.verify(&issued.token, NOW + 10).expect("verify");
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.sub, "user-1");
        assert_eq!(claims.iss, "loupe");
        assert_eq!(claims.aud, "loupe.example.com");
        assert_eq!(claims.exp, NOW + 3600);
        assert_eq!(claims.iat, NOW);
        assert_eq!(claims.nbf, NOW);
        assert_eq!(claims.scopes, vec!["user".to_owned()]);
        assert_eq!(claims.role, Role::Admin);
        assert!(!claims.jti.is_empty());
    }

    #[test]
    fn claims_use_pixie_json_names() {
        let issued = signer().issue(&user(), HOUR, NOW).expect("issue");
        let payload = issued.token.split('.').nth(1).expect("payload");
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
        for field in
            ["aud", "iss", "sub", "exp", "iat", "nbf", "jti", "OrgID", "Email", "IsAPIUser", "MustChangePassword"]
        {
            assert!(json.get(field).is_some(), "missing {field} in {json}");
        }
        assert_eq!(json["Scopes"], "user");
        assert_eq!(json["Role"], "admin");
        let header = issued.token.split('.').next().expect("header");
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    }

    #[test]
    fn each_session_gets_a_new_jti() {
        let s = signer();
        let a = s.issue(&user(), HOUR, NOW).expect("issue");
        let b = s.issue(&user(), HOUR, NOW).expect("issue");
        assert_ne!(a.claims.jti, b.claims.jti);
    }

    #[test]
    fn expired_token_is_rejected_after_leeway() {
        let s = signer();
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        assert!(s.verify(&issued.token, NOW + 3600 + 5).is_ok(), "within leeway");
        assert!(
            matches!(s.verify(&issued.token, NOW + 3600 + 6), Err(TokenError::Expired { exp }) if exp == NOW + 3600)
        );
    }

    #[test]
    fn not_yet_valid_token_is_rejected_beyond_leeway() {
        let s = signer();
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        assert!(s.verify(&issued.token, NOW - 5).is_ok(), "within leeway");
        assert!(matches!(s.verify(&issued.token, NOW - 6), Err(TokenError::NotYetValid { nbf }) if nbf == NOW));
    }

    #[test]
    fn tampered_claims_fail_signature() {
        let s = signer();
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        let mut claims = issued.claims.clone();
        claims.role = Role::Admin;
        claims.sub = "someone-else".to_owned();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("json"));
        let mut parts: Vec<&str> = issued.token.split('.').collect();
        parts[1] = &forged_payload;
        assert!(matches!(s.verify(&parts.join("."), NOW), Err(TokenError::BadSignature)));
    }

    #[test]
    fn tampered_signature_fails() {
        let s = signer();
        let token = s.issue(&user(), HOUR, NOW).expect("issue").token;
        let (rest, sig) = token.rsplit_once('.').expect("sig");
        let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).expect("b64");
        sig_bytes[0] ^= 1;
        let forged = format!("{rest}.{}", URL_SAFE_NO_PAD.encode(&sig_bytes));
        assert!(matches!(s.verify(&forged, NOW), Err(TokenError::BadSignature)));
        assert!(matches!(s.verify(&format!("{rest}."), NOW), Err(TokenError::BadSignature)));
        assert!(matches!(s.verify(&format!("{rest}.!!"), NOW), Err(TokenError::BadSignature)));
    }

    #[test]
    fn other_key_fails_signature() {
        let token = signer().issue(&user(), HOUR, NOW).expect("issue").token;
        let other = TokenSigner::new(SigningKey::generate().expect("key"), "loupe.example.com");
        assert!(matches!(other.verify(&token, NOW), Err(TokenError::BadSignature)));
    }

    #[test]
    fn alg_none_and_others_are_rejected() {
        let s = signer();
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        let payload = issued.token.split('.').nth(1).expect("payload");
        for alg in ["none", "None", "NONE", "HS384", "HS512", "RS256", "hs256", ""] {
            let header = b64(&format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            for sig in ["", "AAAA"] {
                let token = format!("{header}.{payload}.{sig}");
                assert!(
                    matches!(s.verify(&token, NOW), Err(TokenError::UnsupportedAlgorithm(ref a)) if a == alg),
                    "alg {alg:?} accepted"
                );
            }
        }
        let no_alg = format!("{}.{payload}.", b64(r#"{"typ":"JWT"}"#));
        assert!(matches!(s.verify(&no_alg, NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn wrong_audience_and_issuer_are_rejected() {
        let s = signer();
        let elsewhere = TokenSigner::new(SigningKey::from_bytes(&[7u8; 32]).expect("key"), "other.example.com");
        let token = elsewhere.issue(&user(), HOUR, NOW).expect("issue").token;
        assert!(matches!(s.verify(&token, NOW), Err(TokenError::WrongAudience(a)) if a == "other.example.com"));

        let mut claims = s.issue(&user(), HOUR, NOW).expect("issue").claims;
        claims.iss = "PL".to_owned();
        let token = s.sign(&claims).expect("sign");
        assert!(matches!(s.verify(&token, NOW), Err(TokenError::WrongIssuer(i)) if i == "PL"));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let s = signer();
        let good = s.issue(&user(), HOUR, NOW).expect("issue").token;
        let (_, rest) = good.split_once('.').expect("parts");
        let cases = [
            String::new(),
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{good}.extra"),
            format!("!!!.{rest}"),
            format!("{}.{rest}", b64("not json")),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ];
        for token in cases {
            assert!(matches!(s.verify(&token, NOW), Err(TokenError::Malformed(_))), "{token:?} not malformed");
        }
        // Validly signed but claims missing required fields.
        crate::jwt::install();
        let key = s.key.encoding_key().expect("key");
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &serde_json::json!({"sub": "x"}), &key).expect("sign");
        assert!(matches!(s.verify(&token, NOW), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn zero_or_huge_ttl_is_refused() {
        let s = signer();
        assert!(matches!(s.issue(&user(), Duration::ZERO, NOW), Err(TokenError::InvalidTtl(_))));
        assert!(matches!(s.issue(&user(), Duration::from_millis(999), NOW), Err(TokenError::InvalidTtl(_))));
        assert!(matches!(s.issue(&user(), Duration::MAX, NOW), Err(TokenError::InvalidTtl(_))));
        assert!(matches!(s.issue(&user(), Duration::from_secs(10), i64::MAX), Err(TokenError::InvalidTtl(_))));
    }

    #[test]
    fn signing_key_base64_round_trip_and_minimum_length() {
        let key = SigningKey::generate().expect("key");
        let encoded = key.to_base64();
        let decoded = SigningKey::from_base64(&format!("{encoded}\n")).expect("decode");
        assert_eq!(decoded.0, key.0);
        let url_safe = URL_SAFE_NO_PAD.encode(&key.0);
        assert_eq!(SigningKey::from_base64(&url_safe).expect("url-safe").0, key.0);
        assert!(matches!(SigningKey::from_base64(&STANDARD.encode([1u8; 31])), Err(TokenError::InvalidKey(_))));
        assert!(matches!(SigningKey::from_base64("not base64 at all!"), Err(TokenError::InvalidKey(_))));
        assert!(matches!(SigningKey::from_bytes(&[]), Err(TokenError::InvalidKey(_))));
        assert_ne!(SigningKey::generate().expect("key").0, key.0);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let key = SigningKey::from_bytes(&[0xAB; 32]).expect("key");
        assert_eq!(format!("{key:?}"), "SigningKey(<32 bytes redacted>)");
        let issued = TokenSigner::new(key, "d").issue(&user(), HOUR, NOW).expect("issue");
        assert!(!format!("{issued:?}").contains(&issued.token));
    }

    #[tokio::test]
    async fn validate_checks_revocation_of_session_and_user() {
        let s = signer();
        let cache = InMemorySessionCache::new();
        let now = crate::unix_now();
        let issued = s.issue(&user(), HOUR, now).expect("issue");
        assert!(s.validate(&issued.token, now, &cache).await.is_ok());

        cache.revoke(&issued.claims.jti, issued.claims.exp).await.expect("revoke");
        assert!(matches!(s.validate(&issued.token, now, &cache).await, Err(ValidationError::Revoked)));

        let other = s.issue(&user(), HOUR, now - 10).expect("issue");
        assert!(s.validate(&other.token, now, &cache).await.is_ok());
        cache.revoke_all_for_user("user-1", now).await.expect("revoke all");
        assert!(matches!(s.validate(&other.token, now, &cache).await, Err(ValidationError::Revoked)));
        let after = s.issue(&user(), HOUR, now).expect("issue");
        assert!(s.validate(&after.token, now, &cache).await.is_ok(), "token from the cut-off second survives");
    }

    #[tokio::test]
    async fn refresh_extends_valid_sessions_only() {
        let s = signer();
        let cache = InMemorySessionCache::new();
        let now = crate::unix_now();
        let issued = s.issue(&user(), HOUR, now).expect("issue");
        let refreshed = s.refresh(&issued.token, 2 * HOUR, now + 60, &cache).await.expect("refresh");
        assert_eq!(refreshed.claims.jti, issued.claims.jti);
        assert_eq!(refreshed.claims.exp, now + 60 + 7200);
        assert_eq!(refreshed.claims.iat, now + 60);
        assert_eq!(refreshed.claims.user_claims(), issued.claims.user_claims());
        assert!(s.verify(&refreshed.token, now + 60).is_ok());

        let expired = s.refresh(&issued.token, HOUR, now + 3600 + 60, &cache).await;
        assert!(matches!(expired, Err(ValidationError::Token(TokenError::Expired { .. }))));

        cache.revoke(&issued.claims.jti, refreshed.claims.exp).await.expect("revoke");
        assert!(matches!(s.refresh(&refreshed.token, HOUR, now + 60, &cache).await, Err(ValidationError::Revoked)));
    }

    #[tokio::test]
    async fn sessions_issued_or_renewed_in_the_cut_off_second_are_valid() {
        let s = signer();
        let cache = InMemorySessionCache::new();
        let now = crate::unix_now();
        // A password change: everything before the next second is revoked, its new token stamped at the cut-off.
        cache.revoke_all_for_user("user-1", now + 1).await.expect("revoke all");
        let at = session_issue_time(&cache, "user-1", now).await.expect("cache");
        assert_eq!(at, now + 1);
        let issued = s.issue(&user(), HOUR, at).expect("issue");
        assert!(s.validate(&issued.token, now, &cache).await.is_ok());
        // Renewed in that same second, it stays valid.
        let refreshed = s.refresh(&issued.token, HOUR, now, &cache).await.expect("refresh");
        assert_eq!(refreshed.claims.iat, now + 1);
        assert!(s.validate(&refreshed.token, now, &cache).await.is_ok());
        // With no cut-off, or one in the past, the clock decides.
        assert_eq!(session_issue_time(&cache, "user-2", now).await.expect("cache"), now);
        assert_eq!(session_issue_time(&cache, "user-1", now + 5).await.expect("cache"), now + 5);
    }

    /// The attack: keep a stolen (or forgotten) session alive forever by refreshing it before each expiry.
    #[tokio::test]
    async fn refresh_cannot_extend_a_session_past_its_absolute_lifetime() {
        let s = signer().with_max_lifetime(Duration::from_secs(3 * 3600));
        let cache = InMemorySessionCache::new();
        let first = s.issue(&user(), HOUR, NOW).expect("issue");
        assert_eq!(first.claims.auth_time, NOW);
        let mut token = first.token;
        let mut now = NOW;
        for _ in 0..2 {
            now += 3500;
            let refreshed = s.refresh(&token, HOUR, now, &cache).await.expect("refresh within the lifetime");
            assert_eq!(refreshed.claims.auth_time, NOW, "refresh keeps the login time");
            assert_eq!(refreshed.claims.jti, first.claims.jti);
            token = refreshed.token;
        }
        // The third refresh would reach past NOW + 3 h: its expiry is capped at the deadline.
        now += 3500;
        let capped = s.refresh(&token, HOUR, now, &cache).await.expect("refresh");
        assert_eq!(capped.claims.exp, NOW + 3 * 3600);
        // At the deadline, refreshing is refused however fresh the token is.
        let err = s.refresh(&capped.token, HOUR, NOW + 3 * 3600, &cache).await.expect_err("past the lifetime");
        assert!(matches!(err, ValidationError::LifetimeExceeded), "{err}");
        // A new login starts a new lifetime.
        let again = s.issue(&user(), HOUR, NOW + 3 * 3600).expect("issue");
        assert_eq!(again.claims.exp, NOW + 4 * 3600);
    }

    #[tokio::test]
    async fn tokens_without_auth_time_cannot_be_refreshed_and_issue_is_capped() {
        let s = signer().with_max_lifetime(Duration::from_secs(600));
        let issued = s.issue(&user(), HOUR, NOW).expect("issue");
        assert_eq!(issued.claims.exp, NOW + 600, "capped at the absolute lifetime");
        let mut legacy = issued.claims.clone();
        legacy.auth_time = 0;
        let token = s.sign(&legacy).expect("sign");
        let err = s.refresh(&token, HOUR, NOW + 10, &InMemorySessionCache::new()).await.expect_err("legacy");
        assert!(matches!(err, ValidationError::LifetimeExceeded), "{err}");
    }

    #[test]
    fn derived_credentials_differ_by_purpose_and_key() {
        let key = SigningKey::from_bytes(&[7u8; 32]).expect("key");
        let other = SigningKey::from_bytes(&[8u8; 32]).expect("key");
        let a = key.derive_credential("gateway").expect("derive");
        assert_eq!(a, key.derive_credential("gateway").expect("derive"), "stable");
        assert_ne!(a, key.derive_credential("proxy").expect("derive"));
        assert_ne!(a, other.derive_credential("gateway").expect("derive"));
        assert_eq!(a.len(), 43);
        assert!(!a.contains(&key.to_base64()));
        // The same bytes as before tokens moved to jsonwebtoken: base64url(HMAC-SHA256(key, label || purpose)), so
        // processes of either build still agree.
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[7u8; 32]).expect("key");
        mac.update(b"loupe derived credential\0gateway");
        assert_eq!(a, URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()));
    }

    #[test]
    fn validation_error_classification() {
        assert!(!ValidationError::Revoked.is_unavailable());
        assert!(!ValidationError::Token(TokenError::BadSignature).is_unavailable());
    }

    proptest! {
        #[test]
        fn verify_never_panics_on_arbitrary_strings(token in ".{0,512}") {
            let _ = signer().verify(&token, NOW);
        }

        #[test]
        fn verify_never_panics_on_three_segment_garbage(
            a in "[A-Za-z0-9_-]{0,64}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,64}"
        ) {
            let _ = signer().verify(&format!("{a}.{b}.{c}"), NOW);
            let hs = b64(r#"{"alg":"HS256"}"#);
            let token = format!("{hs}.{b}.{c}");
            prop_assert!(signer().verify(&token, NOW).is_err());
        }
    }
}
