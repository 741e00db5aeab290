//! The message bus between viziers and the cloud, and among the cloud's services: subjects laid out as Pixie's
//! (`v2c.<shard>.<vizier id>.<topic>`, `c2v.<vizier id>.<topic>`, see [`subject`]), plain publish/subscribe,
//! queue groups (several VZConn replicas share one subscription), and durable messages that wait for a consumer
//! and its ack.
//!
//! Two backends behind [`Bus`]: [`NatsBus`] (a NATS server, JetStream for durable messages) for the distributed
//! cloud, and [`InProcessBus`] for `loupe up`. Callers cannot tell which: the shared suite in `tests/` runs on
//! both.
//!
//! Owns transport only. Must not know message contents (payloads are opaque bytes; encoding is the caller's) nor
//! any service's rules.

mod memory;
mod nats;
pub mod subject;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use futures::future::BoxFuture;

pub use memory::InProcessBus;
pub use nats::{DurableStreamConfig, NatsBus, NatsBusConfig};

/// One message as delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published on (never a wildcard).
    pub subject: String,
    /// Opaque bytes.
    pub payload: Bytes,
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A subject or pattern that the bus refuses (empty tokens, spaces, a wildcard where none is allowed).
    #[error("invalid subject `{subject}`: {reason}")]
    InvalidSubject {
        /// The subject as given.
        subject: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The payload exceeds the bus's limit.
    #[error("payload of {size} bytes exceeds the bus limit of {limit} bytes")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The server cannot be reached (now); the caller may retry.
    #[error("message bus unavailable: {0}")]
    Unavailable(String),
    /// The server refused or failed the operation.
    #[error("message bus error: {0}")]
    Server(String),
}

/// A stream of messages for one subscription; dropping it unsubscribes.
pub struct Subscription {
    inner: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Subscription {
    fn new(inner: impl Stream<Item = Message> + Send + 'static) -> Self {
        Subscription { inner: Box::pin(inner) }
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// A durable message: it stays with the bus until [`DurableMessage::ack`] is called, and is delivered again to
/// the same consumer (possibly after a restart) if never acked.
pub struct DurableMessage {
    /// The message.
    pub message: Message,
    acker: Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BusError>> + Send>,
}

impl DurableMessage {
    /// Tells the bus the message was handled; it will not be delivered again.
    pub async fn ack(self) -> Result<(), BusError> {
        (self.acker)().await
    }
}

impl std::fmt::Debug for DurableMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableMessage").field("message", &self.message).finish_non_exhaustive()
    }
}

/// A stream of durable messages for one named consumer.
pub struct DurableSubscription {
    inner: Pin<Box<dyn Stream<Item = DurableMessage> + Send>>,
}

impl DurableSubscription {
    fn new(inner: impl Stream<Item = DurableMessage> + Send + 'static) -> Self {
        DurableSubscription { inner: Box::pin(inner) }
    }
}

impl Stream for DurableSubscription {
    type Item = DurableMessage;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DurableMessage>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The bus. Subjects are dot-separated tokens; patterns may use `*` (one token) and a final `>` (one or more).
#[async_trait::async_trait]
pub trait Bus: Send + Sync + 'static {
    /// `"nats"` or `"in-process"`, for logs and readiness.
    fn backend(&self) -> &'static str;

    /// Whether the bus can deliver right now (a NATS client may be reconnecting).
    fn is_connected(&self) -> bool;

    /// Sends `payload` to every current subscriber of a matching pattern (at most once, no persistence).
    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Receives every message published on a subject matching `pattern` from now on.
    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError>;

    /// Like [`Bus::subscribe`], but each message goes to one member of `group` only.
    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription, BusError>;

    /// Publishes a message that is kept until a durable consumer acks it (or it ages out), and returns once the
    /// bus has stored it.
    async fn publish_durable(&self, subject: &str, payload: Bytes) -> Result<(), BusError>;

    /// Delivers the durable messages matching `pattern` to the consumer named `consumer`, from where it left off:
    /// messages published while no such consumer ran are delivered when it starts; unacked ones come again.
    async fn consume_durable(&self, consumer: &str, pattern: &str) -> Result<DurableSubscription, BusError>;
}
