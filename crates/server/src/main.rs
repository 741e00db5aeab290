//! `loupe`: the server binary. `loupe up` runs the whole product on one machine; the other
//! subcommands run one service or one setup step each.
//!
//! A thin `main`: parses flags, sets up logging, and calls into the service libraries. Must not
//! hold service logic of its own.

mod cloud;
mod proxy;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use loupe_collector::CollectorConfig;
use loupe_store::StoreConfig;
use loupe_vizier::{Pem, PemConfig};
use tokio::sync::watch;

use crate::cloud::{ApiArgs, CloudArgs, MetastoreArgs, ServiceArgs};
use loupe_cloud::ServiceKind;

/// Loupe: eBPF observability for Kubernetes and Linux hosts, with a self-hosted cloud.
#[derive(Parser)]
#[command(name = "loupe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine: a node agent tracing this host, its query endpoint, the cloud
    /// API with an embedded SQLite metastore, and a TLS proxy in front of the API (https on :56000).
    Up(UpArgs),
    /// Run one data-plane service.
    #[command(subcommand)]
    Vizier(VizierCommand),
    /// Run one cloud service.
    #[command(subcommand)]
    Cloud(CloudCommand),
    /// One-off setup steps (idempotent; safe to run as Kubernetes Jobs).
    #[command(subcommand)]
    Setup(SetupCommand),
}

#[derive(Subcommand)]
enum VizierCommand {
    /// The node agent (PEM): traces this host and answers queries over its store.
    Pem(AgentArgs),
}

