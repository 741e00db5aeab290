//! The PEM: one node's agent. Store + collector, a query port that demands the query token, and the
//! operational routes (`/healthz`, `/readyz`, `/metrics`) for a separate listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use loupe_collector::{Collector, CollectorConfig};
use loupe_engine::{Engine, ExecOptions};
use loupe_proto::vizierpb::vizier_service_server::VizierServiceServer;
use loupe_store::{Store, StoreConfig};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;

use crate::health::ProbeReport;
use crate::http::PemOps;
use crate::query_auth::{QueryToken, RequireToken};
use crate::query_service::QueryService;

/// Errors running the PEM.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The tracer could not start.
    #[error(transparent)]
    Collector(#[from] loupe_collector::CollectorError),
    /// The query port failed.
    #[error("query endpoint failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// PEM settings.
#[derive(Debug, Clone)]
pub struct PemConfig {
    /// Table budgets.
    pub store: StoreConfig,
    /// Tracing settings; `None` serves queries without tracing (a store filled by other means).
    pub collector: Option<CollectorConfig>,
    /// Every query's limits: row cap, time limit, memory pool.
    pub limits: ExecOptions,
}

impl Default for PemConfig {
    fn default() -> Self {
        PemConfig {
            store: StoreConfig::default(),
            collector: Some(CollectorConfig::default()),
            limits: ExecOptions::default(),
        }
    }
}

/// A started PEM: tracing runs. Serve its queries with [`Pem::serve`] (the token-protected port)
/// or mount [`Pem::query_service`] behind another credential check; dropping it stops tracing.
pub struct Pem {
    store: Arc<Store>,
    collector: Option<Collector>,
    limits: ExecOptions,
    probes: ProbeReport,
}

impl Pem {
    /// Creates the store and starts the collector (if configured).
    pub fn start(config: PemConfig) -> Result<Pem, PemError> {
        let store = Arc::new(Store::new(config.store.clone()));
        for spec in loupe_schema::all_tables() {
            // Registering can only fail for a schema without `time_`, which a test rules out.
            if let Err(error) = store.register(&spec) {
                tracing::error!(%error, table = spec.name, "table not registered");
            }
        }
        let (collector, probes) = match config.collector {
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
                let probes = ProbeReport::tracing(collector.probes());
                (Some(collector), probes)
            }
            None => (None, ProbeReport::not_tracing()),
        };
        Ok(Pem { store, collector, limits: config.limits, probes })
    }

    /// The node's store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Which probes attached.
    pub fn probes(&self) -> &ProbeReport {
        &self.probes
    }

    /// The query API over this node's store, as a gRPC service WITHOUT any credential check: mount
    /// it only behind one (`loupe up` mounts it on the cloud API's port behind `require_user`).
    pub fn query_service(&self) -> VizierServiceServer<QueryService> {
        let engine = Arc::new(Engine::new(self.store.clone()));
        VizierServiceServer::new(QueryService::new(engine, self.limits, self.probes.clone()))
            .max_decoding_message_size(2 << 20)
            .max_encoding_message_size(64 << 20)
    }

    /// What the operational listener serves: metrics and readiness of this agent.
    pub fn ops(&self) -> PemOps {
        PemOps::new(self.store.clone(), self.collector.as_ref().map(Collector::shared_counters), self.probes.clone())
    }

    /// Serves queries on `listener` until `shutdown` resolves. Every call must carry `token`; the port
    /// serves nothing else (other paths answer 404). Tracing stops when this returns.
    pub async fn serve(
        self,
        listener: TcpListener,
        token: QueryToken,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), PemError> {
        let svc = InterceptedService::new(self.query_service(), RequireToken(token));
        let base = Router::new().fallback(|| async { StatusCode::NOT_FOUND });
        let routes = tonic::service::Routes::from(base).add_service(svc);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .accept_http1(true)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await?;
        drop(self.collector);
        Ok(())
    }
}

/// The address a PEM's query port listens on unless told otherwise (Pixie's query broker uses 50300).
pub const DEFAULT_QUERY_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 50300);
