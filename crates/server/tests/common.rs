//! Helpers shared by the end-to-end modules: the binaries under test, free ports, temporary
//! directories, and child processes that die with the test.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `loupe` binary cargo built for these tests.
pub fn loupe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loupe"))
}

/// The `px` binary, built beside `loupe` by `cargo build --workspace --bins`.
pub fn px_bin() -> PathBuf {
    let px = loupe_bin().with_file_name("px");
    assert!(px.exists(), "{} is missing: build it first with `cargo build --workspace --bins`", px.display());
    px
}

/// Runs `px` against `addr` with `config` as its config directory (never the user's), trusting the CA in
/// `ca` (else the system's roots), feeding `stdin` (passwords are read from it), and returns what it printed.
pub fn px_output(addr: &str, ca: Option<&Path>, config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new(px_bin());
    command
        .args(args)
        .env("PX_CLOUD_ADDR", addr)
        .env("PX_CONFIG_DIR", config)
        .env_remove("PX_PASSWORD")
        .env_remove("PX_CA_CERT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ca) = ca {
        command.env("PX_CA_CERT", ca);
    }
    let mut child = command.spawn().expect("spawn px");
    if let Some(mut input) = child.stdin.take() {
        // px may exit without reading (e.g. when not logged in); a closed pipe is not a failure here.
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("run px")
}

/// A loopback port free right now.
/// The expected answer of a PxL groupby count: each run of equal keys in `sorted` (the expected rows, in the
/// order the keys sort) with its length.
pub fn run_counts<K: PartialEq>(sorted: impl IntoIterator<Item = K>) -> Vec<(K, i64)> {
    let mut counts: Vec<(K, i64)> = Vec::new();
    for key in sorted {
        match counts.last_mut() {
            Some((k, n)) if *k == key => *n += 1,
            _ => counts.push((key, 1)),
        }
    }
    counts
}

pub use loupe_testkit::free_port;

/// A child process killed when the test ends, however it ends.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `command` with its standard output piped and waits for its first line, which must be
/// `ready` (the test servers print it once they listen); the child dies with the returned guard.
pub fn spawn_ready(command: &mut Command, what: &str) -> Guard {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(child);
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready).expect("server output");
    assert_eq!(ready.trim(), "ready", "{what} did not start");
    guard
}

/// A self-signed P-256 certificate for `localhost`, made by `openssl` as `dir`/cert.pem and
/// `dir`/key.pem.
pub fn make_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl req: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

/// The Python of the venv `scripts/client-venv.sh` makes (client libraries from PyPI): the one
/// `LOUPE_CLIENT_PYTHON` names (`scripts/test.sh` sets it), else the script is run for it.
pub fn client_python() -> PathBuf {
    std::env::var_os("LOUPE_CLIENT_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/client-venv.sh");
        let out = Command::new("bash").arg(script).output().expect("run scripts/client-venv.sh");
        assert!(out.status.success(), "scripts/client-venv.sh: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// Waits up to 60 s for something to listen on `port` (loading the BPF programs alone takes ~8 s in a debug
/// build, more when several agents start at once on two busy cores).
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The path `temp_dir(tag)` creates, without touching it. The name ends in `-p<pid>` of this test process, so
/// that a later run can tell whose it was.
pub fn temp_path(tag: &str) -> PathBuf {
    sweep_dead_runs();
    std::env::temp_dir().join(format!("loupe-e2e-{tag}-p{}", std::process::id()))
}

/// Removes, once per test process, the directories earlier test processes left behind (a test that fails or
/// is killed does not clean up; a database's data directory alone is over 100 MB). Only `-p<pid>` names of
/// processes that no longer run are removed, so tests running side by side keep theirs.
fn sweep_dead_runs() {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("loupe-e2e-") else { continue };
            // `…-p<pid>`, or a file beside it such as `…-p<pid>.log`.
            let pid = rest.rsplit_once("-p").and_then(|(_, p)| p.split('.').next().and_then(|p| p.parse::<u32>().ok()));
            let Some(pid) = pid else { continue };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let path = entry.path();
                let _ = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            }
        }
    });
}

/// An empty directory of this test process, unique per `tag`.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = temp_path(tag);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// `loupe up` with every port given (`port` is its health and metrics listener) and its own data directory, so
/// tests can run side by side. Its TLS proxy takes any free port; `loupe_up_with_proxy` names one.
pub fn loupe_up(port: u16, api_port: u16, tag: &str) -> Command {
    loupe_up_with_proxy(port, api_port, 0, tag)
}

/// `loupe up` as [`loupe_up`] starts it, with its TLS proxy on `proxy_port`. Its data directory is
/// `temp_path("data-<tag>")`.
pub fn loupe_up_with_proxy(port: u16, api_port: u16, proxy_port: u16, tag: &str) -> Command {
    loupe_up_over(&temp_dir(&format!("data-{tag}")), port, api_port, proxy_port)
}

/// `loupe up` over an existing data directory `data` (kept as it is, e.g. for a restart), with its metrics
/// listener on `port`, the cloud API on `api_port` and its TLS proxy on `proxy_port` (0: any).
pub fn loupe_up_over(data: &Path, port: u16, api_port: u16, proxy_port: u16) -> Command {
    let mut c = Command::new(loupe_bin());
    c.args(["up", "--metrics-listen", &format!("127.0.0.1:{port}"), "--api-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--proxy-listen", &format!("127.0.0.1:{proxy_port}")])
        .arg("--data-dir")
        .arg(data);
    c
}

/// nginx from Debian in the foreground, one worker, every file it writes inside `dir`, serving `server` (the
/// inside of one `server { … }` block, after its `listen`) on 127.0.0.1:`port`, with `http` added to the `http`
/// block (e.g. `sendfile on;`). Waits until it listens; killed with the guard.
pub fn start_nginx(dir: &Path, port: u16, http: &str, server: &str) -> Guard {
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
         uwsgi_temp_path {d}; scgi_temp_path {d}; {http}\n\
         server {{ listen 127.0.0.1:{port}; {server} }} }}\n",
        d = dir.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
    let guard = Guard(
        Command::new("nginx")
            .args(["-c", &dir.join("nginx.conf").display().to_string(), "-p", &dir.display().to_string()])
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx (apt-get install nginx-light)"),
    );
    wait_for_port(port, "nginx");
    guard
}
