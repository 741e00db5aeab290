//! The checker: interprets the PxL syntax tree into typed logical plans.
//!
//! Owns name resolution (variables, `px.*`, dataframe methods, user functions), the type
//! rules of operators and functions, constant folding of time arithmetic, and every semantic
//! [`Diagnostic`]. PxL is evaluated like Python at compile time: a dataframe variable holds a
//! plan, a column expression holds a typed [`Expr`]. Must not touch the Python parser (see
//! `syntax`) or execute anything.

use std::collections::HashMap;
use std::rc::Rc;

use crate::diagnostic::{Diagnostic, closest, did_you_mean};
use crate::plan::{AggFunc, Aggregation, BinaryOp, ColumnDef, Expr, Literal, Output, Plan, PxType, ScalarFunc};
use crate::syntax::{self, BinOp, ExprKind, FunctionDef, Ident, Span, Stmt, Target, UnOp};
use crate::time;
use crate::{Catalog, CompileOptions};

type Result<T, E = Box<Diagnostic>> = std::result::Result<T, E>;

/// Deepest user-function call chain accepted.
const MAX_CALL_DEPTH: usize = 32;

/// Semantic-type casts: identity functions on the value.
const SEMANTIC_CASTS: &[&str] =
    &["DurationNanos", "Percent", "Bytes", "Service", "Pod", "Namespace", "Node", "Container", "UPID"];

/// Scalar functions and their engine counterparts.
const SCALAR_FUNCS: &[(&str, ScalarFunc)] = &[
    ("select", ScalarFunc::Select),
    ("bin", ScalarFunc::Bin),
    ("contains", ScalarFunc::Contains),
    ("find", ScalarFunc::Find),
    ("length", ScalarFunc::Length),
    ("tolower", ScalarFunc::ToLower),
    ("toupper", ScalarFunc::ToUpper),
    ("trim", ScalarFunc::Trim),
    ("substring", ScalarFunc::Substring),
    ("regex_match", ScalarFunc::RegexMatch),
    ("abs", ScalarFunc::Abs),
    ("floor", ScalarFunc::Floor),
    ("ceil", ScalarFunc::Ceil),
    ("round", ScalarFunc::Round),
    ("sqrt", ScalarFunc::Sqrt),
    ("exp", ScalarFunc::Exp),
    ("ln", ScalarFunc::Ln),
    ("log2", ScalarFunc::Log2),
    ("log10", ScalarFunc::Log10),
    ("pow", ScalarFunc::Pow),
    ("pluck", ScalarFunc::Pluck),
    ("pluck_int64", ScalarFunc::PluckInt64),
    ("pluck_float64", ScalarFunc::PluckFloat64),
    ("equals_any", ScalarFunc::EqualsAny),
    ("int64_to_time", ScalarFunc::Int64ToTime),
    ("time_to_int64", ScalarFunc::TimeToInt64),
];

/// `px.*` names that are known but need machinery Loupe does not have yet.
const NOT_YET: &[&str] = &[
    "merge",
    "script_reference",
    "export",
    "otel",
    "vis",
    "strptime",
    "parse_time",
    "format_duration",
    "nslookup",
    "uint128",
    "make_upid",
    "split",
    "replace",
    "atoi",
    "itoa",
    "normalize_mysql",
    "normalize_pgsql",
    "GetAgentStatus",
    "GetSchemas",
    "GetTables",
    "GetUDFList",
    "GetUDAList",
    "GetUDTFList",
];

const FRAME_METHODS: &[&str] =
    &["filter", "drop", "head", "groupby", "agg", "map", "merge", "append", "rolling", "stream", "ctx"];

/// True for `px.` metadata lookups that need Kubernetes state (`upid_to_pod_name`, ...).
fn is_metadata_func(name: &str) -> bool {
    ["upid_to_", "pod_name_to_", "pod_id_to_", "service_name_to_", "service_id_to_", "ip_to_"]
        .iter()
        .any(|p| name.starts_with(p))
        || matches!(name, "has_service_name" | "has_service_id" | "has_value" | "upid" | "asid")
}

fn known_px_names() -> impl Iterator<Item = &'static str> {
    ["DataFrame", "display", "debug", "now", "parse_duration"]
        .into_iter()
        .chain(["days", "hours", "minutes", "seconds", "milliseconds", "microseconds"])
        .chain(["count", "sum", "mean", "min", "max", "any", "quantiles", "p01", "p10", "p25"])
        .chain(["p50", "p75", "p90", "p99"])
        .chain(SEMANTIC_CASTS.iter().copied())
        .chain(SCALAR_FUNCS.iter().map(|(n, _)| *n))
        .chain(NOT_YET.iter().copied())
}

/// A typed scalar expression.
#[derive(Debug, Clone)]
struct TExpr {
    expr: Expr,
    ty: PxType,
}

impl TExpr {
    fn lit(l: Literal) -> TExpr {
        TExpr { ty: l.ty(), expr: Expr::Literal(l) }
    }

