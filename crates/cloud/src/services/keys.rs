//! `ApiKeyService` and `DeployKeyService`: create (the key is shown once), list, get and revoke.
//!
//! Owns who may manage which key: every user manages their own API keys and admins see and revoke all of
//! their org's; deploy keys are listed by any member but created and revoked only by admins. Must not store or
//! return key material after creation (only its hash and display prefix are kept).

use loupe_auth::{display_prefix, generate_api_key, generate_deploy_key};
use loupe_metastore::{ApiKey, DeployKey, NewApiKey, NewDeployKey};
use loupe_proto::cloudpb::{self, api_key_service_server::ApiKeyService, deploy_key_service_server::DeployKeyService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::caller::Caller;
use super::{CloudServices, parse_id, to_secs};
use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

/// Longest key description.
const MAX_DESCRIPTION_LEN: usize = 1024;

/// The answer to a key creation, API or deploy key alike: the only time the key itself is shown.
fn created(key: String, id: Uuid, prefix: String, description: String, created_at: i64) -> cloudpb::CreatedKey {
    cloudpb::CreatedKey { id: id.to_string(), key, prefix, description, created_at: to_secs(created_at) }
}

pub(crate) fn api_key_view(k: &ApiKey) -> cloudpb::Key {
    cloudpb::Key {
        id: k.id.to_string(),
        prefix: k.prefix.clone(),
        description: k.description.clone(),
        created_at: to_secs(k.created_at),
        last_used_at: k.last_used_at.map(to_secs),
        revoked_at: k.revoked_at.map(to_secs),
        user_id: Some(k.user_id.to_string()),
    }
}

fn deploy_key_view(k: &DeployKey) -> cloudpb::Key {
    cloudpb::Key {
        id: k.id.to_string(),
        prefix: k.prefix.clone(),
        description: k.description.clone(),
        created_at: to_secs(k.created_at),
        last_used_at: k.last_used_at.map(to_secs),
        revoked_at: k.revoked_at.map(to_secs),
        user_id: k.created_by.map(|u| u.to_string()),
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
    let id = parse_id(id, "api key")?;
    let key = state.metastore.get_api_key(caller.org_id(), id).await?;
    if key.user_id != caller.user_id() && !caller.is_admin() {
        return Err(ApiError::not_found("api key not found"));
    }
    Ok(key)
}

async fn org_deploy_key(state: &CloudState, caller: &Caller, id: &str) -> ApiResult<DeployKey> {
    let id = parse_id(id, "deploy key")?;
    Ok(state.metastore.get_deploy_key(caller.org_id(), id).await?)
}

#[tonic::async_trait]
impl ApiKeyService for CloudServices {
    async fn create_api_key(
        &self,
        request: Request<cloudpb::CreateKeyRequest>,
    ) -> Result<Response<cloudpb::CreatedKey>, Status> {
        self.with_caller(request, |caller, req| async move {
            check_description(&req.description)?;
            let (key, hash) = generate_api_key().map_err(ApiError::internal)?;
            let stored = self
                .state
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
        })
        .await
    }

    /// The caller's own keys; an admin's listing covers the whole org.
    async fn list_api_keys(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::KeyList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let only_user = (!caller.is_admin()).then(|| caller.user_id());
            let keys = self.state.metastore.list_api_keys(caller.org_id(), only_user).await?;
            Ok(cloudpb::KeyList { keys: keys.iter().map(api_key_view).collect() })
        })
        .await
    }

    async fn get_api_key(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Key>, Status> {
        self.with_caller(request, |caller, req| async move {
            Ok(api_key_view(&visible_api_key(&self.state, &caller, &req.id).await?))
        })
        .await
    }

    /// Revokes the key (it stays listed, with `revoked_at`).
    async fn delete_api_key(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            let key = visible_api_key(&self.state, &caller, &req.id).await?;
            self.state.metastore.revoke_api_key(caller.org_id(), key.id).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }
}

#[tonic::async_trait]
impl DeployKeyService for CloudServices {
    async fn create_deploy_key(
        &self,
        request: Request<cloudpb::CreateKeyRequest>,
    ) -> Result<Response<cloudpb::CreatedKey>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("create deploy keys")?;
            check_description(&req.description)?;
            let (key, hash) = generate_deploy_key().map_err(ApiError::internal)?;
            let stored = self
                .state
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
        })
        .await
    }

    async fn list_deploy_keys(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::KeyList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let keys = self.state.metastore.list_deploy_keys(caller.org_id()).await?;
            Ok(cloudpb::KeyList { keys: keys.iter().map(deploy_key_view).collect() })
        })
        .await
    }

    async fn get_deploy_key(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Key>, Status> {
        self.with_caller(request, |caller, req| async move {
            Ok(deploy_key_view(&org_deploy_key(&self.state, &caller, &req.id).await?))
        })
        .await
    }

    async fn delete_deploy_key(
        &self,
        request: Request<cloudpb::IdRequest>,
    ) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("revoke deploy keys")?;
            let key = org_deploy_key(&self.state, &caller, &req.id).await?;
            self.state.metastore.revoke_deploy_key(caller.org_id(), key.id).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }
}
