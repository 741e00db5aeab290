//! End to end: Kubernetes metadata (issue 17, point 4). A local server replays a recorded cluster's API (lists,
//! then watches that stay open), `loupe vizier metadata` watches it, a tracing `loupe vizier pem --metadata`
//! follows it, and an HTTP server runs in a real cgroup v2 directory laid out as containerd lays out a pod's
//! container. A `px run` over the traced requests names the server's pod, service and namespace with
//! `df.ctx[...]`; the client's rows (this test, a host process) keep '' there and their own pid.
//!
//! Owns only this acceptance check; it filters rows by its own processes' pids.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loupe_testkit::free_port;
use serde_json::Value;

use crate::common::{Guard, loupe_bin, px_bin, temp_dir, wait_for_port};
use crate::e2e::can_trace;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../metadata/tests/fixtures/k8s/", $name))
    };
}

/// The recorded pod `shop/cart-7d9-aaaa` and its container.
const POD_UID: &str = "5f0c1a2e-3b4d-4c6e-8f90-a1b2c3d4e5f6";
const CONTAINER: &str = "4186c210cf0247e259df2667ba2b3c3978cb90acf9106bef561eb1f10452e77b";

/// Serves each resource's recorded list; a watch gets its headers and then nothing (it stays open).
fn replay_api() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                }
                let target = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let body = match path {
                    "/api/v1/namespaces" => fixture!("namespaces-list.json"),
                    "/api/v1/nodes" => fixture!("nodes-list.json"),
                    "/apis/apps/v1/deployments" => fixture!("deployments-list.json"),
                    "/apis/apps/v1/replicasets" => fixture!("replicasets-list.json"),
                    "/api/v1/services" => fixture!("services-list.json"),
                    "/api/v1/endpoints" => fixture!("endpoints-list.json"),
                    "/api/v1/pods" => fixture!("pods-list-2.json"),
                    _ => "{}",
                };
                if query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1") {
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n",
                    );
                    // Open until the test process ends.
                    let _ = conn.read(&mut [0u8; 1]);
                    return;
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(body.as_bytes());
            });
        }
    });
    port
}

/// Where cgroup v2 is mounted.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("cgroup v2 is mounted")
}

/// The test's cgroup directories, removed (deepest first) on drop, after the processes in them are gone.
struct CgroupDirs(Vec<PathBuf>);

impl Drop for CgroupDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn ctx_names_the_pod_of_a_traced_server_in_a_containerd_cgroup() {
    if !can_trace() {
        return;
    }
    let data = temp_dir("metadata");
    let token_file = data.join("token");
    std::fs::write(&token_file, "metadata-e2e-token-0123456789abcdef").expect("token");
    let api_port = replay_api();
    let kubeconfig = data.join("kubeconfig");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "replay",
        "clusters": [{"name": "replay", "cluster": {"server": format!("http://127.0.0.1:{api_port}")}}],
        "users": [{"name": "replay", "user": {"token": "replayed"}}],
        "contexts": [{"name": "replay", "context": {"cluster": "replay", "user": "replay"}}],
    });
    std::fs::write(&kubeconfig, config.to_string()).expect("kubeconfig");

    let meta_port = free_port();
    let _metadata = Guard(
        Command::new(loupe_bin())
            .args(["vizier", "metadata", "--listen", &format!("127.0.0.1:{meta_port}")])
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--token-file")
            .arg(&token_file)
            .stderr(Stdio::null())
            .spawn()
            .expect("loupe vizier metadata"),
    );
    wait_for_port(meta_port, "loupe vizier metadata");
    let (pem_port, pem_metrics) = (free_port(), free_port());
    let _pem = Guard(
        Command::new(loupe_bin())
            .args(["vizier", "pem", "--listen", &format!("127.0.0.1:{pem_port}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{pem_metrics}")])
            .args(["--metadata", &format!("127.0.0.1:{meta_port}"), "--no-profiler"])
            .arg("--metadata-token-file")
            .arg(&token_file)
            .arg("--query-token-file")
            .arg(&token_file)
            .arg("--data-dir")
            .arg(&data)
            .stderr(Stdio::null())
            .spawn()
            .expect("loupe vizier pem"),
    );
    wait_for_port(pem_port, "loupe vizier pem");

    // The server, moved into the pod's container cgroup (systemd driver, Burstable) as containerd would.
    let parent = cgroup2_root().join(format!("loupe-e2e-metadata-{}", std::process::id()));
    let leaf = parent.join(format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{CONTAINER}.scope",
        POD_UID.replace('-', "_")
    ));
    std::fs::create_dir_all(&leaf).expect("cgroup");
    let mut dirs: Vec<PathBuf> = leaf.ancestors().take_while(|d| d.starts_with(&parent)).map(PathBuf::from).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let _dirs = CgroupDirs(dirs);
    let web_port = free_port();
    let web = Command::new("python3")
        .args(["-m", "http.server", &web_port.to_string(), "--bind", "127.0.0.1"])
        .current_dir(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let web_pid = web.id();
    std::fs::write(leaf.join("cgroup.procs"), web_pid.to_string()).expect("into the pod's cgroup");
    let _web = Guard(web);
    wait_for_port(web_port, "python3 -m http.server");

    let script = data.join("pods.pxl");
    std::fs::write(
        &script,
        format!(
            "import px\n\
             df = px.DataFrame('http_events', start_time='-5m')\n\
             df.pid = df.ctx['pid']\n\
             df = df[px.equals_any(df.pid, [{web_pid}, {me}])]\n\
             df.pod = df.ctx['pod']\n\
             df.service = df.ctx['service']\n\
             df.namespace = df.ctx['namespace']\n\
             df.node = df.ctx['node']\n\
             px.display(df[['pid', 'pod', 'service', 'namespace', 'node', 'req_path']])\n",
            me = std::process::id()
        ),
    )
    .expect("script");
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", web_port)).expect("connect");
        c.write_all(b"GET /loupe-metadata-e2e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("request");
        let _ = c.read_to_end(&mut Vec::new());
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new(px_bin())
            .args(["run", "-f", script.to_str().expect("utf8"), "-o", "json", "--token-file"])
            .arg(&token_file)
            .env("PX_CLOUD_ADDR", format!("127.0.0.1:{pem_port}"))
            .env("PX_CONFIG_DIR", &data)
            .output()
            .expect("px");
        assert!(out.status.success(), "px: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json row"))
            .filter(|r: &Value| r["req_path"] == "/loupe-metadata-e2e")
            .collect();
        let both = rows.iter().any(|r| r["pid"] == web_pid) && rows.iter().any(|r| r["pid"] == std::process::id());
        if both || Instant::now() > deadline {
            break rows;
        }
    };
    let server = rows.iter().find(|r| r["pid"] == web_pid).unwrap_or_else(|| panic!("no server row: {rows:?}"));
    assert_eq!(server["pod"], "shop/cart-7d9-aaaa", "{server}");
    assert_eq!(server["service"], "shop/cart", "{server}");
    assert_eq!(server["namespace"], "shop", "{server}");
    let client =
        rows.iter().find(|r| r["pid"] == std::process::id()).unwrap_or_else(|| panic!("no client row: {rows:?}"));
    assert_eq!(
        (&client["pod"], &client["service"], &client["namespace"]),
        (&Value::from(""), &Value::from(""), &Value::from(""))
    );
    assert!(client["node"].as_str().is_some_and(|n| !n.is_empty()), "the node is the host: {client}");
}
