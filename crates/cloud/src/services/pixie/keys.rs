//! `px.cloudapi.APIKeyManager` and `VizierDeploymentKeyManager` over Loupe's `ApiKeyService` and
//! `DeployKeyService`. Loupe stores only key hashes, so a key's text is in the answer to `Create` and never
//! again (`Get` leaves it empty), and `Lookup*` (finding a key by its text) is not served.
//!
//! Owns the message mapping of both key kinds. Must not decide who may see or revoke a key.

use loupe_proto::cloudpb::{
    self, api_key_service_server::ApiKeyService as _, auth_service_server::AuthService as _,
    deploy_key_service_server::DeployKeyService as _,
};
use loupe_proto::pixie::cloudpb as px;
use loupe_proto::pixie::uuidpb;
use tonic::{Request, Response, Status};

use super::{id_from_pb, id_to_pb, relay, timestamp, unimplemented};
use crate::services::CloudServices;

/// The caller's org id in Pixie's form (every key belongs to the caller's org).
async fn org_of<T>(services: &CloudServices, request: &Request<T>) -> Result<uuidpb::Uuid, Status> {
    let me = services.me(relay(request, cloudpb::Empty {})).await?.into_inner();
    Ok(id_to_pb(&me.org.unwrap_or_default().id))
}

/// The fields both key kinds and both forms (with and without the key's text) share.
struct Common {
    id: Option<uuidpb::Uuid>,
    created_at: Option<loupe_proto::pixie::Timestamp>,
    desc: String,
    org_id: Option<uuidpb::Uuid>,
    user_id: Option<uuidpb::Uuid>,
}

fn common(k: &cloudpb::Key, org: &uuidpb::Uuid) -> Common {
    Common {
        id: Some(id_to_pb(&k.id)),
        created_at: Some(timestamp(k.created_at)),
        desc: k.description.clone(),
        org_id: Some(*org),
        user_id: k.user_id.as_deref().map(id_to_pb),
    }
}

fn created(k: &cloudpb::CreatedKey) -> cloudpb::Key {
    cloudpb::Key {
        id: k.id.clone(),
        prefix: k.prefix.clone(),
        description: k.description.clone(),
        created_at: k.created_at,
        ..Default::default()
    }
}

fn api_key(c: Common, key: String) -> px::ApiKey {
    px::ApiKey { id: c.id, key, created_at: c.created_at, desc: c.desc, org_id: c.org_id, user_id: c.user_id }
}

fn deploy_key(c: Common, key: String) -> px::DeploymentKey {
    px::DeploymentKey { id: c.id, key, created_at: c.created_at, desc: c.desc, org_id: c.org_id, user_id: c.user_id }
}

#[tonic::async_trait]
impl px::api_key_manager_server::ApiKeyManager for CloudServices {
    async fn create(&self, request: Request<px::CreateApiKeyRequest>) -> Result<Response<px::ApiKey>, Status> {
        let org = org_of(self, &request).await?;
        let description = request.get_ref().desc.clone();
        let k = self.create_api_key(relay(&request, cloudpb::CreateKeyRequest { description })).await?.into_inner();
        let me = self.me(relay(&request, cloudpb::Empty {})).await?.into_inner();
        let mut c = common(&created(&k), &org);
        c.user_id = me.user.map(|u| id_to_pb(&u.id));
        Ok(Response::new(api_key(c, k.key)))
    }

