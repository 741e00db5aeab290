//! The bridge with a hand-driven client: credentials, the handshake, forwarding both ways, limits, and one
//! bridge per vizier.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use loupe_bus::subject;
use loupe_proto::vzconnpb::{BridgeMessage, BridgeRegister, BridgeRegisterAck, BusEnvelope, RegisterVizierResponse};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::Code;
use uuid::Uuid;

use crate::common::{Backend, Server, TempDir, metastore, org_with_key, register, registration};

/// One open bridge: what to send up and what came down.
struct Bridge {
    up: mpsc::Sender<BridgeMessage>,
    down: tonic::Streaming<BridgeMessage>,
}

fn register_message(vizier_id: &str) -> BridgeMessage {
    let r = BridgeRegister {
        vizier_id: vizier_id.into(),
        cluster_uid: "u".into(),
        cluster_name: "n".into(),
        version: "1".into(),
    };
    BridgeMessage { topic: "register".into(), session_id: String::new(), payload: r.encode_to_vec() }
}

async fn open(
    server: &Server,
    vizier_id: &str,
    credential: &str,
    first: Option<BridgeMessage>,
) -> Result<Bridge, tonic::Status> {
    let (up, rx) = mpsc::channel(16);
    if let Some(f) = first {
        up.send(f).await.expect("queued");
    }
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    request.metadata_mut().insert(loupe_vzconn::VIZIER_ID_METADATA, vizier_id.parse().expect("ascii"));
    request.metadata_mut().insert(loupe_vzconn::VIZIER_CREDENTIAL_METADATA, credential.parse().expect("ascii"));
    let down = server.client().await.bridge(request).await?.into_inner();
    Ok(Bridge { up, down })
}

/// Opens a bridge and completes the handshake.
async fn connected(server: &Server, v: &RegisterVizierResponse) -> Bridge {
    let mut b = open(server, &v.vizier_id, &v.credential, Some(register_message(&v.vizier_id))).await.expect("open");
    let ack = b.down.message().await.expect("ack").expect("a message");
    assert_eq!(ack.topic, "registerAck");
    let ack = BridgeRegisterAck::decode(ack.payload.as_slice()).expect("ack payload");
    assert_eq!((ack.code, ack.vizier_name.as_str()), (0, v.vizier_name.as_str()));
    b
}

/// The stream's ending status.
async fn end_of(b: &mut Bridge) -> tonic::Status {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), b.down.message()).await.expect("ends in time") {
            Ok(Some(_)) => continue,
            Ok(None) => return tonic::Status::ok(""),
            Err(s) => return s,
        }
    }
}

