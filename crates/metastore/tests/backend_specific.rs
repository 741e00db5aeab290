//! Tests that need one backend's specifics: a Postgres server restart under a live metastore, reconnecting to the
//! same database (migrations applied once), an unreachable server, a SQLite file surviving a reopen, and keys of a
//! schema-version-1 database moving into the keys area on both backends.
//!
//! Owns nothing shared: each test here builds its own store. Must not touch: the shared `PgServer::shared()`
//! server's lifecycle (the restart test starts and stops its own server).

use std::borrow::Cow;
use std::error::Error as _;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_metastore::prelude::*;
use loupe_metastore::{ConnectOptions, Key, KeyKind, MetastoreError};
use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use uuid::Uuid;

use loupe_testkit::PgServer;

fn chain(err: &MetastoreError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn assert_unavailable<T: std::fmt::Debug>(result: Result<T, MetastoreError>, started: Instant, what: &str) {
    let elapsed = started.elapsed();
    match result {
        Err(err @ MetastoreError::Unavailable { .. }) => {
            let text = chain(&err);
            eprintln!("{what}: {elapsed:?}: {text}");
            assert!(text.contains("unavailable"), "{what}: unclear message: {text}");
            assert!(elapsed < Duration::from_secs(10), "{what}: took {elapsed:?} to report {text}");
        }
        other => panic!("{what}: expected Unavailable, got {other:?} after {elapsed:?}"),
    }
}

/// Stop the server under a live metastore: calls fail fast with `Unavailable`; restart it: the same instance
/// recovers without being rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_suite() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.expect("join").expect("start a private server");
    let url = server.create_database();
    // Default options: a 3 s acquire timeout.
    let store = loupe_metastore::connect(&url).await.expect("connect");
    let org = store.create_org("before-restart").await.expect("create org");

    let server = Arc::new(server);
    let stopper = Arc::clone(&server);
    tokio::task::spawn_blocking(move || stopper.stop()).await.expect("join").expect("pg_ctl stop");

    let started = Instant::now();
    assert_unavailable(store.get_org(org.id).await, started, "get_org while down");
    let started = Instant::now();
    assert_unavailable(store.create_org("while-down").await, started, "create_org while down");
    let started = Instant::now();
    assert_unavailable(store.health_check().await, started, "health_check while down");

    let starter = Arc::clone(&server);
    tokio::task::spawn_blocking(move || starter.start_again()).await.expect("join").expect("pg_ctl start");

    assert_eq!(store.get_org(org.id).await.expect("read after restart"), org);
    store.create_org("after-restart").await.expect("write after restart");
    store.health_check().await.expect("healthy after restart");
    let names: Vec<String> = store.list_orgs().await.expect("list").into_iter().map(|o| o.name).collect();
    assert_eq!(names, vec!["after-restart".to_owned(), "before-restart".to_owned()]);
}

/// Nothing listens on the port: connecting reports `Unavailable` after the acquire timeout, not a hang or a panic.
#[tokio::test]
async fn postgres_unreachable_at_connect_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let options = ConnectOptions { max_connections: 2, acquire_timeout: Duration::from_secs(1) };
    let started = Instant::now();
    let result =
        loupe_metastore::connect_with(&format!("postgres://postgres:hunter2@127.0.0.1:{port}/x"), &options).await;
    match &result {
        Err(err) => assert!(!chain(err).contains("hunter2"), "the password leaked: {}", chain(err)),
        Ok(_) => panic!("connected to nothing"),
    }
    assert_unavailable(result, started, "connect to a closed port");
}

/// Connecting again (and concurrently) to a migrated database applies nothing twice and sees the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reconnect_is_idempotent() {
    let url = PgServer::shared().create_database();
    let mut connects = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        connects.push(tokio::spawn(async move { loupe_metastore::connect(&url).await }));
    }
    let mut stores: Vec<Arc<dyn Metastore>> = Vec::new();
    for connect in connects {
        stores.push(connect.await.expect("join").expect("concurrent connect and migrate"));
    }
    let org = stores[0].create_org("persisted").await.expect("create");
    let again = loupe_metastore::connect(&url).await.expect("reconnect");
    assert_eq!(again.get_org(org.id).await.expect("visible"), org);
    assert_eq!(again.backend(), "postgres");
}

