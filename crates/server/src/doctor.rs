//! `loupe doctor`: the troubleshooting steps of a self-hosted cloud as one command.
//!
//! Owns the checks, their order and the one fix printed for each failure: what Pixie's self-hosters get stuck on
//! (a `cloudAddr` without a port, DNS, a certificate for the wrong domain or expired, a proxy that does not route
//! REST or gRPC so ExecuteScript fails with a 500, VZConn unreachable on 51800, the dependencies refusing their
//! credentials, a vizier that never registers or stopped sending heartbeats). Every check is read-only: it opens
//! connections and reads the metastore, and never creates, writes or registers anything. Must not hold business
//! logic of the services it checks: it speaks to them as a client would.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::default_data_dir;

/// `loupe doctor` flags. The environment variables are the cloud services' own, so the command run in a pod (or
/// as a Job) with a service's environment checks what that service uses.
#[derive(Args)]
pub struct DoctorArgs {
    /// The cloud's public address as viziers and `px` use it, `host:port` (Pixie's `cloudAddr`). Default:
    /// `<domain>:443`, or `localhost:56000` (the TLS proxy of `loupe up`) when the domain is `localhost`.
    #[arg(long, env = "LOUPE_CLOUD_ADDR")]
    cloud_addr: Option<String>,
    /// The deployment's domain, which the certificates must cover.
    #[arg(long, env = "LOUPE_DOMAIN", default_value = "localhost")]
    domain: String,
    /// VZConn's address, `host:port`. Default: `<domain>:51800` (`vzconn-service`), or the cloud address when the
    /// domain is `localhost` (`loupe up` serves VZConn through its proxy).
    #[arg(long, env = "LOUPE_VZCONN_PUBLIC_ADDR")]
    vzconn_addr: Option<String>,
    /// The CA the cloud's certificates chain to. Default: `<data-dir>/secrets/ca.crt` when it exists, else the
    /// system's trusted roots (certificates from a public CA or cert-manager with one).
    #[arg(long, env = "LOUPE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The data directory of `loupe up` or `loupe setup init-secrets` (its CA and SQLite metastore).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    data_dir: PathBuf,
    /// The metastore to read the viziers' heartbeats from (`postgres://…`, `sqlite://…`). Default: the SQLite
    /// metastore in --data-dir when it exists, else the check is skipped.
    #[arg(long, env = "LOUPE_METASTORE_URL", hide_env_values = true)]
    metastore_url: Option<String>,
    /// NATS URL to check (with its credentials, if the URL has any); skipped when absent.
    #[arg(long, env = "LOUPE_NATS_URL", hide_env_values = true)]
    nats_url: Option<String>,
    /// Redis URL to check (with its password, if the URL has one); skipped when absent.
    #[arg(long, env = "LOUPE_REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Longest wait of each check.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// A vizier whose last heartbeat is older than this is reported (viziers send one every 5 s).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    heartbeat_age: Duration,
    /// A certificate that expires sooner than this is reported.
    #[arg(long, default_value = "14d", value_parser = humantime::parse_duration)]
    expiry_warning: Duration,
    /// Output format: a table for people, JSON for scripts.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    /// Works today, needs attention (a certificate close to expiry).
    Warn,
    Fail,
    /// Not run: nothing to check with, or an earlier check it depends on failed.
    Skip,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

/// One check's verdict: what was seen and, when it failed, the one thing to do.
#[derive(Debug)]
struct Check {
    name: &'static str,
    status: Status,
    detail: String,
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, status: Status::Ok, detail: detail.into(), fix: None }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn skip(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, status: Status::Skip, detail: detail.into(), fix: None }
    }
}

/// Runs every check in order and prints them; `Ok(false)` when one failed.
pub async fn run(args: &DoctorArgs) -> Result<bool> {
    let checks = checks(args).await;
    let healthy = !checks.iter().any(|c| c.status == Status::Fail);
    match args.output {
        Output::Json => {
            let list: Vec<_> = checks
                .iter()
                .map(|c| json!({"check": c.name, "status": c.status.as_str(), "detail": c.detail, "fix": c.fix}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&json!({"healthy": healthy, "checks": list}))?);
        }
        Output::Table => print!("{}", table(&checks)),
    }
    Ok(healthy)
}

fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
    let mut out = format!("{:<width$}  {:<6}  DETAIL\n", "CHECK", "STATUS");
    for c in checks {
        out.push_str(&format!("{:<width$}  {:<6}  {}\n", c.name, c.status.as_str(), c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<width$}  {:<6}  fix: {fix}\n", "", ""));
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    out.push_str(&match failed {
        0 => "all checks passed\n".to_string(),
        n => format!("{n} check(s) failed: start with the first\n"),
    });
    out
}

/// The address a check dials: host and port.
#[derive(Clone, Debug)]
struct Addr {
    host: String,
    port: u16,
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host:port` (`[v6]:port` for IPv6), with the reason it is not one.
fn parse_addr(text: &str) -> Result<Addr, String> {
    let text = text.trim();
    let text = text.strip_prefix("https://").unwrap_or(text).trim_end_matches('/');
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("an IPv6 address needs its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    let port = port.ok_or("it has no port")?;
    let port = port.parse::<u16>().map_err(|_| format!("{port:?} is not a port"))?;
    Ok(Addr { host: host.to_string(), port })
}

async fn checks(args: &DoctorArgs) -> Vec<Check> {
    let local = args.domain == "localhost";
    let cloud_text = args
        .cloud_addr
        .clone()
        .unwrap_or_else(|| if local { "localhost:56000".to_string() } else { format!("{}:443", args.domain) });
    let mut out = Vec::new();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = trust_roots(args);

    // 1. The address, as Pixie's viziers need it: with a port.
    let cloud = match parse_addr(&cloud_text) {
        Ok(addr) => {
            out.push(Check::ok("address", format!("cloud address {addr}")));
            Some(addr)
        }
        Err(why) => {
            out.push(Check::fail(
                "address",
                format!("cloud address {cloud_text:?}: {why}"),
                format!(
                    "give the port: --cloud-addr {}:443 (a vizier's `cloudAddr` needs it too, e.g. `cloudAddr: {}:443`)",
                    cloud_text.trim_end_matches(':'),
                    args.domain
                ),
            ));
            None
        }
    };
    let vzconn_text = args
        .vzconn_addr
        .clone()
        .unwrap_or_else(|| if local { cloud_text.clone() } else { format!("{}:51800", args.domain) });

    // 2-5. DNS, certificate, REST and gRPC routes of the proxy.
    match cloud {
        Some(addr) => {
            let reached = dns(&addr, "dns", &mut out).await;
            if reached {
                tls_and_routes(args, &addr, &provider, &roots, &mut out).await;
            } else {
                for name in ["certificate", "rest", "grpc"] {
                    out.push(Check::skip(name, "the cloud address does not resolve"));
                }
            }
        }
        None => {
            for name in ["dns", "certificate", "rest", "grpc"] {
                out.push(Check::skip(name, "no usable cloud address"));
            }
        }
    }

    // 6. VZConn, where viziers register.
    match parse_addr(&vzconn_text) {
        Ok(addr) => out.push(vzconn(args, &addr, &provider, &roots).await),
        Err(why) => out.push(Check::fail(
            "vzconn",
            format!("VZConn address {vzconn_text:?}: {why}"),
            format!("give the port: --vzconn-addr {}:51800", vzconn_text.trim_end_matches(':')),
        )),
    }

    // 7-9. The dependencies, with the credentials the services use.
    let store = metastore(args, &mut out).await;
    out.push(nats(args).await);
    out.push(redis(args).await);

    // 10. Every vizier's heartbeat.
    out.push(match store {
        Some(store) => viziers(args, store.as_ref()).await,
        None => Check::skip("viziers", "no metastore to read them from"),
    });
    out
}

/// Resolves `addr`; pushes the check and says whether it resolved.
async fn dns(addr: &Addr, name: &'static str, out: &mut Vec<Check>) -> bool {
    match tokio::net::lookup_host((addr.host.as_str(), addr.port)).await {
        Ok(found) => {
            let mut ips: Vec<String> = found.map(|a| a.ip().to_string()).collect();
            ips.sort();
            ips.dedup();
            out.push(Check::ok(name, format!("{} resolves to {}", addr.host, ips.join(", "))));
            true
        }
        Err(e) => {
            out.push(Check::fail(
                name,
                format!("{} does not resolve: {e}", addr.host),
                format!(
                    "add a DNS record (or an /etc/hosts line) for {} pointing to cloud-proxy-service's external IP, \
                     or use `kubectl port-forward` and --cloud-addr localhost:<port> (docs/deploy.md)",
                    addr.host
                ),
            ));
            false
        }
    }
}

/// The CA file (given, else `<data-dir>/secrets/ca.crt` when present) or the system's roots.
fn trust_roots(args: &DoctorArgs) -> Result<(rustls::RootCertStore, String), String> {
    let default_ca = args.data_dir.join("secrets/ca.crt");
    let ca = args.ca_cert.clone().or_else(|| default_ca.exists().then_some(default_ca));
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA {}: {e}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("{} holds no usable certificate", path.display()));
            }
            Ok((roots, format!("the CA {}", path.display())))
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            Ok((roots, "the system's trusted roots".to_string()))
        }
    }
}

/// A verifier that accepts any certificate and keeps the chain, so that a bad certificate is diagnosed after the
/// handshake (with its names and dates) instead of ending it, and the route checks still run.
#[derive(Debug)]
struct Recorder {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<CertificateDer<'static>>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = vec![end_entity.clone().into_owned()];
        chain.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut kept) = self.chain.lock() {
            *kept = chain;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to `addr` offering `alpn`, accepting any certificate; also returns the chain presented.
async fn connect(
    addr: &Addr,
    alpn: &[u8],
    provider: &Arc<CryptoProvider>,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, Vec<CertificateDer<'static>>), String> {
    let recorder = Arc::new(Recorder { provider: provider.clone(), chain: Mutex::new(Vec::new()) });
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((addr.host.as_str(), addr.port)))
        .await
        .map_err(|_| format!("no answer from {addr} within {}", humantime::format_duration(timeout)))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let name = ServerName::try_from(addr.host.clone()).map_err(|e| format!("{:?}: {e}", addr.host))?;
    let tls = tokio::time::timeout(timeout, TlsConnector::from(Arc::new(config)).connect(name, tcp))
        .await
        .map_err(|_| format!("{addr} accepted the connection but no TLS handshake finished"))?
        .map_err(|e| format!("TLS handshake with {addr} failed: {e} (is it a TLS port?)"))?;
    let chain = recorder.chain.lock().map(|c| c.clone()).unwrap_or_default();
    Ok((tls, chain))
}

/// Verifies `chain` for `name` against `roots` at `now`.
fn verify(
    chain: &[CertificateDer<'static>],
    name: &str,
    roots: &rustls::RootCertStore,
    provider: &Arc<CryptoProvider>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let (end_entity, intermediates) = chain.split_first().ok_or(rustls::Error::NoCertificatesPresented)?;
    let name = ServerName::try_from(name.to_string()).map_err(|e| rustls::Error::General(e.to_string()))?;
    verifier.verify_server_cert(end_entity, intermediates, &name, &[], now).map(|_| ())
}

/// The certificate verdict for `chain` presented at `addr`, which must cover `name`.
fn certificate(
    what: &'static str,
    chain: &[CertificateDer<'static>],
    name: &str,
    roots: &Result<(rustls::RootCertStore, String), String>,
    provider: &Arc<CryptoProvider>,
    expiry_warning: Duration,
) -> Check {
    let (roots, source) = match roots {
        Ok(r) => r,
        Err(why) => return Check::fail(what, why.clone(), "pass --ca-cert with the cloud CA (`secrets/ca.crt`)"),
    };
    match verify(chain, name, roots, provider, UnixTime::now()) {
        Ok(()) => {
            let later = UnixTime::since_unix_epoch(Duration::from_secs(UnixTime::now().as_secs()) + expiry_warning);
            match verify(chain, name, roots, provider, later) {
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::Expired | CertificateError::ExpiredContext { .. },
                )) => Check::warn(
                    what,
                    format!("valid for {name}, but expires within {}", humantime::format_duration(expiry_warning)),
                    "renew it: cert-manager renews its Certificates by itself; for the generated CA delete \
                     `secrets/server.crt` and `server.key` and run `loupe setup init-secrets` again",
                ),
                _ => Check::ok(what, format!("valid for {name}, signed by {source}")),
            }
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { presented, .. })) => {
            Check::fail(
                what,
                format!("the certificate covers {} but not {name}", presented_names(&presented)),
                format!(
                    "issue it for {name}: set the domain once (LOUPE_DOMAIN / the overlay's `domain`) and regenerate \
                     (`loupe setup init-secrets --domain {name}` after removing server.crt), or fix the \
                     cert-manager Certificate's dnsNames"
                ),
            )
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName)) => Check::fail(
            what,
            format!("the certificate does not cover {name}"),
            format!("issue it for {name} (set the domain once and regenerate the certificate)"),
        ),
        Err(rustls::Error::InvalidCertificate(CertificateError::Expired | CertificateError::ExpiredContext { .. })) => {
            Check::fail(
                what,
                "the certificate has expired",
                "renew it (cert-manager renews by itself; for the generated CA remove secrets/server.crt and run \
             `loupe setup init-secrets`)",
            )
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)) => Check::fail(
            what,
            format!("the certificate is not signed by {source}"),
            "pass the CA that signed it with --ca-cert (px and viziers need the same CA: PX_CA_CERT, the vizier's \
             CA secret)",
        ),
        Err(e) => Check::fail(what, format!("the certificate is not valid for {name}: {e}"), "replace it"),
    }
}

/// rustls's presented names (`DnsName("a")`, `IpAddress(127.0.0.1)`) as a reader writes them.
fn presented_names(presented: &[String]) -> String {
    let plain = |n: &String| {
        let inner = n.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).unwrap_or(n);
        inner.trim_matches('"').to_string()
    };
    presented.iter().map(plain).collect::<Vec<_>>().join(", ")
}

async fn tls_and_routes(
    args: &DoctorArgs,
    addr: &Addr,
    provider: &Arc<CryptoProvider>,
    roots: &Result<(rustls::RootCertStore, String), String>,
    out: &mut Vec<Check>,
) {
    let (tls, chain) = match connect(addr, b"http/1.1", provider, args.timeout).await {
        Ok(c) => c,
        Err(why) => {
            out.push(Check::fail(
                "certificate",
                why,
                format!(
                    "make the proxy reachable at {addr}: check cloud-proxy-service's external IP and port (or \
                     `kubectl -n plc port-forward svc/cloud-proxy-service {}:443`), or that `loupe up` runs",
                    addr.port
                ),
            ));
            out.push(Check::skip("rest", "no TLS connection"));
            out.push(Check::skip("grpc", "no TLS connection"));
            return;
        }
    };
    // The name the certificate must cover: the domain when the address is an IP or the domain itself.
    let name = if addr.host.parse::<std::net::IpAddr>().is_ok() { args.domain.clone() } else { addr.host.clone() };
    out.push(certificate("certificate", &chain, &name, roots, provider, args.expiry_warning));
    out.push(rest(tls, addr, args.timeout).await);
    out.push(grpc_route(addr, provider, args.timeout).await);
}

/// REST through the proxy: a route that needs a credential answers 401 when the API is behind the proxy.
async fn rest(tls: TlsStream<TcpStream>, addr: &Addr, timeout: Duration) -> Check {
    const PATH: &str = "/api/v1/viziers";
    let result = tokio::time::timeout(timeout, async {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get(PATH)
            .header("host", addr.host.as_str())
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(response.status().as_u16())
    })
    .await;
    match result {
        Ok(Ok(401)) => Check::ok("rest", format!("GET {PATH} reaches the API (401 without a credential)")),
        Ok(Ok(status @ (502..=504))) => Check::fail(
            "rest",
            format!("GET {PATH} through the proxy answered {status}: the proxy cannot reach the API"),
            "check the proxy's upstream (LOUPE_PROXY_UPSTREAM, the api-service name and port) and that the API \
             pods are ready",
        ),
        Ok(Ok(status)) => Check::fail(
            "rest",
            format!("GET {PATH} answered {status}, not the API's 401"),
            "route /api/ to the cloud API (LOUPE_PROXY_UPSTREAM); another server answers this address",
        ),
        Ok(Err(e)) => Check::fail("rest", format!("GET {PATH} failed: {e}"), "check the proxy's logs"),
        Err(_) => Check::fail(
            "rest",
            format!("GET {PATH} got no answer within {}", humantime::format_duration(timeout)),
            "check the proxy's and the API's logs",
        ),
    }
}

/// gRPC status of a call to `path` with `message` (protobuf bytes) and no credential, over HTTP/2 on a TLS
/// connection.
async fn grpc_call(
    addr: &Addr,
    path: &str,
    message: &[u8],
    provider: &Arc<CryptoProvider>,
    timeout: Duration,
) -> Result<i32, String> {
    let (tls, _) = connect(addr, b"h2", provider, timeout).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err(format!("{addr} does not speak HTTP/2 over TLS (ALPN h2), which gRPC needs"));
    }
    let call = async {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::post(format!("https://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(grpc_frame(message))))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let http = response.status().as_u16();
        let in_headers = grpc_status(response.headers());
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
        let in_trailers = body.trailers().and_then(grpc_status);
        in_headers
            .or(in_trailers)
            .ok_or_else(|| format!("HTTP {http} without a gRPC status (not a gRPC server, or a proxy error page)"))
    };
    tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| format!("no gRPC answer within {}", humantime::format_duration(timeout)))?
}

/// One uncompressed gRPC message frame.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

fn grpc_status(headers: &hyper::HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNIMPLEMENTED: i32 = 12;
const UNAUTHENTICATED: i32 = 16;

/// gRPC through the proxy: ExecuteScript without a credential must be refused by the API (16), not fail in the
/// proxy (Pixie's self-hosters' "ExecuteScript 500").
async fn grpc_route(addr: &Addr, provider: &Arc<CryptoProvider>, timeout: Duration) -> Check {
    const PATH: &str = "/px.api.vizierpb.VizierService/ExecuteScript";
    // Pixie's ExecuteScriptRequest: query_str (1) and cluster_id (3), so that the call gets as far as the credential.
    let mut message = vec![0x0a, 1, b'1', 0x1a, 36];
    message.extend_from_slice(b"00000000-0000-0000-0000-000000000000");
    match grpc_call(addr, PATH, &message, provider, timeout).await {
        // Refused for the missing credential (or the request's content): the API answered, not the proxy.
        Ok(code @ (UNAUTHENTICATED | INVALID_ARGUMENT)) => Check::ok(
            "grpc",
            format!("ExecuteScript reaches the API over HTTP/2 (gRPC status {code} without a credential)"),
        ),
        Ok(UNIMPLEMENTED) => Check::fail(
            "grpc",
            "ExecuteScript answered UNIMPLEMENTED: the proxy sends gRPC to a server without the API's services",
            "route gRPC (content-type application/grpc) to the cloud API, as `loupe cloud proxy` does",
        ),
        Ok(code) => Check::fail(
            "grpc",
            format!("ExecuteScript answered gRPC status {code}, not UNAUTHENTICATED"),
            "check the API's logs for this call",
        ),
        Err(why) => Check::fail(
            "grpc",
            format!("ExecuteScript through the proxy: {why}"),
            "the proxy must pass HTTP/2 (ALPN h2) through to the API for gRPC: use `loupe cloud proxy`, or \
             enable HTTP/2 and gRPC on your ingress",
        ),
    }
}

/// VZConn: TLS with a certificate for its name, and a registration without a deploy key refused as such.
async fn vzconn(
    args: &DoctorArgs,
    addr: &Addr,
    provider: &Arc<CryptoProvider>,
    roots: &Result<(rustls::RootCertStore, String), String>,
) -> Check {
    const PATH: &str = "/loupe.vzconn.v1.VZConnService/RegisterVizier";
    let (_, chain) = match connect(addr, b"h2", provider, args.timeout).await {
        Ok(c) => c,
        Err(why) => {
            return Check::fail(
                "vzconn",
                why,
                format!(
                    "expose VZConn at {addr} (vzconn-service, LoadBalancer on 51800) and open the port between the \
                     clusters; viziers then use `cloudAddr: {}:{}`",
                    args.domain, addr.port
                ),
            );
        }
    };
    let name = if addr.host.parse::<std::net::IpAddr>().is_ok() { args.domain.clone() } else { addr.host.clone() };
    let cert = certificate("vzconn", &chain, &name, roots, provider, args.expiry_warning);
    if cert.status == Status::Fail {
        return cert;
    }
    match grpc_call(addr, PATH, &[], provider, args.timeout).await {
        // Refused for lack of a deploy key, or throttled: either way VZConn itself answered.
        Ok(UNAUTHENTICATED | RESOURCE_EXHAUSTED) => {
            Check::ok("vzconn", format!("VZConn answers at {addr}; {}", cert.detail))
        }
        Ok(code) => Check::fail(
            "vzconn",
            format!("RegisterVizier at {addr} answered gRPC status {code}: not VZConn"),
            "point --vzconn-addr (and the viziers' cloudAddr) at vzconn-service, or route /loupe.vzconn.v1.* to it",
        ),
        Err(why) => Check::fail("vzconn", format!("RegisterVizier at {addr}: {why}"), "check VZConn's logs"),
    }
}

/// The metastore: reachable with its credentials; returned for the heartbeat check.
async fn metastore(args: &DoctorArgs, out: &mut Vec<Check>) -> Option<Arc<dyn loupe_metastore::Metastore>> {
    let sqlite = args.data_dir.join("loupe.db");
    let url = match &args.metastore_url {
        Some(url) => url.clone(),
        None if sqlite.exists() => format!("sqlite://{}", sqlite.display()),
        None => {
            out.push(Check::skip("metastore", "no --metastore-url and no SQLite metastore in --data-dir"));
            return None;
        }
    };
    let kind = if url.starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let options = loupe_metastore::ConnectOptions { max_connections: 1, acquire_timeout: args.timeout };
    let opened = tokio::time::timeout(args.timeout, async {
        let store = loupe_metastore::connect_with(&url, &options).await?;
        store.health_check().await?;
        Ok::<_, loupe_metastore::MetastoreError>(store)
    })
    .await;
    match opened {
        Ok(Ok(store)) => {
            out.push(Check::ok("metastore", format!("{kind} answers")));
            Some(store)
        }
        Ok(Err(e)) => {
            out.push(Check::fail(
                "metastore",
                format!("{kind}: {e}"),
                "check LOUPE_METASTORE_URL's host, port, user and password (the `db-password` secret) and that \
                 the database runs",
            ));
            None
        }
        Err(_) => {
            out.push(Check::fail(
                "metastore",
                format!("{kind}: no answer within {}", humantime::format_duration(args.timeout)),
                "check that the database runs and that this host may reach it",
            ));
            None
        }
    }
}

async fn nats(args: &DoctorArgs) -> Check {
    let Some(url) = &args.nats_url else {
        return Check::skip("nats", "no --nats-url (loupe up keeps its bus in process)");
    };
    let connected = tokio::time::timeout(args.timeout, async {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(args.timeout)
            .max_reconnects(Some(0))
            .connect(url.as_str())
            .await
            .map_err(|e| e.to_string())?;
        client.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(client.server_info().version)
    })
    .await;
    match connected {
        Ok(Ok(version)) => Check::ok("nats", format!("NATS {version} answers")),
        Ok(Err(e)) => Check::fail(
            "nats",
            format!("NATS: {e}"),
            "start NATS (the nats StatefulSet) and check LOUPE_NATS_URL's host, port and credentials",
        ),
        Err(_) => Check::fail(
            "nats",
            format!("NATS: no answer within {}", humantime::format_duration(args.timeout)),
            "start NATS (the nats StatefulSet) and check LOUPE_NATS_URL's host and port",
        ),
    }
}

async fn redis(args: &DoctorArgs) -> Check {
    let Some(url) = &args.redis_url else {
        return Check::skip("redis", "no --redis-url (sessions are kept in memory)");
    };
    let answered = tokio::time::timeout(args.timeout, async {
        let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
    })
    .await;
    match answered {
        Ok(Ok(_)) => Check::ok("redis", "Redis answers PING"),
        Ok(Err(e)) if e.contains("NOAUTH") || e.contains("WRONGPASS") || e.contains("uthentication") => Check::fail(
            "redis",
            format!("Redis refused the credentials: {e}"),
            "put Redis's password in LOUPE_REDIS_URL (redis://:PASSWORD@host:6379)",
        ),
        Ok(Err(e)) => Check::fail(
            "redis",
            format!("Redis: {e}"),
            "start Redis (the redis StatefulSet) and check LOUPE_REDIS_URL's host and port",
        ),
        Err(_) => Check::fail(
            "redis",
            format!("Redis: no answer within {}", humantime::format_duration(args.timeout)),
            "check LOUPE_REDIS_URL's host and port",
        ),
    }
}

/// Every org's viziers: at least one registered, each heard from within --heartbeat-age.
async fn viziers(args: &DoctorArgs, store: &dyn loupe_metastore::Metastore) -> Check {
    let listed = async {
        let mut all = Vec::new();
        for org in store.list_orgs().await? {
            for v in store.list_viziers(org.id).await? {
                all.push((org.name.clone(), v));
            }
        }
        Ok::<_, loupe_metastore::MetastoreError>(all)
    };
    let all = match tokio::time::timeout(args.timeout, listed).await {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => return Check::fail("viziers", format!("cannot list viziers: {e}"), "check the metastore"),
        Err(_) => return Check::fail("viziers", "listing viziers timed out", "check the metastore"),
    };
    if all.is_empty() {
        return Check::fail(
            "viziers",
            "no vizier has registered",
            "create a deploy key (`px deploy-key create`) and give it to the vizier (LOUPE_DEPLOY_KEY / the \
             deploy-key Secret); its cloudAddr must include the port (<domain>:443 or :51800) and trust the \
             cloud's CA; then read the connector's log",
        );
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let max_age_ns = i64::try_from(args.heartbeat_age.as_nanos()).unwrap_or(i64::MAX);
    let mut silent = Vec::new();
    for (org, v) in &all {
        match v.last_heartbeat_ns {
            Some(at) if now_ns.saturating_sub(at) <= max_age_ns => {}
            Some(at) => silent.push(format!(
                "{}/{} last heard {} ago",
                org,
                v.name,
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(now_ns.saturating_sub(at) / 1_000_000_000).unwrap_or(0)
                ))
            )),
            None => silent.push(format!("{org}/{} never sent a heartbeat", v.name)),
        }
    }
    if silent.is_empty() {
        Check::ok(
            "viziers",
            format!(
                "{} vizier(s), each heard from within {}",
                all.len(),
                humantime::format_duration(args.heartbeat_age)
            ),
        )
    } else {
        Check::fail(
            "viziers",
            silent.join("; "),
            "read that vizier's connector log (`kubectl -n pixie-system logs deploy/vizier-connector`): it must \
             reach VZConn; with split cloud services, VZConn and the API must share NATS (LOUPE_NATS_URL)",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_need_a_port() {
        let a = parse_addr("cloud.example.com:443").expect("ok");
        assert_eq!((a.host.as_str(), a.port), ("cloud.example.com", 443));
        let a = parse_addr("https://[::1]:56000/").expect("ok");
        assert_eq!((a.host.as_str(), a.port, a.to_string().as_str()), ("::1", 56000, "[::1]:56000"));
        assert_eq!(parse_addr("cloud.example.com").err().as_deref(), Some("it has no port"));
        assert_eq!(parse_addr("cloud.example.com:https").err().as_deref(), Some("\"https\" is not a port"));
        assert_eq!(parse_addr(":443").err().as_deref(), Some("the host is empty"));
    }

    #[test]
    fn presented_names_read_plainly() {
        let names = ["DnsName(\"localhost\")".to_string(), "IpAddress(127.0.0.1)".to_string(), "x".to_string()];
        assert_eq!(presented_names(&names), "localhost, 127.0.0.1, x");
    }

    #[test]
    fn the_table_prints_each_fix_under_its_check() {
        let checks = vec![
            Check::ok("address", "cloud address a:1"),
            Check::fail("dns", "a does not resolve", "add a record"),
            Check::skip("certificate", "the cloud address does not resolve"),
        ];
        assert_eq!(
            table(&checks),
            "CHECK        STATUS  DETAIL\n\
             address      ok      cloud address a:1\n\
             dns          fail    a does not resolve\n\
             \x20                    fix: add a record\n\
             certificate  skip    the cloud address does not resolve\n\
             1 check(s) failed: start with the first\n"
        );
    }
}
