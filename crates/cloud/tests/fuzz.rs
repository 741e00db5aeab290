//! Random methods, paths, bodies and headers never produce a 5xx or a panic; random gRPC messages to every
//! cloud RPC never produce an internal error.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use crate::common::{Harness, harness};

#[derive(Debug, Clone)]
struct Input {
    method: String,
    path: String,
    query: Option<String>,
    body: Vec<u8>,
    content_type: Option<String>,
    credential: u8,
    extra_header: Option<(String, String)>,
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(uuid::Uuid::new_v4().to_string()),
        Just("org/x".to_owned()),
        Just("px/http_data".to_owned()),
        Just("%27%3B--".to_owned()),
        Just("%00".to_owned()),
        Just("..".to_owned()),
        "[a-zA-Z0-9_.~-]{0,12}",
        "(%[0-9A-F]{2}){1,4}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    let templates: Vec<String> = loupe_cloud::routes().into_iter().map(|r| r.path).collect();
    prop_oneof![
        3 => (proptest::sample::select(templates), segment(), segment())
            .prop_map(|(t, a, b)| t.replace("{id}", &a).replace("{name}", &b)),
        1 => proptest::collection::vec(segment(), 0..5).prop_map(|segs| format!("/{}", segs.join("/"))),
        1 => proptest::collection::vec(segment(), 0..4).prop_map(|segs| format!("/api/v1/{}", segs.join("/"))),
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        Just(br#"{"email":"admin@default.com","password":"admin"}"#.to_vec()),
        Just(br#"{"name":"org/a","pxl":"x","description":"'; DROP TABLE scripts;--"}"#.to_vec()),
        Just(br#"{"settings":{"k":"v"}}"#.to_vec()),
        Just(br#"{"email":"x@y.z","role":"admin"}"#.to_vec()),
        Just(br#"{"description":"\u0000"}"#.to_vec()),
        Just(br#"{"token":"abc","display_name":"n","password":"a long password"}"#.to_vec()),
        "[ -~]{0,64}".prop_map(String::into_bytes),
    ]
}

fn input() -> impl Strategy<Value = Input> {
    (
        prop_oneof![
            4 => proptest::sample::select(vec!["GET", "POST", "PUT", "DELETE"]).prop_map(str::to_owned),
            1 => proptest::sample::select(vec!["PATCH", "HEAD", "OPTIONS", "BREW", "TRACE"]).prop_map(str::to_owned),
        ],
        path(),
        proptest::option::of("[a-z=&%0-9]{0,16}"),
        body(),
        proptest::option::of(
            proptest::sample::select(vec![
                "application/json",
                "text/plain",
                "application/json; charset=utf-8",
                "multipart/form-data",
                "",
            ])
            .prop_map(str::to_owned),
        ),
        0u8..6,
        proptest::option::of((
            proptest::sample::select(vec!["x-request-id", "x-forwarded-for", "content-length", "x-api-key", "cookie"])
                .prop_map(str::to_owned),
            "[ -~]{0,40}",
        )),
    )
        .prop_map(|(method, path, query, body, content_type, credential, extra_header)| Input {
            method,
            path,
            query,
            body,
            content_type,
            credential,
            extra_header,
        })
}

#[test]
fn random_requests_never_5xx_or_panic() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (h, token, api_key): (Arc<Harness>, String, String) = rt.block_on(async {
        let h = harness().await;
        let token = h.admin_token().await;
        let key = h
            .call(
                "POST",
                "/api/v1/api-keys",
                Some(&crate::common::Cred::Bearer(token.clone())),
                Some(serde_json::json!({})),
            )
            .await
            .expect(201);
        (Arc::new(h), token, key.body["key"].as_str().expect("key").to_owned())
    });
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&input(), |input| {
        let uri = match &input.query {
            Some(q) => format!("{}?{q}", input.path),
            None => input.path.clone(),
        };
        let mut builder = Request::builder().method(input.method.as_str()).uri(uri);
        builder = match input.credential {
            0 => builder,
            1 => builder.header("authorization", format!("Bearer {token}")),
            2 => builder.header("pixie-api-key", api_key.as_str()),
            3 => builder.header("authorization", "Bearer eyJhbGciOiJub25lIn0.e30."),
            4 => builder.header("pixie-api-key", "px-dep-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            _ => builder.header("authorization", format!("Bearer {token}x")),
        };
        if let Some(ct) = &input.content_type {
            builder = builder.header("content-type", ct.as_str());
        }
        if let Some((name, value)) = &input.extra_header {
            builder = builder.header(name.as_str(), value.as_str());
        }
        // Inputs the HTTP types themselves refuse (bad URI or header) never reach a server.
        let Ok(request) = builder.body(Body::from(input.body.clone())) else { return Ok(()) };
        let answer = rt.block_on(h.send(request));
        let status = answer.status.as_u16();
        if status >= 500 {
            return Err(TestCaseError::fail(format!("{status} for {input:?}: {}", answer.body)));
        }
        if status >= 400 && input.method != "HEAD" && !answer.body["message"].is_string() {
            return Err(TestCaseError::fail(format!("{status} without a JSON message for {input:?}: {}", answer.body)));
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// Every `/package.Service/Method` path of the cloud's public gRPC API, read from its proto file so that a new
/// RPC is fuzzed without touching this test. `ServiceHealth` is internal (not routed by the gateway).
fn grpc_methods() -> Vec<String> {
    let proto = include_str!("../../proto/proto/cloudapi.proto");
    let (mut service, mut paths) = (String::new(), Vec::new());
    for line in proto.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            service = rest.trim_end_matches(['{', ' ']).to_owned();
        } else if let Some(rest) = line.strip_prefix("rpc ")
            && service != "ServiceHealth"
        {
            let method = rest.split('(').next().expect("rpc name").trim();
            paths.push(format!("/loupe.cloud.v1.{service}/{method}"));
        }
    }
    assert!(paths.len() > 30, "only {} RPCs found in cloudapi.proto", paths.len());
    paths
}

/// A gRPC length-prefixed frame; `honest` false lies about the length or sets the compression flag.
fn grpc_frame(payload: &[u8], honest: bool, lie: u8) -> Vec<u8> {
    let (flag, len) = match (honest, lie % 3) {
        (true, _) => (0u8, payload.len() as u32),
        (false, 0) => (0, payload.len() as u32 + 7),
        (false, 1) => (1, payload.len() as u32),
        (false, _) => (0, u32::MAX),
    };
    let mut frame = vec![flag];
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn random_grpc_messages_are_never_internal_errors() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (h, token) = rt.block_on(async {
        let h = harness().await;
        let token = h.admin_token().await;
        (h, token)
    });
    let methods = grpc_methods();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(300);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let strategy = (
        proptest::sample::select(methods),
        proptest::collection::vec(any::<u8>(), 0..128),
        proptest::bool::weighted(0.8),
        any::<u8>(),
        any::<bool>(),
    );
    let result = runner.run(&strategy, |(method, payload, honest, lie, with_token)| {
        let mut builder = Request::builder()
            .method("POST")
            .uri(method.as_str())
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if with_token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = builder.body(Body::from(grpc_frame(&payload, honest, lie))).expect("request");
        let (code, message) = rt.block_on(async {
            let response = h.app.clone().oneshot(request).await.expect("infallible");
            let (parts, body) = response.into_parts();
            let trailers = body.collect().await.ok().and_then(|b| b.trailers().cloned());
            let status = tonic::Status::from_header_map(&parts.headers)
                .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
            status.map_or((None, String::new()), |s| (Some(s.code()), s.message().to_owned()))
        });
        match code {
            None => Err(TestCaseError::fail(format!("{method}: no grpc-status at all"))),
            Some(tonic::Code::Internal | tonic::Code::Unknown) => {
                Err(TestCaseError::fail(format!("{method} answered {code:?}: {message} (payload {payload:?})")))
            }
            Some(_) => Ok(()),
        }
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
