//! The credential every call to a PEM's own query port must carry: a shared secret, the query token,
//! sent as `loupe-vizier-token` metadata and compared in constant time.
//!
//! Owns the token file (read, or created 0600 with 32 random bytes as 64 hex digits when absent, the
//! format `loupe setup init-secrets` writes) and the gRPC interceptor that refuses a call without the
//! token. Must not know users, sessions or API keys: the cloud checks those before it calls a PEM.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use subtle::ConstantTimeEq as _;

/// The metadata key that carries the query token.
pub const TOKEN_METADATA: &str = loupe_proto::headers::VIZIER_TOKEN;

/// Shortest token accepted from a file: anything shorter could be guessed.
const MIN_TOKEN_BYTES: usize = 16;

/// Errors reading or creating the token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file exists but cannot be read, or cannot be created.
    #[error("failed to {action} the query token file {}", path.display())]
    Io {
        /// `read` or `create`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds too short a token (after trimming whitespace).
    #[error("the query token in {} is shorter than {MIN_TOKEN_BYTES} characters", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// The system's random source failed, so no token could be generated.
    #[error("the system's random number generator failed: {0}")]
    Random(String),
}

/// The shared secret of a PEM's query port. Its `Debug` form hides the value.
#[derive(Clone)]
pub struct QueryToken(Arc<str>);

impl std::fmt::Debug for QueryToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueryToken(..)")
    }
}

impl QueryToken {
    /// A token from its text (trimmed); refused when shorter than 16 characters.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (text.len() >= MIN_TOKEN_BYTES).then(|| QueryToken(text.into()))
    }

    /// The token in `path`, or a new random one written there (0600, in a 0700 directory made if
    /// absent) when the file does not exist. `true` when it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), TokenError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = QueryToken::new(&text).ok_or_else(|| TokenError::TooShort { path: path.to_owned() })?;
                Ok((token, false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Self::create(path)?, true)),
            Err(source) => Err(TokenError::Io { action: "read", path: path.to_owned(), source }),
        }
    }

    fn create(path: &Path) -> Result<Self, TokenError> {
        let io = |source| TokenError::Io { action: "create", path: path.to_owned(), source };
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Random(e.to_string()))?;
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
        }
        // create_new: two agents starting at once must not both write; the loser reads the winner's.
        let mut file = match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Self::load_or_create(path).map(|t| t.0),
            Err(e) => return Err(io(e)),
        };
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
        Ok(QueryToken(text.into()))
    }

    /// The token's text, to send as [`TOKEN_METADATA`].
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this token, in time independent of where they differ.
    pub fn matches(&self, offered: &[u8]) -> bool {
        // ct_eq on slices of different lengths returns false at once; the length is not secret.
        bool::from(self.0.as_bytes().ct_eq(offered))
    }
}

/// The interceptor of a PEM's own query port: a call without the token is refused `Unauthenticated`
/// before the service sees it.
#[derive(Debug, Clone)]
pub struct RequireToken(pub QueryToken);

impl tonic::service::Interceptor for RequireToken {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        match request.metadata().get(TOKEN_METADATA) {
            Some(offered) if self.0.matches(offered.as_bytes()) => Ok(request),
            Some(_) => Err(tonic::Status::unauthenticated("invalid query token")),
            None => Err(tonic::Status::unauthenticated(format!(
                "this query endpoint needs its query token in `{TOKEN_METADATA}` (px: PX_VIZIER_TOKEN or --token-file)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use tonic::service::Interceptor as _;

    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("loupe-token-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_token_is_created_once_private_then_kept() {
        let dir = temp_dir("create");
        let path = dir.join("secrets").join("vizier-query-token");
        let (first, created) = QueryToken::load_or_create(&path).expect("create");
        assert!(created);
        assert_eq!(first.expose().len(), 64);
        assert!(first.expose().bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("secrets")), 0o700);
        let (again, created) = QueryToken::load_or_create(&path).expect("read");
        assert!(!created);
        assert_eq!(again.expose(), first.expose());
        assert_eq!(format!("{again:?}"), "QueryToken(..)");
    }

    #[test]
    fn unreadable_or_short_token_files_are_clear_errors() {
        let dir = temp_dir("bad");
        std::fs::create_dir_all(&dir).expect("dir");
        let short = dir.join("short");
        std::fs::write(&short, "abc\n").expect("write");
        let e = QueryToken::load_or_create(&short).expect_err("too short");
        assert_eq!(e.to_string(), format!("the query token in {} is shorter than 16 characters", short.display()));
        // A directory where the file should be cannot be read.
        let e = QueryToken::load_or_create(&dir).expect_err("a directory");
        assert_eq!(e.to_string(), format!("failed to read the query token file {}", dir.display()));
    }

    #[test]
    fn the_interceptor_admits_only_the_token() {
        let token = QueryToken::new("0123456789abcdef0123").expect("long enough");
        let mut check = RequireToken(token);
        let call = |value: Option<&str>| {
            let mut r = tonic::Request::new(());
            if let Some(v) = value {
                r.metadata_mut().insert(TOKEN_METADATA, v.parse().expect("ascii"));
            }
            r
        };
        assert!(check.call(call(Some("0123456789abcdef0123"))).is_ok());
        let refused = check.call(call(Some("0123456789abcdef0124"))).expect_err("wrong token");
        assert_eq!((refused.code(), refused.message()), (tonic::Code::Unauthenticated, "invalid query token"));
        assert!(check.call(call(Some("0123456789abcdef012"))).is_err(), "a prefix is not the token");
        let refused = check.call(call(None)).expect_err("no token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(refused.message().contains("PX_VIZIER_TOKEN"), "{}", refused.message());
    }
}
