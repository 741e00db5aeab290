//! End to end: `loupe up` traces real HTTP servers (nginx, python's http.server) and a real
//! client (curl) on loopback; `px run` must report exactly the requests made.
//!
//! Needs root (CI runs as root) and the Debian packages `scripts/test.sh` installs. Each test
//! picks free ports and filters its queries to them, so tests and other traffic on the machine
//! do not disturb each other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up, px_output, start_nginx, temp_dir, wait_for_port};

pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this test may trace: root is needed. Elsewhere it skips (`non_root_agent_exits_with_one_line`
/// covers that case), but under `CI=true` it fails, so a CI without root cannot pass with no kernel coverage.
pub(crate) fn can_trace() -> bool {
    if is_root() {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but not root: the tracing tests would not run");
    eprintln!("skipping: tracing needs root; `non_root_agent_exits_with_one_line` covers this case");
    false
}

/// Starts `loupe up` on free ports and waits until it listens; returns its metrics port and the cloud API's
/// port (which serves queries, to a logged-in user: see [`login`]).
pub(crate) fn start_loupe() -> (Guard, u16, u16) {
    start_loupe_with(&[])
}

/// [`start_loupe`] with `extra_args` on `loupe up`'s command line.
pub(crate) fn start_loupe_with(extra_args: &[&str]) -> (Guard, u16, u16) {
    let (guard, port, api_port, _log) = start_loupe_logged(extra_args);
    (guard, port, api_port)
}

/// [`start_loupe_with`], also keeping every line loupe logs (for tests that check what it said).
pub(crate) fn start_loupe_logged(extra_args: &[&str]) -> (Guard, u16, u16, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    // A port picked free may be taken by another test's process before loupe binds it: a start that exits
    // at once (address in use) is retried on other ports, up to three times, instead of waiting out the minute.
    for attempt in 1..=3 {
        let (port, api_port) = (free_port(), free_port());
        let mut child = loupe_up(port, api_port, &port.to_string())
            .args(extra_args)
            .env("LOUPE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loupe");
        // Echo loupe's log into the test output, so a failure shows what the agent said.
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[loupe] {line}");
                sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
            }
        });
        let mut guard = Guard(child);
        match wait_for_ports_or_exit(&mut guard, &[port, api_port]) {
            Ok(()) => return (guard, port, api_port, log),
            Err(status) if attempt < 3 => {
                eprintln!("loupe up exited while starting ({status}); retrying on other ports")
            }
            Err(status) => panic!("loupe up exited while starting ({status}), three times"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// Waits up to 60 s for every port to accept connections; `Err` with the exit status if the process ends first.
fn wait_for_ports_or_exit(guard: &mut Guard, ports: &[u16]) -> Result<(), std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = guard.0.try_wait().expect("poll loupe") {
            return Err(status);
        }
        if ports.iter().all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok()) {
            return Ok(());
        }
        assert!(std::time::Instant::now() < deadline, "loupe up did not start listening on ports {ports:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Logs the bootstrap admin in for `px` against `api_port` and replaces the initial password, so queries
/// there are allowed.
pub(crate) fn login(api_port: u16) {
    let login = px_with_stdin(api_port, &["auth", "login", "--email", "admin@default.com"], "admin\n");
    assert!(login.status.success(), "login: {}", String::from_utf8_lossy(&login.stderr));
    let change = px_with_stdin(api_port, &["auth", "password"], "admin\na long new passphrase\n");
    assert!(change.status.success(), "password change: {}", String::from_utf8_lossy(&change.stderr));
}

pub(crate) fn px(port: u16, args: &[&str]) -> Output {
    px_with_stdin(port, args, "")
}

/// `px` against `127.0.0.1:port` with a config directory of this test process, feeding `stdin`.
pub(crate) fn px_with_stdin(port: u16, args: &[&str], stdin: &str) -> Output {
    let config = std::env::temp_dir().join(format!("loupe-e2e-px-config-{}-{port}", std::process::id()));
    px_output(&format!("127.0.0.1:{port}"), None, &config, args, stdin)
}

/// Runs `script` until its rows, counted by `key` (the row's `n`), equal `want` or 20 s pass; returns the last
/// counts (sorted) and rows.
pub(crate) fn poll_keyed_counts<K: Ord>(
    api_port: u16,
    script: &Path,
    want: &[(K, i64)],
    key: impl Fn(&Value) -> K,
) -> (Vec<(K, i64)>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
        let mut got: Vec<(K, i64)> = rows.iter().map(|r| (key(r), r["n"].as_i64().unwrap_or(-1))).collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            return (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub(crate) fn write_script(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write script");
    p
}

pub(crate) fn curl(args: &[&str]) {
    let out = Command::new("curl").args(["-sS", "-o", "/dev/null"]).args(args).output().expect("run curl");
    assert!(out.status.success(), "curl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Per (trace_role, method, path, status): count and the smallest latency, for one server port.
fn counts_script(port: u16) -> String {
    format!(
        "import px\n\
         df = px.DataFrame(table='http_events', start_time='-5m')\n\
         df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
         df.ok_addr = (df.remote_addr == '127.0.0.1') & (df.local_addr == '127.0.0.1')\n\
         s = df.groupby(['trace_role', 'req_method', 'req_path', 'resp_status']).agg(\n\
         \x20   n=('latency', px.count), min_latency=('latency', px.min), addrs_ok=('ok_addr', px.mean),\n\
         \x20   port=('local_port', px.max), rport=('remote_port', px.max))\n\
         px.display(s, 'counts')\n"
    )
}

type Key = (i64, String, String, i64);

/// Polls `px run` until the counts equal `expected` or 2 s pass; returns the last rows seen.
fn poll_counts(loupe_port: u16, script: &Path, expected: &[(Key, i64)]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut want: Vec<(Key, i64)> = expected.to_vec();
    want.sort();
    loop {
        let out = px(loupe_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
        let mut got: Vec<(Key, i64)> = rows
            .iter()
            .map(|r| {
                (
                    (
                        r["trace_role"].as_i64().unwrap_or(-1),
                        r["req_method"].as_str().unwrap_or_default().to_string(),
                        r["req_path"].as_str().unwrap_or_default().to_string(),
                        r["resp_status"].as_i64().unwrap_or(-1),
                    ),
                    r["n"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        got.sort();
        if got == want {
            return rows;
        }
        assert!(Instant::now() < deadline, "after 2 s px reported\n{got:#?}\nbut the traffic was\n{want:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_rows(rows: &[Value], server_port: u16) {
    for r in rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        assert_eq!(r["addrs_ok"].as_f64(), Some(1.0), "addresses must be 127.0.0.1: {r}");
        let port = i64::from(server_port);
        match r["trace_role"].as_i64() {
            Some(1) => assert_eq!(r["rport"].as_i64(), Some(port), "client rows: remote port is the server's: {r}"),
            Some(2) => assert_eq!(r["port"].as_i64(), Some(port), "server rows: local port is the server's: {r}"),
            other => panic!("unexpected trace_role {other:?}: {r}"),
        }
    }
}

fn both_roles(method: &str, path: &str, status: i64, n: i64) -> [(Key, i64); 2] {
    [((1, method.into(), path.into(), status), n), ((2, method.into(), path.into(), status), n)]
}

#[test]
fn nginx_keepalive_get_post_mix_is_counted_exactly() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, loupe_port) = start_loupe();
    login(loupe_port);
    let dir = temp_dir("nginx");
    let port = free_port();
    let _nginx = start_nginx(
        &dir,
        port,
        "",
        "keepalive_requests 1000;\n\
         location = /api/items { if ($request_method = POST) { return 201 'created'; } return 200 '[1,2,3]'; }\n\
         location = /health { return 204; }\n\
         location / { return 404 'nope'; }",
    );

    let base = format!("http://127.0.0.1:{port}");
    // One curl, one connection, keep-alive: 3 GETs to /api/items, 2 to /missing, 1 to /health.
    let urls: Vec<String> = ["/api/items", "/missing", "/api/items", "/health", "/missing", "/api/items"]
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    let url_args: Vec<&str> = urls.iter().map(String::as_str).collect();
    curl(&url_args);
    // POSTs with bodies, on new connections.
    curl(&["-d", r#"{"name":"a"}"#, "-H", "Content-Type: application/json", &format!("{base}/api/items")]);
    curl(&["-d", "x=1", &format!("{base}/api/items")]);

    let script = write_script(&dir, "counts.pxl", &counts_script(port));
    let mut expected = Vec::new();
    expected.extend(both_roles("GET", "/api/items", 200, 3));
    expected.extend(both_roles("GET", "/missing", 404, 2));
    expected.extend(both_roles("GET", "/health", 204, 1));
    expected.extend(both_roles("POST", "/api/items", 201, 2));
    let rows = poll_counts(loupe_port, &script, &expected);
    check_rows(&rows, port);

    // Bodies and headers reach the table.
    let body_script = write_script(
        &dir,
        "bodies.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame('http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) & (df.req_method == 'POST')]\n\
             px.display(df[['req_body', 'req_body_size', 'resp_body', 'content_type', 'req_headers']], 'posts')\n"
        ),
    );
    let out = px(loupe_port, &["run", "-f", body_script.to_str().expect("utf8"), "-o", "json"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#""req_body":"{\"name\":\"a\"}""#), "{text}");
    assert!(text.contains(r#""req_body":"x=1""#), "{text}");
    assert!(text.contains(r#""resp_body":"created""#), "{text}");
    assert!(text.contains(r#""content_type":1"#), "JSON request must be content_type 1: {text}");
    assert!(text.contains("application/json"), "{text}");

    // curl has exited by now, yet its rows carry a full UPID (start time read in the kernel).
    let upid_script = write_script(
        &dir,
        "upids.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame('http_events', start_time='-5m')\n\
             px.display(df[df.remote_port == {port}][['upid']], 'clients')\n"
        ),
    );
    let out = px(loupe_port, &["run", "-f", upid_script.to_str().expect("utf8"), "-o", "json"]);
    let rows: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(rows.len(), 8, "one client row per request");
    for r in &rows {
        let upid = r["upid"].as_str().unwrap_or_default();
        let parts: Vec<&str> = upid.split(':').collect();
        assert_eq!(parts.len(), 3, "{upid}");
        assert_ne!(parts[2], "0", "client UPID lacks its start time: {upid}");
    }
}

#[test]
fn python_http_server_is_counted_and_bundled_scripts_run() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, api_port) = start_loupe();
    let loupe_port = api_port;
    // One address for everything: the cloud API's port answers queries, only for a logged-in user whose
    // password is no longer the initial one.
    let out = px(api_port, &["run", "px/http_data", "-o", "json"]);
    assert_eq!(out.status.code(), Some(2), "no credential: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("px auth login"), "{}", String::from_utf8_lossy(&out.stderr));
    let login = px_with_stdin(api_port, &["auth", "login", "--email", "admin@default.com"], "admin\n");
    assert!(login.status.success(), "login: {}", String::from_utf8_lossy(&login.stderr));
    let out = px(api_port, &["run", "px/http_data", "-o", "json"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password must be changed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let change = px_with_stdin(api_port, &["auth", "password"], "admin\na long new passphrase\n");
    assert!(change.status.success(), "password change: {}", String::from_utf8_lossy(&change.stderr));
    let dir = temp_dir("python");
    std::fs::write(dir.join("hello.txt"), "hello\n").expect("file");
    let port = free_port();
    let _server = Guard(
        Command::new("/usr/bin/python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 http.server"),
    );
    wait_for_port(port, "python http.server");
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..4 {
        curl(&[&format!("{base}/hello.txt")]);
    }
    curl(&[&format!("{base}/nothing-here")]);
    curl(&["-X", "POST", "-d", "abc", &format!("{base}/hello.txt")]);

    let script = write_script(&dir, "counts.pxl", &counts_script(port));
    let mut expected = Vec::new();
    expected.extend(both_roles("GET", "/hello.txt", 200, 4));
    expected.extend(both_roles("GET", "/nothing-here", 404, 1));
    expected.extend(both_roles("POST", "/hello.txt", 501, 1));
    let rows = poll_counts(loupe_port, &script, &expected);
    check_rows(&rows, port);

    // The bundled scripts run and print in every format. `px/http_data` is a sample (the first 100 rows of the
    // window), which other tests' traffic on a shared host may fill: it must print rows with its columns, and the
    // per-path aggregate, which covers every row, must show this test's path.
    for format in ["table", "json", "csv"] {
        let out = px(loupe_port, &["run", "px/http_data", "-o", format]);
        assert!(out.status.success(), "px/http_data -o {format}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let columns = text.to_lowercase();
        assert!(columns.contains("req_path") && columns.contains("resp_status"), "px/http_data -o {format}:\n{text}");
        let out = px(loupe_port, &["run", "px/http_request_stats", "-o", format]);
        assert!(out.status.success(), "px/http_request_stats -o {format}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/hello.txt"), "px/http_request_stats -o {format} lacks the traffic:\n{text}");
        // Table output shows values by semantic type (latencies with a time unit, the error rate in percent);
        // JSON and CSV keep the raw numbers.
        let line = text.lines().find(|l| l.contains("/hello.txt")).unwrap_or_default();
        let units = [" ns", " µs", " ms", " s"].iter().any(|u| line.contains(u)) && line.contains(" %");
        assert_eq!(units, format == "table", "px/http_request_stats -o {format}: {line}");
    }
    let out = px(api_port, &["run", "px/http_status_counts", "-o", "json"]);
    assert!(out.status.success(), "px via the API port: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/hello.txt"));
    // Function-form bundled scripts run through their own vis specs, with arguments after `--`.
    let out = px(api_port, &["run", "px/service_stats", "-o", "json", "--", "--start_time=-10m"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "px/service_stats: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Endpoints") && text.contains("/hello.txt"), "px/service_stats lacks the traffic:\n{text}");
    let out = px(api_port, &["run", "px/http_errors", "-o", "csv", "--", "--path_contains=nothing-here"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "px/http_errors: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("/nothing-here") && !text.contains("/hello.txt"), "px/http_errors:\n{text}");
    // Every script `px run --list` shows runs on a live host with its vis spec's defaults.
    let list = px(api_port, &["run", "--list"]);
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert!(names.len() >= 25, "px run --list: {names:?}");
    for name in &names {
        let out = px(api_port, &["run", name, "-o", "json"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = px(loupe_port, &["version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("px client version") && text.contains("server version"), "{text}");
}

#[test]
fn pxl_mistakes_come_back_with_line_and_column() {
    // Serving queries needs no tracing, so this runs as any user.
    let (metrics_port, port) = (free_port(), free_port());
    let _loupe = Guard(
        loupe_up(metrics_port, port, "typo").arg("--no-trace").stderr(Stdio::null()).spawn().expect("spawn loupe"),
    );
    wait_for_port(metrics_port, "loupe up --no-trace");
    login(port);
    let dir = temp_dir("typo");
    let script = write_script(
        &dir,
        "typo.pxl",
        "import px\ndf = px.DataFrame(table='http_events')\ndf = df[df.resp_statu >= 400]\npx.display(df)\n",
    );
    let out = px(port, &["run", "-f", script.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1), "a script error exits 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resp_statu"), "{err}");
    assert!(err.contains("typo.pxl:3:"), "the error names line 3: {err}");
    assert!(err.contains('^'), "a caret marks the column: {err}");
    assert!(err.contains("resp_status"), "suggests the right name: {err}");

    let syntax = write_script(&dir, "syntax.pxl", "import px\ndf = px.DataFrame(table='http_events'\n");
    let out = px(port, &["run", "-f", syntax.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("syntax.pxl:"), "{err}");
}

#[test]
fn non_root_agent_exits_with_one_line() {
    // Drop to `nobody` when root; run as is otherwise.
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]).arg(loupe_bin());
        c
    } else {
        Command::new(loupe_bin())
    };
    let data = temp_dir("nonroot");
    let out = cmd
        .args(["up", "--metrics-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("LOUPE_LOG", "off")
        .output()
        .expect("run loupe");
    assert!(!out.status.success(), "loupe up must fail without privileges");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line, got: {err}");
    assert!(lines[0].contains("root") && lines[0].contains("CAP_BPF"), "{err}");
}

#[test]
fn px_reports_an_unreachable_server_clearly() {
    let port = free_port();
    let out = px(port, &["run", "px/http_data"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed to connect") && err.contains("loupe up"), "{err}");
}

#[test]
fn loupe_up_serves_the_cloud_api_with_a_forced_admin_password_change() {
    let (port, api_port) = (free_port(), free_port());
    let _loupe =
        Guard(loupe_up(port, api_port, "cloud").arg("--no-trace").stderr(Stdio::null()).spawn().expect("spawn"));
    wait_for_port(api_port, "the cloud API");
    let api = format!("http://127.0.0.1:{api_port}/api/v1");
    let call = |args: &[&str]| -> Value {
        let out = Command::new("curl").args(["-sS"]).args(args).output().expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    };
    let login = call(&[
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"email":"admin@default.com","password":"admin"}"#,
        &format!("{api}/auth/login"),
    ]);
    assert_eq!(login["must_change_password"], Value::Bool(true), "{login}");
    let token = login["token"].as_str().expect("token").to_string();
    let bearer = format!("authorization: Bearer {token}");
    let refused = call(&["-H", &bearer, &format!("{api}/api-keys")]);
    assert!(refused["message"].as_str().unwrap_or_default().contains("password must be changed"), "{refused}");
    let changed = call(&[
        "-H",
        &bearer,
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"current_password":"admin","new_password":"a long new passphrase"}"#,
        &format!("{api}/auth/password"),
    ]);
    let token = changed["token"].as_str().expect("new token").to_string();
    let keys = call(&["-H", &format!("authorization: Bearer {token}"), &format!("{api}/api-keys")]);
    // A new org has no API keys: the list is a JSON array, empty.
    assert_eq!(keys, Value::Array(vec![]), "{keys}");
}

/// Every subcommand answers `--help`. These are debug builds, so clap also checks each command's flags (unique
/// names, `requires` links) as it builds it: a conflict fails here rather than at a user's first run.
#[test]
fn every_subcommand_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["up"],
        &["vizier", "pem"],
        &["vizier", "metadata"],
        &["cloud", "api"],
        &["cloud", "auth"],
        &["cloud", "profile"],
        &["cloud", "scripts"],
        &["cloud", "proxy"],
        &["setup", "create-admin"],
        &["setup", "init-secrets"],
    ];
    for command in commands {
        let out = Command::new(loupe_bin()).args(*command).arg("--help").output().expect("run loupe");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "loupe {command:?} --help: {}", String::from_utf8_lossy(&out.stderr));
        assert!(help.contains("Usage:"), "loupe {command:?} --help printed no usage:\n{help}");
    }
}
