//! The secrets directory kept in a Kubernetes Secret, for `loupe setup init-secrets --k8s-secret NAME` run as a
//! Job: the services then mount the Secret, and nothing secret lives in Git or on a node's disk.
//!
//! Owns the few Kubernetes API calls this needs (get, create and merge-patch one Secret, with the pod's service
//! account token and CA) and the rule of [`crate::secrets`] carried over: a key the Secret holds is never
//! changed; only keys it lacks are added. The keys the Secret already has are first written into the (private,
//! usually in-memory) directory, so that what is generated next is consistent with them: a server certificate
//! is issued by the CA already stored, not by a new one. Must not log or print a secret's value.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Request, StatusCode, Uri};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject as _};

use crate::secrets::{
    CA_CERT, CA_KEY, DB_PASSWORD, INTERNAL_CERT, INTERNAL_KEY, JWT_SIGNING_KEY, REDIS_PASSWORD, Report, SERVER_CERT,
    SERVER_KEY, SETTINGS_KEY, San, VIZIER_CREDENTIAL_KEY, VIZIER_QUERY_TOKEN, init_secrets_with_internal,
};

/// Where a pod finds its service account's credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Every key the secrets directory can hold, in the order they are reported.
pub const SECRET_KEYS: [&str; 12] = [
    CA_CERT,
    CA_KEY,
    SERVER_CERT,
    SERVER_KEY,
    INTERNAL_CERT,
    INTERNAL_KEY,
    JWT_SIGNING_KEY,
    DB_PASSWORD,
    REDIS_PASSWORD,
    VIZIER_QUERY_TOKEN,
    VIZIER_CREDENTIAL_KEY,
    SETTINGS_KEY,
];

