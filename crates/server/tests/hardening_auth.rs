//! End to end, the authentication attacks of the security review against a real `loupe up --no-trace`, each
//! shown to fail: the bootstrap admin recreated after a restart, the signing key read from the database or by
//! another local user, parallel logins outrunning the throttle, a local client choosing its throttling address
//! with `X-Forwarded-For`, a session refreshed past its absolute lifetime, and API keys outliving a password
//! change (and what `px auth password` says about them).

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use loupe_auth::{SigningKey, TokenSigner, unix_now};
use serde_json::{Value, json};

use crate::common::{
    Guard, free_port, loupe_bin, loupe_up, loupe_up_over, px_output, temp_dir, temp_path, wait_for_port,
};

const ADMIN: &str = "admin@default.com";
const NEW_PASSWORD: &str = "a long new passphrase";

/// `loupe up --no-trace` (with its TLS proxy) on free ports over the data directory of `tag`.
struct Up {
    guard: Option<Guard>,
    api_port: u16,
    data: PathBuf,
}

impl Up {
    fn start(tag: &str, extra: &[&str]) -> Self {
        let (port, api_port) = (free_port(), free_port());
        let child = loupe_up(port, api_port, tag)
            .arg("--no-trace")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe up");
        let guard = Guard(child);
        wait_for_port(api_port, "loupe up's cloud API");
        Up { guard: Some(guard), api_port, data: temp_path(&format!("data-{tag}")) }
    }

    /// Starts again over the same data directory (`loupe_up` would empty it).
    fn restart(&mut self) {
        self.guard = None;
        let (port, api_port) = (free_port(), free_port());
        let child = loupe_up_over(&self.data, port, api_port, 0)
            .arg("--no-trace")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe up");
        self.guard = Some(Guard(child));
        wait_for_port(api_port, "the restarted cloud API");
        self.api_port = api_port;
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// A REST call straight to the API port with curl: status and JSON body.
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[&str],
    ) -> (u16, Value) {
        http(method, &self.url(path), token, body, headers)
    }

    fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.call("POST", "/api/v1/auth/login", None, Some(json!({ "email": email, "password": password })), &[])
    }

    /// The bootstrap admin's first login and forced password change; returns the new token.
    fn admin_token(&self) -> String {
        let (status, first) = self.login(ADMIN, "admin");
        assert_eq!(status, 200, "{first}");
        let body = json!({ "current_password": "admin", "new_password": NEW_PASSWORD });
        let (status, changed) = self.call("POST", "/api/v1/auth/password", first["token"].as_str(), Some(body), &[]);
        assert_eq!(status, 200, "{changed}");
        changed["token"].as_str().expect("token").to_owned()
    }
}

fn http(method: &str, url: &str, token: Option<&str>, body: Option<Value>, headers: &[&str]) -> (u16, Value) {
    let mut curl = Command::new("curl");
    curl.args(["-sS", "-o", "-", "-w", "\n%{http_code}", "-X", method, url]);
    if let Some(token) = token {
        curl.args(["-H", &format!("authorization: Bearer {token}")]);
    }
    for header in headers {
        curl.args(["-H", header]);
    }
    if let Some(body) = body {
        curl.args(["-H", "content-type: application/json", "--data-binary", &body.to_string()]);
    }
    let out = curl.output().expect("curl is needed (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Runs `cat path` as the unprivileged `nobody`.
fn read_as_nobody(path: &Path) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "cat"])
        .arg(path)
        .output()
        .expect("setpriv (util-linux) runs a command as another user")
}

#[test]
fn a_deleted_bootstrap_admin_stays_deleted_across_restarts() {
    let mut up = Up::start("hard-admin", &[]);
    let admin = up.admin_token();
    // Invite a real admin, who accepts and deletes the default one.
    let (status, invited) = up.call(
        "POST",
        "/api/v1/invitations",
        Some(&admin),
        Some(json!({ "email": "ops@example.com", "role": "admin" })),
        &[],
    );
    assert_eq!(status, 201, "{invited}");
    let accept = json!({ "token": invited["invite_token"], "display_name": "Ops", "password": NEW_PASSWORD });
    let (status, ops) = up.call("POST", "/api/v1/invitations/accept", None, Some(accept), &[]);
    assert_eq!(status, 201, "{ops}");
    let ops_token = ops["token"].as_str().expect("token").to_owned();
    let (status, me) = up.call("GET", "/api/v1/auth/me", Some(&admin), None, &[]);
    assert_eq!(status, 200, "{me}");
    let default_id = me["user"]["id"].as_str().expect("id").to_owned();
    let (status, body) = up.call("DELETE", &format!("/api/v1/users/{default_id}"), Some(&ops_token), None, &[]);
    assert_eq!(status, 204, "{body}");

    up.restart();
    let (status, refused) = up.login(ADMIN, "admin");
    assert_eq!(status, 401, "admin/admin must not work after a restart: {refused}");
    assert_eq!(refused["message"], "invalid email or password");
    let (status, _) = up.login("ops@example.com", NEW_PASSWORD);
    assert_eq!(status, 200);

    // `loupe setup create-admin` does not bring it back either.
    let out =
        Command::new(loupe_bin()).args(["setup", "create-admin", "--data-dir"]).arg(&up.data).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no admin created"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(up.login(ADMIN, "admin").0, 401);
}

