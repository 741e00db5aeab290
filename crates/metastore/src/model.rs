//! The rows the metastore stores and the inputs that create or change them.
//!
//! Owns the entity structs (`Org`, `User`, …), `Role`, the `New*`/`*Update` inputs, `now_ns` and the text
//! checks every backend runs before touching the database.
//! Must not touch: SQL or connections; it knows nothing about which backend reads these rows.

pub use loupe_common::KeyKind;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{MetastoreError, Result};

/// The current time as Unix nanoseconds, the unit of every timestamp in the metastore: the workspace's one clock.
pub use loupe_common::time::now_unix_ns as now_ns;

/// A user's role within their org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages users, keys and org settings.
    Admin,
    /// Uses the org's viziers and scripts.
    Member,
}

impl Role {
    /// The stored spelling: `"admin"` or `"member"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = MetastoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            other => Err(MetastoreError::invalid(format!("unknown role {other:?}"))),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = MetastoreError;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

/// An organization: the unit of isolation for every other entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Org {
    /// Org id.
    pub id: Uuid,
    /// Unique org name.
    pub name: String,
    /// Creation time, Unix ns.
    pub created_at: i64,
}

/// A user of one org. `Debug` hides the password hash.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// The org the user belongs to.
    pub org_id: Uuid,
    /// Email as entered; unique across all orgs, compared case-insensitively.
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Password hash produced by the auth layer (the store never sees a plaintext password).
    pub password_hash: String,
    /// Role within the org.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// The user must set a new password at next login.
    pub must_change_password: bool,
    /// Creation time, Unix ns.
    pub created_at: i64,
    /// Last update time, Unix ns.
    pub updated_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("org_id", &self.org_id)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .field("password_hash", &"<redacted>")
            .field("role", &self.role)
            .field("must_change_password", &self.must_change_password)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Input of `Metastore::create_user`.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The org to join; must exist.
    pub org_id: Uuid,
    /// Email (unique, case-insensitive).
    pub email: String,
    /// Name shown in the UI.
    pub display_name: String,
    /// Password hash from the auth layer.
    pub password_hash: String,
    /// Role within the org.
    pub role: Role,
    /// Force a password change at next login.
    pub must_change_password: bool,
}

/// An invitation to join an org, redeemed by the holder of the token whose hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Invitation {
    /// Invitation id.
    pub id: Uuid,
    /// The org the invitee joins.
    pub org_id: Uuid,
    /// The invitee's email; the user created on acceptance gets it.
    pub email: String,
    /// The role the invitee gets.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Hash of the invitation token (unique).
    pub token_hash: String,
    /// Expiry, Unix ns; acceptance at or after it fails.
    pub expires_at: i64,
    /// When it was accepted, Unix ns.
    pub accepted_at: Option<i64>,
    /// The inviting user (cleared if that user is deleted).
    pub created_by: Option<Uuid>,
    /// Creation time, Unix ns.
    pub created_at: i64,
}

/// Input of `Metastore::create_invitation`.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// The org the invitee joins; must exist.
    pub org_id: Uuid,
    /// The invitee's email.
    pub email: String,
    /// The role the invitee gets.
    pub role: Role,
    /// Hash of the invitation token (unique).
    pub token_hash: String,
    /// Expiry, Unix ns.
    pub expires_at: i64,
    /// The inviting user; when given, must be a user of `org_id`.
    pub created_by: Option<Uuid>,
}

/// A login session; the auth layer signs tokens naming it, the store keeps it for listing and revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Session {
    /// Session id (carried in the signed token).
    pub id: Uuid,
    /// The session's user.
    pub user_id: Uuid,
    /// The user's org.
    pub org_id: Uuid,
    /// Creation time, Unix ns.
    pub created_at: i64,
    /// Expiry, Unix ns.
    pub expires_at: i64,
    /// Revocation time, Unix ns.
    pub revoked_at: Option<i64>,
}

impl Session {
    /// True if the session is neither revoked nor expired at `now_ns`.
    pub fn is_active(&self, now_ns: i64) -> bool {
        self.revoked_at.is_none() && now_ns < self.expires_at
    }
}

/// An API key (`px-api-…`, a user's) or a deploy key (`px-dep-…`, an org's, used only to register viziers);
/// only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Key {
    /// Key id.
    pub id: Uuid,
    /// Which kind of key.
    #[sqlx(try_from = "String")]
    pub kind: KeyKind,
    /// Owning org.
    pub org_id: Uuid,
    /// An API key's owner (always set: the key is deleted with its user). A deploy key's creator (none for
    /// generated keys, cleared if that user is deleted).
    pub user_id: Option<Uuid>,
    /// Free text.
    pub description: String,
    /// Hash of the key (unique within its kind).
    pub key_hash: String,
    /// The key's first characters, shown in lists.
    pub prefix: String,
    /// Creation time, Unix ns.
    pub created_at: i64,
    /// Last successful use, Unix ns.
    pub last_used_at: Option<i64>,
    /// Revocation time, Unix ns.
    pub revoked_at: Option<i64>,
}

