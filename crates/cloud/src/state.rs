//! The API server's shared state (`CloudState`), its settings (`CloudConfig`) and the start-up steps the binary
//! runs before serving: loading or creating the token signing key and creating the first admin.
//!
//! Owns what a running API server holds and how it is built. Must not handle requests (the `api` modules do)
//! and must not read files, flags or environment variables other than through the values it is given.

use std::sync::Arc;
use std::time::Duration;

use loupe_auth::{
    AdminBootstrap, BootstrapError, LoginThrottle, SessionCache, SigningKey, ThrottlePolicy, TokenSigner,
};
use loupe_metastore::{Metastore, MetastoreError, User};

use crate::metrics::Metrics;

/// The global kv key under which the token signing key is stored (base64).
pub const SIGNING_KEY_KV: &str = "auth.signing_key";
/// Name of the org the bootstrap admin belongs to.
pub const DEFAULT_ORG_NAME: &str = "default";

/// Settings of the API server. `Default` is the embedded `loupe up` setup.
#[derive(Debug, Clone)]
pub struct CloudConfig {
    /// The deployment's domain: the `aud` of every token (Pixie's `PL_DOMAIN_NAME`).
    pub domain: String,
    /// Lifetime of a login (and refreshed) session token. Pixie's login token lasts 90 days; it must not exceed
    /// the session cache's user-revocation TTL (91 days by default), or a revoked token could come back.
    pub session_ttl: Duration,
    /// Lifetime of an invitation token (Pixie: 7 days).
    pub invitation_ttl: Duration,
    /// Largest accepted request body; bigger ones get 413.
    pub max_body_bytes: usize,
    /// Login brute-force limits.
    pub throttle: ThrottlePolicy,
    /// Take the client address for login throttling from the first `X-Forwarded-For` entry. Enable only behind
    /// a proxy that sets it (`loupe cloud proxy`), or clients could pick their own address.
    pub trust_forwarded_for: bool,
    /// The org the bootstrap admin is created in.
    pub default_org: String,
}

impl Default for CloudConfig {
    fn default() -> Self {
        Self {
            domain: "localhost".to_owned(),
            session_ttl: Duration::from_secs(90 * 24 * 3600),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 1024 * 1024,
            throttle: ThrottlePolicy::default(),
            trust_forwarded_for: false,
            default_org: DEFAULT_ORG_NAME.to_owned(),
        }
    }
}

/// Everything a request handler needs; cheap to clone (all shared behind `Arc`s).
#[derive(Debug, Clone)]
pub struct CloudState {
    /// Durable state: orgs, users, keys, scripts, viziers.
    pub metastore: Arc<dyn Metastore>,
    /// Revocation and throttling state.
    pub sessions: Arc<dyn SessionCache>,
    /// Issues and checks session tokens.
    pub signer: TokenSigner,
    /// Login brute-force limits on top of `sessions`.
    pub throttle: LoginThrottle,
    /// Settings.
    pub config: Arc<CloudConfig>,
    /// Request counters served at `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
}

impl CloudState {
    /// Builds the state; the signer's audience is `config.domain` and the throttle uses `config.throttle`.
    pub fn new(
        metastore: Arc<dyn Metastore>,
        sessions: Arc<dyn SessionCache>,
        signing_key: SigningKey,
        config: CloudConfig,
    ) -> Self {
        let signer = TokenSigner::new(signing_key, config.domain.clone());
        let throttle = LoginThrottle::new(Arc::clone(&sessions), config.throttle.clone());
        Self { metastore, sessions, signer, throttle, config: Arc::new(config), metrics: Arc::new(Metrics::default()) }
    }
}

/// Errors of the start-up steps.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The metastore failed.
    #[error("metastore: {0}")]
    Metastore(#[from] MetastoreError),
    /// The admin settings are unusable or the password could not be hashed.
    #[error("admin bootstrap: {0}")]
    Bootstrap(#[from] BootstrapError),
    /// The stored signing key is unusable (it is never replaced silently: tokens would all break).
    #[error("stored token signing key {SIGNING_KEY_KV:?} is invalid: {0}")]
    SigningKey(String),
    /// A blocking task (password hashing) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// What `bootstrap` did.
#[derive(Debug, Clone)]
pub struct BootstrapOutcome {
    /// The admin user (existing or new).
    pub admin: User,
    /// Whether it was created by this call.
    pub created: bool,
    /// Whether its initial password is the public default (worth a warning; the first login must change it).
    pub uses_default_password: bool,
}

/// Returns the deployment's token signing key, generating and storing one on first start.
///
/// There is no default key. Concurrent first starts agree because the store keeps whichever value was written
/// first (`kv_put_if_absent`) and every caller uses the winner.
pub async fn load_or_create_signing_key(metastore: &dyn Metastore) -> Result<SigningKey, CloudError> {
    let stored = match metastore.kv_get(SIGNING_KEY_KV).await? {
        Some(stored) => stored,
        None => {
            let fresh = SigningKey::generate().map_err(|e| CloudError::SigningKey(e.to_string()))?;
            metastore.kv_put_if_absent(SIGNING_KEY_KV, &fresh.to_base64()).await?
        }
    };
    SigningKey::from_base64(&stored).map_err(|e| CloudError::SigningKey(e.to_string()))
}

/// Creates the first admin (in org `config.default_org`, must change password at first login) unless a user
/// with that email exists. Idempotent: `loupe up` and `loupe setup create-admin` run it on every start.
pub async fn bootstrap(state: &CloudState, admin: &AdminBootstrap) -> Result<BootstrapOutcome, CloudError> {
    // Hashing is only needed when the admin is missing, but checking first would race with a concurrent start;
    // create_admin_if_absent is the atomic step, so hash unconditionally (one argon2 run per start).
    let prepared = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || admin.prepare()).await.map_err(|e| CloudError::Task(e.to_string()))??
    };
    let (user, created) = state
        .metastore
        .create_admin_if_absent(&prepared.email, &prepared.password_hash, &state.config.default_org)
        .await?;
    if created {
        tracing::info!(email = %user.email, org = %state.config.default_org, "created the bootstrap admin");
        if admin.uses_default_password() {
            tracing::warn!(
                email = %user.email,
                "the bootstrap admin has the default password; it must be changed at first login"
            );
        }
    }
    Ok(BootstrapOutcome { admin: user, created, uses_default_password: admin.uses_default_password() })
}
