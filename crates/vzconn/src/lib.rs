//! The cloud's vizier-facing side (Pixie's VZConn and the connection half of vzmgr).
//!
//! - [`VzConn`]: the gRPC service viziers dial. `RegisterVizier` turns an org's deploy key into a vizier
//!   identity (id, name and a credential); `Bridge` is the one long-lived stream per vizier, whose messages are
//!   published on the bus as `v2c.<shard>.<vizier id>.<topic>` and which forwards `c2v.<vizier id>.>` down.
//! - [`VizierManager`]: consumes heartbeats from the bus (a queue group, so several replicas share them), records
//!   them in the metastore, and marks viziers without a recent heartbeat DISCONNECTED.
//! - [`Passthrough`]: how a cloud service runs a query on a vizier over the bus and reads its replies.
//! - [`CronService`]: sends each vizier its cron scripts and stores the results of their runs.
//!
//! Owns the vizier connection rules (who may register where, the credential, one bridge per vizier, limits).
//! Must not touch SQL or key hashing (the metastore's and auth's, reached only from `records`), nor the query
//! API's messages: queries and their replies are opaque bytes here.

mod bridge;
mod credential;
mod cron;
mod hex;
mod manager;
mod passthrough;
mod records;
mod register;
pub mod settings_key;
pub mod topic;

use std::sync::Arc;
use std::time::Duration;

use loupe_bus::Bus;
use loupe_metastore::Metastore;
use loupe_proto::vzconnpb::vz_conn_service_server::{VzConnService, VzConnServiceServer};
use loupe_proto::vzconnpb::{BridgeMessage, RegisterVizierRequest, RegisterVizierResponse};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, Streaming};

pub use crate::credential::CredentialKey;
pub use crate::cron::{
    CronConfig, CronPusher, CronService, EXPORT_DEFAULT_SETTING, RETENTION_SETTING, decode_export_default,
    decode_retention, encode_export_default, encode_retention, open_export_default, script_set,
};
pub use crate::manager::{ManagerConfig, ManagerStats, VizierManager, status_name};
pub use crate::passthrough::{Passthrough, PassthroughConfig, PassthroughError, ReplyStream, VIZIER_GRACE};
pub use crate::settings_key::{SettingsKey, SettingsKeyError};

/// Metadata keys of the deploy key on `RegisterVizier`, and of the vizier id and credential on `Bridge`.
pub use loupe_proto::headers::{
    DEPLOY_KEY as DEPLOY_KEY_METADATA, VIZIER_CREDENTIAL as VIZIER_CREDENTIAL_METADATA, VIZIER_ID as VIZIER_ID_METADATA,
};

/// `Result` with [`VzConnError`].
pub type Result<T, E = VzConnError> = std::result::Result<T, E>;

/// Why VZConn or the manager could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum VzConnError {
    /// The credential secret is too short to be a key.
    #[error("the vizier credential secret must be at least {min} bytes, got {got}")]
    WeakSecret {
        /// The minimum.
        min: usize,
        /// What was given.
        got: usize,
    },
    /// The bus refused a subscription the service needs.
    #[error("message bus: {0}")]
    Bus(#[from] loupe_bus::BusError),
    /// The gRPC server failed.
    #[error("vzconn endpoint failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// VZConn's settings. Only the secret has no default.
#[derive(Clone)]
pub struct VzConnConfig {
    /// The server secret vizier credentials are derived from (≥ 32 bytes; every replica needs the same one,
    /// and changing it invalidates every vizier's credential).
    pub credential_secret: Vec<u8>,
    /// Largest bridge message, either direction; it must fit a bus message with its envelope.
    pub max_message_bytes: usize,
    /// How long a new bridge may take to send its `register` message.
    pub handshake_timeout: Duration,
    /// Registrations handled at once; more wait up to `registration_wait`, then are refused.
    pub max_concurrent_registrations: usize,
    /// How long a registration waits for its turn.
    pub registration_wait: Duration,
    /// Failed registrations allowed per client address per minute; more are refused before any lookup.
    pub max_failed_registrations_per_minute: u32,
}

impl std::fmt::Debug for VzConnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VzConnConfig")
            .field("max_message_bytes", &self.max_message_bytes)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_concurrent_registrations", &self.max_concurrent_registrations)
            .finish_non_exhaustive()
    }
}

