//! Scalar `px.` functions, typed from their declarations in the registry (`crate::functions`):
//! arity, accepted argument types, constant arguments, conversions and the result type all come
//! from the function's entry; its [`Rule`] says how the call is built.
//!
//! Owns reading a declaration against a call and the few rules a signature cannot say (`bin`'s
//! time and float spellings, `equals_any`'s list of constants, conversions folded for constants).
//! Must not name individual functions outside those rules: a new function is a registry entry.

use super::expr::bin;
use super::value::{Frame, TExpr, Value};
use super::{Checker, Result};
use crate::functions::{Function, ParamType, Returns, Rule};
use crate::plan::{BinaryOp, Expr, PxType, ScalarFunc};
use crate::syntax::{self, Span};

fn call(func: ScalarFunc, args: Vec<TExpr>, ty: PxType) -> TExpr {
    TExpr { expr: Expr::Call { func, args: args.into_iter().map(|a| a.expr).collect() }, ty }
}

/// `ctx` keys (Pixie's, with their aliases) and the `upid_to_*` function each one is.
const CTX_KEYS: &[(&str, ScalarFunc)] = &[
    ("service_name", ScalarFunc::UpidToServiceName),
    ("service", ScalarFunc::UpidToServiceName),
    ("service_id", ScalarFunc::UpidToServiceId),
    ("pod_name", ScalarFunc::UpidToPodName),
    ("pod", ScalarFunc::UpidToPodName),
    ("pod_id", ScalarFunc::UpidToPodId),
    ("namespace", ScalarFunc::UpidToNamespace),
    ("node_name", ScalarFunc::UpidToNodeName),
    ("node", ScalarFunc::UpidToNodeName),
    ("hostname", ScalarFunc::UpidToHostname),
    ("host", ScalarFunc::UpidToHostname),
    ("container_name", ScalarFunc::UpidToContainerName),
    ("container", ScalarFunc::UpidToContainerName),
    ("container_id", ScalarFunc::UpidToContainerId),
    ("deployment_name", ScalarFunc::UpidToDeploymentName),
    ("deployment", ScalarFunc::UpidToDeploymentName),
    ("deployment_id", ScalarFunc::UpidToDeploymentId),
    ("replicaset_name", ScalarFunc::UpidToReplicasetName),
    ("replica_set", ScalarFunc::UpidToReplicasetName),
    ("replicaset_id", ScalarFunc::UpidToReplicasetId),
    ("cmdline", ScalarFunc::UpidToCmdline),
    ("cmd", ScalarFunc::UpidToCmdline),
    ("asid", ScalarFunc::UpidToAsid),
    ("pid", ScalarFunc::UpidToPid),
];

