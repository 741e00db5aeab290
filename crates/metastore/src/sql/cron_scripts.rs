//! The `CronScriptStore` SQL, written once for both backends. Cron scripts: create, look up, list (per org, or every
//! enabled one for the scheduler), update, delete. A script's name is fixed at creation.
//!
//! Owns the queries on the `cron_scripts` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

use crate::error::{MetastoreError, Result};

/// Implements `CronScriptStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_cron_script_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::CronScriptStore for $store {
            async fn create_cron_script(&self, new: NewCronScript) -> Result<CronScript> {
                check_name("cron script name", &new.name)?;
                check_text("cron script", &new.script)?;
                check_text("cron configs", &new.configs)?;
                $crate::sql::cron_scripts::check_schedule(new.frequency_s, &new.cron_expr)?;
                let now = now_ns();
                let cron = CronScript {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    name: new.name,
                    script: new.script,
                    cluster_ids: new.cluster_ids,
                    frequency_s: new.frequency_s,
                    cron_expr: new.cron_expr,
                    enabled: new.enabled,
                    configs: new.configs,
                    created_at: now,
                    updated_at: now,
                };
                let done = sqlx::query(
                    "INSERT INTO cron_scripts (id, org_id, script, cluster_ids, frequency_s, enabled, configs, \
                     created_at, updated_at, name, cron_expr) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10 \
                     WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                )
                .bind(cron.id)
                .bind(cron.org_id)
                .bind(&cron.script)
                .bind(Json(&cron.cluster_ids))
                .bind(cron.frequency_s)
                .bind(cron.enabled)
                .bind(&cron.configs)
                .bind(now)
                .bind(&cron.name)
                .bind(&cron.cron_expr)
                .execute(&self.pool)
                .await
                .map_err(db_err("cron script"))?;
                Self::expect_row(done.rows_affected(), "org")?;
                Ok(cron)
            }

            async fn get_cron_script(&self, org_id: Uuid, cron_id: Uuid) -> Result<CronScript> {
                let sql = "SELECT * FROM cron_scripts WHERE org_id = $1 AND id = $2";
                self.org_row(sql, "cron script", org_id, cron_id).await
            }

            async fn list_cron_scripts(&self, org_id: Uuid) -> Result<Vec<CronScript>> {
                let sql = "SELECT * FROM cron_scripts WHERE org_id = $1 ORDER BY created_at, id";
                self.org_rows(sql, "cron script", org_id).await
            }

            async fn list_enabled_cron_scripts(&self) -> Result<Vec<CronScript>> {
                sqlx::query_as::<_, CronScript>("SELECT * FROM cron_scripts WHERE enabled = $1 ORDER BY created_at, id")
                    .bind(true)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("cron script"))
            }

            async fn update_cron_script(
                &self,
                org_id: Uuid,
                cron_id: Uuid,
                update: CronScriptUpdate,
            ) -> Result<CronScript> {
                check_text("cron script", &update.script)?;
                check_text("cron configs", &update.configs)?;
                $crate::sql::cron_scripts::check_schedule(update.frequency_s, &update.cron_expr)?;
                sqlx::query_as::<_, CronScript>(
                    "UPDATE cron_scripts SET script = $1, cluster_ids = $2, frequency_s = $3, enabled = $4, \
                     configs = $5, updated_at = $6, cron_expr = $9 WHERE org_id = $7 AND id = $8 RETURNING *",
                )
                .bind(&update.script)
                .bind(Json(&update.cluster_ids))
                .bind(update.frequency_s)
                .bind(update.enabled)
                .bind(&update.configs)
                .bind(now_ns())
                .bind(org_id)
                .bind(cron_id)
                .bind(&update.cron_expr)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("cron script"))
            }

            async fn delete_cron_script(&self, org_id: Uuid, cron_id: Uuid) -> Result<()> {
                let sql = "DELETE FROM cron_scripts WHERE org_id = $1 AND id = $2";
                self.delete_org_row(sql, "cron script", org_id, cron_id).await
            }
        }
    };
}

pub(crate) use impl_cron_script_store;

/// `Invalid` unless the schedule is exactly one of a positive period and a cron expression (which the cloud's
/// cron service parses; the store only keeps its text).
pub(crate) fn check_schedule(frequency_s: i64, cron_expr: &str) -> Result<()> {
    crate::model::check_text("cron expression", cron_expr)?;
    let has_expr = !cron_expr.trim().is_empty();
    if frequency_s < 0 || (frequency_s == 0 && !has_expr) {
        return Err(MetastoreError::invalid(format!(
            "cron frequency must be a positive number of seconds, got {frequency_s}"
        )));
    }
    if frequency_s > 0 && has_expr {
        return Err(MetastoreError::invalid("a cron script has a period or a cron expression, not both"));
    }
    Ok(())
}
