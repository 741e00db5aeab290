//! The proxy on loopback, end to end: real TLS with a CA from `init_secrets`, a real axum upstream serving
//! REST and a tonic service on one port (as the cloud API does), real HTTP/1.1, HTTP/2 and gRPC clients.

use std::pin::Pin;

use axum::Json;
use futures::Stream;
use hyper::Method;
use loupe_proto::vizierpb::vizier_service_client::VizierServiceClient;
use loupe_proto::vizierpb::vizier_service_server::{VizierService, VizierServiceServer};
use loupe_proto::vizierpb::{
    ExecuteScriptRequest, ExecuteScriptResponse, HealthCheckRequest, HealthCheckResponse, QueryData,
    execute_script_response,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::secrets::{CA_CERT, SERVER_CERT, SERVER_KEY, init_secrets};

/// Rows per streamed message, large enough that a stream spans several HTTP/2 flow-control windows.
const CHUNK: usize = 100_000;

/// A vizier whose `ExecuteScript` streams three big messages then fails (so the status travels in trailers),
/// and whose `HealthCheck` reports the `X-Forwarded-For` it saw as its version.
struct FakeVizier;

type ResponseStream = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl VizierService for FakeVizier {
    type ExecuteScriptStream = ResponseStream;

    async fn execute_script(
        &self,
        request: tonic::Request<ExecuteScriptRequest>,
    ) -> Result<tonic::Response<Self::ExecuteScriptStream>, tonic::Status> {
        if request.get_ref().query_str == "refuse" {
            return Err(tonic::Status::invalid_argument("refused on purpose"));
        }
        let data = |i: u64| ExecuteScriptResponse {
            query_id: "q".into(),
            result: Some(execute_script_response::Result::Data(QueryData {
                table_id: "t".into(),
                arrow_batch: vec![u8::try_from(i).unwrap_or(0); CHUNK],
                num_rows: i,
                eos: false,
            })),
        };
        let items = (0..3).map(move |i| Ok(data(i))).chain([Err(tonic::Status::internal("stream ended on purpose"))]);
        Ok(tonic::Response::new(Box::pin(tokio_stream::iter(items))))
    }

    async fn health_check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<tonic::Response<HealthCheckResponse>, tonic::Status> {
        let seen = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
        let version = format!("{} {}", seen("x-forwarded-for"), seen("x-forwarded-proto"));
        Ok(tonic::Response::new(HealthCheckResponse { status: None, version, probes: vec![] }))
    }
}

/// Answers with what it received: method, path and query, a few headers, and the body.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Json(json!({
        "method": method.as_str(),
        "uri": uri.to_string(),
        "x-forwarded-for": header("x-forwarded-for"),
        "x-forwarded-proto": header("x-forwarded-proto"),
        "x-forwarded-host": header("x-forwarded-host"),
        "x-custom": header("x-custom"),
        "x-upstream-secret": header("x-upstream-secret"),
        "body": String::from_utf8_lossy(&body),
    }))
}

async fn start_upstream() -> SocketAddr {
    let router = axum::Router::new()
        .route("/echo", axum::routing::any(echo))
        .route_service("/loupe.vizier.v1.VizierService/{*method}", VizierServiceServer::new(FakeVizier));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// A proxy with a TLS and a redirect listener on free ports, in front of `upstream`; returns it with the
/// secrets directory.
async fn start_proxy(tag: &str, upstream: &str) -> (SocketAddr, SocketAddr, PathBuf) {
    let dir = crate::secrets::tests::temp_dir(&format!("proxy-{tag}"));
    init_secrets(&dir, &[]).expect("secrets");
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        redirect_listen: Some("127.0.0.1:0".parse().expect("addr")),
        upstream: upstream.to_owned(),
        upstream_ca: None,
        cert: dir.join(SERVER_CERT),
        key: dir.join(SERVER_KEY),
        upstream_headers: vec![("x-upstream-secret".to_owned(), "s3cret".to_owned())],
    };
    let proxy = Proxy::bind(&config).await.expect("bind proxy");
    let (tls, redirect) = (proxy.local_addr(), proxy.redirect_addr().expect("redirect listener"));
    tokio::spawn(proxy.serve(std::future::pending()));
    (tls, redirect, dir)
}

fn client_tls(ca: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca).expect("CA")).expect("add CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// One HTTPS request trusting `ca`, over HTTP/1.1 or HTTP/2 as `version` says; the status, headers and body.
async fn https(
    addr: SocketAddr,
    ca: &Path,
    version: Version,
    req: hyper::http::request::Builder,
    body: &str,
) -> std::result::Result<(StatusCode, HeaderMap, Bytes), String> {
    let alpn: &[u8] = if version == Version::HTTP_2 { b"h2" } else { b"http/1.1" };
    let connector = tokio_rustls::TlsConnector::from(client_tls(ca, alpn));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = connector.connect(name, tcp).await.map_err(|e| e.to_string())?;
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).map_err(|e| e.to_string())?;
    let resp = if version == Version::HTTP_2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender.send_request(req).await.map_err(|e| e.to_string())?
    };
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

