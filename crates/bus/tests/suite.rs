//! Behaviour every backend must share: wildcard delivery in order and nothing else, queue groups that deliver
//! each message once, durable messages that wait for their consumer and come again when unacked, and the same
//! refusals. Each test runs once per backend.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use loupe_bus::{Bus, BusError, DurableStreamConfig, InProcessBus, NatsBus, NatsBusConfig, Subscription, subject};
use loupe_testkit::NatsServer;

/// A backend and whatever keeps it alive.
pub struct Backend {
    /// The bus under test.
    pub bus: Box<dyn Bus>,
    _server: Option<NatsServer>,
}

/// The in-process bus.
pub fn in_process() -> Backend {
    Backend { bus: Box::new(InProcessBus::new()), _server: None }
}

/// NATS config for tests: a short redelivery wait so "unacked comes again" shows within seconds.
pub fn test_config(url: String) -> NatsBusConfig {
    let mut config = NatsBusConfig::new(url);
    config.durable = DurableStreamConfig { ack_wait: Duration::from_secs(1), ..DurableStreamConfig::default() };
    config
}

/// A bus on a fresh `nats-server` of its own.
pub async fn nats() -> Backend {
    let server = NatsServer::start();
    let bus = NatsBus::connect(test_config(server.url())).await.expect("connect to nats-server");
    assert!(bus.wait_connected(Duration::from_secs(10)).await, "not connected to nats-server within 10 s");
    Backend { bus: Box::new(bus), _server: Some(server) }
}

/// The next message within 5 s, as `(subject, payload)`.
pub async fn next(sub: &mut Subscription) -> (String, String) {
    let m = tokio::time::timeout(Duration::from_secs(5), sub.next()).await.expect("no message within 5 s");
    let m = m.expect("subscription ended");
    (m.subject, String::from_utf8_lossy(&m.payload).into_owned())
}

/// Asserts nothing more arrives within 300 ms.
async fn nothing_more(sub: &mut Subscription) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        panic!("unexpected message on {}", m.subject);
    }
}

async fn wildcards_deliver_in_order_and_nothing_else(bus: &dyn Bus) {
    let id = "3f1c9a2e-7d4b-4c1a-9e2f-0123456789ab";
    let mut heartbeats = bus.subscribe(&subject::v2c_all("heartbeat")).await.expect("subscribe");
    let mut to_vizier = bus.subscribe(&format!("c2v.{id}.>")).await.expect("subscribe");
    for i in 0..3 {
        bus.publish(&subject::v2c(id, "heartbeat"), Bytes::from(format!("hb{i}"))).await.expect("publish");
    }
    bus.publish(&subject::v2c(id, "other"), Bytes::from_static(b"x")).await.expect("publish");
    bus.publish(&subject::c2v(id, "VizierPassthroughRequest"), Bytes::from_static(b"q")).await.expect("publish");
    bus.publish(&subject::c2v("another", "VizierPassthroughRequest"), Bytes::from_static(b"no")).await.expect("pub");
    for i in 0..3 {
        assert_eq!(next(&mut heartbeats).await, (subject::v2c(id, "heartbeat"), format!("hb{i}")));
    }
    assert_eq!(next(&mut to_vizier).await, (subject::c2v(id, "VizierPassthroughRequest"), "q".into()));
    nothing_more(&mut heartbeats).await;
    nothing_more(&mut to_vizier).await;
}

