//! The connector's life: (re)connect with backoff, register, open the bridge, heartbeat, dispatch queries.
//!
//! One session is one bridge. Each starts with `RegisterVizier` when a deploy key is configured (passing the
//! saved identity, so the vizier keeps its id), or goes straight to the bridge with the saved credential.
//! A refused saved identity (the cloud forgot it or no longer accepts it) is dropped and the vizier registers
//! anew. A session ends when the cloud closes the bridge, the connection breaks or the connector stops; the
//! queries it carried are stopped with it.
//!
//! Owns the session loop. Must not decode query messages (that is `query`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use loupe_proto::vzconnpb::vz_conn_service_client::VzConnServiceClient;
use loupe_proto::vzconnpb::{
    BridgeMessage, BridgeRegister, BridgeRegisterAck, Heartbeat, QueryCancel, QueryReply, QueryRequest, QueryStatus,
    RegisterVizierRequest, VizierStatus, query_reply,
};
use prost::Message as _;
use tokio::sync::{mpsc, watch};
use tonic::Code;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::cron::{CronHandle, CronSettings};
use crate::identity::{Identity, Store};
use crate::query::QueryClient;
use crate::{ConnectorConfig, ConnectorState, wire};

/// Messages queued toward the cloud.
const OUTBOUND_BUFFER: usize = 256;

