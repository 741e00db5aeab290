//! A vizier of many nodes: the query broker, Kelvins (the merge tier) and PEMs serving their streams.
//!
//! The broker ([`Broker`]) serves the same `VizierService` query API as a PEM. It compiles each script
//! once and splits it (`loupe_planner::split_cluster`), runs the source functions itself (it answers
//! `px.GetAgentStatus()` from its registry), spreads the script's outputs over the live Kelvins in
//! contiguous runs (so results still arrive in display order) and relays their answers. Each Kelvin
//! ([`run_merge`]) pulls the streams its outputs read from every live PEM at once, within the query's
//! deadline and a byte budget, and merges them (`loupe_engine`); a PEM that fails or does not answer in
//! time is left out and named in the answer's warnings, never waited for past the deadline. A PEM
//! ([`AgentNode::run_streams`]) runs the streams over its store. Agents register with the broker and
//! heartbeat ([`spawn_registration`]); one silent for [`AGENT_EXPIRY_HEARTBEATS`] intervals leaves the
//! query set. Every link carries the vizier's query token, compared in constant time
//! ([`crate::query_auth::RequireToken`]); a client dropping its stream drops every stream below it, which
//! cancels the work on each Kelvin and PEM. Streams are bounded channels: a slow reader holds its
//! producer back.
//!
//! Must not compile or split PxL itself (`loupe-planner`), nor lower or run plans (`loupe-engine`).

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use loupe_engine::{
    AgentInfo, AgentStatus, Cancelled, Engine, ExecError, ExecOptions, QueryEvent, QuerySink, StreamInputs,
};
use loupe_planner::{ClusterPlan, RunsOn};
use loupe_proto::arrow_ipc;
use loupe_proto::clusterpb::agent_service_client::AgentServiceClient;
use loupe_proto::clusterpb::agent_service_server::AgentService;
use loupe_proto::clusterpb::broker_service_client::BrokerServiceClient;
use loupe_proto::clusterpb::broker_service_server::BrokerService;
use loupe_proto::clusterpb::{
    AgentConfig, AgentKind, BrokerStream, GetConfigRequest, MergeRequest, MergeResponse, MergeSummary, Producer,
    RegisterRequest, RegisterResponse, RunStreamsRequest, SetConfigRequest, StreamBatch, merge_response,
};
use loupe_proto::vizierpb::vizier_service_server::VizierService;
use loupe_proto::vizierpb::{
    ErrorCode, ExecuteScriptRequest, ExecuteScriptResponse, HealthCheckRequest, HealthCheckResponse, QueryData,
    QueryExecutionStats, QueryMetadata, Status, execute_script_response,
};
use loupe_pxl::CompileOptions;
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Response};

use crate::agent_config::{Applier, ConfigError, ConfigHolder};
use crate::query_auth::{QueryToken, TOKEN_METADATA};
use crate::query_service::{MAX_SCRIPT_BYTES, QueryError, VERSION, error_status};

/// Where `loupe vizier broker` listens unless told otherwise.
pub const DEFAULT_BROKER_ADDR: &str = "127.0.0.1:50600";
/// Where `loupe vizier kelvin` listens unless told otherwise.
pub const DEFAULT_KELVIN_ADDR: &str = "127.0.0.1:50500";
/// How often agents heartbeat unless the broker says otherwise.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(2);
/// Missed heartbeats after which an agent leaves the query set.
pub const AGENT_EXPIRY_HEARTBEATS: u32 = 3;
/// Agents a broker keeps at most: registrations past it are refused.
pub const MAX_AGENTS: usize = 10_000;
/// Bytes of producers' batches one merge may receive; past it the query fails rather than grow.
pub const MAX_MERGE_INPUT_BYTES: u64 = 1 << 30;
/// Streams one Kelvin pulls at once; the others wait their turn within the query's deadline.
pub const MAX_CONCURRENT_PULLS: usize = 128;
/// Largest plan a broker may send, in bytes.
const MAX_PLAN_BYTES: usize = 8 << 20;
/// Messages buffered per stream: enough to keep both ends busy, few enough to hold a fast producer back.
const STREAM_BUFFER: usize = 4;
/// How long a Kelvin waits to connect to a PEM.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The deadline of a query when the operator set none.
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// Adds the query token to every call a node makes to another.
#[derive(Clone, Debug)]
pub struct AddToken(pub QueryToken);

impl tonic::service::Interceptor for AddToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        let value = self.0.expose().parse().map_err(|_| tonic::Status::internal("query token is not ASCII"))?;
        request.metadata_mut().insert(TOKEN_METADATA, value);
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, AddToken>;

