//! The `Metastore` handle and its area traits (`OrgStore`, `UserStore`, …, `KvStore`): every operation the cloud
//! services need on durable state, one trait per area.
//!
//! Owns the trait's contract (what each call returns and fails with). Must not touch: SQL, pools or any backend
//! detail; the backends live in `sqlite`, `postgres` and the shared `sql` modules (one per
//! area).
//!
//! Isolation contract: every read, update or delete of an org-owned row takes the caller's `org_id` and acts only
//! on rows of that org. A row of another org is `NotFound`, never returned or changed. The few unscoped calls
//! (lookups by a secret hash or a session id, `list_enabled_cron_scripts`, the global `kv`) say so.

use async_trait::async_trait;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    CronResult, CronScript, CronScriptUpdate, Invitation, Key, KeyKind, NewCronResult, NewCronScript, NewInvitation,
    NewKey, NewScript, NewUser, NewVizier, Org, Role, Script, ScriptUpdate, Session, Setting, User, Vizier,
    VizierStatusUpdate,
};

/// Durable cloud state: every area's calls behind one dyn-compatible handle, held by the services as
/// `Arc<dyn Metastore>`. The areas are separate traits so each has one contract and one SQL module; bring them into
/// scope with `use loupe_metastore::prelude::*`.
///
/// Timestamps are Unix nanoseconds computed by the store. Text fields must not contain NUL bytes (`Invalid`).
#[async_trait]
pub trait Metastore:
    OrgStore
    + UserStore
    + InvitationStore
    + SessionStore
    + KeyStore
    + ScriptStore
    + VizierStore
    + CronScriptStore
    + CronResultStore
    + SettingStore
    + KvStore
    + Send
    + Sync
    + std::fmt::Debug
{
    /// The backend's name: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Runs a trivial query; `Unavailable` if the database cannot be reached. For readiness probes.
    async fn health_check(&self) -> Result<()>;
}

/// Orgs: the unit of isolation.
#[async_trait]
pub trait OrgStore {
    /// Creates an org. `AlreadyExists { entity: "org" }` if the name is taken.
    async fn create_org(&self, name: &str) -> Result<Org>;
    /// The org with this id.
    async fn get_org(&self, org_id: Uuid) -> Result<Org>;
    /// The org with this exact name.
    async fn get_org_by_name(&self, name: &str) -> Result<Org>;
    /// All orgs, by name.
    async fn list_orgs(&self) -> Result<Vec<Org>>;
    /// Deletes an org and, by cascade, everything it owns.
    async fn delete_org(&self, org_id: Uuid) -> Result<()>;
}

/// Users of an org, and the first admin bootstrap.
#[async_trait]
pub trait UserStore {
    /// Creates a user. `AlreadyExists { entity: "user" }` if the email is taken (case-insensitively, across all
    /// orgs); `NotFound { entity: "org" }` if the org does not exist.
    async fn create_user(&self, user: NewUser) -> Result<User>;
    /// The user with this id in this org.
    async fn get_user(&self, org_id: Uuid, user_id: Uuid) -> Result<User>;
    /// The user with this email, compared case-insensitively. Unscoped: used at login, before the org is known.
    async fn get_user_by_email(&self, email: &str) -> Result<User>;
    /// The org's users, by email.
    async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>>;
    /// Replaces the password hash and sets the must-change flag.
    async fn update_user_password(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        password_hash: &str,
        must_change_password: bool,
    ) -> Result<User>;
    /// Changes the display name.
    async fn update_user_display_name(&self, org_id: Uuid, user_id: Uuid, display_name: &str) -> Result<User>;
    /// Changes the user's role.
    async fn set_user_role(&self, org_id: Uuid, user_id: Uuid, role: Role) -> Result<User>;
    /// Deletes the user with their sessions, API keys and settings.
    async fn delete_user(&self, org_id: Uuid, user_id: Uuid) -> Result<()>;

    /// Creates org `org_name` (if absent) and an admin user with `email` and `must_change_password = true`, only
    /// if the metastore has no user at all; returns the new admin, or `None` when users exist. Safe to race
    /// (exactly one racer creates it): `loupe setup create-admin` and `loupe up` call it on every start, so a
    /// bootstrap admin that was deleted while other users exist is never created again.
    async fn create_first_admin(&self, email: &str, password_hash: &str, org_name: &str) -> Result<Option<User>>;
}

