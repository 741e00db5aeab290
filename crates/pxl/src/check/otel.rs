//! `px.export(out, export_spec)` with `px.otel.Data(resource, data, endpoint)`, `px.otel.metric.Gauge`,
//! `px.otel.metric.Summary`, `px.otel.trace.Span` and `px.otel.Endpoint`, with Pixie's argument names: each
//! value must be a column of the exported dataframe or a constant, checked here with its place in the script.
//!
//! Owns the reading of the export spec's syntax into [`crate::otel::ExportSpec`]. The spec is read where it is
//! written (the constructors are not values a script can store), as Pixie's compiler does. Must not convert
//! rows or know OTLP.

use super::value::{Frame, TExpr, Value};
use super::{Checker, Result};
use crate::otel::{
    DEFAULT_TIMEOUT_S, ExportSpec, OtelAttributes, OtelConstant, OtelData, OtelEndpoint, OtelValue, SPAN_KINDS,
};
use crate::plan::{Expr, Literal, Output, PxType};
use crate::syntax::{self, ExprKind, Ident, Span};

/// A `px.otel.*` call: its path under `px.`, its positional and keyword arguments.
type OtelCall<'e> = (String, &'e [syntax::Expr], &'e [(Ident, syntax::Expr)]);

/// Most entries in `data=[...]` (each row becomes one point or span per entry).
const MAX_DATA: usize = 64;