impl VzConnConfig {
    /// Defaults around `credential_secret`: 1,000,000-byte messages (a bus message is at most 1 MiB), a 30 s
    /// handshake (Pixie's), 16 registrations at once, 30 failed registrations per address per minute.
    pub fn new(credential_secret: Vec<u8>) -> Self {
        VzConnConfig {
            credential_secret,
            max_message_bytes: 1_000_000,
            handshake_timeout: Duration::from_secs(30),
            max_concurrent_registrations: 16,
            registration_wait: Duration::from_secs(5),
            max_failed_registrations_per_minute: 30,
        }
    }
}

/// The VZConn service. Clones share everything; mount [`VzConn::service`] on a tonic server or call
/// [`VzConn::serve`].
#[derive(Clone)]
pub struct VzConn {
    inner: Arc<Inner>,
}

struct Inner {
    records: records::Records,
    bus: Arc<dyn Bus>,
    key: CredentialKey,
    config: VzConnConfig,
    registrations: register::Limits,
    /// Flipped to true when the server stops, which ends every bridge (a long-lived stream would otherwise hold
    /// a graceful shutdown forever).
    closing: tokio::sync::watch::Sender<bool>,
}

impl VzConn {
    /// A service over `metastore` (deploy keys, vizier records) and `bus`.
    pub fn new(metastore: Arc<dyn Metastore>, bus: Arc<dyn Bus>, config: VzConnConfig) -> Result<Self> {
        let key = CredentialKey::new(&config.credential_secret)?;
        let registrations = register::Limits::new(&config);
        Ok(VzConn {
            inner: Arc::new(Inner {
                records: records::Records::new(metastore),
                bus,
                key,
                config,
                registrations,
                closing: tokio::sync::watch::channel(false).0,
            }),
        })
    }

    /// The gRPC service, with the message size limit applied both ways.
    pub fn service(&self) -> VzConnServiceServer<VzConn> {
        let limit = self.inner.config.max_message_bytes + 1024;
        VzConnServiceServer::new(self.clone()).max_decoding_message_size(limit).max_encoding_message_size(limit)
    }

    /// Ends every open bridge and refuses new ones from now on: the service is shutting down (its viziers
    /// reconnect, to another replica or to a new service once it is up).
    pub fn close_bridges(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Serves VZConn alone, in plaintext, on `listener` until `shutdown` resolves; then closes the bridges and
    /// drains.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        self.serve_with(tonic::transport::Server::builder(), listener, shutdown).await
    }

    /// As [`VzConn::serve`], over TLS with the certificate chain and private key given (PEM): what `loupe cloud
    /// vzconn` does with the cloud CA's server certificate.
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        cert_pem: &[u8],
        key_pem: &[u8],
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let identity = tonic::transport::Identity::from_pem(cert_pem, key_pem);
        let tls = tonic::transport::ServerTlsConfig::new().identity(identity).timeout(Duration::from_secs(10));
        let builder = tonic::transport::Server::builder().tls_config(tls)?;
        self.serve_with(builder, listener, shutdown).await
    }

    async fn serve_with(
        self,
        builder: tonic::transport::Server,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let this = self.clone();
        builder
            // Viziers behind NAT keep their one stream alive; a dead peer is noticed within a minute.
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                this.close_bridges();
            })
            .await?;
        Ok(())
    }
}

#[tonic::async_trait]
impl VzConnService for VzConn {
    async fn register_vizier(
        &self,
        request: Request<RegisterVizierRequest>,
    ) -> Result<Response<RegisterVizierResponse>, Status> {
        let peer = request.remote_addr().map(|a| a.ip());
        let deploy_key = request.metadata().get(DEPLOY_KEY_METADATA).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let answer = register::register(&self.inner, peer, deploy_key.as_deref(), request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type BridgeStream = bridge::OutboundStream;

    async fn bridge(&self, request: Request<Streaming<BridgeMessage>>) -> Result<Response<Self::BridgeStream>, Status> {
        let stream = bridge::open(Arc::clone(&self.inner), request).await?;
        Ok(Response::new(stream))
    }
}
