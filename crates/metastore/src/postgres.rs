//! The distributed backend: `PostgresMetastore`, a PostgreSQL (15+) database shared by the cloud services.
//!
//! Owns the Postgres pool (bounded acquire timeout so a down server surfaces as `Unavailable` within seconds,
//! test-before-acquire so a restarted server is picked up by the same instance) and applying the Postgres migrations.
//! Must not touch: query text (shared with SQLite in the `sql` area modules) or anything SQLite-specific. Never logs the URL: it
//! carries the password.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;
use sqlx::{Pool, Postgres};
use uuid::Uuid;

use crate::error::{MetastoreError, Result, db_err};
use crate::model::*;
use crate::prelude::*;
use crate::sql::impl_sql_metastore;
use crate::{ConnectOptions, migrations};

/// The PostgreSQL metastore. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresMetastore {
    pool: Pool<Postgres>,
}

impl std::fmt::Debug for PostgresMetastore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresMetastore").finish_non_exhaustive()
    }
}

impl PostgresMetastore {
    /// Connects to a `postgres://` (or `postgresql://`) URL and applies migrations (under sqlx's advisory lock, so
    /// several replicas may start at once). `Unavailable` if the server cannot be reached within the acquire timeout.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Self> {
        // The parse error text never includes the URL (it may carry a password).
        let connect = PgConnectOptions::from_str(url)
            .map_err(|err| MetastoreError::invalid(format!("bad postgres url: {err}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(db_err("database"))?;
        migrations::migrator(migrations::POSTGRES).run(&pool).await.map_err(migrations::migrate_err("postgres"))?;
        Ok(PostgresMetastore { pool })
    }

    /// Closes the pool, waiting for in-flight queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_sql_metastore!(PostgresMetastore, sqlx::Postgres, "postgres");
