//! Certificates for the viziers' hostnames. A vizier sends its public key on the bridge (`dnsCertRequest`,
//! published by VZConn on `v2c.<shard>.<vizier id>.dnsCertRequest` with the ids it authenticated); the DNS
//! manager signs a certificate for the vizier's names with the cloud CA and sends it back down
//! (`c2v.<vizier id>.dnsCert`). Requests are consumed in a queue group, so replicas share them. Nothing is
//! stored: the vizier keeps its key and certificate, and asks again after each reconnect.
//!
//! Owns this exchange. Must not touch the zone's rules (`zone`) nor the CA's files (`loupe_proxy::secrets`).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use loupe_bus::subject;
use loupe_proto::vzconn_topic::{DNS_CERT, DNS_CERT_REQUEST};
use loupe_proto::vzconnpb::{BusEnvelope, DnsCert, DnsCertRequest};
use loupe_proxy::San;
use prost::Message as _;
use uuid::Uuid;

use crate::Shared;

/// The queue group certificate requests are shared in.
const QUEUE_GROUP: &str = "dnsmgr";

/// Answers certificate requests until the task is dropped.
pub(crate) async fn serve(shared: Arc<Shared>) -> Result<(), loupe_bus::BusError> {
    let mut requests = shared.bus.queue_subscribe(&subject::v2c_all(DNS_CERT_REQUEST), QUEUE_GROUP).await?;
    while let Some(message) = requests.next().await {
        let Ok(envelope) = BusEnvelope::decode(message.payload.as_ref()) else { continue };
        let (Ok(org_id), Ok(vizier_id)) = (Uuid::parse_str(&envelope.org_id), Uuid::parse_str(&envelope.vizier_id))
        else {
            continue;
        };
        let answer = issue(&shared, org_id, vizier_id, &envelope.payload).await;
        crate::DnsStats::add(if answer.code == 0 {
            &shared.stats.certificates_issued
        } else {
            &shared.stats.certificates_refused
        });
        let down = BusEnvelope { payload: answer.encode_to_vec(), ..BusEnvelope::default() };
        if let Err(error) =
            shared.bus.publish(&subject::c2v(&vizier_id.to_string(), DNS_CERT), Bytes::from(down.encode_to_vec())).await
        {
            tracing::warn!(%error, %vizier_id, "vizier certificate not sent");
        }
    }
    Ok(())
}

async fn issue(shared: &Shared, org_id: Uuid, vizier_id: Uuid, payload: &[u8]) -> DnsCert {
    let refused = |code: tonic_code::Code, message: &str| DnsCert {
        code: code as i32,
        message: message.to_owned(),
        ..DnsCert::default()
    };
    let Ok(request) = DnsCertRequest::decode(payload) else {
        return refused(tonic_code::Code::InvalidArgument, "undecodable certificate request");
    };
    // The record may be newer than the zone: a vizier asks right after registering.
    match shared.metastore.get_vizier(org_id, vizier_id).await {
        Ok(_) => {}
        Err(loupe_metastore::MetastoreError::NotFound { .. }) => {
            return refused(tonic_code::Code::NotFound, "this vizier is not registered");
        }
        Err(error) => {
            tracing::warn!(%error, "vizier record unreadable for its certificate");
            return refused(tonic_code::Code::Unavailable, "the cloud's database is unavailable; retry later");
        }
    }
    if let Err(error) = shared.refresh().await {
        tracing::warn!(%error, "zone not refreshed before issuing a certificate");
    }
    let names = shared.zone().names_of(vizier_id);
    let sans: Vec<San> = names.iter().filter_map(|n| San::parse(n).ok()).collect();
    match shared.ca.issue_for_p256_key(&sans, &request.public_key) {
        Ok(cert_pem) => {
            tracing::info!(%vizier_id, ?names, "issued a certificate for a vizier's hostname");
            DnsCert { code: 0, message: String::new(), names, cert_pem, ca_pem: shared.ca.cert_pem().to_owned() }
        }
        Err(loupe_proxy::SecretsError::InvalidPublicKey) => {
            refused(tonic_code::Code::InvalidArgument, "the public key is not an uncompressed ECDSA P-256 point")
        }
        Err(error) => {
            tracing::error!(%error, %vizier_id, "vizier certificate not issued");
            refused(tonic_code::Code::Internal, "the certificate could not be issued")
        }
    }
}

/// The gRPC status codes the answer carries (the numbers are gRPC's; no tonic needed for five constants).
mod tonic_code {
    #[derive(Clone, Copy)]
    pub(super) enum Code {
        InvalidArgument = 3,
        NotFound = 5,
        Internal = 13,
        Unavailable = 14,
    }
}
