//! End to end: TLS plaintext. `loupe up` traces nginx serving HTTPS (its own config, a self-signed
//! certificate made by `openssl` in the test, a private port) fetched by `curl -k` and by Python's
//! `ssl` module (`/usr/bin/python3`, `http.client`), both using the system OpenSSL 3 (`libssl.so.3`).
//! The plaintext comes from the `SSL_read`/`SSL_write` uprobes: every request must appear exactly
//! once per side in `http_events` with `encrypted` true and its path and status, and no row of
//! that port may be unencrypted (the raw TLS records are never parsed).
//!
//! Go's `crypto/tls` the same way: a stdlib-only Go program (`tests/go/tlsprog.go`, built in the test
//! by Debian's `golang-go` 1.19 and by PyPI's Go 1.27) serves HTTPS and calls itself from a second process over HTTP/1.1 and
//! HTTP/2 (negotiated by ALPN); its plaintext comes from uprobes on `crypto/tls.(*Conn).Read`/`Write`.
//!
//! Node.js (`tests/node/https.js`): OpenSSL linked into `node` and fed through memory BIOs, so no
//! syscall inside an SSL call names its socket; HTTP/1.1 connections in turn and at once, and HTTP/2.
//!
//! `wget` (GnuTLS, not covered) is reported once in the agent's log and its records never parsed.
//!
//! Owns only these acceptance checks; their queries filter by their own server's port.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, make_certificate, spawn_ready, temp_dir, wait_for_port};
use crate::e2e::{can_trace, login, poll_keyed_counts, px, start_loupe, start_loupe_logged, write_script};

/// nginx with TLS on 127.0.0.1:`port`, certificate and key made with `openssl` in `dir`.
fn start_tls_nginx(dir: &Path, port: u16) -> Guard {
    let (cert, key) = make_certificate(dir);
    let d = dir.display();
    let conf = format!(
        "daemon off; master_process off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
         uwsgi_temp_path {d}; scgi_temp_path {d};\n\
         server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {c}; ssl_certificate_key {k};\n\
         location /missing {{ return 404 'nope'; }}\n\
         location / {{ return 200 'secret page'; }} }} }}\n",
        c = cert.display(),
        k = key.display(),
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

/// (trace_role, req_path, resp_status, encrypted).
type RolePathStatus = (i64, String, i64, bool);

/// (trace_role, req_path, resp_status, encrypted) -> rows.
type Counts = Vec<(RolePathStatus, i64)>;

/// Prints the agent's non-zero counters (for a failing test's output).
fn print_agent_stats(dir: &Path, api_port: u16) {
    let stats = write_script(
        dir,
        "agent-stats.pxl",
        "import px\n\
         df = px.DataFrame(table='agent_stats', start_time='-5m')\n\
         df = df.groupby(['counter', 'cause']).agg(value=('value', px.max))\n\
         px.display(df[df.value > 0], 'stats')\n",
    );
    let out = px(api_port, &["run", "-f", stats.to_str().expect("utf8 path"), "-o", "json"]);
    eprintln!("agent_stats:\n{}", String::from_utf8_lossy(&out.stdout));
}

/// The key of a `Counts` row: (trace_role, req_path, resp_status, encrypted).
fn role_path_status(r: &Value) -> RolePathStatus {
    (
        r["trace_role"].as_i64().unwrap_or(-1),
        r["req_path"].as_str().unwrap_or_default().to_string(),
        r["resp_status"].as_i64().unwrap_or(-1),
        r["encrypted"].as_bool().unwrap_or(false),
    )
}

