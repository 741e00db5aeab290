//! Wiring of the vizier's cloud connection: `loupe vizier up` (a whole single-node vizier: agent, token-guarded
//! query port and connector), `loupe vizier connector` (the connector alone, for a separate PEM), and the vizier
//! `loupe up` registers with its own cloud in process.
//!
//! Owns the flags, the in-memory channel to `loupe up`'s query service and how a refused registration ends the
//! process. Must not speak the VZConn protocol itself (that is `loupe-connector`'s).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use loupe_connector::{Connector, ConnectorConfig, ConnectorState};
use loupe_metastore::{KeyKind, Metastore, NewKey};
use loupe_vizier::QueryToken;
use tokio::sync::watch;
use tokio_stream::StreamExt as _;

use crate::{AgentArgs, default_data_dir};

/// Where a vizier finds its cloud.
#[derive(Args, Clone, Debug)]
pub struct CloudLinkArgs {
    /// The cloud's VZConn endpoint, HOST:PORT (`loupe cloud vzconn`, or `loupe up`'s API port), or a URL.
    #[arg(long, env = "LOUPE_CLOUD_ADDR")]
    pub cloud_addr: String,
    /// The org's deploy key (`px deploy-key create`). Needed to register; once registered, the identity kept in
    /// the data dir is enough. Prefer the environment variable: a flag shows in `ps`.
    #[arg(long, env = "LOUPE_DEPLOY_KEY", hide_env_values = true)]
    pub deploy_key: Option<String>,
    /// The cluster's name, as the org sees it.
    #[arg(long, env = "LOUPE_CLUSTER_NAME")]
    pub cluster_name: String,
    /// CA certificate (PEM) to trust for a TLS cloud address, such as the cloud's `<data-dir>/secrets/ca.crt`;
    /// default: the system's roots. The cloud is reached over TLS when --cloud-addr is `https://…`, or has no
    /// scheme and a host other than loopback (as `px` does).
    #[arg(long, env = "LOUPE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The address (HOST:PORT) at which clients may reach this vizier's query endpoint, reported to the cloud
    /// (shown by `px get viziers`; the DNS manager points `<name>.<domain>` at it). Default: the query
    /// endpoint's own address, unless that is a wildcard (then none is reported).
    #[arg(long, env = "LOUPE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// The longest wait between two attempts to reach the cloud (the wait doubles from 1 s up to this, with
    /// jitter), e.g. 60s, 5s.
    #[arg(long, env = "LOUPE_RECONNECT_MAX", default_value = "60s", value_parser = humantime::parse_duration)]
    pub reconnect_max: std::time::Duration,
}

/// `loupe vizier up` flags.
#[derive(Args, Clone)]
pub struct VizierUpArgs {
    #[command(flatten)]
    pub link: CloudLinkArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Address of the vizier's query endpoint (gRPC). Every call must carry the query token.
    #[arg(long, env = "LOUPE_LISTEN", default_value = "127.0.0.1:50300")]
    pub listen: SocketAddr,
    /// File holding the query token. Default: <data-dir>/secrets/vizier-query-token, generated (0600) if absent.
    #[arg(long, env = "LOUPE_QUERY_TOKEN_FILE")]
    pub query_token_file: Option<PathBuf>,
    /// Directory for the vizier's state: its cloud identity (`vizier-identity.json`) and query token. One per
    /// vizier: several viziers on one host need their own.
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
}

/// `loupe vizier connector` flags.
#[derive(Args, Clone, Debug)]
pub struct ConnectorArgs {
    #[command(flatten)]
    pub link: CloudLinkArgs,
    /// The PEM's query endpoint (`loupe vizier pem --listen`), HOST:PORT or a URL.
    #[arg(long, env = "LOUPE_QUERY_ADDR")]
    pub query_addr: String,
    /// File holding the PEM's query token. Default: <data-dir>/secrets/vizier-query-token.
    #[arg(long, env = "LOUPE_QUERY_TOKEN_FILE")]
    pub query_token_file: Option<PathBuf>,
    /// Directory for the vizier's cloud identity (`vizier-identity.json`).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of /healthz, /readyz (503 until the bridge to the cloud is open, saying why) and /metrics. No
    /// credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9097")]
    pub metrics_listen: SocketAddr,
}

fn url(addr: &str) -> String {
    if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") }
}

fn token_file(file: Option<&Path>, data_dir: &Path) -> PathBuf {
    file.map_or_else(|| data_dir.join("secrets").join("vizier-query-token"), Path::to_owned)
}

