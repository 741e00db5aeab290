//! Wiring of the TLS edge: `loupe setup init-secrets`, `loupe cloud proxy`, and the proxy `loupe up` starts in
//! front of its API.
//!
//! Owns the flags, the default paths under the data directory and what is printed or logged; the secrets and
//! the proxy themselves are `loupe-proxy`'s. Must not hold proxy or certificate logic of its own.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use loupe_proxy::secrets::{CA_CERT, INTERNAL_CERT, INTERNAL_KEY, SERVER_CERT, SERVER_KEY};
use loupe_proxy::{Outcome, Proxy, ProxyConfig, Report, San};

use crate::default_data_dir;

/// Name of the secrets directory inside the data directory.
pub(crate) const SECRETS_DIR: &str = "secrets";
/// Header by which `loupe up`'s proxy proves its requests to the API (`loupe_cloud::PROXY_SECRET_HEADER`).
const PROXY_SECRET_HEADER: &str = loupe_cloud::PROXY_SECRET_HEADER;

/// `loupe setup init-secrets` flags.
#[derive(Args, Clone, Debug)]
pub struct InitSecretsArgs {
    /// Where to write the secrets. Default: `<data-dir>/secrets`.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The deployment's domain: the server certificate also covers it and `*.<domain>`.
    #[arg(long, env = "LOUPE_DOMAIN")]
    pub domain: Option<String>,
    /// Another DNS name or IP address the server certificate must cover (repeatable).
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// The Kubernetes namespace the cloud runs in: the internal certificate (`internal.crt`, presented by the
    /// split services to each other) names each internal service as `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` and
    /// `<svc>.<ns>.svc.cluster.local`. Default with --k8s-secret: the Secret's namespace; else short names only.
    #[arg(long, env = "LOUPE_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// Another DNS name or IP address the internal certificate must cover (repeatable).
    #[arg(long = "internal-san", value_name = "NAME")]
    pub internal_sans: Vec<String>,
    /// The data directory (holds `secrets/` unless --dir says otherwise).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Keep the secrets in this Kubernetes Secret (run as a Job in the pod's namespace, with a service account
    /// allowed to get, create and patch it): keys it holds are kept, the missing ones generated and added; --dir
    /// is then only scratch space (mount an in-memory emptyDir there).
    #[arg(long, value_name = "NAME")]
    pub k8s_secret: Option<String>,
    /// Only these keys go into the Kubernetes Secret (repeatable), e.g. `vizier-query-token` for a vizier.
    #[arg(long = "only", value_name = "KEY", requires = "k8s_secret")]
    pub only: Vec<String>,
    /// The Secret's namespace. Default: the pod's own.
    #[arg(long, requires = "k8s_secret")]
    pub k8s_namespace: Option<String>,
    /// The Kubernetes API's URL. Default: in-cluster (`KUBERNETES_SERVICE_HOST`); plain http only to loopback.
    #[arg(long, requires = "k8s_secret", value_name = "URL")]
    pub k8s_api: Option<String>,
    /// File holding the bearer token for the API. Default: the pod's service account token.
    #[arg(long, requires = "k8s_secret", value_name = "FILE")]
    pub k8s_token_file: Option<PathBuf>,
}

