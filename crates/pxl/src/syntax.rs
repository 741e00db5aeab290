//! PxL syntax tree and its lowering from the Python parser.
//!
//! Owns the crate's own AST ([`Stmt`], [`Expr`]) and the single place where `ruff_python_parser`
//! and `ruff_python_ast` are used: parse errors become [`Diagnostic`]s, and the Python AST is
//! lowered to the subset PxL accepts. Must not resolve names, types or tables (the checker
//! does), and must not leak ruff types beyond this module: its API is unstable.

use std::ops::Range;

use ruff_python_ast as py;
use ruff_python_parser::parse_unchecked_source;
use ruff_text_size::Ranged;

use crate::diagnostic::Diagnostic;

/// Byte span in the source.
pub(crate) type Span = Range<usize>;

/// A name with its span.
#[derive(Debug, Clone)]
pub(crate) struct Ident {
    pub name: String,
    pub span: Span,
}

/// A statement PxL accepts.
#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    /// `import px` (module names with spans).
    Import(Vec<Ident>),
    /// `target = value`.
    Assign { target: Target, value: Expr },
    /// An expression evaluated for its effect (`px.display(...)`).
    Expr(Expr),
    /// `def name(params): body`.
    FunctionDef(std::rc::Rc<FunctionDef>),
    /// `return value`.
    Return { value: Option<Expr>, span: Span },
    /// `pass`.
    Pass,
    /// Python syntax PxL does not accept.
    Unsupported { what: &'static str, span: Span },
}

/// A user function (Pixie's form B).
#[derive(Debug, Clone)]
pub(crate) struct FunctionDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Vec<Stmt>,
}

/// One function parameter.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
    /// The annotation's type, which an `exec_funcs` caller's string argument is converted to.
    pub kind: ParamKind,
}

/// What a parameter annotation asks an `exec_funcs` argument to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamKind {
    /// `str`, a semantic type (`px.Service`, `px.Pod`, ...) or no annotation: the text as it is.
    Str,
    /// `int`.
    Int,
    /// `float`.
    Float,
    /// `bool`.
    Bool,
}

/// Left-hand side of an assignment.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `name = ...`
    Name(Ident),
    /// `obj.attr = ...`
    Attr { obj: Expr, attr: Ident },
    /// `obj[key] = ...`
    Index { obj: Expr, key: Expr },
    /// Anything else.
    Unsupported(Span),
}

/// An expression with its span.
#[derive(Debug, Clone)]
pub(crate) struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// Binary operators on values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    Eq,
    NotEq,
    Lt,
    LtE,
    Gt,
    GtE,
    And,
    Or,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Not,
    Invert,
    Neg,
    Plus,
}

