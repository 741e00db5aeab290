//! Rows → OTLP: each row of the exported output gives one point per metric entry and one span per span entry,
//! under the resource its `resource` attributes make (rows with equal resources share one).
//!
//! Owns the mapping of Arrow values to OTLP values and the split into requests of bounded size. Must not send
//! anything (`send` does).

use std::collections::HashMap;

use arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow::datatypes::{DataType, TimeUnit};
use loupe_pxl::otel::{ExportSpec, OtelAttributes, OtelConstant, OtelData, OtelValue};

use crate::ExportError;
use crate::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
use crate::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use crate::otlp::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Summary, SummaryDataPoint, metric,
    number_data_point, summary_data_point,
};
use crate::otlp::resource::v1::Resource;
use crate::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

/// Most metric points, or spans, in one request (collectors refuse large bodies; 4 MiB by default for gRPC).
pub const MAX_ITEMS_PER_REQUEST: usize = 2_000;

/// The requests one output becomes.
#[derive(Debug, Default)]
pub struct Requests {
    /// Metric requests, each with at most [`MAX_ITEMS_PER_REQUEST`] points.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Span requests, each with at most [`MAX_ITEMS_PER_REQUEST`] spans.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// Metric points made.
    pub points: usize,
    /// Spans made.
    pub spans: usize,
}

fn scope() -> InstrumentationScope {
    InstrumentationScope { name: "loupe".into(), version: env!("CARGO_PKG_VERSION").into(), ..Default::default() }
}

/// A column of one batch, looked up by name.
struct Columns<'b> {
    batch: &'b RecordBatch,
}

impl<'b> Columns<'b> {
    fn get(&self, name: &str) -> Result<&'b dyn Array, ExportError> {
        self.batch
            .column_by_name(name)
            .map(|a| a.as_ref())
            .ok_or_else(|| ExportError::Convert(format!("the exported output has no column `{name}`")))
    }

    /// An OTLP value from row `row` of `name`; `None` when null.
    fn any_value(&self, name: &str, row: usize) -> Result<Option<any_value::Value>, ExportError> {
        let a = self.get(name)?;
        if a.is_null(row) {
            return Ok(None);
        }
        Ok(Some(match a.data_type() {
            DataType::Int64 => any_value::Value::IntValue(a.as_primitive::<arrow::datatypes::Int64Type>().value(row)),
            DataType::UInt64 => {
                let v = a.as_any().downcast_ref::<UInt64Array>().map_or(0, |x| x.value(row));
                any_value::Value::IntValue(i64::try_from(v).unwrap_or(i64::MAX))
            }
            DataType::Float64 => {
                any_value::Value::DoubleValue(a.as_any().downcast_ref::<Float64Array>().map_or(0.0, |x| x.value(row)))
            }
            DataType::Boolean => {
                any_value::Value::BoolValue(a.as_any().downcast_ref::<BooleanArray>().is_some_and(|x| x.value(row)))
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => any_value::Value::IntValue(
                a.as_any().downcast_ref::<TimestampNanosecondArray>().map_or(0, |x| x.value(row)),
            ),
            DataType::Utf8 => any_value::Value::StringValue(a.as_string::<i32>().value(row).to_owned()),
            DataType::LargeUtf8 => any_value::Value::StringValue(a.as_string::<i64>().value(row).to_owned()),
            DataType::Utf8View => any_value::Value::StringValue(a.as_string_view().value(row).to_owned()),
            other => {
                return Err(ExportError::Convert(format!("column `{name}` has type {other}, which OTLP cannot carry")));
            }
        }))
    }

    fn f64(&self, name: &str, row: usize) -> Result<Option<f64>, ExportError> {
        Ok(match self.any_value(name, row)? {
            Some(any_value::Value::IntValue(i)) => Some(i as f64),
            Some(any_value::Value::DoubleValue(d)) => Some(d),
            _ => None,
        })
    }

    fn time_ns(&self, name: &str, row: usize) -> Result<Option<u64>, ExportError> {
        Ok(match self.any_value(name, row)? {
            Some(any_value::Value::IntValue(i)) => u64::try_from(i).ok(),
            _ => None,
        })
    }

    fn string(&self, name: &str, row: usize) -> Result<Option<String>, ExportError> {
        Ok(match self.any_value(name, row)? {
            Some(any_value::Value::StringValue(s)) => Some(s),
            _ => None,
        })
    }
}

fn literal_value(l: &OtelConstant) -> any_value::Value {
    match l {
        OtelConstant::Int(i) => any_value::Value::IntValue(*i),
        OtelConstant::Float(f) => any_value::Value::DoubleValue(*f),
        OtelConstant::String(s) => any_value::Value::StringValue(s.clone()),
        OtelConstant::Bool(b) => any_value::Value::BoolValue(*b),
    }
}

