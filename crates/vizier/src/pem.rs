//! The PEM: one node's agent. Store + collector + query endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use loupe_collector::{Collector, CollectorConfig};
use loupe_engine::Engine;
use loupe_proto::vizierpb::vizier_service_server::VizierServiceServer;
use loupe_store::{Store, StoreConfig};
use tokio::net::TcpListener;

use crate::query_service::QueryService;

/// Errors running the PEM.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The tracer could not start.
    #[error(transparent)]
    Collector(#[from] loupe_collector::CollectorError),
    /// The query endpoint could not bind.
    #[error("failed to listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("query endpoint failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// PEM settings.
#[derive(Debug, Clone)]
pub struct PemConfig {
    /// Where the query endpoint listens (Pixie's query broker uses port 50300).
    pub listen: SocketAddr,
    /// Table budgets.
    pub store: StoreConfig,
    /// Tracing settings; `None` serves queries without tracing (a store filled by other means).
    pub collector: Option<CollectorConfig>,
}

impl Default for PemConfig {
    fn default() -> Self {
        PemConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 50300)),
            store: StoreConfig::default(),
            collector: Some(CollectorConfig::default()),
        }
    }
}

/// A started PEM: tracing runs; call [`Pem::serve`] to answer queries.
pub struct Pem {
    store: Arc<Store>,
    collector: Option<Collector>,
    listener: TcpListener,
}

impl Pem {
    /// Starts the collector (if configured) and binds the query endpoint.
    pub async fn start(config: PemConfig) -> Result<Pem, PemError> {
        let store = Arc::new(Store::new(config.store.clone()));
        for spec in loupe_schema::all_tables() {
            // Registering can only fail for a schema without `time_`, which a test rules out.
            if let Err(error) = store.register(&spec) {
                tracing::error!(%error, table = spec.name, "table not registered");
            }
        }
        let collector = match config.collector {
            Some(c) => {
                let collector = Collector::start(store.clone(), c)?;
                for p in collector.probes() {
                    match &p.error {
                        None => tracing::debug!(probe = %p.name, "attached"),
                        Some(e) => tracing::warn!(probe = %p.name, error = %e, "probe not attached"),
                    }
                }
                let ok = collector.probes().iter().filter(|p| p.attached).count();
                tracing::info!(attached = ok, total = collector.probes().len(), "eBPF socket tracer running");
                Some(collector)
            }
            None => None,
        };
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| PemError::Bind { addr: config.listen, source })?;
        Ok(Pem { store, collector, listener })
    }

    /// The bound query address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The query API over this node's store, as a gRPC service (also mounted by `loupe up` on the
    /// cloud API's port, so one address serves REST and queries).
    pub fn query_service(&self) -> VizierServiceServer<QueryService> {
        let probes = self
            .collector
            .as_ref()
            .map(|c| {
                c.probes()
                    .iter()
                    .map(|p| match &p.error {
                        None => format!("{}: ok", p.name),
                        Some(e) => format!("{}: {e}", p.name),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let engine = Arc::new(Engine::new(self.store.clone()));
        VizierServiceServer::new(QueryService::new(engine, probes))
            .max_decoding_message_size(2 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// Serves queries until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send) -> Result<(), PemError> {
        let svc = self.query_service();
        // Plain HTTP routes for probes and scrapers share the gRPC port.
        let http = crate::http::router(self.store.clone(), self.collector.as_ref().map(Collector::shared_counters));
        let routes = tonic::service::Routes::from(http).add_service(svc);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener);
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        drop(self.collector);
        Ok(())
    }
}
