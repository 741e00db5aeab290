//! `/api/v1/cron-scripts` (`CronScriptService`): the org's cron scripts, by name, and their last results.
//!
//! Owns the REST shapes: the schedule is `frequency_s` or `cron` (the service's `0` and empty string are
//! `null` here), and an update is a `PATCH` of the fields given. Must not decide anything the service decides.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;

use super::model::{CreateCronScriptRequest, CronScriptResultView, CronScriptView, UpdateCronScriptRequest};
use super::{ApiJson, ApiPath, answer, no_content};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};

/// The `{name}` of a cron script URL.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CronNamePath {
    /// Its name (1 to 64 of `[a-z0-9_-]`) or id.
    #[param(max_length = 64)]
    pub name: String,
}

impl CronNamePath {
    fn request(self) -> cloudpb::CronScriptName {
        cloudpb::CronScriptName { name: self.name }
    }
}

/// The org's cron scripts, oldest first.
#[utoipa::path(get, path = "/api/v1/cron-scripts", tag = "cron", responses(
    (status = 200, description = "the cron scripts", body = Vec<CronScriptView>),
))]
pub async fn list_cron_scripts(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<CronScriptView>>> {
    let list = answer(gw.clients.cron_scripts().list_cron_scripts(ctx.request(cloudpb::Empty {}))).await?;
    Ok(Json(list.scripts.into_iter().map(CronScriptView::from).collect()))
}

/// Create a cron script; it is compiled first and sent to its viziers.
#[utoipa::path(post, path = "/api/v1/cron-scripts", tag = "cron", request_body = CreateCronScriptRequest,
    responses(
        (status = 201, description = "the cron script", body = CronScriptView),
        (status = 409, description = "a cron script with this name exists", body = ErrorBody),
    ))]
pub async fn create_cron_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<CreateCronScriptRequest>,
) -> ApiResult<(StatusCode, Json<CronScriptView>)> {
    let create = cloudpb::CreateCronScriptRequest {
        name: req.name,
        script: req.script,
        frequency_s: req.frequency_s,
        cron: req.cron,
        viziers: req.viziers,
        enabled: req.enabled,
    };
    let created = answer(gw.clients.cron_scripts().create_cron_script(ctx.request(create))).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// One cron script.
#[utoipa::path(get, path = "/api/v1/cron-scripts/{name}", tag = "cron", params(CronNamePath), responses(
    (status = 200, description = "the cron script", body = CronScriptView),
))]
pub async fn get_cron_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<CronNamePath>,
) -> ApiResult<Json<CronScriptView>> {
    Ok(Json(answer(gw.clients.cron_scripts().get_cron_script(ctx.request(path.request()))).await?.into()))
}

/// Change a cron script (script, schedule, enabled).
#[utoipa::path(patch, path = "/api/v1/cron-scripts/{name}", tag = "cron", params(CronNamePath),
    request_body = UpdateCronScriptRequest, responses(
        (status = 200, description = "the cron script", body = CronScriptView),
    ))]
pub async fn update_cron_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<CronNamePath>,
    ApiJson(req): ApiJson<UpdateCronScriptRequest>,
) -> ApiResult<Json<CronScriptView>> {
    let update = cloudpb::UpdateCronScriptRequest {
        name: path.name,
        script: req.script,
        frequency_s: req.frequency_s,
        cron: req.cron,
        enabled: req.enabled,
    };
    Ok(Json(answer(gw.clients.cron_scripts().update_cron_script(ctx.request(update))).await?.into()))
}

/// Delete a cron script (its viziers stop running it) and its results.
#[utoipa::path(delete, path = "/api/v1/cron-scripts/{name}", tag = "cron", params(CronNamePath), responses(
    (status = 204, description = "deleted"),
))]
pub async fn delete_cron_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<CronNamePath>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.cron_scripts().delete_cron_script(ctx.request(path.request()))).await
}

/// The last results of a cron script (the newest 100 by default), oldest run first.
#[utoipa::path(get, path = "/api/v1/cron-scripts/{name}/results", tag = "cron", params(CronNamePath), responses(
    (status = 200, description = "the results", body = Vec<CronScriptResultView>),
))]
pub async fn list_cron_script_results(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<CronNamePath>,
) -> ApiResult<Json<Vec<CronScriptResultView>>> {
    let list = answer(gw.clients.cron_scripts().list_cron_script_results(ctx.request(path.request()))).await?;
    Ok(Json(list.results.into_iter().map(CronScriptResultView::from).collect()))
}
