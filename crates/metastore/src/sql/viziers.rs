//! The `VizierStore` SQL, written once for both backends. Viziers: register, look up by id or name, list, record
//! status reports, delete.
//!
//! Owns the queries on the `viziers` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `VizierStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_vizier_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::VizierStore for $store {
            async fn create_vizier(&self, new: NewVizier) -> Result<Vizier> {
                check_name("vizier name", &new.name)?;
                check_text("cluster uid", &new.cluster_uid)?;
                check_text("vizier version", &new.version)?;
                let vizier = Vizier {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    name: new.name,
                    cluster_uid: new.cluster_uid,
                    status: VIZIER_INITIAL_STATUS.to_owned(),
                    last_heartbeat_ns: None,
                    version: new.version,
                    created_at: now_ns(),
                    num_agents: 0,
                    address: String::new(),
                };
                let done = sqlx::query(
                    "INSERT INTO viziers (id, org_id, name, cluster_uid, status, version, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                )
                .bind(vizier.id)
                .bind(vizier.org_id)
                .bind(&vizier.name)
                .bind(&vizier.cluster_uid)
                .bind(&vizier.status)
                .bind(&vizier.version)
                .bind(vizier.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("vizier"))?;
                Self::expect_row(done.rows_affected(), "org")?;
                Ok(vizier)
            }

            async fn get_vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<Vizier> {
                self.org_row("SELECT * FROM viziers WHERE org_id = $1 AND id = $2", "vizier", org_id, vizier_id).await
            }

            async fn get_vizier_by_name(&self, org_id: Uuid, name: &str) -> Result<Vizier> {
                check_text("vizier name", name)?;
                sqlx::query_as::<_, Vizier>("SELECT * FROM viziers WHERE org_id = $1 AND name = $2")
                    .bind(org_id)
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("vizier"))
            }

            async fn list_viziers(&self, org_id: Uuid) -> Result<Vec<Vizier>> {
                self.org_rows("SELECT * FROM viziers WHERE org_id = $1 ORDER BY name, id", "vizier", org_id).await
            }

            async fn update_vizier_status(
                &self,
                org_id: Uuid,
                vizier_id: Uuid,
                update: VizierStatusUpdate,
            ) -> Result<Vizier> {
                check_name("vizier status", &update.status)?;
                if let Some(version) = &update.version {
                    check_text("vizier version", version)?;
                }
                if let Some(address) = &update.address {
                    check_text("vizier address", address)?;
                }
                if update.num_agents.is_some_and(|n| n < 0) {
                    return Err(MetastoreError::invalid("vizier agent count must not be negative"));
                }
                sqlx::query_as::<_, Vizier>(
                    "UPDATE viziers SET status = $1, last_heartbeat_ns = $2, version = COALESCE($3, version), \
                     num_agents = COALESCE($6, num_agents), address = COALESCE($7, address) \
                     WHERE org_id = $4 AND id = $5 RETURNING *",
                )
                .bind(&update.status)
                .bind(update.last_heartbeat_ns)
                .bind(&update.version)
                .bind(org_id)
                .bind(vizier_id)
                .bind(update.num_agents)
                .bind(&update.address)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("vizier"))
            }

            async fn delete_vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<()> {
                let sql = "DELETE FROM viziers WHERE org_id = $1 AND id = $2";
                self.delete_org_row(sql, "vizier", org_id, vizier_id).await
            }
        }
    };
}

pub(crate) use impl_vizier_store;