#[test]
fn https_plaintext_lands_in_http_events_once_per_side_encrypted() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("tls-capture");
    let port = free_port();
    // Started before the agent: its libssl is found by the first scan; curl and python map the
    // same file, so the one attach covers them when they start later.
    let _nginx = start_tls_nginx(&dir, port);
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);

    let base = format!("https://127.0.0.1:{port}");
    // curl: one process, one kept-alive connection, 3 requests; then 2 more processes.
    let urls = [format!("{base}/a"), format!("{base}/b"), format!("{base}/missing")];
    let mut args = vec!["-sSk".to_string()];
    for u in &urls {
        args.extend(["-o".into(), "/dev/null".into(), u.clone()]);
    }
    let run_curl = |args: &[String]| {
        let out = Command::new("curl").args(args).output().expect("run curl");
        assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    };
    run_curl(&args);
    for _ in 0..2 {
        run_curl(&["-sSk".into(), "-o".into(), "/dev/null".into(), format!("{base}/a")]);
    }
    // Python's ssl module (OpenSSL 3 through _ssl), two requests on one connection.
    let py = format!(
        "import ssl, http.client\n\
         ctx = ssl._create_unverified_context()\n\
         c = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx)\n\
         for p in ['/py', '/py']:\n\
         \x20   c.request('GET', p)\n\
         \x20   r = c.getresponse()\n\
         \x20   assert r.status == 200, r.status\n\
         \x20   r.read()\n\
         c.close()\n"
    );
    let out = Command::new("/usr/bin/python3").args(["-c", &py]).output().expect("run /usr/bin/python3");
    assert!(out.status.success(), "python ssl client: {}", String::from_utf8_lossy(&out.stderr));

    let script = write_script(
        &dir,
        "tls.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'req_path', 'resp_status', 'encrypted']).agg(\n\
             \x20   n=('latency', px.count), min_latency=('latency', px.min))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let mut want: Counts = [("/a", 200, 3), ("/b", 200, 1), ("/missing", 404, 1), ("/py", 200, 2)]
        .iter()
        .flat_map(|&(path, status, n)| [1, 2].map(|role| ((role, path.to_string(), status, true), n)))
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, role_path_status);
    assert_eq!(got, want, "every HTTPS request once per side (1 client, 2 server), encrypted");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
    }
}

/// The `libssl` and `libcrypto` files `/usr/bin/python3`'s `ssl` module maps.
fn python_openssl_files() -> Vec<PathBuf> {
    let out = Command::new("/usr/bin/python3")
        .args(["-c", "import ssl\nprint(open('/proc/self/maps').read())"])
        .output()
        .expect("run /usr/bin/python3");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.contains("/libssl.so") || p.contains("/libcrypto.so"))
        .map(PathBuf::from)
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), 2, "python's ssl maps one libssl and one libcrypto: {files:?}");
    files
}

