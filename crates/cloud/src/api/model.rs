//! The REST API's own request and response types: what a JSON body may hold and what an answer holds, field by
//! field, with the constraints the services enforce (required fields, lengths, patterns, formats). Their
//! OpenAPI schemas are derived from these types (`utoipa::ToSchema`), so the served document says exactly what
//! the API accepts and returns.
//!
//! Why not the protobuf messages themselves: proto3 has no required fields (every field defaults), cannot carry
//! a pattern or a format, and REST has shapes of its own (bare arrays, `vis` as JSON, an optional role that is
//! an enum). Owns the conversions to and from `loupe_proto::cloudpb`. Must not validate anything the schema
//! does not state: a rule a service enforces on a field belongs in the field's schema here too.

use std::collections::BTreeMap;

use loupe_proto::cloudpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A setting key.
pub const SETTING_KEY_PATTERN: &str = r"^[A-Za-z0-9_.-]{1,64}$";

/// A script that compiles, for the document's examples (so that the examples save a script).
fn pxl_example() -> serde_json::Value {
    "import px\npx.display(px.DataFrame('http_events'))\n".into()
}

// ---- requests ----

/// `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's email.
    #[schema(min_length = 1)]
    pub email: String,
    /// Its password.
    #[schema(format = Password, min_length = 1)]
    pub password: String,
}

/// `POST /api/v1/auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password now.
    #[schema(format = Password)]
    pub current_password: String,
    /// The new password: 8 to 1024 characters, not blank, not a common password, not the email or its local
    /// part, and not the current one.
    #[schema(format = Password, min_length = 8, max_length = 1024, pattern = r"\S")]
    pub new_password: String,
}

/// `POST /api/v1/api-keys` and `POST /api/v1/deploy-keys`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Free text shown in listings.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub description: String,
}

/// `POST /api/v1/scripts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScriptRequest {
    /// `org/` then 1 to 64 of `[a-z0-9_-]`.
    #[schema(pattern = r"^org/[a-z0-9_-]{1,64}$", example = "org/http_overview")]
    pub name: String,
    /// PxL source; it must compile against the tables this Loupe knows (400 with line and column otherwise).
    #[schema(min_length = 1, max_length = 262144, pattern = r"\S", example = pxl_example)]
    pub pxl: String,
    /// Vis spec, a JSON object (at most 256 KiB as text); `null` or absent for none.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub vis: Option<serde_json::Map<String, serde_json::Value>>,
    /// Free text.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
}

/// `PUT /api/v1/scripts/{name}`: the new content (the name stays).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateScriptRequest {
    /// PxL source; it must compile.
    #[schema(min_length = 1, max_length = 262144, pattern = r"\S", example = pxl_example)]
    pub pxl: String,
    /// Vis spec, a JSON object (at most 256 KiB as text); `null` or absent for none.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub vis: Option<serde_json::Map<String, serde_json::Value>>,
    /// Free text.
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
}

/// A role in an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, keys, org scripts and viziers.
    Admin,
    /// Reads, and manages their own API keys and settings.
    Member,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// The role the services name `role`; anything else is a member (the services never answer another).
    fn from_service(role: &str) -> Self {
        if role == "admin" { Role::Admin } else { Role::Member }
    }
}

/// `POST /api/v1/invitations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvitationRequest {
    /// Who is invited.
    #[schema(
        example = "new.user@example.com",
        max_length = 254,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub email: String,
    /// The role the invitee gets; `member` when absent.
    #[serde(default)]
    pub role: Option<Role>,
}

/// `POST /api/v1/invitations/accept`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The invitation token (from the invitation's answer or its link).
    #[schema(min_length = 1, max_length = 256)]
    pub token: String,
    /// The new user's name.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$"
    )]
    pub display_name: String,
    /// The new user's password: the rules of `ChangePasswordRequest.new_password`.
    #[schema(format = Password, min_length = 8, max_length = 1024, pattern = r"\S")]
    pub password: String,
}

/// The caller's settings: `PUT` sets the given keys (others are kept), and both verbs answer them all.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Key to value; keys are 1 to 64 of `[A-Za-z0-9_.-]`, values at most 4096 characters, at most 64 keys
    /// per request.
    #[schema(schema_with = settings_map)]
    pub settings: BTreeMap<String, String>,
}

fn settings_map() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(ObjectBuilder::new().schema_type(Type::String).pattern(Some(SETTING_KEY_PATTERN))))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String).max_length(Some(4096))))
        .max_properties(Some(64))
        .build()
}

// ---- responses ----

/// A user of an org.
#[derive(Debug, Serialize, ToSchema)]
pub struct User {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its email.
    pub email: String,
    /// Its name.
    pub display_name: String,
    /// Its role.
    pub role: Role,
}

