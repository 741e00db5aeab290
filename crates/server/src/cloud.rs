//! Wiring of the cloud services: flags, metastore and session-cache selection, bootstrap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use loupe_auth::{
    AdminBootstrap, InMemorySessionCache, RedisSessionCache, RedisSessionCacheConfig, SessionCache, SigningKey,
};
use loupe_cloud::{CloudConfig, CloudState, Gateway, ServiceAddrs, ServiceClients, ServiceKind};
use loupe_metastore::Metastore;

/// Where the cloud keeps its state.
#[derive(Args, Clone, Debug)]
pub struct MetastoreArgs {
    /// Metastore URL: `postgres://user:pass@host/db`, or `sqlite://path.db`. Default: SQLite in --data-dir.
    #[arg(long, env = "LOUPE_METASTORE_URL", hide_env_values = true)]
    pub metastore_url: Option<String>,
    /// Directory for embedded state (the SQLite metastore).
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
    /// service process must use the same one). Default: a key generated at first start and kept in the
    /// metastore.
    #[arg(long, env = "LOUPE_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
}

/// Cloud API settings.
#[derive(Args, Clone, Debug)]
pub struct CloudArgs {
    /// Address of the cloud API (REST under /api/v1, gRPC loupe.cloud.v1).
    #[arg(long, env = "LOUPE_API_LISTEN", default_value = "127.0.0.1:51200")]
    pub api_listen: SocketAddr,
    /// Throttle logins by the first `X-Forwarded-For` address: only behind a proxy that sets it (`loupe cloud
    /// proxy`), else clients pick their own. `loupe up` sets it when its proxy fronts a loopback-only API.
    #[arg(long, env = "LOUPE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
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
    /// Address of `loupe cloud auth` (e.g. http://auth:50100); with the other two, the API server runs as a
    /// gateway without a metastore of its own.
    #[arg(long, env = "LOUPE_AUTH_ADDR", requires_all = ["profile_addr", "scripts_addr"])]
    pub auth_addr: Option<String>,
    /// Address of `loupe cloud profile` (e.g. http://profile:51500).
    #[arg(long, env = "LOUPE_PROFILE_ADDR", requires_all = ["auth_addr", "scripts_addr"])]
    pub profile_addr: Option<String>,
    /// Address of `loupe cloud scripts` (e.g. http://scripts:52000).
    #[arg(long, env = "LOUPE_SCRIPTS_ADDR", requires_all = ["auth_addr", "profile_addr"])]
    pub scripts_addr: Option<String>,
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
    pub state: StateArgs,
}

pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map_or_else(|| PathBuf::from("/var/lib/loupe"), |d| d.join("loupe"))
}

async fn open_metastore(args: &MetastoreArgs) -> Result<Arc<dyn Metastore>> {
    let url = match &args.metastore_url {
        Some(u) => u.clone(),
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("failed to create data directory {}", args.data_dir.display()))?;
            format!("sqlite://{}", args.data_dir.join("loupe.db").display())
        }
    };
    let backend = url.split(':').next().unwrap_or_default().to_string();
    let m = loupe_metastore::connect(&url).await.context("failed to open the metastore")?;
    tracing::info!(backend, "metastore ready");
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

/// The gRPC query service `loupe up` mounts on the API's port, so one address serves REST and queries.
pub type QueryGrpc =
    loupe_proto::vizierpb::vizier_service_server::VizierServiceServer<loupe_vizier::query_service::QueryService>;

/// `trust_forwarded_for` matters only where client requests arrive: the API server (the gateway).
fn cloud_config(args: &StateArgs, trust_forwarded_for: bool) -> CloudConfig {
    CloudConfig { domain: args.domain.clone(), trust_forwarded_for, ..CloudConfig::default() }
}

/// The services' state: metastore (migrated), token signing key (created on first start), session cache.
async fn open_state(args: &StateArgs, config: CloudConfig) -> Result<CloudState> {
    let metastore = open_metastore(&args.metastore).await?;
    let key = match &args.signing_key_file {
        Some(path) => read_signing_key(path)?,
        None => loupe_cloud::load_or_create_signing_key(metastore.as_ref()).await?,
    };
    let sessions = session_cache(args).await?;
    Ok(CloudState::new(metastore, sessions, key, config))
}

/// The signing key in `path`: its text, trimmed, used as the HMAC key (init-secrets writes 64 hex digits).
fn read_signing_key(path: &std::path::Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the signing key {} (--signing-key-file)", path.display()))?;
    SigningKey::from_bytes(text.trim().as_bytes())
        .with_context(|| format!("the signing key in {} is unusable", path.display()))
}