impl Checker<'_> {
    /// `df.ctx['key']`: the key's `upid_to_*` function of the frame's `upid` column (Pixie's rewrite).
    pub(super) fn ctx_lookup(&mut self, frame: &Frame, key: &syntax::Expr) -> Result<TExpr> {
        let name = self.eval_string(key, "the `ctx` key")?;
        let Some(&(_, func)) = CTX_KEYS.iter().find(|(k, _)| *k == name) else {
            let mut d = crate::diagnostic::Diagnostic::new(
                self.source,
                key.span.clone(),
                format!("unknown `ctx` key `{name}`"),
            );
            if let Some(h) = crate::diagnostic::did_you_mean(&name, CTX_KEYS.iter().map(|(k, _)| *k)) {
                d = d.with_help(h);
            }
            return Err(Box::new(d));
        };
        // Tables keyed by pod rather than process (`network_stats`) answer the pod keys from `pod_id`.
        if frame.column("upid").is_none()
            && let Some(pod_id) = frame.column("pod_id")
        {
            let by_pod = match func {
                ScalarFunc::UpidToPodName => Some(ScalarFunc::PodIdToPodName),
                ScalarFunc::UpidToNamespace => Some(ScalarFunc::PodIdToNamespace),
                ScalarFunc::UpidToServiceName => Some(ScalarFunc::PodIdToServiceName),
                ScalarFunc::UpidToNodeName => Some(ScalarFunc::PodIdToNodeName),
                _ => None,
            };
            if let Some(f) = by_pod {
                let arg = TExpr { expr: Expr::Column(pod_id.name.clone()), ty: pod_id.ty };
                return Ok(call(f, vec![arg], PxType::String));
            }
        }
        let Some(upid) = frame.column("upid") else {
            return Err(self
                .err(&key.span, format!("`ctx['{name}']` needs a `upid` column, which {} does not have", frame.desc)));
        };
        let Returns::Fixed(ty) = func.spec().returns else {
            return Err(self.err(&key.span, format!("`ctx['{name}']` has an inconsistent declaration")));
        };
        let arg = TExpr { expr: Expr::Column(upid.name.clone()), ty: upid.ty };
        Ok(call(func, vec![arg], ty))
    }

    /// A call of the registered function `f` (spelled `what` in messages).
    pub(super) fn scalar_call(
        &mut self,
        f: &'static Function,
        what: &str,
        args: &[syntax::Expr],
        span: &Span,
    ) -> Result<TExpr> {
        let arity = f.params.len();
        if f.rule == Rule::ScriptReference && (args.len() == 2 || args.len() == 3) {
            return self.script_reference(what, args);
        }
        if args.len() != arity {
            let at = args.get(arity).map_or(span.clone(), |a| a.span.clone());
            return Err(self.err(
                &at,
                format!("`{what}` takes {arity} argument{}, found {}", if arity == 1 { "" } else { "s" }, args.len()),
            ));
        }
        if f.rule == Rule::EqualsAny {
            return self.equals_any(what, &args[0], &args[1]);
        }
        let mut vals = Vec::with_capacity(arity);
        let mut spans = Vec::with_capacity(arity);
        for a in args {
            vals.push(self.eval_scalar(a, "an argument")?);
            spans.push(a.span.clone());
        }
        for (i, (param, v)) in f.params.iter().zip(&vals).enumerate() {
            if let ParamType::OneOf(want) = param.ty
                && !want.contains(&v.ty)
            {
                let names: Vec<&str> = want.iter().map(|t| t.name()).collect();
                let message = format!("argument {} of `{what}` must be {}, found {}", i + 1, names.join(" or "), v.ty);
                return Err(self.err(&spans[i], message));
            }
        }
        for (i, (param, v)) in f.params.iter().zip(&vals).enumerate() {
            if param.constant && v.literal().is_none() {
                let kind =
                    if param.ty == ParamType::OneOf(&[PxType::String]) { "a string constant" } else { "a constant" };
                return Err(self.err(&spans[i], format!("the {} of `{what}` must be {kind}", param.name)));
            }
        }
        let mut vals: Vec<TExpr> = vals
            .into_iter()
            .zip(f.params)
            .map(|(v, p)| match p.cast_to {
                Some(t) => v.cast(t),
                None => v,
            })
            .collect();
        if f.rule == Rule::Bin {
            return self.bin(f, vals, span);
        }
        let ty = match f.returns {
            Returns::Fixed(t) => t,
            Returns::SameAs(n) => vals[n].ty,
            Returns::CommonOf(a, b) => {
                let (ta, tb) = (vals[a].ty, vals[b].ty);
                let ty = match (ta, tb) {
                    _ if ta == tb => ta,
                    (PxType::Int64 | PxType::Float64, PxType::Int64 | PxType::Float64) => PxType::Float64,
                    _ => {
                        let (na, nb) = (f.params[a].name, f.params[b].name);
                        return Err(self.err(
                            &spans[b],
                            format!("`{na}` and `{nb}` of `{what}` must have one type, found {ta} and {tb}"),
                        ));
                    }
                };
                vals[a] = vals[a].clone().cast(ty);
                vals[b] = vals[b].clone().cast(ty);
                ty
            }
            // Only rules compute their own type; `functions::tests` holds every declaration to that.
            Returns::ByRule(_) => return Err(self.err(span, format!("`{what}` has an inconsistent declaration"))),
        };
        Ok(match f.rule {
            Rule::Call => call(f.func, vals, ty),
            Rule::Conversion => vals.remove(0).cast(ty),
            Rule::Bin | Rule::EqualsAny | Rule::ScriptReference => {
                return Err(self.err(span, format!("`{what}` has an inconsistent declaration")));
            }
        })
    }

    /// `bin(x, size)`: INT64 buckets call the function, TIME64NS buckets bin the nanoseconds, FLOAT64
    /// buckets are `floor(x / size) * size`.
    fn bin(&self, f: &'static Function, vals: Vec<TExpr>, span: &Span) -> Result<TExpr> {
        use PxType::{Float64, Int64, Time};
        let mut it = vals.into_iter();
        let (Some(x), Some(size)) = (it.next(), it.next()) else {
            return Err(self.err(span, "missing arguments"));
        };
        Ok(match (x.ty, size.ty) {
            (Time, Int64) => call(f.func, vec![x.cast(Int64), size], Int64).cast(Time),
            (Int64, Int64) => call(f.func, vec![x, size], Int64),
            (Time, _) => return Err(self.err(span, "`px.bin` of a time needs an integer bucket size in ns")),
            _ => {
                let (x, size) = (x.cast(Float64), size.cast(Float64));
                let q = TExpr { expr: bin(BinaryOp::Div, x.expr, size.expr.clone()), ty: Float64 };
                let floor = call(ScalarFunc::Floor, vec![q], Float64);
                TExpr { expr: bin(BinaryOp::Mul, floor.expr, size.expr), ty: Float64 }
            }
        })
    }

    /// `px.script_reference(label, script, {'arg': value, ...})`: the call's arguments are the label, the
    /// script, then each argument's name and value, all STRING (values converted).
    fn script_reference(&mut self, what: &str, args: &[syntax::Expr]) -> Result<TExpr> {
        let label = self.eval_scalar(&args[0], "an argument")?.cast(PxType::String);
        let script = self.eval_scalar(&args[1], "an argument")?;
        if script.ty != PxType::String {
            return Err(self.err(&args[1].span, format!("argument 2 of `{what}` must be STRING, found {}", script.ty)));
        }
        let mut out = vec![label.expr, script.expr];
        if let Some(dict) = args.get(2) {
            let syntax::ExprKind::Dict(items) = &dict.kind else {
                return Err(self.err(&dict.span, format!("argument 3 of `{what}` must be a dict literal of arguments")));
            };
            for (k, v) in items {
                let name = self.eval_string(k, "the argument name")?;
                let value = self.eval_scalar(v, "an argument value")?.cast(PxType::String);
                out.push(crate::plan::Expr::Literal(crate::plan::Literal::String(name)));
                out.push(value.expr);
            }
        }
        Ok(TExpr { expr: Expr::Call { func: ScalarFunc::ScriptReference, args: out }, ty: PxType::String })
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
