//! The TLS-terminating reverse proxy in front of the cloud API, and the plain-HTTP listener that redirects to it.
//!
//! Owns TLS (rustls on ring, ALPN `h2` and `http/1.1` on one port), forwarding every request to one upstream
//! (plain HTTP, or `https://` verified against a given CA only: the split cloud's internal hop) with its method, path, headers, body and trailers intact (gRPC over HTTP/2 prior knowledge, so
//! trailers survive; everything else over HTTP/1.1), the `X-Forwarded-*` headers, any fixed headers the
//! configuration adds (such as a secret by which the upstream recognises this proxy), the 502 answer when the
//! upstream is down, and the 308 redirect. Must not look inside requests beyond HTTP semantics: no routes, no
//! auth, no knowledge of the cloud's API.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/1 client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to the upstream may take before the request fails with 502.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers that describe one hop, not the message: never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Errors of starting the proxy. Once it serves, failures are per connection and only logged.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The certificate or key file could not be read.
    #[error("failed to read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM item of the expected kind.
    #[error("{} holds no PEM {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("the certificate and key are not a usable TLS identity")]
    Tls(#[from] rustls::Error),
    /// A listener could not be bound.
    #[error("failed to listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The upstream address is not `host:port`, `http://host:port` or (with a CA) `https://host:port`.
    #[error("invalid upstream {0:?}: expected host:port, http://host:port, or https://host:port with its CA")]
    Upstream(String),
    /// The upstream CA holds no usable PEM certificate.
    #[error("the upstream CA holds no usable PEM certificate")]
    UpstreamCa,
    /// A configured upstream header has an invalid name or value.
    #[error("invalid upstream header {0:?}")]
    UpstreamHeader(String),
}

/// `Result` with [`ProxyError`].
pub type Result<T, E = ProxyError> = std::result::Result<T, E>;

/// Where the proxy listens, what it presents and where it forwards.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The TLS listener.
    pub listen: SocketAddr,
    /// A plain-HTTP listener answering every request with a 308 to the same host and path on the TLS
    /// listener's port; none when absent.
    pub redirect_listen: Option<SocketAddr>,
    /// The cloud API: `host:port` or `http://host:port`, or `https://host:port` with `upstream_ca`.
    pub upstream: String,
    /// PEM of the only CA an `https://` upstream's certificate may chain to (its name checked against the
    /// upstream's host). Without it the upstream must be plain HTTP; with it, it must be https.
    pub upstream_ca: Option<Vec<u8>>,
    /// PEM certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// PEM private key of that certificate.
    pub key: PathBuf,
    /// Headers set on every forwarded request, replacing any the client sent under the same names: e.g. a
    /// secret by which the upstream tells this proxy's requests from others on the same network.
    pub upstream_headers: Vec<(String, String)>,
}

/// What a proxy has done since it started, for its `/metrics`.
#[derive(Debug, Default)]
pub struct ProxyStats {
    connections: AtomicU64,
    handshakes_failed: AtomicU64,
    requests_grpc: AtomicU64,
    requests_http: AtomicU64,
    upstream_errors: AtomicU64,
    redirects: AtomicU64,
}

impl ProxyStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut text = String::new();
        for (name, help, value) in [
            ("loupe_proxy_connections_total", "TCP connections accepted on the TLS port.", get(&self.connections)),
            (
                "loupe_proxy_tls_handshakes_failed_total",
                "TLS handshakes that failed or timed out (clients that do not trust the CA, plain HTTP, scanners).",
                get(&self.handshakes_failed),
            ),
            (
                "loupe_proxy_upstream_errors_total",
                "Requests the cloud API could not be reached for.",
                get(&self.upstream_errors),
            ),
            ("loupe_proxy_redirects_total", "Plain-HTTP requests redirected to https.", get(&self.redirects)),
        ] {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        let name = "loupe_proxy_requests_total";
        text.push_str(&format!(
            "# HELP {name} Requests forwarded to the cloud API, by protocol.\n# TYPE {name} counter\n"
        ));
        text.push_str(&format!("{name}{{protocol=\"grpc\"}} {}\n", get(&self.requests_grpc)));
        text.push_str(&format!("{name}{{protocol=\"http\"}} {}\n", get(&self.requests_http)));
        text
    }
}

/// A bound proxy, ready to [`serve`](Proxy::serve).
pub struct Proxy {
    tls: TcpListener,
    redirect: Option<TcpListener>,
    acceptor: TlsAcceptor,
    forwarder: Arc<Forwarder>,
}

