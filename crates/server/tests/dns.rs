//! End to end: the DNS manager. A real `loupe vizier up` registers over TLS with `loupe cloud vzconn` (on NATS),
//! reporting an address; `loupe cloud dnsmgr` (same metastore, NATS and cloud CA) answers `dig` for
//! `<vizier name>.<domain>` with that address, over UDP and TCP, and issues the vizier a certificate for the
//! name that chains to the cloud CA. Also holds `CloudUp`, the `loupe up` these tests and `vzconn_tls` start.
//!
//! Needs no root (tracing is off) but `dig` (Debian `bind9-dnsutils`) and `openssl`. Owns only these tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up_over, px_output, temp_dir, wait_for_port};

/// `loupe up --no-trace` on known ports (its TLS proxy included), the admin logged in with a changed password.
pub(crate) struct CloudUp {
    pub(crate) _loupe: Guard,
    pub(crate) api_port: u16,
    pub(crate) proxy_port: u16,
    pub(crate) data: PathBuf,
    config: PathBuf,
}

impl CloudUp {
    pub(crate) fn start(tag: &str) -> Self {
        Self::start_with(tag, &[])
    }

    pub(crate) fn start_with(tag: &str, extra: &[&str]) -> Self {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (port, api_port, proxy_port) = (free_port(), free_port(), free_port());
            let data = temp_dir(&format!("{tag}-data"));
            let log = std::fs::File::create(data.with_extension("log")).expect("log file");
            let child = loupe_up_over(&data, port, api_port, proxy_port)
                .arg("--no-trace")
                .args(extra)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn loupe up");
            let mut loupe = Guard(child);
            let deadline = Instant::now() + Duration::from_secs(60);
            let up = loop {
                if loupe.0.try_wait().expect("wait").is_some() {
                    break false;
                }
                if [api_port, proxy_port].iter().all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok()) {
                    break true;
                }
                assert!(Instant::now() < deadline, "loupe up did not listen");
                std::thread::sleep(Duration::from_millis(50));
            };
            if !up {
                // A parallel test took a port first: start again on new ones.
                assert!(attempt < 3, "loupe up exited: {}", read(&data.with_extension("log")));
                continue;
            }
            let config = temp_dir(&format!("{tag}-px")).join("px");
            let cloud = CloudUp { _loupe: loupe, api_port, proxy_port, data, config };
            cloud.px_ok_in(&["auth", "login", "--email", "admin@default.com"], "admin\n");
            cloud.px_ok_in(&["auth", "password"], "admin\na long new passphrase\n");
            return cloud;
        }
    }

    pub(crate) fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// The cloud CA every TLS client here trusts.
    pub(crate) fn ca(&self) -> PathBuf {
        self.data.join("secrets").join("ca.crt")
    }

    fn px_ok_in(&self, args: &[&str], stdin: &str) -> String {
        let out: Output = px_output(&self.addr(), None, &self.config, args, stdin);
        assert!(out.status.success(), "px {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new deploy key's plaintext.
    pub(crate) fn deploy_key(&self) -> String {
        let out = self.px_ok_in(&["deploy-key", "create", "-d", "e2e", "-o", "json"], "");
        let created: Value = serde_json::from_str(out.trim()).expect("json");
        created["key"].as_str().expect("key").to_owned()
    }

    pub(crate) fn viziers(&self) -> Vec<Value> {
        self.px_ok_in(&["get", "viziers", "-o", "json"], "")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until the vizier `name` is listed healthy; returns its row.
    pub(crate) fn healthy(&self, name: &str, limit: Duration, log: &Path) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.viziers();
            if let Some(v) = list.iter().find(|v| v["name"] == name && v["status"] == "healthy") {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "{name} not healthy in {limit:?}: {list:?}\n{}", read(log));
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `loupe vizier up --no-trace` named `name` with `key`, dialing `cloud` and trusting `ca`; its stderr goes to
/// `<data>.log`.
pub(crate) fn vizier_up(cloud: &str, ca: Option<&Path>, key: &str, name: &str, data: &Path, extra: &[&str]) -> Guard {
    let mut c = Command::new(loupe_bin());
    c.args(["vizier", "up", "--no-trace", "--cloud-addr", cloud, "--cluster-name", name])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .env("LOUPE_DEPLOY_KEY", key)
        .env_remove("LOUPE_CA_CERT")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension("log")).expect("log"));
    if let Some(ca) = ca {
        c.arg("--ca-cert").arg(ca);
    }
    Guard(c.spawn().expect("spawn loupe vizier up"))
}

pub(crate) fn dig(port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=2"])
        .args(args)
        .output()
        .expect("dig (Debian bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dnsmgr_names_a_registered_vizier_and_issues_its_certificate() {
    let cloud = CloudUp::start("dns");
    let key = cloud.deploy_key();
    let nats = loupe_testkit::NatsServer::start();
    let db = format!("sqlite://{}", cloud.data.join("loupe.db").display());
    // VZConn (TLS with the cloud CA's server certificate: the default) and the DNS manager, both over loupe up's
    // metastore and secrets and one NATS.
    let (vz_port, vz_metrics, dns_port, dns_metrics) = (free_port(), free_port(), free_port(), free_port());
    let common = |c: &mut Command| {
        c.args(["--metastore-url", &db, "--nats-url", &nats.url()]).arg("--data-dir").arg(&cloud.data);
    };
    let mut vzconn = Command::new(loupe_bin());
    vzconn.args(["cloud", "vzconn", "--listen", &format!("127.0.0.1:{vz_port}")]);
    vzconn.args(["--metrics-listen", &format!("127.0.0.1:{vz_metrics}")]);
    common(&mut vzconn);
    let _vzconn = Guard(vzconn.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn vzconn"));
    let mut dnsmgr = Command::new(loupe_bin());
    dnsmgr.args(["cloud", "dnsmgr", "--domain", "Loupe.Test", "--dns-listen", &format!("127.0.0.1:{dns_port}")]);
    dnsmgr.args(["--refresh", "500ms", "--metrics-listen", &format!("127.0.0.1:{dns_metrics}")]);
    common(&mut dnsmgr);
    let _dnsmgr = Guard(dnsmgr.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn dnsmgr"));
    wait_for_port(vz_port, "loupe cloud vzconn");
    wait_for_port(dns_port, "loupe cloud dnsmgr");

    // The vizier reports the address its clients should use (not its listen address).
    let data = temp_dir("dns-edge");
    let _edge = vizier_up(
        &format!("https://127.0.0.1:{vz_port}"),
        Some(&cloud.ca()),
        &key,
        "dns-edge",
        &data,
        &["--advertise-addr", "192.0.2.7:50300"],
    );
    let row = cloud.healthy("dns-edge", Duration::from_secs(30), &data.with_extension("log"));
    assert_eq!((row["num_agents"].as_i64(), row["address"].as_str()), (Some(1), Some("192.0.2.7:50300")), "{row}");
    let id = row["id"].as_str().expect("id").to_owned();

    // DNS answers the reported address under the vizier's name and id, over UDP and TCP.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dig(dns_port, &["+short", "dns-edge.loupe.test", "A"]).trim() != "192.0.2.7" {
        assert!(Instant::now() < deadline, "dig never answered the vizier's address");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(dig(dns_port, &["+short", "+tcp", "DNS-EDGE.loupe.test", "A"]).trim(), "192.0.2.7");
    assert_eq!(dig(dns_port, &["+short", &format!("{id}.loupe.test"), "A"]).trim(), "192.0.2.7");
    let full = dig(dns_port, &["dns-edge.loupe.test", "A"]);
    assert!(full.contains("status: NOERROR") && full.contains(" aa "), "{full}");
    assert!(dig(dns_port, &["nobody.loupe.test", "A"]).contains("status: NXDOMAIN"));
    assert!(dig(dns_port, &["example.com", "A"]).contains("status: REFUSED"));
    assert_eq!(dig(dns_port, &["+short", "loupe.test", "NS"]).trim(), "ns.loupe.test.");

    // The certificate the vizier received names it and chains to the cloud CA; its key stayed with it.
    let tls = data.join("tls");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tls.join("vizier.crt").exists() {
        assert!(Instant::now() < deadline, "no certificate arrived: {}", read(&data.with_extension("log")));
        std::thread::sleep(Duration::from_millis(200));
    }
    let verify = |name: &str| {
        let out = Command::new("openssl")
            .args(["verify", "-CAfile"])
            .arg(cloud.ca())
            .args(["-verify_hostname", name])
            .arg(tls.join("vizier.crt"))
            .output()
            .expect("openssl");
        String::from_utf8_lossy(&out.stdout).trim().to_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let cert = tls.join("vizier.crt").display().to_string();
    assert_eq!(verify("dns-edge.loupe.test"), format!("{cert}: OK"));
    assert_eq!(verify(&format!("{id}.loupe.test")), format!("{cert}: OK"));
    assert!(verify("other.loupe.test").contains("hostname mismatch"), "{}", verify("other.loupe.test"));
    let mode = |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).expect("meta").permissions());
    assert_eq!(mode(&tls.join("vizier.key")) & 0o777, 0o600);
    assert_eq!(std::fs::read(tls.join("ca.crt")).expect("ca"), std::fs::read(cloud.ca()).expect("cloud ca"));

    // Its health and metrics: ready, and what it answered and issued counted.
    let get = |path: &str| {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(("127.0.0.1", dns_metrics)).expect("connect to metrics");
        write!(tcp, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("write");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).expect("read");
        answer
    };
    assert!(get("/readyz").starts_with("HTTP/1.1 200"), "{}", get("/readyz"));
    let metrics = get("/metrics");
    let value = |name: &str| -> u64 {
        let line =
            metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {metrics}"));
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number")
    };
    // At least the 7 digs above (the first one may have been asked several times before the record arrived).
    assert!(value("loupe_dnsmgr_queries_answered_total") >= 7, "{metrics}");
    assert_eq!(value("loupe_dnsmgr_certificates_issued_total"), 1, "{metrics}");
    assert_eq!(value("loupe_dnsmgr_certificates_refused_total"), 0, "{metrics}");
}
