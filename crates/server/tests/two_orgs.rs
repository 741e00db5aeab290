//! End to end, as a distributed self-hosted cloud runs it: two orgs in one cloud, each with its own vizier.
//!
//! The cloud is split into processes (`loupe cloud auth|profile|scripts`, the `api` gateway and `vzconn`) over a
//! real PostgreSQL 15 metastore, a real Redis and a real `nats-server` (all started by the test); the second org
//! and its admin come from `loupe setup create-admin --org`. Two real `loupe vizier up` processes register with
//! the deploy keys of the two orgs. Each org sees only its own vizier; a script sent through the cloud with
//! `px run -c` returns the same rows as on the vizier's own port, cut at the vizier's row cap; a user of one org cannot reach the other's
//! vizier (the same "not found" as a vizier that does not exist); restarting `nats-server`, and then the API and
//! VZConn processes, loses no vizier and the link comes back by itself; a killed vizier turns DISCONNECTED after
//! the shortened timeout, and a script for it names it. Pixie's Python client `pxapi` works through the split
//! cloud with an API key of each org, and sees only that org's vizier.
//!
//! The first vizier traces (with root; its rows are filtered by the test's own server port, since other tests
//! trace on this host too), the second does not. Owns only these tests; shared helpers are in `common`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use loupe_testkit::{NatsServer, PgServer, RedisServer};
use serde_json::Value;

use crate::common::{Guard, free_port, loupe_bin, px_output, temp_dir, wait_for_port};

