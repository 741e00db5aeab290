//! The cloud side of a passthrough query: publish a request for one vizier on the bus and stream its replies.
//!
//! `execute` subscribes to `v2c.<shard>.<id>.reply.<request id>` first, then publishes the request on
//! `c2v.<id>.query`. The vizier's connector acknowledges at once (`accepted`); no acknowledgement within
//! `accept_timeout` means the vizier is not connected, which the caller gets as
//! [`PassthroughError::NotConnected`] instead of a long wait. Replies carry a sequence number, so a reply the
//! bus dropped is an error rather than a silently missing batch. Dropping the [`ReplyStream`] before its end,
//! or the overall timeout, sends `cancel` to the vizier.
//!
//! Owns the request/reply protocol on the bus. Must not decode the query API's messages: requests and
//! responses are opaque bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use loupe_bus::{Bus, BusError, Subscription, subject};
use loupe_proto::vzconnpb::{BusEnvelope, QueryCancel, QueryReply, QueryRequest, query_reply};
use prost::Message as _;
use tokio::time::Instant;
use uuid::Uuid;

use crate::topic;

/// What the vizier is given on top of the request's timeout: the cloud's own deadline ends the request first (and
/// the caller learns that it was the cloud's limit, naming the vizier), and the vizier stops by itself shortly
/// after if the `cancel` is lost.
pub const VIZIER_GRACE: Duration = Duration::from_secs(1);

/// Passthrough settings.
#[derive(Debug, Clone)]
pub struct PassthroughConfig {
    /// How long the vizier has to acknowledge a request before it counts as not connected.
    pub accept_timeout: Duration,
    /// The longest a request may run, replies included; the vizier is told this plus [`VIZIER_GRACE`].
    pub timeout: Duration,
}

impl Default for PassthroughConfig {
    /// 5 s to acknowledge, 5 minutes in all.
    fn default() -> Self {
        PassthroughConfig { accept_timeout: Duration::from_secs(5), timeout: Duration::from_secs(300) }
    }
}

