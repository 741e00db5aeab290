//! Loupe's cloud metastore: orgs, users, invitations, sessions, API and deploy keys, scripts, viziers, cron
//! scripts, settings and a global key/value store, behind one dyn-compatible `Metastore` handle with two backends.
//! `Metastore` is a supertrait of one trait per area (`OrgStore`, `UserStore`, `InvitationStore`, `SessionStore`,
//! `KeyStore`, `ScriptStore`, `VizierStore`, `CronScriptStore`, `CronResultStore`, `SettingStore`, `KvStore`); callers hold
//! `Arc<dyn Metastore>` and `use loupe_metastore::prelude::*` to call any area's methods.
//!
//! - `SqliteMetastore`: the embedded default (`loupe up`), a SQLite file or `:memory:`.
//! - `PostgresMetastore`: the distributed backend (Kubernetes), PostgreSQL 15+.
//!
//! `connect` picks the backend from the URL scheme and applies the embedded, versioned migrations. Both backends run
//! the same SQL (`sql`, one module per area), classify errors the same way (`error`) and pass the same test suite (`tests/suite.rs`).
//!
//! Owns: durable cloud state and its isolation rule (every org-owned read, update or delete filters by the caller's
//! org id). Must not touch: hashing, token signing or passwords (the auth layer hands in hashes), HTTP or gRPC,
//! Redis-held state (rate limits, leases), and live telemetry data (that stays in the PEMs' stores).

mod error;
mod metastore;
mod migrations;
mod model;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use crate::error::{BoxError, MetastoreError, Result};
pub use crate::metastore::{
    CronResultStore, CronScriptStore, InvitationStore, KeyStore, KvStore, Metastore, OrgStore, ScriptStore,
    SessionStore, SettingStore, UserStore, VizierStore,
};
pub use crate::model::{
    CronResult, CronScript, CronScriptUpdate, Invitation, Key, KeyKind, NewCronResult, NewCronScript, NewInvitation,
    NewKey, NewScript, NewUser, NewVizier, Org, Role, Script, ScriptUpdate, Session, Setting, User,
    VIZIER_INITIAL_STATUS, Vizier, VizierStatusUpdate, now_ns,
};
pub use crate::postgres::PostgresMetastore;
pub use crate::sqlite::SqliteMetastore;

/// The `Metastore` handle and every area trait, so that any area's method can be called on `Arc<dyn Metastore>`.
pub mod prelude {
    pub use crate::metastore::{
        CronResultStore, CronScriptStore, InvitationStore, KeyStore, KvStore, Metastore, OrgStore, ScriptStore,
        SessionStore, SettingStore, UserStore, VizierStore,
    };
}

/// Pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Largest number of open connections (SQLite `:memory:` always uses one).
    pub max_connections: u32,
    /// How long a call waits for a connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    /// 8 connections, 3 s acquire timeout: a stopped database surfaces as `Unavailable` within about 3 s.
    fn default() -> Self {
        ConnectOptions { max_connections: 8, acquire_timeout: Duration::from_secs(3) }
    }
}

/// Opens the metastore at `url` with default options: `sqlite::memory:`, `sqlite://path/to/file.db` or
/// `sqlite:relative.db` for SQLite; `postgres://user:pass@host:port/db` (or `postgresql://`) for Postgres.
pub async fn connect(url: &str) -> Result<Arc<dyn Metastore>> {
    connect_with(url, &ConnectOptions::default()).await
}

/// Like `connect`, with explicit pool options.
pub async fn connect_with(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Metastore>> {
    let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase()).unwrap_or_default();
    match scheme.as_str() {
        "sqlite" => Ok(Arc::new(SqliteMetastore::connect(url, options).await?)),
        "postgres" | "postgresql" => Ok(Arc::new(PostgresMetastore::connect(url, options).await?)),
        // Never echo the URL: it may carry a password.
        _ => Err(MetastoreError::invalid(format!(
            "unsupported metastore url scheme {scheme:?}: use sqlite:// or postgres://"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_invalid_and_hides_the_url() {
        let err = connect("mysql://root:hunter2@db/x").await.err();
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("unsupported metastore url scheme"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[tokio::test]
    async fn in_memory_sqlite_opens_and_answers() {
        let store = connect("sqlite::memory:").await;
        assert!(store.is_ok(), "{:?}", store.err());
        if let Ok(store) = store {
            assert_eq!(store.backend(), "sqlite");
            assert!(store.health_check().await.is_ok());
        }
    }
}
