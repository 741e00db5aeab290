//! `loupe vizier broker` and `loupe vizier kelvin`: the query broker and the merge tier of a vizier of
//! many nodes (PEMs join with `loupe vizier pem --broker`), and `loupe vizier config get|set`, the agent
//! configuration the broker hands its agents. Flags and wiring only; the services are
//! `loupe_vizier::cluster`'s and `loupe_vizier::agent_config`'s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use loupe_engine::ExecOptions;
use loupe_proto::clusterpb::{AgentConfig, GetConfigRequest, SetConfigRequest};
use loupe_vizier::QueryToken;

use crate::default_data_dir;

/// Where the vizier's shared query token is read from (or generated, 0600, when absent).
#[derive(Args, Clone)]
pub(crate) struct TokenArgs {
    /// File holding the vizier's query token: clients send it to the broker, and every link between broker,
    /// Kelvins and PEMs carries it (one token per vizier). Generated (0600) if absent.
    /// Default: <data-dir>/secrets/vizier-query-token.
    #[arg(long, env = "LOUPE_QUERY_TOKEN_FILE")]
    pub(crate) query_token_file: Option<PathBuf>,
    /// Directory for state (the default query token file).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub(crate) data_dir: PathBuf,
}

impl TokenArgs {
    pub(crate) fn load(&self) -> Result<QueryToken> {
        let file =
            self.query_token_file.clone().unwrap_or_else(|| self.data_dir.join("secrets").join("vizier-query-token"));
        let (token, created) = QueryToken::load_or_create(&file).context("the vizier needs its query token")?;
        if created {
            tracing::info!(file = %file.display(), "generated the query token");
        }
        Ok(token)
    }
}

/// Where a node that merges reads the Kubernetes metadata from (as the PEM's flags).
#[derive(Args, Clone)]
pub(crate) struct MetadataLink {
    /// Address of the metadata service (HOST:PORT): the metadata functions of maps over merged rows
    /// (`px.ip_to_pod_name`, `px.pod_id_to_service_name`, …) answer from it. Without it they answer ''.
    #[arg(long, env = "LOUPE_METADATA_ADDR")]
    metadata: Option<String>,
    /// File holding the vizier's token the metadata service demands (with --metadata).
    #[arg(long, env = "LOUPE_METADATA_TOKEN_FILE")]
    metadata_token_file: Option<PathBuf>,
}

impl MetadataLink {
    fn follow(&self) -> Result<loupe_vizier::PemMetadata> {
        crate::metadata::pem_metadata(self.metadata.as_deref(), self.metadata_token_file.as_ref())
    }
}

/// `loupe vizier broker`.
#[derive(Args, Clone)]
pub(crate) struct BrokerArgs {
    /// Address of the query API (the same `VizierService` a PEM serves) and of agent registration.
    #[arg(long, env = "LOUPE_LISTEN", default_value = loupe_vizier::cluster::DEFAULT_BROKER_ADDR)]
    listen: SocketAddr,
    #[command(flatten)]
    token: TokenArgs,
    /// How often agents heartbeat; one silent for three intervals leaves the query set.
    #[arg(long, env = "LOUPE_HEARTBEAT", default_value = "2s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Longest a query may run; agents that have not answered by then are left out (and named).
    #[arg(long, env = "LOUPE_QUERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    query_timeout: Duration,
    /// Memory one query's operators may hold on the broker (source functions, a merge with no Kelvin), in MiB.
    #[arg(long, env = "LOUPE_QUERY_MEMORY_MB", default_value_t = 256)]
    query_memory_mb: usize,
    /// Most rows returned per output table.
    #[arg(long, env = "LOUPE_MAX_OUTPUT_ROWS", default_value_t = 10_000)]
    max_output_rows: usize,
    /// Where the agent configuration (`loupe vizier config set`) is kept across restarts (0600).
    /// Default: <data-dir>/vizier-agent-config.pb.
    #[arg(long, env = "LOUPE_AGENT_CONFIG_FILE")]
    agent_config_file: Option<PathBuf>,
    /// Address of /healthz, /readyz and /metrics (agents by kind and state, the agent configuration's
    /// version). No credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9102")]
    metrics_listen: SocketAddr,
    /// The metadata service, for the merges the broker runs itself when no Kelvin is registered.
    #[command(flatten)]
    metadata: MetadataLink,
    /// Where cron scripts' results are kept for the whole cluster (`cron_<script>` tables; PEMs keep their own
    /// tables). None kept without a place.
    #[command(flatten)]
    history: crate::history::HistoryPlace,
}

