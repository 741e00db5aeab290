//! The routers: `gateway_app(gateway)` is the public port of `loupe cloud api`, `app(state)` the same with every
//! service in process (`loupe up`, the tests), and `ops_app` the operational listener (`/healthz`, `/readyz`,
//! `/metrics`) that every cloud process serves apart from its public port.
//!
//! Owns the assembly: the REST routes (declared in `api`), the public gRPC services next to them, the
//! fallbacks, body limit and request middleware, and the operational endpoints. Must not hold REST handlers
//! or route declarations, and must not put an operational route on a public router: probes and scrapers need
//! no credential, so those routes live only where `--metrics-listen` binds them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use loupe_proto::cloudpb;

use crate::api;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{Gateway, grpc_forward};
use crate::services::ServiceKind;
use crate::state::CloudState;

/// The API server with every service in process on `state`: what `loupe up` and the tests serve.
pub fn app(state: CloudState) -> Router {
    gateway_app(Gateway::in_process(&state))
}

/// The API gateway's router: the REST routes of `api` (JSON errors for unknown routes and methods, a body
/// limit of `config.max_body_bytes`, 413 beyond) and the public gRPC services (`/loupe.cloud.v1.*`, forwarded
/// to the process that owns each), all behind the request middleware (request id, span, metrics).
pub fn gateway_app(gateway: Gateway) -> Router {
    assemble(gateway, None)
}

/// [`gateway_app`] plus the query API (`loupe.vizier.v1.VizierService`, see `query`), which runs scripts on the
/// caller's viziers through `passthrough` (`None`: the process has no bus, and queries are refused saying so), as
/// `POST /api/v1/query` for browsers (`api::rows`) does here; without it, that route refuses queries.
pub fn gateway_app_with_queries(gateway: Gateway, passthrough: Option<loupe_vzconn::Passthrough>) -> Router {
    assemble(gateway, Some(passthrough))
}

fn assemble(gateway: Gateway, queries: Option<Option<loupe_vzconn::Passthrough>>) -> Router {
    // `POST /api/v1/query` (`api::rows`, declared with the REST routes) runs scripts through this passthrough;
    // where the process has none, queries are refused saying so.
    let rows = crate::query::QueryPassthrough::new(gateway.clone(), queries.clone().flatten());
    let mut router = api::router().layer(axum::Extension(rows));
    if let Some(passthrough) = queries {
        let path = format!("{}/{{*method}}", loupe_proto::VIZIER_SERVICE_PATH);
        router = router.route_service(&path, crate::query::service(gateway.clone(), passthrough));
    }
    for kind in ServiceKind::ALL {
        for service in kind.grpc_services() {
            router = router.route_service(&format!("/{service}/{{*method}}"), grpc_forward(&gateway, kind));
        }
    }
    // Pixie's services Loupe does not serve answer as gRPC does for an unknown method, with a message.
    for service in crate::services::pixie::UNSERVED_SERVICES {
        router = router.route_service(
            &format!("/{service}/{{*method}}"),
            tower::service_fn(|request: axum::extract::Request| async move {
                Ok::<_, std::convert::Infallible>(
                    crate::services::pixie::unserved(request.uri().path()).into_http::<axum::body::Body>(),
                )
            }),
        );
    }
    router
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(gateway.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), crate::gateway::middleware::track_request))
        .with_state(gateway)
}

/// The router of one service process (`loupe cloud auth|profile|scripts`): its gRPC services only; its health
/// and metrics are on its `ops_app`.
pub fn service_app(state: CloudState, kind: ServiceKind) -> Router {
    crate::services::CloudServices::new(state).router(kind)
}

/// A component sharing the API's process (the node agent under `loupe up`): the operational listener answers
/// for it too.
pub trait Colocated: Send + Sync + 'static {
    /// Its Prometheus text, appended to the API's.
    fn metrics_text(&self) -> String;
    /// `Ok` when it is ready, else why not.
    fn readiness(&self) -> Result<(), String>;
}

#[derive(Clone)]
struct Ops {
    gateway: Gateway,
    colocated: Option<Arc<dyn Colocated>>,
}

/// The operational listener of a cloud process: `GET /healthz` (the process is up), `/readyz` (every service
/// reaches its metastore, and `colocated` is ready; 503 naming what is not) and `/metrics` (Prometheus text of
/// `gateway`'s counters, then `colocated`'s). No credential: bind it where only probes and scrapers reach it.
pub fn ops_app(gateway: Gateway, colocated: Option<Arc<dyn Colocated>>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(api::not_found)
        .with_state(Ops { gateway, colocated })
}

