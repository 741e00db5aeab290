//! `loupe`: the server binary. `loupe up` runs the whole product on one machine; the other
//! subcommands run one service or one setup step each.
//!
//! A thin `main`: parses flags, sets up logging, and calls into the service libraries. Must not
//! hold service logic of its own.

mod cloud;
mod cluster;
mod dnsmgr;
mod doctor;
mod history;
mod metadata;
mod proxy;
mod vizier;
mod vzconn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use loupe_collector::CollectorConfig;
use loupe_engine::ExecOptions;
use loupe_vizier::{Pem, PemConfig, QueryToken};
use tokio::sync::watch;

use crate::cloud::{ApiArgs, CloudArgs, ServiceArgs};
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
    /// Run everything on this machine: a node agent tracing this host, registered as this host's vizier with the
    /// cloud API (embedded SQLite metastore) through VZConn, which the API's queries (logged-in users only) go
    /// through; and a TLS proxy in front of the API (https on :56000). Health and metrics are on
    /// --metrics-listen (127.0.0.1:9090); /readyz also waits for this host's vizier to be connected.
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
    /// Check a cloud deployment from the outside in, in the order things break: the cloud address and its port,
    /// DNS, the certificate's names and expiry, the proxy's REST and gRPC routes, VZConn, the metastore, NATS and
    /// Redis with their credentials, and each vizier's last heartbeat. Prints the one thing to fix for each
    /// failure; exits 1 when a check fails. Read-only.
    Doctor(doctor::DoctorArgs),
}

#[derive(Subcommand)]
enum VizierCommand {
    /// The node agent (PEM): traces this host and answers queries over its store on --listen, to callers that
    /// send its query token (--query-token-file); health and metrics on --metrics-listen (127.0.0.1:9091).
    Pem(PemArgs),
    /// A whole single-node vizier registered with a cloud: the agent tracing this host, its query endpoint on
    /// --listen (guarded by its query token), and the cloud connector (deploy key from LOUPE_DEPLOY_KEY or
    /// --deploy-key at first start; the identity is then kept in --data-dir). Exits non-zero when the cloud
    /// refuses the key.
    Up(vizier::VizierUpArgs),
    /// The query broker of a vizier of many nodes: serves the query API (same as a PEM's) on --listen
    /// (127.0.0.1:50600), compiles each script once, runs partial work on every live PEM and the merge on the
    /// Kelvins. PEMs (`pem --broker`) and Kelvins register with it; every link carries the query token.
    Broker(cluster::BrokerArgs),
    /// A merge-tier node: registers with --broker and merges what PEMs send, on --listen (127.0.0.1:50500).
    Kelvin(cluster::KelvinArgs),
    /// The agent configuration (table budgets, sampling, protocols parsed) the query broker hands its agents;
    /// they apply a change at their next heartbeat, without a restart.
    #[command(subcommand)]
    Config(cluster::ConfigCommand),
    /// The cloud connector alone, for a PEM running apart (`loupe vizier pem`): registers, keeps the bridge,
    /// sends heartbeats and forwards the cloud's queries to --query-addr with the PEM's query token.
    Connector(vizier::ConnectorArgs),
    /// The metadata service: watches the cluster's pods, services, endpoints, namespaces, nodes, replica sets and
    /// deployments (kube-rs; --kubeconfig, else in-cluster) and serves them on --listen (127.0.0.1:50400) to
    /// PEMs started with --metadata, which must send the vizier's token.
    Metadata(metadata::MetadataArgs),
}

