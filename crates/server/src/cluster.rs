//! `loupe vizier broker` and `loupe vizier kelvin`: the query broker and the merge tier of a vizier of
//! many nodes (PEMs join with `loupe vizier pem --broker`). Flags and wiring only; the services are
//! `loupe_vizier::cluster`'s.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loupe_engine::ExecOptions;
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
}

pub(crate) async fn run_broker(args: BrokerArgs, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<()> {
    let token = args.token.load()?;
    let limits = ExecOptions {
        max_output_rows: args.max_output_rows,
        timeout: Some(args.query_timeout),
        memory_limit_bytes: Some(args.query_memory_mb.saturating_mul(1 << 20)),
    };
    let broker =
        loupe_vizier::cluster::Broker::new(limits, token.clone(), args.heartbeat.max(Duration::from_millis(100)));
    let listener = crate::bind(args.listen, "--listen").await?;
    tracing::info!(addr = %listener.local_addr()?, "query broker listening; every call needs the query token");
    loupe_vizier::cluster::serve_broker(listener, broker, token, shutdown).await?;
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
    tracing::info!(%addr, broker = %args.broker, "kelvin listening; every call needs the query token");
    loupe_vizier::cluster::serve_kelvin(listener, limits, token, args.broker, advertise, shutdown).await?;
    Ok(())
}
