//! Who is calling: the credential check every authenticated service call starts with.
//!
//! Owns credential parsing and checking (`pixie-api-key: px-api-…` first, then `Authorization: Bearer`, read
//! from the call's metadata, which are the HTTP headers the gateway forwarded), the refusal of deploy keys on
//! user calls, and the forced-password-change gate. A call opts into being allowed during a pending password
//! change by asking for a `PendingCaller` instead of a `Caller`. Must not decide what a role may do (the calls
//! do, with `Caller::require_admin`) and must not know about HTTP routes or the gateway.

use axum::http::{HeaderMap, header};
use loupe_auth::{Claims, KeyKind, TokenError, ValidationError, hash_key, key_kind, unix_now};
use loupe_metastore::{MetastoreError, Role, User};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::CloudState;

/// Header carrying an API key (Pixie's name).
pub const API_KEY_HEADER: &str = loupe_proto::headers::API_KEY;
/// Header carrying a deploy key in Pixie's gRPC calls; refused on user endpoints with a clear message.
pub const DEPLOY_KEY_HEADER: &str = "x-api-key";

/// Headers that describe one HTTP/2 request's framing, not the call: a call relayed with another message (a
/// Pixie call answered by a Loupe call) must not carry them, or the next hop sees a `content-length` that its
/// body does not have and resets the stream.
const FRAMING_HEADERS: &[&str] =
    &["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "proxy-connection", "host"];

/// The metadata of a call, for another call made on its behalf: the credential, request id and client address
/// stay; the framing of the original request goes.
pub(crate) fn relayed_metadata(from: &tonic::metadata::MetadataMap) -> tonic::metadata::MetadataMap {
    let mut headers = from.clone().into_headers();
    for name in FRAMING_HEADERS {
        headers.remove(*name);
    }
    tonic::metadata::MetadataMap::from_headers(headers)
}

const DEPLOY_KEY_REFUSED: &str = "deploy keys (px-dep-…) can only register a vizier; \
     use a session token (Authorization: Bearer …) or an API key (pixie-api-key: px-api-…)";
const MISSING_CREDENTIALS: &str = "missing credentials: send Authorization: Bearer <token> or pixie-api-key: px-api-…";

/// An authenticated caller whose password is not pending a change: what most handlers take.
#[derive(Debug, Clone)]
pub struct Caller(pub Authenticated);

/// An authenticated caller who may have a password change pending; only password change, logout and `me`
/// take this.
#[derive(Debug, Clone)]
pub struct PendingCaller(pub Authenticated);

/// The checked identity of a request.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The user, as stored now (not as the token remembers it).
    pub user: User,
    /// How the caller proved it.
    pub credential: Credential,
}

/// The credential a request carried.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A session token.
    Session {
        /// Its verified claims.
        claims: Box<Claims>,
        /// The compact token, for refresh.
        token: String,
    },
    /// An API key (`IsAPIUser`).
    ApiKey {
        /// The key's id.
        key_id: Uuid,
    },
}

impl Authenticated {
    /// The caller's org: every handler passes it to the metastore.
    pub fn org_id(&self) -> Uuid {
        self.user.org_id
    }

    /// The caller's user id.
    pub fn user_id(&self) -> Uuid {
        self.user.id
    }

    /// Whether the caller is an org admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }

    /// 403 unless the caller is an org admin.
    pub fn require_admin(&self, action: &str) -> Result<(), ApiError> {
        if self.is_admin() { Ok(()) } else { Err(ApiError::forbidden(format!("only org admins may {action}"))) }
    }

    /// Whether the credential is an API key.
    pub fn is_api_user(&self) -> bool {
        matches!(self.credential, Credential::ApiKey { .. })
    }
}

impl std::ops::Deref for Caller {
    type Target = Authenticated;
    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl std::ops::Deref for PendingCaller {
    type Target = Authenticated;
    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl PendingCaller {
    /// The caller named by a call's credential headers (gRPC metadata are HTTP headers).
    pub async fn from_headers(headers: &HeaderMap, state: &CloudState) -> Result<Self, ApiError> {
        authenticate(headers, state).await.map(PendingCaller)
    }
}

impl Caller {
    /// The caller named by a call's credential headers, refused while a password change is pending.
    pub async fn from_headers(headers: &HeaderMap, state: &CloudState) -> Result<Self, ApiError> {
        let auth = authenticate(headers, state).await?;
        // The stored row decides, not the token's MustChangePassword claim: a flag set after the token was
        // issued still applies, and one cleared by a password change came with a new token anyway.
        if auth.user.must_change_password {
            return Err(ApiError::password_change_required());
        }
        Ok(Caller(auth))
    }
}

/// Checks the request's credential and loads its user.
async fn authenticate(headers: &HeaderMap, state: &CloudState) -> Result<Authenticated, ApiError> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        let key = value.to_str().map_err(|_| ApiError::unauthenticated("the API key is not valid text"))?;
        return authenticate_key(key, state).await;
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value =
            value.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not valid text"))?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(ApiError::unauthenticated("the Authorization header must be `Bearer <token>`"));
        }
        let token = token.trim();
        // Accept a key in the bearer slot too: scripts tend to put every credential there.
        if key_kind(token).is_some() {
            return authenticate_key(token, state).await;
        }
        return authenticate_token(token, state).await;
    }
    if headers.contains_key(DEPLOY_KEY_HEADER) {
        return Err(ApiError::unauthenticated(DEPLOY_KEY_REFUSED));
    }
    Err(ApiError::unauthenticated(MISSING_CREDENTIALS))
}