#[tokio::test]
async fn only_a_vizier_own_live_credential_opens_a_bridge() {
    let dir = TempDir::new("bridge-cred");
    let ms = metastore(dir.path()).await;
    let (org, key, _) = org_with_key(&ms, "org").await;
    let server = Server::start(Arc::clone(&ms), Backend::InProcess.bus().await).await;
    let mut client = server.client().await;
    let a = register(&mut client, Some(&key), registration("a", "ua")).await.expect("a");
    let b = register(&mut client, Some(&key), registration("b", "ub")).await.expect("b");

    let e = open(&server, &b.vizier_id, &a.credential, None).await.err().expect("a's credential under b's id");
    assert_eq!((e.code(), e.message()), (Code::Unauthenticated, "invalid vizier credential"));
    let e = open(&server, &a.vizier_id, "v1.nope", None).await.err().expect("garbage");
    assert_eq!(e.code(), Code::Unauthenticated);
    // The handshake must come first, and name the credential's vizier.
    let mut wrong_first = open(
        &server,
        &a.vizier_id,
        &a.credential,
        Some(BridgeMessage { topic: "heartbeat".into(), ..Default::default() }),
    )
    .await
    .expect("open");
    assert_eq!(end_of(&mut wrong_first).await.code(), Code::InvalidArgument);
    let mut other_id =
        open(&server, &a.vizier_id, &a.credential, Some(register_message(&b.vizier_id))).await.expect("open");
    assert_eq!(end_of(&mut other_id).await.code(), Code::PermissionDenied);
    drop(connected(&server, &a).await);

    // Deleting the vizier revokes its credential.
    ms.delete_vizier(org, Uuid::parse_str(&a.vizier_id).expect("uuid")).await.expect("delete");
    let e = open(&server, &a.vizier_id, &a.credential, None).await.err().expect("deleted");
    assert_eq!(e.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn messages_flow_both_ways_through_the_bus_on_both_backends() {
    for backend in Backend::both() {
        let backend = backend();
        let dir = TempDir::new("bridge-flow");
        let ms = metastore(dir.path()).await;
        let (org, key, _) = org_with_key(&ms, "org").await;
        let bus = backend.bus().await;
        let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
        let v = register(&mut server.client().await, Some(&key), registration("a", "ua")).await.expect("a");
        let mut b = connected(&server, &v).await;

        // Up: published on v2c.<shard>.<id>.<topic>, with the authenticated ids.
        let mut up = bus.subscribe(&subject::v2c(&v.vizier_id, ">")).await.expect("subscribe");
        b.up.send(BridgeMessage { topic: "reply.r1".into(), session_id: "r1".into(), payload: b"hello".to_vec() })
            .await
            .expect("send");
        let m = tokio::time::timeout(Duration::from_secs(5), up.next()).await.expect("in time").expect("message");
        assert_eq!(m.subject, subject::v2c(&v.vizier_id, "reply.r1"), "{}", backend.name());
        let env = BusEnvelope::decode(m.payload).expect("envelope");
        assert_eq!(
            (env.vizier_id.as_str(), env.org_id, env.session_id.as_str(), env.payload.as_slice()),
            (v.vizier_id.as_str(), org.to_string(), "r1", &b"hello"[..])
        );

        // Down: c2v.<id>.<topic> arrives as a bridge message.
        let env = BusEnvelope { session_id: "s9".into(), payload: b"run".to_vec(), ..Default::default() };
        bus.publish(&subject::c2v(&v.vizier_id, "query"), env.encode_to_vec().into()).await.expect("publish");
        let m = tokio::time::timeout(Duration::from_secs(5), b.down.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("message");
        assert_eq!((m.topic.as_str(), m.session_id.as_str(), m.payload.as_slice()), ("query", "s9", &b"run"[..]));

        // A topic that could reach other subjects ends the bridge.
        b.up.send(BridgeMessage { topic: "a.b.c".into(), ..Default::default() }).await.expect("send");
        assert_eq!(end_of(&mut b).await.code(), Code::InvalidArgument, "{}", backend.name());
        server.stop().await;
    }
}

#[tokio::test]
async fn a_second_bridge_replaces_the_first_and_oversize_messages_are_refused() {
    let dir = TempDir::new("bridge-second");
    let ms = metastore(dir.path()).await;
    let (_, key, _) = org_with_key(&ms, "org").await;
    let bus = Backend::InProcess.bus().await;
    let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
    let v = register(&mut server.client().await, Some(&key), registration("a", "ua")).await.expect("a");
    let mut first = connected(&server, &v).await;
    let mut second = connected(&server, &v).await;
    let ended = end_of(&mut first).await;
    assert_eq!((ended.code(), ended.message()), (Code::Aborted, "replaced by a newer bridge of this vizier"));

    // Only the second gets c2v messages now.
    let env = BusEnvelope { session_id: "s".into(), payload: b"x".to_vec(), ..Default::default() };
    bus.publish(&subject::c2v(&v.vizier_id, "query"), env.encode_to_vec().into()).await.expect("publish");
    let m = tokio::time::timeout(Duration::from_secs(5), second.down.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("m");
    assert_eq!(m.topic, "query");

    // Over the message limit: refused by the server's decoder before anything is published.
    let mut up = bus.subscribe(&subject::v2c(&v.vizier_id, ">")).await.expect("subscribe");
    second
        .up
        .send(BridgeMessage { topic: "big".into(), payload: vec![0; 1_100_000], ..Default::default() })
        .await
        .expect("send");
    let code = end_of(&mut second).await.code();
    assert!(matches!(code, Code::ResourceExhausted | Code::OutOfRange), "{code:?}");
    assert!(tokio::time::timeout(Duration::from_millis(200), up.next()).await.is_err(), "nothing published");
}

/// A hand-driven vizier answering a passthrough request: pieces are joined, a gap is an error, and a request
/// that runs out of time is cancelled on the vizier.
#[tokio::test]
async fn passthrough_joins_pieces_notices_gaps_and_cancels_on_timeout() {
    use loupe_proto::vzconnpb::{QueryCancel, QueryReply, QueryRequest, QueryStatus, query_reply::Reply};
    use loupe_vzconn::{Passthrough, PassthroughConfig, PassthroughError};

    let dir = TempDir::new("bridge-passthrough");
    let ms = metastore(dir.path()).await;
    let (_, key, _) = org_with_key(&ms, "org").await;
    let bus = Backend::InProcess.bus().await;
    let server = Server::start(Arc::clone(&ms), Arc::clone(&bus)).await;
    let v = register(&mut server.client().await, Some(&key), registration("a", "ua")).await.expect("a");
    let id = Uuid::parse_str(&v.vizier_id).expect("uuid");
    let mut b = connected(&server, &v).await;
    let passthrough = Passthrough::new(
        Arc::clone(&bus),
        PassthroughConfig { accept_timeout: Duration::from_secs(2), timeout: Duration::from_millis(500) },
    );

    // Receives the next query and answers it with `replies` (sequence, reply, more).
    async fn answer(b: &mut Bridge, replies: Vec<(u64, Reply, bool)>) -> String {
        let m = tokio::time::timeout(Duration::from_secs(5), b.down.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("m");
        assert_eq!(m.topic, "query");
        let q = QueryRequest::decode(m.payload.as_slice()).expect("query");
        assert_eq!((q.execute_script_request.as_slice(), q.timeout_ms), (&b"script"[..], 1500));
        for (sequence, reply, more) in replies {
            let r = QueryReply { request_id: q.request_id.clone(), sequence, reply: Some(reply), more };
            let up = BridgeMessage {
                topic: format!("reply.{}", q.request_id),
                session_id: q.request_id.clone(),
                payload: r.encode_to_vec(),
            };
            b.up.send(up).await.expect("send");
        }
        q.request_id
    }

    let call = passthrough.execute(id, bytes::Bytes::from_static(b"script"));
    let replies = vec![
        (0, Reply::Accepted(true), false),
        (1, Reply::Response(b"he".to_vec()), true),
        (2, Reply::Response(b"llo".to_vec()), false),
        (3, Reply::Response(b"!".to_vec()), false),
        (4, Reply::Done(QueryStatus { code: 0, message: String::new() }), false),
    ];
    let (stream, _) = tokio::join!(call, answer(&mut b, replies));
    let got: Vec<_> = stream.expect("accepted").map(|r| r.expect("reply")).collect().await;
    assert_eq!(got, [bytes::Bytes::from_static(b"hello"), bytes::Bytes::from_static(b"!")]);

    let call = passthrough.execute(id, bytes::Bytes::from_static(b"script"));
    let replies = vec![(0, Reply::Accepted(true), false), (2, Reply::Response(b"x".to_vec()), false)];
    let (stream, lost_id) = tokio::join!(call, answer(&mut b, replies));
    let got: Vec<_> = stream.expect("accepted").collect().await;
    assert!(matches!(got.as_slice(), [Err(PassthroughError::ReplyLost)]), "{got:?}");
    // An incomplete request is stopped on the vizier too.
    assert_eq!(next_cancel(&mut b).await, lost_id);

    let call = passthrough.execute(id, bytes::Bytes::from_static(b"script"));
    let (stream, request_id) = tokio::join!(call, answer(&mut b, vec![(0, Reply::Accepted(true), false)]));
    let mut stream = stream.expect("accepted");
    assert!(matches!(stream.next().await, Some(Err(PassthroughError::TimedOut { .. }))));
    drop(stream);
    assert_eq!(next_cancel(&mut b).await, request_id);

    async fn next_cancel(b: &mut Bridge) -> String {
        let m = tokio::time::timeout(Duration::from_secs(5), b.down.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("m");
        assert_eq!(m.topic, "cancel");
        QueryCancel::decode(m.payload.as_slice()).expect("cancel").request_id
    }
}
