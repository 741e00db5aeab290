//! End to end: history across a restart. `loupe up --no-trace` is given rows (`--load`), writes them to its
//! history directory, is stopped (SIGTERM: the writer flushes once more) and started again over the same data
//! directory: a PxL query then returns the rows from before the restart with exact counts, and together with new
//! rows loaded after it, each row once (memory and history never both answer for a row).
//!
//! Needs no root: tracing is off. Owns only these tests; shared helpers are in `common`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use loupe_schema::http::{HttpEventRow, HttpEventsBuilder};
use serde_json::Value;

use crate::common::{Guard, free_port, loupe_up_over, temp_dir, wait_for_port};
use crate::e2e::{px, px_with_stdin, write_script};

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_nanos() as i64
}

/// `n` rows on `path`, spread evenly over `[from_ns, from_ns + span_ns)`.
fn rows(n: usize, path: &str, from_ns: i64, span_ns: i64) -> Vec<HttpEventRow> {
    (0..n)
        .map(|i| HttpEventRow {
            time_ns: from_ns + span_ns / n as i64 * i as i64,
            req_path: path.into(),
            req_method: "GET".into(),
            resp_status: 200,
            latency_ns: 1000 + i as i64,
            ..HttpEventRow::default()
        })
        .collect()
}

fn write_ipc(file: &Path, rows: &[HttpEventRow]) {
    let mut b = HttpEventsBuilder::new();
    for r in rows {
        b.append(r);
    }
    let batch = b.finish().expect("batch");
    let f = std::fs::File::create(file).expect("create");
    let mut w = arrow::ipc::writer::StreamWriter::try_new(f, &batch.schema()).expect("writer");
    w.write(&batch).expect("write");
    w.finish().expect("finish");
}

fn start(data: &Path, port: u16, api_port: u16, load: Option<&Path>) -> Guard {
    let mut c = loupe_up_over(data, port, api_port, 0);
    c.args(["--no-trace", "--history-flush-interval", "1s"]).stdout(Stdio::null()).stderr(Stdio::null());
    if let Some(file) = load {
        c.arg("--load").arg(format!("http_events={}", file.display()));
    }
    let guard = Guard(c.spawn().expect("spawn loupe up"));
    wait_for_port(api_port, "loupe up's cloud API");
    guard
}