#[derive(Subcommand)]
enum CloudCommand {
    /// The API server: REST under /api/v1 and gRPC loupe.cloud.v1 on one port, health and metrics. Runs the
    /// services in process unless --auth-addr, --profile-addr and --scripts-addr name them.
    Api(ApiArgs),
    /// The auth service (gRPC): sessions, API keys, deploy keys; creates the first admin.
    Auth(ServiceArgs),
    /// The profile service (gRPC): org, users, settings, invitations, viziers.
    Profile(ServiceArgs),
    /// The script manager (gRPC): bundled and org scripts.
    Scripts(ServiceArgs),
    /// The TLS proxy in front of the API: REST and gRPC on one https port, optional HTTP→HTTPS redirect.
    Proxy(proxy::ProxyArgs),
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create the first admin (LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD, default admin@default.com /
    /// admin) unless it exists. The password must be changed at first login.
    CreateAdmin(MetastoreArgs),
    /// Generate the CA, the server certificate and random secrets (signing key, DB password) that are absent,
    /// under <data-dir>/secrets; existing files are never overwritten.
    InitSecrets(proxy::InitSecretsArgs),
}

#[derive(Args, Clone)]
struct UpArgs {
    #[command(flatten)]
    agent: AgentArgs,
    #[command(flatten)]
    cloud: CloudArgs,
    #[command(flatten)]
    proxy: proxy::UpProxyArgs,
}

#[derive(Args, Clone)]
struct AgentArgs {
    /// Address of the query endpoint (gRPC).
    #[arg(long, env = "LOUPE_LISTEN", default_value = "127.0.0.1:50300")]
    listen: SocketAddr,
    /// Memory budget of the http_events table, in MiB (Pixie's default: 40% of 1 GiB).
    #[arg(long, env = "LOUPE_HTTP_EVENTS_MB", default_value_t = 409)]
    http_events_mb: usize,
    /// Largest request or response body kept per row, in bytes (longer ones are truncated).
    #[arg(long, env = "LOUPE_MAX_BODY_BYTES", default_value_t = 512)]
    max_body_bytes: usize,
    /// Serve queries without tracing (no root needed; the store stays empty).
    #[arg(long)]
    no_trace: bool,
    /// Store credentials as captured: auth headers, cookies, secret query parameters and body fields are
    /// otherwise replaced by [REDACTED] before a row is stored (see docs/redaction.md).
    #[arg(long, env = "LOUPE_NO_REDACT", value_parser = clap::builder::BoolishValueParser::new())]
    no_redact: bool,
}

fn main() -> ExitCode {
    keep_large_allocations_mapped();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => run_up(args).await,
            Command::Vizier(VizierCommand::Pem(args)) => run_agent(args, shutdown_signal()).await,
            Command::Cloud(CloudCommand::Api(args)) => cloud::run_api(&args, shutdown_signal()).await,
            Command::Cloud(CloudCommand::Auth(args)) => {
                cloud::run_service(ServiceKind::Auth, &args, shutdown_signal()).await
            }
            Command::Cloud(CloudCommand::Profile(args)) => {
                cloud::run_service(ServiceKind::Profile, &args, shutdown_signal()).await
            }
            Command::Cloud(CloudCommand::Scripts(args)) => {
                cloud::run_service(ServiceKind::Scripts, &args, shutdown_signal()).await
            }
            Command::Cloud(CloudCommand::Proxy(args)) => proxy::run_proxy(&args, shutdown_signal()).await,
            Command::Setup(SetupCommand::CreateAdmin(args)) => cloud::create_admin(&args).await,
            Command::Setup(SetupCommand::InitSecrets(args)) => proxy::init_secrets(&args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, the whole cause chain: what failed and why.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_up(mut args: UpArgs) -> Result<()> {
    // The agent first: its preflight (root, BTF, tracefs) is the likeliest failure on a new machine.
    let pem = start_pem(args.agent).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    // Behind the proxy every login comes from loopback, which any local process reaches too: the proxy proves
    // itself with a per-process secret header, and only then is its X-Forwarded-For the client to throttle.
    if !args.proxy.no_proxy {
        let secret = proxy::proxy_secret()?;
        args.proxy.upstream_secret = Some(secret.clone());
        args.cloud.proxy_secret = Some(secret);
    }
    let api = cloud::start_api(&args.cloud, Some(pem.query_service()), stopped()).await?;
    let proxy = if args.proxy.no_proxy {
        None
    } else {
        let data_dir = &args.cloud.state.metastore.data_dir;
        Some(
            proxy::start_for_up(&args.proxy, data_dir, &args.cloud.state.domain, args.cloud.api_listen, stopped())
                .await?,
        )
    };
    let agent = pem.serve(stopped());
    tokio::pin!(agent);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    // Whichever ends first (a signal, or a service failing) stops the other.
    let result = tokio::select! {
        () = &mut signal => Ok(()),
        r = &mut agent => r.map_err(anyhow::Error::from),
    };
    let _ = stop_tx.send(true);
    if result.is_ok() {
        agent.await?;
    }
    api.await??;
    if let Some(proxy) = proxy {
        proxy.await?;
    }
    result
}

async fn start_pem(args: AgentArgs) -> Result<Pem> {
    let mut store = StoreConfig::default();
    store.table_bytes.insert("http_events".into(), args.http_events_mb.saturating_mul(1 << 20));
    let collector = (!args.no_trace).then(|| {
        let mut c = CollectorConfig::default();
        c.tracer.exclude_tgid = std::process::id();
        c.tracker.parse.max_body_bytes = args.max_body_bytes;
        c.tracker.redact = !args.no_redact;
        if args.no_redact {
            tracing::warn!("redaction is off (--no-redact): captured rows keep passwords, tokens and cookies as sent");
        }
        c
    });
    let pem = Pem::start(PemConfig { listen: args.listen, store, collector }).await?;
    let addr = pem.local_addr()?;
    tracing::info!(%addr, "query endpoint listening; try: PX_CLOUD_ADDR={addr} px run px/http_data");
    Ok(pem)
}

async fn run_agent(args: AgentArgs, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
    start_pem(args).await?.serve(shutdown).await?;
    Ok(())
}

/// Password hashing allocates 19 MiB per login on whichever blocking thread runs it. glibc's
/// adaptive mmap threshold would soon serve those from per-thread heap arenas that keep the memory
/// (measured: 648 MiB RSS after a login burst). A fixed threshold keeps them in mmap, returned on free.
fn keep_large_allocations_mapped() {
    // SAFETY: mallopt only changes allocator tuning; called first thing in main, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Resolves on SIGINT or SIGTERM (what Kubernetes sends), logging which.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; stop with Ctrl-C");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
        () = term => tracing::info!("terminated; shutting down"),
    }
}