/// `loupe vizier kelvin`.
#[derive(Args, Clone)]
pub(crate) struct KelvinArgs {
    /// The query broker to register with.
    #[arg(long, env = "LOUPE_BROKER")]
    broker: String,
    /// Address the broker sends merges to.
    #[arg(long, env = "LOUPE_LISTEN", default_value = loupe_vizier::cluster::DEFAULT_KELVIN_ADDR)]
    listen: SocketAddr,
    /// Address the broker reaches this Kelvin at (default: the bound --listen address).
    #[arg(long, env = "LOUPE_ADVERTISE")]
    advertise: Option<String>,
    #[command(flatten)]
    token: TokenArgs,
    /// Longest a merge may run.
    #[arg(long, env = "LOUPE_QUERY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    query_timeout: Duration,
    /// Memory one merge's operators may hold, in MiB.
    #[arg(long, env = "LOUPE_QUERY_MEMORY_MB", default_value_t = 512)]
    query_memory_mb: usize,
    /// Most rows returned per output table.
    #[arg(long, env = "LOUPE_MAX_OUTPUT_ROWS", default_value_t = 10_000)]
    max_output_rows: usize,
    /// Address of /healthz, /readyz (503 until the broker has accepted this Kelvin) and /metrics. No
    /// credential is asked there: keep it where only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9103")]
    metrics_listen: SocketAddr,
    #[command(flatten)]
    metadata: MetadataLink,
}

/// `loupe vizier config`: the agent configuration the broker hands out.
#[derive(Subcommand, Clone)]
pub(crate) enum ConfigCommand {
    /// Print the configuration in force (JSON): its version, table budgets (MiB), sampling and protocols.
    Get(ConfigTarget),
    /// Change it: the broker gives it the next version and every agent applies it at its next heartbeat,
    /// without a restart (`px.GetAgentStatus()` shows each agent's `config_version`). What is not named is
    /// kept, unless --reset.
    Set(ConfigSetArgs),
}

/// Which broker, with which token.
#[derive(Args, Clone)]
pub(crate) struct ConfigTarget {
    /// The query broker.
    #[arg(long, env = "LOUPE_BROKER", default_value = loupe_vizier::cluster::DEFAULT_BROKER_ADDR)]
    broker: String,
    #[command(flatten)]
    token: TokenArgs,
}

/// `loupe vizier config set`.
#[derive(Args, Clone)]
pub(crate) struct ConfigSetArgs {
    #[command(flatten)]
    target: ConfigTarget,
    /// A table's byte budget on every PEM, TABLE=MIB (repeatable); TABLE=default gives it back the budget of
    /// the PEM's own flags. A smaller budget evicts the oldest rows at once; the budgets of one PEM may not
    /// add up to more than its flags gave its store.
    #[arg(long = "table-budget", value_name = "TABLE=MIB")]
    table_budgets: Vec<String>,
    /// Fraction of new connections traced, from 0 to 1 (`default`: all).
    #[arg(long, value_name = "FRACTION")]
    sampling: Option<String>,
    /// Turn a protocol's parsing on or off, NAME=on|off (repeatable; names as --protocol-port takes them:
    /// http, http2, grpc, mysql, cql, pgsql, dns, redis, nats, mongodb, kafka, amqp, mqtt). Connections
    /// already open stop producing rows too.
    #[arg(long = "protocol", value_name = "NAME=on|off")]
    protocols: Vec<String>,
    /// Start from an empty configuration instead of the one in force.
    #[arg(long)]
    reset: bool,
}

