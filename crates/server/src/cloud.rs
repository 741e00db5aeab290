//! Wiring of the cloud services: flags, metastore and session-cache selection, the token signing key file, the
//! private data directory, bootstrap.

use crate::default_data_dir;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loupe_auth::{
    AdminBootstrap, InMemorySessionCache, RedisSessionCache, RedisSessionCacheConfig, SessionCache, SigningKey,
};
use loupe_cloud::services::GatewayCredential;
use loupe_cloud::{
    CloudConfig, CloudState, Gateway, InternalTls, ServiceAddrs, ServiceClients, ServiceKind, TrustedProxy,
};
use loupe_metastore::Metastore;

/// Where the cloud keeps its state.
#[derive(Args, Clone, Debug)]
pub struct MetastoreArgs {
    /// Metastore URL: `postgres://user:pass@host/db`, or `sqlite://path.db`. Default: SQLite in --data-dir.
    #[arg(long, env = "LOUPE_METASTORE_URL", hide_env_values = true)]
    pub metastore_url: Option<String>,
    /// Directory for embedded state (the SQLite metastore, `secrets/`). Kept private: the directory is made
    /// 0700 and everything in it readable by its owner only, at every start.
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

/// What every process running cloud services needs: state, sessions and the token audience.
#[derive(Args, Clone, Debug)]
pub struct StateArgs {
    /// Redis URL for sessions, revocations and login throttling; in memory when absent (then separate
    /// service processes do not see each other's logouts: use Redis as soon as services run apart).
    #[arg(long, env = "LOUPE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// The deployment's domain: the audience of every token (PL_DOMAIN_NAME in Pixie).
    #[arg(long, env = "LOUPE_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// File holding the token signing key, such as `jwt-signing-key` from `loupe setup init-secrets` (every
    /// service process and the API gateway must use the same one). Default: `<data-dir>/secrets/jwt-signing-key`,
    /// generated (0600) on first start.
    #[arg(long, env = "LOUPE_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// File holding the key that seals credentials kept in org settings (the export endpoint's header values),
    /// such as `settings-key` from `loupe setup init-secrets`; read by the scripts service and `loupe up` (VZConn
    /// needs the same file). Default: `<data-dir>/secrets/settings-key`, generated (0600) on first start.
    #[arg(long, env = "LOUPE_SETTINGS_KEY_FILE")]
    pub settings_key_file: Option<PathBuf>,
    /// Absolute lifetime of a session, from the login that started it: refreshing cannot extend a session past
    /// it, so users log in again at least this often. A number with a unit: s, m, h or d.
    #[arg(long, env = "LOUPE_SESSION_MAX_LIFETIME", default_value = "30d", value_parser = parse_duration)]
    pub session_max_lifetime: Duration,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
}

/// Cloud API settings.
#[derive(Args, Clone, Debug)]
pub struct CloudArgs {
    /// Address of the cloud API (REST under /api/v1, gRPC loupe.cloud.v1).
    #[arg(long, env = "LOUPE_API_LISTEN", default_value = "127.0.0.1:51200")]
    pub api_listen: SocketAddr,
    /// A proxy in front of the API (an address or CIDR network, repeatable or comma-separated): requests from it
    /// are throttled by the last `X-Forwarded-For` entry, the client it saw. Others by their own address.
    /// `loupe up`'s own TLS proxy needs no entry: it proves itself with a per-process secret header instead.
    #[arg(long = "trusted-proxy", value_name = "ADDR", env = "LOUPE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<TrustedProxy>,
    /// Set by `loupe up`: the secret its TLS proxy adds to every request (never a flag).
    #[arg(skip)]
    pub proxy_secret: Option<String>,
    /// Set by `loupe cloud api --tls-cert`: the API's port serves TLS with it (never a flag).
    #[arg(skip)]
    pub listener_tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest a script sent through the cloud to a vizier may run, its results included (e.g. 5m, 90s); then
    /// the cloud stops waiting and tells the vizier to stop. The vizier's own --query-timeout applies as well.
    #[arg(long, env = "LOUPE_VIZIER_QUERY_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub vizier_query_timeout: Duration,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `loupe cloud api`: the services in process, or remote when all three addresses are given.
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Address of /healthz, /readyz (every service reaches its metastore) and /metrics; not on the API's port.
    /// No credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9092")]
    pub metrics_listen: SocketAddr,
    /// Address of `loupe cloud auth` (e.g. https://auth:50100); with the other two, the API server runs as a
    /// gateway without a metastore of its own. The internal hops are TLS: see --internal-ca.
    #[arg(long, env = "LOUPE_AUTH_ADDR", requires_all = ["profile_addr", "scripts_addr"])]
    pub auth_addr: Option<String>,
    /// Address of `loupe cloud profile` (e.g. https://profile:51500).
    #[arg(long, env = "LOUPE_PROFILE_ADDR", requires_all = ["auth_addr", "scripts_addr"])]
    pub profile_addr: Option<String>,
    /// Address of `loupe cloud scripts` (e.g. https://scripts:52000).
    #[arg(long, env = "LOUPE_SCRIPTS_ADDR", requires_all = ["auth_addr", "profile_addr"])]
    pub scripts_addr: Option<String>,
    /// Address of `loupe cloud vzconn` (e.g. https://vzconn-internal:51801, serving the internal certificate):
    /// VZConn's gRPC calls (`/loupe.vzconn.v1.*`) on the API's port, and so through the TLS proxy, are forwarded
    /// there, so viziers may use the cloud's one public address.
    #[arg(long, env = "LOUPE_VZCONN_ADDR")]
    pub vzconn_addr: Option<String>,
    /// PEM file of the CA the internal services' certificates must chain to (`ca.crt` from `loupe setup
    /// init-secrets`); each is checked against the host of its address (e.g. `auth`). Needed, or
    /// --insecure-internal, as soon as one service address is given.
    #[arg(long, env = "LOUPE_INTERNAL_CA", value_name = "FILE")]
    pub internal_ca: Option<PathBuf>,
    /// Talk plain HTTP/2 to the service addresses: only on a network no one else can read or join (sessions
    /// and the gateway's credential cross it in clear).
    #[arg(long, env = "LOUPE_INSECURE_INTERNAL", conflicts_with = "internal_ca")]
    pub insecure_internal: bool,
    /// PEM certificate chain the API's port presents, e.g. `internal.crt` (naming `api-service`): the port then
    /// serves TLS only, and the proxy in front needs --upstream-ca. Default: plain HTTP.
    #[arg(long, env = "LOUPE_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "LOUPE_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// NATS URL of the message bus `loupe cloud vzconn` uses (e.g. nats://nats:4222): scripts sent to this API
    /// (`px run -c VIZIER`) reach the viziers through it. Without it, queries are refused.
    #[arg(long, env = "LOUPE_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
}

/// How the API's port serves VZConn: in process over a bus (`loupe up`), or forwarded to `loupe cloud vzconn`.
pub enum VzConnMount {
    /// VZConn itself and its cron side, on this bus with these settings.
    InProcess(Arc<dyn loupe_bus::Bus>, loupe_vzconn::VzConnConfig, loupe_vzconn::CronConfig),
    /// Forwarded to this address, over TLS unless the mode is `Insecure`.
    Remote(String, InternalTls),
}

/// The path VZConn's gRPC calls take.
fn vzconn_path() -> String {
    let name = <loupe_proto::vzconnpb::vz_conn_service_server::VzConnServiceServer<loupe_vzconn::VzConn> as tonic::server::NamedService>::NAME;
    format!("/{name}/{{*method}}")
}

fn mount_remote_vzconn(router: axum::Router, addr: &str, tls: &InternalTls) -> Result<axum::Router> {
    let channel = loupe_cloud::remote_channel("vzconn", addr, tls).context("invalid --vzconn-addr")?;
    tracing::info!(vzconn = %addr, "forwarding VZConn (loupe.vzconn.v1) from the API's port");
    Ok(router.route_service(&vzconn_path(), loupe_cloud::grpc_forward_to(channel)))
}

/// `loupe setup create-admin` flags.
#[derive(Args, Clone, Debug)]
pub struct CreateAdminArgs {
    /// Add this org, with the admin as its first user, unless an org of that name exists (then nothing is done).
    /// Needs LOUPE_ADMIN_EMAIL. Without it, the first admin of an empty metastore is created in the `default` org.
    #[arg(long, value_name = "NAME")]
    pub org: Option<String>,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
}

/// `loupe cloud auth|profile|scripts`: one service process.
#[derive(Args, Clone, Debug)]
pub struct ServiceArgs {
    /// Address to serve gRPC on; default 127.0.0.1 with the service's port (auth 50100, profile 51500, scripts
    /// 52000). Internal only: expose the API server, not this.
    #[arg(long, env = "LOUPE_SERVICE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address of /healthz, /readyz and /metrics; default 127.0.0.1 with the service's metrics port (auth 9093,
    /// profile 9094, scripts 9095). No credential is asked there.
    #[arg(long, env = "LOUPE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub tls: ServiceTlsArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// The TLS of a service's internal gRPC listener: a certificate (`internal.crt` from `loupe setup
/// init-secrets`, naming the service), or an explicit opt-out. Neither is refused: a split service does not
/// silently serve in clear.
#[derive(Args, Clone, Debug)]
pub struct ServiceTlsArgs {
    /// PEM certificate chain the gRPC listener presents, e.g. `internal.crt` from `loupe setup init-secrets`
    /// (signed by its CA, naming every internal service). Callers verify it with --internal-ca.
    #[arg(long, env = "LOUPE_TLS_CERT", requires = "tls_key", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert, e.g. `internal.key`.
    #[arg(long, env = "LOUPE_TLS_KEY", requires = "tls_cert", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP/2 instead: only on a network no one else can read or join.
    #[arg(long, env = "LOUPE_INSECURE_INTERNAL", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub insecure_internal: bool,
}

/// The listener's TLS configuration, `None` with --insecure-internal; says which mode was chosen.
fn service_tls(service: &str, args: &ServiceTlsArgs) -> Result<Option<Arc<rustls::ServerConfig>>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = loupe_proxy::proxy::server_tls_config(cert, key)
                .with_context(|| format!("unusable --tls-cert {} / --tls-key {}", cert.display(), key.display()))?;
            tracing::info!(service, cert = %cert.display(), "internal gRPC over TLS");
            Ok(Some(config))
        }
        _ if args.insecure_internal => {
            tracing::warn!(
                service,
                "--insecure-internal: internal gRPC in plain HTTP/2; sessions cross the network in clear"
            );
            Ok(None)
        }
        _ => anyhow::bail!(
            "loupe cloud {service} serves its gRPC over TLS: give --tls-cert and --tls-key (`internal.crt` and \
             `internal.key` from `loupe setup init-secrets`), or --insecure-internal on a network no one else reads"
        ),
    }
}

