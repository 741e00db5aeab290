//! `px.export`: the outputs a script exports go to OpenTelemetry (`loupe-export`) instead of the client. A sink in
//! front of the client's takes those outputs' batches (already capped by the engine's row limit), sends them when
//! each output ends, and keeps the first failure for the query's status. A single-node vizier puts it in front
//! of its client; in a cluster each Kelvin puts it in front of the broker, for the outputs it merges.
//!
//! Owns which outputs are withheld from the client and when they are sent. Must not convert or send OTLP itself
//! (`loupe-export` does), nor log endpoint headers.

use arrow::array::RecordBatch;
use loupe_engine::{Cancelled, QueryEvent, QuerySink};
use loupe_export::{ExportError, ExportSummary};
use loupe_pxl::Program;
use loupe_pxl::otel::{DEFAULT_TIMEOUT_S, ExportSpec, OtelEndpoint};

/// The default endpoint the caller sent (`EXPORT_DEFAULT` metadata: the connector sends its org's, set with
/// `px export set`), if any and readable. A caller that can run a script could name any endpoint in it anyway.
pub(crate) fn default_endpoint(metadata: &tonic::metadata::MetadataMap) -> Option<OtelEndpoint> {
    endpoint_of(&default_endpoint_bytes(metadata))
}

/// The `EXPORT_DEFAULT` metadata as sent (an encoded `ExportDefault`), empty for none: what the broker hands its
/// Kelvins, which export the outputs they merge.
pub(crate) fn default_endpoint_bytes(metadata: &tonic::metadata::MetadataMap) -> Vec<u8> {
    metadata
        .get_bin(loupe_proto::headers::EXPORT_DEFAULT)
        .and_then(|v| v.to_bytes().ok())
        .map(|b| b.to_vec())
        .unwrap_or_default()
}

/// The endpoint an encoded `ExportDefault` names, if any and readable.
pub(crate) fn endpoint_of(bytes: &[u8]) -> Option<OtelEndpoint> {
    use prost::Message as _;
    if bytes.is_empty() {
        return None;
    }
    let e = loupe_proto::vzconnpb::ExportDefault::decode(bytes).ok()?;
    if e.url.is_empty() {
        return None;
    }
    Some(OtelEndpoint {
        url: e.url,
        headers: e.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        insecure: e.insecure,
        timeout_s: if e.timeout_s == 0 { DEFAULT_TIMEOUT_S } else { u64::from(e.timeout_s.min(60)) },
    })
}

/// Withholds exported outputs from `inner` and sends them to OpenTelemetry.
pub(crate) struct ExportSink<'a, S> {
    inner: &'a mut S,
    specs: Vec<Option<ExportSpec>>,
    default: Option<OtelEndpoint>,
    batches: Vec<RecordBatch>,
    /// What was sent, over every exported output.
    pub(crate) sent: ExportSummary,
    /// The first export that failed.
    pub(crate) error: Option<ExportError>,
}

impl<'a, S: QuerySink> ExportSink<'a, S> {
    /// A sink for `program`'s outputs; `default` is the endpoint of a spec that names none.
    pub(crate) fn new(program: &Program, inner: &'a mut S, default: Option<OtelEndpoint>) -> Self {
        Self::with_specs(program.outputs.iter().map(|o| o.export.clone()).collect(), inner, default)
    }

    /// A sink for outputs whose export specs are `specs`, by the events' output index (a Kelvin's share of a
    /// cluster plan's outputs).
    pub(crate) fn with_specs(specs: Vec<Option<ExportSpec>>, inner: &'a mut S, default: Option<OtelEndpoint>) -> Self {
        ExportSink { inner, specs, default, batches: Vec::new(), sent: ExportSummary::default(), error: None }
    }

    fn spec(&self, index: usize) -> Option<&ExportSpec> {
        self.specs.get(index).and_then(Option::as_ref)
    }
}

impl<S: QuerySink> QuerySink for ExportSink<'_, S> {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        match event {
            QueryEvent::Output { index, .. } if self.spec(index).is_some() => self.batches.clear(),
            QueryEvent::Batch { index, batch } if self.spec(index).is_some() => self.batches.push(batch),
            QueryEvent::OutputEnd { index } if self.spec(index).is_some() => {
                let batches = std::mem::take(&mut self.batches);
                if self.error.is_none()
                    && let Some(spec) = self.spec(index)
                {
                    match loupe_export::export(spec, self.default.as_ref(), &batches).await {
                        Ok(s) => {
                            self.sent.points += s.points;
                            self.sent.spans += s.spans;
                            self.sent.requests += s.requests;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "px.export failed");
                            self.error = Some(e);
                        }
                    }
                }
            }
            other => return self.inner.send(other).await,
        }
        Ok(())
    }
}
