//! Wiring of the cloud services: flags, metastore and session-cache selection, bootstrap.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use loupe_auth::{AdminBootstrap, InMemorySessionCache, RedisSessionCache, RedisSessionCacheConfig, SessionCache};
use loupe_cloud::{CloudConfig, CloudState};
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

/// Cloud API settings.
#[derive(Args, Clone, Debug)]
pub struct CloudArgs {
    /// Address of the cloud API (REST under /api/v1).
    #[arg(long, env = "LOUPE_API_LISTEN", default_value = "127.0.0.1:51200")]
    pub api_listen: SocketAddr,
    /// Redis URL for sessions, revocations and login throttling; in memory when absent.
    #[arg(long, env = "LOUPE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// The deployment's domain: the audience of every token (PL_DOMAIN_NAME in Pixie).
    #[arg(long, env = "LOUPE_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Throttle logins by the first `X-Forwarded-For` address: only behind a proxy that sets it (`loupe cloud
    /// proxy`), else clients pick their own. `loupe up` sets it when its proxy fronts a loopback-only API.
    #[arg(long, env = "LOUPE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
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

async fn session_cache(args: &CloudArgs) -> Result<Arc<dyn SessionCache>> {
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

/// Opens the metastore, creates the admin if absent, and starts serving the API in the background;
/// with `query`, gRPC `px.api.vizierpb.VizierService` calls on the same port go to it.
pub async fn start_api(
    args: &CloudArgs,
    query: Option<QueryGrpc>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let metastore = open_metastore(&args.metastore).await?;
    let key = loupe_cloud::load_or_create_signing_key(metastore.as_ref()).await?;
    let sessions = session_cache(args).await?;
    let config = CloudConfig {
        domain: args.domain.clone(),
        trust_forwarded_for: args.trust_forwarded_for,
        ..CloudConfig::default()
    };
    let state = CloudState::new(metastore, sessions, key, config);
    let admin = AdminBootstrap::from_env().context("invalid LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD")?;
    let outcome = loupe_cloud::bootstrap(&state, &admin).await?;
    let listener = tokio::net::TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--api-listen)", args.api_listen))?;
    let addr = listener.local_addr()?;
    if outcome.admin.must_change_password {
        tracing::info!(
            %addr,
            admin = %outcome.admin.email,
            "cloud API listening; log in as the admin (initial password from LOUPE_ADMIN_PASSWORD, default `admin`): you must change it first"
        );
    } else {
        tracing::info!(%addr, "cloud API listening");
    }
    let mut router = loupe_cloud::app(state);
    if let Some(query) = query {
        router = router.route_service("/px.api.vizierpb.VizierService/{*method}", query);
    }
    Ok(tokio::spawn(loupe_cloud::serve_router(listener, router, shutdown)))
}

/// `loupe cloud api`: the API server alone, until `shutdown`.
pub async fn run_api(args: &CloudArgs, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    start_api(args, None, shutdown).await?.await??;
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
