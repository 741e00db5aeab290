//! End to end over TLS: the real `px` against `loupe up --no-trace` through its TLS proxy, trusting the CA that
//! `loupe up` generated; and `loupe setup init-secrets` and `loupe cloud proxy` (redirect, upstream down) alone.
//!
//! Needs no root: tracing is off, and every test has its own free ports, data directory and `px` config
//! directory. Owns only these tests; shared helpers are in `common`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up_with_proxy, px_output, temp_dir, temp_path, wait_for_port};

const ADMIN: &str = "admin@default.com";
const NEW_PASSWORD: &str = "a long new passphrase over tls";
const UNTRUSTED: &str =
    "error: the cloud's certificate is not trusted: pass --ca-cert <data-dir>/secrets/ca.crt or set PX_CA_CERT";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn px_logs_in_manages_keys_and_runs_scripts_over_tls_through_loupe_up() {
    let (port, api_port, proxy_port) = (free_port(), free_port(), free_port());
    let loupe = loupe_up_with_proxy(port, api_port, proxy_port, "tls")
        .arg("--no-trace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe");
    let _loupe = Guard(loupe);
    wait_for_port(proxy_port, "loupe up's TLS proxy");
    let ca = temp_path("data-tls").join("secrets/ca.crt");
    assert!(ca.exists(), "loupe up did not generate {}", ca.display());
    let config = temp_dir("px-config-tls").join("px");
    let addr = format!("https://127.0.0.1:{proxy_port}");
    let px = |ca: Option<&Path>, args: &[&str], stdin: &str| px_output(&addr, ca, &config, args, stdin);

    // Without the CA: one clear line, exit 2, no credential stored.
    let out = px(None, &["auth", "login", "--email", ADMIN], "admin\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim_end(), UNTRUSTED);
    assert!(!config.join("auth.json").exists());

    // The bootstrap admin logs in over TLS and must change the password first.
    let out = px(Some(&ca), &["auth", "login", "--email", ADMIN], "admin\n");
    assert!(ok(&out, "login").contains(ADMIN));
    assert!(text(&out.stderr).contains("px auth password"), "{}", text(&out.stderr));
    let out = px(Some(&ca), &["api-key", "list"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("the password must be changed"), "{}", text(&out.stderr));

    let out = px(Some(&ca), &["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
    ok(&out, "password change");
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(config.join("auth.json")).expect("auth.json")).expect("JSON");
    assert_eq!(stored["cloud_addr"], addr.as_str());

    // Log in again with the new password, at once: a login in the same second as the change is valid too.
    ok(&px(Some(&ca), &["auth", "logout"], ""), "logout");
    ok(&px(Some(&ca), &["auth", "login", "--email", ADMIN], &format!("{NEW_PASSWORD}\n")), "login again");

    // An API key, then the scripts, over TLS.
    let created = ok(&px(Some(&ca), &["api-key", "create", "-d", "tls", "-o", "json"], ""), "api-key create");
    let created: Value = serde_json::from_str(created.trim()).expect("JSON");
    assert!(created["key"].as_str().is_some_and(|k| k.starts_with("px-api-")), "{created}");
    let scripts = ok(&px(Some(&ca), &["script", "list", "-o", "json"], ""), "script list");
    assert!(scripts.lines().any(|l| l.contains("\"px/http_data\"")), "{scripts}");
    // The API key works over TLS too.
    let key = created["key"].as_str().unwrap_or_default();
    ok(&px(Some(&ca), &["auth", "login", "--api-key", key], ""), "login with the API key");

    // `px run` speaks gRPC through the proxy: a bundled script, then a compile error carried back in the stream.
    let out = px(Some(&ca), &["run", "px/http_data"], "");
    assert!(ok(&out, "px run").contains("http_data"), "{}", text(&out.stdout));
    let script = temp_dir("tls-script").join("typo.pxl");
    std::fs::write(&script, "import px\ndf = px.DataFrame(table='http_evnts')\npx.display(df)\n").expect("script");
    let out = px(Some(&ca), &["run", "-f", &script.to_string_lossy()], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("http_events"), "{}", text(&out.stderr));

    // `px run` without the CA: the same clear line.
    let out = px(None, &["run", "px/http_data"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr).trim_end(), UNTRUSTED);
}

fn loupe(args: &[&str]) -> Output {
    Command::new(loupe_bin()).args(args).env_remove("LOUPE_DOMAIN").output().expect("run loupe")
}

/// Sends a raw HTTP/1.1 request and returns the whole answer, lowercased.
fn raw_http(port: u16, request: &str) -> String {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    tcp.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).expect("read");
    answer.to_ascii_lowercase()
}

#[test]
fn init_secrets_is_idempotent_and_cloud_proxy_redirects_and_reports_a_down_api() {
    let data = temp_dir("tls-proxy-data");
    let dir: PathBuf = data.join("secrets");
    let dir_arg = dir.to_string_lossy().into_owned();
    let files = [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "internal.crt",
        "internal.key",
        "jwt-signing-key",
        "db-password",
        "redis-password",
        "vizier-query-token",
        "vizier-credential-key",
        "settings-key",
    ];

    let out = loupe(&["setup", "init-secrets", "--dir", &dir_arg, "--domain", "loupe.example.com"]);
    let printed = ok(&out, "init-secrets");
    for f in files {
        assert!(printed.contains(&format!("created {}", dir.join(f).display())), "{f}: {printed}");
    }
    assert!(printed.contains("PX_CA_CERT="), "{printed}");
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.join(f)).expect("read")).collect();

    // Again, with a name the certificate lacks: everything kept, the gap reported, nothing rewritten.
    let out = loupe(&["setup", "init-secrets", "--data-dir", &data.to_string_lossy(), "--san", "other.example"]);
    let printed = ok(&out, "init-secrets again");
    assert_eq!(printed.lines().filter(|l| l.starts_with("kept")).count(), files.len(), "{printed}");
    assert!(!printed.contains("created"), "{printed}");
    let warning = text(&out.stderr);
    assert!(warning.contains("does not cover other.example") && warning.contains("server.crt"), "{warning}");
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(dir.join(f)).expect("read")).collect();
    assert_eq!(before, after);

    // Without secrets, `loupe cloud proxy` says how to make them.
    let empty = temp_dir("tls-proxy-empty");
    let out = loupe(&["cloud", "proxy", "--listen", "127.0.0.1:0", "--data-dir", &empty.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("loupe setup init-secrets"), "{}", text(&out.stderr));

    // The proxy alone, in front of an API that is not running.
    let (tls_port, redirect_port, api_port, metrics_port) = (free_port(), free_port(), free_port(), free_port());
    let proxy = Command::new(loupe_bin())
        .args(["cloud", "proxy", "--listen", &format!("127.0.0.1:{tls_port}")])
        .args(["--redirect-listen", &format!("127.0.0.1:{redirect_port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--upstream", &format!("http://127.0.0.1:{api_port}")])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe cloud proxy");
    let _proxy = Guard(proxy);
    wait_for_port(tls_port, "loupe cloud proxy");
    wait_for_port(redirect_port, "loupe cloud proxy's redirect listener");

    let answer = raw_http(
        redirect_port,
        &format!(
            "GET /api/v1/scripts?x=1 HTTP/1.1\r\nHost: loupe.example.com:{redirect_port}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert!(answer.starts_with("http/1.1 308"), "{answer}");
    assert!(
        answer.contains(&format!("location: https://loupe.example.com:{tls_port}/api/v1/scripts?x=1\r\n")),
        "{answer}"
    );

    // Through TLS to a down API: the proxy's 502 reaches px as the server's message.
    let config = temp_dir("px-config-tls-down");
    let addr = format!("https://localhost:{tls_port}");
    let out = px_output(&addr, Some(&dir.join("ca.crt")), &config, &["auth", "login", "--email", ADMIN], "admin\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("error: the cloud API at 127.0.0.1:") && err.contains("is unreachable"), "{err}");

    // Its health and metrics: not ready while the API is down, and every event above counted.
    wait_for_port(metrics_port, "loupe cloud proxy's metrics listener");
    let get =
        |path: &str| raw_http(metrics_port, &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert!(get("/healthz").starts_with("http/1.1 200"), "{}", get("/healthz"));
    let ready = get("/readyz");
    assert!(ready.starts_with("http/1.1 503") && ready.contains("upstream"), "{ready}");
    let metrics = get("/metrics");
    for line in [
        "loupe_proxy_redirects_total 1\n",
        "loupe_proxy_upstream_errors_total 1\n",
        "loupe_proxy_requests_total{protocol=\"http\"} 1\n",
        "loupe_proxy_requests_total{protocol=\"grpc\"} 0\n",
        "# type loupe_proxy_tls_handshakes_failed_total counter\n", // raw_http lowercases the answer
    ] {
        assert!(metrics.contains(line), "{line:?} missing from:\n{metrics}");
    }
}
