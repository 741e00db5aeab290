//! End to end: TLS plaintext. `loupe up` traces nginx serving HTTPS (its own config, a self-signed
//! certificate made by `openssl` in the test, a private port) fetched by `curl -k` and by Python's
//! `ssl` module (`/usr/bin/python3`, `http.client`), both using the system OpenSSL 3 (`libssl.so.3`).
//! The plaintext comes from the `SSL_read`/`SSL_write` uprobes: every request must appear exactly
//! once per side in `http_events` with `encrypted` true and its path and status, and no row of
//! that port may be unencrypted (the raw TLS records are never parsed).
//!
//! Owns only this acceptance check; its queries filter by its own server's port.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, temp_dir, wait_for_port};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// nginx with TLS on 127.0.0.1:`port`, certificate and key made with `openssl` in `dir`.
fn start_tls_nginx(dir: &Path, port: u16) -> Guard {
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

/// (trace_role, req_path, resp_status, encrypted) -> rows.
type Counts = Vec<((i64, String, i64, bool), i64)>;

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
    let deadline = Instant::now() + Duration::from_secs(20);
    let (got, rows) = loop {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
        let mut got: Counts = rows
            .iter()
            .map(|r| {
                (
                    (
                        r["trace_role"].as_i64().unwrap_or(-1),
                        r["req_path"].as_str().unwrap_or_default().to_string(),
                        r["resp_status"].as_i64().unwrap_or(-1),
                        r["encrypted"].as_bool().unwrap_or(false),
                    ),
                    r["n"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            break (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every HTTPS request once per side (1 client, 2 server), encrypted");
    for r in &rows {
        assert!(r["min_latency"].as_i64().unwrap_or(0) > 0, "latency must be > 0: {r}");
    }
}
