//! Loupe's cloud API server: REST with JSON under `/api/v1` (login and sessions, API and deploy keys, scripts,
//! org, users, invitations, settings, viziers), plus `/healthz`, `/readyz`, `/metrics` and an OpenAPI document.
//!
//! Entry points: build a `CloudState` (`CloudState::new`, with the key from `load_or_create_signing_key`), run
//! `bootstrap` once per start (creates the first admin if missing), then serve `app(state)` (or call `serve`).
//!
//! Owns: HTTP glue between `loupe_auth` (the rules: hashing, tokens, throttling) and `loupe_metastore` (durable
//! state), the error mapping onto `ErrorCode`, and org scoping at the edge (every handler passes the caller's
//! org id). Must not touch: SQL, password or token internals, the vizier (reached later only through `proto`).
//!
//! Roles: every org member may read scripts, users, the org, viziers and deploy-key metadata, and manage their
//! own API keys and settings. Only org admins invite users, remove users, create or revoke deploy keys, write
//! org scripts, delete viziers, and see (and revoke) other members' API keys.

pub mod api;
pub mod app;
pub mod caller;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod state;

pub use crate::app::{ROUTES, RouteSpec, app, serve, serve_router};
pub use crate::caller::{API_KEY_HEADER, Caller, PendingCaller};
pub use crate::error::{ApiError, ApiResult, PASSWORD_CHANGE_REQUIRED};
pub use crate::state::{
    BootstrapOutcome, CloudConfig, CloudError, CloudState, SIGNING_KEY_KV, bootstrap, load_or_create_signing_key,
};