/// A SQLite file keeps its data across close and reopen, and reopening applies no migration twice.
#[tokio::test]
async fn sqlite_file_survives_reopen() {
    let dir = crate::TempDir::new("reopen");
    let path = dir.path.join("nested.db");
    let options = ConnectOptions::default();
    let first = loupe_metastore::SqliteMetastore::open(&path, &options).await.expect("open");
    let org = first.create_org("kept").await.expect("create");
    first.kv_put_if_absent("signing-key", "k1").await.expect("kv");
    first.close().await;
    drop(first);

    let url = format!("sqlite://{}", path.display());
    let second = loupe_metastore::connect(&url).await.expect("reopen");
    assert_eq!(second.get_org(org.id).await.expect("kept"), org);
    assert_eq!(second.kv_put_if_absent("signing-key", "k2").await.expect("kv"), "k1");
    assert_eq!(second.backend(), "sqlite");
}

/// The ids a schema-version-1 database is seeded with before migration 2 runs.
struct V1Keys {
    org: Uuid,
    owner: Uuid,
    creator: Uuid,
    api: Uuid,
    revoked_api: Uuid,
    deploy: Uuid,
    generated_deploy: Uuid,
}

/// Applies only migration 1 (separate `api_keys` and `deploy_keys`) to `$pool`, as a database made before the keys
/// area was, and fills it with two users, two API keys (one used, one revoked) and two deploy keys (one generated).
/// A macro because the two backends' pools are different types; the statements are the same.
macro_rules! seed_schema_v1 {
    ($pool:expr, $init_sql:literal) => {{
        let pool = $pool;
        let init = Migration::new(
            1,
            Cow::Borrowed("init"),
            MigrationType::Simple,
            include_str!($init_sql).into_sql_str(),
            false,
        );
        Migrator::with_migrations(vec![init]).run(pool).await.expect("migration 1");
        let ids = V1Keys {
            org: Uuid::new_v4(),
            owner: Uuid::new_v4(),
            creator: Uuid::new_v4(),
            api: Uuid::new_v4(),
            revoked_api: Uuid::new_v4(),
            deploy: Uuid::new_v4(),
            generated_deploy: Uuid::new_v4(),
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, 'v1', 1)")
            .bind(ids.org)
            .execute(pool)
            .await
            .expect("org");
        for (id, email) in [(ids.owner, "owner@v1.io"), (ids.creator, "creator@v1.io")] {
            sqlx::query(
                "INSERT INTO users (id, org_id, email, email_lower, display_name, password_hash, role, \
                 must_change_password, created_at, updated_at) VALUES ($1, $2, $3, $3, 'u', 'h', 'admin', $4, 1, 1)",
            )
            .bind(id)
            .bind(ids.org)
            .bind(email)
            .bind(false)
            .execute(pool)
            .await
            .expect("user");
        }
        for (id, hash, last_used, revoked) in
            [(ids.api, "api-hash", Some(5_i64), None), (ids.revoked_api, "old-hash", None, Some(7_i64))]
        {
            sqlx::query(
                "INSERT INTO api_keys (id, org_id, user_id, description, key_hash, prefix, created_at, last_used_at, \
                 revoked_at) VALUES ($1, $2, $3, 'cli', $4, 'px-api-abcde', 2, $5, $6)",
            )
            .bind(id)
            .bind(ids.org)
            .bind(ids.owner)
            .bind(hash)
            .bind(last_used)
            .bind(revoked)
            .execute(pool)
            .await
            .expect("api key");
        }
        for (id, creator, hash) in
            [(ids.deploy, Some(ids.creator), "dep-hash"), (ids.generated_deploy, None, "gen-hash")]
        {
            sqlx::query(
                "INSERT INTO deploy_keys (id, org_id, created_by, description, key_hash, prefix, created_at) \
                 VALUES ($1, $2, $3, 'ci', $4, 'px-dep-abcde', 3)",
            )
            .bind(id)
            .bind(ids.org)
            .bind(creator)
            .bind(hash)
            .execute(pool)
            .await
            .expect("deploy key");
        }
        ids
    }};
}

