//! `/api/v1/scripts` (`ScriptService`): the bundled catalog (`px/…`) merged with the org's scripts (`org/…`).
//!
//! Owns the REST-specific shapes: a script's URL is `/api/v1/scripts/px/<name>` (bundled, read-only: `GET`
//! only) or `/api/v1/scripts/org/<name>`, and `vis` is a JSON object here and JSON text (`vis_json`) in the
//! service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::model::{CreateScriptRequest, ScriptSummary, ScriptView, UpdateScriptRequest, vis_json};
use super::{ApiJson, ApiPath, answer, no_content};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};
use crate::services::{BUNDLED_PREFIX, ORG_PREFIX};

/// The `{name}` of a script URL: what follows `px/` or `org/` in the script's full name.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NamePath {
    /// 1 to 64 of `[a-z0-9_-]`.
    #[param(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub name: String,
}

/// Bundled scripts, then the org's, each by name.
#[utoipa::path(get, path = "/api/v1/scripts", tag = "scripts", responses(
    (status = 200, description = "the scripts", body = Vec<ScriptSummary>),
))]
pub async fn list_scripts(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<ScriptSummary>>> {
    let list = answer(gw.clients.scripts().list_scripts(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.scripts.into_iter().map(ScriptSummary::from).collect()))
}

async fn get(gw: &Gateway, ctx: &CallContext, name: String) -> ApiResult<Json<ScriptView>> {
    let script = answer(gw.clients.scripts().get_script(ctx.request(cloudpb::ScriptName { name }))).await?;
    Ok(Json(script.into()))
}

/// One bundled script (`px/<name>`) with its PxL.
#[utoipa::path(get, path = "/api/v1/scripts/px/{name}", tag = "scripts", params(NamePath), responses(
    (status = 200, description = "the script", body = ScriptView),
))]
pub async fn get_bundled_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ScriptView>> {
    get(&gw, &ctx, format!("{BUNDLED_PREFIX}{name}")).await
}

/// One org script (`org/<name>`) with its PxL.
#[utoipa::path(get, path = "/api/v1/scripts/org/{name}", tag = "scripts", params(NamePath), responses(
    (status = 200, description = "the script", body = ScriptView),
))]
pub async fn get_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<Json<ScriptView>> {
    get(&gw, &ctx, format!("{ORG_PREFIX}{name}")).await
}

/// Save an org script (admins); it is compiled first.
#[utoipa::path(post, path = "/api/v1/scripts", tag = "scripts", request_body = CreateScriptRequest, responses(
    (status = 201, description = "the saved script", body = ScriptView),
    (status = 403, description = "the caller is not an admin, or the name is a bundled one (px/…)",
        body = ErrorBody),
    (status = 409, description = "a script with this name exists", body = ErrorBody),
))]
pub async fn create_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<CreateScriptRequest>,
) -> ApiResult<(StatusCode, Json<ScriptView>)> {
    let save = cloudpb::SaveScriptRequest {
        name: req.name,
        pxl: req.pxl,
        vis_json: vis_json(req.vis),
        description: req.description,
    };
    let script = answer(gw.clients.scripts().create_script(ctx.request(save))).await?;
    Ok((StatusCode::CREATED, Json(script.into())))
}

/// Change an org script (admins); it is compiled first.
#[utoipa::path(put, path = "/api/v1/scripts/org/{name}", tag = "scripts", params(NamePath),
    request_body = UpdateScriptRequest, responses(
        (status = 200, description = "the saved script", body = ScriptView),
    ))]
pub async fn update_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    ApiJson(req): ApiJson<UpdateScriptRequest>,
) -> ApiResult<Json<ScriptView>> {
    let save = cloudpb::SaveScriptRequest {
        name: format!("{ORG_PREFIX}{name}"),
        pxl: req.pxl,
        vis_json: vis_json(req.vis),
        description: req.description,
    };
    Ok(Json(answer(gw.clients.scripts().update_script(ctx.request(save))).await?.into()))
}

/// Delete an org script (admins).
#[utoipa::path(delete, path = "/api/v1/scripts/org/{name}", tag = "scripts", params(NamePath), responses(
    (status = 204, description = "deleted"),
    (status = 400, description = "not an org script name (1 to 64 of [a-z0-9_-])", body = ErrorBody),
))]
pub async fn delete_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> ApiResult<StatusCode> {
    let name = format!("{ORG_PREFIX}{name}");
    no_content(gw.clients.scripts().delete_script(ctx.request(cloudpb::ScriptName { name }))).await
}
