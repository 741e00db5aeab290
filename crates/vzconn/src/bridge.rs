//! The bridge: one bidirectional stream per connected vizier.
//!
//! Before the stream starts, the vizier's id and credential (metadata) must verify and its record must still
//! exist, so a deleted vizier is locked out. The vizier's first message is `register` (naming the same id),
//! answered with `registerAck`. From then on each message from the vizier is published on
//! `v2c.<shard>.<vizier id>.<topic>` in a [`BusEnvelope`] carrying the authenticated org and vizier ids, and
//! every message on `c2v.<vizier id>.>` goes down the stream. One bridge per vizier: a new bridge announces
//! itself on `c2v.<id>.bridge_opened` and any older one, on any replica, ends with `ABORTED`, so a restarted
//! vizier is never locked out by its own half-dead previous connection. The stream's end drops the
//! subscription.
//!
//! Owns the stream's protocol. Must not interpret messages beyond the handshake: payloads are opaque.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use loupe_bus::{BusError, subject};
use loupe_proto::vzconnpb::{BridgeMessage, BridgeRegister, BridgeRegisterAck, BusEnvelope};
use prost::Message as _;
use tokio::sync::mpsc;
use tonic::{Request, Status, Streaming};
use uuid::Uuid;

use crate::records::status_of;
use crate::{Inner, VIZIER_CREDENTIAL_METADATA, VIZIER_ID_METADATA, topic};

/// What the server sends down a bridge.
pub type OutboundStream = tokio_stream::wrappers::ReceiverStream<Result<BridgeMessage, Status>>;

/// Messages queued toward one vizier before the bus subscription waits (the bus drops for slow subscribers).
const OUTBOUND_BUFFER: usize = 64;
/// Longest session id accepted.
const MAX_SESSION_ID: usize = 128;

