//! The shared metastore test suite: every test here runs against every backend via `metastore_test_suite!`.
//!
//! Owns the behavioural contract of the `Metastore` trait (CRUD, uniqueness, org isolation, invitations, key
//! revocation, races, hostile strings). Must not touch: backend specifics; a test that needs a URL, a file or a
//! server restart belongs in `backend_specific`.

use std::sync::Arc;

use loupe_metastore::prelude::*;
use loupe_metastore::{
    CronScriptUpdate, Key, KeyKind, MetastoreError, NewCronResult, NewCronScript, NewInvitation, NewKey, NewScript,
    NewUser, NewVizier, Org, Role, ScriptUpdate, User, VizierStatusUpdate, now_ns,
};
use uuid::Uuid;

/// Asserts `$result` is `Err($pattern)` (with an optional guard), printing what it was otherwise.
macro_rules! assert_err {
    ($result:expr, $pattern:pat if $guard:expr) => {
        match $result {
            Err($pattern) if $guard => {}
            other => panic!("expected Err({} if {}), got {:?}", stringify!($pattern), stringify!($guard), other),
        }
    };
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!("expected Err({}), got {:?}", stringify!($pattern), other),
        }
    };
}

const HOUR_NS: i64 = 3_600_000_000_000;

async fn org(store: &dyn Metastore, name: &str) -> Org {
    store.create_org(name).await.expect("create org")
}

fn new_user(org_id: Uuid, email: &str) -> NewUser {
    NewUser {
        org_id,
        email: email.to_owned(),
        display_name: format!("name of {email}"),
        password_hash: format!("$argon2id$hash-of-{email}"),
        role: Role::Member,
        must_change_password: false,
    }
}

async fn user(store: &dyn Metastore, org_id: Uuid, email: &str) -> User {
    store.create_user(new_user(org_id, email)).await.expect("create user")
}

fn new_script(org_id: Uuid, name: &str) -> NewScript {
    NewScript {
        org_id,
        name: name.to_owned(),
        pxl: "import px\npx.display(px.DataFrame('http_events'))".to_owned(),
        vis: r#"{"widgets": []}"#.to_owned(),
        description: "shows http".to_owned(),
    }
}

fn new_cron(org_id: Uuid, cluster_ids: Vec<Uuid>) -> NewCronScript {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NewCronScript {
        org_id,
        name: format!("cron-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        cron_expr: String::new(),
        script: "px.display(px.DataFrame('conn_stats'))".to_owned(),
        cluster_ids,
        frequency_s: 60,
        enabled: true,
        configs: "otel:\n  endpoint: collector:4317\n".to_owned(),
    }
}

fn new_vizier(org_id: Uuid, name: &str) -> NewVizier {
    NewVizier { org_id, name: name.to_owned(), cluster_uid: format!("uid-{name}"), version: "0.1.0".to_owned() }
}

pub async fn orgs_crud_and_unique_names(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    store.health_check().await.expect("health check");
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    assert_eq!(store.get_org(a.id).await.expect("get org"), a);
    assert_eq!(store.get_org_by_name("beta").await.expect("by name"), b);
    assert_eq!(store.list_orgs().await.expect("list"), vec![a.clone(), b.clone()]);
    assert_err!(store.create_org("acme").await, MetastoreError::AlreadyExists { entity: "org" });
    assert_err!(store.create_org("  ").await, MetastoreError::Invalid { .. });
    assert_err!(store.get_org(Uuid::new_v4()).await, MetastoreError::NotFound { entity: "org" });
    assert_err!(store.get_org_by_name("ACME").await, MetastoreError::NotFound { .. });

    // Deleting an org cascades to everything it owns.
    let u = user(store, b.id, "someone@beta.io").await;
    store.create_script(new_script(b.id, "beta/s")).await.expect("script");
    store.delete_org(b.id).await.expect("delete org");
    assert_err!(store.get_org(b.id).await, MetastoreError::NotFound { .. });
    assert_err!(store.get_user_by_email(&u.email).await, MetastoreError::NotFound { entity: "user" });
    assert_err!(store.delete_org(b.id).await, MetastoreError::NotFound { entity: "org" });
    assert_eq!(store.list_orgs().await.expect("list"), vec![a]);
}

pub async fn users_crud_and_case_insensitive_email(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let zed = user(store, a.id, "Zed@Example.com").await;
    let amy = user(store, a.id, "amy@example.com").await;
    let uli = user(store, a.id, "ÜLI@例え.jp").await;
    assert_eq!(zed.email, "Zed@Example.com", "the email is stored as entered");
    assert!(!zed.must_change_password);
    assert_eq!(store.get_user(a.id, zed.id).await.expect("get"), zed);
    assert_eq!(store.get_user_by_email("zed@example.COM").await.expect("by email"), zed);
    assert_eq!(store.get_user_by_email("üli@例え.jp").await.expect("unicode fold"), uli);
    assert_eq!(store.list_users(a.id).await.expect("list"), vec![amy.clone(), zed.clone(), uli]);
    assert!(store.list_users(b.id).await.expect("list b").is_empty());

    // Email is unique case-insensitively, across all orgs.
    assert_err!(
        store.create_user(new_user(a.id, "ZED@example.com")).await,
        MetastoreError::AlreadyExists { entity: "user" }
    );
    assert_err!(
        store.create_user(new_user(b.id, "amy@EXAMPLE.com")).await,
        MetastoreError::AlreadyExists { entity: "user" }
    );
    assert_err!(store.create_user(new_user(Uuid::new_v4(), "x@y.z")).await, MetastoreError::NotFound { entity: "org" });
    assert_err!(store.create_user(new_user(a.id, "")).await, MetastoreError::Invalid { .. });
    assert_err!(store.get_user(a.id, Uuid::new_v4()).await, MetastoreError::NotFound { entity: "user" });
    assert_err!(store.get_user_by_email("nobody@example.com").await, MetastoreError::NotFound { entity: "user" });
}

pub async fn user_updates_and_delete_cascade(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let u = user(store, a.id, "u@acme.io").await;

    let before = now_ns();
    let changed = store.update_user_password(a.id, u.id, "$argon2id$new", true).await.expect("password");
    let after = now_ns();
    assert_eq!(changed.password_hash, "$argon2id$new");
    assert!(changed.must_change_password);
    // Stamped by this update, not kept from the creation.
    assert!((before..=after).contains(&changed.updated_at), "{before} <= {} <= {after}", changed.updated_at);
    assert_eq!(changed.created_at, u.created_at);
    let changed = store.update_user_display_name(a.id, u.id, "Ulla").await.expect("display name");
    assert_eq!(changed.display_name, "Ulla");
    let changed = store.set_user_role(a.id, u.id, Role::Admin).await.expect("role");
    assert_eq!(changed.role, Role::Admin);
    assert_eq!(store.get_user(a.id, u.id).await.expect("get"), changed);
    assert_err!(store.update_user_password(a.id, u.id, "", false).await, MetastoreError::Invalid { .. });

    // Deleting a user removes their sessions, API keys and settings.
    let session = store.create_session(a.id, u.id, now_ns() + HOUR_NS).await.expect("session");
    let key = store.create_key(api_key(a.id, u.id, "h-del")).await.expect("key");
    store.put_user_setting(a.id, u.id, "theme", "dark").await.expect("setting");
    store.delete_user(a.id, u.id).await.expect("delete");
    assert_err!(store.get_user(a.id, u.id).await, MetastoreError::NotFound { entity: "user" });
    assert_err!(store.get_session(session.id).await, MetastoreError::NotFound { entity: "session" });
    assert_err!(store.get_key(KeyKind::Api, a.id, key.id).await, MetastoreError::NotFound { .. });
    assert_err!(store.delete_user(a.id, u.id).await, MetastoreError::NotFound { entity: "user" });
    // The email is free again.
    user(store, a.id, "U@acme.io").await;
}

pub async fn create_first_admin_only_into_an_empty_user_table(store: Arc<dyn Metastore>) {
    let admin = store
        .create_first_admin("admin@default.com", "$argon2id$admin", "default")
        .await
        .expect("bootstrap")
        .expect("created into an empty table");
    assert_eq!(admin.role, Role::Admin);
    assert!(admin.must_change_password, "the bootstrap admin must change the default password");
    let default_org = store.get_org_by_name("default").await.expect("org created");
    assert_eq!(admin.org_id, default_org.id);

    // A second run (any casing) creates nothing and leaves the admin unchanged.
    store.update_user_password(default_org.id, admin.id, "$argon2id$changed", false).await.expect("change");
    assert_eq!(store.create_first_admin("ADMIN@default.com", "$argon2id$admin", "default").await.expect("again"), None);
    assert_eq!(store.get_user_by_email("admin@default.com").await.expect("admin").password_hash, "$argon2id$changed");
    assert_eq!(store.list_orgs().await.expect("orgs").len(), 1);

    // The attack of the security review: a real admin exists, the default one is deleted; a restart must not
    // bring `admin@default.com` back.
    let real = store
        .create_user(NewUser {
            org_id: default_org.id,
            email: "ops@corp.io".to_owned(),
            display_name: "ops".to_owned(),
            password_hash: "$argon2id$ops".to_owned(),
            role: Role::Admin,
            must_change_password: false,
        })
        .await
        .expect("real admin");
    store.delete_user(default_org.id, admin.id).await.expect("delete default admin");
    assert_eq!(
        store.create_first_admin("admin@default.com", "$argon2id$admin", "default").await.expect("restart"),
        None
    );
    assert_err!(store.get_user_by_email("admin@default.com").await, MetastoreError::NotFound { .. });
    assert_eq!(
        store.list_users(default_org.id).await.expect("users").iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![real.id]
    );
    assert_err!(store.create_first_admin("", "h", "corp").await, MetastoreError::Invalid { .. });
}

/// Racing bootstraps (several replicas starting at once, even with different admin emails) create exactly one.
pub async fn create_first_admin_races_create_one(store: Arc<dyn Metastore>) {
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.create_first_admin(&format!("ops{i}@corp.io"), "$argon2id$ops", "corp").await
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        created.extend(task.await.expect("join").expect("racing bootstrap"));
    }
    assert_eq!(created.len(), 1, "exactly one racer creates the admin: {created:?}");
    let org = store.get_org_by_name("corp").await.expect("org");
    assert_eq!(store.list_users(org.id).await.expect("users").len(), 1);
}

