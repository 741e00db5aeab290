//! The REST API: every route declared once, as a handler carrying its `#[utoipa::path]` (method, path, request
//! and response types, its own statuses) and one line of `declare` (its access rule), from which both the
//! router and the OpenAPI document served at `/api/v1/openapi.json` are built.
//!
//! Each handler turns a REST request into one call of a generated service client and the answer back into
//! JSON (`model` holds the REST types and their conversions). What every route of a kind answers is added
//! here, from the declaration, rather than spelled per route: 401 and 403 on authenticated routes, 400, 413
//! and 415 on routes with a body, 404 on routes naming a resource. Owns HTTP statuses of successes (201, 204)
//! and the input extractors (`ApiJson`, `ApiPath`). Must not decide anything a service decides (credentials,
//! roles, org scoping, validation beyond the declared shape) nor serve the operational endpoints (`app` does).

pub mod auth;
pub mod cron;
pub mod export;
pub mod keys;
pub mod model;
pub mod profile;
pub mod retention;
pub mod rows;
pub mod scripts;

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa_axum::router::UtoipaMethodRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult};
use crate::gateway::{CallContext, Gateway};
use crate::services::Access;

/// One declared route, as the router serves it (for tests and tools that walk every route).
#[derive(Debug, Clone)]
pub struct Route {
    /// HTTP method, upper case.
    pub method: String,
    /// axum path template (`/api/v1/scripts/{*name}`); the document names it without the `*`.
    pub path: String,
    /// Who may call it.
    pub access: Access,
    /// The request body schema's name, if it takes one.
    pub body: Option<String>,
    /// The success status.
    pub success: u16,
}

/// The routes, their router and their document, built together.
struct Declared {
    router: axum::Router<Gateway>,
    doc: OpenApi,
    routes: Vec<Route>,
}

/// Every REST route and its access rule; the rest of each declaration is on its handler.
fn declare() -> Declared {
    use Access::{Admin, Public, User, UserPendingAllowed};
    Declared::new()
        .add(Public, routes!(openapi))
        .add(Public, routes!(auth::login))
        .add(UserPendingAllowed, routes!(auth::change_password))
        .add(UserPendingAllowed, routes!(auth::logout))
        .add(User, routes!(auth::refresh))
        .add(UserPendingAllowed, routes!(auth::me))
        .add(User, routes!(keys::list_api_keys))
        .add(User, routes!(keys::create_api_key))
        .add(User, routes!(keys::get_api_key))
        .add(User, routes!(keys::delete_api_key))
        .add(User, routes!(keys::list_deploy_keys))
        .add(Admin, routes!(keys::create_deploy_key))
        .add(User, routes!(keys::get_deploy_key))
        .add(Admin, routes!(keys::delete_deploy_key))
        .add(User, routes!(scripts::list_scripts))
        .add(Admin, routes!(scripts::create_script))
        .add(User, routes!(scripts::get_bundled_script))
        .add(User, routes!(scripts::get_script))
        .add(Admin, routes!(scripts::update_script))
        .add(Admin, routes!(scripts::delete_script))
        .add(User, routes!(profile::get_org))
        .add(User, routes!(profile::list_users))
        .add(User, routes!(profile::get_user))
        .add(Admin, routes!(profile::delete_user))
        .add(User, routes!(profile::get_settings))
        .add(User, routes!(profile::put_settings))
        .add(Admin, routes!(profile::list_invitations))
        .add(Admin, routes!(profile::create_invitation))
        .add(Admin, routes!(profile::delete_invitation))
        .add(Public, routes!(profile::accept_invitation))
        .add(User, routes!(profile::list_viziers))
        .add(User, routes!(profile::get_vizier))
        .add(Admin, routes!(profile::delete_vizier))
        // Cron scripts (issue 11).
        .add(User, routes!(cron::list_cron_scripts))
        .add(User, routes!(cron::create_cron_script))
        .add(User, routes!(cron::get_cron_script))
        .add(User, routes!(cron::update_cron_script))
        .add(User, routes!(cron::delete_cron_script))
        .add(User, routes!(cron::list_cron_script_results))
        // The org's export target (issue 20).
        .add(User, routes!(export::get_export_target))
        .add(Admin, routes!(export::put_export_target))
        .add(Admin, routes!(export::delete_export_target))
        // The org's history retention (issue 20).
        .add(User, routes!(retention::get_retention))
        .add(Admin, routes!(retention::put_table_retention))
        .add(Admin, routes!(retention::delete_table_retention))
        // Scripts run for a browser, as JSON lines (`rows`; its passthrough comes as an extension, `app`).
        .add(User, routes!(rows::run))
}