#[test]
fn a_libssl_loaded_after_the_first_scan_is_found_when_the_process_connects_again() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("tls-dlopen");
    let port = free_port();
    let _nginx = start_tls_nginx(&dir, port);
    let (_loupe, _metrics_port, api_port, log) = start_loupe_logged(&[]);
    login(api_port);
    // Private copies of the libraries: no other process maps these files, so only a second look at
    // this process after it loads them (as `import ssl` does, long after it started) finds them.
    let (lib, go) = (dir.join("lib"), dir.join("go"));
    std::fs::create_dir_all(&lib).expect("lib dir");
    for file in python_openssl_files() {
        std::fs::copy(&file, lib.join(file.file_name().expect("file name"))).expect("copy the library");
    }
    let py = format!(
        "import os, socket, time\n\
         socket.create_connection(('127.0.0.1', {port})).close()\n\
         time.sleep(3)\n\
         import ssl, http.client\n\
         assert any('{lib}/libssl' in l for l in open('/proc/self/maps')), 'the private libssl is loaded'\n\
         ctx = ssl._create_unverified_context()\n\
         def get(paths):\n\
         \x20   c = http.client.HTTPSConnection('127.0.0.1', {port}, context=ctx)\n\
         \x20   for p in paths:\n\
         \x20       c.request('GET', p)\n\
         \x20       r = c.getresponse()\n\
         \x20       assert r.status == 200, r.status\n\
         \x20       r.read()\n\
         \x20   c.close()\n\
         get(['/first'])\n\
         deadline = time.time() + 120\n\
         while not os.path.exists('{go}') and time.time() < deadline: time.sleep(0.1)\n\
         get(['/late', '/late'])\n",
        lib = lib.display(),
        go = go.display(),
    );
    let client = Command::new("/usr/bin/python3")
        .args(["-c", &py])
        .env("LD_LIBRARY_PATH", &lib)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    // The connection for "/first" (after the import) is what makes the agent look again; how soon
    // that attach lands depends on the machine's load, so "/late" waits for it instead of a guess.
    let found = wait_logged(
        &log,
        &["uprobes attached to SSL_read/SSL_write", &lib.join("libssl").display().to_string()],
        Duration::from_secs(90),
    );
    std::fs::write(&go, b"").expect("signal the client");
    let out = client.wait_with_output().expect("wait for the python client");
    assert!(out.status.success(), "python ssl client: {}", String::from_utf8_lossy(&out.stderr));
    assert!(found, "no attach logged for the private libssl in {lib:?}");

    let script = write_script(
        &dir,
        "late.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[((df.local_port == {port}) | (df.remote_port == {port})) & (df.req_path == '/late')]\n\
             s = df.groupby(['trace_role', 'req_path', 'resp_status', 'encrypted']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    // The server's side through the system libssl; the client's through its private copy, found
    // once the process connected after loading it.
    let want: Counts = [1, 2].map(|role| ((role, "/late".to_string(), 200, true), 2)).to_vec();
    let (got, _) = poll_keyed_counts(api_port, &script, &want, role_path_status);
    assert_eq!(got, want, "the requests after the rescan, once per side, encrypted");
}

/// Builds `tests/go/tlsprog.go` into `dir` as `name` with the toolchain `go` (stdlib only: no module
/// download), with these `-ldflags` (`-w` drops DWARF, `-s -w` the symbols too).
fn build_go_program_with(go: &Path, dir: &Path, name: &str, ldflags: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go/tlsprog.go");
    let out = dir.join(name);
    let built = Command::new(go)
        .arg("build")
        .arg(format!("-ldflags={ldflags}"))
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap_or_else(|e| panic!("run {go:?} (scripts/test.sh installs it): {e}"));
    assert!(built.status.success(), "go build: {}", String::from_utf8_lossy(&built.stderr));
    out
}

/// (trace_role, major_version, method, path, status, encrypted) -> rows.
type GoCounts = Vec<((i64, i64, String, String, i64, bool), i64)>;

#[test]
fn go_crypto_tls_plaintext_lands_in_http_events_for_http1_and_http2() {
    // Debian's Go (1.19 on bookworm).
    go_tls_capture(Path::new("go"), "go-tls-capture");
}

/// A recent Go (1.27), eight releases past Debian's: the toolchain `LOUPE_TEST_NEW_GO` names, else
/// the one `scripts/new-go.sh` installs from PyPI. Its symbol table names no itab, so the agent
/// checks a connection's type by the itab's first method instead.
#[test]
fn go_crypto_tls_plaintext_of_a_recent_go_lands_in_http_events() {
    if !can_trace() {
        return;
    }
    let go = std::env::var_os("LOUPE_TEST_NEW_GO").map(PathBuf::from).unwrap_or_else(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/new-go.sh");
        let out = Command::new("bash").arg(script).output().expect("run scripts/new-go.sh");
        assert!(out.status.success(), "scripts/new-go.sh: {}", String::from_utf8_lossy(&out.stderr));
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    });
    go_tls_capture(&go, "new-go-tls-capture");
}

