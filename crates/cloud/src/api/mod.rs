//! The REST handlers, one module per area, and the operational endpoints (`/healthz`, `/readyz`, `/metrics`,
//! the OpenAPI document).
//!
//! Owns request and response shapes. Every handler that touches org-owned data takes a `Caller` and passes
//! `caller.org_id()` to the metastore; none reads an org id from the request. Must not build the router (the
//! `app` module does) nor format errors (the `error` module does).

pub mod auth;
pub mod keys;
pub mod profile;
pub mod scripts;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::CloudState;

/// Unix nanoseconds (the metastore's unit) to Unix seconds (the API's unit).
pub(crate) fn to_secs(ns: i64) -> i64 {
    ns.div_euclid(1_000_000_000)
}

/// Parses an id from a path. Anything that is not a UUID names nothing, so callers answer 404 (as for an id
/// of another org) rather than explaining id syntax.
pub(crate) fn parse_id(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the metastore answers.
pub async fn readyz(State(state): State<CloudState>) -> ApiResult<Json<serde_json::Value>> {
    state.metastore.health_check().await?;
    Ok(Json(serde_json::json!({ "status": "ok", "metastore": state.metastore.backend() })))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<CloudState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

/// Answers requests no route matches.
pub async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// Answers a known path with a method it does not support.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::invalid(format!("{method} is not supported on {}", uri.path()))
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}
