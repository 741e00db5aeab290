//! Dataframe operations: `px.DataFrame` (table, columns, time range), filters, and the methods
//! (`filter`, `drop`, `head`, `groupby`/`agg`, `map`), each building one plan operator and the
//! columns it outputs.
//!
//! Owns the column bookkeeping of every operator and the aggregate specs. Must not type scalar
//! expressions (`expr`) or know `px.*` functions beyond aggregates.

use super::value::{Frame, TExpr, Value};
use super::{Checker, Result};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::plan::{AggFunc, Aggregation, ColumnDef, Expr, JoinHow, Literal, Plan, PxType};
use crate::syntax::{self, ExprKind, Ident, Span};
use crate::time;

pub(super) const FRAME_METHODS: &[&str] =
    &["filter", "drop", "head", "groupby", "agg", "map", "merge", "append", "rename", "rolling", "stream", "ctx"];

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
            .filter_map(|f| {
                let semantic = f
                    .metadata()
                    .get(loupe_schema::SEMANTIC_TYPE_KEY)
                    .filter(|s| s.as_str() != "ST_NONE" && !s.is_empty())
                    .cloned();
                PxType::from_arrow(f.data_type()).map(|ty| ColumnDef { name: f.name().clone(), ty, semantic })
            })
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
            "ctx" => Err(self.err(&attr.span, "`ctx` is read by key: `df.ctx['pod']`")),
            "merge" => self.merge(frame, args, kwargs, span),
            "append" => self.append(frame, args, kwargs, span),
            "rename" => self.rename(frame, args, kwargs, span),
            m @ ("rolling" | "stream") => Err(self.err(&attr.span, format!("`df.{m}` is not supported yet"))),
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
        // `groupby(keys).agg()` is the distinct keys (Pixie's idiom); no groups need an aggregate.
        if kwargs.is_empty() && keys.is_empty() {
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
            let col_name = match self.eval(&items[0])? {
                Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(s)), .. }) => s,
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
            let semantic = func.output_semantic(input.semantic.as_deref());
            columns.push(ColumnDef { name: out.name.clone(), ty, semantic });
            aggs.push(Aggregation { output: out.name.clone(), func, column: col_name });
        }
        let plan = Plan::Aggregate { input: Box::new(frame.plan.clone()), group_by: keys, aggs };
        Ok(Value::Frame(Frame { plan, columns, desc: "the aggregated dataframe".into() }))
    }
}

