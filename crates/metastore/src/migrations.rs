//! The versioned schema migrations of both backends, embedded in the binary and applied at connect.
//!
//! Owns the list of `migrations/<backend>/NNNN_name.sql` files and the sqlx `Migrator` built from them.
//! Must not touch: queries or connections. Adding a migration means adding a file for BOTH backends and a line to
//! each list below; a unit test fails if a file is not listed.
//!
//! Built by hand rather than with `sqlx::migrate!`: that macro needs sqlx's `macros` feature, which compiles a
//! second copy of the drivers into a proc-macro. The result is the same (embedded SQL, versions, checksums, the
//! `_sqlx_migrations` table), so a database migrated either way stays compatible.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

use crate::error::{MetastoreError, classify};

/// `(version, description, sql)` of each SQLite migration, in order.
pub(crate) const SQLITE: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/sqlite/0001_init.sql")),
    (2, "keys", include_str!("../migrations/sqlite/0002_keys.sql")),
    (3, "vizier_report", include_str!("../migrations/sqlite/0003_vizier_report.sql")),
    (4, "cron", include_str!("../migrations/sqlite/0004_cron.sql")),
];

/// `(version, description, sql)` of each PostgreSQL migration, in order.
pub(crate) const POSTGRES: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../migrations/postgres/0001_init.sql")),
    (2, "keys", include_str!("../migrations/postgres/0002_keys.sql")),
    (3, "vizier_report", include_str!("../migrations/postgres/0003_vizier_report.sql")),
    (4, "cron", include_str!("../migrations/postgres/0004_cron.sql")),
];

/// Maps a migration failure: connection trouble stays `Unavailable`, anything else is `Internal`.
pub(crate) fn migrate_err(backend: &'static str) -> impl Fn(MigrateError) -> MetastoreError {
    move |err| match err {
        MigrateError::Execute(inner) => {
            let detail = inner.to_string();
            match classify(inner, "database") {
                unavailable @ MetastoreError::Unavailable { .. } => unavailable,
                _ => MetastoreError::internal(format!("applying {backend} migrations failed: {detail}")),
            }
        }
        other => MetastoreError::internal(format!("applying {backend} migrations failed: {other}")),
    }
}

/// A sqlx `Migrator` over one backend's list.
pub(crate) fn migrator(list: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = list
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(version, Cow::Borrowed(description), MigrationType::Simple, sql.into_sql_str(), false)
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed_files(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .expect("migrations dir is readable")
            .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|name| name.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    fn check(dir: &str, list: &[(i64, &str, &str)]) {
        let files = listed_files(dir);
        let expected: Vec<String> = list.iter().map(|(v, d, _)| format!("{v:04}_{d}.sql")).collect();
        assert_eq!(files, expected, "every migrations/{dir}/*.sql file must be listed in migrations.rs, in order");
    }

    #[test]
    fn every_migration_file_is_listed() {
        check("sqlite", SQLITE);
        check("postgres", POSTGRES);
        assert_eq!(SQLITE.len(), POSTGRES.len(), "both backends must have the same schema versions");
    }

    #[test]
    fn migrator_keeps_versions_in_order() {
        let versions: Vec<i64> = migrator(POSTGRES).iter().map(|m| m.version).collect();
        assert_eq!(versions, vec![1, 2, 3, 4]);
    }
}