fn connector_config(
    link: &CloudLinkArgs,
    data_dir: &Path,
    query_addr: String,
    token: &QueryToken,
) -> Result<ConnectorConfig> {
    let mut config = ConnectorConfig::new(loupe_connector::cloud_url(&link.cloud_addr), data_dir, query_addr);
    config.deploy_key = link.deploy_key.clone();
    config.cluster_name = link.cluster_name.clone();
    config.query_token = token.expose().to_owned();
    if let Some(path) = &link.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("failed to read the CA certificate {} (--ca-cert)", path.display()))?;
        config.ca_cert_pem = Some(pem);
    }
    if let Some(addr) = &link.advertise_addr {
        config.advertise_addr = addr.trim().to_owned();
    } else if config.advertise_addr.is_empty() {
        tracing::warn!("the query endpoint listens on a wildcard address: pass --advertise-addr to report one");
    }
    config.backoff_max = link.reconnect_max.max(config.backoff_initial);
    Ok(config)
}

/// `loupe vizier up`: the agent, its query port, and the connector, until `shutdown` or a refused registration.
pub async fn run_vizier_up(args: VizierUpArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let token_file = token_file(args.query_token_file.as_deref(), &args.data_dir);
    let (token, _) = QueryToken::load_or_create(&token_file).context("the query endpoint needs its token")?;
    let pem = crate::start_pem(&args.agent, None)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {} (--listen)", args.listen))?;
    let addr = listener.local_addr()?;
    let config = connector_config(&args.link, &args.data_dir, format!("http://{addr}"), &token)?;
    let connector = Connector::start(config).context("cannot start the cloud connector")?;
    tracing::info!(%addr, cloud = %args.link.cloud_addr, "vizier up: query endpoint listening, connecting to the cloud");
    let (stop_tx, stop_rx) = watch::channel(false);
    let serve = tokio::spawn(pem.serve(listener, token, crate::cloud::stopped(&stop_rx)));
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        r = refused(connector.state()) => r,
    };
    let _ = stop_tx.send(true);
    connector.stop().await;
    serve.await??;
    outcome
}

/// `loupe vizier connector`: the connector for a PEM running apart, until `shutdown` or a refused registration.
pub async fn run_connector(args: ConnectorArgs, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
    let token_file = token_file(args.query_token_file.as_deref(), &args.data_dir);
    let text = std::fs::read_to_string(&token_file)
        .with_context(|| format!("failed to read the query token {} (--query-token-file)", token_file.display()))?;
    let token =
        QueryToken::new(&text).with_context(|| format!("the query token in {} is too short", token_file.display()))?;
    let config = connector_config(&args.link, &args.data_dir, url(&args.query_addr), &token)?;
    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--metrics-listen)", args.metrics_listen))?;
    let connector = Connector::start(config).context("cannot start the cloud connector")?;
    tracing::info!(
        metrics = %ops_listener.local_addr()?,
        cloud = %args.link.cloud_addr,
        query_addr = %args.query_addr,
        "connector started: health and metrics listening (/healthz, /readyz, /metrics)"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let ops = tokio::spawn(loupe_cloud::serve_router(
        ops_listener,
        connector_ops_router(connector.state()),
        crate::cloud::stopped(&stop_rx),
    ));
    let outcome = tokio::select! {
        () = shutdown => Ok(()),
        r = refused(connector.state()) => r,
    };
    let _ = stop_tx.send(true);
    connector.stop().await;
    ops.await??;
    outcome
}

