//! `/api/v1/scripts` (`ScriptService`): the bundled catalog (`px/…`) merged with the org's scripts (`org/…`).
//!
//! Owns the one REST-specific shape: `vis` is a JSON value here and JSON text (`vis_json`) in the service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;
use serde::{Deserialize, Serialize};

use super::{answer, no_content};
use crate::caller::{ApiJson, ApiPath};
use crate::error::ApiResult;
use crate::gateway::{CallContext, Gateway};

/// `POST /api/v1/scripts` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateScriptRequest {
    name: String,
    pxl: String,
    #[serde(default)]
    vis: Option<serde_json::Value>,
    #[serde(default)]
    description: String,
}

/// `PUT /api/v1/scripts/{name}` body: the new content (the name stays).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateScriptRequest {
    pxl: String,
    #[serde(default)]
    vis: Option<serde_json::Value>,
    #[serde(default)]
    description: String,
}

/// One script with its content.
#[derive(Debug, Serialize)]
pub struct ScriptView {
    /// `px/…` or `org/…`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `bundled` or `org`.
    pub source: String,
    /// True for bundled scripts.
    pub read_only: bool,
    /// PxL source.
    pub pxl: String,
    /// Vis spec (JSON), if any.
    pub vis: serde_json::Value,
    /// Creation time, Unix seconds (org scripts).
    pub created_at: Option<i64>,
    /// Last change, Unix seconds (org scripts).
    pub updated_at: Option<i64>,
}

impl From<cloudpb::Script> for ScriptView {
    fn from(s: cloudpb::Script) -> Self {
        let vis = if s.vis_json.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&s.vis_json).unwrap_or(serde_json::Value::String(s.vis_json))
        };
        Self {
            name: s.name,
            description: s.description,
            source: s.source,
            read_only: s.read_only,
            pxl: s.pxl,
            vis,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn vis_json(vis: Option<serde_json::Value>) -> String {
    match vis {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(value) => value.to_string(),
    }
}

/// `GET /api/v1/scripts`: bundled scripts, then the org's, each by name.
pub async fn list_scripts(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<cloudpb::ScriptSummary>>> {
    Ok(Json(answer(gw.clients.scripts().list_scripts(ctx.request(cloudpb::Empty {}))).await?.scripts))
}

/// `GET /api/v1/scripts/{name}`.
pub async fn get_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScriptView>> {
    let script = answer(gw.clients.scripts().get_script(ctx.request(cloudpb::ScriptName { name }))).await?;
    Ok(Json(script.into()))
}

/// `POST /api/v1/scripts` (admins).
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

/// `PUT /api/v1/scripts/{name}` (admins).
pub async fn update_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateScriptRequest>,
) -> ApiResult<Json<ScriptView>> {
    let save =
        cloudpb::SaveScriptRequest { name, pxl: req.pxl, vis_json: vis_json(req.vis), description: req.description };
    Ok(Json(answer(gw.clients.scripts().update_script(ctx.request(save))).await?.into()))
}

/// `DELETE /api/v1/scripts/{name}` (admins).
pub async fn delete_script(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    no_content(gw.clients.scripts().delete_script(ctx.request(cloudpb::ScriptName { name }))).await
}