fn post_echo(addr: SocketAddr, version: Version) -> hyper::http::request::Builder {
    let builder = Request::builder().method(Method::POST);
    let builder = if version == Version::HTTP_2 {
        builder.uri(format!("https://localhost:{}/echo?a=1&b=two", addr.port())).version(Version::HTTP_2)
    } else {
        builder.uri("/echo?a=1&b=two").header(header::HOST, format!("localhost:{}", addr.port()))
    };
    builder
        .header("x-custom", "kept")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-upstream-secret", "forged")
        .header(header::CONTENT_TYPE, "application/json")
}

async fn grpc_client(addr: SocketAddr, ca: &Path) -> VizierServiceClient<tonic::transport::Channel> {
    let pem = std::fs::read(ca).expect("CA");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(pem))
        .domain_name("localhost");
    let channel = tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", addr.port()))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect through the proxy");
    VizierServiceClient::new(channel)
}

#[tokio::test]
async fn rest_is_forwarded_over_http1_and_http2_with_forwarded_headers() {
    let upstream = start_upstream().await;
    let (proxy, _, dir) = start_proxy("rest", &format!("http://{upstream}")).await;
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (status, headers, body) =
            https(proxy, &dir.join(CA_CERT), version, post_echo(proxy, version), r#"{"hello":"world"}"#)
                .await
                .unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(status, StatusCode::OK, "{version:?}");
        assert_eq!(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes), Some(&b"application/json"[..]));
        let seen: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(seen["method"], "POST", "{seen}");
        assert_eq!(seen["uri"], "/echo?a=1&b=two", "{seen}");
        assert_eq!(seen["body"], r#"{"hello":"world"}"#, "{seen}");
        assert_eq!(seen["x-custom"], "kept", "{seen}");
        // The client's claim is replaced by the real peer.
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{seen}");
        // The configured header replaces the client's forgery.
        assert_eq!(seen["x-upstream-secret"], "s3cret", "{seen}");
        assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
        assert_eq!(seen["x-forwarded-host"], format!("localhost:{}", proxy.port()), "{seen}");
    }
}

