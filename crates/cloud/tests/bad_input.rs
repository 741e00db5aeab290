//! Bad input on every POST/PUT route: malformed JSON, unknown fields, wrong or missing content type, bodies
//! over the limit, non-object JSON and SQL metacharacters in every string field. Always a 4xx (or a 2xx for
//! input that is merely odd) with a JSON message; never a 5xx.

use axum::body::Body;
use axum::http::{Request, header};
use serde_json::{Value, json};

use crate::common::{Answer, Cred, Harness, concrete_path, harness, pxl};

const INJECTIONS: &[&str] = &[
    "'; DROP TABLE users; --",
    "\" OR \"1\"=\"1",
    "' UNION SELECT password_hash FROM users --",
    "admin@default.com' --",
    "\0",
    "a\0b",
    "%00%27",
    "\\'; SELECT pg_sleep(10); --",
    "😀🙈\u{202e}",
];

/// A valid body for each request schema, and a body per string field with `s` in that field.
fn template(schema: &str) -> Value {
    match schema {
        "LoginRequest" => json!({ "email": "admin@default.com", "password": "x" }),
        "ChangePasswordRequest" => json!({ "current_password": "nope", "new_password": "a long new password" }),
        "CreateKeyRequest" => json!({ "description": "d" }),
        "CreateScriptRequest" => json!({ "name": "org/y", "pxl": pxl("y"), "description": "d", "vis": {} }),
        "UpdateScriptRequest" => json!({ "pxl": pxl("y"), "description": "d" }),
        "Settings" => json!({ "settings": { "theme": "dark" } }),
        "CreateInvitationRequest" => json!({ "email": "x@example.com", "role": "member" }),
        "AcceptInvitationRequest" => json!({ "token": "t", "display_name": "n", "password": "a long password" }),
        "CreateCronScriptRequest" => json!({ "name": "cy", "script": pxl("y"), "frequency_s": 60, "cron": null }),
        "UpdateCronScriptRequest" => json!({ "script": pxl("y") }),
        "RunRequest" => json!({ "pxl": pxl("y"), "vizier": "v", "name": "n" }),
        "ExportTargetView" => json!({ "url": "c:4317", "headers": { "k": "v" } }),
        "RetentionLimitsView" => json!({ "max_age_s": 3600, "max_bytes": 1u64 << 20 }),
        other => panic!("no template for {other}"),
    }
}

fn injected(schema: &str, s: &str) -> Vec<Value> {
    let base = template(schema);
    let mut out = Vec::new();
    if schema == "ExportTargetView" {
        out.push(json!({ "url": s }));
        out.push(json!({ "url": "c:4317", "headers": { s: "v" } }));
        out.push(json!({ "url": "c:4317", "headers": { "k": s } }));
        return out;
    }
    if schema == "Settings" {
        out.push(json!({ "settings": { s: "v" } }));
        out.push(json!({ "settings": { "k": s } }));
        return out;
    }
    if let Value::Object(fields) = &base {
        for (name, value) in fields {
            if value.is_string() {
                let mut body = base.clone();
                body[name] = json!(s);
                out.push(body);
            }
        }
        if schema == "CreateScriptRequest" {
            let mut body = base.clone();
            body["name"] = json!(format!("org/{s}"));
            out.push(body.clone());
            body["vis"] = json!({ s: s });
            out.push(body);
        }
        if schema == "CreateInvitationRequest" {
            let mut body = base.clone();
            body["role"] = json!(s);
            out.push(body);
        }
    }
    out
}

fn raw(method: &str, path: &str, cred: Option<&Cred>, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(Cred::Bearer(token)) = cred {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header(header::CONTENT_TYPE, ct);
    }
    builder.body(Body::from(body)).expect("request")
}

/// (name, content type, body bytes, expected status).
type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, Option<u16>);

#[track_caller]
fn assert_client_error(answer: &Answer, expected: Option<u16>, what: &str) {
    let status = answer.status.as_u16();
    assert!(status < 500, "{what}: {status} {}", answer.body);
    if let Some(expected) = expected {
        assert_eq!(status, expected, "{what}: {}", answer.body);
    }
    if status >= 400 {
        assert!(
            answer.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: no JSON message in {}",
            answer.body
        );
        assert!(answer.body["code"].is_string(), "{what}: {}", answer.body);
    }
}

