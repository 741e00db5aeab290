//! The vizier's cloud connector (Pixie's `vizier-cloud-connector`): registers the vizier with its org's deploy
//! key (or reuses the identity kept in its data dir), holds one bridge stream to the cloud's VZConn, sends a
//! heartbeat every 5 s, and answers passthrough queries by calling the vizier's own query service. When the
//! cloud or its bus goes away it reconnects by itself, with exponential backoff and jitter. It also runs the
//! org's cron scripts on schedule (`cron`), with or without the cloud link.
//!
//! Owns the vizier end of the VZConn protocol. Must not know the cloud's rules or storage (it speaks only
//! `loupe.vzconn.v1` and the query API from `loupe-proto`), and must not compile or execute scripts itself: the
//! vizier's query service does, for passthrough queries and cron runs alike.

mod backoff;
pub mod certs;
mod cron;
mod identity;
pub mod latest;
mod query;
mod session;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

pub use crate::backoff::Backoff;
pub use crate::cron::{RESULTS_FILE as CRON_RESULTS_FILE, SCRIPTS_FILE as CRON_SCRIPTS_FILE};
pub use crate::identity::{IDENTITY_FILE, Identity};
pub use crate::latest::LatestResults;
pub use crate::tls::cloud_url;

/// The topics and metadata keys of the VZConn protocol, as `loupe-proto` spells them for both ends.
pub mod wire {
    pub use loupe_proto::headers::{
        DEPLOY_KEY as DEPLOY_KEY_METADATA, VIZIER_CREDENTIAL as VIZIER_CREDENTIAL_METADATA,
        VIZIER_ID as VIZIER_ID_METADATA,
    };
    pub use loupe_proto::vzconn_topic::*;
}

/// Why the connector cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// Neither a deploy key nor a saved identity: there is no way to reach the cloud as anyone.
    #[error("no deploy key given and no saved identity in {0}: pass a deploy key (px deploy-key create)")]
    NoCredential(PathBuf),
    /// The data dir or identity file cannot be used.
    #[error("vizier identity in {path}: {source}")]
    Identity {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// An address that is not a URL.
    #[error("invalid {what} address {addr:?}: {reason}")]
    Address {
        /// Which address.
        what: &'static str,
        /// As given.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// The connector's settings.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// VZConn's address, `http://host:port`, or `https://host:port` for TLS (see [`cloud_url`]).
    pub cloud_addr: String,
    /// The CA certificates (PEM) to trust for an `https://` cloud; `None` trusts the system's roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// The org's deploy key (`px-dep-…`); optional once an identity is saved.
    pub deploy_key: Option<String>,
    /// Where the identity is kept (`vizier-identity.json`, 0600 in a 0700 directory).
    pub data_dir: PathBuf,
    /// The cluster's name, as the org will see it; empty for a generated one.
    pub cluster_name: String,
    /// The cluster's identity; empty to generate one once and keep it in the data dir.
    pub cluster_uid: String,
    /// The vizier's version.
    pub version: String,
    /// The vizier's query service, `http://host:port`.
    pub query_addr: String,
    /// A channel to the query service to use instead of dialing `query_addr` (which is then only reported):
    /// `loupe up` reaches its in-process query service in memory, without a port.
    pub query_channel: Option<tonic::transport::Channel>,
    /// The query service's token (metadata `loupe-vizier-token`).
    pub query_token: String,
    /// The address reported in heartbeats for the query endpoint, `host:port` (the cloud's DNS manager names
    /// the vizier after it); empty when unknown. Default: `query_addr`'s, unless its host is a wildcard.
    pub advertise_addr: String,
    /// Heartbeat period (Pixie: 5 s).
    pub heartbeat_interval: Duration,
    /// First reconnect delay; doubles per failure up to `backoff_max`, each with up to half of it as jitter.
    pub backoff_initial: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How long the cloud has to answer `register`.
    pub handshake_timeout: Duration,
    /// Queries run at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
    /// Largest bridge message (it must fit the cloud's limit).
    pub max_message_bytes: usize,
    /// How often a connected vizier asks for its cron scripts (changes made on another cloud replica arrive
    /// within this; those made in process are pushed at once).
    pub cron_request_interval: Duration,
    /// Cron results kept while the cloud has not acknowledged them (on disk); past it the oldest are dropped.
    pub cron_max_pending: usize,
    /// Where each cron script's newest rows are kept (share a clone to render them).
    pub latest_results: LatestResults,
}

impl ConnectorConfig {
    /// Defaults for the rest: 5 s heartbeats, reconnects from 1 s up to 60 s, 30 s handshake, 16 queries,
    /// 1,000,000-byte messages, cron requests every 30 s, 1,000 cron results kept.
    pub fn new(cloud_addr: impl Into<String>, data_dir: impl Into<PathBuf>, query_addr: impl Into<String>) -> Self {
        let query_addr = query_addr.into();
        ConnectorConfig {
            cloud_addr: cloud_addr.into(),
            ca_cert_pem: None,
            deploy_key: None,
            data_dir: data_dir.into(),
            cluster_name: String::new(),
            cluster_uid: String::new(),
            version: env!("CARGO_PKG_VERSION").into(),
            advertise_addr: default_advertise_addr(&query_addr),
            query_addr,
            query_channel: None,
            query_token: String::new(),
            heartbeat_interval: Duration::from_secs(5),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(30),
            max_concurrent_queries: 16,
            max_message_bytes: 1_000_000,
            cron_request_interval: Duration::from_secs(30),
            cron_max_pending: 1_000,
            latest_results: LatestResults::default(),
        }
    }
}

/// What the connector is doing, for logs, readiness and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorState {
    /// The vizier's id and name, once registered.
    pub vizier: Option<(String, String)>,
    /// Whether a bridge is open (registerAck received).
    pub connected: bool,
    /// Bridges opened so far.
    pub bridges_opened: u64,
    /// Heartbeats sent so far.
    pub heartbeats_sent: u64,
    /// Why the last attempt or bridge ended.
    pub last_error: Option<String>,
    /// Set when the cloud refused the deploy key or the saved identity (unauthenticated, permission denied,
    /// invalid): retrying cannot help until the key changes, so a process may choose to exit. Cleared by a
    /// registration that succeeds.
    pub refused: Option<String>,
    /// The names of the certificate the cloud's DNS manager last issued (kept in `<data dir>/tls`), the stable
    /// hostname first; empty until one arrives.
    pub dns_names: Vec<String>,
}

