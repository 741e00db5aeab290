//! The API server's shared state (`CloudState`), its settings (`CloudConfig`) and the start-up steps the binary
//! runs before serving: forgetting a signing key an older version kept in the metastore, and creating the first
//! admin into an empty metastore.
//!
//! Owns what a running API server holds and how it is built. Must not handle requests (the `api` modules do)
//! and must not read files, flags or environment variables other than through the values it is given.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use loupe_auth::{
    AdminBootstrap, BootstrapError, DEFAULT_MAX_SESSION_LIFETIME, HashingLimiter, LoginThrottle, SessionCache,
    SigningKey, ThrottlePolicy, TokenSigner,
};
use loupe_metastore::{Metastore, MetastoreError, User};

use crate::metrics::Metrics;

/// The global kv key under which versions before the hardening kept the token signing key. The key now lives
/// in a 0600 file (`<data-dir>/secrets/jwt-signing-key`); a leftover row is deleted at start.
pub const LEGACY_SIGNING_KEY_KV: &str = "auth.signing_key";
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
    /// Absolute lifetime of a session, counted from its login: refreshing cannot extend a session past it
    /// (default 30 days).
    pub session_max_lifetime: Duration,
    /// Peers whose `X-Forwarded-For` names the end client (its last entry, the one the proxy appended). Any
    /// other peer is the client itself.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// A secret the in-process TLS proxy of `loupe up` sends in `PROXY_SECRET_HEADER`: a request carrying it came
    /// through that proxy, whatever its (loopback) peer, so its `X-Forwarded-For` is trusted.
    pub proxy_secret: Option<String>,
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
            session_max_lifetime: DEFAULT_MAX_SESSION_LIFETIME,
            trusted_proxies: Vec::new(),
            proxy_secret: None,
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
    /// The bound on concurrent password hashing.
    pub hashing: HashingLimiter,
    /// Settings.
    pub config: Arc<CloudConfig>,
    /// Request counters served at `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// Told when an org's cron scripts change, so that its viziers get them at once; `None` where VZConn does
    /// not run in this process (the viziers then learn it at their next request).
    pub cron_changes: Option<Arc<dyn CronChanges>>,
    /// Seals credentials kept in org settings (the export endpoint's header values); `None` where this process
    /// is given none, which then refuses to store such credentials.
    pub settings_key: Option<loupe_vzconn::SettingsKey>,
}

/// What the cron service calls after changing an org's cron scripts (VZConn's pusher, wired by the binary).
pub trait CronChanges: Send + Sync + fmt::Debug {
    /// The org's cron scripts changed.
    fn changed(&self, org_id: uuid::Uuid);
}

impl CloudState {
    /// Builds the state; the signer's audience is `config.domain` and the throttle uses `config.throttle`.
    pub fn new(
        metastore: Arc<dyn Metastore>,
        sessions: Arc<dyn SessionCache>,
        signing_key: SigningKey,
        config: CloudConfig,
    ) -> Self {
        let signer =
            TokenSigner::new(signing_key, config.domain.clone()).with_max_lifetime(config.session_max_lifetime);
        let throttle = LoginThrottle::new(Arc::clone(&sessions), config.throttle.clone());
        Self {
            metastore,
            sessions,
            signer,
            throttle,
            hashing: HashingLimiter::for_this_machine(),
            config: Arc::new(config),
            metrics: Arc::new(Metrics::default()),
            cron_changes: None,
            settings_key: None,
        }
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
    /// A blocking task (password hashing) panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// What `bootstrap` did.
#[derive(Debug, Clone)]
pub struct BootstrapOutcome {
    /// The admin created by this call; `None` when the metastore already had users (then nothing was done).
    pub created: Option<User>,
    /// Whether the initial password is the public default (worth a warning; the first login must change it).
    pub uses_default_password: bool,
}

/// Deletes the signing key older versions kept in the metastore's kv table (readable by anyone who can read
/// the database file). Returns whether there was one: sessions signed with it end, since the key now comes
/// from a file.
pub async fn forget_stored_signing_key(metastore: &dyn Metastore) -> Result<bool, CloudError> {
    Ok(metastore.kv_delete(LEGACY_SIGNING_KEY_KV).await?)
}

/// Creates the first admin (in org `config.default_org`, must change password at first login) only if the
/// metastore has no user at all. `loupe up` and the auth service run it on every start; a deleted bootstrap
/// admin stays deleted while any other user exists.
pub async fn bootstrap(state: &CloudState, admin: &AdminBootstrap) -> Result<BootstrapOutcome, CloudError> {
    bootstrap_into(state.metastore.as_ref(), &state.config.default_org, admin).await
}

/// [`bootstrap`] on a bare metastore: what `loupe setup create-admin` runs, with no signing key in sight.
pub async fn bootstrap_into(
    metastore: &dyn Metastore,
    org: &str,
    admin: &AdminBootstrap,
) -> Result<BootstrapOutcome, CloudError> {
    // Hashing is only needed when the table is empty, but checking first would race with a concurrent start;
    // create_first_admin is the atomic step, so hash unconditionally (one argon2 run per start).
    let prepared = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || admin.prepare()).await.map_err(|e| CloudError::Task(e.to_string()))??
    };
    let created = metastore.create_first_admin(&prepared.email, &prepared.password_hash, org).await?;
    match &created {
        Some(user) => {
            tracing::info!(email = %user.email, org, "created the bootstrap admin");
            if admin.uses_default_password() {
                tracing::warn!(
                    email = %user.email,
                    "the bootstrap admin has the default password; it must be changed at first login"
                );
            }
        }
        None => tracing::debug!("the metastore has users; no bootstrap admin created"),
    }
    Ok(BootstrapOutcome { created, uses_default_password: admin.uses_default_password() })
}