impl Proxy {
    /// Loads the certificate and key, and binds the listeners (so a busy port fails here, before serving).
    pub async fn bind(config: &ProxyConfig) -> Result<Self> {
        let acceptor = TlsAcceptor::from(server_tls_config(&config.cert, &config.key)?);
        let forwarder = Arc::new(
            Forwarder::new(&config.upstream, config.upstream_ca.as_deref())?.with_headers(&config.upstream_headers)?,
        );
        let tls = bind(config.listen).await?;
        let redirect = match config.redirect_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self { tls, redirect, acceptor, forwarder })
    }

    /// The TLS listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.tls.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The redirect listener's address, if there is one.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Its counters, for a `/metrics` endpoint.
    pub fn stats(&self) -> Arc<ProxyStats> {
        Arc::clone(&self.forwarder.stats)
    }

    /// The upstream requests go to, as `http://host:port`.
    pub fn upstream(&self) -> String {
        format!("{}://{}", self.forwarder.scheme, self.forwarder.authority)
    }

    /// Serves until `shutdown` resolves. Connections fail one by one (bad handshakes, resets), never the proxy;
    /// connections still open at shutdown are left to finish or to end with the process.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let https_port = self.local_addr().port();
        let stats = self.stats();
        let tls = serve_tls(self.tls, self.acceptor, self.forwarder);
        let redirect = async move {
            match self.redirect {
                Some(listener) => serve_redirect(listener, https_port, stats).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = tls => {}
            () = redirect => {}
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })
}

/// A rustls server configuration on the ring provider, offering HTTP/2 and HTTP/1.1 by ALPN.
pub fn server_tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let read = |path: &Path| std::fs::read(path).map_err(|source| ProxyError::Read { path: path.to_owned(), source });
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(cert)?).filter_map(std::result::Result::ok).collect();
    if chain.is_empty() {
        return Err(ProxyError::Pem { path: cert.to_owned(), what: "certificate" });
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|_| ProxyError::Pem { path: key.to_owned(), what: "private key" })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

async fn serve_tls(listener: TcpListener, acceptor: TlsAcceptor, forwarder: Arc<Forwarder>) {
    loop {
        let Some((tcp, peer)) = accept(&listener).await else { continue };
        let acceptor = acceptor.clone();
        let forwarder = forwarder.clone();
        ProxyStats::add(&forwarder.stats.connections);
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                // A scanner, a client that does not trust the CA, plain HTTP on the TLS port: the client's
                // problem, not the operator's (counted, logged at debug).
                Ok(Err(error)) => {
                    ProxyStats::add(&forwarder.stats.handshakes_failed);
                    return tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    ProxyStats::add(&forwarder.stats.handshakes_failed);
                    return tracing::debug!(%peer, "TLS handshake timed out");
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let forwarder = forwarder.clone();
                async move { Ok::<_, Infallible>(forwarder.forward(req, peer).await) }
            });
            if let Err(error) = http_builder().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

async fn serve_redirect(listener: TcpListener, https_port: u16, stats: Arc<ProxyStats>) {
    loop {
        let Some((tcp, peer)) = accept(&listener).await else { continue };
        let local = tcp.local_addr().ok();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                ProxyStats::add(&stats.redirects);
                async move { Ok::<_, Infallible>(redirect(&req, local, https_port)) }
            });
            if let Err(error) = http_builder().serve_connection(TokioIo::new(tcp), service).await {
                tracing::debug!(%peer, %error, "redirect connection ended with an error");
            }
        });
    }
}