/// Runs sessions until `stop` turns true.
pub(crate) async fn run(
    config: ConnectorConfig,
    mut identity: Store,
    state: watch::Sender<ConnectorState>,
    mut stop: watch::Receiver<bool>,
) {
    let query = match QueryClient::new(&config.query_addr, config.query_channel.clone(), &config.query_token) {
        Ok(q) => q,
        Err(error) => {
            tracing::error!(%error, "cannot use the query service address; the connector stops");
            return;
        }
    };
    let settings = CronSettings {
        data_dir: config.data_dir.clone(),
        request_interval: config.cron_request_interval,
        max_pending: config.cron_max_pending,
        latest: config.latest_results.clone(),
    };
    let cron = crate::cron::start(settings, query.clone());
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    loop {
        let outcome = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = session(&config, &mut identity, &query, &state, &cron) => r,
        };
        cron.unlinked();
        state.send_modify(|s| s.connected = false);
        let Outcome { bridged, error } = outcome;
        if bridged {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(error = %error, retry_in = ?delay, "cloud connection ended; reconnecting");
        state.send_modify(|s| s.last_error = Some(error));
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// How a session ended: whether its bridge opened, and why it ended.
struct Outcome {
    bridged: bool,
    error: String,
}

fn ended(error: impl std::fmt::Display) -> Outcome {
    Outcome { bridged: false, error: error.to_string() }
}

async fn session(
    config: &ConnectorConfig,
    ident: &mut Store,
    query: &QueryClient,
    state: &watch::Sender<ConnectorState>,
    cron: &CronHandle,
) -> Outcome {
    let channel = match crate::tls::endpoint(config) {
        Ok(e) => e,
        Err(e) => return ended(e),
    };
    let channel = match channel.connect().await {
        Ok(c) => c,
        Err(e) => return ended(format!("cannot reach the cloud at {}: {}", config.cloud_addr, crate::tls::chain(&e))),
    };
    let limit = config.max_message_bytes + 1024;
    let mut client =
        VzConnServiceClient::new(channel).max_decoding_message_size(limit).max_encoding_message_size(limit);
    if let Some(key) = &config.deploy_key {
        match register(config, ident, &mut client, key).await {
            Ok(()) => state.send_modify(|s| s.refused = None),
            Err((error, code)) => {
                if matches!(code, Some(Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument)) {
                    state.send_modify(|s| s.refused = Some(error.clone()));
                }
                return ended(error);
            }
        }
    }
    let identity = ident.identity().clone();
    state.send_modify(|s| s.vizier = Some((identity.vizier_id.clone(), identity.vizier_name.clone())));
    bridge(config, &identity, client, query, state, cron).await
}

async fn register(
    config: &ConnectorConfig,
    ident: &mut Store,
    client: &mut VzConnServiceClient<Channel>,
    key: &str,
) -> Result<(), (String, Option<Code>)> {
    let saved = ident.identity().clone();
    let attempt = |previous: bool| {
        let mut request = tonic::Request::new(RegisterVizierRequest {
            cluster_name: config.cluster_name.clone(),
            cluster_uid: saved.cluster_uid.clone(),
            version: config.version.clone(),
            previous_vizier_id: if previous { saved.vizier_id.clone() } else { String::new() },
            previous_credential: if previous { saved.credential.clone() } else { String::new() },
        });
        let key = key.parse().map_err(|_| tonic::Status::invalid_argument("the deploy key is not ASCII"));
        let mut client = client.clone();
        async move {
            request.metadata_mut().insert(wire::DEPLOY_KEY_METADATA, key?);
            client.register_vizier(request).await.map(tonic::Response::into_inner)
        }
    };
    let has_previous = !saved.vizier_id.is_empty();
    let answer = match attempt(has_previous).await {
        Err(status) if has_previous && matches!(status.code(), Code::FailedPrecondition | Code::PermissionDenied) => {
            tracing::warn!(vizier_id = %saved.vizier_id, reason = status.message(), "saved identity refused; registering anew");
            attempt(false).await
        }
        other => other,
    }
    .map_err(|s| (format!("registration refused: {} ({:?})", s.message(), s.code()), Some(s.code())))?;
    if answer.vizier_id != saved.vizier_id {
        tracing::info!(vizier_id = %answer.vizier_id, name = %answer.vizier_name, "registered with the cloud");
    }
    let next = Identity {
        cluster_uid: saved.cluster_uid,
        vizier_id: answer.vizier_id,
        vizier_name: answer.vizier_name,
        credential: answer.credential,
    };
    if &next != ident.identity() {
        ident.save(next).map_err(|e| (e.to_string(), None))?;
    }
    Ok(())
}

/// The queries running on this bridge, by request id. A std mutex is enough: it is never held across an await.
type Running = Arc<std::sync::Mutex<HashMap<String, tokio::task::AbortHandle>>>;

async fn bridge(
    config: &ConnectorConfig,
    identity: &Identity,
    mut client: VzConnServiceClient<Channel>,
    query: &QueryClient,
    state: &watch::Sender<ConnectorState>,
    cron: &CronHandle,
) -> Outcome {
    let (out, rx) = mpsc::channel::<BridgeMessage>(OUTBOUND_BUFFER);
    let register = BridgeRegister {
        vizier_id: identity.vizier_id.clone(),
        cluster_uid: identity.cluster_uid.clone(),
        cluster_name: config.cluster_name.clone(),
        version: config.version.clone(),
    };
    let first =
        BridgeMessage { topic: wire::REGISTER.into(), session_id: String::new(), payload: register.encode_to_vec() };
    if out.send(first).await.is_err() {
        return ended("bridge queue closed");
    }
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    for (key, value) in
        [(wire::VIZIER_ID_METADATA, &identity.vizier_id), (wire::VIZIER_CREDENTIAL_METADATA, &identity.credential)]
    {
        match value.parse() {
            Ok(v) => {
                request.metadata_mut().insert(key, v);
            }
            Err(_) => return ended("the saved identity is not ASCII"),
        }
    }
    let mut inbound = match client.bridge(request).await {
        Ok(r) => r.into_inner(),
        Err(s) => return ended(format!("bridge refused: {} ({:?})", s.message(), s.code())),
    };
    let ack = match tokio::time::timeout(config.handshake_timeout, inbound.message()).await {
        Err(_) => return ended("no registerAck from the cloud in time"),
        Ok(Err(s)) => return ended(format!("bridge refused: {} ({:?})", s.message(), s.code())),
        Ok(Ok(None)) => return ended("the cloud closed the bridge before registerAck"),
        Ok(Ok(Some(m))) => m,
    };
    let ack = match (ack.topic.as_str(), BridgeRegisterAck::decode(ack.payload.as_slice())) {
        (wire::REGISTER_ACK, Ok(a)) if a.code == 0 => a,
        (wire::REGISTER_ACK, Ok(a)) => return ended(format!("registration on the bridge refused: {}", a.message)),
        _ => return ended("the cloud's first bridge message is not registerAck"),
    };
    tracing::info!(vizier_id = %identity.vizier_id, name = %ack.vizier_name, "bridge to the cloud open");
    state.send_modify(|s| {
        s.connected = true;
        s.bridges_opened += 1;
    });

    if let Some(m) = crate::certs::request_message(&config.data_dir) {
        let _ = out.send(m).await;
    }
    let running: Running = Arc::default();
    cron.linked(out.clone());
    let error = serve(config, identity, &mut inbound, &out, query, state, &running, cron).await;
    for (_, task) in running.lock().map(|mut m| std::mem::take(&mut *m)).unwrap_or_default() {
        task.abort();
    }
    Outcome { bridged: true, error }
}

#[expect(clippy::too_many_arguments, reason = "the bridge's parts, each borrowed from `bridge`")]
async fn serve(
    config: &ConnectorConfig,
    identity: &Identity,
    inbound: &mut tonic::Streaming<BridgeMessage>,
    out: &mpsc::Sender<BridgeMessage>,
    query: &QueryClient,
    state: &watch::Sender<ConnectorState>,
    running: &Running,
    cron: &CronHandle,
) -> String {
    let mut tick = tokio::time::interval(config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let beat = heartbeat(config, query, sequence).await;
                sequence += 1;
                let m = BridgeMessage { topic: wire::HEARTBEAT.into(), session_id: String::new(), payload: beat.encode_to_vec() };
                if out.send(m).await.is_err() {
                    return "bridge queue closed".into();
                }
                state.send_modify(|s| s.heartbeats_sent += 1);
            }
            m = inbound.message() => match m {
                Ok(Some(m)) if m.topic == wire::CRON_SYNC || m.topic == wire::CRON_ACK => cron.deliver(m),
                Ok(Some(m)) if m.topic == wire::DNS_CERT => crate::certs::keep(&config.data_dir, &m.payload, state),
                Ok(Some(m)) => dispatch(config, identity, m, out, query, running),
                Ok(None) => return "the cloud closed the bridge".into(),
                Err(s) => return format!("bridge ended: {} ({:?})", s.message(), s.code()),
            },
        }
    }
}

