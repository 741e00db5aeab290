//! Dataframe operations: `px.DataFrame` (table, columns, time range), filters, and the methods
//! (`filter`, `drop`, `head`, `groupby`/`agg`, `map`), each building one plan operator and the
//! columns it outputs.
//!
//! Owns the column bookkeeping of every operator and the aggregate specs. Must not type scalar
//! expressions (`expr`) or know `px.*` functions beyond aggregates.

use super::value::{Frame, TExpr, Value};
use super::{Checker, Result};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::plan::{AggFunc, Aggregation, ColumnDef, Expr, Literal, Plan, PxType};
use crate::syntax::{self, ExprKind, Ident, Span};
use crate::time;

pub(super) const FRAME_METHODS: &[&str] =
    &["filter", "drop", "head", "groupby", "agg", "map", "merge", "append", "rolling", "stream", "ctx"];

impl Checker<'_> {
    pub(super) fn filter(&self, frame: &Frame, pred: TExpr, span: &Span) -> Result<Frame> {
        if pred.ty != PxType::Boolean {
            return Err(self.err(span, format!("filter expects a BOOLEAN expression, found {}", pred.ty)));
        }
        let plan = Plan::Filter { input: Box::new(frame.plan.clone()), predicate: pred.expr };
        Ok(frame.wrap(plan, frame.columns.clone()))
    }

    pub(super) fn dataframe(
        &mut self,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let a =
            self.bind_args("px.DataFrame", &["table", "select", "start_time", "end_time"], 1, args, kwargs, span)?;
        let Some(table_arg) = a.get(0) else { return Err(self.err(span, "missing table")) };
        let table = self.eval_string(table_arg, "the table name")?;
        let Some(schema) = self.catalog.table_schema(&table) else {
            let mut d = Diagnostic::new(self.source, table_arg.span.clone(), format!("unknown table `{table}`"));
            let names = self.catalog.table_names();
            if let Some(h) = did_you_mean(&table, names.iter().map(String::as_str)) {
                d = d.with_help(h);
            }
            return Err(Box::new(d));
        };
        let all: Vec<ColumnDef> = schema
            .fields()
            .iter()
            .filter_map(|f| PxType::from_arrow(f.data_type()).map(|ty| ColumnDef { name: f.name().clone(), ty }))
            .collect();
        let mut frame = Frame {
            plan: Plan::Source { table: table.clone(), columns: None, start_ns: None, end_ns: None },
            columns: all,
            desc: format!("table `{table}`"),
        };
        let mut select = None;
        if let Some(sel) = a.get(1) {
            let cols = self.eval_column_list(sel, &frame, "select")?;
            if !cols.is_empty() {
                frame.columns = cols.iter().filter_map(|c| frame.column(c).cloned()).collect();
                select = Some(cols);
            }
        }
        let start_ns = match a.get(2) {
            Some(e) => self.time_arg(e, "start_time")?,
            None => None,
        };
        let end_ns = match a.get(3) {
            Some(e) => self.time_arg(e, "end_time")?,
            None => None,
        };
        frame.plan = Plan::Source { table, columns: select, start_ns, end_ns };
        Ok(Value::Frame(frame))
    }

    pub(super) fn time_arg(&mut self, e: &syntax::Expr, what: &str) -> Result<Option<i64>> {
        let help = "use a relative time like '-5m', integer nanoseconds, or `px.now() - px.minutes(5)`";
        match self.eval(e)? {
            Value::None => Ok(None),
            Value::Scalar(TExpr { expr: Expr::Literal(lit), .. }) => match lit {
                Literal::Int(ns) | Literal::Time(ns) => Ok(Some(ns)),
                Literal::String(s) => match time::parse_duration(&s) {
                    Some(d) => Ok(Some(self.now_ns.saturating_add(d))),
                    None => Err(Box::new(
                        Diagnostic::new(self.source, e.span.clone(), format!("invalid {what} `{s}`")).with_help(help),
                    )),
                },
                other => Err(Box::new(
                    Diagnostic::new(self.source, e.span.clone(), format!("{what} cannot be a {} constant", other.ty()))
                        .with_help(help),
                )),
            },
            other => Err(Box::new(
                Diagnostic::new(
                    self.source,
                    e.span.clone(),
                    format!("{what} must be a constant, found {}", other.describe()),
                )
                .with_help(help),
            )),
        }
    }

    pub(super) fn call_method(
        &mut self,
        frame: Frame,
        attr: &Ident,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let what = format!("df.{}", attr.name);
        match attr.name.as_str() {
            "filter" => {
                let a = self.bind_args(&what, &["expr"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing filter")) };
                let pred = self.eval_scalar(e, "a filter")?;
                Ok(Value::Frame(self.filter(&frame, pred, &e.span)?))
            }
            "drop" => {
                let a = self.bind_args(&what, &["columns"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing columns")) };
                let cols = self.eval_column_list(e, &frame, &what)?;
                let columns = frame.columns.iter().filter(|c| !cols.contains(&c.name)).cloned().collect();
                let plan = Plan::Drop { input: Box::new(frame.plan.clone()), columns: cols };
                Ok(Value::Frame(frame.wrap(plan, columns)))
            }
            "head" => {
                let a = self.bind_args(&what, &["n"], 0, args, kwargs, span)?;
                let n = match a.get(0) {
                    Some(e) => {
                        let n = self.eval_int(e, "the row count")?;
                        usize::try_from(n).map_err(|_| self.err(&e.span, "the row count must not be negative"))?
                    }
                    None => 5,
                };
                let plan = Plan::Limit { input: Box::new(frame.plan.clone()), n };
                Ok(Value::Frame(frame.wrap(plan, frame.columns.clone())))
            }
            "groupby" => {
                let a = self.bind_args(&what, &["by"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing keys")) };
                let keys = self.eval_column_list(e, &frame, &what)?;
                if keys.is_empty() {
                    return Err(self.err(&e.span, "groupby needs at least one column"));
                }
                Ok(Value::GroupBy(frame, keys))
            }
            "agg" => {
                if let Some(a) = args.first() {
                    return Err(
                        self.err(&a.span, "`agg` takes keyword arguments only: `agg(name=('column', px.count))`")
                    );
                }
                self.aggregate(&frame, Vec::new(), kwargs, span)
            }
            "map" => {
                let a = self.bind_args(&what, &["column_name", "expr"], 2, args, kwargs, span)?;
                let (Some(n), Some(e)) = (a.get(0), a.get(1)) else { return Err(self.err(span, "missing arguments")) };
                let column = self.eval_string(n, "the column name")?;
                let expr = self.eval_scalar(e, "a column value")?;
                Ok(Value::Frame(map_column(&frame, &column, expr)))
            }
            "ctx" => Err(self.ctx_error(&attr.span)),
            m @ ("merge" | "append" | "rolling" | "stream") => {
                Err(self.err(&attr.span, format!("`df.{m}` is not supported yet")))
            }
            other => {
                if frame.column(other).is_some() {
                    return Err(self.err(&attr.span, format!("column `{other}` is not callable")));
                }
                let mut d =
                    Diagnostic::new(self.source, attr.span.clone(), format!("unknown dataframe method `{other}`"));
                if let Some(h) = did_you_mean(other, FRAME_METHODS.iter().copied()) {
                    d = d.with_help(h);
                }
                Err(Box::new(d))
            }
        }
    }

    pub(super) fn aggregate(
        &mut self,
        frame: &Frame,
        keys: Vec<String>,
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        if kwargs.is_empty() {
            return Err(self.err(span, "`agg` needs at least one aggregate: `agg(name=('column', px.count))`"));
        }
        let mut columns: Vec<ColumnDef> = keys.iter().filter_map(|k| frame.column(k).cloned()).collect();
        let mut aggs = Vec::with_capacity(kwargs.len());
        let spec_help = "write each aggregate as `name=('column', px.fn)`, e.g. `n=('latency', px.count)`";
        for (out, spec) in kwargs {
            let items = match &spec.kind {
                ExprKind::Tuple(items) | ExprKind::List(items) if items.len() == 2 => items,
                _ => {
                    return Err(Box::new(
                        Diagnostic::new(
                            self.source,
                            spec.span.clone(),
                            format!("wrong aggregate spec for `{}`", out.name),
                        )
                        .with_help(spec_help),
                    ));
                }
            };
            let col_name = match &items[0].kind {
                ExprKind::Str(s) => s.clone(),
                _ => {
                    return Err(Box::new(
                        Diagnostic::new(
                            self.source,
                            items[0].span.clone(),
                            "wrong aggregate spec: the first item must be a column name string",
                        )
                        .with_help(spec_help),
                    ));
                }
            };
            let input = self.require_column(frame, &col_name, &items[0].span)?.clone();
            let func = match self.eval(&items[1])? {
                Value::PxAttr(n) => AggFunc::from_name(&n).ok_or_else(|| {
                    Box::new(
                        Diagnostic::new(self.source, items[1].span.clone(), format!("`px.{n}` is not an aggregate function"))
                            .with_help("aggregates are px.count, px.sum, px.mean, px.min, px.max, px.any, px.quantiles, px.p50, px.p90, px.p99"),
                    )
                })?,
                other => {
                    return Err(Box::new(
                        Diagnostic::new(self.source, items[1].span.clone(), format!("wrong aggregate spec: expected a px aggregate function, found {}", other.describe()))
                            .with_help(spec_help),
                    ));
                }
            };
            let Some(ty) = func.output_type(input.ty) else {
                return Err(self.err(
                    &items[1].span,
                    format!("`px.{}` does not accept {} column `{}`", func.name(), input.ty, input.name),
                ));
            };
            if columns.iter().any(|c| c.name == out.name) {
                return Err(self.err(&out.span, format!("duplicate output column `{}`", out.name)));
            }
            columns.push(ColumnDef { name: out.name.clone(), ty });
            aggs.push(Aggregation { output: out.name.clone(), func, column: col_name });
        }
        let plan = Plan::Aggregate { input: Box::new(frame.plan.clone()), group_by: keys, aggs };
        Ok(Value::Frame(Frame { plan, columns, desc: "the aggregated dataframe".into() }))
    }
}

pub(super) fn map_column(frame: &Frame, column: &str, value: TExpr) -> Frame {
    let mut columns = frame.columns.clone();
    let def = ColumnDef { name: column.to_string(), ty: value.ty };
    match columns.iter_mut().find(|c| c.name == column) {
        Some(c) => *c = def,
        None => columns.push(def),
    }
    let plan = Plan::Map { input: Box::new(frame.plan.clone()), column: column.to_string(), expr: value.expr };
    frame.wrap(plan, columns)
}

pub(super) fn project(frame: &Frame, columns: Vec<String>) -> Frame {
    let defs = columns.iter().filter_map(|c| frame.column(c).cloned()).collect();
    let plan = Plan::Project { input: Box::new(frame.plan.clone()), columns };
    frame.wrap(plan, defs)
}
