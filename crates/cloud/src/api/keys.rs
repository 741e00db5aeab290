//! `/api/v1/api-keys` and `/api/v1/deploy-keys` (`ApiKeyService`, `DeployKeyService`).
//!
//! Owns nothing but the translation; who may manage which key, and that a revoked key is gone from its URL
//! (`GET` and `DELETE` answer 404) while listings keep it, are decided in `services::keys`. The two kinds differ only in names (paths, clients, methods), so their four
//! handlers are written once, by `key_handlers!`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::model::{CreateKeyRequest, CreatedKey, Key};
use super::{ApiJson, ApiPath, IdPath, answer, no_content};
use crate::error::ApiResult;
use crate::gateway::{CallContext, Gateway};

/// The four REST handlers of one kind of key, each one call of that kind's generated client. (rustfmt re-indents
/// the `utoipa::path` arguments inside a macro on every run, so it is told to leave this one alone.)
#[rustfmt::skip]
macro_rules! key_handlers {
    (
        $path:literal, $item_path:literal, $client:ident,
        $create:ident, $list:ident, $get:ident, $delete:ident
    ) => {
        /// Create a key (API keys: the caller's own; deploy keys: the org's, admins only). The key is in the
        /// answer, and only there.
        #[utoipa::path(post, path = $path, tag = "keys", request_body = CreateKeyRequest, responses(
            (status = 201, description = "the new key, shown once", body = CreatedKey),
        ))]
        pub async fn $create(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiJson(req): ApiJson<CreateKeyRequest>,
        ) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
            let created = answer(gw.clients.$client().$create(ctx.request(req.into()))).await?;
            Ok((StatusCode::CREATED, Json(created.into())))
        }

        /// The keys the caller may see (API keys: the caller's own, the whole org's for an admin; deploy keys:
        /// the org's). Revoked keys stay listed.
        #[utoipa::path(get, path = $path, tag = "keys", responses(
            (status = 200, description = "the keys", body = Vec<Key>),
        ))]
        pub async fn $list(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<Key>>> {
            let list = answer(gw.clients.$client().$list(ctx.request(cloudpb::Empty {}))).await?;
            Ok(Json(list.keys.into_iter().map(Key::from).collect()))
        }

        /// One live key the caller may see.
        #[utoipa::path(get, path = $item_path, tag = "keys", params(IdPath), responses(
            (status = 200, description = "the key", body = Key),
        ))]
        pub async fn $get(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiPath(path): ApiPath<IdPath>,
        ) -> ApiResult<Json<Key>> {
            Ok(Json(answer(gw.clients.$client().$get(ctx.request(path.request()))).await?.into()))
        }

        /// Revoke a key: it stays listed, with `revoked_at`, and its URL answers 404 from then on.
        #[utoipa::path(delete, path = $item_path, tag = "keys", params(IdPath), responses(
            (status = 204, description = "revoked"),
        ))]
        pub async fn $delete(
            State(gw): State<Gateway>,
            ctx: CallContext,
            ApiPath(path): ApiPath<IdPath>,
        ) -> ApiResult<StatusCode> {
            no_content(gw.clients.$client().$delete(ctx.request(path.request()))).await
        }
    };
}

key_handlers!(
    "/api/v1/api-keys",
    "/api/v1/api-keys/{id}",
    api_keys,
    create_api_key,
    list_api_keys,
    get_api_key,
    delete_api_key
);
key_handlers!(
    "/api/v1/deploy-keys",
    "/api/v1/deploy-keys/{id}",
    deploy_keys,
    create_deploy_key,
    list_deploy_keys,
    get_deploy_key,
    delete_deploy_key
);
