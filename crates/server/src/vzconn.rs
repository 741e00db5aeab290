//! Wiring of the cloud's vizier-facing side: `loupe cloud vzconn` (VZConn and the vizier manager in one process,
//! on a NATS bus or alone), and the pieces `loupe up` reuses to serve VZConn on its API port (the credential key
//! file, the manager settings).
//!
//! Owns the flags, the credential key file and the vzconn process's health and metrics. Must not hold the
//! connection rules (they are `loupe-vzconn`'s) nor touch the bridge.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::http::{StatusCode, header};
use axum::routing::get;
use clap::Args;
use loupe_bus::{Bus, InProcessBus, NatsBus, NatsBusConfig};
use loupe_metastore::Metastore;
use loupe_vzconn::{
    CronConfig, CronService, ManagerConfig, ManagerStats, SettingsKey, VizierManager, VzConn, VzConnConfig,
};

use crate::cloud::{MetastoreArgs, Stop};

/// `loupe cloud vzconn` flags.
#[derive(Args, Clone, Debug)]
pub struct VzConnArgs {
    /// Address of the VZConn gRPC endpoint viziers dial. It serves TLS (the cloud CA's server certificate, see
    /// --tls-cert) unless --insecure-plaintext is given.
    #[arg(long, env = "LOUPE_VZCONN_LISTEN", default_value = "127.0.0.1:51800")]
    pub listen: SocketAddr,
    /// PEM certificate chain to present: the cloud's `server.crt` where viziers dial in, `internal.crt` for the
    /// instance the API gateway forwards to (--vzconn-addr). Default: `<data-dir>/secrets/server.crt`, generated
    /// with the CA (and covering --domain) when the secrets directory lacks it.
    #[arg(long, env = "LOUPE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert. Default: `<data-dir>/secrets/server.key`.
    #[arg(long, env = "LOUPE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP/2 instead of TLS: only behind a TLS proxy, or on a network where viziers' credentials
    /// may be read. Also spelt --insecure-internal, as the other split services' opt-out.
    #[arg(
        long,
        alias = "insecure-internal",
        env = "LOUPE_VZCONN_INSECURE_PLAINTEXT",
        conflicts_with_all = ["tls_cert", "tls_key"]
    )]
    pub insecure_plaintext: bool,
    /// The deployment's domain: the generated server certificate also covers it and `*.<domain>`.
    #[arg(long, env = "LOUPE_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Address of /healthz, /readyz (503 when the metastore is unreachable) and /metrics. No credential is asked
    /// there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9096")]
    pub metrics_listen: SocketAddr,
    /// NATS URL of the message bus shared with the API (e.g. nats://nats:4222). Without it the bus is in
    /// process: heartbeats are recorded, but no other process can reach these viziers.
    #[arg(long, env = "LOUPE_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// File holding the key vizier credentials are derived from, such as `vizier-credential-key` from `loupe
    /// setup init-secrets` (every replica must use the same one). Default:
    /// `<data-dir>/secrets/vizier-credential-key`, generated (0600) if absent.
    #[arg(long, env = "LOUPE_VIZIER_CREDENTIAL_KEY_FILE")]
    pub credential_key_file: Option<PathBuf>,
    /// File holding the key that seals credentials kept in org settings (the export endpoint's header values),
    /// such as `settings-key` from `loupe setup init-secrets`: the scripts service seals with it, VZConn opens
    /// them to send them to the org's viziers, so both need the same file. Default:
    /// `<data-dir>/secrets/settings-key`, generated (0600) if absent.
    #[arg(long, env = "LOUPE_SETTINGS_KEY_FILE")]
    pub settings_key_file: Option<PathBuf>,
    /// A vizier without a heartbeat for this long is marked DISCONNECTED (e.g. 2m, 90s).
    #[arg(long, env = "LOUPE_DISCONNECT_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub disconnect_timeout: Duration,
    /// Results kept per cron script (the newest).
    #[arg(long, env = "LOUPE_CRON_RESULTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub cron_results: u32,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
}

/// The manager's settings for a disconnect timeout: it looks every 5 s, more often for short timeouts.
pub fn manager_config(disconnect_after: Duration) -> ManagerConfig {
    ManagerConfig {
        disconnect_after,
        check_every: (disconnect_after / 4).clamp(Duration::from_millis(250), Duration::from_secs(5)),
        ..ManagerConfig::default()
    }
}

/// The cron side's settings: `keep` results per script, `settings_key` to open the export endpoint's headers.
pub fn cron_config(keep: u32, settings_key: SettingsKey) -> CronConfig {
    CronConfig { keep_results: keep, settings_key: Some(settings_key), ..CronConfig::default() }
}

/// The credential key: `file`, else `<data_dir>/secrets/vizier-credential-key`, generated by the init-secrets
/// code (with whatever else of the secrets directory is absent) the first time.
pub fn credential_key(file: Option<&Path>, data_dir: &Path, domain: &str) -> Result<Vec<u8>> {
    let secret = loupe_proxy::secrets::VIZIER_CREDENTIAL_KEY;
    let (_, text) = crate::cloud::read_secret(file, data_dir, domain, secret, "vizier credential key")?;
    Ok(text.trim().as_bytes().to_vec())
}