/// `loupe cloud proxy` flags.
#[derive(Args, Clone, Debug)]
pub struct ProxyArgs {
    /// Address of the TLS listener (REST, gRPC and, later, the UI on one port).
    #[arg(long, env = "LOUPE_PROXY_LISTEN", default_value = "0.0.0.0:56000")]
    pub listen: SocketAddr,
    /// Also listen for plain HTTP here, answering every request with a redirect to https.
    #[arg(long, env = "LOUPE_PROXY_REDIRECT_LISTEN")]
    pub redirect_listen: Option<SocketAddr>,
    /// The cloud API to forward to: plain HTTP, or `https://` with --upstream-ca.
    #[arg(long, env = "LOUPE_PROXY_UPSTREAM", default_value = "http://127.0.0.1:51200")]
    pub upstream: String,
    /// PEM file of the only CA the upstream's certificate may chain to (`ca.crt` from `loupe setup init-secrets`,
    /// with `loupe cloud api --tls-cert internal.crt`); the upstream is then `https://`, its host the name checked.
    #[arg(long, env = "LOUPE_PROXY_UPSTREAM_CA", value_name = "FILE")]
    pub upstream_ca: Option<PathBuf>,
    /// PEM certificate chain to present. Default: `<data-dir>/secrets/server.crt`.
    #[arg(long, env = "LOUPE_TLS_CERT")]
    pub cert: Option<PathBuf>,
    /// PEM private key of the certificate. Default: `<data-dir>/secrets/server.key`.
    #[arg(long, env = "LOUPE_TLS_KEY")]
    pub key: Option<PathBuf>,
    /// The data directory whose `secrets/` holds the default certificate and key.
    #[arg(long, env = "LOUPE_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of /healthz, /readyz (the upstream API accepts connections) and /metrics (connections, failed
    /// handshakes, requests by protocol, upstream errors, redirects). No credential is asked there: keep it where
    /// only probes and Prometheus reach it.
    #[arg(long, env = "LOUPE_METRICS_LISTEN", default_value = "127.0.0.1:9098")]
    pub metrics_listen: SocketAddr,
}

/// The proxy flags of `loupe up`.
#[derive(Args, Clone, Debug)]
pub struct UpProxyArgs {
    /// Address of the TLS proxy in front of the cloud API (certificates from `<data-dir>/secrets`, generated on
    /// first start).
    #[arg(long, env = "LOUPE_PROXY_LISTEN", default_value = "127.0.0.1:56000")]
    pub proxy_listen: SocketAddr,
    /// Do not start the TLS proxy; the API is then reachable only over plain HTTP.
    #[arg(long)]
    pub no_proxy: bool,
    /// Set by `loupe up`: the per-process secret the proxy adds to every request for the API (never a flag).
    #[arg(skip)]
    pub upstream_secret: Option<String>,
}

/// A fresh secret for `loupe up`'s proxy to prove itself to its API with: the API listens on loopback, which
/// any local process reaches too, so the peer address alone proves nothing.
pub fn proxy_secret() -> Result<String> {
    loupe_auth::generate_shared_secret().context("failed to generate the proxy secret")
}

pub(crate) fn requested_names(domain: Option<&str>, sans: &[String]) -> Result<Vec<San>> {
    let mut names = Vec::new();
    if let Some(domain) = domain.map(str::trim).filter(|d| !d.is_empty() && *d != "localhost") {
        let domain = San::parse(domain).with_context(|| format!("invalid --domain {domain:?}"))?;
        if let San::Dns(name) = &domain {
            names.push(San::Dns(format!("*.{name}")));
        }
        names.insert(0, domain);
    }
    for san in sans {
        names.push(San::parse(san).with_context(|| format!("invalid --san {san:?}"))?);
    }
    Ok(names)
}

/// The cloud's internal listeners, by their Kubernetes Service names (deploy/cloud/base): what the API gateway
/// and the proxy dial, so what the internal certificate must name.
pub(crate) const INTERNAL_SERVICES: [&str; 5] = ["api-service", "auth", "profile", "scripts", "vzconn-internal"];

/// The names of the internal certificate: every internal service, short and qualified by `namespace`, and
/// `sans`.
pub(crate) fn internal_names(namespace: Option<&str>, sans: &[String]) -> Result<Vec<San>> {
    let mut names = Vec::new();
    let namespace = namespace.map(str::trim).filter(|ns| !ns.is_empty());
    for service in INTERNAL_SERVICES {
        names.push(San::Dns(service.to_owned()));
        if let Some(ns) = namespace {
            for name in
                [format!("{service}.{ns}"), format!("{service}.{ns}.svc"), format!("{service}.{ns}.svc.cluster.local")]
            {
                names.push(San::parse(&name).with_context(|| format!("invalid namespace {ns:?}"))?);
            }
        }
    }
    for san in sans {
        names.push(San::parse(san).with_context(|| format!("invalid --internal-san {san:?}"))?);
    }
    Ok(names)
}

