//! The OpenAPI 3 document served at `/api/v1/openapi.json`, built from the route table so that it lists every
//! route the router serves.
//!
//! Owns the hand-written request schemas and the shared error schema. Must not invent routes: paths and
//! methods come only from `app::ROUTES`.

use serde_json::{Map, Value, json};

use crate::app::{Access, ROUTES};

/// The OpenAPI path of an axum template: `{*name}` becomes `{name}`.
pub fn openapi_path(axum_path: &str) -> String {
    axum_path.replace("{*", "{")
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let name = name.trim_start_matches('*');
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
        })
        .collect()
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": properties })
}

fn schemas() -> Value {
    json!({
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string", "enum": [
                    "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED", "PERMISSION_DENIED", "UNAVAILABLE",
                    "INTERNAL", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ALREADY_EXISTS", "FAILED_PRECONDITION"
                ] },
                "message": string(),
                "reason": { "type": "string", "description": "e.g. PASSWORD_CHANGE_REQUIRED" }
            }
        },
        "LoginRequest": object(&["email", "password"], json!({ "email": string(), "password": string() })),
        "ChangePasswordRequest": object(&["current_password", "new_password"],
            json!({ "current_password": string(), "new_password": string() })),
        "CreateKeyRequest": object(&[], json!({ "description": string() })),
        "CreateScriptRequest": object(&["name", "pxl"], json!({
            "name": { "type": "string", "pattern": "^org/[a-z0-9_-]{1,64}$" },
            "pxl": string(),
            "vis": { "description": "vis spec, any JSON" },
            "description": string()
        })),
        "UpdateScriptRequest": object(&["pxl"], json!({
            "pxl": string(), "vis": { "description": "vis spec, any JSON" }, "description": string()
        })),
        "Settings": object(&["settings"], json!({
            "settings": { "type": "object", "additionalProperties": string() }
        })),
        "CreateInvitationRequest": object(&["email"], json!({
            "email": string(), "role": { "type": "string", "enum": ["admin", "member"], "default": "member" }
        })),
        "AcceptInvitationRequest": object(&["token", "display_name", "password"],
            json!({ "token": string(), "display_name": string(), "password": string() })),
        "SessionResponse": {
            "type": "object",
            "properties": {
                "token": string(),
                "expires_at": { "type": "integer", "description": "Unix seconds" },
                "user": { "type": "object" },
                "org": { "type": "object" },
                "must_change_password": { "type": "boolean" }
            }
        }
    })
}

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for spec in ROUTES {
        let path = openapi_path(spec.path);
        let mut op = Map::new();
        op.insert("summary".into(), json!(spec.summary));
        op.insert("tags".into(), json!([spec.tag]));
        op.insert(
            "operationId".into(),
            json!(format!(
                "{}_{}",
                spec.method.to_lowercase(),
                path.trim_matches('/').replace(['/', '{', '}', '.', '-'], "_")
            )),
        );
        let params = path_params(spec.path);
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        match spec.access {
            Access::Public => {
                op.insert("security".into(), json!([]));
            }
            Access::Admin => {
                op.insert("description".into(), json!("org admins only"));
            }
            Access::UserPendingAllowed => {
                op.insert("description".into(), json!("allowed while a password change is pending"));
            }
            Access::User => {}
        }
        if let Some(body) = spec.body {
            op.insert(
                "requestBody".into(),
                json!({ "required": true, "content": { "application/json": {
                    "schema": { "$ref": format!("#/components/schemas/{body}") } } } }),
            );
        }
        let success = if spec.success == 204 {
            json!({ "description": "done" })
        } else if spec.path == "/metrics" {
            json!({ "description": "Prometheus text", "content": { "text/plain": { "schema": string() } } })
        } else {
            json!({ "description": "success", "content": { "application/json": { "schema": { "type": "object" } } } })
        };
        let error = json!({ "description": "error", "content": { "application/json": {
            "schema": { "$ref": "#/components/schemas/Error" } } } });
        op.insert("responses".into(), json!({ spec.success.to_string(): success, "default": error }));

        let entry = paths.entry(path).or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            methods.insert(spec.method.to_lowercase(), Value::Object(op));
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Loupe cloud API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Timestamps are Unix seconds. Errors are {code, message}. Authenticate with \
                Authorization: Bearer <token> (from /api/v1/auth/login) or pixie-api-key: px-api-…"
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "apiKey": { "type": "apiKey", "in": "header", "name": loupe_proto::headers::API_KEY }
            }
        },
        "security": [ { "bearer": [] }, { "apiKey": [] } ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_plain_parameters() {
        assert_eq!(openapi_path("/api/v1/scripts/{*name}"), "/api/v1/scripts/{name}");
        assert_eq!(path_params("/api/v1/scripts/{*name}")[0]["name"], "name");
    }

    #[test]
    fn every_body_schema_exists() {
        let doc = document();
        for spec in ROUTES {
            if let Some(body) = spec.body {
                assert!(doc["components"]["schemas"][body].is_object(), "{body}");
            }
        }
    }
}
