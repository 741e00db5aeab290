//! End to end: HTTP/1 capture keeps every request whatever its body size. `loupe up` traces
//! python's `http.server` (bodies written with `send`, larger than what the kernel copies per
//! syscall), nginx with `sendfile on` (bodies never in user memory) and a keep-alive python
//! server sending chunked bodies, all fetched by curl; every request must appear exactly once
//! per side with its status and exact `resp_body_size`.
//!
//! Owns only this acceptance check; it drives the binaries through the shared helpers in
//! `common` and must not assume it is alone on the host: its queries filter by its own ports.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, start_nginx, temp_dir, wait_for_port};
use crate::e2e::{can_trace, login, px, start_loupe};

/// Body sizes served: round sizes and sizes one byte either side of the kernel's copy limits
/// (8 KiB per record, 32 KiB per syscall) and of common socket buffer sizes.
const SIZES: &[u64] =
    &[1_024, 10 * 1_024, 40 * 1_024, 100 * 1_024, 1_048_576, 10 * 1_048_576, 8_191, 32_769, 65_537, 3 * 1_048_576 + 7];

/// Each file is fetched this many times from each server.
const FETCHES: i64 = 3;

/// Fetches every file `FETCHES` times: one curl per round, all files in it, so curl reuses its
/// connection where the server keeps it alive.
fn fetch_all(port: u16) {
    for _ in 0..FETCHES {
        let mut args: Vec<String> = vec!["-sS".into(), "--fail".into()];
        for size in SIZES {
            args.extend(["-o".into(), "/dev/null".into(), format!("http://127.0.0.1:{port}/f{size}.bin")]);
        }
        let out = Command::new("curl").args(&args).output().expect("run curl");
        assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Rows per (trace_role, path, status, resp_body_size) for one server port, plus how many
/// response bodies carry the truncation marker.
fn counts_script(port: u16) -> String {
    format!(
        "import px\n\
         df = px.DataFrame(table='http_events', start_time='-5m')\n\
         df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
         df.marked = px.contains(df.resp_body, '... [TRUNCATED]')\n\
         s = df.groupby(['trace_role', 'req_path', 'resp_status', 'resp_body_size']).agg(\n\
         \x20   n=('latency', px.count), marked=('marked', px.mean))\n\
         px.display(s, 'counts')\n"
    )
}

/// (trace_role, path, status, resp_body_size) -> rows.
type Counts = Vec<((i64, String, i64, i64), i64)>;

fn expected_counts() -> Counts {
    let mut want: Counts = SIZES
        .iter()
        .flat_map(|&size| [1, 2].map(|role| ((role, format!("/f{size}.bin"), 200, size as i64), FETCHES)))
        .collect();
    want.sort();
    want
}

/// Polls `px run` until the counts equal the traffic or 20 s pass; returns the last counts and rows.
fn poll_counts(api_port: u16, script: &Path) -> (Counts, Vec<Value>) {
    let want = expected_counts();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
        assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
        let rows: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
        let mut got: Counts = rows
            .iter()
            .map(|r| {
                let key = (
                    r["trace_role"].as_i64().unwrap_or(-1),
                    r["req_path"].as_str().unwrap_or_default().to_string(),
                    r["resp_status"].as_i64().unwrap_or(-1),
                    r["resp_body_size"].as_i64().unwrap_or(-1),
                );
                (key, r["n"].as_i64().unwrap_or(-1))
            })
            .collect();
        got.sort();
        if got == want || Instant::now() > deadline {
            return (got, rows);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Prints rows per side per size (the figure the review measured), then asserts the exact counts.
fn check(server: &str, got: &Counts, rows: &[Value]) {
    eprintln!("{server}: rows per side (client / server) of {FETCHES} requests, exact size and status");
    for size in SIZES {
        let path = format!("/f{size}.bin");
        let n = |role: i64| -> i64 {
            got.iter()
                .filter(|((r, p, s, b), _)| *r == role && *p == path && *s == 200 && *b == *size as i64)
                .map(|(_, n)| n)
                .sum()
        };
        eprintln!("  {size:>9} B: client {}/{FETCHES}  server {}/{FETCHES}", n(1), n(2));
    }
    assert_eq!(*got, expected_counts(), "{server}: every request once per side with its exact body size");
    // Every body here is longer than the 512 bytes kept, so every row is marked as cut.
    for r in rows {
        assert_eq!(r["marked"].as_f64(), Some(1.0), "{server}: a cut body must end with the marker: {r}");
    }
}

/// A keep-alive HTTP/1.1 server sending each file as a chunked body, one 16 KiB chunk per write.
const CHUNKED_SERVER: &str = r#"
import http.server, os, sys
class Chunked(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        with open(os.path.join(sys.argv[2], self.path.lstrip("/")), "rb") as f:
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := f.read(16384):
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Chunked).serve_forever()
"#;

/// Writes the files served: `f<size>.bin`, printable bytes.
fn write_files(dir: &Path) {
    for &size in SIZES {
        let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(dir.join(format!("f{size}.bin")), body).expect("write file");
    }
}

#[test]
fn bodies_of_any_size_keep_one_row_per_side_with_their_real_size() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("capture");
    let files = dir.join("files");
    std::fs::create_dir_all(&files).expect("files dir");
    write_files(&files);

    let python_port = free_port();
    let _python = Guard(
        Command::new("/usr/bin/python3")
            .args(["-m", "http.server", &python_port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 http.server"),
    );
    let nginx_port = free_port();
    let _nginx = start_nginx(
        &dir,
        nginx_port,
        "sendfile on; tcp_nopush on; keepalive_requests 1000; default_type application/octet-stream;",
        &format!("root {};", files.display()),
    );
    let chunked_port = free_port();
    std::fs::write(dir.join("chunked.py"), CHUNKED_SERVER).expect("chunked.py");
    let _chunked = Guard(
        Command::new("/usr/bin/python3")
            .arg(dir.join("chunked.py"))
            .arg(chunked_port.to_string())
            .arg(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the chunked python server"),
    );
    wait_for_port(python_port, "python http.server");
    wait_for_port(chunked_port, "the chunked python server");

    let servers =
        [("python http.server", python_port), ("nginx sendfile on", nginx_port), ("python chunked", chunked_port)];
    for (_, port) in servers {
        fetch_all(port);
    }

    let mut failures = Vec::new();
    for (server, port) in servers {
        let script = dir.join(format!("counts-{port}.pxl"));
        std::fs::write(&script, counts_script(port)).expect("write script");
        let (got, rows) = poll_counts(api_port, &script);
        // Both servers are reported before any assertion fails, so one run gives the whole table.
        if let Err(panic) = std::panic::catch_unwind(|| check(server, &got, &rows)) {
            failures.push(panic);
        }
    }
    if let Some(panic) = failures.into_iter().next() {
        std::panic::resume_unwind(panic);
    }
}
