//! A NATS server restart: the client reconnects on its own, its subscriptions keep delivering, and durable
//! messages stored before the restart are still there after it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use loupe_bus::{Bus, NatsBus};
use loupe_testkit::NatsServer;

use crate::suite::test_config;

#[tokio::test]
async fn a_restarted_server_loses_no_subscription_and_no_durable_message() {
    let mut server = NatsServer::start();
    let bus = NatsBus::connect(test_config(server.url())).await.expect("connect");
    let mut sub = bus.subscribe("v2c.*.*.heartbeat").await.expect("subscribe");
    bus.publish_durable("durable.v2c.ab.id.result", Bytes::from_static(b"kept")).await.expect("durable");

    server.restart();
    assert!(bus.wait_connected(Duration::from_secs(15)).await, "the client did not reconnect within 15 s");
    // Publishing works again and reaches the subscription made before the restart (the client resubscribed;
    // give the server a moment to learn of it).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        bus.publish("v2c.ab.id.heartbeat", Bytes::from_static(b"after")).await.expect("publish");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), sub.next()).await {
            assert_eq!(m.payload, Bytes::from_static(b"after"));
            break;
        }
        assert!(Instant::now() < deadline, "the old subscription never delivered after the restart");
    }
    let mut durable = bus.consume_durable("after-restart", "durable.>").await.expect("consume");
    let m = tokio::time::timeout(Duration::from_secs(5), durable.next()).await.expect("in time").expect("message");
    assert_eq!((m.message.subject.as_str(), m.message.payload.as_ref()), ("durable.v2c.ab.id.result", &b"kept"[..]));
    m.ack().await.expect("ack");
}
