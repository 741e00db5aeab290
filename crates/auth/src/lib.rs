//! Loupe's built-in authentication logic: argon2id password hashing and policy, HS256 session tokens,
//! `px-api-…`/`px-dep-…` keys, session revocation and login throttling state, and admin bootstrap.
//!
//! This crate owns the *rules*; it must not touch a database, HTTP or gRPC. Users, key hashes and session rows
//! are persisted by the metastore crate, and the API server glues the two together. The only I/O here is the
//! optional Redis connection behind [`sessions::RedisSessionCache`].
//!
//! The pieces are deliberately small and composable:
//!
//! - [`password`]: [`hash_password`], [`verify_password`], [`validate_new_password`].
//! - [`token`]: [`SigningKey`], [`TokenSigner`] (issue, verify, revocation-aware validate and refresh).
//! - [`keys`]: [`generate_key`] and [`hash_key`] for either [`KeyKind`], [`key_kind`].
//! - [`sessions`]: the [`SessionCache`] trait with [`InMemorySessionCache`] and [`RedisSessionCache`].
//! - [`throttle`]: [`LoginThrottle`], brute-force limits per account and per source address, counted before
//!   the password is checked.
//! - [`hashing`]: [`HashingLimiter`], the bound on concurrent argon2 work.
//! - [`bootstrap`]: [`AdminBootstrap`] and the forced-password-change route policy.

pub mod bootstrap;
pub mod hashing;
mod jwt;
pub mod keys;
pub mod password;
mod random;
pub mod sessions;
pub mod throttle;
pub mod token;

pub use bootstrap::{AdminBootstrap, BootstrapError, NewAdmin};
pub use hashing::{HashingBusy, HashingError, HashingLimiter};
pub use keys::{
    KeyHash, KeyKind, display_prefix, generate_key, generate_shared_secret, hash_key, key_kind, secrets_match,
};
pub use password::{PasswordError, PolicyError, hash_password, validate_new_password, verify_password};
pub use random::RandomError;
pub use sessions::{InMemorySessionCache, RedisSessionCache, RedisSessionCacheConfig, SessionCache, SessionError};
pub use throttle::{LoginThrottle, ThrottleError, ThrottlePolicy};
pub use token::{
    Claims, DEFAULT_MAX_SESSION_LIFETIME, IssuedToken, Role, SigningKey, TokenError, TokenSigner, UserClaims,
    ValidationError, session_issue_time,
};

/// Current wall-clock time as whole seconds since the Unix epoch (the unit of every JWT time claim): the
/// workspace's one clock.
pub use loupe_common::time::now_unix_secs as unix_now;