/// How the API reaches the processes named by its address flags; says which mode was chosen.
fn internal_tls(args: &ApiArgs) -> Result<InternalTls> {
    match &args.internal_ca {
        Some(path) => {
            let ca_pem = std::fs::read(path)
                .with_context(|| format!("failed to read the internal CA {} (--internal-ca)", path.display()))?;
            if !String::from_utf8_lossy(&ca_pem).contains("-----BEGIN CERTIFICATE-----") {
                anyhow::bail!("{} holds no PEM certificate (--internal-ca)", path.display());
            }
            tracing::info!(ca = %path.display(), "internal gRPC over TLS, servers verified against the internal CA");
            Ok(InternalTls::Verified { ca_pem })
        }
        None if args.insecure_internal => {
            tracing::warn!("--insecure-internal: internal gRPC in plain HTTP/2; sessions cross the network in clear");
            Ok(InternalTls::Insecure)
        }
        None => anyhow::bail!(
            "the internal services are reached over TLS: give --internal-ca (`ca.crt` from `loupe setup \
             init-secrets`), or --insecure-internal on a network no one else reads"
        ),
    }
}

/// `30d`, `12h`, `90m`, `3600s`: a positive duration with a unit.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a number with a unit (s, m, h, d)"))?;
    let unit_secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        _ => return Err(format!("{text:?} needs a unit: s, m, h or d (e.g. 30d)")),
    };
    match number.checked_mul(unit_secs) {
        Some(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!("{text:?} must be more than zero and less than centuries")),
    }
}