fn attributes(cols: &Columns<'_>, attrs: &OtelAttributes, row: usize) -> Result<Vec<KeyValue>, ExportError> {
    let mut out = Vec::with_capacity(attrs.len());
    for (key, value) in attrs {
        let v = match value {
            OtelValue::Column(c) => cols.any_value(c, row)?,
            OtelValue::Constant(l) => Some(literal_value(l)),
        };
        // A null leaves the attribute out rather than inventing a value.
        if let Some(v) = v {
            out.push(KeyValue { key: key.clone(), value: Some(AnyValue { value: Some(v) }), ..Default::default() });
        }
    }
    Ok(out)
}

/// A stable key for a resource's attributes (rows with the same key share one resource).
fn resource_key(attrs: &[KeyValue]) -> String {
    let mut key = String::new();
    for kv in attrs {
        key.push_str(&kv.key);
        key.push('\u{1}');
        key.push_str(&format!("{:?}", kv.value));
        key.push('\u{2}');
    }
    key
}

fn parse_id<const N: usize>(hex: Option<String>) -> Option<[u8; N]> {
    let hex = hex?;
    let hex = hex.trim();
    if hex.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    (out != [0u8; N]).then_some(out)
}

fn random_id<const N: usize>() -> Result<[u8; N], ExportError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| ExportError::Convert(format!("no randomness for an id: {e}")))?;
    if out == [0u8; N] {
        out[0] = 1;
    }
    Ok(out)
}

/// Builds the OTLP requests for `batches` as `spec` says.
pub fn requests(spec: &ExportSpec, batches: &[RecordBatch]) -> Result<Requests, ExportError> {
    let mut out = Requests::default();
    // Metrics: per request, resources in first-seen order; per resource, one metric per data entry.
    let mut metrics = MetricsBuilder::default();
    let mut spans = SpansBuilder::default();
    let has_metrics = spec.data.iter().any(|d| !matches!(d, OtelData::Span { .. }));
    for batch in batches {
        let cols = Columns { batch };
        for row in 0..batch.num_rows() {
            let resource = attributes(&cols, &spec.resource, row)?;
            let time = if has_metrics { cols.time_ns("time_", row)?.unwrap_or(0) } else { 0 };
            for (i, data) in spec.data.iter().enumerate() {
                match data {
                    OtelData::Gauge { name, value, description, attributes: attrs, unit } => {
                        let v = match cols.any_value(value, row)? {
                            Some(any_value::Value::IntValue(i)) => number_data_point::Value::AsInt(i),
                            Some(any_value::Value::DoubleValue(d)) => number_data_point::Value::AsDouble(d),
                            _ => continue,
                        };
                        let point = NumberDataPoint {
                            attributes: attributes(&cols, attrs, row)?,
                            time_unix_nano: time,
                            value: Some(v),
                            ..Default::default()
                        };
                        let m = metrics.metric(&resource, i, || Metric {
                            name: name.clone(),
                            description: description.clone(),
                            unit: unit.clone(),
                            data: Some(metric::Data::Gauge(Gauge { data_points: vec![] })),
                            ..Default::default()
                        });
                        if let Some(metric::Data::Gauge(g)) = &mut m.data {
                            g.data_points.push(point);
                        }
                    }
                    OtelData::Summary { name, count, sum, quantile_values, description, attributes: attrs, unit } => {
                        let (Some(c), Some(s)) = (cols.f64(count, row)?, cols.f64(sum, row)?) else { continue };
                        let mut qs = Vec::with_capacity(quantile_values.len());
                        for (q, col) in quantile_values {
                            if let Some(v) = cols.f64(col, row)? {
                                qs.push(summary_data_point::ValueAtQuantile { quantile: *q, value: v });
                            }
                        }
                        let point = SummaryDataPoint {
                            attributes: attributes(&cols, attrs, row)?,
                            time_unix_nano: time,
                            count: c.max(0.0) as u64,
                            sum: s,
                            quantile_values: qs,
                            ..Default::default()
                        };
                        let m = metrics.metric(&resource, i, || Metric {
                            name: name.clone(),
                            description: description.clone(),
                            unit: unit.clone(),
                            data: Some(metric::Data::Summary(Summary { data_points: vec![] })),
                            ..Default::default()
                        });
                        if let Some(metric::Data::Summary(g)) = &mut m.data {
                            g.data_points.push(point);
                        }
                    }
                    OtelData::Span {
                        name,
                        start_time,
                        end_time,
                        trace_id,
                        span_id,
                        parent_span_id,
                        attributes: attrs,
                        kind,
                    } => {
                        let name = match name {
                            OtelValue::Column(c) => cols.any_value(c, row)?.map(|v| match v {
                                any_value::Value::StringValue(s) => s,
                                other => format!("{other:?}"),
                            }),
                            OtelValue::Constant(OtelConstant::String(s)) => Some(s.clone()),
                            OtelValue::Constant(l) => Some(match literal_value(l) {
                                any_value::Value::IntValue(i) => i.to_string(),
                                any_value::Value::DoubleValue(d) => d.to_string(),
                                any_value::Value::BoolValue(b) => b.to_string(),
                                other => format!("{other:?}"),
                            }),
                        };
                        let (Some(name), Some(start), Some(end)) =
                            (name, cols.time_ns(start_time, row)?, cols.time_ns(end_time, row)?)
                        else {
                            continue;
                        };
                        let read = |c: &Option<String>| -> Result<Option<String>, ExportError> {
                            match c {
                                Some(c) => cols.string(c, row),
                                None => Ok(None),
                            }
                        };
                        let trace_id = match parse_id::<16>(read(trace_id)?) {
                            Some(id) => id,
                            None => random_id::<16>()?,
                        };
                        let span_id = match parse_id::<8>(read(span_id)?) {
                            Some(id) => id,
                            None => random_id::<8>()?,
                        };
                        let parent = parse_id::<8>(read(parent_span_id)?).map(|p| p.to_vec()).unwrap_or_default();
                        spans.push(
                            &resource,
                            Span {
                                trace_id: trace_id.to_vec(),
                                span_id: span_id.to_vec(),
                                parent_span_id: parent,
                                name,
                                kind: *kind,
                                start_time_unix_nano: start,
                                end_time_unix_nano: end,
                                attributes: attributes(&cols, attrs, row)?,
                                ..Default::default()
                            },
                        );
                    }
                }
                if metrics.items >= MAX_ITEMS_PER_REQUEST {
                    out.points += metrics.items;
                    out.metrics.push(std::mem::take(&mut metrics).finish());
                }
                if spans.items >= MAX_ITEMS_PER_REQUEST {
                    out.spans += spans.items;
                    out.traces.push(std::mem::take(&mut spans).finish());
                }
            }
        }
    }
    if metrics.items > 0 {
        out.points += metrics.items;
        out.metrics.push(metrics.finish());
    }
    if spans.items > 0 {
        out.spans += spans.items;
        out.traces.push(spans.finish());
    }
    Ok(out)
}