/// Creates the first admin if absent, and says how to log in while its password is the initial one.
async fn bootstrap_admin(state: &CloudState) -> Result<()> {
    let admin = AdminBootstrap::from_env().context("invalid LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD")?;
    let outcome = loupe_cloud::bootstrap(state, &admin).await?;
    if outcome.admin.must_change_password {
        tracing::info!(
            admin = %outcome.admin.email,
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

/// Opens the metastore, creates the admin if absent, and starts serving the API with every service in
/// process, and its operational routes on `ops`, in the background. With `query`, gRPC
/// `px.api.vizierpb.VizierService` calls on the API's port go to it, once the caller's credential is checked.
pub async fn start_api(
    args: &CloudArgs,
    query: Option<QueryGrpc>,
    ops: OpsListener,
    stop: &Stop,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let state = open_state(&args.state, cloud_config(&args.state, args.trust_forwarded_for)).await?;
    bootstrap_admin(&state).await?;
    let listener = bind(args.api_listen, "--api-listen").await?;
    tracing::info!(addr = %listener.local_addr()?, "cloud API listening (REST /api/v1, gRPC loupe.cloud.v1)");
    let gateway = Gateway::in_process(&state);
    let ops = start_ops(ops, gateway.clone(), stop).await?;
    let mut router = loupe_cloud::gateway_app(gateway.clone());
    if let Some(query) = query {
        router =
            router.route_service("/px.api.vizierpb.VizierService/{*method}", loupe_cloud::require_user(gateway, query));
    }
    let api = tokio::spawn(loupe_cloud::serve_router(listener, router, stopped(stop)));
    Ok(tokio::spawn(both(api, ops)))
}

/// `loupe cloud api`: the API server, with the services in process or, given their addresses, in front of
/// `loupe cloud auth|profile|scripts` (then it needs no metastore).
pub async fn run_api(args: &ApiArgs, stop: &Stop) -> Result<()> {
    let ops = OpsListener { addr: args.metrics_listen, colocated: None };
    let (Some(auth), Some(profile), Some(scripts)) = (&args.auth_addr, &args.profile_addr, &args.scripts_addr) else {
        start_api(&args.cloud, None, ops, stop).await?.await??;
        return Ok(());
    };
    let addrs = ServiceAddrs { auth: auth.clone(), profile: profile.clone(), scripts: scripts.clone() };
    let clients = ServiceClients::remote(&addrs)?;
    let gateway = Gateway::new(clients, cloud_config(&args.cloud.state, args.cloud.trust_forwarded_for));
    let listener = bind(args.cloud.api_listen, "--api-listen").await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        auth = %addrs.auth, profile = %addrs.profile, scripts = %addrs.scripts,
        "cloud API gateway listening"
    );
    let ops = start_ops(ops, gateway.clone(), stop).await?;
    let api = tokio::spawn(loupe_cloud::serve_router(listener, loupe_cloud::gateway_app(gateway), stopped(stop)));
    both(api, ops).await?;
    Ok(())
}

/// `loupe cloud auth|profile|scripts`: one service process. The auth service also creates the first admin.
pub async fn run_service(kind: ServiceKind, args: &ServiceArgs, stop: &Stop) -> Result<()> {
    let state = open_state(&args.state, cloud_config(&args.state, false)).await?;
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
    tracing::info!(service = kind.name(), addr = %listener.local_addr()?, "cloud service listening (gRPC)");
    let metrics = args.metrics_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_metrics_port)));
    let ops = OpsListener { addr: metrics, colocated: None };
    let ops = start_ops(ops, Gateway::in_process(&state), stop).await?;
    let service =
        tokio::spawn(loupe_cloud::serve_router(listener, loupe_cloud::service_app(state, kind), stopped(stop)));
    both(service, ops).await?;
    Ok(())
}

/// `loupe setup create-admin`: idempotent. Also generates the token signing key if absent, so a
/// Job running it before the API starts leaves nothing to chance.
pub async fn create_admin(args: &MetastoreArgs) -> Result<()> {
    let metastore = open_metastore(args).await?;
    let key = loupe_cloud::load_or_create_signing_key(metastore.as_ref()).await?;
    let state = CloudState::new(metastore, Arc::new(InMemorySessionCache::new()), key, CloudConfig::default());
    let admin = AdminBootstrap::from_env().context("invalid LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD")?;
    let outcome = loupe_cloud::bootstrap(&state, &admin).await?;
    if outcome.created {
        println!("created admin {} (the password must be changed at first login)", outcome.admin.email);
    } else {
        println!("admin {} already exists; nothing to do", outcome.admin.email);
    }
    Ok(())
}
