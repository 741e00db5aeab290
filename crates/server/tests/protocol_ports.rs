//! End to end: per-port protocol overrides (`loupe up --protocol-port PORT=PROTOCOL`). A Python HTTP server
//! answers WebDAV's `PROPFIND`, a method the kernel's first-bytes classifier does not know (so without an
//! override the connection is never exported): `PORT=http` forces it, and every request must appear once per
//! side. A second server on a port given `PORT=none` serves plain `GET`s, which are classified as HTTP on
//! any other port: it must give no row at all.
//!
//! Owns only this acceptance check; its queries filter by its own servers' ports.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe_with, write_script};

/// An HTTP/1.1 server answering PROPFIND with 207 and GET with 200, on the port given.
const SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, status):
        body = b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_PROPFIND(self):
        self.reply(207)
    def do_GET(self):
        self.reply(200)
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
server.serve_forever()
"#;

fn start_server(port: u16) -> Guard {
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SERVER, &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Guard(child);
    let mut ready = String::new();
    BufReader::new(stdout).read_line(&mut ready).expect("server output");
    assert_eq!(ready.trim(), "ready", "the HTTP server did not start");
    guard
}

fn curl(args: &[&str]) {
    let out = Command::new("curl").args(["-sS", "--fail", "-o", "/dev/null"]).args(args).output().expect("run curl");
    assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// (trace_role, method, path, status) -> rows, on `port`.
type Counts = Vec<((i64, String, String, i64), i64)>;

fn counts(api_port: u16, tag: &str, port: u16) -> Counts {
    let dir = temp_dir(tag);
    let script = write_script(
        &dir,
        "ports.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame(table='http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             s = df.groupby(['trace_role', 'req_method', 'req_path', 'resp_status']).agg(n=('latency', px.count))\n\
             px.display(s, 'counts')\n"
        ),
    );
    let out = px(api_port, &["run", "-f", script.to_str().expect("utf8 path"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut got: Counts = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json row"))
        .map(|r| {
            let text = |c: &str| r[c].as_str().unwrap_or_default().to_string();
            let int = |c: &str| r[c].as_i64().unwrap_or(-1);
            ((int("trace_role"), text("req_method"), text("req_path"), int("resp_status")), int("n"))
        })
        .collect();
    got.sort();
    got
}

#[test]
fn a_forced_port_is_parsed_and_a_disabled_port_is_left_out() {
    if !can_trace() {
        return;
    }
    let (forced, disabled) = (free_port(), free_port());
    let _forced_server = start_server(forced);
    let _disabled_server = start_server(disabled);
    let (force_arg, disable_arg) = (format!("{forced}=http"), format!("{disabled}=none"));
    let (_loupe, _metrics, api_port) =
        start_loupe_with(&["--protocol-port", &force_arg, "--protocol-port", &disable_arg]);
    login(api_port);

    // The disabled port first: once the forced port's rows are in, these were processed too.
    for _ in 0..2 {
        curl(&[&format!("http://127.0.0.1:{disabled}/plain")]);
    }
    // PROPFIND opens each connection (the classifier knows no such method); one kept-alive curl sends two.
    let dav = format!("http://127.0.0.1:{forced}/dav");
    curl(&["-X", "PROPFIND", &dav, "-o", "/dev/null", &dav]);
    curl(&["-X", "PROPFIND", &dav]);

    let mut want: Counts =
        [1, 2].into_iter().map(|role| ((role, "PROPFIND".to_string(), "/dav".to_string(), 207), 3)).collect();
    want.sort();
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = counts(api_port, "ports-forced", forced);
        if got == want || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(got, want, "every PROPFIND once per side on the port forced to HTTP");
    assert_eq!(counts(api_port, "ports-disabled", disabled), Counts::new(), "no row for the disabled port");
}
