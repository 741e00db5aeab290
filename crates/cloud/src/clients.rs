//! The generated gRPC clients of the cloud services over one channel type, `ServiceChannel`, which is either an
//! in-process service (`loupe up`, tests) or a network connection (`loupe cloud api` in front of separate
//! `loupe cloud auth|profile|scripts` processes). Callers cannot tell the two apart: requests are encoded,
//! routed and decoded the same way.
//!
//! Remote channels are TLS by default (`InternalTls::Verified`): the server's certificate must chain to the
//! internal CA and name the address's host (a Kubernetes service name such as `auth`). Plain HTTP/2 is only
//! taken when the caller chose `InternalTls::Insecure` explicitly.
//!
//! Owns which service kind answers which gRPC service, and channel construction. Must not hold business rules.

use std::convert::Infallible;

use loupe_proto::cloudpb::{
    api_key_service_client::ApiKeyServiceClient, auth_service_client::AuthServiceClient,
    cron_script_service_client::CronScriptServiceClient, deploy_key_service_client::DeployKeyServiceClient,
    export_target_service_client::ExportTargetServiceClient, profile_service_client::ProfileServiceClient,
    retention_service_client::RetentionServiceClient, script_service_client::ScriptServiceClient,
    service_health_client::ServiceHealthClient, vizier_info_service_client::VizierInfoServiceClient,
};
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;

use crate::services::{CloudServices, ServiceKind};

/// Any error a channel can fail with (a transport failure; in-process channels never fail).
///
/// A named type rather than a bare `Box<dyn Error>`: the generated clients' futures must be `Send` for every
/// lifetime inside axum handlers, and the boxed trait object's conversion trips that check.
///
/// Remote channels put a `tonic::Status` in it, which the clients find in the source chain and return as is.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(#[source] Box<dyn std::error::Error + Send + Sync>);

/// A gRPC channel to one service process, in process or remote.
pub type ServiceChannel =
    BoxCloneSyncService<http::Request<tonic::body::Body>, http::Response<tonic::body::Body>, ChannelError>;

/// Errors building remote channels.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A service address is not a usable URI.
    #[error("invalid {service} service address {addr:?}: {reason}")]
    InvalidAddress {
        /// Which service.
        service: &'static str,
        /// The address given.
        addr: String,
        /// Why it was refused.
        reason: String,
    },
}

/// How remote channels secure the hop to another cloud process.
#[derive(Clone)]
pub enum InternalTls {
    /// TLS, trusting only the CA in this PEM; the server name checked is the address's host.
    Verified {
        /// The internal CA's certificate(s), PEM.
        ca_pem: Vec<u8>,
    },
    /// Plain HTTP/2: only where the operator said so (`--insecure-internal`).
    Insecure,
}

impl std::fmt::Debug for InternalTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Verified { .. } => "InternalTls::Verified",
            Self::Insecure => "InternalTls::Insecure",
        })
    }
}

impl InternalTls {
    /// The URL to dial for `addr`: a bare `host:port` gets the scheme of the mode; a scheme that contradicts the
    /// mode is refused rather than silently changing the security of the hop.
    fn url(&self, addr: &str) -> Result<String, String> {
        let (wanted, other) = match self {
            Self::Verified { .. } => ("https", "http"),
            Self::Insecure => ("http", "https"),
        };
        match addr.split_once("://") {
            None => Ok(format!("{wanted}://{addr}")),
            Some((scheme, _)) if scheme.eq_ignore_ascii_case(wanted) => Ok(addr.to_owned()),
            Some((scheme, _)) if scheme.eq_ignore_ascii_case(other) => Err(match self {
                Self::Verified { .. } => "plain http:// while internal TLS is on (--internal-ca): use https://".into(),
                Self::Insecure => "https:// needs the internal CA (--internal-ca) to verify the server".into(),
            }),
            Some((scheme, _)) => Err(format!("unsupported scheme {scheme:?}: use {wanted}://")),
        }
    }
}

/// Addresses of the service processes, `https://host:port` (or `http://` with [`InternalTls::Insecure`]).
#[derive(Debug, Clone)]
pub struct ServiceAddrs {
    /// `loupe cloud auth`.
    pub auth: String,
    /// `loupe cloud profile`.
    pub profile: String,
    /// `loupe cloud scripts`.
    pub scripts: String,
}

/// One channel per service kind.
#[derive(Debug, Clone)]
pub struct ServiceClients {
    auth: ServiceChannel,
    profile: ServiceChannel,
    scripts: ServiceChannel,
}

/// A channel answered by `routes` in this process.
fn in_process(router: axum::Router) -> ServiceChannel {
    let router = tower::ServiceExt::<http::Request<tonic::body::Body>>::map_response(
        router,
        |response: axum::response::Response| response.map(tonic::body::Body::new),
    );
    let routes =
        tower::ServiceExt::<http::Request<tonic::body::Body>>::map_err(router, |never: Infallible| match never {});
    BoxCloneSyncService::new(routes)
}

