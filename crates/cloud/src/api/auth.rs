//! `/api/v1/auth/*`: login, password change, logout, refresh, `me` (`AuthService`).
//!
//! Owns nothing but the translation; the session rules live in `services::auth`.

use axum::Json;
use axum::extract::State;
use loupe_proto::cloudpb;

use super::answer;
use crate::caller::ApiJson;
use crate::error::ApiResult;
use crate::gateway::{CallContext, Gateway};

/// `POST /api/v1/auth/login`.
pub async fn login(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::LoginRequest>,
) -> ApiResult<Json<cloudpb::Session>> {
    Ok(Json(answer(gw.clients.auth().login(ctx.request(req))).await?))
}

/// `POST /api/v1/auth/password`: allowed while a change is pending; returns a new session.
pub async fn change_password(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::ChangePasswordRequest>,
) -> ApiResult<Json<cloudpb::Session>> {
    Ok(Json(answer(gw.clients.auth().change_password(ctx.request(req))).await?))
}

/// `POST /api/v1/auth/logout`: revokes this session.
pub async fn logout(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<cloudpb::LogoutResponse>> {
    Ok(Json(answer(gw.clients.auth().logout(ctx.request(cloudpb::Empty {}))).await?))
}

/// `POST /api/v1/auth/refresh`: the same session with a fresh expiry.
pub async fn refresh(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<cloudpb::Session>> {
    Ok(Json(answer(gw.clients.auth().refresh(ctx.request(cloudpb::Empty {}))).await?))
}

/// `GET /api/v1/auth/me`: allowed while a change is pending, so a UI can show the change-password screen.
pub async fn me(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<cloudpb::MeResponse>> {
    Ok(Json(answer(gw.clients.auth().me(ctx.request(cloudpb::Empty {}))).await?))
}