#[derive(Subcommand)]
enum CloudCommand {
    /// The API server: REST under /api/v1 and gRPC loupe.cloud.v1 on one port, health and metrics. Runs the
    /// services in process unless --auth-addr, --profile-addr and --scripts-addr name them.
    Api(Box<ApiArgs>),
    /// The auth service (gRPC): sessions, API keys, deploy keys; creates the first admin.
    Auth(ServiceArgs),
    /// The profile service (gRPC): org, users, settings, invitations, viziers.
    Profile(ServiceArgs),
    /// The script manager (gRPC): bundled and org scripts.
    Scripts(ServiceArgs),
    /// VZConn (gRPC loupe.vzconn.v1, :51800), where viziers register with a deploy key and keep their bridge,
    /// and the vizier manager (heartbeats into the metastore; DISCONNECTED after --disconnect-timeout).
    Vzconn(vzconn::VzConnArgs),
    /// The TLS proxy in front of the API: REST and gRPC on one https port, optional HTTP→HTTPS redirect.
    Proxy(proxy::ProxyArgs),
    /// The DNS manager: each vizier as `<vizier name>.<domain>` over DNS (--dns-listen, UDP and TCP), and a
    /// certificate for that name from the cloud CA, which viziers ask for over the bus (--nats-url).
    Dnsmgr(dnsmgr::DnsMgrArgs),
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Create the first admin (LOUPE_ADMIN_EMAIL / LOUPE_ADMIN_PASSWORD, default admin@default.com /
    /// admin) unless it exists; with --org NAME, add that org with LOUPE_ADMIN_EMAIL as its first admin unless the
    /// org exists. The password must be changed at first login.
    CreateAdmin(cloud::CreateAdminArgs),
    /// Generate the CA, the server certificate and random secrets (signing key, DB password, the agents' query
    /// token) that are absent, under <data-dir>/secrets; existing files are never overwritten.
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
    /// Address of /healthz, /readyz (503 when a probe failed to attach or the metastore is down) and /metrics.
    /// No credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9090")]
    metrics_listen: SocketAddr,
    /// This host's vizier (and any other registered here) is marked DISCONNECTED after this long without a
    /// heartbeat (e.g. 2m, 10s).
    #[arg(long, env = "LOUPE_DISCONNECT_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    vizier_disconnect_timeout: Duration,
    /// Also run the DNS manager here: DNS (UDP and TCP) on this address for `<vizier name>.<domain>`, and a
    /// certificate for that name from the cloud CA for each vizier (as `loupe cloud dnsmgr`).
    #[arg(long, env = "LOUPE_DNS_LISTEN")]
    dns_listen: Option<SocketAddr>,
    /// Results kept per cron script (the newest).
    #[arg(long, env = "LOUPE_CRON_RESULTS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    cron_results: u32,
}

/// `loupe vizier pem`: the agent and its own query port.
#[derive(Args, Clone)]
struct PemArgs {
    #[command(flatten)]
    agent: AgentArgs,
    /// Address of the query endpoint (gRPC). Every call must carry the query token.
    #[arg(long, env = "LOUPE_LISTEN", default_value = "127.0.0.1:50300")]
    listen: SocketAddr,
    /// File holding the query token callers must send (`loupe-vizier-token` metadata; px: PX_VIZIER_TOKEN or
    /// --token-file), such as `vizier-query-token` from `loupe setup init-secrets`. Generated (0600) if absent.
    /// Default: <data-dir>/secrets/vizier-query-token.
    #[arg(long, env = "LOUPE_QUERY_TOKEN_FILE")]
    query_token_file: Option<PathBuf>,
    /// Directory for the agent's state (the default query token file).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// Address of /healthz, /readyz (503 naming the probes that failed to attach) and /metrics. No credential
    /// is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9091")]
    metrics_listen: SocketAddr,
    /// Join the vizier whose query broker is here: register and heartbeat, and serve the streams its Kelvins
    /// pull on --listen (same query token). Without it the PEM answers queries alone.
    #[arg(long, env = "LOUPE_BROKER")]
    broker: Option<String>,
    /// Address the broker and Kelvins reach this PEM at (default: the bound --listen address).
    #[arg(long, env = "LOUPE_ADVERTISE", requires = "broker")]
    advertise: Option<String>,
}

#[derive(Args, Clone)]
pub(crate) struct AgentArgs {
    /// The agent's memory budget in MiB, covering the table store, the parsers' per-connection state and
    /// the eBPF ring buffers of the socket tracer and the profiler (minimum 64). Past it the oldest rows are evicted, new connections over the
    /// derived cap are counted and dropped (agent_stats conns_dropped/conn_cap) and a full ring drops
    /// records (counted). `scripts/bench-agent.sh` reports the resident size against it.
    #[arg(long, env = "LOUPE_MEMORY_BUDGET_MB", default_value_t = loupe_collector::MemoryBudget::DEFAULT_MIB)]
    memory_budget: usize,
    /// Budget of the http_events table alone, in MiB, taken out of --memory-budget (default: half of the
    /// budget's store share).
    #[arg(long, env = "LOUPE_HTTP_EVENTS_MB")]
    http_events_mb: Option<usize>,
    /// Largest request or response body kept per row, in bytes (longer ones are truncated); also bounds
    /// Redis arguments and replies.
    #[arg(long, env = "LOUPE_MAX_BODY_BYTES", default_value_t = 512)]
    max_body_bytes: usize,
    /// Serve queries without tracing (no root needed; the store stays empty).
    #[arg(long)]
    no_trace: bool,
    /// Trace the agent itself too: its own process and the connections to the ports it listens on (px, the UI,
    /// Prometheus) are otherwise left out, so views show the services watched, not the observer.
    #[arg(long, env = "LOUPE_TRACE_SELF", value_parser = clap::builder::BoolishValueParser::new())]
    trace_self: bool,
    /// Store credentials as captured: auth headers, cookies, secret query parameters and body fields are
    /// otherwise replaced by [REDACTED] before a row is stored (see docs/redaction.md).
    #[arg(long, env = "LOUPE_NO_REDACT", value_parser = clap::builder::BoolishValueParser::new())]
    no_redact: bool,
    /// Per-port protocol override, PORT=PROTOCOL: connections with that local or remote port are parsed as
    /// PROTOCOL whatever their first bytes look like (http, http2, grpc, mysql, cql, pgsql, dns, redis, nats,
    /// mongodb, kafka, amqp, mqtt), or never traced with PORT=none. Repeat the flag (or separate with commas in
    /// the variable); at most 64. Applies to TCP connections.
    #[arg(long = "protocol-port", env = "LOUPE_PROTOCOL_PORTS", value_delimiter = ',', value_name = "PORT=PROTOCOL")]
    protocol_ports: Vec<loupe_collector::PortProtocol>,
    /// Longest a query may run, sending its results included (e.g. 30s, 2m); it then stops with an error.
    #[arg(long, env = "LOUPE_QUERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    query_timeout: Duration,
    /// Memory one query's operators (aggregations, sorts) may hold, in MiB; a query needing more fails.
    #[arg(long, env = "LOUPE_QUERY_MEMORY_MB", default_value_t = 256)]
    query_memory_mb: usize,
    /// Most rows returned per output table. A script's `#px:set max_output_rows_per_table` may lower it, never
    /// raise it.
    #[arg(long, env = "LOUPE_MAX_OUTPUT_ROWS", default_value_t = 10_000)]
    max_output_rows: usize,
    /// Turn the continuous CPU profiler off (stack_traces.beta stays empty).
    #[arg(long, env = "LOUPE_NO_PROFILER", value_parser = clap::builder::BoolishValueParser::new())]
    no_profiler: bool,
    /// CPU profiler samples per second on each CPU.
    #[arg(long, env = "LOUPE_PROFILER_HZ", default_value_t = 99, value_parser = clap::value_parser!(u64).range(1..=1000))]
    profiler_hz: u64,
    /// How often the profiler writes stack_traces.beta (one row per distinct stack per process).
    #[arg(long, env = "LOUPE_PROFILER_WINDOW", default_value = "30s", value_parser = humantime::parse_duration)]
    profiler_window: Duration,
    /// User stack bytes the profiler copies per sample to unwind binaries without frame pointers with their
    /// .eh_frame (at most 32768); 0 walks frame pointers in the kernel only (cheaper, but such binaries then
    /// show their leaf frame only).
    #[arg(long, env = "LOUPE_PROFILER_STACK_BYTES", default_value_t = 16384, value_parser = clap::value_parser!(u32).range(0..=32768))]
    profiler_stack_bytes: u32,
    /// Address of the metadata service (`loupe vizier metadata`): `df.ctx['pod']`, `ctx['service']`,
    /// `px.ip_to_pod_id` and the other Kubernetes functions answer from it. Without it they answer '' (a host
    /// without Kubernetes); pid, command line and host name answer either way.
    /// HOST:PORT; a name (a Kubernetes Service's) is resolved again at each reconnection.
    #[arg(long, env = "LOUPE_METADATA_ADDR")]
    metadata: Option<String>,
    /// File holding the vizier's token the metadata service demands (with --metadata).
    #[arg(long, env = "LOUPE_METADATA_TOKEN_FILE")]
    metadata_token_file: Option<PathBuf>,
    /// Rows to serve besides what is traced: TABLE=FILE, FILE an Arrow IPC stream of the table's schema
    /// (repeatable; for demos and tests).
    #[arg(long = "load", value_name = "TABLE=FILE")]
    load: Vec<String>,
    #[command(flatten)]
    history: history::HistoryArgs,
}

/// The default data directory: `$XDG_DATA_HOME/loupe`, else `~/.local/share/loupe`, else `/var/lib/loupe`. At
/// the crate root because both the cloud and the proxy subcommands default to it.
pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map_or_else(|| PathBuf::from("/var/lib/loupe"), |d| d.join("loupe"))
}