fn invitation(org_id: Uuid, email: &str, token_hash: &str, expires_at: i64, by: Option<Uuid>) -> NewInvitation {
    NewInvitation {
        org_id,
        email: email.to_owned(),
        role: Role::Member,
        token_hash: token_hash.to_owned(),
        expires_at,
        created_by: by,
    }
}

pub async fn invitations_accept_expire_and_double_accept(store: Arc<dyn Metastore>) {
    let a = org(&*store, "acme").await;
    let b = org(&*store, "beta").await;
    let admin = user(&*store, a.id, "admin@acme.io").await;
    let stranger = user(&*store, b.id, "admin@beta.io").await;
    let later = now_ns() + HOUR_NS;

    let inv =
        store.create_invitation(invitation(a.id, "New@acme.io", "tok-1", later, Some(admin.id))).await.expect("inv");
    assert_eq!(store.get_invitation_by_token_hash("tok-1").await.expect("by token"), inv);
    assert_eq!(store.list_invitations(a.id).await.expect("list"), vec![inv.clone()]);
    assert!(store.list_invitations(b.id).await.expect("list b").is_empty());
    assert_err!(
        store.create_invitation(invitation(a.id, "x@acme.io", "tok-1", later, None)).await,
        MetastoreError::AlreadyExists { entity: "invitation" }
    );
    assert_err!(
        store.create_invitation(invitation(a.id, "x@acme.io", "tok-x", later, Some(stranger.id))).await,
        MetastoreError::NotFound { entity: "user" }
    );
    assert_err!(
        store.create_invitation(invitation(Uuid::new_v4(), "x@acme.io", "tok-y", later, None)).await,
        MetastoreError::NotFound { entity: "org" }
    );

    let joined = store.accept_invitation("tok-1", "Newbie", "$argon2id$n").await.expect("accept");
    assert_eq!((joined.org_id, joined.email.as_str(), joined.role), (a.id, "New@acme.io", Role::Member));
    assert!(!joined.must_change_password);
    assert!(store.get_invitation_by_token_hash("tok-1").await.expect("inv").accepted_at.is_some());
    assert_err!(store.accept_invitation("tok-1", "Again", "$argon2id$n").await, MetastoreError::Invalid { .. });
    assert_err!(
        store.accept_invitation("tok-none", "X", "$argon2id$x").await,
        MetastoreError::NotFound { entity: "invitation" }
    );

    // Expired: refused and left unaccepted, and no user is created.
    store.create_invitation(invitation(a.id, "late@acme.io", "tok-old", now_ns() - 1, None)).await.expect("old");
    match store.accept_invitation("tok-old", "Late", "$argon2id$l").await {
        Err(MetastoreError::Invalid { reason }) => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("expected an expired invitation, got {other:?}"),
    }
    assert!(store.get_invitation_by_token_hash("tok-old").await.expect("old").accepted_at.is_none());
    assert_err!(store.get_user_by_email("late@acme.io").await, MetastoreError::NotFound { .. });

    // Email already registered: the user insert fails and the acceptance rolls back.
    store.create_invitation(invitation(a.id, "ADMIN@acme.io", "tok-dup", later, None)).await.expect("dup");
    assert_err!(
        store.accept_invitation("tok-dup", "Dup", "$argon2id$d").await,
        MetastoreError::AlreadyExists { entity: "user" }
    );
    assert!(store.get_invitation_by_token_hash("tok-dup").await.expect("dup").accepted_at.is_none());

    // Racing acceptances of one token: exactly one wins.
    store.create_invitation(invitation(a.id, "race@acme.io", "tok-race", later, None)).await.expect("race");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move { store.accept_invitation("tok-race", &format!("r{i}"), "$h").await }));
    }
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => wins += 1,
            Err(MetastoreError::Invalid { .. }) => {}
            Err(other) => panic!("unexpected error from a losing acceptance: {other:?}"),
        }
    }
    assert_eq!(wins, 1);

    assert_err!(store.delete_invitation(b.id, inv.id).await, MetastoreError::NotFound { .. });
    store.delete_invitation(a.id, inv.id).await.expect("delete");
    assert_err!(store.get_invitation_by_token_hash("tok-1").await, MetastoreError::NotFound { .. });
}