#[test]
fn the_signing_key_is_a_private_file_and_not_in_the_database() {
    // A data directory left too open by an older version: a world-readable database holding a signing key.
    let data = temp_dir("data-hard-key");
    let db = data.join("loupe.db");
    let out = Command::new(loupe_bin()).args(["setup", "create-admin", "--data-dir"]).arg(&data).output().expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let planted = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"INSERT INTO kv VALUES ('auth.signing_key','b2xkLWtleS1vbGQta2V5LW9sZC1rZXktb2xkLWtleS0xMjM0')\"); c.commit()")
        .arg(&db)
        .output()
        .expect("python3");
    assert!(planted.status.success(), "{}", String::from_utf8_lossy(&planted.stderr));

    let (port, api_port) = (free_port(), free_port());
    let child = loupe_up_over(&data, port, api_port, 0)
        .arg("--no-trace")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loupe up");
    let _up = Guard(child);
    wait_for_port(api_port, "loupe up's cloud API");
    let (status, login) = http(
        "POST",
        &format!("http://127.0.0.1:{api_port}/api/v1/auth/login"),
        None,
        Some(json!({ "email": ADMIN, "password": "admin" })),
        &[],
    );
    assert_eq!(status, 200, "{login}");

    // Modes: the directory 0700, every file in it (database, WAL, shared memory, secrets) 0600 or stricter.
    assert_eq!(mode(&data), 0o700);
    let key_file = data.join("secrets").join("jwt-signing-key");
    assert_eq!(mode(&data.join("secrets")), 0o700);
    for file in
        ["loupe.db", "loupe.db-wal", "loupe.db-shm", "secrets/jwt-signing-key", "secrets/ca.key", "secrets/server.key"]
    {
        let path = data.join(file);
        assert!(path.exists(), "{file} is missing");
        assert_eq!(mode(&path) & 0o077, 0, "{file} is {:o}", mode(&path));
    }
    // Another local user reads neither the key nor the database.
    for path in [&key_file, &db] {
        let out = read_as_nobody(path);
        assert!(!out.status.success() && out.stdout.is_empty(), "nobody read {}", path.display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The database holds no key: the leftover row is gone (the old key it held signs nothing valid any more),
    // and the file's key appears nowhere in the database files.
    let rows = Command::new("python3")
        .arg("-c")
        .arg("import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute(\"SELECT count(*) FROM kv WHERE key LIKE '%sign%'\").fetchone()[0])")
        .arg(&db)
        .output()
        .expect("python3");
    assert_eq!(String::from_utf8_lossy(&rows.stdout).trim(), "0", "{}", String::from_utf8_lossy(&rows.stderr));
    let key = std::fs::read_to_string(&key_file).expect("key");
    for file in ["loupe.db", "loupe.db-wal"] {
        let bytes = std::fs::read(data.join(file)).unwrap_or_default();
        assert!(!bytes.windows(key.trim().len()).any(|w| w == key.trim().as_bytes()), "the key is in {file}");
    }
    // The tokens are signed with the file's key (which only the owner can read).
    let signer = TokenSigner::new(SigningKey::from_bytes(key.trim().as_bytes()).expect("key"), "localhost");
    signer.verify(login["token"].as_str().expect("token"), unix_now()).expect("signed with the file's key");
}

/// 24 wrong passwords for one account at once over real HTTP: exactly 5 are checked, the rest refused.
#[test]
fn parallel_wrong_logins_are_checked_exactly_up_to_the_limit() {
    let up = Up::start("hard-race", &[]);
    let url = up.url("/api/v1/auth/login");
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                http("POST", &url, None, Some(json!({ "email": ADMIN, "password": format!("wrong-{i}") })), &[]).0
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().expect("join")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 19, "{statuses:?}");
    // The right password now waits for the window like everyone else.
    assert_eq!(up.login(ADMIN, "admin").0, 429);
}

