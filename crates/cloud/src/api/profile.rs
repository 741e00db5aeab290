//! Org, users, invitations and user settings (Pixie's profile service) plus the vizier registry listing.
//!
//! Owns invitation tokens (random, shown once, stored only as a SHA-256 hash, accepted without a session) and
//! the member/admin split for user management. Must not create viziers: registration arrives with VZConn.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_auth::{hash_key, hash_password, unix_now, validate_new_password};
use loupe_metastore::{Invitation, MetastoreError, NewInvitation, Role, Vizier, now_ns};
use serde::{Deserialize, Serialize};

use crate::api::auth::{MAX_EMAIL_LEN, SessionResponse, UserView, blocking, issue_session};
use crate::api::{parse_id, to_secs};
use crate::caller::{ApiJson, ApiPath, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

/// Longest display name.
const MAX_DISPLAY_NAME_LEN: usize = 100;
/// Most settings written by one request.
const MAX_SETTINGS_PER_REQUEST: usize = 64;
/// Longest setting key.
const MAX_SETTING_KEY_LEN: usize = 64;
/// Longest setting value.
const MAX_SETTING_VALUE_LEN: usize = 4096;

/// `GET /api/v1/org` answer.
#[derive(Debug, Serialize)]
pub struct OrgView {
    /// Org id.
    pub id: String,
    /// Org name.
    pub name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// `GET /api/v1/org`.
pub async fn get_org(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<OrgView>> {
    let org = state.metastore.get_org(caller.org_id()).await?;
    Ok(Json(OrgView { id: org.id.to_string(), name: org.name, created_at: to_secs(org.created_at) }))
}

/// `GET /api/v1/users`: the caller's org members.
pub async fn list_users(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<UserView>>> {
    let users = state.metastore.list_users(caller.org_id()).await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

/// `GET /api/v1/users/{id}`.
pub async fn get_user(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<UserView>> {
    let id = parse_id(&id).ok_or_else(|| ApiError::not_found("user not found"))?;
    Ok(Json(UserView::from(&state.metastore.get_user(caller.org_id(), id).await?)))
}

/// `DELETE /api/v1/users/{id}` (admins; not oneself). The user's sessions die with the row: every request
/// re-reads the user.
pub async fn delete_user(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin("remove users")?;
    let id = parse_id(&id).ok_or_else(|| ApiError::not_found("user not found"))?;
    if id == caller.user_id() {
        return Err(ApiError::invalid("you cannot remove yourself"));
    }
    state.metastore.delete_user(caller.org_id(), id).await?;
    state.sessions.revoke_all_for_user(&id.to_string(), unix_now() + 1).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/invitations` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    email: String,
    #[serde(default = "member")]
    role: Role,
}

fn member() -> Role {
    Role::Member
}

/// `POST /api/v1/invitations` answer: the token is shown once.
#[derive(Debug, Serialize)]
pub struct CreatedInvitation {
    /// Invitation id.
    pub id: String,
    /// The invitee's email.
    pub email: String,
    /// The role the invitee gets.
    pub role: Role,
    /// The secret token; hand it to the invitee. It cannot be shown again.
    pub invite_token: String,
    /// Where the invitee accepts it in the UI.
    pub invite_url_path: String,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

/// An invitation as listed (no token).
#[derive(Debug, Serialize)]
pub struct InvitationView {
    /// Invitation id.
    pub id: String,
    /// The invitee's email.
    pub email: String,
    /// The role the invitee gets.
    pub role: Role,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
    /// Acceptance time, Unix seconds.
    pub accepted_at: Option<i64>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

impl From<&Invitation> for InvitationView {
    fn from(i: &Invitation) -> Self {
        Self {
            id: i.id.to_string(),
            email: i.email.clone(),
            role: i.role,
            expires_at: to_secs(i.expires_at),
            accepted_at: i.accepted_at.map(to_secs),
            created_at: to_secs(i.created_at),
        }
    }
}

/// `POST /api/v1/invitations/accept` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    token: String,
    display_name: String,
    password: String,
}

/// A plausible email: one `@` with text on both sides, no whitespace or control characters, at most 254 bytes.
pub(crate) fn check_email(email: &str) -> ApiResult<()> {
    let valid = email.len() <= MAX_EMAIL_LEN
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(()) } else { Err(ApiError::invalid("not a valid email address")) }
}

/// A fresh invitation token: 256 random bits from the OS (two v4 UUIDs carry 244 of them), hex.
fn invitation_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// `POST /api/v1/invitations` (admins).
pub async fn create_invitation(
    State(state): State<CloudState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    caller.require_admin("invite users")?;
    let email = req.email.trim().to_owned();
    check_email(&email)?;
    let token = invitation_token();
    let ttl_ns = i64::try_from(state.config.invitation_ttl.as_nanos()).unwrap_or(i64::MAX);
    let invitation = state
        .metastore
        .create_invitation(NewInvitation {
            org_id: caller.org_id(),
            email,
            role: req.role,
            token_hash: hash_key(&token).as_str().to_owned(),
            expires_at: now_ns().saturating_add(ttl_ns),
            created_by: Some(caller.user_id()),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            id: invitation.id.to_string(),
            email: invitation.email,
            role: invitation.role,
            invite_url_path: format!("/invite?token={token}"),
            invite_token: token,
            expires_at: to_secs(invitation.expires_at),
        }),
    ))
}

/// `GET /api/v1/invitations` (admins).
pub async fn list_invitations(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<InvitationView>>> {
    caller.require_admin("list invitations")?;
    let invitations = state.metastore.list_invitations(caller.org_id()).await?;
    Ok(Json(invitations.iter().map(InvitationView::from).collect()))
}

/// `DELETE /api/v1/invitations/{id}` (admins).
pub async fn delete_invitation(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin("withdraw invitations")?;
    let id = parse_id(&id).ok_or_else(|| ApiError::not_found("invitation not found"))?;
    state.metastore.delete_invitation(caller.org_id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/invitations/accept` (no session: the token is the credential). Creates the user and logs in.
pub async fn accept_invitation(
    State(state): State<CloudState>,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<(StatusCode, Json<SessionResponse>)> {
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
    let display_name = req.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > MAX_DISPLAY_NAME_LEN {
        return Err(ApiError::invalid(format!("display_name must be 1 to {MAX_DISPLAY_NAME_LEN} characters")));
    }
    if display_name.chars().any(char::is_control) {
        return Err(ApiError::invalid("display_name must not contain control characters"));
    }
    validate_new_password(&req.password, &invitation.email).map_err(|e| ApiError::invalid(e.to_string()))?;
    let password = req.password;
    let hash = blocking(move || hash_password(&password)).await?.map_err(ApiError::internal)?;
    let user = match state.metastore.accept_invitation(token_hash.as_str(), &display_name, &hash).await {
        Ok(user) => user,
        // Raced with another acceptance or expired meanwhile.
        Err(MetastoreError::Invalid { .. } | MetastoreError::NotFound { .. }) => return Err(unusable()),
        Err(MetastoreError::AlreadyExists { .. }) => {
            return Err(ApiError::already_exists("a user with this email already exists"));
        }
        Err(err) => return Err(err.into()),
    };
    Ok((StatusCode::CREATED, Json(issue_session(&state, &user, unix_now()).await?)))
}

/// User settings, as read and written by `/api/v1/users/me/settings`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Key → value.
    pub settings: BTreeMap<String, String>,
}

/// `GET /api/v1/users/me/settings`.
pub async fn get_settings(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Settings>> {
    let list = state.metastore.list_user_settings(caller.org_id(), caller.user_id()).await?;
    Ok(Json(Settings { settings: list.into_iter().map(|s| (s.key, s.value)).collect() }))
}

/// `PUT /api/v1/users/me/settings`: sets the given keys (others are kept) and returns them all.
pub async fn put_settings(
    State(state): State<CloudState>,
    caller: Caller,
    ApiJson(req): ApiJson<Settings>,
) -> ApiResult<Json<Settings>> {
    if req.settings.len() > MAX_SETTINGS_PER_REQUEST {
        return Err(ApiError::invalid(format!("at most {MAX_SETTINGS_PER_REQUEST} settings per request")));
    }
    for (key, value) in &req.settings {
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
    for (key, value) in &req.settings {
        state.metastore.put_user_setting(caller.org_id(), caller.user_id(), key, value).await?;
    }
    get_settings(State(state), caller).await
}

/// A vizier as listed.
#[derive(Debug, Serialize)]
pub struct VizierView {
    /// Vizier (cluster) id.
    pub id: String,
    /// Cluster name.
    pub name: String,
    /// The kube-system namespace UID.
    pub cluster_uid: String,
    /// Last reported status.
    pub status: String,
    /// Last heartbeat, Unix seconds.
    pub last_heartbeat_at: Option<i64>,
    /// Vizier version.
    pub version: String,
    /// Registration time, Unix seconds.
    pub created_at: i64,
}

impl From<&Vizier> for VizierView {
    fn from(v: &Vizier) -> Self {
        Self {
            id: v.id.to_string(),
            name: v.name.clone(),
            cluster_uid: v.cluster_uid.clone(),
            status: v.status.clone(),
            last_heartbeat_at: v.last_heartbeat_ns.map(to_secs),
            version: v.version.clone(),
            created_at: to_secs(v.created_at),
        }
    }
}

/// `GET /api/v1/viziers`: the org's viziers.
pub async fn list_viziers(State(state): State<CloudState>, caller: Caller) -> ApiResult<Json<Vec<VizierView>>> {
    let viziers = state.metastore.list_viziers(caller.org_id()).await?;
    Ok(Json(viziers.iter().map(VizierView::from).collect()))
}

/// `GET /api/v1/viziers/{id}`.
pub async fn get_vizier(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<VizierView>> {
    let id = parse_id(&id).ok_or_else(|| ApiError::not_found("vizier not found"))?;
    Ok(Json(VizierView::from(&state.metastore.get_vizier(caller.org_id(), id).await?)))
}

/// `DELETE /api/v1/viziers/{id}` (admins): forgets a cluster.
pub async fn delete_vizier(
    State(state): State<CloudState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin("delete viziers")?;
    let id = parse_id(&id).ok_or_else(|| ApiError::not_found("vizier not found"))?;
    state.metastore.delete_vizier(caller.org_id(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