pub async fn sessions_create_revoke_and_purge(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let u = user(store, a.id, "u@acme.io").await;
    let now = now_ns();

    let s1 = store.create_session(a.id, u.id, now + HOUR_NS).await.expect("s1");
    let s2 = store.create_session(a.id, u.id, now + 2 * HOUR_NS).await.expect("s2");
    let old = store.create_session(a.id, u.id, now - HOUR_NS).await.expect("expired");
    assert_eq!(store.get_session(s1.id).await.expect("get"), s1);
    assert!(s1.is_active(now_ns()));
    assert!(!old.is_active(now_ns()));
    assert_eq!(store.list_user_sessions(a.id, u.id).await.expect("list").len(), 3);
    assert_err!(store.create_session(b.id, u.id, now + HOUR_NS).await, MetastoreError::NotFound { entity: "user" });

    store.revoke_session(a.id, s1.id).await.expect("revoke");
    let revoked = store.get_session(s1.id).await.expect("get");
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.is_active(now_ns()));
    store.revoke_session(a.id, s1.id).await.expect("revoke twice");
    assert_eq!(store.get_session(s1.id).await.expect("get").revoked_at, revoked.revoked_at, "first time kept");
    assert_err!(store.revoke_session(a.id, Uuid::new_v4()).await, MetastoreError::NotFound { entity: "session" });

    assert_eq!(store.revoke_user_sessions(a.id, u.id).await.expect("revoke all"), 2, "s2 and the expired one");
    assert!(store.get_session(s2.id).await.expect("s2").revoked_at.is_some());
    assert_eq!(store.purge_expired_sessions(now_ns()).await.expect("purge"), 1);
    assert_err!(store.get_session(old.id).await, MetastoreError::NotFound { .. });
}

fn new_key(kind: KeyKind, org_id: Uuid, user_id: Option<Uuid>, hash: &str) -> NewKey {
    NewKey {
        kind,
        org_id,
        user_id,
        description: format!("{kind} key {hash}"),
        key_hash: hash.to_owned(),
        prefix: format!("{}1234", kind.prefix()),
    }
}

fn api_key(org_id: Uuid, user_id: Uuid, hash: &str) -> NewKey {
    new_key(KeyKind::Api, org_id, Some(user_id), hash)
}

fn deploy_key(org_id: Uuid, created_by: Option<Uuid>, hash: &str) -> NewKey {
    new_key(KeyKind::Deploy, org_id, created_by, hash)
}

/// The lifecycle both kinds share, on a key of `kind` made by `user` in `org`: read back by id, hash and listing;
/// a second key with the same hash is refused; touch; revoke (idempotent) hides it from the hash lookup only.
/// Returns the (revoked) key.
async fn key_lifecycle(store: &dyn Metastore, kind: KeyKind, org: Uuid, user: Uuid) -> Key {
    let entity = kind.entity();
    let hash = format!("{kind}-lifecycle");
    let key = store.create_key(new_key(kind, org, Some(user), &hash)).await.expect("create");
    assert!(key.last_used_at.is_none() && key.revoked_at.is_none());
    assert_eq!((key.kind, key.user_id), (kind, Some(user)));
    assert_eq!(store.get_key(kind, org, key.id).await.expect("get"), key);
    assert_eq!(store.get_key_by_hash(kind, &hash).await.expect("by hash"), key);
    assert!(store.list_keys(kind, org, None).await.expect("list").contains(&key));
    assert_eq!(store.list_keys(kind, org, Some(user)).await.expect("list the user's"), vec![key.clone()]);
    assert_err!(
        store.create_key(new_key(kind, org, Some(user), &hash)).await,
        MetastoreError::AlreadyExists { entity: e } if e == entity
    );

    store.touch_key(kind, org, key.id).await.expect("touch");
    assert!(store.get_key(kind, org, key.id).await.expect("get").last_used_at.is_some());
    store.revoke_key(kind, org, key.id).await.expect("revoke");
    assert_err!(store.get_key_by_hash(kind, &hash).await, MetastoreError::NotFound { entity: e } if e == entity);
    let revoked = store.get_key(kind, org, key.id).await.expect("still listed");
    assert!(revoked.revoked_at.is_some());
    store.revoke_key(kind, org, key.id).await.expect("revoke twice");
    assert_eq!(store.get_key(kind, org, key.id).await.expect("get").revoked_at, revoked.revoked_at);
    let unknown = Uuid::new_v4();
    assert_err!(store.revoke_key(kind, org, unknown).await, MetastoreError::NotFound { entity: e } if e == entity);
    assert_err!(store.touch_key(kind, org, Uuid::new_v4()).await, MetastoreError::NotFound { .. });
    revoked
}

