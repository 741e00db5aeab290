//! The cloud's DNS manager (Pixie's dnsmgr, `loupe cloud dnsmgr`): every vizier gets a stable hostname under
//! the cloud's domain, `<vizier name>.<domain>` (and always `<vizier id>.<domain>`), a certificate for it from
//! the cloud CA, and the names are served over DNS, so an operator may delegate the subdomain to this server.
//!
//! - `zone`: the naming rule and the zone built from the vizier records (read from the metastore every
//!   `refresh_every`, and before each certificate is issued).
//! - `answer`: one DNS query in, one authoritative answer out.
//! - `server`: the UDP and TCP listeners and their limits.
//! - `certs`: certificate requests from viziers over the bus, answered with a certificate signed by the CA.
//!
//! Owns these. Must not register viziers or touch their status (that is `loupe-vzconn`'s), and must not write
//! to the metastore: it only reads vizier records.

mod answer;
mod certs;
mod server;
mod zone;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::rr::Name;
use loupe_bus::Bus;
use loupe_metastore::Metastore;
use loupe_proxy::secrets::CertificateAuthority;
use parking_lot::RwLock;

pub use crate::answer::{EDNS_UDP_PAYLOAD, ZoneSettings, answer};
pub use crate::zone::{Host, Target, Zone, label_of, target_of};

/// `Result` with [`DnsMgrError`].
pub type Result<T, E = DnsMgrError> = std::result::Result<T, E>;

