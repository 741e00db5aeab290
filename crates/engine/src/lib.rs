//! The query engine: runs compiled PxL plans with DataFusion over the table store.
//!
//! Owns [`Engine`] (a store handle plus DataFusion session settings), the catalog a caller compiles
//! against ([`StoreCatalog`]), lowering of `loupe_pxl` plans to DataFusion `DataFrame`s (`lower`;
//! every registered `px.*` function's lowering is one arm of its exhaustive match), the `px.*`
//! functions DataFusion lacks (`udf`), the Kubernetes metadata functions over a
//! [`MetadataSource`] the caller gives (`metadata`), the quantile sketch behind percentiles (`sketch`), and each query's limits: a deadline, a memory pool and a row
//! cap per output, with results streamed to a [`QuerySink`] as batches are produced. Its API takes a
//! compiled [`Program`], never source text: the caller compiles and splits (`loupe-planner`), so a
//! broker can plan what agents run. With a `loupe_history::History` (`Engine::with_history`), a table's
//! scan is its memory plus the rows history holds that memory no longer does (`history`). Must not parse PxL nor write to the store: it only scans.

mod history;
mod lower;
mod merge;
mod metadata;
mod names;
mod request_path;
mod shared;
mod sketch;
mod sqlnorm;
mod udf;
mod udtf;

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt as _;
use loupe_pxl::{Catalog, Program};
use loupe_store::Store;

pub use crate::metadata::MetadataSource;
pub use merge::StreamInputs;

/// Per-query settings: the operator's limits. (The script's clock is a compile input: plans arrive
/// with their times resolved.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// Row cap per output table. A script's `#px:set max_output_rows_per_table` may lower it, never
    /// raise it: this is the operator's ceiling.
    pub max_output_rows: usize,
    /// Wall-clock limit of the whole query, sending its results included; `None` sets none. Needs a
    /// tokio runtime with its timer enabled.
    pub timeout: Option<Duration>,
    /// Bytes DataFusion's operators (aggregations, sorts) may hold for this query; `None` sets no
    /// limit. Nothing spills to disk, so a query that needs more fails.
    pub memory_limit_bytes: Option<usize>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { max_output_rows: loupe_pxl::DEFAULT_MAX_OUTPUT_ROWS, timeout: None, memory_limit_bytes: None }
    }
}

impl ExecOptions {
    /// The row cap of every output of `program`: the script's setting, but never above ours.
    pub fn row_cap(&self, program: &Program) -> usize {
        program.max_output_rows_per_table.map_or(self.max_output_rows, |n| n.min(self.max_output_rows))
    }
}

/// What a running query hands its consumer, in order: for each output, `Output`, its `Batch`es,
/// then `OutputEnd`; outputs follow the script's `px.display` order.
#[derive(Debug, Clone)]
pub enum QueryEvent {
    /// An output begins.
    Output {
        /// Position in the script's outputs, from 0.
        index: usize,
        /// Name given by `px.display(df, name)`.
        name: String,
        /// Column names and types, in script order.
        schema: SchemaRef,
    },
    /// Rows of the current output, sent as soon as DataFusion produced them.
    Batch {
        /// The output's index.
        index: usize,
        /// The rows (never empty).
        batch: RecordBatch,
    },
    /// The current output has no more rows.
    OutputEnd {
        /// The output's index.
        index: usize,
    },
}

/// The consumer went away; the query stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

/// Where a query's results go, one event at a time. Waiting in `send` holds the query back
/// (backpressure); an `Err(Cancelled)` stops it and drops what it holds.
pub trait QuerySink: Send {
    /// Takes one event.
    fn send(&mut self, event: QueryEvent) -> impl std::future::Future<Output = Result<(), Cancelled>> + Send;
}

/// Collects every output whole: what [`Engine::execute_program`] returns.
#[derive(Debug, Default)]
struct CollectSink {
    outputs: Vec<QueryOutput>,
}

