//! The history flags of every agent (`loupe up`, `loupe vizier pem|up`) and their wiring to the PEM: where
//! history goes, which tables, how often, how long it is kept.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use loupe_history::{History, HistoryConfig, Retention, WriterConfig};
use loupe_vizier::Pem;

/// The tables written by default: request tables and the per-process and per-connection statistics.
const DEFAULT_TABLES: &str =
    "http_events,dns_events,pgsql_events,mysql_events,redis_events,conn_stats,process_stats,network_stats";

#[derive(Args, Clone, Debug)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    place: HistoryPlace,
    /// Keep no history (`loupe up` otherwise keeps it under its data directory).
    #[arg(long, env = "LOUPE_NO_HISTORY", value_parser = clap::builder::BoolishValueParser::new())]
    no_history: bool,
    /// Tables written to history, comma-separated, or `all`.
    #[arg(long, env = "LOUPE_HISTORY_TABLES", default_value = DEFAULT_TABLES)]
    history_tables: String,
    /// How often new rows are written (1s to 1h).
    #[arg(long, env = "LOUPE_HISTORY_FLUSH_INTERVAL", default_value = "60s", value_parser = humantime::parse_duration)]
    history_flush_interval: Duration,
}

/// Where an agent's history lives, whose it is and how long it is kept: every agent's flags, the query
/// broker's too (it keeps cron scripts' results for its cluster).
#[derive(Args, Clone, Debug)]
pub(crate) struct HistoryPlace {
    /// Keep history (Parquet, `<table>/org=…/vizier=…/hour=…/`) in this directory (0700; segments 0600).
    /// Queries then read it under memory, across restarts. `loupe up` defaults to <data-dir>/history.
    #[arg(long, env = "LOUPE_HISTORY_DIR", conflicts_with = "history_url")]
    history_dir: Option<PathBuf>,
    /// Keep history in S3-compatible object storage instead: s3://bucket/prefix, with the AWS_* variables
    /// (AWS_ENDPOINT_URL for a server other than AWS, AWS_ALLOW_HTTP=true for plain http).
    #[arg(long, env = "LOUPE_HISTORY_URL")]
    history_url: Option<String>,
    /// How often retention is enforced: segments past a table's age or bytes are deleted (1s to 1d).
    #[arg(long, env = "LOUPE_HISTORY_SWEEP_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    history_sweep_interval: Duration,
    /// Each table's history is kept this long by default (1m to 400d); `px retention set` overrides it per table.
    #[arg(long, env = "LOUPE_HISTORY_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    history_max_age: Duration,
    /// Each table's history is kept within this many MiB by default (oldest segments go first).
    #[arg(long, env = "LOUPE_HISTORY_MAX_MB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=16 << 20))]
    history_max_mb: u64,
    /// The org partition of this agent's history (`org=`).
    #[arg(long, env = "LOUPE_HISTORY_ORG", default_value = "default")]
    history_org: String,
    /// The vizier partition of this agent's history (`vizier=`; default: the host name).
    #[arg(long, env = "LOUPE_HISTORY_VIZIER")]
    history_vizier: Option<String>,
    /// Whose segments these are: an agent reads back only its own, so it must stay the same across restarts
    /// (on Kubernetes, the node's name; a pod's host name changes). Default: the host name for a node agent,
    /// `broker` for the query broker.
    #[arg(long, env = "LOUPE_HISTORY_WRITER")]
    history_writer: Option<String>,
}

/// A host name reduced to the characters the layout allows.
fn host_label() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let label: String = host
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .take(64)
        .collect();
    if label.is_empty() { "host".into() } else { label }
}

impl HistoryPlace {
    /// Opens the history these flags name (`default_dir` when none does), with its default retention; `None`
    /// when there is no place. `default_writer` names this agent's segments unless `--history-writer` does.
    pub(crate) fn open(&self, default_dir: Option<PathBuf>, default_writer: &str) -> Result<Option<Arc<History>>> {
        let location = match (&self.history_url, self.history_dir.clone().or(default_dir)) {
            (Some(url), _) => url.clone(),
            (None, Some(dir)) => dir.display().to_string(),
            (None, None) => return Ok(None),
        };
        let config = HistoryConfig {
            location,
            org: self.history_org.clone(),
            vizier: self.history_vizier.clone().unwrap_or_else(host_label),
            writer: self.history_writer.clone().unwrap_or_else(|| default_writer.to_string()),
            max_read_bytes: HistoryConfig::DEFAULT_MAX_READ_BYTES,
            s3_options: Vec::new(),
        };
        let history = History::open(&config).context("failed to open history")?;
        history
            .set_default_retention(Retention { max_age: self.history_max_age, max_bytes: self.history_max_mb << 20 });
        Ok(Some(Arc::new(history)))
    }

    /// How often retention is enforced.
    pub(crate) fn sweep_interval(&self) -> Duration {
        self.history_sweep_interval
    }
}

/// Starts `pem`'s history as `args` say; `default_dir` is where it goes when no flag names a place (`loupe up`).
pub(crate) fn attach(pem: &mut Pem, args: &HistoryArgs, default_dir: Option<PathBuf>) -> Result<()> {
    if args.no_history {
        return Ok(());
    }
    let Some(history) = args.place.open(default_dir, &host_label())? else { return Ok(()) };
    let tables: Vec<String> = if args.history_tables.trim() == "all" {
        pem.store().tables().iter().map(|t| t.name().to_string()).collect()
    } else {
        args.history_tables.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect()
    };
    for t in &tables {
        anyhow::ensure!(pem.store().table(t).is_some(), "--history-tables: no table `{t}`");
    }
    let writer = WriterConfig {
        tables,
        flush_interval: args.history_flush_interval,
        sweep_interval: args.place.history_sweep_interval,
    };
    pem.start_history(history, writer).context("failed to start the history writer")?;
    Ok(())
}
