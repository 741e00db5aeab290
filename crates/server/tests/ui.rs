//! The web UI in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`) driven by
//! Selenium (`python3-selenium`) through `tests/browser/ui.py`, against a real `loupe up` over its TLS proxy.
//! Each test starts its own `loupe up` (which traces the host: traffic is told apart by the test's own nginx
//! port), makes what its journey needs (traffic, a second org), runs one journey of the runner and checks what
//! the browser did from outside as well (a revoked key no longer authenticates, the new password works).
//! Screenshots of the main pages go to `target/ui-screenshots/`.
//!
//! Owns only these tests; the runner owns the browser steps.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::{
    Guard, free_port, loupe_bin, loupe_up_with_proxy, start_nginx, temp_dir, temp_path, wait_for_port,
};
use crate::e2e::can_trace;

/// The new password the tests give the bootstrap admin (the runner logs in with it).
const PASSWORD: &str = "a long new passphrase";

struct Ui {
    _loupe: Guard,
    api: u16,
    base: String,
    tag: String,
}

/// `loupe up` on free ports with its TLS proxy, once everything listens.
fn start(tag: &str) -> Ui {
    let (metrics, api, proxy) = (free_port(), free_port(), free_port());
    let tag = format!("ui-{tag}-{api}");
    let mut child = loupe_up_with_proxy(metrics, api, proxy, &tag)
        .env("LOUPE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loupe");
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[loupe] {line}");
        }
    });
    let guard = Guard(child);
    wait_for_port(api, "loupe up's cloud API");
    wait_for_port(proxy, "loupe up's TLS proxy");
    Ui { _loupe: guard, api, base: format!("https://127.0.0.1:{proxy}"), tag }
}