/// Input of `KeyStore::create_key`.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Which kind of key.
    pub kind: KeyKind,
    /// Owning org; must exist.
    pub org_id: Uuid,
    /// An API key's owner (required) or a deploy key's creator (optional); when given, a user of `org_id`.
    pub user_id: Option<Uuid>,
    /// Free text.
    pub description: String,
    /// Hash of the key (unique within its kind).
    pub key_hash: String,
    /// The key's first characters.
    pub prefix: String,
}

/// A saved PxL script of one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Script {
    /// Script id.
    pub id: Uuid,
    /// Owning org.
    pub org_id: Uuid,
    /// Name, unique within the org (e.g. `"org/my_script"`).
    pub name: String,
    /// PxL source.
    pub pxl: String,
    /// Vis spec, a JSON document kept as text.
    pub vis: String,
    /// Free text.
    pub description: String,
    /// Creation time, Unix ns.
    pub created_at: i64,
    /// Last update time, Unix ns.
    pub updated_at: i64,
}

/// Input of `Metastore::create_script`.
#[derive(Debug, Clone)]
pub struct NewScript {
    /// Owning org; must exist.
    pub org_id: Uuid,
    /// Name, unique within the org.
    pub name: String,
    /// PxL source.
    pub pxl: String,
    /// Vis spec (JSON text).
    pub vis: String,
    /// Free text.
    pub description: String,
}

/// Input of `Metastore::update_script`: the new content (the name stays).
#[derive(Debug, Clone)]
pub struct ScriptUpdate {
    /// PxL source.
    pub pxl: String,
    /// Vis spec (JSON text).
    pub vis: String,
    /// Free text.
    pub description: String,
}

/// A vizier (one cluster's data plane) registered to an org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Vizier {
    /// Vizier (cluster) id.
    pub id: Uuid,
    /// Owning org.
    pub org_id: Uuid,
    /// Cluster name, unique within the org.
    pub name: String,
    /// The kube-system namespace UID of the cluster.
    pub cluster_uid: String,
    /// Status as reported (e.g. `"healthy"`, `"disconnected"`).
    pub status: String,
    /// Last heartbeat, Unix ns.
    pub last_heartbeat_ns: Option<i64>,
    /// Vizier version.
    pub version: String,
    /// Registration time, Unix ns.
    pub created_at: i64,
    /// Agents the vizier last reported running (0 before its first heartbeat).
    pub num_agents: i64,
    /// Where clients may reach the vizier's query endpoint (`host:port`), as it last reported; empty when unknown.
    pub address: String,
}

/// Input of `Metastore::create_vizier`; the vizier starts with status `"disconnected"` and no heartbeat.
#[derive(Debug, Clone)]
pub struct NewVizier {
    /// Owning org; must exist.
    pub org_id: Uuid,
    /// Cluster name, unique within the org.
    pub name: String,
    /// The kube-system namespace UID.
    pub cluster_uid: String,
    /// Vizier version.
    pub version: String,
}

/// Input of `Metastore::update_vizier_status`.
#[derive(Debug, Clone)]
pub struct VizierStatusUpdate {
    /// New status.
    pub status: String,
    /// Heartbeat time, Unix ns.
    pub last_heartbeat_ns: i64,
    /// New version, if it changed.
    pub version: Option<String>,
    /// Agents running, when reported (`None` keeps the stored count).
    pub num_agents: Option<i64>,
    /// The reported address, when reported (`None` keeps the stored one).
    pub address: Option<String>,
}

/// The status a vizier gets when created.
pub const VIZIER_INITIAL_STATUS: &str = "disconnected";

/// The kv row `create_first_admin` writes first, so racing bootstraps run one after the other; it holds the
/// time (Unix ns) of the bootstrap that created the first admin.
pub const ADMIN_BOOTSTRAP_KV: &str = "auth.admin_bootstrap";

/// A script run on a schedule against some of the org's viziers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CronScript {
    /// Cron script id.
    pub id: Uuid,
    /// Owning org.
    pub org_id: Uuid,
    /// Name, unique within the org.
    pub name: String,
    /// PxL source.
    pub script: String,
    /// Viziers to run on (stored as a JSON array); empty for every vizier of the org.
    #[sqlx(json)]
    pub cluster_ids: Vec<Uuid>,
    /// Period in seconds (> 0), or 0 when `cron_expr` is the schedule.
    pub frequency_s: i64,
    /// A cron expression, or empty when `frequency_s` is the schedule.
    pub cron_expr: String,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// Free-form configuration text (e.g. YAML export settings).
    pub configs: String,
    /// Creation time, Unix ns.
    pub created_at: i64,
    /// Last update time, Unix ns.
    pub updated_at: i64,
}