/// A running connector; dropping it stops it.
pub struct Connector {
    state: watch::Receiver<ConnectorState>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Connector {
    fn drop(&mut self) {
        self.stop.send_replace(true);
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Connector {
    /// Checks the configuration and the data dir, then connects in the background until stopped. Call it
    /// within a tokio runtime.
    pub fn start(config: ConnectorConfig) -> Result<Connector, ConnectorError> {
        let mut ident = identity::Store::open(&config.data_dir)?;
        if config.deploy_key.is_none() && ident.identity().vizier_id.is_empty() {
            return Err(ConnectorError::NoCredential(config.data_dir.clone()));
        }
        tls::endpoint(&config)?;
        tonic::transport::Endpoint::from_shared(config.query_addr.clone()).map_err(|e| ConnectorError::Address {
            what: "query",
            addr: config.query_addr.clone(),
            reason: e.to_string(),
        })?;
        ident.ensure_cluster_uid(&config.cluster_uid)?;
        let (state_tx, state) = watch::channel(ConnectorState::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(session::run(config, ident, state_tx, stopped));
        Ok(Connector { state, stop, task: Some(task) })
    }

    /// Watches the connector's state.
    pub fn state(&self) -> watch::Receiver<ConnectorState> {
        self.state.clone()
    }

    /// Stops: closes the bridge (queries in flight end) and waits for the background task.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// The `host:port` of a query address (`http://10.0.0.5:50300` → `10.0.0.5:50300`), or empty when the host is a
/// wildcard (`0.0.0.0`, `::`), which no client can dial.
pub fn default_advertise_addr(query_addr: &str) -> String {
    let rest = query_addr.split_once("://").map_or(query_addr, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
    if ip.is_ok_and(|ip| ip.is_unspecified()) { String::new() } else { authority.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_the_query_address_unless_a_wildcard() {
        assert_eq!(default_advertise_addr("http://10.0.0.5:50300"), "10.0.0.5:50300");
        assert_eq!(default_advertise_addr("http://[fd00::5]:50300/"), "[fd00::5]:50300");
        assert_eq!(default_advertise_addr("vizier.example.com:50300"), "vizier.example.com:50300");
        assert_eq!(default_advertise_addr("http://0.0.0.0:50300"), "");
        assert_eq!(default_advertise_addr("http://[::]:50300"), "");
    }
}
