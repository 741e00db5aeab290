//! The checker: interprets the PxL syntax tree into typed logical plans.
//!
//! PxL is evaluated like Python at compile time: a dataframe variable holds a plan, a column
//! expression holds a typed [`Expr`](crate::Expr). This module owns the interpreter state
//! ([`Checker`]): statements, scopes and names (variables, assignments, user functions and their
//! calls). The rest is split by concern, each module an `impl Checker` block:
//! `expr` (expressions, operators, types, constant folding), `frame` (dataframe operations),
//! `calls` (`px.*` names, argument binding, the `px` module's calls), `functions` (scalar
//! functions, typed from the registry in `crate::functions`), `value` (what names evaluate to) and
//! `diagnostics` (building errors). Must not touch the Python parser (see `syntax`) or execute
//! anything.

mod calls;
mod diagnostics;
mod expr;
mod frame;
mod functions;
mod library;
mod otel;
mod value;

use std::collections::HashMap;
use std::rc::Rc;

use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::plan::Literal;
use crate::plan::Output;
use crate::syntax::{self, ExprKind, FunctionDef, Ident, ParamKind, Span, Stmt, Target};
use crate::{Catalog, CompileOptions, ExecFunc};

use self::frame::map_column;
use self::value::{TExpr, Value};

type Result<T, E = Box<Diagnostic>> = std::result::Result<T, E>;

/// Deepest user-function call chain accepted.
const MAX_CALL_DEPTH: usize = 32;

/// Compile-time interpreter state.
pub(crate) struct Checker<'a> {
    source: &'a str,
    catalog: &'a dyn Catalog,
    now_ns: i64,
    /// Scope stack: index 0 holds globals; a function call pushes its locals.
    scopes: Vec<HashMap<String, Value>>,
    outputs: Vec<Output>,
    defined_functions: bool,
    /// A script that only defines functions is accepted without outputs (see [`crate::check_script`]).
    library: bool,
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
            library: false,
        }
    }

    /// Accepts a script that defines functions and displays nothing: a function-form script checked
    /// before its vis spec calls it.
    pub(crate) fn allowing_function_form(mut self) -> Self {
        self.library = true;
        self
    }
}

