//! `ProfileService` (org, users, settings, invitations) and `VizierInfoService` (the vizier registry listing).
//!
//! Owns invitation tokens (random, shown once, stored only as a SHA-256 hash, accepted without a session) and
//! the member/admin split for user management. Must not create viziers: registration arrives with VZConn.

use loupe_auth::{hash_key, hash_password, unix_now, validate_new_password};
use loupe_metastore::{Invitation, MetastoreError, NewInvitation, Role, Vizier, now_ns};
use loupe_proto::cloudpb::{
    self, profile_service_server::ProfileService, vizier_info_service_server::VizierInfoService,
};
use tonic::{Request, Response, Status};

use super::auth::{MAX_EMAIL_LEN, hashing, issue_session, role_name, user_view};
use super::{CloudServices, parse_id, reply, to_secs};
use crate::error::{ApiError, ApiResult};

/// Longest display name.
const MAX_DISPLAY_NAME_LEN: usize = 100;
/// Most settings written by one request.
const MAX_SETTINGS_PER_REQUEST: usize = 64;
/// Longest setting key.
const MAX_SETTING_KEY_LEN: usize = 64;
/// Longest setting value.
const MAX_SETTING_VALUE_LEN: usize = 4096;

/// A plausible email: one `@` with text on both sides, no whitespace or control characters, at most 254
/// characters (the REST schema of `CreateInvitationRequest.email` says the same).
pub(crate) fn check_email(email: &str) -> ApiResult<()> {
    let valid = email.chars().count() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(()) } else { Err(ApiError::invalid("not a valid email address")) }
}

/// A role from the API's spelling; empty means member.
fn parse_role(role: &str) -> ApiResult<Role> {
    match role {
        "" | "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        _ => Err(ApiError::invalid("role must be \"admin\" or \"member\"")),
    }
}

/// A fresh invitation token: 256 random bits from the OS (two v4 UUIDs carry 244 of them), hex.
fn invitation_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn invitation_view(i: &Invitation) -> cloudpb::Invitation {
    cloudpb::Invitation {
        id: i.id.to_string(),
        email: i.email.clone(),
        role: role_name(i.role),
        expires_at: to_secs(i.expires_at),
        accepted_at: i.accepted_at.map(to_secs),
        created_at: to_secs(i.created_at),
    }
}

fn vizier_view(v: &Vizier) -> cloudpb::Vizier {
    cloudpb::Vizier {
        id: v.id.to_string(),
        name: v.name.clone(),
        cluster_uid: v.cluster_uid.clone(),
        status: v.status.clone(),
        last_heartbeat_at: v.last_heartbeat_ns.map(to_secs),
        version: v.version.clone(),
        created_at: to_secs(v.created_at),
        num_agents: v.num_agents,
        address: v.address.clone(),
    }
}

fn check_settings(settings: &cloudpb::Settings) -> ApiResult<()> {
    if settings.settings.len() > MAX_SETTINGS_PER_REQUEST {
        return Err(ApiError::invalid(format!("at most {MAX_SETTINGS_PER_REQUEST} settings per request")));
    }
    for (key, value) in &settings.settings {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_SETTING_KEY_LEN
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !key_ok {
            return Err(ApiError::invalid(format!(
                "setting keys must be 1 to {MAX_SETTING_KEY_LEN} of [A-Za-z0-9_.-]"
            )));
        }
        if value.chars().count() > MAX_SETTING_VALUE_LEN {
            return Err(ApiError::invalid(format!(
                "setting values must be at most {MAX_SETTING_VALUE_LEN} characters"
            )));
        }
    }
    Ok(())
}

impl CloudServices {
    async fn settings_of(&self, org_id: uuid::Uuid, user_id: uuid::Uuid) -> ApiResult<cloudpb::Settings> {
        let list = self.state.metastore.list_user_settings(org_id, user_id).await?;
        Ok(cloudpb::Settings { settings: list.into_iter().map(|s| (s.key, s.value)).collect() })
    }

    async fn accept_invitation(&self, req: cloudpb::AcceptInvitationRequest) -> ApiResult<cloudpb::Session> {
        let state = &self.state;
        let unusable = || ApiError::not_found("invitation not found, expired or already used");
        let token = req.token.trim();
        if token.is_empty() || token.len() > 256 {
            return Err(unusable());
        }
        let token_hash = hash_key(token);
        let invitation = match state.metastore.get_invitation_by_token_hash(token_hash.as_str()).await {
            Ok(invitation) => invitation,
            Err(MetastoreError::NotFound { .. }) => return Err(unusable()),
            Err(err) => return Err(err.into()),
        };
        if invitation.accepted_at.is_some() || invitation.expires_at <= now_ns() {
            return Err(unusable());
        }
        let display_name = req.display_name;
        if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME_LEN {
            return Err(ApiError::invalid(format!("display_name must be 1 to {MAX_DISPLAY_NAME_LEN} characters")));
        }
        if display_name.chars().any(char::is_control) {
            return Err(ApiError::invalid("display_name must not contain control characters"));
        }
        // Refused rather than trimmed, so that what the REST schema's pattern allows is exactly what is stored.
        if display_name.trim() != display_name {
            return Err(ApiError::invalid("display_name must not start or end with whitespace"));
        }
        validate_new_password(&req.password, &invitation.email).map_err(|e| ApiError::invalid(e.to_string()))?;
        let password = req.password;
        let hash = hashing(state, move || hash_password(&password)).await?.map_err(ApiError::internal)?;
        let user = match state.metastore.accept_invitation(token_hash.as_str(), &display_name, &hash).await {
            Ok(user) => user,
            // Raced with another acceptance or expired meanwhile.
            Err(MetastoreError::Invalid { .. } | MetastoreError::NotFound { .. }) => return Err(unusable()),
            Err(MetastoreError::AlreadyExists { .. }) => {
                return Err(ApiError::already_exists("a user with this email already exists"));
            }
            Err(err) => return Err(err.into()),
        };
        issue_session(state, &user, unix_now()).await
    }
}