fn channel(address: &str) -> Result<Channel, String> {
    let url = if address.contains("://") { address.to_string() } else { format!("http://{address}") };
    Ok(tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| format!("bad address {address}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .connect_lazy())
}

fn agent_client(address: &str, token: &QueryToken) -> Result<AgentServiceClient<Authed>, String> {
    Ok(AgentServiceClient::with_interceptor(channel(address)?, AddToken(token.clone()))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// A broker client carrying `token`.
pub fn broker_client(address: &str, token: &QueryToken) -> Result<BrokerServiceClient<Authed>, String> {
    Ok(BrokerServiceClient::with_interceptor(channel(address)?, AddToken(token.clone())))
}

/// A fresh agent id (a random UUID, as text): several agents on one host must not share one.
pub fn new_agent_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        b = loupe_common::time::now_unix_ns().to_le_bytes().repeat(2).try_into().unwrap_or([7; 16]);
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// An agent's link with its broker as its operational routes report it.
#[derive(Debug, Default)]
pub struct LinkState {
    registered: AtomicBool,
    config_version: AtomicU64,
}

impl LinkState {
    /// Whether the broker accepted the last heartbeat.
    pub fn registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// The agent configuration version applied (0: none).
    pub fn config_version(&self) -> u64 {
        self.config_version.load(Ordering::Relaxed)
    }

    /// Ready when the broker accepted the last heartbeat.
    pub fn readiness(&self) -> Result<(), String> {
        if self.registered() { Ok(()) } else { Err("not registered with the query broker".into()) }
    }

    /// Its Prometheus text alone (a Kelvin's `/metrics`).
    pub fn metrics_text(&self) -> String {
        let mut w = loupe_common::prometheus::Writer::new();
        self.write_metrics(&mut w);
        w.finish()
    }

    /// Its Prometheus lines.
    pub fn write_metrics(&self, w: &mut loupe_common::prometheus::Writer) {
        use loupe_common::prometheus::Kind;
        w.single(
            "loupe_broker_registered",
            Kind::Gauge,
            "1 when the query broker accepted the last heartbeat.",
            u64::from(self.registered()),
        );
        w.single(
            "loupe_agent_config_version",
            Kind::Gauge,
            "Version of the vizier's agent configuration applied here (0: none).",
            self.config_version(),
        );
    }
}

/// Registers `me` with the broker at `broker` now and at every heartbeat, until the task is aborted.
/// A refusal (a wrong token) is logged as an error and retried: an operator may fix the token file.
/// Each answer carries the vizier's agent configuration: a new version is handed to `apply` (an agent
/// with nothing to apply, a Kelvin, passes `None`), and the next heartbeat, sent at once, reports the
/// version applied or why it was not.
pub fn spawn_registration(
    broker: String,
    token: QueryToken,
    mut me: RegisterRequest,
    apply: Option<Applier>,
    state: Arc<LinkState>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = DEFAULT_HEARTBEAT;
        let mut registered = false;
        // The newest version seen, applied or not: a refused one is not retried at every heartbeat.
        let mut seen = 0u64;
        loop {
            let mut report_now = false;
            match broker_client(&broker, &token) {
                Ok(mut client) => match client.register(me.clone()).await {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        let ms = resp.heartbeat_interval_ms;
                        interval = Duration::from_millis(u64::try_from(ms).unwrap_or(0).clamp(100, 60_000));
                        if !registered {
                            tracing::info!(%broker, agent_id = %me.agent_id, "registered with the query broker");
                            registered = true;
                        }
                        state.registered.store(true, Ordering::Relaxed);
                        if let Some(config) = resp.config.filter(|c| c.version != seen && c.version != 0) {
                            seen = config.version;
                            match apply.as_ref().map_or(Ok(()), |apply| apply(&config)) {
                                Ok(()) => {
                                    tracing::info!(version = config.version, "agent configuration applied");
                                    me.config_version = config.version;
                                    me.config_error.clear();
                                    state.config_version.store(config.version, Ordering::Relaxed);
                                }
                                Err(e) => {
                                    tracing::error!(version = config.version, error = %e, "agent configuration not applied");
                                    me.config_error = format!("version {}: {e}", config.version);
                                }
                            }
                            report_now = true;
                        }
                    }
                    Err(status) if status.code() == tonic::Code::Unauthenticated => {
                        state.registered.store(false, Ordering::Relaxed);
                        tracing::error!(%broker, error = %status.message(), "the query broker refused this agent's token");
                        registered = false;
                    }
                    Err(status) => {
                        state.registered.store(false, Ordering::Relaxed);
                        tracing::warn!(%broker, error = %status.message(), "heartbeat to the query broker failed");
                        registered = false;
                    }
                },
                Err(e) => tracing::error!(%broker, error = %e, "invalid broker address"),
            }
            if !report_now {
                tokio::time::sleep(interval).await;
            }
        }
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// A PEM's or Kelvin's side of the cluster links: PEMs run streams over their store, Kelvins merge.
pub struct AgentNode {
    engine: Arc<Engine>,
    limits: ExecOptions,
    token: QueryToken,
}

impl AgentNode {
    /// A node answering with `engine` within `limits`; `token` is what it sends to the nodes it pulls from.
    pub fn new(engine: Arc<Engine>, limits: ExecOptions, token: QueryToken) -> Self {
        AgentNode { engine, limits, token }
    }
}

fn query_limits(limits: &ExecOptions, timeout_ms: i64) -> ExecOptions {
    let asked = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms as u64));
    let timeout = match (limits.timeout, asked) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    ExecOptions { timeout, ..*limits }
}

fn decode_plan(bytes: &[u8]) -> Result<ClusterPlan, tonic::Status> {
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(tonic::Status::resource_exhausted("plan too large"));
    }
    ClusterPlan::from_json(bytes).map_err(|e| tonic::Status::invalid_argument(format!("bad plan: {e}")))
}

/// Sends each batch of a PEM's streams as it is produced.
struct StreamSink {
    tx: mpsc::Sender<Result<StreamBatch, tonic::Status>>,
    ids: Vec<usize>,
}

impl QuerySink for StreamSink {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        let QueryEvent::Batch { index, batch } = event else { return Ok(()) };
        let stream_id = self.ids.get(index).copied().unwrap_or(index) as u32;
        let arrow_batch = arrow_ipc::encode_batch(&batch).map_err(|_| Cancelled)?;
        self.tx.send(Ok(StreamBatch { stream_id, arrow_batch })).await.map_err(|_| Cancelled)
    }
}

#[tonic::async_trait]
impl AgentService for AgentNode {
    type RunStreamsStream = BoxStream<StreamBatch>;
    type MergeStream = BoxStream<MergeResponse>;