pub async fn api_keys_lifecycle_and_revocation(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let u1 = user(store, a.id, "u1@acme.io").await;
    let u2 = user(store, a.id, "u2@acme.io").await;
    let other = user(store, b.id, "o@beta.io").await;

    let k1 = key_lifecycle(store, KeyKind::Api, a.id, u1.id).await;
    let k2 = store.create_key(api_key(a.id, u2.id, "hash-2")).await.expect("k2");
    assert_eq!(store.list_keys(KeyKind::Api, a.id, None).await.expect("list"), vec![k1.clone(), k2.clone()]);
    assert_eq!(store.list_keys(KeyKind::Api, a.id, Some(u2.id)).await.expect("list u2"), vec![k2]);
    assert_err!(store.create_key(api_key(a.id, other.id, "hash-3")).await, MetastoreError::NotFound { entity: "user" });
    // An API key needs its owner; the kinds never see each other's keys, even with the same hash.
    let ownerless = NewKey { user_id: None, ..api_key(a.id, u1.id, "hash-4") };
    assert_err!(store.create_key(ownerless).await, MetastoreError::Invalid { .. });
    assert_err!(store.get_key(KeyKind::Deploy, a.id, k1.id).await, MetastoreError::NotFound { entity: "deploy key" });
    store.create_key(deploy_key(a.id, None, "hash-2")).await.expect("a deploy key may share an api key's hash");
    assert_eq!(store.list_keys(KeyKind::Deploy, a.id, None).await.expect("deploy keys").len(), 1);
}

pub async fn deploy_keys_lifecycle_and_revocation(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let admin = user(store, a.id, "admin@acme.io").await;
    let other = user(store, b.id, "o@beta.io").await;

    let by_admin = key_lifecycle(store, KeyKind::Deploy, a.id, admin.id).await;
    let generated = store.create_key(deploy_key(a.id, None, "dep-1")).await.expect("no creator");
    assert_eq!(generated.user_id, None);
    assert_eq!(store.list_keys(KeyKind::Deploy, a.id, None).await.expect("list"), vec![by_admin.clone(), generated]);
    assert_err!(
        store.create_key(deploy_key(a.id, Some(other.id), "dep-3")).await,
        MetastoreError::NotFound { entity: "user" }
    );
    assert_err!(
        store.create_key(deploy_key(Uuid::new_v4(), None, "dep-4")).await,
        MetastoreError::NotFound { entity: "org" }
    );

    // The creator's deletion keeps the key, without a creator (an API key goes with its owner).
    let api = store.create_key(api_key(a.id, admin.id, "admin-api")).await.expect("api key");
    store.delete_user(a.id, admin.id).await.expect("delete admin");
    assert_eq!(store.get_key(KeyKind::Deploy, a.id, by_admin.id).await.expect("kept").user_id, None);
    assert_err!(store.get_key(KeyKind::Api, a.id, api.id).await, MetastoreError::NotFound { entity: "api key" });
}

pub async fn scripts_crud_and_unique_per_org(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;

    let s = store.create_script(new_script(a.id, "org/my_script")).await.expect("create");
    let t = store.create_script(new_script(a.id, "org/another")).await.expect("create 2");
    assert_eq!(store.get_script(a.id, "org/my_script").await.expect("get"), s);
    assert_eq!(store.list_scripts(a.id).await.expect("list"), vec![t, s.clone()]);
    assert_err!(
        store.create_script(new_script(a.id, "org/my_script")).await,
        MetastoreError::AlreadyExists { entity: "script" }
    );
    let same_name_elsewhere = store.create_script(new_script(b.id, "org/my_script")).await.expect("other org ok");
    assert_ne!(same_name_elsewhere.id, s.id);
    assert_err!(store.create_script(new_script(Uuid::new_v4(), "x")).await, MetastoreError::NotFound { entity: "org" });
    assert_err!(store.create_script(new_script(a.id, "")).await, MetastoreError::Invalid { .. });

    let update = ScriptUpdate { pxl: "px.display(1)".to_owned(), vis: "{}".to_owned(), description: "v2".to_owned() };
    let before = now_ns();
    let updated = store.update_script(a.id, "org/my_script", update.clone()).await.expect("update");
    let after = now_ns();
    assert_eq!((updated.id, updated.pxl.as_str(), updated.description.as_str()), (s.id, "px.display(1)", "v2"));
    assert!((before..=after).contains(&updated.updated_at), "{before} <= {} <= {after}", updated.updated_at);
    assert_eq!(updated.created_at, s.created_at);
    assert_eq!(store.get_script(b.id, "org/my_script").await.expect("b untouched"), same_name_elsewhere);
    assert_err!(store.update_script(a.id, "missing", update).await, MetastoreError::NotFound { entity: "script" });

    store.delete_script(a.id, "org/my_script").await.expect("delete");
    assert_err!(store.get_script(a.id, "org/my_script").await, MetastoreError::NotFound { entity: "script" });
    assert_err!(store.delete_script(a.id, "org/my_script").await, MetastoreError::NotFound { entity: "script" });
    store.get_script(b.id, "org/my_script").await.expect("b's script survives");
}

pub async fn viziers_register_and_report_status(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;

    let v = store.create_vizier(new_vizier(a.id, "prod")).await.expect("create");
    assert_eq!(v.status, loupe_metastore::VIZIER_INITIAL_STATUS);
    assert_eq!(v.last_heartbeat_ns, None);
    let dev = store.create_vizier(new_vizier(a.id, "dev")).await.expect("create 2");
    assert_eq!(store.get_vizier(a.id, v.id).await.expect("get"), v);
    assert_eq!(store.get_vizier_by_name(a.id, "prod").await.expect("by name"), v);
    assert_eq!(store.list_viziers(a.id).await.expect("list"), vec![dev, v.clone()]);
    assert_err!(
        store.create_vizier(new_vizier(a.id, "prod")).await,
        MetastoreError::AlreadyExists { entity: "vizier" }
    );
    store.create_vizier(new_vizier(b.id, "prod")).await.expect("same name in another org");

    let beat = now_ns();
    assert_eq!((v.num_agents, v.address.as_str()), (0, ""));
    let update = VizierStatusUpdate {
        status: "healthy".to_owned(),
        last_heartbeat_ns: beat,
        version: None,
        num_agents: Some(3),
        address: Some("10.0.0.7:50300".into()),
    };
    let healthy = store.update_vizier_status(a.id, v.id, update).await.expect("status");
    assert_eq!(
        (healthy.status.as_str(), healthy.last_heartbeat_ns, healthy.version.as_str()),
        ("healthy", Some(beat), "0.1.0")
    );
    assert_eq!((healthy.num_agents, healthy.address.as_str()), (3, "10.0.0.7:50300"));
    assert_eq!(store.get_vizier(a.id, v.id).await.expect("get"), healthy);
    // A status without a report (the monitor's DISCONNECTED) keeps the last agent count and address.
    let update = VizierStatusUpdate {
        status: "updating".to_owned(),
        last_heartbeat_ns: beat + 1,
        version: Some("0.2.0".into()),
        num_agents: None,
        address: None,
    };
    let updated = store.update_vizier_status(a.id, v.id, update).await.expect("status 2");
    assert_eq!(
        (updated.version.as_str(), updated.num_agents, updated.address.as_str()),
        ("0.2.0", 3, "10.0.0.7:50300")
    );
    let update = VizierStatusUpdate {
        status: "healthy".to_owned(),
        last_heartbeat_ns: beat + 2,
        version: None,
        num_agents: Some(0),
        address: Some(String::new()),
    };
    let cleared = store.update_vizier_status(a.id, v.id, update).await.expect("status 3");
    assert_eq!((cleared.num_agents, cleared.address.as_str()), (0, ""));
    let negative = VizierStatusUpdate {
        status: "healthy".to_owned(),
        last_heartbeat_ns: beat + 3,
        version: None,
        num_agents: Some(-1),
        address: None,
    };
    assert!(matches!(store.update_vizier_status(a.id, v.id, negative).await, Err(MetastoreError::Invalid { .. })));

    store.delete_vizier(a.id, v.id).await.expect("delete");
    assert_err!(store.get_vizier(a.id, v.id).await, MetastoreError::NotFound { entity: "vizier" });
    assert_err!(store.delete_vizier(a.id, v.id).await, MetastoreError::NotFound { entity: "vizier" });
}