async fn setup(h: &Harness) -> Cred {
    let admin = Cred::Bearer(h.admin_token().await);
    let script = json!({ "name": "org/x", "pxl": pxl("x") });
    h.call("POST", "/api/v1/scripts", Some(&admin), Some(script)).await.expect(201);
    admin
}

#[tokio::test]
async fn every_body_route_rejects_bad_input_with_json_4xx() {
    let mut routes_checked = 0;
    let routes = loupe_cloud::routes();
    for spec in routes.iter().filter(|s| s.body.is_some()) {
        // A fresh server per route: a password change or throttling on one route must not mask another.
        let h = harness().await;
        let admin = setup(&h).await;
        let schema = spec.body.as_deref().expect("body");
        let path = concrete_path(&spec.path, &uuid::Uuid::new_v4().to_string(), "org/x");
        let cred = match spec.access {
            loupe_cloud::Access::Public => None,
            _ => Some(&admin),
        };
        let what = |case: &str| format!("{} {path} {case}", spec.method);
        let valid = serde_json::to_vec(&template(schema)).expect("json");

        let cases: Vec<Case<'_>> = vec![
            ("malformed", Some("application/json"), b"{\"email\": ".to_vec(), Some(400)),
            ("not json", Some("application/json"), b"hello".to_vec(), Some(400)),
            ("array", Some("application/json"), b"[]".to_vec(), Some(400)),
            ("null", Some("application/json"), b"null".to_vec(), Some(400)),
            ("empty", Some("application/json"), Vec::new(), Some(400)),
            ("invalid utf8", Some("application/json"), vec![b'{', 0xff, 0xfe, b'}'], Some(400)),
            ("text/plain", Some("text/plain"), valid.clone(), Some(415)),
            ("form", Some("application/x-www-form-urlencoded"), valid.clone(), Some(415)),
            ("no content type", None, valid.clone(), Some(415)),
            (
                "2 MiB",
                Some("application/json"),
                {
                    let big = "x".repeat(2 * 1024 * 1024);
                    serde_json::to_vec(&json!({ "description": big })).expect("json")
                },
                Some(413),
            ),
            (
                "unknown field",
                Some("application/json"),
                {
                    let mut body = template(schema);
                    body["zz_unknown"] = json!(1);
                    serde_json::to_vec(&body).expect("json")
                },
                Some(400),
            ),
            (
                "wrong types",
                Some("application/json"),
                {
                    let mut body = template(schema);
                    if let Value::Object(fields) = &mut body {
                        for value in fields.values_mut() {
                            *value = json!(12345);
                        }
                    }
                    serde_json::to_vec(&body).expect("json")
                },
                Some(400),
            ),
        ];
        for (case, ct, body, expected) in cases {
            let answer = h.send(raw(&spec.method, &path, cred, ct, body)).await;
            assert_client_error(&answer, expected, &what(case));
        }
        for s in INJECTIONS {
            for body in injected(schema, s) {
                let answer = h.call(&spec.method, &path, cred, Some(body.clone())).await;
                assert_client_error(&answer, None, &what(&format!("injection {body}")));
            }
        }
        // The database is intact after all that.
        let users = h.state.metastore.get_user_by_email("admin@default.com").await;
        assert!(users.is_ok(), "{:?}", users.err());
        routes_checked += 1;
    }
    assert_eq!(routes_checked, routes.iter().filter(|s| s.body.is_some()).count());
    assert!(routes_checked >= 9);
}

#[tokio::test]
async fn odd_paths_and_methods_get_json_errors() {
    let h = harness().await;
    let admin = setup(&h).await;
    for (method, path, expected) in [
        ("GET", "/nope", 404),
        ("GET", "/api/v1/api-keys/not-a-uuid", 404),
        ("GET", "/api/v1/users/%27%3B%20DROP%20TABLE%20users", 404),
        ("GET", "/api/v1/scripts/org/%27%20OR%201%3D1", 404),
        ("GET", "/api/v1/scripts/px/%00", 404),
        ("GET", "/api/v1/scripts/../../etc/passwd", 404),
        ("PATCH", "/api/v1/scripts", 405),
        ("DELETE", "/api/v1/org", 405),
        ("GET", "/api/v1/viziers/%FF%FE", 400),
    ] {
        let answer = h.call(method, path, Some(&admin), None).await;
        assert_client_error(&answer, Some(expected), &format!("{method} {path}"));
    }
}
