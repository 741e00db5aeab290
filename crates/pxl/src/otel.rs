//! What `px.export(df, px.otel.Data(...))` compiles to: an [`ExportSpec`] carried by the exported output, naming
//! for each OpenTelemetry field the column of that output (or the constant) that fills it.
//!
//! Owns these plan types, with Pixie's field names (`resource`, `data`, `endpoint`; `Gauge(name, value, ...)`,
//! `Summary(name, count, sum, quantile_values, ...)`, `Span(name, start_time, end_time, ...)`,
//! `Endpoint(url, headers, insecure, timeout)`). Must not convert rows or speak OTLP: `loupe-export` does.

use std::fmt;

/// One value of an exported field: a column of the exported dataframe, read per row, or a constant.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OtelValue {
    /// The column's value in each row.
    Column(String),
    /// The same value for every row.
    Constant(OtelConstant),
}

/// A constant value of an exported field.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OtelConstant {
    /// An integer (a time constant too, in ns).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
}

/// Attributes (resource, metric or span): OpenTelemetry key → value, in script order.
pub type OtelAttributes = Vec<(String, OtelValue)>;

/// `px.otel.Data(resource, data, endpoint)`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExportSpec {
    /// Resource attributes (`service.name` is required, as in Pixie).
    pub resource: OtelAttributes,
    /// The metrics and spans made from each row.
    pub data: Vec<OtelData>,
    /// Where to send them; `None`: the request's (or the org's) configured endpoint.
    pub endpoint: Option<OtelEndpoint>,
}

/// One entry of `data=[...]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum OtelData {
    /// `px.otel.metric.Gauge(name, value, description='', attributes={}, unit='')`: one point per row, at the
    /// row's `time_`.
    Gauge {
        /// Metric name.
        name: String,
        /// Column holding the value (INT64 or FLOAT64).
        value: String,
        /// Metric description.
        description: String,
        /// Point attributes.
        attributes: OtelAttributes,
        /// Unit (`ns`, `By`, ...).
        unit: String,
    },
    /// `px.otel.metric.Summary(name, count, sum, quantile_values, description='', attributes={}, unit='')`.
    Summary {
        /// Metric name.
        name: String,
        /// Column holding the count (INT64).
        count: String,
        /// Column holding the sum (INT64 or FLOAT64).
        sum: String,
        /// Quantile (0..=1) → column holding its value.
        quantile_values: Vec<(f64, String)>,
        /// Metric description.
        description: String,
        /// Point attributes.
        attributes: OtelAttributes,
        /// Unit.
        unit: String,
    },
    /// `px.otel.trace.Span(name, start_time, end_time, trace_id=None, span_id=None, parent_span_id=None,
    /// attributes={}, kind=SPAN_KIND_SERVER)`: one span per row.
    Span {
        /// Span name: a column or a constant.
        name: OtelValue,
        /// Column (TIME64NS) of the start.
        start_time: String,
        /// Column (TIME64NS) of the end.
        end_time: String,
        /// Column (STRING, hex) of the trace id; random when absent or not 32 hex digits.
        trace_id: Option<String>,
        /// Column (STRING, hex) of the span id; random when absent or not 16 hex digits.
        span_id: Option<String>,
        /// Column (STRING, hex) of the parent span id.
        parent_span_id: Option<String>,
        /// Span attributes.
        attributes: OtelAttributes,
        /// OTLP `SpanKind` number (`px.otel.trace.SPAN_KIND_SERVER` = 2).
        kind: i32,
    },
}

/// `px.otel.Endpoint(url, headers={}, insecure=False, timeout=5)`.
#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OtelEndpoint {
    /// `host:port` (OTLP/gRPC, as Pixie), `grpc://`/`grpcs://` too, or `http://`/`https://` (OTLP/HTTP).
    pub url: String,
    /// Headers sent with every request (credentials, often).
    pub headers: Vec<(String, String)>,
    /// No TLS.
    pub insecure: bool,
    /// Seconds allowed per request.
    pub timeout_s: u64,
}

/// Header values are credentials: never printed.
impl fmt::Debug for OtelEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self.headers.iter().map(|(k, _)| format!("{k}: <redacted>")).collect();
        f.debug_struct("OtelEndpoint")
            .field("url", &self.url)
            .field("headers", &headers)
            .field("insecure", &self.insecure)
            .field("timeout_s", &self.timeout_s)
            .finish()
    }
}

/// OTLP span kinds by their `px.otel.trace` names.
pub const SPAN_KINDS: &[(&str, i32)] = &[
    ("SPAN_KIND_UNSPECIFIED", 0),
    ("SPAN_KIND_INTERNAL", 1),
    ("SPAN_KIND_SERVER", 2),
    ("SPAN_KIND_CLIENT", 3),
    ("SPAN_KIND_PRODUCER", 4),
    ("SPAN_KIND_CONSUMER", 5),
];