    fn literal(&self) -> Option<&Literal> {
        match &self.expr {
            Expr::Literal(l) => Some(l),
            _ => None,
        }
    }

    fn cast(self, to: PxType) -> TExpr {
        if self.ty == to {
            return self;
        }
        match (&self.expr, to) {
            (Expr::Literal(Literal::Int(i)), PxType::Float64) => TExpr::lit(Literal::Float(*i as f64)),
            (Expr::Literal(Literal::Int(i)), PxType::Time) => TExpr::lit(Literal::Time(*i)),
            (Expr::Literal(Literal::Time(t)), PxType::Int64) => TExpr::lit(Literal::Int(*t)),
            (_, PxType::Time) if self.ty == PxType::Int64 => {
                TExpr { expr: Expr::Call { func: ScalarFunc::Int64ToTime, args: vec![self.expr] }, ty: to }
            }
            (_, PxType::Int64) if self.ty == PxType::Time => {
                TExpr { expr: Expr::Call { func: ScalarFunc::TimeToInt64, args: vec![self.expr] }, ty: to }
            }
            _ => TExpr { expr: Expr::Cast { expr: Box::new(self.expr), to }, ty: to },
        }
    }
}

/// A dataframe value: a plan and its output columns.
#[derive(Debug, Clone)]
struct Frame {
    plan: Plan,
    columns: Vec<ColumnDef>,
    /// How messages name it (`table \`http_events\``).
    desc: String,
}

impl Frame {
    fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    fn wrap(&self, plan: Plan, columns: Vec<ColumnDef>) -> Frame {
        Frame { plan, columns, desc: self.desc.clone() }
    }
}

/// What a PxL name or expression evaluates to at compile time.
#[derive(Debug, Clone)]
enum Value {
    /// The `px` module.
    Module,
    /// A dataframe.
    Frame(Frame),
    /// `df.groupby(keys)`, waiting for `.agg(...)`.
    GroupBy(Frame, Vec<String>),
    /// A column expression or a constant.
    Scalar(TExpr),
    /// A list or tuple literal.
    List(Vec<(Value, Span)>),
    /// `None`.
    None,
    /// `px.<name>` not yet called (aggregate functions are used this way).
    PxAttr(String),
    /// A user-defined function.
    Func(Rc<FunctionDef>),
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Value::Module => "the `px` module".into(),
            Value::Frame(_) => "a dataframe".into(),
            Value::GroupBy(..) => "a grouped dataframe".into(),
            Value::Scalar(t) if t.literal().is_some() => format!("a {} constant", t.ty),
            Value::Scalar(t) => format!("a {} expression", t.ty),
            Value::List(_) => "a list".into(),
            Value::None => "`None`".into(),
            Value::PxAttr(n) => format!("`px.{n}`"),
            Value::Func(f) => format!("function `{}`", f.name.name),
        }
    }
}

/// Arguments of one call, matched to parameter names.
struct Args<'e> {
    values: Vec<Option<&'e syntax::Expr>>,
}

impl<'e> Args<'e> {
    fn get(&self, i: usize) -> Option<&'e syntax::Expr> {
        self.values.get(i).copied().flatten()
    }
}

/// Compile-time interpreter state.
pub(crate) struct Checker<'a> {
    source: &'a str,
    catalog: &'a dyn Catalog,
    now_ns: i64,
    /// Scope stack: index 0 holds globals; a function call pushes its locals.
    scopes: Vec<HashMap<String, Value>>,
    outputs: Vec<Output>,
    defined_functions: bool,
}

enum Flow {
    Next,
    Return(Value),
}

impl<'a> Checker<'a> {
    pub(crate) fn new(source: &'a str, catalog: &'a dyn Catalog, options: &CompileOptions) -> Self {
        Checker {
            source,
            catalog,
            now_ns: options.now_ns,
            scopes: vec![HashMap::new()],
            outputs: Vec::new(),
            defined_functions: false,
        }
    }

    fn err(&self, span: &Span, message: impl Into<String>) -> Box<Diagnostic> {
        Box::new(Diagnostic::new(self.source, span.clone(), message))
    }

    /// Runs the whole script and returns its outputs.
    pub(crate) fn run(mut self, stmts: &[Stmt]) -> Result<Vec<Output>> {
        for stmt in stmts {
            if let Flow::Return(_) = self.exec(stmt)? {
                let span = match stmt {
                    Stmt::Return { span, .. } => span.clone(),
                    _ => 0..0,
                };
                return Err(self.err(&span, "`return` outside of a function"));
            }
        }
        if self.outputs.is_empty() {
            let mut d = Diagnostic::new(self.source, 0..0, "script has no `px.display` call, so it produces no output");
            if self.defined_functions {
                d = d.with_help("call a function at top level, e.g. `px.display(f('-5m'))`");
            } else {
                d = d.with_help("add `px.display(df)` for each table to return");
            }
            return Err(Box::new(d));
        }
        Ok(self.outputs)
    }