#[tonic::async_trait]
impl ProfileService for CloudServices {
    async fn get_org(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::Org>, Status> {
        self.with_caller(request, |caller, _| async move {
            let org = self.state.metastore.get_org(caller.org_id()).await?;
            Ok(cloudpb::Org { id: org.id.to_string(), name: org.name, created_at: to_secs(org.created_at) })
        })
        .await
    }

    async fn list_users(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::UserList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let users = self.state.metastore.list_users(caller.org_id()).await?;
            Ok(cloudpb::UserList { users: users.iter().map(user_view).collect() })
        })
        .await
    }

    async fn get_user(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::User>, Status> {
        self.with_caller(request, |caller, req| async move {
            let id = parse_id(&req.id, "user")?;
            Ok(user_view(&self.state.metastore.get_user(caller.org_id(), id).await?))
        })
        .await
    }

    /// Admins; not oneself. The user's sessions die with the row: every call re-reads the user.
    async fn delete_user(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("remove users")?;
            let id = parse_id(&req.id, "user")?;
            if id == caller.user_id() {
                return Err(ApiError::forbidden("you cannot remove yourself"));
            }
            self.state.metastore.delete_user(caller.org_id(), id).await?;
            self.state.sessions.revoke_all_for_user(&id.to_string(), unix_now() + 1).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }

    async fn get_settings(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::Settings>, Status> {
        self.with_caller(request, |caller, _| async move { self.settings_of(caller.org_id(), caller.user_id()).await })
            .await
    }

    async fn update_settings(
        &self,
        request: Request<cloudpb::Settings>,
    ) -> Result<Response<cloudpb::Settings>, Status> {
        self.with_caller(request, |caller, req| async move {
            check_settings(&req)?;
            for (key, value) in &req.settings {
                self.state.metastore.put_user_setting(caller.org_id(), caller.user_id(), key, value).await?;
            }
            self.settings_of(caller.org_id(), caller.user_id()).await
        })
        .await
    }

    async fn list_invitations(
        &self,
        request: Request<cloudpb::Empty>,
    ) -> Result<Response<cloudpb::InvitationList>, Status> {
        self.with_caller(request, |caller, _| async move {
            caller.require_admin("list invitations")?;
            let invitations = self.state.metastore.list_invitations(caller.org_id()).await?;
            Ok(cloudpb::InvitationList { invitations: invitations.iter().map(invitation_view).collect() })
        })
        .await
    }

    async fn create_invitation(
        &self,
        request: Request<cloudpb::CreateInvitationRequest>,
    ) -> Result<Response<cloudpb::CreatedInvitation>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("invite users")?;
            // Not trimmed: an email with surrounding whitespace is refused, as the REST schema says.
            let email = req.email;
            check_email(&email)?;
            let role = parse_role(&req.role)?;
            let token = invitation_token();
            let ttl_ns = i64::try_from(self.state.config.invitation_ttl.as_nanos()).unwrap_or(i64::MAX);
            let invitation = self
                .state
                .metastore
                .create_invitation(NewInvitation {
                    org_id: caller.org_id(),
                    email,
                    role,
                    token_hash: hash_key(&token).as_str().to_owned(),
                    expires_at: now_ns().saturating_add(ttl_ns),
                    created_by: Some(caller.user_id()),
                })
                .await?;
            Ok(cloudpb::CreatedInvitation {
                id: invitation.id.to_string(),
                email: invitation.email,
                role: role_name(invitation.role),
                invite_url_path: format!("/invite?token={token}"),
                invite_token: token,
                expires_at: to_secs(invitation.expires_at),
            })
        })
        .await
    }

    async fn delete_invitation(
        &self,
        request: Request<cloudpb::IdRequest>,
    ) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("withdraw invitations")?;
            let id = parse_id(&req.id, "invitation")?;
            self.state.metastore.delete_invitation(caller.org_id(), id).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }

    async fn accept_invitation(
        &self,
        request: Request<cloudpb::AcceptInvitationRequest>,
    ) -> Result<Response<cloudpb::Session>, Status> {
        reply(CloudServices::accept_invitation(self, request.into_inner()).await)
    }
}

#[tonic::async_trait]
impl VizierInfoService for CloudServices {
    async fn list_viziers(&self, request: Request<cloudpb::Empty>) -> Result<Response<cloudpb::VizierList>, Status> {
        self.with_caller(request, |caller, _| async move {
            let viziers = self.state.metastore.list_viziers(caller.org_id()).await?;
            Ok(cloudpb::VizierList { viziers: viziers.iter().map(vizier_view).collect() })
        })
        .await
    }

    async fn get_vizier(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Vizier>, Status> {
        self.with_caller(request, |caller, req| async move {
            let id = parse_id(&req.id, "vizier")?;
            Ok(vizier_view(&self.state.metastore.get_vizier(caller.org_id(), id).await?))
        })
        .await
    }

    /// Admins: forgets a cluster.
    async fn delete_vizier(&self, request: Request<cloudpb::IdRequest>) -> Result<Response<cloudpb::Empty>, Status> {
        self.with_caller(request, |caller, req| async move {
            caller.require_admin("delete viziers")?;
            let id = parse_id(&req.id, "vizier")?;
            self.state.metastore.delete_vizier(caller.org_id(), id).await?;
            Ok(cloudpb::Empty {})
        })
        .await
    }
}