/// Makes `dir` (created if absent) 0700 and strips group and other permissions from everything in it: the
/// SQLite files and the secrets are readable by the owner only, also when an older version or a loose umask
/// made them readable by everyone.
pub(crate) fn secure_data_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))?;
    restrict(dir)
}

fn restrict(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("failed to inspect {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    let wanted = if meta.is_dir() { 0o700 } else { mode & !0o077 };
    if mode != wanted {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))
            .with_context(|| format!("failed to restrict the permissions of {}", path.display()))?;
        let (was, now) = (format!("{mode:o}"), format!("{wanted:o}"));
        // Certificates are public (init-secrets writes them 0644): tightening them is routine, not a finding.
        if path.extension().is_some_and(|e| e == "crt") {
            tracing::debug!(path = %path.display(), was, now, "tightened permissions");
        } else {
            tracing::warn!(path = %path.display(), was, now, "tightened permissions");
        }
    }
    if meta.is_dir() {
        let entries = std::fs::read_dir(path).with_context(|| format!("failed to list {}", path.display()))?;
        for entry in entries {
            restrict(&entry.with_context(|| format!("failed to list {}", path.display()))?.path())?;
        }
    }
    Ok(())
}

/// Creates the SQLite file 0600 before SQLite does (it would follow the umask): SQLite then gives its `-wal`
/// and `-shm` files the database file's permissions.
fn create_private_file(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077))
            .with_context(|| format!("failed to restrict the permissions of {}", path.display()))?;
    }
    Ok(())
}