impl Checker<'_> {
    /// Runs the whole script, then calls each of `exec_funcs` (a vis spec's functions), and returns
    /// the outputs: the script's own `px.display`s, then one per function, named by its prefix.
    ///
    /// Every failing top-level statement and function call adds its diagnostic and the checker goes on;
    /// a name the failed statement assigned (or whose column it assigned) is then poisoned, so what
    /// follows from it reports nothing more (one mistake, one error).
    pub(crate) fn run(mut self, stmts: &[Stmt], exec_funcs: &[ExecFunc]) -> Result<Vec<Output>, Vec<Diagnostic>> {
        let mut errors: Vec<Diagnostic> = Vec::new();
        let mut keep = |d: Box<Diagnostic>| {
            // An empty message is the poison marker: the real error was reported where it happened.
            if !d.message.is_empty() {
                errors.push(*d);
            }
        };
        for stmt in stmts {
            match self.exec(stmt) {
                Ok(Flow::Next) => {}
                Ok(Flow::Return(_)) => {
                    let span = match stmt {
                        Stmt::Return { span, .. } => span.clone(),
                        _ => 0..0,
                    };
                    keep(self.err(&span, "`return` outside of a function"));
                }
                Err(d) => {
                    keep(d);
                    let poisoned = match stmt {
                        Stmt::Assign { target: Target::Name(id), .. } => Some(id.name.clone()),
                        Stmt::Assign { target: Target::Attr { obj, .. } | Target::Index { obj, .. }, .. } => {
                            match &obj.kind {
                                ExprKind::Name(n) => Some(n.clone()),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(name) = poisoned {
                        self.bind(&name, Value::Poisoned);
                    }
                }
            }
        }
        for call in exec_funcs {
            if let Err(d) = self.exec_func(call) {
                keep(d);
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if self.outputs.is_empty() && !(self.library && self.defined_functions) {
            let mut d = Diagnostic::new(self.source, 0..0, "script has no `px.display` call, so it produces no output");
            if self.defined_functions {
                d = d.with_help("call a function at top level, e.g. `px.display(f('-5m'))`");
            } else {
                d = d.with_help("add `px.display(df)` for each table to return");
            }
            return Err(vec![d]);
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
                    if let Some(lib) = self.load_library(n) {
                        let lib = lib?;
                        self.bind(&n.name, lib);
                        continue;
                    }
                    match n.name.as_str() {
                        "px" | "pl" => self.bind(&n.name, Value::Module),
                        "pxtrace" => {
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
            Target::Index { obj, key } => match self.eval(key)? {
                Value::Scalar(TExpr { expr: crate::plan::Expr::Literal(Literal::String(name)), .. }) => {
                    self.assign_column(obj, &name, &key.span, value)
                }
                _ => Err(self.err(&key.span, "column assignment needs a string column name: `df['name'] = ...`")),
            },
            Target::Unsupported(span) => Err(self.err(span, "can only assign to a name or a dataframe column")),
        }
    }

    fn assign_column(&mut self, obj: &syntax::Expr, column: &str, col_span: &Span, value: &syntax::Expr) -> Result<()> {
        let ExprKind::Name(var) = &obj.kind else {
            return Err(self.err(&obj.span, "can only assign columns of a dataframe variable"));
        };
        // `px.Pod = str`: Pixie's scripts alias semantic types for Python tooling; PxL ignores it.
        if let Some(Value::Module) = self.lookup(var) {
            return Ok(());
        }
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

    /// Calls the script's function `call.name` with the caller's string arguments, each converted
    /// to its parameter's annotated type, and displays the frame it returns as `call.output_prefix`.
    /// Errors point at the function's name (or the script start when it does not exist).
    fn exec_func(&mut self, call: &ExecFunc) -> Result<()> {
        let f = match self.scopes.first().and_then(|s| s.get(&call.name)) {
            Some(Value::Func(f)) => f.clone(),
            _ => {
                let mut d = Diagnostic::new(
                    self.source,
                    0..0,
                    format!("the vis spec calls `{}`, which the script does not define", call.name),
                );
                let funcs = self.scopes[0].iter().filter(|(_, v)| matches!(v, Value::Func(_))).map(|(k, _)| k.as_str());
                if let Some(h) = did_you_mean(&call.name, funcs) {
                    d = d.with_help(h);
                }
                return Err(Box::new(d));
            }
        };
        let at = f.name.span.clone();
        for (name, _) in &call.args {
            if !f.params.iter().any(|p| &p.name.name == name) {
                return Err(self.err(&at, format!("`{}` has no parameter `{name}` (given by the vis spec)", call.name)));
            }
        }
        let mut locals = HashMap::new();
        for p in &f.params {
            let v = match call.args.iter().find(|(n, _)| *n == p.name.name) {
                Some((_, text)) => Value::Scalar(TExpr::lit(self.exec_arg(&call.name, p, text)?)),
                None => match &p.default {
                    Some(e) => self.eval(e)?,
                    None => {
                        return Err(self.err(
                            &at,
                            format!(
                                "`{}` is missing argument `{}`: the vis spec gives no value",
                                call.name, p.name.name
                            ),
                        ));
                    }
                },
            };
            locals.insert(p.name.name.clone(), v);
        }
        if self.scopes.len() > MAX_CALL_DEPTH {
            return Err(self.err(&at, "function calls nest too deeply"));
        }
        self.scopes.push(locals);
        let result = self.exec_block(&f.body);
        self.scopes.pop();
        match result? {
            Value::Frame(frame) => {
                if self.outputs.iter().any(|o| o.name == call.output_prefix) {
                    return Err(self.err(&at, format!("output `{}` is displayed twice", call.output_prefix)));
                }
                self.outputs.push(Output {
                    name: call.output_prefix.clone(),
                    plan: frame.plan,
                    columns: frame.columns,
                    export: None,
                });
                Ok(())
            }
            other => Err(self.err(
                &at,
                format!("`{}` must return a dataframe for the vis spec, found {}", call.name, other.describe()),
            )),
        }
    }

    /// One `exec_funcs` argument, converted by the parameter's annotation (`int`, `float`, `bool`;
    /// anything else stays a string).
    fn exec_arg(&self, func: &str, p: &syntax::Param, text: &str) -> Result<Literal> {
        let bad = |want: &str| {
            self.err(&p.name.span, format!("argument `{}` of `{func}` must be {want}, found `{text}`", p.name.name))
        };
        Ok(match p.kind {
            ParamKind::Str => Literal::String(text.to_string()),
            ParamKind::Int => Literal::Int(text.trim().parse().map_err(|_| bad("an integer"))?),
            ParamKind::Float => Literal::Float(text.trim().parse().map_err(|_| bad("a number"))?),
            ParamKind::Bool => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Literal::Bool(true),
                "false" | "0" => Literal::Bool(false),
                _ => return Err(bad("true or false")),
            },
        })
    }

    /// The "not defined" error for name `n`, with the closest name in scope as help.
    fn undefined_name(&self, n: &str, span: &Span) -> Box<Diagnostic> {
        let mut d = Diagnostic::new(self.source, span.clone(), format!("name `{n}` is not defined"));
        if n == "px" {
            d = d.with_help("add `import px` at the top of the script");
        } else {
            let names: Vec<&str> = self.scopes.iter().flat_map(|s| s.keys().map(String::as_str)).collect();
            if let Some(h) = did_you_mean(n, names) {
                d = d.with_help(h);
            }
        }
        Box::new(d)
    }
}