pub async fn cron_scripts_crud(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let clusters = vec![Uuid::new_v4(), Uuid::new_v4()];

    let c = store.create_cron_script(new_cron(a.id, clusters.clone())).await.expect("create");
    assert_eq!(c.cluster_ids, clusters);
    let got = store.get_cron_script(a.id, c.id).await.expect("get");
    assert_eq!(got, c);
    let mut off = new_cron(b.id, vec![]);
    off.enabled = false;
    let b_off = store.create_cron_script(off).await.expect("disabled");
    let b_on = store.create_cron_script(new_cron(b.id, vec![])).await.expect("enabled");
    assert_eq!(store.list_cron_scripts(a.id).await.expect("list"), vec![c.clone()]);
    assert_eq!(store.list_cron_scripts(b.id).await.expect("list b").len(), 2);
    let enabled: Vec<Uuid> = store.list_enabled_cron_scripts().await.expect("enabled").iter().map(|c| c.id).collect();
    assert!(enabled.contains(&c.id) && enabled.contains(&b_on.id) && !enabled.contains(&b_off.id));

    let mut zero = new_cron(a.id, vec![]);
    zero.frequency_s = 0;
    assert_err!(store.create_cron_script(zero).await, MetastoreError::Invalid { .. });

    let update = CronScriptUpdate {
        script: "px.display(2)".to_owned(),
        cluster_ids: vec![clusters[1]],
        frequency_s: 300,
        cron_expr: String::new(),
        enabled: false,
        configs: String::new(),
    };
    let updated = store.update_cron_script(a.id, c.id, update.clone()).await.expect("update");
    assert_eq!((updated.cluster_ids.clone(), updated.frequency_s, updated.enabled), (vec![clusters[1]], 300, false));
    assert_eq!(store.get_cron_script(a.id, c.id).await.expect("get"), updated);
    let mut bad = update;
    bad.frequency_s = -5;
    assert_err!(store.update_cron_script(a.id, c.id, bad).await, MetastoreError::Invalid { .. });

    store.delete_cron_script(a.id, c.id).await.expect("delete");
    assert_err!(store.get_cron_script(a.id, c.id).await, MetastoreError::NotFound { entity: "cron script" });
    assert_err!(store.delete_cron_script(a.id, c.id).await, MetastoreError::NotFound { .. });
}

/// Names are unique per org, and the schedule is a period or a cron expression, never both nor neither.
pub async fn cron_scripts_names_and_schedules(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let b = org(store, "beta").await;
    let named = |org_id, name: &str| NewCronScript { name: name.to_owned(), ..new_cron(org_id, vec![]) };
    let first = store.create_cron_script(named(a.id, "nightly")).await.expect("create");
    assert_eq!(first.name, "nightly");
    assert_err!(
        store.create_cron_script(named(a.id, "nightly")).await,
        MetastoreError::AlreadyExists { entity: "cron script" }
    );
    store.create_cron_script(named(b.id, "nightly")).await.expect("same name in another org");
    assert_err!(store.create_cron_script(named(a.id, " ")).await, MetastoreError::Invalid { .. });

    let by_expr = NewCronScript { frequency_s: 0, cron_expr: "*/5 * * * *".into(), ..named(a.id, "every5") };
    let c = store.create_cron_script(by_expr).await.expect("cron expression");
    assert_eq!((c.frequency_s, c.cron_expr.as_str()), (0, "*/5 * * * *"));
    assert_eq!(store.get_cron_script(a.id, c.id).await.expect("get"), c);
    let both = NewCronScript { frequency_s: 10, cron_expr: "* * * * *".into(), ..named(a.id, "both") };
    assert_err!(store.create_cron_script(both).await, MetastoreError::Invalid { .. });
    let neither = NewCronScript { frequency_s: 0, ..named(a.id, "neither") };
    assert_err!(store.create_cron_script(neither).await, MetastoreError::Invalid { .. });

    let update = CronScriptUpdate {
        script: c.script.clone(),
        cluster_ids: vec![],
        frequency_s: 10,
        cron_expr: String::new(),
        enabled: true,
        configs: String::new(),
    };
    let updated = store.update_cron_script(a.id, c.id, update).await.expect("to a period");
    assert_eq!((updated.name.as_str(), updated.frequency_s, updated.cron_expr.as_str()), ("every5", 10, ""));
    let names: Vec<String> = store.list_cron_scripts(a.id).await.expect("list").into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["nightly", "every5"]);
}

