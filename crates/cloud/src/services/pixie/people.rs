//! `px.cloudapi.UserService.GetUser` and `OrganizationService.GetOrg` over Loupe's `ProfileService`: a user or
//! the org of the caller's org only. Their other methods answer `UNIMPLEMENTED` (Loupe manages users and the
//! org through its own API: `px`, REST, `loupe.cloud.v1`).
//!
//! Owns the message mapping. Must not read users or orgs itself.

use loupe_proto::cloudpb::{self, auth_service_server::AuthService as _, profile_service_server::ProfileService};
use loupe_proto::pixie::cloudpb as px;
use loupe_proto::pixie::uuidpb;
use tonic::{Request, Response, Status};

use super::{id_from_pb, id_to_pb, relay, unimplemented};
use crate::services::CloudServices;

const LOUPE_API: &str = "manage users and the org with Loupe's own API (px, REST /api/v1, loupe.cloud.v1)";

#[tonic::async_trait]
impl px::user_service_server::UserService for CloudServices {
    /// A user of the caller's org (NOT_FOUND for anyone else).
    async fn get_user(&self, request: Request<uuidpb::Uuid>) -> Result<Response<px::UserInfo>, Status> {
        let id = id_from_pb(Some(request.get_ref()), "user")?;
        let me = self.me(relay(&request, cloudpb::Empty {})).await?.into_inner();
        let user = self.profile_get_user(relay(&request, cloudpb::IdRequest { id })).await?.into_inner();
        Ok(Response::new(px::UserInfo {
            id: Some(id_to_pb(&user.id)),
            org_id: Some(id_to_pb(&me.org.unwrap_or_default().id)),
            first_name: user.display_name,
            last_name: String::new(),
            email: user.email,
            profile_picture: String::new(),
            is_approved: true,
        }))
    }

    async fn get_user_settings(
        &self,
        _: Request<px::GetUserSettingsRequest>,
    ) -> Result<Response<px::GetUserSettingsResponse>, Status> {
        Err(unimplemented("GetUserSettings", LOUPE_API))
    }

    async fn update_user_settings(
        &self,
        _: Request<px::UpdateUserSettingsRequest>,
    ) -> Result<Response<px::UpdateUserSettingsResponse>, Status> {
        Err(unimplemented("UpdateUserSettings", LOUPE_API))
    }

    async fn get_user_attributes(
        &self,
        _: Request<px::GetUserAttributesRequest>,
    ) -> Result<Response<px::GetUserAttributesResponse>, Status> {
        Err(unimplemented("GetUserAttributes", LOUPE_API))
    }

    async fn set_user_attributes(
        &self,
        _: Request<px::SetUserAttributesRequest>,
    ) -> Result<Response<px::SetUserAttributesResponse>, Status> {
        Err(unimplemented("SetUserAttributes", LOUPE_API))
    }

    async fn update_user(&self, _: Request<px::UpdateUserRequest>) -> Result<Response<px::UserInfo>, Status> {
        Err(unimplemented("UpdateUser", LOUPE_API))
    }

    async fn delete_user(&self, _: Request<px::DeleteUserRequest>) -> Result<Response<px::DeleteUserResponse>, Status> {
        Err(unimplemented("DeleteUser", LOUPE_API))
    }
}

impl CloudServices {
    /// `ProfileService.GetUser` (named apart: Pixie's `UserService` has a `get_user` too).
    async fn profile_get_user(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::User>, Status> {
        <Self as ProfileService>::get_user(self, request).await
    }
}

#[tonic::async_trait]
impl px::organization_service_server::OrganizationService for CloudServices {
    /// The caller's org; any other id is NOT_FOUND.
    async fn get_org(&self, request: Request<uuidpb::Uuid>) -> Result<Response<px::OrgInfo>, Status> {
        let id = id_from_pb(Some(request.get_ref()), "org")?;
        let org = <Self as ProfileService>::get_org(self, relay(&request, cloudpb::Empty {})).await?.into_inner();
        if org.id != id {
            return Err(Status::not_found("org not found"));
        }
        Ok(Response::new(px::OrgInfo {
            id: Some(id_to_pb(&org.id)),
            org_name: org.name,
            domain_name: String::new(),
            enable_approvals: false,
        }))
    }

    async fn invite_user(&self, _: Request<px::InviteUserRequest>) -> Result<Response<px::InviteUserResponse>, Status> {
        Err(unimplemented("InviteUser", LOUPE_API))
    }

    async fn create_org(&self, _: Request<px::CreateOrgRequest>) -> Result<Response<uuidpb::Uuid>, Status> {
        Err(unimplemented("CreateOrg", LOUPE_API))
    }

    async fn update_org(&self, _: Request<px::UpdateOrgRequest>) -> Result<Response<px::OrgInfo>, Status> {
        Err(unimplemented("UpdateOrg", LOUPE_API))
    }

    async fn get_users_in_org(
        &self,
        _: Request<px::GetUsersInOrgRequest>,
    ) -> Result<Response<px::GetUsersInOrgResponse>, Status> {
        Err(unimplemented("GetUsersInOrg", LOUPE_API))
    }

    async fn remove_user_from_org(
        &self,
        _: Request<px::RemoveUserFromOrgRequest>,
    ) -> Result<Response<px::RemoveUserFromOrgResponse>, Status> {
        Err(unimplemented("RemoveUserFromOrg", LOUPE_API))
    }

    async fn add_org_ide_config(
        &self,
        _: Request<px::AddOrgIdeConfigRequest>,
    ) -> Result<Response<px::AddOrgIdeConfigResponse>, Status> {
        Err(unimplemented("AddOrgIDEConfig", LOUPE_API))
    }

    async fn delete_org_ide_config(
        &self,
        _: Request<px::DeleteOrgIdeConfigRequest>,
    ) -> Result<Response<px::DeleteOrgIdeConfigResponse>, Status> {
        Err(unimplemented("DeleteOrgIDEConfig", LOUPE_API))
    }

    async fn get_org_ide_configs(
        &self,
        _: Request<px::GetOrgIdeConfigsRequest>,
    ) -> Result<Response<px::GetOrgIdeConfigsResponse>, Status> {
        Err(unimplemented("GetOrgIDEConfigs", LOUPE_API))
    }

    async fn create_invite_token(
        &self,
        _: Request<px::CreateInviteTokenRequest>,
    ) -> Result<Response<px::InviteToken>, Status> {
        Err(unimplemented("CreateInviteToken", LOUPE_API))
    }

    async fn revoke_all_invite_tokens(&self, _: Request<uuidpb::Uuid>) -> Result<Response<()>, Status> {
        Err(unimplemented("RevokeAllInviteTokens", LOUPE_API))
    }

    async fn verify_invite_token(
        &self,
        _: Request<px::InviteToken>,
    ) -> Result<Response<px::VerifyInviteTokenResponse>, Status> {
        Err(unimplemented("VerifyInviteToken", LOUPE_API))
    }
}