/// Builds `tests/go/tlsprog.go` with `go`, checks what the agent reads from it (with and without
/// DWARF, stripped), then traces its HTTPS server and client over HTTP/1.1 and HTTP/2.
fn go_tls_capture(go: &Path, tag: &str) {
    if !can_trace() {
        return;
    }
    let dir = temp_dir(tag);
    let prog = build_go_program_with(go, &dir, "tlsprog", "");
    // What the agent reads from the executable: the RETs, and the struct offsets from DWARF; without
    // DWARF the defaults (the same numbers for this Go); stripped of symbols, not covered.
    use loupe_collector::go_tls::{GoOffsets, Inspection, inspect};
    let Inspection::Covered(target) = inspect(&prog).expect("readable") else { panic!("not covered: {prog:?}") };
    assert!(target.go_version.starts_with("go1."), "{target:?}");
    assert!(!target.read.returns.is_empty() && !target.write.returns.is_empty(), "{target:?}");
    // A non-PIE executable has a fixed itab address, or (recent Go, no itab symbols) a fixed Close.
    assert!(
        (target.tcpconn_itab != 0) != (target.tcpconn_close != 0),
        "one check of the connection's type: {target:?}"
    );
    assert_eq!(target.offsets, GoOffsets { from_dwarf: true, ..GoOffsets::DEFAULT });
    let no_dwarf = build_go_program_with(go, &dir, "tlsprog-nodwarf", "-w");
    let Inspection::Covered(bare) = inspect(&no_dwarf).expect("readable") else { panic!("-w: not covered") };
    assert_eq!(bare.offsets, GoOffsets::DEFAULT);
    let stripped = build_go_program_with(go, &dir, "tlsprog-stripped", "-s -w");
    assert!(matches!(inspect(&stripped).expect("readable"), Inspection::NotCovered { .. }), "stripped");
    let port = free_port();
    // The server runs before the agent: the first scan finds its executable and attaches to the
    // file, which also covers the client process started from the same file later.
    let mut server = Command::new(&prog)
        .args(["serve", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the Go server");
    let stdout = server.stdout.take().expect("stdout");
    let _server = Guard(server);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).expect("server output");
    assert_eq!(ready.trim(), "ready", "the Go server did not start");
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);

    let out = Command::new(&prog).args(["client", &port.to_string()]).output().expect("run the Go client");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "done",
        "Go client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let script = write_script(
        &dir,
        "go-tls.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'major_version', 'req_method', 'req_path', 'resp_status', 'encrypted']).agg(\n\
             \x20   n=('latency', px.count), min_latency=('latency', px.min), body=('resp_body', px.any))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let mut want: GoCounts = [1i64, 2]
        .into_iter()
        .flat_map(|v| {
            [("GET", "a", 200), ("GET", "b", 200), ("GET", "missing", 404), ("POST", "post", 200)]
                .map(move |(method, path, status)| (v, method.to_string(), format!("/h{v}/{path}"), status))
        })
        .flat_map(|(v, method, path, status)| {
            [1, 2].map(|role| ((role, v, method.clone(), path.clone(), status, true), 1))
        })
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, |r| {
        let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
        let int = |c: &str| r[c].as_i64().unwrap_or(-1);
        (
            int("trace_role"),
            int("major_version"),
            text("req_method"),
            text("req_path"),
            int("resp_status"),
            r["encrypted"].as_bool().unwrap_or(false),
        )
    });
    if got != want {
        // Every row of the port, to tell a lost request from a lost response.
        let all = write_script(
            &dir,
            "go-tls-rows.pxl",
            &format!(
                "import px\n\
                 df = px.DataFrame(table='http_events', start_time='-5m')\n\
                 df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
                 px.display(df[['time_', 'trace_role', 'major_version', 'req_path', 'resp_status', 'latency', \
                 'req_headers', 'resp_headers']], 'rows')\n"
            ),
        );
        let out = px(api_port, &["run", "-f", all.to_str().expect("utf8 path"), "-o", "json"]);
        eprintln!("rows:\n{}", String::from_utf8_lossy(&out.stdout));
        print_agent_stats(&dir, api_port);
    }
    assert_eq!(got, want, "every Go HTTPS request once per side (1 client, 2 server), HTTP/1.1 and HTTP/2, encrypted");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        if r["resp_status"].as_i64() == Some(200) {
            let body = r["body"].as_str().unwrap_or_default();
            assert!(body.starts_with("secret page /h"), "the response body is plaintext: {r}");
        }
    }
}

