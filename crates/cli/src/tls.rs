//! How `px` trusts the cloud's certificate over `https://`, for REST (ureq) and gRPC (tonic) alike: the CA given
//! by `--ca-cert` / `PX_CA_CERT` (a private one, such as `loupe up`'s), else the system's roots.
//!
//! Owns loading that CA, building both clients' TLS settings from it, and turning a failed certificate check,
//! however deep in an error chain, into one line that says what to do. Must not open connections itself.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::CertificateError;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Which authorities `px` trusts for the cloud's certificate.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The CA file and its PEM text, when one was given; the system's roots otherwise.
    ca: Option<(PathBuf, Vec<u8>)>,
}

impl Trust {
    /// Trust only the CA certificates in `ca_cert` (PEM) when given, else the system's roots.
    pub fn load(ca_cert: Option<&Path>) -> Result<Self> {
        let Some(path) = ca_cert else { return Ok(Self::default()) };
        let pem =
            std::fs::read(path).with_context(|| format!("failed to read the CA certificate {}", path.display()))?;
        if CertificateDer::pem_slice_iter(&pem).filter_map(std::result::Result::ok).next().is_none() {
            bail!("{} holds no PEM certificate (--ca-cert / PX_CA_CERT)", path.display());
        }
        Ok(Self { ca: Some((path.to_owned(), pem)) })
    }

    /// The CA file given, if any.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca.as_ref().map(|(path, _)| path.as_path())
    }

    /// ureq's TLS settings: the given CA alone, else the system's roots (Mozilla's, built in, when the system
    /// has none readable).
    pub fn ureq_config(&self) -> ureq::tls::TlsConfig {
        let certs: Vec<ureq::tls::Certificate<'static>> = match &self.ca {
            Some((_, pem)) => CertificateDer::pem_slice_iter(pem)
                .filter_map(std::result::Result::ok)
                .map(|der| ureq::tls::Certificate::from_der(&der).to_owned())
                .collect(),
            None => rustls_native_certs::load_native_certs()
                .certs
                .iter()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                .collect(),
        };
        let roots = if certs.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::Specific(Arc::new(certs))
        };
        ureq::tls::TlsConfig::builder().root_certs(roots).build()
    }

    /// tonic's TLS settings, with the same trust as [`Trust::ureq_config`].
    pub fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        let config = tonic::transport::ClientTlsConfig::new();
        match &self.ca {
            Some((_, pem)) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
            None => config.with_native_roots(),
        }
    }

    /// One line saying why the cloud's certificate was refused and what to do, if `err` is (or was caused by)
    /// such a refusal.
    pub fn explain(&self, err: &anyhow::Error) -> Option<String> {
        let cert = err.chain().find_map(certificate_error)?;
        let fix = match self.ca_path() {
            Some(path) => format!("it was not issued by {} (--ca-cert / PX_CA_CERT)", path.display()),
            None => "pass --ca-cert <data-dir>/secrets/ca.crt or set PX_CA_CERT".to_owned(),
        };
        Some(match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                format!("the cloud's certificate is not trusted: {fix}")
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the cloud's certificate does not cover the address used: connect by a name it covers, or reissue it \
                 (`loupe setup init-secrets --san <name>` after removing server.crt and server.key)"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the cloud's certificate has expired; the cloud must renew it".to_owned()
            }
            other => format!("the cloud's certificate was refused ({other:?}): {fix}"),
        })
    }
}

/// The certificate error behind `err` itself, looking inside ureq's and std's wrappers, which hide their cause
/// from `source()`.
fn certificate_error(err: &(dyn StdError + 'static)) -> Option<CertificateError> {
    if let Some(rustls::Error::InvalidCertificate(cert)) = err.downcast_ref::<rustls::Error>() {
        return Some(cert.clone());
    }
    let io = match err.downcast_ref::<ureq::Error>() {
        Some(ureq::Error::Rustls(rustls::Error::InvalidCertificate(cert))) => return Some(cert.clone()),
        Some(ureq::Error::Io(io)) => Some(io),
        _ => err.downcast_ref::<std::io::Error>(),
    };
    let inner: &(dyn StdError + 'static) = io?.get_ref()?;
    certificate_error(inner).or_else(|| inner.source().and_then(certificate_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrapped(cert: CertificateError) -> anyhow::Error {
        // As tokio-rustls and hyper hand it over: a rustls error inside an io::Error, inside context.
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::InvalidCertificate(cert));
        anyhow::Error::new(io).context("failed to connect")
    }

    #[test]
    fn untrusted_certificates_are_explained_in_one_line() {
        let trust = Trust::default();
        let line = trust.explain(&wrapped(CertificateError::UnknownIssuer)).expect("explained");
        assert_eq!(
            line,
            "the cloud's certificate is not trusted: pass --ca-cert <data-dir>/secrets/ca.crt or set PX_CA_CERT"
        );
        let ureq_err = anyhow::Error::new(ureq::Error::Rustls(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName,
        )));
        assert!(trust.explain(&ureq_err).expect("explained").contains("does not cover"));
        let ureq_io = anyhow::Error::new(ureq::Error::Io(std::io::Error::other(rustls::Error::InvalidCertificate(
            CertificateError::Expired,
        ))));
        assert!(trust.explain(&ureq_io).expect("explained").contains("expired"));
        assert_eq!(trust.explain(&anyhow::anyhow!("connection refused")), None);
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("px-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").expect("write");
        assert!(Trust::load(Some(&not_pem)).is_err());
        assert!(Trust::load(Some(&dir.join("absent.pem"))).is_err());
        assert!(Trust::load(None).expect("system roots").ca_path().is_none());
    }
}
