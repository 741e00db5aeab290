//! The SQL both backends run, written once: one module per metastore area, each a macro that implements its area
//! trait for a struct with a sqlx `pool`, and `impl_sql_metastore!`, which expands them all plus `Metastore`.
//!
//! Owns the helpers every area shares (one row or all rows of an org, delete one, the row-count check, the one
//! `users` INSERT that users and invitations both write through) and the list of areas. Must not touch: connecting, pool options or migrations (see `sqlite`, `postgres`,
//! `migrations`); an area's queries live in its own module, never here.
//!
//! The SQL is the common subset of SQLite and PostgreSQL 15: `$n` placeholders (SQLite reads `$1` as parameter 1),
//! `ON CONFLICT`, `RETURNING`, and `INSERT … SELECT … WHERE EXISTS` to insert a child row only if its parent is in the
//! caller's org, atomically. Every query is a static string with bound parameters; no text is ever spliced into SQL.
//! Macros rather than generics: sqlx's per-backend bounds (executor, encode, decode) make a generic impl brittle,
//! while a macro expands to plain concrete code the compiler checks for each backend.

pub(crate) mod cron_results;
pub(crate) mod cron_scripts;
pub(crate) mod invitations;
pub(crate) mod keys;
pub(crate) mod kv;
pub(crate) mod orgs;
pub(crate) mod scripts;
pub(crate) mod sessions;
pub(crate) mod settings;
pub(crate) mod users;
pub(crate) mod viziers;

/// Implements `Metastore` and every area trait for `$store` (a struct with a `pool: Pool<$db>`); the expansion
/// site imports the model, `Result`, `db_err`, `async_trait`, `sqlx`, `Json`, `Uuid` and the prelude.
macro_rules! impl_sql_metastore {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            /// The one row `sql` selects with `$1` = org id and `$2` = id; none is `NotFound { entity }`.
            async fn org_row<T>(&self, sql: &'static str, entity: &'static str, org_id: Uuid, id: Uuid) -> Result<T>
            where
                T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                sqlx::query_as::<_, T>(sql).bind(org_id).bind(id).fetch_one(&self.pool).await.map_err(db_err(entity))
            }

            /// Every row `sql` selects with `$1` = org id.
            async fn org_rows<T>(&self, sql: &'static str, entity: &'static str, org_id: Uuid) -> Result<Vec<T>>
            where
                T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
            {
                sqlx::query_as::<_, T>(sql).bind(org_id).fetch_all(&self.pool).await.map_err(db_err(entity))
            }

            /// Runs `sql`, a DELETE of one row binding `$1` = org id and `$2` = id; none is `NotFound { entity }`.
            async fn delete_org_row(
                &self,
                sql: &'static str,
                entity: &'static str,
                org_id: Uuid,
                id: Uuid,
            ) -> Result<()> {
                let done = sqlx::query(sql).bind(org_id).bind(id).execute(&self.pool).await.map_err(db_err(entity))?;
                Self::expect_row(done.rows_affected(), entity)
            }

            /// `NotFound { entity: "org" }` if the org is missing, else `NotFound { entity: "user" }`.
            async fn missing_org_or_user(&self, org_id: Uuid) -> MetastoreError {
                match self.get_org(org_id).await {
                    Ok(_) => MetastoreError::NotFound { entity: "user" },
                    Err(err) => err,
                }
            }

            /// `Ok` if the user exists in the org, else `NotFound { entity: "user" }`.
            async fn ensure_user_in_org(&self, org_id: Uuid, user_id: Uuid) -> Result<()> {
                sqlx::query("SELECT 1 FROM users WHERE org_id = $1 AND id = $2")
                    .bind(org_id)
                    .bind(user_id)
                    .fetch_one(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(db_err("user"))
            }

            /// Inserts `user` on `conn` (the pool's or a transaction's connection) if its org exists; the rows
            /// inserted (0 when the org is missing). The one `users` INSERT: creation, the admin bootstrap and an
            /// invitation's acceptance all write the row through it.
            async fn insert_user(conn: &mut <$db as sqlx::Database>::Connection, user: &User) -> Result<u64> {
                let done = sqlx::query(
                    "INSERT INTO users (id, org_id, email, email_lower, display_name, password_hash, role, \
                     must_change_password, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                )
                .bind(user.id)
                .bind(user.org_id)
                .bind(&user.email)
                .bind(email_key(&user.email))
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.must_change_password)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(conn)
                .await
                .map_err(db_err("user"))?;
                Ok(done.rows_affected())
            }

            /// Checks the row count of a statement that should touch one row: zero rows is `NotFound { entity }`.
            fn expect_row(rows: u64, entity: &'static str) -> Result<()> {
                if rows == 0 { Err(MetastoreError::NotFound { entity }) } else { Ok(()) }
            }
        }

        $crate::sql::orgs::impl_org_store!($store);
        $crate::sql::users::impl_user_store!($store);
        $crate::sql::invitations::impl_invitation_store!($store);
        $crate::sql::sessions::impl_session_store!($store);
        $crate::sql::keys::impl_key_store!($store);
        $crate::sql::scripts::impl_script_store!($store);
        $crate::sql::viziers::impl_vizier_store!($store);
        $crate::sql::cron_scripts::impl_cron_script_store!($store);
        $crate::sql::cron_results::impl_cron_result_store!($store);
        $crate::sql::settings::impl_setting_store!($store);
        $crate::sql::kv::impl_kv_store!($store);

        #[async_trait]
        impl $crate::metastore::Metastore for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn health_check(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(db_err("database"))
            }
        }
    };
}

pub(crate) use impl_sql_metastore;
