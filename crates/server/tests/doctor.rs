//! End to end: `loupe doctor` (the cloud's side) and `px debug` (the client's side) against a real `loupe up
//! --no-trace`.
//!
//! `loupe doctor` runs against `loupe up` (its TLS proxy, VZConn through it, its SQLite
//! metastore and its own vizier), a real `nats-server` and a real `redis-server`, then with the faults
//! self-hosters meet put in on purpose: a stopped NATS, a Redis that wants a password, a wrong domain, an address
//! without its port, a cloud that stopped. Each must fail its own check with its fix and leave the others alone.
//!
//! Needs no root (tracing is off). Owns only these tests; shared helpers are in `common`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use loupe_testkit::{NatsServer, RedisServer};
use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up_over, px_output, temp_dir, wait_for_port};

/// `loupe doctor -o json` with `args`: its exit code and report.
fn doctor(data: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let out = doctor_output(data, &["-o", "json"], args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

fn doctor_output(data: &Path, format: &[&str], args: &[&str]) -> Output {
    Command::new(loupe_bin())
        .arg("doctor")
        .arg("--data-dir")
        .arg(data)
        .args(["--timeout", "3s"])
        .args(format)
        .args(args)
        .env_remove("LOUPE_METASTORE_URL")
        .env_remove("LOUPE_NATS_URL")
        .env_remove("LOUPE_REDIS_URL")
        .env_remove("LOUPE_DOMAIN")
        .output()
        .expect("run loupe doctor")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The status of each check, in order.
fn statuses(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (c["check"].as_str().unwrap_or_default().to_string(), c["status"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"))
}

/// The checks not named in `except` all passed (or were skipped where nothing was given to check).
fn others_pass(report: &Value, except: &[&str]) {
    for (name, status) in statuses(report) {
        if !except.contains(&name.as_str()) {
            assert!(status == "ok" || status == "skip", "{name} is {status}: {report:#}");
        }
    }
}

/// Sends one RESP command to Redis on `port` and returns the reply line.
fn redis_command(port: u16, words: &[&str]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    let mut command = format!("*{}\r\n", words.len());
    for w in words {
        command.push_str(&format!("${}\r\n{w}\r\n", w.len()));
    }
    stream.write_all(command.as_bytes()).expect("send");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply).expect("reply");
    text(&reply[..n])
}

#[test]
fn doctor_passes_a_healthy_cloud_and_names_each_fault_with_its_fix() {
    let data = temp_dir("doctor");
    let (port, api_port, proxy_port) = (free_port(), free_port(), free_port());
    let child = loupe_up_over(&data, port, api_port, proxy_port)
        .arg("--no-trace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe up");
    let mut loupe = Guard(child);
    wait_for_port(proxy_port, "loupe up's TLS proxy");
    let mut nats = NatsServer::start();
    let redis = RedisServer::start();
    let cloud = format!("localhost:{proxy_port}");
    let deps = ["--nats-url", &nats.url(), "--redis-url", &redis.url()];
    let healthy_args = [&["--cloud-addr", cloud.as_str()][..], &deps[..]].concat();

    // Healthy: every check passes once the host's vizier has registered and sent a heartbeat.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (code, report) = doctor(&data, &healthy_args);
        if code == Some(0) {
            break report;
        }
        assert!(Instant::now() < deadline, "loupe doctor never passed: {report:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(report["healthy"], true);
    let names: Vec<String> = statuses(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["address", "dns", "certificate", "rest", "grpc", "vzconn", "metastore", "nats", "redis", "viziers"],
        "the checks run in the order things break"
    );
    for (name, status) in statuses(&report) {
        assert_eq!(status, "ok", "{name}: {report:#}");
    }
    assert!(check(&report, "viziers")["detail"].as_str().unwrap_or_default().starts_with("1 vizier(s)"), "{report:#}");
    let table = doctor_output(&data, &[], &healthy_args);
    assert_eq!(table.status.code(), Some(0), "{}", text(&table.stdout));
    assert!(text(&table.stdout).starts_with("CHECK "), "{}", text(&table.stdout));
    assert!(text(&table.stdout).ends_with("all checks passed\n"), "{}", text(&table.stdout));
    assert!(table.stderr.is_empty(), "the report is all it prints: {}", text(&table.stderr));

    // A stopped NATS fails its check alone.
    nats.stop();
    let (code, report) = doctor(&data, &healthy_args);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "nats")["status"], "fail", "{report:#}");
    assert!(check(&report, "nats")["fix"].as_str().unwrap_or_default().contains("start NATS"), "{report:#}");
    others_pass(&report, &["nats"]);
    nats.restart();

    // Redis that wants a password: refused without it, fine with it in the URL.
    let redis_port: u16 = redis.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("redis port");
    assert_eq!(redis_command(redis_port, &["CONFIG", "SET", "requirepass", "doctor-s3cret"]), "+OK\r\n");
    let (code, report) = doctor(&data, &healthy_args);
    assert_eq!(code, Some(1), "{report:#}");
    let redis_check = check(&report, "redis");
    assert_eq!(redis_check["status"], "fail", "{report:#}");
    assert!(redis_check["fix"].as_str().unwrap_or_default().contains("password"), "{report:#}");
    assert!(!report.to_string().contains("doctor-s3cret"));
    let with_password = format!("redis://:doctor-s3cret@127.0.0.1:{redis_port}");
    let (code, report) =
        doctor(&data, &["--cloud-addr", &cloud, "--nats-url", &nats.url(), "--redis-url", &with_password]);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(!report.to_string().contains("doctor-s3cret"), "the password is never printed: {report:#}");

    // The wrong domain: the certificate of the proxy and of VZConn covers localhost, not it.
    let by_ip = format!("127.0.0.1:{proxy_port}");
    let (code, report) =
        doctor(&data, &["--domain", "cloud.example.com", "--cloud-addr", &by_ip, "--vzconn-addr", &by_ip]);
    assert_eq!(code, Some(1), "{report:#}");
    for name in ["certificate", "vzconn"] {
        let c = check(&report, name);
        assert_eq!(c["status"], "fail", "{report:#}");
        let detail = c["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("covers localhost, 127.0.0.1") && detail.ends_with("not cloud.example.com"),
            "{detail}"
        );
        assert!(c["fix"].as_str().unwrap_or_default().contains("init-secrets --domain cloud.example.com"), "{c}");
    }
    others_pass(&report, &["certificate", "vzconn"]);

    // `cloudAddr` without its port: the address fails, the checks that need it are skipped, not failed.
    let (code, report) = doctor(&data, &["--cloud-addr", "localhost", "--vzconn-addr", &cloud]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "address")["detail"], "cloud address \"localhost\": it has no port");
    assert!(check(&report, "address")["fix"].as_str().unwrap_or_default().contains("localhost:443"), "{report:#}");
    for name in ["dns", "certificate", "rest", "grpc"] {
        assert_eq!(check(&report, name)["status"], "skip", "{report:#}");
    }
    others_pass(&report, &["address"]);

    // The cloud stops: nothing listens, and its vizier soon counts as silent.
    loupe.0.kill().expect("stop loupe up");
    let _ = loupe.0.wait();
    std::thread::sleep(Duration::from_secs(2));
    let (code, report) = doctor(&data, &["--cloud-addr", &cloud, "--heartbeat-age", "1s"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert!(
        check(&report, "certificate")["detail"].as_str().unwrap_or_default().contains("cannot connect"),
        "{report:#}"
    );
    assert_eq!(check(&report, "vzconn")["status"], "fail", "{report:#}");
    let viziers = check(&report, "viziers");
    assert_eq!(viziers["status"], "fail", "{report:#}");
    assert!(viziers["detail"].as_str().unwrap_or_default().contains("last heard"), "{report:#}");
}

/// `px debug -o json` against `addr` with `config` as its config directory: exit code and report.
fn px_debug(addr: &str, ca: Option<&Path>, config: &Path) -> (Option<i32>, Value) {
    let out = px_output(addr, ca, config, &["debug", "-o", "json"], "");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

#[test]
fn px_debug_walks_the_client_side_and_says_what_to_do_next() {
    let data = temp_dir("px-debug");
    let config = temp_dir("px-debug-config");
    let (port, api_port, proxy_port) = (free_port(), free_port(), free_port());
    let child = loupe_up_over(&data, port, api_port, proxy_port)
        .arg("--no-trace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe up");
    let _loupe = Guard(child);
    wait_for_port(proxy_port, "loupe up's TLS proxy");
    let addr = format!("https://localhost:{proxy_port}");
    let ca = data.join("secrets/ca.crt");

    // The CA not trusted: the API check says so and what to pass.
    let (code, report) = px_debug(&addr, None, &config);
    assert_eq!(code, Some(1), "{report:#}");
    let api = check(&report, "api");
    assert_eq!(api["status"], "fail", "{report:#}");
    assert!(api["fix"].as_str().unwrap_or_default().contains("PX_CA_CERT"), "{report:#}");
    assert_eq!(check(&report, "credential")["status"], "skip", "{report:#}");

    // Trusted, not logged in.
    let (code, report) = px_debug(&addr, Some(&ca), &config);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "api")["status"], "ok", "{report:#}");
    let credential = check(&report, "credential");
    assert_eq!(credential["status"], "fail", "{report:#}");
    assert!(credential["fix"].as_str().unwrap_or_default().contains("px auth login"), "{report:#}");

    // Logged in with the initial password: the session must change it first.
    let login = px_output(&addr, Some(&ca), &config, &["auth", "login", "--email", "admin@default.com"], "admin\n");
    assert!(login.status.success(), "{}", text(&login.stderr));
    let (code, report) = px_debug(&addr, Some(&ca), &config);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "session")["fix"], "run `px auth password`", "{report:#}");
    let change = px_output(&addr, Some(&ca), &config, &["auth", "password"], "admin\na long debug passphrase\n");
    assert!(change.status.success(), "{}", text(&change.stderr));

    // Healthy: the host's vizier answers a script through the cloud.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        let (code, report) = px_debug(&addr, Some(&ca), &config);
        if code == Some(0) {
            break report;
        }
        assert!(Instant::now() < deadline, "px debug never passed: {report:#}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let names: Vec<String> = statuses(&report).into_iter().map(|(n, _)| n).collect();
    let vizier = names.iter().find(|n| n.starts_with("query ")).unwrap_or_else(|| panic!("no query check: {report:#}"));
    assert_eq!(names, ["address", "dns", "api", "credential", "session", "viziers", vizier.as_str(), "version"]);
    for (name, status) in statuses(&report) {
        assert_eq!(status, "ok", "{name}: {report:#}");
    }
    assert!(check(&report, vizier)["detail"].as_str().unwrap_or_default().ends_with("(1 agent(s))"), "{report:#}");
    let stored = std::fs::read_to_string(config.join("auth.json")).expect("auth.json");
    let token: Value = serde_json::from_str(&stored).expect("json");
    let token = token["token"].as_str().expect("a session token");
    assert!(!report.to_string().contains(token), "the credential is never printed");

    // A name that does not resolve.
    let (code, report) = px_debug("https://no-such-host.invalid:443", Some(&ca), &config);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(check(&report, "dns")["status"], "fail", "{report:#}");
    assert_eq!(check(&report, "api")["status"], "skip", "{report:#}");
}
