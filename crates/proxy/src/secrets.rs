//! The secrets directory: a private CA, a server certificate it signed, the internal certificate it signed (what
//! the cloud's split services present to each other over TLS), and random secrets (the token signing key, the
//! database password and the node agents' query token), each in its own file.
//!
//! Owns generating them (in Rust, with rcgen on ring), the file names, their protection (directory 0700,
//! private keys and secrets 0600) and the rule that nothing is ever overwritten: a file that exists is kept, and
//! a server certificate that lacks a name asked for is reported, not replaced. [`CertificateAuthority`] loads
//! the CA to sign certificates for keys held elsewhere (the DNS manager's vizier certificates). Must not read
//! the other secrets back into any service: each service loads the file it needs itself.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use ring::rand::SecureRandom;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};

/// The CA's certificate: what clients trust (`px --ca-cert`, a browser's authorities).
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key, needed only to issue a new server certificate.
pub const CA_KEY: &str = "ca.key";
/// The server certificate the proxy presents, signed by the CA.
pub const SERVER_CERT: &str = "server.crt";
/// The server certificate's private key.
pub const SERVER_KEY: &str = "server.key";
/// The certificate the cloud's internal gRPC listeners present (`loupe cloud auth|profile|scripts|vzconn
/// --tls-cert`), signed by the CA and naming every internal service; callers trust it through `ca.crt`.
pub const INTERNAL_CERT: &str = "internal.crt";
/// The internal certificate's private key.
pub const INTERNAL_KEY: &str = "internal.key";
/// A random key for signing session tokens (64 hex digits).
pub const JWT_SIGNING_KEY: &str = "jwt-signing-key";
/// A random password for the metastore's database (32 hex digits).
pub const DB_PASSWORD: &str = "db-password";
/// A random password Redis asks every client for (32 hex digits); the cloud services put it in their
/// `LOUPE_REDIS_URL`.
pub const REDIS_PASSWORD: &str = "redis-password";
/// A random token every caller of a node agent's own query port must send (64 hex digits); `loupe vizier pem`
/// reads it (`--query-token-file`).
pub const VIZIER_QUERY_TOKEN: &str = "vizier-query-token";
/// A random key the cloud derives every vizier's credential from (64 hex digits); `loupe cloud vzconn` and
/// `loupe up` read it. Every VZConn replica needs the same one; changing it makes every vizier register again.
pub const VIZIER_CREDENTIAL_KEY: &str = "vizier-credential-key";
/// A random key that seals the credentials org settings hold (export endpoint header values; 64 hex digits);
/// the scripts service, `loupe cloud vzconn` and `loupe up` read it. Changing it makes those settings unreadable
/// (they must be set again).
pub const SETTINGS_KEY: &str = "settings-key";

/// The CA's subject. A server certificate issued later by an existing CA names it as issuer, so it must not
/// change between versions.
const CA_COMMON_NAME: &str = "Loupe CA";
const ORGANIZATION: &str = "Loupe";
/// Ten years: the CA is trusted by hand once, so it should outlive the deployment.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Under 825 days, the longest validity Apple's clients accept for a TLS server certificate, private CA or not.
const SERVER_VALIDITY_DAYS: i64 = 800;