pub(crate) async fn open_metastore(args: &MetastoreArgs) -> Result<Arc<dyn Metastore>> {
    let url = match &args.metastore_url {
        Some(u) => u.clone(),
        None => {
            secure_data_dir(&args.data_dir)?;
            let path = args.data_dir.join("loupe.db");
            create_private_file(&path)?;
            format!("sqlite://{}", path.display())
        }
    };
    // A SQLite file named by URL is kept private too (its directory is the operator's).
    if let Some(path) = url.strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest))
        && !path.is_empty()
        && !path.starts_with(':')
    {
        create_private_file(Path::new(path))?;
        for suffix in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{path}{suffix}"));
            if side.exists() {
                create_private_file(&side)?;
            }
        }
    }
    let backend = url.split(':').next().unwrap_or_default().to_string();
    let m = loupe_metastore::connect(&url).await.context("failed to open the metastore")?;
    tracing::info!(backend, "metastore ready");
    if loupe_cloud::forget_stored_signing_key(m.as_ref()).await? {
        tracing::warn!(
            "deleted the token signing key an older version kept in the metastore; the key now comes from a file, \
             so sessions signed with the old key have ended: log in again"
        );
    }
    Ok(m)
}

async fn session_cache(args: &StateArgs) -> Result<Arc<dyn SessionCache>> {
    Ok(match &args.redis_url {
        Some(url) => Arc::new(
            RedisSessionCache::connect(RedisSessionCacheConfig::new(url.clone()))
                .await
                .context("failed to reach Redis (--redis-url)")?,
        ),
        None => Arc::new(InMemorySessionCache::new()),
    })
}

/// The settings of a process serving `args`; the proxies matter only where client requests arrive (the API).
fn cloud_config(args: &StateArgs, api: Option<&CloudArgs>) -> CloudConfig {
    CloudConfig {
        domain: args.domain.clone(),
        session_max_lifetime: args.session_max_lifetime,
        trusted_proxies: api.map(|a| a.trusted_proxies.clone()).unwrap_or_default(),
        proxy_secret: api.and_then(|a| a.proxy_secret.clone()),
        ..CloudConfig::default()
    }
}

/// The services' state: metastore (migrated), token signing key (from its file), session cache.
async fn open_state(args: &StateArgs, config: CloudConfig) -> Result<CloudState> {
    let key = signing_key(args)?;
    let metastore = open_metastore(&args.metastore).await?;
    let sessions = session_cache(args).await?;
    Ok(CloudState::new(metastore, sessions, key, config))
}

/// The settings key of a process serving `args` (`--settings-key-file` or the data directory's).
pub(crate) fn state_settings_key(args: &StateArgs) -> Result<loupe_vzconn::SettingsKey> {
    settings_key(args.settings_key_file.as_deref(), &args.metastore.data_dir, &args.domain)
}

/// The settings key: `file`, else `<data_dir>/secrets/settings-key`, generated by the init-secrets code (with
/// whatever else of the secrets directory is absent) the first time.
pub fn settings_key(file: Option<&Path>, data_dir: &Path, domain: &str) -> Result<loupe_vzconn::SettingsKey> {
    let (path, text) = read_secret(file, data_dir, domain, loupe_proxy::secrets::SETTINGS_KEY, "settings key")?;
    loupe_vzconn::SettingsKey::from_text(&text)
        .with_context(|| format!("the settings key in {} is unusable", path.display()))
}

