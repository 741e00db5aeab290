//! `/api/v1/scripts`: the bundled catalog (`px/…`, read-only) merged with the org's saved scripts (`org/…`).
//!
//! Owns script naming (`org/<[a-z0-9_-]+>` for saved scripts) and who may write them (admins). Must not run or
//! compile scripts; PxL is stored as text and checked when it runs.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_metastore::{NewScript, Script, ScriptUpdate};
use serde::{Deserialize, Serialize};

use crate::api::to_secs;
use crate::caller::{ApiJson, ApiPath, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

/// Prefix of bundled (read-only) scripts.
pub const BUNDLED_PREFIX: &str = "px/";
/// Prefix of org scripts.
pub const ORG_PREFIX: &str = "org/";
/// Longest name after `org/`.
const MAX_NAME_LEN: usize = 64;
/// Largest PxL source or vis spec (as JSON text).
const MAX_SCRIPT_BYTES: usize = 256 * 1024;
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 4096;

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

/// A script in a listing.
#[derive(Debug, Serialize)]
pub struct ScriptSummary {
    /// `px/…` or `org/…`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `bundled` or `org`.
    pub source: &'static str,
    /// True for bundled scripts.
    pub read_only: bool,
    /// Last change, Unix seconds (org scripts).
    pub updated_at: Option<i64>,
}

/// One script with its content.
#[derive(Debug, Serialize)]
pub struct ScriptView {
    /// `px/…` or `org/…`.
    pub name: String,
    /// Free text.
    pub description: String,
    /// `bundled` or `org`.
    pub source: &'static str,
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

impl From<Script> for ScriptView {
    fn from(s: Script) -> Self {
        let vis = if s.vis.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&s.vis).unwrap_or(serde_json::Value::String(s.vis))
        };
        Self {
            name: s.name,
            description: s.description,
            source: "org",
            read_only: false,
            pxl: s.pxl,
            vis,
            created_at: Some(to_secs(s.created_at)),
            updated_at: Some(to_secs(s.updated_at)),
        }
    }
}

/// Checks an org script name: `org/` then 1–64 of `[a-z0-9_-]`. Bundled names are refused as read-only.
fn check_org_name(name: &str) -> ApiResult<()> {
    if name.starts_with(BUNDLED_PREFIX) {
        return Err(ApiError::forbidden("bundled scripts (px/…) are read-only; save a copy as org/<name>"));
    }
    let valid = name.strip_prefix(ORG_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= MAX_NAME_LEN
            && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("script names must look like org/<name> with 1 to {MAX_NAME_LEN} of [a-z0-9_-]")))
    }
}

fn check_content(pxl: &str, vis: &Option<serde_json::Value>, description: &str) -> ApiResult<String> {
    if pxl.trim().is_empty() {
        return Err(ApiError::invalid("pxl must not be empty"));
    }
    if pxl.len() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid(format!("pxl must be at most {MAX_SCRIPT_BYTES} bytes")));
    }
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(format!("description must be at most {MAX_DESCRIPTION_LEN} characters")));
    }
    let vis = match vis {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(value) => value.to_string(),
    };
    if vis.len() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid(format!("vis must be at most {MAX_SCRIPT_BYTES} bytes of JSON")));
    }
    Ok(vis)
}

/// `GET /api/v1/scripts`: bundled scripts, then the org's, each by name.
pub async fn list_scripts(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<ScriptSummary>>> {
    let mut out: Vec<ScriptSummary> = loupe_pxl::bundled::scripts()
        .iter()
        .map(|s| ScriptSummary {
            name: s.name.to_owned(),
            description: s.short.to_owned(),
            source: "bundled",
            read_only: true,
            updated_at: None,
        })
        .collect();
    for s in state.metastore.list_scripts(caller.org_id()).await? {
        out.push(ScriptSummary {
            name: s.name,
            description: s.description,
            source: "org",
            read_only: false,
            updated_at: Some(to_secs(s.updated_at)),
        });
    }
    Ok(Json(out))
}

/// `GET /api/v1/scripts/{name}`.
pub async fn get_script(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<ScriptView>> {
    if name.starts_with(BUNDLED_PREFIX) {
        let script = loupe_pxl::bundled::scripts()
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| ApiError::not_found("script not found"))?;
        return Ok(Json(ScriptView {
            name: script.name.to_owned(),
            description: script.short.to_owned(),
            source: "bundled",
            read_only: true,
            pxl: script.pxl.to_owned(),
            vis: serde_json::Value::Null,
            created_at: None,
            updated_at: None,
        }));
    }
    if check_org_name(&name).is_err() {
        return Err(ApiError::not_found("script not found"));
    }
    Ok(Json(state.metastore.get_script(caller.org_id(), &name).await?.into()))
}

/// `POST /api/v1/scripts` (admins).
pub async fn create_script(
    State(state): State<CloudState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateScriptRequest>,
) -> ApiResult<(StatusCode, Json<ScriptView>)> {
    caller.require_admin("save org scripts")?;
    check_org_name(&req.name)?;
    let vis = check_content(&req.pxl, &req.vis, &req.description)?;
    let script = state
        .metastore
        .create_script(NewScript {
            org_id: caller.org_id(),
            name: req.name,
            pxl: req.pxl,
            vis,
            description: req.description,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(script.into())))
}

/// `PUT /api/v1/scripts/{name}` (admins).
pub async fn update_script(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateScriptRequest>,
) -> ApiResult<Json<ScriptView>> {
    caller.require_admin("change org scripts")?;
    check_org_name(&name)?;
    let vis = check_content(&req.pxl, &req.vis, &req.description)?;
    let update = ScriptUpdate { pxl: req.pxl, vis, description: req.description };
    Ok(Json(state.metastore.update_script(caller.org_id(), &name, update).await?.into()))
}

/// `DELETE /api/v1/scripts/{name}` (admins).
pub async fn delete_script(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin("delete org scripts")?;
    check_org_name(&name)?;
    state.metastore.delete_script(caller.org_id(), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_names_are_checked() {
        assert!(check_org_name("org/my_script-1").is_ok());
        for bad in ["org/", "org/A", "org/a b", "org/a/b", "mine", "org/x'; DROP TABLE scripts;--", ""] {
            assert_eq!(check_org_name(bad).map_err(|e| e.status().as_u16()), Err(400), "{bad}");
        }
        assert_eq!(check_org_name("px/http_data").map_err(|e| e.status().as_u16()), Err(403));
        assert!(check_org_name(&format!("org/{}", "a".repeat(65))).is_err());
    }
}