/// Errors of [`init_secrets`].
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// A file or directory could not be created, read or written.
    #[error("failed to {action} {}", path.display())]
    Io {
        /// What was being done (`create`, `read`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// One file of a pair exists without the other; generating the missing one would not match it.
    #[error("{} exists but {} does not; restore it, or remove both to generate a new pair", present.display(), missing.display())]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// Its missing partner.
        missing: PathBuf,
    },
    /// The server certificate is missing and the CA's key, needed to issue it, is gone too.
    #[error("cannot issue {SERVER_CERT}: {} is missing; restore it, or remove {CA_CERT} to start over with a new CA", ca_key.display())]
    NoCaKey {
        /// Where the CA key should be.
        ca_key: PathBuf,
    },
    /// A file is not a certificate or key of the expected kind.
    #[error("{} is not a valid {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it should be.
        what: &'static str,
    },
    /// The existing CA is not one made here, so a certificate issued in its name would not chain to it.
    #[error("{} was not made by `loupe setup init-secrets`; issue {SERVER_CERT} with that CA yourself", ca_cert.display())]
    ForeignCa {
        /// The CA certificate.
        ca_cert: PathBuf,
    },
    /// A requested name is neither an IP address nor a valid DNS name.
    #[error("{0:?} is not a DNS name or an IP address")]
    InvalidName(String),
    /// Certificate generation failed.
    #[error("failed to generate a certificate")]
    Generate(#[from] rcgen::Error),
    /// The system's random number generator failed.
    #[error("the system's random number generator failed")]
    Random,
    /// A public key to certify is not an uncompressed ECDSA P-256 point.
    #[error("the public key is not an uncompressed ECDSA P-256 point")]
    InvalidPublicKey,
}

/// `Result` with [`SecretsError`].
pub type Result<T, E = SecretsError> = std::result::Result<T, E>;

/// A name the server certificate must cover: a DNS name (possibly a `*.` wildcard) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum San {
    /// A DNS name such as `loupe.example.com` or `*.example.com`.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl San {
    /// Parses an IP address, else a DNS name (lowercased).
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let name = s.trim_end_matches('.').to_ascii_lowercase();
        // Checked as a server name, with a wildcard standing for one label.
        let probe = probe_name(&name);
        if name.is_empty() || ServerName::try_from(probe.as_str()).is_err() || probe.contains('*') {
            return Err(SecretsError::InvalidName(s.to_owned()));
        }
        Ok(Self::Dns(name))
    }

    /// The names every generated certificate covers, so `loupe up` works on this machine at once.
    pub fn defaults() -> Vec<Self> {
        vec![Self::Dns("localhost".into()), Self::Ip(Ipv4Addr::LOCALHOST.into()), Self::Ip(Ipv6Addr::LOCALHOST.into())]
    }

    fn to_rcgen(&self) -> Result<SanType> {
        Ok(match self {
            Self::Dns(name) => SanType::DnsName(name.clone().try_into()?),
            Self::Ip(ip) => SanType::IpAddress(*ip),
        })
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// A concrete name a wildcard covers (`*.example.com` → `loupe-probe.example.com`), or the name itself.
fn probe_name(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("loupe-probe.{rest}"),
        None => name.to_owned(),
    }
}

/// What [`init_secrets`] did with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was absent and has been generated.
    Created,
    /// It existed and was left as it was.
    Kept,
}

/// What [`init_secrets`] found and did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The secrets directory.
    pub dir: PathBuf,
    /// Each file present now, in a fixed order, with whether it was created or kept. A CA is absent only when
    /// a server certificate was provided without one.
    pub files: Vec<(&'static str, Outcome)>,
    /// Names asked for that the kept server certificate does not cover: it must be reissued (remove
    /// `server.crt` and `server.key` and run again) for clients to reach the server by those names.
    pub missing_names: Vec<San>,
    /// Internal names asked for that the kept internal certificate does not cover (remove `internal.crt` and
    /// `internal.key` and run again to reissue it).
    pub missing_internal_names: Vec<San>,
}

impl Report {
    /// Whether any file was created.
    pub fn created_any(&self) -> bool {
        self.files.iter().any(|(_, o)| *o == Outcome::Created)
    }

