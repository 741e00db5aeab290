//! PxL, Pixie's Python-like dataframe language: parse, check, and lower to a logical plan.
//!
//! Entry point [`compile`]: source text + a [`Catalog`] of table schemas → a [`Program`] of
//! typed logical [`Plan`]s, one per `px.display`, or [`Diagnostic`]s with line:column spans.
//! Phases: `syntax` (Python parser → own AST; the only module that sees ruff types), `check`
//! (names, types, constant folding → plans), typing scalar `px.` calls from the one
//! registry of functions ([`functions`]), which the engine lowers and `docs/pxl-functions.md` lists.
//!
//! Architecture invariant: no execution and no DataFusion here; the engine crate runs plans.
//! The parser crate's types never appear in this crate's public API.

mod check;
mod diagnostic;
pub mod functions;
pub mod otel;
mod plan;
mod syntax;
mod time;
mod types;

use arrow::datatypes::SchemaRef;

pub use diagnostic::Diagnostic;
/// The bundled `px/*` scripts (`loupe-scripts`), for callers that link the compiler anyway (the
/// cloud's script service lists and validates them). `px` reads `loupe-scripts` directly.
pub use loupe_scripts as bundled;
pub use plan::{
    AggFunc, Aggregation, BinaryOp, ColumnDef, Expr, JoinHow, Literal, Output, PercentileKey, Plan, Program, PxType,
    ScalarFunc, Udtf,
};

/// Pixie's default for `max_output_rows_per_table`.
pub const DEFAULT_MAX_OUTPUT_ROWS: usize = 10_000;

/// Where the compiler looks up tables.
pub trait Catalog {
    /// The Arrow schema of table `name`, if it exists.
    fn table_schema(&self, name: &str) -> Option<SchemaRef>;

    /// Every table name, used for "did you mean" suggestions. Empty by default.
    fn table_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether table `name` is held in one place for a whole cluster (a cron script's results in the query
    /// broker's history) rather than on every data node: a cluster plan scans it there, once. False by default.
    fn held_by_broker(&self, _name: &str) -> bool {
        false
    }
}

impl<F> Catalog for F
where
    F: Fn(&str) -> Option<SchemaRef>,
{
    fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        self(name)
    }
}

/// The tables `loupe_schema` defines, for compiling without a store.
#[derive(Debug, Clone, Copy, Default)]
pub struct SchemaCatalog;

impl Catalog for SchemaCatalog {
    fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        loupe_schema::table(name).map(|t| t.arrow_schema())
    }

    fn table_names(&self) -> Vec<String> {
        loupe_schema::all_tables().iter().map(|t| t.name.to_string()).collect()
    }
}

/// Compile-time inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileOptions {
    /// "Now" in Unix ns: `px.now()` and relative times like `'-5m'` resolve against it.
    pub now_ns: i64,
}

/// One function a caller asks to run (Pixie's `ExecuteScriptRequest.exec_funcs`, made from a vis
/// spec's widgets and global functions): its arguments are strings, converted by the parameters'
/// annotations (`int`, `float`, `bool`; others stay strings), and the dataframe it returns is output
/// `output_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecFunc {
    /// The script's function to call.
    pub name: String,
    /// `(parameter, value)` pairs; parameters left out take their defaults.
    pub args: Vec<(String, String)>,
    /// The output table's name.
    pub output_prefix: String,
}

/// Compiles a PxL script into plans, or returns its diagnostics: syntax errors all at once, else one
/// per failing top-level statement (what depends on a failed assignment reports nothing more).
pub fn compile(source: &str, catalog: &dyn Catalog, options: &CompileOptions) -> Result<Program, Vec<Diagnostic>> {
    compile_with_funcs(source, catalog, options, &[])
}

/// [`compile`], then calls each of `exec_funcs` (a function-form script driven by a vis spec): the
/// outputs are the script's own `px.display`s followed by one per function.
pub fn compile_with_funcs(
    source: &str,
    catalog: &dyn Catalog,
    options: &CompileOptions,
    exec_funcs: &[ExecFunc],
) -> Result<Program, Vec<Diagnostic>> {
    let max_output_rows_per_table = parse_settings(source)?;
    let stmts = syntax::parse(source)?;
    let outputs = check::Checker::new(source, catalog, options).run(&stmts, exec_funcs)?;
    Ok(Program { outputs, max_output_rows_per_table })
}

/// Checks a script as it is saved, before anything runs it: [`compile_with_funcs`], except that a
/// function-form script (one that defines functions and displays nothing itself) is accepted, its
/// functions checked by the calls in `exec_funcs` (a vis spec's, with its variables' defaults).
pub fn check_script(
    source: &str,
    catalog: &dyn Catalog,
    options: &CompileOptions,
    exec_funcs: &[ExecFunc],
) -> Result<(), Vec<Diagnostic>> {
    parse_settings(source)?;
    let stmts = syntax::parse(source)?;
    check::Checker::new(source, catalog, options).allowing_function_form().run(&stmts, exec_funcs).map(|_| ())
}

/// Reads `#px:set key=value` lines; returns `max_output_rows_per_table` when set.
fn parse_settings(source: &str) -> Result<Option<usize>, Vec<Diagnostic>> {
    let mut max_rows = None;
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        let Some(rest) = trimmed.strip_prefix("#px:set") else { continue };
        let at = start + (line.len() - line.trim_start().len());
        for setting in rest.split_whitespace() {
            let Some((key, value)) = setting.split_once('=') else {
                let d = Diagnostic::new(
                    source,
                    at..at + trimmed.len(),
                    format!("invalid setting `{setting}`: expected key=value"),
                );
                return Err(vec![d]);
            };
            if key == "max_output_rows_per_table" {
                match value.parse::<usize>() {
                    Ok(n) => max_rows = Some(n),
                    Err(_) => {
                        let d = Diagnostic::new(
                            source,
                            at..at + trimmed.len(),
                            format!("invalid max_output_rows_per_table `{value}`: expected a non-negative integer"),
                        );
                        return Err(vec![d]);
                    }
                }
            }
        }
    }
    Ok(max_rows)
}

#[cfg(test)]
mod tests;
