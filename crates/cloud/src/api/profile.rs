//! Org, users, settings, invitations (`ProfileService`) and the vizier registry (`VizierInfoService`).
//!
//! Owns nothing but the translation; the rules live in `services::profile`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::{answer, id, no_content};
use crate::caller::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::gateway::{CallContext, Gateway};

/// `GET /api/v1/org`.
pub async fn get_org(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<cloudpb::Org>> {
    Ok(Json(answer(gw.clients.profile().get_org(ctx.request(cloudpb::Empty {}))).await?))
}

/// `GET /api/v1/users`: the caller's org members.
pub async fn list_users(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::User>>> {
    Ok(Json(answer(gw.clients.profile().list_users(ctx.request(cloudpb::Empty {}))).await?.users))
}

/// `GET /api/v1/users/{id}`.
pub async fn get_user(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<Json<cloudpb::User>> {
    Ok(Json(answer(gw.clients.profile().get_user(ctx.request(id(user)))).await?))
}

/// `DELETE /api/v1/users/{id}` (admins; not oneself).
pub async fn delete_user(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(user): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.profile().delete_user(ctx.request(id(user)))).await
}

/// `GET /api/v1/users/me/settings`.
pub async fn get_settings(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<cloudpb::Settings>> {
    Ok(Json(answer(gw.clients.profile().get_settings(ctx.request(cloudpb::Empty {}))).await?))
}

/// `PUT /api/v1/users/me/settings`: sets the given keys (others are kept) and returns them all.
pub async fn put_settings(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::Settings>,
) -> ApiResult<Json<cloudpb::Settings>> {
    Ok(Json(answer(gw.clients.profile().update_settings(ctx.request(req))).await?))
}

/// `GET /api/v1/invitations` (admins).
pub async fn list_invitations(
    State(gw): State<Gateway>,
    ctx: CallContext,
) -> ApiResult<Json<Vec<cloudpb::Invitation>>> {
    Ok(Json(answer(gw.clients.profile().list_invitations(ctx.request(cloudpb::Empty {}))).await?.invitations))
}

/// `POST /api/v1/invitations` (admins): the token is in the answer, and only there.
pub async fn create_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<cloudpb::CreatedInvitation>)> {
    Ok((StatusCode::CREATED, Json(answer(gw.clients.profile().create_invitation(ctx.request(req))).await?)))
}

/// `DELETE /api/v1/invitations/{id}` (admins).
pub async fn delete_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(invitation): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.profile().delete_invitation(ctx.request(id(invitation)))).await
}

/// `POST /api/v1/invitations/accept` (no session: the token is the credential). Creates the user and logs in.
pub async fn accept_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<cloudpb::Session>)> {
    Ok((StatusCode::CREATED, Json(answer(gw.clients.profile().accept_invitation(ctx.request(req))).await?)))
}

/// `GET /api/v1/viziers`: the org's viziers.
pub async fn list_viziers(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::Vizier>>> {
    Ok(Json(answer(gw.clients.viziers().list_viziers(ctx.request(cloudpb::Empty {}))).await?.viziers))
}

/// `GET /api/v1/viziers/{id}`.
pub async fn get_vizier(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(vizier): ApiPath<String>,
) -> ApiResult<Json<cloudpb::Vizier>> {
    Ok(Json(answer(gw.clients.viziers().get_vizier(ctx.request(id(vizier)))).await?))
}

/// `DELETE /api/v1/viziers/{id}` (admins): forgets a cluster.
pub async fn delete_vizier(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(vizier): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.viziers().delete_vizier(ctx.request(id(vizier)))).await
}
