//! The `InvitationStore` SQL, written once for both backends. Invitations: create, look up by token hash, list,
//! delete, and the atomic claim-then-create-user acceptance.
//!
//! Owns the queries on the `invitations` table (plus the user an acceptance creates). Must not touch: connecting, pools or migrations
//! (`sqlite`, `postgres`, `migrations`), nor another area's rows except where said above.

/// Implements `InvitationStore` for a backend struct with a sqlx `pool` and the `sql` helpers; expanded by
/// `impl_sql_metastore!`.
macro_rules! impl_invitation_store {
    ($store:ty) => {
        #[async_trait]
        impl $crate::metastore::InvitationStore for $store {
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
                Self::expect_row(Self::insert_user(&mut tx, &user).await?, "org")?;
                tx.commit().await.map_err(db_err("invitation"))?;
                Ok(user)
            }
        }
    };
}

pub(crate) use impl_invitation_store;
