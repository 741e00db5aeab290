//! The route table, the router and the OpenAPI document agree.

use crate::common::{concrete_path, harness};

#[tokio::test]
async fn openapi_lists_every_route_and_every_route_is_served() {
    let h = harness().await;
    let doc = h.call("GET", "/api/v1/openapi.json", None, None).await.expect(200).body;
    assert_eq!(doc["openapi"], "3.1.0");
    let routes = loupe_cloud::routes();
    let mut listed = 0;
    for path in doc["paths"].as_object().expect("paths").values() {
        listed += path.as_object().expect("methods").len();
    }
    assert_eq!(listed, routes.len());
    for spec in &routes {
        let op = &doc["paths"][spec.path.replace("{*", "{")][spec.method.to_lowercase()];
        assert!(op.is_object(), "{} {} missing from the OpenAPI document", spec.method, spec.path);
        assert!(op["responses"][spec.success.to_string()].is_object(), "{} {}", spec.method, spec.path);

        // The router serves it: no fallback 404 ("no route for") and no 405.
        let path = concrete_path(&spec.path, &uuid::Uuid::new_v4().to_string(), "org/x");
        let answer = h.call(&spec.method, &path, None, None).await;
        assert_ne!(answer.status.as_u16(), 405, "{} {path}", spec.method);
        assert!(!answer.message().starts_with("no route for"), "{} {path} is not routed", spec.method);
        assert!(answer.status.as_u16() < 500, "{} {path}: {}", spec.method, answer.body);
    }
}
