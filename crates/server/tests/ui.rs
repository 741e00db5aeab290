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
    let done = lines.last().expect("done");
    assert_eq!(
        (&done["done"], &done["rows"], &done["truncated"]),
        (&json!(true), &json!(2), &json!(true)),
        "{lines:?}"
    );
    assert!(done["total_rows"].as_u64().expect("total_rows") > 2, "{lines:?}");
}

/// `POST /api/v1/query` with `token`: every JSON line of the answer.
fn query_lines(api: u16, token: &str, pxl: &str) -> Vec<Value> {
    let out = Command::new("curl")
        .args(["-sS", "-N", "-H", &format!("Authorization: Bearer {token}"), "-H", "Content-Type: application/json"])
        .args(["-d", &json!({ "pxl": pxl }).to_string(), &format!("http://127.0.0.1:{api}/api/v1/query")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The rows a page keeps from `lines`: those after the last `reset`, with their table.
fn kept_rows(lines: &[Value]) -> Vec<(String, Value)> {
    let from = lines.iter().rposition(|l| l["reset"] == true).map_or(0, |i| i + 1);
    lines[from..]
        .iter()
        .filter_map(|l| Some((l["table"].as_str()?.to_owned(), l["rows"].as_array()?.clone())))
        .flat_map(|(t, rows)| rows.into_iter().map(move |r| (t.clone(), r)))
        .collect()
}

/// A session token of the bootstrap admin (after `ready_admin`).
fn admin_token(ui: &Ui) -> String {
    let body = json!({"email": "admin@default.com", "password": PASSWORD});
    let (status, session) = rest(ui.api, "POST", "/api/v1/auth/login", None, Some(body), &[]);
    assert_eq!(status, 200, "{session}");
    session["token"].as_str().expect("token").to_owned()
}

/// Waits until the store holds `want` requests to `port` (the capture is asynchronous), or the count stops
/// growing short of it; returns the count.
fn captured(ui: &Ui, token: &str, port: u16, want: u64) -> u64 {
    let pxl = format!(
        "import px\ndf = px.DataFrame(table='http_events', start_time='-5m')\ndf = df[df.local_port == {port}]\n\
         px.display(df.agg(n=('latency', px.count)), 'n')\n"
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let lines = query_lines(ui.api, token, &pxl);
        let n = kept_rows(&lines).first().and_then(|(_, r)| r[0].as_u64()).unwrap_or(0);
        if n >= want || (n > 0 && n == last && since.elapsed() > Duration::from_secs(5)) || Instant::now() > deadline {
            return n;
        }
        if n != last {
            (last, since) = (n, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
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
            ("vizier", vizier.clone()),
        ],
    );
    // Cron scripts and settings; the settings page changes the admin's password, which holds outside.
    journey(&ui, "cron_settings", &[("vizier", vizier)]);
    let body = json!({"email": "admin@default.com", "password": "the settings passphrase"});
    let (status, session) = rest(ui.api, "POST", "/api/v1/auth/login", None, Some(body), &[]);
    assert_eq!(status, 200, "{session}");
}

#[test]
fn ui_editor_marks_a_compile_error_at_its_line_and_saves_the_fixed_script() {
    if !can_trace() {
        return;
    }
    let ui = start("editor");
    let vizier = ready_admin(&ui);
    let (_nginx, port) = traffic("editor");
    // Exactly the three server rows of the test's nginx (the journey runs the script until they are all in).
    let facts = journey(&ui, "editor", &[("vizier", vizier), ("port", port.to_string()), ("rows", "3".into())]);
    assert_eq!(facts["rows"], 3, "{facts}");
}

#[test]
fn ui_widgets_draw_a_function_form_script_with_its_variables() {
    if !can_trace() {
        return;
    }
    let ui = start("widgets");
    let vizier = ready_admin(&ui);
    let port = free_port();
    let _nginx =
        start_nginx(&temp_dir(&format!("ui-nginx-widgets-{port}")), port, "", "location / { return 200 'ok'; }");
    for (path, times) in [("/main/serve/parse", 3), ("/main/serve/write", 2), ("/main/gc", 1)] {
        for _ in 0..times {
            raw_request(port, "GET", path, "");
        }
    }
    let facts = journey(&ui, "widgets", &[("vizier", vizier), ("port", port.to_string())]);
    eprintln!("widgets: {facts}");
}

#[test]
fn ui_live_view_draws_every_bundled_script_by_its_vis_spec() {
    if !can_trace() {
        return;
    }
    let ui = start("bundled");
    let vizier = ready_admin(&ui);
    let facts = journey(&ui, "bundled", &[("vizier", vizier)]);
    eprintln!("bundled scripts: {facts}");
    assert!(facts["widgets"].as_u64().expect("widgets") >= 40, "{facts}");
}

#[test]
fn ui_a_result_past_the_cap_keeps_the_same_rows_and_the_page_says_so_and_stays_usable() {
    if !can_trace() {
        return;
    }
    let ui = start("big");
    let vizier = ready_admin(&ui);
    let token = admin_token(&ui);
    let port = free_port();
    let _nginx = start_nginx(&temp_dir(&format!("ui-nginx-big-{port}")), port, "", "location / { return 200 'ok'; }");
    const REQUESTS: u64 = 90;
    for i in 0..REQUESTS {
        raw_request(port, "GET", &format!("/big-{i}"), "");
    }
    let n = captured(&ui, &token, port, REQUESTS);
    // Two tables of n² rows each (every request paired with every other): past the cap of 10,000 once
    // n ≥ 71, and each table under the vizier's own cap of 10,000 rows per table while n ≤ 100.
    assert!((71..=REQUESTS).contains(&n), "captured {n} of {REQUESTS} requests");
    let pxl = format!(
        "import px\n\
         def side():\n    df = px.DataFrame(table='http_events', start_time='-5m')\n    df = df[df.local_port == {port}]\n    \
         df.k = 1\n    return df[['time_', 'req_path', 'k']]\n\
         pairs = side().merge(side(), how='inner', left_on='k', right_on='k', suffixes=['', '_r'])\n\
         px.display(pairs, 'pairs_a')\npx.display(pairs, 'pairs_b')\n"
    );
    // The same rows, twice, whichever agent answers first; the first ones in the stable order (table name,
    // then the cells: `time_` first).
    let first = query_lines(ui.api, &token, &pxl);
    let done = first.last().expect("done");
    assert_eq!((&done["truncated"], &done["rows"]), (&json!(true), &json!(10_000)), "{done}");
    assert_eq!(done["total_rows"], json!(2 * n * n), "{done}");
    let kept = kept_rows(&first);
    assert_eq!(kept.len(), 10_000);
    let of_a = kept.iter().filter(|(t, _)| t == "pairs_a").count() as u64;
    assert_eq!(of_a, (n * n).min(10_000), "the tables in name order: all of pairs_a first");
    let times: Vec<&str> = kept.iter().filter(|(t, _)| t == "pairs_a").filter_map(|(_, r)| r[0].as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "kept in order of time_");
    assert_eq!(kept_rows(&query_lines(ui.api, &token, &pxl)), kept, "the same rows again");

    let facts = journey(&ui, "big", &[("vizier", vizier), ("pxl", pxl)]);
    eprintln!("a result past the cap in the live view: {facts}");
}
