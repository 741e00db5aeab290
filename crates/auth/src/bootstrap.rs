//! The first admin account: its defaults (`admin@default.com` / `admin`, as in Pixie), environment
//! overrides, and the policy that forces a password change at first login.
//!
//! Owns what the bootstrap admin looks like. Must not create the user (the API / `create-admin` job does,
//! through the metastore, only into an empty user table: a deleted bootstrap admin never comes back while
//! any user exists), nor decide which routes a pending change allows (the API
//! enforces that in its types: only password change, logout and `me` accept a caller whose change is pending).
//!
//! Flow: the admin row is created with [`NewAdmin::password_hash`] and `must_change_password = true`. Every
//! token issued for it carries `MustChangePassword = true`, and the API refuses everything but changing the
//! password, logging out and describing the caller. Changing the password clears the flag, calls
//! `revoke_all_for_user`, and issues a fresh token. Because the default password is public, this holds even
//! when `LOUPE_ADMIN_PASSWORD` overrides it (that value sits in a deployment secret, not in the admin's head).

use crate::password::{self, PasswordError};
use crate::token::Role;

/// Pixie's default admin email.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@default.com";
/// Pixie's default admin password; refused by the password policy, so it can never be kept.
pub const DEFAULT_ADMIN_PASSWORD: &str = "admin";
/// Environment variable overriding the admin email.
pub const ADMIN_EMAIL_ENV: &str = "LOUPE_ADMIN_EMAIL";
/// Environment variable overriding the initial admin password.
pub const ADMIN_PASSWORD_ENV: &str = "LOUPE_ADMIN_PASSWORD";

/// Errors reading the bootstrap settings.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// An override is present but unusable.
    #[error("invalid {variable}: {reason}")]
    InvalidSetting {
        /// The environment variable.
        variable: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The initial password could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Credentials for the admin created on first start, only when the metastore has no user at all.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminBootstrap {
    /// Login email.
    pub email: String,
    /// Initial password, to be changed at first login.
    pub password: String,
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBootstrap").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

impl Default for AdminBootstrap {
    fn default() -> Self {
        Self { email: DEFAULT_ADMIN_EMAIL.to_owned(), password: DEFAULT_ADMIN_PASSWORD.to_owned() }
    }
}

/// The admin row to insert: everything the metastore needs, password already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAdmin {
    /// Login email, lowercased.
    pub email: String,
    /// argon2id PHC string of the initial password.
    pub password_hash: String,
    /// Always [`Role::Admin`].
    pub role: Role,
    /// Always `true`: the first login must change the password.
    pub must_change_password: bool,
}

impl AdminBootstrap {
    /// Defaults overridden by `LOUPE_ADMIN_EMAIL` and `LOUPE_ADMIN_PASSWORD` when set.
    pub fn from_env() -> Result<Self, BootstrapError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`AdminBootstrap::from_env`] with a custom variable lookup (tests, config layers).
    ///
    /// A set but empty (or whitespace) value is an error rather than a silent fall back to the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, BootstrapError> {
        let mut admin = Self::default();
        if let Some(email) = lookup(ADMIN_EMAIL_ENV) {
            let email = email.trim().to_lowercase();
            if email.is_empty() {
                return Err(BootstrapError::InvalidSetting { variable: ADMIN_EMAIL_ENV, reason: "empty email" });
            }
            let valid = email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty());
            if !valid || email.chars().any(char::is_whitespace) {
                return Err(BootstrapError::InvalidSetting {
                    variable: ADMIN_EMAIL_ENV,
                    reason: "not an email address",
                });
            }
            admin.email = email;
        }
        if let Some(password) = lookup(ADMIN_PASSWORD_ENV) {
            if password.trim().is_empty() {
                return Err(BootstrapError::InvalidSetting { variable: ADMIN_PASSWORD_ENV, reason: "empty password" });
            }
            admin.password = password;
        }
        Ok(admin)
    }

    /// Whether the public default password is in use (worth a startup warning).
    pub fn uses_default_password(&self) -> bool {
        self.password == DEFAULT_ADMIN_PASSWORD
    }

    /// Hashes the password and returns the row to insert, with `must_change_password = true`.
    pub fn prepare(&self) -> Result<NewAdmin, BootstrapError> {
        Ok(NewAdmin {
            email: self.email.clone(),
            password_hash: password::hash_password(&self.password)?,
            role: Role::Admin,
            must_change_password: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_pixie() {
        let admin = AdminBootstrap::from_lookup(lookup(&[])).expect("defaults");
        assert_eq!(admin.email, "admin@default.com");
        assert_eq!(admin.password, "admin");
        assert!(admin.uses_default_password());
        assert_eq!(admin, AdminBootstrap::default());
    }

    #[test]
    fn env_overrides_apply() {
        let admin = AdminBootstrap::from_lookup(lookup(&[
            (ADMIN_EMAIL_ENV, " Root@Example.com "),
            (ADMIN_PASSWORD_ENV, "s3cret-initial"),
        ]))
        .expect("overrides");
        assert_eq!(admin.email, "root@example.com");
        assert_eq!(admin.password, "s3cret-initial");
        assert!(!admin.uses_default_password());
    }

    #[test]
    fn bad_overrides_are_errors() {
        for (var, value) in [
            (ADMIN_EMAIL_ENV, ""),
            (ADMIN_EMAIL_ENV, "no-at-sign"),
            (ADMIN_EMAIL_ENV, "@example.com"),
            (ADMIN_EMAIL_ENV, "a b@example.com"),
            (ADMIN_PASSWORD_ENV, "  "),
        ] {
            let err = AdminBootstrap::from_lookup(lookup(&[(var, value)])).expect_err("invalid");
            assert!(err.to_string().starts_with(&format!("invalid {var}: ")), "{err}");
        }
    }

    #[test]
    fn prepared_admin_must_change_password() {
        let new = AdminBootstrap::default().prepare().expect("prepare");
        assert!(new.must_change_password);
        assert_eq!(new.role, Role::Admin);
        assert!(crate::verify_password("admin", &new.password_hash).expect("verify"));
        assert!(crate::validate_new_password("admin", &new.email).is_err(), "default can never be kept");
    }

    #[test]
    fn debug_redacts_password() {
        assert!(!format!("{:?}", AdminBootstrap::default()).contains("\"admin\""));
    }
}
