//! `ApiKeyService` and `DeployKeyService`, one implementation for both kinds: create (the key is shown once),
//! list, get and revoke. The two gRPC services of `cloudapi.proto` are thin shells over `KeyServiceImpl`, which
//! takes the `KeyKind` and reads the only difference between the kinds from `KindRules`.
//!
//! Owns who may manage which key: every user manages their own API keys and admins see and revoke all of
//! their org's; deploy keys are listed by any member but created and revoked only by admins. Must not store or
//! return key material after creation (only its hash and display prefix are kept).

use loupe_auth::{display_prefix, generate_key};
use loupe_metastore::{Key, KeyKind, NewKey};
use loupe_proto::cloudpb::{self, api_key_service_server::ApiKeyService, deploy_key_service_server::DeployKeyService};
use tonic::{Request, Response, Status};

use super::caller::Caller;
use super::{CloudServices, parse_id, to_secs};
use crate::error::{ApiError, ApiResult};

/// Longest key description.
const MAX_DESCRIPTION_LEN: usize = 1024;

/// What differs between the kinds: whose keys they are.
#[derive(Debug, Clone, Copy)]
struct KindRules {
    kind: KeyKind,
    /// Personal keys (API keys) belong to the user who made them: members see and revoke only their own, admins
    /// all of the org's. Org keys (deploy keys) are seen by every member, created and revoked only by admins.
    personal: bool,
}

impl KindRules {
    fn of(kind: KeyKind) -> Self {
        KindRules { kind, personal: kind == KeyKind::Api }
    }

    /// Refuses a non-admin the writes that only admins may make on org keys (`what`: "create", "revoke").
    fn check_write(self, caller: &Caller, what: &str) -> ApiResult<()> {
        if self.personal { Ok(()) } else { caller.require_admin(&format!("{what} {}s", self.kind.entity())) }
    }

    /// The user whose keys a listing is limited to: a member's own personal keys; otherwise the whole org's.
    fn list_filter(self, caller: &Caller) -> Option<uuid::Uuid> {
        (self.personal && !caller.is_admin()).then(|| caller.user_id())
    }
}

/// A key as listed: never the key itself. `user_id` is an API key's owner or a deploy key's creator.
pub(crate) fn key_view(k: &Key) -> cloudpb::Key {
    cloudpb::Key {
        id: k.id.to_string(),
        prefix: k.prefix.clone(),
        description: k.description.clone(),
        created_at: to_secs(k.created_at),
        last_used_at: k.last_used_at.map(to_secs),
        revoked_at: k.revoked_at.map(to_secs),
        user_id: k.user_id.map(|u| u.to_string()),
    }
}

fn check_description(description: &str) -> ApiResult<()> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(format!("description must be at most {MAX_DESCRIPTION_LEN} characters")));
    }
    Ok(())
}

/// The four calls of a key service, for either kind.
struct KeyServiceImpl<'a> {
    services: &'a CloudServices,
    rules: KindRules,
}

impl KeyServiceImpl<'_> {
    async fn create(&self, caller: Caller, req: cloudpb::CreateKeyRequest) -> ApiResult<cloudpb::CreatedKey> {
        self.rules.check_write(&caller, "create")?;
        check_description(&req.description)?;
        let (key, hash) = generate_key(self.rules.kind).map_err(ApiError::internal)?;
        let new = NewKey {
            kind: self.rules.kind,
            org_id: caller.org_id(),
            user_id: Some(caller.user_id()),
            description: req.description,
            key_hash: hash.as_str().to_owned(),
            prefix: display_prefix(&key).to_owned(),
        };
        let stored = self.services.state.metastore.create_key(new).await?;
        Ok(cloudpb::CreatedKey {
            id: stored.id.to_string(),
            key,
            prefix: stored.prefix,
            description: stored.description,
            created_at: to_secs(stored.created_at),
        })
    }

    async fn list(&self, caller: Caller) -> ApiResult<cloudpb::KeyList> {
        let only_user = self.rules.list_filter(&caller);
        let keys = self.services.state.metastore.list_keys(self.rules.kind, caller.org_id(), only_user).await?;
        Ok(cloudpb::KeyList { keys: keys.iter().map(key_view).collect() })
    }

    /// The live key `id` if the caller may see it: any of the org's, except another user's personal key for a
    /// member. A revoked key is gone from its id (not found, as any deleted resource), though listings keep it,
    /// with `revoked_at`, for audit.
    async fn visible(&self, caller: &Caller, id: &str) -> ApiResult<Key> {
        let entity = self.rules.kind.entity();
        let id = parse_id(id, entity)?;
        let key = self.services.state.metastore.get_key(self.rules.kind, caller.org_id(), id).await?;
        if self.rules.personal && key.user_id != Some(caller.user_id()) && !caller.is_admin() {
            return Err(ApiError::not_found(format!("{entity} not found")));
        }
        if key.revoked_at.is_some() {
            return Err(ApiError::not_found(format!("{entity} not found (revoked)")));
        }
        Ok(key)
    }

    async fn get(&self, caller: Caller, req: cloudpb::IdRequest) -> ApiResult<cloudpb::Key> {
        Ok(key_view(&self.visible(&caller, &req.id).await?))
    }

    /// Revokes the key (it stays listed, with `revoked_at`). A key the caller cannot see, or one already
    /// revoked, is not found before the write permission is asked.
    async fn delete(&self, caller: Caller, req: cloudpb::IdRequest) -> ApiResult<cloudpb::Empty> {
        let key = self.visible(&caller, &req.id).await?;
        self.rules.check_write(&caller, "revoke")?;
        self.services.state.metastore.revoke_key(self.rules.kind, caller.org_id(), key.id).await?;
        Ok(cloudpb::Empty {})
    }
}

impl CloudServices {
    fn keys(&self, kind: KeyKind) -> KeyServiceImpl<'_> {
        KeyServiceImpl { services: self, rules: KindRules::of(kind) }
    }
}

/// Implements one generated key service trait by handing each call to `KeyServiceImpl` for `$kind`: the
/// services differ only in their method names.
macro_rules! key_service {
    ($service:ident, $kind:expr, $create:ident, $list:ident, $get:ident, $delete:ident) => {
        #[tonic::async_trait]
        impl $service for CloudServices {
            async fn $create(
                &self,
                request: Request<cloudpb::CreateKeyRequest>,
            ) -> Result<Response<cloudpb::CreatedKey>, Status> {
                self.with_caller(request, |caller, req| async move { self.keys($kind).create(caller, req).await }).await
            }

            async fn $list(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::KeyList>, Status> {
                self.with_caller(request, |caller, _| async move { self.keys($kind).list(caller).await }).await
            }

            async fn $get(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Key>, Status> {
                self.with_caller(request, |caller, req| async move { self.keys($kind).get(caller, req).await }).await
            }

            async fn $delete(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Empty>, Status> {
                self.with_caller(request, |caller, req| async move { self.keys($kind).delete(caller, req).await }).await
            }
        }
    };
}

key_service!(ApiKeyService, KeyKind::Api, create_api_key, list_api_keys, get_api_key, delete_api_key);
key_service!(DeployKeyService, KeyKind::Deploy, create_deploy_key, list_deploy_keys, get_deploy_key, delete_deploy_key);