impl QuerySink for CollectSink {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        match event {
            QueryEvent::Output { name, schema, .. } => {
                self.outputs.push(QueryOutput { name, schema, batches: Vec::new() })
            }
            QueryEvent::Batch { index, batch } => {
                if let Some(out) = self.outputs.get_mut(index) {
                    out.batches.push(batch);
                }
            }
            QueryEvent::OutputEnd { .. } => {}
        }
        Ok(())
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
    /// DataFusion failed while planning or running a plan.
    #[error("query execution failed")]
    Execution(#[from] DataFusionError),
    /// A SQL statement does not parse or plan (an unknown table or column, a refused statement); the
    /// message says why.
    #[error("{0}")]
    Sql(#[source] DataFusionError),
    /// A plan references a table that is neither in the store nor in `loupe_schema`.
    #[error("unknown table `{0}`")]
    UnknownTable(String),
    /// The query ran past [`ExecOptions::timeout`] and was stopped.
    #[error("query stopped: it exceeded its time limit of {}", humanize(*.0))]
    Timeout(Duration),
    /// The query needed more than [`ExecOptions::memory_limit_bytes`] and was stopped.
    #[error("query stopped: it needs more than its memory limit of {} MiB", .limit_bytes.div_ceil(1 << 20))]
    MemoryLimit {
        /// The limit.
        limit_bytes: usize,
        /// DataFusion's account of who asked for how much.
        #[source]
        source: DataFusionError,
    },
    /// The consumer went away before the query ended.
    #[error("query cancelled: the client went away")]
    Cancelled,
}

impl From<Cancelled> for ExecError {
    fn from(_: Cancelled) -> Self {
        ExecError::Cancelled
    }
}

/// `1.5s`, `250ms`: short enough for an error line.
fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}

/// `Result` with [`ExecError`].
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

/// Runs compiled PxL programs against a [`Store`].
#[derive(Debug, Clone)]
pub struct Engine {
    store: Arc<Store>,
    config: SessionConfig,
    agent: AgentInfo,
    /// When set, `px.GetAgentStatus()` lists these (a broker answering for its cluster) instead of `agent`.
    cluster: Option<Arc<Vec<AgentStatus>>>,
    /// A merge's placeholder tables (`loupe_planner::stream_table`), read before the store.
    streams: Arc<std::collections::HashMap<String, Arc<dyn datafusion::catalog::TableProvider>>>,
    /// Results of the running program's repeated subtrees (`shared`), empty outside a query.
    shared: shared::Shared,
    /// Rows older than memory holds (`history`).
    history: Option<Arc<loupe_history::History>>,
}

/// One agent of a cluster as `px.GetAgentStatus()` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    /// Who it is.
    pub info: AgentInfo,
    /// A Kelvin (merge tier) rather than a PEM; listed only when the script asks `include_kelvin=True`.
    pub kelvin: bool,
    /// Pixie's state name: `AGENT_STATE_HEALTHY`, `AGENT_STATE_UNRESPONSIVE`, ...
    pub state: String,
    /// Nanoseconds since its last heartbeat.
    pub since_heartbeat_ns: i64,
    /// The version of the vizier's agent configuration it runs with (0: none).
    pub config_version: u64,
}

/// What `px.GetAgentStatus()` and the other agent-level source functions say about the agent this engine
/// answers for. [`AgentInfo::this_host`] reads it from the host; a node agent may set its own ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The agent's id (a UUID as text).
    pub agent_id: String,
    /// The agent's short id, the first part of every UPID it records.
    pub asid: i64,
    /// The host's name.
    pub hostname: String,
    /// The host's primary IP address.
    pub ip_address: String,
    /// When the agent started, Unix ns.
    pub create_time_ns: i64,
}

