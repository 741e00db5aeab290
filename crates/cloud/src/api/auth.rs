//! `/api/v1/auth/*` and invitation acceptance: login, password change, logout, refresh, `me`.
//!
//! Owns the session lifecycle as seen over HTTP: throttled login with one generic failure message, the forced
//! first password change (which revokes every older token of the user), refresh and logout. Must not hash or
//! sign anything itself (`loupe_auth` does) nor store sessions outside the session cache and the metastore.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use loupe_auth::password::verify_dummy_password;
use loupe_auth::{ThrottleError, UserClaims, hash_password, unix_now, validate_new_password, verify_password};
use loupe_metastore::{MetastoreError, Org, Role, User};
use serde::{Deserialize, Serialize};

use crate::caller::{ApiJson, ClientIp, Credential, PendingCaller};
use crate::error::{ApiError, ApiResult, INVALID_LOGIN};
use crate::state::CloudState;

/// Longest email accepted anywhere (RFC 5321 path limit).
pub(crate) const MAX_EMAIL_LEN: usize = 254;

/// `POST /api/v1/auth/login` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// `POST /api/v1/auth/password` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    current_password: String,
    new_password: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize)]
pub struct UserView {
    /// User id.
    pub id: String,
    /// Email.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// `admin` or `member`.
    pub role: Role,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            role: user.role,
        }
    }
}

/// An org as the API shows it in session answers.
#[derive(Debug, Serialize)]
pub struct OrgRef {
    /// Org id.
    pub id: String,
    /// Org name.
    pub name: String,
}

impl From<&Org> for OrgRef {
    fn from(org: &Org) -> Self {
        Self { id: org.id.to_string(), name: org.name.clone() }
    }
}

/// The answer to login, password change, refresh and invitation acceptance.
#[derive(Debug, Serialize)]
pub struct SessionResponse {
    /// The session token: send it as `Authorization: Bearer <token>`.
    pub token: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// The user.
    pub user: UserView,
    /// The user's org.
    pub org: OrgRef,
    /// Whether only the password change, logout and `me` may be called until the password is changed.
    pub must_change_password: bool,
}

/// The answer to `GET /api/v1/auth/me`.
#[derive(Debug, Serialize)]
pub struct MeResponse {
    /// The user.
    pub user: UserView,
    /// The user's org.
    pub org: OrgRef,
    /// Whether the password must be changed before anything else.
    pub must_change_password: bool,
    /// Whether the caller authenticated with an API key.
    pub is_api_user: bool,
}

/// Converts the auth crate's role to the metastore's (they are defined apart so neither depends on the other).
pub(crate) fn token_role(role: Role) -> loupe_auth::Role {
    match role {
        Role::Admin => loupe_auth::Role::Admin,
        Role::Member => loupe_auth::Role::Member,
    }
}

/// Issues a new session for `user` at `now` (Unix seconds) and builds the answer.
pub(crate) async fn issue_session(state: &CloudState, user: &User, now: i64) -> ApiResult<SessionResponse> {
    let org = state.metastore.get_org(user.org_id).await?;
    let mut claims =
        UserClaims::user(user.id.to_string(), user.org_id.to_string(), user.email.clone(), token_role(user.role));
    claims.must_change_password = user.must_change_password;
    let issued = state.signer.issue(&claims, state.config.session_ttl, now).map_err(ApiError::internal)?;
    Ok(SessionResponse {
        token: issued.token,
        expires_at: issued.claims.exp,
        user: UserView::from(user),
        org: OrgRef::from(&org),
        must_change_password: user.must_change_password,
    })
}

/// Runs argon2 off the async workers: it costs tens of milliseconds of CPU by design.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiError::internal)
}

fn throttled(state: &CloudState, err: ThrottleError) -> ApiError {
    match err {
        ThrottleError::Throttled { retry_after } => {
            state.metrics.record_login_throttled();
            let secs = loupe_auth::throttle::ceil_secs(retry_after);
            ApiError::throttled(format!("too many failed login attempts; retry in {secs} s"), secs)
        }
        ThrottleError::Session(err) => err.into(),
    }
}

