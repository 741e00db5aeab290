//! End to end: cron scripts. `px cron create` on `loupe up`, a real `loupe vizier up --no-trace` process runs
//! the script every 10 s through its own query service, and the cloud keeps each run's result; with the cloud
//! process killed for 30 s in the middle, the vizier keeps running the script and the results of the runs made
//! meanwhile arrive once the cloud is back.
//!
//! Each test lasts about 70 s (a minute of runs); they share no port or directory, so they run side by side.
//! No root needed: tracing is off. Owns only these tests; shared helpers are in `common`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, loupe_up_over, px_output, temp_dir, wait_for_port};

const ADMIN: &str = "admin@default.com";
const NEW_PASSWORD: &str = "a long new passphrase";
const SCRIPT: &str = "import px\npx.display(px.DataFrame('http_events')[['time_', 'req_path']].head(5))\n";

/// `loupe up --no-trace` on fixed ports (so a restart over the same data dir is the same cloud).
struct Cloud {
    loupe: Option<Guard>,
    port: u16,
    api_port: u16,
    data: PathBuf,
    config: PathBuf,
}

impl Cloud {
    fn start(tag: &str) -> Self {
        let mut cloud = Cloud {
            loupe: None,
            port: free_port(),
            api_port: free_port(),
            data: temp_dir(&format!("cron-data-{tag}")),
            config: temp_dir(&format!("cron-px-{tag}")).join("px"),
        };
        cloud.run();
        let out = cloud.px_in(&["auth", "login", "--email", ADMIN], "admin\n");
        assert!(out.status.success(), "login: {}", text(&out.stderr));
        let out = cloud.px_in(&["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
        assert!(out.status.success(), "password: {}", text(&out.stderr));
        cloud
    }

    /// Starts (or restarts) the process and waits for its API.
    fn run(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log");
        let child = loupe_up_over(&self.data, self.port, self.api_port, 0)
            .arg("--no-trace")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn loupe up");
        self.loupe = Some(Guard(child));
        wait_for_port(self.api_port, "loupe up's cloud API");
    }

    /// Kills the process outright (no graceful shutdown).
    fn kill(&mut self) {
        drop(self.loupe.take());
    }

    fn log_path(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    fn px_in(&self, args: &[&str], stdin: &str) -> Output {
        px_output(&self.addr(), None, &self.config, args, stdin)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.px_in(args, "");
        assert!(out.status.success(), "px {args:?}: {}\n{}", text(&out.stderr), self.log());
        text(&out.stdout)
    }

    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        self.ok(args).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `loupe vizier up --no-trace` named `name` with a new deploy key, reconnecting within 2 s of the
    /// cloud's return; waits until the cloud lists it healthy and returns its id.
    fn vizier(&self, name: &str, data: &Path) -> (Guard, String) {
        let created: Value =
            serde_json::from_str(self.ok(&["deploy-key", "create", "-d", "cron", "-o", "json"]).trim()).expect("key");
        let key = created["key"].as_str().expect("key");
        let log = std::fs::File::create(data.with_extension("log")).expect("vizier log");
        let child = Command::new(loupe_bin())
            .args(["vizier", "up", "--no-trace", "--cloud-addr", &self.addr(), "--cluster-name", name])
            .args(["--listen", &format!("127.0.0.1:{}", free_port()), "--reconnect-max", "2s"])
            .arg("--data-dir")
            .arg(data)
            .env("LOUPE_DEPLOY_KEY", key)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn loupe vizier up");
        let guard = Guard(child);
        let id = self.until(Duration::from_secs(60), "the vizier healthy", || {
            let list = self.json_lines(&["get", "viziers", "-o", "json"]);
            let v = list.iter().find(|v| v["name"] == name && v["status"] == "healthy")?;
            v["id"].as_str().map(str::to_owned)
        });
        (guard, id)
    }

    /// `px cron results NAME -o json`.
    fn results(&self, name: &str) -> Vec<Value> {
        self.json_lines(&["cron", "results", name, "-o", "json"])
    }

    fn until<T>(&self, limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = probe() {
                return v;
            }
            assert!(Instant::now() < deadline, "not within {limit:?}: {what}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock")
}

/// Waits until one second past a multiple of 10 s, so that a 10 s script created now runs at the next six
/// multiples within the coming minute, each far (≥ 1 s) from the test's own steps. Returns that instant.
fn just_past_a_ten_second_mark() -> Duration {
    let into = now().as_millis() % 10_000;
    let wait = (11_000 - into) % 10_000;
    std::thread::sleep(Duration::from_millis(wait as u64));
    now()
}

fn sleep_until(t: Duration) {
    std::thread::sleep(t.saturating_sub(now()));
}

/// Creates the 10 s script `name` on vizier `vizier` at a mark; returns when it was created (Unix seconds)
/// and the six run times expected in the minute after.
fn create_every_ten_seconds(cloud: &Cloud, dir: &Path, name: &str, vizier: &str) -> (Duration, Vec<i64>) {
    let file = dir.join("script.pxl");
    std::fs::write(&file, SCRIPT).expect("script");
    let created = just_past_a_ten_second_mark();
    let out = cloud.ok(&["cron", "create", "--name", name, "--every", "10s", "--vizier", vizier, "-f"]
        .into_iter()
        .chain([file.to_str().expect("utf-8 path")])
        .collect::<Vec<_>>());
    assert!(out.contains(&format!("Created cron script {name} (every 10s")), "{out}");
    let first = (created.as_secs() as i64 / 10 + 1) * 10;
    (created, (0..6).map(|i| first + 10 * i).collect())
}

/// A minute after `created`, disables `name` and waits for the results of its six runs; checks each one.
fn six_results_a_minute_later(
    cloud: &Cloud,
    name: &str,
    created: Duration,
    runs: &[i64],
    vizier_id: &str,
) -> Vec<Value> {
    sleep_until(created + Duration::from_secs(60));
    assert_eq!(cloud.ok(&["cron", "disable", name]).trim(), format!("Disabled cron script {name}."));
    let results = cloud.until(Duration::from_secs(20), "six results", || {
        let r = cloud.results(name);
        (r.len() >= runs.len()).then_some(r)
    });
    let got: Vec<i64> = results.iter().map(|r| r["run_at"].as_i64().expect("run_at")).collect();
    assert_eq!(got, runs, "one result per run, 10 s apart: {results:?}");
    for r in &results {
        assert_eq!(
            (r["vizier_id"].as_str(), r["error_code"].as_i64(), r["error"].as_str()),
            (Some(vizier_id), Some(0), Some("")),
            "{r}"
        );
        assert_eq!(r["records"], 0, "no traced rows with --no-trace: {r}");
    }
    results
}

#[test]
fn a_ten_second_cron_script_runs_six_times_in_a_minute() {
    let mut cloud = Cloud::start("minute");
    let dir = temp_dir("cron-minute-vizier");
    let (_vizier, vizier_id) = cloud.vizier("cron-minute", &dir);
    let (created, runs) = create_every_ten_seconds(&cloud, &dir, "every10", "cron-minute");

    let listed = cloud.json_lines(&["cron", "list", "-o", "json"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let script = &listed[0];
    assert_eq!(
        (&script["name"], &script["frequency_s"], &script["cron"], &script["viziers"], &script["enabled"]),
        (&"every10".into(), &10.into(), &Value::Null, &serde_json::json!([vizier_id]), &true.into()),
    );
    let table = cloud.ok(&["cron", "list"]);
    assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("every10") && l.contains("every 10s")), "{table}");

    six_results_a_minute_later(&cloud, "every10", created, &runs, &vizier_id);
    let csv = cloud.ok(&["cron", "results", "every10", "-o", "csv"]);
    assert_eq!(csv.lines().next(), Some("run_at,vizier_id,duration_ms,records,bytes,error"), "{csv}");
    assert_eq!(csv.lines().count(), 7, "{csv}");

    assert_eq!(cloud.ok(&["cron", "delete", "every10"]).trim(), "Deleted cron script every10.");
    assert!(cloud.json_lines(&["cron", "list", "-o", "json"]).is_empty());
    let gone = cloud.px_in(&["cron", "results", "every10"], "");
    assert_eq!(gone.status.code(), Some(1), "{}", text(&gone.stderr));
    assert!(text(&gone.stderr).contains("no cron script named \"every10\""), "{}", text(&gone.stderr));
    cloud.kill();
}

#[test]
fn cron_runs_go_on_while_the_cloud_is_down_and_their_results_arrive_after() {
    let mut cloud = Cloud::start("outage");
    let dir = temp_dir("cron-outage-vizier");
    let (_vizier, vizier_id) = cloud.vizier("cron-outage", &dir);
    let (created, runs) = create_every_ten_seconds(&cloud, &dir, "outage10", "cron-outage");

    // The first run's result arrives; then the cloud is gone for 30 s, over three runs.
    cloud.until(Duration::from_secs(15), "the first result", || (cloud.results("outage10").len() == 1).then_some(()));
    sleep_until(created + Duration::from_secs(13));
    cloud.kill();
    let killed = now().as_secs() as i64;
    sleep_until(created + Duration::from_secs(43));
    let back = now().as_secs() as i64;
    cloud.run();
    let saved = std::fs::read_to_string(dir.join("cron-scripts.json")).expect("the vizier kept its scripts");
    assert!(saved.contains("outage10"), "{saved}");

    let results = six_results_a_minute_later(&cloud, "outage10", created, &runs, &vizier_id);
    let during: Vec<&Value> =
        results.iter().filter(|r| (killed..back).contains(&r["run_at"].as_i64().expect("run_at"))).collect();
    assert_eq!(during.len(), 3, "three runs while the cloud was down ({killed}..{back}): {results:?}");
    for r in during {
        assert!(r["received_at"].as_i64().expect("received_at") >= back, "received after the cloud returned: {r}");
    }
    cloud.kill();
}
