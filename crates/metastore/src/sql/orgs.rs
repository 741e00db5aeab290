//! The `OrgStore` SQL, written once for both backends. Orgs: create, look up, list and delete (the delete cascades to
//! everything the org owns).
//!
//! Owns the queries on the `orgs` table. Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `OrgStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_org_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::OrgStore for $store {
            async fn create_org(&self, name: &str) -> Result<Org> {
                check_name("org name", name)?;
                let org = Org { id: Uuid::new_v4(), name: name.to_owned(), created_at: now_ns() };
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(org.id)
                    .bind(&org.name)
                    .bind(org.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("org"))?;
                Ok(org)
            }

            async fn get_org(&self, org_id: Uuid) -> Result<Org> {
                sqlx::query_as::<_, Org>("SELECT * FROM orgs WHERE id = $1")
                    .bind(org_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("org"))
            }

            async fn get_org_by_name(&self, name: &str) -> Result<Org> {
                check_text("org name", name)?;
                sqlx::query_as::<_, Org>("SELECT * FROM orgs WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("org"))
            }

            async fn list_orgs(&self) -> Result<Vec<Org>> {
                sqlx::query_as::<_, Org>("SELECT * FROM orgs ORDER BY name, id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err("org"))
            }

            async fn delete_org(&self, org_id: Uuid) -> Result<()> {
                let done = sqlx::query("DELETE FROM orgs WHERE id = $1")
                    .bind(org_id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err("org"))?;
                Self::expect_row(done.rows_affected(), "org")
            }
        }
    };
}

pub(crate) use impl_org_store;
