//! The route table and the routers built from it: `gateway_app(gateway)` is the public port of `loupe cloud api`,
//! `app(state)` the same with every service in process (`loupe up`, the tests), and `ops_app` the operational
//! listener (`/healthz`, `/readyz`, `/metrics`) that every cloud process serves apart from its public port.
//!
//! Owns the list of REST routes (`ROUTES`), from which both the router and the OpenAPI document are built, so
//! the two cannot drift apart, and the mounting of the public gRPC services next to them. Must not hold
//! handler logic, and must not put an operational route on a public router: probes and scrapers need no
//! credential, so those routes live only where `--metrics-listen` binds them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::api::{self, auth, keys, profile, scripts};
use crate::error::{ApiError, ApiResult};
use crate::gateway::{Gateway, grpc_forward};
use crate::services::ServiceKind;
use crate::state::CloudState;

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential (login, invitation acceptance, the OpenAPI document).
    Public,
    /// A session token or an API key; refused while a password change is pending.
    User,
    /// Like `User`, but also allowed while a password change is pending.
    UserPendingAllowed,
    /// Like `User`, and only org admins.
    Admin,
}

/// One route: method, axum path template, what it does and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: &'static str,
    /// axum path template (`/api/v1/scripts/{*name}`).
    pub path: &'static str,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The request body schema's name in the OpenAPI document, if it takes one.
    pub body: Option<&'static str>,
    /// The success status.
    pub success: u16,
    /// OpenAPI tag.
    pub tag: &'static str,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    body: Option<&'static str>,
    success: u16,
    tag: &'static str,
    summary: &'static str,
) -> RouteSpec {
    RouteSpec { method, path, summary, access, body, success, tag }
}

use Access::{Admin, Public, User, UserPendingAllowed};

/// Every route the API serves.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/api/v1/openapi.json", Public, None, 200, "ops", "this OpenAPI document"),
    r("POST", "/api/v1/auth/login", Public, Some("LoginRequest"), 200, "auth", "log in with email and password"),
    r(
        "POST",
        "/api/v1/auth/password",
        UserPendingAllowed,
        Some("ChangePasswordRequest"),
        200,
        "auth",
        "change the caller's password; revokes older sessions and returns a new one",
    ),
    r("POST", "/api/v1/auth/logout", UserPendingAllowed, None, 200, "auth", "end this session"),
    r("POST", "/api/v1/auth/refresh", User, None, 200, "auth", "extend this session"),
    r("GET", "/api/v1/auth/me", UserPendingAllowed, None, 200, "auth", "who the caller is"),
    r("GET", "/api/v1/api-keys", User, None, 200, "keys", "list API keys (own; an admin sees the org's)"),
    r("POST", "/api/v1/api-keys", User, Some("CreateKeyRequest"), 201, "keys", "create an API key (shown once)"),
    r("GET", "/api/v1/api-keys/{id}", User, None, 200, "keys", "one API key"),
    r("DELETE", "/api/v1/api-keys/{id}", User, None, 204, "keys", "revoke an API key"),
    r("GET", "/api/v1/deploy-keys", User, None, 200, "keys", "list the org's deploy keys"),
    r("POST", "/api/v1/deploy-keys", Admin, Some("CreateKeyRequest"), 201, "keys", "create a deploy key (shown once)"),
    r("GET", "/api/v1/deploy-keys/{id}", User, None, 200, "keys", "one deploy key"),
    r("DELETE", "/api/v1/deploy-keys/{id}", Admin, None, 204, "keys", "revoke a deploy key"),
    r("GET", "/api/v1/scripts", User, None, 200, "scripts", "bundled (px/…) and org (org/…) scripts"),
    r("POST", "/api/v1/scripts", Admin, Some("CreateScriptRequest"), 201, "scripts", "save an org script"),
    r("GET", "/api/v1/scripts/{*name}", User, None, 200, "scripts", "one script with its PxL"),
    r("PUT", "/api/v1/scripts/{*name}", Admin, Some("UpdateScriptRequest"), 200, "scripts", "change an org script"),
    r("DELETE", "/api/v1/scripts/{*name}", Admin, None, 204, "scripts", "delete an org script"),
    r("GET", "/api/v1/org", User, None, 200, "profile", "the caller's org"),
    r("GET", "/api/v1/users", User, None, 200, "profile", "the org's users"),
    r("GET", "/api/v1/users/{id}", User, None, 200, "profile", "one user of the org"),
    r("DELETE", "/api/v1/users/{id}", Admin, None, 204, "profile", "remove a user from the org"),
    r("GET", "/api/v1/users/me/settings", User, None, 200, "profile", "the caller's settings"),
    r("PUT", "/api/v1/users/me/settings", User, Some("Settings"), 200, "profile", "set some of the caller's settings"),
    r("GET", "/api/v1/invitations", Admin, None, 200, "profile", "the org's invitations"),
    r(
        "POST",
        "/api/v1/invitations",
        Admin,
        Some("CreateInvitationRequest"),
        201,
        "profile",
        "invite a user (the token is shown once)",
    ),
    r("DELETE", "/api/v1/invitations/{id}", Admin, None, 204, "profile", "withdraw an invitation"),
    r(
        "POST",
        "/api/v1/invitations/accept",
        Public,
        Some("AcceptInvitationRequest"),
        201,
        "profile",
        "accept an invitation: creates the user and logs in",
    ),
    r("GET", "/api/v1/viziers", User, None, 200, "viziers", "the org's viziers"),
    r("GET", "/api/v1/viziers/{id}", User, None, 200, "viziers", "one vizier"),
    r("DELETE", "/api/v1/viziers/{id}", Admin, None, 204, "viziers", "forget a vizier"),
];