/// One REST call to the API's plain port: (status, JSON body or null).
fn rest(
    api: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[&str],
) -> (u16, Value) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-X", method, "-w", "\n%{http_code}", &format!("http://127.0.0.1:{api}{path}")]);
    if let Some(token) = token {
        c.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    for h in headers {
        c.args(["-H", h]);
    }
    if let Some(body) = body {
        c.args(["-H", "Content-Type: application/json", "-d", &body.to_string()]);
    }
    let out = c.output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Replaces the bootstrap admin's first password (as the login journey does in the browser) and waits until
/// `loupe up`'s own vizier is healthy; returns its name.
fn ready_admin(ui: &Ui) -> String {
    let (status, first) = rest(
        ui.api,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@default.com", "password": "admin"})),
        &[],
    );
    assert_eq!(status, 200, "{first}");
    let body = json!({"current_password": "admin", "new_password": PASSWORD});
    let (status, session) = rest(ui.api, "POST", "/api/v1/auth/password", first["token"].as_str(), Some(body), &[]);
    assert_eq!(status, 200, "{session}");
    let token = session["token"].as_str().expect("token").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, list) = rest(ui.api, "GET", "/api/v1/viziers", Some(&token), None, &[]);
        if let Some(v) = list.as_array().and_then(|l| l.first()).filter(|v| v["status"] == "healthy") {
            return v["name"].as_str().expect("name").to_owned();
        }
        assert!(Instant::now() < deadline, "loupe up's vizier is not healthy: {list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Where the screenshots go: `target/ui-screenshots/`, beside the binaries' `debug/`.
fn shots() -> PathBuf {
    let bin = loupe_bin();
    bin.parent().and_then(|d| d.parent()).expect("target dir").join("ui-screenshots")
}

/// Runs one journey of the browser runner; returns the facts it printed.
fn journey(ui: &Ui, name: &str, args: &[(&str, String)]) -> Value {
    let runner = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ui.py");
    assert!(
        std::path::Path::new("/usr/bin/chromedriver").exists(),
        "the browser tests need Debian's chromium, chromium-driver and python3-selenium (scripts/test.sh)"
    );
    let mut c = Command::new("/usr/bin/python3");
    c.arg(&runner).args([name, "--base", &ui.base, "--shots"]).arg(shots());
    for (k, v) in args {
        c.args(["--arg", &format!("{k}={v}")]);
    }
    let out = c.env("HOME", temp_dir(&format!("{}-home-{name}", ui.tag))).output().expect("run the browser runner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "journey {name} failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).expect("the runner's facts")
}

/// One raw HTTP/1.1 request to nginx on `port` (so the request line carries exactly the bytes given); waits for
/// the whole answer.
fn raw_request(port: u16, method: &str, path: &str, body: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect nginx");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: <script>window.__pwned=3</script>\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
}

/// nginx on a free port answering `ok` to everything, and three requests to it: a plain one and two carrying
/// markup (in the path and in the body). Returns the guard and the port.
fn traffic(tag: &str) -> (Guard, u16) {
    let port = free_port();
    let nginx = start_nginx(&temp_dir(&format!("ui-nginx-{tag}-{port}")), port, "", "location / { return 200 'ok'; }");
    raw_request(port, "GET", &format!("/ui-plain-{port}"), "");
    raw_request(port, "GET", "/<script>window.__pwned=1</script>", "");
    raw_request(port, "POST", "/submit", r#"<img src=x onerror="window.__pwned=2">"#);
    (nginx, port)
}

/// `POST /api/v1/query` from outside the browser: no credential, no query; a cross-site form (no credential,
/// not JSON) is refused as unauthenticated; the row cap ends the stream as truncated.
fn check_query_api(ui: &Ui) {
    let script = json!({"pxl": "import px\npx.display(px.DataFrame(table='http_events', start_time='-5m'), 'all')\n"});
    let (status, body) = rest(ui.api, "POST", "/api/v1/query", None, Some(script.clone()), &[]);
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    let form = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: text/plain", "-d", "pxl=x"])
        .arg(format!("http://127.0.0.1:{}/api/v1/query", ui.api))
        .output()
        .expect("curl");
    // The missing credential is what refuses it, before the body's type is looked at.
    assert_eq!(String::from_utf8_lossy(&form.stdout), "401");

    let (_, session) = rest(
        ui.api,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@default.com", "password": PASSWORD})),
        &[],
    );
    let token = session["token"].as_str().expect("token");
    let mut capped = script;
    capped["max_rows"] = json!(2);
    let out = Command::new("curl")
        .args(["-sS", "-N", "-H", &format!("Authorization: Bearer {token}"), "-H", "Content-Type: application/json"])
        .args(["-d", &capped.to_string(), &format!("http://127.0.0.1:{}/api/v1/query", ui.api)])
        .output()
        .expect("curl");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.first().map(|l| &l["table"]), Some(&json!("all")), "{lines:?}");
    let rows: usize = lines.iter().filter_map(|l| l["rows"].as_array()).map(Vec::len).sum();
    assert_eq!(rows, 2, "{lines:?}");
    assert_eq!(lines.last(), Some(&json!({"done": true, "rows": 2, "truncated": true})), "{lines:?}");
}

#[test]
fn ui_first_login_forces_a_password_change_and_shows_errors_in_the_page() {
    let ui = start("login");
    journey(&ui, "login", &[]);
    // What the browser did holds outside it: the new password logs in with no change pending.
    let (status, session) = rest(
        ui.api,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": "admin@default.com", "password": PASSWORD})),
        &[],
    );
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["must_change_password"], false);
}

#[test]
fn ui_live_view_shows_the_tests_traffic_with_markup_inert_and_loads_small_and_fast() {
    if !can_trace() {
        return;
    }
    // Its first requests go out as soon as `loupe up` listens, so they are among the store's first rows; the
    // journey makes more, afresh at each attempt (the host is shared, and px/http_data shows 100 rows).
    let port = free_port();
    let _nginx = start_nginx(&temp_dir(&format!("ui-nginx-live-{port}")), port, "", "location / { return 200 'ok'; }");
    let ui = start("live");
    raw_request(port, "GET", &format!("/ui-plain-{port}-0"), "");
    raw_request(port, "GET", "/<script>window.__pwned=1</script>?a=0", "");
    raw_request(port, "POST", "/submit?a=0", r#"<img src=x onerror="window.__pwned=2">0"#);
    let vizier = ready_admin(&ui);
    journey(&ui, "live", &[("vizier", vizier.clone()), ("port", port.to_string())]);
    check_query_api(&ui);
    let facts = journey(&ui, "first_load", &[("vizier", vizier)]);
    eprintln!("first load of the live view: {facts}");
    let (plain, gzip) = loupe_ui::first_load_bytes();
    eprintln!("UI assets: {plain} B, {gzip} B gzipped");
    assert!(facts["encoded_bytes"].as_u64().expect("bytes") <= gzip as u64 + 2048, "{facts}");
}

#[test]
fn ui_admin_pages_show_the_vizier_manage_keys_and_hide_them_from_another_org() {
    let ui = start("admin");
    let vizier = ready_admin(&ui);
    let keys = journey(&ui, "admin", &[("vizier", vizier.clone()), ("version", env!("CARGO_PKG_VERSION").to_owned())]);
    // The keys the browser revoked no longer authenticate.
    let api_key = keys["api-keys"].as_str().expect("api key");
    let (status, body) = rest(ui.api, "GET", "/api/v1/auth/me", None, None, &[&format!("pixie-api-key: {api_key}")]);
    assert_eq!(status, 401, "{body}");

    let data = temp_path(&format!("data-{}", ui.tag));
    let out = Command::new(loupe_bin())
        .args(["setup", "create-admin", "--org", "acme", "--metastore-url"])
        .arg(format!("sqlite://{}", data.join("loupe.db").display()))
        .env("LOUPE_ADMIN_EMAIL", "admin@acme.example")
        .env("LOUPE_ADMIN_PASSWORD", "acme first password")
        .output()
        .expect("run create-admin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    journey(
        &ui,
        "other_org",
        &[
            ("email", "admin@acme.example".to_owned()),
            ("password", "acme first password".to_owned()),
            ("vizier", vizier),
        ],
    );
}

#[test]
fn ui_editor_marks_a_compile_error_at_its_line_and_saves_the_fixed_script() {
    if !can_trace() {
        return;
    }
    let ui = start("editor");
    let vizier = ready_admin(&ui);
    let (_nginx, port) = traffic("editor");
    let facts = journey(&ui, "editor", &[("vizier", vizier), ("port", port.to_string())]);
    // Exactly the three server rows of the test's nginx.
    assert_eq!(facts["rows"], 3, "{facts}");
}
