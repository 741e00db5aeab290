//! Expressions: evaluating syntax to values, column references, indexing, and the type rules of
//! operators (numeric promotion, time arithmetic spelled with explicit conversions, constant
//! folding).
//!
//! Owns every rule about what `a op b`, `-a`, `df.col` and `df[...]` mean. Must not know dataframe
//! methods (`frame`) or `px.*` functions (`calls`, `functions`).

use super::frame::{FRAME_METHODS, project};
use super::value::{Frame, TExpr, Value};
use super::{Checker, Result};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::plan::{BinaryOp, ColumnDef, Expr, Literal, PxType};
use crate::syntax::{self, BinOp, ExprKind, Ident, Span, UnOp};

impl Checker<'_> {
    pub(super) fn eval(&mut self, e: &syntax::Expr) -> Result<Value> {
        match &e.kind {
            ExprKind::Name(n) => match self.lookup(n) {
                // The poison marker (an empty message): the failure was reported where it happened.
                Some(Value::Poisoned) => Err(Box::new(Diagnostic::new(self.source, e.span.clone(), ""))),
                Some(v) => Ok(v.clone()),
                None => Err(self.undefined_name(n, &e.span)),
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
                // `keys + ['pod']`: lists concatenate, as in Python (group keys built up by helpers).
                if *op == BinOp::Add
                    && let ExprKind::List(_) | ExprKind::Name(_) = &left.kind
                    && let Value::List(mut l) = self.eval(left)?
                {
                    return match self.eval(right)? {
                        Value::List(r) => {
                            l.extend(r);
                            Ok(Value::List(l))
                        }
                        other => {
                            Err(self
                                .err(&right.span, format!("can only add a list to a list, found {}", other.describe())))
                        }
                    };
                }
                let l = self.eval_scalar(left, "an operand")?;
                let r = self.eval_scalar(right, "an operand")?;
                let tok = self.op_token(op_span, &e.span);
                Ok(Value::Scalar(self.binary(*op, l, r, &tok)?))
            }
            ExprKind::Unary { op, operand } => {
                let v = self.eval_scalar(operand, "an operand")?;
                Ok(Value::Scalar(self.unary(*op, v, &e.span)?))
            }
            ExprKind::Dict(_) => {
                Err(self.err(&e.span, "a dict literal is only accepted as the mapping of `df.rename({'old': 'new'})`"))
            }
            ExprKind::Unsupported(what) => Err(self.err(&e.span, format!("{what} are not supported in PxL"))),
        }
    }

    /// Evaluates `e` and requires a column expression or constant.
    pub(super) fn eval_scalar(&mut self, e: &syntax::Expr, role: &str) -> Result<TExpr> {
        match self.eval(e)? {
            Value::Scalar(t) => Ok(t),
            other => Err(self.err(
                &e.span,
                format!("expected {role} (a column expression or a constant), found {}", other.describe()),
            )),
        }
    }

    pub(super) fn eval_frame(&mut self, e: &syntax::Expr, what: &str) -> Result<Frame> {
        match self.eval(e)? {
            Value::Frame(f) => Ok(f),
            other => Err(self.err(&e.span, format!("{what} expects a dataframe, found {}", other.describe()))),
        }
    }

    pub(super) fn eval_string(&mut self, e: &syntax::Expr, what: &str) -> Result<String> {
        match self.eval(e)? {
            Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(s)), .. }) => Ok(s),
            other => Err(self.err(&e.span, format!("{what} must be a string constant, found {}", other.describe()))),
        }
    }

    pub(super) fn eval_int(&mut self, e: &syntax::Expr, what: &str) -> Result<i64> {
        match self.eval(e)? {
            Value::Scalar(TExpr { expr: Expr::Literal(Literal::Int(i)), .. }) => Ok(i),
            other => Err(self.err(&e.span, format!("{what} must be an integer constant, found {}", other.describe()))),
        }
    }

    /// One column name or a list of them, each checked against `frame`.
    pub(super) fn eval_column_list(&mut self, e: &syntax::Expr, frame: &Frame, what: &str) -> Result<Vec<String>> {
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

    pub(super) fn require_column<'f>(&self, frame: &'f Frame, name: &str, span: &Span) -> Result<&'f ColumnDef> {
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

    pub(super) fn eval_attr(&mut self, obj: &syntax::Expr, attr: &Ident) -> Result<Value> {
        match self.eval(obj)? {
            Value::Module => {
                self.check_px_name(attr)?;
                Ok(Value::PxAttr(attr.name.clone()))
            }
            Value::Frame(frame) => {
                if attr.name == "ctx" {
                    return Err(self.err(&attr.span, "`ctx` is read by key: `df.ctx['pod']`"));
                }
                if let Some(c) = frame.column(&attr.name) {
                    return Ok(Value::Scalar(TExpr { expr: Expr::Column(c.name.clone()), ty: c.ty }));
                }
                if FRAME_METHODS.contains(&attr.name.as_str()) {
                    return Err(self.err(&attr.span, format!("`{}` is a dataframe method: call it", attr.name)));
                }
                self.require_column(&frame, &attr.name, &attr.span).map(|_| Value::None)
            }
            Value::PxAttr(parent) if parent == "otel" => Err(self.err(
                &attr.span,
                format!("`px.otel.{}` is only accepted inside `px.export(df, px.otel.Data(...))`", attr.name),
            )),
            Value::PxAttr(parent) => {
                Err(self.err(&attr.span, format!("`px.{parent}.{}` is not supported yet", attr.name)))
            }
            Value::Library(m) => {
                Err(self.err(&attr.span, format!("`{}.{}` is a function of the module: call it", m.name(), attr.name)))
            }
            other => Err(self.err(&attr.span, format!("{} has no attribute `{}`", other.describe(), attr.name))),
        }
    }

    pub(super) fn eval_index(&mut self, obj: &syntax::Expr, key: &syntax::Expr) -> Result<Value> {
        // `df.ctx['pod']`: metadata of each row's process.
        if let ExprKind::Attr { obj: inner, attr } = &obj.kind
            && attr.name == "ctx"
        {
            let frame = self.eval_frame(inner, "`ctx`")?;
            return self.ctx_lookup(&frame, key).map(Value::Scalar);
        }
        let frame = match self.eval(obj)? {
            Value::Frame(f) => f,
            other => return Err(self.err(&obj.span, format!("cannot index {}", other.describe()))),
        };
        // The key may be a literal or any constant (`df[col_name]` with `col_name = 'latency'`).
        let is_name = |v: &Value| matches!(v, Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(_)), .. }));
        match self.eval(key)? {
            Value::Scalar(TExpr { expr: Expr::Literal(Literal::String(name)), .. }) => {
                let c = self.require_column(&frame, &name, &key.span)?;
                Ok(Value::Scalar(TExpr { expr: Expr::Column(c.name.clone()), ty: c.ty }))
            }
            Value::List(items) if !items.is_empty() && items.iter().all(|(v, _)| is_name(v)) => {
                let columns = self.eval_column_list(key, &frame, "keeping columns")?;
                Ok(Value::Frame(project(&frame, columns)))
            }
            Value::Scalar(pred) => Ok(Value::Frame(self.filter(&frame, pred, &key.span)?)),
            other => Err(self.err(
                &key.span,
                format!("expected a filter, a column name or a list of them, found {}", other.describe()),
            )),
        }
    }

    /// The operator token inside the gap between two operands, or the whole expression.
    pub(super) fn op_token(&self, gap: &Span, whole: &Span) -> Span {
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

    pub(super) fn binary(&self, op: BinOp, l: TExpr, r: TExpr, tok: &Span) -> Result<TExpr> {
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
                    (String, String) if bop == BinaryOp::Add => match (l.literal(), r.literal()) {
                        (Some(Literal::String(a)), Some(Literal::String(b))) => {
                            Ok(TExpr::lit(Literal::String(format!("{a}{b}"))))
                        }
                        _ => Ok(TExpr {
                            expr: Expr::Call { func: crate::plan::ScalarFunc::Concat, args: vec![l.expr, r.expr] },
                            ty: String,
                        }),
                    },
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

    pub(super) fn unary(&self, op: UnOp, v: TExpr, span: &Span) -> Result<TExpr> {
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
}

pub(super) fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
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