/// A response body larger than this is refused: one Secret of a few keys is a few kilobytes.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// Longest wait for one API call, connection included.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Errors of the Kubernetes side of `init-secrets`.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The pod's service account files or the API server's address could not be found.
    #[error("not running in a Kubernetes pod with a service account token ({0}); pass --k8s-api and --k8s-token-file")]
    NotInCluster(String),
    /// A configuration value is unusable.
    #[error("{0}")]
    Config(String),
    /// The API server could not be reached or the exchange failed.
    #[error("the Kubernetes API at {url} could not be reached: {reason}")]
    Unreachable {
        /// The API server's base URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The API server answered with an error status.
    #[error("the Kubernetes API refused to {action} Secret {name}: HTTP {status}: {message}")]
    Refused {
        /// `get`, `create` or `patch`.
        action: &'static str,
        /// The Secret's name.
        name: String,
        /// The HTTP status.
        status: u16,
        /// The API server's message (a `Status` object's `message`), never a secret value.
        message: String,
    },
    /// The Secret holds a value that is not valid base64 or a key the directory cannot hold.
    #[error("Secret {name} is malformed: {reason}")]
    Malformed {
        /// The Secret's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Writing or generating the secrets directory failed.
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
    /// A file of the secrets directory could not be read or written.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// How to reach the API server and which namespace the Secret lives in.
#[derive(Clone)]
pub struct KubeConfig {
    /// Base URL, `https://host:port` (plain `http://` only to a loopback address, for tests and `kubectl proxy`).
    pub api_url: String,
    /// The bearer token (the service account's).
    pub token: String,
    /// The API server's CA certificate (PEM); the system's roots are not used.
    pub ca_pem: Option<Vec<u8>>,
    /// The namespace of the Secret.
    pub namespace: String,
}

impl std::fmt::Debug for KubeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeConfig")
            .field("api_url", &self.api_url)
            .field("token", &"[REDACTED]")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl KubeConfig {
    /// The pod's own configuration: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service account's token, CA and
    /// namespace files under `sa_dir`.
    pub fn in_cluster(sa_dir: &Path) -> Result<Self, KubeError> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST")
            .map_err(|_| KubeError::NotInCluster("KUBERNETES_SERVICE_HOST is not set".into()))?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let read = |name: &str| {
            std::fs::read(sa_dir.join(name))
                .map_err(|e| KubeError::NotInCluster(format!("{}: {e}", sa_dir.join(name).display())))
        };
        let token = String::from_utf8_lossy(&read("token")?).trim().to_owned();
        let namespace = String::from_utf8_lossy(&read("namespace")?).trim().to_owned();
        Ok(Self { api_url: format!("https://{host}:{port}"), token, ca_pem: Some(read("ca.crt")?), namespace })
    }
}

/// A client for the one Secret calls `init-secrets` makes.
pub struct KubeApi {
    config: KubeConfig,
    base: Uri,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl KubeApi {
    /// The namespace the Secret is kept in (the internal certificate names the services in it).
    pub fn namespace(&self) -> &str {
        &self.config.namespace
    }

    /// Checks `config` and prepares TLS with its CA.
    pub fn new(config: KubeConfig) -> Result<Self, KubeError> {
        let base: Uri = config
            .api_url
            .trim_end_matches('/')
            .parse()
            .map_err(|e| KubeError::Config(format!("invalid Kubernetes API URL {:?}: {e}", config.api_url)))?;
        let host = base.host().unwrap_or_default().trim_matches(['[', ']']);
        let tls = match base.scheme_str() {
            Some("https") => Some(tls_connector(config.ca_pem.as_deref())?),
            Some("http") => {
                // The token would cross the network in clear: only a local API (kubectl proxy, tests) is allowed.
                let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(KubeError::Config(format!(
                        "refusing to send the service account token over plain http to {host}: use https"
                    )));
                }
                None
            }
            _ => {
                return Err(KubeError::Config(format!("the Kubernetes API URL {:?} needs http(s)://", config.api_url)));
            }
        };
        if config.namespace.is_empty()
            || !config.namespace.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(KubeError::Config(format!("invalid namespace {:?}", config.namespace)));
        }
        Ok(Self { config, base, tls })
    }

    /// The Secret's data, or `None` when it does not exist.
    pub async fn get_secret(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, KubeError> {
        let path = format!("/api/v1/namespaces/{}/secrets/{name}", self.config.namespace);
        let (status, body) = self.call(Method::GET, &path, None).await?;
        match status {
            StatusCode::OK => decode_data(name, &body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(refused("get", name, s, &body)),
        }
    }

    /// Creates the Secret with `data`. `Ok(false)` when another writer created it first (409).
    pub async fn create_secret(&self, name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<bool, KubeError> {
        let path = format!("/api/v1/namespaces/{}/secrets", self.config.namespace);
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/managed-by": "loupe-init-secrets"},
            },
            "type": "Opaque",
            "data": encode_data(data),
        });
        let (status, resp) = self.call(Method::POST, &path, Some(("application/json", body.to_string()))).await?;
        match status {
            StatusCode::CREATED | StatusCode::OK => Ok(true),
            StatusCode::CONFLICT => Ok(false),
            s => Err(refused("create", name, s, &resp)),
        }
    }

    /// Adds `data`'s keys to the Secret (a JSON merge patch naming only them: other keys are untouched).
    pub async fn add_secret_keys(&self, name: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<(), KubeError> {
        let path = format!("/api/v1/namespaces/{}/secrets/{name}", self.config.namespace);
        let body = serde_json::json!({ "data": encode_data(data) });
        let (status, resp) =
            self.call(Method::PATCH, &path, Some(("application/merge-patch+json", body.to_string()))).await?;
        match status {
            StatusCode::OK => Ok(()),
            s => Err(refused("patch", name, s, &resp)),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> Result<(StatusCode, Bytes), KubeError> {
        tokio::time::timeout(CALL_TIMEOUT, self.call_inner(method, path, body))
            .await
            .map_err(|_| self.unreachable(format!("no answer within {CALL_TIMEOUT:?}")))?
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, String)>,
    ) -> Result<(StatusCode, Bytes), KubeError> {
        let host = self.base.host().unwrap_or_default().to_owned();
        let default_port = if self.tls.is_some() { 443 } else { 80 };
        let port = self.base.port_u16().unwrap_or(default_port);
        let tcp = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let authority = self.base.authority().map(ToString::to_string).unwrap_or(host.clone());
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {}", self.config.token))
            .header(hyper::header::ACCEPT, "application/json");
        let payload = match body {
            Some((content_type, text)) => {
                request = request.header(hyper::header::CONTENT_TYPE, content_type);
                Bytes::from(text)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload)).map_err(|e| KubeError::Config(e.to_string()))?;
        match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| KubeError::Config(format!("invalid API server name {host:?}: {e}")))?;
                let stream = tls.connect(name, tcp).await.map_err(|e| self.unreachable(e.to_string()))?;
                self.exchange(hyper_util::rt::TokioIo::new(stream), request).await
            }
            None => self.exchange(hyper_util::rt::TokioIo::new(tcp), request).await,
        }
    }

    async fn exchange<IO>(&self, io: IO, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), KubeError>
    where
        IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| self.unreachable(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let response = sender.send_request(request).await.map_err(|e| self.unreachable(e.to_string()))?;
        let status = response.status();
        let limited = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BYTES);
        let body = limited.collect().await.map_err(|e| self.unreachable(e.to_string()))?.to_bytes();
        conn.abort();
        Ok((status, body))
    }

    fn unreachable(&self, reason: String) -> KubeError {
        KubeError::Unreachable { url: self.config.api_url.clone(), reason }
    }
}

