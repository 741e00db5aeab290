//! End to end: the cloud as separate processes, as a distributed deployment runs it. `loupe setup
//! init-secrets` makes the CA, the server certificate and the token signing key. `loupe cloud auth`,
//! `loupe cloud profile` and `loupe cloud scripts` share a real PostgreSQL 15 metastore, a real `redis-server`
//! (both started by the test, as a distributed deployment runs them) and that signing key; `loupe cloud api --auth-addr … --profile-addr … --scripts-addr …` is the gateway in front,
//! reaching them through the same generated clients `loupe up` uses in process; `loupe cloud proxy` terminates
//! TLS in front of the gateway. The real `px` drives it over https, trusting the generated CA.
//!
//! The hops between the gateway and the services are TLS: each service presents `internal.crt` from
//! init-secrets, the gateway verifies it against `--internal-ca`. A gateway trusting another CA, or speaking
//! plain HTTP/2, gets nothing from the services, and a service without a certificate refuses to start.
//!
//! Needs no root. Checks that a logout done by the auth process is seen by the scripts process (through
//! Redis), and that a restarted service is picked up by the running gateway.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use loupe_testkit::{PgServer, RedisServer};

use crate::common::{Guard, free_port, loupe_bin, px_output, temp_dir, wait_for_port};

const NEW_PASSWORD: &str = "a long new passphrase";

/// `px` over https through the proxy on `port`, trusting the CA in `secrets`.
fn px(port: u16, secrets: &Path, config: &Path, args: &[&str], stdin: &str) -> Output {
    px_output(&format!("https://127.0.0.1:{port}"), Some(&secrets.join("ca.crt")), config, args, stdin)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `loupe cloud <service>` on `port`, over the shared metastore, Redis and signing key, serving TLS with the
/// internal certificate.
fn service(service: &str, port: u16, metastore: &str, redis: &str, secrets: &Path) -> Guard {
    let child = Command::new(loupe_bin())
        .args(["cloud", service, "--listen", &format!("127.0.0.1:{port}"), "--metrics-listen", "127.0.0.1:0"])
        .args(["--metastore-url", metastore, "--redis-url", redis])
        .arg("--signing-key-file")
        .arg(secrets.join("jwt-signing-key"))
        .arg("--tls-cert")
        .arg(secrets.join("internal.crt"))
        .arg("--tls-key")
        .arg(secrets.join("internal.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe cloud service");
    wait_for_port(port, service);
    Guard(child)
}

/// `GET /readyz` on the gateway's metrics listener with curl: `"<status> <body>"`.
fn readyz(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "-o", "-"])
        .arg(format!("http://127.0.0.1:{port}/readyz"))
        .output()
        .expect("curl is needed (scripts/test.sh installs it)");
    let text = text(&out.stdout);
    // curl writes the body, then a line with the status: put the status first.
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    format!("{status} {body}")
}