    /// Path of a file in the secrets directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Creates, in `dir`, whatever of the CA, the server certificate and the random secrets is absent, and keeps
/// what exists. The server certificate covers `localhost`, `127.0.0.1`, `::1` and `extra_names`; a kept one
/// is checked against `extra_names` and any it lacks is reported in [`Report::missing_names`].
///
/// The directory is made 0700 (and tightened if it existed), private keys and secrets 0600. Every file is
/// published with a link that fails if the name exists, so two concurrent runs never overwrite each other.
pub fn init_secrets(dir: &Path, extra_names: &[San]) -> Result<Report> {
    init_secrets_with_internal(dir, extra_names, &[])
}

/// [`init_secrets`], and the internal certificate (`internal.crt`, `internal.key`) for `localhost`, the
/// loopback addresses and `internal_names` (the cluster's service names), issued by the CA when absent. Without
/// the CA's key (a server certificate provided from elsewhere) the internal pair is not issued: the services
/// then say which file they miss. A kept internal certificate is checked against `internal_names` like the
/// server certificate.
pub fn init_secrets_with_internal(dir: &Path, extra_names: &[San], internal_names: &[San]) -> Result<Report> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io("restrict", dir))?;
    let path = |name: &str| dir.join(name);
    let exists = |name: &str| path(name).exists();
    let mut report = Report {
        dir: dir.to_owned(),
        files: Vec::new(),
        missing_names: Vec::new(),
        missing_internal_names: Vec::new(),
    };

    if exists(CA_KEY) && !exists(CA_CERT) {
        return Err(SecretsError::Incomplete { present: path(CA_KEY), missing: path(CA_CERT) });
    }
    match (exists(SERVER_CERT), exists(SERVER_KEY)) {
        (true, true) => {
            if exists(CA_CERT) {
                report.files.push((CA_CERT, Outcome::Kept));
            }
            if exists(CA_KEY) {
                report.files.push((CA_KEY, Outcome::Kept));
            }
            report.files.extend([(SERVER_CERT, Outcome::Kept), (SERVER_KEY, Outcome::Kept)]);
            report.missing_names = uncovered_names(&path(SERVER_CERT), extra_names)?;
        }
        (true, false) => {
            return Err(SecretsError::Incomplete { present: path(SERVER_CERT), missing: path(SERVER_KEY) });
        }
        (false, true) => {
            return Err(SecretsError::Incomplete { present: path(SERVER_KEY), missing: path(SERVER_CERT) });
        }
        (false, false) => {
            let ca = if exists(CA_CERT) {
                if !exists(CA_KEY) {
                    return Err(SecretsError::NoCaKey { ca_key: path(CA_KEY) });
                }
                report.files.extend([(CA_CERT, Outcome::Kept), (CA_KEY, Outcome::Kept)]);
                load_ca(dir)?
            } else {
                let ca = generate_ca()?;
                write_new(&path(CA_KEY), ca.key_pem.as_bytes(), 0o600)?;
                write_new(&path(CA_CERT), ca.cert_pem.as_bytes(), 0o644)?;
                report.files.extend([(CA_CERT, Outcome::Created), (CA_KEY, Outcome::Created)]);
                ca
            };
            let mut names = San::defaults();
            for name in extra_names {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            let (cert_pem, key_pem) = issue_server_cert(&ca, &names)?;
            if !chains_to(&cert_pem, &ca.cert_pem) {
                return Err(SecretsError::ForeignCa { ca_cert: path(CA_CERT) });
            }
            write_new(&path(SERVER_KEY), key_pem.as_bytes(), 0o600)?;
            write_new(&path(SERVER_CERT), cert_pem.as_bytes(), 0o644)?;
            report.files.extend([(SERVER_CERT, Outcome::Created), (SERVER_KEY, Outcome::Created)]);
        }
    }

    internal_pair(dir, internal_names, &mut report)?;

    // 32 bytes for an HMAC-SHA256 key; 16 for a password that must fit in URLs and config files unquoted.
    for (name, bytes) in [
        (JWT_SIGNING_KEY, 32),
        (DB_PASSWORD, 16),
        (REDIS_PASSWORD, 16),
        (VIZIER_QUERY_TOKEN, 32),
        (VIZIER_CREDENTIAL_KEY, 32),
        (SETTINGS_KEY, 32),
    ] {
        if exists(name) {
            report.files.push((name, Outcome::Kept));
        } else {
            write_new(&path(name), random_hex(bytes)?.as_bytes(), 0o600)?;
            report.files.push((name, Outcome::Created));
        }
    }
    Ok(report)
}