/// Stops `loupe up` with SIGTERM (a clean shutdown) and waits for it.
fn stop(mut guard: Guard) {
    // SAFETY: kill(2) on the child's own pid; no memory is involved.
    unsafe {
        libc::kill(guard.0.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while guard.0.try_wait().expect("poll").is_none() {
        assert!(Instant::now() < deadline, "loupe up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `script` until it gives `want` (path → count) or 20 s pass (the vizier connects after start).
fn poll_counts(api_port: u16, script: &Path, want: &[(&str, i64)]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut want: Vec<(String, i64)> = want.iter().map(|(p, n)| ((*p).to_string(), *n)).collect();
    want.sort();
    loop {
        let out = px(api_port, &["run", "-f", script.to_str().expect("utf8"), "-o", "json"]);
        let mut got: Vec<(String, i64)> = if out.status.success() {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json row"))
                .map(|r| (r["req_path"].as_str().unwrap_or_default().to_string(), r["n"].as_i64().unwrap_or(-1)))
                .collect()
        } else {
            Vec::new()
        };
        got.sort();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "px reported {got:?}, want {want:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_query_after_a_restart_returns_the_rows_from_before_it_exactly_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("history-restart");
    let data = dir.join("data");
    let now = now_ns();
    let hour = 3_600_000_000_000;
    // Before: 2,500 rows over the two hours ending an hour ago (so at least two hour partitions).
    let before = dir.join("before.arrow");
    write_ipc(&before, &rows(2_500, "/before", now - 3 * hour, 2 * hour));
    let (port, api_port) = (free_port(), free_port());
    let script = write_script(
        &dir,
        "counts.pxl",
        "import px\n\
         df = px.DataFrame(table='http_events', start_time='-1d')\n\
         df = df.groupby('req_path').agg(n=('latency', px.count))\n\
         px.display(df, 'counts')\n",
    );

    let first = start(&data, port, api_port, Some(&before));
    crate::e2e::login(api_port);
    poll_counts(api_port, &script, &[("/before", 2_500)]);
    // Written within a flush interval or two, as Hive-style partitions, private.
    let history = data.join("history");
    let deadline = Instant::now() + Duration::from_secs(20);
    while segments(&history).is_empty() {
        assert!(Instant::now() < deadline, "no segment under {}", history.display());
        std::thread::sleep(Duration::from_millis(200));
    }
    stop(first);
    let files = segments(&history);
    assert!(files.len() >= 2, "two hours at least: {files:?}");
    for f in &files {
        let rel = f.strip_prefix(&history).expect("under history").display().to_string();
        assert!(rel.starts_with("http_events/org=default/vizier="), "{rel}");
        assert!(rel.split('/').nth(3).is_some_and(|h| h.starts_with("hour=")), "{rel}");
        assert_eq!(std::fs::metadata(f).expect("meta").permissions().mode() & 0o777, 0o600, "{rel}");
        let parent = f.parent().expect("parent");
        assert_eq!(std::fs::metadata(parent).expect("meta").permissions().mode() & 0o777, 0o700, "{rel}");
    }
    assert_eq!(std::fs::metadata(&history).expect("meta").permissions().mode() & 0o777, 0o700);

    // After the restart memory is empty: the rows come from history, each once.
    let after = dir.join("after.arrow");
    write_ipc(&after, &rows(700, "/after", now - hour / 2, hour / 4));
    let second = start(&data, port, api_port, Some(&after));
    let relogin =
        px_with_stdin(api_port, &["auth", "login", "--email", "admin@default.com"], "a long new passphrase\n");
    assert!(relogin.status.success(), "login: {}", String::from_utf8_lossy(&relogin.stderr));
    // Memory holds the new rows (and history will too, after a flush): still each row once.
    poll_counts(api_port, &script, &[("/before", 2_500), ("/after", 700)]);
    std::thread::sleep(Duration::from_secs(3));
    poll_counts(api_port, &script, &[("/before", 2_500), ("/after", 700)]);
    // A window that excludes the older rows prunes them (their hours are not read).
    let recent = write_script(
        &dir,
        "recent.pxl",
        "import px\n\
         df = px.DataFrame(table='http_events', start_time='-45m')\n\
         df = df.groupby('req_path').agg(n=('latency', px.count))\n\
         px.display(df, 'counts')\n",
    );
    poll_counts(api_port, &recent, &[("/after", 700)]);
    // `px sql` sees the same rows.
    let out = px(api_port, &["sql", "SELECT count(*) AS n FROM http_events WHERE req_path = '/before'", "-o", "json"]);
    assert!(out.status.success(), "px sql: {}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one json row");
    assert_eq!(row["n"].as_i64(), Some(2_500), "{row}");
    stop(second);
}

/// The metrics listener's `/metrics` text.
fn metrics(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn px_retention_reaches_the_vizier_whose_sweep_deletes_what_is_past_it() {
    let dir = temp_dir("history-retention");
    let data = dir.join("data");
    let hour = 3_600_000_000_000;
    // 1,200 rows from five to four hours ago: past a two-hour retention, within the default week.
    let old = dir.join("old.arrow");
    write_ipc(&old, &rows(1_200, "/old", now_ns() - 5 * hour, hour));
    let (port, api_port) = (free_port(), free_port());
    let mut c = loupe_up_over(&data, port, api_port, 0);
    c.args(["--no-trace", "--history-flush-interval", "1s", "--history-sweep-interval", "1s"])
        .arg("--load")
        .arg(format!("http_events={}", old.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _up = Guard(c.spawn().expect("spawn loupe up"));
    wait_for_port(api_port, "loupe up's cloud API");
    crate::e2e::login(api_port);
    let written = data.join("history").join("http_events");
    poll("no http_events segment written", || !segments(&written).is_empty());
    let gauge =
        |table: &str, value: u64| format!("loupe_history_retention_max_age_seconds{{table=\"{table}\"}} {value}\n");
    let week = 7 * 86_400;
    assert!(metrics(port).contains(&gauge("http_events", week)), "{}", metrics(port));
    // The week-old default keeps them through sweeps.
    std::thread::sleep(Duration::from_secs(2));
    assert!(!segments(&written).is_empty());

    // Set through the cloud: answered with the org's policy, then taken by the vizier, whose next sweep
    // deletes the old hours of that table only.
    let out = px(api_port, &["retention", "set", "http_events", "--max-age", "2h", "--max-mb", "64", "-o", "json"]);
    assert!(out.status.success(), "px retention set: {}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one json row");
    assert_eq!(
        (row["table"].as_str(), row["max_age_s"].as_u64(), row["max_mb"].as_u64()),
        (Some("http_events"), Some(7200), Some(64))
    );
    poll("the vizier did not take the retention", || metrics(port).contains(&gauge("http_events", 7200)));
    assert!(metrics(port).contains(&gauge("dns_events", week)), "other tables keep the default");
    assert!(metrics(port).contains("loupe_history_retention_max_bytes{table=\"http_events\"} 67108864\n"));
    poll("the sweep did not delete the old hours", || segments(&written).is_empty());
    let out = px(api_port, &["retention", "get", "-o", "csv"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "table,max_age,max_mb\nhttp_events,2h,64\n");

    // Refused with the cloud's reason; nothing changes.
    let out = px(api_port, &["retention", "set", "no_such_table", "--max-age", "2h"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown table"), "{}", String::from_utf8_lossy(&out.stderr));

    // Deleted: the vizier is back on its flags.
    let out = px(api_port, &["retention", "delete", "http_events", "-o", "json"]);
    assert!(out.status.success(), "px retention delete: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    poll("the vizier did not go back to its default", || metrics(port).contains(&gauge("http_events", week)));
}

/// `px ARGS -o json` as one JSON value per line (none when px fails).
fn json_lines(api_port: u16, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let out = px(api_port, &args);
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// `px cron results NAME` once the list has stopped changing for 4 s (no run in flight, every result in).
fn settled_results(api_port: u16, name: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = json_lines(api_port, &["cron", "results", name]);
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = json_lines(api_port, &["cron", "results", name]);
        if now != last {
            (last, since) = (now, Instant::now());
        } else if !last.is_empty() && since.elapsed() >= Duration::from_secs(4) {
            return last;
        }
        assert!(Instant::now() < deadline, "cron results did not settle: {last:?}");
    }
}

#[test]
fn a_cron_scripts_results_are_kept_in_history_and_read_back_after_a_restart() {
    let dir = temp_dir("history-cron");
    let data = dir.join("data");
    let now = now_ns();
    let loaded = dir.join("loaded.arrow");
    let mut loaded_rows = rows(300, "/a", now - 1_800_000_000_000, 600_000_000_000);
    loaded_rows.extend(rows(200, "/b", now - 1_800_000_000_000, 600_000_000_000));
    write_ipc(&loaded, &loaded_rows);
    let (port, api_port) = (free_port(), free_port());
    let first = start(&data, port, api_port, Some(&loaded));
    crate::e2e::login(api_port);

    // Per-path counts every 2 s: two rows a run, without a time_ (each run's rows get its time).
    let script = write_script(
        &dir,
        "path-counts.pxl",
        "import px\n\
         df = px.DataFrame(table='http_events', start_time='-1d')\n\
         px.display(df.groupby('req_path').agg(n=('latency', px.count)))\n",
    );
    let out = px(
        api_port,
        &["cron", "create", "--name", "path-counts", "--every", "2s", "-f", script.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "cron create: {}", String::from_utf8_lossy(&out.stderr));
    poll("three cron runs", || json_lines(api_port, &["cron", "results", "path-counts"]).len() >= 3);
    let out = px(api_port, &["cron", "disable", "path-counts"]);
    assert!(out.status.success(), "cron disable: {}", String::from_utf8_lossy(&out.stderr));
    settled_results(api_port, "path-counts");
    stop(first);
    let table = data.join("history").join("cron_path_counts");
    let files = segments(&table);
    assert!(!files.is_empty(), "no segment under {}", table.display());
    for f in &files {
        let rel = f.strip_prefix(&table).expect("under the table").display().to_string();
        assert!(rel.starts_with("org=default/vizier="), "{rel}");
    }

    // After the restart (nothing loaded, nothing run) the runs' rows come from history: each run's two rows.
    let second = start(&data, port, api_port, None);
    let relogin =
        px_with_stdin(api_port, &["auth", "login", "--email", "admin@default.com"], "a long new passphrase\n");
    assert!(relogin.status.success(), "login: {}", String::from_utf8_lossy(&relogin.stderr));
    let results = settled_results(api_port, "path-counts");
    for r in &results {
        assert_eq!((r["error_code"].as_i64(), r["records"].as_i64()), (Some(0), Some(2)), "{r}");
    }
    let runs = results.len() as i64;
    let read = write_script(
        &dir,
        "read.pxl",
        "import px\n\
         df = px.DataFrame(table='cron_path_counts', start_time='-1d')\n\
         df = df.groupby('req_path').agg(runs=('n', px.count), total=('n', px.sum))\n\
         px.display(df, 'kept')\n",
    );
    let mut got: Vec<(String, i64, i64)> = Vec::new();
    poll("the runs' rows from history", || {
        let rows = json_lines(api_port, &["run", "-f", read.to_str().expect("utf8")]);
        got = rows
            .iter()
            .map(|r| {
                let path = r["req_path"].as_str().unwrap_or_default().to_string();
                (path, r["runs"].as_i64().unwrap_or(-1), r["total"].as_i64().unwrap_or(-1))
            })
            .collect();
        got.sort();
        got == [("/a".to_string(), runs, 300 * runs), ("/b".to_string(), runs, 200 * runs)]
    });
    // `px sql` sees the table too.
    let out = px(api_port, &["sql", "SELECT count(*) AS n FROM cron_path_counts", "-o", "json"]);
    assert!(out.status.success(), "px sql: {}", String::from_utf8_lossy(&out.stderr));
    let row: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one json row");
    assert_eq!(row["n"].as_i64(), Some(2 * runs), "{row}");
    stop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
