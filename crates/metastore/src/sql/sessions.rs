//! The `SessionStore` SQL, written once for both backends. Sessions: create for a user of the org, look up, list,
//! revoke one or all, purge expired.
//!
//! Owns the queries on the `sessions` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `SessionStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_session_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::SessionStore for $store {
            async fn create_session(&self, org_id: Uuid, user_id: Uuid, expires_at: i64) -> Result<Session> {
                let session =
                    Session { id: Uuid::new_v4(), user_id, org_id, created_at: now_ns(), expires_at, revoked_at: None };
                let done = sqlx::query(
                    "INSERT INTO sessions (id, org_id, user_id, created_at, expires_at) SELECT $1, $2, $3, $4, $5 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE id = $3 AND org_id = $2)",
                )
                .bind(session.id)
                .bind(org_id)
                .bind(user_id)
                .bind(session.created_at)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("session"))?;
                Self::expect_row(done.rows_affected(), "user")?;
                Ok(session)
            }

            async fn get_session(&self, session_id: Uuid) -> Result<Session> {
                sqlx::query_as::<_, Session>("SELECT * FROM sessions WHERE id = $1")
                    .bind(session_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("session"))
            }

            async fn list_user_sessions(&self, org_id: Uuid, user_id: Uuid) -> Result<Vec<Session>> {
                sqlx::query_as::<_, Session>(
                    "SELECT * FROM sessions WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC, id",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("session"))
            }

            async fn revoke_session(&self, org_id: Uuid, session_id: Uuid) -> Result<()> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = COALESCE(revoked_at, $1) WHERE org_id = $2 AND id = $3",
                )
                .bind(now_ns())
                .bind(org_id)
                .bind(session_id)
                .execute(&self.pool)
                .await
                .map_err(db_err("session"))?;
                Self::expect_row(done.rows_affected(), "session")
            }

            async fn revoke_user_sessions(&self, org_id: Uuid, user_id: Uuid) -> Result<u64> {
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(now_ns())
                .bind(org_id)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(db_err("session"))?;
                Ok(done.rows_affected())
            }

            async fn purge_expired_sessions(&self, before_ns: i64) -> Result<u64> {
                let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
                    .bind(before_ns)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("session"))?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_session_store;
