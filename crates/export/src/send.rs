//! Sending OTLP requests: gRPC (`MetricsService/Export`, `TraceService/Export`) or HTTP (protobuf `POST
//! /v1/metrics`, `/v1/traces`), each request within the endpoint's timeout and retried a bounded number of times
//! when the receiver says to retry.
//!
//! Owns the transports and what an endpoint URL means. Header values are credentials: they go on the wire and
//! nowhere else (never into a log line or an error message). Must not build requests (`convert` does).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use loupe_pxl::otel::OtelEndpoint;
use prost::Message;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::ExportError;
use crate::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;

/// Attempts per request (the first and two retries), for answers that say to retry.
pub const MAX_ATTEMPTS: u32 = 3;
/// Largest answer body read from an OTLP/HTTP receiver.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Where and how an endpoint is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// OTLP/gRPC at `uri` (`http://host:port` or `https://host:port` as tonic dials it).
    Grpc {
        /// The URI dialed.
        uri: String,
    },
    /// OTLP/HTTP under `base` (`http(s)://host:port[/prefix]`): `base/v1/metrics`, `base/v1/traces`.
    Http {
        /// The URL the signal paths are appended to.
        base: String,
    },
}

impl Target {
    /// What `url` means: `host:port` is OTLP/gRPC as in Pixie (TLS unless `insecure`), `grpc://` and `grpcs://`
    /// say so explicitly, `http://` and `https://` are OTLP/HTTP (a path ending in `/v1/metrics` or `/v1/traces`
    /// is taken as the base's).
    pub fn parse(url: &str, insecure: bool) -> Result<Target, ExportError> {
        let bad = |why: &str| ExportError::Endpoint(format!("`{}`: {why}", shown_url(url)));
        if let Some(rest) = url.strip_prefix("grpc://") {
            return Ok(Target::Grpc { uri: format!("http://{}", host_port(rest).ok_or_else(|| bad("no host:port"))?) });
        }
        if let Some(rest) = url.strip_prefix("grpcs://") {
            return Ok(Target::Grpc {
                uri: format!("https://{}", host_port(rest).ok_or_else(|| bad("no host:port"))?),
            });
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            let mut base = url.trim_end_matches('/').to_string();
            for suffix in ["/v1/metrics", "/v1/traces"] {
                if let Some(b) = base.strip_suffix(suffix) {
                    base = b.to_string();
                }
            }
            base.parse::<hyper::Uri>().map_err(|e| bad(&e.to_string()))?;
            return Ok(Target::Http { base });
        }
        if url.contains("://") {
            return Err(bad("the scheme must be grpc, grpcs, http or https"));
        }
        let hp = host_port(url).ok_or_else(|| bad("expected host:port"))?;
        let scheme = if insecure { "http" } else { "https" };
        Ok(Target::Grpc { uri: format!("{scheme}://{hp}") })
    }
}

/// `url` as logs and errors show it: any `user:password@` in it (a credential) is left out.
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").map_or(("", url), |(s, r)| (s, r));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() { format!("{host}{path}") } else { format!("{scheme}://{host}{path}") }
}

fn host_port(s: &str) -> Option<&str> {
    let s = s.trim_end_matches('/');
    let (host, port) = s.rsplit_once(':')?;
    (!host.is_empty() && !s.contains('/') && port.parse::<u16>().is_ok()).then_some(s)
}

/// One endpoint's connection, reused for every request of one export.
pub struct Sender {
    target: Target,
    headers: Vec<(String, String)>,
    timeout: Duration,
    grpc: Option<Channel>,
}

impl Sender {
    /// A sender for `endpoint` (connects lazily, on the first request).
    pub fn new(endpoint: &OtelEndpoint) -> Result<Sender, ExportError> {
        let target = Target::parse(&endpoint.url, endpoint.insecure)?;
        let timeout = Duration::from_secs(endpoint.timeout_s.clamp(1, 60));
        let grpc = match &target {
            Target::Grpc { uri } => {
                let mut ep = Endpoint::from_shared(uri.clone())
                    .map_err(|e| ExportError::Endpoint(format!("`{}`: {e}", shown_url(&endpoint.url))))?
                    .connect_timeout(timeout)
                    .timeout(timeout);
                if uri.starts_with("https://") {
                    ep = ep
                        .tls_config(ClientTlsConfig::new().with_native_roots().timeout(timeout))
                        .map_err(|e| ExportError::Endpoint(format!("`{}`: {e}", shown_url(&endpoint.url))))?;
                }
                Some(ep.connect_lazy())
            }
            Target::Http { .. } => None,
        };
        Ok(Sender { target, headers: endpoint.headers.clone(), timeout, grpc })
    }

