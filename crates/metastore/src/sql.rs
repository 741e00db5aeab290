//! The SQL both backends run, written once: a macro that implements `Metastore` for a struct with a sqlx `pool`.
//!
//! Owns every query string and the transaction logic (invitation acceptance, admin bootstrap, kv races).
//! Must not touch: connecting, pool options or migrations (see `sqlite`, `postgres`, `migrations`).
//!
//! The SQL is the common subset of SQLite and PostgreSQL 15: `$n` placeholders (SQLite reads `$1` as parameter 1),
//! `ON CONFLICT`, `RETURNING`, and `INSERT … SELECT … WHERE EXISTS` to insert a child row only if its parent is in the
//! caller's org, atomically. Every query is a static string with bound parameters; no text is ever spliced into SQL.
//! A macro rather than generics: sqlx's per-backend bounds (executor, encode, decode) make a generic impl brittle,
//! while the macro expands to plain concrete code the compiler checks for each backend.

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
                let done =
                    sqlx::query(sql).bind(org_id).bind(id).execute(&self.pool).await.map_err(db_err(entity))?;
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

            /// Checks the row count of a statement that should touch one row: zero rows is `NotFound { entity }`.
            fn expect_row(rows: u64, entity: &'static str) -> Result<()> {
                if rows == 0 { Err(MetastoreError::NotFound { entity }) } else { Ok(()) }
            }

            /// Runs `sql`, an UPDATE of one key row binding `$1` = now, `$2` = org id, `$3` = key id (revoke
            /// and touch, for API and deploy keys alike); no such key in the org is `NotFound { entity }`.
            async fn update_key_row(&self, sql: &'static str, entity: &'static str, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let done = sqlx::query(sql)
                    .bind(now_ns())
                    .bind(org_id)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err(entity))?;
                Self::expect_row(done.rows_affected(), entity)
            }
        }

        #[async_trait]
        impl Metastore for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn health_check(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(db_err("database"))
            }

            // ---- orgs ----

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

            // ---- users ----

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
                let done = sqlx::query(
                    "INSERT INTO users (id, org_id, email, email_lower, display_name, password_hash, role, \
                     must_change_password, created_at, updated_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $9 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
                )
                .bind(user.id)
                .bind(user.org_id)
                .bind(&user.email)
                .bind(email_key(&user.email))
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.must_change_password)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(db_err("user"))?;
                Self::expect_row(done.rows_affected(), "org")?;
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
                sqlx::query(
                    "INSERT INTO users (id, org_id, email, email_lower, display_name, password_hash, role, \
                     must_change_password, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(user.id)
                .bind(user.org_id)
                .bind(&user.email)
                .bind(email_key(&user.email))
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.must_change_password)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err("user"))?;
                tx.commit().await.map_err(db_err("user"))?;
                Ok(Some(user))
            }

            // ---- invitations ----

            async fn create_invitation(&self, new: NewInvitation) -> Result<Invitation> {
                check_name("email", &new.email)?;
                check_name("token hash", &new.token_hash)?;
                let inv = Invitation {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    email: new.email,
                    role: new.role,
                    token_hash: new.token_hash,
                    expires_at: new.expires_at,
                    accepted_at: None,
                    created_by: new.created_by,
                    created_at: now_ns(),
                };
                let done = sqlx::query(
                    "INSERT INTO invitations (id, org_id, email, role, token_hash, expires_at, created_by, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2) \
                     AND ($7 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $7 AND org_id = $2))",
                )
                .bind(inv.id)
                .bind(inv.org_id)
                .bind(&inv.email)
                .bind(inv.role.as_str())
                .bind(&inv.token_hash)
                .bind(inv.expires_at)
                .bind(inv.created_by)
                .bind(inv.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("invitation"))?;
                if done.rows_affected() == 0 {
                    return Err(self.missing_org_or_user(inv.org_id).await);
                }
                Ok(inv)
            }

            async fn get_invitation_by_token_hash(&self, token_hash: &str) -> Result<Invitation> {
                check_text("token hash", token_hash)?;
                sqlx::query_as::<_, Invitation>("SELECT * FROM invitations WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("invitation"))
            }

            async fn list_invitations(&self, org_id: Uuid) -> Result<Vec<Invitation>> {
                let sql = "SELECT * FROM invitations WHERE org_id = $1 ORDER BY created_at DESC, id";
                self.org_rows(sql, "invitation", org_id).await
            }

            async fn delete_invitation(&self, org_id: Uuid, invitation_id: Uuid) -> Result<()> {
                let sql = "DELETE FROM invitations WHERE org_id = $1 AND id = $2";
                self.delete_org_row(sql, "invitation", org_id, invitation_id).await
            }

            async fn accept_invitation(
                &self,
                token_hash: &str,
                display_name: &str,
                password_hash: &str,
            ) -> Result<User> {
                check_text("token hash", token_hash)?;
                check_text("display name", display_name)?;
                check_name("password hash", password_hash)?;
                let now = now_ns();
                let mut tx = self.pool.begin().await.map_err(db_err("invitation"))?;
                // Claim first (a write), so two acceptances cannot both succeed on either backend.
                let claimed = sqlx::query_as::<_, Invitation>(
                    "UPDATE invitations SET accepted_at = $1 \
                     WHERE token_hash = $2 AND accepted_at IS NULL AND expires_at > $1 RETURNING *",
                )
                .bind(now)
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err("invitation"))?;
                let Some(inv) = claimed else {
                    let found = sqlx::query_as::<_, Invitation>("SELECT * FROM invitations WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(db_err("invitation"))?;
                    return Err(match found {
                        None => MetastoreError::NotFound { entity: "invitation" },
                        Some(inv) if inv.accepted_at.is_some() => {
                            MetastoreError::invalid("invitation was already accepted")
                        }
                        Some(_) => MetastoreError::invalid("invitation has expired"),
                    });
                };
                let user = User {
                    id: Uuid::new_v4(),
                    org_id: inv.org_id,
                    email: inv.email,
                    display_name: display_name.to_owned(),
                    password_hash: password_hash.to_owned(),
                    role: inv.role,
                    must_change_password: false,
                    created_at: now,
                    updated_at: now,
                };
                sqlx::query(
                    "INSERT INTO users (id, org_id, email, email_lower, display_name, password_hash, role, \
                     must_change_password, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
                )
                .bind(user.id)
                .bind(user.org_id)
                .bind(&user.email)
                .bind(email_key(&user.email))
                .bind(&user.display_name)
                .bind(&user.password_hash)
                .bind(user.role.as_str())
                .bind(user.must_change_password)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err("user"))?;
                tx.commit().await.map_err(db_err("invitation"))?;
                Ok(user)
            }

            // ---- sessions ----

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

            // ---- API keys ----

            async fn create_api_key(&self, new: NewApiKey) -> Result<ApiKey> {
                check_text("description", &new.description)?;
                check_name("key hash", &new.key_hash)?;
                check_text("key prefix", &new.prefix)?;
                let key = ApiKey {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    user_id: new.user_id,
                    description: new.description,
                    key_hash: new.key_hash,
                    prefix: new.prefix,
                    created_at: now_ns(),
                    last_used_at: None,
                    revoked_at: None,
                };
                let done = sqlx::query(
                    "INSERT INTO api_keys (id, org_id, user_id, description, key_hash, prefix, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 \
                     WHERE EXISTS (SELECT 1 FROM users WHERE id = $3 AND org_id = $2)",
                )
                .bind(key.id)
                .bind(key.org_id)
                .bind(key.user_id)
                .bind(&key.description)
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("api key"))?;
                Self::expect_row(done.rows_affected(), "user")?;
                Ok(key)
            }

            async fn list_api_keys(&self, org_id: Uuid, user_id: Option<Uuid>) -> Result<Vec<ApiKey>> {
                sqlx::query_as::<_, ApiKey>(
                    "SELECT * FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR user_id = $2) ORDER BY created_at, id",
                )
                .bind(org_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err("api key"))
            }

            async fn get_api_key(&self, org_id: Uuid, key_id: Uuid) -> Result<ApiKey> {
                self.org_row("SELECT * FROM api_keys WHERE org_id = $1 AND id = $2", "api key", org_id, key_id).await
            }

            async fn get_api_key_by_hash(&self, key_hash: &str) -> Result<ApiKey> {
                check_text("key hash", key_hash)?;
                sqlx::query_as::<_, ApiKey>("SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                    .bind(key_hash)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err("api key"))
            }

            async fn revoke_api_key(&self, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE org_id = $2 AND id = $3";
                self.update_key_row(sql, "api key", org_id, key_id).await
            }

            async fn touch_api_key(&self, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE api_keys SET last_used_at = $1 WHERE org_id = $2 AND id = $3";
                self.update_key_row(sql, "api key", org_id, key_id).await
            }

            // ---- deploy keys ----

            async fn create_deploy_key(&self, new: NewDeployKey) -> Result<DeployKey> {
                check_text("description", &new.description)?;
                check_name("key hash", &new.key_hash)?;
                check_text("key prefix", &new.prefix)?;
                let key = DeployKey {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    created_by: new.created_by,
                    description: new.description,
                    key_hash: new.key_hash,
                    prefix: new.prefix,
                    created_at: now_ns(),
                    last_used_at: None,
                    revoked_at: None,
                };
                let done = sqlx::query(
                    "INSERT INTO deploy_keys (id, org_id, created_by, description, key_hash, prefix, created_at) \
                     SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2) \
                     AND ($3 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $3 AND org_id = $2))",
                )
                .bind(key.id)
                .bind(key.org_id)
                .bind(key.created_by)
                .bind(&key.description)
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err("deploy key"))?;
                if done.rows_affected() == 0 {
                    return Err(self.missing_org_or_user(key.org_id).await);
                }
                Ok(key)
            }

            async fn list_deploy_keys(&self, org_id: Uuid) -> Result<Vec<DeployKey>> {
                let sql = "SELECT * FROM deploy_keys WHERE org_id = $1 ORDER BY created_at, id";
                self.org_rows(sql, "deploy key", org_id).await
            }

            async fn get_deploy_key(&self, org_id: Uuid, key_id: Uuid) -> Result<DeployKey> {
                let sql = "SELECT * FROM deploy_keys WHERE org_id = $1 AND id = $2";
                self.org_row(sql, "deploy key", org_id, key_id).await
            }

            async fn get_deploy_key_by_hash(&self, key_hash: &str) -> Result<DeployKey> {
                check_text("key hash", key_hash)?;
                sqlx::query_as::<_, DeployKey>(
                    "SELECT * FROM deploy_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                )
                .bind(key_hash)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("deploy key"))
            }

            async fn revoke_deploy_key(&self, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE deploy_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE org_id = $2 AND id = $3";
                self.update_key_row(sql, "deploy key", org_id, key_id).await
            }

            async fn touch_deploy_key(&self, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE deploy_keys SET last_used_at = $1 WHERE org_id = $2 AND id = $3";
                self.update_key_row(sql, "deploy key", org_id, key_id).await
            }

            // ---- scripts ----

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

            // ---- viziers ----

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
                sqlx::query_as::<_, Vizier>(
                    "UPDATE viziers SET status = $1, last_heartbeat_ns = $2, version = COALESCE($3, version) \
                     WHERE org_id = $4 AND id = $5 RETURNING *",
                )
                .bind(&update.status)
                .bind(update.last_heartbeat_ns)
                .bind(&update.version)
                .bind(org_id)
                .bind(vizier_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("vizier"))
            }

            async fn delete_vizier(&self, org_id: Uuid, vizier_id: Uuid) -> Result<()> {
                let sql = "DELETE FROM viziers WHERE org_id = $1 AND id = $2";
                self.delete_org_row(sql, "vizier", org_id, vizier_id).await
            }

            // ---- cron scripts ----

            async fn create_cron_script(&self, new: NewCronScript) -> Result<CronScript> {
                check_text("cron script", &new.script)?;
                check_text("cron configs", &new.configs)?;
                check_frequency(new.frequency_s)?;
                let now = now_ns();
                let cron = CronScript {
                    id: Uuid::new_v4(),
                    org_id: new.org_id,
                    script: new.script,
                    cluster_ids: new.cluster_ids,
                    frequency_s: new.frequency_s,
                    enabled: new.enabled,
                    configs: new.configs,
                    created_at: now,
                    updated_at: now,
                };
                let done = sqlx::query(
                    "INSERT INTO cron_scripts (id, org_id, script, cluster_ids, frequency_s, enabled, configs, \
                     created_at, updated_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $8 \
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
                sqlx::query_as::<_, CronScript>(
                    "SELECT * FROM cron_scripts WHERE enabled = $1 ORDER BY created_at, id",
                )
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
                check_frequency(update.frequency_s)?;
                sqlx::query_as::<_, CronScript>(
                    "UPDATE cron_scripts SET script = $1, cluster_ids = $2, frequency_s = $3, enabled = $4, \
                     configs = $5, updated_at = $6 WHERE org_id = $7 AND id = $8 RETURNING *",
                )
                .bind(&update.script)
                .bind(Json(&update.cluster_ids))
                .bind(update.frequency_s)
                .bind(update.enabled)
                .bind(&update.configs)
                .bind(now_ns())
                .bind(org_id)
                .bind(cron_id)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err("cron script"))
            }

            async fn delete_cron_script(&self, org_id: Uuid, cron_id: Uuid) -> Result<()> {
                let sql = "DELETE FROM cron_scripts WHERE org_id = $1 AND id = $2";
                self.delete_org_row(sql, "cron script", org_id, cron_id).await
            }

            // ---- settings ----

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

            // ---- global kv ----

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
                let done =
                    sqlx::query("DELETE FROM kv WHERE key = $1").bind(key).execute(&self.pool).await.map_err(db_err("kv entry"))?;
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

pub(crate) use impl_sql_metastore;

/// `Invalid` unless the cron period is positive.
pub(crate) fn check_frequency(frequency_s: i64) -> crate::error::Result<()> {
    if frequency_s <= 0 {
        return Err(crate::error::MetastoreError::invalid(format!(
            "cron frequency must be a positive number of seconds, got {frequency_s}"
        )));
    }
    Ok(())
}