/// A run's result is stored once however often it is sent, only the newest `keep` per script stay, results are
/// the org's alone, and they go with their script.
pub async fn cron_results_once_per_run_and_trimmed(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let x = org(store, "attacker").await;
    let c = store.create_cron_script(new_cron(a.id, vec![])).await.expect("cron");
    let other = store.create_cron_script(new_cron(a.id, vec![])).await.expect("other cron");
    let vizier = Uuid::new_v4();
    let result = |cron_id, run_at: i64| NewCronResult {
        org_id: a.id,
        cron_id,
        vizier_id: vizier,
        run_at,
        duration_ns: 1_500_000,
        error_code: if run_at == 30 { 3 } else { 0 },
        error: if run_at == 30 { "compile error".into() } else { String::new() },
        records: run_at / 10,
        bytes: run_at * 100,
    };
    for run_at in [10, 20, 30, 40] {
        assert!(store.record_cron_result(result(c.id, run_at), 3).await.expect("record"));
    }
    assert!(!store.record_cron_result(result(c.id, 40), 3).await.expect("sent again"), "a re-sent run counts once");
    assert!(store.record_cron_result(result(other.id, 10), 3).await.expect("other script"));
    let kept = store.list_cron_results(a.id, c.id).await.expect("list");
    let runs: Vec<(i64, i64, &str, i64, i64)> =
        kept.iter().map(|r| (r.run_at, r.error_code, r.error.as_str(), r.records, r.bytes)).collect();
    assert_eq!(runs, [(20, 0, "", 2, 2000), (30, 3, "compile error", 3, 3000), (40, 0, "", 4, 4000)]);
    assert!(kept.iter().all(|r| r.cron_id == c.id && r.vizier_id == vizier && r.duration_ns == 1_500_000));
    // Another vizier's run at the same time is another run.
    let second = NewCronResult { vizier_id: Uuid::new_v4(), ..result(c.id, 40) };
    assert!(store.record_cron_result(second, 3).await.expect("second vizier"));
    let runs: Vec<i64> = store.list_cron_results(a.id, c.id).await.expect("list").iter().map(|r| r.run_at).collect();
    assert_eq!(runs, [30, 40, 40]);

    // Another org neither reads nor writes them.
    assert!(store.list_cron_results(x.id, c.id).await.expect("other org").is_empty());
    let forged = NewCronResult { org_id: x.id, ..result(c.id, 50) };
    assert_err!(store.record_cron_result(forged, 3).await, MetastoreError::NotFound { entity: "cron script" });
    assert_eq!(store.list_cron_results(a.id, c.id).await.expect("list").len(), 3);

    store.delete_cron_script(a.id, c.id).await.expect("delete");
    assert!(store.list_cron_results(a.id, c.id).await.expect("gone").is_empty());
    assert_err!(
        store.record_cron_result(result(c.id, 60), 3).await,
        MetastoreError::NotFound { entity: "cron script" }
    );
    assert_eq!(store.list_cron_results(a.id, other.id).await.expect("other kept").len(), 1);
}

pub async fn user_and_org_settings(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "acme").await;
    let u = user(store, a.id, "u@acme.io").await;

    assert_eq!(store.get_user_setting(a.id, u.id, "theme").await.expect("unset"), None);
    store.put_user_setting(a.id, u.id, "theme", "dark").await.expect("put");
    store.put_user_setting(a.id, u.id, "analytics_optout", "true").await.expect("put 2");
    store.put_user_setting(a.id, u.id, "theme", "light").await.expect("overwrite");
    assert_eq!(store.get_user_setting(a.id, u.id, "theme").await.expect("get").as_deref(), Some("light"));
    let listed: Vec<(String, String)> =
        store.list_user_settings(a.id, u.id).await.expect("list").into_iter().map(|s| (s.key, s.value)).collect();
    assert_eq!(listed, vec![("analytics_optout".into(), "true".into()), ("theme".into(), "light".into())]);
    assert_err!(
        store.put_user_setting(a.id, Uuid::new_v4(), "k", "v").await,
        MetastoreError::NotFound { entity: "user" }
    );

    assert_eq!(store.get_org_setting(a.id, "ide").await.expect("unset"), None);
    store.put_org_setting(a.id, "ide", "vscode://file/{{path}}").await.expect("put");
    store.put_org_setting(a.id, "ide", "idea://open?file={{path}}").await.expect("overwrite");
    assert_eq!(store.get_org_setting(a.id, "ide").await.expect("get").as_deref(), Some("idea://open?file={{path}}"));
    assert_eq!(store.list_org_settings(a.id).await.expect("list").len(), 1);
    assert_err!(store.put_org_setting(Uuid::new_v4(), "k", "v").await, MetastoreError::NotFound { entity: "org" });
    assert_err!(store.get_org_setting(Uuid::new_v4(), "k").await, MetastoreError::NotFound { entity: "org" });
}

pub async fn kv_put_if_absent_race_has_one_winner(store: Arc<dyn Metastore>) {
    assert_eq!(store.kv_get("jwt-signing-key").await.expect("get"), None);
    assert_eq!(store.kv_put_if_absent("first", "one").await.expect("put"), "one");
    assert_eq!(store.kv_put_if_absent("first", "two").await.expect("put again"), "one", "never overwritten");
    assert_eq!(store.kv_get("first").await.expect("get").as_deref(), Some("one"));
    assert!(store.kv_delete("first").await.expect("delete"));
    assert!(!store.kv_delete("first").await.expect("delete again"));
    assert_eq!(store.kv_get("first").await.expect("get"), None);
    assert_eq!(store.kv_put_if_absent("first", "three").await.expect("put after delete"), "three");

    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(
            async move { store.kv_put_if_absent("jwt-signing-key", &format!("candidate-{i}")).await },
        ));
    }
    let mut winners = Vec::new();
    for task in tasks {
        winners.push(task.await.expect("join").expect("put_if_absent"));
    }
    assert!(winners[0].starts_with("candidate-"));
    assert!(winners.iter().all(|w| *w == winners[0]), "all racers must agree on one winner: {winners:?}");
    assert_eq!(store.kv_get("jwt-signing-key").await.expect("get"), Some(winners[0].clone()));
}