impl Checker<'_> {
    /// `px.export(out, export_spec)`: the frame becomes a hidden output carrying the spec.
    pub(super) fn export(
        &mut self,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let a = self.bind_args("px.export", &["out", "export_spec"], 2, args, kwargs, span)?;
        let (Some(df_arg), Some(spec_arg)) = (a.get(0), a.get(1)) else {
            return Err(self.err(span, "`px.export` needs a dataframe and an export spec"));
        };
        let frame = self.eval_frame(df_arg, "px.export")?;
        let spec = self.otel_data(spec_arg, &frame)?;
        let name = format!("__export_{}", self.outputs.iter().filter(|o| o.export.is_some()).count());
        self.outputs.push(Output { name, plan: frame.plan, columns: frame.columns, export: Some(spec) });
        Ok(Value::None)
    }

    /// The `px.` path a call's function names (`px.otel.metric.Gauge` → `otel.metric.Gauge`), if it is one.
    fn px_path(&mut self, e: &syntax::Expr) -> Option<String> {
        match &e.kind {
            ExprKind::Attr { obj, attr } => {
                if let ExprKind::Name(_) = &obj.kind {
                    return matches!(self.eval(obj), Ok(Value::Module)).then(|| attr.name.clone());
                }
                self.px_path(obj).map(|p| format!("{p}.{}", attr.name))
            }
            _ => None,
        }
    }

    /// `e` must be a call of `px.<want>`; returns its arguments bound to `params`.
    fn otel_call<'e>(&mut self, e: &'e syntax::Expr, want: &[&str], what: &str) -> Result<OtelCall<'e>> {
        if let ExprKind::Call { func, args, kwargs } = &e.kind
            && let Some(path) = self.px_path(func)
            && want.contains(&path.as_str())
        {
            return Ok((path, args, kwargs));
        }
        let names: Vec<String> = want.iter().map(|w| format!("`px.{w}(...)`")).collect();
        Err(self.err(&e.span, format!("{what} must be {}", names.join(" or "))))
    }

    fn otel_data(&mut self, e: &syntax::Expr, frame: &Frame) -> Result<ExportSpec> {
        let (_, args, kwargs) = self.otel_call(e, &["otel.Data"], "the export spec of `px.export`")?;
        let a = self.bind_args("px.otel.Data", &["resource", "data", "endpoint"], 2, args, kwargs, &e.span)?;
        let (Some(res), Some(data)) = (a.get(0), a.get(1)) else {
            return Err(self.err(&e.span, "`px.otel.Data` needs `resource` and `data`"));
        };
        let resource = self.otel_attributes(res, frame, "resource")?;
        if !resource.iter().any(|(k, _)| k == "service.name") {
            return Err(self.err(&res.span, "`resource` must set 'service.name' (OpenTelemetry requires it)"));
        }
        let ExprKind::List(items) = &data.kind else {
            return Err(self.err(&data.span, "`data` must be a list of `px.otel.metric.*` and `px.otel.trace.Span`"));
        };
        if items.is_empty() {
            return Err(self.err(&data.span, "`data` is empty: nothing would be exported"));
        }
        if items.len() > MAX_DATA {
            return Err(self.err(&data.span, format!("`data` has more than {MAX_DATA} entries")));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            out.push(self.otel_item(item, frame)?);
        }
        let endpoint = match a.get(2) {
            None => None,
            Some(ep) if matches!(ep.kind, ExprKind::None) => None,
            Some(ep) => Some(self.otel_endpoint(ep)?),
        };
        Ok(ExportSpec { resource, data: out, endpoint })
    }

    fn otel_item(&mut self, e: &syntax::Expr, frame: &Frame) -> Result<OtelData> {
        let (path, args, kwargs) = self.otel_call(
            e,
            &["otel.metric.Gauge", "otel.metric.Summary", "otel.trace.Span"],
            "each entry of `data`",
        )?;
        let what = format!("px.{path}");
        match path.as_str() {
            "otel.metric.Gauge" => {
                let params = ["name", "value", "description", "attributes", "unit"];
                let a = self.bind_args(&what, &params, 2, args, kwargs, &e.span)?;
                self.require_time(frame, &e.span, &what)?;
                let name = self.opt_string(a.get(0), "the metric name")?;
                let value = self.numeric_column(a.get(1), frame, &e.span, "`value`", false)?;
                Ok(OtelData::Gauge {
                    name,
                    value,
                    description: self.opt_string(a.get(2), "`description`")?,
                    attributes: self.opt_attributes(a.get(3), frame)?,
                    unit: self.opt_string(a.get(4), "`unit`")?,
                })
            }
            "otel.metric.Summary" => {
                let params = ["name", "count", "sum", "quantile_values", "description", "attributes", "unit"];
                let a = self.bind_args(&what, &params, 4, args, kwargs, &e.span)?;
                self.require_time(frame, &e.span, &what)?;
                let name = self.opt_string(a.get(0), "the metric name")?;
                let count = self.numeric_column(a.get(1), frame, &e.span, "`count`", true)?;
                let sum = self.numeric_column(a.get(2), frame, &e.span, "`sum`", false)?;
                let Some(qv) = a.get(3) else { return Err(self.err(&e.span, "missing `quantile_values`")) };
                let ExprKind::Dict(pairs) = &qv.kind else {
                    return Err(self.err(&qv.span, "`quantile_values` must be a dict: {0.5: df.p50, 0.99: df.p99}"));
                };
                let mut quantile_values = Vec::with_capacity(pairs.len());
                for (k, v) in pairs {
                    let q = match &k.kind {
                        ExprKind::Float(f) => *f,
                        ExprKind::Int(i) => *i as f64,
                        _ => return Err(self.err(&k.span, "a quantile must be a number constant between 0 and 1")),
                    };
                    if !(0.0..=1.0).contains(&q) {
                        return Err(self.err(&k.span, format!("quantile {q} is not between 0 and 1")));
                    }
                    let col = self.numeric_column(Some(v), frame, &v.span, "a quantile value", false)?;
                    quantile_values.push((q, col));
                }
                Ok(OtelData::Summary {
                    name,
                    count,
                    sum,
                    quantile_values,
                    description: self.opt_string(a.get(4), "`description`")?,
                    attributes: self.opt_attributes(a.get(5), frame)?,
                    unit: self.opt_string(a.get(6), "`unit`")?,
                })
            }
            _ => {
                let params =
                    ["name", "start_time", "end_time", "trace_id", "span_id", "parent_span_id", "attributes", "kind"];
                let a = self.bind_args(&what, &params, 3, args, kwargs, &e.span)?;
                let Some(n) = a.get(0) else { return Err(self.err(&e.span, "missing `name`")) };
                let name = self.otel_value(n, frame, "the span name")?;
                let start_time = self.typed_column(a.get(1), frame, &e.span, "`start_time`", &[PxType::Time])?;
                let end_time = self.typed_column(a.get(2), frame, &e.span, "`end_time`", &[PxType::Time])?;
                let mut id = |i: usize, what: &str| -> Result<Option<String>> {
                    match a.get(i) {
                        None => Ok(None),
                        Some(x) if matches!(x.kind, ExprKind::None) => Ok(None),
                        Some(x) => self.typed_column(Some(x), frame, &x.span, what, &[PxType::String]).map(Some),
                    }
                };
                let trace_id = id(3, "`trace_id`")?;
                let span_id = id(4, "`span_id`")?;
                let parent_span_id = id(5, "`parent_span_id`")?;
                let attributes = self.opt_attributes(a.get(6), frame)?;
                let kind = match a.get(7) {
                    None => 2,
                    Some(k) => self.span_kind(k)?,
                };
                Ok(OtelData::Span { name, start_time, end_time, trace_id, span_id, parent_span_id, attributes, kind })
            }
        }
    }

    fn span_kind(&mut self, e: &syntax::Expr) -> Result<i32> {
        if let ExprKind::Int(i) = e.kind
            && SPAN_KINDS.iter().any(|(_, k)| i64::from(*k) == i)
        {
            return Ok(i as i32);
        }
        if let Some(path) = self.px_path(e)
            && let Some(kind) = path.strip_prefix("otel.trace.")
            && let Some((_, k)) = SPAN_KINDS.iter().find(|(n, _)| *n == kind)
        {
            return Ok(*k);
        }
        Err(self.err(&e.span, "`kind` must be a span kind such as `px.otel.trace.SPAN_KIND_SERVER`"))
    }

    fn otel_endpoint(&mut self, e: &syntax::Expr) -> Result<OtelEndpoint> {
        let (_, args, kwargs) = self.otel_call(e, &["otel.Endpoint"], "`endpoint`")?;
        let a =
            self.bind_args("px.otel.Endpoint", &["url", "headers", "insecure", "timeout"], 1, args, kwargs, &e.span)?;
        let Some(u) = a.get(0) else { return Err(self.err(&e.span, "missing `url`")) };
        let url = self.eval_string(u, "`url`")?;
        if url.is_empty() || url.len() > 2048 || url.chars().any(char::is_whitespace) {
            return Err(self.err(&u.span, "`url` must be `host:port` or an http(s):// or grpc(s):// URL"));
        }
        let mut headers = Vec::new();
        if let Some(h) = a.get(1) {
            let ExprKind::Dict(pairs) = &h.kind else {
                return Err(self.err(&h.span, "`headers` must be a dict of strings"));
            };
            for (k, v) in pairs {
                let key = self.eval_string(k, "a header name")?;
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                    return Err(self.err(&k.span, format!("`{key}` is not a valid header name")));
                }
                let value = self.eval_string(v, "a header value")?;
                if value.bytes().any(|b| b.is_ascii_control()) {
                    return Err(self.err(&v.span, "a header value must not hold control characters"));
                }
                headers.push((key.to_ascii_lowercase(), value));
            }
        }
        let insecure = match a.get(2) {
            None => false,
            Some(x) => match self.eval(x)? {
                Value::Scalar(TExpr { expr: Expr::Literal(Literal::Bool(b)), .. }) => b,
                other => {
                    return Err(
                        self.err(&x.span, format!("`insecure` must be True or False, found {}", other.describe()))
                    );
                }
            },
        };
        let timeout_s = match a.get(3) {
            None => DEFAULT_TIMEOUT_S,
            Some(x) if matches!(x.kind, ExprKind::None) => DEFAULT_TIMEOUT_S,
            Some(x) => {
                let t = self.eval_int(x, "`timeout` (seconds)")?;
                if !(1..=60).contains(&t) {
                    return Err(self.err(&x.span, "`timeout` must be between 1 and 60 seconds"));
                }
                t as u64
            }
        };
        Ok(OtelEndpoint { url, headers, insecure, timeout_s })
    }

    fn require_time(&self, frame: &Frame, span: &Span, what: &str) -> Result<()> {
        match frame.column("time_") {
            Some(c) if c.ty == PxType::Time => Ok(()),
            _ => Err(self.err(span, format!("`{what}` needs a `time_` column (TIME64NS) in the exported dataframe"))),
        }
    }

    fn opt_string(&mut self, e: Option<&syntax::Expr>, what: &str) -> Result<String> {
        match e {
            None => Ok(String::new()),
            Some(e) => self.eval_string(e, what),
        }
    }

    fn opt_attributes(&mut self, e: Option<&syntax::Expr>, frame: &Frame) -> Result<OtelAttributes> {
        match e {
            None => Ok(Vec::new()),
            Some(e) => self.otel_attributes(e, frame, "attributes"),
        }
    }

    fn otel_attributes(&mut self, e: &syntax::Expr, frame: &Frame, what: &str) -> Result<OtelAttributes> {
        let ExprKind::Dict(pairs) = &e.kind else {
            return Err(self.err(&e.span, format!("`{what}` must be a dict: {{'service.name': df.service}}")));
        };
        let mut out: OtelAttributes = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let key = self.eval_string(k, "an attribute name")?;
            if key.is_empty() {
                return Err(self.err(&k.span, "an attribute name must not be empty"));
            }
            if out.iter().any(|(n, _)| *n == key) {
                return Err(self.err(&k.span, format!("attribute `{key}` is set twice")));
            }
            let value = self.otel_value(v, frame, "an attribute value")?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// A column of `frame` (`df.col`, `df['col']`) or a constant.
    fn otel_value(&mut self, e: &syntax::Expr, frame: &Frame, what: &str) -> Result<OtelValue> {
        match self.eval_scalar(e, what)? {
            TExpr { expr: Expr::Literal(l), .. } => Ok(OtelValue::Constant(match l {
                Literal::Int(i) | Literal::Time(i) => OtelConstant::Int(i),
                Literal::Float(f) => OtelConstant::Float(f),
                Literal::String(s) => OtelConstant::String(s),
                Literal::Bool(b) => OtelConstant::Bool(b),
            })),
            TExpr { expr: Expr::Column(c), .. } => {
                self.require_column(frame, &c, &e.span)?;
                Ok(OtelValue::Column(c))
            }
            _ => Err(self.err(
                &e.span,
                format!("{what} must be a column of the exported dataframe or a constant; compute it first with `df.x = ...`"),
            )),
        }
    }

    fn numeric_column(
        &mut self,
        e: Option<&syntax::Expr>,
        frame: &Frame,
        span: &Span,
        what: &str,
        int_only: bool,
    ) -> Result<String> {
        let types: &[PxType] = if int_only { &[PxType::Int64] } else { &[PxType::Int64, PxType::Float64] };
        self.typed_column(e, frame, span, what, types)
    }

    fn typed_column(
        &mut self,
        e: Option<&syntax::Expr>,
        frame: &Frame,
        span: &Span,
        what: &str,
        types: &[PxType],
    ) -> Result<String> {
        let Some(e) = e else { return Err(self.err(span, format!("missing {what}"))) };
        let OtelValue::Column(c) = self.otel_value(e, frame, what)? else {
            return Err(self.err(&e.span, format!("{what} must be a column of the exported dataframe")));
        };
        let ty = frame.column(&c).map(|d| d.ty);
        match ty {
            Some(t) if types.contains(&t) => Ok(c),
            Some(t) => {
                let want: Vec<String> = types.iter().map(ToString::to_string).collect();
                Err(self.err(&e.span, format!("{what} must be a {} column; `{c}` is {t}", want.join(" or "))))
            }
            None => Err(self.err(&e.span, format!("unknown column `{c}`"))),
        }
    }
}