/// Issues the internal certificate when absent and the CA's key is at hand; checks a kept one's names.
fn internal_pair(dir: &Path, internal_names: &[San], report: &mut Report) -> Result<()> {
    let path = |name: &str| dir.join(name);
    match (path(INTERNAL_CERT).exists(), path(INTERNAL_KEY).exists()) {
        (true, true) => {
            report.files.extend([(INTERNAL_CERT, Outcome::Kept), (INTERNAL_KEY, Outcome::Kept)]);
            report.missing_internal_names = uncovered_names(&path(INTERNAL_CERT), internal_names)?;
        }
        (true, false) => {
            return Err(SecretsError::Incomplete { present: path(INTERNAL_CERT), missing: path(INTERNAL_KEY) });
        }
        (false, true) => {
            return Err(SecretsError::Incomplete { present: path(INTERNAL_KEY), missing: path(INTERNAL_CERT) });
        }
        (false, false) => {
            if !(path(CA_CERT).exists() && path(CA_KEY).exists()) {
                return Ok(());
            }
            let ca = load_ca(dir)?;
            let mut names = San::defaults();
            for name in internal_names {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            let (cert_pem, key_pem) = issue_server_cert(&ca, &names)?;
            if !chains_to(&cert_pem, &ca.cert_pem) {
                return Err(SecretsError::ForeignCa { ca_cert: path(CA_CERT) });
            }
            write_new(&path(INTERNAL_KEY), key_pem.as_bytes(), 0o600)?;
            write_new(&path(INTERNAL_CERT), cert_pem.as_bytes(), 0o644)?;
            report.files.extend([(INTERNAL_CERT, Outcome::Created), (INTERNAL_KEY, Outcome::Created)]);
        }
    }
    Ok(())
}

/// The CA: its key, its certificate, and the parameters a certificate it issues names it by.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
    key_pem: String,
}

fn ca_params() -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    // Path length 0: this CA signs server certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(CA_VALIDITY_DAYS);
    Ok(params)
}

fn generate_ca() -> Result<Ca> {
    let params = ca_params()?;
    let key = KeyPair::generate()?;
    let cert_pem = params.self_signed(&key)?.pem();
    let key_pem = key.serialize_pem();
    Ok(Ca { params, key, cert_pem, key_pem })
}

fn load_ca(dir: &Path) -> Result<Ca> {
    let key_path = dir.join(CA_KEY);
    let key_pem = read(&key_path)?;
    let key = KeyPair::from_pem(&key_pem).map_err(|_| SecretsError::Invalid { path: key_path, what: "private key" })?;
    let cert_pem = read(&dir.join(CA_CERT))?;
    // The issuer name is rebuilt from the same constants; `chains_to` catches a CA made elsewhere.
    Ok(Ca { params: ca_params()?, key, cert_pem, key_pem })
}

/// The private CA of a secrets directory, loaded to sign certificates for public keys whose private halves
/// stay with their owners (a vizier asks the DNS manager for one over the bus and keeps its key).
pub struct CertificateAuthority {
    ca: Ca,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority").finish_non_exhaustive()
    }
}

/// What rcgen needs of a public key it did not generate: its bits and algorithm.
struct P256PublicKey<'a>(&'a [u8]);

impl rcgen::PublicKeyData for P256PublicKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl CertificateAuthority {
    /// Loads `ca.crt` and `ca.key` from the secrets directory `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Ok(Self { ca: load_ca(dir)? })
    }

    /// The CA's certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A server certificate (PEM) for `names`, valid as long as the proxy's, for the ECDSA P-256 public key
    /// `public_key` (the uncompressed point: 65 bytes starting with 4; anything else is refused).
    pub fn issue_for_p256_key(&self, names: &[San], public_key: &[u8]) -> Result<String> {
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(SecretsError::InvalidPublicKey);
        }
        let params = server_params(names)?;
        let issuer = Issuer::from_params(&self.ca.params, &self.ca.key);
        Ok(params.signed_by(&P256PublicKey(public_key), &issuer)?.pem())
    }
}