const NEW_PASSWORD: &str = "a long new passphrase";
/// The viziers' output row cap (`--max-output-rows`), below the test traffic's 6 rows.
const ROW_CAP: usize = 4;
/// The disconnect timeout VZConn runs with: over two 5 s heartbeat periods.
const DISCONNECT_AFTER: &str = "12s";

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `f` until it gives `Some`, at most `limit`; `what` and the last failure explain a timeout.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(Instant::now() < deadline, "not within {limit:?}: {what}; last: {last}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The cloud's processes and what they share.
struct Cloud {
    dir: PathBuf,
    metastore: String,
    redis: String,
    nats: NatsServer,
    api_port: u16,
    vz_port: u16,
    api: Option<Guard>,
    vzconn: Option<Guard>,
    services: Vec<Guard>,
}

impl Cloud {
    fn secrets(&self) -> PathBuf {
        self.dir.join("secrets")
    }

    /// `loupe cloud <service>` over the shared metastore, Redis and signing key.
    fn service(&self, service: &str, port: u16) -> Guard {
        let child = Command::new(loupe_bin())
            .args(["cloud", service, "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "127.0.0.1:0"])
            .args(["--metastore-url", &self.metastore, "--redis-url", &self.redis])
            .arg("--signing-key-file")
            .arg(self.secrets().join("jwt-signing-key"))
            .arg("--tls-cert")
            .arg(self.secrets().join("internal.crt"))
            .arg("--tls-key")
            .arg(self.secrets().join("internal.key"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe cloud service");
        wait_for_port(port, service);
        Guard(child)
    }

    /// `loupe cloud api` on its port, in front of the three services, with queries over NATS.
    fn start_api(&mut self, services: [u16; 3]) {
        let [auth, profile, scripts] = services;
        let log = std::fs::File::create(self.dir.join("api.log")).expect("log");
        let child = Command::new(loupe_bin())
            .args(["cloud", "api", "--api-listen", &format!("127.0.0.1:{}", self.api_port)])
            .args(["--metrics-listen", "127.0.0.1:0", "--nats-url", &self.nats.url()])
            .args(["--auth-addr", &format!("https://127.0.0.1:{auth}")])
            .args(["--profile-addr", &format!("https://127.0.0.1:{profile}")])
            .args(["--scripts-addr", &format!("https://127.0.0.1:{scripts}")])
            .arg("--internal-ca")
            .arg(self.secrets().join("ca.crt"))
            .args(["--vizier-query-timeout", "30s"])
            .arg("--signing-key-file")
            .arg(self.secrets().join("jwt-signing-key"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn loupe cloud api");
        self.api = Some(Guard(child));
        wait_for_port(self.api_port, "loupe cloud api");
    }

    /// `loupe cloud vzconn` on its port, over the metastore and NATS, its credential key in its data dir.
    fn start_vzconn(&mut self) {
        let log = std::fs::File::create(self.dir.join("vzconn.log")).expect("log");
        let child = Command::new(loupe_bin())
            .args(["cloud", "vzconn", "--metastore-url", &self.metastore, "--nats-url", &self.nats.url()])
            .arg("--insecure-plaintext")
            .args(["--listen", &format!("127.0.0.1:{}", self.vz_port), "--metrics-listen", "127.0.0.1:0"])
            .args(["--disconnect-timeout", DISCONNECT_AFTER])
            .arg("--data-dir")
            .arg(self.dir.join("vzconn"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn loupe cloud vzconn");
        self.vzconn = Some(Guard(child));
        wait_for_port(self.vz_port, "loupe cloud vzconn");
    }

    fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("--- api.log\n{}\n--- vzconn.log\n{}", read("api.log"), read("vzconn.log"))
    }
}

/// A user of one org, with a `px` config of its own.
struct User {
    addr: String,
    config: PathBuf,
}

impl User {
    fn px(&self, args: &[&str]) -> Output {
        px_output(&self.addr, None, &self.config, args, "")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.px(args);
        assert!(out.status.success(), "px {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Logs in with the initial password and replaces it.
    fn login(addr: &str, config: PathBuf, email: &str) -> Self {
        let user = User { addr: addr.to_owned(), config };
        let out = px_output(addr, None, &user.config, &["auth", "login", "--email", email], "admin\n");
        assert!(out.status.success(), "login {email}: {}", text(&out.stderr));
        let out = px_output(addr, None, &user.config, &["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
        assert!(out.status.success(), "password {email}: {}", text(&out.stderr));
        user
    }

    /// `px get viziers -o json`: (name, id, status) per vizier.
    fn viziers(&self) -> Vec<(String, String, String)> {
        self.ok(&["get", "viziers", "-o", "json"])
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
                let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                (field("name"), field("id"), field("status"))
            })
            .collect()
    }

    /// Polls until this org's viziers are exactly `expected` (name, status), in name order; returns their ids.
    fn viziers_become(&self, limit: Duration, expected: &[(&str, &str)]) -> Vec<String> {
        eventually(limit, &format!("viziers {expected:?}"), || {
            let list = self.viziers();
            let got: Vec<(&str, &str)> = list.iter().map(|(n, _, s)| (n.as_str(), s.as_str())).collect();
            if got == expected {
                Ok(list.iter().map(|(_, id, _)| id.clone()).collect())
            } else {
                Err(format!("{got:?}"))
            }
        })
    }

    /// A new deploy key of this user's org.
    fn deploy_key(&self) -> String {
        let created: Value =
            serde_json::from_str(self.ok(&["deploy-key", "create", "-d", "two orgs", "-o", "json"]).trim())
                .expect("json");
        created["key"].as_str().expect("key").to_owned()
    }
}

/// `loupe vizier up` registering as `name` with `key`, its query port `port`, its state in `data`.
/// Every output of its scripts is cut at `ROW_CAP` rows.
fn vizier_up(vz_port: u16, key: &str, name: &str, port: u16, data: &Path, trace: bool) -> Guard {
    let mut c = Command::new(loupe_bin());
    c.args(["vizier", "up", "--cloud-addr", &format!("127.0.0.1:{vz_port}"), "--cluster-name", name])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--max-output-rows", &ROW_CAP.to_string()])
        .arg("--data-dir")
        .arg(data)
        .env("LOUPE_DEPLOY_KEY", key)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(data.with_extension("log")).expect("log"));
    if !trace {
        c.arg("--no-trace");
    }
    let guard = Guard(c.spawn().expect("spawn loupe vizier up"));
    wait_for_port(port, "loupe vizier up");
    guard
}

/// The rows a script prints as JSON lines, when `px` succeeds.
fn rows(out: &Output) -> Result<Vec<String>, String> {
    if !out.status.success() {
        return Err(text(&out.stderr));
    }
    Ok(text(&out.stdout).lines().map(str::to_owned).collect())
}

#[test]
fn two_orgs_share_a_split_cloud_and_each_reaches_only_its_own_vizier() {
    let trace = crate::e2e::can_trace();
    let dir = temp_dir("two-orgs");
    let redis_server = RedisServer::start();
    let postgres = PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let init = Command::new(loupe_bin()).args(["setup", "init-secrets", "--dir"]).arg(dir.join("secrets")).output();
    let init = init.expect("run init-secrets");
    assert!(init.status.success(), "init-secrets: {}", text(&init.stderr));
    let mut cloud = Cloud {
        metastore: postgres.create_database(),
        redis: redis_server.url(),
        nats: NatsServer::start(),
        api_port: free_port(),
        vz_port: free_port(),
        api: None,
        vzconn: None,
        services: Vec::new(),
        dir,
    };
    // Auth first: it migrates the metastore and creates the first org's admin.
    let services = [free_port(), free_port(), free_port()];
    for (name, port) in ["auth", "profile", "scripts"].into_iter().zip(services) {
        let guard = cloud.service(name, port);
        cloud.services.push(guard);
    }
    // The second org, as an operator adds one; running it again changes nothing.
    let create_org = || {
        Command::new(loupe_bin())
            .args(["setup", "create-admin", "--org", "acme", "--metastore-url", &cloud.metastore])
            .env("LOUPE_ADMIN_EMAIL", "admin@acme.example")
            .env_remove("LOUPE_ADMIN_PASSWORD")
            .output()
            .expect("run create-admin")
    };
    let out = create_org();
    assert!(out.status.success(), "create-admin --org: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "created org acme with admin admin@acme.example (the password must be changed at first login)\n"
    );
    assert_eq!(text(&create_org().stdout), "org acme already exists; no admin created\n");
    // Another org's admin must be named: the default email is the first org's.
    let unnamed = Command::new(loupe_bin())
        .args(["setup", "create-admin", "--org", "other", "--metastore-url", &cloud.metastore])
        .env_remove("LOUPE_ADMIN_EMAIL")
        .output()
        .expect("run create-admin");
    assert_eq!(unnamed.status.code(), Some(2));
    let stderr = text(&unnamed.stderr);
    assert_eq!(stderr.lines().last(), Some("error: --org needs the new org's admin in LOUPE_ADMIN_EMAIL"), "{stderr}");
    cloud.start_api(services);
    cloud.start_vzconn();

    let addr = format!("127.0.0.1:{}", cloud.api_port);
    let default = User::login(&addr, cloud.dir.join("px-default"), "admin@default.com");
    let acme = User::login(&addr, cloud.dir.join("px-acme"), "admin@acme.example");
    let (default_key, acme_key) = (default.deploy_key(), acme.deploy_key());

    // One vizier per org, each registered with its org's key.
    let (alpha_port, beta_port) = (free_port(), free_port());
    let alpha_data = temp_dir("two-orgs-alpha");
    let _alpha = vizier_up(cloud.vz_port, &default_key, "alpha", alpha_port, &alpha_data, trace);
    let mut beta = vizier_up(cloud.vz_port, &acme_key, "beta", beta_port, &temp_dir("two-orgs-beta"), false);
    let limit = Duration::from_secs(60);
    let alpha_id = default.viziers_become(limit, &[("alpha", "healthy")]).remove(0);
    let beta_id = acme.viziers_become(limit, &[("beta", "healthy")]).remove(0);

    // Real traffic on a port of this test, and a script that reads only that port's rows.
    let site = temp_dir("two-orgs-site");
    std::fs::write(site.join("hello.txt"), "hello\n").expect("file");
    let web_port = free_port();
    let _web = Guard(
        Command::new("/usr/bin/python3")
            .args(["-m", "http.server", &web_port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&site)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 http.server"),
    );
    wait_for_port(web_port, "python http.server");
    for _ in 0..3 {
        let url = format!("http://127.0.0.1:{web_port}/hello.txt");
        let out = Command::new("curl").args(["-sS", "-o", "/dev/null", &url]).output().expect("curl");
        assert!(out.status.success(), "curl: {}", text(&out.stderr));
    }
    let port_rows = format!(
        "import px\ndf = px.DataFrame(table='http_events', start_time='-10m')\n\
         df = df[(df.local_port == {web_port}) | (df.remote_port == {web_port})]\n"
    );
    let counts = site.join("counts.pxl");
    let counts_text = "df = df.groupby(['trace_role']).agg(n=('latency', px.count))\npx.display(df, 'counts')\n";
    std::fs::write(&counts, format!("{port_rows}{counts_text}")).expect("script");
    let script = site.join("port.pxl");
    let columns =
        "px.display(df[['time_', 'trace_role', 'req_method', 'req_path', 'resp_status', 'latency']], 'port')\n";
    std::fs::write(&script, format!("{port_rows}{columns}")).expect("script");
    let (counts, script) = (counts.to_str().expect("utf8"), script.to_str().expect("utf8"));
    // Three requests, each seen by the client (curl) and the server (python): 3 rows per role once the agent has
    // them all, and the 6 rows are cut at the cap.
    let roles = if trace { 2 } else { 0 };
    eventually(Duration::from_secs(30), "the traffic's rows through the cloud", || {
        let got = rows(&default.px(&["run", "-c", "alpha", "-f", counts, "-o", "json"]))?;
        let n: Vec<Value> = got.iter().map(|r| serde_json::from_str::<Value>(r).expect("json")["n"].clone()).collect();
        if n.len() == roles && n.iter().all(|n| n == 3) { Ok(()) } else { Err(format!("{got:?}")) }
    });
    let want = if trace { ROW_CAP } else { 0 };
    // Which 4 of the 6 rows the cap keeps depends on which of the engine's partitions answers first, so the capped
    // script is checked by count and content, and the same-rows comparisons use the (uncapped) counts, sorted.
    let capped = |out: &Output| -> Vec<String> {
        let got = rows(out).expect("rows");
        for row in &got {
            let v: Value = serde_json::from_str(row).expect("json");
            assert_eq!((&v["req_path"], &v["resp_status"]), (&Value::from("/hello.txt"), &Value::from(200)), "{row}");
        }
        got
    };
    let sorted = |out: &Output| {
        rows(out).map(|mut r| {
            r.sort();
            r
        })
    };
    let through_cloud = capped(&default.px(&["run", "-c", "alpha", "-f", script, "-o", "json"]));
    assert_eq!(through_cloud.len(), want, "{through_cloud:?}");
    let counted = sorted(&default.px(&["run", "-c", "alpha", "-f", counts, "-o", "json"]));
    assert_eq!(counted.as_ref().map(Vec::len), Ok(roles), "{counted:?}");
    let token = std::fs::read_to_string(alpha_data.join("secrets").join("vizier-query-token")).expect("token");
    let direct = |script: &str| {
        Command::new(crate::common::px_bin())
            .args(["run", "-f", script, "-o", "json"])
            .env("PX_CLOUD_ADDR", format!("127.0.0.1:{alpha_port}"))
            .env("PX_CONFIG_DIR", temp_dir("two-orgs-px-direct"))
            .env("PX_VIZIER_TOKEN", token.trim())
            .output()
            .expect("px direct")
    };
    assert_eq!(sorted(&direct(counts)), counted, "the vizier's own port and the cloud disagree");
    assert_eq!(capped(&direct(script)).len(), want, "the vizier's own port cuts at the same cap");
    // The org's only vizier needs no -c; by id works too.
    assert_eq!(sorted(&default.px(&["run", "-f", counts, "-o", "json"])), counted);
    assert_eq!(sorted(&default.px(&["run", "-c", &alpha_id, "-f", counts, "-o", "json"])), counted);
    assert_eq!(capped(&default.px(&["run", "-c", &alpha_id, "-f", script, "-o", "json"])).len(), want);

    // Each org sees only its own, and cannot reach the other's by name or id: the same words as for a vizier that
    // does not exist.
    assert_eq!(default.viziers().len(), 1);
    assert_eq!(acme.viziers().len(), 1);
    for (user, foreign) in
        [(&default, "beta"), (&default, beta_id.as_str()), (&acme, "alpha"), (&acme, alpha_id.as_str())]
    {
        let out = user.px(&["run", "-c", foreign, "-f", script]);
        assert_eq!(out.status.code(), Some(2), "{foreign}");
        assert_eq!(
            text(&out.stderr),
            format!("error: no vizier {foreign:?} in your org (`px get viziers` lists them)\n")
        );
    }
    assert_eq!(rows(&acme.px(&["run", "-f", script, "-o", "json"])), Ok(Vec::new()), "beta does not trace");

    // Pixie's own client (pxapi from PyPI) through the split cloud, with an API key of each org: the same rows as
    // `px run`, a PxL mistake at its line, every Pixie call decoded by pxapi's classes, and nothing of the other
    // org's.
    if trace {
        let api_key = |user: &User| {
            let created: Value =
                serde_json::from_str(user.ok(&["api-key", "create", "-d", "pxapi", "-o", "json"]).trim())
                    .expect("json");
            created["key"].as_str().expect("key").to_owned()
        };
        let (default_api, acme_api) = (api_key(&default), api_key(&acme));
        let expected = site.join("counts.json");
        let counted = default.ok(&["run", "-c", "alpha", "-f", counts, "-o", "json"]);
        std::fs::write(&expected, &counted).expect("expected rows");
        let bad = site.join("bad.pxl");
        std::fs::write(
            &bad,
            "import px\ndf = px.DataFrame('http_events')\n\ndf = df[df.latencyy > 0]\npx.display(df)\n",
        )
        .expect("script");
        let out = crate::pixie_api::pxapi_check(|c| {
            c.args(["--addr", &addr, "--key", &default_api, "--other-key", &acme_api, "--cluster", "alpha"])
                .args(["--script", counts, "--table", "counts"])
                .arg("--expect")
                .arg(&expected)
                .arg("--bad-script")
                .arg(&bad)
                .args(["--bad-line", "4", "--email", "admin@default.com", "--org", "default"]);
        });
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "pxapi against the split cloud:\n{stdout}\n{}\n{}",
            text(&out.stderr),
            cloud.logs()
        );
        let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json summary");
        assert_eq!((&seen["rows"], &seen["other_org_clusters"]), (&Value::from(2), &Value::from(1)), "{seen}");
        assert_eq!(seen["compatible_calls"].as_array().map(Vec::len), Some(18), "{seen}");
    }

    // NATS restarts: no record is lost, and the links come back by themselves.
    cloud.nats.stop();
    std::thread::sleep(Duration::from_secs(2));
    cloud.nats.restart();
    let again = |what: &str| {
        eventually(Duration::from_secs(60), what, || {
            let got = rows(&default.px(&["run", "-c", "alpha", "-f", script, "-o", "json"]))?;
            if got.len() == want { Ok(()) } else { Err(format!("{} rows", got.len())) }
        });
    };
    again("a query after the NATS restart");
    assert_eq!(default.viziers_become(limit, &[("alpha", "healthy")]), std::slice::from_ref(&alpha_id));
    assert_eq!(acme.viziers_become(limit, &[("beta", "healthy")]), std::slice::from_ref(&beta_id));

    // The API and VZConn restart: the same.
    cloud.api = None;
    cloud.vzconn = None;
    cloud.start_vzconn();
    cloud.start_api(services);
    again("a query after the API and VZConn restarted");
    assert_eq!(default.viziers_become(limit, &[("alpha", "healthy")]), std::slice::from_ref(&alpha_id));
    assert_eq!(acme.viziers_become(limit, &[("beta", "healthy")]), std::slice::from_ref(&beta_id));

    // A killed vizier turns DISCONNECTED after the timeout, and a script for it names it.
    beta.0.kill().expect("kill beta");
    beta.0.wait().expect("reap beta");
    let killed = Instant::now();
    assert_eq!(
        acme.viziers_become(Duration::from_secs(40), &[("beta", "disconnected")]),
        std::slice::from_ref(&beta_id)
    );
    assert!(killed.elapsed() >= Duration::from_secs(7), "disconnected too soon: {:?}", killed.elapsed());
    let out = acme.px(&["run", "-f", script]);
    assert_eq!(out.status.code(), Some(2), "{}", cloud.logs());
    let prefix =
        format!("error: vizier beta ({beta_id}) is not connected to the cloud (status disconnected, last heartbeat ");
    assert!(text(&out.stderr).starts_with(&prefix), "{}", text(&out.stderr));
    assert_eq!(default.viziers_become(limit, &[("alpha", "healthy")]), [alpha_id]);
}