    /// Sends one metrics request, retrying as the receiver allows.
    pub async fn metrics(&self, req: &ExportMetricsServiceRequest) -> Result<(), ExportError> {
        self.with_retries("metrics", || async {
            match (&self.target, &self.grpc) {
                (Target::Grpc { .. }, Some(ch)) => {
                    let mut client = MetricsServiceClient::new(ch.clone());
                    let reply = client
                        .export(self.grpc_request(req.clone())?)
                        .await
                        .map_err(|e| grpc_error(&self.target, e))?;
                    partial(
                        "metric points",
                        reply.into_inner().partial_success.map(|p| (p.rejected_data_points, p.error_message)),
                    )
                }
                (Target::Http { base }, _) => self.http_post(&format!("{base}/v1/metrics"), req.encode_to_vec()).await,
                _ => Err(Attempt::Fail(ExportError::Endpoint("no channel".into()))),
            }
        })
        .await
    }

    /// Sends one traces request, retrying as the receiver allows.
    pub async fn traces(&self, req: &ExportTraceServiceRequest) -> Result<(), ExportError> {
        self.with_retries("traces", || async {
            match (&self.target, &self.grpc) {
                (Target::Grpc { .. }, Some(ch)) => {
                    let mut client = TraceServiceClient::new(ch.clone());
                    let reply = client
                        .export(self.grpc_request(req.clone())?)
                        .await
                        .map_err(|e| grpc_error(&self.target, e))?;
                    partial("spans", reply.into_inner().partial_success.map(|p| (p.rejected_spans, p.error_message)))
                }
                (Target::Http { base }, _) => self.http_post(&format!("{base}/v1/traces"), req.encode_to_vec()).await,
                _ => Err(Attempt::Fail(ExportError::Endpoint("no channel".into()))),
            }
        })
        .await
    }

    fn grpc_request<T>(&self, msg: T) -> Result<tonic::Request<T>, Attempt> {
        let mut r = tonic::Request::new(msg);
        for (k, v) in &self.headers {
            let key = MetadataKey::from_bytes(k.as_bytes())
                .map_err(|_| Attempt::Fail(ExportError::Endpoint(format!("header `{k}` is not a valid name"))))?;
            // The value is never put in the message: it is a credential.
            let value = MetadataValue::try_from(v.as_str())
                .map_err(|_| Attempt::Fail(ExportError::Endpoint(format!("header `{k}` has an invalid value"))))?;
            r.metadata_mut().insert(key, value);
        }
        r.set_timeout(self.timeout);
        Ok(r)
    }

    async fn with_retries<F, Fut>(&self, what: &str, attempt: F) -> Result<(), ExportError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), Attempt>>,
    {
        let mut delay = Duration::from_millis(200);
        for n in 1..=MAX_ATTEMPTS {
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry(e)) if n == MAX_ATTEMPTS => return Err(e),
                Err(Attempt::Retry(e)) => {
                    tracing::debug!(what, attempt = n, error = %e, "otlp export failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        Err(ExportError::Endpoint("no attempt made".into()))
    }

    async fn http_post(&self, url: &str, body: Vec<u8>) -> Result<(), Attempt> {
        let fail = |e: String| Attempt::Fail(ExportError::Endpoint(e));
        let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| fail(e.to_string()))?;
        let host = uri.host().ok_or_else(|| fail(format!("`{}` has no host", shown_url(url))))?.to_string();
        let tls = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let mut req = Request::post(uri.clone())
            .header(hyper::header::HOST, uri.port_u16().map_or_else(|| host.clone(), |p| format!("{host}:{p}")))
            .header(hyper::header::CONTENT_TYPE, "application/x-protobuf");
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|_| fail("invalid header in the endpoint".into()))?;
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| Attempt::Retry(ExportError::Send(format!("connect {host}:{port}: {e}"))))?;
            let _ = tcp.set_nodelay(true);
            if tls {
                let stream = tls_connect(&host, tcp).await?;
                post(stream, req).await
            } else {
                post(tcp, req).await
            }
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Attempt::Retry(ExportError::Send(format!(
                "no answer from {} within {:?}",
                shown_url(url),
                self.timeout
            )))),
        }
    }
}