/// `loupe cloud vzconn`: VZConn and the vizier manager, until `stop`.
pub async fn run_vzconn(args: &VzConnArgs, stop: &Stop) -> Result<()> {
    let secret = credential_key(args.credential_key_file.as_deref(), &args.metastore.data_dir, &args.domain)?;
    let sealing =
        crate::cloud::settings_key(args.settings_key_file.as_deref(), &args.metastore.data_dir, &args.domain)?;
    let tls = if args.insecure_plaintext {
        tracing::warn!("--insecure-plaintext: viziers' deploy keys and credentials cross the network in clear");
        None
    } else {
        Some(tls_identity(args)?)
    };
    let metastore = crate::cloud::open_metastore(&args.metastore).await?;
    let bus: Arc<dyn Bus> = match &args.nats_url {
        Some(url) => Arc::new(NatsBus::connect(NatsBusConfig::new(url.clone())).await.context("failed to reach NATS")?),
        None => {
            tracing::warn!("no --nats-url: the bus is in process, so the API cannot reach these viziers");
            Arc::new(InProcessBus::new())
        }
    };
    let vzconn = VzConn::new(Arc::clone(&metastore), Arc::clone(&bus), VzConnConfig::new(secret))
        .context("the vizier credential key is unusable")?;
    let manager =
        VizierManager::start(Arc::clone(&metastore), Arc::clone(&bus), manager_config(args.disconnect_timeout))
            .await
            .context("failed to start the vizier manager")?;
    // Changes made through an API in another process reach the viziers at their next cron request.
    let cron = CronService::start(Arc::clone(&metastore), bus, cron_config(args.cron_results, sealing))
        .await
        .context("failed to start the cron side")?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {} (--listen)", args.listen))?;
    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--metrics-listen)", args.metrics_listen))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        metrics = %ops_listener.local_addr()?,
        disconnect_timeout = ?args.disconnect_timeout,
        tls = tls.is_some(),
        "VZConn listening (gRPC loupe.vzconn.v1)"
    );
    let ops = tokio::spawn(loupe_cloud::serve_router(
        ops_listener,
        {
            let stats = Arc::clone(manager.stats());
            metastore_ops_router(metastore, move || metrics_text(&stats))
        },
        crate::cloud::stopped(stop),
    ));
    let served = match tls {
        Some((cert, key)) => vzconn.serve_tls(listener, &cert, &key, crate::cloud::stopped(stop)).await,
        None => vzconn.serve(listener, crate::cloud::stopped(stop)).await,
    };
    ops.await??;
    drop(manager);
    drop(cron);
    served.context("VZConn failed")
}

/// The certificate chain and key VZConn presents: the files given, else the secrets directory's server
/// certificate, generated with the CA if absent.
fn tls_identity(args: &VzConnArgs) -> Result<(Vec<u8>, Vec<u8>)> {
    let (cert, key) = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => {
            let dir = args.metastore.data_dir.join(crate::proxy::SECRETS_DIR);
            let names = crate::proxy::requested_names(Some(&args.domain), &[])?;
            loupe_proxy::init_secrets(&dir, &names)
                .with_context(|| format!("failed to initialise the TLS secrets in {}", dir.display()))?;
            (dir.join(loupe_proxy::secrets::SERVER_CERT), dir.join(loupe_proxy::secrets::SERVER_KEY))
        }
    };
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("failed to read {}", path.display()));
    Ok((read(&cert)?, read(&key)?))
}

/// `/healthz`, `/readyz` (the metastore answers) and `/metrics` (what `metrics` renders): the operational view of
/// every cloud process that reads the metastore (VZConn's manager, the DNS manager).
pub(crate) fn metastore_ops_router(
    metastore: Arc<dyn Metastore>,
    metrics: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> axum::Router {
    let json = |text: String| ([(header::CONTENT_TYPE, "application/json")], text);
    axum::Router::new()
        .route("/healthz", get(move || async move { json(r#"{"status":"ok"}"#.into()) }))
        .route(
            "/readyz",
            get(move || {
                let metastore = Arc::clone(&metastore);
                async move {
                    match metastore.health_check().await {
                        Ok(()) => (StatusCode::OK, json(r#"{"status":"ok","metastore":"ok"}"#.into())),
                        Err(e) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            json(format!(r#"{{"status":"unavailable","metastore":{:?}}}"#, e.to_string())),
                        ),
                    }
                }
            }),
        )
        .route("/metrics", get(move || std::future::ready(metrics())))
}

fn metrics_text(stats: &ManagerStats) -> String {
    let mut text = String::new();
    for (name, help, value) in [
        ("loupe_vzconn_heartbeats_recorded_total", "Heartbeats recorded.", stats.recorded()),
        ("loupe_vzconn_heartbeats_failed_total", "Heartbeats not decoded or not recorded.", stats.failed()),
        ("loupe_vzconn_viziers_disconnected_total", "Viziers marked DISCONNECTED.", stats.marked_disconnected()),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
    }
    text
}
