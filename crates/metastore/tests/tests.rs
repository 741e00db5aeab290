//! The metastore's one integration test binary: the shared suite expanded for every backend, plus the tests that
//! only make sense for one backend.
//!
//! Owns `metastore_test_suite!` (quickwit's pattern: one list of behaviours, one expansion per backend) and the
//! per-backend setup. Must not touch: anything outside this crate; Postgres runs in a private temp server
//! (`loupe_testkit::PgServer`), SQLite in memory or in a temp dir.
//!
//! Run: `cargo test -p loupe-metastore` (needs the `postgresql-15` package; as root it runs the server as `postgres`).

mod backend_specific;
mod suite;

use std::sync::Arc;
use std::time::Duration;

use loupe_metastore::{ConnectOptions, Metastore};

/// Expands every test of `suite` as `#[tokio::test]`s in module `$backend`, each on a fresh store from `$setup`
/// (an async expression giving `(Arc<dyn Metastore>, guard)`; the guard lives until the test ends).
macro_rules! metastore_test_suite {
    ($backend:ident, $setup:expr) => {
        metastore_test_suite!(@expand $backend, $setup, [
            orgs_crud_and_unique_names,
            users_crud_and_case_insensitive_email,
            user_updates_and_delete_cascade,
            create_first_admin_only_into_an_empty_user_table,
            create_first_admin_races_create_one,
            invitations_accept_expire_and_double_accept,
            sessions_create_revoke_and_purge,
            api_keys_lifecycle_and_revocation,
            deploy_keys_lifecycle_and_revocation,
            scripts_crud_and_unique_per_org,
            viziers_register_and_report_status,
            cron_scripts_crud,
            cron_scripts_names_and_schedules,
            cron_results_once_per_run_and_trimmed,
            user_and_org_settings,
            kv_put_if_absent_race_has_one_winner,
            org_isolation_for_every_entity,
            sql_metacharacters_round_trip,
            nul_bytes_are_invalid_everywhere,
        ]);
    };
    (@expand $backend:ident, $setup:expr, [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let (store, _guard) = $setup;
                    crate::suite::$test(store).await;
                }
            )*
        }
    };
}

/// Options for suite stores: a generous timeout, since the suite shares two cores with everything else.
pub fn suite_options() -> ConnectOptions {
    ConnectOptions { max_connections: 4, acquire_timeout: Duration::from_secs(20) }
}

/// A fresh private in-memory SQLite store.
pub async fn sqlite_memory() -> (Arc<dyn Metastore>, ()) {
    (loupe_metastore::connect("sqlite::memory:").await.expect("open in-memory sqlite"), ())
}

/// A fresh SQLite file store in a temp dir (removed when the guard drops).
pub async fn sqlite_file() -> (Arc<dyn Metastore>, TempDir) {
    let dir = TempDir::new("sqlite");
    let url = format!("sqlite://{}", dir.path.join("loupe.db").display());
    (loupe_metastore::connect_with(&url, &suite_options()).await.expect("open sqlite file"), dir)
}

/// A fresh database on the shared test PostgreSQL server.
pub async fn postgres() -> (Arc<dyn Metastore>, ()) {
    let url = loupe_testkit::PgServer::shared().create_database();
    (loupe_metastore::connect_with(&url, &suite_options()).await.expect("connect to test postgres"), ())
}

metastore_test_suite!(sqlite_memory, crate::sqlite_memory().await);
metastore_test_suite!(sqlite_file, crate::sqlite_file().await);
metastore_test_suite!(postgres, crate::postgres().await);

/// A temp directory removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// Creates a fresh, empty temp dir whose name starts with `loupe-metastore-<tag>`.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("loupe-metastore-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