/// `POST /api/v1/auth/login`.
pub async fn login(
    State(state): State<CloudState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<SessionResponse>> {
    let email = req.email.trim().to_owned();
    if email.is_empty() || req.password.is_empty() {
        return Err(ApiError::invalid("email and password are required"));
    }
    state.throttle.check(&email, ip).await.map_err(|e| throttled(&state, e))?;

    let user = if email.len() > MAX_EMAIL_LEN || email.contains('\0') {
        None
    } else {
        match state.metastore.get_user_by_email(&email).await {
            Ok(user) => Some(user),
            Err(MetastoreError::NotFound { .. }) => None,
            Err(err) => return Err(err.into()),
        }
    };
    let password = req.password;
    let verified = match user {
        Some(user) => {
            let hash = user.password_hash.clone();
            match blocking(move || verify_password(&password, &hash)).await? {
                Ok(true) => Some(user),
                Ok(false) => None,
                Err(err) => return Err(ApiError::internal(format!("stored password hash of {}: {err}", user.id))),
            }
        }
        None => {
            // Same work as a real check, so response time does not tell which emails exist.
            blocking(move || verify_dummy_password(&password)).await?;
            None
        }
    };
    let Some(user) = verified else {
        state.metrics.record_login_failure();
        state.throttle.record_failure(&email, ip).await?;
        return Err(ApiError::unauthenticated(INVALID_LOGIN));
    };
    state.throttle.record_success(&email).await?;
    Ok(Json(issue_session(&state, &user, unix_now()).await?))
}

/// `POST /api/v1/auth/password`: allowed while a change is pending; clears the flag, revokes every older token
/// of the user and returns a new session.
pub async fn change_password(
    State(state): State<CloudState>,
    ClientIp(ip): ClientIp,
    caller: PendingCaller,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Json<SessionResponse>> {
    if caller.is_api_user() {
        return Err(ApiError::forbidden("changing the password needs a session token, not an API key"));
    }
    let user = caller.0.user;
    // A stolen session must not become a password oracle: wrong current passwords count as failed logins.
    state.throttle.check(&user.email, ip).await.map_err(|e| throttled(&state, e))?;
    let (current, hash) = (req.current_password.clone(), user.password_hash.clone());
    let current_ok = blocking(move || verify_password(&current, &hash))
        .await?
        .map_err(|err| ApiError::internal(format!("stored password hash of {}: {err}", user.id)))?;
    if !current_ok {
        state.metrics.record_login_failure();
        state.throttle.record_failure(&user.email, ip).await?;
        return Err(ApiError::forbidden("the current password is incorrect"));
    }
    if req.new_password == req.current_password {
        return Err(ApiError::invalid("the new password must differ from the current one"));
    }
    validate_new_password(&req.new_password, &user.email).map_err(|e| ApiError::invalid(e.to_string()))?;
    let new_password = req.new_password;
    let new_hash = blocking(move || hash_password(&new_password)).await?.map_err(ApiError::internal)?;
    let user = state.metastore.update_user_password(user.org_id, user.id, &new_hash, false).await?;

    // Every token issued up to and including this second is revoked; the new one is stamped one second later
    // (within the verifier's leeway) so it alone survives, even if the old one was issued this same second.
    let now = unix_now();
    state.sessions.revoke_all_for_user(&user.id.to_string(), now + 1).await?;
    Ok(Json(issue_session(&state, &user, now + 1).await?))
}

/// `POST /api/v1/auth/logout`: revokes this session (every token sharing its `jti`, refreshed ones included).
pub async fn logout(State(state): State<CloudState>, caller: PendingCaller) -> ApiResult<Json<serde_json::Value>> {
    let Credential::Session { claims, .. } = &caller.credential else {
        return Err(ApiError::invalid("API keys do not log out; delete the key with DELETE /api/v1/api-keys/{id}"));
    };
    // Refreshes extend a session, so revoke until the latest expiry a token of it could carry.
    let until = unix_now().saturating_add(secs(state.config.session_ttl)).max(claims.exp);
    state.sessions.revoke(&claims.jti, until).await?;
    Ok(Json(serde_json::json!({ "logged_out": true })))
}

/// `POST /api/v1/auth/refresh`: the same session with a fresh expiry.
pub async fn refresh(
    State(state): State<CloudState>,
    caller: crate::caller::Caller,
) -> ApiResult<Json<SessionResponse>> {
    let Credential::Session { token, .. } = &caller.credential else {
        return Err(ApiError::invalid("API keys do not expire and cannot be refreshed"));
    };
    let now = unix_now();
    let issued = state
        .signer
        .refresh(token, state.config.session_ttl, now, state.sessions.as_ref())
        .await
        .map_err(crate::caller::token_error)?;
    let org = state.metastore.get_org(caller.org_id()).await?;
    Ok(Json(SessionResponse {
        token: issued.token,
        expires_at: issued.claims.exp,
        user: UserView::from(&caller.user),
        org: OrgRef::from(&org),
        must_change_password: caller.user.must_change_password,
    }))
}

/// `GET /api/v1/auth/me`: allowed while a change is pending, so a UI can show the change-password screen.
pub async fn me(State(state): State<CloudState>, caller: PendingCaller) -> ApiResult<Json<MeResponse>> {
    let org = state.metastore.get_org(caller.org_id()).await?;
    Ok(Json(MeResponse {
        user: UserView::from(&caller.user),
        org: OrgRef::from(&org),
        must_change_password: caller.user.must_change_password,
        is_api_user: caller.is_api_user(),
    }))
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
