//! End to end: viziers registering with the cloud through VZConn. `loupe up` registers its own vizier in process;
//! a real `loupe vizier up --no-trace` process registers with a `px deploy-key create` key over loupe up's API
//! port; `px get viziers` / `px get vizier` / `px delete vizier` show and forget them; `px run [-c VIZIER]` runs
//! scripts on them through the cloud.
//!
//! Needs no root: tracing is off everywhere. Every test has its own ports, data directories and `px` config.
//! Owns only these tests; shared helpers are in `common`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up_over, px_output, temp_dir, wait_for_port};

const ADMIN: &str = "admin@default.com";
const NEW_PASSWORD: &str = "a long new passphrase";

/// `loupe up --no-trace` on free ports with the admin logged in (password changed) in its own `px` config.
struct Cloud {
    loupe: Guard,
    api_port: u16,
    data: PathBuf,
    config: PathBuf,
}

impl Cloud {
    fn start(tag: &str, extra: &[&str]) -> Self {
        // Free ports are only free when asked: a parallel test may take one first (then loupe up exits), so a
        // start is retried on new ports.
        let mut attempt = 0;
        let (loupe, api_port, data) = loop {
            attempt += 1;
            let (port, api_port) = (free_port(), free_port());
            let data = temp_dir(&format!("vz-data-{tag}"));
            let stderr = std::fs::File::create(data.with_extension("log")).expect("log file");
            let loupe = loupe_up_over(&data, port, api_port, 0)
                .arg("--no-trace")
                .args(extra)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn loupe up");
            let mut loupe = Guard(loupe);
            wait_for_port(api_port, "loupe up's cloud API");
            let deadline = Instant::now() + Duration::from_secs(30);
            let up = loop {
                if loupe.0.try_wait().expect("wait").is_some() {
                    break false;
                }
                if curl(&format!("http://127.0.0.1:{port}/healthz")).0 == 200 {
                    break true;
                }
                assert!(Instant::now() < deadline, "loupe up did not answer /healthz");
                std::thread::sleep(Duration::from_millis(50));
            };
            if up {
                break (loupe, api_port, data);
            }
            let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
            assert!(attempt < 3, "loupe up exited: {log}");
        };
        let cloud = Cloud { loupe, api_port, data, config: temp_dir(&format!("vz-px-{tag}")).join("px") };
        let out = cloud.px_in(&["auth", "login", "--email", ADMIN], "admin\n");
        assert!(out.status.success(), "login: {}", text(&out.stderr));
        let out = cloud.px_in(&["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
        assert!(out.status.success(), "password: {}", text(&out.stderr));
        cloud
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_extension("log")).unwrap_or_default()
    }

    fn px_in(&self, args: &[&str], stdin: &str) -> Output {
        px_output(&self.addr(), None, &self.config, args, stdin)
    }

    /// Runs `px` and insists it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.px_in(args, "");
        assert!(out.status.success(), "px {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// `px get viziers -o json`, one object per vizier.
    fn viziers(&self) -> Vec<Value> {
        self.ok(&["get", "viziers", "-o", "json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Polls `px get viziers` until `check` holds, at most `limit`; returns the last list.
    fn viziers_until(&self, limit: Duration, what: &str, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let list = self.viziers();
            if check(&list) {
                return list;
            }
            assert!(Instant::now() < deadline, "not within {limit:?}: {what}; last: {list:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A new deploy key's plaintext and id.
    fn deploy_key(&self) -> (String, String) {
        let created: Value =
            serde_json::from_str(self.ok(&["deploy-key", "create", "-d", "e2e", "-o", "json"]).trim()).expect("json");
        (created["key"].as_str().expect("key").to_owned(), created["id"].as_str().expect("id").to_owned())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_owned()
}

fn named<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|v| v["name"] == name)
}

/// `loupe vizier up --no-trace` registering with `cloud` as `name`, state in `data`, the key (if any) from the
/// environment.
fn vizier_up(cloud: &str, key: Option<&str>, name: &str, data: &Path) -> Command {
    let mut c = Command::new(loupe_bin());
    c.args(["vizier", "up", "--no-trace", "--cloud-addr", cloud, "--cluster-name", name])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(data)
        .env_remove("LOUPE_DEPLOY_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(key) = key {
        c.env("LOUPE_DEPLOY_KEY", key);
    }
    c
}

/// Waits for `child` to exit, at most `limit`.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn loupe_up_shows_its_own_vizier_healthy_right_after_start() {
    let cloud = Cloud::start("own", &[]);
    let list = cloud.viziers_until(Duration::from_secs(30), "loupe up's vizier healthy", |l| {
        l.len() == 1 && l[0]["status"] == "healthy"
    });
    let own = &list[0];
    assert_eq!(own["name"], host_name().as_str(), "{own}");
    assert_eq!(own["version"], env!("CARGO_PKG_VERSION"), "{own}");
    assert!(own["last_heartbeat_at"].is_i64(), "{own}");
    let own_id = own["id"].as_str().expect("id").to_owned();

    // Scripts run on it through VZConn: without -c (the org's only vizier), by name and by id; a name the org
    // does not have is refused. Tracing is off, so the table is empty.
    let host = host_name();
    for target in [None, Some(host.as_str()), Some(own_id.as_str())] {
        let mut args = vec!["run", "px/http_data"];
        args.extend(target.iter().flat_map(|t| ["-c", t]));
        let out = cloud.ok(&args);
        assert!(out.starts_with("Table: http_data (0 rows)\nTIME_  UPID  "), "{target:?}: {out}");
    }
    let out = cloud.px_in(&["run", "px/http_data", "-c", "nope"], "");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr), "error: no vizier \"nope\" in your org (`px get viziers` lists them)\n");
    let version = cloud.ok(&["version"]);
    assert!(version.contains(&format!("server version {}", env!("CARGO_PKG_VERSION"))), "{version}");

    // The table and the single-vizier view say the same.
    let table = cloud.ok(&["get", "viziers"]);
    let header: Vec<&str> =
        table.lines().next().expect("header").split("  ").map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["NAME", "ID", "STATUS", "LAST HEARTBEAT", "VERSION", "AGENTS", "ADDRESS"], "{table}");
    // loupe up's vizier runs one agent and answers queries on the API's port.
    assert_eq!(own["num_agents"], 1, "{own}");
    assert_eq!(own["address"], cloud.addr().as_str(), "{own}");
    let one = cloud.ok(&["get", "vizier", &host_name(), "-o", "json"]);
    let one: Value = serde_json::from_str(one.trim()).expect("json");
    assert_eq!(one["id"], own["id"]);

    // Its identity is kept private in the data dir; its deploy key is stored hashed and never logged.
    let identity = cloud.data.join("vizier").join("vizier-identity.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&identity).expect("identity").permissions());
    assert_eq!(mode & 0o777, 0o600);
    let keys = cloud.ok(&["deploy-key", "list", "-o", "json"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert!(keys.contains("loupe up: this host's vizier"), "{keys}");
    assert!(!cloud.log().contains("px-dep-"), "the deploy key was logged");
    drop(cloud.loupe);
}

#[test]
fn a_vizier_up_process_registers_disconnects_and_keeps_its_id_across_restarts() {
    let cloud = Cloud::start("remote", &["--vizier-disconnect-timeout", "12s"]);
    let (key, _) = cloud.deploy_key();
    let data = temp_dir("vz-edge");

    // (b) A separate vizier process joins with the key; both are healthy.
    let mut edge = Guard(vizier_up(&cloud.addr(), Some(&key), "edge-1", &data).spawn().expect("spawn vizier up"));
    let list = cloud.viziers_until(Duration::from_secs(30), "both viziers healthy", |l| {
        l.len() == 2 && l.iter().all(|v| v["status"] == "healthy")
    });
    let first = named(&list, "edge-1").expect("edge-1 listed");
    let id = first["id"].as_str().expect("id").to_owned();
    assert!(named(&list, &host_name()).is_some(), "{list:?}");

    // Two viziers: a script needs -c, and runs on the one named.
    let out = cloud.px_in(&["run", "px/http_data"], "");
    assert_eq!(out.status.code(), Some(2));
    let mut names = ["edge-1".to_owned(), host_name()];
    names.sort();
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: your org has 2 viziers ({}): name one with `px run -c NAME` (metadata `x-loupe-cluster`)\n",
            names.join(", ")
        )
    );
    let out = cloud.ok(&["run", "px/http_data", "-c", "edge-1", "-o", "csv"]);
    assert!(out.starts_with("time_,upid,"), "{out}");

    // (c) Killed, it turns DISCONNECTED after the shortened timeout (12 s: over two 5 s heartbeat periods);
    // loupe up's own stays healthy.
    edge.0.kill().expect("kill");
    edge.0.wait().expect("reap");
    let started = Instant::now();
    // A script for it now fails, naming it (its record may still say healthy).
    let out = cloud.px_in(&["run", "px/http_data", "-c", "edge-1"], "");
    assert_eq!(out.status.code(), Some(2));
    let prefix = format!("error: vizier edge-1 ({id}) is not connected to the cloud (status ");
    assert!(text(&out.stderr).starts_with(&prefix), "{}", text(&out.stderr));
    let list = cloud.viziers_until(Duration::from_secs(40), "edge-1 disconnected", |l| {
        named(l, "edge-1").is_some_and(|v| v["status"] == "disconnected")
    });
    // Its last heartbeat was at most 5 s before the kill, so not before 7 s.
    assert!(started.elapsed() >= Duration::from_secs(7), "disconnected too soon: {:?}", started.elapsed());
    assert_eq!(named(&list, &host_name()).expect("own")["status"], "healthy");

    // (e) Restarted over the same data dir, without the key (its identity suffices): same id, healthy again.
    let _edge = Guard(vizier_up(&cloud.addr(), None, "edge-1", &data).spawn().expect("respawn vizier up"));
    let list = cloud.viziers_until(Duration::from_secs(30), "edge-1 healthy again", |l| {
        named(l, "edge-1").is_some_and(|v| v["status"] == "healthy")
    });
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(named(&list, "edge-1").expect("edge-1")["id"], id.as_str());

    // An admin forgets it by name.
    let out = cloud.ok(&["delete", "vizier", "edge-1"]);
    assert_eq!(out.trim(), format!("Deleted vizier edge-1 ({id})."));
    let out = cloud.px_in(&["delete", "vizier", "edge-1"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("error: no vizier named \"edge-1\""), "{}", text(&out.stderr));
}

#[test]
fn a_revoked_or_foreign_deploy_key_fails_vizier_up_clearly() {
    let cloud = Cloud::start("refused", &[]);
    let other = Cloud::start("refused-other", &[]);
    let (revoked, revoked_id) = cloud.deploy_key();
    cloud.ok(&["deploy-key", "delete", &revoked_id]);
    // A key of another cloud's org is unknown here.
    let (foreign, _) = other.deploy_key();
    for (what, key) in [("revoked", revoked), ("foreign", foreign)] {
        let mut child =
            vizier_up(&cloud.addr(), Some(&key), "refused", &temp_dir(&format!("vz-{what}"))).spawn().expect("spawn");
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let stderr = text(&child.wait_with_output().expect("output").stderr);
        assert_eq!(status.code(), Some(2), "{what}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            "error: the cloud refused this vizier: registration refused: invalid or revoked deploy key (Unauthenticated)",
            "{what}: {stderr}"
        );
        assert!(!stderr.contains(&key), "{what}: the key was printed");
    }
    let list = cloud.viziers();
    assert_eq!(list.len(), 1, "only loupe up's own vizier: {list:?}");
}

/// `curl -s` of a local URL: (HTTP status, body).
fn curl(url: &str) -> (u16, String) {
    let out = Command::new("curl").args(["-s", "-w", "\n%{http_code}", url]).output().expect("curl");
    let text = text(&out.stdout);
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.parse().expect("status"), body.to_owned())
}

#[test]
fn cloud_vzconn_on_nats_registers_a_vizier_up_and_a_separate_pem_connector() {
    let cloud = Cloud::start("split", &[]);
    let (key, _) = cloud.deploy_key();
    // `loupe cloud vzconn` as its own process over loupe up's SQLite metastore and a real NATS, with its own
    // credential key.
    let nats = loupe_testkit::NatsServer::start();
    let (vz_port, vz_metrics) = (free_port(), free_port());
    let vz_data = temp_dir("vz-split-vzconn");
    let metastore = format!("sqlite://{}", cloud.data.join("loupe.db").display());
    let _vzconn = Guard(
        Command::new(loupe_bin())
            .args(["cloud", "vzconn", "--metastore-url", &metastore, "--disconnect-timeout", "1m"])
            .arg("--insecure-plaintext")
            .args(["--nats-url", &nats.url()])
            .args(["--listen", &format!("127.0.0.1:{vz_port}"), "--metrics-listen", &format!("127.0.0.1:{vz_metrics}")])
            .arg("--data-dir")
            .arg(&vz_data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe cloud vzconn"),
    );
    wait_for_port(vz_port, "loupe cloud vzconn");
    wait_for_port(vz_metrics, "loupe cloud vzconn's metrics");
    let key_file = vz_data.join("secrets").join("vizier-credential-key");
    assert_eq!(std::fs::read_to_string(&key_file).expect("credential key").len(), 64);
    assert_eq!(curl(&format!("http://127.0.0.1:{vz_metrics}/healthz")), (200, r#"{"status":"ok"}"#.to_owned()));
    assert_eq!(curl(&format!("http://127.0.0.1:{vz_metrics}/readyz")).0, 200);

    // A whole vizier, and a PEM with a connector beside it, both through this VZConn.
    let vz_addr = format!("127.0.0.1:{vz_port}");
    let _edge = Guard(vizier_up(&vz_addr, Some(&key), "split-up", &temp_dir("vz-split-up")).spawn().expect("spawn"));
    let (pem_port, pem_metrics) = (free_port(), free_port());
    let pem_data = temp_dir("vz-split-pem");
    let _pem = Guard(
        Command::new(loupe_bin())
            .args(["vizier", "pem", "--no-trace", "--listen", &format!("127.0.0.1:{pem_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{pem_metrics}")])
            .arg("--data-dir")
            .arg(&pem_data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe vizier pem"),
    );
    wait_for_port(pem_port, "loupe vizier pem");
    let _connector = Guard(
        Command::new(loupe_bin())
            .args(["vizier", "connector", "--cloud-addr", &vz_addr, "--cluster-name", "split-pem"])
            .args(["--query-addr", &format!("127.0.0.1:{pem_port}")])
            .arg("--query-token-file")
            .arg(pem_data.join("secrets").join("vizier-query-token"))
            .arg("--data-dir")
            .arg(temp_dir("vz-split-connector"))
            .env("LOUPE_DEPLOY_KEY", &key)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe vizier connector"),
    );
    // Healthy means heartbeats arrive, and the connector's health check passed the PEM's query token.
    let list = cloud.viziers_until(Duration::from_secs(30), "the split viziers healthy", |l| {
        ["split-up", "split-pem"].iter().all(|n| named(l, n).is_some_and(|v| v["status"] == "healthy"))
    });
    assert_eq!(list.len(), 3, "{list:?}");
    let (status, metrics) = curl(&format!("http://127.0.0.1:{vz_metrics}/metrics"));
    assert_eq!(status, 200);
    let recorded: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("loupe_vzconn_heartbeats_recorded_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(recorded >= 2, "{metrics}");
}

#[test]
fn a_script_through_the_cloud_stops_at_the_cloud_timeout_and_names_the_vizier() {
    // A timeout no script can meet: the vizier accepts, then the cloud stops waiting (and tells it to stop).
    let cloud = Cloud::start("timeout", &["--vizier-query-timeout", "1ms"]);
    let list = cloud.viziers_until(Duration::from_secs(30), "loupe up's vizier healthy", |l| {
        l.len() == 1 && l[0]["status"] == "healthy"
    });
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let out = cloud.px_in(&["run", "px/http_data"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert_eq!(text(&out.stderr), format!("error: vizier {} ({id}) did not finish within 1ms\n", host_name()));
}
