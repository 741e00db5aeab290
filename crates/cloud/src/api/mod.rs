//! The REST handlers, one module per area, and the operational endpoints (`/healthz`, `/readyz`, `/metrics`,
//! the OpenAPI document).
//!
//! Each handler turns a REST request into one call of a generated service client and the answer back into
//! JSON: the request bodies and answers are the services' protobuf messages in their JSON form (see
//! `proto/cloudapi.proto`), except where REST has a friendlier shape (bare arrays for listings, `vis` as a
//! JSON value for scripts). Owns HTTP statuses of successes (201, 204). Must not decide anything a service
//! decides (credentials, roles, org scoping, validation) nor build the router (the `app` module does).

pub mod auth;
pub mod keys;
pub mod profile;
pub mod scripts;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_proto::cloudpb;

use crate::error::{ApiError, ApiResult};
use crate::gateway::Gateway;
use crate::services::ServiceKind;

/// The message of a service call's answer, its failure as an `ApiError`.
pub(crate) async fn answer<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> ApiResult<T> {
    Ok(call.await?.into_inner())
}

/// `204 No Content` after a successful call.
pub(crate) async fn no_content<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> ApiResult<StatusCode> {
    call.await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `IdRequest` from a path segment.
pub(crate) fn id(id: String) -> cloudpb::IdRequest {
    cloudpb::IdRequest { id }
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: every service answers and reaches its metastore.
pub async fn readyz(State(gateway): State<Gateway>) -> ApiResult<Json<serde_json::Value>> {
    let mut services = serde_json::Map::new();
    for kind in ServiceKind::ALL {
        let ready = gateway.clients.health(kind).ready(cloudpb::Empty {}).await.map_err(|status| {
            ApiError::unavailable(format!("the {} service is not ready: {}", kind.name(), status.message()))
        })?;
        services.insert(kind.name().to_owned(), ready.into_inner().metastore.into());
    }
    let metastore = services.values().next().cloned().unwrap_or_default();
    Ok(Json(serde_json::json!({ "status": "ok", "metastore": metastore, "services": services })))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(gateway): State<Gateway>) -> Response {
    let mut response = gateway.metrics.render().into_response();
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