/// Expression forms PxL accepts.
#[derive(Debug, Clone)]
pub(crate) enum ExprKind {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
    List(Vec<Expr>),
    Tuple(Vec<Expr>),
    /// `{key: value, ...}` (`df.rename`'s mapping).
    Dict(Vec<(Expr, Expr)>),
    Attr {
        obj: Box<Expr>,
        attr: Ident,
    },
    Index {
        obj: Box<Expr>,
        key: Box<Expr>,
    },
    Call {
        func: Box<Expr>,
        args: Vec<Expr>,
        kwargs: Vec<(Ident, Expr)>,
    },
    Binary {
        op: BinOp,
        op_span: Span,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Unary {
        op: UnOp,
        operand: Box<Expr>,
    },
    Unsupported(&'static str),
}

/// Deepest expression nesting accepted. PxL scripts stay far below it; the limit keeps the
/// recursive lowering and checking from exhausting the stack on hostile input.
const MAX_DEPTH: usize = 64;

/// Parses `source` into PxL statements, or returns every syntax error.
pub(crate) fn parse(source: &str) -> Result<Vec<Stmt>, Vec<Diagnostic>> {
    if let Some(at) = too_deep_brackets(source) {
        return Err(vec![Diagnostic::new(
            source,
            at..at + 1,
            format!("brackets nest more than {MAX_DEPTH} levels deep"),
        )]);
    }
    let parsed = parse_unchecked_source(source, py::PySourceType::Python);
    // Pixie's parser accepts a missing comma between call arguments (several of its bundled scripts
    // have one), so the recovered tree is used when that is the only kind of error.
    let tolerated = |e: &ruff_python_parser::ParseError| e.error.to_string() == "Expected `,`, found name";
    if !parsed.errors().iter().all(tolerated) {
        return Err(parsed
            .errors()
            .iter()
            .map(|e| {
                let r = e.range();
                let (start, end) = (r.start().to_usize(), r.end().to_usize());
                Diagnostic::new(source, start..end, format!("syntax error: {}", e.error))
            })
            .collect());
    }
    Ok(parsed.syntax().body.iter().map(lower_stmt).collect())
}

/// The offset of the first bracket nested deeper than [`MAX_DEPTH`] (strings and comments
/// are not skipped: a false alarm needs 64 unbalanced brackets in a string).
fn too_deep_brackets(source: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, b) in source.bytes().enumerate() {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(i);
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn span_of<T: Ranged>(node: &T) -> Span {
    let r = node.range();
    r.start().to_usize()..r.end().to_usize()
}

fn ident(id: &py::Identifier) -> Ident {
    Ident { name: id.id.as_str().to_string(), span: span_of(id) }
}

fn lower_stmt(stmt: &py::Stmt) -> Stmt {
    match stmt {
        py::Stmt::Import(s) => Stmt::Import(
            s.names.iter().map(|a| Ident { name: a.name.id.as_str().to_string(), span: span_of(&a.name) }).collect(),
        ),
        py::Stmt::Assign(s) => {
            if s.targets.len() != 1 {
                return Stmt::Unsupported { what: "chained assignment", span: span_of(s) };
            }
            Stmt::Assign { target: lower_target(&s.targets[0]), value: lower_expr(&s.value) }
        }
        py::Stmt::AnnAssign(s) => match &s.value {
            Some(v) => Stmt::Assign { target: lower_target(&s.target), value: lower_expr(v) },
            None => Stmt::Pass,
        },
        py::Stmt::Expr(s) => match s.value.as_ref() {
            // Docstrings and bare strings are comments.
            py::Expr::StringLiteral(_) => Stmt::Pass,
            v => Stmt::Expr(lower_expr(v)),
        },
        py::Stmt::FunctionDef(f) => lower_function(f),
        py::Stmt::Return(r) => Stmt::Return { value: r.value.as_deref().map(lower_expr), span: span_of(r) },
        py::Stmt::Pass(_) => Stmt::Pass,
        py::Stmt::ImportFrom(s) => Stmt::Unsupported { what: "`from ... import`", span: span_of(s) },
        py::Stmt::If(s) => Stmt::Unsupported { what: "`if` statements", span: span_of(s) },
        py::Stmt::For(s) => Stmt::Unsupported { what: "`for` loops", span: span_of(s) },
        py::Stmt::While(s) => Stmt::Unsupported { what: "`while` loops", span: span_of(s) },
        py::Stmt::ClassDef(s) => Stmt::Unsupported { what: "classes", span: span_of(s) },
        py::Stmt::AugAssign(s) => Stmt::Unsupported { what: "augmented assignment", span: span_of(s) },
        other => Stmt::Unsupported { what: "this statement", span: span_of(other) },
    }
}

fn lower_function(f: &py::StmtFunctionDef) -> Stmt {
    let p = &f.parameters;
    if p.vararg.is_some() || p.kwarg.is_some() || !p.posonlyargs.is_empty() || f.is_async {
        return Stmt::Unsupported { what: "this function signature", span: span_of(&f.name) };
    }
    let params = p
        .args
        .iter()
        .chain(p.kwonlyargs.iter())
        .map(|a| Param {
            name: ident(&a.parameter.name),
            default: a.default.as_deref().map(lower_expr),
            kind: param_kind(a.parameter.annotation.as_deref()),
        })
        .collect();
    // Decorators (`@px.vis.vega`) only matter to the UI.
    Stmt::FunctionDef(std::rc::Rc::new(FunctionDef {
        name: ident(&f.name),
        params,
        body: f.body.iter().map(lower_stmt).collect(),
    }))
}

/// `int`, `float` and `bool` annotations convert; everything else (`str`, `px.Service`) stays text.
fn param_kind(annotation: Option<&py::Expr>) -> ParamKind {
    match annotation {
        Some(py::Expr::Name(n)) => match n.id.as_str() {
            "int" => ParamKind::Int,
            "float" => ParamKind::Float,
            "bool" => ParamKind::Bool,
            _ => ParamKind::Str,
        },
        _ => ParamKind::Str,
    }
}

fn lower_target(e: &py::Expr) -> Target {
    match e {
        py::Expr::Name(n) => Target::Name(Ident { name: n.id.as_str().to_string(), span: span_of(n) }),
        py::Expr::Attribute(a) => Target::Attr { obj: lower_expr(&a.value), attr: ident(&a.attr) },
        py::Expr::Subscript(s) => Target::Index { obj: lower_expr(&s.value), key: lower_expr(&s.slice) },
        other => Target::Unsupported(span_of(other)),
    }
}

fn boxed(e: &py::Expr, depth: usize) -> Box<Expr> {
    Box::new(lower_expr_at(e, depth + 1))
}

fn lower_expr(e: &py::Expr) -> Expr {
    lower_expr_at(e, 0)
}

fn lower_expr_at(e: &py::Expr, depth: usize) -> Expr {
    let span = span_of(e);
    if depth > MAX_DEPTH {
        return Expr { kind: ExprKind::Unsupported("expressions nested this deeply"), span };
    }
    let d = depth;
    let kind = match e {
        py::Expr::Name(n) => ExprKind::Name(n.id.as_str().to_string()),
        py::Expr::NumberLiteral(n) => match &n.value {
            py::Number::Int(i) => match i.as_i64() {
                Some(v) => ExprKind::Int(v),
                None => ExprKind::Unsupported("integers wider than 64 bits"),
            },
            py::Number::Float(f) => ExprKind::Float(*f),
            py::Number::Complex { .. } => ExprKind::Unsupported("complex numbers"),
        },
        py::Expr::StringLiteral(s) => ExprKind::Str(s.value.to_str().to_string()),
        py::Expr::BooleanLiteral(b) => ExprKind::Bool(b.value),
        py::Expr::NoneLiteral(_) => ExprKind::None,
        py::Expr::List(l) => ExprKind::List(l.elts.iter().map(|x| lower_expr_at(x, d + 1)).collect()),
        py::Expr::Tuple(t) => ExprKind::Tuple(t.elts.iter().map(|x| lower_expr_at(x, d + 1)).collect()),
        py::Expr::Attribute(a) => ExprKind::Attr { obj: boxed(&a.value, d), attr: ident(&a.attr) },
        py::Expr::Subscript(s) => ExprKind::Index { obj: boxed(&s.value, d), key: boxed(&s.slice, d) },
        py::Expr::Call(c) => {
            let mut kwargs = Vec::new();
            for k in &c.arguments.keywords {
                match &k.arg {
                    Some(name) => kwargs.push((ident(name), lower_expr_at(&k.value, d + 1))),
                    None => {
                        return Expr { kind: ExprKind::Unsupported("`**kwargs` arguments"), span: span_of(k) };
                    }
                }
            }
            let mut args = Vec::new();
            for a in c.arguments.args.iter() {
                if let py::Expr::Starred(s) = a {
                    return Expr { kind: ExprKind::Unsupported("`*args` arguments"), span: span_of(s) };
                }
                args.push(lower_expr_at(a, d + 1));
            }
            ExprKind::Call { func: boxed(&c.func, d), args, kwargs }
        }
        py::Expr::BinOp(b) => {
            let op = match b.op {
                py::Operator::Add => BinOp::Add,
                py::Operator::Sub => BinOp::Sub,
                py::Operator::Mult => BinOp::Mul,
                py::Operator::Div => BinOp::Div,
                py::Operator::Mod => BinOp::Mod,
                py::Operator::BitAnd => BinOp::BitAnd,
                py::Operator::BitOr => BinOp::BitOr,
                _ => return Expr { kind: ExprKind::Unsupported("this operator"), span },
            };
            let op_span = between(&b.left, &b.right);
            ExprKind::Binary { op, op_span, left: boxed(&b.left, d), right: boxed(&b.right, d) }
        }
        py::Expr::BoolOp(b) => {
            let op = match b.op {
                py::BoolOp::And => BinOp::And,
                py::BoolOp::Or => BinOp::Or,
            };
            if b.values.len() > MAX_DEPTH {
                return Expr { kind: ExprKind::Unsupported("boolean chains this long"), span };
            }
            let mut values = b.values.iter();
            let Some(first) = values.next() else {
                return Expr { kind: ExprKind::Unsupported("an empty boolean expression"), span };
            };
            let mut acc = lower_expr_at(first, d + 1);
            let mut prev = first;
            for v in values {
                let op_span = between(prev, v);
                let s = acc.span.start..span_of(v).end;
                acc = Expr { kind: ExprKind::Binary { op, op_span, left: Box::new(acc), right: boxed(v, d) }, span: s };
                prev = v;
            }
            return acc;
        }
        py::Expr::UnaryOp(u) => {
            let op = match u.op {
                py::UnaryOp::Not => UnOp::Not,
                py::UnaryOp::Invert => UnOp::Invert,
                py::UnaryOp::USub => UnOp::Neg,
                py::UnaryOp::UAdd => UnOp::Plus,
            };
            ExprKind::Unary { op, operand: boxed(&u.operand, d) }
        }
        py::Expr::Compare(c) => return lower_compare(c, d),
        py::Expr::FString(_) => ExprKind::Unsupported("f-strings"),
        py::Expr::Dict(dict) => {
            let items: Option<Vec<(Expr, Expr)>> = dict
                .items
                .iter()
                .map(|item| item.key.as_ref().map(|k| (lower_expr_at(k, d + 1), lower_expr_at(&item.value, d + 1))))
                .collect();
            items.map_or(ExprKind::Unsupported("`**` in dict literals"), ExprKind::Dict)
        }
        py::Expr::Lambda(_) => ExprKind::Unsupported("lambdas"),
        py::Expr::If(_) => ExprKind::Unsupported("conditional expressions (use `px.select`)"),
        py::Expr::ListComp(_) | py::Expr::SetComp(_) | py::Expr::DictComp(_) | py::Expr::Generator(_) => {
            ExprKind::Unsupported("comprehensions")
        }
        py::Expr::Slice(_) => ExprKind::Unsupported("slices"),
        _ => ExprKind::Unsupported("this expression"),
    };
    Expr { kind, span }
}

/// The text between two operands, where the operator token sits (trimmed by the checker).
fn between(left: &py::Expr, right: &py::Expr) -> Span {
    span_of(left).end..span_of(right).start
}

/// `a < b < c` becomes `(a < b) and (b < c)`.
fn lower_compare(c: &py::ExprCompare, d: usize) -> Expr {
    if c.ops.len() > MAX_DEPTH {
        return Expr { kind: ExprKind::Unsupported("comparison chains this long"), span: span_of(c) };
    }
    let mut acc: Option<Expr> = None;
    let mut left: &py::Expr = &c.left;
    for (op, right) in c.ops.iter().zip(c.comparators.iter()) {
        let bin = match op {
            py::CmpOp::Eq => BinOp::Eq,
            py::CmpOp::NotEq => BinOp::NotEq,
            py::CmpOp::Lt => BinOp::Lt,
            py::CmpOp::LtE => BinOp::LtE,
            py::CmpOp::Gt => BinOp::Gt,
            py::CmpOp::GtE => BinOp::GtE,
            _ => {
                return Expr {
                    kind: ExprKind::Unsupported("`in`/`is` comparisons (use `px.equals_any` or `==`)"),
                    span: span_of(c),
                };
            }
        };
        let op_span = between(left, right);
        let cmp = Expr {
            kind: ExprKind::Binary { op: bin, op_span: op_span.clone(), left: boxed(left, d), right: boxed(right, d) },
            span: span_of(left).start..span_of(right).end,
        };
        acc = Some(match acc {
            None => cmp,
            Some(prev) => {
                let s = prev.span.start..cmp.span.end;
                Expr {
                    kind: ExprKind::Binary { op: BinOp::And, op_span, left: Box::new(prev), right: Box::new(cmp) },
                    span: s,
                }
            }
        });
        left = right;
    }
    acc.unwrap_or(Expr { kind: ExprKind::Unsupported("an empty comparison"), span: span_of(c) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let errs = parse("import px\ndf = px.DataFrame('http_events'\n").expect_err("must fail");
        assert!(!errs.is_empty());
        assert!(errs[0].message.starts_with("syntax error"), "{}", errs[0].message);
        assert_eq!(errs[0].line, 3, "{errs:?}");
    }

    #[test]
    fn lowers_assignments_and_calls() {
        let stmts = parse("import px\ndf = px.DataFrame('t')\ndf.x = df.a + 1\n").expect("parses");
        assert_eq!(stmts.len(), 3);
        assert!(matches!(&stmts[2], Stmt::Assign { target: Target::Attr { .. }, .. }));
    }
}