/// Default per-request timeout of an endpoint, in seconds (Pixie's).
pub const DEFAULT_TIMEOUT_S: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CompileOptions, SchemaCatalog, compile};

    const HEAD: &str = "import px\ndf = px.DataFrame('http_events', start_time='-5m')\n\
        df.service = 'checkout'\ndf = df.groupby(['time_', 'service']).agg(n=('latency', px.count), \
        lat=('latency', px.mean), lat_sum=('latency', px.sum), p99=('latency', px.p99))\n";

    fn compile_src(body: &str) -> Result<crate::Program, (u32, u32, String)> {
        let src = format!("{HEAD}{body}");
        compile(&src, &SchemaCatalog, &CompileOptions { now_ns: 1_700_000_000_000_000_000 })
            .map_err(|d| (d[0].line, d[0].column, d[0].message.clone()))
    }

    #[test]
    fn export_compiles_to_a_hidden_output_with_its_spec() {
        let p = compile_src(
            "px.export(df, px.otel.Data(\n\
               resource={'service.name': df.service, 'deployment.environment': 'prod'},\n\
               data=[px.otel.metric.Gauge(name='http.latency', value=df.lat, unit='ns',\n\
                       attributes={'service': df.service}),\n\
                     px.otel.metric.Summary(name='http.summary', count=df.n, sum=df.lat_sum,\n\
                       quantile_values={0.99: df.p99}),\n\
                     px.otel.trace.Span(name='req', start_time=df.time_, end_time=df.time_,\n\
                       kind=px.otel.trace.SPAN_KIND_CLIENT)],\n\
               endpoint=px.otel.Endpoint(url='127.0.0.1:4317', headers={'X-Key': 's3cret'}, insecure=True)))\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.outputs.len(), 1);
        let out = &p.outputs[0];
        assert_eq!(out.name, "__export_0");
        let spec = out.export.as_ref().expect("export spec");
        assert_eq!(
            spec.resource,
            vec![
                ("service.name".to_string(), OtelValue::Column("service".into())),
                ("deployment.environment".to_string(), OtelValue::Constant(OtelConstant::String("prod".into()))),
            ]
        );
        assert!(matches!(&spec.data[0], OtelData::Gauge { name, value, unit, .. }
            if name == "http.latency" && value == "lat" && unit == "ns"));
        assert!(matches!(&spec.data[1], OtelData::Summary { quantile_values, count, .. }
            if *quantile_values == vec![(0.99, "p99".to_string())] && count == "n"));
        assert!(matches!(&spec.data[2], OtelData::Span { kind: 3, start_time, .. } if start_time == "time_"));
        let ep = spec.endpoint.as_ref().expect("endpoint");
        assert_eq!((ep.url.as_str(), ep.insecure, ep.timeout_s), ("127.0.0.1:4317", true, DEFAULT_TIMEOUT_S));
        assert_eq!(ep.headers, vec![("x-key".to_string(), "s3cret".to_string())]);
        // Header values are credentials: a debug print never shows them.
        assert!(!format!("{ep:?}").contains("s3cret"));
    }

    #[test]
    fn misuse_is_reported_at_its_place() {
        let base = "px.export(df, px.otel.Data(resource={'service.name': df.service}, data=[";
        let cases: &[(&str, (u32, u32, &str))] = &[
            ("px.export(df, 5)\n", (5, 15, "the export spec of `px.export` must be `px.otel.Data(...)`")),
            (
                "px.export(df, px.otel.Data(resource={'a': 'b'}, data=[]))\n",
                (5, 37, "`resource` must set 'service.name' (OpenTelemetry requires it)"),
            ),
            (
                &format!("{base}px.otel.metric.Gauge(name='x', value=df.service)]))\n"),
                (5, 110, "`value` must be a INT64 or FLOAT64 column; `service` is STRING"),
            ),
            (
                &format!("{base}px.otel.metric.Gauge(name='x', value=df.nope)]))\n"),
                (5, 113, "unknown column `nope` in the aggregated dataframe"),
            ),
            (
                &format!("{base}px.otel.metric.Gauge(name='x', valu=df.lat)]))\n"),
                (5, 104, "unexpected argument `valu` to `px.otel.metric.Gauge`"),
            ),
            (
                &format!("{base}px.otel.trace.Span(name='s', start_time=df.time_, end_time=df.time_, kind=9)]))\n"),
                (5, 147, "`kind` must be a span kind such as `px.otel.trace.SPAN_KIND_SERVER`"),
            ),
            (
                "x = px.otel.Data(resource={}, data=[])\n",
                (5, 13, "`px.otel.Data` is only accepted inside `px.export(df, px.otel.Data(...))`"),
            ),
        ];
        for (body, want) in cases {
            let got = compile_src(body).expect_err(body);
            assert_eq!((got.0, got.1, got.2.as_str()), *want, "{body}");
        }
    }
}
