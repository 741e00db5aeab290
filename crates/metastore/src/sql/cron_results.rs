//! The `CronResultStore` SQL, written once for both backends: record one run's result (once per run, trimmed to the
//! newest N of its script) and list a script's results.
//!
//! Owns the queries on the `cron_script_results` table. Must not touch: connecting, pools or migrations, nor the
//! `cron_scripts` rows (read only, to check the script is the caller's org's).

/// Implements `CronResultStore` for a backend struct with a sqlx `pool`; expanded by `impl_sql_metastore!`.
macro_rules! impl_cron_result_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::CronResultStore for $store {
            async fn record_cron_result(&self, result: NewCronResult, keep: u32) -> Result<bool> {
                check_text("cron result error", &result.error)?;
                // The script must be the org's; a run already stored (same script, vizier and time) is left alone,
                // so a result the vizier sends twice counts once.
                let done = sqlx::query(
                    "INSERT INTO cron_script_results (id, org_id, cron_id, vizier_id, run_at, duration_ns, \
                     error_code, error, records, bytes, received_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
                     WHERE EXISTS (SELECT 1 FROM cron_scripts WHERE id = $3 AND org_id = $2) \
                     ON CONFLICT (cron_id, vizier_id, run_at) DO NOTHING",
                )
                .bind(Uuid::new_v4())
                .bind(result.org_id)
                .bind(result.cron_id)
                .bind(result.vizier_id)
                .bind(result.run_at)
                .bind(result.duration_ns)
                .bind(result.error_code)
                .bind(&result.error)
                .bind(result.records)
                .bind(result.bytes)
                .bind(now_ns())
                .execute(&self.pool)
                .await
                .map_err(db_err("cron result"))?;
                if done.rows_affected() == 0 {
                    // Either the run is stored already or the script is not the org's (deleted meanwhile).
                    self.get_cron_script(result.org_id, result.cron_id).await?;
                    return Ok(false);
                }
                sqlx::query(
                    "DELETE FROM cron_script_results WHERE cron_id = $1 AND id NOT IN \
                     (SELECT id FROM cron_script_results WHERE cron_id = $1 \
                      ORDER BY run_at DESC, vizier_id DESC LIMIT $2)",
                )
                .bind(result.cron_id)
                .bind(i64::from(keep))
                .execute(&self.pool)
                .await
                .map_err(db_err("cron result"))?;
                Ok(true)
            }

            async fn list_cron_results(&self, org_id: Uuid, cron_id: Uuid) -> Result<Vec<CronResult>> {
                sqlx::query_as::<_, CronResult>(
                    "SELECT * FROM cron_script_results WHERE org_id = $1 AND cron_id = $2 ORDER BY run_at, vizier_id",
                )
                .bind(org_id)
                .bind(cron_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("cron result"))
            }
        }
    };
}

pub(crate) use impl_cron_result_store;