/// The connector's operational routes: liveness, readiness (the bridge to the cloud is open) and its counters in
/// the Prometheus text format.
fn connector_ops_router(state: watch::Receiver<ConnectorState>) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let json = |text: String| ([(header::CONTENT_TYPE, "application/json")], text);
    let ready_state = state.clone();
    axum::Router::new()
        .route("/healthz", get(move || async move { json(r#"{"status":"ok"}"#.into()) }))
        .route(
            "/readyz",
            get(move || {
                let s = ready_state.borrow().clone();
                async move {
                    if s.connected {
                        (StatusCode::OK, json(r#"{"status":"ok","cloud":"connected"}"#.into()))
                    } else {
                        let why = s.refused.or(s.last_error).unwrap_or_else(|| "not connected yet".into());
                        let body = serde_json::json!({"status": "unavailable", "cloud": why});
                        (StatusCode::SERVICE_UNAVAILABLE, json(body.to_string()))
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let s = state.borrow().clone();
                async move { connector_metrics(&s) }
            }),
        )
}

fn connector_metrics(s: &ConnectorState) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    use std::fmt::Write as _;
    let mut text = String::new();
    for (name, kind, help, value) in [
        ("loupe_connector_connected", "gauge", "1 while the bridge to the cloud is open", u64::from(s.connected)),
        (
            "loupe_connector_registered",
            "gauge",
            "1 once the cloud gave this vizier an id",
            u64::from(s.vizier.is_some()),
        ),
        (
            "loupe_connector_refused",
            "gauge",
            "1 when the cloud refused the deploy key or identity",
            u64::from(s.refused.is_some()),
        ),
        ("loupe_connector_bridges_opened_total", "counter", "Bridges to the cloud opened", s.bridges_opened),
        ("loupe_connector_heartbeats_sent_total", "counter", "Heartbeats sent to the cloud", s.heartbeats_sent),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// Resolves with an error when the cloud refuses the deploy key or the identity for good (a wrong, revoked or
/// foreign key retried forever would only hide the mistake); pends otherwise. Other failures (the cloud is
/// down, busy) are retried by the connector.
async fn refused(mut state: watch::Receiver<ConnectorState>) -> Result<()> {
    loop {
        if let Some(why) = &state.borrow_and_update().refused {
            bail!("the cloud refused this vizier: {why}");
        }
        if state.changed().await.is_err() {
            bail!("the cloud connector stopped");
        }
    }
}

/// Keeps `connected` equal to whether `connector`'s bridge is open, in the background, after waiting up to 30 s
/// for the first connection: `loupe up` serves its own queries through it, so a user who sees it up can query
/// at once.
pub async fn report_connected(connector: &Connector, connected: watch::Sender<bool>) {
    let mut state = connector.state();
    let limit = std::time::Duration::from_secs(30);
    if matches!(tokio::time::timeout(limit, state.wait_for(|s| s.connected)).await, Ok(Ok(_))) {
        tracing::info!("this host's vizier is connected to the cloud");
    } else {
        tracing::warn!("this host's vizier is not connected to the cloud yet; its queries fail until it is");
    }
    tokio::spawn(async move {
        loop {
            connected.send_replace(state.borrow_and_update().connected);
            if state.changed().await.is_err() {
                connected.send_replace(false);
                return;
            }
        }
    });
}

/// The description of the deploy key `loupe up` creates for its own vizier.
const OWN_KEY_DESCRIPTION: &str = "loupe up: this host's vizier";

/// `loupe up`'s own vizier: a connector over an in-memory channel to the in-process query service, registering
/// with the cloud at `api` through VZConn like any vizier. At first start (no identity in `data_dir`) it creates
/// a deploy key for `org`, stored hashed; its plaintext goes only to the connector.
pub async fn start_own(
    metastore: &Arc<dyn Metastore>,
    org: &str,
    api: SocketAddr,
    data_dir: &Path,
    query: tonic::service::Routes,
    disconnect_after: std::time::Duration,
    script_results: loupe_connector::LatestResults,
) -> Result<Connector> {
    let deploy_key = if data_dir.join(loupe_connector::IDENTITY_FILE).exists() {
        None
    } else {
        let org = metastore.get_org_by_name(org).await.with_context(|| format!("no org {org:?} for this vizier"))?;
        let (key, hash) = loupe_auth::generate_key(KeyKind::Deploy).context("failed to generate a deploy key")?;
        let stored = metastore
            .create_key(NewKey {
                kind: KeyKind::Deploy,
                org_id: org.id,
                user_id: None,
                description: OWN_KEY_DESCRIPTION.into(),
                key_hash: hash.as_str().to_owned(),
                prefix: loupe_auth::display_prefix(&key).to_owned(),
            })
            .await
            .context("failed to store this host's deploy key")?;
        tracing::info!(key_id = %stored.id, "created a deploy key for this host's vizier");
        Some(key)
    };
    let host = if api.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { api.ip() };
    let mut config =
        ConnectorConfig::new(format!("http://{}", SocketAddr::new(host, api.port())), data_dir, "http://in-process");
    config.deploy_key = deploy_key;
    config.cluster_name = host_name();
    // Its queries are answered on the API's port (behind a user's credential): that is where clients reach it.
    config.advertise_addr = SocketAddr::new(host, api.port()).to_string();
    config.query_channel = Some(in_memory_channel(query));
    config.latest_results = script_results;
    // Several heartbeats per disconnect timeout, also when a short one is set (tests, demos).
    config.heartbeat_interval = config.heartbeat_interval.min(disconnect_after / 3);
    Connector::start(config).context("cannot start this host's vizier connector")
}

/// The host's name (`/proc/sys/kernel/hostname`), else `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A channel to `routes` (the query services, Loupe's and Pixie's) through in-memory pipes: each connection is a `tokio::io::duplex` whose other end a
/// tonic server serves, so `loupe up` opens no port for its own connector.
fn in_memory_channel(routes: tonic::service::Routes) -> tonic::transport::Channel {
    let (conns_tx, conns_rx) = tokio::sync::mpsc::channel::<tokio::io::DuplexStream>(4);
    let incoming = tokio_stream::wrappers::ReceiverStream::new(conns_rx).map(Ok::<_, std::io::Error>);
    tokio::spawn(async move {
        if let Err(error) = tonic::transport::Server::builder().add_routes(routes).serve_with_incoming(incoming).await {
            tracing::error!(%error, "the in-memory query channel failed");
        }
    });
    tonic::transport::Endpoint::from_static("http://in-process").connect_with_connector_lazy(tower::service_fn(
        move |_: tonic::transport::Uri| {
            let conns = conns_tx.clone();
            async move {
                let (client, server) = tokio::io::duplex(1 << 20);
                conns.send(server).await.map_err(|_| std::io::Error::other("the in-memory query server stopped"))?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(client))
            }
        },
    ))
}
