//! `AuthService`: login, password change, logout, refresh and `me`.
//!
//! Owns the session lifecycle: throttled login with one generic failure message (each attempt counted before
//! the password is checked, and the check itself bounded by `HashingLimiter`), the forced first password change
//! and every later one (which revoke every older token and every API key of the user), refresh within the
//! absolute session lifetime, and logout. Must not hash or sign anything itself (`loupe_auth` does) nor store
//! sessions outside the session cache and the metastore.

use std::net::IpAddr;
use std::time::Duration;

use loupe_auth::password::verify_dummy_password;
use loupe_auth::{
    HashingError, ThrottleError, UserClaims, hash_password, unix_now, validate_new_password, verify_password,
};
use loupe_metastore::{KeyKind, MetastoreError, Org, Role, User};
use loupe_proto::cloudpb::{self, auth_service_server::AuthService};
use tonic::{Request, Response, Status};

use super::caller::{Authenticated, Credential};
use super::keys::key_view;
use super::{CloudServices, reply};
use crate::error::{ApiError, ApiResult, INVALID_LOGIN};
use crate::state::CloudState;

/// Longest email accepted anywhere (RFC 5321 path limit).
pub(crate) const MAX_EMAIL_LEN: usize = 254;

/// A role as the API spells it.
pub(crate) fn role_name(role: Role) -> String {
    match role {
        Role::Admin => "admin",
        Role::Member => "member",
    }
    .to_owned()
}

/// A user as the API shows it (never the password hash).
pub(crate) fn user_view(user: &User) -> cloudpb::User {
    cloudpb::User {
        id: user.id.to_string(),
        email: user.email.clone(),
        display_name: user.display_name.clone(),
        role: role_name(user.role),
    }
}

fn org_ref(org: &Org) -> cloudpb::OrgRef {
    cloudpb::OrgRef { id: org.id.to_string(), name: org.name.clone() }
}

/// Converts the metastore's role to the auth crate's (they are defined apart so neither depends on the other).
fn token_role(role: Role) -> loupe_auth::Role {
    match role {
        Role::Admin => loupe_auth::Role::Admin,
        Role::Member => loupe_auth::Role::Member,
    }
}

/// Issues a new session for `user` at `now` (Unix seconds), or at the user's revocation cut-off if that is
/// still ahead (`loupe_auth::session_issue_time`), and builds the answer.
pub(crate) async fn issue_session(state: &CloudState, user: &User, now: i64) -> ApiResult<cloudpb::Session> {
    // A session the cache could not remember a revocation of is never started (the in-memory cache refuses
    // when full rather than forget revocations).
    state.sessions.admit_session().await?;
    let now = loupe_auth::session_issue_time(state.sessions.as_ref(), &user.id.to_string(), now).await?;
    let org = state.metastore.get_org(user.org_id).await?;
    let mut claims =
        UserClaims::user(user.id.to_string(), user.org_id.to_string(), user.email.clone(), token_role(user.role));
    claims.must_change_password = user.must_change_password;
    let issued = state.signer.issue(&claims, state.config.session_ttl, now).map_err(ApiError::internal)?;
    Ok(cloudpb::Session {
        token: issued.token,
        expires_at: issued.claims.exp,
        user: Some(user_view(user)),
        org: Some(org_ref(&org)),
        must_change_password: user.must_change_password,
        revoked_api_keys: Vec::new(),
    })
}

/// Runs argon2 off the async workers, within the bound on concurrent hashing: it costs tens of milliseconds of
/// CPU and 19 MiB by design. Busy beyond the short queue is a 429 with `Retry-After`.
pub(crate) async fn hashing<T: Send + 'static>(
    state: &CloudState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashingError> {
    state.hashing.run(f).await
}

pub(crate) fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
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

async fn login(state: &CloudState, ip: IpAddr, req: cloudpb::LoginRequest) -> ApiResult<cloudpb::Session> {
    let email = req.email.trim().to_owned();
    if email.is_empty() || req.password.is_empty() {
        return Err(ApiError::invalid("email and password are required"));
    }
    // Counted before the check, atomically: parallel attempts cannot all slip under the limit.
    state.throttle.reserve(&email, ip).await.map_err(|e| throttled(state, e))?;

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
    let checked = match user {
        Some(user) => {
            let hash = user.password_hash.clone();
            hashing(state, move || verify_password(&password, &hash)).await.map(|verdict| (Some(user), verdict))
        }
        None => {
            // Same work as a real check, so response time does not tell which emails exist.
            hashing(state, move || verify_dummy_password(&password)).await.map(|()| (None, Ok(false)))
        }
    };
    let (user, verdict) = match checked {
        Ok(checked) => checked,
        Err(err) => {
            // The password was never checked: the attempt does not count.
            state.throttle.cancel(&email, ip).await?;
            return Err(err.into());
        }
    };
    match (user, verdict) {
        (Some(user), Ok(true)) => {
            state.throttle.succeeded(&email, ip).await?;
            issue_session(state, &user, unix_now()).await
        }
        (Some(user), Err(err)) => Err(ApiError::internal(format!("stored password hash of {}: {err}", user.id))),
        _ => {
            state.metrics.record_login_failure();
            Err(ApiError::unauthenticated(INVALID_LOGIN))
        }
    }
}

