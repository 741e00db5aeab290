//! End to end: the real `px` binary's cloud commands (`px auth`, `px api-key`, `px deploy-key`, `px script`)
//! against the real cloud REST API served by `loupe up --no-trace`.
//!
//! Needs no root: tracing is off, and every test has its own free ports, data directory and `px` config
//! directory (`PX_CONFIG_DIR`). Owns only these tests; shared helpers are in `common`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{Guard, free_port, loupe_up, px_bin, px_output, temp_dir, wait_for_port};

const ADMIN: &str = "admin@default.com";
const NEW_PASSWORD: &str = "a long new passphrase";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// `loupe up --no-trace` on free ports, and a `px` config directory of its own.
struct Cloud {
    _loupe: Guard,
    api_port: u16,
    config: PathBuf,
}

impl Cloud {
    fn start(tag: &str) -> Self {
        let (port, api_port) = (free_port(), free_port());
        let loupe = loupe_up(port, api_port, &format!("px-{tag}"))
            .arg("--no-trace")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn loupe");
        let loupe = Guard(loupe);
        wait_for_port(api_port, "loupe up's cloud API");
        Cloud { _loupe: loupe, api_port, config: temp_dir(&format!("px-config-{tag}")).join("px") }
    }

    fn auth_file(&self) -> PathBuf {
        self.config.join("auth.json")
    }

    /// Runs `px` against this cloud (or `addr`), feeding `stdin`.
    fn px_at(&self, addr: &str, args: &[&str], stdin: &str) -> Output {
        px_output(addr, None, &self.config, args, stdin)
    }

    fn px_in(&self, args: &[&str], stdin: &str) -> Output {
        self.px_at(&format!("127.0.0.1:{}", self.api_port), args, stdin)
    }

    fn px(&self, args: &[&str]) -> Output {
        self.px_in(args, "")
    }