/// An org, as a session names it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgRef {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A session: send `token` as `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The session token (a JWT).
    pub token: String,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// Who it is for.
    pub user: User,
    /// Their org.
    pub org: OrgRef,
    /// Until the password is changed, only password change, logout and `me` are allowed.
    pub must_change_password: bool,
    /// Password change only: the caller's API keys it revoked (every credential made with the old password
    /// ends with it); empty otherwise.
    pub revoked_api_keys: Vec<Key>,
}

/// `POST /api/v1/auth/logout`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutResponse {
    /// Always true.
    pub logged_out: bool,
}

/// `GET /api/v1/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// The caller.
    pub user: User,
    /// Their org.
    pub org: OrgRef,
    /// Whether a password change is pending.
    pub must_change_password: bool,
    /// Whether the caller authenticated with an API key.
    pub is_api_user: bool,
}

/// A created key: the only answer that shows the key itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// The key: `px-api-` (API keys) or `px-dep-` (deploy keys), then 32 base64url characters.
    #[schema(pattern = r"^px-(api|dep)-[A-Za-z0-9_-]{32}$")]
    pub key: String,
    /// Its first 12 characters, as listings show it.
    #[schema(pattern = r"^px-(api|dep)-[A-Za-z0-9_-]{5}$")]
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// When it was made, Unix seconds.
    pub created_at: i64,
}

/// An API or deploy key as listings show it (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct Key {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its first 12 characters.
    #[schema(pattern = r"^px-(api|dep)-[A-Za-z0-9_-]{5}$")]
    pub prefix: String,
    /// Free text.
    pub description: String,
    /// When it was made, Unix seconds.
    pub created_at: i64,
    /// When it last authenticated a call, Unix seconds.
    pub last_used_at: Option<i64>,
    /// When it was revoked, Unix seconds; a revoked key stays listed.
    pub revoked_at: Option<i64>,
    /// The owner (API keys) or the creator (deploy keys; `null` once that user is gone).
    #[schema(format = "uuid")]
    pub user_id: Option<String>,
}

/// Where a script comes from.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScriptSource {
    /// Shipped with Loupe (`px/…`), read-only.
    Bundled,
    /// Saved by the org (`org/…`).
    Org,
}

impl ScriptSource {
    fn from_service(source: &str) -> Self {
        if source == "bundled" { ScriptSource::Bundled } else { ScriptSource::Org }
    }
}

/// A script in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptSummary {
    /// `px/…` or `org/…`.
    #[schema(pattern = r"^(px|org)/[a-z0-9_/-]{1,128}$")]
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where it comes from.
    pub source: ScriptSource,
    /// True for bundled scripts.
    pub read_only: bool,
    /// Last change, Unix seconds (org scripts; `null` for bundled ones).
    pub updated_at: Option<i64>,
}

/// One script with its content.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScriptView {
    /// `px/…` or `org/…`.
    #[schema(pattern = r"^(px|org)/[a-z0-9_/-]{1,128}$")]
    pub name: String,
    /// Free text.
    pub description: String,
    /// Where it comes from.
    pub source: ScriptSource,
    /// True for bundled scripts.
    pub read_only: bool,
    /// PxL source.
    pub pxl: String,
    /// Vis spec, any JSON; `null` for none.
    #[schema(value_type = Option<Object>)]
    pub vis: serde_json::Value,
    /// Creation time, Unix seconds (org scripts; `null` for bundled ones).
    pub created_at: Option<i64>,
    /// Last change, Unix seconds (org scripts; `null` for bundled ones).
    pub updated_at: Option<i64>,
}

/// The caller's org.
#[derive(Debug, Serialize, ToSchema)]
pub struct Org {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// When it was made, Unix seconds.
    pub created_at: i64,
}

/// A created invitation: the only answer that shows its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvitation {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// Hand it to the invitee (`POST /api/v1/invitations/accept`); it cannot be shown again.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub invite_token: String,
    /// The UI path that accepts it.
    #[schema(pattern = "^/invite\\?token=[0-9a-f]{64}$")]
    pub invite_url_path: String,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
}

/// An invitation as listings show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// When it expires, Unix seconds.
    pub expires_at: i64,
    /// When it was accepted, Unix seconds.
    pub accepted_at: Option<i64>,
    /// When it was made, Unix seconds.
    pub created_at: i64,
}

