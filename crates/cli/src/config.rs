//! `px`'s on-disk state: the stored cloud credential (`auth.json`) and where it lives.
//!
//! Owns the config directory (`$PX_CONFIG_DIR`, else `$XDG_CONFIG_HOME/loupe`, else `~/.config/loupe`), the
//! credential file's format and its protection (directory 0700, file 0600, replaced atomically by writing a
//! 0600 temporary file and renaming it), and the rule that a credential is used only for the cloud address it
//! was obtained from. Must not talk to the network or print anything: `cloud` does both.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Name of the credential file inside the config directory.
pub const AUTH_FILE: &str = "auth.json";

/// One stored credential: a session token or an API key, for one cloud address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// The cloud address it was obtained from, normalised by [`normalize_addr`].
    pub cloud_addr: String,
    /// A session token (sent as `Authorization: Bearer <token>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// An API key (sent as `pixie-api-key: <key>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// When the session token expires, Unix seconds (API keys do not expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The user's email, for display.
    #[serde(default)]
    pub email: String,
    /// The user's org name, for display.
    #[serde(default)]
    pub org: String,
}

impl Credential {
    /// Whether this credential is a session token that has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.token.is_some() && self.expires_at.is_some_and(|exp| exp <= now)
    }
}

/// The cloud address in one canonical form, so `host:port`, `http://host:port` and `http://host:port/` name
/// the same cloud: a scheme is always present, lowercase, no trailing slash. Without one, `https://` is assumed,
/// except for a loopback host (`localhost`, 127.0.0.0/8, `[::1]`), where plain `http://` stays: a credential must
/// not cross a network in clear because a scheme was left out.
pub fn normalize_addr(addr: &str) -> String {
    let addr = addr.trim().trim_end_matches('/');
    match addr.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None if is_loopback_host(addr) => format!("http://{addr}"),
        None => format!("https://{addr}"),
    }
}

/// Whether the host of `addr` (`host`, `host:port`, `[v6]:port`, maybe with a path) is this machine.
fn is_loopback_host(addr: &str) -> bool {
    let authority = addr.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(host, _port)| host),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The config directory: `$PX_CONFIG_DIR`, else `$XDG_CONFIG_HOME/loupe`, else `$HOME/.config/loupe`.
pub fn config_dir() -> Result<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = non_empty("PX_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = non_empty("XDG_CONFIG_HOME") {
        return Ok(dir.join("loupe"));
    }
    match non_empty("HOME") {
        Some(home) => Ok(home.join(".config").join("loupe")),
        None => bail!("cannot find a config directory: set PX_CONFIG_DIR, XDG_CONFIG_HOME or HOME"),
    }
}

/// The credential file in a config directory.
#[derive(Debug, Clone)]
pub struct AuthStore {
    dir: PathBuf,
}

impl AuthStore {
    /// The store in `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The store in [`config_dir`].
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(config_dir()?))
    }

    /// Path of the credential file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(AUTH_FILE)
    }

    /// The stored credential, whatever cloud it is for; `None` if there is none.
    pub fn load(&self) -> Result<Option<Credential>> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("failed to read {}", path.display())),
        };
        let cred = serde_json::from_str(&text).with_context(|| {
            format!("{} is not a valid credential file; `px auth login` replaces it", path.display())
        })?;
        Ok(Some(cred))
    }

    /// The stored credential if it was obtained from `cloud_addr`; a credential for another cloud is never
    /// returned (it would leak that cloud's token to this one).
    pub fn load_for(&self, cloud_addr: &str) -> Result<Option<Credential>> {
        let want = normalize_addr(cloud_addr);
        Ok(self.load()?.filter(|c| normalize_addr(&c.cloud_addr) == want))
    }

    /// Replaces the stored credential atomically: the directory is made 0700, a temporary file is created 0600
    /// beside the target, written, synced and renamed over it, so no reader ever sees a partial or open file.
    pub fn save(&self, cred: &Credential) -> Result<()> {
        let dir = &self.dir;
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        // `mode` applies only to directories created now; tighten one that already existed too.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to restrict {} to its owner", dir.display()))?;
        let mut text = serde_json::to_string_pretty(cred).context("failed to encode the credential")?;
        text.push('\n');
        let tmp = dir.join(format!(".{AUTH_FILE}.{}.tmp", std::process::id()));
        let written = write_private(&tmp, text.as_bytes()).and_then(|()| {
            std::fs::rename(&tmp, self.path()).with_context(|| format!("failed to replace {}", self.path().display()))
        });
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }

    /// Deletes the stored credential; `false` if there was none.
    pub fn remove(&self) -> Result<bool> {
        let path = self.path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).with_context(|| format!("failed to delete {}", path.display())),
        }
    }
}

