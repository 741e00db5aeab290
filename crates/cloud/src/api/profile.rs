//! Org, users, settings, invitations (`ProfileService`) and the vizier registry (`VizierInfoService`).
//!
//! Owns nothing but the translation; the rules live in `services::profile`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::model::{
    AcceptInvitationRequest, CreateInvitationRequest, CreatedInvitation, Invitation, Org, Session, Settings, User,
    Vizier,
};
use super::{ApiJson, ApiPath, IdPath, answer, no_content};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};

/// The caller's org.
#[utoipa::path(get, path = "/api/v1/org", tag = "profile", responses(
    (status = 200, description = "the org", body = Org),
))]
pub async fn get_org(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Org>> {
    Ok(Json(answer(gw.clients.profile().get_org(ctx.request(cloudpb::Empty {}))).await?.into()))
}

/// The org's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "profile", responses(
    (status = 200, description = "the users", body = Vec<User>),
))]
pub async fn list_users(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<User>>> {
    let list = answer(gw.clients.profile().list_users(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.users.into_iter().map(User::from).collect()))
}

/// One user of the org.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "profile", params(IdPath), responses(
    (status = 200, description = "the user", body = User),
))]
pub async fn get_user(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<Json<User>> {
    Ok(Json(answer(gw.clients.profile().get_user(ctx.request(path.request()))).await?.into()))
}

/// Remove a user from the org (admins; not oneself). Their sessions end with them.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "profile", params(IdPath), responses(
    (status = 204, description = "removed"),
    (status = 403, description = "the caller is not an admin, or names themselves", body = ErrorBody),
))]
pub async fn delete_user(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.profile().delete_user(ctx.request(path.request()))).await
}

/// The caller's settings.
#[utoipa::path(get, path = "/api/v1/users/me/settings", tag = "profile", responses(
    (status = 200, description = "every setting of the caller", body = Settings),
))]
pub async fn get_settings(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Settings>> {
    Ok(Json(answer(gw.clients.profile().get_settings(ctx.request(cloudpb::Empty {}))).await?.into()))
}

/// Set some of the caller's settings (others are kept); answers them all.
#[utoipa::path(put, path = "/api/v1/users/me/settings", tag = "profile", request_body = Settings, responses(
    (status = 200, description = "every setting of the caller", body = Settings),
))]
pub async fn put_settings(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<Settings>,
) -> ApiResult<Json<Settings>> {
    Ok(Json(answer(gw.clients.profile().update_settings(ctx.request(req.into()))).await?.into()))
}

/// The org's invitations (admins).
#[utoipa::path(get, path = "/api/v1/invitations", tag = "profile", responses(
    (status = 200, description = "the invitations", body = Vec<Invitation>),
))]
pub async fn list_invitations(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<Invitation>>> {
    let list = answer(gw.clients.profile().list_invitations(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.invitations.into_iter().map(Invitation::from).collect()))
}

/// Invite a user (admins): the token is in the answer, and only there.
#[utoipa::path(post, path = "/api/v1/invitations", tag = "profile", request_body = CreateInvitationRequest,
    responses(
        (status = 201, description = "the invitation and its token, shown once", body = CreatedInvitation),
        (status = 409, description = "the email already has an open invitation or a user", body = ErrorBody),
    ))]
pub async fn create_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let created = answer(gw.clients.profile().create_invitation(ctx.request(req.into()))).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Withdraw an invitation (admins).
#[utoipa::path(delete, path = "/api/v1/invitations/{id}", tag = "profile", params(IdPath), responses(
    (status = 204, description = "withdrawn"),
))]
pub async fn delete_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.profile().delete_invitation(ctx.request(path.request()))).await
}

/// Accept an invitation (no session: the token is the credential): creates the user and logs in.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "profile", request_body = AcceptInvitationRequest,
    responses(
        (status = 201, description = "the new user's session", body = Session),
        (status = 404, description = "no such invitation, or it expired or was used", body = ErrorBody),
        (status = 409, description = "a user with this email already exists", body = ErrorBody),
        (status = 429, description = "the server is busy hashing passwords; see Retry-After", body = ErrorBody),
    ))]
pub async fn accept_invitation(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<Session>)> {
    let session = answer(gw.clients.profile().accept_invitation(ctx.request(req.into()))).await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// The org's viziers.
#[utoipa::path(get, path = "/api/v1/viziers", tag = "viziers", responses(
    (status = 200, description = "the viziers", body = Vec<Vizier>),
))]
pub async fn list_viziers(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<Vizier>>> {
    let list = answer(gw.clients.viziers().list_viziers(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.viziers.into_iter().map(Vizier::from).collect()))
}

/// One vizier.
#[utoipa::path(get, path = "/api/v1/viziers/{id}", tag = "viziers", params(IdPath), responses(
    (status = 200, description = "the vizier", body = Vizier),
))]
pub async fn get_vizier(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<Json<Vizier>> {
    Ok(Json(answer(gw.clients.viziers().get_vizier(ctx.request(path.request()))).await?.into()))
}

/// Forget a vizier (admins).
#[utoipa::path(delete, path = "/api/v1/viziers/{id}", tag = "viziers", params(IdPath), responses(
    (status = 204, description = "forgotten"),
))]
pub async fn delete_vizier(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.viziers().delete_vizier(ctx.request(path.request()))).await
}