fn server_params(names: &[San]) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = names.iter().map(San::to_rcgen).collect::<Result<_>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, names.first().map_or_else(|| "loupe".to_owned(), San::to_string));
    dn.push(DnType::OrganizationName, ORGANIZATION);
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(SERVER_VALIDITY_DAYS);
    Ok(params)
}

fn issue_server_cert(ca: &Ca, names: &[San]) -> Result<(String, String)> {
    let params = server_params(names)?;
    let key = KeyPair::generate()?;
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Whether `cert_pem` verifies as a server certificate for `localhost` under the CA in `ca_pem`.
fn chains_to(cert_pem: &str, ca_pem: &str) -> bool {
    let (Ok(cert), Ok(ca)) =
        (CertificateDer::from_pem_slice(cert_pem.as_bytes()), CertificateDer::from_pem_slice(ca_pem.as_bytes()))
    else {
        return false;
    };
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(ca).is_err() {
        return false;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider).build()
    else {
        return false;
    };
    let Ok(name) = ServerName::try_from("localhost") else { return false };
    verifier.verify_server_cert(&cert, &[], &name, &[], rustls_pki_types::UnixTime::now()).is_ok()
}

/// The names of `wanted` that the certificate in `path` does not cover.
fn uncovered_names(path: &Path, wanted: &[San]) -> Result<Vec<San>> {
    let invalid = || SecretsError::Invalid { path: path.to_owned(), what: "PEM certificate" };
    let der = CertificateDer::from_pem_file(path).map_err(|_| invalid())?;
    let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| invalid())?;
    Ok(wanted
        .iter()
        .filter(|san| {
            let name = match san {
                San::Dns(name) => ServerName::try_from(probe_name(name)).ok(),
                San::Ip(ip) => Some(ServerName::IpAddress((*ip).into())),
            };
            name.is_none_or(|name| cert.verify_is_valid_for_subject_name(&name).is_err())
        })
        .cloned()
        .collect())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).map_err(|_| SecretsError::Random)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(io("read", path))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SecretsError {
    let path = path.to_owned();
    move |source| SecretsError::Io { action, path, source }
}

