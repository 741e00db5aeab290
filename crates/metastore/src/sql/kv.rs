//! The `KvStore` SQL, written once for both backends. The global key/value store: get, delete and the race-safe put-
//! if-absent.
//!
//! Owns the queries on the `kv` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `KvStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_kv_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::KvStore for $store {
            async fn kv_get(&self, key: &str) -> Result<Option<String>> {
                check_text("kv key", key)?;
                sqlx::query_scalar::<_, String>("SELECT value FROM kv WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err("kv entry"))
            }

            async fn kv_delete(&self, key: &str) -> Result<bool> {
                check_text("kv key", key)?;
                let done = sqlx::query("DELETE FROM kv WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("kv entry"))?;
                Ok(done.rows_affected() > 0)
            }

            async fn kv_put_if_absent(&self, key: &str, value: &str) -> Result<String> {
                check_name("kv key", key)?;
                check_text("kv value", value)?;
                // The insert is atomic on both backends (a racing Postgres insert waits for the winner's commit);
                // whoever inserted first, everyone then reads the same committed value.
                sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("kv entry"))?;
                sqlx::query_scalar::<_, String>("SELECT value FROM kv WHERE key = $1")
                    .bind(key)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("kv entry"))
            }
        }
    };
}

pub(crate) use impl_kv_store;
