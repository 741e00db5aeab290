//! The API gateway: what the public port runs. It holds no business rules and no database; every REST call
//! becomes a call of a generated client (`ServiceClients`), and every public gRPC call to a cloud service is
//! forwarded as is to the service process that owns it.
//!
//! Owns what crosses from the edge to a service: the credential headers, the request id, the end client's
//! address (`CLIENT_IP_METADATA`, always set here) and the gateway's own credential
//! (`GATEWAY_CREDENTIAL_METADATA`, which makes the services believe that address). Must not decide anything a
//! service decides: credentials are checked by the services (`services::caller`), the gateway only forwards
//! them (and asks the auth service when it must order its refusals). The request middleware (request ids,
//! spans, metrics) is in `middleware`.
//!
//! The end client's address is the TCP peer, unless the request provably came through a proxy: its peer is one
//! of `CloudConfig::trusted_proxies`, or it carries `loupe up`'s per-process proxy secret (its proxy reaches the
//! API over loopback, which any local process can reach too, so the peer address proves nothing there). Then the
//! client is the LAST `X-Forwarded-For` entry, the one that proxy appended; earlier entries are the client's own
//! claims.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use loupe_proto::cloudpb;
use tower::{Service, ServiceExt as _};

pub mod middleware;
pub mod pixie;

use self::middleware::REQUEST_ID_HEADER;
use crate::clients::{ServiceChannel, ServiceClients};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::services::caller::{API_KEY_HEADER, DEPLOY_KEY_HEADER};
use crate::services::{
    Access, CLIENT_IP_METADATA, CloudServices, GATEWAY_CREDENTIAL_METADATA, GatewayCredential, ServiceKind,
};
use crate::state::{CloudConfig, CloudState};

/// Header by which `loupe up`'s TLS proxy proves a request came through it (`CloudConfig::proxy_secret`). Never
/// passed on to a service.
pub const PROXY_SECRET_HEADER: &str = loupe_proto::headers::PROXY_SECRET;
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// What the REST handlers and the gRPC forwarding share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// The services, in process or remote.
    pub clients: ServiceClients,
    /// Settings (body limit, which proxies to trust).
    pub config: Arc<CloudConfig>,
    /// Request counters served at `/metrics`.
    pub(crate) metrics: Arc<Metrics>,
    /// What the gateway shows the services so they believe its `CLIENT_IP_METADATA`.
    credential: GatewayCredential,
}

impl Gateway {
    /// A gateway in front of remote services, proving itself to them with `credential` (derived from the signing
    /// key they share: `GatewayCredential::derive`).
    pub fn new(clients: ServiceClients, config: CloudConfig, credential: GatewayCredential) -> Self {
        Self { clients, config: Arc::new(config), metrics: Arc::new(Metrics::default()), credential }
    }

    /// Asks the auth service whether the caller named by `context` passes `access` (`AuthService.Me`, then
    /// `Access::admits`): a refused credential keeps the auth service's answer.
    pub(crate) async fn check_caller(&self, context: &CallContext, access: Access) -> Result<(), ApiError> {
        let me = self.clients.auth().me(context.request(cloudpb::Empty {})).await?.into_inner();
        access.admits(&me)
    }

    /// A gateway whose services run in this process on `state`; they share its settings and metrics.
    pub fn in_process(state: &CloudState) -> Self {
        let services = CloudServices::new(state.clone());
        let credential = services.gateway_credential().clone();
        let clients = ServiceClients::in_process(&services);
        Self { clients, config: Arc::clone(&state.config), metrics: Arc::clone(&state.metrics), credential }
    }

    /// Stamps what the services need to know about the edge onto `headers`: the end client's address and this
    /// gateway's credential, replacing whatever the client sent under those names; removes the proxy secret.
    fn stamp(&self, headers: &mut HeaderMap, client: IpAddr) {
        headers.remove(PROXY_SECRET_HEADER);
        headers.remove(CLIENT_IP_METADATA);
        headers.remove(GATEWAY_CREDENTIAL_METADATA);
        if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
            headers.insert(CLIENT_IP_METADATA, value);
        }
        if let Ok(value) = HeaderValue::from_str(self.credential.as_str()) {
            headers.insert(GATEWAY_CREDENTIAL_METADATA, value);
        }
    }
}

/// The end client's address for login throttling: the last `X-Forwarded-For` entry when the request came
/// through a trusted proxy (see the module doc), else the TCP peer. Unknown (in-process tests) is `0.0.0.0`.
fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, config: &CloudConfig) -> IpAddr {
    let peer = peer.map(|addr| addr.ip().to_canonical());
    let via_secret = config.proxy_secret.as_deref().is_some_and(|secret| {
        headers.get(PROXY_SECRET_HEADER).is_some_and(|v| loupe_auth::secrets_match(v.as_bytes(), secret.as_bytes()))
    });
    let via_peer = peer.is_some_and(|ip| config.trusted_proxies.iter().any(|net| net.contains(ip)));
    if (via_secret || via_peer)
        && let Some(ip) = last_forwarded_for(headers)
    {
        return ip;
    }
    peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The last entry of the last `X-Forwarded-For` header: the address the nearest proxy saw.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all(X_FORWARDED_FOR).iter().next_back()?.to_str().ok()?;
    last.rsplit(',').next()?.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
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
        gateway.stamp(&mut metadata, client_ip(&parts.headers, peer, &gateway.config));
        Ok(CallContext { metadata })
    }
}