/// A local process talking to the API port directly cannot choose the address it is throttled under: without
/// the proxy's per-process secret, `X-Forwarded-For` is ignored and every attempt counts for 127.0.0.1.
#[test]
fn a_forged_forwarded_for_does_not_buy_a_fresh_budget() {
    let up = Up::start("hard-xff", &[]);
    for i in 0..20 {
        let xff = format!("x-forwarded-for: 203.0.113.{i}");
        let forged = "x-loupe-proxy-secret: guessed";
        let body = json!({ "email": format!("user{i}@example.com"), "password": "wrong" });
        let (status, answer) = up.call("POST", "/api/v1/auth/login", None, Some(body), &[&xff, forged]);
        assert_eq!(status, 401, "attempt {i}: {answer}");
    }
    let body = json!({ "email": "fresh@example.com", "password": "wrong" });
    let (status, answer) =
        up.call("POST", "/api/v1/auth/login", None, Some(body), &["x-forwarded-for: 198.51.100.200"]);
    assert_eq!(status, 429, "the 21st attempt from 127.0.0.1 must be throttled: {answer}");
}

#[test]
fn refreshing_cannot_pass_the_absolute_session_lifetime() {
    let up = Up::start("hard-lifetime", &["--session-max-lifetime", "2d"]);
    let token = up.admin_token();
    let key = std::fs::read_to_string(up.data.join("secrets/jwt-signing-key")).expect("key (the test runs as root)");
    let signer = TokenSigner::new(SigningKey::from_bytes(key.trim().as_bytes()).expect("key"), "localhost");
    let claims = signer.verify(&token, unix_now()).expect("claims");
    assert_eq!(claims.exp, claims.auth_time + 2 * 24 * 3600, "capped by --session-max-lifetime, not the 90-day ttl");
    let (status, refreshed) = up.call("POST", "/api/v1/auth/refresh", Some(&token), None, &[]);
    assert_eq!(status, 200, "{refreshed}");
    let again = signer.verify(refreshed["token"].as_str().expect("token"), unix_now()).expect("claims");
    assert_eq!((again.auth_time, again.exp), (claims.auth_time, claims.exp), "a refresh keeps the deadline");

    // The same session as it would look three days after its login, refreshed all along.
    let mut old = again;
    old.auth_time = unix_now() - 3 * 24 * 3600;
    let old = signer.sign(&old).expect("sign");
    let (status, refused) = up.call("POST", "/api/v1/auth/refresh", Some(&old), None, &[]);
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["message"], "the session reached its maximum lifetime; log in again");
}

#[test]
fn px_auth_password_revokes_and_names_the_api_keys() {
    let up = Up::start("hard-keys", &[]);
    let config = temp_dir("px-config-hard-keys").join("px");
    let addr = format!("127.0.0.1:{}", up.api_port);
    let px = |args: &[&str], stdin: &str| px_output(&addr, None, &config, args, stdin);
    let ok = |args: &[&str], stdin: &str| {
        let out = px(args, stdin);
        assert!(out.status.success(), "px {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["auth", "login", "--email", ADMIN], "admin\n");
    let first = ok(&["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
    assert!(first.contains("You had no active API keys; none were revoked."), "{first}");
    let created: Value =
        serde_json::from_str(ok(&["api-key", "create", "-d", "ci", "-o", "json"], "").trim()).expect("json");
    let key = created["key"].as_str().expect("key").to_owned();
    let prefix = created["prefix"].as_str().expect("prefix").to_owned();
    assert_eq!(up.call("GET", "/api/v1/org", None, None, &[&format!("pixie-api-key: {key}")]).0, 200);

    let changed = ok(&["auth", "password"], &format!("{NEW_PASSWORD}\nan even longer passphrase\n"));
    assert!(changed.contains("Revoked your 1 API key (made with the old password):"), "{changed}");
    assert!(changed.contains(&format!("  {prefix}… ci")), "{changed}");
    let (status, refused) = up.call("GET", "/api/v1/org", None, None, &[&format!("pixie-api-key: {key}")]);
    assert_eq!(status, 401, "{refused}");
    assert_eq!(refused["message"], "unknown or revoked API key");
    // The session px stored after the change still works.
    ok(&["auth", "status"], "");
}