/// Invitations into an org, accepted with a one-time token.
#[async_trait]
pub trait InvitationStore {
    /// Creates an invitation. `AlreadyExists` if the token hash is taken; `NotFound` if the org does not exist or
    /// `created_by` is not a user of it.
    async fn create_invitation(&self, invitation: NewInvitation) -> Result<Invitation>;
    /// The invitation with this token hash. Unscoped: the token is the credential.
    async fn get_invitation_by_token_hash(&self, token_hash: &str) -> Result<Invitation>;
    /// The org's invitations, newest first.
    async fn list_invitations(&self, org_id: Uuid) -> Result<Vec<Invitation>>;
    /// Deletes an invitation of this org.
    async fn delete_invitation(&self, org_id: Uuid, invitation_id: Uuid) -> Result<()>;
    /// Atomically marks the invitation accepted and creates its user (email and role from the invitation,
    /// `must_change_password = false`). `NotFound` for an unknown token, `Invalid` if expired or already accepted,
    /// `AlreadyExists { entity: "user" }` if the email is taken (the invitation then stays unaccepted).
    async fn accept_invitation(&self, token_hash: &str, display_name: &str, password_hash: &str) -> Result<User>;
}

/// Login sessions, the durable side of session tokens.
#[async_trait]
pub trait SessionStore {
    /// Records a session for a user of `org_id` that expires at `expires_at` (Unix ns).
    async fn create_session(&self, org_id: Uuid, user_id: Uuid, expires_at: i64) -> Result<Session>;
    /// The session with this id, revoked or expired ones included (check `Session::is_active`). Unscoped: the id
    /// comes from a token the auth layer has already verified.
    async fn get_session(&self, session_id: Uuid) -> Result<Session>;
    /// The user's sessions, newest first.
    async fn list_user_sessions(&self, org_id: Uuid, user_id: Uuid) -> Result<Vec<Session>>;
    /// Revokes one session of this org; revoking twice keeps the first time.
    async fn revoke_session(&self, org_id: Uuid, session_id: Uuid) -> Result<()>;
    /// Revokes all the user's live sessions; returns how many were revoked now.
    async fn revoke_user_sessions(&self, org_id: Uuid, user_id: Uuid) -> Result<u64>;
    /// Deletes sessions that expired before `before_ns`; returns how many.
    async fn purge_expired_sessions(&self, before_ns: i64) -> Result<u64>;
}

/// API keys (`px-api-…`) and deploy keys (`px-dep-…`): one area, every call taking the kind. Errors name the
/// kind's entity (`"api key"` or `"deploy key"`).
#[async_trait]
pub trait KeyStore {
    /// Creates a key. An API key needs `user_id`, a user of the org (`Invalid` without one, `NotFound { entity:
    /// "user" }` otherwise); a deploy key's creator is optional but, when given, must be a user of the org.
    /// `NotFound { entity: "org" }` if the org does not exist; `AlreadyExists` if the kind already has the hash.
    async fn create_key(&self, key: NewKey) -> Result<Key>;
    /// The org's keys of `kind`, optionally only those of one user (owner or creator), oldest first; revoked
    /// keys included.
    async fn list_keys(&self, kind: KeyKind, org_id: Uuid, user_id: Option<Uuid>) -> Result<Vec<Key>>;
    /// One key of `kind` of this org (revoked or not).
    async fn get_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<Key>;
    /// The unrevoked key of `kind` with this hash; `NotFound` for revoked keys. Unscoped: the key is the credential.
    async fn get_key_by_hash(&self, kind: KeyKind, key_hash: &str) -> Result<Key>;
    /// Revokes a key of `kind` of this org; revoking twice keeps the first time.
    async fn revoke_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<()>;
    /// Records a successful use now.
    async fn touch_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<()>;
}

/// Saved PxL scripts of an org.
#[async_trait]
pub trait ScriptStore {
    /// Saves a script. `AlreadyExists { entity: "script" }` if the org already has one with that name (other orgs
    /// may use the same name).
    async fn create_script(&self, script: NewScript) -> Result<Script>;
    /// Replaces the content of the org's script `name`.
    async fn update_script(&self, org_id: Uuid, name: &str, update: ScriptUpdate) -> Result<Script>;
    /// The org's script `name`.
    async fn get_script(&self, org_id: Uuid, name: &str) -> Result<Script>;
    /// The org's scripts, by name.
    async fn list_scripts(&self, org_id: Uuid) -> Result<Vec<Script>>;
    /// Deletes the org's script `name`.
    async fn delete_script(&self, org_id: Uuid, name: &str) -> Result<()>;
}

