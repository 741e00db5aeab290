//! Calls: which `px.*` names exist, binding positional and keyword arguments to parameters, and
//! the calls of the `px` module that are not scalar functions (`display`, `now`, durations,
//! semantic casts, aggregates used wrongly, metadata functions not available yet), plus dispatch
//! of method and user-function calls.
//!
//! Owns the list of known `px.*` names for "did you mean" and "not supported yet". Must not type
//! scalar functions itself: `functions` does, from the registry.

use super::frame::project;
use super::value::{TExpr, Value};
use super::{Checker, Result};
use crate::diagnostic::{Diagnostic, closest, did_you_mean};
use crate::functions::{FUNCTIONS, ScalarFunc};
use crate::plan::{AggFunc, Expr, Literal, Output, Plan, Udtf};
use crate::syntax::{self, BinOp, ExprKind, Ident, Span};
use crate::time;

/// Semantic-type casts: identity functions on the value that give it Pixie's semantic type.
const SEMANTIC_CASTS: &[(&str, &str)] = &[
    ("DurationNanos", "ST_DURATION_NS"),
    ("Percent", "ST_PERCENT"),
    ("Bytes", "ST_BYTES"),
    ("Service", "ST_SERVICE_NAME"),
    ("Pod", "ST_POD_NAME"),
    ("Namespace", "ST_NAMESPACE_NAME"),
    ("Node", "ST_NODE_NAME"),
    ("Container", "ST_CONTAINER_NAME"),
    ("UPID", "ST_UPID"),
];

/// Operators spelled as functions (`px.equal(a, b)` is `a == b`), typed like the operator.
const OPERATOR_FUNCS: &[(&str, BinOp)] = &[
    ("add", BinOp::Add),
    ("subtract", BinOp::Sub),
    ("multiply", BinOp::Mul),
    ("divide", BinOp::Div),
    ("modulo", BinOp::Mod),
    ("equal", BinOp::Eq),
    ("notEqual", BinOp::NotEq),
    ("greaterThan", BinOp::Gt),
    ("greaterThanEqual", BinOp::GtE),
    ("lessThan", BinOp::Lt),
    ("lessThanEqual", BinOp::LtE),
    ("logicalAnd", BinOp::And),
    ("logicalOr", BinOp::Or),
];

/// `px.*` names that are known but need machinery Loupe does not have yet.
const NOT_YET: &[&str] = &["merge", "script_reference", "vis", "uint128", "make_upid"];

/// True for names of `px.` metadata lookups (`upid_to_pod_name`, ...): those not in the registry are refused
/// as not answered yet.
fn is_metadata_func(name: &str) -> bool {
    ["upid_to_", "pod_name_to_", "pod_id_to_", "service_name_to_", "service_id_to_", "ip_to_"]
        .iter()
        .any(|p| name.starts_with(p))
        || matches!(name, "has_service_name" | "has_service_id" | "has_value" | "upid" | "asid")
}

fn known_px_names() -> impl Iterator<Item = &'static str> {
    ["DataFrame", "display", "debug", "export", "otel", "now", "parse_duration", "parse_time", "format_duration"]
        .into_iter()
        .chain(["days", "hours", "minutes", "seconds", "milliseconds", "microseconds"])
        .chain(["count", "sum", "mean", "min", "max", "any", "quantiles", "p01", "p10", "p25"])
        .chain(["p50", "p75", "p90", "p99", "_build_request_path_clusters"])
        .chain(SEMANTIC_CASTS.iter().map(|(n, _)| *n))
        .chain(OPERATOR_FUNCS.iter().map(|(n, _)| *n))
        .chain(FUNCTIONS.iter().map(|f| f.name))
        .chain(Udtf::ALL.iter().map(|u| u.name()))
        .chain(NOT_YET.iter().copied())
}

/// Arguments of one call, matched to parameter names.
pub(super) struct Args<'e> {
    values: Vec<Option<&'e syntax::Expr>>,
}

