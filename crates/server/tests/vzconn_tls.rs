//! End to end: VZConn over TLS. A real `loupe vizier up` registers through `loupe up`'s TLS proxy port (where
//! VZConn shares the API's port), through `loupe cloud api --vzconn-addr` (the gateway forwarding VZConn to its
//! own process), and refuses a `loupe cloud vzconn` whose certificate its CA did not sign.
//!
//! Needs no root (tracing is off). Owns only these tests; `CloudUp` is in `dns`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Guard, free_port, loupe_bin, temp_dir, wait_for_port};
use crate::dns::{CloudUp, dig, read, vizier_up};

#[test]
fn a_vizier_registers_through_the_tls_proxy_port() {
    // With the DNS manager in process too (`loupe up --dns-listen`, domain `localhost`).
    let dns_port = free_port();
    let cloud = CloudUp::start_with("vztls-proxy", &["--dns-listen", &format!("127.0.0.1:{dns_port}")]);
    let key = cloud.deploy_key();
    let data = temp_dir("vztls-proxy-edge");
    let _edge = vizier_up(
        &format!("https://127.0.0.1:{}", cloud.proxy_port),
        Some(&cloud.ca()),
        &key,
        "via-proxy",
        &data,
        &["--advertise-addr", "127.0.0.42:50300"],
    );
    let row = cloud.healthy("via-proxy", Duration::from_secs(30), &data.with_extension("log"));
    assert_eq!(row["num_agents"], 1, "{row}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while dig(dns_port, &["+short", "via-proxy.localhost", "A"]).trim() != "127.0.0.42" {
        assert!(Instant::now() < deadline, "loupe up's DNS manager never named the vizier");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !data.join("tls").join("vizier.crt").exists() {
        assert!(Instant::now() < deadline, "no certificate from loupe up's DNS manager");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The bridge is a long-lived stream through the proxy: heartbeats keep arriving over it.
    let first = row["last_heartbeat_at"].as_i64().expect("heartbeat");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = cloud.viziers();
        let now = list.iter().find(|v| v["name"] == "via-proxy").expect("listed");
        if now["status"] == "healthy" && now["last_heartbeat_at"].as_i64().is_some_and(|t| t >= first + 6) {
            break;
        }
        assert!(Instant::now() < deadline, "heartbeats stopped through the proxy: {now}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(read(&data.with_extension("log")).matches("bridge to the cloud open").count(), 1);
}

#[test]
fn a_vizier_refuses_a_vzconn_its_ca_did_not_sign_and_plaintext_meets_tls() {
    let cloud = CloudUp::start("vztls-wrong");
    let key = cloud.deploy_key();
    let db = format!("sqlite://{}", cloud.data.join("loupe.db").display());
    let (vz_port, vz_metrics) = (free_port(), free_port());
    let _vzconn = Guard(
        Command::new(loupe_bin())
            .args(["cloud", "vzconn", "--metastore-url", &db, "--listen", &format!("127.0.0.1:{vz_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{vz_metrics}")])
            .arg("--data-dir")
            .arg(&cloud.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vzconn"),
    );
    wait_for_port(vz_port, "loupe cloud vzconn");
    // Another CA, made apart.
    let other = temp_dir("vztls-other-ca");
    let made = Command::new(loupe_bin()).args(["setup", "init-secrets", "--dir"]).arg(&other).output().expect("init");
    assert!(made.status.success());
    let wrong = temp_dir("vztls-wrong-edge");
    let _wrong =
        vizier_up(&format!("https://127.0.0.1:{vz_port}"), Some(&other.join("ca.crt")), &key, "wrong-ca", &wrong, &[]);
    let plain = temp_dir("vztls-plain-edge");
    let _plain = vizier_up(&format!("127.0.0.1:{vz_port}"), None, &key, "plaintext", &plain, &[]);
    // The right CA registers at once; the others never do.
    let right = temp_dir("vztls-right-edge");
    let _right = vizier_up(&format!("https://127.0.0.1:{vz_port}"), Some(&cloud.ca()), &key, "right-ca", &right, &[]);
    cloud.healthy("right-ca", Duration::from_secs(30), &right.with_extension("log"));
    std::thread::sleep(Duration::from_secs(3));
    let names: Vec<String> = cloud.viziers().iter().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect();
    assert!(!names.iter().any(|n| n == "wrong-ca" || n == "plaintext"), "{names:?}");
    let log = read(&wrong.with_extension("log"));
    assert!(log.contains("cannot reach the cloud") && log.contains("certificate"), "{log}");
    // It never got an identity from the cloud.
    let identity: serde_json::Value =
        serde_json::from_str(&read(&wrong.join("vizier-identity.json"))).expect("identity file");
    assert_eq!(identity["vizier_id"], "", "{identity}");
}

#[test]
fn the_api_gateway_forwards_vzconn_to_its_own_process() {
    let cloud = CloudUp::start("vztls-gateway");
    let key = cloud.deploy_key();
    let db = format!("sqlite://{}", cloud.data.join("loupe.db").display());
    let (vz_port, vz_metrics, api_port, api_metrics) = (free_port(), free_port(), free_port(), free_port());
    let _vzconn = Guard(
        Command::new(loupe_bin())
            .args(["cloud", "vzconn", "--metastore-url", &db])
            .args(["--listen", &format!("127.0.0.1:{vz_port}"), "--metrics-listen", &format!("127.0.0.1:{vz_metrics}")])
            .arg("--data-dir")
            .arg(&cloud.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn vzconn"),
    );
    let _api = Guard(
        Command::new(loupe_bin())
            .args(["cloud", "api", "--metastore-url", &db, "--vzconn-addr", &format!("https://127.0.0.1:{vz_port}")])
            // VZConn presents the cloud's certificate (generated in the shared data dir): verified by its CA.
            .arg("--internal-ca")
            .arg(cloud.data.join("secrets").join("ca.crt"))
            .args(["--api-listen", &format!("127.0.0.1:{api_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{api_metrics}")])
            .arg("--data-dir")
            .arg(&cloud.data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn api"),
    );
    wait_for_port(vz_port, "loupe cloud vzconn");
    wait_for_port(api_port, "loupe cloud api");
    let data = temp_dir("vztls-gateway-edge");
    let _edge = vizier_up(&format!("127.0.0.1:{api_port}"), None, &key, "via-gateway", &data, &[]);
    let row = cloud.healthy("via-gateway", Duration::from_secs(30), &data.with_extension("log"));
    assert_eq!(row["num_agents"], 1, "{row}");
}