/// A channel to `addr`, connected on first use and reconnected after failures, so a service started later or
/// restarted is picked up without restarting the caller.
fn remote(service: &'static str, addr: &str, tls: &InternalTls) -> Result<ServiceChannel, ClientError> {
    let invalid = |reason: String| ClientError::InvalidAddress { service, addr: addr.to_owned(), reason };
    let url = tls.url(addr).map_err(invalid)?;
    let mut endpoint = tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(3));
    if let InternalTls::Verified { ca_pem } = tls {
        // Only the internal CA is trusted (no system roots); tonic checks the URI's host as the server name.
        let config = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(ca_pem))
            .assume_http2(true)
            .timeout(std::time::Duration::from_secs(10));
        endpoint = endpoint.tls_config(config).map_err(|e| invalid(error_chain(&e)))?;
    }
    let channel = endpoint.connect_lazy();
    let addr = addr.to_owned();
    // The transport's own words ("tcp connect error") do not say what is down: name the service, and log where
    // it was looked for, with the whole cause (a refused certificate says so only deep in the chain). The
    // address stays out of the answer, which reaches end users.
    let unreachable = move |err: tonic::transport::Error| {
        let cause = error_chain(&err);
        let status = tonic::Status::from_error(Box::new(err));
        tracing::warn!(service, %addr, error = %cause, "cloud service unreachable");
        let message = format!("the {service} service is unreachable ({}); retry shortly", status.message());
        ChannelError(Box::new(tonic::Status::new(status.code(), message)))
    };
    Ok(BoxCloneSyncService::new(channel.map_err(unreachable)))
}

/// An error and its sources, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A channel to a gRPC service of another process at `addr` (TLS unless `tls` is `Insecure`), connected on
/// first use, named `service` in errors: the gateway forwards VZConn (`loupe cloud api --vzconn-addr`) over one.
pub fn remote_channel(service: &'static str, addr: &str, tls: &InternalTls) -> Result<ServiceChannel, ClientError> {
    remote(service, addr, tls)
}

impl ServiceClients {
    /// Clients answered by `services` in this process: each kind on its own router, as if it were remote.
    pub fn in_process(services: &CloudServices) -> Self {
        Self {
            auth: in_process(services.router(ServiceKind::Auth)),
            profile: in_process(services.router(ServiceKind::Profile)),
            scripts: in_process(services.router(ServiceKind::Scripts)),
        }
    }

    /// Clients of remote service processes, over TLS unless `tls` is `Insecure`.
    pub fn remote(addrs: &ServiceAddrs, tls: &InternalTls) -> Result<Self, ClientError> {
        Ok(Self {
            auth: remote("auth", &addrs.auth, tls)?,
            profile: remote("profile", &addrs.profile, tls)?,
            scripts: remote("scripts", &addrs.scripts, tls)?,
        })
    }

    /// The channel of a service kind.
    pub fn channel(&self, kind: ServiceKind) -> ServiceChannel {
        match kind {
            ServiceKind::Auth => self.auth.clone(),
            ServiceKind::Profile => self.profile.clone(),
            ServiceKind::Scripts => self.scripts.clone(),
        }
    }

    /// `AuthService`.
    pub fn auth(&self) -> AuthServiceClient<ServiceChannel> {
        AuthServiceClient::new(self.auth.clone())
    }

    /// `ApiKeyService`.
    pub fn api_keys(&self) -> ApiKeyServiceClient<ServiceChannel> {
        ApiKeyServiceClient::new(self.auth.clone())
    }

    /// `DeployKeyService`.
    pub fn deploy_keys(&self) -> DeployKeyServiceClient<ServiceChannel> {
        DeployKeyServiceClient::new(self.auth.clone())
    }

    /// `CronScriptService` (served with the scripts).
    pub fn cron_scripts(&self) -> CronScriptServiceClient<ServiceChannel> {
        CronScriptServiceClient::new(self.scripts.clone())
    }

    /// `RetentionService` (served with the scripts).
    pub fn retention(&self) -> RetentionServiceClient<ServiceChannel> {
        RetentionServiceClient::new(self.scripts.clone())
    }

    /// `ExportTargetService` (served with the scripts).
    pub fn export_targets(&self) -> ExportTargetServiceClient<ServiceChannel> {
        ExportTargetServiceClient::new(self.scripts.clone())
    }

    /// `ProfileService`.
    pub fn profile(&self) -> ProfileServiceClient<ServiceChannel> {
        ProfileServiceClient::new(self.profile.clone())
    }

    /// `VizierInfoService`.
    pub fn viziers(&self) -> VizierInfoServiceClient<ServiceChannel> {
        VizierInfoServiceClient::new(self.profile.clone())
    }

    /// `ScriptService`.
    pub fn scripts(&self) -> ScriptServiceClient<ServiceChannel> {
        ScriptServiceClient::new(self.scripts.clone())
    }

    /// `ServiceHealth` of one service process.
    pub fn health(&self, kind: ServiceKind) -> ServiceHealthClient<ServiceChannel> {
        ServiceHealthClient::new(self.channel(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_follows_the_mode_and_a_contradicting_one_is_refused() {
        let tls = InternalTls::Verified { ca_pem: Vec::new() };
        assert_eq!(tls.url("auth:50100").as_deref(), Ok("https://auth:50100"));
        assert_eq!(tls.url("HTTPS://auth:50100").as_deref(), Ok("HTTPS://auth:50100"));
        assert!(tls.url("http://auth:50100").is_err_and(|e| e.contains("--internal-ca")));
        assert_eq!(InternalTls::Insecure.url("auth:50100").as_deref(), Ok("http://auth:50100"));
        assert!(InternalTls::Insecure.url("https://auth:50100").is_err());
        assert!(tls.url("ftp://auth:50100").is_err());
    }
}