/// What [`create_org_with_admin`] did.
#[derive(Debug, Clone)]
pub enum NewOrgOutcome {
    /// The org and its first admin were created.
    Created(User),
    /// An org of that name exists already; nothing was done.
    OrgExists,
}

/// Adds org `org` with `admin` as its first admin (who must change the password at first login), for an operator
/// hosting several orgs in one cloud (`loupe setup create-admin --org`). Does nothing when the org exists, so
/// running it again is safe. If the admin cannot be created (the email is taken), the new org is removed again,
/// so a retry with another email starts clean.
pub async fn create_org_with_admin(
    metastore: &dyn Metastore,
    org: &str,
    admin: &AdminBootstrap,
) -> Result<NewOrgOutcome, CloudError> {
    let prepared = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || admin.prepare()).await.map_err(|e| CloudError::Task(e.to_string()))??
    };
    let created = match metastore.create_org(org).await {
        Ok(created) => created,
        Err(MetastoreError::AlreadyExists { .. }) => return Ok(NewOrgOutcome::OrgExists),
        Err(e) => return Err(e.into()),
    };
    let user = loupe_metastore::NewUser {
        org_id: created.id,
        email: prepared.email,
        display_name: "admin".to_owned(),
        password_hash: prepared.password_hash,
        role: loupe_metastore::Role::Admin,
        must_change_password: prepared.must_change_password,
    };
    match metastore.create_user(user).await {
        Ok(user) => {
            tracing::info!(email = %user.email, org, "created an org and its first admin");
            Ok(NewOrgOutcome::Created(user))
        }
        Err(e) => {
            if let Err(undo) = metastore.delete_org(created.id).await {
                tracing::warn!(error = %undo, org, "the org without an admin could not be removed");
            }
            Err(e.into())
        }
    }
}

/// An address or network (`10.0.0.0/8`, `fd00::/8`, `192.0.2.1`) whose connections are proxies, given with
/// `--trusted-proxy`. IPv4-mapped IPv6 peers match their IPv4 form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

/// A `--trusted-proxy` value that is not an address or `address/prefix`.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an IP address or CIDR network (such as 10.0.0.0/8 or fd00::/8)")]
pub struct TrustedProxyError(String);

impl TrustedProxy {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip.into(), self.prefix) == u128::from(net),
            _ => false,
        }
    }
}

fn mask_v4(ip: std::net::Ipv4Addr, prefix: u8) -> u32 {
    if prefix == 0 { 0 } else { u32::from(ip) & (u32::MAX << (32 - u32::from(prefix))) }
}

fn mask_v6(ip: u128, prefix: u8) -> u128 {
    if prefix == 0 { 0 } else { ip & (u128::MAX << (128 - u32::from(prefix))) }
}

impl FromStr for TrustedProxy {
    type Err = TrustedProxyError;

    fn from_str(s: &str) -> Result<Self, TrustedProxyError> {
        let invalid = || TrustedProxyError(s.to_owned());
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| invalid())?)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse::<IpAddr>().map_err(|_| invalid())?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(invalid());
        }
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(mask_v4(v4, prefix).into()),
            IpAddr::V6(v6) => IpAddr::V6(mask_v6(v6.into(), prefix).into()),
        };
        Ok(Self { network, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(email: &str) -> AdminBootstrap {
        AdminBootstrap { email: email.to_owned(), password: "first password".to_owned() }
    }

    #[tokio::test]
    async fn a_second_org_gets_its_first_admin_once() {
        let metastore = loupe_metastore::connect("sqlite::memory:").await.expect("metastore");
        let first = bootstrap_into(metastore.as_ref(), DEFAULT_ORG_NAME, &admin("admin@default.com")).await;
        assert!(first.expect("bootstrap").created.is_some());

        let NewOrgOutcome::Created(user) =
            create_org_with_admin(metastore.as_ref(), "acme", &admin("root@acme.example")).await.expect("create")
        else {
            panic!("acme was not created");
        };
        let acme = metastore.get_org_by_name("acme").await.expect("acme");
        assert_eq!(
            (user.org_id, user.email.as_str(), user.role),
            (acme.id, "root@acme.example", loupe_metastore::Role::Admin)
        );
        assert!(user.must_change_password);
        let default = metastore.get_org_by_name(DEFAULT_ORG_NAME).await.expect("default");
        assert_ne!(acme.id, default.id);

        // Again: nothing happens, whatever the email.
        let again =
            create_org_with_admin(metastore.as_ref(), "acme", &admin("other@acme.example")).await.expect("again");
        assert!(matches!(again, NewOrgOutcome::OrgExists), "{again:?}");
        assert_eq!(metastore.list_users(acme.id).await.expect("users").len(), 1);

        // A taken email fails and leaves no org without an admin behind.
        let taken = create_org_with_admin(metastore.as_ref(), "beta", &admin("admin@default.com")).await;
        assert!(matches!(taken, Err(CloudError::Metastore(MetastoreError::AlreadyExists { .. }))), "{taken:?}");
        assert!(metastore.get_org_by_name("beta").await.is_err());
        assert_eq!(metastore.list_orgs().await.expect("orgs").len(), 2);
    }
}
