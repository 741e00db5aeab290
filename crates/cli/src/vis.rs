//! Vis specs for `px run --vis`: reads Pixie's `vis.json` (`px.vispb.Vis` in proto3 JSON) and the
//! script arguments after `--`, and turns them into the request's `exec_funcs`, as Pixie's CLI does.
//!
//! Owns the variables (types, defaults, valid values), binding function arguments to variables or
//! literals, and the output names: a global function's `outputName`, a widget's `name` (or
//! `widget_<index>` when it has none). Widgets that read a global function's output add no call.
//! Display specs are ignored here (they matter to a UI, not to the tables `px` prints). Must not
//! compile PxL: the server converts each value by the function's parameter annotation.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use loupe_proto::vizierpb::{ExecFunc, exec_func::ArgValue};
use serde::Deserialize;

/// The parts of a vis spec that decide what runs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vis {
    #[serde(default)]
    variables: Vec<Variable>,
    #[serde(default)]
    global_funcs: Vec<GlobalFunc>,
    #[serde(default)]
    widgets: Vec<Widget>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Variable {
    name: String,
    #[serde(rename = "type", default)]
    ty: String,
    default_value: Option<String>,
    #[serde(default)]
    valid_values: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GlobalFunc {
    output_name: String,
    func: Func,
}

#[derive(Debug, Deserialize)]
struct Func {
    name: String,
    #[serde(default)]
    args: Vec<FuncArg>,
}

#[derive(Debug, Deserialize)]
struct FuncArg {
    name: String,
    value: Option<String>,
    variable: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Widget {
    name: Option<String>,
    func: Option<Func>,
}

/// Reads `--name=value` and `--name value` pairs (what follows `--` on the command line).
pub fn parse_script_args(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            bail!("script argument {a:?} must be --name=value or --name value");
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let v = it.next().with_context(|| format!("script argument --{flag} has no value"))?;
                (flag.to_string(), v.clone())
            }
        };
        if out.insert(name.clone(), value).is_some() {
            bail!("script argument --{name} is given twice");
        }
    }
    Ok(out)
}

/// The `exec_funcs` of vis spec `json` with the script arguments `args` (variable name → value):
/// global functions first, then each widget that calls a function, in the spec's order.
pub fn exec_funcs(json: &str, args: &BTreeMap<String, String>) -> Result<Vec<ExecFunc>> {
    let vis: Vis = serde_json::from_str(json).context("the vis spec is not valid vis.json")?;
    let values = variable_values(&vis.variables, args)?;
    let mut out = Vec::new();
    for g in &vis.global_funcs {
        out.push(call(&g.func, &g.output_name, &values)?);
    }
    for (i, w) in vis.widgets.iter().enumerate() {
        let Some(f) = &w.func else { continue };
        let name = match w.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!("widget_{i}"),
        };
        out.push(call(f, &name, &values)?);
    }
    Ok(out)
}

/// Each variable's value: the argument, else its default; checked against its type and valid values.
fn variable_values(vars: &[Variable], args: &BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    if let Some(unknown) = args.keys().find(|k| !vars.iter().any(|v| &v.name == *k)) {
        let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        bail!("unknown script argument --{unknown}; the vis spec's variables are: {}", names.join(", "));
    }
    let mut out = BTreeMap::new();
    for v in vars {
        let value = match (args.get(&v.name), &v.default_value) {
            (Some(a), _) => a.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => bail!("missing script argument --{} ({})", v.name, v.ty),
        };
        let ok = match v.ty.as_str() {
            "PX_INT64" => value.trim().parse::<i64>().is_ok(),
            "PX_FLOAT64" => value.trim().parse::<f64>().is_ok(),
            "PX_BOOLEAN" => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false" | "1" | "0"),
            _ => true,
        };
        if !ok {
            bail!("script argument --{} must be {}, found {value:?}", v.name, v.ty);
        }
        if !v.valid_values.is_empty() && !v.valid_values.contains(&value) {
            bail!("script argument --{} must be one of {}, found {value:?}", v.name, v.valid_values.join(", "));
        }
        out.insert(v.name.clone(), value);
    }
    Ok(out)
}