    fn exec_block(&mut self, body: &[Stmt]) -> Result<Value> {
        for stmt in body {
            if let Flow::Return(v) = self.exec(stmt)? {
                return Ok(v);
            }
        }
        Ok(Value::None)
    }

    fn exec(&mut self, stmt: &Stmt) -> Result<Flow> {
        match stmt {
            Stmt::Import(names) => {
                for n in names {
                    match n.name.as_str() {
                        "px" | "pl" => self.bind(&n.name, Value::Module),
                        "pxviews" | "pxtrace" => {
                            return Err(self.err(&n.span, format!("module `{}` is not supported yet", n.name)));
                        }
                        other => return Err(self.err(&n.span, format!("unknown module `{other}`"))),
                    }
                }
            }
            Stmt::Assign { target, value } => self.assign(target, value)?,
            Stmt::Expr(e) => {
                self.eval(e)?;
            }
            Stmt::FunctionDef(f) => {
                self.defined_functions = true;
                self.bind(&f.name.name, Value::Func(f.clone()));
            }
            Stmt::Return { value, span } => {
                if self.scopes.len() == 1 {
                    return Err(self.err(span, "`return` outside of a function"));
                }
                let v = match value {
                    Some(e) => self.eval(e)?,
                    None => Value::None,
                };
                return Ok(Flow::Return(v));
            }
            Stmt::Pass => {}
            Stmt::Unsupported { what, span } => {
                return Err(self.err(span, format!("{what} are not supported in PxL")));
            }
        }
        Ok(Flow::Next)
    }

    fn bind(&mut self, name: &str, value: Value) {
        if let Some(scope) = self.scopes.last_mut() {
            scope.insert(name.to_string(), value);
        }
    }

    fn lookup(&self, name: &str) -> Option<&Value> {
        let top = self.scopes.last().and_then(|s| s.get(name));
        top.or_else(|| self.scopes.first().and_then(|s| s.get(name)))
    }

    fn assign(&mut self, target: &Target, value: &syntax::Expr) -> Result<()> {
        match target {
            Target::Name(id) => {
                let v = self.eval(value)?;
                self.bind(&id.name, v);
                Ok(())
            }
            Target::Attr { obj, attr } => self.assign_column(obj, &attr.name, &attr.span, value),
            Target::Index { obj, key } => match &key.kind {
                ExprKind::Str(name) => self.assign_column(obj, name, &key.span, value),
                _ => Err(self.err(&key.span, "column assignment needs a string column name: `df['name'] = ...`")),
            },
            Target::Unsupported(span) => Err(self.err(span, "can only assign to a name or a dataframe column")),
        }
    }

    fn assign_column(&mut self, obj: &syntax::Expr, column: &str, col_span: &Span, value: &syntax::Expr) -> Result<()> {
        let ExprKind::Name(var) = &obj.kind else {
            return Err(self.err(&obj.span, "can only assign columns of a dataframe variable"));
        };
        let frame = match self.eval(obj)? {
            Value::Frame(f) => f,
            other => {
                return Err(self.err(&obj.span, format!("`{var}` is {}, not a dataframe", other.describe())));
            }
        };
        if column == "ctx" {
            return Err(self.err(col_span, "`ctx` is reserved for metadata and cannot be assigned"));
        }
        let expr = self.eval_scalar(value, "a column value")?;
        let frame = map_column(&frame, column, expr);
        self.bind(var, Value::Frame(frame));
        Ok(())
    }

    // ---------------------------------------------------------------- expressions

