//! The embedded backend: `SqliteMetastore`, a SQLite file (or memory) database for `loupe up`.
//!
//! Owns opening the database (WAL, foreign keys, busy timeout), its pool and applying the SQLite migrations.
//! Must not touch: query text (shared with Postgres in the `sql` area modules) or anything Postgres-specific.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::types::Json;
use sqlx::{Pool, Sqlite};
use uuid::Uuid;

use crate::error::{MetastoreError, Result, db_err};
use crate::model::*;
use crate::prelude::*;
use crate::sql::impl_sql_metastore;
use crate::{ConnectOptions, migrations};

/// The SQLite metastore. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteMetastore {
    pool: Pool<Sqlite>,
}

impl std::fmt::Debug for SqliteMetastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMetastore").finish_non_exhaustive()
    }
}

impl SqliteMetastore {
    /// Opens (creating if missing) a SQLite database from a `sqlite:` URL and applies migrations.
    ///
    /// `sqlite::memory:` (or any URL with `:memory:` / `mode=memory`) opens a private in-memory database.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|err| MetastoreError::invalid(format!("bad sqlite url: {err}")))?;
        Self::open_with(connect, in_memory, options).await
    }

    /// Opens the SQLite database file at `path` (created if missing) and applies migrations.
    pub async fn open(path: &std::path::Path, options: &ConnectOptions) -> Result<Self> {
        Self::open_with(SqliteConnectOptions::new().filename(path), false, options).await
    }

    async fn open_with(connect: SqliteConnectOptions, in_memory: bool, options: &ConnectOptions) -> Result<Self> {
        let connect = connect
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout.max(Duration::from_secs(1)));
        let pool = if in_memory {
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect.journal_mode(SqliteJournalMode::Wal).synchronous(SqliteSynchronous::Normal))
                .await
        }
        .map_err(db_err("database"))?;
        migrations::migrator(migrations::SQLITE).run(&pool).await.map_err(migrations::migrate_err("sqlite"))?;
        Ok(SqliteMetastore { pool })
    }

    /// Opens a private in-memory database (lost when the metastore is dropped); for tests and demos.
    pub async fn open_in_memory() -> Result<Self> {
        Self::connect("sqlite::memory:", &ConnectOptions::default()).await
    }

    /// Closes the pool, waiting for connections to finish (checkpoints the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_metastore!(SqliteMetastore, sqlx::Sqlite, "sqlite");
