//! How the connector reaches the cloud: plaintext for `http://`, TLS for `https://` trusting the CA the operator
//! gave (`--ca-cert`, such as the cloud's `ca.crt`) or else the system's roots, as `px` does. An address without
//! a scheme is `https://` unless its host is loopback ([`cloud_url`]).
//!
//! Owns the cloud endpoint's transport settings. Must not open the bridge or speak VZConn (that is `session`).

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::{ConnectorConfig, ConnectorError};

/// The URL to dial for a cloud address: kept when it has a scheme; otherwise `http://` for a loopback host
/// (`127.0.0.1`, `::1`, `localhost`) and `https://` for any other.
pub fn cloud_url(addr: &str) -> String {
    if addr.contains("://") {
        return addr.to_owned();
    }
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback { format!("http://{addr}") } else { format!("https://{addr}") }
}

/// The cloud's endpoint with the connector's timeouts, and TLS when `cloud_addr` is `https://`.
pub(crate) fn endpoint(config: &ConnectorConfig) -> Result<Endpoint, ConnectorError> {
    let invalid = |reason: String| ConnectorError::Address { what: "cloud", addr: config.cloud_addr.clone(), reason };
    let mut endpoint = Endpoint::from_shared(config.cloud_addr.clone())
        .map_err(|e| invalid(e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    if endpoint.uri().scheme_str() == Some("https") {
        let tls = ClientTlsConfig::new().timeout(Duration::from_secs(10));
        let tls = match &config.ca_cert_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        endpoint = endpoint.tls_config(tls).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(endpoint)
}

/// An error with its causes, `a: b: c`: tonic's transport error alone says only "transport error", its causes
/// say which (a refused certificate, a refused connection).
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_goes_without_tls_unless_a_scheme_says_so() {
        assert_eq!(cloud_url("127.0.0.1:51800"), "http://127.0.0.1:51800");
        assert_eq!(cloud_url("localhost:51800"), "http://localhost:51800");
        assert_eq!(cloud_url("[::1]:51800"), "http://[::1]:51800");
        assert_eq!(cloud_url("cloud.example.com:443"), "https://cloud.example.com:443");
        assert_eq!(cloud_url("10.0.0.1:51800"), "https://10.0.0.1:51800");
        assert_eq!(cloud_url("https://127.0.0.1:56000"), "https://127.0.0.1:56000");
        assert_eq!(cloud_url("http://cloud:51800"), "http://cloud:51800");
    }

    #[test]
    fn an_https_address_gets_tls_and_a_bad_one_is_refused() {
        let mut config = ConnectorConfig::new("https://127.0.0.1:56000", "/nonexistent", "http://127.0.0.1:1");
        config.ca_cert_pem = Some(b"not pem".to_vec());
        assert!(endpoint(&config).is_ok());
        config.cloud_addr = "not a url".into();
        assert!(matches!(endpoint(&config), Err(ConnectorError::Address { what: "cloud", .. })));
    }
}