/// The document's frame: what no single route says.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Loupe cloud API",
        description = "Timestamps are Unix seconds. Every error answers an `Error` body. Authenticate with \
            `Authorization: Bearer <token>` (from `POST /api/v1/auth/login`) or `pixie-api-key: px-api-…`. \
            `x-access` names who may call an operation: `public`, `user`, `user-pending-allowed` (also while a \
            password change is pending) or `admin` (org admins only)."
    ),
    components(schemas(crate::error::ErrorBody))
)]
struct Frame;

const BEARER: &str = "bearer";
const API_KEY: &str = "apiKey";

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
        .build()
        .into()
}

impl Declared {
    fn new() -> Self {
        let mut doc = Frame::openapi();
        doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                loupe_proto::headers::API_KEY,
                "an API key, px-api-…",
            ))),
        );
        Self { router: axum::Router::new(), doc, routes: Vec::new() }
    }

    /// Adds a handler's route with its access rule: to the router (the rule travels in the request's
    /// extensions, for `ApiJson`) and to the document (security, `x-access`, and the statuses every route of
    /// its kind answers).
    fn add(mut self, access: Access, (schemas, paths, method_router): UtoipaMethodRouter<Gateway>) -> Self {
        for (path, mut item) in paths.paths {
            let doc_path = path.replace("{*", "{");
            for (method, operation) in operations(&mut item) {
                shape(operation, access);
                self.routes.push(Route {
                    method: method.to_owned(),
                    path: path.clone(),
                    access,
                    body: body_schema(operation),
                    success: operation
                        .responses
                        .responses
                        .keys()
                        .filter_map(|s| s.parse::<u16>().ok())
                        .find(|s| (200..300).contains(s))
                        .unwrap_or(200),
                });
            }
            self.router = self.router.route(&path, method_router.clone().layer(axum::Extension(access)));
            match self.doc.paths.paths.get_mut(&doc_path) {
                Some(existing) => existing.merge_operations(item),
                None => {
                    self.doc.paths.paths.insert(doc_path, item);
                }
            }
        }
        self.doc.components.get_or_insert_with(Default::default).schemas.extend(schemas);
        self
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("POST", item.post.as_mut()),
        ("PUT", item.put.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

fn body_schema(operation: &Operation) -> Option<String> {
    let RefOr::T(body) = operation.request_body.as_ref()? else { return None };
    let RefOr::T(content) = body.content.get("application/json")? else { return None };
    match content.schema.as_ref()? {
        RefOr::Ref(r) => r.ref_location.rsplit('/').next().map(str::to_owned),
        RefOr::T(_) => None,
    }
}

/// Adds to `operation` what its access rule and its shape imply.
fn shape(operation: &mut Operation, access: Access) {
    let responses = &mut operation.responses.responses;
    let mut add = |status: u16, description: &str| {
        responses.entry(status.to_string()).or_insert_with(|| error_response(description));
    };
    let authenticated = access != Access::Public;
    if authenticated {
        add(401, "no credential, or one that is unknown, expired or revoked");
        add(
            403,
            match access {
                Access::Admin => "only org admins may do this, or a password change is pending",
                Access::UserPendingAllowed => "not allowed with this kind of credential",
                _ => "a password change is pending",
            },
        );
    }
    if operation.request_body.is_some() {
        add(400, "the body is not a JSON object of this schema, or a field is invalid");
        add(413, "the body is larger than the server's limit");
        add(415, "the body is not application/json");
    }
    let names_resource = operation.parameters.as_ref().is_some_and(|params| {
        params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == utoipa::openapi::path::ParameterIn::Path))
    });
    if names_resource {
        add(404, "no such resource in the caller's org (never created, deleted, or not visible to the caller)");
    }
    operation.security = Some(if authenticated {
        vec![
            SecurityRequirement::new(BEARER, Vec::<String>::new()),
            SecurityRequirement::new(API_KEY, Vec::<String>::new()),
        ]
    } else {
        vec![SecurityRequirement::default()]
    });
    let extensions = operation.extensions.get_or_insert_with(Default::default);
    extensions.insert("x-access".to_owned(), serde_json::Value::String(access.name().to_owned()));
}

static DECLARED_DOC: OnceLock<serde_json::Value> = OnceLock::new();

/// The OpenAPI document of every route, as served.
pub fn document() -> &'static serde_json::Value {
    DECLARED_DOC.get_or_init(|| serde_json::to_value(declare().doc).unwrap_or_default())
}

/// Every route the router serves.
pub fn routes() -> Vec<Route> {
    declare().routes
}

