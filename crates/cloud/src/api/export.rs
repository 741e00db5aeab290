//! `/api/v1/export-target` (`ExportTargetService`): the org's default OpenTelemetry endpoint, used by a
//! `px.export` that names none. Header values read back as `<redacted>`.
//!
//! Owns the REST shapes. Must not decide anything the service decides (checks, roles, redaction).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use loupe_proto::cloudpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, answer, no_content};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};

/// An OpenTelemetry endpoint, as `px.otel.Endpoint` takes it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportTargetView {
    /// `host:port` (OTLP/gRPC), or a `grpc://`, `grpcs://`, `http://` or `https://` (OTLP/HTTP) URL; no
    /// `user:password@`.
    #[schema(min_length = 1, max_length = 2048, example = "otel-collector:4317")]
    pub url: String,
    /// Sent with every request (at most 8; names of `[a-z0-9-_.]`); values read back as `<redacted>`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// No TLS.
    #[serde(default)]
    pub insecure: bool,
    /// Seconds per request; 0 or absent is the default (5).
    #[serde(default)]
    #[schema(maximum = 60)]
    pub timeout_s: u32,
}

impl From<cloudpb::ExportTarget> for ExportTargetView {
    fn from(t: cloudpb::ExportTarget) -> Self {
        ExportTargetView { url: t.url, headers: t.headers, insecure: t.insecure, timeout_s: t.timeout_s }
    }
}

/// The org's export target.
#[utoipa::path(get, path = "/api/v1/export-target", tag = "export", responses(
    (status = 200, description = "the export target, header values redacted", body = ExportTargetView),
    (status = 404, description = "the org has none", body = ErrorBody),
))]
pub async fn get_export_target(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<ExportTargetView>> {
    Ok(Json(answer(gw.clients.export_targets().get_export_target(ctx.request(cloudpb::Empty {}))).await?.into()))
}

/// Set the org's export target (admins); the org's viziers receive it within seconds.
#[utoipa::path(put, path = "/api/v1/export-target", tag = "export", request_body = ExportTargetView, responses(
    (status = 200, description = "the export target, header values redacted", body = ExportTargetView),
))]
pub async fn put_export_target(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiJson(req): ApiJson<ExportTargetView>,
) -> ApiResult<Json<ExportTargetView>> {
    let target =
        cloudpb::ExportTarget { url: req.url, headers: req.headers, insecure: req.insecure, timeout_s: req.timeout_s };
    Ok(Json(answer(gw.clients.export_targets().set_export_target(ctx.request(target))).await?.into()))
}

/// Delete the org's export target (admins).
#[utoipa::path(delete, path = "/api/v1/export-target", tag = "export", responses(
    (status = 204, description = "deleted"),
    (status = 404, description = "the org has none", body = ErrorBody),
))]
pub async fn delete_export_target(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<StatusCode> {
    no_content(gw.clients.export_targets().delete_export_target(ctx.request(cloudpb::Empty {}))).await
}
