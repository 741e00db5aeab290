//! The `KeyStore` SQL, written once for both backends and both kinds of key: API keys and deploy keys share the
//! `keys` table and every statement, the kind being one more bound parameter.
//!
//! Owns the queries on the `keys` table and the one rule that differs by kind: an API key has an owner (stored as
//! `owner_id`, so the key dies with its user), a deploy key only an optional creator. Must not touch: connecting,
//! pools or migrations, nor another area's rows.

/// Implements `KeyStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_key_store {
    ($store:ty) => {
        impl $store {
            /// Runs `sql`, an UPDATE of one key row binding `$1` = now, `$2` = kind, `$3` = org id, `$4` = key id
            /// (revoke and touch); no such key of that kind in the org is `NotFound` for the kind's entity.
            async fn update_key_row(&self, sql: &'static str, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let done = sqlx::query(sql)
                    .bind(now_ns())
                    .bind(kind.as_str())
                    .bind(org_id)
                    .bind(key_id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err(kind.entity()))?;
                Self::expect_row(done.rows_affected(), kind.entity())
            }
        }

        #[async_trait]
        impl $crate::metastore::KeyStore for $store {
            async fn create_key(&self, new: NewKey) -> Result<Key> {
                check_text("description", &new.description)?;
                check_name("key hash", &new.key_hash)?;
                check_text("key prefix", &new.prefix)?;
                let owner = match (new.kind, new.user_id) {
                    (KeyKind::Api, None) => return Err(MetastoreError::invalid("an api key needs an owning user")),
                    (KeyKind::Api, owner) => owner,
                    (KeyKind::Deploy, _) => None,
                };
                let key = Key {
                    id: Uuid::new_v4(),
                    kind: new.kind,
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
                    "INSERT INTO keys (id, kind, org_id, owner_id, user_id, description, key_hash, prefix, \
                     created_at) SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9 \
                     WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $3) \
                     AND ($5 IS NULL OR EXISTS (SELECT 1 FROM users WHERE id = $5 AND org_id = $3))",
                )
                .bind(key.id)
                .bind(key.kind.as_str())
                .bind(key.org_id)
                .bind(owner)
                .bind(key.user_id)
                .bind(&key.description)
                .bind(&key.key_hash)
                .bind(&key.prefix)
                .bind(key.created_at)
                .execute(&self.pool)
                .await
                .map_err(db_err(key.kind.entity()))?;
                if done.rows_affected() == 0 {
                    return Err(self.missing_org_or_user(key.org_id).await);
                }
                Ok(key)
            }

            async fn list_keys(&self, kind: KeyKind, org_id: Uuid, user_id: Option<Uuid>) -> Result<Vec<Key>> {
                sqlx::query_as::<_, Key>(
                    "SELECT * FROM keys WHERE kind = $1 AND org_id = $2 AND ($3 IS NULL OR user_id = $3) \
                     ORDER BY created_at, id",
                )
                .bind(kind.as_str())
                .bind(org_id)
                .bind(user_id)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err(kind.entity()))
            }

            async fn get_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<Key> {
                sqlx::query_as::<_, Key>("SELECT * FROM keys WHERE kind = $1 AND org_id = $2 AND id = $3")
                    .bind(kind.as_str())
                    .bind(org_id)
                    .bind(key_id)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err(kind.entity()))
            }

            async fn get_key_by_hash(&self, kind: KeyKind, key_hash: &str) -> Result<Key> {
                check_text("key hash", key_hash)?;
                sqlx::query_as::<_, Key>("SELECT * FROM keys WHERE kind = $1 AND key_hash = $2 AND revoked_at IS NULL")
                    .bind(kind.as_str())
                    .bind(key_hash)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err(kind.entity()))
            }

            async fn revoke_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE keys SET revoked_at = COALESCE(revoked_at, $1) \
                           WHERE kind = $2 AND org_id = $3 AND id = $4";
                self.update_key_row(sql, kind, org_id, key_id).await
            }

            async fn touch_key(&self, kind: KeyKind, org_id: Uuid, key_id: Uuid) -> Result<()> {
                let sql = "UPDATE keys SET last_used_at = $1 WHERE kind = $2 AND org_id = $3 AND id = $4";
                self.update_key_row(sql, kind, org_id, key_id).await
            }
        }
    };
}

pub(crate) use impl_key_store;