/// The handler of a route in `ROUTES`. A route without one panics at router construction (a test builds it).
fn handler(method: &str, path: &str) -> MethodRouter<Gateway> {
    match (method, path) {
        ("GET", "/api/v1/openapi.json") => get(api::openapi),
        ("POST", "/api/v1/auth/login") => post(auth::login),
        ("POST", "/api/v1/auth/password") => post(auth::change_password),
        ("POST", "/api/v1/auth/logout") => post(auth::logout),
        ("POST", "/api/v1/auth/refresh") => post(auth::refresh),
        ("GET", "/api/v1/auth/me") => get(auth::me),
        ("GET", "/api/v1/api-keys") => get(keys::list_api_keys),
        ("POST", "/api/v1/api-keys") => post(keys::create_api_key),
        ("GET", "/api/v1/api-keys/{id}") => get(keys::get_api_key),
        ("DELETE", "/api/v1/api-keys/{id}") => delete(keys::delete_api_key),
        ("GET", "/api/v1/deploy-keys") => get(keys::list_deploy_keys),
        ("POST", "/api/v1/deploy-keys") => post(keys::create_deploy_key),
        ("GET", "/api/v1/deploy-keys/{id}") => get(keys::get_deploy_key),
        ("DELETE", "/api/v1/deploy-keys/{id}") => delete(keys::delete_deploy_key),
        ("GET", "/api/v1/scripts") => get(scripts::list_scripts),
        ("POST", "/api/v1/scripts") => post(scripts::create_script),
        ("GET", "/api/v1/scripts/{*name}") => get(scripts::get_script),
        ("PUT", "/api/v1/scripts/{*name}") => put(scripts::update_script),
        ("DELETE", "/api/v1/scripts/{*name}") => delete(scripts::delete_script),
        ("GET", "/api/v1/org") => get(profile::get_org),
        ("GET", "/api/v1/users") => get(profile::list_users),
        ("GET", "/api/v1/users/{id}") => get(profile::get_user),
        ("DELETE", "/api/v1/users/{id}") => delete(profile::delete_user),
        ("GET", "/api/v1/users/me/settings") => get(profile::get_settings),
        ("PUT", "/api/v1/users/me/settings") => put(profile::put_settings),
        ("GET", "/api/v1/invitations") => get(profile::list_invitations),
        ("POST", "/api/v1/invitations") => post(profile::create_invitation),
        ("DELETE", "/api/v1/invitations/{id}") => delete(profile::delete_invitation),
        ("POST", "/api/v1/invitations/accept") => post(profile::accept_invitation),
        ("GET", "/api/v1/viziers") => get(profile::list_viziers),
        ("GET", "/api/v1/viziers/{id}") => get(profile::get_vizier),
        ("DELETE", "/api/v1/viziers/{id}") => delete(profile::delete_vizier),
        (method, path) => unreachable!("route {method} {path} is in ROUTES but has no handler"),
    }
}

/// The API server with every service in process on `state`: what `loupe up` and the tests serve.
pub fn app(state: CloudState) -> Router {
    gateway_app(Gateway::in_process(&state))
}

/// The API gateway's router: the REST routes of `ROUTES` (JSON errors for unknown routes and methods, a body
/// limit of `config.max_body_bytes`, 413 beyond) and the public gRPC services (`/loupe.cloud.v1.*`, forwarded
/// to the process that owns each), all behind the request middleware (request id, span, metrics).
pub fn gateway_app(gateway: Gateway) -> Router {
    let mut router = Router::new();
    for spec in ROUTES {
        router = router.route(spec.path, handler(spec.method, spec.path));
    }
    for kind in ServiceKind::ALL {
        for service in kind.grpc_services() {
            router = router.route_service(&format!("/{service}/{{*method}}"), grpc_forward(&gateway, kind));
        }
    }
    router
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(gateway.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(gateway.clone(), crate::middleware::track_request))
        .with_state(gateway)
}