impl<'e> Args<'e> {
    pub(super) fn get(&self, i: usize) -> Option<&'e syntax::Expr> {
        self.values.get(i).copied().flatten()
    }
}

impl Checker<'_> {
    pub(super) fn check_px_name(&self, attr: &Ident) -> Result<()> {
        let n = attr.name.as_str();
        if known_px_names().any(|k| k == n) || is_metadata_func(n) {
            return Ok(());
        }
        let mut d = Diagnostic::new(self.source, attr.span.clone(), format!("unknown px function `px.{n}`"));
        if let Some(c) = closest(n, known_px_names()) {
            d = d.with_help(format!("did you mean `px.{c}`?"));
        }
        Err(Box::new(d))
    }

    pub(super) fn eval_call(
        &mut self,
        func: &syntax::Expr,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        match &func.kind {
            ExprKind::Attr { obj, attr } => match self.eval(obj)? {
                Value::Module => {
                    self.check_px_name(attr)?;
                    self.call_px(attr, args, kwargs, span)
                }
                Value::Frame(frame) => self.call_method(frame, attr, args, kwargs, span),
                Value::Library(module) => self.call_library(&module, attr, args, kwargs, span),
                Value::GroupBy(frame, keys) => {
                    if attr.name != "agg" {
                        return Err(self.err(
                            &attr.span,
                            format!("a grouped dataframe has no method `{}`; call `.agg(...)`", attr.name),
                        ));
                    }
                    if let Some(a) = args.first() {
                        return Err(
                            self.err(&a.span, "`agg` takes keyword arguments only: `agg(name=('column', px.count))`")
                        );
                    }
                    self.aggregate(&frame, keys, kwargs, span)
                }
                Value::PxAttr(parent) if parent == "otel" => Err(self.err(
                    &attr.span,
                    format!("`px.otel.{}` is only accepted inside `px.export(df, px.otel.Data(...))`", attr.name),
                )),
                Value::PxAttr(parent) => {
                    Err(self.err(&attr.span, format!("`px.{parent}.{}` is not supported yet", attr.name)))
                }
                other => Err(self.err(&attr.span, format!("{} has no method `{}`", other.describe(), attr.name))),
            },
            _ => match self.eval(func)? {
                Value::Func(f) => self.call_user(&f, args, kwargs, span),
                other => Err(self.err(&func.span, format!("{} is not callable", other.describe()))),
            },
        }
    }

    /// Matches positional and keyword arguments to `params`; the first `required` must be present.
    pub(super) fn bind_args<'e>(
        &self,
        what: &str,
        params: &[&str],
        required: usize,
        args: &'e [syntax::Expr],
        kwargs: &'e [(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Args<'e>> {
        let mut values: Vec<Option<&syntax::Expr>> = vec![None; params.len()];
        for (i, a) in args.iter().enumerate() {
            if i >= params.len() {
                return Err(self.err(&a.span, format!("`{what}` takes at most {} arguments", params.len())));
            }
            values[i] = Some(a);
        }
        for (k, v) in kwargs {
            let Some(i) = params.iter().position(|p| *p == k.name) else {
                let mut d = Diagnostic::new(
                    self.source,
                    k.span.clone(),
                    format!("unexpected argument `{}` to `{what}`", k.name),
                );
                if let Some(h) = did_you_mean(&k.name, params.iter().copied()) {
                    d = d.with_help(h);
                }
                return Err(Box::new(d));
            };
            if values[i].is_some() {
                return Err(self.err(&k.span, format!("argument `{}` given twice", k.name)));
            }
            values[i] = Some(v);
        }
        if let Some(missing) = (0..required).find(|&i| values[i].is_none()) {
            return Err(self.err(span, format!("`{what}` is missing argument `{}`", params[missing])));
        }
        Ok(Args { values })
    }

    pub(super) fn call_px(
        &mut self,
        attr: &Ident,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let name = attr.name.as_str();
        let what = format!("px.{name}");
        match name {
            "DataFrame" => self.dataframe(args, kwargs, span),
            "display" | "debug" => {
                let a = self.bind_args(&what, &["out", "name", "cols"], 1, args, kwargs, span)?;
                let Some(df_arg) = a.get(0) else { return Err(self.err(span, "missing dataframe")) };
                let mut frame = self.eval_frame(df_arg, &what)?;
                let mut out_name = match a.get(1) {
                    Some(e) => self.eval_string(e, "the output name")?,
                    None => "output".to_string(),
                };
                if let Some(cols) = a.get(2) {
                    let cols = self.eval_column_list(cols, &frame, &what)?;
                    if !cols.is_empty() {
                        frame = project(&frame, cols);
                    }
                }
                if name == "debug" {
                    out_name = format!("_{out_name}");
                }
                if self.outputs.iter().any(|o| o.name == out_name) {
                    let at = a.get(1).map_or(span.clone(), |e| e.span.clone());
                    return Err(self.err(&at, format!("output `{out_name}` is displayed twice")));
                }
                self.outputs.push(Output { name: out_name, plan: frame.plan, columns: frame.columns, export: None });
                Ok(Value::None)
            }
            "export" => self.export(args, kwargs, span),
            "otel" => Err(self.err(&attr.span, "`px.otel` is a module: use `px.otel.Data(...)` inside `px.export`")),
            "now" => {
                self.bind_args(&what, &[], 0, args, kwargs, span)?;
                Ok(Value::Scalar(TExpr::lit(Literal::Time(self.now_ns))))
            }
            "parse_duration" => {
                let a = self.bind_args(&what, &["duration"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing duration")) };
                let text = self.eval_string(e, "the duration")?;
                let ns = time::parse_duration(&text).ok_or_else(|| {
                    self.err(&e.span, format!("invalid duration `{text}`: expected e.g. '5m', '-30s', '250ms'"))
                })?;
                Ok(Value::Scalar(TExpr::lit(Literal::Int(ns))))
            }
            "parse_time" => {
                // Pixie's compile-time `px.parse_time`: a relative string (`'-5m'`, from now), an absolute
                // one (`'2020-07-13 18:02:05 +0000'`, RFC 3339 and its relatives), or nanoseconds.
                let a = self.bind_args(&what, &["time"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing time")) };
                let ns = match self.eval_scalar(e, "the time")?.expr {
                    crate::plan::Expr::Literal(Literal::Int(ns) | Literal::Time(ns)) => ns,
                    crate::plan::Expr::Literal(Literal::String(text)) => match time::parse_duration(&text) {
                        Some(d) => self.now_ns.saturating_add(d),
                        None => time::parse_absolute(&text).ok_or_else(|| {
                            self.err(
                                &e.span,
                                format!(
                                    "invalid time `{text}`: expected a relative time ('-5m') or an absolute \
                                     one ('2020-07-13 18:02:05 +0000', '2020-07-13T18:02:05Z')"
                                ),
                            )
                        })?,
                    },
                    _ => {
                        return Err(self.err(
                            &e.span,
                            "the time of px.parse_time must be a string or integer constant".to_string(),
                        ));
                    }
                };
                Ok(Value::Scalar(TExpr::lit(Literal::Time(ns))))
            }
            udtf if Udtf::from_name(udtf).is_some() => {
                let Some(func) = Udtf::from_name(udtf) else { return Err(self.err(span, "unknown source")) };
                let names: Vec<&str> = func.params().iter().map(|(n, _)| *n).collect();
                let a = self.bind_args(&what, &names, 0, args, kwargs, span)?;
                let mut values = Vec::with_capacity(names.len());
                for (i, (pname, default)) in func.params().iter().enumerate() {
                    let v = match a.get(i) {
                        None => default.clone(),
                        Some(e) => match self.eval_scalar(e, "an argument")? {
                            TExpr { expr: crate::plan::Expr::Literal(l), .. } if l.ty() == default.ty() => l,
                            other => {
                                return Err(self.err(
                                    &e.span,
                                    format!(
                                        "`{pname}` of `{what}` must be a {} constant, found {}",
                                        default.ty(),
                                        other.ty
                                    ),
                                ));
                            }
                        },
                    };
                    values.push(v);
                }
                Ok(Value::Frame(super::value::Frame {
                    plan: Plan::Udtf { func, args: values },
                    columns: func.columns(),
                    desc: format!("`{what}()`"),
                }))
            }
            "format_duration" => {
                let a = self.bind_args(&what, &["duration"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing duration")) };
                let ns = self.eval_int(e, "the duration")?;
                Ok(Value::Scalar(TExpr::lit(Literal::String(time::format_duration(ns)))))
            }
            op if OPERATOR_FUNCS.iter().any(|(n, _)| *n == op) => {
                let a = self.bind_args(&what, &["a", "b"], 2, args, kwargs, span)?;
                let (Some(l), Some(r)) = (a.get(0), a.get(1)) else { return Err(self.err(span, "missing operands")) };
                let bop = OPERATOR_FUNCS.iter().find(|(n, _)| *n == op).map(|(_, b)| *b).unwrap_or(BinOp::Eq);
                let (lv, rv) = (self.eval_scalar(l, "an operand")?, self.eval_scalar(r, "an operand")?);
                Ok(Value::Scalar(self.binary(bop, lv, rv, &attr.span)?))
            }
            unit if time::unit_ns(unit).is_some() => {
                let a = self.bind_args(&what, &["n"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing count")) };
                let n = self.eval_int(e, "the count")?;
                let ns = time::unit_ns(unit)
                    .and_then(|u| n.checked_mul(u))
                    .ok_or_else(|| self.err(&e.span, "duration overflows 64-bit nanoseconds"))?;
                Ok(Value::Scalar(TExpr::lit(Literal::Int(ns))))
            }
            cast if SEMANTIC_CASTS.iter().any(|(n, _)| *n == cast) => {
                let a = self.bind_args(&what, &["value"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing value")) };
                let value = self.eval_scalar(e, "a value")?;
                let semantic = SEMANTIC_CASTS.iter().find(|(n, _)| *n == cast).map(|(_, st)| (*st).to_string());
                Ok(Value::Scalar(match (value, semantic) {
                    // A constant stays a constant (arguments that must be constants still accept it).
                    (v @ TExpr { expr: Expr::Literal(_), .. }, _) | (v, None) => v,
                    (TExpr { expr, ty }, Some(semantic)) => {
                        TExpr { expr: Expr::Semantic { expr: Box::new(expr), semantic }, ty }
                    }
                }))
            }
            agg if AggFunc::from_name(agg).is_some() => Err(Box::new(
                Diagnostic::new(
                    self.source,
                    attr.span.clone(),
                    format!("`px.{agg}` is an aggregate and cannot be called directly"),
                )
                .with_help(format!("use it in an aggregation: `df.groupby('k').agg(out=('column', px.{agg}))`")),
            )),
            other => match ScalarFunc::from_name(other) {
                Some(f) => {
                    if let Some((k, _)) = kwargs.first() {
                        return Err(self.err(&k.span, format!("`{what}` takes positional arguments only")));
                    }
                    self.scalar_call(f.spec(), &what, args, span).map(Value::Scalar)
                }
                None if is_metadata_func(other) => Err(self.err(
                    &attr.span,
                    format!("`px.{other}` is a Kubernetes metadata function Loupe does not answer yet"),
                )),
                None => Err(self.err(&attr.span, format!("`px.{other}` is not supported yet"))),
            },
        }
    }
}
