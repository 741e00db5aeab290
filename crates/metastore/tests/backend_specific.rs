//! Tests that need one backend's specifics: a Postgres server restart under a live metastore, reconnecting to the
//! same database (migrations applied once), an unreachable server, and a SQLite file surviving a reopen.
//!
//! Owns nothing shared: each test here builds its own store. Must not touch: the shared `PgServer::shared()`
//! server's lifecycle (the restart test starts and stops its own server).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_metastore::prelude::*;
use loupe_metastore::{ConnectOptions, MetastoreError};

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