/// Forwards public gRPC calls of one service kind to its channel, stamping the end client's address.
pub(crate) fn grpc_forward(
    gateway: &Gateway,
    kind: ServiceKind,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    let channel = gateway.clients.channel(kind);
    let gateway = gateway.clone();
    tower::service_fn(move |request: Request| {
        let (mut parts, body) = request.into_parts();
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr);
        let ip = client_ip(&parts.headers, peer, &gateway.config);
        gateway.stamp(&mut parts.headers, ip);
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

/// Forwards gRPC calls as they are to `channel`: for a service that checks its own callers and needs no
/// stamped client address (VZConn, whose viziers present deploy keys and credentials). Long-lived streams pass
/// through, as nothing here times a call out.
pub fn grpc_forward_to(
    channel: ServiceChannel,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    tower::service_fn(move |request: Request| {
        let (mut parts, body) = request.into_parts();
        parts.headers.remove(PROXY_SECRET_HEADER);
        let request = http::Request::from_parts(parts, tonic::body::Body::new(body));
        let channel = channel.clone();
        async move {
            Ok(match channel.oneshot(request).await {
                Ok(response) => response.map(axum::body::Body::new),
                Err(err) => tonic::Status::from_error(Box::new(err)).into_http(),
            })
        }
    })
}

/// `inner`, a gRPC service, behind a credential check: every call must carry a user credential (a session
/// token with no password change pending, or an API key), checked by `Gateway::check_caller`. Used for the
/// query API (`loupe.vizier.v1.VizierService`) that `loupe up` mounts on the cloud's port.
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
            if let Err(refused) = gateway.check_caller(&context, Access::User).await {
                return Ok(tonic::Status::from(refused).into_http());
            }
            parts.headers.remove(PROXY_SECRET_HEADER);
            let Ok(response) = inner.oneshot(Request::from_parts(parts, body)).await;
            Ok(response.map(axum::body::Body::new))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TrustedProxy;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    fn config(proxies: &[&str], secret: Option<&str>) -> CloudConfig {
        CloudConfig {
            trusted_proxies: proxies.iter().map(|p| p.parse().expect("proxy")).collect(),
            proxy_secret: secret.map(str::to_owned),
            ..CloudConfig::default()
        }
    }

    const PEER: &str = "10.1.2.3:5555";

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_from_an_untrusted_peer_is_ignored() {
        let peer = Some(PEER.parse().expect("peer"));
        let spoofed = headers(&[(X_FORWARDED_FOR, "203.0.113.9")]);
        assert_eq!(client_ip(&spoofed, peer, &config(&[], None)), ip("10.1.2.3"));
        assert_eq!(client_ip(&spoofed, peer, &config(&["10.9.0.0/16"], None)), ip("10.1.2.3"));
        // A wrong or absent proxy secret proves nothing either.
        let wrong = headers(&[(X_FORWARDED_FOR, "203.0.113.9"), (PROXY_SECRET_HEADER, "guess")]);
        assert_eq!(client_ip(&wrong, peer, &config(&[], Some("the-secret"))), ip("10.1.2.3"));
        assert_eq!(client_ip(&spoofed, peer, &config(&[], Some("the-secret"))), ip("10.1.2.3"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client_in_the_last_entry() {
        let peer = Some(PEER.parse().expect("peer"));
        // The client sent `X-Forwarded-For: 198.51.100.1`; the proxy appended the address it saw.
        let chain = headers(&[(X_FORWARDED_FOR, "198.51.100.1, 203.0.113.9")]);
        assert_eq!(client_ip(&chain, peer, &config(&["10.0.0.0/8"], None)), ip("203.0.113.9"));
        assert_eq!(client_ip(&chain, peer, &config(&["10.1.2.3"], None)), ip("203.0.113.9"));
        let two_headers = headers(&[(X_FORWARDED_FOR, "198.51.100.1"), (X_FORWARDED_FOR, "203.0.113.9")]);
        assert_eq!(client_ip(&two_headers, peer, &config(&["10.0.0.0/8"], None)), ip("203.0.113.9"));
        let with_secret = headers(&[(X_FORWARDED_FOR, "203.0.113.9"), (PROXY_SECRET_HEADER, "the-secret")]);
        assert_eq!(client_ip(&with_secret, peer, &config(&[], Some("the-secret"))), ip("203.0.113.9"));
        // Garbage in the trusted entry falls back to the peer.
        let garbage = headers(&[(X_FORWARDED_FOR, "203.0.113.9, not-an-ip")]);
        assert_eq!(client_ip(&garbage, peer, &config(&["10.0.0.0/8"], None)), ip("10.1.2.3"));
        assert_eq!(client_ip(&HeaderMap::new(), None, &config(&[], None)), ip("0.0.0.0"));
    }

    #[test]
    fn trusted_proxies_parse_and_match() {
        let net: TrustedProxy = "10.1.255.7/16".parse().expect("cidr");
        assert_eq!(net.to_string(), "10.1.0.0/16");
        assert!(net.contains(ip("10.1.0.1")) && net.contains(ip("::ffff:10.1.9.9")));
        assert!(!net.contains(ip("10.2.0.1")) && !net.contains(ip("fd00::1")));
        let v6: TrustedProxy = "fd00::/8".parse().expect("cidr");
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let any: TrustedProxy = "0.0.0.0/0".parse().expect("cidr");
        assert!(any.contains(ip("192.0.2.1")) && !any.contains(ip("::2")));
        let one: TrustedProxy = "::1".parse().expect("ip");
        assert_eq!(one.to_string(), "::1/128");
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x", "10.0.0/8"] {
            let err = bad.parse::<TrustedProxy>().expect_err(bad);
            assert!(err.to_string().contains("is not an IP address or CIDR network"), "{err}");
        }
    }
}