/// Builds `tests/c/sslprog.c` into `dir` as `name` with the C compiler, OpenSSL linked in from
/// `libssl.a`/`libcrypto.a` (glibc stays shared, as in Node.js builds); `-s` strips its symbols.
fn build_static_openssl_program(dir: &Path, name: &str, strip: bool) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/sslprog.c");
    let out = dir.join(name);
    let mut cc = Command::new("cc");
    cc.args(["-O1", "-Wall", "-o"]).arg(&out).arg(&src);
    if strip {
        cc.arg("-s");
    }
    let built = cc
        .args(["-Wl,-Bstatic", "-lssl", "-lcrypto", "-Wl,-Bdynamic", "-lpthread", "-ldl"])
        .output()
        .expect("run cc (apt-get install gcc libc6-dev)");
    assert!(built.status.success(), "cc: {} (apt-get install libssl-dev)", String::from_utf8_lossy(&built.stderr));
    out
}

/// Starts `prog serve` on 127.0.0.1:`port` with the certificate and key in `dir`; waits for "ready".
fn start_sslprog(prog: &Path, dir: &Path, port: u16) -> Guard {
    spawn_ready(
        Command::new(prog)
            .arg("serve")
            .arg(port.to_string())
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .stderr(Stdio::null()),
        "the static OpenSSL server",
    )
}

/// Runs `prog client port paths…` (one kept-alive connection).
fn run_sslprog_client(prog: &Path, port: u16, paths: &[&str]) {
    let out = Command::new(prog).arg("client").arg(port.to_string()).args(paths).output().expect("run the client");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "done",
        "static OpenSSL client: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn statically_linked_openssl_plaintext_lands_in_http_events_and_a_stripped_one_is_skipped() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("static-openssl-capture");
    let prog = build_static_openssl_program(&dir, "sslprog", false);
    let stripped = build_static_openssl_program(&dir, "sslprog-stripped", true);
    // What the agent reads: all four functions from the full symbol table; nothing from the stripped copy.
    use loupe_collector::static_ssl::{Scan, SymbolTable, scan};
    let Scan::Found(found) = scan(&prog).expect("readable") else { panic!("OpenSSL not found in {prog:?}") };
    let names: Vec<&str> = found.functions.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["SSL_write", "SSL_read", "SSL_write_ex", "SSL_read_ex"], "{found:?}");
    assert_eq!(found.table, SymbolTable::Symtab);
    assert_eq!(scan(&stripped).expect("readable"), Scan::Stripped);
    let maps_libssl =
        |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps").contains("libssl.so");

    make_certificate(&dir);
    let (port, stripped_port) = (free_port(), free_port());
    // Both servers run before the agent: its first scan reads their executables; the clients started
    // later run the same files, which the one attach per file covers.
    let server = start_sslprog(&prog, &dir, port);
    assert!(!maps_libssl(server.0.id()), "the test program must not map a shared libssl");
    let _stripped_server = start_sslprog(&stripped, &dir, stripped_port);
    let (_loupe, _metrics_port, api_port, log) = start_loupe_logged(&[]);
    login(api_port);
    let attached = "uprobes attached to OpenSSL linked into this file";
    assert!(
        wait_logged(&log, &[attached, &prog.display().to_string()], Duration::from_secs(15)),
        "no attach logged for {prog:?}"
    );

    run_sslprog_client(&prog, port, &["/a", "/b", "/missing"]);
    run_sslprog_client(&prog, port, &["/a"]);
    run_sslprog_client(&stripped, stripped_port, &["/hidden", "/hidden"]);

    let script = write_script(
        &dir,
        "static-tls.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port}) | (df.local_port == {stripped_port}) | \
             (df.remote_port == {stripped_port})]\n\
             s = df.groupby(['trace_role', 'req_path', 'resp_status', 'encrypted']).agg(\n\
             \x20   n=('latency', px.count), min_latency=('latency', px.min), body=('resp_body', px.any))\n\
             px.display(s, 'counts')\n"
        ),
    );
    // Client rows (1) from the _ex functions, server rows (2) from SSL_read/SSL_write; none of the
    // stripped pair's "/hidden" (its TLS records are never parsed as HTTP).
    let mut want: Counts = [("/a", 200, 2), ("/b", 200, 1), ("/missing", 404, 1)]
        .iter()
        .flat_map(|&(path, status, n)| [1, 2].map(|role| ((role, path.to_string(), status, true), n)))
        .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, role_path_status);
    assert_eq!(got, want, "every request once per side, encrypted, from the statically linked OpenSSL");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        if r["resp_status"].as_i64() == Some(200) {
            let body = r["body"].as_str().unwrap_or_default();
            assert!(body.starts_with("secret page /"), "the response body is plaintext: {r}");
        }
    }
    assert!(
        !logged(
            &log,
            &["skipped a file with OpenSSL linked in but no symbol table (stripped)", &stripped.display().to_string()]
        )
        .is_empty(),
        "the stripped executable is skipped with a log line"
    );
    assert!(
        logged(&log, &["uprobes not attached", &prog.display().to_string()]).is_empty()
            && logged(&log, &["uprobes not attached", &stripped.display().to_string()]).is_empty(),
        "no attach error for either program"
    );
}