fn main() -> ExitCode {
    keep_large_allocations_mapped();
    let cli = Cli::parse();
    // `loupe doctor` prints its own report; its clients' connection chatter would only bury it.
    let default_level = if matches!(cli.command, Command::Doctor(_)) { "warn" } else { "info" };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
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
    let command = match cli.command {
        Command::Doctor(args) => {
            return match runtime.block_on(doctor::run(&args)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        other => other,
    };
    let result = runtime.block_on(async {
        match command {
            Command::Up(args) => run_up(args).await,
            Command::Vizier(VizierCommand::Pem(args)) => run_agent(args, shutdown_signal()).await,
            Command::Vizier(VizierCommand::Up(args)) => vizier::run_vizier_up(args, shutdown_signal()).await,
            Command::Vizier(VizierCommand::Connector(args)) => vizier::run_connector(args, shutdown_signal()).await,
            Command::Vizier(VizierCommand::Broker(args)) => cluster::run_broker(args, shutdown_signal()).await,
            Command::Vizier(VizierCommand::Kelvin(args)) => cluster::run_kelvin(args, shutdown_signal()).await,
            Command::Vizier(VizierCommand::Config(command)) => cluster::run_config(command).await,
            Command::Vizier(VizierCommand::Metadata(args)) => metadata::run(args, shutdown_signal()).await,
            Command::Cloud(CloudCommand::Vzconn(args)) => vzconn::run_vzconn(&args, &stop_on_signal()).await,
            Command::Cloud(CloudCommand::Api(args)) => cloud::run_api(&args, &stop_on_signal()).await,
            Command::Cloud(CloudCommand::Auth(args)) => {
                cloud::run_service(ServiceKind::Auth, &args, &stop_on_signal()).await
            }
            Command::Cloud(CloudCommand::Profile(args)) => {
                cloud::run_service(ServiceKind::Profile, &args, &stop_on_signal()).await
            }
            Command::Cloud(CloudCommand::Scripts(args)) => {
                cloud::run_service(ServiceKind::Scripts, &args, &stop_on_signal()).await
            }
            Command::Cloud(CloudCommand::Proxy(args)) => proxy::run_proxy(&args, shutdown_signal()).await,
            Command::Cloud(CloudCommand::Dnsmgr(args)) => dnsmgr::run_dnsmgr(&args, &stop_on_signal()).await,
            Command::Setup(SetupCommand::CreateAdmin(args)) => cloud::create_admin(&args).await,
            Command::Setup(SetupCommand::InitSecrets(args)) => proxy::init_secrets(&args).await,
            Command::Doctor(_) => unreachable!("handled before the runtime runs a service"),
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
    let pem = start_pem(&args.agent, Some(args.cloud.state.metastore.data_dir.join("history")))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = || cloud::stopped(&stop_rx);
    // Behind the proxy every login comes from loopback, which any local process reaches too: the proxy proves
    // itself with a per-process secret header, and only then is its X-Forwarded-For the client to throttle.
    if !args.proxy.no_proxy {
        let secret = proxy::proxy_secret()?;
        args.proxy.upstream_secret = Some(secret.clone());
        args.cloud.proxy_secret = Some(secret);
    }
    // The agent opens no port of its own: queries reach it only through the API, behind a user's credential, and
    // through VZConn like any vizier's. The host's vizier being connected is part of readiness.
    let (own_connected_tx, own_connected) = watch::channel(false);
    // The newest rows of this host's cron scripts, shown as gauges on the metrics listener.
    let script_results = loupe_connector::LatestResults::default();
    let agent_ops = AgentOps { pem: pem.ops(), own_connected, script_results: script_results.clone() };
    let ops = cloud::OpsListener { addr: args.metrics_listen, colocated: Some(Arc::new(agent_ops)) };
    // This host's vizier registers through VZConn like any other, served on the API's port (so the TLS proxy
    // routes it too) over a bus in process; its connector reaches the query service in memory.
    let data_dir = args.cloud.state.metastore.data_dir.clone();
    let secret = vzconn::credential_key(None, &data_dir, &args.cloud.state.domain)?;
    let bus: Arc<dyn loupe_bus::Bus> = Arc::new(loupe_bus::InProcessBus::new());
    let vzconn = cloud::VzConnMount::InProcess(
        Arc::clone(&bus),
        loupe_vzconn::VzConnConfig::new(secret),
        vzconn::cron_config(args.cron_results, cloud::state_settings_key(&args.cloud.state)?),
    );
    let started = cloud::start_api(&args.cloud, Some(Arc::clone(&bus)), Some(vzconn), ops, &stop_rx).await?;
    let mut api = started.task;
    let manager = loupe_vzconn::VizierManager::start(
        Arc::clone(&started.metastore),
        Arc::clone(&bus),
        vzconn::manager_config(args.vizier_disconnect_timeout),
    )
    .await
    .context("failed to start the vizier manager")?;
    let dns = match args.dns_listen {
        Some(listen) => {
            Some(dnsmgr::start_in_process(&args.cloud.state.domain, listen, &data_dir, &started.metastore, bus).await?)
        }
        None => None,
    };
    let connector = vizier::start_own(
        &started.metastore,
        &started.default_org,
        args.cloud.api_listen,
        &data_dir.join("vizier"),
        pem.query_routes(),
        args.vizier_disconnect_timeout,
        script_results,
    )
    .await?;
    vizier::report_connected(&connector, own_connected_tx).await;
    let proxy = if args.proxy.no_proxy {
        None
    } else {
        let data_dir = &args.cloud.state.metastore.data_dir;
        Some(
            proxy::start_for_up(&args.proxy, data_dir, &args.cloud.state.domain, args.cloud.api_listen, stopped())
                .await?,
        )
    };
    // Whichever ends first (a signal, or the API failing) stops the rest.
    let failed = tokio::select! {
        () = shutdown_signal() => None,
        r = &mut api => Some(r),
    };
    // The connector first, so it does not reconnect to a closing API.
    connector.stop().await;
    let _ = stop_tx.send(true);
    drop(manager);
    drop(dns);
    match failed {
        Some(r) => r??,
        None => api.await??,
    }
    if let Some(proxy) = proxy {
        proxy.await?;
    }
    drop(pem);
    Ok(())
}

/// The agent's readiness and metrics, served by `loupe up`'s operational listener with the API's. Queries reach
/// the agent only through this host's vizier connection, so it is not ready while that is down.
struct AgentOps {
    pem: loupe_vizier::http::PemOps,
    own_connected: watch::Receiver<bool>,
    script_results: loupe_connector::LatestResults,
}

impl loupe_cloud::Colocated for AgentOps {
    fn metrics_text(&self) -> String {
        // Cron scripts' newest rows as `loupe_script_<table>_<column>` gauges (docs/export.md).
        self.pem.metrics_text() + &loupe_export::prometheus::render(&self.script_results.snapshot())
    }

    fn readiness(&self) -> Result<(), String> {
        self.pem.readiness()?;
        if !*self.own_connected.borrow() {
            return Err("this host's vizier is not connected to the cloud (VZConn)".into());
        }
        Ok(())
    }
}

/// Starts the agent: store, collector, metadata, history (to `default_history` unless a flag says otherwise), and
/// the rows given with `--load`.
pub(crate) fn start_pem(args: &AgentArgs, default_history: Option<PathBuf>) -> Result<Pem> {
    let budget = loupe_collector::MemoryBudget::from_mib(args.memory_budget).context("invalid --memory-budget")?;
    let mut store = budget.store_config();
    if let Some(mb) = args.http_events_mb {
        store.table_bytes.insert("http_events".into(), mb.saturating_mul(1 << 20));
    }
    let collector = (!args.no_trace).then(|| {
        let mut c = CollectorConfig::default();
        // Excluding its own process also excludes every port it listens on (see the kernel's listen hook).
        c.tracer.exclude_tgid = if args.trace_self { 0 } else { std::process::id() };
        c.tracker.parse.max_body_bytes = args.max_body_bytes;
        c.tracker.redact = !args.no_redact;
        c.tracer.port_protocols.clone_from(&args.protocol_ports);
        c.tracker.port_protocols.clone_from(&args.protocol_ports);
        c.profiler = (!args.no_profiler).then(|| loupe_collector::ProfilerConfig {
            frequency_hz: args.profiler_hz,
            window: args.profiler_window.max(Duration::from_secs(1)),
            copy_stack_bytes: args.profiler_stack_bytes,
            asid: c.tracker.asid,
            ..Default::default()
        });
        // After the profiler is set: the budget sizes its ring too.
        budget.apply(&mut c);
        if args.no_redact {
            tracing::warn!("redaction is off (--no-redact): captured rows keep passwords, tokens and cookies as sent");
        }
        c
    });
    let limits = ExecOptions {
        max_output_rows: args.max_output_rows,
        timeout: Some(args.query_timeout),
        memory_limit_bytes: Some(args.query_memory_mb.saturating_mul(1 << 20)),
    };
    let mut pem = Pem::start(PemConfig { store, collector, limits })?;
    pem.set_metadata(metadata::pem_metadata(args.metadata.as_deref(), args.metadata_token_file.as_ref())?);
    if let Err(why) = pem.probes().readiness() {
        tracing::error!(%why, "the agent is not ready: some traffic will not be seen (/readyz answers 503)");
    }
    history::attach(&mut pem, &args.history, default_history)?;
    for load in &args.load {
        let (table, file) = load.split_once('=').context("--load takes TABLE=FILE")?;
        let rows = pem.load_ipc_file(table, std::path::Path::new(file))?;
        tracing::info!(table, file, rows, "rows loaded");
    }
    Ok(pem)
}

async fn run_agent(args: PemArgs, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> Result<()> {
    let token_file =
        args.query_token_file.clone().unwrap_or_else(|| args.data_dir.join("secrets").join("vizier-query-token"));
    let (token, created) = QueryToken::load_or_create(&token_file).context("the query endpoint needs its token")?;
    let pem = start_pem(&args.agent, None)?;
    let listener = bind(args.listen, "--listen").await?;
    let ops_listener = bind(args.metrics_listen, "--metrics-listen").await?;
    let addr = listener.local_addr()?;
    if created {
        tracing::info!(file = %token_file.display(), "generated the query token");
    }
    tracing::info!(
        %addr,
        metrics = %ops_listener.local_addr()?,
        "query endpoint listening; every call needs the query token; try: PX_CLOUD_ADDR={addr} px run px/http_data --token-file {}",
        token_file.display()
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let ops = tokio::spawn(loupe_cloud::serve_router(
        ops_listener,
        loupe_vizier::http::router(pem.ops()),
        cloud::stopped(&stop_rx),
    ));
    let result = match args.broker {
        Some(broker) => {
            let advertise = args.advertise.unwrap_or_else(|| addr.to_string());
            tracing::info!(%broker, %advertise, "joining the vizier's query broker");
            pem.serve_in_cluster(listener, token, loupe_vizier::ClusterLink { broker, advertise }, shutdown).await
        }
        None => pem.serve(listener, token, shutdown).await,
    };
    let _ = stop_tx.send(true);
    ops.await??;
    result?;
    Ok(())
}

pub(crate) async fn bind(addr: SocketAddr, flag: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("failed to listen on {addr} ({flag})"))
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

/// A stop signal that turns true on SIGINT or SIGTERM.
fn stop_on_signal() -> cloud::Stop {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
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