/// A second org, holding another org's ids, can neither see nor change any of its rows.
pub async fn org_isolation_for_every_entity(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let a = org(store, "victim").await;
    let x = org(store, "attacker").await;
    let au = user(store, a.id, "alice@victim.io").await;
    let xu = user(store, x.id, "mallory@attacker.io").await;
    let session = store.create_session(a.id, au.id, now_ns() + HOUR_NS).await.expect("session");
    let key = store.create_key(api_key(a.id, au.id, "victim-key")).await.expect("api key");
    let dep = store.create_key(deploy_key(a.id, Some(au.id), "victim-dep")).await.expect("deploy key");
    let script = store.create_script(new_script(a.id, "victim/secret")).await.expect("script");
    let vz = store.create_vizier(new_vizier(a.id, "prod")).await.expect("vizier");
    let cron = store.create_cron_script(new_cron(a.id, vec![vz.id])).await.expect("cron");
    let inv = store
        .create_invitation(invitation(a.id, "bob@victim.io", "victim-tok", now_ns() + HOUR_NS, Some(au.id)))
        .await
        .expect("invitation");
    store.put_user_setting(a.id, au.id, "theme", "dark").await.expect("user setting");
    store.put_org_setting(a.id, "ide", "vscode").await.expect("org setting");

    let nf = |r: Result<(), MetastoreError>, what: &str| match r {
        Err(MetastoreError::NotFound { .. }) => {}
        other => panic!("{what} through another org: expected NotFound, got {other:?}"),
    };
    let x_id = x.id;
    // Reads.
    nf(store.get_user(x_id, au.id).await.map(drop), "get_user");
    nf(store.get_key(KeyKind::Api, x_id, key.id).await.map(drop), "get_api_key");
    nf(store.get_key(KeyKind::Deploy, x_id, dep.id).await.map(drop), "get_deploy_key");
    nf(store.get_script(x_id, "victim/secret").await.map(drop), "get_script");
    nf(store.get_vizier(x_id, vz.id).await.map(drop), "get_vizier");
    nf(store.get_vizier_by_name(x_id, "prod").await.map(drop), "get_vizier_by_name");
    nf(store.get_cron_script(x_id, cron.id).await.map(drop), "get_cron_script");
    nf(store.get_user_setting(x_id, au.id, "theme").await.map(drop), "get_user_setting");
    nf(store.list_user_settings(x_id, au.id).await.map(drop), "list_user_settings");
    assert!(store.list_users(x_id).await.expect("users").iter().all(|u| u.org_id == x_id));
    assert!(store.list_keys(KeyKind::Api, x_id, None).await.expect("keys").is_empty());
    assert!(store.list_keys(KeyKind::Api, x_id, Some(au.id)).await.expect("keys of a's user").is_empty());
    assert!(store.list_keys(KeyKind::Deploy, x_id, None).await.expect("deploy keys").is_empty());
    assert!(store.list_scripts(x_id).await.expect("scripts").is_empty());
    assert!(store.list_viziers(x_id).await.expect("viziers").is_empty());
    assert!(store.list_cron_scripts(x_id).await.expect("crons").is_empty());
    assert!(store.list_invitations(x_id).await.expect("invitations").is_empty());
    assert!(store.list_user_sessions(x_id, au.id).await.expect("sessions").is_empty());
    assert!(store.list_org_settings(x_id).await.expect("org settings").is_empty());
    assert_eq!(store.get_org_setting(x_id, "ide").await.expect("org setting"), None);

    // Writes.
    nf(store.update_user_password(x_id, au.id, "$pwned", false).await.map(drop), "update_user_password");
    nf(store.update_user_display_name(x_id, au.id, "pwned").await.map(drop), "update_user_display_name");
    nf(store.set_user_role(x_id, au.id, Role::Member).await.map(drop), "set_user_role");
    nf(store.delete_user(x_id, au.id).await, "delete_user");
    nf(store.create_session(x_id, au.id, now_ns() + HOUR_NS).await.map(drop), "create_session");
    nf(store.revoke_session(x_id, session.id).await, "revoke_session");
    assert_eq!(store.revoke_user_sessions(x_id, au.id).await.expect("revoke all"), 0);
    nf(store.create_key(api_key(x_id, au.id, "x-key")).await.map(drop), "create_api_key for a's user");
    nf(store.create_key(api_key(a.id, xu.id, "x-key2")).await.map(drop), "create_api_key into a");
    nf(store.revoke_key(KeyKind::Api, x_id, key.id).await, "revoke_api_key");
    nf(store.touch_key(KeyKind::Api, x_id, key.id).await, "touch_api_key");
    nf(store.revoke_key(KeyKind::Deploy, x_id, dep.id).await, "revoke_deploy_key");
    nf(store.touch_key(KeyKind::Deploy, x_id, dep.id).await, "touch_deploy_key");
    let update = ScriptUpdate { pxl: "pwned".into(), vis: "{}".into(), description: "pwned".into() };
    nf(store.update_script(x_id, "victim/secret", update).await.map(drop), "update_script");
    nf(store.delete_script(x_id, "victim/secret").await, "delete_script");
    let update = VizierStatusUpdate {
        status: "pwned".into(),
        last_heartbeat_ns: 1,
        version: None,
        num_agents: Some(1),
        address: Some("pwned".into()),
    };
    nf(store.update_vizier_status(x_id, vz.id, update).await.map(drop), "update_vizier_status");
    nf(store.delete_vizier(x_id, vz.id).await, "delete_vizier");
    let update = CronScriptUpdate {
        script: "pwned".into(),
        cluster_ids: vec![],
        frequency_s: 1,
        cron_expr: String::new(),
        enabled: true,
        configs: "".into(),
    };
    nf(store.update_cron_script(x_id, cron.id, update).await.map(drop), "update_cron_script");
    nf(store.delete_cron_script(x_id, cron.id).await, "delete_cron_script");
    nf(store.delete_invitation(x_id, inv.id).await, "delete_invitation");
    nf(store.put_user_setting(x_id, au.id, "theme", "pwned").await, "put_user_setting");

    // Nothing of the victim's changed.
    assert_eq!(store.get_user(a.id, au.id).await.expect("user"), au);
    assert_eq!(store.get_session(session.id).await.expect("session"), session);
    assert_eq!(store.get_key(KeyKind::Api, a.id, key.id).await.expect("key"), key);
    assert_eq!(store.get_key(KeyKind::Deploy, a.id, dep.id).await.expect("deploy key"), dep);
    assert_eq!(store.get_script(a.id, "victim/secret").await.expect("script"), script);
    assert_eq!(store.get_vizier(a.id, vz.id).await.expect("vizier"), vz);
    assert_eq!(store.get_cron_script(a.id, cron.id).await.expect("cron"), cron);
    assert_eq!(store.get_invitation_by_token_hash("victim-tok").await.expect("invitation"), inv);
    assert_eq!(store.get_user_setting(a.id, au.id, "theme").await.expect("setting").as_deref(), Some("dark"));
    assert_eq!(store.list_keys(KeyKind::Api, a.id, None).await.expect("keys").len(), 1, "no key was planted in a");
}