/// The configuration as `config get` prints it.
fn config_json(c: &AgentConfig) -> serde_json::Value {
    let mut budgets: Vec<(&String, &u64)> = c.table_budget_bytes.iter().collect();
    budgets.sort();
    let mut protocols: Vec<(&String, &bool)> = c.protocols.iter().collect();
    protocols.sort();
    let retention: std::collections::BTreeMap<&String, serde_json::Value> = c
        .history_retention
        .iter()
        .map(|(t, r)| (t, serde_json::json!({ "max_age_s": r.max_age_s, "max_bytes": r.max_bytes })))
        .collect();
    serde_json::json!({
        "version": c.version,
        "table_budget_mib": budgets.into_iter().map(|(t, b)| (t.clone(), serde_json::json!(*b as f64 / (1u64 << 20) as f64))).collect::<serde_json::Map<_, _>>(),
        "sampling": c.sampling,
        "protocols": protocols.into_iter().map(|(p, on)| (p.clone(), serde_json::json!(if *on { "on" } else { "off" }))).collect::<serde_json::Map<_, _>>(),
        // Set by the cloud (`px retention`), kept by `config set`.
        "history_retention": retention,
    })
}

/// `config set`'s flags applied to `config`.
fn edit_config(mut config: AgentConfig, args: &ConfigSetArgs) -> Result<AgentConfig> {
    if args.reset {
        config = AgentConfig::default();
    }
    for entry in &args.table_budgets {
        let (table, mib) =
            entry.split_once('=').with_context(|| format!("--table-budget takes TABLE=MIB, got `{entry}`"))?;
        if mib.trim() == "default" {
            config.table_budget_bytes.remove(table.trim());
            continue;
        }
        let mib: f64 = mib.trim().parse().with_context(|| format!("--table-budget {entry}: not a number of MiB"))?;
        if !(mib.is_finite() && mib > 0.0) {
            bail!("--table-budget {entry}: the budget must be a positive number of MiB");
        }
        config.table_budget_bytes.insert(table.trim().to_string(), (mib * f64::from(1u32 << 20)) as u64);
    }
    if let Some(s) = &args.sampling {
        config.sampling = match s.trim() {
            "default" => None,
            s => Some(s.parse().with_context(|| format!("--sampling takes a fraction from 0 to 1, got `{s}`"))?),
        };
    }
    let mut switches: HashMap<String, bool> = config.protocols.clone();
    for entry in &args.protocols {
        let (name, state) =
            entry.split_once('=').with_context(|| format!("--protocol takes NAME=on|off, got `{entry}`"))?;
        let on = match state.trim() {
            "on" | "true" => true,
            "off" | "false" => false,
            other => bail!("--protocol {name}: `{other}` is not on or off"),
        };
        let name = name.trim().to_ascii_lowercase();
        // On is what an absent protocol is: keep the configuration to what differs.
        if on {
            switches.remove(&name);
        } else {
            switches.insert(name, false);
        }
    }
    config.protocols = switches;
    Ok(config)
}

/// `loupe vizier config get|set`: prints the configuration in force after the command.
pub(crate) async fn run_config(command: ConfigCommand) -> Result<()> {
    let (target, set) = match &command {
        ConfigCommand::Get(t) => (t, None),
        ConfigCommand::Set(args) => (&args.target, Some(args)),
    };
    let token = target.token.load()?;
    let mut client = loupe_vizier::cluster::broker_client(&target.broker, &token).map_err(anyhow::Error::msg)?;
    let current = client
        .get_config(GetConfigRequest {})
        .await
        .with_context(|| format!("reading the agent configuration from the broker at {}", target.broker))?
        .into_inner();
    let now = match set {
        None => current,
        Some(args) => {
            let expected_version = current.version;
            let config = edit_config(current, args)?;
            let request = SetConfigRequest { config: Some(config), expected_version };
            match client.set_config(request).await {
                Ok(r) => r.into_inner(),
                Err(status) => bail!("the broker refused the configuration: {}", status.message()),
            }
        }
    };
    println!("{}", serde_json::to_string_pretty(&config_json(&now))?);
    Ok(())
}