/// HTTP/1.1 and HTTP/2 on one connection, whichever the client speaks. The timer arms hyper's limit on how long
/// an HTTP/1 client may take to send its headers, so idle or trickling connections do not pile up.
fn http_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// The next connection; `None` after an accept error (e.g. out of file descriptors), after a short pause so a
/// persistent error does not spin.
async fn accept(listener: &TcpListener) -> Option<(TcpStream, SocketAddr)> {
    match listener.accept().await {
        Ok((tcp, peer)) => {
            let _ = tcp.set_nodelay(true);
            Some((tcp, peer))
        }
        Err(error) => {
            tracing::warn!(%error, "failed to accept a connection");
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        }
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// The client side of an https upstream: only `ca_pem`'s certificates are trusted (none without it, when
/// the upstream is plain HTTP and the configuration is never used).
fn upstream_tls(ca_pem: Option<&[u8]>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots.add(cert.map_err(|_| ProxyError::UpstreamCa)?).map_err(|_| ProxyError::UpstreamCa)?;
        }
        if roots.is_empty() {
            return Err(ProxyError::UpstreamCa);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Forwards requests to the upstream: gRPC over HTTP/2, the rest over HTTP/1.1, each with a pool of its own.
struct Forwarder {
    scheme: Scheme,
    authority: Authority,
    http1: Client<HttpsConnector<HttpConnector>, Incoming>,
    http2: Client<HttpsConnector<HttpConnector>, Incoming>,
    extra: Vec<(HeaderName, HeaderValue)>,
    stats: Arc<ProxyStats>,
}

impl Forwarder {
    fn new(upstream: &str, ca_pem: Option<&[u8]>) -> Result<Self> {
        let invalid = || ProxyError::Upstream(upstream.to_owned());
        let default_scheme = if ca_pem.is_some() { "https" } else { "http" };
        let with_scheme =
            if upstream.contains("://") { upstream.to_owned() } else { format!("{default_scheme}://{upstream}") };
        let uri: Uri = with_scheme.parse().map_err(|_| invalid())?;
        let path_is_root = uri.path_and_query().is_none_or(|p| p.as_str() == "/");
        // The scheme must agree with the CA: never https unverified, never plain http when TLS was asked for.
        let scheme = match (uri.scheme(), ca_pem) {
            (Some(s), None) if *s == Scheme::HTTP => Scheme::HTTP,
            (Some(s), Some(_)) if *s == Scheme::HTTPS => Scheme::HTTPS,
            _ => return Err(invalid()),
        };
        if !path_is_root {
            return Err(invalid());
        }
        let authority = uri.authority().cloned().ok_or_else(invalid)?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(UPSTREAM_CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let tls = upstream_tls(ca_pem)?;
        // One ALPN per pool: HTTP/1.1 for REST, h2 for gRPC, as over plain HTTP.
        let https1 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector.clone());
        let https2 = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http2()
            .wrap_connector(connector);
        let http1 = Client::builder(TokioExecutor::new()).build(https1);
        let http2 = Client::builder(TokioExecutor::new()).http2_only(true).build(https2);
        Ok(Self { scheme, authority, http1, http2, extra: Vec::new(), stats: Arc::default() })
    }

    /// Adds fixed headers to every forwarded request.
    fn with_headers(mut self, headers: &[(String, String)]) -> Result<Self> {
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ProxyError::UpstreamHeader(name.clone()))?;
            let mut value = HeaderValue::from_str(value).map_err(|_| ProxyError::UpstreamHeader(name.to_string()))?;
            value.set_sensitive(true);
            self.extra.push((name, value));
        }
        Ok(self)
    }

    async fn forward(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let grpc =
            parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        ProxyStats::add(if grpc { &self.stats.requests_grpc } else { &self.stats.requests_http });
        let host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri =
            Uri::builder().scheme(self.scheme.clone()).authority(self.authority.clone()).path_and_query(path).build();
        parts.uri = match uri {
            Ok(uri) => uri,
            Err(error) => return error_response(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &error.to_string()),
        };
        strip_hop_by_hop(&mut parts.headers);
        // The client's own claims about where it came from are replaced, never trusted or extended.
        parts.headers.remove(header::HOST);
        parts.headers.remove(X_FORWARDED_FOR);
        parts.headers.remove(X_FORWARDED_HOST);
        // Canonical, so a dual-stack listener reports `1.2.3.4`, not `::ffff:1.2.3.4`.
        if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_canonical().to_string()) {
            parts.headers.insert(X_FORWARDED_FOR, ip);
        }
        parts.headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        if let Some(host) = host {
            parts.headers.insert(X_FORWARDED_HOST, host);
        }
        for (name, value) in &self.extra {
            parts.headers.insert(name.clone(), value.clone());
        }
        let (client, version) = if grpc { (&self.http2, Version::HTTP_2) } else { (&self.http1, Version::HTTP_11) };
        parts.version = version;
        match client.request(Request::from_parts(parts, body)).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                parts.version = Version::default();
                Response::from_parts(parts, body.boxed())
            }
            Err(error) => {
                ProxyStats::add(&self.stats.upstream_errors);
                tracing::warn!(upstream = %self.authority, error = %error_chain(&error), "upstream request failed");
                let message = format!("the cloud API at {} is unreachable", self.authority);
                if grpc {
                    grpc_unavailable(&message)
                } else {
                    error_response(StatusCode::BAD_GATEWAY, "UNAVAILABLE", &message)
                }
            }
        }
    }
}

/// Removes hop-by-hop headers, those the `Connection` header names included. `TE: trailers` survives: gRPC
/// needs it, and it is the one `TE` HTTP/2 allows.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let te_trailers = headers.get(header::TE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in &named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// The API's error shape, `{"code","message"}`, so clients report a proxy failure like any other.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// A gRPC "trailers-only" answer with status UNAVAILABLE (14): gRPC clients read the status from the headers and
/// ignore the HTTP status, so a 502 alone would reach them as a vague INTERNAL.
fn grpc_unavailable(message: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(full(Bytes::new()));
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from_static("14"));
    // grpc-message is percent-encoded outside printable ASCII; the messages built here are printable ASCII.
    if let Ok(value) = HeaderValue::from_str(message) {
        headers.insert("grpc-message", value);
    }
    resp
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// A 308 to `https://<host>[:<https_port>]<path>`: the host from the request (its port dropped), else the
/// address the client connected to.
fn redirect(req: &Request<Incoming>, local: Option<SocketAddr>, https_port: u16) -> Response<ProxyBody> {
    let claimed = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).or_else(|| req.uri().host());
    let host = claimed.map(strip_port).filter(|h| is_plain_host(h)).map(str::to_owned).or_else(|| {
        local.map(|a| match a {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        })
    });
    let Some(host) = host else {
        return error_response(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "no Host header to redirect to");
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    let mut resp = Response::new(full(format!("use {location}\n")));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => return error_response(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", "the request path is invalid"),
    }
    resp
}

/// `host:port` → `host`, `[::1]:80` → `[::1]`, `host` → `host`.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

/// Whether `host` can go into a URL as is: a DNS name, an IPv4 address or a bracketed IPv6 one.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

#[cfg(test)]
mod tests;