impl AgentInfo {
    /// This host as an agent with short id 0 (what the collector stamps in UPIDs by default): its id is
    /// derived from /etc/machine-id when there is one, its address is the one the host routes out from.
    pub fn this_host() -> Self {
        let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
        let hex: String = machine.trim().chars().filter(char::is_ascii_hexdigit).take(32).collect();
        let hex = format!("{hex:0<32}");
        let agent_id = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]);
        // Connecting a UDP socket sends nothing; it only picks the source address of the default route.
        let ip_address = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
            .map_or_else(|_| "127.0.0.1".to_string(), |a| a.ip().to_string());
        AgentInfo {
            agent_id,
            asid: 0,
            hostname: lower::hostname(),
            ip_address,
            create_time_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        }
    }
}

impl Engine {
    /// An engine over `store`, using one DataFusion partition per core.
    pub fn new(store: Arc<Store>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let config = SessionConfig::new().with_target_partitions(cores).with_information_schema(false);
        Engine {
            store,
            config,
            agent: AgentInfo::this_host(),
            cluster: None,
            streams: Arc::new(std::collections::HashMap::new()),
            shared: shared::Shared::default(),
            history: None,
        }
    }

    /// The same engine reading `history` too: each table's scan returns memory's rows plus history's rows
    /// older than the oldest row memory holds (so none twice), pruned by hour and row group.
    pub fn with_history(mut self, history: Arc<loupe_history::History>) -> Self {
        self.history = Some(history);
        self
    }

    /// The same engine answering `px.GetAgentStatus()` with `agents`: a broker speaking for its cluster.
    pub fn with_cluster_agents(mut self, agents: Vec<AgentStatus>) -> Self {
        self.cluster = Some(Arc::new(agents));
        self
    }

    /// The same engine splitting each query into `n` DataFusion partitions (one per core by default).
    pub fn with_target_partitions(mut self, n: usize) -> Self {
        self.config = self.config.clone().with_target_partitions(n.max(1));
        self
    }

    /// The same engine answering the Kubernetes metadata functions (`px.upid_to_pod_name`, `df.ctx['pod']`,
    /// `px.ip_to_pod_id`, …) from `source`; without one they answer ''.
    pub fn with_metadata(mut self, source: Arc<dyn MetadataSource>) -> Self {
        self.config.options_mut().extensions.insert(metadata::MetadataExt(Some(source)));
        self
    }

    /// The same engine answering `px.GetAgentStatus()` and friends as `agent`.
    pub fn with_agent(mut self, agent: AgentInfo) -> Self {
        self.agent = agent;
        self
    }

    /// The history this engine reads, if any.
    pub fn history(&self) -> Option<&Arc<loupe_history::History>> {
        self.history.as_ref()
    }

    /// The catalog a caller compiles scripts against for this engine: every `loupe_schema` table plus
    /// any extra table registered in the store, and the cron result tables its history holds.
    pub fn catalog(&self) -> StoreCatalog {
        StoreCatalog { store: self.store.clone(), history: self.history.clone() }
    }

    /// Runs a compiled program and collects its outputs whole; one [`QueryOutput`] per `px.display`,
    /// in script order.
    pub async fn execute_program(&self, program: &Program, opts: &ExecOptions) -> Result<Vec<QueryOutput>> {
        let mut sink = CollectSink::default();
        self.execute_program_to(program, opts, &mut sink).await?;
        Ok(sink.outputs)
    }

