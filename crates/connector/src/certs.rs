//! The vizier's certificate for its hostname under the cloud's domain (`<vizier name>.<domain>`), issued by the
//! cloud's DNS manager from the cloud CA. The vizier keeps its private key (`<data dir>/tls/vizier.key`, ECDSA
//! P-256, generated once) and sends only the public key (topic `dnsCertRequest`, after each bridge opens); the
//! answer (`dnsCert`) is written to `vizier.crt`, with the CA beside it as `ca.crt`. Files are 0600 in a 0700
//! directory, each written whole (temp file and rename).
//!
//! Owns these files and the two messages. Must not talk to the cloud itself (the session sends and dispatches).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use loupe_proto::vzconn_topic::DNS_CERT_REQUEST;
use loupe_proto::vzconnpb::{BridgeMessage, DnsCert, DnsCertRequest};
use prost::Message as _;
use tokio::sync::watch;

use crate::ConnectorState;

/// The directory under the data dir holding the vizier's key and certificate.
pub const TLS_DIR: &str = "tls";
/// The vizier's private key (PKCS#8 PEM).
pub const KEY_FILE: &str = "vizier.key";
/// The vizier's certificate (PEM), as the cloud issued it.
pub const CERT_FILE: &str = "vizier.crt";
/// The cloud CA's certificate (PEM), as the cloud sent it.
pub const CA_FILE: &str = "ca.crt";

/// Why the certificate could not be requested or kept.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The key could not be generated or read.
    #[error("vizier key: {0}")]
    Key(#[from] rcgen::Error),
    /// The cloud refused to issue one.
    #[error("the cloud issued no certificate: {0}")]
    Refused(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.to_owned(), source }
}

/// The request for this vizier's key, generating the key the first time.
pub(crate) fn request(data_dir: &Path) -> Result<DnsCertRequest, CertError> {
    let dir = data_dir.join(TLS_DIR);
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io(&dir))?;
    let path = dir.join(KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(pem) => rcgen::KeyPair::from_pem(&pem)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            write_private(&path, key.serialize_pem().as_bytes())?;
            key
        }
        Err(e) => return Err(io(&path)(e)),
    };
    Ok(DnsCertRequest { public_key: key.public_key_raw().to_vec() })
}

/// Keeps an issued certificate; returns the names it covers.
pub(crate) fn store(data_dir: &Path, answer: DnsCert) -> Result<Vec<String>, CertError> {
    if answer.code != 0 || answer.cert_pem.is_empty() {
        return Err(CertError::Refused(answer.message));
    }
    let dir = data_dir.join(TLS_DIR);
    write_private(&dir.join(CERT_FILE), answer.cert_pem.as_bytes())?;
    write_private(&dir.join(CA_FILE), answer.ca_pem.as_bytes())?;
    Ok(answer.names)
}

/// The bridge message asking for a certificate; `None` (logged) when the key cannot be made or read.
pub(crate) fn request_message(data_dir: &Path) -> Option<BridgeMessage> {
    match request(data_dir) {
        Ok(r) => Some(BridgeMessage {
            topic: DNS_CERT_REQUEST.into(),
            session_id: String::new(),
            payload: r.encode_to_vec(),
        }),
        Err(error) => {
            tracing::warn!(%error, "no certificate requested for this vizier's hostname");
            None
        }
    }
}

/// Keeps the certificate in a `dnsCert` message and records its names in the state.
pub(crate) fn keep(data_dir: &Path, payload: &[u8], state: &watch::Sender<ConnectorState>) {
    let stored = DnsCert::decode(payload)
        .map_err(|e| e.to_string())
        .and_then(|answer| store(data_dir, answer).map_err(|e| e.to_string()));
    match stored {
        Ok(names) => {
            tracing::info!(?names, "certificate for this vizier's hostname kept");
            state.send_modify(|s| s.dns_names = names);
        }
        Err(error) => tracing::warn!(%error, "certificate for this vizier's hostname not kept"),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CertError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("loupe-connector-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = request(&dir).expect("request");
        assert_eq!(first.public_key.len(), 65);
        assert_eq!(first.public_key[0], 4);
        assert_eq!(request(&dir).expect("again"), first, "the key is kept");
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join(TLS_DIR)), 0o700);
        assert_eq!(mode(&dir.join(TLS_DIR).join(KEY_FILE)), 0o600);

        let refused = DnsCert { code: 9, message: "no".into(), ..DnsCert::default() };
        assert!(matches!(store(&dir, refused), Err(CertError::Refused(m)) if m == "no"));
        let names = vec!["edge.example.com".to_owned()];
        let issued = DnsCert {
            code: 0,
            message: String::new(),
            names: names.clone(),
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        };
        assert_eq!(store(&dir, issued).expect("store"), names);
        assert_eq!(std::fs::read_to_string(dir.join(TLS_DIR).join(CERT_FILE)).expect("cert"), "CERT");
        assert_eq!(mode(&dir.join(TLS_DIR).join(CA_FILE)), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