    async fn run_streams(
        &self,
        request: Request<RunStreamsRequest>,
    ) -> Result<Response<Self::RunStreamsStream>, tonic::Status> {
        let req = request.into_inner();
        let plan = decode_plan(&req.plan_json)?;
        let ids: Vec<usize> = req.stream_ids.iter().map(|&i| i as usize).collect();
        if ids.iter().any(|&i| plan.streams.get(i).is_none_or(|s| s.runs_on != RunsOn::Agents)) {
            return Err(tonic::Status::invalid_argument("a stream id is not an agent stream of the plan"));
        }
        let limits = query_limits(&self.limits, req.timeout_ms);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let engine = Arc::clone(&self.engine);
        tokio::spawn(async move {
            let mut sink = StreamSink { tx: tx.clone(), ids: ids.clone() };
            let run = engine.execute_streams_to(&plan, &ids, &limits, &mut sink);
            let result = tokio::select! {
                r = run => r,
                () = tx.closed() => Err(ExecError::Cancelled),
            };
            match result {
                Ok(rows) => tracing::debug!(query_id = %req.query_id, rows, "streams sent"),
                Err(ExecError::Cancelled) => tracing::info!(query_id = %req.query_id, "streams cancelled"),
                Err(e) => {
                    tracing::warn!(query_id = %req.query_id, error = %e, "streams failed");
                    let _ = tx.send(Err(tonic::Status::internal(e.to_string()))).await;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn merge(&self, request: Request<MergeRequest>) -> Result<Response<Self::MergeStream>, tonic::Status> {
        let req = request.into_inner();
        let plan = decode_plan(&req.plan_json)?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (engine, limits, token) = (Arc::clone(&self.engine), self.limits, self.token.clone());
        tokio::spawn(async move { run_merge(&engine, limits, &token, plan, req, tx).await });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

/// Encodes a merge's events as the query API's messages, table ids being the plan's output indexes.
struct MergeSink {
    tx: mpsc::Sender<Result<MergeResponse, tonic::Status>>,
    outputs: Vec<usize>,
}

impl MergeSink {
    fn encode(&self, event: QueryEvent) -> Result<ExecuteScriptResponse, arrow::error::ArrowError> {
        let id = |index: usize| self.outputs.get(index).copied().unwrap_or(index).to_string();
        let result = match event {
            QueryEvent::Output { index, name, schema } => execute_script_response::Result::MetaData(QueryMetadata {
                name,
                id: id(index),
                arrow_schema: arrow_ipc::encode_schema(&schema)?,
            }),
            QueryEvent::Batch { index, batch } => execute_script_response::Result::Data(QueryData {
                table_id: id(index),
                arrow_batch: arrow_ipc::encode_batch(&batch)?,
                num_rows: batch.num_rows() as u64,
                eos: false,
            }),
            QueryEvent::OutputEnd { index } => execute_script_response::Result::Data(QueryData {
                table_id: id(index),
                arrow_batch: vec![],
                num_rows: 0,
                eos: true,
            }),
        };
        Ok(ExecuteScriptResponse { query_id: String::new(), result: Some(result) })
    }
}

impl QuerySink for MergeSink {
    async fn send(&mut self, event: QueryEvent) -> Result<(), Cancelled> {
        let response = self.encode(event).map_err(|_| Cancelled)?.encode_to_vec();
        let message = MergeResponse { result: Some(merge_response::Result::Response(response)) };
        self.tx.send(Ok(message)).await.map_err(|_| Cancelled)
    }
}

/// What one producer sent, or why it is missing.
type Pulled = Result<Vec<(usize, arrow::record_batch::RecordBatch)>, String>;

/// Pulls streams `ids` from one PEM, whole, within `deadline`; counts the bytes in `received`.
async fn pull(
    producer: &Producer,
    token: &QueryToken,
    request: RunStreamsRequest,
    deadline: Instant,
    received: &AtomicU64,
) -> Pulled {
    let run = async {
        let mut client = agent_client(&producer.address, token)?;
        let mut stream = client.run_streams(request).await.map_err(|s| s.message().to_string())?.into_inner();
        let mut batches = Vec::new();
        while let Some(msg) = stream.message().await.map_err(|s| format!("lost mid-query: {}", s.message()))? {
            let total =
                received.fetch_add(msg.arrow_batch.len() as u64, Ordering::Relaxed) + msg.arrow_batch.len() as u64;
            if total > MAX_MERGE_INPUT_BYTES {
                return Err(format!("the merge's input passed its limit of {} MiB", MAX_MERGE_INPUT_BYTES >> 20));
            }
            for b in arrow_ipc::decode_batches(&msg.arrow_batch).map_err(|e| format!("bad batch: {e}"))? {
                batches.push((msg.stream_id as usize, b));
            }
        }
        Ok(batches)
    };
    match tokio::time::timeout_at(deadline.into(), run).await {
        Ok(r) => r,
        Err(_) => Err("did not answer before the query's deadline".to_string()),
    }
}

/// A Kelvin's work for one query: pull the streams `req.outputs` read from every producer at once, merge
/// them, send the outputs, then a summary naming the producers that are missing. Sends a `Status` error
/// when the merge itself fails; stops when `tx`'s reader goes away.
pub async fn run_merge(
    engine: &Engine,
    limits: ExecOptions,
    token: &QueryToken,
    plan: ClusterPlan,
    req: MergeRequest,
    tx: mpsc::Sender<Result<MergeResponse, tonic::Status>>,
) {
    let limits = query_limits(&limits, req.timeout_ms);
    let deadline = Instant::now() + limits.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT);
    let outputs: Vec<usize> =
        req.outputs.iter().map(|&o| o as usize).filter(|&o| o < plan.merge.outputs.len()).collect();
    let wanted = plan.streams_of(&outputs);
    let agent_streams: Vec<u32> =
        wanted.iter().filter(|&&i| plan.streams[i].runs_on == RunsOn::Agents).map(|&i| i as u32).collect();
    let mut inputs = StreamInputs::new();
    for s in &req.broker_streams {
        for bytes in &s.arrow_batches {
            match arrow_ipc::decode_batches(bytes) {
                Ok(b) => inputs.entry(s.stream_id as usize).or_default().extend(b),
                Err(e) => {
                    let _ = tx.send(Err(tonic::Status::invalid_argument(format!("bad broker batch: {e}")))).await;
                    return;
                }
            }
        }
    }
    let received = Arc::new(AtomicU64::new(0));
    let mut missing = Vec::new();
    if !agent_streams.is_empty() {
        let request = RunStreamsRequest {
            query_id: req.query_id.clone(),
            plan_json: req.plan_json.clone(),
            stream_ids: agent_streams,
            timeout_ms: deadline.saturating_duration_since(Instant::now()).as_millis() as i64,
        };
        // Owned futures, made up front: a stream adapter over a borrowing closure would not be `Send` for
        // every lifetime, which `tokio::spawn` needs.
        let pulls: Vec<_> = req
            .producers
            .iter()
            .map(|p| {
                let (p, token, request, received) = (p.clone(), token.clone(), request.clone(), Arc::clone(&received));
                async move { pull(&p, &token, request, deadline, &received).await }
            })
            .collect();
        // At most MAX_CONCURRENT_PULLS connections at once (file descriptors, accept queues), answers kept in
        // producer order. The reader leaving (the broker's client went away) drops every pull, which cancels
        // them on the PEMs.
        let all = futures::StreamExt::collect::<Vec<Pulled>>(futures::StreamExt::buffered(
            futures::stream::iter(pulls),
            MAX_CONCURRENT_PULLS,
        ));
        let results = tokio::select! {
            r = all => r,
            () = tx.closed() => return,
        };
        for (producer, result) in req.producers.iter().zip(results) {
            match result {
                Ok(batches) => {
                    for (id, b) in batches {
                        inputs.entry(id).or_default().push(b);
                    }
                }
                Err(why) => {
                    tracing::warn!(query_id = %req.query_id, agent = %producer.agent_id, %why, "agent's rows are missing");
                    missing.push(format!("agent {} at {}: {why}", producer.agent_id, producer.address));
                }
            }
        }
    }
    let bytes_received = received.load(Ordering::Relaxed);
    let mut sink = MergeSink { tx: tx.clone(), outputs: outputs.clone() };
    // `px.export`'s outputs go to OpenTelemetry from here, where they are merged, not to the broker.
    let specs = outputs.iter().map(|&o| plan.merge.outputs[o].export.clone()).collect();
    let mut exporting =
        crate::export::ExportSink::with_specs(specs, &mut sink, crate::export::endpoint_of(&req.export_default));
    let merged = engine.execute_merge_to(&plan, &outputs, inputs, &limits, &mut exporting);
    let result = tokio::select! {
        r = merged => r,
        () = tx.closed() => Err(ExecError::Cancelled),
    };
    match result {
        Ok(rows) => {
            let (export_error_code, export_error) = match exporting.error.take() {
                Some(e) => {
                    let status = error_status(&QueryError::Export(e));
                    (status.code, status.message)
                }
                None => (0, String::new()),
            };
            let summary =
                MergeSummary { missing_agents: missing, bytes_received, rows, export_error_code, export_error };
            let _ = tx.send(Ok(MergeResponse { result: Some(merge_response::Result::Summary(summary)) })).await;
        }
        Err(ExecError::Cancelled) => {}
        Err(e) => {
            let status = error_status(&QueryError::Exec(e));
            let _ = tx.send(Err(tonic::Status::new(grpc_code(status.code), status.message))).await;
        }
    }
}

fn grpc_code(code: i32) -> tonic::Code {
    match ErrorCode::try_from(code) {
        Ok(ErrorCode::DeadlineExceeded) => tonic::Code::DeadlineExceeded,
        Ok(ErrorCode::ResourceExhausted) => tonic::Code::ResourceExhausted,
        Ok(ErrorCode::InvalidArgument) => tonic::Code::InvalidArgument,
        _ => tonic::Code::Internal,
    }
}

/// One registered agent.
#[derive(Debug, Clone)]
struct Entry {
    kind: AgentKind,
    address: String,
    hostname: String,
    create_time_ns: i64,
    asid: i64,
    last_seen: Instant,
    config_version: u64,
    config_error: String,
}

/// The broker's view of its agents.
#[derive(Debug)]
pub struct Registry {
    agents: Mutex<HashMap<String, Entry>>,
    heartbeat: Duration,
    next_asid: AtomicU64,
}

impl Registry {
    /// An empty registry asking agents to heartbeat every `heartbeat`.
    pub fn new(heartbeat: Duration) -> Self {
        Registry { agents: Mutex::default(), heartbeat, next_asid: AtomicU64::new(1) }
    }

    fn expiry(&self) -> Duration {
        self.heartbeat * AGENT_EXPIRY_HEARTBEATS
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.agents.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Live agents of `kind` as `(id, address)`, sorted by id (a stable spread of merges).
    pub fn live(&self, kind: AgentKind) -> Vec<(String, String)> {
        let expiry = self.expiry();
        let mut v: Vec<(String, String)> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.kind == kind && e.last_seen.elapsed() <= expiry)
            .map(|(id, e)| (id.clone(), e.address.clone()))
            .collect();
        v.sort();
        v
    }

    /// Agents of `kind` that stopped heartbeating: `(id, address, silent for)`.
    pub fn lost(&self, kind: AgentKind) -> Vec<(String, String, Duration)> {
        let expiry = self.expiry();
        let mut v: Vec<_> = self
            .lock()
            .iter()
            .filter(|(_, e)| e.kind == kind && e.last_seen.elapsed() > expiry)
            .map(|(id, e)| (id.clone(), e.address.clone(), e.last_seen.elapsed()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every agent as `px.GetAgentStatus()` lists it (its address in `ip_address`).
    pub fn statuses(&self) -> Vec<AgentStatus> {
        let expiry = self.expiry();
        let mut v: Vec<AgentStatus> = self
            .lock()
            .iter()
            .map(|(id, e)| AgentStatus {
                info: AgentInfo {
                    agent_id: id.clone(),
                    asid: e.asid,
                    hostname: e.hostname.clone(),
                    ip_address: e.address.clone(),
                    create_time_ns: e.create_time_ns,
                },
                kelvin: e.kind == AgentKind::Kelvin,
                state: if e.last_seen.elapsed() <= expiry { "AGENT_STATE_HEALTHY" } else { "AGENT_STATE_UNRESPONSIVE" }
                    .to_string(),
                since_heartbeat_ns: i64::try_from(e.last_seen.elapsed().as_nanos()).unwrap_or(i64::MAX),
                config_version: e.config_version,
            })
            .collect();
        v.sort_by(|a, b| a.info.agent_id.cmp(&b.info.agent_id));
        v
    }

    fn register(&self, req: &RegisterRequest) -> Result<(), tonic::Status> {
        let kind = AgentKind::try_from(req.kind).unwrap_or(AgentKind::Unspecified);
        if kind == AgentKind::Unspecified {
            return Err(tonic::Status::invalid_argument("agent kind must be PEM or KELVIN"));
        }
        let too_long = |s: &str| s.is_empty() || s.len() > 256;
        if too_long(&req.agent_id) || too_long(&req.address) || req.hostname.len() > 256 {
            return Err(tonic::Status::invalid_argument("agent id and address must be 1 to 256 bytes"));
        }
        let mut agents = self.lock();
        if !agents.contains_key(&req.agent_id) && agents.len() >= MAX_AGENTS {
            return Err(tonic::Status::resource_exhausted("the broker has as many agents as it accepts"));
        }
        let asid = match agents.get(&req.agent_id) {
            Some(e) => {
                if !req.config_error.is_empty() && e.config_error != req.config_error {
                    tracing::warn!(agent_id = %req.agent_id, error = %req.config_error, "an agent refused the agent configuration");
                }
                e.asid
            }
            None => self.next_asid.fetch_add(1, Ordering::Relaxed) as i64,
        };
        let config_error: String = req.config_error.chars().take(1024).collect();
        agents.insert(
            req.agent_id.clone(),
            Entry {
                kind,
                address: req.address.clone(),
                hostname: req.hostname.clone(),
                create_time_ns: req.create_time_ns,
                asid,
                last_seen: Instant::now(),
                config_version: req.config_version,
                config_error,
            },
        );
        Ok(())
    }
}

/// The query broker: the vizier's query API over every agent.
#[derive(Clone)]
pub struct Broker {
    registry: Arc<Registry>,
    /// Compiles against every known table and answers source functions; its store stays empty.
    engine: Arc<Engine>,
    limits: ExecOptions,
    token: QueryToken,
    /// The agent configuration handed out with every heartbeat's answer.
    config: Arc<ConfigHolder>,
    /// Where cron scripts' results are kept for the whole cluster (its engine reads them too), if anywhere.
    history: Option<Arc<loupe_history::History>>,
}

impl Broker {
    /// A broker running queries within `limits`, sending `token` to its agents, asking them to heartbeat
    /// every `heartbeat`.
    pub fn new(limits: ExecOptions, token: QueryToken, heartbeat: Duration) -> Self {
        let store = Arc::new(loupe_store::Store::new(loupe_store::StoreConfig::default()));
        Broker {
            registry: Arc::new(Registry::new(heartbeat)),
            engine: Arc::new(Engine::new(store)),
            limits,
            token,
            config: Arc::new(ConfigHolder::in_memory()),
            history: None,
        }
    }

    /// The same broker keeping cron scripts' results in `history` (once for the whole cluster) and answering
    /// scans of them from it.
    pub fn with_history(mut self, history: Arc<loupe_history::History>) -> Self {
        self.engine = Arc::new((*self.engine).clone().with_history(Arc::clone(&history)));
        self.history = Some(history);
        self
    }

    /// Keeps the broker's history within the retention the cloud sets (the configuration's, as the PEMs
    /// apply it) or else its defaults: every `interval`, segments past their table's age or bytes are deleted.
    /// Nothing to do without history.
    pub fn spawn_history_upkeep(&self, interval: Duration) -> Option<tokio::task::JoinHandle<()>> {
        let history = self.history.clone()?;
        let config = Arc::clone(&self.config);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = crate::agent_config::apply_retention(&history, &config.get().history_retention) {
                    tracing::warn!(error = %e, "history retention from the configuration not applied");
                }
                match history.sweep(loupe_common::time::now_unix_ns()).await {
                    Ok(reports) => {
                        for (table, report) in reports {
                            tracing::debug!(table, ?report, "history swept");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "history sweep failed"),
                }
            }
        }))
    }

    /// The same broker answering the metadata functions of the merges it runs itself (no Kelvin
    /// registered) from `metadata`.
    pub fn with_metadata(mut self, metadata: crate::PemMetadata) -> Self {
        self.engine = Arc::new((*self.engine).clone().with_metadata(Arc::new(metadata)));
        self
    }

    /// The same broker handing out (and changing) `config`.
    pub fn with_config(mut self, config: ConfigHolder) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The agent configuration it hands out.
    pub fn config(&self) -> &ConfigHolder {
        &self.config
    }

    /// Prometheus text for its operational listener: agents by kind and state, the configuration's version
    /// and how many live agents have not applied it yet.
    pub fn metrics_text(&self) -> String {
        use loupe_common::prometheus::{Kind, Writer};
        let statuses = self.registry.statuses();
        let version = self.config.get().version;
        let mut counts: Vec<((&str, &str), u64)> = Vec::new();
        for kind in ["PEM", "KELVIN"] {
            for state in ["AGENT_STATE_HEALTHY", "AGENT_STATE_UNRESPONSIVE"] {
                let n =
                    statuses.iter().filter(|a| (if a.kelvin { "KELVIN" } else { "PEM" }) == kind && a.state == state);
                counts.push(((kind, state), n.count() as u64));
            }
        }
        let behind =
            statuses.iter().filter(|a| a.state == "AGENT_STATE_HEALTHY" && a.config_version != version).count() as u64;
        let mut w = Writer::new();
        w.family(
            "loupe_broker_agents",
            Kind::Gauge,
            "Agents registered, by kind and state.",
            counts.iter().map(|((k, s), n)| ([("kind", *k), ("state", *s)], *n)),
        );
        w.single("loupe_agent_config_version", Kind::Gauge, "Version of the agent configuration in force.", version);
        w.single(
            "loupe_agents_config_pending",
            Kind::Gauge,
            "Live agents that have not applied the agent configuration in force.",
            behind,
        );
        w.finish()
    }

    /// Its agents.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

#[tonic::async_trait]
impl BrokerService for Broker {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<RegisterResponse>, tonic::Status> {
        let req = request.into_inner();
        self.registry.register(&req)?;
        tracing::debug!(agent_id = %req.agent_id, address = %req.address, "heartbeat");
        Ok(Response::new(RegisterResponse {
            heartbeat_interval_ms: i64::try_from(self.registry.heartbeat.as_millis()).unwrap_or(i64::MAX),
            config: Some(self.config.get()),
        }))
    }

    async fn get_config(&self, _: Request<GetConfigRequest>) -> Result<Response<AgentConfig>, tonic::Status> {
        Ok(Response::new(self.config.get()))
    }

    async fn set_config(&self, request: Request<SetConfigRequest>) -> Result<Response<AgentConfig>, tonic::Status> {
        let req = request.into_inner();
        let asked = req.config.unwrap_or_default();
        match self.config.set(asked, req.expected_version) {
            Ok(now) => {
                tracing::info!(
                    version = now.version,
                    "agent configuration changed; agents apply it at their next heartbeat"
                );
                Ok(Response::new(now))
            }
            Err(e @ ConfigError::Conflict { .. }) => Err(tonic::Status::aborted(e.to_string())),
            Err(e @ ConfigError::Save { .. }) => Err(tonic::Status::internal(e.to_string())),
            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
        }
    }
}

type Sender = mpsc::Sender<Result<ExecuteScriptResponse, tonic::Status>>;

fn fail(query_id: &str, code: ErrorCode, message: String) -> ExecuteScriptResponse {
    ExecuteScriptResponse {
        query_id: query_id.to_string(),
        result: Some(execute_script_response::Result::Status(Status {
            code: code as i32,
            message,
            compiler_errors: vec![],
        })),
    }
}

impl Broker {
    /// Runs one query over the cluster; `export_default` is the caller's `EXPORT_DEFAULT` (encoded, empty for
    /// none), handed to the Kelvins that export.
    async fn run(
        &self,
        req: ExecuteScriptRequest,
        query_id: String,
        export_default: Vec<u8>,
        cron_script: Option<String>,
        tx: Sender,
    ) {
        let started = Instant::now();
        if req.query_str.len() > MAX_SCRIPT_BYTES {
            let m = format!("script is {} bytes; the limit is {MAX_SCRIPT_BYTES}", req.query_str.len());
            let _ = tx.send(Ok(fail(&query_id, ErrorCode::InvalidArgument, m))).await;
            return;
        }
        if req.language == loupe_proto::vizierpb::QueryLanguage::Sql as i32 {
            let m = "the query broker runs PxL only; send SQL to one agent's query port".to_string();
            let _ = tx.send(Ok(fail(&query_id, ErrorCode::InvalidArgument, m))).await;
            return;
        }
        let now_ns = if req.now_ns != 0 { req.now_ns } else { loupe_common::time::now_unix_ns() };
        let funcs = crate::query_service::exec_funcs(&req);
        let catalog = self.engine.catalog();
        let (plan, compile_time) =
            match loupe_planner::plan_cluster(&req.query_str, &catalog, &CompileOptions { now_ns }, &funcs) {
                Ok(p) => p,
                Err(diags) => {
                    let status = error_status(&QueryError::Compile(diags));
                    let msg = ExecuteScriptResponse {
                        query_id: query_id.clone(),
                        result: Some(execute_script_response::Result::Status(status)),
                    };
                    let _ = tx.send(Ok(msg)).await;
                    return;
                }
            };
        let timeout = self.limits.timeout.unwrap_or(DEFAULT_QUERY_TIMEOUT);
        // A cron run's outputs are also kept in the broker's history (those not exported), once for the cluster.
        let history = cron_script.as_ref().and(self.history.as_ref());
        let mut kept = history.map(|_| crate::cron_results::KeptRun::default());
        let relay = self.fan_out(&plan, &query_id, timeout, &export_default, kept.as_mut(), &tx);
        // Kelvins answer within the query's deadline; this bound only covers a Kelvin that itself hangs.
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeout + Duration::from_secs(5), relay) => r,
            () = tx.closed() => {
                tracing::info!(query_id, "client went away; query cancelled on every agent");
                return;
            }
        };
        let last = match outcome {
            Err(_) => {
                fail(&query_id, ErrorCode::DeadlineExceeded, format!("query stopped: no answer within {timeout:?}"))
            }
            Ok(Err(status)) => ExecuteScriptResponse {
                query_id: query_id.clone(),
                result: Some(execute_script_response::Result::Status(status)),
            },
            Ok(Ok((rows, warnings, bytes_moved))) => {
                for w in &warnings {
                    tracing::warn!(query_id, warning = %w, "partial answer");
                }
                if let (Some(run), Some(history), Some(script)) = (kept, history, cron_script.as_deref()) {
                    run.write(history, script, now_ns).await;
                }
                ExecuteScriptResponse {
                    query_id: query_id.clone(),
                    result: Some(execute_script_response::Result::Stats(QueryExecutionStats {
                        compilation_time_ns: i64::try_from(compile_time.as_nanos()).unwrap_or(i64::MAX),
                        execution_time_ns: i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                        records_processed: rows as i64,
                        bytes_processed: 0,
                        warnings,
                        bytes_moved: bytes_moved as i64,
                    })),
                }
            }
        };
        let _ = tx.send(Ok(last)).await;
    }

    /// Sends every merge out, relays their answers in output order; returns rows, warnings and bytes moved.
    async fn fan_out(
        &self,
        plan: &ClusterPlan,
        query_id: &str,
        timeout: Duration,
        export_default: &[u8],
        mut kept: Option<&mut crate::cron_results::KeptRun>,
        tx: &Sender,
    ) -> Result<(u64, Vec<String>, u64), Status> {
        let internal = |m: String| Status { code: ErrorCode::Internal as i32, message: m, compiler_errors: vec![] };
        let plan_json = plan.to_json().map_err(|e| internal(e.to_string()))?;
        let pems = self.registry.live(AgentKind::Pem);
        let kelvins = self.registry.live(AgentKind::Kelvin);
        let mut warnings: Vec<String> = self
            .registry
            .lost(AgentKind::Pem)
            .into_iter()
            .map(|(id, addr, silent)| {
                format!(
                    "agent {id} at {addr}: unresponsive (no heartbeat for {}s); its rows are missing",
                    silent.as_secs()
                )
            })
            .collect();
        // Source functions run here, once, for the whole cluster.
        let broker_ids: Vec<usize> =
            (0..plan.streams.len()).filter(|&i| plan.streams[i].runs_on == RunsOn::Broker).collect();
        let mut broker_streams = Vec::new();
        if !broker_ids.is_empty() {
            let engine = (*self.engine).clone().with_cluster_agents(self.registry.statuses());
            let outs =
                engine.execute_streams(plan, &broker_ids, &self.limits).await.map_err(|e| internal(e.to_string()))?;
            for (id, out) in broker_ids.iter().zip(outs) {
                let arrow_batches = out
                    .batches
                    .iter()
                    .map(arrow_ipc::encode_batch)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| internal(e.to_string()))?;
                broker_streams.push(BrokerStream { stream_id: *id as u32, arrow_batches });
            }
        }
        let producers: Vec<Producer> =
            pems.iter().map(|(id, addr)| Producer { agent_id: id.clone(), address: addr.clone() }).collect();
        // Outputs in contiguous runs, one run per Kelvin, so that relaying Kelvin after Kelvin keeps display order.
        let n = plan.merge.outputs.len();
        let runs = kelvins.len().clamp(1, n.max(1));
        let per = n.div_ceil(runs).max(1);
        let mut receivers = Vec::new();
        for (i, chunk) in (0..n).collect::<Vec<_>>().chunks(per).enumerate() {
            let request = MergeRequest {
                query_id: query_id.to_string(),
                plan_json: plan_json.clone(),
                outputs: chunk.iter().map(|&o| o as u32).collect(),
                producers: producers.clone(),
                broker_streams: broker_streams.clone(),
                timeout_ms: timeout.as_millis() as i64,
                export_default: export_default.to_vec(),
            };
            let (mtx, mrx) = mpsc::channel(STREAM_BUFFER);
            match kelvins.get(i) {
                Some((kelvin_id, addr)) => {
                    let client = agent_client(addr, &self.token).map_err(internal)?;
                    let (kelvin_id, addr) = (kelvin_id.clone(), addr.clone());
                    tokio::spawn(async move {
                        let mut client = client;
                        match client.merge(request).await {
                            Ok(stream) => {
                                let mut stream = stream.into_inner();
                                loop {
                                    let next = tokio::select! {
                                        m = stream.message() => m,
                                        () = mtx.closed() => return,
                                    };
                                    match next {
                                        Ok(Some(m)) => {
                                            if mtx.send(Ok(m)).await.is_err() {
                                                return;
                                            }
                                        }
                                        Ok(None) => return,
                                        Err(s) => {
                                            let why = format!("kelvin {kelvin_id} at {addr}: {}", s.message());
                                            let _ = mtx.send(Err(tonic::Status::new(s.code(), why))).await;
                                            return;
                                        }
                                    }
                                }
                            }
                            Err(s) => {
                                let why = format!("kelvin {kelvin_id} at {addr}: {}", s.message());
                                let _ = mtx.send(Err(tonic::Status::new(s.code(), why))).await;
                            }
                        }
                    });
                }
                // No Kelvin registered: the broker merges itself, with the same code.
                None => {
                    let (engine, limits, token, plan) =
                        (Arc::clone(&self.engine), self.limits, self.token.clone(), plan.clone());
                    tokio::spawn(async move { run_merge(&engine, limits, &token, plan, request, mtx).await });
                }
            }
            receivers.push(mrx);
        }
        let (mut rows, mut bytes) = (0u64, 0u64);
        for mut rx in receivers {
            let mut summarized = false;
            while let Some(message) = rx.recv().await {
                match message.map(|m| m.result) {
                    Ok(Some(merge_response::Result::Response(encoded))) => {
                        let mut response = ExecuteScriptResponse::decode(encoded.as_slice())
                            .map_err(|e| internal(format!("bad merge response: {e}")))?;
                        response.query_id = query_id.to_string();
                        if let Some(run) = kept.as_deref_mut() {
                            run.observe(&response);
                        }
                        if tx.send(Ok(response)).await.is_err() {
                            return Ok((rows, warnings, bytes));
                        }
                    }
                    Ok(Some(merge_response::Result::Summary(s))) => {
                        if !s.export_error.is_empty() {
                            // The query fails as on a single node: its rows were not delivered where it said.
                            return Err(Status {
                                code: s.export_error_code,
                                message: s.export_error,
                                compiler_errors: vec![],
                            });
                        }
                        rows += s.rows;
                        bytes += s.bytes_received;
                        for m in s.missing_agents {
                            if !warnings.contains(&m) {
                                warnings.push(m);
                            }
                        }
                        summarized = true;
                    }
                    Ok(None) => {}
                    Err(status) => {
                        let code = match status.code() {
                            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
                            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
                            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
                            _ => ErrorCode::Unavailable,
                        };
                        return Err(Status {
                            code: code as i32,
                            message: status.message().to_string(),
                            compiler_errors: vec![],
                        });
                    }
                }
            }
            if !summarized {
                return Err(internal("a merge ended without its summary".into()));
            }
        }
        // Missing agents are named in the warnings, once each, whatever merge noticed them.
        warnings.sort();
        warnings.dedup();
        Ok((rows, warnings, bytes))
    }
}

#[tonic::async_trait]
impl VizierService for Broker {
    type ExecuteScriptStream = BoxStream<ExecuteScriptResponse>;

    async fn execute_script(
        &self,
        request: Request<ExecuteScriptRequest>,
    ) -> Result<Response<Self::ExecuteScriptStream>, tonic::Status> {
        let export_default = crate::export::default_endpoint_bytes(request.metadata());
        let cron_script = crate::cron_results::cron_script(request.metadata());
        let req = request.into_inner();
        let query_id = new_agent_id();
        tracing::info!(query_id, name = %req.query_name, bytes = req.query_str.len(), "executing script over the cluster");
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let broker = self.clone();
        tokio::spawn(async move { broker.run(req, query_id, export_default, cron_script, tx).await });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn health_check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, tonic::Status> {
        let (pems, kelvins) = (self.registry.live(AgentKind::Pem).len(), self.registry.live(AgentKind::Kelvin).len());
        Ok(Response::new(HealthCheckResponse {
            status: Some(Status { code: ErrorCode::Ok as i32, message: "ok".into(), compiler_errors: vec![] }),
            version: VERSION.to_string(),
            probes: vec![format!("live agents: {pems} PEM, {kelvins} Kelvin")],
        }))
    }
}

fn not_found_routes() -> tonic::service::Routes {
    let base = axum::Router::new().fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    tonic::service::Routes::from(base)
}

/// Serves `broker` on `listener` until `shutdown`: the query API (`VizierService`) and agent registration,
/// both demanding `token`.
pub async fn serve_broker(
    listener: tokio::net::TcpListener,
    broker: Broker,
    token: QueryToken,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    use loupe_proto::clusterpb::broker_service_server::BrokerServiceServer;
    use loupe_proto::vizierpb::vizier_service_server::VizierServiceServer;
    let check = crate::query_auth::RequireToken(token);
    let query =
        VizierServiceServer::new(broker.clone()).max_decoding_message_size(2 << 20).max_encoding_message_size(64 << 20);
    let config = crate::agent_config::ConfigService::Broker(Arc::clone(&broker.config)).into_server();
    let routes = not_found_routes()
        .add_service(InterceptedService::new(query, check.clone()))
        .add_service(InterceptedService::new(config, check.clone()))
        .add_service(InterceptedService::new(BrokerServiceServer::new(broker), check));
    tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
}

/// What a Kelvin needs besides its port.
pub struct KelvinConfig {
    /// Every merge's limits.
    pub limits: ExecOptions,
    /// The vizier's token: demanded of the broker, sent to the PEMs pulled from.
    pub token: QueryToken,
    /// The query broker's address.
    pub broker: String,
    /// The address the broker reaches this Kelvin at.
    pub advertise: String,
    /// Where its link with the broker is reported (its operational routes).
    pub link: Arc<LinkState>,
    /// What the metadata functions of maps over merged rows answer from.
    pub metadata: crate::PemMetadata,
}

/// Serves a Kelvin on `listener` until `shutdown`: merges the broker asks for, registered with the broker
/// and heartbeating (see [`KelvinConfig`]).
pub async fn serve_kelvin(
    listener: tokio::net::TcpListener,
    config: KelvinConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    use loupe_proto::clusterpb::agent_service_server::AgentServiceServer;
    let KelvinConfig { limits, token, broker, advertise, link, metadata } = config;
    let store = Arc::new(loupe_store::Store::new(loupe_store::StoreConfig::default()));
    let engine = Engine::new(store).with_metadata(Arc::new(metadata));
    let node = AgentNode::new(Arc::new(engine), limits, token.clone());
    let service =
        AgentServiceServer::new(node).max_decoding_message_size(256 << 20).max_encoding_message_size(64 << 20);
    let routes = not_found_routes()
        .add_service(InterceptedService::new(service, crate::query_auth::RequireToken(token.clone())));
    let me = RegisterRequest {
        agent_id: new_agent_id(),
        kind: AgentKind::Kelvin as i32,
        address: advertise,
        hostname: AgentInfo::this_host().hostname,
        create_time_ns: loupe_common::time::now_unix_ns(),
        ..RegisterRequest::default()
    };
    let heartbeat = spawn_registration(broker, token, me, None, link);
    let result = tonic::transport::Server::builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await;
    heartbeat.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn register(r: &Registry, id: &str, kind: AgentKind) -> Result<(), tonic::Status> {
        r.register(&RegisterRequest {
            agent_id: id.into(),
            kind: kind as i32,
            address: format!("127.0.0.1:{}", id.len()),
            hostname: "h".into(),
            create_time_ns: 1,
            ..RegisterRequest::default()
        })
    }

    #[test]
    fn a_silent_agent_leaves_the_query_set_and_is_listed_unresponsive() {
        let r = Registry::new(Duration::from_millis(20));
        register(&r, "pem-a", AgentKind::Pem).expect("registers");
        register(&r, "pem-bb", AgentKind::Pem).expect("registers");
        register(&r, "kelvin", AgentKind::Kelvin).expect("registers");
        assert_eq!(r.live(AgentKind::Pem).len(), 2);
        assert_eq!(r.live(AgentKind::Kelvin).len(), 1);
        std::thread::sleep(Duration::from_millis(80));
        register(&r, "pem-a", AgentKind::Pem).expect("heartbeat");
        assert_eq!(r.live(AgentKind::Pem), [("pem-a".to_string(), "127.0.0.1:5".to_string())]);
        assert_eq!(r.lost(AgentKind::Pem).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["pem-bb"]);
        let states: Vec<(String, bool, String)> =
            r.statuses().into_iter().map(|s| (s.info.agent_id, s.kelvin, s.state)).collect();
        assert_eq!(
            states,
            [
                ("kelvin".to_string(), true, "AGENT_STATE_UNRESPONSIVE".to_string()),
                ("pem-a".to_string(), false, "AGENT_STATE_HEALTHY".to_string()),
                ("pem-bb".to_string(), false, "AGENT_STATE_UNRESPONSIVE".to_string()),
            ]
        );
        // A heartbeat keeps the agent's short id.
        let asid = |id: &str| r.statuses().into_iter().find(|s| s.info.agent_id == id).map(|s| s.info.asid);
        let before = asid("pem-a");
        register(&r, "pem-a", AgentKind::Pem).expect("heartbeat");
        assert_eq!(asid("pem-a"), before);
    }

    #[test]
    fn registrations_are_checked_and_bounded() {
        let r = Registry::new(DEFAULT_HEARTBEAT);
        assert_eq!(
            register(&r, "x", AgentKind::Unspecified).expect_err("no kind").code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(register(&r, "", AgentKind::Pem).expect_err("no id").code(), tonic::Code::InvalidArgument);
        assert_eq!(
            register(&r, &"x".repeat(300), AgentKind::Pem).expect_err("long").code(),
            tonic::Code::InvalidArgument
        );
        for i in 0..MAX_AGENTS {
            register(&r, &format!("a{i}"), AgentKind::Pem).expect("registers");
        }
        let full = register(&r, "one-more", AgentKind::Pem).expect_err("full");
        assert_eq!(full.code(), tonic::Code::ResourceExhausted);
        register(&r, "a7", AgentKind::Pem).expect("a known agent still heartbeats");
    }

    #[test]
    fn a_query_deadline_is_the_shorter_of_the_operators_and_the_callers() {
        let limits = ExecOptions { timeout: Some(Duration::from_secs(30)), ..ExecOptions::default() };
        assert_eq!(query_limits(&limits, 5_000).timeout, Some(Duration::from_secs(5)));
        assert_eq!(query_limits(&limits, 60_000).timeout, Some(Duration::from_secs(30)));
        assert_eq!(query_limits(&limits, 0).timeout, Some(Duration::from_secs(30)));
        assert_eq!(query_limits(&ExecOptions::default(), 700).timeout, Some(Duration::from_millis(700)));
    }
}
