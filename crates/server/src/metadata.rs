//! `loupe vizier metadata`: the metadata service (watches the cluster with kube-rs and serves its state to
//! PEMs), and the `--metadata` side of `loupe vizier pem` / `up` (the PEM follows it).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use loupe_metadata::Hub;
use loupe_metadata::watch::{self, Cluster, WatchStats};
use loupe_vizier::{PemMetadata, QueryToken};

/// The address the metadata service listens on unless told otherwise (Pixie's metadata service uses 50400).
pub(crate) const DEFAULT_METADATA_ADDR: &str = "127.0.0.1:50400";

/// `loupe vizier metadata`.
#[derive(Args, Clone)]
pub(crate) struct MetadataArgs {
    /// Address PEMs follow the cluster's state on (`--metadata` of `loupe vizier pem`); every call must carry
    /// the vizier's token.
    #[arg(long, env = "LOUPE_METADATA_LISTEN", default_value = DEFAULT_METADATA_ADDR)]
    listen: SocketAddr,
    /// The kubeconfig of the cluster to watch (its current context). Without it, the pod's service account
    /// (in-cluster); outside a pod without a kubeconfig the command refuses to start.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// File holding the vizier's token PEMs must send (the `vizier-query-token` of `loupe setup
    /// init-secrets`). Generated (0600) if absent. Default: <data-dir>/secrets/vizier-query-token.
    #[arg(long, env = "LOUPE_QUERY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Address of /healthz, /readyz (503 until every kind has been listed) and /metrics (watch counters, objects
    /// per kind). No credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9104")]
    metrics_listen: SocketAddr,
    /// Directory for the service's state (the default token file).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = crate::default_data_dir())]
    data_dir: PathBuf,
}

/// Runs the metadata service until `shutdown`.
pub(crate) async fn run(
    args: MetadataArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let cluster = match (&args.kubeconfig, std::env::var_os("KUBERNETES_SERVICE_HOST")) {
        (Some(path), _) => Cluster::Kubeconfig(path.clone()),
        (None, Some(_)) => Cluster::InCluster,
        (None, None) => bail!("no Kubernetes cluster to watch: pass --kubeconfig, or run in a pod"),
    };
    let token_file =
        args.token_file.clone().unwrap_or_else(|| args.data_dir.join("secrets").join("vizier-query-token"));
    let (token, created) =
        QueryToken::load_or_create(&token_file).context("the metadata service needs the vizier's token")?;
    if created {
        tracing::info!(file = %token_file.display(), "generated the vizier's token");
    }
    let client = watch::client(&cluster).await.context("connecting to the Kubernetes API")?;
    let hub = Hub::new();
    let stats = Arc::new(WatchStats::default());
    let tasks = watch::spawn(client, hub.clone(), stats.clone());
    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--metrics-listen)", args.metrics_listen))?;
    tracing::info!(addr = %ops_listener.local_addr()?, "health and metrics listening (/healthz, /readyz, /metrics)");
    let ops =
        tokio::spawn(axum::serve(ops_listener, loupe_metadata::serve::ops_router(hub.clone(), stats)).into_future());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {} (--listen)", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, ?cluster, "metadata service listening; PEMs need the vizier's token");
    let router = loupe_metadata::serve::router(hub, token.expose());
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown).await;
    for t in tasks {
        t.abort();
    }
    ops.abort();
    served.context("metadata service")
}

/// The PEM's metadata: followed from `addr` with the token in `token_file` when given, else this host only.
pub(crate) fn pem_metadata(addr: Option<&str>, token_file: Option<&PathBuf>) -> Result<PemMetadata> {
    let Some(addr) = addr else { return Ok(PemMetadata::host_only()) };
    let Some(path) = token_file else { bail!("--metadata needs --metadata-token-file (the vizier's token)") };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let token = QueryToken::new(&text).with_context(|| format!("{}: the token is too short", path.display()))?;
    tracing::info!(%addr, "following the metadata service");
    Ok(PemMetadata::follow(addr, token.expose().to_owned()).0)
}