    /// Runs `program` within `opts`' limits, handing each batch to `sink` as soon as it is produced.
    /// Returns the number of rows sent. On a limit, an error or a cancelled sink the query stops and
    /// DataFusion's tasks are dropped with it.
    pub async fn execute_program_to(
        &self,
        program: &Program,
        opts: &ExecOptions,
        sink: &mut impl QuerySink,
    ) -> Result<u64> {
        let run = self.run(program, opts, sink);
        match opts.timeout {
            Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| ExecError::Timeout(limit))?,
            None => run.await,
        }
    }

    async fn run(&self, program: &Program, opts: &ExecOptions, sink: &mut impl QuerySink) -> Result<u64> {
        let (engine, program_owned, limits) = (self.clone(), program.clone(), *opts);
        let frames = query_runtime()
            .spawn(async move { engine.plan_frames(&program_owned, &limits).await })
            .await
            .map_err(|e| ExecError::Execution(DataFusionError::External(Box::new(e))))??;
        stream_frames(frames, opts, sink).await
    }

    /// Plans with `plan_frames` on the query runtime (whose threads have the stack DataFusion's recursive
    /// planning needs for a large script: a deep plan must fail or run, not overflow a caller's stack),
    /// then streams the frames within `opts`' deadline.
    async fn run_planned(
        &self,
        plan_frames: impl FnOnce() -> Result<Vec<(String, datafusion::dataframe::DataFrame)>> + Send + 'static,
        opts: &ExecOptions,
        sink: &mut impl QuerySink,
    ) -> Result<u64> {
        let run = async {
            let frames = query_runtime()
                .spawn(async move { plan_frames() })
                .await
                .map_err(|e| ExecError::Execution(DataFusionError::External(Box::new(e))))??;
            stream_frames(frames, opts, sink).await
        };
        match opts.timeout {
            Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| ExecError::Timeout(limit))?,
            None => run.await,
        }
    }

    /// Every output lowered to a DataFrame before any runs, so a planning error comes before any result;
    /// repeated subtrees that would be costly to plan again are run first, once (`shared`).
    async fn plan_frames(
        &self,
        program: &Program,
        opts: &ExecOptions,
    ) -> Result<Vec<(String, datafusion::dataframe::DataFrame)>> {
        let max_rows = opts.row_cap(program);
        let ctx = self.session(opts)?;
        let eng = shared::prepare(self, &ctx, program, shared::budget(opts)).await?;
        let mut frames = Vec::with_capacity(program.outputs.len());
        for out in &program.outputs {
            let df = lower::output_frame(&ctx, &eng, out, max_rows)?;
            frames.push((out.name.clone(), df));
        }
        Ok(frames)
    }

    /// Runs one read-only SQL statement (DataFusion's dialect) over every table this engine can read,
    /// within `opts`' limits (the row cap is [`ExecOptions::max_output_rows`]), streaming its one output,
    /// `output`, to `sink`. Table names with a dot are quoted: `SELECT * FROM "stack_traces.beta"`. The
    /// `px.*` functions are there as `px_<name>` (`px_kafka_api_key_name(req_cmd)`). Statements that
    /// would change anything (DDL, DML, `SET`) are refused.
    pub async fn execute_sql_to(&self, sql: &str, opts: &ExecOptions, sink: &mut impl QuerySink) -> Result<u64> {
        let run = async {
            let ctx = self.session(opts)?;
            for name in self.catalog().table_names() {
                let Some(schema) = lower::table_schema(&self.store, self.history.as_deref(), &name) else { continue };
                // Arc clones of the stored batches: no copy of the store.
                let table = lower::scan_table(self, &name, schema, loupe_store::TimeRange::default())?;
                ctx.register_table(datafusion::common::TableReference::bare(name), table)?;
            }
            let options = datafusion::execution::context::SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let df = ctx.sql_with_options(sql, options).await.map_err(ExecError::Sql)?;
            let df = df.limit(0, Some(opts.max_output_rows))?;
            stream_frames(vec![("output".to_string(), df)], opts, sink).await
        };
        match opts.timeout {
            Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| ExecError::Timeout(limit))?,
            None => run.await,
        }
    }

    /// A fresh DataFusion session with the `px.*` UDFs registered, and its own memory pool when
    /// `opts` sets a limit. Nothing spills: a node agent must not write query state to disk.
    fn session(&self, opts: &ExecOptions) -> Result<SessionContext> {
        let mut runtime = RuntimeEnvBuilder::new()
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled));
        if let Some(limit) = opts.memory_limit_bytes {
            runtime = runtime.with_memory_limit(limit, 1.0);
        }
        let ctx = SessionContext::new_with_config_rt(self.config.clone(), runtime.build_arc()?);
        udf::register(&ctx);
        Ok(ctx)
    }

    /// The number of DataFusion partitions (and MemTable partitions) a query uses.
    pub fn target_partitions(&self) -> usize {
        self.config.target_partitions()
    }
}