    fn eval(&mut self, e: &syntax::Expr) -> Result<Value> {
        match &e.kind {
            ExprKind::Name(n) => match self.lookup(n) {
                Some(v) => Ok(v.clone()),
                None => {
                    let mut d = Diagnostic::new(self.source, e.span.clone(), format!("name `{n}` is not defined"));
                    if n == "px" {
                        d = d.with_help("add `import px` at the top of the script");
                    } else {
                        let names: Vec<&str> = self.scopes.iter().flat_map(|s| s.keys().map(String::as_str)).collect();
                        if let Some(h) = did_you_mean(n, names) {
                            d = d.with_help(h);
                        }
                    }
                    Err(Box::new(d))
                }
            },
            ExprKind::Int(i) => Ok(Value::Scalar(TExpr::lit(Literal::Int(*i)))),
            ExprKind::Float(f) => Ok(Value::Scalar(TExpr::lit(Literal::Float(*f)))),
            ExprKind::Str(s) => Ok(Value::Scalar(TExpr::lit(Literal::String(s.clone())))),
            ExprKind::Bool(b) => Ok(Value::Scalar(TExpr::lit(Literal::Bool(*b)))),
            ExprKind::None => Ok(Value::None),
            ExprKind::List(items) | ExprKind::Tuple(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push((self.eval(i)?, i.span.clone()));
                }
                Ok(Value::List(out))
            }
            ExprKind::Attr { obj, attr } => self.eval_attr(obj, attr),
            ExprKind::Index { obj, key } => self.eval_index(obj, key),
            ExprKind::Call { func, args, kwargs } => self.eval_call(func, args, kwargs, &e.span),
            ExprKind::Binary { op, op_span, left, right } => {
                let l = self.eval_scalar(left, "an operand")?;
                let r = self.eval_scalar(right, "an operand")?;
                let tok = self.op_token(op_span, &e.span);
                Ok(Value::Scalar(self.binary(*op, l, r, &tok)?))
            }
            ExprKind::Unary { op, operand } => {
                let v = self.eval_scalar(operand, "an operand")?;
                Ok(Value::Scalar(self.unary(*op, v, &e.span)?))
            }
            ExprKind::Unsupported(what) => Err(self.err(&e.span, format!("{what} are not supported in PxL"))),
        }
    }

    /// Evaluates `e` and requires a column expression or constant.
    fn eval_scalar(&mut self, e: &syntax::Expr, role: &str) -> Result<TExpr> {
        match self.eval(e)? {
            Value::Scalar(t) => Ok(t),
            other => Err(self.err(
                &e.span,
                format!("expected {role} (a column expression or a constant), found {}", other.describe()),
            )),
        }
    }

    fn eval_frame(&mut self, e: &syntax::Expr, what: &str) -> Result<Frame> {
        match self.eval(e)? {
            Value::Frame(f) => Ok(f),
            other => Err(self.err(&e.span, format!("{what} expects a dataframe, found {}", other.describe()))),
        }
    }

    fn eval_string(&mut self, e: &syntax::Expr, what: &str) -> Result<String> {
        match self.eval(e)? {
            Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(s)), .. }) => Ok(s),
            other => Err(self.err(&e.span, format!("{what} must be a string constant, found {}", other.describe()))),
        }
    }

    fn eval_int(&mut self, e: &syntax::Expr, what: &str) -> Result<i64> {
        match self.eval(e)? {
            Value::Scalar(TExpr { expr: Expr::Literal(Literal::Int(i)), .. }) => Ok(i),
            other => Err(self.err(&e.span, format!("{what} must be an integer constant, found {}", other.describe()))),
        }
    }

    /// One column name or a list of them, each checked against `frame`.
    fn eval_column_list(&mut self, e: &syntax::Expr, frame: &Frame, what: &str) -> Result<Vec<String>> {
        let items: Vec<(Value, Span)> = match self.eval(e)? {
            Value::List(items) => items,
            v @ Value::Scalar(_) => vec![(v, e.span.clone())],
            other => {
                return Err(self.err(
                    &e.span,
                    format!("{what} expects a column name or a list of them, found {}", other.describe()),
                ));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (v, span) in items {
            let Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(name)), .. }) = v else {
                return Err(self.err(&span, format!("{what} expects column names as strings, found {}", v.describe())));
            };
            self.require_column(frame, &name, &span)?;
            out.push(name);
        }
        Ok(out)
    }

    fn require_column<'f>(&self, frame: &'f Frame, name: &str, span: &Span) -> Result<&'f ColumnDef> {
        match frame.column(name) {
            Some(c) => Ok(c),
            None => {
                let mut d =
                    Diagnostic::new(self.source, span.clone(), format!("unknown column `{name}` in {}", frame.desc));
                if let Some(h) = did_you_mean(name, frame.names()) {
                    d = d.with_help(h);
                }
                Err(Box::new(d))
            }
        }
    }

    fn eval_attr(&mut self, obj: &syntax::Expr, attr: &Ident) -> Result<Value> {
        match self.eval(obj)? {
            Value::Module => {
                self.check_px_name(attr)?;
                Ok(Value::PxAttr(attr.name.clone()))
            }
            Value::Frame(frame) => {
                if attr.name == "ctx" {
                    return Err(self.ctx_error(&attr.span));
                }
                if let Some(c) = frame.column(&attr.name) {
                    return Ok(Value::Scalar(TExpr { expr: Expr::Column(c.name.clone()), ty: c.ty }));
                }
                if FRAME_METHODS.contains(&attr.name.as_str()) {
                    return Err(self.err(&attr.span, format!("`{}` is a dataframe method: call it", attr.name)));
                }
                self.require_column(&frame, &attr.name, &attr.span).map(|_| Value::None)
            }
            Value::PxAttr(parent) => {
                Err(self.err(&attr.span, format!("`px.{parent}.{}` is not supported yet", attr.name)))
            }
            other => Err(self.err(&attr.span, format!("{} has no attribute `{}`", other.describe(), attr.name))),
        }
    }

    fn ctx_error(&self, span: &Span) -> Box<Diagnostic> {
        Box::new(
            Diagnostic::new(self.source, span.clone(), "`ctx` metadata is not available yet")
                .with_note("Kubernetes metadata (service, pod, namespace, ...) is not collected by Loupe yet"),
        )
    }

    fn check_px_name(&self, attr: &Ident) -> Result<()> {
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

    fn eval_index(&mut self, obj: &syntax::Expr, key: &syntax::Expr) -> Result<Value> {
        let frame = match self.eval(obj)? {
            Value::Frame(f) => f,
            other => return Err(self.err(&obj.span, format!("cannot index {}", other.describe()))),
        };
        match &key.kind {
            ExprKind::Str(name) => {
                let c = self.require_column(&frame, name, &key.span)?;
                return Ok(Value::Scalar(TExpr { expr: Expr::Column(c.name.clone()), ty: c.ty }));
            }
            ExprKind::List(items) | ExprKind::Tuple(items)
                if !items.is_empty() && items.iter().all(|i| matches!(i.kind, ExprKind::Str(_))) =>
            {
                let columns = self.eval_column_list(key, &frame, "keeping columns")?;
                return Ok(Value::Frame(project(&frame, columns)));
            }
            _ => {}
        }
        let pred = self.eval_scalar(key, "a filter")?;
        Ok(Value::Frame(self.filter(&frame, pred, &key.span)?))
    }

    fn filter(&self, frame: &Frame, pred: TExpr, span: &Span) -> Result<Frame> {
        if pred.ty != PxType::Boolean {
            return Err(self.err(span, format!("filter expects a BOOLEAN expression, found {}", pred.ty)));
        }
        let plan = Plan::Filter { input: Box::new(frame.plan.clone()), predicate: pred.expr };
        Ok(frame.wrap(plan, frame.columns.clone()))
    }

    /// The operator token inside the gap between two operands, or the whole expression.
    fn op_token(&self, gap: &Span, whole: &Span) -> Span {
        let Some(text) = self.source.get(gap.clone()) else {
            return whole.clone();
        };
        let trivia = |c: char| c.is_whitespace() || c == '(' || c == ')' || c == '\\';
        let Some((start, _)) = text.char_indices().find(|(_, c)| !trivia(*c)) else {
            return whole.clone();
        };
        let len = text[start..].find(trivia).unwrap_or(text.len() - start);
        gap.start + start..gap.start + start + len
    }

    // ---------------------------------------------------------------- operators

    fn binary(&self, op: BinOp, l: TExpr, r: TExpr, tok: &Span) -> Result<TExpr> {
        use PxType::*;
        let sym = self.source.get(tok.clone()).unwrap_or("?").to_string();
        let mismatch = |this: &Self, verb: &str| {
            Box::new(
                Diagnostic::new(this.source, tok.clone(), format!("cannot {verb} {} and {} with `{sym}`", l.ty, r.ty))
                    .with_note(format!("left operand is {}, right operand is {}", l.ty, r.ty)),
            )
        };
        match op {
            BinOp::And | BinOp::Or | BinOp::BitAnd | BinOp::BitOr => {
                if l.ty != Boolean || r.ty != Boolean {
                    return Err(mismatch(self, "combine"));
                }
                let op = if matches!(op, BinOp::And | BinOp::BitAnd) { BinaryOp::And } else { BinaryOp::Or };
                Ok(TExpr { expr: bin(op, l.expr, r.expr), ty: Boolean })
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Mod => {
                let bop = match op {
                    BinOp::Add => BinaryOp::Add,
                    BinOp::Sub => BinaryOp::Sub,
                    BinOp::Mul => BinaryOp::Mul,
                    _ => BinaryOp::Mod,
                };
                match (l.ty, r.ty) {
                    (Int64, Int64) => Ok(fold_int(bop, l, r)),
                    (Int64 | Float64, Int64 | Float64) => {
                        let (l, r) = (l.cast(Float64), r.cast(Float64));
                        Ok(fold_float(bop, l, r))
                    }
                    (Time, Int64) if matches!(bop, BinaryOp::Add | BinaryOp::Sub) => {
                        Ok(fold_int(bop, l.cast(Int64), r).cast(Time))
                    }
                    (Int64, Time) if bop == BinaryOp::Add => Ok(fold_int(bop, l, r.cast(Int64)).cast(Time)),
                    (Time, Time) if bop == BinaryOp::Sub => Ok(fold_int(bop, l.cast(Int64), r.cast(Int64))),
                    _ => Err(mismatch(self, "combine")),
                }
            }
            BinOp::Div => {
                if !(l.ty.is_numeric() && r.ty.is_numeric()) {
                    return Err(mismatch(self, "divide"));
                }
                Ok(fold_float(BinaryOp::Div, l.cast(Float64), r.cast(Float64)))
            }
            BinOp::Eq | BinOp::NotEq | BinOp::Lt | BinOp::LtE | BinOp::Gt | BinOp::GtE => {
                let bop = match op {
                    BinOp::Eq => BinaryOp::Eq,
                    BinOp::NotEq => BinaryOp::NotEq,
                    BinOp::Lt => BinaryOp::Lt,
                    BinOp::LtE => BinaryOp::LtE,
                    BinOp::Gt => BinaryOp::Gt,
                    _ => BinaryOp::GtE,
                };
                let (l, r) = match (l.ty, r.ty) {
                    (a, b) if a == b => (l, r),
                    (Int64 | Float64, Int64 | Float64) => (l.cast(Float64), r.cast(Float64)),
                    (Time, Int64) => (l, r.cast(Time)),
                    (Int64, Time) => (l.cast(Time), r),
                    _ => return Err(mismatch(self, "compare")),
                };
                Ok(TExpr { expr: bin(bop, l.expr, r.expr), ty: Boolean })
            }
        }
    }

    fn unary(&self, op: UnOp, v: TExpr, span: &Span) -> Result<TExpr> {
        match op {
            UnOp::Not | UnOp::Invert => {
                if v.ty != PxType::Boolean {
                    return Err(self.err(span, format!("`not`/`~` needs a BOOLEAN operand, found {}", v.ty)));
                }
                Ok(match v.expr {
                    Expr::Literal(Literal::Bool(b)) => TExpr::lit(Literal::Bool(!b)),
                    e => TExpr { expr: Expr::Not(Box::new(e)), ty: PxType::Boolean },
                })
            }
            UnOp::Neg | UnOp::Plus => {
                if !v.ty.is_numeric() {
                    return Err(self.err(span, format!("unary minus needs a numeric operand, found {}", v.ty)));
                }
                if op == UnOp::Plus {
                    return Ok(v);
                }
                Ok(match v.expr {
                    Expr::Literal(Literal::Int(i)) if i != i64::MIN => TExpr::lit(Literal::Int(-i)),
                    Expr::Literal(Literal::Float(f)) => TExpr::lit(Literal::Float(-f)),
                    e => TExpr { expr: Expr::Negate(Box::new(e)), ty: v.ty },
                })
            }
        }
    }

    // ---------------------------------------------------------------- calls

    fn eval_call(
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
    fn bind_args<'e>(
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

    fn call_px(
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
                self.outputs.push(Output { name: out_name, plan: frame.plan, columns: frame.columns });
                Ok(Value::None)
            }
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
            unit if time::unit_ns(unit).is_some() => {
                let a = self.bind_args(&what, &["n"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing count")) };
                let n = self.eval_int(e, "the count")?;
                let ns = time::unit_ns(unit)
                    .and_then(|u| n.checked_mul(u))
                    .ok_or_else(|| self.err(&e.span, "duration overflows 64-bit nanoseconds"))?;
                Ok(Value::Scalar(TExpr::lit(Literal::Int(ns))))
            }
            cast if SEMANTIC_CASTS.contains(&cast) => {
                let a = self.bind_args(&what, &["value"], 1, args, kwargs, span)?;
                let Some(e) = a.get(0) else { return Err(self.err(span, "missing value")) };
                Ok(Value::Scalar(self.eval_scalar(e, "a value")?))
            }
            agg if AggFunc::from_name(agg).is_some() => Err(Box::new(
                Diagnostic::new(
                    self.source,
                    attr.span.clone(),
                    format!("`px.{agg}` is an aggregate and cannot be called directly"),
                )
                .with_help(format!("use it in an aggregation: `df.groupby('k').agg(out=('column', px.{agg}))`")),
            )),
            meta if is_metadata_func(meta) => {
                Err(self.err(&attr.span, format!("`px.{meta}` needs Kubernetes metadata, which is not available yet")))
            }
            other => match SCALAR_FUNCS.iter().find(|(n, _)| *n == other) {
                Some((_, f)) => {
                    if let Some((k, _)) = kwargs.first() {
                        return Err(self.err(&k.span, format!("`{what}` takes positional arguments only")));
                    }
                    self.scalar_call(*f, &what, args, span).map(Value::Scalar)
                }
                None => Err(self.err(&attr.span, format!("`px.{other}` is not supported yet"))),
            },
        }
    }

    fn dataframe(&mut self, args: &[syntax::Expr], kwargs: &[(Ident, syntax::Expr)], span: &Span) -> Result<Value> {
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

    fn time_arg(&mut self, e: &syntax::Expr, what: &str) -> Result<Option<i64>> {
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

    fn call_method(
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

    fn aggregate(
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

    fn call_user(
        &mut self,
        f: &Rc<FunctionDef>,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        if self.scopes.len() > MAX_CALL_DEPTH {
            return Err(self.err(span, "function calls nest too deeply"));
        }
        let names: Vec<&str> = f.params.iter().map(|p| p.name.name.as_str()).collect();
        let a = self.bind_args(&f.name.name, &names, 0, args, kwargs, span)?;
        let mut locals = HashMap::new();
        for (i, p) in f.params.iter().enumerate() {
            let v = match (a.get(i), &p.default) {
                (Some(e), _) | (None, Some(e)) => self.eval(e)?,
                (None, None) => {
                    return Err(self.err(span, format!("`{}` is missing argument `{}`", f.name.name, p.name.name)));
                }
            };
            locals.insert(p.name.name.clone(), v);
        }
        self.scopes.push(locals);
        let result = self.exec_block(&f.body);
        self.scopes.pop();
        result
    }

    // ---------------------------------------------------------------- scalar functions

    fn scalar_call(&mut self, func: ScalarFunc, what: &str, args: &[syntax::Expr], span: &Span) -> Result<TExpr> {
        use PxType::*;
        use ScalarFunc as F;
        let arity = match func {
            F::Select | F::Substring => 3,
            F::Bin
            | F::Contains
            | F::Find
            | F::RegexMatch
            | F::Pow
            | F::Pluck
            | F::PluckInt64
            | F::PluckFloat64
            | F::EqualsAny => 2,
            _ => 1,
        };
        if args.len() != arity {
            let at = args.get(arity).map_or(span.clone(), |a| a.span.clone());
            return Err(self.err(
                &at,
                format!("`{what}` takes {arity} argument{}, found {}", if arity == 1 { "" } else { "s" }, args.len()),
            ));
        }
        if func == F::EqualsAny {
            return self.equals_any(what, &args[0], &args[1]);
        }
        let mut vals = Vec::with_capacity(arity);
        for a in args {
            vals.push((self.eval_scalar(a, "an argument")?, a.span.clone()));
        }
        let expect = |this: &Self, i: usize, want: &[PxType]| -> Result<()> {
            let (v, s) = &vals[i];
            if want.contains(&v.ty) {
                return Ok(());
            }
            let names: Vec<&str> = want.iter().map(|t| t.name()).collect();
            Err(this.err(s, format!("argument {} of `{what}` must be {}, found {}", i + 1, names.join(" or "), v.ty)))
        };
        let take = |vals: Vec<(TExpr, Span)>| vals.into_iter().map(|(v, _)| v).collect::<Vec<_>>();
        let call = |func: ScalarFunc, args: Vec<TExpr>, ty: PxType| TExpr {
            expr: Expr::Call { func, args: args.into_iter().map(|a| a.expr).collect() },
            ty,
        };
        Ok(match func {
            F::Select => {
                expect(self, 0, &[Boolean])?;
                let (a, b) = (vals[1].0.ty, vals[2].0.ty);
                let ty = match (a, b) {
                    _ if a == b => a,
                    (Int64 | Float64, Int64 | Float64) => Float64,
                    _ => {
                        return Err(self.err(
                            &vals[2].1,
                            format!("both branches of `{what}` must have one type, found {a} and {b}"),
                        ));
                    }
                };
                let v = take(vals);
                let mut it = v.into_iter();
                let (c, x, y) = match (it.next(), it.next(), it.next()) {
                    (Some(c), Some(x), Some(y)) => (c, x.cast(ty), y.cast(ty)),
                    _ => return Err(self.err(span, "missing arguments")),
                };
                call(F::Select, vec![c, x, y], ty)
            }
            F::Bin => {
                expect(self, 0, &[Int64, Float64, Time])?;
                expect(self, 1, &[Int64, Float64])?;
                let v = take(vals);
                let mut it = v.into_iter();
                let (x, size) = match (it.next(), it.next()) {
                    (Some(x), Some(s)) => (x, s),
                    _ => return Err(self.err(span, "missing arguments")),
                };
                match (x.ty, size.ty) {
                    (Time, Int64) => call(F::Bin, vec![x.cast(Int64), size], Int64).cast(Time),
                    (Int64, Int64) => call(F::Bin, vec![x, size], Int64),
                    (Time, _) => return Err(self.err(span, "`px.bin` of a time needs an integer bucket size in ns")),
                    _ => {
                        // FLOAT64 buckets: floor(x / size) * size.
                        let (x, size) = (x.cast(Float64), size.cast(Float64));
                        let q = TExpr { expr: bin(BinaryOp::Div, x.expr, size.expr.clone()), ty: Float64 };
                        let f = call(F::Floor, vec![q], Float64);
                        TExpr { expr: bin(BinaryOp::Mul, f.expr, size.expr), ty: Float64 }
                    }
                }
            }
            F::Contains | F::Find => {
                expect(self, 0, &[String])?;
                expect(self, 1, &[String])?;
                call(func, take(vals), if func == F::Contains { Boolean } else { Int64 })
            }
            F::RegexMatch => {
                expect(self, 0, &[String])?;
                expect(self, 1, &[String])?;
                if !matches!(vals[0].0.literal(), Some(Literal::String(_))) {
                    return Err(self.err(&vals[0].1, "the pattern of `px.regex_match` must be a string constant"));
                }
                call(func, take(vals), Boolean)
            }
            F::Length => {
                expect(self, 0, &[String])?;
                call(func, take(vals), Int64)
            }
            F::ToLower | F::ToUpper | F::Trim => {
                expect(self, 0, &[String])?;
                call(func, take(vals), String)
            }
            F::Substring => {
                expect(self, 0, &[String])?;
                expect(self, 1, &[Int64])?;
                expect(self, 2, &[Int64])?;
                call(func, take(vals), String)
            }
            F::Abs => {
                expect(self, 0, &[Int64, Float64])?;
                let ty = vals[0].0.ty;
                call(func, take(vals), ty)
            }
            F::Floor | F::Ceil | F::Round | F::Sqrt | F::Exp | F::Ln | F::Log2 | F::Log10 => {
                expect(self, 0, &[Int64, Float64])?;
                let v = take(vals).into_iter().map(|v| v.cast(Float64)).collect();
                call(func, v, Float64)
            }
            F::Pow => {
                expect(self, 0, &[Int64, Float64])?;
                expect(self, 1, &[Int64, Float64])?;
                let v = take(vals).into_iter().map(|v| v.cast(Float64)).collect();
                call(func, v, Float64)
            }
            F::Pluck | F::PluckInt64 | F::PluckFloat64 => {
                expect(self, 0, &[String])?;
                expect(self, 1, &[String])?;
                if !matches!(vals[1].0.literal(), Some(Literal::String(_))) {
                    return Err(self.err(&vals[1].1, format!("the key of `{what}` must be a string constant")));
                }
                let ty = match func {
                    F::Pluck => String,
                    F::PluckInt64 => Int64,
                    _ => Float64,
                };
                call(func, take(vals), ty)
            }
            F::Int64ToTime => {
                expect(self, 0, &[Int64])?;
                take(vals).remove(0).cast(Time)
            }
            F::TimeToInt64 => {
                expect(self, 0, &[Time])?;
                take(vals).remove(0).cast(Int64)
            }
            F::EqualsAny => return Err(self.err(span, "unreachable")),
        })
    }

    fn equals_any(&mut self, what: &str, x: &syntax::Expr, list: &syntax::Expr) -> Result<TExpr> {
        let x = self.eval_scalar(x, "an argument")?;
        let items = match self.eval(list)? {
            Value::List(items) => items,
            other => {
                return Err(self.err(
                    &list.span,
                    format!("argument 2 of `{what}` must be a list of constants, found {}", other.describe()),
                ));
            }
        };
        let mut args = vec![x.expr];
        for (v, span) in items {
            match v {
                Value::Scalar(t) if t.literal().is_some() => {
                    let t = match (x.ty, t.ty) {
                        (a, b) if a == b => t,
                        (PxType::Float64, PxType::Int64) | (PxType::Time, PxType::Int64) => t.cast(x.ty),
                        (a, b) => return Err(self.err(&span, format!("cannot compare {a} with {b} in `{what}`"))),
                    };
                    args.push(t.expr);
                }
                other => return Err(self.err(&span, format!("`{what}` needs constants, found {}", other.describe()))),
            }
        }
        Ok(TExpr { expr: Expr::Call { func: ScalarFunc::EqualsAny, args }, ty: PxType::Boolean })
    }
}

fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary { op, left: Box::new(l), right: Box::new(r) }
}

fn fold_int(op: BinaryOp, l: TExpr, r: TExpr) -> TExpr {
    if let (Some(Literal::Int(a)), Some(Literal::Int(b))) = (l.literal(), r.literal()) {
        let v = match op {
            BinaryOp::Add => a.checked_add(*b),
            BinaryOp::Sub => a.checked_sub(*b),
            BinaryOp::Mul => a.checked_mul(*b),
            BinaryOp::Mod => a.checked_rem(*b),
            _ => None,
        };
        if let Some(v) = v {
            return TExpr::lit(Literal::Int(v));
        }
    }
    TExpr { ty: l.ty, expr: bin(op, l.expr, r.expr) }
}

fn fold_float(op: BinaryOp, l: TExpr, r: TExpr) -> TExpr {
    if let (Some(Literal::Float(a)), Some(Literal::Float(b))) = (l.literal(), r.literal()) {
        let v = match op {
            BinaryOp::Add => Some(a + b),
            BinaryOp::Sub => Some(a - b),
            BinaryOp::Mul => Some(a * b),
            BinaryOp::Div if *b != 0.0 => Some(a / b),
            _ => None,
        };
        if let Some(v) = v {
            return TExpr::lit(Literal::Float(v));
        }
    }
    TExpr { ty: PxType::Float64, expr: bin(op, l.expr, r.expr) }
}

fn map_column(frame: &Frame, column: &str, value: TExpr) -> Frame {
    let mut columns = frame.columns.clone();
    let def = ColumnDef { name: column.to_string(), ty: value.ty };
    match columns.iter_mut().find(|c| c.name == column) {
        Some(c) => *c = def,
        None => columns.push(def),
    }
    let plan = Plan::Map { input: Box::new(frame.plan.clone()), column: column.to_string(), expr: value.expr };
    frame.wrap(plan, columns)
}

fn project(frame: &Frame, columns: Vec<String>) -> Frame {
    let defs = columns.iter().filter_map(|c| frame.column(c).cloned()).collect();
    let plan = Plan::Project { input: Box::new(frame.plan.clone()), columns };
    frame.wrap(plan, defs)
}