/// The text of a secret: `file`, else `<data_dir>/secrets/<name>`, generated by the init-secrets code (with
/// whatever else of the secrets directory is absent) the first time. A file other users may read is warned of:
/// `what` names it in messages.
pub(crate) fn read_secret(
    file: Option<&Path>,
    data_dir: &Path,
    domain: &str,
    name: &str,
    what: &str,
) -> Result<(PathBuf, String)> {
    let path = match file {
        Some(p) => p.to_owned(),
        None => {
            secure_data_dir(data_dir)?;
            let dir = data_dir.join(crate::proxy::SECRETS_DIR);
            let path = dir.join(name);
            if !path.exists() {
                let names = crate::proxy::requested_names(Some(domain), &[])?;
                loupe_proxy::init_secrets(&dir, &names)
                    .with_context(|| format!("failed to generate the secrets in {}", dir.display()))?;
                tracing::info!(path = %path.display(), "generated the {what}");
            }
            path
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("failed to read the {what} {}", path.display()))?;
    if let Ok(meta) = std::fs::metadata(&path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the {what} is readable by other users: chmod 600 it"
        );
    }
    Ok((path, text))
}

/// The token signing key: `--signing-key-file`, else `<data-dir>/secrets/jwt-signing-key`, generated by the
/// init-secrets code (with the rest of the secrets directory) if absent.
fn signing_key(args: &StateArgs) -> Result<SigningKey> {
    if let Some(path) = &args.signing_key_file {
        return read_signing_key(path);
    }
    let data_dir = &args.metastore.data_dir;
    secure_data_dir(data_dir)?;
    let dir = data_dir.join(crate::proxy::SECRETS_DIR);
    let path = dir.join(loupe_proxy::secrets::JWT_SIGNING_KEY);
    if !path.exists() {
        let names = crate::proxy::requested_names(Some(&args.domain), &[])?;
        loupe_proxy::init_secrets(&dir, &names)
            .with_context(|| format!("failed to generate the secrets in {}", dir.display()))?;
        tracing::info!(path = %path.display(), "generated the token signing key");
    }
    read_signing_key(&path)
}

/// The signing key in `path`: its text, trimmed, used as the HMAC key (init-secrets writes 64 hex digits).
fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the signing key {} (--signing-key-file)", path.display()))?;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the token signing key is readable by other users, who could sign tokens with it: chmod 600 it"
        );
    }
    SigningKey::from_bytes(text.trim().as_bytes())
        .with_context(|| format!("the signing key in {} is unusable", path.display()))
}

/// Creates the first admin into an empty metastore, and says how to log in with its initial password.
async fn bootstrap_admin(state: &CloudState) -> Result<()> {
    let admin = AdminBootstrap::from_env().context("invalid LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD")?;
    let outcome = loupe_cloud::bootstrap(state, &admin).await?;
    if let Some(created) = outcome.created {
        tracing::info!(
            admin = %created.email,
            "log in as the admin (initial password from LOUPE_ADMIN_PASSWORD, default `admin`): you must change it first"
        );
    }
    Ok(())
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("failed to listen on {addr} ({flag})"))
}

/// Turns `true` when the process must stop (a signal, or a sibling service failing).
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// Resolves once `stop` turns true, or its sender is gone.
pub fn stopped(stop: &Stop) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = stop.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Where a cloud process serves `/healthz`, `/readyz` and `/metrics`, and what else it answers for.
pub struct OpsListener {
    /// `--metrics-listen`.
    pub addr: SocketAddr,
    /// A component in the same process (`loupe up`'s agent) whose readiness and metrics it adds.
    pub colocated: Option<Arc<dyn loupe_cloud::Colocated>>,
}

/// Binds `ops` and serves `gateway`'s operational routes there until `stop` turns true, in the background.
async fn start_ops(
    ops: OpsListener,
    gateway: Gateway,
    stop: &Stop,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = bind(ops.addr, "--metrics-listen").await?;
    tracing::info!(addr = %listener.local_addr()?, "health and metrics listening (/healthz, /readyz, /metrics)");
    Ok(tokio::spawn(loupe_cloud::serve_router(listener, loupe_cloud::ops_app(gateway, ops.colocated), stopped(stop))))
}