/// Input of `Metastore::create_cron_script`.
#[derive(Debug, Clone)]
pub struct NewCronScript {
    /// Owning org; must exist.
    pub org_id: Uuid,
    /// Name, unique within the org.
    pub name: String,
    /// PxL source.
    pub script: String,
    /// Viziers to run on; empty for every vizier of the org.
    pub cluster_ids: Vec<Uuid>,
    /// Period in seconds (> 0), or 0 with a `cron_expr`.
    pub frequency_s: i64,
    /// A cron expression, or empty with a period.
    pub cron_expr: String,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// Free-form configuration text.
    pub configs: String,
}

/// Input of `Metastore::update_cron_script`: replaces every mutable field.
#[derive(Debug, Clone)]
pub struct CronScriptUpdate {
    /// PxL source.
    pub script: String,
    /// Viziers to run on; empty for every vizier of the org.
    pub cluster_ids: Vec<Uuid>,
    /// Period in seconds (> 0), or 0 with a `cron_expr`.
    pub frequency_s: i64,
    /// A cron expression, or empty with a period.
    pub cron_expr: String,
    /// Whether the scheduler runs it.
    pub enabled: bool,
    /// Free-form configuration text.
    pub configs: String,
}

/// The result of one run of a cron script on one vizier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct CronResult {
    /// Result id.
    pub id: Uuid,
    /// Owning org.
    pub org_id: Uuid,
    /// The cron script.
    pub cron_id: Uuid,
    /// The vizier that ran it.
    pub vizier_id: Uuid,
    /// When the run was due, Unix ns (the vizier's clock); with the script and vizier, it names the run.
    pub run_at: i64,
    /// How long the run took.
    pub duration_ns: i64,
    /// 0 when the run succeeded, else a gRPC status code.
    pub error_code: i64,
    /// Why the run failed; empty when it succeeded.
    pub error: String,
    /// Rows the script returned, over all its outputs.
    pub records: i64,
    /// Bytes of those rows (Arrow IPC).
    pub bytes: i64,
    /// When the cloud received it, Unix ns.
    pub received_at: i64,
}

/// Input of `Metastore::record_cron_result`.
#[derive(Debug, Clone)]
pub struct NewCronResult {
    /// Owning org: the script must be this org's.
    pub org_id: Uuid,
    /// The cron script.
    pub cron_id: Uuid,
    /// The vizier that ran it.
    pub vizier_id: Uuid,
    /// When the run was due, Unix ns.
    pub run_at: i64,
    /// How long the run took.
    pub duration_ns: i64,
    /// 0 when the run succeeded, else a gRPC status code.
    pub error_code: i64,
    /// Why the run failed; empty when it succeeded.
    pub error: String,
    /// Rows returned.
    pub records: i64,
    /// Bytes returned.
    pub bytes: i64,
}

/// One key/value setting (of a user or an org).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Setting {
    /// Setting name.
    pub key: String,
    /// Setting value.
    pub value: String,
}

/// Rejects text the backends would treat differently: Postgres refuses NUL bytes in `text`, so both refuse.
pub(crate) fn check_text(field: &'static str, value: &str) -> Result<()> {
    if value.contains('\0') {
        return Err(MetastoreError::invalid(format!("{field} must not contain NUL bytes")));
    }
    Ok(())
}

/// `check_text` plus: not empty or blank.
pub(crate) fn check_name(field: &'static str, value: &str) -> Result<()> {
    check_text(field, value)?;
    if value.trim().is_empty() {
        return Err(MetastoreError::invalid(format!("{field} must not be empty")));
    }
    Ok(())
}

/// The case-folded email used for uniqueness and lookup (folded in Rust so both backends agree).
pub(crate) fn email_key(email: &str) -> String {
    email.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips_through_text() {
        for role in [Role::Admin, Role::Member] {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn text_checks_reject_nul_and_blank() {
        assert!(check_text("name", "a\0b").is_err());
        assert!(check_name("name", "  ").is_err());
        assert!(check_name("name", "ok").is_ok());
    }

    #[test]
    fn user_debug_hides_the_hash() {
        let user = User {
            id: Uuid::nil(),
            org_id: Uuid::nil(),
            email: "a@b".into(),
            display_name: "A".into(),
            password_hash: "secret-hash".into(),
            role: Role::Admin,
            must_change_password: true,
            created_at: 0,
            updated_at: 0,
        };
        assert!(!format!("{user:?}").contains("secret-hash"));
    }
}
