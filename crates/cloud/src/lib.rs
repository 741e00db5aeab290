//! Loupe's cloud: the services (auth, profile, scripts) as gRPC servers, and the API gateway in front of them,
//! which serves REST with JSON under `/api/v1` (login and sessions, API and deploy keys, scripts, org, users,
//! invitations, settings, viziers), the same operations over gRPC (`loupe.cloud.v1`) and an OpenAPI document,
//! all on one port; `/healthz`, `/readyz` and `/metrics` are on a separate operational listener (`ops_app`).
//!
//! Entry points: build a `CloudState` (`CloudState::new`, with the signing key the binary read from its file),
//! run `bootstrap` once per start (creates the first admin into an empty metastore), then serve `app(state)` (everything in one
//! process), or `service_app(state, kind)` per service process and `gateway_app(Gateway::new(clients, …))` in
//! front. The gateway reaches the services only through `ServiceClients`, in process or remote alike.
//! `gateway_app_with_queries` adds the query API (`query`): scripts run on the caller's org's viziers through
//! `loupe_vzconn::Passthrough` over the bus, and `api::rows` the same for a browser, as JSON lines.
//!
//! Owns: the glue between `loupe_auth` (the rules: hashing, tokens, throttling) and `loupe_metastore` (durable
//! state), the error mapping onto `ErrorCode` (HTTP status and gRPC code alike), and org scoping in the
//! services (every call passes the caller's org id). Must not touch: SQL, password or token internals, the
//! vizier (reached only through `proto` messages carried by `loupe_vzconn`).
//!
//! Roles: every org member may read scripts, users, the org, viziers and deploy-key metadata, and manage their
//! own API keys and settings. Only org admins invite users, remove users, create or revoke deploy keys, write
//! org scripts, delete viziers, and see (and revoke) other members' API keys.

// Layers, each using only those listed before it (xtask's tidy checks the module graph is acyclic):
// error, metrics → state → services → clients → gateway → query → api → app.
pub mod api;
pub mod app;
pub mod clients;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod query;
pub mod services;
pub mod state;

pub use crate::api::{Route, document as openapi_document, routes};
pub use crate::app::{
    Colocated, app, gateway_app, gateway_app_with_queries, ops_app, serve, serve_router, serve_router_tls, service_app,
};
pub use crate::clients::{InternalTls, ServiceAddrs, ServiceChannel, ServiceClients, remote_channel};
pub use crate::error::{ApiError, ApiResult, PASSWORD_CHANGE_REQUIRED};
pub use crate::gateway::pixie::{ByteStream, PixieQueries, VizierCalls, pixie_query_service};
pub use crate::gateway::{Gateway, PROXY_SECRET_HEADER, grpc_forward_to, require_user};
pub use crate::query::QueryPassthrough;
pub use crate::services::caller::{API_KEY_HEADER, Caller, PendingCaller};
pub use crate::services::{Access, CloudServices, ServiceKind};
pub use crate::state::{
    BootstrapOutcome, CloudConfig, CloudError, CloudState, CronChanges, LEGACY_SIGNING_KEY_KV, NewOrgOutcome,
    TrustedProxy, bootstrap, bootstrap_into, create_org_with_admin, forget_stored_signing_key,
};