async fn authenticate_key(key: &str, state: &CloudState) -> Result<Authenticated, ApiError> {
    match key_kind(key) {
        Some(KeyKind::Api) => {}
        Some(KeyKind::Deploy) => return Err(ApiError::unauthenticated(DEPLOY_KEY_REFUSED)),
        None => return Err(ApiError::unauthenticated("malformed API key: expected px-api-…")),
    }
    let hash = hash_key(key);
    let api_key = match state.metastore.get_key_by_hash(KeyKind::Api, hash.as_str()).await {
        Ok(api_key) => api_key,
        Err(MetastoreError::NotFound { .. }) => {
            return Err(ApiError::unauthenticated("unknown or revoked API key"));
        }
        Err(err) => return Err(err.into()),
    };
    let Some(owner) = api_key.user_id else {
        return Err(ApiError::unauthenticated("unknown or revoked API key"));
    };
    let user = load_user(state, api_key.org_id, owner).await?;
    // Best effort: a failed touch must not fail the request it describes.
    if let Err(err) = state.metastore.touch_key(KeyKind::Api, api_key.org_id, api_key.id).await {
        tracing::debug!(error = %err, key_id = %api_key.id, "could not record API key use");
    }
    Ok(Authenticated { user, credential: Credential::ApiKey { key_id: api_key.id } })
}

async fn authenticate_token(token: &str, state: &CloudState) -> Result<Authenticated, ApiError> {
    let claims = state.signer.validate(token, unix_now(), state.sessions.as_ref()).await.map_err(token_error)?;
    let (Ok(user_id), Ok(org_id)) = (Uuid::parse_str(&claims.sub), Uuid::parse_str(&claims.org_id)) else {
        return Err(ApiError::unauthenticated("the session token does not name a user of an org"));
    };
    let user = load_user(state, org_id, user_id).await?;
    Ok(Authenticated { user, credential: Credential::Session { claims: Box::new(claims), token: token.to_owned() } })
}

/// The user, re-read on every request: a deleted user or one moved out of the org loses access at once.
async fn load_user(state: &CloudState, org_id: Uuid, user_id: Uuid) -> Result<User, ApiError> {
    match state.metastore.get_user(org_id, user_id).await {
        Ok(user) => Ok(user),
        Err(MetastoreError::NotFound { .. }) => Err(ApiError::unauthenticated("the user no longer exists")),
        Err(err) => Err(err.into()),
    }
}

/// 401 for a bad, expired or revoked token; 503 when revocation cannot be checked (fail closed).
pub(crate) fn token_error(err: ValidationError) -> ApiError {
    match err {
        ValidationError::Token(TokenError::Expired { .. }) => {
            ApiError::unauthenticated("the session token has expired; log in again")
        }
        ValidationError::Revoked => ApiError::unauthenticated("the session has ended; log in again"),
        ValidationError::LifetimeExceeded => {
            ApiError::unauthenticated("the session reached its maximum lifetime; log in again")
        }
        ValidationError::Session(err) => err.into(),
        ValidationError::Token(_) => ApiError::unauthenticated("invalid session token"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_call_keeps_the_credential_and_drops_the_framing() {
        let mut from = tonic::metadata::MetadataMap::new();
        from.insert("authorization", "Bearer t".parse().expect("ascii"));
        from.insert(API_KEY_HEADER, "px-api-k".parse().expect("ascii"));
        from.insert("x-request-id", "r1".parse().expect("ascii"));
        // What a client such as an HTTP/2 library with a known body size sends: the relayed call has another body.
        from.insert("content-length", "42".parse().expect("ascii"));
        from.insert("host", "cloud:443".parse().expect("ascii"));
        let relayed = relayed_metadata(&from).into_headers();
        assert_eq!(relayed.get("authorization").map(|v| v.as_bytes()), Some(&b"Bearer t"[..]));
        assert_eq!(relayed.get(API_KEY_HEADER).map(|v| v.as_bytes()), Some(&b"px-api-k"[..]));
        assert_eq!(relayed.get("x-request-id").map(|v| v.as_bytes()), Some(&b"r1"[..]));
        assert!(relayed.get("content-length").is_none() && relayed.get("host").is_none(), "{relayed:?}");
    }
}
