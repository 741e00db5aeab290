//! Shared test harness: a fresh API server per test, request builders and login helpers.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use loupe_auth::{AdminBootstrap, InMemorySessionCache, SessionCache, SigningKey, hash_password};
use loupe_cloud::{CloudConfig, CloudState, CronChanges, app, bootstrap};
use loupe_metastore::{NewUser, Role};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use uuid::Uuid;

/// The password the bootstrap admin is given by `Harness::admin_token`.
pub const NEW_ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A credential to send.
#[derive(Debug, Clone)]
pub enum Cred {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `pixie-api-key: <key>`.
    ApiKey(String),
    /// Any header.
    Header(&'static str, String),
}

/// An answer: status, headers and the body parsed as JSON (`Value::Null` if empty, a string if not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `message` of a JSON error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    /// Asserts the status, printing the body on failure.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        self
    }
}

pub struct Harness {
    pub state: CloudState,
    pub app: Router,
}

pub async fn harness() -> Harness {
    harness_with(CloudConfig::default()).await
}

/// Records the orgs told to the `CronChanges` hook (their viziers' cron sets changed), in order.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Uuid>>);

impl Recorder {
    /// The orgs told so far.
    pub fn orgs(&self) -> Vec<Uuid> {
        self.0.lock().expect("lock").clone()
    }
}

impl CronChanges for Recorder {
    fn changed(&self, org_id: Uuid) {
        self.0.lock().expect("lock").push(org_id);
    }
}

/// A [`harness`] whose `CronChanges` hook is the returned [`Recorder`].
pub async fn harness_recording_changes() -> (Harness, Arc<Recorder>) {
    let base = harness().await;
    let recorder = Arc::new(Recorder::default());
    let mut state = base.state.clone();
    state.cron_changes = Some(Arc::clone(&recorder) as Arc<dyn CronChanges>);
    (Harness { app: app(state.clone()), state }, recorder)
}

/// The settings key every harness seals with.
pub fn settings_key() -> loupe_vzconn::SettingsKey {
    loupe_vzconn::SettingsKey::from_text("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .expect("settings key")
}

pub async fn harness_with(config: CloudConfig) -> Harness {
    harness_with_cache(config, Arc::new(InMemorySessionCache::new())).await
}

/// A harness whose revocations and counters live in `sessions`.
pub async fn harness_with_cache(config: CloudConfig, sessions: Arc<dyn SessionCache>) -> Harness {
    let metastore = loupe_metastore::connect("sqlite::memory:").await.expect("metastore");
    let key = SigningKey::generate().expect("signing key");
    let mut state = CloudState::new(metastore, sessions, key, config);
    state.settings_key = Some(settings_key());
    let outcome = bootstrap(&state, &AdminBootstrap::default()).await.expect("bootstrap");
    assert!(outcome.created.is_some());
    Harness { app: app(state.clone()), state }
}

pub fn request(method: &str, path: &str, cred: Option<&Cred>, body: Option<&Value>) -> Request<Body> {
    let mut builder = Request::builder().method(Method::from_bytes(method.as_bytes()).expect("method")).uri(path);
    match cred {
        Some(Cred::Bearer(token)) => builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}")),
        Some(Cred::ApiKey(key)) => builder = builder.header("pixie-api-key", key),
        Some(Cred::Header(name, value)) => builder = builder.header(*name, value),
        None => {}
    }
    match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(body).expect("json")))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    }
}

impl Harness {
    /// The operational listener's router (health, readiness, metrics) over the same state, and so the same
    /// counters, as this harness.
    pub fn ops(&self) -> Harness {
        let app = loupe_cloud::ops_app(loupe_cloud::Gateway::in_process(&self.state), None);
        Harness { app, state: self.state.clone() }
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(req).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer { status, headers, body }
    }

    pub async fn call(&self, method: &str, path: &str, cred: Option<&Cred>, body: Option<Value>) -> Answer {
        self.send(request(method, path, cred, body.as_ref())).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.call("POST", "/api/v1/auth/login", None, Some(json!({ "email": email, "password": password }))).await
    }

    /// Logs in as the bootstrap admin and does the forced password change; returns the new token.
    pub async fn admin_token(&self) -> String {
        let first = self.login("admin@default.com", "admin").await.expect(200);
        let token = Cred::Bearer(first.body["token"].as_str().expect("token").to_owned());
        let changed = self
            .call(
                "POST",
                "/api/v1/auth/password",
                Some(&token),
                Some(json!({ "current_password": "admin", "new_password": NEW_ADMIN_PASSWORD })),
            )
            .await
            .expect(200);
        changed.body["token"].as_str().expect("token").to_owned()
    }

    /// Creates org `name` with an admin `admin@<name>.test` (no forced change) through the metastore; returns
    /// a session token of that admin.
    pub async fn second_org(&self, name: &str) -> String {
        let org = self.state.metastore.create_org(name).await.expect("org");
        self.create_user(org.id, &format!("admin@{name}.test"), Role::Admin).await;
        let answer = self.login(&format!("admin@{name}.test"), NEW_ADMIN_PASSWORD).await.expect(200);
        answer.body["token"].as_str().expect("token").to_owned()
    }

    /// Creates a user with password `NEW_ADMIN_PASSWORD` in `org_id`.
    pub async fn create_user(&self, org_id: Uuid, email: &str, role: Role) -> Uuid {
        let user = self
            .state
            .metastore
            .create_user(NewUser {
                org_id,
                email: email.to_owned(),
                display_name: email.to_owned(),
                password_hash: hash_password(NEW_ADMIN_PASSWORD).expect("hash"),
                role,
                must_change_password: false,
            })
            .await
            .expect("user");
        user.id
    }
}

/// A PxL script that compiles (scripts are compiled when saved), with `marker` as a comment to find it by.
pub fn pxl(marker: &str) -> String {
    format!("import px\n# {marker}\npx.display(px.DataFrame('http_events'))\n")
}

/// Fills an axum path template with usable values.
pub fn concrete_path(template: &str, id: &str, name: &str) -> String {
    // Script URLs name the script after its `px/` or `org/`, which the template already spells.
    let short = name.split_once('/').map_or(name, |(_, short)| short);
    template.replace("{id}", id).replace("{name}", short).replace("{table}", "http_events")
}
