//! `/api/v1/api-keys` and `/api/v1/deploy-keys` (`ApiKeyService`, `DeployKeyService`).
//!
//! Owns the translation and one REST rule: a revoked key is gone from its URL (`GET` and `DELETE` answer 404,
//! as for any deleted resource), while listings keep it, with `revoked_at`, for audit. Who may manage which key
//! is decided in `services::keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::model::{CreateKeyRequest, CreatedKey, Key};
use super::{ApiJson, ApiPath, IdPath, answer, no_content};
use crate::error::{ApiError, ApiResult};
use crate::gateway::{CallContext, Gateway};

/// The key, unless it is revoked: then 404, as for a deleted resource.
fn live(key: cloudpb::Key, what: &str) -> ApiResult<Key> {
    match key.revoked_at {
        Some(_) => Err(ApiError::not_found(format!("{what} not found (revoked)"))),
        None => Ok(key.into()),
    }
}

/// Create an API key for the caller: the key is in the answer, and only there.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "keys", request_body = CreateKeyRequest, responses(
    (status = 201, description = "the new key, shown once", body = CreatedKey),
))]
pub async fn create_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let created = answer(gw.clients.api_keys().create_api_key(ctx.request(req.into()))).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The caller's own API keys; an admin's listing covers the whole org. Revoked keys stay listed.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "keys", responses(
    (status = 200, description = "the keys", body = Vec<Key>),
))]
pub async fn list_api_keys(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<Key>>> {
    let list = answer(gw.clients.api_keys().list_api_keys(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.keys.into_iter().map(Key::from).collect()))
}

/// One live API key: the caller's own, or any of the org's for an admin.
#[utoipa::path(get, path = "/api/v1/api-keys/{id}", tag = "keys", params(IdPath), responses(
    (status = 200, description = "the key", body = Key),
))]
pub async fn get_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<Json<Key>> {
    Ok(Json(live(answer(gw.clients.api_keys().get_api_key(ctx.request(path.request()))).await?, "api key")?))
}

/// Revoke an API key: it stays listed, with `revoked_at`, and its URL answers 404 from then on.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "keys", params(IdPath), responses(
    (status = 204, description = "revoked"),
))]
pub async fn delete_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    live(answer(gw.clients.api_keys().get_api_key(ctx.request(path.request()))).await?, "api key")?;
    no_content(gw.clients.api_keys().delete_api_key(ctx.request(path.request()))).await
}

/// Create a deploy key for the org (admins): the key is in the answer, and only there.
#[utoipa::path(post, path = "/api/v1/deploy-keys", tag = "keys", request_body = CreateKeyRequest, responses(
    (status = 201, description = "the new key, shown once", body = CreatedKey),
))]
pub async fn create_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let created = answer(gw.clients.deploy_keys().create_deploy_key(ctx.request(req.into()))).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// The org's deploy keys. Revoked keys stay listed.
#[utoipa::path(get, path = "/api/v1/deploy-keys", tag = "keys", responses(
    (status = 200, description = "the keys", body = Vec<Key>),
))]
pub async fn list_deploy_keys(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<Key>>> {
    let list = answer(gw.clients.deploy_keys().list_deploy_keys(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.keys.into_iter().map(Key::from).collect()))
}

/// One live deploy key.
#[utoipa::path(get, path = "/api/v1/deploy-keys/{id}", tag = "keys", params(IdPath), responses(
    (status = 200, description = "the key", body = Key),
))]
pub async fn get_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<Json<Key>> {
    Ok(Json(live(answer(gw.clients.deploy_keys().get_deploy_key(ctx.request(path.request()))).await?, "deploy key")?))
}

/// Revoke a deploy key (admins): it stays listed, with `revoked_at`, and its URL answers 404 from then on.
#[utoipa::path(delete, path = "/api/v1/deploy-keys/{id}", tag = "keys", params(IdPath), responses(
    (status = 204, description = "revoked"),
))]
pub async fn delete_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<IdPath>,
) -> ApiResult<StatusCode> {
    live(answer(gw.clients.deploy_keys().get_deploy_key(ctx.request(path.request()))).await?, "deploy key")?;
    no_content(gw.clients.deploy_keys().delete_deploy_key(ctx.request(path.request()))).await
}