/// Both listeners' tasks as one: the first failure, else both results.
async fn both(
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    ops: tokio::task::JoinHandle<std::io::Result<()>>,
) -> std::io::Result<()> {
    let (api, ops) = tokio::join!(api, ops);
    api.map_err(std::io::Error::other)??;
    ops.map_err(std::io::Error::other)?
}

/// The API started by [`start_api`]: its task, and the state `loupe up` wires its own vizier with.
pub struct StartedApi {
    /// Ends when the API and its operational listener stop.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The metastore the services use.
    pub metastore: Arc<dyn Metastore>,
    /// The org the first admin belongs to.
    pub default_org: String,
}

/// The public router of a cloud API process: REST, cloud gRPC, the query API, which reaches the viziers
/// through `bus` (without one, queries are refused saying why), and the web UI (`loupe_ui`) at `/`.
fn public_router(gateway: Gateway, bus: Option<Arc<dyn loupe_bus::Bus>>, args: &CloudArgs) -> axum::Router {
    let config = loupe_vzconn::PassthroughConfig {
        timeout: args.vizier_query_timeout,
        ..loupe_vzconn::PassthroughConfig::default()
    };
    let passthrough = bus.map(|bus| loupe_vzconn::Passthrough::new(bus, config));
    let router = loupe_cloud::gateway_app_with_queries(gateway.clone(), passthrough.clone()).merge(loupe_ui::router());
    match passthrough {
        Some(passthrough) => mount_pixie_queries(router, gateway, passthrough),
        None => router,
    }
}

/// Tells the org's viziers when the cron service in this process changes their scripts.
#[derive(Clone)]
pub struct PushCronChanges(pub loupe_vzconn::CronPusher);

impl std::fmt::Debug for PushCronChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushCronChanges")
    }
}

impl loupe_cloud::CronChanges for PushCronChanges {
    fn changed(&self, org_id: uuid::Uuid) {
        let pusher = self.0.clone();
        tokio::spawn(async move { pusher.push_org(org_id).await });
    }
}

/// Opens the metastore, creates the admin if absent, and starts serving the API with every service in
/// process, and its operational routes on `ops`, in the background. The query API
/// (`loupe.vizier.v1.VizierService`) sends each script over `bus` to a vizier of the caller's org. With
/// `vzconn` (and a bus), VZConn (`loupe.vzconn.v1`) is served on the API's port too (its bridges end when
/// `stop` turns true: a graceful shutdown would otherwise wait for them forever).
pub async fn start_api(
    args: &CloudArgs,
    bus: Option<Arc<dyn loupe_bus::Bus>>,
    vzconn: Option<VzConnMount>,
    ops: OpsListener,
    stop: &Stop,
) -> Result<StartedApi> {
    let mut state = open_state(&args.state, cloud_config(&args.state, Some(args))).await?;
    state.settings_key = Some(state_settings_key(&args.state)?);
    // Cron scripts: VZConn's cron side runs here, and the cron service pushes its changes to it directly.
    let cron = match &vzconn {
        Some(VzConnMount::InProcess(bus, _, config)) => {
            let cron = loupe_vzconn::CronService::start(Arc::clone(&state.metastore), Arc::clone(bus), config.clone())
                .await
                .context("failed to start the cron side")?;
            state.cron_changes = Some(Arc::new(PushCronChanges(cron.pusher())));
            Some(cron)
        }
        _ => None,
    };
    bootstrap_admin(&state).await?;
    let listener = bind(args.api_listen, "--api-listen").await?;
    tracing::info!(addr = %listener.local_addr()?, "cloud API listening (REST /api/v1, gRPC loupe.cloud.v1)");
    let gateway = Gateway::in_process(&state);
    let ops = start_ops(ops, gateway.clone(), stop).await?;
    let mut router = public_router(gateway, bus, args);
    match vzconn {
        Some(VzConnMount::InProcess(bus, config, _)) => {
            let vzconn = loupe_vzconn::VzConn::new(Arc::clone(&state.metastore), bus, config)
                .context("the vizier credential key is unusable")?;
            let closing = vzconn.clone();
            let stopping = stopped(stop);
            tokio::spawn(async move {
                stopping.await;
                closing.close_bridges();
                drop(cron);
            });
            router = router.route_service(&vzconn_path(), vzconn.service());
        }
        Some(VzConnMount::Remote(addr, tls)) => router = mount_remote_vzconn(router, &addr, &tls)?,
        None => {}
    }
    let api = serve_api(listener, router, args, stop);
    Ok(StartedApi {
        task: tokio::spawn(both(api, ops)),
        metastore: Arc::clone(&state.metastore),
        default_org: state.config.default_org.clone(),
    })
}