fn missing_names_warning(report: &Report) -> Option<String> {
    if !report.missing_internal_names.is_empty() {
        let names: Vec<String> = report.missing_internal_names.iter().map(San::to_string).collect();
        // Printed apart: the server certificate's warning below is the one returned.
        eprintln!(
            "warning: {} does not cover {}: services reached by those names will be refused; remove {INTERNAL_CERT} \
             and {INTERNAL_KEY} and run `loupe setup init-secrets` again to reissue it with the same CA",
            report.path(INTERNAL_CERT).display(),
            names.join(", ")
        );
    }
    (!report.missing_names.is_empty()).then(|| {
        let names: Vec<String> = report.missing_names.iter().map(San::to_string).collect();
        format!(
            "{} does not cover {}: clients using those names will refuse it; remove {SERVER_CERT} and {SERVER_KEY} \
             and run `loupe setup init-secrets` again to reissue it with the same CA",
            report.path(SERVER_CERT).display(),
            names.join(", ")
        )
    })
}

/// The Kubernetes API `init-secrets --k8s-secret` talks to: in-cluster defaults, each overridable by a flag.
fn kube_api(args: &InitSecretsArgs) -> Result<loupe_proxy::k8s::KubeApi> {
    use loupe_proxy::k8s::{KubeApi, KubeConfig, SERVICE_ACCOUNT_DIR};
    let sa = Path::new(SERVICE_ACCOUNT_DIR);
    let mut config = if args.k8s_api.is_some() && args.k8s_token_file.is_some() {
        KubeConfig {
            api_url: String::new(),
            token: String::new(),
            ca_pem: std::fs::read(sa.join("ca.crt")).ok(),
            namespace: std::fs::read_to_string(sa.join("namespace")).map(|n| n.trim().to_owned()).unwrap_or_default(),
        }
    } else {
        KubeConfig::in_cluster(sa)?
    };
    if let Some(url) = &args.k8s_api {
        config.api_url.clone_from(url);
    }
    if let Some(file) = &args.k8s_token_file {
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read the API token {} (--k8s-token-file)", file.display()))?;
        config.token = token.trim().to_owned();
    }
    if let Some(ns) = &args.k8s_namespace {
        config.namespace.clone_from(ns);
    }
    Ok(KubeApi::new(config)?)
}

/// `loupe setup init-secrets --k8s-secret NAME`: the Secret gets every key it lacks; prints which were kept and
/// which added, never a value.
async fn init_k8s_secret(args: &InitSecretsArgs, name: &str, dir: &Path, names: &[San]) -> Result<()> {
    let api = kube_api(args)?;
    let namespace = args.namespace.as_deref().unwrap_or(api.namespace());
    let internal = internal_names(Some(namespace), &args.internal_sans)?;
    let report = loupe_proxy::k8s::sync_secret(&api, name, dir, names, &internal, &args.only)
        .await
        .with_context(|| format!("failed to initialise the Kubernetes Secret {name}"))?;
    for key in &report.kept {
        println!("kept    {name}/{key}");
    }
    for key in &report.added {
        println!("added   {name}/{key}");
    }
    if let Some(warning) = missing_names_warning(&report.files) {
        eprintln!("warning: {warning}");
    }
    tracing::info!(
        secret = name,
        created = report.created,
        kept = report.kept.len(),
        added = report.added.len(),
        "Kubernetes Secret initialised"
    );
    Ok(())
}