/// The router of one service process (`loupe cloud auth|profile|scripts`): its gRPC services only; its health
/// and metrics are on its `ops_app`.
pub fn service_app(state: CloudState, kind: ServiceKind) -> Router {
    crate::services::CloudServices::new(state).router(kind)
}

/// A component sharing the API's process (the node agent under `loupe up`): the operational listener answers
/// for it too.
pub trait Colocated: Send + Sync + 'static {
    /// Its Prometheus text, appended to the API's.
    fn metrics_text(&self) -> String;
    /// `Ok` when it is ready, else why not.
    fn readiness(&self) -> Result<(), String>;
}

#[derive(Clone)]
struct Ops {
    gateway: Gateway,
    colocated: Option<Arc<dyn Colocated>>,
}

/// The operational listener of a cloud process: `GET /healthz` (the process is up), `/readyz` (every service
/// reaches its metastore, and `colocated` is ready; 503 naming what is not) and `/metrics` (Prometheus text of
/// `gateway`'s counters, then `colocated`'s). No credential: bind it where only probes and scrapers reach it.
pub fn ops_app(gateway: Gateway, colocated: Option<Arc<dyn Colocated>>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(api::not_found)
        .with_state(Ops { gateway, colocated })
}

async fn readyz(State(ops): State<Ops>) -> ApiResult<axum::Json<serde_json::Value>> {
    if let Some(Err(why)) = ops.colocated.as_ref().map(|c| c.readiness()) {
        return Err(ApiError::unavailable(format!("the node agent is not ready: {why}")));
    }
    let axum::Json(mut ready) = api::readyz(State(ops.gateway)).await?;
    if ops.colocated.is_some() {
        ready["agent"] = "ok".into();
    }
    Ok(axum::Json(ready))
}

async fn metrics(State(ops): State<Ops>) -> Response {
    let mut text = ops.gateway.metrics.render();
    if let Some(c) = &ops.colocated {
        text.push_str(&c.metrics_text());
    }
    let mut response = text.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, with peer addresses available for login
/// throttling. What `loupe up` and `loupe cloud api` call.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: CloudState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, app(state), shutdown).await
}

/// Serves a router built on `app(state)` (with more routes mounted, e.g. gRPC) the same way: HTTP/1 and
/// HTTP/2 (h2c) on one port, peer addresses available for login throttling.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    /// A colocated component with a fixed readiness, as `loupe up`'s agent reports one.
    struct Agent(Result<(), String>);

    impl Colocated for Agent {
        fn metrics_text(&self) -> String {
            "loupe_agent_test 1\n".into()
        }

        fn readiness(&self) -> Result<(), String> {
            self.0.clone()
        }
    }

    async fn get(router: Router, path: &str) -> (u16, String) {
        let answer = router.oneshot(Request::get(path).body(Body::empty()).expect("request")).await.expect("answer");
        let status = answer.status().as_u16();
        let body = axum::body::to_bytes(answer.into_body(), 1 << 20).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_ops_listener_answers_for_the_api_and_its_colocated_agent() {
        let metastore = loupe_metastore::connect("sqlite::memory:").await.expect("metastore");
        let key = loupe_auth::SigningKey::generate().expect("key");
        let sessions: Arc<dyn loupe_auth::SessionCache> = Arc::new(loupe_auth::InMemorySessionCache::new());
        let state = CloudState::new(metastore, sessions, key, crate::CloudConfig::default());
        let gateway = Gateway::in_process(&state);

        let unready = Agent(Err("1 of 20 probes not attached: syscalls/sys_enter_read (gone)".into()));
        let ops = ops_app(gateway.clone(), Some(Arc::new(unready)));
        let (status, body) = get(ops.clone(), "/readyz").await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body.contains("the node agent is not ready: 1 of 20 probes not attached: syscalls/sys_enter_read"),
            "{body}"
        );
        assert_eq!(get(ops.clone(), "/healthz").await.0, 200);
        let (status, body) = get(ops, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            body.contains("loupe_cloud_login_failures_total 0") && body.ends_with("loupe_agent_test 1\n"),
            "{body}"
        );

        let (status, body) = get(ops_app(gateway.clone(), Some(Arc::new(Agent(Ok(()))))), "/readyz").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""agent":"ok""#) && body.contains(r#""metastore":"sqlite""#), "{body}");
        // The public router serves none of them.
        for path in ["/healthz", "/readyz", "/metrics"] {
            assert_eq!(get(gateway_app(gateway.clone()), path).await.0, 404, "{path}");
        }
    }
}