/// Mounts Pixie's query API (`px.api.vizierpb.VizierService`) on `router`: scripts naming a cluster go to that
/// vizier through the bus passthrough, once the profile service says the caller may reach it.
fn mount_pixie_queries(router: axum::Router, gateway: Gateway, passthrough: loupe_vzconn::Passthrough) -> axum::Router {
    let service = loupe_cloud::pixie_query_service(gateway, Arc::new(PassthroughCalls(passthrough)));
    let name = loupe_proto::pixie::vizierpb::vizier_service_server::SERVICE_NAME;
    router.route_service(&format!("/{name}/{{*method}}"), service)
}

/// The cloud's calls to a vizier, over VZConn's passthrough.
struct PassthroughCalls(loupe_vzconn::Passthrough);

impl loupe_cloud::VizierCalls for PassthroughCalls {
    fn call(
        &self,
        vizier_id: uuid::Uuid,
        method: &'static str,
        request: tonic::codegen::Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<loupe_cloud::ByteStream, tonic::Status>> + Send + '_>>
    {
        Box::pin(async move {
            let replies = self.0.execute_method(vizier_id, method, request).await?;
            let replies: loupe_cloud::ByteStream =
                Box::pin(tokio_stream::StreamExt::map(replies, |r| r.map_err(tonic::Status::from)));
            Ok(replies)
        })
    }
}

/// Serves the API's router on `listener`, over TLS when `args` says so, in the background.
fn serve_api(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    args: &CloudArgs,
    stop: &Stop,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    match &args.listener_tls {
        Some(tls) => tokio::spawn(loupe_cloud::serve_router_tls(listener, router, Arc::clone(tls), stopped(stop))),
        None => tokio::spawn(loupe_cloud::serve_router(listener, router, stopped(stop))),
    }
}

/// `loupe cloud api`: the API server, with the services in process or, given their addresses, in front of
/// `loupe cloud auth|profile|scripts` (then it needs no metastore).
pub async fn run_api(args: &ApiArgs, stop: &Stop) -> Result<()> {
    let mut args = args.clone();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let config = loupe_proxy::proxy::server_tls_config(cert, key)
            .with_context(|| format!("unusable --tls-cert {} / --tls-key {}", cert.display(), key.display()))?;
        tracing::info!(cert = %cert.display(), "the API's port serves TLS only");
        args.cloud.listener_tls = Some(config);
    }
    let args = &args;
    let ops = OpsListener { addr: args.metrics_listen, colocated: None };
    let bus: Option<Arc<dyn loupe_bus::Bus>> = match &args.nats_url {
        Some(url) => Some(Arc::new(
            loupe_bus::NatsBus::connect(loupe_bus::NatsBusConfig::new(url.clone()))
                .await
                .context("failed to reach NATS (--nats-url)")?,
        )),
        None => {
            tracing::warn!("no --nats-url: scripts sent to this API cannot reach any vizier");
            None
        }
    };
    let remote = args.auth_addr.is_some() || args.vzconn_addr.is_some();
    let tls = if remote { internal_tls(args)? } else { InternalTls::Insecure };
    let (Some(auth), Some(profile), Some(scripts)) = (&args.auth_addr, &args.profile_addr, &args.scripts_addr) else {
        let vzconn = args.vzconn_addr.clone().map(|addr| VzConnMount::Remote(addr, tls));
        start_api(&args.cloud, bus, vzconn, ops, stop).await?.task.await??;
        return Ok(());
    };
    let addrs = ServiceAddrs { auth: auth.clone(), profile: profile.clone(), scripts: scripts.clone() };
    let clients = ServiceClients::remote(&addrs, &tls)?;
    // The services believe the client addresses this gateway stamps only with the credential derived from
    // the signing key they share.
    let credential = GatewayCredential::derive(&signing_key(&args.cloud.state)?)?;
    let gateway = Gateway::new(clients, cloud_config(&args.cloud.state, Some(&args.cloud)), credential);
    let listener = bind(args.cloud.api_listen, "--api-listen").await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        auth = %addrs.auth, profile = %addrs.profile, scripts = %addrs.scripts,
        "cloud API gateway listening"
    );
    let ops = start_ops(ops, gateway.clone(), stop).await?;
    let mut router = public_router(gateway, bus, &args.cloud);
    if let Some(addr) = &args.vzconn_addr {
        router = mount_remote_vzconn(router, addr, &tls)?;
    }
    let api = serve_api(listener, router, &args.cloud, stop);
    both(api, ops).await?;
    Ok(())
}