async fn heartbeat(config: &ConnectorConfig, query: &QueryClient, sequence: u64) -> Heartbeat {
    let health = query.health(Duration::from_secs(2).min(config.heartbeat_interval)).await;
    let (status, status_message, num_agents) = match health {
        Ok(()) => (VizierStatus::Healthy, String::new(), 1),
        Err(why) => (VizierStatus::Unhealthy, why, 0),
    };
    Heartbeat {
        time_ns: loupe_common::time::now_unix_ns(),
        sequence_number: sequence,
        status: status as i32,
        status_message,
        num_agents,
        version: config.version.clone(),
        address: config.advertise_addr.clone(),
    }
}

fn dispatch(
    config: &ConnectorConfig,
    identity: &Identity,
    m: BridgeMessage,
    out: &mpsc::Sender<BridgeMessage>,
    query: &QueryClient,
    running: &Running,
) {
    match m.topic.as_str() {
        wire::QUERY => {
            let Ok(request) = QueryRequest::decode(m.payload.as_slice()) else {
                return tracing::warn!("undecodable query request dropped");
            };
            // The id becomes a topic token: anything else would make the cloud close the bridge.
            let id = request.request_id.clone();
            if id.is_empty()
                || id.len() > 64
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return tracing::warn!("query request with an unusable request id dropped");
            }
            let key = id.clone();
            let Ok(mut map) = running.lock() else { return };
            let busy = map.len() >= config.max_concurrent_queries;
            let replies = Replies {
                out: out.clone(),
                topic: wire::reply(&id),
                request_id: id.clone(),
                sequence: 0,
                chunk: config.max_message_bytes / 2,
            };
            let (query, running_for_task) = (query.clone(), Arc::clone(running));
            let task = tokio::spawn(async move {
                run_query(replies, query, request, busy).await;
                if let Ok(mut m) = running_for_task.lock() {
                    m.remove(&id);
                }
            });
            // The map stays locked until the task is in it, so a query that ends at once cannot leave a stale
            // entry behind by removing itself first.
            if !busy {
                map.insert(key, task.abort_handle());
            }
            tracing::debug!(vizier_id = %identity.vizier_id, "query started");
        }
        wire::CANCEL => {
            let Ok(cancel) = QueryCancel::decode(m.payload.as_slice()) else { return };
            if let Some(task) = running.lock().ok().and_then(|mut m| m.remove(&cancel.request_id)) {
                task.abort();
                tracing::info!(request_id = %cancel.request_id, "query cancelled by the cloud");
            }
        }
        other => tracing::debug!(topic = other, "message on an unknown topic ignored"),
    }
}