/// Node.js (`/usr/bin/node`, OpenSSL linked into the executable) serving HTTPS and fetching it
/// from a second Node process. Node feeds OpenSSL through memory BIOs, so the socket of an SSL
/// call is not the one a syscall inside the call names: the agent binds it from the thread's
/// socket reads around the call.
#[test]
fn node_https_plaintext_lands_in_http_events_once_per_side_encrypted() {
    if !can_trace() {
        return;
    }
    let node = which_node().expect("node on PATH (scripts/test.sh installs Debian's nodejs)");
    let dir = temp_dir("node-tls");
    make_certificate(&dir);
    let script_js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/https.js");
    let port = free_port();
    let (_loupe, _metrics_port, api_port, log) = start_loupe_logged(&[]);
    login(api_port);
    let _server = spawn_ready(
        Command::new(&node)
            .arg(&script_js)
            .args(["serve", &port.to_string()])
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .stderr(Stdio::null()),
        "the node server",
    );
    // The agent looks at a process once it has a socket: calls before the attach are not traced.
    let file = std::fs::canonicalize(&node).expect("node's path").display().to_string();
    let attached = || {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .any(|l| l.contains("uprobes attached to OpenSSL linked into this file") && l.contains(&file))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !attached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(attached(), "no attach logged for {file}");
    let run = |mode: &str, args: &[&str]| {
        let out = Command::new(&node)
            .arg(&script_js)
            .args([mode, &port.to_string()])
            .args(args)
            .output()
            .expect("run the node client");
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "done",
            "node {mode}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // HTTP/1.1: one connection in turn, then another; four at once (the server's one thread
    // interleaves their reads and SSL calls); HTTP/2 streams at once on one connection.
    run("client", &["/a", "/b", "/missing"]);
    run("client", &["/a"]);
    run("parallel", &["4", "/p"]);
    run("h2", &["/h2/a", "/h2/b", "/missing/h2"]);

    let script = write_script(
        &dir,
        "node-tls.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'major_version', 'req_path', 'resp_status', 'encrypted']).agg(\n\
             \x20   n=('latency', px.count), min_latency=('latency', px.min), body=('resp_body', px.any))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let key = |r: &Value| (r["major_version"].as_i64().unwrap_or(-1), role_path_status(r));
    let mut want: Vec<((i64, RolePathStatus), i64)> = [
        (1, "/a", 200, 2),
        (1, "/b", 200, 1),
        (1, "/missing", 404, 1),
        (1, "/p", 200, 8),
        (2, "/h2/a", 200, 1),
        (2, "/h2/b", 200, 1),
        (2, "/missing/h2", 404, 1),
    ]
    .iter()
    .flat_map(|&(version, path, status, n)| [1, 2].map(|role| ((version, (role, path.to_string(), status, true)), n)))
    .collect();
    want.sort();
    let (got, rows) = poll_keyed_counts(api_port, &script, &want, key);
    if got != want {
        print_agent_stats(&dir, api_port);
    }
    assert_eq!(got, want, "every Node request once per side, encrypted: {rows:?}");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
        if r["resp_status"].as_i64() == Some(200) {
            let body = r["body"].as_str().unwrap_or_default();
            assert!(body.starts_with("secret page /"), "the response body is plaintext: {r}");
        }
    }
}

/// Node.js from `PATH`.
fn which_node() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join("node")).find(|p| p.is_file()))
}