    async fn list(&self, request: Request<px::ListApiKeyRequest>) -> Result<Response<px::ListApiKeyResponse>, Status> {
        let org = org_of(self, &request).await?;
        let keys = self.list_api_keys(relay(&request, cloudpb::Empty {})).await?.into_inner().keys;
        let keys = keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| {
                let c = common(k, &org);
                px::ApiKeyMetadata {
                    id: c.id,
                    created_at: c.created_at,
                    desc: c.desc,
                    org_id: c.org_id,
                    user_id: c.user_id,
                }
            })
            .collect();
        Ok(Response::new(px::ListApiKeyResponse { keys }))
    }

    async fn get(&self, request: Request<px::GetApiKeyRequest>) -> Result<Response<px::GetApiKeyResponse>, Status> {
        let org = org_of(self, &request).await?;
        let id = id_from_pb(request.get_ref().id.as_ref(), "API key")?;
        let k = self.get_api_key(relay(&request, cloudpb::IdRequest { id })).await?.into_inner();
        Ok(Response::new(px::GetApiKeyResponse { key: Some(api_key(common(&k, &org), String::new())) }))
    }

    async fn delete(&self, request: Request<uuidpb::Uuid>) -> Result<Response<()>, Status> {
        let id = id_from_pb(Some(request.get_ref()), "API key")?;
        self.delete_api_key(relay(&request, cloudpb::IdRequest { id })).await?;
        Ok(Response::new(()))
    }

    async fn lookup_api_key(
        &self,
        _: Request<px::LookupApiKeyRequest>,
    ) -> Result<Response<px::LookupApiKeyResponse>, Status> {
        Err(unimplemented("LookupAPIKey", "Loupe keeps only key hashes and looks keys up when they are used"))
    }
}

#[tonic::async_trait]
impl px::vizier_deployment_key_manager_server::VizierDeploymentKeyManager for CloudServices {
    async fn create(
        &self,
        request: Request<px::CreateDeploymentKeyRequest>,
    ) -> Result<Response<px::DeploymentKey>, Status> {
        let org = org_of(self, &request).await?;
        let description = request.get_ref().desc.clone();
        let k = self.create_deploy_key(relay(&request, cloudpb::CreateKeyRequest { description })).await?.into_inner();
        let me = self.me(relay(&request, cloudpb::Empty {})).await?.into_inner();
        let mut c = common(&created(&k), &org);
        c.user_id = me.user.map(|u| id_to_pb(&u.id));
        Ok(Response::new(deploy_key(c, k.key)))
    }

    async fn list(
        &self,
        request: Request<px::ListDeploymentKeyRequest>,
    ) -> Result<Response<px::ListDeploymentKeyResponse>, Status> {
        let org = org_of(self, &request).await?;
        let keys = self.list_deploy_keys(relay(&request, cloudpb::Empty {})).await?.into_inner().keys;
        let keys = keys
            .iter()
            .filter(|k| k.revoked_at.is_none())
            .map(|k| {
                let c = common(k, &org);
                px::DeploymentKeyMetadata {
                    id: c.id,
                    created_at: c.created_at,
                    desc: c.desc,
                    org_id: c.org_id,
                    user_id: c.user_id,
                }
            })
            .collect();
        Ok(Response::new(px::ListDeploymentKeyResponse { keys }))
    }

    async fn get(
        &self,
        request: Request<px::GetDeploymentKeyRequest>,
    ) -> Result<Response<px::GetDeploymentKeyResponse>, Status> {
        let org = org_of(self, &request).await?;
        let id = id_from_pb(request.get_ref().id.as_ref(), "deploy key")?;
        let k = self.get_deploy_key(relay(&request, cloudpb::IdRequest { id })).await?.into_inner();
        Ok(Response::new(px::GetDeploymentKeyResponse { key: Some(deploy_key(common(&k, &org), String::new())) }))
    }

    async fn delete(&self, request: Request<uuidpb::Uuid>) -> Result<Response<()>, Status> {
        let id = id_from_pb(Some(request.get_ref()), "deploy key")?;
        self.delete_deploy_key(relay(&request, cloudpb::IdRequest { id })).await?;
        Ok(Response::new(()))
    }

    async fn lookup_deployment_key(
        &self,
        _: Request<px::LookupDeploymentKeyRequest>,
    ) -> Result<Response<px::LookupDeploymentKeyResponse>, Status> {
        Err(unimplemented("LookupDeploymentKey", "Loupe keeps only key hashes and looks keys up when they are used"))
    }
}