/// `loupe setup init-secrets`: creates what is absent, keeps what exists, and prints which is which.
pub async fn init_secrets(args: &InitSecretsArgs) -> Result<()> {
    let dir = args.dir.clone().unwrap_or_else(|| args.data_dir.join(SECRETS_DIR));
    let names = requested_names(args.domain.as_deref(), &args.sans)?;
    if let Some(name) = &args.k8s_secret {
        return init_k8s_secret(args, name, &dir, &names).await;
    }
    let internal = internal_names(args.namespace.as_deref(), &args.internal_sans)?;
    let report = loupe_proxy::init_secrets_with_internal(&dir, &names, &internal)
        .with_context(|| format!("failed to initialise the secrets in {}", dir.display()))?;
    for (name, outcome) in &report.files {
        let verb = match outcome {
            Outcome::Created => "created",
            Outcome::Kept => "kept   ",
        };
        println!("{verb} {}", report.path(name).display());
    }
    if let Some(warning) = missing_names_warning(&report) {
        eprintln!("warning: {warning}");
    }
    if report.files.iter().any(|(name, outcome)| *name == CA_CERT && *outcome == Outcome::Created) {
        println!(
            "Clients must trust the new CA: PX_CA_CERT={} (or add it to the system's or browser's authorities).",
            report.path(CA_CERT).display()
        );
    }
    Ok(())
}

/// `loupe cloud proxy`: the TLS proxy alone, until `shutdown`.
pub async fn run_proxy(args: &ProxyArgs, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
    let secrets = args.data_dir.join(SECRETS_DIR);
    let upstream_ca = match &args.upstream_ca {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("failed to read the upstream CA {} (--upstream-ca)", path.display()))?;
            tracing::info!(upstream = %args.upstream, ca = %path.display(), "forwarding to the API over TLS");
            Some(pem)
        }
        None => {
            tracing::info!(upstream = %args.upstream, "forwarding to the API over plain HTTP (no --upstream-ca)");
            None
        }
    };
    let config = ProxyConfig {
        listen: args.listen,
        redirect_listen: args.redirect_listen,
        upstream: args.upstream.clone(),
        upstream_ca,
        cert: args.cert.clone().unwrap_or_else(|| secrets.join(SERVER_CERT)),
        key: args.key.clone().unwrap_or_else(|| secrets.join(SERVER_KEY)),
        upstream_headers: Vec::new(),
    };
    let proxy = bind(&config, "").await?;
    let ops_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("failed to listen on {} (--metrics-listen)", args.metrics_listen))?;
    tracing::info!(addr = %ops_listener.local_addr()?, "health and metrics listening (/healthz, /readyz, /metrics)");
    let ops = ops_router(proxy.stats(), args.upstream.clone());
    // The health listener stops with the proxy (a oneshot: `cloud`'s stop signal would make the modules a cycle).
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let ops = tokio::spawn(loupe_cloud::serve_router(ops_listener, ops, async move {
        let _ = stop_rx.await;
    }));
    proxy.serve(shutdown).await;
    let _ = stop_tx.send(());
    ops.await.context("the health listener panicked")?.context("the health listener failed")?;
    Ok(())
}