/// `loupe cloud auth|profile|scripts`: one service process. The auth service also creates the first admin.
pub async fn run_service(kind: ServiceKind, args: &ServiceArgs, stop: &Stop) -> Result<()> {
    // Before anything else: a service missing its certificate must not touch the metastore first.
    let tls = service_tls(kind.name(), &args.tls)?;
    let mut state = open_state(&args.state, cloud_config(&args.state, None)).await?;
    if kind == ServiceKind::Scripts {
        // The export target's header values are sealed here (and opened by VZConn).
        state.settings_key = Some(state_settings_key(&args.state)?);
    }
    if args.state.redis_url.is_none() {
        tracing::warn!(
            service = kind.name(),
            "no --redis-url: logouts and login throttling stay inside this process; other service processes will not see them"
        );
    }
    if kind == ServiceKind::Auth {
        bootstrap_admin(&state).await?;
    }
    let (default_port, default_metrics_port) = match kind {
        ServiceKind::Auth => (50100, 9093),
        ServiceKind::Profile => (51500, 9094),
        ServiceKind::Scripts => (52000, 9095),
    };
    let addr = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)));
    let listener = bind(addr, "--listen").await?;
    tracing::info!(
        service = kind.name(), addr = %listener.local_addr()?, tls = tls.is_some(), "cloud service listening (gRPC)"
    );
    let metrics = args.metrics_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_metrics_port)));
    let ops = OpsListener { addr: metrics, colocated: None };
    let ops = start_ops(ops, Gateway::in_process(&state), stop).await?;
    let app = loupe_cloud::service_app(state, kind);
    let service = match tls {
        Some(tls) => tokio::spawn(loupe_cloud::serve_router_tls(listener, app, tls, stopped(stop))),
        None => tokio::spawn(loupe_cloud::serve_router(listener, app, stopped(stop))),
    };
    both(service, ops).await?;
    Ok(())
}

/// `loupe setup create-admin`: creates the first admin only into an empty metastore, so running it again, or
/// after the bootstrap admin was deleted, does nothing. With `--org`, adds that org with its first admin unless
/// it exists. Needs no signing key and stores none.
pub async fn create_admin(args: &CreateAdminArgs) -> Result<()> {
    let metastore = open_metastore(&args.metastore).await?;
    let admin = AdminBootstrap::from_env().context("invalid LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD")?;
    if let Some(org) = &args.org {
        // The default email belongs to the first org's admin; another org's admin must be named.
        if std::env::var_os(loupe_auth::bootstrap::ADMIN_EMAIL_ENV).is_none() {
            anyhow::bail!("--org needs the new org's admin in {}", loupe_auth::bootstrap::ADMIN_EMAIL_ENV);
        }
        match loupe_cloud::create_org_with_admin(metastore.as_ref(), org, &admin)
            .await
            .with_context(|| format!("failed to create org {org:?} with admin {}", admin.email))?
        {
            loupe_cloud::NewOrgOutcome::Created(user) => {
                println!("created org {org} with admin {} (the password must be changed at first login)", user.email)
            }
            loupe_cloud::NewOrgOutcome::OrgExists => println!("org {org} already exists; no admin created"),
        }
        return Ok(());
    }
    let outcome = loupe_cloud::bootstrap_into(metastore.as_ref(), loupe_cloud::state::DEFAULT_ORG_NAME, &admin).await?;
    match outcome.created {
        Some(created) => println!("created admin {} (the password must be changed at first login)", created.email),
        None => println!(
            "the metastore already has users; no admin created (the first admin is only created into an empty metastore)"
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit_and_a_positive_number() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 24 * 3600)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("3600s"), Ok(Duration::from_secs(3600)));
        for bad in ["", "30", "d", "0d", "-1d", "1w", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