pub(crate) async fn open(
    inner: Arc<Inner>,
    request: Request<Streaming<BridgeMessage>>,
) -> Result<OutboundStream, Status> {
    let text = |key: &str| request.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(id_text), Some(credential)) = (text(VIZIER_ID_METADATA), text(VIZIER_CREDENTIAL_METADATA)) else {
        return Err(Status::unauthenticated(format!(
            "a bridge needs `{VIZIER_ID_METADATA}` and `{VIZIER_CREDENTIAL_METADATA}` (from RegisterVizier)"
        )));
    };
    let vizier_id = Uuid::parse_str(&id_text).map_err(|_| Status::unauthenticated("invalid vizier credential"))?;
    let org_id =
        inner.key.verify(vizier_id, &credential).ok_or_else(|| Status::unauthenticated("invalid vizier credential"))?;
    let record = inner
        .records
        .vizier(org_id, vizier_id)
        .await
        .map_err(|e| status_of(&e))?
        .ok_or_else(|| Status::unauthenticated("this vizier is no longer registered; register again"))?;
    let inbound = request.into_inner();
    let (tx, rx) = mpsc::channel(OUTBOUND_BUFFER);
    tokio::spawn(async move {
        let id = record.id;
        match session(&inner, org_id, vizier_id, record.name, inbound, &tx).await {
            Ok(()) => tracing::info!(vizier_id = %id, "bridge closed by the vizier"),
            Err(status) => {
                tracing::info!(vizier_id = %id, code = ?status.code(), reason = status.message(), "bridge closed");
                let _ = tx.send(Err(status)).await;
            }
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn session(
    inner: &Inner,
    org_id: Uuid,
    vizier_id: Uuid,
    name: String,
    mut inbound: Streaming<BridgeMessage>,
    tx: &mpsc::Sender<Result<BridgeMessage, Status>>,
) -> Result<(), Status> {
    let mut closing = inner.closing.subscribe();
    if *closing.borrow_and_update() {
        return Err(Status::unavailable("vzconn is shutting down; reconnect"));
    }
    let first = tokio::time::timeout(inner.config.handshake_timeout, inbound.message())
        .await
        .map_err(|_| Status::deadline_exceeded("no `register` message in time"))??
        .ok_or_else(|| Status::cancelled("the bridge ended before `register`"))?;
    if first.topic != topic::REGISTER {
        return Err(Status::invalid_argument("the first bridge message must have topic `register`"));
    }
    let register = BridgeRegister::decode(first.payload.as_slice())
        .map_err(|_| Status::invalid_argument("undecodable `register` message"))?;
    let id = vizier_id.to_string();
    if register.vizier_id != id {
        return Err(Status::permission_denied("`register` names another vizier than the bridge's credential"));
    }

    let prefix = format!("c2v.{id}.");
    let mut c2v = inner.bus.subscribe(&format!("{prefix}>")).await.map_err(|e| bus_status(&e))?;
    let nonce = Bytes::from(format!("{:016x}", random_u64()));
    inner.bus.publish(&subject::c2v(&id, topic::BRIDGE_OPENED), nonce.clone()).await.map_err(|e| bus_status(&e))?;
    let ack = BridgeRegisterAck { code: 0, message: String::new(), vizier_name: name.clone() };
    let ack =
        BridgeMessage { topic: topic::REGISTER_ACK.into(), session_id: String::new(), payload: ack.encode_to_vec() };
    tx.send(Ok(ack)).await.map_err(|_| Status::cancelled("the vizier left"))?;
    tracing::info!(%vizier_id, %name, %org_id, version = %register.version, "bridge open");

    let org = org_id.to_string();
    loop {
        tokio::select! {
            _ = closing.changed() => return Err(Status::unavailable("vzconn is shutting down; reconnect")),
            _ = tx.closed() => return Ok(()),
            m = inbound.message() => match m {
                Ok(Some(m)) => publish_up(inner, &org, &id, m).await?,
                Ok(None) => return Ok(()),
                // A message over the size limit, or a broken connection (then the answer goes nowhere).
                Err(status) => return Err(status),
            },
            m = c2v.next() => {
                let Some(m) = m else { return Err(Status::unavailable("message bus subscription ended; reconnect")) };
                let Some(topic) = m.subject.strip_prefix(&prefix) else { continue };
                if topic == topic::BRIDGE_OPENED {
                    if m.payload != nonce {
                        return Err(Status::aborted("replaced by a newer bridge of this vizier"));
                    }
                    continue;
                }
                let Ok(envelope) = BusEnvelope::decode(m.payload) else {
                    tracing::warn!(%vizier_id, topic, "undecodable c2v message dropped");
                    continue;
                };
                let down = BridgeMessage { topic: topic.to_owned(), session_id: envelope.session_id, payload: envelope.payload };
                tx.send(Ok(down)).await.map_err(|_| Status::cancelled("the vizier left"))?;
            }
        }
    }
}

async fn publish_up(inner: &Inner, org_id: &str, vizier_id: &str, m: BridgeMessage) -> Result<(), Status> {
    if !topic::vizier_may_send(&m.topic) {
        let shown: String = m.topic.chars().take(64).collect();
        return Err(Status::invalid_argument(format!("a vizier may not send on topic {shown:?}")));
    }
    if m.session_id.len() > MAX_SESSION_ID {
        return Err(Status::invalid_argument("session id too long"));
    }
    if m.payload.len() > inner.config.max_message_bytes {
        return Err(Status::resource_exhausted(format!(
            "bridge messages are at most {} bytes",
            inner.config.max_message_bytes
        )));
    }
    let envelope = BusEnvelope {
        vizier_id: vizier_id.to_owned(),
        org_id: org_id.to_owned(),
        session_id: m.session_id,
        payload: m.payload,
    };
    inner
        .bus
        .publish(&subject::v2c(vizier_id, &m.topic), envelope.encode_to_vec().into())
        .await
        .map_err(|e| bus_status(&e))
}

fn bus_status(error: &BusError) -> Status {
    match error {
        BusError::TooLarge { .. } => Status::resource_exhausted(error.to_string()),
        BusError::Unavailable(_) => Status::unavailable("the cloud's message bus is unavailable; reconnect later"),
        _ => {
            tracing::error!(%error, "message bus refused a bridge operation");
            Status::internal("internal error")
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return loupe_common::time::now_unix_ns() as u64;
    }
    u64::from_le_bytes(b)
}
