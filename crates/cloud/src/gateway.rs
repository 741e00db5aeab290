//! The API gateway: what the public port runs. It holds no business rules and no database; every REST call
//! becomes a call of a generated client (`ServiceClients`), and every public gRPC call to a cloud service is
//! forwarded as is to the service process that owns it.
//!
//! Owns what crosses from the edge to a service: the credential headers, the request id and the end client's
//! address (`CLIENT_IP_METADATA`, always set here and never taken from the client unless
//! `CloudConfig::trust_forwarded_for`). Must not decide anything a service decides.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use loupe_proto::cloudpb;
use tower::{Service, ServiceExt as _};

use crate::caller::{API_KEY_HEADER, DEPLOY_KEY_HEADER};
use crate::clients::ServiceClients;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::middleware::REQUEST_ID_HEADER;
use crate::services::{CLIENT_IP_METADATA, CloudServices, ServiceKind};
use crate::state::{CloudConfig, CloudState};

/// What the REST handlers and the gRPC forwarding share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The services, in process or remote.
    pub clients: ServiceClients,
    /// Settings (body limit, whether to trust `X-Forwarded-For`).
    pub config: Arc<CloudConfig>,
    /// Request counters served at `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
}

impl Gateway {
    /// A gateway in front of remote services.
    pub fn new(clients: ServiceClients, config: CloudConfig) -> Self {
        Self { clients, config: Arc::new(config), metrics: Arc::new(Metrics::default()) }
    }

    /// Checks the caller named by `context` with `AuthService.Me`: a refused credential keeps the auth service's
    /// answer, and a pending password change is refused unless `pending_allowed`.
    pub(crate) async fn check_caller(&self, context: &CallContext, pending_allowed: bool) -> Result<(), ApiError> {
        let me = self.clients.auth().me(context.request(cloudpb::Empty {})).await?.into_inner();
        if me.must_change_password && !pending_allowed {
            return Err(ApiError::password_change_required());
        }
        Ok(())
    }

    /// A gateway whose services run in this process on `state`; they share its settings and metrics.
    pub fn in_process(state: &CloudState) -> Self {
        let clients = ServiceClients::in_process(&CloudServices::new(state.clone()));
        Self { clients, config: Arc::clone(&state.config), metrics: Arc::clone(&state.metrics) }
    }
}

/// The end client's address for login throttling: the TCP peer, or the first `X-Forwarded-For` hop when
/// `CloudConfig::trust_forwarded_for` is set. Unknown (in-process tests) counts as `0.0.0.0`.
fn client_ip(parts_headers: &HeaderMap, peer: Option<SocketAddr>, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = parts_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip;
    }
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip())
}

/// The headers a service call carries from a REST request: credentials, request id, client address.
#[derive(Debug, Clone)]
pub struct CallContext {
    metadata: HeaderMap,
}

impl CallContext {
    /// A service request carrying this context.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(self.metadata.clone());
        request
    }
}

impl FromRequestParts<Gateway> for CallContext {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, gateway: &Gateway) -> Result<Self, Infallible> {
        let mut metadata = HeaderMap::new();
        let forwarded = [
            header::AUTHORIZATION,
            header::HeaderName::from_static(API_KEY_HEADER),
            header::HeaderName::from_static(DEPLOY_KEY_HEADER),
            REQUEST_ID_HEADER,
        ];
        for name in forwarded {
            if let Some(value) = parts.headers.get(&name) {
                metadata.insert(name, value.clone());
            }
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
        let ip = client_ip(&parts.headers, peer, gateway.config.trust_forwarded_for);
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            metadata.insert(CLIENT_IP_METADATA, value);
        }
        Ok(CallContext { metadata })
    }
}

/// Forwards public gRPC calls of one service kind to its channel, stamping the end client's address.
pub(crate) fn grpc_forward(
    gateway: &Gateway,
    kind: ServiceKind,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    let channel = gateway.clients.channel(kind);
    let trust_forwarded_for = gateway.config.trust_forwarded_for;
    tower::service_fn(move |request: Request| {
        let (mut parts, body) = request.into_parts();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
        let ip = client_ip(&parts.headers, peer, trust_forwarded_for);
        parts.headers.remove(CLIENT_IP_METADATA);
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            parts.headers.insert(CLIENT_IP_METADATA, value);
        }
        let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
        let channel = channel.clone();
        async move {
            Ok(match channel.oneshot(request).await {
                Ok(response) => response.map(axum::body::Body::new),
                // The channel already named the service and logged where it was looked for; its status says so.
                Err(err) => tonic::Status::from_error(Box::new(err)).into_http(),
            })
        }
    })
}

/// `inner`, a gRPC service, behind a credential check: every call must carry a user credential (a session
/// token with no password change pending, or an API key), checked by `Gateway::check_caller`. Used for the
/// query API (`px.api.vizierpb.VizierService`) that `loupe up` mounts on the cloud's port.
pub fn require_user<S, B>(
    gateway: Gateway,
    inner: S,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
where
    S: Service<Request, Response = http::Response<B>, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    tower::service_fn(move |request: Request| {
        let (gateway, inner) = (gateway.clone(), inner.clone());
        async move {
            let (mut parts, body) = request.into_parts();
            let Ok(context) = CallContext::from_request_parts(&mut parts, &gateway).await;
            if let Err(refused) = gateway.check_caller(&context, false).await {
                return Ok(tonic::Status::from(refused).into_http());
            }
            let Ok(response) = inner.oneshot(Request::from_parts(parts, body)).await;
            Ok(response.map(axum::body::Body::new))
        }
    })
}
