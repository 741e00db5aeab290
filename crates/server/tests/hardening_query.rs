//! End to end, as an attacker on the same host would try it: every port a Loupe process opens either
//! demands a credential before it answers a query, or serves only health and metrics.
//!
//! `loupe vizier pem` refuses any query call without its query token; `loupe up` opens no agent port at all
//! (its queries go through the API, behind a user's credential); `/metrics`, `/healthz` and `/readyz` answer on
//! the metrics listener and nowhere else. Needs no root (`--no-trace`). Owns only these tests.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{Guard, free_port, loupe_bin, loupe_up_with_proxy, px_bin, temp_dir, temp_path, wait_for_port};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `px` against `addr` with an empty config directory and only the token settings given in `env`.
fn px(addr: &str, env: &[(&str, &str)], args: &[&str]) -> Output {
    let config = temp_dir(&format!("hq-px-{}", addr.replace([':', '/'], "_")));
    let mut c = Command::new(px_bin());
    c.args(args)
        .env("PX_CLOUD_ADDR", addr)
        .env("PX_CONFIG_DIR", &config)
        .env_remove("PX_VIZIER_TOKEN")
        .env_remove("PX_VIZIER_TOKEN_FILE")
        .env_remove("PX_CA_CERT");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run px")
}

/// `GET url` with curl: (status, body). `ca` is trusted for https.
fn get(url: &str, ca: Option<&Path>) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-w", "\n%{http_code}", "-o", "-"]);
    if let Some(ca) = ca {
        c.arg("--cacert").arg(ca);
    }
    let out = c.arg(url).output().expect("curl is needed (scripts/test.sh installs it)");
    let body = text(&out.stdout);
    let (body, status) = body.rsplit_once('\n').unwrap_or(("", &body));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

/// The TCP ports process `pid` listens on, from its socket inodes and /proc/net/tcp{,6}.
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the child's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address is cols[1] (`ADDR:PORT` in hex), st cols[3] (0A = LISTEN), inode cols[9].
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                let port = cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}

#[test]
fn a_standalone_agent_refuses_every_query_without_its_token() {
    let data = temp_dir("hq-pem");
    let (port, metrics) = (free_port(), free_port());
    let child = Command::new(loupe_bin())
        .args(["vizier", "pem", "--no-trace", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}"), "--data-dir"])
        .arg(&data)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe vizier pem");
    let _pem = Guard(child);
    wait_for_port(port, "loupe vizier pem");
    let token_file = data.join("secrets").join("vizier-query-token");
    assert_eq!(std::fs::metadata(&token_file).expect("token generated").permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).expect("token");
    assert_eq!(token.len(), 64, "{token}");
    let addr = format!("127.0.0.1:{port}");

    // The attack of the review: an empty px config, no token. Refused, nothing printed.
    let out = px(&addr, &[], &["run", "px/http_data", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("needs its query token"), "{}", text(&out.stderr));
    // Health checks are query calls too.
    let out = px(&addr, &[], &["version"]);
    assert!(
        text(&out.stdout).contains("did not answer: this query endpoint needs its query token"),
        "{}",
        text(&out.stdout)
    );
    // A wrong token, or the right one with a byte missing.
    for wrong in ["0000000000000000000000000000000000000000000000000000000000000000", &token[..63]] {
        let out = px(&addr, &[("PX_VIZIER_TOKEN", wrong)], &["run", "px/http_data", "-o", "json"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("invalid query token"), "{}", text(&out.stderr));
    }

    // With the token (file or environment) the same query runs.
    let out =
        px(&addr, &[], &["run", "px/http_data", "-o", "json", "--token-file", token_file.to_str().expect("utf8")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = px(&addr, &[("PX_VIZIER_TOKEN", &token)], &["version"]);
    assert!(text(&out.stdout).contains("server version"), "{}", text(&out.stdout));

    // The query port serves queries only; health and metrics are on the metrics listener, without a token.
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(&format!("http://{addr}{path}"), None).0, 404, "{path} on the query port");
    }
    let (status, body) = get(&format!("http://127.0.0.1:{metrics}/metrics"), None);
    assert_eq!(status, 200);
    assert!(body.contains("loupe_table_rows{table=\"http_events\"} 0"), "{body}");
    assert_eq!(get(&format!("http://127.0.0.1:{metrics}/readyz"), None), (200, "ok\n".into()), "--no-trace is ready");
    assert_eq!(get(&format!("http://127.0.0.1:{metrics}/healthz"), None), (200, "ok\n".into()));
}

#[test]
fn an_unreadable_token_file_stops_the_agent_with_one_clear_line() {
    let data = temp_dir("hq-badtoken");
    let out = Command::new(loupe_bin())
        .args(["vizier", "pem", "--no-trace", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .arg("--query-token-file")
        .arg(&data)
        .env("LOUPE_LOG", "off")
        .output()
        .expect("run loupe");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "error: the query endpoint needs its token: failed to read the query token file {}: Is a directory (os error 21)",
            data.display()
        )
    );
}

#[test]
fn loupe_up_has_no_port_that_answers_without_a_user() {
    let (metrics, api, proxy) = (free_port(), free_port(), free_port());
    let child = loupe_up_with_proxy(metrics, api, proxy, "hq-up")
        .arg("--no-trace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe up");
    let pid = child.id();
    let _loupe = Guard(child);
    for (port, what) in [(metrics, "metrics"), (api, "API"), (proxy, "TLS proxy")] {
        wait_for_port(port, what);
    }
    // Exactly three listeners: no agent port, no 50300.
    assert_eq!(listening_ports(pid), BTreeSet::from([metrics, api, proxy]));

    let ca = temp_path("data-hq-up").join("secrets").join("ca.crt");
    let ca_env = ca.to_str().expect("utf8");
    // Neither the API nor the TLS proxy answers a query without a user; the metrics listener serves none.
    let out = px(&format!("127.0.0.1:{api}"), &[], &["run", "px/http_data"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("px auth login"), "{}", text(&out.stderr));
    let out = px(&format!("https://127.0.0.1:{proxy}"), &[("PX_CA_CERT", ca_env)], &["run", "px/http_data"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("px auth login"), "{}", text(&out.stderr));
    let out = px(&format!("127.0.0.1:{metrics}"), &[], &["run", "px/http_data"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());

    // Health and metrics: only on the metrics listener, for the API and the agent alike.
    for path in ["/metrics", "/healthz", "/readyz"] {
        assert_eq!(get(&format!("http://127.0.0.1:{api}{path}"), None).0, 404, "{path} on the API port");
        assert_eq!(get(&format!("https://127.0.0.1:{proxy}{path}"), Some(&ca)).0, 404, "{path} on the TLS port");
    }
    let (status, body) = get(&format!("http://127.0.0.1:{metrics}/metrics"), None);
    assert_eq!(status, 200);
    assert!(body.contains("loupe_cloud_http_requests_total") && body.contains("loupe_table_rows"), "{body}");
    let (status, body) = get(&format!("http://127.0.0.1:{metrics}/readyz"), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""agent":"ok""#) && body.contains(r#""metastore":"sqlite""#), "{body}");
    assert_eq!(get(&format!("http://127.0.0.1:{metrics}/healthz"), None).0, 200);
}