    /// Runs `px` and insists it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.px(args);
        assert!(out.status.success(), "px {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(s: &str) -> Vec<Value> {
    s.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
}

/// The value of the `HEADER  value` line of a record printed as a table.
fn record_field(s: &str, header: &str) -> String {
    s.lines()
        .find_map(|l| l.strip_prefix(header).filter(|rest| rest.starts_with(' ')).map(|rest| rest.trim().to_owned()))
        .unwrap_or_else(|| panic!("no {header} line in:\n{s}"))
}

#[test]
fn px_logs_in_changes_the_password_and_manages_keys_and_scripts() {
    let cloud = Cloud::start("flow");

    // Not logged in yet: told what to do, exit 2 (a usage error, nothing reached the server).
    let out = cloud.px(&["api-key", "list"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("px auth login"), "{}", text(&out.stderr));

    // A wrong password is the server's refusal, with its message intact.
    let out = cloud.px_in(&["auth", "login", "--email", ADMIN], "wrong password\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("error: invalid email or password"), "{}", text(&out.stderr));
    assert!(!cloud.auth_file().exists());

    // The bootstrap admin logs in (password on stdin) and is told to change the password.
    let out = cloud.px_in(&["auth", "login", "--email", ADMIN], "admin\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(ADMIN), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("px auth password"), "{}", text(&out.stderr));
    assert_eq!(mode(&cloud.auth_file()), 0o600);
    assert_eq!(mode(&cloud.config), 0o700);
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(cloud.auth_file()).expect("auth file"))
        .expect("auth file is JSON");
    assert_eq!(stored["cloud_addr"], format!("http://127.0.0.1:{}", cloud.api_port));
    assert!(stored["token"].is_string() && stored["expires_at"].is_i64(), "{stored}");
    assert_eq!(stored["email"], ADMIN);

    // Everything else is refused until then, with the hint.
    let out = cloud.px(&["api-key", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("error: the password must be changed") && err.contains("px auth password"), "{err}");

    // `px auth status` works meanwhile and says so.
    let status = json_lines(&cloud.ok(&["auth", "status", "-o", "json"]));
    assert_eq!(status[0]["must_change_password"], Value::Bool(true), "{status:?}");

    // The change: both passwords on stdin, never echoed; the new token is stored.
    let out = cloud.px_in(&["auth", "password"], &format!("admin\n{NEW_PASSWORD}\n"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains(NEW_PASSWORD) && !text(&out.stderr).contains(NEW_PASSWORD));
    let renewed: Value =
        serde_json::from_str(&std::fs::read_to_string(cloud.auth_file()).expect("auth file")).expect("JSON");
    assert_ne!(renewed["token"], stored["token"]);

    // An API key: printed once, listed without its material.
    let out = cloud.px(&["api-key", "create", "-d", "ci"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("shown only this once"), "{}", text(&out.stderr));
    let created = text(&out.stdout);
    let key = record_field(&created, "KEY");
    let key_id = record_field(&created, "ID");
    assert!(key.starts_with("px-api-"), "{created}");
    let listed = cloud.ok(&["api-key", "list", "-o", "json"]);
    assert!(!listed.contains(&key), "{listed}");
    let rows = json_lines(&listed);
    let row = rows.iter().find(|r| r["id"] == key_id.as_str()).unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["description"], "ci");
    assert!(row.get("key").is_none(), "{row}");
    let table = cloud.ok(&["api-key", "list"]);
    assert!(table.starts_with("ID ") && table.contains("DESCRIPTION") && table.contains(&key_id), "{table}");
    let csv = cloud.ok(&["api-key", "list", "-o", "csv"]);
    assert!(csv.starts_with("id,prefix,description,created_at,last_used_at,revoked_at\n"), "{csv}");

    // Logout ends the session and forgets it.
    let out = cloud.ok(&["auth", "logout"]);
    assert!(out.contains("Logged out"), "{out}");
    assert!(!cloud.auth_file().exists());
    let out = cloud.px(&["auth", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // Log in with the API key: `status` shows the admin.
    let out = cloud.ok(&["auth", "login", "--api-key", &key]);
    assert!(out.contains(ADMIN), "{out}");
    let status = json_lines(&cloud.ok(&["auth", "status", "-o", "json"]));
    assert_eq!(status[0]["user"]["email"], ADMIN, "{status:?}");
    assert_eq!(status[0]["user"]["role"], "admin", "{status:?}");
    assert_eq!(status[0]["is_api_user"], Value::Bool(true), "{status:?}");
    let table = cloud.ok(&["auth", "status"]);
    assert!(table.contains(ADMIN) && table.contains("API key"), "{table}");
    assert_eq!(mode(&cloud.auth_file()), 0o600);

    // The credential is for this cloud only.
    let other = format!("127.0.0.1:{}", free_port());
    let out = cloud.px_at(&other, &["api-key", "list"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not logged in to"), "{}", text(&out.stderr));

    // Deploy keys: create, list, revoke.
    let created = json_lines(&cloud.ok(&["deploy-key", "create", "-d", "cluster", "-o", "json"]));
    let dep_id = created[0]["id"].as_str().expect("id").to_owned();
    assert!(created[0]["key"].as_str().is_some_and(|k| k.starts_with("px-dep-")), "{created:?}");
    let listed = json_lines(&cloud.ok(&["deploy-key", "list", "-o", "json"]));
    assert!(listed.iter().any(|r| r["id"] == dep_id.as_str() && r["revoked_at"].is_null()), "{listed:?}");
    let out = cloud.ok(&["deploy-key", "delete", &dep_id]);
    assert!(out.contains("Revoked"), "{out}");
    let listed = json_lines(&cloud.ok(&["deploy-key", "list", "-o", "json"]));
    assert!(listed.iter().any(|r| r["id"] == dep_id.as_str() && r["revoked_at"].is_i64()), "{listed:?}");
    let out = cloud.px(&["deploy-key", "delete", "not-a-key"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("error: deploy key not found"), "{}", text(&out.stderr));

    // Scripts: the bundled catalog, and one script's PxL.
    let scripts = json_lines(&cloud.ok(&["script", "list", "-o", "json"]));
    assert!(scripts.iter().any(|s| s["name"] == "px/http_data"), "{scripts:?}");
    let pxl = cloud.ok(&["script", "show", "px/http_data"]);
    assert!(pxl.contains("import px") && pxl.contains("px.display"), "{pxl}");
    let out = cloud.px(&["script", "show", "px/nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

#[test]
fn px_cloud_commands_explain_themselves() {
    let help = Command::new(px_bin()).arg("--help").output().expect("px --help");
    let help = text(&help.stdout);
    for verb in ["run", "auth", "api-key", "deploy-key", "script"] {
        assert!(help.contains(verb), "{verb} missing from:\n{help}");
    }
    let help = Command::new(px_bin()).args(["auth", "login", "--help"]).output().expect("px auth login --help");
    let help = text(&help.stdout);
    assert!(help.contains("--api-key") && help.contains("PX_PASSWORD"), "{help}");
}

#[test]
fn px_reports_an_unreachable_cloud_clearly() {
    let config = temp_dir("px-unreachable");
    let port = free_port();
    let out = Command::new(px_bin())
        .args(["auth", "login", "--email", ADMIN, "--password", "whatever"])
        .env("PX_CLOUD_ADDR", format!("127.0.0.1:{port}"))
        .env("PX_CONFIG_DIR", &config)
        .output()
        .expect("run px");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("failed to reach the Loupe cloud") && err.contains("loupe up"), "{err}");
}
