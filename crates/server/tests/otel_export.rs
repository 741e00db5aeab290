//! `px.export` end to end: `loupe up` runs a script (through the cloud, as `px run` sends it) that both displays
//! and exports the same rows; an OTLP/gRPC receiver on loopback (a tonic `MetricsService`/`TraceService` from
//! `loupe-export`'s OpenTelemetry types) must get exactly the displayed values as gauge points, and one span per
//! row. A receiver that is not there makes `px run` fail with the reason. A cron script's newest rows are gauges on
//! the metrics listener, which `promtool` checks and a real Prometheus scrapes and answers queries over.

use std::sync::{Arc, Mutex};

use loupe_export::otlp::collector::metrics::v1::metrics_service_server::{MetricsService, MetricsServiceServer};
use loupe_export::otlp::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use loupe_export::otlp::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use loupe_export::otlp::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use loupe_export::otlp::common::v1::any_value;
use loupe_export::otlp::metrics::v1::{metric, number_data_point};
use serde_json::Value;

use crate::common::{free_port, temp_dir};
use crate::e2e::{can_trace, login, px, start_loupe, write_script};

/// An OTLP/gRPC receiver that keeps what it is sent (also used by the cluster tests).
#[derive(Default, Clone)]
pub(crate) struct Receiver {
    pub(crate) metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    /// The `x-api-key` header of each metrics request.
    pub(crate) keys: Arc<Mutex<Vec<String>>>,
    pub(crate) traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        r: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let key = r.metadata().get("x-api-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        self.keys.lock().expect("lock").push(key);
        self.metrics.lock().expect("lock").push(r.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        r: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.traces.lock().expect("lock").push(r.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves the receiver on a loopback port from a runtime of its own (these tests are synchronous).
pub(crate) fn start_receiver(receiver: Receiver) -> (tokio::runtime::Runtime, u16) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(MetricsServiceServer::new(receiver.clone()))
            .add_service(TraceServiceServer::new(receiver))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (rt, port)
}

fn script(receiver_port: u16) -> String {
    // Samples of the last 30 s, up to 2 s ago: both outputs read the same rows (px.now() is fixed per run).
    format!(
        "import px\n\
         df = px.DataFrame('process_stats', start_time='-30s', end_time='-2s')\n\
         df = df.groupby('time_').agg(rss=('rss_bytes', px.sum), procs=('upid', px.count))\n\
         df.service = 'loupe-e2e'\n\
         px.display(df, 'shown')\n\
         px.export(df, px.otel.Data(\n\
           resource={{'service.name': df.service}},\n\
           data=[px.otel.metric.Gauge(name='host.rss', value=df.rss, unit='By', attributes={{'procs': df.procs}}),\n\
                 px.otel.trace.Span(name='sample', start_time=df.time_, end_time=df.time_)],\n\
           endpoint=px.otel.Endpoint(url='127.0.0.1:{receiver_port}', headers={{'x-api-key': 'k'}}, insecure=True)))\n"
    )
}

#[test]
fn px_export_sends_the_displayed_rows_as_metrics_and_spans() {
    if !can_trace() {
        return;
    }
    let receiver = Receiver::default();
    let (_rt, receiver_port) = start_receiver(receiver.clone());
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    // Wait until some host samples are old enough to be in the window.
    std::thread::sleep(std::time::Duration::from_secs(4));
    let dir = temp_dir("otel-export");
    let file = write_script(&dir, "export.pxl", &script(receiver_port));
    let out = px(api_port, &["run", "-f", file.to_str().expect("utf8"), "-o", "json"]);
    assert!(out.status.success(), "px failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Only the displayed table comes back: the exported output is not sent to the client.
    let rows: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("json row")).collect();
    assert!(!rows.is_empty(), "no samples displayed");
    let mut shown: Vec<(i64, i64)> =
        rows.iter().map(|r| (r["rss"].as_i64().unwrap_or(-1), r["procs"].as_i64().unwrap_or(-1))).collect();
    shown.sort();

    let metrics = receiver.metrics.lock().expect("lock");
    assert_eq!(metrics.len(), 1, "one metrics request");
    let rm = &metrics[0].resource_metrics;
    assert_eq!(rm.len(), 1);
    let res = &rm[0].resource.as_ref().expect("resource").attributes;
    assert_eq!(res[0].key, "service.name");
    assert_eq!(
        res[0].value.as_ref().and_then(|v| v.value.clone()),
        Some(any_value::Value::StringValue("loupe-e2e".into()))
    );
    let m = &rm[0].scope_metrics[0].metrics[0];
    assert_eq!((m.name.as_str(), m.unit.as_str()), ("host.rss", "By"));
    let Some(metric::Data::Gauge(g)) = &m.data else { panic!("a gauge: {m:?}") };
    let mut sent: Vec<(i64, i64)> = g
        .data_points
        .iter()
        .map(|p| {
            let v = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i,
                other => panic!("an integer point: {other:?}"),
            };
            let procs = match p.attributes[0].value.as_ref().and_then(|v| v.value.clone()) {
                Some(any_value::Value::IntValue(i)) => i,
                other => panic!("procs: {other:?}"),
            };
            assert!(p.time_unix_nano > 0);
            (v, procs)
        })
        .collect();
    sent.sort();
    assert_eq!(sent, shown, "the exported points are the displayed rows");
    let traces = receiver.traces.lock().expect("lock");
    let spans: usize =
        traces.iter().flat_map(|t| &t.resource_spans).flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(spans, shown.len(), "one span per row");

    // Nobody listening: the script fails, and says why.
    let dead = free_port();
    let file = write_script(&dir, "dead.pxl", &script(dead));
    let out = px(api_port, &["run", "-f", file.to_str().expect("utf8")]);
    assert!(!out.status.success(), "an export nobody received must fail the script");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("px.export") && stderr.contains(&dead.to_string()), "{stderr}");
}

#[test]
fn px_export_set_is_the_endpoint_of_a_script_that_names_none() {
    if !can_trace() {
        return;
    }
    let receiver = Receiver::default();
    let (_rt, receiver_port) = start_receiver(receiver.clone());
    let (_loupe, _metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("otel-default");
    let key_file = write_script(&dir, "key", "the-org-key\n");
    let header = format!("x-api-key={}", key_file.to_str().expect("utf8"));
    let url = format!("127.0.0.1:{receiver_port}");
    let out = px(api_port, &["export", "set", "--url", &url, "--header-file", &header, "--insecure", "-o", "json"]);
    assert!(out.status.success(), "px export set: {}", String::from_utf8_lossy(&out.stderr));
    let out = px(api_port, &["export", "get"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && shown.contains(&url) && shown.contains("x-api-key=<redacted>"), "{shown}");
    assert!(!shown.contains("the-org-key"), "{shown}");

    // No `endpoint=`: the org's default is used once the vizier has it (pushed at once; asked every 30 s).
    let file = write_script(
        &dir,
        "default.pxl",
        "import px\n\
         df = px.DataFrame('process_stats', start_time='-30s')\n\
         df = df.groupby('time_').agg(rss=('rss_bytes', px.sum))\n\
         df.service = 'loupe-default'\n\
         px.export(df, px.otel.Data(resource={'service.name': df.service},\n\
           data=[px.otel.metric.Gauge(name='host.rss.default', value=df.rss)]))\n",
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let out = px(api_port, &["run", "-f", file.to_str().expect("utf8")]);
        if out.status.success() && !receiver.metrics.lock().expect("lock").is_empty() {
            break;
        }
        let why = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(std::time::Instant::now() < deadline, "the default endpoint never arrived: {why}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let metrics = receiver.metrics.lock().expect("lock").clone();
    let m = &metrics[0].resource_metrics[0].scope_metrics[0].metrics[0];
    assert_eq!(m.name, "host.rss.default");
    assert_eq!(receiver.keys.lock().expect("lock")[0], "the-org-key", "the org's header reached the receiver");

    // Deleted: a script without `endpoint=` fails again, saying why.
    let out = px(api_port, &["export", "delete"]);
    assert!(out.status.success(), "px export delete: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(45);
    loop {
        let out = px(api_port, &["run", "-f", file.to_str().expect("utf8")]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("endpoint"), "{stderr}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the default endpoint was never withdrawn");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// `promtool check metrics` on `text`: what it says, empty when the exposition is valid and lint-clean.
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

#[test]
fn a_cron_scripts_newest_rows_are_gauges_on_the_metrics_listener() {
    if !can_trace() {
        return;
    }
    let (_loupe, metrics_port, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("otel-prom");
    let file = write_script(
        &dir,
        "procs.pxl",
        "import px\n\
         df = px.DataFrame('process_stats', start_time='-20s')\n\
         s = df.agg(samples=('rss_bytes', px.count), rss_max=('rss_bytes', px.max))\n\
         s.host = 'this \"host\"'\n\
         px.display(s, 'procs')\n",
    );
    let out = px(api_port, &["cron", "create", "--name", "procs", "--every", "2s", "-f", file.to_str().expect("utf8")]);
    assert!(out.status.success(), "cron create: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let ours = loop {
        let out = std::process::Command::new("curl")
            .args(["-sS", &format!("http://127.0.0.1:{metrics_port}/metrics")])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let ours: String = text.lines().filter(|l| l.contains("loupe_script_")).map(|l| format!("{l}\n")).collect();
        if ours.contains("loupe_script_procs_samples{") {
            break ours;
        }
        assert!(std::time::Instant::now() < deadline, "no script gauges after 60 s:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(ours.contains("# TYPE loupe_script_procs_rss_max gauge\n"), "{ours}");
    let sample = ours.lines().find(|l| l.starts_with("loupe_script_procs_samples{")).expect("sample");
    assert!(sample.starts_with(r#"loupe_script_procs_samples{script="procs",host="this \"host\""} "#), "{sample}");
    let n: f64 = sample.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a number");
    assert!(n >= 1.0, "{sample}");
    assert_eq!(promtool(&ours), "", "promtool check metrics:\n{ours}");

    // A real Prometheus (Debian's) scrapes the listener every second and answers a query over the gauge with its
    // labels, while the target stays up.
    let prom_port = free_port();
    let config = write_script(
        &dir,
        "prometheus.yml",
        &format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: loupe\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    );
    let prom_log = dir.join("prometheus.log");
    let _prometheus = crate::common::Guard(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&prom_log).expect("log"))
            .spawn()
            .expect("prometheus (Debian's prometheus package; scripts/test.sh installs it)"),
    );
    crate::common::wait_for_port(prom_port, "prometheus");
    let query = |q: &str| -> Value {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-G", "--data-urlencode", &format!("query={q}")])
            .arg(format!("http://127.0.0.1:{prom_port}/api/v1/query"))
            .output()
            .expect("curl");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let scraped = loop {
        let answer = query("loupe_script_procs_samples");
        if let Some(series) = answer["data"]["result"].as_array().and_then(|r| r.first()).cloned() {
            break series;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus never had the gauge: {answer}\n{}",
            std::fs::read_to_string(&prom_log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert_eq!(scraped["metric"]["script"], "procs", "{scraped}");
    assert_eq!(scraped["metric"]["host"], "this \"host\"", "{scraped}");
    assert_eq!(scraped["metric"]["job"], "loupe", "{scraped}");
    let value: f64 = scraped["value"][1].as_str().and_then(|v| v.parse().ok()).expect("a sample value");
    assert!(value >= 1.0, "{scraped}");
    let up = query("up{job=\"loupe\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "the scrape target is up: {up}");
}