/// Streams each planned output to `sink` in order: its schema, its batches as DataFusion produces them, its end.
async fn stream_frames(
    frames: Vec<(String, datafusion::dataframe::DataFrame)>,
    opts: &ExecOptions,
    sink: &mut impl QuerySink,
) -> Result<u64> {
    let memory_error = |e: DataFusionError| match (opts.memory_limit_bytes, e.find_root()) {
        (Some(limit_bytes), DataFusionError::ResourcesExhausted(_)) => {
            ExecError::MemoryLimit { limit_bytes, source: e }
        }
        _ => ExecError::Execution(e),
    };
    let mut rows = 0u64;
    for (index, (name, df)) in frames.into_iter().enumerate() {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        sink.send(QueryEvent::Output { index, name, schema }).await?;
        // DataFusion's operators may compute for seconds inside one poll (a final aggregation), which
        // would starve the caller's runtime: its timers (the deadline), its I/O (a client leaving, health
        // checks). The stream is drained on the query runtime instead, and this future only waits on a
        // channel, where the deadline and the sink can stop it; dropping the producer aborts it.
        let (tx, mut rx) = tokio::sync::mpsc::channel(2);
        // Planned there too: executing a plan may already spawn its partitions' tasks where it runs.
        let _producer = AbortOnDrop(query_runtime().spawn(async move {
            let mut stream = match df.execute_stream().await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            while let Some(batch) = stream.next().await {
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        }));
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(memory_error)?;
            if batch.num_rows() > 0 {
                rows += batch.num_rows() as u64;
                sink.send(QueryEvent::Batch { index, batch }).await?;
            }
        }
        sink.send(QueryEvent::OutputEnd { index }).await?;
    }
    Ok(rows)
}

/// The runtime DataFusion's work runs on: one worker per core, apart from the caller's runtime so that
/// a CPU-bound query cannot hold off the caller's timers and I/O. Built on first use, never dropped.
fn query_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cores)
                // Planning and optimizing recurse over the plan tree; a script of a few hundred operators
                // needs more than the default 2 MiB in a debug build. Only touched pages are committed.
                .thread_stack_size(QUERY_THREAD_STACK)
                .thread_name("loupe-query")
                .enable_time()
                .build()
                // Only fails when the OS refuses threads, which leaves nothing to run queries on.
                .unwrap_or_else(|e| panic!("failed to start the query runtime: {e}"))
        })
        .handle()
}

/// Stack of each query runtime thread.
const QUERY_THREAD_STACK: usize = 64 << 20;

/// Aborts a task when dropped, so a query stopped early does not keep computing.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The compiler's view of the store: store tables first, then `loupe_schema` tables, then the cron result
/// tables of history (when given one).
#[derive(Debug, Clone)]
pub struct StoreCatalog {
    store: Arc<Store>,
    history: Option<Arc<loupe_history::History>>,
}

impl StoreCatalog {
    /// A catalog over `store`.
    pub fn new(store: Arc<Store>) -> Self {
        StoreCatalog { store, history: None }
    }
}

impl Catalog for StoreCatalog {
    fn table_schema(&self, name: &str) -> Option<SchemaRef> {
        lower::table_schema(&self.store, self.history.as_deref(), name)
    }

    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = loupe_schema::all_tables().iter().map(|t| t.name.to_string()).collect();
        let extra = self.store.tables().iter().map(|t| t.name().to_string()).collect::<Vec<_>>();
        let results = self.history.as_ref().map(|h| h.result_tables()).unwrap_or_default();
        for name in extra.into_iter().chain(results) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    fn held_by_broker(&self, name: &str) -> bool {
        // Only history holds a result table; on a query broker, that history is the cluster's one copy.
        self.store.table(name).is_none()
            && loupe_schema::table(name).is_none()
            && self.history.as_ref().is_some_and(|h| h.result_schema(name).is_some())
    }
}