/// After migration 2, every key of a version-1 database is in the keys area with its kind, owner or creator,
/// hash and times; and the kinds' delete rules hold for the moved rows.
async fn v1_keys_moved(store: &dyn Metastore, ids: &V1Keys) {
    let key = |kind, id, user_id, hash: &str, (created_at, last_used_at, revoked_at)| Key {
        id,
        kind,
        org_id: ids.org,
        user_id,
        description: if kind == KeyKind::Api { "cli" } else { "ci" }.to_owned(),
        key_hash: hash.to_owned(),
        prefix: format!("{}abcde", kind.prefix()),
        created_at,
        last_used_at,
        revoked_at,
    };
    let api = key(KeyKind::Api, ids.api, Some(ids.owner), "api-hash", (2, Some(5), None));
    let revoked = key(KeyKind::Api, ids.revoked_api, Some(ids.owner), "old-hash", (2, None, Some(7)));
    let deploy = key(KeyKind::Deploy, ids.deploy, Some(ids.creator), "dep-hash", (3, None, None));
    let generated = key(KeyKind::Deploy, ids.generated_deploy, None, "gen-hash", (3, None, None));
    let mut apis = vec![api.clone(), revoked];
    apis.sort_by_key(|k| k.id);
    let mut deploys = vec![deploy.clone(), generated];
    deploys.sort_by_key(|k| k.id);
    assert_eq!(store.list_keys(KeyKind::Api, ids.org, None).await.expect("api keys"), apis);
    assert_eq!(store.list_keys(KeyKind::Deploy, ids.org, None).await.expect("deploy keys"), deploys);
    assert_eq!(store.get_key_by_hash(KeyKind::Api, "api-hash").await.expect("by hash"), api);
    assert!(matches!(store.get_key_by_hash(KeyKind::Api, "old-hash").await, Err(MetastoreError::NotFound { .. })));
    assert_eq!(store.get_key_by_hash(KeyKind::Deploy, "dep-hash").await.expect("by hash"), deploy);
    // The owner takes their API keys along; the creator leaves their deploy key behind.
    store.delete_user(ids.org, ids.owner).await.expect("delete owner");
    store.delete_user(ids.org, ids.creator).await.expect("delete creator");
    assert!(store.list_keys(KeyKind::Api, ids.org, None).await.expect("api keys").is_empty());
    assert_eq!(store.get_key(KeyKind::Deploy, ids.org, ids.deploy).await.expect("kept").user_id, None);
}

#[tokio::test]
async fn sqlite_v1_keys_move_to_the_keys_area() {
    let dir = crate::TempDir::new("v1-keys");
    let url = format!("sqlite://{}", dir.path.join("v1.db").display());
    let connect = SqliteConnectOptions::from_str(&url).expect("url").create_if_missing(true).foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(connect).await.expect("open");
    let ids = seed_schema_v1!(&pool, "../migrations/sqlite/0001_init.sql");
    pool.close().await;
    let store = loupe_metastore::connect(&url).await.expect("migrate to the latest version");
    v1_keys_moved(store.as_ref(), &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_v1_keys_move_to_the_keys_area() {
    let url = PgServer::shared().create_database();
    let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.expect("connect");
    let ids = seed_schema_v1!(&pool, "../migrations/postgres/0001_init.sql");
    pool.close().await;
    let store = loupe_metastore::connect(&url).await.expect("migrate to the latest version");
    v1_keys_moved(store.as_ref(), &ids).await;
}
