//! `/api/v1/retention` (`RetentionService`): how long, and how much of, each table the org's viziers keep in
//! history. `GET` the policy, `PUT /api/v1/retention/{table}` one table's limits, `DELETE` to fall back to the
//! viziers' defaults.
//!
//! Owns the REST shapes. Must not decide anything the service decides (checks, roles).

use axum::Json;
use axum::extract::State;
use loupe_proto::cloudpb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiJson, ApiPath, answer};
use crate::error::{ApiResult, ErrorBody};
use crate::gateway::{CallContext, Gateway};

/// The `{table}` of a retention URL.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct RetentionTablePath {
    /// A table of `px.GetTables()`, such as `http_events`.
    #[param(max_length = 64)]
    pub table: String,
}

/// One table's retention.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TableRetentionView {
    /// The table.
    pub table: String,
    /// Hours of history older than this are deleted (60 s to 400 days).
    #[schema(minimum = 60, maximum = 34_560_000)]
    pub max_age_s: u64,
    /// Past this many bytes (per vizier) the oldest history is deleted (1 MiB to 16 TiB).
    #[schema(minimum = 1_048_576)]
    pub max_bytes: u64,
}

/// The limits of `PUT /api/v1/retention/{table}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionLimitsView {
    /// Hours of history older than this are deleted (60 s to 400 days).
    #[schema(minimum = 60, maximum = 34_560_000)]
    pub max_age_s: u64,
    /// Past this many bytes (per vizier) the oldest history is deleted (1 MiB to 16 TiB).
    #[schema(minimum = 1_048_576)]
    pub max_bytes: u64,
}

fn views(policy: cloudpb::RetentionPolicy) -> Vec<TableRetentionView> {
    policy
        .tables
        .into_iter()
        .map(|t| TableRetentionView { table: t.table, max_age_s: t.max_age_s, max_bytes: t.max_bytes })
        .collect()
}

/// The org's history retention: the tables with limits of their own (the others keep the viziers' defaults).
#[utoipa::path(get, path = "/api/v1/retention", tag = "retention", responses(
    (status = 200, description = "the tables with a retention of their own", body = Vec<TableRetentionView>),
))]
pub async fn get_retention(State(gw): State<Gateway>, ctx: CallContext) -> ApiResult<Json<Vec<TableRetentionView>>> {
    Ok(Json(views(answer(gw.clients.retention().get_retention(ctx.request(cloudpb::Empty {}))).await?)))
}

/// Set one table's retention (admins); the org's viziers receive it within seconds.
#[utoipa::path(put, path = "/api/v1/retention/{table}", tag = "retention", params(RetentionTablePath),
    request_body = RetentionLimitsView, responses(
        (status = 200, description = "the whole policy", body = Vec<TableRetentionView>),
        (status = 400, description = "unknown table or limits out of bounds", body = ErrorBody),
    ))]
pub async fn put_table_retention(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<RetentionTablePath>,
    ApiJson(req): ApiJson<RetentionLimitsView>,
) -> ApiResult<Json<Vec<TableRetentionView>>> {
    let entry = cloudpb::TableRetention { table: path.table, max_age_s: req.max_age_s, max_bytes: req.max_bytes };
    Ok(Json(views(answer(gw.clients.retention().set_table_retention(ctx.request(entry))).await?)))
}

/// One table back to the viziers' defaults (admins).
#[utoipa::path(delete, path = "/api/v1/retention/{table}", tag = "retention", params(RetentionTablePath),
    responses(
        (status = 200, description = "the whole policy", body = Vec<TableRetentionView>),
        (status = 404, description = "the table had no retention of its own", body = ErrorBody),
    ))]
pub async fn delete_table_retention(
    State(gw): State<Gateway>,
    ctx: CallContext,
    ApiPath(path): ApiPath<RetentionTablePath>,
) -> ApiResult<Json<Vec<TableRetentionView>>> {
    let req = cloudpb::DeleteTableRetentionRequest { table: path.table };
    Ok(Json(views(answer(gw.clients.retention().delete_table_retention(ctx.request(req))).await?)))
}