/// `GET /healthz`: the process is up.
async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Every service answers and reaches its metastore.
async fn services_ready(gateway: &Gateway) -> ApiResult<serde_json::Value> {
    let mut services = serde_json::Map::new();
    for kind in ServiceKind::ALL {
        let ready = gateway.clients.health(kind).ready(cloudpb::Empty {}).await.map_err(|status| {
            ApiError::unavailable(format!("the {} service is not ready: {}", kind.name(), status.message()))
        })?;
        services.insert(kind.name().to_owned(), ready.into_inner().metastore.into());
    }
    let metastore = services.values().next().cloned().unwrap_or_default();
    Ok(serde_json::json!({ "status": "ok", "metastore": metastore, "services": services }))
}

async fn readyz(State(ops): State<Ops>) -> ApiResult<axum::Json<serde_json::Value>> {
    if let Some(Err(why)) = ops.colocated.as_ref().map(|c| c.readiness()) {
        return Err(ApiError::unavailable(format!("the node agent is not ready: {why}")));
    }
    let mut ready = services_ready(&ops.gateway).await?;
    if ops.colocated.is_some() {
        ready["agent"] = "ok".into();
    }
    Ok(axum::Json(ready))
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let mut text = ops.gateway.metrics.render();
    if let Some(c) = &ops.colocated {
        text.push_str(&c.metrics_text());
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, with peer addresses available for login
/// throttling. What `loupe up` and `loupe cloud api` call.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: CloudState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, app(state), shutdown).await
}

/// Serves a router built on `app(state)` (with more routes mounted, e.g. gRPC) the same way: HTTP/1 and
/// HTTP/2 (h2c) on one port, peer addresses available for login throttling.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// How long a peer may take to finish the TLS handshake before its connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long open connections get to finish their requests once `shutdown` resolves.
const TLS_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves `router` over TLS with `tls` (a service's internal gRPC listener): every connection must complete a
/// handshake with it first, so a plain-HTTP client or one that does not trust the certificate gets no answer
/// (logged at debug: the client's problem, not this process's). Peer addresses are available as with
/// [`serve_router`]. On `shutdown`, stops accepting and lets open connections finish, for a bounded time.
pub async fn serve_router_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of descriptors and the like: keep serving the connections there are, try again shortly.
                Err(error) => {
                    tracing::warn!(%error, "failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set does not grow with every connection ever made.
        while connections.try_join_next().is_some() {}
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut stop = stop_rx.clone();
        connections.spawn(async move {
            let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = tower::ServiceExt::<axum::http::Request<hyper::body::Incoming>>::map_request(
                router,
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                    request
                },
            );
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                }
                _ = async { stop.wait_for(|stop| *stop).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    let _ = stop_tx.send(true);
    if tokio::time::timeout(TLS_DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain time; closing them");
        connections.abort_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    /// A colocated component with a fixed readiness, as `loupe up`'s agent reports one.
    struct Agent(Result<(), String>);

    impl Colocated for Agent {
        fn metrics_text(&self) -> String {
            "loupe_agent_test 1\n".into()
        }

        fn readiness(&self) -> Result<(), String> {
            self.0.clone()
        }
    }

    async fn get(router: Router, path: &str) -> (u16, String) {
        let answer = router.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("answer");
        let status = answer.status().as_u16();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_ops_listener_answers_for_the_api_and_its_colocated_agent() {
        let metastore = loupe_metastore::connect("sqlite::memory:").await.expect("metastore");
        let key = loupe_auth::SigningKey::generate().expect("key");
        let sessions: Arc<dyn loupe_auth::SessionCache> = Arc::new(loupe_auth::InMemorySessionCache::new());
        let state = CloudState::new(metastore, sessions, key, crate::CloudConfig::default());
        let gateway = Gateway::in_process(&state);

        let unready = Agent(Err("1 of 20 probes not attached: syscalls/sys_enter_read (gone)".into()));
        let ops = ops_app(gateway.clone(), Some(Arc::new(unready)));
        let (status, body) = get(ops.clone(), "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("the node agent is not ready: 1 of 20 probes not attached: syscalls/sys_enter_read"),
            "{body}"
        );
        assert_eq!(get(ops.clone(), "/healthz").await.0, 200);
        let (status, body) = get(ops, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("loupe_cloud_login_failures_total 0") && body.ends_with("loupe_agent_test 1\n"),
            "{body}"
        );

        let (status, body) = get(ops_app(gateway.clone(), Some(Arc::new(Agent(Ok(()))))), "/readyz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""agent":"ok""#) && body.contains(r#""metastore":"sqlite""#), "{body}");
        // The public router serves none of them.
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(get(gateway_app(gateway.clone()), path).await.0, 404, "{path}");
        }
    }
}