/// `/healthz`, `/readyz` (the upstream accepts a TCP connection within 2 s) and `/metrics` (the proxy's counters).
fn ops_router(stats: std::sync::Arc<loupe_proxy::ProxyStats>, upstream: String) -> axum::Router {
    use axum::http::{StatusCode, header};
    use axum::routing::get;
    let json = |text: String| ([(header::CONTENT_TYPE, "application/json")], text);
    let authority =
        upstream.split_once("://").map_or(upstream.as_str(), |(_, rest)| rest).trim_end_matches('/').to_owned();
    axum::Router::new()
        .route("/healthz", get(move || async move { json(r#"{"status":"ok"}"#.into()) }))
        .route(
            "/readyz",
            get(move || {
                let authority = authority.clone();
                async move {
                    let connect = tokio::net::TcpStream::connect(authority.as_str());
                    match tokio::time::timeout(std::time::Duration::from_secs(2), connect).await {
                        Ok(Ok(_)) => (StatusCode::OK, json(r#"{"status":"ok","upstream":"ok"}"#.into())),
                        Ok(Err(e)) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            json(format!(r#"{{"status":"unavailable","upstream":{:?}}}"#, e.to_string())),
                        ),
                        Err(_) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            json(r#"{"status":"unavailable","upstream":"no answer within 2s"}"#.into()),
                        ),
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let stats = std::sync::Arc::clone(&stats);
                async move { stats.prometheus() }
            }),
        )
}

/// Binds the proxy and logs where it listens; `hint` ends the error message when it fails.
async fn bind(config: &ProxyConfig, hint: &str) -> Result<Proxy> {
    let proxy = Proxy::bind(config).await.with_context(|| {
        if config.cert.exists() {
            format!("failed to start the TLS proxy{hint}")
        } else {
            format!(
                "failed to start the TLS proxy ({} is missing: run `loupe setup init-secrets`, or pass --cert and --key)",
                config.cert.display()
            )
        }
    })?;
    let addr = proxy.local_addr();
    tracing::info!(%addr, upstream = %proxy.upstream(), "TLS proxy listening");
    if let Some(redirect) = proxy.redirect_addr() {
        tracing::info!(%redirect, "redirecting plain HTTP to https");
    }
    Ok(proxy)
}

/// For `loupe up`: generates the secrets under `data_dir` if absent, and starts the TLS proxy in front of the
/// API at `api`, serving until `shutdown`.
pub async fn start_for_up(
    args: &UpProxyArgs,
    data_dir: &Path,
    domain: &str,
    api: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>> {
    let dir = data_dir.join(SECRETS_DIR);
    let report = loupe_proxy::init_secrets(&dir, &requested_names(Some(domain), &[])?)
        .with_context(|| format!("failed to initialise the TLS secrets in {}", dir.display()))?;
    let ca = report.path(CA_CERT);
    if report.created_any() {
        tracing::info!(dir = %dir.display(), "generated TLS secrets (a private CA and a server certificate)");
    }
    if let Some(warning) = missing_names_warning(&report) {
        tracing::warn!("{warning}");
    }
    // The API binds a wildcard address or a specific one; the proxy reaches it on loopback in the first case.
    let upstream_ip = if api.ip().is_unspecified() { Ipv4Addr::LOCALHOST.into() } else { api.ip() };
    let config = ProxyConfig {
        listen: args.proxy_listen,
        redirect_listen: None,
        upstream: format!("http://{}", SocketAddr::new(upstream_ip, api.port())),
        upstream_ca: None,
        cert: dir.join(SERVER_CERT),
        key: dir.join(SERVER_KEY),
        upstream_headers: args.upstream_secret.iter().map(|s| (PROXY_SECRET_HEADER.to_owned(), s.clone())).collect(),
    };
    let proxy = bind(&config, " (change --proxy-listen, or pass --no-proxy)").await?;
    let addr = proxy.local_addr();
    tracing::info!(
        ca = %ca.display(),
        "trust this CA to reach the cloud over TLS; try: PX_CLOUD_ADDR=https://{addr} PX_CA_CERT={} px auth login --email <you>",
        ca.display()
    );
    Ok(tokio::spawn(proxy.serve(shutdown)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_internal_names_are_every_service_short_and_in_the_namespace() {
        let short = internal_names(None, &[]).expect("names");
        assert_eq!(short, INTERNAL_SERVICES.map(|s| San::Dns(s.to_owned())).to_vec());
        let names = internal_names(Some("plc"), &["10.0.0.7".to_owned()]).expect("names");
        assert_eq!(names.len(), INTERNAL_SERVICES.len() * 4 + 1);
        for wanted in ["auth", "profile.plc", "scripts.plc.svc", "vzconn-internal.plc.svc.cluster.local"] {
            assert!(names.contains(&San::Dns(wanted.to_owned())), "{wanted}");
        }
        assert!(names.contains(&San::Ip("10.0.0.7".parse().expect("ip"))));
        assert!(internal_names(Some("bad ns"), &[]).is_err());
        assert!(internal_names(None, &["not a name".to_owned()]).is_err());
    }
}