/// The router of every REST route.
pub(crate) fn router() -> axum::Router<Gateway> {
    declare().router
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "ops", responses(
    (status = 200, description = "the OpenAPI 3.1 document of this API", body = Object),
))]
pub async fn openapi() -> Json<&'static serde_json::Value> {
    Json(document())
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

/// The `{id}` of a route naming a resource by id.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The resource's id; anything that is not a UUID names nothing (404).
    #[param(format = "uuid")]
    pub id: String,
}

impl IdPath {
    pub(crate) fn request(&self) -> loupe_proto::cloudpb::IdRequest {
        loupe_proto::cloudpb::IdRequest { id: self.id.clone() }
    }
}

/// `axum::Json` whose rejections are `ApiError`s (400/413/415 with a JSON message).
///
/// A body is parsed before any service sees the call, yet a bad credential or a pending password change is
/// the more useful answer: so when the body is refused on a route that needs a credential, the credential is
/// checked first (`Gateway::check_caller`, by the route's `Access`, which `Declared::add` put in the request's
/// extensions), and its refusal wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequest<Gateway> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, gateway: &Gateway) -> Result<Self, ApiError> {
        let access = req.extensions().get::<Access>().copied().unwrap_or(Access::Public);
        let (mut parts, body) = req.into_parts();
        let context = CallContext::from_request_parts(&mut parts, gateway).await;
        let parsed = parse_json_object(Request::from_parts(parts, body), gateway).await;
        let Err(body_error) = parsed else { return parsed.map(ApiJson) };
        if access == Access::Public {
            return Err(body_error);
        }
        let Ok(context) = context;
        gateway.check_caller(&context, access).await?;
        Err(body_error)
    }
}

async fn parse_json_object<T: DeserializeOwned>(req: Request, gateway: &Gateway) -> Result<T, ApiError> {
    // Through a `Value` first: serde would otherwise accept `[]` for a struct whose fields all have defaults.
    let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, gateway).await?;
    if !value.is_object() {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
}

/// `axum::extract::Path` whose rejections are `ApiError`s.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(value) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(ApiPath(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation<'a>(doc: &'a serde_json::Value, route: &Route) -> &'a serde_json::Value {
        &doc["paths"][route.path.replace("{*", "{")][route.method.to_lowercase()]
    }

    #[test]
    fn routes_on_one_path_share_it_and_bundled_scripts_are_read_only() {
        let doc = document();
        let methods =
            |path: &str| -> Vec<String> { routes().into_iter().filter(|r| r.path == path).map(|r| r.method).collect() };
        assert_eq!(methods("/api/v1/scripts/org/{name}"), ["GET", "PUT", "DELETE"]);
        assert_eq!(methods("/api/v1/scripts/px/{name}"), ["GET"]);
        let params = &doc["paths"]["/api/v1/scripts/org/{name}"]["delete"]["parameters"];
        assert_eq!(params[0]["name"], "name");
        assert_eq!(params[0]["in"], "path");
        assert_eq!(params[0]["schema"]["pattern"], "^[a-z0-9_-]{1,64}$");
        let id = &doc["paths"]["/api/v1/users/{id}"]["get"]["parameters"][0];
        assert_eq!((&id["name"], &id["schema"]["format"]), (&serde_json::json!("id"), &serde_json::json!("uuid")));
    }

    #[test]
    fn every_route_documents_what_its_access_and_shape_imply() {
        let doc = document();
        let routes = routes();
        assert_eq!(routes.len(), 46);
        for route in &routes {
            let op = operation(doc, route);
            let what = format!("{} {}", route.method, route.path);
            let responses = op["responses"].as_object().expect(&what);
            assert!(responses.contains_key(&route.success.to_string()), "{what}");
            assert_eq!(op["x-access"], route.access.name(), "{what}");
            let public = route.access == Access::Public;
            // Login also answers 401 (a wrong password), so only the implication holds.
            assert!(public || responses.contains_key("401"), "{what}");
            assert_eq!(op["security"].as_array().expect(&what).len(), if public { 1 } else { 2 }, "{what}");
            if let Some(body) = &route.body {
                assert!(doc["components"]["schemas"][body].is_object(), "{what}: {body}");
                for status in ["400", "413", "415"] {
                    assert_eq!(
                        responses[status]["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/Error",
                        "{what} {status}"
                    );
                }
            }
            if route.path.contains('{') {
                assert!(responses.contains_key("404"), "{what}");
            }
        }
        let error = &doc["components"]["schemas"]["Error"];
        assert_eq!(error["required"], serde_json::json!(["code", "message"]));
        assert_eq!(error["properties"]["code"]["enum"][0], "INVALID_ARGUMENT");
        assert_eq!(error["properties"]["code"]["enum"].as_array().expect("codes").len(), 10);
    }
}