#[tokio::test]
async fn grpc_streams_and_trailers_pass_through() {
    let upstream = start_upstream().await;
    let (proxy, _, dir) = start_proxy("grpc", &upstream.to_string()).await;
    let mut client = grpc_client(proxy, &dir.join(CA_CERT)).await;

    let health = client.health_check(HealthCheckRequest {}).await.expect("health check").into_inner();
    assert_eq!(health.version, "127.0.0.1 https");

    let req = ExecuteScriptRequest { query_str: "stream".into(), ..Default::default() };
    let mut stream = client.execute_script(req).await.expect("execute").into_inner();
    let mut rows = Vec::new();
    let status = loop {
        match stream.message().await {
            Ok(Some(msg)) => match msg.result {
                Some(execute_script_response::Result::Data(d)) => {
                    assert_eq!(d.arrow_batch.len(), CHUNK);
                    rows.push(d.num_rows);
                }
                other => panic!("unexpected message {other:?}"),
            },
            Ok(None) => panic!("the stream ended without its status"),
            Err(status) => break status,
        }
    };
    assert_eq!(rows, [0, 1, 2]);
    // The status came in the trailers, after the data.
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert_eq!(status.message(), "stream ended on purpose");

    let refused = client
        .execute_script(ExecuteScriptRequest { query_str: "refuse".into(), ..Default::default() })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(refused.message(), "refused on purpose");
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_with_308() {
    let (proxy, redirect, _) = start_proxy("redirect", "127.0.0.1:9").await;
    let ask = |request: String| async move {
        let mut tcp = TcpStream::connect(redirect).await.expect("connect");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.expect("read");
        answer.to_ascii_lowercase()
    };
    let answer = ask("GET /a/b?c=1 HTTP/1.1\r\nHost: loupe.example.com:8080\r\nConnection: close\r\n\r\n".into()).await;
    assert!(answer.starts_with("http/1.1 308"), "{answer}");
    let location = format!("location: https://loupe.example.com:{}/a/b?c=1\r\n", proxy.port());
    assert!(answer.contains(&location), "{answer}");

    // No usable Host: the address the client connected to.
    let answer = ask("GET / HTTP/1.0\r\n\r\n".into()).await;
    assert!(answer.contains(&format!("location: https://127.0.0.1:{}/\r\n", proxy.port())), "{answer}");
    let answer =
        ask("POST /x HTTP/1.1\r\nHost: a\"b<c>\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()).await;
    assert!(answer.contains(&format!("location: https://127.0.0.1:{}/x\r\n", proxy.port())), "{answer}");
}

#[tokio::test]
async fn a_down_upstream_gets_502_json() {
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let (proxy, _, dir) = start_proxy("down", &gone.to_string()).await;
    for version in [Version::HTTP_11, Version::HTTP_2] {
        let (status, _, body) =
            https(proxy, &dir.join(CA_CERT), version, post_echo(proxy, version), "").await.expect("answer");
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        let err: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(err["code"], "UNAVAILABLE", "{err}");
        assert!(err["message"].as_str().is_some_and(|m| m.contains(&gone.to_string())), "{err}");
    }
    // gRPC clients get UNAVAILABLE as a gRPC status.
    let status = grpc_client(proxy, &dir.join(CA_CERT)).await.health_check(HealthCheckRequest {}).await;
    assert_eq!(status.expect_err("down").code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn garbage_bad_handshakes_and_dropped_connections_do_not_stop_the_proxy() {
    let upstream = start_upstream().await;
    let (proxy, _, dir) = start_proxy("garbage", &upstream.to_string()).await;
    // Plain HTTP and random bytes on the TLS port.
    for junk in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3], &[0u8; 4096]] {
        let mut tcp = TcpStream::connect(proxy).await.expect("connect");
        let _ = tcp.write_all(junk).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut sink)).await;
    }
    // Connections dropped at once, or after half a handshake.
    for _ in 0..20 {
        drop(TcpStream::connect(proxy).await.expect("connect"));
    }
    // A client that does not trust this CA (another one, freshly generated) fails its handshake.
    let other = crate::secrets::tests::temp_dir("proxy-garbage-other-ca");
    init_secrets(&other, &[]).expect("other secrets");
    let err = https(proxy, &other.join(CA_CERT), Version::HTTP_11, post_echo(proxy, Version::HTTP_11), "")
        .await
        .expect_err("an untrusted certificate");
    assert!(err.contains("certificate"), "{err}");
    // A request dropped while its body is being sent.
    {
        let connector = tokio_rustls::TlsConnector::from(client_tls(&dir.join(CA_CERT), b"http/1.1"));
        let tcp = TcpStream::connect(proxy).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\npartial")
            .await
            .expect("write");
    }
    // Still serving.
    let (status, _, _) =
        https(proxy, &dir.join(CA_CERT), Version::HTTP_2, post_echo(proxy, Version::HTTP_2), "{}").await.expect("ok");
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn ports_are_stripped_from_hosts() {
    assert_eq!(strip_port("example.com:8080"), "example.com");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
    assert_eq!(strip_port("10.0.0.1"), "10.0.0.1");
    assert!(!is_plain_host("a\"b") && !is_plain_host("") && is_plain_host("[::1]"));
}

#[test]
fn hop_by_hop_headers_are_dropped_but_te_trailers_is_kept() {
    let mut h = HeaderMap::new();
    h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret-hop"));
    h.insert("x-secret-hop", HeaderValue::from_static("1"));
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    h.insert("x-end-to-end", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h);
    let mut names: Vec<_> = h.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["te", "x-end-to-end"]);
    let mut h = HeaderMap::new();
    h.insert(header::TE, HeaderValue::from_static("gzip"));
    strip_hop_by_hop(&mut h);
    assert!(h.is_empty());
}

#[test]
fn upstreams_are_plain_http_or_https_with_their_ca() {
    assert!(Forwarder::new("127.0.0.1:51200", None).is_ok());
    assert!(Forwarder::new("http://127.0.0.1:51200/", None).is_ok());
    for bad in ["https://127.0.0.1:1", "http://127.0.0.1:1/prefix", "", "ftp://x:1"] {
        assert!(matches!(Forwarder::new(bad, None), Err(ProxyError::Upstream(_))), "{bad}");
    }
    let dir = crate::secrets::tests::temp_dir("upstream-ca");
    init_secrets(&dir, &[]).expect("secrets");
    let ca = std::fs::read(dir.join(crate::secrets::CA_CERT)).expect("ca");
    assert!(Forwarder::new("https://api-service:51200", Some(&ca)).is_ok());
    assert!(Forwarder::new("api-service:51200", Some(&ca)).is_ok_and(|f| f.scheme == Scheme::HTTPS));
    // TLS asked for: plain http is refused, as is a CA file without a certificate.
    assert!(matches!(Forwarder::new("http://api-service:51200", Some(&ca)), Err(ProxyError::Upstream(_))));
    assert!(matches!(Forwarder::new("https://api-service:51200", Some(b"nothing")), Err(ProxyError::UpstreamCa)));
    let forwarder = Forwarder::new("127.0.0.1:1", None).expect("upstream");
    assert!(matches!(forwarder.with_headers(&[("bad name".into(), "v".into())]), Err(ProxyError::UpstreamHeader(_))));
}