/// Writes `bytes` to `path` with `mode`, only if `path` does not exist: the bytes go to a temporary file that
/// is then hard-linked to `path` (which fails, atomically, if the name exists) and unlinked.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(io("write", &tmp))
        .and_then(|()| std::fs::hard_link(&tmp, path).map_err(io("create", path)));
    let _ = std::fs::remove_file(&tmp);
    written
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("loupe-secrets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_ca_certifies_a_key_it_never_sees() {
        let dir = temp_dir("ca-issue");
        init_secrets(&dir, &[]).expect("init");
        let ca = CertificateAuthority::load(&dir).expect("load");
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let cert = ca.issue_for_p256_key(&[San::Dns("localhost".into())], key.public_key_raw()).expect("issue");
        assert!(chains_to(&cert, ca.cert_pem()));
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).expect("pem");
        let parsed = webpki::EndEntityCert::try_from(&der).expect("cert");
        let name = ServerName::try_from("localhost").expect("name");
        assert!(parsed.verify_is_valid_for_subject_name(&name).is_ok());
        assert!(matches!(ca.issue_for_p256_key(&[], &[4; 64]), Err(SecretsError::InvalidPublicKey)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn outcomes(report: &Report) -> Vec<(&'static str, Outcome)> {
        report.files.clone()
    }

    #[test]
    fn everything_is_created_once_then_kept() {
        let dir = temp_dir("idempotent");
        let extra = [San::parse("loupe.example.com").expect("name"), San::parse("*.example.com").expect("wildcard")];
        let first = init_secrets(&dir, &extra).expect("first run");
        let all = [
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
        assert_eq!(outcomes(&first), all.map(|n| (n, Outcome::Created)).to_vec());
        assert!(first.missing_names.is_empty(), "{:?}", first.missing_names);
        let before: Vec<_> = all.iter().map(|n| std::fs::read(dir.join(n)).expect("read")).collect();

        let second = init_secrets(&dir, &extra).expect("second run");
        assert_eq!(outcomes(&second), all.map(|n| (n, Outcome::Kept)).to_vec());
        assert!(!second.created_any());
        let after: Vec<_> = all.iter().map(|n| std::fs::read(dir.join(n)).expect("read")).collect();
        assert_eq!(before, after, "a second run must not change any file");

        assert_eq!(std::fs::read_to_string(dir.join(JWT_SIGNING_KEY)).expect("key").len(), 64);
        assert_eq!(std::fs::read_to_string(dir.join(DB_PASSWORD)).expect("password").len(), 32);
        assert_eq!(std::fs::read_to_string(dir.join(REDIS_PASSWORD)).expect("password").len(), 32);
        assert_eq!(std::fs::read_to_string(dir.join(VIZIER_QUERY_TOKEN)).expect("query token").len(), 64);
        assert_eq!(std::fs::read_to_string(dir.join(VIZIER_CREDENTIAL_KEY)).expect("credential key").len(), 64);
        assert_eq!(std::fs::read_to_string(dir.join(SETTINGS_KEY)).expect("settings key").len(), 64);
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), all.len());
    }

    #[test]
    fn keys_and_secrets_are_private() {
        let dir = temp_dir("modes");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        init_secrets(&dir, &[]).expect("init");
        assert_eq!(mode(&dir), 0o700);
        for name in [
            CA_KEY,
            SERVER_KEY,
            INTERNAL_KEY,
            JWT_SIGNING_KEY,
            DB_PASSWORD,
            REDIS_PASSWORD,
            VIZIER_QUERY_TOKEN,
            VIZIER_CREDENTIAL_KEY,
            SETTINGS_KEY,
        ] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        for name in [CA_CERT, SERVER_CERT, INTERNAL_CERT] {
            assert_eq!(mode(&dir.join(name)), 0o644, "{name}");
        }
    }

    #[test]
    fn the_server_certificate_covers_the_names_and_chains_to_the_ca() {
        let dir = temp_dir("names");
        let extra = [San::parse("Loupe.Example.com.").expect("name"), San::parse("10.1.2.3").expect("ip")];
        init_secrets(&dir, &extra).expect("init");
        let cert = read(&dir.join(SERVER_CERT)).expect("cert");
        assert!(chains_to(&cert, &read(&dir.join(CA_CERT)).expect("ca")));
        let all = [San::defaults(), extra.to_vec()].concat();
        assert!(uncovered_names(&dir.join(SERVER_CERT), &all).expect("check").is_empty());
        let other = [San::parse("other.example.com").expect("name"), San::parse("10.9.9.9").expect("ip")];
        assert_eq!(uncovered_names(&dir.join(SERVER_CERT), &other).expect("check"), other.to_vec());
    }

    #[test]
    fn a_kept_certificate_lacking_a_name_is_reported_not_replaced() {
        let dir = temp_dir("missing-name");
        init_secrets(&dir, &[]).expect("init");
        let cert = std::fs::read(dir.join(SERVER_CERT)).expect("cert");
        let wanted = [San::parse("loupe.example.com").expect("name"), San::parse("localhost").expect("name")];
        let report = init_secrets(&dir, &wanted).expect("second run");
        assert_eq!(report.missing_names, vec![San::Dns("loupe.example.com".into())]);
        assert_eq!(std::fs::read(dir.join(SERVER_CERT)).expect("cert"), cert);
    }

    #[test]
    fn a_removed_server_pair_is_reissued_by_the_existing_ca() {
        let dir = temp_dir("reissue");
        init_secrets(&dir, &[]).expect("init");
        let ca = std::fs::read(dir.join(CA_CERT)).expect("ca");
        std::fs::remove_file(dir.join(SERVER_CERT)).expect("rm");
        std::fs::remove_file(dir.join(SERVER_KEY)).expect("rm");
        let report = init_secrets(&dir, &[San::parse("new.example.com").expect("name")]).expect("reissue");
        assert_eq!(
            report.files[..4],
            [
                (CA_CERT, Outcome::Kept),
                (CA_KEY, Outcome::Kept),
                (SERVER_CERT, Outcome::Created),
                (SERVER_KEY, Outcome::Created)
            ]
        );
        assert_eq!(std::fs::read(dir.join(CA_CERT)).expect("ca"), ca);
        assert!(chains_to(&read(&dir.join(SERVER_CERT)).expect("cert"), &read(&dir.join(CA_CERT)).expect("ca")));
    }

    #[test]
    fn half_pairs_are_refused_without_touching_anything() {
        let dir = temp_dir("half");
        init_secrets(&dir, &[]).expect("init");
        std::fs::remove_file(dir.join(SERVER_KEY)).expect("rm");
        let err = init_secrets(&dir, &[]).expect_err("server.crt without its key");
        assert!(matches!(err, SecretsError::Incomplete { .. }), "{err}");
        assert!(err.to_string().contains("server.key does not"), "{err}");
        std::fs::remove_file(dir.join(SERVER_CERT)).expect("rm");
        std::fs::remove_file(dir.join(CA_KEY)).expect("rm");
        let err = init_secrets(&dir, &[]).expect_err("no CA key to issue with");
        assert!(matches!(err, SecretsError::NoCaKey { .. }), "{err}");
        assert!(!dir.join(SERVER_CERT).exists());
    }

    #[test]
    fn the_internal_certificate_names_the_services_chains_to_the_ca_and_is_never_replaced() {
        let dir = temp_dir("internal");
        let internal = [San::parse("auth").expect("name"), San::parse("auth.plc.svc.cluster.local").expect("name")];
        let public = [San::parse("loupe.example.com").expect("name")];
        let first = init_secrets_with_internal(&dir, &public, &internal).expect("init");
        assert!(first.files.contains(&(INTERNAL_CERT, Outcome::Created)), "{:?}", first.files);
        let cert = read(&dir.join(INTERNAL_CERT)).expect("cert");
        assert!(chains_to(&cert, &read(&dir.join(CA_CERT)).expect("ca")));
        assert!(uncovered_names(&dir.join(INTERNAL_CERT), &internal).expect("check").is_empty());
        // The public name is the proxy's, not the internal listeners'.
        assert_eq!(uncovered_names(&dir.join(INTERNAL_CERT), &public).expect("check"), public.to_vec());
        let more = [San::parse("profile").expect("name")];
        let second = init_secrets_with_internal(&dir, &public, &more).expect("second run");
        assert!(second.files.contains(&(INTERNAL_CERT, Outcome::Kept)), "{:?}", second.files);
        assert_eq!(second.missing_internal_names, more.to_vec());
        assert_eq!(read(&dir.join(INTERNAL_CERT)).expect("cert"), cert);
        // Without the CA's key, no internal pair is made up, and nothing fails.
        std::fs::remove_file(dir.join(INTERNAL_CERT)).expect("rm");
        std::fs::remove_file(dir.join(INTERNAL_KEY)).expect("rm");
        std::fs::remove_file(dir.join(CA_KEY)).expect("rm");
        let third = init_secrets_with_internal(&dir, &public, &internal).expect("third run");
        assert!(!dir.join(INTERNAL_CERT).exists());
        assert!(third.files.iter().all(|(name, _)| *name != INTERNAL_CERT), "{:?}", third.files);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_parse() {
        assert_eq!(San::parse("::1").expect("ip"), San::Ip(Ipv6Addr::LOCALHOST.into()));
        assert_eq!(San::parse("*.Example.com").expect("wildcard"), San::Dns("*.example.com".into()));
        for bad in ["", "a b", "*.*.example.com", "foo.*.com", "exa..mple.com"] {
            assert!(San::parse(bad).is_err(), "{bad:?}");
        }
    }
}