pub(crate) async fn run_broker(args: BrokerArgs, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
    let token = args.token.load()?;
    let limits = ExecOptions {
        max_output_rows: args.max_output_rows,
        timeout: Some(args.query_timeout),
        memory_limit_bytes: Some(args.query_memory_mb.saturating_mul(1 << 20)),
    };
    let config_file =
        args.agent_config_file.clone().unwrap_or_else(|| args.token.data_dir.join("vizier-agent-config.pb"));
    let config = loupe_vizier::agent_config::ConfigHolder::load(config_file.clone())
        .with_context(|| format!("reading the agent configuration ({})", config_file.display()))?;
    let mut broker =
        loupe_vizier::cluster::Broker::new(limits, token.clone(), args.heartbeat.max(Duration::from_millis(100)))
            .with_config(config)
            .with_metadata(args.metadata.follow()?);
    if let Some(history) = args.history.open(None, "broker")? {
        let found = history.load_result_tables().await.context("reading the cron result tables in history")?;
        tracing::info!(history = ?history, result_tables = found, "keeping cron scripts' results in history");
        broker = broker.with_history(history);
    }
    let upkeep = broker.spawn_history_upkeep(args.history.sweep_interval());
    let listener = crate::bind(args.listen, "--listen").await?;
    let ops_listener = crate::bind(args.metrics_listen, "--metrics-listen").await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        metrics = %ops_listener.local_addr()?,
        config_version = broker.config().get().version,
        "query broker listening; every call needs the query token"
    );
    let for_metrics = broker.clone();
    let router = loupe_vizier::http::node_router(|| Ok(()), move || for_metrics.metrics_text());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ops = tokio::spawn(loupe_cloud::serve_router(ops_listener, router, crate::cloud::stopped(&stop_rx)));
    let served = loupe_vizier::cluster::serve_broker(listener, broker, token, shutdown).await;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
    let _ = stop_tx.send(true);
    ops.await??;
    served?;
    Ok(())
}

pub(crate) async fn run_kelvin(args: KelvinArgs, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
    let token = args.token.load()?;
    let limits = ExecOptions {
        max_output_rows: args.max_output_rows,
        timeout: Some(args.query_timeout),
        memory_limit_bytes: Some(args.query_memory_mb.saturating_mul(1 << 20)),
    };
    let listener = crate::bind(args.listen, "--listen").await?;
    let addr = listener.local_addr()?;
    let advertise = args.advertise.unwrap_or_else(|| addr.to_string());
    let ops_listener = crate::bind(args.metrics_listen, "--metrics-listen").await?;
    tracing::info!(%addr, metrics = %ops_listener.local_addr()?, broker = %args.broker, "kelvin listening; every call needs the query token");
    let metadata = args.metadata.follow()?;
    let link = std::sync::Arc::new(loupe_vizier::cluster::LinkState::default());
    let (ready, metrics) = (std::sync::Arc::clone(&link), std::sync::Arc::clone(&link));
    let router = loupe_vizier::http::node_router(move || ready.readiness(), move || metrics.metrics_text());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ops = tokio::spawn(loupe_cloud::serve_router(ops_listener, router, crate::cloud::stopped(&stop_rx)));
    let served = loupe_vizier::cluster::serve_kelvin(
        listener,
        loupe_vizier::cluster::KelvinConfig { limits, token, broker: args.broker, advertise, link, metadata },
        shutdown,
    )
    .await;
    let _ = stop_tx.send(true);
    ops.await??;
    served?;
    Ok(())
}
