//! The `ScriptStore` SQL, written once for both backends. Saved scripts: create, update, look up by name, list and
//! delete, unique per org.
//!
//! Owns the queries on the `scripts` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `ScriptStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_script_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::ScriptStore for $store {
            async fn create_script(&self, new: NewScript) -> Result<Script> {
                check_name("script name", &new.name)?;
                check_text("pxl", &new.pxl)?;
                check_text("vis", &new.vis)?;
                check_text("description", &new.description)?;
                let now = now_ns();
                let script = Script {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    name: new.name,
                    pxl: new.pxl,
                    vis: new.vis,
                    description: new.description,
                    created_at: now,
                    updated_at: now,
                };
                let done = sqlx::query(
                    "INSERT INTO scripts (id, org_id, name, pxl, vis, description, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $7 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                )
                .bind(script.id)
                .bind(script.org_id)
                .bind(&script.name)
                .bind(&script.pxl)
                .bind(&script.vis)
                .bind(&script.description)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_err("script"))?;
                Self::expect_row(done.rows_affected(), "org")?;
                Ok(script)
            }

            async fn update_script(&self, org_id: Uuid, name: &str, update: ScriptUpdate) -> Result<Script> {
                check_text("script name", name)?;
                check_text("pxl", &update.pxl)?;
                check_text("vis", &update.vis)?;
                check_text("description", &update.description)?;
                sqlx::query_as::<_, Script>(
                    "UPDATE scripts SET pxl = $1, vis = $2, description = $3, updated_at = $4 \
                     WHERE org_id = $5 AND name = $6 RETURNING *",
                )
                .bind(&update.pxl)
                .bind(&update.vis)
                .bind(&update.description)
                .bind(now_ns())
                .bind(org_id)
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("script"))
            }

            async fn get_script(&self, org_id: Uuid, name: &str) -> Result<Script> {
                check_text("script name", name)?;
                sqlx::query_as::<_, Script>("SELECT * FROM scripts WHERE org_id = $1 AND name = $2")
                    .bind(org_id)
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("script"))
            }

            async fn list_scripts(&self, org_id: Uuid) -> Result<Vec<Script>> {
                self.org_rows("SELECT * FROM scripts WHERE org_id = $1 ORDER BY name, id", "script", org_id).await
            }

            async fn delete_script(&self, org_id: Uuid, name: &str) -> Result<()> {
                check_text("script name", name)?;
                let done = sqlx::query("DELETE FROM scripts WHERE org_id = $1 AND name = $2")
                    .bind(org_id)
                    .bind(name)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("script"))?;
                Self::expect_row(done.rows_affected(), "script")
            }
        }
    };
}

pub(crate) use impl_script_store;