/// Why the DNS manager cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DnsMgrError {
    /// The domain is not a DNS name.
    #[error("invalid domain {0:?}: not a DNS name")]
    Domain(String),
    /// A listener could not be bound.
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The vizier records could not be read.
    #[error("reading the vizier records: {0}")]
    Metastore(#[from] loupe_metastore::MetastoreError),
    /// The bus refused the certificate requests' subscription.
    #[error("message bus: {0}")]
    Bus(#[from] loupe_bus::BusError),
}

/// The DNS manager's settings.
#[derive(Debug, Clone)]
pub struct DnsMgrConfig {
    /// The zone: viziers are `<name>.<domain>`.
    pub domain: String,
    /// Where DNS is served, UDP and TCP.
    pub listen: SocketAddr,
    /// How often the vizier records are read again.
    pub refresh_every: Duration,
    /// TTL of the records, seconds.
    pub ttl: u32,
    /// The zone's name server, for NS and SOA; default `ns.<domain>`.
    pub ns_name: Option<String>,
    /// Queries answered per client address per second (twice that as a burst); more are dropped.
    pub queries_per_second: u32,
}

impl DnsMgrConfig {
    /// Defaults around `domain` and `listen`: a refresh every 5 s, a 30 s TTL, 100 queries/s per client.
    pub fn new(domain: impl Into<String>, listen: SocketAddr) -> Self {
        DnsMgrConfig {
            domain: domain.into(),
            listen,
            refresh_every: Duration::from_secs(5),
            ttl: 30,
            ns_name: None,
            queries_per_second: 100,
        }
    }
}

/// What the listeners and the certificate responder share.
pub(crate) struct Shared {
    metastore: Arc<dyn Metastore>,
    bus: Arc<dyn Bus>,
    ca: CertificateAuthority,
    apex: Name,
    settings: RwLock<ZoneSettings>,
    zone: RwLock<Zone>,
    rate: server::RateLimit,
    stats: Arc<DnsStats>,
}

impl Shared {
    fn answer(&self, request: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let settings = self.settings.read().clone();
        answer(&self.zone.read(), &settings, request, tcp)
    }

    fn zone(&self) -> Zone {
        self.zone.read().clone()
    }

    /// Reads every org's viziers and replaces the zone when it changed (bumping the SOA serial).
    async fn refresh(&self) -> Result<()> {
        let mut viziers = Vec::new();
        for org in self.metastore.list_orgs().await? {
            viziers.extend(self.metastore.list_viziers(org.id).await?);
        }
        let zone = Zone::build(&self.apex, &viziers);
        if *self.zone.read() != zone {
            *self.zone.write() = zone;
            let mut settings = self.settings.write();
            let now = u32::try_from(loupe_common::time::now_unix_secs()).unwrap_or(u32::MAX);
            settings.serial = now.max(settings.serial.wrapping_add(1));
        }
        Ok(())
    }
}

/// What a DNS manager has done since it started, for its `/metrics`.
#[derive(Debug, Default)]
pub struct DnsStats {
    answered: AtomicU64,
    dropped: AtomicU64,
    unanswerable: AtomicU64,
    certificates_issued: AtomicU64,
    certificates_refused: AtomicU64,
    refresh_failures: AtomicU64,
}

impl DnsStats {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut text = String::new();
        for (name, help, value) in [
            ("loupe_dnsmgr_queries_answered_total", "DNS queries answered (UDP and TCP).", get(&self.answered)),
            (
                "loupe_dnsmgr_queries_dropped_total",
                "DNS queries dropped: over a client's rate, or larger than a query may be.",
                get(&self.dropped),
            ),
            (
                "loupe_dnsmgr_queries_unanswerable_total",
                "Datagrams that were not a DNS query.",
                get(&self.unanswerable),
            ),
            ("loupe_dnsmgr_certificates_issued_total", "Vizier certificates issued.", get(&self.certificates_issued)),
            (
                "loupe_dnsmgr_certificates_refused_total",
                "Vizier certificate requests refused (unknown vizier, bad key, database down).",
                get(&self.certificates_refused),
            ),
            (
                "loupe_dnsmgr_zone_refresh_failures_total",
                "Reads of the vizier records that failed.",
                get(&self.refresh_failures),
            ),
        ] {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
        text
    }
}

/// A running DNS manager; dropping it stops it.
pub struct DnsMgr {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsMgr {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsMgr {
    /// Reads the zone once, binds UDP and TCP on `config.listen` (the same port for both), and serves; answers
    /// vizier certificate requests on `bus` with certificates signed by `ca`.
    pub async fn start(
        config: DnsMgrConfig,
        metastore: Arc<dyn Metastore>,
        bus: Arc<dyn Bus>,
        ca: CertificateAuthority,
    ) -> Result<DnsMgr> {
        let domain = config.domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let fqdn = |name: &str| -> Result<Name> {
            let mut n = Name::from_ascii(name).map_err(|_| DnsMgrError::Domain(name.to_owned()))?;
            n.set_fqdn(true);
            Ok(n.to_lowercase())
        };
        if domain.is_empty() {
            return Err(DnsMgrError::Domain(config.domain));
        }
        let apex = fqdn(&domain)?;
        let ns_name = fqdn(config.ns_name.as_deref().unwrap_or(&format!("ns.{domain}")))?;
        let settings = ZoneSettings { ttl: config.ttl, ns_name, serial: 1 };
        let shared = Arc::new(Shared {
            metastore,
            bus,
            ca,
            zone: RwLock::new(Zone::build(&apex, &[])),
            apex,
            settings: RwLock::new(settings),
            rate: server::RateLimit::new(config.queries_per_second),
            stats: Arc::default(),
        });
        shared.refresh().await?;
        let listen_err = |addr, source| DnsMgrError::Listen { addr, source };
        let udp = tokio::net::UdpSocket::bind(config.listen).await.map_err(|e| listen_err(config.listen, e))?;
        let addr = udp.local_addr().map_err(|e| listen_err(config.listen, e))?;
        let tcp = tokio::net::TcpListener::bind(addr).await.map_err(|e| listen_err(addr, e))?;
        let certs = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                if let Err(error) = certs::serve(shared).await {
                    tracing::error!(%error, "vizier certificate requests are no longer answered");
                }
            })
        };
        let refresher = {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(config.refresh_every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    if let Err(error) = shared.refresh().await {
                        DnsStats::add(&shared.stats.refresh_failures);
                        tracing::warn!(%error, "vizier records not read; serving the last zone");
                    }
                }
            })
        };
        let tasks = vec![
            tokio::spawn(server::serve_udp(udp, Arc::clone(&shared))),
            tokio::spawn(server::serve_tcp(tcp, Arc::clone(&shared))),
            certs,
            refresher,
        ];
        Ok(DnsMgr { shared, addr, tasks })
    }

    /// Where DNS is served (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters, for a `/metrics` endpoint.
    pub fn stats(&self) -> Arc<DnsStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The zone as last read.
    pub fn zone(&self) -> Zone {
        self.shared.zone()
    }
}