fn call(f: &Func, output: &str, values: &BTreeMap<String, String>) -> Result<ExecFunc> {
    let mut arg_values = Vec::with_capacity(f.args.len());
    for a in &f.args {
        let value = match (&a.value, &a.variable) {
            (_, Some(var)) => values
                .get(var)
                .with_context(|| {
                    format!(
                        "`{}` argument `{}` reads variable {var:?}, which the vis spec does not declare",
                        f.name, a.name
                    )
                })?
                .clone(),
            (Some(v), None) => v.clone(),
            (None, None) => bail!("`{}` argument `{}` has neither a value nor a variable", f.name, a.name),
        };
        arg_values.push(ArgValue { name: a.name.clone(), value });
    }
    Ok(ExecFunc { func_name: f.name.clone(), arg_values, output_table_prefix: output.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"{
      "variables": [
        {"name": "start_time", "type": "PX_STRING", "defaultValue": "-5m"},
        {"name": "svc", "type": "PX_SERVICE", "description": "no default: required"},
        {"name": "n", "type": "PX_INT64", "defaultValue": "10"},
        {"name": "mode", "type": "PX_STRING", "defaultValue": "a", "validValues": ["a", "b"]}
      ],
      "globalFuncs": [
        {"outputName": "shared", "func": {"name": "stats", "args": [{"name": "start_time", "variable": "start_time"}]}}
      ],
      "widgets": [
        {"name": "Table", "func": {"name": "rows", "args": [
          {"name": "svc", "variable": "svc"}, {"name": "limit", "variable": "n"}, {"name": "kind", "value": "x"}]},
         "displaySpec": {"@type": "types.px.dev/px.vispb.Table"}},
        {"name": "Chart", "globalFuncOutputName": "shared"},
        {"func": {"name": "rows", "args": []}}
      ]
    }"#;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn flat(funcs: &[ExecFunc]) -> Vec<String> {
        funcs
            .iter()
            .map(|f| {
                let a: Vec<String> = f.arg_values.iter().map(|a| format!("{}={}", a.name, a.value)).collect();
                format!("{}:{}({})", f.output_table_prefix, f.func_name, a.join(","))
            })
            .collect()
    }

    #[test]
    fn globals_then_widgets_with_defaults_and_arguments() {
        let funcs = exec_funcs(SPEC, &args(&[("svc", "ns/cart"), ("start_time", "-10m")])).expect("ok");
        assert_eq!(
            flat(&funcs),
            ["shared:stats(start_time=-10m)", "Table:rows(svc=ns/cart,limit=10,kind=x)", "widget_2:rows()"]
        );
    }

    #[test]
    fn wrong_arguments_say_which_and_why() {
        let err = |a: &[(&str, &str)]| exec_funcs(SPEC, &args(a)).expect_err("fails").to_string();
        assert_eq!(err(&[]), "missing script argument --svc (PX_SERVICE)");
        assert_eq!(err(&[("svc", "x"), ("n", "ten")]), "script argument --n must be PX_INT64, found \"ten\"");
        assert_eq!(err(&[("svc", "x"), ("mode", "c")]), "script argument --mode must be one of a, b, found \"c\"");
        assert_eq!(
            err(&[("svc", "x"), ("nope", "1")]),
            "unknown script argument --nope; the vis spec's variables are: start_time, svc, n, mode"
        );
        let bad = exec_funcs("{\"widgets\": 3}", &args(&[])).expect_err("fails");
        assert_eq!(bad.to_string(), "the vis spec is not valid vis.json");
    }

    #[test]
    fn script_arguments_take_both_spellings() {
        let v: Vec<String> = ["--start_time=-10m", "--svc", "x", "--empty="].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse_script_args(&v).expect("ok"), args(&[("start_time", "-10m"), ("svc", "x"), ("empty", "")]));
        let e = parse_script_args(&["svc".to_string()]).expect_err("fails").to_string();
        assert_eq!(e, "script argument \"svc\" must be --name=value or --name value");
        let e = parse_script_args(&["--a=1".to_string(), "--a=2".to_string()]).expect_err("fails").to_string();
        assert_eq!(e, "script argument --a is given twice");
    }
}
