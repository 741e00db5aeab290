//! `InProcessBus`: the bus inside one process (`loupe up`), with NATS's semantics: wildcard patterns, queue
//! groups served round-robin, at-most-once delivery to slow subscribers (a full subscriber queue drops and
//! counts, as NATS does with slow consumers), and a bounded durable log per process.
//!
//! Owns in-memory delivery only; must not block a publisher on a subscriber.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::subject::{matches, validate_pattern, validate_subject};
use crate::{Bus, BusError, DurableMessage, DurableSubscription, Message, Subscription};

/// Largest payload, the same as a NATS server's default, so both backends refuse the same messages.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Messages a subscriber may have waiting before newer ones are dropped for it.
const SUBSCRIBER_CAPACITY: usize = 8192;

/// Durable messages kept at most, and for how long (JetStream's limits in the NATS backend).
const DURABLE_MAX_MESSAGES: usize = 100_000;
const DURABLE_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// The in-process bus. Clones share one bus.
#[derive(Clone, Default)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    durable_published: Notify,
    dropped: AtomicU64,
}

#[derive(Default)]
struct State {
    subs: Vec<Sub>,
    /// Round-robin position per queue group.
    next_member: HashMap<String, usize>,
    durable: VecDeque<Durable>,
    next_seq: u64,
    /// Sequence numbers each durable consumer has acked.
    acked: HashMap<String, HashSet<u64>>,
}

struct Sub {
    pattern: String,
    group: Option<String>,
    tx: mpsc::Sender<Message>,
}

struct Durable {
    seq: u64,
    at: Instant,
    message: Message,
}

impl InProcessBus {
    /// A new, empty bus.
    pub fn new() -> Self {
        InProcessBus::default()
    }

    /// Messages dropped because a subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn add(&self, pattern: &str, group: Option<&str>) -> Result<Subscription, BusError> {
        validate_pattern(pattern)?;
        let (tx, rx) = mpsc::channel(SUBSCRIBER_CAPACITY);
        self.shared.state.lock().subs.push(Sub { pattern: pattern.to_string(), group: group.map(str::to_string), tx });
        Ok(Subscription::new(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })))
    }

    fn deliver(&self, tx: &mpsc::Sender<Message>, message: Message) {
        if tx.try_send(message).is_err() {
            // Full (or just closed): at most once, as NATS treats a slow consumer.
            if self.shared.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("in-process bus: a subscriber is not keeping up; messages dropped");
            }
        }
    }
}

fn check_payload(payload: &Bytes) -> Result<(), BusError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(BusError::TooLarge { size: payload.len(), limit: MAX_PAYLOAD });
    }
    Ok(())
}

#[async_trait::async_trait]
impl Bus for InProcessBus {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    fn is_connected(&self) -> bool {
        true
    }

    async fn publish(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject)?;
        check_payload(&payload)?;
        let message = Message { subject: subject.to_string(), payload };
        let mut targets = Vec::new();
        {
            let mut state = self.shared.state.lock();
            let State { subs, next_member, .. } = &mut *state;
            subs.retain(|s| !s.tx.is_closed());
            // Every plain subscriber gets a copy; each queue group, one member in turn.
            let mut groups: HashMap<&str, Vec<&mpsc::Sender<Message>>> = HashMap::new();
            for sub in subs.iter().filter(|s| matches(&s.pattern, subject)) {
                match &sub.group {
                    None => targets.push(sub.tx.clone()),
                    Some(g) => groups.entry(g.as_str()).or_default().push(&sub.tx),
                }
            }
            for (group, members) in groups {
                let turn = next_member.entry(group.to_string()).or_insert(0);
                targets.push(members[*turn % members.len()].clone());
                *turn = turn.wrapping_add(1);
            }
        }
        for tx in targets {
            self.deliver(&tx, message.clone());
        }
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        self.add(pattern, None)
    }

    async fn queue_subscribe(&self, pattern: &str, group: &str) -> Result<Subscription, BusError> {
        validate_subject(group)?;
        self.add(pattern, Some(group))
    }

    async fn publish_durable(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        validate_subject(subject)?;
        check_payload(&payload)?;
        {
            let mut state = self.shared.state.lock();
            let now = Instant::now();
            while state.durable.len() >= DURABLE_MAX_MESSAGES
                || state.durable.front().is_some_and(|d| now.duration_since(d.at) > DURABLE_MAX_AGE)
            {
                state.durable.pop_front();
            }
            state.next_seq += 1;
            let seq = state.next_seq;
            state.durable.push_back(Durable { seq, at: now, message: Message { subject: subject.into(), payload } });
        }
        self.shared.durable_published.notify_waiters();
        Ok(())
    }

    async fn consume_durable(&self, consumer: &str, pattern: &str) -> Result<DurableSubscription, BusError> {
        validate_subject(consumer)?;
        validate_pattern(pattern)?;
        self.shared.state.lock().acked.entry(consumer.to_string()).or_default();
        let cursor =
            Cursor { bus: self.clone(), consumer: consumer.to_string(), pattern: pattern.to_string(), after: 0 };
        Ok(DurableSubscription::new(futures::stream::unfold(cursor, |mut cursor| async move {
            let message = cursor.next().await;
            Some((message, cursor))
        })))
    }
}

/// One durable subscription's position: it delivers, in order, every unacked message after `after`.
struct Cursor {
    bus: InProcessBus,
    consumer: String,
    pattern: String,
    after: u64,
}

impl Cursor {
    async fn next(&mut self) -> DurableMessage {
        loop {
            let shared = &self.bus.shared;
            // Register for the wake-up before looking, so a publish in between is not missed.
            let published = shared.durable_published.notified();
            let found = {
                let state = shared.state.lock();
                let acked = state.acked.get(&self.consumer);
                state
                    .durable
                    .iter()
                    .find(|d| {
                        d.seq > self.after
                            && matches(&self.pattern, &d.message.subject)
                            && !acked.is_some_and(|a| a.contains(&d.seq))
                    })
                    .map(|d| (d.seq, d.message.clone()))
            };
            if let Some((seq, message)) = found {
                self.after = seq;
                let bus = self.bus.clone();
                let consumer = self.consumer.clone();
                return DurableMessage {
                    message,
                    acker: Box::new(move || {
                        Box::pin(async move {
                            bus.shared.state.lock().acked.entry(consumer).or_default().insert(seq);
                            Ok(())
                        })
                    }),
                };
            }
            published.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;

    use super::*;

    #[tokio::test]
    async fn a_full_subscriber_drops_instead_of_blocking_the_publisher() {
        let bus = InProcessBus::new();
        let mut slow = bus.subscribe("x").await.expect("subscribe");
        for _ in 0..SUBSCRIBER_CAPACITY + 5 {
            bus.publish("x", Bytes::from_static(b"m")).await.expect("publish");
        }
        assert_eq!(bus.dropped(), 5);
        assert!(slow.next().await.is_some());
    }

    #[tokio::test]
    async fn a_dropped_subscription_is_forgotten() {
        let bus = InProcessBus::new();
        drop(bus.subscribe("x").await.expect("subscribe"));
        bus.publish("x", Bytes::new()).await.expect("publish");
        assert!(bus.shared.state.lock().subs.is_empty());
        assert_eq!(bus.dropped(), 0);
    }
}