fn tls_connector(ca_pem: Option<&[u8]>) -> Result<tokio_rustls::TlsConnector, KubeError> {
    let pem = ca_pem.ok_or_else(|| KubeError::Config("https needs the API server's CA certificate".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| KubeError::Config(format!("the API server's CA is not PEM: {e}")))?;
        roots.add(cert).map_err(|e| KubeError::Config(format!("the API server's CA is unusable: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| KubeError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

fn refused(action: &'static str, name: &str, status: StatusCode, body: &[u8]) -> KubeError {
    // A `Status` object's message; never the body itself, which for a Secret could hold values.
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    KubeError::Refused { action, name: name.to_owned(), status: status.as_u16(), message }
}

fn decode_data(name: &str, body: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, KubeError> {
    let malformed = |reason: String| KubeError::Malformed { name: name.to_owned(), reason };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("the API's answer is not JSON: {e}")))?;
    let mut data = BTreeMap::new();
    if let Some(map) = value.get("data").and_then(|d| d.as_object()) {
        for (key, encoded) in map {
            let text = encoded.as_str().ok_or_else(|| malformed(format!("key {key} is not a string")))?;
            let bytes = BASE64.decode(text).map_err(|_| malformed(format!("key {key} is not base64")))?;
            data.insert(key.clone(), bytes);
        }
    }
    Ok(data)
}

fn encode_data(data: &BTreeMap<String, Vec<u8>>) -> serde_json::Map<String, serde_json::Value> {
    data.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(BASE64.encode(v)))).collect()
}

/// What [`sync_secret`] did, key by key.
#[derive(Debug, Clone)]
pub struct SyncReport {
    /// Whether the Secret was created by this run.
    pub created: bool,
    /// Keys the Secret already held, kept as they were.
    pub kept: Vec<String>,
    /// Keys this run added.
    pub added: Vec<String>,
    /// The directory's own report (what was generated in it).
    pub files: Report,
}

/// Makes the Secret `name` hold every key of the secrets directory (or only those in `only`, when not empty):
/// its existing keys are copied into `dir` first and kept, the rest is generated by
/// [`init_secrets_with_internal`] (the internal certificate for `internal_names`) and added.
pub async fn sync_secret(
    api: &KubeApi,
    name: &str,
    dir: &Path,
    extra_names: &[San],
    internal_names: &[San],
    only: &[String],
) -> Result<SyncReport, KubeError> {
    for key in only {
        if !SECRET_KEYS.contains(&key.as_str()) {
            return Err(KubeError::Config(format!(
                "unknown secret {key:?} (--only): one of {}",
                SECRET_KEYS.join(", ")
            )));
        }
    }
    let wanted: Vec<&str> =
        SECRET_KEYS.iter().copied().filter(|k| only.is_empty() || only.iter().any(|o| o == k)).collect();
    // Two attempts: a Job racing another writer finds the Secret the second time and only adds to it.
    for _ in 0..2 {
        let existing = api.get_secret(name).await?;
        if let Some(data) = &existing {
            restore_into(name, dir, data)?;
        }
        let files = init_secrets_with_internal(dir, extra_names, internal_names)?;
        let held: BTreeMap<String, Vec<u8>> = existing.clone().unwrap_or_default();
        let mut missing = BTreeMap::new();
        for key in &wanted {
            if !held.contains_key(*key) {
                let path = dir.join(key);
                let bytes = std::fs::read(&path).map_err(|source| KubeError::Io { action: "read", path, source })?;
                missing.insert((*key).to_owned(), bytes);
            }
        }
        let kept: Vec<String> = wanted.iter().filter(|k| held.contains_key(**k)).map(|k| (*k).to_owned()).collect();
        let added: Vec<String> = missing.keys().cloned().collect();
        match existing {
            None => {
                if api.create_secret(name, &missing).await? {
                    return Ok(SyncReport { created: true, kept, added, files });
                }
                tracing::info!(secret = name, "the Secret was created meanwhile by another writer; reading it again");
            }
            Some(_) => {
                if !missing.is_empty() {
                    api.add_secret_keys(name, &missing).await?;
                }
                return Ok(SyncReport { created: false, kept, added, files });
            }
        }
    }
    Err(KubeError::Config(format!("Secret {name} changed twice while it was being written; run again")))
}

/// Writes the Secret's known keys into `dir` where the files are absent, with the permissions
/// [`init_secrets_with_internal`] gives them, so that it keeps them and builds on them.
fn restore_into(name: &str, dir: &Path, data: &BTreeMap<String, Vec<u8>>) -> Result<(), KubeError> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|source| KubeError::Io {
        action: "create",
        path: dir.to_owned(),
        source,
    })?;
    for (key, bytes) in data {
        if !SECRET_KEYS.contains(&key.as_str()) {
            // Someone else's key in the same Secret: left alone, never written to disk.
            tracing::debug!(secret = name, key, "ignoring a key init-secrets does not manage");
            continue;
        }
        let path = dir.join(key);
        if path.exists() {
            continue;
        }
        let mode = if key.ends_with(".crt") { 0o644 } else { 0o600 };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(|source| KubeError::Io { action: "create", path: path.clone(), source })?;
        file.write_all(bytes).map_err(|source| KubeError::Io { action: "write", path, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Against a local HTTP server answering as the Kubernetes API server does (the JSON shapes and statuses of
    //! a real one's `/api/v1/namespaces/{ns}/secrets` calls), keeping Secrets in memory.
    use super::*;
    use axum::extract::{Path as AxPath, State};
    use axum::http::HeaderMap;
    use axum::routing::get;
    use std::sync::Mutex;

    type Store = Arc<Mutex<BTreeMap<String, serde_json::Value>>>;
    const TOKEN: &str = "test-service-account-token";

    fn status(code: u16, reason: &str, message: &str) -> (axum::http::StatusCode, String) {
        // The `Status` object a real API server returns with an error.
        let body = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code});
        (axum::http::StatusCode::from_u16(code).expect("status"), body.to_string())
    }

    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
    }

    async fn fake_api(store: Store) -> String {
        async fn one(
            State(store): State<Store>,
            headers: HeaderMap,
            AxPath((ns, name)): AxPath<(String, String)>,
            method: axum::http::Method,
            body: String,
        ) -> (axum::http::StatusCode, String) {
            if !authorized(&headers) {
                return status(401, "Unauthorized", "Unauthorized");
            }
            let key = format!("{ns}/{name}");
            let mut store = store.lock().expect("lock");
            match method.as_str() {
                "GET" => match store.get(&key) {
                    Some(s) => (axum::http::StatusCode::OK, s.to_string()),
                    None => status(404, "NotFound", &format!("secrets \"{name}\" not found")),
                },
                "PATCH" => {
                    assert_eq!(
                        headers.get("content-type").and_then(|v| v.to_str().ok()),
                        Some("application/merge-patch+json")
                    );
                    let Some(secret) = store.get_mut(&key) else {
                        return status(404, "NotFound", &format!("secrets \"{name}\" not found"));
                    };
                    let patch: serde_json::Value = serde_json::from_str(&body).expect("patch json");
                    for (k, v) in patch["data"].as_object().expect("data") {
                        secret["data"][k] = v.clone();
                    }
                    (axum::http::StatusCode::OK, secret.to_string())
                }
                _ => status(405, "MethodNotAllowed", "method not allowed"),
            }
        }
        async fn create(
            State(store): State<Store>,
            headers: HeaderMap,
            AxPath(ns): AxPath<String>,
            body: String,
        ) -> (axum::http::StatusCode, String) {
            if !authorized(&headers) {
                return status(401, "Unauthorized", "Unauthorized");
            }
            let secret: serde_json::Value = serde_json::from_str(&body).expect("secret json");
            let name = secret["metadata"]["name"].as_str().expect("name").to_owned();
            let mut store = store.lock().expect("lock");
            let key = format!("{ns}/{name}");
            if store.contains_key(&key) {
                return status(409, "AlreadyExists", &format!("secrets \"{name}\" already exists"));
            }
            store.insert(key, secret.clone());
            (axum::http::StatusCode::CREATED, secret.to_string())
        }
        let app = axum::Router::new()
            .route("/api/v1/namespaces/{ns}/secrets/{name}", get(one).patch(one))
            .route("/api/v1/namespaces/{ns}/secrets", axum::routing::post(create))
            .with_state(store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn api(url: &str, token: &str) -> KubeApi {
        KubeApi::new(KubeConfig { api_url: url.into(), token: token.into(), ca_pem: None, namespace: "plc".into() })
            .expect("api")
    }

    fn data_of(store: &Store, name: &str) -> BTreeMap<String, Vec<u8>> {
        let s = store.lock().expect("lock");
        decode_data(name, s[&format!("plc/{name}")].to_string().as_bytes()).expect("decode")
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("loupe-k8s-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[tokio::test]
    async fn creates_the_secret_then_keeps_it_and_adds_only_what_is_missing() {
        let store: Store = Arc::default();
        let url = fake_api(Arc::clone(&store)).await;
        let names = [San::Dns("loupe.example.com".into())];

        let first =
            sync_secret(&api(&url, TOKEN), "loupe-secrets", &scratch("a"), &names, &[], &[]).await.expect("sync");
        assert!(first.created);
        assert_eq!(first.added.len(), SECRET_KEYS.len());
        let created = data_of(&store, "loupe-secrets");
        assert_eq!(created.keys().map(String::as_str).collect::<Vec<_>>().len(), SECRET_KEYS.len());

        // A second run from an empty directory (a new Job pod) changes nothing.
        let second =
            sync_secret(&api(&url, TOKEN), "loupe-secrets", &scratch("b"), &names, &[], &[]).await.expect("sync");
        assert!(!second.created);
        assert!(second.added.is_empty());
        assert_eq!(data_of(&store, "loupe-secrets"), created);

        // A Secret someone made with only a database password: the password is kept, the rest is added, and the
        // server certificate is issued by the CA that is then stored with it.
        {
            let mut s = store.lock().expect("lock");
            s.insert(
                "plc/other".into(),
                serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "other"},
                    "data": {"db-password": BASE64.encode("chosen-by-hand"), "unrelated": BASE64.encode("x")}}),
            );
        }
        let third = sync_secret(&api(&url, TOKEN), "other", &scratch("c"), &names, &[], &[]).await.expect("sync");
        assert_eq!(third.kept, vec![DB_PASSWORD.to_owned()]);
        let other = data_of(&store, "other");
        assert_eq!(other[DB_PASSWORD], b"chosen-by-hand");
        assert_eq!(other["unrelated"], b"x");
        assert!(other.contains_key(SERVER_CERT) && other.contains_key(CA_KEY));
        assert!(String::from_utf8_lossy(&other[SERVER_CERT]).contains("BEGIN CERTIFICATE"));
        assert!(String::from_utf8_lossy(&other[INTERNAL_CERT]).contains("BEGIN CERTIFICATE"));
        assert!(other.contains_key(INTERNAL_KEY));
    }

    #[tokio::test]
    async fn only_writes_the_keys_asked_for() {
        let store: Store = Arc::default();
        let url = fake_api(Arc::clone(&store)).await;
        let only = vec![VIZIER_QUERY_TOKEN.to_owned()];
        let report =
            sync_secret(&api(&url, TOKEN), "vizier-secrets", &scratch("d"), &[], &[], &only).await.expect("sync");
        assert_eq!(report.added, only);
        let data = data_of(&store, "vizier-secrets");
        assert_eq!(data.keys().cloned().collect::<Vec<_>>(), only);
        assert_eq!(data[VIZIER_QUERY_TOKEN].len(), 64);

        let err = sync_secret(&api(&url, TOKEN), "x", &scratch("e"), &[], &[], &["ca.pem".into()])
            .await
            .expect_err("an unknown key is refused");
        assert!(err.to_string().contains("unknown secret \"ca.pem\""), "{err}");
    }

    #[tokio::test]
    async fn a_refused_token_is_a_clear_error_that_names_no_secret_value() {
        let store: Store = Arc::default();
        let url = fake_api(Arc::clone(&store)).await;
        let err = sync_secret(&api(&url, "wrong"), "loupe-secrets", &scratch("f"), &[], &[], &[])
            .await
            .expect_err("a wrong token is refused");
        let text = err.to_string();
        assert!(text.contains("HTTP 401") && text.contains("get Secret loupe-secrets"), "{text}");
        assert!(store.lock().expect("lock").is_empty());
    }

    #[test]
    fn plain_http_is_refused_off_loopback_and_the_token_is_never_printed() {
        let config = KubeConfig {
            api_url: "http://10.0.0.1:6443".into(),
            token: "secret-token".into(),
            ca_pem: None,
            namespace: "plc".into(),
        };
        assert!(!format!("{config:?}").contains("secret-token"));
        let err = KubeApi::new(config).err().expect("refused");
        assert!(err.to_string().contains("plain http"), "{err}");
    }
}
