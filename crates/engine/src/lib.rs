//! The query engine: runs compiled PxL programs with DataFusion over the table store.
//!
//! Owns [`Engine`] (a store handle plus DataFusion session settings), the catalog the compiler
//! sees ([`StoreCatalog`]), lowering of `loupe_pxl` plans to DataFusion `DataFrame`s (`lower`),
//! and the `px.*` functions DataFusion lacks (`udf`). Must not parse PxL (that is `loupe_pxl`)
//! nor write to the store: it only scans.

mod lower;
mod udf;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use loupe_pxl::{Catalog, CompileOptions, Diagnostic, Program};
use loupe_store::Store;

/// Per-query settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// "Now" in Unix ns for `px.now()` and relative times; `None` reads the clock.
    pub now_ns: Option<i64>,
    /// Row cap per output table (a script's `#px:set max_output_rows_per_table` wins).
    pub max_output_rows: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { now_ns: None, max_output_rows: loupe_pxl::DEFAULT_MAX_OUTPUT_ROWS }
    }
}

/// One result table.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// Name given by `px.display(df, name)`.
    pub name: String,
    /// Column names and types, in script order.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryOutput {
    /// Total rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Errors running a script.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The script does not compile; render each diagnostic for the user.
    #[error("script does not compile: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Compile(Vec<Diagnostic>),
    /// DataFusion failed while planning or running a plan.
    #[error("query execution failed")]
    Execution(#[from] DataFusionError),
    /// A plan references a table that is neither in the store nor in `loupe_schema`.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
}

/// `Result` with [`ExecError`].
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

/// Runs PxL scripts against a [`Store`].
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<Store>,
    config: SessionConfig,
}

impl Engine {
    /// An engine over `store`, using one DataFusion partition per core.
    pub fn new(store: Arc<Store>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let config = SessionConfig::new().with_target_partitions(cores).with_information_schema(false);
        Engine { store, config }
    }

    /// The catalog scripts compile against: every `loupe_schema` table plus any extra table
    /// registered in the store.
    pub fn catalog(&self) -> impl Catalog + use<> {
        StoreCatalog { store: self.store.clone() }
    }

    /// Compiles and runs `source`; one [`QueryOutput`] per `px.display`, in script order.
    pub async fn execute_script(&self, source: &str, opts: &ExecOptions) -> Result<Vec<QueryOutput>> {
        let now_ns = opts.now_ns.unwrap_or_else(loupe_common::time::now_unix_ns);
        let program =
            loupe_pxl::compile(source, &self.catalog(), &CompileOptions { now_ns }).map_err(ExecError::Compile)?;
        self.execute_program(&program, opts).await
    }

    /// Runs an already compiled program.
    pub async fn execute_program(&self, program: &Program, opts: &ExecOptions) -> Result<Vec<QueryOutput>> {
        let max_rows = program.max_output_rows_per_table.unwrap_or(opts.max_output_rows);
        let ctx = self.session();
        let mut outputs = Vec::with_capacity(program.outputs.len());
        for out in &program.outputs {
            let df = lower::output_frame(&ctx, &self.store, out, max_rows)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            outputs.push(QueryOutput { name: out.name.clone(), schema, batches });
        }
        Ok(outputs)
    }

    /// A fresh DataFusion session with the `px.*` UDFs registered.
    fn session(&self) -> SessionContext {
        let ctx = SessionContext::new_with_config(self.config.clone());
        udf::register(&ctx);
        ctx
    }

    /// The number of DataFusion partitions (and MemTable partitions) a query uses.
    pub fn target_partitions(&self) -> usize {
        self.config.target_partitions()
    }
}

/// The compiler's view of the store: store tables first, then `loupe_schema` tables.
#[derive(Debug, Clone)]
pub struct StoreCatalog {
    store: Arc<Store>,
}

impl StoreCatalog {
    /// A catalog over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreCatalog { store }
    }
}

impl Catalog for StoreCatalog {
    fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        lower::table_schema(&self.store, name)
    }

    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = loupe_schema::all_tables().iter().map(|t| t.name.to_string()).collect();
        for t in self.store.tables() {
            if !names.iter().any(|n| n == t.name()) {
                names.push(t.name().to_string());
            }
        }
        names
    }
}
