//! The `SettingStore` SQL, written once for both backends. User and org settings: get, upsert and list, each checked
//! against the caller's org.
//!
//! Owns the queries on the `user_settings` and `org_settings` tables. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `SettingStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_setting_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::SettingStore for $store {
            async fn get_user_setting(&self, org_id: Uuid, user_id: Uuid, key: &str) -> Result<Option<String>> {
                check_text("setting key", key)?;
                self.ensure_user_in_org(org_id, user_id).await?;
                sqlx::query_scalar::<_, String>("SELECT value FROM user_settings WHERE user_id = $1 AND key = $2")
                    .bind(user_id)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err("user setting"))
            }

            async fn put_user_setting(&self, org_id: Uuid, user_id: Uuid, key: &str, value: &str) -> Result<()> {
                check_name("setting key", key)?;
                check_text("setting value", value)?;
                let done = sqlx::query(
                    "INSERT INTO user_settings (user_id, key, value) SELECT $1, $2, $3 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND org_id = $4) \
                     ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(user_id)
                .bind(key)
                .bind(value)
                .bind(org_id)
                .execute(&self.pool)
                .await
                .map_err(db_err("user setting"))?;
                Self::expect_row(done.rows_affected(), "user")
            }

            async fn list_user_settings(&self, org_id: Uuid, user_id: Uuid) -> Result<Vec<Setting>> {
                self.ensure_user_in_org(org_id, user_id).await?;
                sqlx::query_as::<_, Setting>("SELECT key, value FROM user_settings WHERE user_id = $1 ORDER BY key")
                    .bind(user_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("user setting"))
            }

            async fn get_org_setting(&self, org_id: Uuid, key: &str) -> Result<Option<String>> {
                check_text("setting key", key)?;
                self.get_org(org_id).await?;
                sqlx::query_scalar::<_, String>("SELECT value FROM org_settings WHERE org_id = $1 AND key = $2")
                    .bind(org_id)
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err("org setting"))
            }

            async fn put_org_setting(&self, org_id: Uuid, key: &str, value: &str) -> Result<()> {
                check_name("setting key", key)?;
                check_text("setting value", value)?;
                let done = sqlx::query(
                    "INSERT INTO org_settings (org_id, key, value) SELECT $1, $2, $3 \
                     WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $1) \
                     ON CONFLICT (org_id, key) DO UPDATE SET value = excluded.value",
                )
                .bind(org_id)
                .bind(key)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(db_err("org setting"))?;
                Self::expect_row(done.rows_affected(), "org")
            }

            async fn list_org_settings(&self, org_id: Uuid) -> Result<Vec<Setting>> {
                self.get_org(org_id).await?;
                sqlx::query_as::<_, Setting>("SELECT key, value FROM org_settings WHERE org_id = $1 ORDER BY key")
                    .bind(org_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("org setting"))
            }
        }
    };
}

pub(crate) use impl_setting_store;
