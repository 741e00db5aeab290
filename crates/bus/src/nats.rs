//! `NatsBus`: the bus on a NATS server. Core NATS for publish/subscribe and queue groups; JetStream for durable
//! messages (one file-backed stream with an age and size bound, one durable pull consumer per name, explicit
//! acks). The client reconnects by itself with backoff and resubscribes, so a restarted server costs a pause, not
//! the subscriptions.
//!
//! Owns the NATS client's configuration and the mapping of its errors; must not hold messages itself.

use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::OnceCell;

use crate::subject::{matches, validate_pattern, validate_subject};
use crate::{Bus, BusError, DurableMessage, DurableSubscription, Message, Subscription};

/// The JetStream stream that holds durable messages.
#[derive(Debug, Clone)]
pub struct DurableStreamConfig {
    /// Stream name.
    pub stream: String,
    /// Subjects it captures; [`Bus::publish_durable`] refuses a subject outside them.
    pub subjects: Vec<String>,
    /// Messages older than this are dropped (Pixie's `V2CStream` keeps 15 minutes).
    pub max_age: Duration,
    /// Size bound of the stream; the oldest messages go first.
    pub max_bytes: i64,
    /// How long a delivered message may stay unacked before it is delivered again (to the same consumer name,
    /// for instance after the consumer's process restarted).
    pub ack_wait: Duration,
}

impl Default for DurableStreamConfig {
    fn default() -> Self {
        DurableStreamConfig {
            stream: "LOUPE_DURABLE".into(),
            subjects: vec!["durable.>".into()],
            max_age: Duration::from_secs(15 * 60),
            max_bytes: 256 << 20,
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// How to reach NATS.
#[derive(Debug, Clone)]
pub struct NatsBusConfig {
    /// `nats://host:port` (several comma-separated for a cluster).
    pub url: String,
    /// The client name the server shows (`loupe-vzconn`, ...).
    pub client_name: String,
    /// The durable stream.
    pub durable: DurableStreamConfig,
}

impl NatsBusConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        NatsBusConfig { url: url.into(), client_name: "loupe".into(), durable: DurableStreamConfig::default() }
    }
}

/// A bus on a NATS server.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    durable: DurableStreamConfig,
    stream: std::sync::Arc<OnceCell<jetstream::stream::Stream>>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus").field("state", &self.client.connection_state()).finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects to NATS. When the server is down the client keeps trying in the background (with backoff) and
    /// calls fail with [`BusError::Unavailable`] until it is back, so a cloud service can start before NATS.
    pub async fn connect(config: NatsBusConfig) -> Result<NatsBus, BusError> {
        let client = async_nats::ConnectOptions::new()
            .name(&config.client_name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("connected to NATS"),
                    async_nats::Event::Disconnected => tracing::warn!("disconnected from NATS; reconnecting"),
                    other => tracing::debug!(event = %other, "NATS client event"),
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot connect to NATS at {}: {e}", config.url)))?;
        let jetstream = jetstream::new(client.clone());
        Ok(NatsBus { client, jetstream, durable: config.durable, stream: Default::default() })
    }

    /// Waits until the client is connected, at most `timeout`; whether it is.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// The durable stream, created (or found) on first use, so that a server still starting delays only durable
    /// traffic.
    async fn stream(&self) -> Result<&jetstream::stream::Stream, BusError> {
        self.stream
            .get_or_try_init(|| async {
                self.jetstream
                    .get_or_create_stream(jetstream::stream::Config {
                        name: self.durable.stream.clone(),
                        subjects: self.durable.subjects.clone(),
                        max_age: self.durable.max_age,
                        max_bytes: self.durable.max_bytes,
                        storage: jetstream::stream::StorageType::File,
                        discard: jetstream::stream::DiscardPolicy::Old,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| self.failure(e))
            })
            .await
    }

    fn check_durable_subject(&self, subject: &str) -> Result<(), BusError> {
        if self.durable.subjects.iter().any(|p| matches(p, subject)) {
            Ok(())
        } else {
            Err(BusError::InvalidSubject { subject: subject.into(), reason: "outside the durable stream's subjects" })
        }
    }

    fn check_payload(&self, payload: &Bytes) -> Result<(), BusError> {
        // Until the first connection the server's limit is unknown (0): assume its default, 1 MiB.
        let limit = match self.client.server_info().max_payload {
            0 => crate::memory::MAX_PAYLOAD,
            n => n,
        };
        if payload.len() > limit {
            return Err(BusError::TooLarge { size: payload.len(), limit });
        }
        Ok(())
    }

    /// Maps a client error: while disconnected every failure is "unavailable" (retry later).
    fn failure(&self, error: impl std::fmt::Display) -> BusError {
        if self.is_connected() { BusError::Server(error.to_string()) } else { BusError::Unavailable(error.to_string()) }
    }
}

#[async_trait::async_trait]
impl Bus for NatsBus {
    fn backend(&self) -> &'static str {
        "nats"
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject)?;
        self.check_payload(&payload)?;
        self.client.publish(subject.to_string(), payload).await.map_err(|e| self.failure(e))
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        validate_pattern(pattern)?;
        let sub = self.client.subscribe(pattern.to_string()).await.map_err(|e| self.failure(e))?;
        // The server learns of the subscription with the next flush; without it a publish right after
        // subscribing could miss it, which the in-process bus never does.
        self.client.flush().await.map_err(|e| self.failure(e))?;
        Ok(Subscription::new(sub.map(|m| Message { subject: m.subject.to_string(), payload: m.payload })))
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription, BusError> {
        validate_pattern(pattern)?;
        validate_subject(group)?;
        let sub =
            self.client.queue_subscribe(pattern.to_string(), group.to_string()).await.map_err(|e| self.failure(e))?;
        self.client.flush().await.map_err(|e| self.failure(e))?;
        Ok(Subscription::new(sub.map(|m| Message { subject: m.subject.to_string(), payload: m.payload })))
    }

    async fn publish_durable(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject)?;
        self.check_durable_subject(subject)?;
        self.check_payload(&payload)?;
        self.stream().await?;
        let ack = self.jetstream.publish(subject.to_string(), payload).await.map_err(|e| self.failure(e))?;
        ack.await.map_err(|e| self.failure(e))?;
        Ok(())
    }

    async fn consume_durable(&self, consumer: &str, pattern: &str) -> Result<DurableSubscription, BusError> {
        validate_subject(consumer)?;
        validate_pattern(pattern)?;
        let stream = self.stream().await?;
        let consumer: jetstream::consumer::PullConsumer = stream
            .get_or_create_consumer(
                consumer,
                jetstream::consumer::pull::Config {
                    durable_name: Some(consumer.to_string()),
                    filter_subject: pattern.to_string(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.durable.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| self.failure(e))?;
        let messages = consumer.messages().await.map_err(|e| self.failure(e))?;
        Ok(DurableSubscription::new(messages.filter_map(|next| async move {
            match next {
                Ok(m) => {
                    let message = Message { subject: m.subject.to_string(), payload: m.payload.clone() };
                    Some(DurableMessage {
                        message,
                        acker: Box::new(move || {
                            Box::pin(async move { m.ack().await.map_err(|e| BusError::Unavailable(e.to_string())) })
                        }),
                    })
                }
                Err(error) => {
                    // Heartbeats missed while the server restarts: the stream recovers on its own.
                    tracing::debug!(%error, "durable consumer: transient error");
                    None
                }
            }
        })))
    }
}