/// Strings full of SQL and encoding hazards round-trip unchanged through every text field.
pub async fn sql_metacharacters_round_trip(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let hostile = [
        "'; DROP TABLE users; --",
        "Robert'); DROP TABLE orgs;--",
        "\"double\" 'single' `back` \\backslash\\ \\' \\0 $1 ? ?1 :name @p %_ \n\t\r",
        "ünïcödé 日本語 עברית 🚀 \u{200b}\u{feff} e\u{301}",
        "/* comment */ OR 1=1 -- ",
    ];
    for (i, evil) in hostile.iter().enumerate() {
        let evil = evil.to_string();
        let o = store.create_org(&format!("{evil}{i}")).await.expect("org");
        assert_eq!(store.get_org_by_name(&o.name).await.expect("org by name"), o);
        let email = format!("{evil}{i}@example.com");
        let mut nu = new_user(o.id, &email);
        nu.display_name = evil.clone();
        nu.password_hash = evil.clone();
        let u = store.create_user(nu).await.expect("user");
        assert_eq!(store.get_user_by_email(&email).await.expect("by email"), u);
        assert_eq!((u.display_name.as_str(), u.password_hash.as_str()), (evil.as_str(), evil.as_str()));
        let inv = store
            .create_invitation(invitation(
                o.id,
                &format!("{evil}inv{i}"),
                &format!("{evil}tok"),
                now_ns() + HOUR_NS,
                None,
            ))
            .await
            .expect("invitation");
        assert_eq!(store.get_invitation_by_token_hash(&inv.token_hash).await.expect("inv"), inv);
        let k = NewKey {
            kind: KeyKind::Api,
            org_id: o.id,
            user_id: Some(u.id),
            description: evil.clone(),
            key_hash: evil.clone(),
            prefix: evil.clone(),
        };
        let k = store.create_key(k).await.expect("api key");
        assert_eq!(store.get_key_by_hash(KeyKind::Api, &evil).await.expect("key by hash"), k);
        let d = NewKey {
            kind: KeyKind::Deploy,
            org_id: o.id,
            user_id: None,
            description: evil.clone(),
            key_hash: evil.clone(),
            prefix: evil.clone(),
        };
        let d = store.create_key(d).await.expect("deploy key");
        assert_eq!(store.get_key_by_hash(KeyKind::Deploy, &evil).await.expect("dep by hash"), d);
        let s = NewScript {
            org_id: o.id,
            name: evil.clone(),
            pxl: evil.clone(),
            vis: evil.clone(),
            description: evil.clone(),
        };
        let s = store.create_script(s).await.expect("script");
        assert_eq!(store.get_script(o.id, &evil).await.expect("script"), s);
        let v = NewVizier { org_id: o.id, name: evil.clone(), cluster_uid: evil.clone(), version: evil.clone() };
        let v = store.create_vizier(v).await.expect("vizier");
        assert_eq!(store.get_vizier_by_name(o.id, &evil).await.expect("vizier"), v);
        let update = VizierStatusUpdate {
            status: evil.clone(),
            last_heartbeat_ns: 1,
            version: Some(evil.clone()),
            num_agents: Some(1),
            address: Some(evil.clone()),
        };
        let updated = store.update_vizier_status(o.id, v.id, update).await.expect("status");
        assert_eq!((updated.status.as_str(), updated.address.as_str()), (evil.as_str(), evil.as_str()));
        let mut c = new_cron(o.id, vec![v.id]);
        c.script = evil.clone();
        c.configs = evil.clone();
        let c = store.create_cron_script(c).await.expect("cron");
        assert_eq!(store.get_cron_script(o.id, c.id).await.expect("cron"), c);
        store.put_user_setting(o.id, u.id, &evil, &evil).await.expect("user setting");
        assert_eq!(store.get_user_setting(o.id, u.id, &evil).await.expect("get").as_deref(), Some(evil.as_str()));
        store.put_org_setting(o.id, &evil, &evil).await.expect("org setting");
        assert_eq!(store.get_org_setting(o.id, &evil).await.expect("get").as_deref(), Some(evil.as_str()));
        assert_eq!(store.kv_put_if_absent(&evil, &evil).await.expect("kv"), evil);
        assert_eq!(store.kv_get(&evil).await.expect("kv get").as_deref(), Some(evil.as_str()));
    }
    // The tables are all still there.
    assert_eq!(store.list_orgs().await.expect("orgs").len(), hostile.len());
    for o in store.list_orgs().await.expect("orgs") {
        assert_eq!(store.list_users(o.id).await.expect("users").len(), 1);
    }
}

/// NUL bytes (which Postgres refuses in text) are `Invalid` on every backend, and nothing is stored.
pub async fn nul_bytes_are_invalid_everywhere(store: Arc<dyn Metastore>) {
    let store = store.as_ref();
    let nul = "a\0b";
    let o = org(store, "acme").await;
    let u = user(store, o.id, "u@acme.io").await;
    let inv = |r: Result<(), MetastoreError>, what: &str| match r {
        Err(MetastoreError::Invalid { reason }) => assert!(reason.contains("NUL"), "{what}: {reason}"),
        other => panic!("{what} with a NUL byte: expected Invalid, got {other:?}"),
    };
    inv(store.create_org(nul).await.map(drop), "create_org");
    inv(store.get_org_by_name(nul).await.map(drop), "get_org_by_name");
    inv(store.create_user(new_user(o.id, nul)).await.map(drop), "create_user");
    let mut nu = new_user(o.id, "v@acme.io");
    nu.display_name = nul.into();
    inv(store.create_user(nu).await.map(drop), "create_user display name");
    inv(store.get_user_by_email(nul).await.map(drop), "get_user_by_email");
    inv(store.update_user_password(o.id, u.id, nul, false).await.map(drop), "update_user_password");
    inv(store.update_user_display_name(o.id, u.id, nul).await.map(drop), "update_user_display_name");
    inv(store.create_first_admin(nul, "h", "org").await.map(drop), "create_first_admin");
    inv(store.create_invitation(invitation(o.id, nul, "t", 1, None)).await.map(drop), "create_invitation");
    inv(store.accept_invitation(nul, "n", "h").await.map(drop), "accept_invitation");
    inv(store.create_key(api_key(o.id, u.id, nul)).await.map(drop), "create_api_key");
    inv(store.get_key_by_hash(KeyKind::Api, nul).await.map(drop), "get_api_key_by_hash");
    inv(store.create_key(deploy_key(o.id, None, nul)).await.map(drop), "create_deploy_key");
    let mut s = new_script(o.id, "ok");
    s.pxl = nul.into();
    inv(store.create_script(s).await.map(drop), "create_script");
    inv(store.get_script(o.id, nul).await.map(drop), "get_script");
    inv(store.create_vizier(new_vizier(o.id, nul)).await.map(drop), "create_vizier");
    let mut c = new_cron(o.id, vec![]);
    c.configs = nul.into();
    inv(store.create_cron_script(c).await.map(drop), "create_cron_script");
    inv(store.put_user_setting(o.id, u.id, "k", nul).await, "put_user_setting");
    inv(store.put_org_setting(o.id, nul, "v").await, "put_org_setting");
    inv(store.kv_put_if_absent("k", nul).await.map(drop), "kv_put_if_absent");
    inv(store.kv_get(nul).await.map(drop), "kv_get");
    assert_eq!(store.list_orgs().await.expect("orgs").len(), 1);
    assert_eq!(store.list_users(o.id).await.expect("users").len(), 1);
    assert!(store.list_scripts(o.id).await.expect("scripts").is_empty());
    assert_eq!(store.kv_get("k").await.expect("kv"), None);
}
