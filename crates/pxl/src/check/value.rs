//! What a PxL name or expression evaluates to at compile time: a typed scalar ([`TExpr`]), a
//! dataframe ([`Frame`]: a plan and its columns), the `px` module, a user function, ...
//!
//! Owns these values, their descriptions in messages and type conversions of scalars (constants
//! folded). Must not evaluate syntax or build diagnostics: the checker's other modules do.

use std::rc::Rc;

use crate::plan::{ColumnDef, Expr, Literal, Plan, PxType, ScalarFunc};
use crate::syntax::{FunctionDef, Span};

/// A typed scalar expression.
#[derive(Debug, Clone)]
pub(super) struct TExpr {
    pub(super) expr: Expr,
    pub(super) ty: PxType,
}

impl TExpr {
    pub(super) fn lit(l: Literal) -> TExpr {
        TExpr { ty: l.ty(), expr: Expr::Literal(l) }
    }

    pub(super) fn literal(&self) -> Option<&Literal> {
        match &self.expr {
            Expr::Literal(l) => Some(l),
            _ => None,
        }
    }

    pub(super) fn cast(self, to: PxType) -> TExpr {
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
pub(super) struct Frame {
    pub(super) plan: Plan,
    pub(super) columns: Vec<ColumnDef>,
    /// How messages name it (`table \`http_events\``).
    pub(super) desc: String,
}

impl Frame {
    pub(super) fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    pub(super) fn wrap(&self, plan: Plan, columns: Vec<ColumnDef>) -> Frame {
        Frame { plan, columns, desc: self.desc.clone() }
    }
}

/// What a PxL name or expression evaluates to at compile time.
#[derive(Debug, Clone)]
pub(super) enum Value {
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
    /// An imported library module (`pxviews`).
    Library(Rc<super::library::Loaded>),
    /// A name whose assignment failed (already reported): using it reports nothing more.
    Poisoned,
}

impl Value {
    pub(super) fn describe(&self) -> String {
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
            Value::Library(m) => format!("the `{}` module", m.name()),
            Value::Poisoned => "a value that failed earlier".into(),
        }
    }
}