/// A registered vizier (cluster).
#[derive(Debug, Serialize, ToSchema)]
pub struct Vizier {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// The cluster's own id.
    pub cluster_uid: String,
    /// Its last reported status.
    pub status: String,
    /// Its last heartbeat, Unix seconds.
    pub last_heartbeat_at: Option<i64>,
    /// Its version.
    pub version: String,
    /// When it registered, Unix seconds.
    pub created_at: i64,
    /// Agents it last reported running.
    pub num_agents: i64,
    /// Where clients may reach its query endpoint (`host:port`), as it last reported; empty when unknown.
    pub address: String,
}

// ---- conversions ----

impl From<LoginRequest> for cloudpb::LoginRequest {
    fn from(r: LoginRequest) -> Self {
        Self { email: r.email, password: r.password }
    }
}

impl From<ChangePasswordRequest> for cloudpb::ChangePasswordRequest {
    fn from(r: ChangePasswordRequest) -> Self {
        Self { current_password: r.current_password, new_password: r.new_password }
    }
}

impl From<CreateKeyRequest> for cloudpb::CreateKeyRequest {
    fn from(r: CreateKeyRequest) -> Self {
        Self { description: r.description }
    }
}

impl From<CreateInvitationRequest> for cloudpb::CreateInvitationRequest {
    fn from(r: CreateInvitationRequest) -> Self {
        Self { email: r.email, role: r.role.unwrap_or(Role::Member).as_str().to_owned() }
    }
}

impl From<AcceptInvitationRequest> for cloudpb::AcceptInvitationRequest {
    fn from(r: AcceptInvitationRequest) -> Self {
        Self { token: r.token, display_name: r.display_name, password: r.password }
    }
}

impl From<Settings> for cloudpb::Settings {
    fn from(s: Settings) -> Self {
        Self { settings: s.settings }
    }
}

impl From<cloudpb::Settings> for Settings {
    fn from(s: cloudpb::Settings) -> Self {
        Self { settings: s.settings }
    }
}

/// The vis spec as the service stores it: JSON text, empty for none.
pub fn vis_json(vis: Option<serde_json::Map<String, serde_json::Value>>) -> String {
    vis.map(|vis| serde_json::Value::Object(vis).to_string()).unwrap_or_default()
}

impl From<cloudpb::User> for User {
    fn from(u: cloudpb::User) -> Self {
        Self { id: u.id, email: u.email, display_name: u.display_name, role: Role::from_service(&u.role) }
    }
}

impl From<cloudpb::OrgRef> for OrgRef {
    fn from(o: cloudpb::OrgRef) -> Self {
        Self { id: o.id, name: o.name }
    }
}

fn unset_user() -> User {
    User { id: String::new(), email: String::new(), display_name: String::new(), role: Role::Member }
}

impl From<cloudpb::Session> for Session {
    fn from(s: cloudpb::Session) -> Self {
        Self {
            token: s.token,
            expires_at: s.expires_at,
            // The services always set both; a message field is optional only on the wire.
            user: s.user.map_or_else(unset_user, User::from),
            org: s.org.map_or_else(|| OrgRef { id: String::new(), name: String::new() }, OrgRef::from),
            must_change_password: s.must_change_password,
            revoked_api_keys: s.revoked_api_keys.into_iter().map(Key::from).collect(),
        }
    }
}

impl From<cloudpb::LogoutResponse> for LogoutResponse {
    fn from(r: cloudpb::LogoutResponse) -> Self {
        Self { logged_out: r.logged_out }
    }
}

impl From<cloudpb::MeResponse> for MeResponse {
    fn from(m: cloudpb::MeResponse) -> Self {
        Self {
            user: m.user.map_or_else(unset_user, User::from),
            org: m.org.map_or_else(|| OrgRef { id: String::new(), name: String::new() }, OrgRef::from),
            must_change_password: m.must_change_password,
            is_api_user: m.is_api_user,
        }
    }
}

impl From<cloudpb::CreatedKey> for CreatedKey {
    fn from(k: cloudpb::CreatedKey) -> Self {
        Self { id: k.id, key: k.key, prefix: k.prefix, description: k.description, created_at: k.created_at }
    }
}

impl From<cloudpb::Key> for Key {
    fn from(k: cloudpb::Key) -> Self {
        Self {
            id: k.id,
            prefix: k.prefix,
            description: k.description,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            user_id: k.user_id,
        }
    }
}

impl From<cloudpb::ScriptSummary> for ScriptSummary {
    fn from(s: cloudpb::ScriptSummary) -> Self {
        Self {
            name: s.name,
            description: s.description,
            source: ScriptSource::from_service(&s.source),
            read_only: s.read_only,
            updated_at: s.updated_at,
        }
    }
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
            source: ScriptSource::from_service(&s.source),
            read_only: s.read_only,
            pxl: s.pxl,
            vis,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

impl From<cloudpb::Org> for Org {
    fn from(o: cloudpb::Org) -> Self {
        Self { id: o.id, name: o.name, created_at: o.created_at }
    }
}

impl From<cloudpb::CreatedInvitation> for CreatedInvitation {
    fn from(i: cloudpb::CreatedInvitation) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: Role::from_service(&i.role),
            invite_token: i.invite_token,
            invite_url_path: i.invite_url_path,
            expires_at: i.expires_at,
        }
    }
}