/// Why a passthrough request failed.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// Nothing acknowledged the request: the vizier has no bridge open.
    #[error("vizier {vizier_id} is not connected")]
    NotConnected {
        /// The vizier asked.
        vizier_id: Uuid,
    },
    /// The request ran out of time.
    #[error("the vizier did not finish within {after:?}")]
    TimedOut {
        /// The limit.
        after: Duration,
    },
    /// A reply is missing (the bus dropped it); the results would be incomplete.
    #[error("a reply from the vizier was lost; the results are incomplete")]
    ReplyLost,
    /// The vizier answered with an error.
    #[error("{message}")]
    Vizier {
        /// Its gRPC code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
    /// A reply that does not follow the protocol.
    #[error("malformed reply from the vizier: {0}")]
    BadReply(&'static str),
    /// The bus failed.
    #[error(transparent)]
    Bus(#[from] BusError),
}

impl From<PassthroughError> for tonic::Status {
    fn from(e: PassthroughError) -> Self {
        let message = e.to_string();
        match e {
            PassthroughError::NotConnected { .. } => tonic::Status::unavailable(message),
            PassthroughError::TimedOut { .. } => tonic::Status::deadline_exceeded(message),
            PassthroughError::Vizier { code, .. } => tonic::Status::new(code, message),
            PassthroughError::Bus(BusError::Unavailable(_)) => tonic::Status::unavailable(message),
            PassthroughError::ReplyLost | PassthroughError::BadReply(_) | PassthroughError::Bus(_) => {
                tonic::Status::internal(message)
            }
        }
    }
}

/// Runs queries on viziers over the bus. Cheap to clone.
#[derive(Clone)]
pub struct Passthrough {
    bus: Arc<dyn Bus>,
    config: PassthroughConfig,
}

impl Passthrough {
    /// A client on `bus`.
    pub fn new(bus: Arc<dyn Bus>, config: PassthroughConfig) -> Self {
        Passthrough { bus, config }
    }

    /// Sends `request` (an encoded ExecuteScriptRequest of the query API) to vizier `vizier_id`; the stream
    /// yields each encoded ExecuteScriptResponse and ends after the vizier's last one, or with an error.
    pub async fn execute(&self, vizier_id: Uuid, request: Bytes) -> Result<ReplyStream, PassthroughError> {
        self.execute_method(vizier_id, "", request).await
    }

    /// Like [`Passthrough::execute`], for the gRPC `method` of the vizier's query port (e.g. Pixie's
    /// `/px.api.vizierpb.VizierService/ExecuteScript`; empty is Loupe's ExecuteScript): `request` and the replies
    /// are that method's encoded messages. The vizier refuses a method it does not allow.
    pub async fn execute_method(
        &self,
        vizier_id: Uuid,
        method: &str,
        request: Bytes,
    ) -> Result<ReplyStream, PassthroughError> {
        let request_id = Uuid::new_v4().to_string();
        let id = vizier_id.to_string();
        let mut replies = self.bus.subscribe(&subject::v2c(&id, &topic::reply(&request_id))).await?;
        let query = QueryRequest {
            request_id: request_id.clone(),
            execute_script_request: request.to_vec(),
            timeout_ms: (self.config.timeout + VIZIER_GRACE).as_millis() as u64,
            method: method.to_owned(),
        };
        let envelope =
            BusEnvelope { session_id: request_id.clone(), payload: query.encode_to_vec(), ..Default::default() };
        let deadline = Instant::now() + self.config.timeout;
        self.bus.publish(&subject::c2v(&id, topic::QUERY), envelope.encode_to_vec().into()).await?;
        // From here on the vizier may be running it: a failure or a drop must tell it to stop.
        let guard = CancelGuard { bus: Arc::clone(&self.bus), vizier_id: id, request_id, armed: true };
        let first = match tokio::time::timeout(self.config.accept_timeout, replies.next()).await {
            Ok(Some(m)) => decode(&m.payload)?,
            Ok(None) => return Err(BusError::Unavailable("reply subscription ended".into()).into()),
            Err(_) => return Err(PassthroughError::NotConnected { vizier_id }),
        };
        if first.sequence != 0 || !matches!(first.reply, Some(query_reply::Reply::Accepted(true))) {
            return Err(PassthroughError::BadReply("the first reply is not an acknowledgement"));
        }
        let state = State {
            replies,
            guard,
            next_sequence: 1,
            partial: Vec::new(),
            deadline,
            timeout: self.config.timeout,
            finished: false,
        };
        Ok(ReplyStream { inner: Box::pin(futures::stream::unfold(state, next_reply)) })
    }
}

fn decode(payload: &[u8]) -> Result<QueryReply, PassthroughError> {
    let envelope = BusEnvelope::decode(payload).map_err(|_| PassthroughError::BadReply("undecodable envelope"))?;
    QueryReply::decode(envelope.payload.as_slice()).map_err(|_| PassthroughError::BadReply("undecodable reply"))
}

struct State {
    replies: Subscription,
    guard: CancelGuard,
    next_sequence: u64,
    partial: Vec<u8>,
    deadline: Instant,
    timeout: Duration,
    finished: bool,
}

async fn next_reply(mut s: State) -> Option<(Result<Bytes, PassthroughError>, State)> {
    if s.finished {
        return None;
    }
    loop {
        // Past the deadline, replies already queued do not count: the limit is on the whole request.
        if Instant::now() >= s.deadline {
            let after = s.timeout;
            return s.fail(PassthroughError::TimedOut { after });
        }
        let m = match tokio::time::timeout_at(s.deadline, s.replies.next()).await {
            Ok(Some(m)) => m,
            Ok(None) => return s.fail(BusError::Unavailable("reply subscription ended".into()).into()),
            Err(_) => {
                let after = s.timeout;
                return s.fail(PassthroughError::TimedOut { after });
            }
        };
        let reply = match decode(&m.payload) {
            Ok(r) => r,
            Err(e) => return s.fail(e),
        };
        if reply.sequence != s.next_sequence {
            return s.fail(PassthroughError::ReplyLost);
        }
        s.next_sequence += 1;
        match reply.reply {
            Some(query_reply::Reply::Response(bytes)) => {
                s.partial.extend_from_slice(&bytes);
                if !reply.more {
                    let whole = Bytes::from(std::mem::take(&mut s.partial));
                    return Some((Ok(whole), s));
                }
            }
            Some(query_reply::Reply::Done(status)) => {
                s.finished = true;
                s.guard.armed = false;
                if status.code == 0 {
                    return None;
                }
                let e = PassthroughError::Vizier { code: tonic::Code::from_i32(status.code), message: status.message };
                return Some((Err(e), s));
            }
            Some(query_reply::Reply::Accepted(_)) | None => {
                return s.fail(PassthroughError::BadReply("an acknowledgement after the first reply"));
            }
        }
    }
}

impl State {
    /// Ends the stream with `e`; the guard stays armed, so the vizier is told to stop.
    fn fail(mut self, e: PassthroughError) -> Option<(Result<Bytes, PassthroughError>, State)> {
        self.finished = true;
        Some((Err(e), self))
    }
}

/// The replies of one request. Dropping it before the end cancels the request on the vizier.
pub struct ReplyStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes, PassthroughError>> + Send>>,
}

impl Stream for ReplyStream {
    type Item = Result<Bytes, PassthroughError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Sends `cancel` for a request when dropped while armed.
struct CancelGuard {
    bus: Arc<dyn Bus>,
    vizier_id: String,
    request_id: String,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let bus = Arc::clone(&self.bus);
        let subject = subject::c2v(&self.vizier_id, topic::CANCEL);
        let request_id = std::mem::take(&mut self.request_id);
        let cancel = QueryCancel { request_id: request_id.clone() };
        let envelope =
            BusEnvelope { session_id: request_id.clone(), payload: cancel.encode_to_vec(), ..Default::default() };
        runtime.spawn(async move {
            if let Err(error) = bus.publish(&subject, envelope.encode_to_vec().into()).await {
                tracing::warn!(%error, request_id, "cancel not sent to the vizier");
            }
        });
    }
}
