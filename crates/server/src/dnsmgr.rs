//! Wiring of `loupe cloud dnsmgr`: the DNS manager over the metastore's vizier records, the bus VZConn
//! publishes on (for viziers' certificate requests) and the cloud CA in the secrets directory.
//!
//! Owns the flags and where the CA is found. Must not hold naming, DNS or certificate logic (that is
//! `loupe-dnsmgr`'s).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loupe_bus::{Bus, InProcessBus, NatsBus, NatsBusConfig};
use loupe_dnsmgr::{DnsMgr, DnsMgrConfig};

use crate::cloud::{MetastoreArgs, Stop};

/// `loupe cloud dnsmgr` flags.
#[derive(Args, Clone, Debug)]
pub struct DnsMgrArgs {
    /// The zone: each vizier is `<vizier name>.<domain>` and `<vizier id>.<domain>`.
    #[arg(long, env = "LOUPE_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Address of the DNS listener, UDP and TCP (53 for a delegated subdomain).
    #[arg(long, env = "LOUPE_DNS_LISTEN", default_value = "127.0.0.1:53530")]
    pub dns_listen: SocketAddr,
    /// NATS URL of the bus VZConn publishes on (viziers ask for their certificates there). Without it no
    /// certificate is issued (the names are still served).
    #[arg(long, env = "LOUPE_NATS_URL", hide_env_values = true)]
    pub nats_url: Option<String>,
    /// Directory holding the cloud CA (`ca.crt`, `ca.key`) that signs the viziers' certificates. Default:
    /// `<data-dir>/secrets` (generated there, with the other secrets, when absent).
    #[arg(long, env = "LOUPE_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// How often the vizier records are read again.
    #[arg(long, env = "LOUPE_DNS_REFRESH", default_value = "5s", value_parser = humantime::parse_duration)]
    pub refresh: Duration,
    /// TTL of the answers, in seconds.
    #[arg(long, env = "LOUPE_DNS_TTL", default_value_t = 30)]
    pub ttl: u32,
    /// Queries answered per client address per second (twice that as a burst); more are dropped.
    #[arg(long, env = "LOUPE_DNS_RATE", default_value_t = 100)]
    pub queries_per_second: u32,
    /// Address of /healthz, /readyz (the metastore answers) and /metrics (queries answered and dropped,
    /// certificates issued and refused). No credential is asked there: keep it where only probes and Prometheus
    /// reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9099")]
    pub metrics_listen: SocketAddr,
    #[command(flatten)]
    pub metastore: MetastoreArgs,
}

/// `loupe up --dns-listen`: the DNS manager in process, on `loupe up`'s bus, metastore and CA.
pub async fn start_in_process(
    domain: &str,
    listen: SocketAddr,
    data_dir: &std::path::Path,
    metastore: &Arc<dyn loupe_metastore::Metastore>,
    bus: Arc<dyn Bus>,
) -> Result<DnsMgr> {
    let dir = data_dir.join(crate::proxy::SECRETS_DIR);
    let ca = loupe_proxy::secrets::CertificateAuthority::load(&dir)
        .with_context(|| format!("failed to load the cloud CA from {}", dir.display()))?;
    let dns = DnsMgr::start(DnsMgrConfig::new(domain, listen), Arc::clone(metastore), bus, ca)
        .await
        .context("failed to start the DNS manager (--dns-listen)")?;
    tracing::info!(addr = %dns.local_addr(), %domain, "DNS manager serving vizier names (UDP and TCP)");
    Ok(dns)
}

/// `loupe cloud dnsmgr`: serves until `stop`.
pub async fn run_dnsmgr(args: &DnsMgrArgs, stop: &Stop) -> Result<()> {
    let dir = match &args.secrets_dir {
        Some(dir) => dir.clone(),
        None => {
            crate::cloud::secure_data_dir(&args.metastore.data_dir)?;
            let dir = args.metastore.data_dir.join(crate::proxy::SECRETS_DIR);
            let names = crate::proxy::requested_names(Some(&args.domain), &[])?;
            loupe_proxy::init_secrets(&dir, &names)
                .with_context(|| format!("failed to initialise the secrets in {}", dir.display()))?;
            dir
        }
    };
    let ca = loupe_proxy::secrets::CertificateAuthority::load(&dir)
        .with_context(|| format!("failed to load the cloud CA from {}", dir.display()))?;
    let metastore = crate::cloud::open_metastore(&args.metastore).await?;
    let bus: Arc<dyn Bus> = match &args.nats_url {
        Some(url) => Arc::new(NatsBus::connect(NatsBusConfig::new(url.clone())).await.context("failed to reach NATS")?),
        None => {
            tracing::warn!("no --nats-url: viziers cannot ask for certificates; names are served");
            Arc::new(InProcessBus::new())
        }
    };
    let mut config = DnsMgrConfig::new(args.domain.clone(), args.dns_listen);
    config.refresh_every = args.refresh;
    config.ttl = args.ttl;
    config.queries_per_second = args.queries_per_second;
    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--metrics-listen)", args.metrics_listen))?;
    let dns =
        DnsMgr::start(config, Arc::clone(&metastore), bus, ca).await.context("failed to start the DNS manager")?;
    tracing::info!(addr = %dns.local_addr(), domain = %args.domain, "DNS manager serving vizier names (UDP and TCP)");
    tracing::info!(addr = %ops_listener.local_addr()?, "health and metrics listening (/healthz, /readyz, /metrics)");
    let ops = tokio::spawn(loupe_cloud::serve_router(
        ops_listener,
        {
            let stats = dns.stats();
            crate::vzconn::metastore_ops_router(metastore, move || stats.prometheus())
        },
        crate::cloud::stopped(stop),
    ));
    crate::cloud::stopped(stop).await;
    drop(dns);
    ops.await.context("the health listener panicked")?.context("the health listener failed")?;
    Ok(())
}
