//! The `UserStore` SQL, written once for both backends. Users: create, look up (by id in an org, or by case-folded
//! email), update, delete, and the race-safe first-admin bootstrap.
//!
//! Owns the queries on the `users` table, except the row INSERT (`insert_user` in `sql`, shared with
//! invitations), plus, in the bootstrap transaction only, one `orgs` row and the bootstrap lock row in `kv`.
//! Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `UserStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_user_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::UserStore for $store {
            async fn create_user(&self, new: NewUser) -> Result<User> {
                check_name("email", &new.email)?;
                check_text("display name", &new.display_name)?;
                check_name("password hash", &new.password_hash)?;
                let now = now_ns();
                let user = User {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    email: new.email,
                    display_name: new.display_name,
                    password_hash: new.password_hash,
                    role: new.role,
                    must_change_password: new.must_change_password,
                    created_at: now,
                    updated_at: now,
                };
                let mut conn = self.pool.acquire().await.map_err(db_err("user"))?;
                let inserted = Self::insert_user(&mut conn, &user).await?;
                Self::expect_row(inserted, "org")?;
                Ok(user)
            }

            async fn get_user(&self, org_id: Uuid, user_id: Uuid) -> Result<User> {
                self.org_row("SELECT * FROM users WHERE org_id = $1 AND id = $2", "user", org_id, user_id).await
            }

            async fn get_user_by_email(&self, email: &str) -> Result<User> {
                check_text("email", email)?;
                sqlx::query_as::<_, User>("SELECT * FROM users WHERE email_lower = $1")
                    .bind(email_key(email))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("user"))
            }

            async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>> {
                self.org_rows("SELECT * FROM users WHERE org_id = $1 ORDER BY email_lower, id", "user", org_id).await
            }

            async fn update_user_password(
                &self,
                org_id: Uuid,
                user_id: Uuid,
                password_hash: &str,
                must_change_password: bool,
            ) -> Result<User> {
                check_name("password hash", password_hash)?;
                sqlx::query_as::<_, User>(
                    "UPDATE users SET password_hash = $1, must_change_password = $2, updated_at = $3 \
                     WHERE org_id = $4 AND id = $5 RETURNING *",
                )
                .bind(password_hash)
                .bind(must_change_password)
                .bind(now_ns())
                .bind(org_id)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("user"))
            }

            async fn update_user_display_name(&self, org_id: Uuid, user_id: Uuid, display_name: &str) -> Result<User> {
                check_text("display name", display_name)?;
                sqlx::query_as::<_, User>(
                    "UPDATE users SET display_name = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 RETURNING *",
                )
                .bind(display_name)
                .bind(now_ns())
                .bind(org_id)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("user"))
            }

            async fn set_user_role(&self, org_id: Uuid, user_id: Uuid, role: Role) -> Result<User> {
                sqlx::query_as::<_, User>(
                    "UPDATE users SET role = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 RETURNING *",
                )
                .bind(role.as_str())
                .bind(now_ns())
                .bind(org_id)
                .bind(user_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("user"))
            }

            async fn delete_user(&self, org_id: Uuid, user_id: Uuid) -> Result<()> {
                self.delete_org_row("DELETE FROM users WHERE org_id = $1 AND id = $2", "user", org_id, user_id).await
            }

            async fn create_first_admin(&self, email: &str, password_hash: &str, org_name: &str) -> Result<Option<User>> {
                check_name("email", email)?;
                check_name("password hash", password_hash)?;
                check_name("org name", org_name)?;
                let now = now_ns();
                // The first statement writes a lock row, so racing bootstraps run one after the other: SQLite
                // takes its write lock up front, and Postgres makes the second upsert wait for the first
                // transaction's commit, after which (read committed) it sees the user that one created.
                let mut tx = self.pool.begin().await.map_err(db_err("user"))?;
                sqlx::query(
                    "INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(ADMIN_BOOTSTRAP_KV)
                .bind(now.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err("kv entry"))?;
                let any_user = sqlx::query("SELECT 1 FROM users LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err("user"))?;
                if any_user.is_some() {
                    // Rolled back: the lock row's timestamp records only bootstraps that created the admin.
                    drop(tx);
                    return Ok(None);
                }
                sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
                    .bind(Uuid::new_v4())
                    .bind(org_name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("org"))?;
                let org = sqlx::query_as::<_, Org>("SELECT * FROM orgs WHERE name = $1")
                    .bind(org_name)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err("org"))?;
                let user = User {
                    id: Uuid::new_v4(),
                    org_id: org.id,
                    email: email.to_owned(),
                    display_name: "admin".to_owned(),
                    password_hash: password_hash.to_owned(),
                    role: Role::Admin,
                    must_change_password: true,
                    created_at: now,
                    updated_at: now,
                };
                Self::expect_row(Self::insert_user(&mut tx, &user).await?, "org")?;
                tx.commit().await.map_err(db_err("user"))?;
                Ok(Some(user))
            }
        }
    };
}

pub(crate) use impl_user_store;