#[derive(Default)]
struct MetricsBuilder {
    resources: Vec<(Vec<KeyValue>, Vec<Option<Metric>>)>,
    index: HashMap<String, usize>,
    items: usize,
}

impl MetricsBuilder {
    fn metric(&mut self, resource: &[KeyValue], entry: usize, new: impl FnOnce() -> Metric) -> &mut Metric {
        let key = resource_key(resource);
        let at = *self.index.entry(key).or_insert_with(|| {
            self.resources.push((resource.to_vec(), Vec::new()));
            self.resources.len() - 1
        });
        self.items += 1;
        let metrics = &mut self.resources[at].1;
        if metrics.len() <= entry {
            metrics.resize_with(entry + 1, || None);
        }
        metrics[entry].get_or_insert_with(new)
    }

    fn finish(self) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: self
                .resources
                .into_iter()
                .map(|(attributes, metrics)| ResourceMetrics {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_metrics: vec![ScopeMetrics {
                        scope: Some(scope()),
                        metrics: metrics.into_iter().flatten().collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[derive(Default)]
struct SpansBuilder {
    resources: Vec<(Vec<KeyValue>, Vec<Span>)>,
    index: HashMap<String, usize>,
    items: usize,
}

impl SpansBuilder {
    fn push(&mut self, resource: &[KeyValue], span: Span) {
        let key = resource_key(resource);
        let at = *self.index.entry(key).or_insert_with(|| {
            self.resources.push((resource.to_vec(), Vec::new()));
            self.resources.len() - 1
        });
        self.items += 1;
        self.resources[at].1.push(span);
    }

    fn finish(self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: self
                .resources
                .into_iter()
                .map(|(attributes, spans)| ResourceSpans {
                    resource: Some(Resource { attributes, ..Default::default() }),
                    scope_spans: vec![ScopeSpans { scope: Some(scope()), spans, ..Default::default() }],
                    ..Default::default()
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_hex_or_are_refused() {
        assert_eq!(parse_id::<2>(Some("0aff".into())), Some([0x0a, 0xff]));
        assert_eq!(parse_id::<2>(Some("0af".into())), None);
        assert_eq!(parse_id::<2>(Some("zzzz".into())), None);
        assert_eq!(parse_id::<2>(Some("0000".into())), None, "an all-zero id is invalid in OTLP");
        assert_eq!(parse_id::<2>(Some("é1".into())), None, "non-ASCII never panics");
        assert_ne!(random_id::<8>().expect("random"), [0u8; 8]);
    }
}
