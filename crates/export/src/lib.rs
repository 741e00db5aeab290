//! OpenTelemetry export of PxL results, Pixie's OTel plugin rebuilt: the rows of an output that `px.export(df,
//! px.otel.Data(...))` made become OTLP metric points (gauges, summaries) and spans (`convert`), sent over
//! OTLP/gRPC or OTLP/HTTP (`send`) to the script's endpoint or the caller's default one.
//!
//! Owns the OTLP messages (generated from the OpenTelemetry protocol files in `proto/`), the conversion and the
//! transports, each bounded: requests of at most [`convert::MAX_ITEMS_PER_REQUEST`] items, a timeout per request,
//! [`send::MAX_ATTEMPTS`] attempts. Endpoint headers (credentials) are never logged. Must not compile PxL or run
//! queries: it is given the spec (`loupe_pxl::otel`) and the output's batches.

pub mod convert;
pub mod prometheus;
pub mod send;

/// The OTLP messages and services (`opentelemetry.proto.*`). Their doc comments are the upstream `.proto` files'
/// prose, which rustdoc reads as HTML (`<version>`) and links.
#[allow(missing_docs, clippy::all, rustdoc::invalid_html_tags, rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]
pub mod otlp {
    /// `opentelemetry.proto.common.v1`.
    pub mod common {
        /// v1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.common.v1.rs"));
        }
    }
    /// `opentelemetry.proto.resource.v1`.
    pub mod resource {
        /// v1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.resource.v1.rs"));
        }
    }
    /// `opentelemetry.proto.metrics.v1`.
    pub mod metrics {
        /// v1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.metrics.v1.rs"));
        }
    }
    /// `opentelemetry.proto.trace.v1`.
    pub mod trace {
        /// v1.
        pub mod v1 {
            include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.trace.v1.rs"));
        }
    }
    /// The collector services.
    pub mod collector {
        /// `opentelemetry.proto.collector.metrics.v1`.
        pub mod metrics {
            /// v1.
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.collector.metrics.v1.rs"));
            }
        }
        /// `opentelemetry.proto.collector.trace.v1`.
        pub mod trace {
            /// v1.
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.collector.trace.v1.rs"));
            }
        }
    }
}

use arrow::array::RecordBatch;
use loupe_pxl::otel::{ExportSpec, OtelEndpoint};

/// Why an export failed. Messages never hold a header value.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No endpoint: the script names none and the caller has no default.
    #[error(
        "px.export: no endpoint: give `endpoint=px.otel.Endpoint(url=...)` or set the org's default with `px export set`"
    )]
    NoEndpoint,
    /// The endpoint is not usable as written.
    #[error("px.export: bad endpoint {0}")]
    Endpoint(String),
    /// Rows could not be turned into OTLP.
    #[error("px.export: {0}")]
    Convert(String),
    /// The receiver could not be reached (after retries).
    #[error("px.export: sending failed: {0}")]
    Send(String),
    /// The receiver answered with an error (after retries where allowed).
    #[error("px.export: the receiver refused: {0}")]
    Refused(String),
}

/// What one export sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Metric points sent.
    pub points: usize,
    /// Spans sent.
    pub spans: usize,
    /// Requests sent.
    pub requests: usize,
}

/// Converts `batches` (the rows of one exported output) as `spec` says and sends them to the spec's endpoint, or
/// to `default` when the script names none.
pub async fn export(
    spec: &ExportSpec,
    default: Option<&OtelEndpoint>,
    batches: &[RecordBatch],
) -> Result<ExportSummary, ExportError> {
    let endpoint = spec.endpoint.as_ref().or(default).ok_or(ExportError::NoEndpoint)?;
    let requests = convert::requests(spec, batches)?;
    let sender = send::Sender::new(endpoint)?;
    for r in &requests.metrics {
        sender.metrics(r).await?;
    }
    for r in &requests.traces {
        sender.traces(r).await?;
    }
    let summary = ExportSummary {
        points: requests.points,
        spans: requests.spans,
        requests: requests.metrics.len() + requests.traces.len(),
    };
    tracing::info!(url = %send::shown_url(&endpoint.url), points = summary.points, spans = summary.spans, "exported to OpenTelemetry");
    Ok(summary)
}
