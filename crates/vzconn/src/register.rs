//! `RegisterVizier`: an org's deploy key buys a vizier identity in that org, and only there.
//!
//! The rules, after Pixie's vzmgr: a restarted vizier that presents its previous id and a valid credential
//! keeps its id (and name); without one, the org's record with the same cluster uid is reused if that vizier
//! is disconnected; otherwise a new record is made, its name made unique with a `_<8 hex>` suffix, or a random
//! `<adjective>_<noun>` name when none is given. Work per bad request is bounded: a string not shaped like a
//! deploy key is refused without a lookup, registrations run a few at a time, and an address whose
//! registrations keep failing is refused for the rest of the minute.
//!
//! Owns these rules. Must not touch the metastore except through `records`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use loupe_proto::vzconnpb::{RegisterVizierRequest, RegisterVizierResponse};
use parking_lot::Mutex;
use tonic::Status;
use uuid::Uuid;

use crate::manager::DISCONNECTED;
use crate::records::status_of;
use crate::{Inner, VzConnConfig};

/// Longest cluster name, uid and version accepted.
const MAX_FIELD_CHARS: usize = 128;
/// Addresses tracked for failed registrations; past this the table starts over (an attacker with that many
/// addresses is not slowed by it anyway).
const MAX_TRACKED_ADDRESSES: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// The registration limits.
pub(crate) struct Limits {
    running: tokio::sync::Semaphore,
    wait: Duration,
    max_failures: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limits {
    pub(crate) fn new(config: &VzConnConfig) -> Self {
        Limits {
            running: tokio::sync::Semaphore::new(config.max_concurrent_registrations.max(1)),
            wait: config.registration_wait,
            max_failures: config.max_failed_registrations_per_minute,
            failures: Mutex::default(),
        }
    }

    fn blocked(&self, peer: Option<IpAddr>) -> bool {
        let Some(peer) = peer else { return false };
        let failures = self.failures.lock();
        failures.get(&peer).is_some_and(|(since, n)| since.elapsed() < WINDOW && *n >= self.max_failures)
    }

    fn record_failure(&self, peer: Option<IpAddr>) {
        let Some(peer) = peer else { return };
        let mut failures = self.failures.lock();
        if failures.len() >= MAX_TRACKED_ADDRESSES && !failures.contains_key(&peer) {
            failures.retain(|_, (since, _)| since.elapsed() < WINDOW);
            if failures.len() >= MAX_TRACKED_ADDRESSES {
                failures.clear();
            }
        }
        let entry = failures.entry(peer).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

pub(crate) async fn register(
    inner: &Inner,
    peer: Option<IpAddr>,
    deploy_key: Option<&str>,
    request: RegisterVizierRequest,
) -> Result<RegisterVizierResponse, Status> {
    let limits = &inner.registrations;
    if limits.blocked(peer) {
        return Err(Status::resource_exhausted("too many failed registrations from this address; retry in a minute"));
    }
    let _turn = tokio::time::timeout(limits.wait, limits.running.acquire())
        .await
        .map_err(|_| Status::resource_exhausted("too many registrations at once; retry later"))?
        .map_err(|_| Status::unavailable("shutting down"))?;
    let result = register_now(inner, deploy_key, request).await;
    if let Err(status) = &result
        && matches!(
            status.code(),
            tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
                | tonic::Code::FailedPrecondition
                | tonic::Code::InvalidArgument
        )
    {
        limits.record_failure(peer);
    }
    result
}

async fn register_now(
    inner: &Inner,
    deploy_key: Option<&str>,
    request: RegisterVizierRequest,
) -> Result<RegisterVizierResponse, Status> {
    let Some(deploy_key) = deploy_key else {
        return Err(Status::unauthenticated(format!(
            "registering a vizier needs a deploy key in `{}`",
            crate::DEPLOY_KEY_METADATA
        )));
    };
    for (field, value) in
        [("cluster_name", &request.cluster_name), ("cluster_uid", &request.cluster_uid), ("version", &request.version)]
    {
        if value.chars().count() > MAX_FIELD_CHARS || value.chars().any(char::is_control) {
            return Err(Status::invalid_argument(format!(
                "{field} must be at most {MAX_FIELD_CHARS} characters without control characters"
            )));
        }
    }
    let records = &inner.records;
    let org_id = records
        .org_of_deploy_key(deploy_key)
        .await
        .map_err(|e| status_of(&e))?
        .ok_or_else(|| Status::unauthenticated("invalid or revoked deploy key"))?;

    if !request.previous_vizier_id.is_empty() {
        let vizier_id = Uuid::parse_str(&request.previous_vizier_id)
            .map_err(|_| Status::invalid_argument("previous_vizier_id is not a UUID"))?;
        match inner.key.verify(vizier_id, &request.previous_credential) {
            Some(org) if org == org_id => {}
            Some(_) => {
                return Err(Status::permission_denied(
                    "the previous vizier belongs to another org than this deploy key",
                ));
            }
            None => {
                return Err(Status::failed_precondition(
                    "the previous vizier credential is not valid for that vizier; register without it",
                ));
            }
        }
        if let Some(v) = records.vizier(org_id, vizier_id).await.map_err(|e| status_of(&e))? {
            tracing::info!(vizier_id = %v.id, name = %v.name, %org_id, "vizier registered again with its identity");
            return Ok(answer(inner, org_id, v.id, v.name));
        }
        // Deleted since: register anew below.
        tracing::info!(%vizier_id, %org_id, "previous vizier record is gone; registering a new one");
    }

    let existing = records.viziers(org_id).await.map_err(|e| status_of(&e))?;
    if !request.cluster_uid.is_empty()
        && let Some(v) = existing.iter().find(|v| v.cluster_uid == request.cluster_uid)
    {
        if v.status != DISCONNECTED {
            return Err(Status::already_exists(format!(
                "vizier {} of this cluster is connected; a second one cannot register until it disconnects",
                v.name
            )));
        }
        tracing::info!(vizier_id = %v.id, name = %v.name, %org_id, "vizier reclaimed its record by cluster uid");
        return Ok(answer(inner, org_id, v.id, v.name.clone()));
    }

    let wanted = request.cluster_name.trim();
    let base = if wanted.is_empty() { random_name() } else { wanted.to_owned() };
    let taken = |name: &str| existing.iter().any(|v| v.name == name);
    let mut name = base.clone();
    // A collision (or a race with another registration) gets a random suffix; a few tries are plenty.
    for attempt in 0..4 {
        if attempt > 0 || taken(&name) {
            name = format!("{base}_{:08x}", random_u32());
        }
        if let Ok(v) = records
            .create_vizier(org_id, &name, &request.cluster_uid, &request.version)
            .await
            .map_err(|e| status_of(&e))?
        {
            tracing::info!(vizier_id = %v.id, name = %v.name, %org_id, "vizier registered");
            return Ok(answer(inner, org_id, v.id, v.name));
        }
    }
    Err(Status::aborted("could not find a free vizier name; retry"))
}

fn answer(inner: &Inner, org_id: Uuid, vizier_id: Uuid, vizier_name: String) -> RegisterVizierResponse {
    RegisterVizierResponse {
        vizier_id: vizier_id.to_string(),
        vizier_name,
        credential: inner.key.issue(org_id, vizier_id),
    }
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // The OS's random source failing is not worth failing a registration over: fall back to the clock.
    if getrandom::fill(&mut b).is_err() {
        return loupe_common::time::now_unix_ns() as u32;
    }
    u32::from_le_bytes(b)
}

const ADJECTIVES: [&str; 16] = [
    "amber", "brisk", "calm", "deft", "eager", "fond", "gentle", "hardy", "keen", "lively", "mellow", "nimble",
    "patient", "quiet", "steady", "witty",
];
const NOUNS: [&str; 16] = [
    "badger", "crane", "dolphin", "falcon", "gecko", "heron", "ibis", "jackal", "koala", "lynx", "marten", "newt",
    "otter", "puffin", "raven", "stoat",
];

/// A Docker-style name for a cluster that gave none.
fn random_name() -> String {
    let r = random_u32() as usize;
    format!("{}_{}", ADJECTIVES[r % 16], NOUNS[(r >> 4) % 16])
}