/// The replies of one request, numbered.
struct Replies {
    out: mpsc::Sender<BridgeMessage>,
    topic: String,
    request_id: String,
    sequence: u64,
    chunk: usize,
}

impl Replies {
    async fn send(&mut self, reply: query_reply::Reply, more: bool) -> bool {
        let message =
            QueryReply { request_id: self.request_id.clone(), sequence: self.sequence, reply: Some(reply), more };
        self.sequence += 1;
        let m = BridgeMessage {
            topic: self.topic.clone(),
            session_id: self.request_id.clone(),
            payload: message.encode_to_vec(),
        };
        self.out.send(m).await.is_ok()
    }

    async fn done(&mut self, code: Code, message: String) {
        self.send(query_reply::Reply::Done(QueryStatus { code: code as i32, message }), false).await;
    }
}

async fn run_query(mut replies: Replies, query: QueryClient, request: QueryRequest, busy: bool) {
    if !replies.send(query_reply::Reply::Accepted(true), false).await {
        return;
    }
    if busy {
        return replies
            .done(Code::ResourceExhausted, "this vizier runs too many queries at once; retry later".into())
            .await;
    }
    let timeout = (request.timeout_ms > 0).then(|| Duration::from_millis(request.timeout_ms));
    let started = if request.method.is_empty() {
        query.execute(&request.execute_script_request, timeout).await.map(|s| s.boxed())
    } else {
        // A named method is forwarded as bytes, only when it is one of the query methods allowed.
        match crate::query::FORWARDED_METHODS.iter().find(|m| **m == request.method) {
            Some(method) => {
                let bytes = bytes::Bytes::from(request.execute_script_request);
                query.forward(method, bytes, timeout).await.map(|s| s.boxed())
            }
            None => Err(tonic::Status::unimplemented(format!(
                "this vizier does not forward queries to {:?}",
                request.method
            ))),
        }
    };
    let mut stream = match started {
        Ok(s) => s,
        Err(status) => return replies.done(status.code(), status.message().to_owned()).await,
    };
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => {
                // A response larger than one bus message goes in pieces, reassembled by the cloud.
                let pieces = bytes.len().div_ceil(replies.chunk).max(1);
                for (i, piece) in bytes.chunks(replies.chunk.max(1)).enumerate() {
                    if !replies.send(query_reply::Reply::Response(piece.to_vec()), i + 1 < pieces).await {
                        return;
                    }
                }
                if bytes.is_empty() && !replies.send(query_reply::Reply::Response(Vec::new()), false).await {
                    return;
                }
            }
            Err(status) => return replies.done(status.code(), status.message().to_owned()).await,
        }
    }
    replies.done(Code::Ok, String::new()).await;
}
