//! Export tests against OTLP receivers on loopback built from the same OpenTelemetry protocol types: a tonic
//! server implementing `MetricsService` and `TraceService`, and an HTTP receiver (axum) decoding the protobuf
//! bodies of `POST /v1/metrics` and `/v1/traces`. A PxL script is compiled, its rows exported, and what arrives
//! is checked field by field; refusals and unreachable receivers come back as errors.

use std::sync::{Arc, Mutex};

use arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use loupe_export::otlp::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use loupe_export::otlp::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use loupe_export::otlp::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use loupe_export::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use loupe_export::otlp::common::v1::{KeyValue, any_value};
use loupe_export::otlp::metrics::v1::{metric, number_data_point};
use loupe_export::{ExportError, export};
use loupe_pxl::otel::ExportSpec;
use prost::Message;

const T0: i64 = 1_700_000_000_000_000_000;

struct Table;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("time_", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("start", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("service", DataType::Utf8, false),
        Field::new("p50", DataType::Float64, false),
        Field::new("p99", DataType::Float64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("lat_sum", DataType::Float64, false),
        Field::new("trace_id", DataType::Utf8, false),
        Field::new("span_id", DataType::Utf8, false),
        Field::new("status", DataType::Int64, false),
    ]))
}

impl loupe_pxl::Catalog for Table {
    fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        (name == "svc_stats").then(schema)
    }
}

fn rows() -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(TimestampNanosecondArray::from(vec![T0, T0 + 1_000])),
            Arc::new(TimestampNanosecondArray::from(vec![T0 - 5_000, T0 - 4_000])),
            Arc::new(StringArray::from(vec!["cart", "checkout"])),
            Arc::new(Float64Array::from(vec![1.5, 2.5])),
            Arc::new(Float64Array::from(vec![9.0, 19.0])),
            Arc::new(Int64Array::from(vec![10, 20])),
            Arc::new(Float64Array::from(vec![15.0, 50.0])),
            Arc::new(StringArray::from(vec!["0102030405060708090a0b0c0d0e0f10", "not-hex"])),
            Arc::new(StringArray::from(vec!["1112131415161718", ""])),
            Arc::new(Int64Array::from(vec![200, 503])),
        ],
    )
    .expect("batch")
}

/// The export spec a script compiles to, sent to `url`.
fn spec(url: &str, insecure: bool) -> ExportSpec {
    let src = format!(
        "import px\n\
         df = px.DataFrame('svc_stats')\n\
         px.export(df, px.otel.Data(\n\
           resource={{'service.name': df.service, 'deployment.environment': 'test'}},\n\
           data=[\n\
             px.otel.metric.Gauge(name='http.latency.p50', value=df.p50, unit='ns', attributes={{'q': 'p50'}}),\n\
             px.otel.metric.Summary(name='http.latency', count=df.n, sum=df.lat_sum,\n\
                                    quantile_values={{0.5: df.p50, 0.99: df.p99}}),\n\
             px.otel.trace.Span(name='GET /cart', start_time=df.start, end_time=df.time_, trace_id=df.trace_id,\n\
                                span_id=df.span_id, attributes={{'http.status_code': df.status}},\n\
                                kind=px.otel.trace.SPAN_KIND_SERVER),\n\
           ],\n\
           endpoint=px.otel.Endpoint(url='{url}', headers={{'x-api-key': 'key-123'}}, insecure={}, timeout=2)))\n",
        if insecure { "True" } else { "False" }
    );
    let program = loupe_pxl::compile(&src, &Table, &loupe_pxl::CompileOptions { now_ns: T0 })
        .unwrap_or_else(|d| panic!("{}", d.iter().map(|d| d.render(&src, "t.pxl")).collect::<String>()));
    program.outputs[0].export.clone().expect("an export output")
}

#[derive(Default, Clone)]
struct Received {
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    api_keys: Arc<Mutex<Vec<String>>>,
    /// Answer every call with this gRPC code (counting the calls) instead of accepting.
    fail: Option<tonic::Code>,
    calls: Arc<Mutex<usize>>,
}

impl Received {
    fn key<T>(&self, r: &tonic::Request<T>) {
        let k = r.metadata().get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        self.api_keys.lock().expect("lock").push(k);
    }
}

