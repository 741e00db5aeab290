//! `/api/v1/api-keys` and `/api/v1/deploy-keys`: create (the key is shown once), list, get and revoke.
//!
//! Owns who may manage which key: every user manages their own API keys and admins see and revoke all of
//! their org's; deploy keys are listed by any member but created and revoked only by admins. Must not store or
//! return key material after creation (only its hash and display prefix are kept).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_auth::{display_prefix, generate_api_key, generate_deploy_key};
use loupe_metastore::{ApiKey, DeployKey, NewApiKey, NewDeployKey};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::{parse_id, to_secs};
use crate::caller::{ApiJson, ApiPath, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

/// Longest key description.
const MAX_DESCRIPTION_LEN: usize = 1024;

/// `POST /api/v1/api-keys` and `/api/v1/deploy-keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    #[serde(default)]
    description: String,
}

/// A key as listed (no key material).
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Key id.
    pub id: String,
    /// The first characters of the key, to tell keys apart.
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last use, Unix seconds.
    pub last_used_at: Option<i64>,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
    /// The owning user (API keys) or the creator (deploy keys).
    pub user_id: Option<String>,
}

/// The answer to a key creation: the only time the key itself is shown.
#[derive(Debug, Serialize)]
pub struct CreatedKey {
    /// Key id.
    pub id: String,
    /// The key; store it now, it cannot be shown again.
    pub key: String,
    /// The first characters of the key.
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// The 201 answer to a key creation, API or deploy key alike: the only time the key itself is shown.
fn created(
    key: String,
    id: Uuid,
    prefix: String,
    description: String,
    created_at: i64,
) -> (StatusCode, Json<CreatedKey>) {
    let created_at = to_secs(created_at);
    (StatusCode::CREATED, Json(CreatedKey { id: id.to_string(), key, prefix, description, created_at }))
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            prefix: k.prefix.clone(),
            description: k.description.clone(),
            created_at: to_secs(k.created_at),
            last_used_at: k.last_used_at.map(to_secs),
            revoked_at: k.revoked_at.map(to_secs),
            user_id: Some(k.user_id.to_string()),
        }
    }
}

impl From<&DeployKey> for KeyView {
    fn from(k: &DeployKey) -> Self {
        Self {
            id: k.id.to_string(),
            prefix: k.prefix.clone(),
            description: k.description.clone(),
            created_at: to_secs(k.created_at),
            last_used_at: k.last_used_at.map(to_secs),
            revoked_at: k.revoked_at.map(to_secs),
            user_id: k.created_by.map(|u| u.to_string()),
        }
    }
}

fn check_description(description: &str) -> ApiResult<()> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(format!("description must be at most {MAX_DESCRIPTION_LEN} characters")));
    }
    Ok(())
}

/// The API key `id` if the caller may see it: their own, or any of the org's for an admin.
async fn visible_api_key(state: &CloudState, caller: &Caller, id: &str) -> ApiResult<ApiKey> {
    let not_found = || ApiError::not_found("api key not found");
    let id = parse_id(id).ok_or_else(not_found)?;
    let key = state.metastore.get_api_key(caller.org_id(), id).await?;
    if key.user_id != caller.user_id() && !caller.is_admin() {
        return Err(not_found());
    }
    Ok(key)
}

/// `POST /api/v1/api-keys`.
pub async fn create_api_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    check_description(&req.description)?;
    let (key, hash) = generate_api_key().map_err(ApiError::internal)?;
    let stored = state
        .metastore
        .create_api_key(NewApiKey {
            org_id: caller.org_id(),
            user_id: caller.user_id(),
            description: req.description,
            key_hash: hash.as_str().to_owned(),
            prefix: display_prefix(&key).to_owned(),
        })
        .await?;
    Ok(created(key, stored.id, stored.prefix, stored.description, stored.created_at))
}

/// `GET /api/v1/api-keys`: the caller's own keys; an admin's listing covers the whole org.
pub async fn list_api_keys(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<KeyView>>> {
    let only_user = (!caller.is_admin()).then(|| caller.user_id());
    let keys = state.metastore.list_api_keys(caller.org_id(), only_user).await?;
    Ok(Json(keys.iter().map(KeyView::from).collect()))
}

/// `GET /api/v1/api-keys/{id}`.
pub async fn get_api_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KeyView>> {
    let key = visible_api_key(&state, &caller, &id).await?;
    Ok(Json(KeyView::from(&key)))
}

/// `DELETE /api/v1/api-keys/{id}`: revokes the key (it stays listed, with `revoked_at`).
pub async fn delete_api_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let key = visible_api_key(&state, &caller, &id).await?;
    state.metastore.revoke_api_key(caller.org_id(), key.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn org_deploy_key(state: &CloudState, caller: &Caller, id: &str) -> ApiResult<DeployKey> {
    let id: Uuid = parse_id(id).ok_or_else(|| ApiError::not_found("deploy key not found"))?;
    Ok(state.metastore.get_deploy_key(caller.org_id(), id).await?)
}

/// `POST /api/v1/deploy-keys` (admins).
pub async fn create_deploy_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    caller.require_admin("create deploy keys")?;
    check_description(&req.description)?;
    let (key, hash) = generate_deploy_key().map_err(ApiError::internal)?;
    let stored = state
        .metastore
        .create_deploy_key(NewDeployKey {
            org_id: caller.org_id(),
            created_by: Some(caller.user_id()),
            description: req.description,
            key_hash: hash.as_str().to_owned(),
            prefix: display_prefix(&key).to_owned(),
        })
        .await?;
    Ok(created(key, stored.id, stored.prefix, stored.description, stored.created_at))
}

/// `GET /api/v1/deploy-keys`.
pub async fn list_deploy_keys(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<KeyView>>> {
    let keys = state.metastore.list_deploy_keys(caller.org_id()).await?;
    Ok(Json(keys.iter().map(KeyView::from).collect()))
}

/// `GET /api/v1/deploy-keys/{id}`.
pub async fn get_deploy_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(KeyView::from(&org_deploy_key(&state, &caller, &id).await?)))
}

/// `DELETE /api/v1/deploy-keys/{id}` (admins).
pub async fn delete_deploy_key(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin("revoke deploy keys")?;
    let key = org_deploy_key(&state, &caller, &id).await?;
    state.metastore.revoke_deploy_key(caller.org_id(), key.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