/// Creates `path` (which must not exist) readable and writable by its owner only, and writes `bytes` to it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(bytes).and_then(|()| file.sync_all()).with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("px-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn cred(addr: &str) -> Credential {
        Credential {
            cloud_addr: normalize_addr(addr),
            token: Some("tok".into()),
            api_key: None,
            expires_at: Some(2_000_000_000),
            email: "admin@default.com".into(),
            org: "default".into(),
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn the_auth_file_round_trips() {
        let store = AuthStore::new(temp_dir("roundtrip"));
        assert_eq!(store.load().expect("load"), None);
        let c = cred("127.0.0.1:51200");
        store.save(&c).expect("save");
        assert_eq!(store.load().expect("load"), Some(c.clone()));
        let key = Credential { token: None, api_key: Some("px-api-x".into()), expires_at: None, ..c };
        store.save(&key).expect("replace");
        assert_eq!(store.load().expect("load"), Some(key));
        assert!(store.remove().expect("remove"));
        assert!(!store.remove().expect("remove again"));
        assert_eq!(store.load().expect("load"), None);
    }

    #[test]
    fn the_auth_file_is_0600_in_a_0700_dir() {
        let dir = temp_dir("modes");
        std::fs::create_dir_all(&dir).expect("pre-existing dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let store = AuthStore::new(dir.join("nested"));
        store.save(&cred("127.0.0.1:1")).expect("save");
        assert_eq!(mode(&store.path()), 0o600);
        assert_eq!(mode(&dir.join("nested")), 0o700);
        // An existing, looser directory is tightened.
        let store = AuthStore::new(&dir);
        store.save(&cred("127.0.0.1:1")).expect("save");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&store.path()), 0o600);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir).expect("read dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_credential_is_used_only_for_its_cloud() {
        let store = AuthStore::new(temp_dir("scope"));
        store.save(&cred("127.0.0.1:51200")).expect("save");
        assert!(store.load_for("127.0.0.1:51200").expect("load").is_some());
        assert!(store.load_for("http://127.0.0.1:51200/").expect("load").is_some());
        assert!(store.load_for("HTTP://127.0.0.1:51200").expect("load").is_some());
        assert!(store.load_for("127.0.0.1:51201").expect("load").is_none());
        assert!(store.load_for("https://127.0.0.1:51200").expect("load").is_none());
        assert!(store.load_for("evil.example:51200").expect("load").is_none());
    }

    #[test]
    fn expiry_applies_to_tokens_only() {
        let c = cred("a:1");
        assert!(!c.is_expired(1_999_999_999));
        assert!(c.is_expired(2_000_000_000));
        let key = Credential { token: None, api_key: Some("k".into()), ..c };
        assert!(!key.is_expired(i64::MAX));
    }

    #[test]
    fn addresses_normalise() {
        assert_eq!(normalize_addr("127.0.0.1:51200"), "http://127.0.0.1:51200");
        assert_eq!(normalize_addr(" https://Cloud.example/ "), "https://Cloud.example");
    }

    #[test]
    fn a_host_without_a_scheme_gets_https_unless_it_is_loopback() {
        // Loopback keeps plain HTTP: `loupe up`'s API on this machine.
        for local in ["127.0.0.1:51200", "127.9.8.7:1", "localhost:51200", "LocalHost", "[::1]:51200", "127.0.0.1"] {
            assert_eq!(normalize_addr(local), format!("http://{local}"), "{local}");
        }
        // Anything else would send credentials across a network: https.
        for remote in ["cloud.example:443", "10.0.0.1:51200", "[2001:db8::1]:51200", "128.0.0.1:1", "localhost.evil:1"]
        {
            assert_eq!(normalize_addr(remote), format!("https://{remote}"), "{remote}");
        }
        // An explicit scheme always wins, both ways.
        assert_eq!(normalize_addr("http://cloud.example:80"), "http://cloud.example:80");
        assert_eq!(normalize_addr("https://127.0.0.1:56000"), "https://127.0.0.1:56000");
    }
}