#[tonic::async_trait]
impl MetricsService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        *self.calls.lock().expect("lock") += 1;
        if let Some(code) = self.fail {
            return Err(tonic::Status::new(code, "receiver says no"));
        }
        self.key(&r);
        self.metrics.lock().expect("lock").push(r.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Received {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        *self.calls.lock().expect("lock") += 1;
        if let Some(code) = self.fail {
            return Err(tonic::Status::new(code, "receiver says no"));
        }
        self.key(&r);
        self.traces.lock().expect("lock").push(r.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn grpc_receiver(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(received.clone()))
            .add_service(TraceServiceServer::new(received))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    addr.to_string()
}

async fn http_receiver(received: Received, status: u16) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let code = StatusCode::from_u16(status).expect("status");
    let (m, t) = (received.clone(), received);
    let app = axum::Router::new()
        .route(
            "/otlp/v1/metrics",
            axum::routing::post(move |h: HeaderMap, body: Bytes| async move {
                *m.calls.lock().expect("lock") += 1;
                assert_eq!(h.get("content-type").and_then(|v| v.to_str().ok()), Some("application/x-protobuf"));
                m.api_keys.lock().expect("lock").push(h["x-api-key"].to_str().unwrap_or("").into());
                m.metrics.lock().expect("lock").push(ExportMetricsServiceRequest::decode(body).expect("metrics"));
                code
            }),
        )
        .route(
            "/otlp/v1/traces",
            axum::routing::post(move |body: Bytes| async move {
                *t.calls.lock().expect("lock") += 1;
                t.traces.lock().expect("lock").push(ExportTraceServiceRequest::decode(body).expect("traces"));
                code
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/otlp")
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// Everything the two rows must become, whatever the transport.
fn check(received: &Received) {
    let metrics = received.metrics.lock().expect("lock");
    assert_eq!(metrics.len(), 1, "one metrics request");
    let rms = &metrics[0].resource_metrics;
    assert_eq!(rms.len(), 2, "one resource per service");
    let cart = &rms[0];
    let res = &cart.resource.as_ref().expect("resource").attributes;
    assert_eq!(attr(res, "service.name"), Some(&s("cart")));
    assert_eq!(attr(res, "deployment.environment"), Some(&s("test")));
    let ms = &cart.scope_metrics[0].metrics;
    assert_eq!(ms.len(), 2);
    assert_eq!((ms[0].name.as_str(), ms[0].unit.as_str()), ("http.latency.p50", "ns"));
    let Some(metric::Data::Gauge(g)) = &ms[0].data else { panic!("a gauge: {:?}", ms[0]) };
    assert_eq!(g.data_points.len(), 1);
    assert_eq!(g.data_points[0].time_unix_nano, T0 as u64);
    assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(1.5)));
    assert_eq!(attr(&g.data_points[0].attributes, "q"), Some(&s("p50")));
    let Some(metric::Data::Summary(sm)) = &ms[1].data else { panic!("a summary: {:?}", ms[1]) };
    assert_eq!(ms[1].name, "http.latency");
    let p = &sm.data_points[0];
    assert_eq!((p.count, p.sum, p.time_unix_nano), (10, 15.0, T0 as u64));
    let qs: Vec<(f64, f64)> = p.quantile_values.iter().map(|q| (q.quantile, q.value)).collect();
    assert_eq!(qs, vec![(0.5, 1.5), (0.99, 9.0)]);
    let checkout = &rms[1];
    assert_eq!(attr(&checkout.resource.as_ref().expect("resource").attributes, "service.name"), Some(&s("checkout")));
    let Some(metric::Data::Gauge(g)) = &checkout.scope_metrics[0].metrics[0].data else { panic!("gauge") };
    assert_eq!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(2.5)));

    let traces = received.traces.lock().expect("lock");
    assert_eq!(traces.len(), 1, "one traces request");
    let rs = &traces[0].resource_spans;
    assert_eq!(rs.len(), 2);
    let span = &rs[0].scope_spans[0].spans[0];
    assert_eq!(span.name, "GET /cart");
    assert_eq!(span.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!((span.start_time_unix_nano, span.end_time_unix_nano), ((T0 - 5_000) as u64, T0 as u64));
    assert_eq!(span.trace_id, (1..=16).collect::<Vec<u8>>());
    assert_eq!(span.span_id, (0x11..=0x18).collect::<Vec<u8>>());
    assert_eq!(attr(&span.attributes, "http.status_code"), Some(&any_value::Value::IntValue(200)));
    // An id that is not hex is replaced by a random valid one.
    let other = &rs[1].scope_spans[0].spans[0];
    assert_eq!((other.trace_id.len(), other.span_id.len()), (16, 8));
    assert_ne!(other.trace_id, vec![0u8; 16]);
    assert_eq!(attr(&other.attributes, "http.status_code"), Some(&any_value::Value::IntValue(503)));
}

#[tokio::test]
async fn a_metric_and_a_span_arrive_over_grpc() {
    let received = Received::default();
    let addr = grpc_receiver(received.clone()).await;
    let summary = export(&spec(&addr, true), None, &[rows()]).await.expect("export");
    assert_eq!((summary.points, summary.spans, summary.requests), (4, 2, 2));
    check(&received);
    assert_eq!(*received.api_keys.lock().expect("lock"), vec!["key-123", "key-123"]);
}

#[tokio::test]
async fn a_metric_and_a_span_arrive_over_http() {
    let received = Received::default();
    let base = http_receiver(received.clone(), 200).await;
    let summary = export(&spec(&base, false), None, &[rows()]).await.expect("export");
    assert_eq!((summary.points, summary.spans), (4, 2));
    check(&received);
    assert_eq!(*received.api_keys.lock().expect("lock"), vec!["key-123"]);
}

#[tokio::test]
async fn refusals_and_unreachable_receivers_are_errors_with_bounded_retries() {
    // HTTP 400 is not retried.
    let refused = Received::default();
    let base = http_receiver(refused.clone(), 400).await;
    let e = export(&spec(&base, true), None, &[rows()]).await.expect_err("refused");
    assert!(matches!(&e, ExportError::Refused(m) if m.contains("400")), "{e}");
    assert_eq!(*refused.calls.lock().expect("lock"), 1);
    // HTTP 503 is retried, at most MAX_ATTEMPTS times.
    let busy = Received::default();
    let base = http_receiver(busy.clone(), 503).await;
    export(&spec(&base, true), None, &[rows()]).await.expect_err("unavailable");
    assert_eq!(*busy.calls.lock().expect("lock"), loupe_export::send::MAX_ATTEMPTS as usize);
    // gRPC UNAVAILABLE likewise; PERMISSION_DENIED is final.
    let grpc_busy = Received { fail: Some(tonic::Code::Unavailable), ..Default::default() };
    let addr = grpc_receiver(grpc_busy.clone()).await;
    let e = export(&spec(&addr, true), None, &[rows()]).await.expect_err("unavailable");
    assert!(e.to_string().contains("receiver says no"), "{e}");
    assert_eq!(*grpc_busy.calls.lock().expect("lock"), loupe_export::send::MAX_ATTEMPTS as usize);
    let denied = Received { fail: Some(tonic::Code::PermissionDenied), ..Default::default() };
    let addr = grpc_receiver(denied.clone()).await;
    export(&spec(&addr, true), None, &[rows()]).await.expect_err("denied");
    assert_eq!(*denied.calls.lock().expect("lock"), 1);
    // Nobody listening: a send error naming the address, never the header's value.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let e = export(&spec(&format!("http://127.0.0.1:{port}"), true), None, &[rows()]).await.expect_err("nobody");
    assert!(matches!(&e, ExportError::Send(m) if m.contains(&port.to_string())), "{e}");
    assert!(!e.to_string().contains("key-123"));
    // No endpoint at all.
    let mut no_endpoint = spec("127.0.0.1:1", true);
    no_endpoint.endpoint = None;
    assert!(matches!(export(&no_endpoint, None, &[rows()]).await, Err(ExportError::NoEndpoint)));
}

/// `promtool check metrics` on `text`: its complaints (empty when the exposition is valid and lint-clean).
fn promtool(text: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() { said } else { format!("promtool failed: {said}") }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test]
async fn script_results_scraped_by_prometheus() {
    let text =
        loupe_export::prometheus::render(&[("svc-latency".to_string(), vec![("svc_stats".to_string(), vec![rows()])])]);
    assert!(text.contains("# TYPE loupe_script_svc_stats_p50 gauge\n"), "{text}");
    assert!(
        text.contains(
            "loupe_script_svc_stats_p50{script=\"svc-latency\",service=\"cart\",trace_id=\"0102030405060708090a0b0c0d0e0f10\",\
             span_id=\"1112131415161718\"} 1.5\n"
        ),
        "{text}"
    );
    assert!(!text.contains("time_"), "time columns are not samples: {text}");
    assert_eq!(promtool(&text), "", "promtool check metrics");
    // A malformed exposition is refused by the same check (the check can fail).
    assert!(promtool("loupe x y z\n").starts_with("promtool failed"));

    // A real scrape: serve the exposition (behind a bearer token) and let Debian's prometheus scrape it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let target = listener.local_addr().expect("addr");
    let body = text.clone();
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move |h: axum::http::HeaderMap| async move {
            if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer scrape-token") {
                return (axum::http::StatusCode::UNAUTHORIZED, String::new());
            }
            (axum::http::StatusCode::OK, body)
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = std::env::temp_dir().join(format!("loupe-export-prom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("token"), "scrape-token").expect("token");
    let config = format!(
        "global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: loupe\n    authorization: {{credentials_file: {}}}\n    static_configs: [{{targets: ['{target}']}}]\n",
        dir.join("token").display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let web = free_port();
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let query = "loupe_script_svc_stats_p99{service=\"checkout\",script=\"svc-latency\"}";
    let got = loop {
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--get", "--data-urlencode", &format!("query={query}")])
                .arg(format!("http://127.0.0.1:{web}/api/v1/query"))
                .output()
                .expect("curl")
        })
        .await
        .expect("curl task");
        let answer = String::from_utf8_lossy(&out.stdout).to_string();
        if answer.contains("\"value\"") || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let _ = prom.kill();
    let _ = prom.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(got.contains("\"19\"]"), "prometheus scraped p99 = 19 for checkout: {got}");
}
