//! Library modules a script imports beside `px`: PxL sources bundled with the compiler, whose functions
//! a script calls as `module.function(...)`. Today there is one, `pxviews` (`src/pxviews.pxl`), Loupe's
//! own implementation of the views Pixie's scripts import under that name.
//!
//! Owns loading a module (its `import`s and `def`s become the module's globals) and calling into it: the
//! call's arguments are evaluated in the caller's scope, the body runs against the module's globals and
//! source, and a mistake inside the module is reported at the caller's call, naming the module's line.
//! Must not hold any per-module rule: a module is PxL like any script.

use std::collections::HashMap;
use std::rc::Rc;

use super::value::Value;
use super::{Checker, Result};
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::syntax::{self, Ident, Span, Stmt};

/// A module's source, as shipped in the compiler.
#[derive(Debug)]
pub(crate) struct Library {
    pub(crate) name: &'static str,
    pub(crate) source: &'static str,
}

/// Every importable library module.
pub(crate) const LIBRARIES: &[Library] = &[Library { name: "pxviews", source: include_str!("../pxviews.pxl") }];

/// A module as a script holds it after `import`: its source and globals.
#[derive(Debug)]
pub(super) struct Loaded {
    lib: &'static Library,
    globals: HashMap<String, Value>,
}

impl Loaded {
    /// The module's function names, for messages.
    fn functions(&self) -> impl Iterator<Item = &str> {
        self.globals.iter().filter(|(_, v)| matches!(v, Value::Func(_))).map(|(k, _)| k.as_str())
    }

    pub(super) fn name(&self) -> &'static str {
        self.lib.name
    }
}

impl Checker<'_> {
    /// `import name` of a library module, or `None` when `name` is none.
    pub(super) fn load_library(&self, name: &Ident) -> Option<Result<Value>> {
        let lib = LIBRARIES.iter().find(|l| l.name == name.name)?;
        let stmts = match syntax::parse(lib.source) {
            Ok(s) => s,
            Err(d) => {
                let first = d.first().map_or_else(String::new, |d| format!(": line {}: {}", d.line, d.message));
                return Some(Err(self.err(&name.span, format!("module `{}` does not compile{first}", lib.name))));
            }
        };
        let mut globals = HashMap::new();
        for stmt in &stmts {
            match stmt {
                Stmt::Import(names) => {
                    for n in names {
                        globals.insert(n.name.clone(), Value::Module);
                    }
                }
                Stmt::FunctionDef(f) => {
                    globals.insert(f.name.name.clone(), Value::Func(f.clone()));
                }
                _ => {}
            }
        }
        Some(Ok(Value::Library(Rc::new(Loaded { lib, globals }))))
    }

    /// `module.attr(...)`: calls the module's function `attr`.
    pub(super) fn call_library(
        &mut self,
        module: &Rc<Loaded>,
        attr: &Ident,
        args: &[syntax::Expr],
        kwargs: &[(Ident, syntax::Expr)],
        span: &Span,
    ) -> Result<Value> {
        let qualified = format!("{}.{}", module.name(), attr.name);
        let Some(Value::Func(f)) = module.globals.get(&attr.name) else {
            let mut d = Diagnostic::new(
                self.source,
                attr.span.clone(),
                format!("module `{}` has no function `{}`", module.name(), attr.name),
            );
            if let Some(h) = did_you_mean(&attr.name, module.functions()) {
                d = d.with_help(h);
            }
            return Err(Box::new(d));
        };
        let f = f.clone();
        // Arguments belong to the caller: evaluate them in its scope, against its source.
        let names: Vec<&str> = f.params.iter().map(|p| p.name.name.as_str()).collect();
        let bound = self.bind_args(&qualified, &names, 0, args, kwargs, span)?;
        let mut given = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            given.push(match bound.get(i) {
                Some(e) => Some(self.eval(e)?),
                None => None,
            });
        }
        if let Some(p) = f.params.iter().zip(&given).find(|(p, v)| v.is_none() && p.default.is_none()).map(|(p, _)| p) {
            return Err(self.err(span, format!("`{qualified}` is missing argument `{}`", p.name.name)));
        }
        let caller_scopes = std::mem::replace(&mut self.scopes, vec![module.globals.clone()]);
        let caller_source = std::mem::replace(&mut self.source, module.lib.source);
        let result = (|| {
            let mut locals = HashMap::new();
            for (p, v) in f.params.iter().zip(given) {
                let v = match (v, &p.default) {
                    (Some(v), _) => v,
                    (None, Some(e)) => self.eval(e)?,
                    (None, None) => Value::None,
                };
                locals.insert(p.name.name.clone(), v);
            }
            self.scopes.push(locals);
            self.exec_block(&f.body)
        })();
        self.scopes = caller_scopes;
        self.source = caller_source;
        result.map_err(|inner| {
            if inner.message.is_empty() {
                return inner;
            }
            // The caller cannot fix the module: say where the call failed and what the module met there.
            let mut d = Diagnostic::new(self.source, span.clone(), format!("`{qualified}`: {}", inner.message))
                .with_note(format!("in Loupe's `{}` module, line {}", module.name(), inner.line));
            d.helps = inner.helps;
            Box::new(d)
        })
    }
}