async fn change_password(
    state: &CloudState,
    ip: IpAddr,
    caller: Authenticated,
    req: cloudpb::ChangePasswordRequest,
) -> ApiResult<cloudpb::Session> {
    if caller.is_api_user() {
        return Err(ApiError::forbidden("changing the password needs a session token, not an API key"));
    }
    let user = caller.user;
    // A stolen session must not become a password oracle: checks of the current password count as logins.
    state.throttle.reserve(&user.email, ip).await.map_err(|e| throttled(state, e))?;
    let (current, hash) = (req.current_password.clone(), user.password_hash.clone());
    let current_ok = match hashing(state, move || verify_password(&current, &hash)).await {
        Ok(verdict) => {
            verdict.map_err(|err| ApiError::internal(format!("stored password hash of {}: {err}", user.id)))?
        }
        Err(err) => {
            state.throttle.cancel(&user.email, ip).await?;
            return Err(err.into());
        }
    };
    if !current_ok {
        state.metrics.record_login_failure();
        return Err(ApiError::forbidden("the current password is incorrect"));
    }
    state.throttle.succeeded(&user.email, ip).await?;
    if req.new_password == req.current_password {
        return Err(ApiError::invalid("the new password must differ from the current one"));
    }
    validate_new_password(&req.new_password, &user.email).map_err(|e| ApiError::invalid(e.to_string()))?;
    let new_password = req.new_password;
    let new_hash = hashing(state, move || hash_password(&new_password)).await?.map_err(ApiError::internal)?;
    let user = state.metastore.update_user_password(user.org_id, user.id, &new_hash, false).await?;

    // Every token issued up to and including this second is revoked; the new one is stamped one second later
    // (within the verifier's leeway) so it alone survives, even if the old one was issued this same second.
    let now = unix_now();
    state.sessions.revoke_all_for_user(&user.id.to_string(), now + 1).await?;
    // API keys made under the old password end with it too: whoever knew that password may have made one.
    let mut revoked = Vec::new();
    for key in state.metastore.list_keys(KeyKind::Api, user.org_id, Some(user.id)).await? {
        if key.revoked_at.is_none() {
            state.metastore.revoke_key(KeyKind::Api, user.org_id, key.id).await?;
            revoked.push(state.metastore.get_key(KeyKind::Api, user.org_id, key.id).await?);
        }
    }
    if !revoked.is_empty() {
        tracing::info!(user = %user.id, revoked = revoked.len(), "password changed; revoked the user's API keys");
    }
    let mut session = issue_session(state, &user, now + 1).await?;
    session.revoked_api_keys = revoked.iter().map(key_view).collect();
    Ok(session)
}

async fn logout(state: &CloudState, caller: Authenticated) -> ApiResult<cloudpb::LogoutResponse> {
    let Credential::Session { claims, .. } = &caller.credential else {
        return Err(ApiError::forbidden("API keys do not log out; revoke the key with DELETE /api/v1/api-keys/{id}"));
    };
    // Refreshes extend a session, so revoke until the latest expiry a token of it could carry.
    // Never past the session's absolute deadline, after which no token of it can be valid.
    let until = unix_now()
        .saturating_add(secs(state.config.session_ttl))
        .min(state.signer.session_deadline(claims.auth_time))
        .max(claims.exp);
    state.sessions.revoke(&claims.jti, until).await?;
    Ok(cloudpb::LogoutResponse { logged_out: true })
}

async fn refresh(state: &CloudState, caller: Authenticated) -> ApiResult<cloudpb::Session> {
    let Credential::Session { token, .. } = &caller.credential else {
        return Err(ApiError::forbidden("API keys do not expire and cannot be refreshed"));
    };
    let now = unix_now();
    let issued = state
        .signer
        .refresh(token, state.config.session_ttl, now, state.sessions.as_ref())
        .await
        .map_err(super::caller::token_error)?;
    let org = state.metastore.get_org(caller.org_id()).await?;
    Ok(cloudpb::Session {
        token: issued.token,
        expires_at: issued.claims.exp,
        user: Some(user_view(&caller.user)),
        org: Some(org_ref(&org)),
        must_change_password: caller.user.must_change_password,
        revoked_api_keys: Vec::new(),
    })
}

async fn me(state: &CloudState, caller: Authenticated) -> ApiResult<cloudpb::MeResponse> {
    let org = state.metastore.get_org(caller.org_id()).await?;
    Ok(cloudpb::MeResponse {
        user: Some(user_view(&caller.user)),
        org: Some(org_ref(&org)),
        must_change_password: caller.user.must_change_password,
        is_api_user: caller.is_api_user(),
    })
}

#[tonic::async_trait]
impl AuthService for CloudServices {
    async fn login(&self, request: Request<cloudpb::LoginRequest>) -> Result<Response<cloudpb::Session>, Status> {
        let ip = self.client_ip(&request);
        reply(login(&self.state, ip, request.into_inner()).await)
    }

    async fn change_password(
        &self,
        request: Request<cloudpb::ChangePasswordRequest>,
    ) -> Result<Response<cloudpb::Session>, Status> {
        let ip = self.client_ip(&request);
        reply(
            async {
                let caller = self.pending_caller(&request).await?;
                change_password(&self.state, ip, caller, request.into_inner()).await
            }
            .await,
        )
    }

    async fn logout(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::LogoutResponse>, Status> {
        reply(async { logout(&self.state, self.pending_caller(&request).await?).await }.await)
    }

    async fn refresh(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::Session>, Status> {
        reply(async { refresh(&self.state, self.caller(&request).await?.0).await }.await)
    }

    async fn me(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::MeResponse>, Status> {
        reply(async { me(&self.state, self.pending_caller(&request).await?).await }.await)
    }
}