impl Checker<'_> {
    /// `df.merge(right, how, left_on, right_on, suffixes=['_x', '_y'])`: output columns are the left's
    /// then the right's; a name both sides have gets the left suffix on the left and the right suffix on
    /// the right (keys included, as in Pixie: `asid` becomes `asid_x` and `asid_y`).
    fn merge(
        &mut self,
        left: Frame,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let what = "df.merge";
        let a = self.bind_args(what, &["right", "how", "left_on", "right_on", "suffixes"], 4, args, kwargs, span)?;
        let (Some(r), Some(h), Some(lo), Some(ro)) = (a.get(0), a.get(1), a.get(2), a.get(3)) else {
            return Err(self.err(span, "missing arguments"));
        };
        let right = self.eval_frame(r, what)?;
        let how = match self.eval_string(h, "`how`")?.as_str() {
            "inner" => JoinHow::Inner,
            "left" => JoinHow::Left,
            "right" => JoinHow::Right,
            "outer" => JoinHow::Outer,
            other => {
                return Err(self.err(&h.span, format!("`how` must be inner, left, right or outer, found `{other}`")));
            }
        };
        let left_on = self.eval_column_list(lo, &left, what)?;
        let right_on = self.eval_column_list(ro, &right, what)?;
        if left_on.len() != right_on.len() {
            return Err(self.err(
                &ro.span,
                format!(
                    "`left_on` and `right_on` must name as many columns, found {} and {}",
                    left_on.len(),
                    right_on.len()
                ),
            ));
        }
        for (l, r) in left_on.iter().zip(&right_on) {
            let (lt, rt) = (left.column(l).map(|c| c.ty), right.column(r).map(|c| c.ty));
            if lt != rt {
                let (lt, rt) = (lt.map_or("?", |t| t.name()), rt.map_or("?", |t| t.name()));
                return Err(self.err(&ro.span, format!("cannot join {lt} column `{l}` with {rt} column `{r}`")));
            }
        }
        let (lsuf, rsuf) = match a.get(4) {
            None => ("_x".to_string(), "_y".to_string()),
            Some(e) => {
                let Value::List(items) = self.eval(e)? else {
                    return Err(self.err(&e.span, "`suffixes` must be a list of two strings, e.g. ['_x', '_y']"));
                };
                let strs: Vec<Option<String>> = items
                    .iter()
                    .map(|(v, _)| match v {
                        Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(s)), .. }) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                match strs.as_slice() {
                    [Some(l), Some(r)] => (l.clone(), r.clone()),
                    _ => return Err(self.err(&e.span, "`suffixes` must be a list of two strings, e.g. ['_x', '_y']")),
                }
            }
        };
        let rename = |cols: &[ColumnDef], other: &Frame, suffix: &str| -> Vec<(String, String, PxType)> {
            cols.iter()
                .map(|c| {
                    let out =
                        if other.column(&c.name).is_some() { format!("{}{suffix}", c.name) } else { c.name.clone() };
                    (c.name.clone(), out, c.ty)
                })
                .collect()
        };
        let semantic_of = |frame: &Frame, name: &str| frame.column(name).and_then(|c| c.semantic.clone());
        let lcols = rename(&left.columns, &right, &lsuf);
        let rcols = rename(&right.columns, &left, &rsuf);
        let mut columns: Vec<ColumnDef> = Vec::new();
        let sides = lcols.iter().map(|c| (c, &left)).chain(rcols.iter().map(|c| (c, &right)));
        for ((input, out, ty), side) in sides {
            if columns.iter().any(|c| &c.name == out) {
                return Err(self.err(
                    a.get(4).map_or(span, |e| &e.span),
                    format!("the merge outputs column `{out}` twice: choose other suffixes"),
                ));
            }
            columns.push(ColumnDef { name: out.clone(), ty: *ty, semantic: semantic_of(side, input) });
        }
        let out_name = |cols: &[(String, String, PxType)], name: &str| {
            cols.iter().find(|(i, _, _)| i == name).map_or_else(|| name.to_string(), |(_, o, _)| o.clone())
        };
        let plan = Plan::Join {
            left: Box::new(left.plan.clone()),
            right: Box::new(right.plan.clone()),
            how,
            left_on: left_on.iter().map(|c| out_name(&lcols, c)).collect(),
            right_on: right_on.iter().map(|c| out_name(&rcols, c)).collect(),
            left_columns: lcols.iter().map(|(i, o, _)| (i.clone(), o.clone())).collect(),
            right_columns: rcols.iter().map(|(i, o, _)| (i.clone(), o.clone())).collect(),
        };
        Ok(Value::Frame(Frame { plan, columns, desc: "the merged dataframe".into() }))
    }

    /// `df.append(other)` or `df.append([a, b])`: every frame must have the same column names and types;
    /// their order may differ (each is put in `df`'s order).
    fn append(
        &mut self,
        frame: Frame,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let a = self.bind_args("df.append", &["objs"], 1, args, kwargs, span)?;
        let Some(e) = a.get(0) else { return Err(self.err(span, "missing dataframes")) };
        let others: Vec<(Value, Span)> = match self.eval(e)? {
            Value::List(items) => items,
            v => vec![(v, e.span.clone())],
        };
        let mut inputs = vec![frame.plan.clone()];
        for (v, at) in others {
            let Value::Frame(other) = v else {
                return Err(self.err(&at, format!("`df.append` takes dataframes, found {}", v.describe())));
            };
            let mut same = other.columns.len() == frame.columns.len();
            for c in &frame.columns {
                same &= other.column(&c.name).is_some_and(|o| o.ty == c.ty);
            }
            if !same {
                let show =
                    |f: &Frame| f.columns.iter().map(|c| format!("{} {}", c.name, c.ty)).collect::<Vec<_>>().join(", ");
                return Err(Box::new(
                    Diagnostic::new(self.source, at.clone(), "`df.append` needs frames with the same columns")
                        .with_note(format!("the frame has: {}", show(&frame)))
                        .with_note(format!("this one has: {}", show(&other))),
                ));
            }
            let names: Vec<String> = frame.columns.iter().map(|c| c.name.clone()).collect();
            inputs.push(project(&other, names).plan);
        }
        let plan = Plan::Union { inputs };
        Ok(Value::Frame(frame.wrap(plan, frame.columns.clone())))
    }

    /// `df.rename({'old': 'new', ...})`: renamed in place.
    fn rename(
        &mut self,
        frame: Frame,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let a = self.bind_args("df.rename", &["columns"], 1, args, kwargs, span)?;
        let Some(e) = a.get(0) else { return Err(self.err(span, "missing mapping")) };
        let ExprKind::Dict(items) = &e.kind else {
            return Err(self.err(&e.span, "`df.rename` takes a dict of column names: `df.rename({'old': 'new'})`"));
        };
        let mut columns = frame.columns.clone();
        let mut renames = Vec::with_capacity(items.len());
        for (k, v) in items {
            let old = self.eval_string(k, "the column name")?;
            let new = self.eval_string(v, "the new column name")?;
            self.require_column(&frame, &old, &k.span)?;
            if old != new && columns.iter().any(|c| c.name == new) {
                return Err(self.err(&v.span, format!("column `{new}` already exists")));
            }
            if let Some(c) = columns.iter_mut().find(|c| c.name == old) {
                c.name = new.clone();
            }
            renames.push((old, new));
        }
        let plan = Plan::Rename { input: Box::new(frame.plan.clone()), renames };
        Ok(Value::Frame(frame.wrap(plan, columns)))
    }
}

pub(super) fn map_column(frame: &Frame, column: &str, value: TExpr) -> Frame {
    let mut columns = frame.columns.clone();
    let def = ColumnDef { name: column.to_string(), ty: value.ty, semantic: value.expr.semantic(&frame.columns) };
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
