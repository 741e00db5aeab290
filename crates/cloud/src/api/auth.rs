//! `/api/v1/auth/*`: login, password change, logout, refresh, `me` (`AuthService`).
//!
//! Owns nothing but the translation; the session rules live in `services::auth`.

use axum::Json;
use axum::extract::State;
use loupe_proto::cloudpb;

use super::model::{ChangePasswordRequest, LoginRequest, LogoutResponse, MeResponse, Session};
use super::{ApiJson, answer};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};

/// Log in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "a new session", body = Session),
    (status = 401, description = "invalid email or password", body = ErrorBody),
    (status = 429, description = "too many failed attempts, or the server is busy checking passwords; see \
        Retry-After", body = ErrorBody),
))]
pub async fn login(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<Session>> {
    Ok(Json(answer(gw.clients.auth().login(ctx.request(req.into()))).await?.into()))
}

/// Change the caller's password (needs a session token, not an API key): revokes every older session and
/// every API key of the user, and returns a new session.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "the new session, and the API keys the change revoked", body = Session),
        (status = 400, description = "the new password breaks the policy", body = ErrorBody),
        (status = 403, description = "the current password is incorrect, or the credential is an API key",
            body = ErrorBody),
        (status = 429, description = "too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn change_password(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Json<Session>> {
    Ok(Json(answer(gw.clients.auth().change_password(ctx.request(req.into()))).await?.into()))
}

/// End this session (needs a session token; an API key is revoked with `DELETE /api/v1/api-keys/{id}`).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses(
    (status = 200, description = "the session has ended", body = LogoutResponse),
    (status = 403, description = "the credential is an API key", body = ErrorBody),
))]
pub async fn logout(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<LogoutResponse>> {
    Ok(Json(answer(gw.clients.auth().logout(ctx.request(cloudpb::Empty {}))).await?.into()))
}

/// Extend this session (needs a session token): the same session with a fresh expiry, within its absolute
/// lifetime.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", responses(
    (status = 200, description = "the refreshed session", body = Session),
    (status = 403, description = "the credential is an API key, or a password change is pending",
        body = ErrorBody),
))]
pub async fn refresh(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Session>> {
    Ok(Json(answer(gw.clients.auth().refresh(ctx.request(cloudpb::Empty {}))).await?.into()))
}

/// Who the caller is; allowed while a password change is pending, so a UI can show that screen.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses(
    (status = 200, description = "the caller", body = MeResponse),
))]
pub async fn me(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<MeResponse>> {
    Ok(Json(answer(gw.clients.auth().me(ctx.request(cloudpb::Empty {}))).await?.into()))
}
