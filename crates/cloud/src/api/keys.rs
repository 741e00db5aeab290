//! `/api/v1/api-keys` and `/api/v1/deploy-keys` (`ApiKeyService`, `DeployKeyService`).
//!
//! Owns nothing but the translation; who may manage which key is decided in `services::keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::{answer, id, no_content};
use crate::caller::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::gateway::{CallContext, Gateway};

/// `POST /api/v1/api-keys`: the key is in the answer, and only there.
pub async fn create_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<cloudpb::CreatedKey>)> {
    Ok((StatusCode::CREATED, Json(answer(gw.clients.api_keys().create_api_key(ctx.request(req))).await?)))
}

/// `GET /api/v1/api-keys`: the caller's own keys; an admin's listing covers the whole org.
pub async fn list_api_keys(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::Key>>> {
    Ok(Json(answer(gw.clients.api_keys().list_api_keys(ctx.request(cloudpb::Empty {}))).await?.keys))
}

/// `GET /api/v1/api-keys/{id}`.
pub async fn get_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<cloudpb::Key>> {
    Ok(Json(answer(gw.clients.api_keys().get_api_key(ctx.request(id(key)))).await?))
}

/// `DELETE /api/v1/api-keys/{id}`: revokes the key (it stays listed, with `revoked_at`).
pub async fn delete_api_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.api_keys().delete_api_key(ctx.request(id(key)))).await
}

/// `POST /api/v1/deploy-keys` (admins).
pub async fn create_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<cloudpb::CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<cloudpb::CreatedKey>)> {
    Ok((StatusCode::CREATED, Json(answer(gw.clients.deploy_keys().create_deploy_key(ctx.request(req))).await?)))
}

/// `GET /api/v1/deploy-keys`.
pub async fn list_deploy_keys(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::Key>>> {
    Ok(Json(answer(gw.clients.deploy_keys().list_deploy_keys(ctx.request(cloudpb::Empty {}))).await?.keys))
}

/// `GET /api/v1/deploy-keys/{id}`.
pub async fn get_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<Json<cloudpb::Key>> {
    Ok(Json(answer(gw.clients.deploy_keys().get_deploy_key(ctx.request(id(key)))).await?))
}

/// `DELETE /api/v1/deploy-keys/{id}` (admins).
pub async fn delete_deploy_key(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(key): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.deploy_keys().delete_deploy_key(ctx.request(id(key)))).await
}