/// Polls until `f` holds or 10 s pass.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen within 10 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_cloud_runs_as_separate_processes_behind_the_gateway() {
    let dir = temp_dir("split");
    let redis_server = RedisServer::start();
    let redis = redis_server.url();
    let postgres = PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let metastore = postgres.create_database();
    let secrets = dir.join("secrets");
    let init = Command::new(loupe_bin()).args(["setup", "init-secrets", "--dir"]).arg(&secrets).output().expect("run");
    assert!(init.status.success(), "init-secrets: {}", text(&init.stderr));

    // Auth first: it migrates the metastore and creates the admin.
    let (auth_port, profile_port, scripts_port, api_port) = (free_port(), free_port(), free_port(), free_port());
    let metrics_port = free_port();
    let _auth = service("auth", auth_port, &metastore, &redis, &secrets);
    let _profile = service("profile", profile_port, &metastore, &redis, &secrets);
    let mut scripts = service("scripts", scripts_port, &metastore, &redis, &secrets);
    let gateway = Command::new(loupe_bin())
        .args(["cloud", "api", "--api-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        // By IP, by name (checked against the certificate's names), and bare (TLS is the default).
        .args(["--auth-addr", &format!("https://127.0.0.1:{auth_port}")])
        .args(["--profile-addr", &format!("https://localhost:{profile_port}")])
        .args(["--scripts-addr", &format!("127.0.0.1:{scripts_port}")])
        .arg("--internal-ca")
        .arg(secrets.join("ca.crt"))
        // The services believe the client addresses the gateway stamps only with a credential derived from it.
        .arg("--signing-key-file")
        .arg(secrets.join("jwt-signing-key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe cloud api");
    let _gateway = Guard(gateway);
    wait_for_port(api_port, "the API gateway");
    let (tls_port, proxy_metrics_port) = (free_port(), free_port());
    let proxy = Command::new(loupe_bin())
        .args(["cloud", "proxy", "--listen", &format!("127.0.0.1:{tls_port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{proxy_metrics_port}")])
        .args(["--upstream", &format!("http://127.0.0.1:{api_port}")])
        .arg("--cert")
        .arg(secrets.join("server.crt"))
        .arg("--key")
        .arg(secrets.join("server.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe cloud proxy");
    let _proxy = Guard(proxy);
    wait_for_port(tls_port, "the TLS proxy");

    let config = dir.join("px");
    let run = |args: &[&str], stdin: &str| px(tls_port, &secrets, &config, args, stdin);
    let ok = |args: &[&str], stdin: &str| {
        let out = run(args, stdin);
        assert!(out.status.success(), "px {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };

    // The forced password change, through the gateway to the auth process.
    ok(&["auth", "login", "--email", "admin@default.com"], "admin\n");
    let refused = run(&["script", "list"], "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused.stderr).contains("the password must be changed"), "{}", text(&refused.stderr));
    ok(&["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));

    // Each process answers its part.
    let key = ok(&["api-key", "create", "--description", "split", "-o", "json"], "");
    let key: Value = serde_json::from_str(key.trim()).expect("json");
    assert!(key["key"].as_str().is_some_and(|k| k.starts_with("px-api-")), "{key}");
    // Pixie's cloud API reaches the same processes through the gateway.
    let (key_text, key_id) = (key["key"].as_str().unwrap_or_default(), key["id"].as_str().unwrap_or_default());
    crate::pixie_api::pixie_calls_reach_each_split_process(api_port, key_text, key_id);
    let scripts_listed = ok(&["script", "list", "-o", "json"], "");
    assert!(scripts_listed.contains("px/http_data"), "{scripts_listed}");
    let status = ok(&["auth", "status", "-o", "json"], "");
    assert!(status.contains("admin@default.com"), "{status}");

    // Readiness covers every service (on the gateway's metrics listener).
    let ready = readyz(metrics_port);
    assert!(ready.starts_with("200 ") && ready.contains(r#""scripts":"postgres""#), "{ready}");

    // A service that goes away is a clear error; once back, the same gateway uses it again.
    drop(scripts);
    let ready = readyz(metrics_port);
    assert!(ready.starts_with("503 ") && ready.contains("scripts service"), "{ready}");
    let down = run(&["script", "list"], "");
    assert_eq!(down.status.code(), Some(1), "{}", text(&down.stderr));
    assert!(
        text(&down.stderr).contains("unavailable") || text(&down.stderr).contains("unreachable"),
        "{}",
        text(&down.stderr)
    );
    scripts = service("scripts", scripts_port, &metastore, &redis, &secrets);
    eventually("the gateway reconnecting to the restarted scripts service", || {
        run(&["script", "list"], "").status.success()
    });

    // A logout in the auth process is seen by the scripts process (through Redis).
    let saved = std::fs::read(config.join("auth.json")).expect("auth.json");
    ok(&["auth", "logout"], "");
    std::fs::write(config.join("auth.json"), saved).expect("restore the old token");
    let ended = run(&["script", "list"], "");
    assert_eq!(ended.status.code(), Some(1), "{}", text(&ended.stderr));
    assert!(text(&ended.stderr).contains("session has ended"), "{}", text(&ended.stderr));
    drop(scripts);

    internal_hops_refuse_the_wrong_ca_and_plain_http(&dir, &secrets, [auth_port, profile_port], &metastore);

    // The key came from init-secrets, not from the metastore.
    let kv = Command::new("psql")
        .arg(&metastore)
        .args(["-tAc", "SELECT count(*) FROM kv WHERE key LIKE '%signing%'"])
        .output()
        .expect("psql (from postgresql-15)");
    assert!(kv.status.success(), "psql: {}", text(&kv.stderr));
    assert_eq!(text(&kv.stdout).trim(), "0", "a signing key was generated into the metastore");
}

/// A gateway on its own ports in front of the running auth and profile services (`addrs`), with `extra` flags;
/// its `/readyz` answer once it listens, and its log.
fn gateway_readyz(dir: &Path, tag: &str, secrets: &Path, addrs: [String; 2], extra: &[&str]) -> (String, String) {
    let (api_port, metrics_port) = (free_port(), free_port());
    let log_path = dir.join(format!("{tag}.log"));
    let log = std::fs::File::create(&log_path).expect("log");
    let child = Command::new(loupe_bin())
        .args(["cloud", "api", "--api-listen", &format!("127.0.0.1:{api_port}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics_port}")])
        .args(["--auth-addr", &addrs[0], "--profile-addr", &addrs[1], "--scripts-addr", &addrs[1]])
        .args(extra)
        .arg("--signing-key-file")
        .arg(secrets.join("jwt-signing-key"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn loupe cloud api");
    let _gateway = Guard(child);
    wait_for_port(metrics_port, tag);
    let ready = readyz(metrics_port);
    (ready, std::fs::read_to_string(&log_path).unwrap_or_default())
}

fn internal_hops_refuse_the_wrong_ca_and_plain_http(dir: &Path, secrets: &Path, ports: [u16; 2], metastore: &str) {
    let https = ports.map(|p| format!("https://127.0.0.1:{p}"));
    // The proper CA: the services answer.
    let (ready, log) =
        gateway_readyz(dir, "right-ca", secrets, https.clone(), &["--internal-ca", &path(secrets, "ca.crt")]);
    assert!(ready.starts_with("200 "), "{ready}\n{log}");
    assert!(log.contains("internal gRPC over TLS"), "{log}");

    // Another deployment's CA: the certificate is refused, and the log says why.
    let other = dir.join("other-secrets");
    let init = Command::new(loupe_bin()).args(["setup", "init-secrets", "--dir"]).arg(&other).output().expect("run");
    assert!(init.status.success(), "init-secrets: {}", text(&init.stderr));
    let (ready, log) = gateway_readyz(dir, "wrong-ca", secrets, https, &["--internal-ca", &path(&other, "ca.crt")]);
    assert!(ready.starts_with("503 ") && ready.contains("auth service"), "{ready}");
    assert!(log.to_lowercase().contains("certificate"), "the refused certificate is not named: {log}");

    // Plain HTTP/2, explicitly asked for: the TLS listeners give it nothing.
    let http = ports.map(|p| format!("http://127.0.0.1:{p}"));
    let (ready, log) = gateway_readyz(dir, "plain", secrets, http.clone(), &["--insecure-internal"]);
    assert!(ready.starts_with("503 ") && ready.contains("auth service"), "{ready}");
    assert!(log.contains("--insecure-internal"), "the chosen mode is not logged: {log}");

    // Without either, the gateway does not start, nor does a service without its certificate.
    let out = Command::new(loupe_bin())
        .args(["cloud", "api", "--api-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--auth-addr", &http[0], "--profile-addr", &http[1], "--scripts-addr", &http[1]])
        .arg("--signing-key-file")
        .arg(secrets.join("jwt-signing-key"))
        .output()
        .expect("run loupe cloud api");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--internal-ca"), "{}", text(&out.stderr));
    let out = Command::new(loupe_bin())
        .args(["cloud", "profile", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(["--metastore-url", metastore])
        .arg("--signing-key-file")
        .arg(secrets.join("jwt-signing-key"))
        .output()
        .expect("run loupe cloud profile");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--tls-cert"), "{}", text(&out.stderr));
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}