async fn a_queue_group_delivers_each_message_once(bus: &dyn Bus) {
    let mut a = bus.queue_subscribe("c2v.*.work", "vzconn").await.expect("subscribe a");
    let mut b = bus.queue_subscribe("c2v.*.work", "vzconn").await.expect("subscribe b");
    let mut watcher = bus.subscribe("c2v.*.work").await.expect("plain subscriber");
    for i in 0..100 {
        bus.publish("c2v.v1.work", Bytes::from(i.to_string())).await.expect("publish");
    }
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        tokio::select! {
            m = a.next() => got_a.push(m.expect("a ended").payload),
            m = b.next() => got_b.push(m.expect("b ended").payload),
            () = tokio::time::sleep(Duration::from_secs(5)) => panic!("only {} of 100 arrived", got_a.len() + got_b.len()),
        }
    }
    let mut all: Vec<u32> =
        got_a.iter().chain(&got_b).map(|p| String::from_utf8_lossy(p).parse().expect("number")).collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<_>>(), "each message exactly once across the group");
    assert!(!got_a.is_empty() && !got_b.is_empty(), "both members served ({} / {})", got_a.len(), got_b.len());
    nothing_more(&mut a).await;
    nothing_more(&mut b).await;
    // A plain subscriber beside the group still sees everything.
    for i in 0..100 {
        assert_eq!(next(&mut watcher).await.1, i.to_string());
    }
}

async fn durable_messages_wait_for_their_consumer_and_come_again_unacked(bus: &dyn Bus) {
    for i in 0..3 {
        bus.publish_durable(&format!("durable.cron.r{i}"), Bytes::from(format!("run{i}"))).await.expect("publish");
    }
    let mut consumer = bus.consume_durable("cron-results", "durable.cron.>").await.expect("consume");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(5), consumer.next()).await.expect("in time").expect("msg");
        seen.push(String::from_utf8_lossy(&m.message.payload).into_owned());
        if seen.len() < 3 {
            m.ack().await.expect("ack");
        }
    }
    assert_eq!(seen, ["run0", "run1", "run2"]);
    drop(consumer);
    // The same consumer again (as after a restart): only the unacked message, once the ack wait has passed.
    let mut again = bus.consume_durable("cron-results", "durable.cron.>").await.expect("consume again");
    let m = tokio::time::timeout(Duration::from_secs(10), again.next()).await.expect("redelivered").expect("msg");
    assert_eq!(m.message.subject, "durable.cron.r2");
    m.ack().await.expect("ack");
    bus.publish_durable("durable.cron.r3", Bytes::from_static(b"run3")).await.expect("publish");
    let m = tokio::time::timeout(Duration::from_secs(5), again.next()).await.expect("new one").expect("msg");
    assert_eq!(m.message.payload, Bytes::from_static(b"run3"));
    m.ack().await.expect("ack");
    // Another consumer name starts from the beginning of what is kept.
    let mut other = bus.consume_durable("audit", "durable.cron.>").await.expect("consume");
    let m = tokio::time::timeout(Duration::from_secs(5), other.next()).await.expect("in time").expect("msg");
    assert_eq!(m.message.subject, "durable.cron.r0");
}

async fn bad_subjects_and_payloads_are_refused(bus: &dyn Bus) {
    assert!(matches!(bus.publish("a.*", Bytes::new()).await, Err(BusError::InvalidSubject { .. })));
    assert!(matches!(bus.publish("a..b", Bytes::new()).await, Err(BusError::InvalidSubject { .. })));
    assert!(matches!(bus.subscribe("a.>.b").await, Err(BusError::InvalidSubject { .. })));
    let big = Bytes::from(vec![0u8; (1 << 20) + 1]);
    assert!(matches!(bus.publish("a.b", big.clone()).await, Err(BusError::TooLarge { .. })));
    assert!(matches!(bus.publish_durable("durable.x", big).await, Err(BusError::TooLarge { .. })));
    assert!(bus.is_connected());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::in_process().bus.as_ref()).await;
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::nats().await;
                    super::$name(backend.bus.as_ref()).await;
                }
            )*
        }
    };
}

on_both!(
    wildcards_deliver_in_order_and_nothing_else,
    a_queue_group_delivers_each_message_once,
    durable_messages_wait_for_their_consumer_and_come_again_unacked,
    bad_subjects_and_payloads_are_refused,
);