/// wget links GnuTLS, which is not covered: the agent says so once for that process, naming the
/// library, and never parses its TLS records; nginx's side of the same requests (OpenSSL) is traced.
#[test]
fn a_process_whose_tls_library_is_not_covered_is_reported_once() {
    if !can_trace() {
        return;
    }
    let dir = temp_dir("tls-uncovered");
    let port = free_port();
    let _nginx = start_tls_nginx(&dir, port);
    let (_loupe, _metrics_port, api_port, log) = start_loupe_logged(&[]);
    login(api_port);
    // wget reads its URLs from stdin to the end before it fetches any: it stays alive, its libraries
    // mapped, until the agent's scan (which a loaded host can slow to seconds) has seen it.
    let mut wget = Command::new("wget")
        .args(["-q", "--no-check-certificate", "-O", "/dev/null", "-i", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn wget (apt-get install wget)");
    let pid = wget.id();
    let report = ["TLS library not covered", &format!("pid={pid} ")];
    wait_logged(&log, &report, Duration::from_secs(90));
    let urls: String = (1..=4).map(|i| format!("https://127.0.0.1:{port}/gnutls/{i}\n")).collect();
    wget.stdin.take().expect("wget's stdin").write_all(urls.as_bytes()).expect("write the URLs to wget");
    let status = Guard(wget).0.wait().expect("wait for wget");
    assert!(status.success(), "wget failed");

    let script = write_script(
        &dir,
        "uncovered.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'req_path', 'resp_status', 'encrypted']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    // Only the server's side: wget's records are TLS the agent cannot read, and never parsed.
    let mut want: Counts = (1..=4).map(|i| ((2, format!("/gnutls/{i}"), 200, true), 1)).collect();
    want.sort();
    let (got, _) = poll_keyed_counts(api_port, &script, &want, role_path_status);
    assert_eq!(got, want, "nginx's side only, encrypted");
    let reports = logged(&log, &report);
    assert_eq!(reports.len(), 1, "one report for wget (pid {pid}): {reports:?}");
    assert!(reports[0].contains("libgnutls") && reports[0].contains("wget"), "{}", reports[0]);
}

/// The lines of loupe's `log` so far, without colours, that hold every one of `needles`.
fn logged(log: &Mutex<Vec<String>>, needles: &[&str]) -> Vec<String> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .map(|l| without_colours(l))
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Waits up to `timeout` for a line of loupe's `log` holding every one of `needles`.
fn wait_logged(log: &Mutex<Vec<String>>, needles: &[&str], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !logged(log, needles).is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `line` without the terminal colour sequences (`ESC [ … m`) the agent's log has.
fn without_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        rest = rest[at..].find('m').map_or("", |end| &rest[at + end + 1..]);
    }
    out.push_str(rest);
    out
}