/// Registered viziers of an org and their last reported status.
#[async_trait]
pub trait VizierStore {
    /// Registers a vizier. `AlreadyExists { entity: "vizier" }` if the org already has one with that name.
    async fn create_vizier(&self, vizier: NewVizier) -> Result<Vizier>;
    /// One vizier of this org.
    async fn get_vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<Vizier>;
    /// The org's vizier named `name`.
    async fn get_vizier_by_name(&self, org_id: Uuid, name: &str) -> Result<Vizier>;
    /// The org's viziers, by name.
    async fn list_viziers(&self, org_id: Uuid) -> Result<Vec<Vizier>>;
    /// Records a status report (and heartbeat) of one of the org's viziers.
    async fn update_vizier_status(&self, org_id: Uuid, vizier_id: Uuid, update: VizierStatusUpdate) -> Result<Vizier>;
    /// Deletes one of the org's viziers.
    async fn delete_vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<()>;
}

/// Scripts an org runs on a schedule.
#[async_trait]
pub trait CronScriptStore {
    /// Creates a cron script. `Invalid` unless exactly one of `frequency_s > 0` and a non-empty `cron_expr`;
    /// `AlreadyExists { entity: "cron script" }` if the org has one of that name.
    async fn create_cron_script(&self, cron: NewCronScript) -> Result<CronScript>;
    /// One cron script of this org.
    async fn get_cron_script(&self, org_id: Uuid, cron_id: Uuid) -> Result<CronScript>;
    /// The org's cron scripts, oldest first.
    async fn list_cron_scripts(&self, org_id: Uuid) -> Result<Vec<CronScript>>;
    /// Every org's enabled cron scripts. Unscoped: for the scheduler only, never for an API caller.
    async fn list_enabled_cron_scripts(&self) -> Result<Vec<CronScript>>;
    /// Replaces the mutable fields of one of the org's cron scripts.
    async fn update_cron_script(&self, org_id: Uuid, cron_id: Uuid, update: CronScriptUpdate) -> Result<CronScript>;
    /// Deletes one of the org's cron scripts.
    async fn delete_cron_script(&self, org_id: Uuid, cron_id: Uuid) -> Result<()>;
}

/// The last results of each cron script.
#[async_trait]
pub trait CronResultStore {
    /// Stores the result of one run and keeps only the newest `keep` (by `run_at`) of that script; `false` when
    /// the run (script, vizier, `run_at`) was already stored, which changes nothing. `NotFound { entity: "cron
    /// script" }` unless the script is the org's.
    async fn record_cron_result(&self, result: NewCronResult, keep: u32) -> Result<bool>;
    /// The stored results of one of the org's scripts, oldest run first.
    async fn list_cron_results(&self, org_id: Uuid, cron_id: Uuid) -> Result<Vec<CronResult>>;
}

/// Per-user and per-org settings.
#[async_trait]
pub trait SettingStore {
    /// A user's setting, `None` if unset. `NotFound` unless the user belongs to the org.
    async fn get_user_setting(&self, org_id: Uuid, user_id: Uuid, key: &str) -> Result<Option<String>>;
    /// Sets (inserts or overwrites) a user's setting.
    async fn put_user_setting(&self, org_id: Uuid, user_id: Uuid, key: &str, value: &str) -> Result<()>;
    /// All of a user's settings, by key.
    async fn list_user_settings(&self, org_id: Uuid, user_id: Uuid) -> Result<Vec<Setting>>;
    /// An org setting, `None` if unset. `NotFound` if the org does not exist.
    async fn get_org_setting(&self, org_id: Uuid, key: &str) -> Result<Option<String>>;
    /// Sets (inserts or overwrites) an org setting.
    async fn put_org_setting(&self, org_id: Uuid, key: &str, value: &str) -> Result<()>;
    /// All of an org's settings, by key.
    async fn list_org_settings(&self, org_id: Uuid) -> Result<Vec<Setting>>;
}

/// The global key/value store (not org-scoped): generated secrets and bootstrap markers.
#[async_trait]
pub trait KvStore {
    /// The global value under `key`, if any (e.g. a generated signing key).
    async fn kv_get(&self, key: &str) -> Result<Option<String>>;
    /// Deletes the value under `key`; whether there was one.
    async fn kv_delete(&self, key: &str) -> Result<bool>;
    /// Stores `value` under `key` unless a value is already there, atomically, and returns the value that won.
    /// Concurrent callers with different values all get the same winner.
    async fn kv_put_if_absent(&self, key: &str, value: &str) -> Result<String>;
}