async fn tls_connect(
    host: &str,
    tcp: tokio::net::TcpStream,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, Attempt> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Attempt::Fail(ExportError::Endpoint(e.to_string())))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| Attempt::Fail(ExportError::Endpoint(format!("`{host}`: {e}"))))?;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| Attempt::Retry(ExportError::Send(format!("TLS with {host}: {e}"))))
}

async fn post<S>(stream: S, req: Request<Full<Bytes>>) -> Result<(), Attempt>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Attempt::Retry(ExportError::Send(format!("HTTP handshake: {e}"))))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| Attempt::Retry(ExportError::Send(format!("HTTP: {e}"))))?;
    let status = resp.status();
    // Read a bounded prefix of the answer (a status body says why it refused).
    let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect().await;
    let text =
        body.map(|b| String::from_utf8_lossy(&b.to_bytes()).chars().take(200).collect::<String>()).unwrap_or_default();
    if status.is_success() {
        return Ok(());
    }
    let e = ExportError::Refused(format!(
        "HTTP {status}{}",
        if text.is_empty() { String::new() } else { format!(": {text}") }
    ));
    // The OTLP/HTTP spec: 429, 502, 503 and 504 may be retried; anything else may not.
    if matches!(status.as_u16(), 429 | 502 | 503 | 504) { Err(Attempt::Retry(e)) } else { Err(Attempt::Fail(e)) }
}

/// One attempt's failure: retry or give up.
enum Attempt {
    Retry(ExportError),
    Fail(ExportError),
}

fn grpc_error(target: &Target, s: tonic::Status) -> Attempt {
    use tonic::Code;
    let at = match target {
        Target::Grpc { uri } => uri.as_str(),
        Target::Http { base } => base.as_str(),
    };
    let at = shown_url(at);
    let m = format!("{at}: gRPC {:?}: {}", s.code(), s.message().chars().take(200).collect::<String>());
    // UNAVAILABLE is also what a connection that fails gives: not a receiver's answer.
    let e = if s.code() == Code::Unavailable { ExportError::Send(m) } else { ExportError::Refused(m) };
    // The OTLP/gRPC spec's retryable codes.
    match s.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss
        | Code::ResourceExhausted => Attempt::Retry(e),
        _ => Attempt::Fail(e),
    }
}

fn partial(what: &str, p: Option<(i64, String)>) -> Result<(), Attempt> {
    match p {
        Some((rejected, msg)) if rejected > 0 => {
            Err(Attempt::Fail(ExportError::Refused(format!("the receiver rejected {rejected} {what}: {msg}"))))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_transport() {
        let g = |u: &str| Target::Grpc { uri: u.into() };
        assert_eq!(Target::parse("collector:4317", false).ok(), Some(g("https://collector:4317")));
        assert_eq!(Target::parse("127.0.0.1:4317", true).ok(), Some(g("http://127.0.0.1:4317")));
        assert_eq!(Target::parse("grpc://h:1", false).ok(), Some(g("http://h:1")));
        assert_eq!(Target::parse("grpcs://h:1", true).ok(), Some(g("https://h:1")));
        let h = |u: &str| Target::Http { base: u.into() };
        assert_eq!(Target::parse("http://h:4318", false).ok(), Some(h("http://h:4318")));
        assert_eq!(Target::parse("https://h/otlp/v1/metrics", false).ok(), Some(h("https://h/otlp")));
        assert!(Target::parse("ftp://h:1", true).is_err());
        assert!(Target::parse("collector", true).is_err());
        assert!(Target::parse("h:99999", true).is_err());
        assert_eq!(shown_url("https://user:secret@h:4318/otlp"), "https://h:4318/otlp");
        assert_eq!(shown_url("h:4317"), "h:4317");
        assert!(
            !Target::parse("ftp://u:secret@h:1", true)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("secret")
        );
    }
}
