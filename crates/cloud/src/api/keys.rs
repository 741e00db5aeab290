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

/// The four REST handlers of one kind of key, each one call of that kind's generated client: the two kinds differ
/// only in names (paths, clients, methods), so they are written once.
macro_rules! key_handlers {
    (
        $path:literal, $client:ident,
        $create:ident, $list:ident, $get:ident, $delete:ident
    ) => {
        #[doc = concat!("`POST ", $path, "`: the key is in the answer, and only there.")]
        pub async fn $create(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiJson(req): ApiJson<cloudpb::CreateKeyRequest>,
        ) -> ApiResult<(StatusCode, Json<cloudpb::CreatedKey>)> {
            Ok((StatusCode::CREATED, Json(answer(gw.clients.$client().$create(ctx.request(req))).await?)))
        }

        #[doc = concat!("`GET ", $path, "`: the keys the caller may see (`services::keys` decides which).")]
        pub async fn $list(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::Key>>> {
            Ok(Json(answer(gw.clients.$client().$list(ctx.request(cloudpb::Empty {}))).await?.keys))
        }

        #[doc = concat!("`GET ", $path, "/{id}`.")]
        pub async fn $get(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiPath(key): ApiPath<String>,
        ) -> ApiResult<Json<cloudpb::Key>> {
            Ok(Json(answer(gw.clients.$client().$get(ctx.request(id(key)))).await?))
        }

        #[doc = concat!("`DELETE ", $path, "/{id}`: revokes the key (it stays listed, with `revoked_at`).")]
        pub async fn $delete(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiPath(key): ApiPath<String>,
        ) -> ApiResult<StatusCode> {
            no_content(gw.clients.$client().$delete(ctx.request(id(key)))).await
        }
    };
}

key_handlers!("/api/v1/api-keys", api_keys, create_api_key, list_api_keys, get_api_key, delete_api_key);
key_handlers!(
    "/api/v1/deploy-keys",
    deploy_keys,
    create_deploy_key,
    list_deploy_keys,
    get_deploy_key,
    delete_deploy_key
);