impl From<cloudpb::Invitation> for Invitation {
    fn from(i: cloudpb::Invitation) -> Self {
        Self {
            id: i.id,
            email: i.email,
            role: Role::from_service(&i.role),
            expires_at: i.expires_at,
            accepted_at: i.accepted_at,
            created_at: i.created_at,
        }
    }
}

impl From<cloudpb::Vizier> for Vizier {
    fn from(v: cloudpb::Vizier) -> Self {
        Self {
            id: v.id,
            name: v.name,
            cluster_uid: v.cluster_uid,
            status: v.status,
            last_heartbeat_at: v.last_heartbeat_at,
            version: v.version,
            created_at: v.created_at,
            num_agents: v.num_agents,
            address: v.address,
        }
    }
}

// ---- cron scripts (requests, responses and conversions) ----

/// `POST /api/v1/cron-scripts`: exactly one of `frequency_s` and `cron`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCronScriptRequest {
    /// 1 to 64 of `[a-z0-9_-]`, unique in the org.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$", example = "http_errors")]
    pub name: String,
    /// PxL source; it must compile (400 with line and column otherwise).
    #[schema(min_length = 1, max_length = 262144, pattern = r"\S", example = pxl_example)]
    pub script: String,
    /// Run every this many seconds (at multiples of it since the Unix epoch).
    #[serde(default)]
    #[schema(minimum = 1, example = 60)]
    pub frequency_s: Option<i64>,
    /// Or a five-field cron expression, in UTC (`*/5 * * * *`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub cron: Option<String>,
    /// Vizier names or ids to run on; absent or empty for every vizier of the org.
    #[serde(default)]
    pub viziers: Vec<String>,
    /// Whether it runs; absent means enabled.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /api/v1/cron-scripts/{name}`: the fields given change; `frequency_s` or `cron` replaces the schedule.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCronScriptRequest {
    /// New PxL source.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 262144, pattern = r"\S")]
    pub script: Option<String>,
    /// A new period in seconds.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub frequency_s: Option<i64>,
    /// A new cron expression.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    pub cron: Option<String>,
    /// Enable or disable it.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A cron script.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CronScriptView {
    /// Its id.
    #[schema(format = "uuid")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// PxL source.
    pub script: String,
    /// The period in seconds; `null` when `cron` is the schedule.
    pub frequency_s: Option<i64>,
    /// The cron expression (UTC); `null` when `frequency_s` is the schedule.
    pub cron: Option<String>,
    /// Vizier ids it runs on; empty for every vizier of the org.
    pub viziers: Vec<String>,
    /// Whether it runs.
    pub enabled: bool,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Last change, Unix seconds.
    pub updated_at: i64,
}

/// The result of one run of a cron script on one vizier.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CronScriptResultView {
    /// The vizier that ran it.
    #[schema(format = "uuid")]
    pub vizier_id: String,
    /// When the run was due, Unix seconds (the vizier's clock).
    pub run_at: i64,
    /// How long it took, milliseconds.
    pub duration_ms: i64,
    /// 0 when it succeeded, else a gRPC status code.
    pub error_code: i32,
    /// Why it failed; empty when it succeeded.
    pub error: String,
    /// Rows it returned, over all outputs.
    pub records: i64,
    /// Bytes of those rows (Arrow IPC).
    pub bytes: i64,
    /// When the cloud received it, Unix seconds.
    pub received_at: i64,
}

impl From<cloudpb::CronScript> for CronScriptView {
    fn from(c: cloudpb::CronScript) -> Self {
        Self {
            id: c.id,
            name: c.name,
            script: c.script,
            frequency_s: (c.frequency_s > 0).then_some(c.frequency_s),
            cron: (!c.cron.is_empty()).then_some(c.cron),
            viziers: c.viziers,
            enabled: c.enabled,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

impl From<cloudpb::CronScriptResult> for CronScriptResultView {
    fn from(r: cloudpb::CronScriptResult) -> Self {
        Self {
            vizier_id: r.vizier_id,
            run_at: r.run_at,
            duration_ms: r.duration_ms,
            error_code: r.error_code,
            error: r.error,
            records: r.records,
            bytes: r.bytes,
            received_at: r.received_at,
        }
    }
}
