//! The vizier's metadata service (Pixie's metadata service and each PEM's metadata state): who a traced
//! process is in Kubernetes terms.
//!
//! - `model`: the Kubernetes state (pods with containers, IPs, owners and status; services and their
//!   endpoints; namespaces, nodes, replica sets, deployments), its indexes and a bounded history of deleted
//!   pods and services.
//! - `watch`: lists and watches each kind from the API server with kube-rs (resuming from resourceVersion,
//!   watching again when a watch ends, listing again on `410 Gone`).
//! - `cgroup`: a process's cgroup v2 path → container id, pod UID and QoS class (containerd, CRI-O, Docker;
//!   systemd and cgroupfs drivers).
//! - `serve`: `loupe vizier metadata` serves the state to PEMs over an HTTP stream that demands the
//!   vizier's token; a PEM follows it into its own [`Hub`].
//! - [`NodeMetadata`]: what a PEM's engine asks: the answer of each metadata function (`upid_to_pod_name`,
//!   `ip_to_pod_id`, `pod_name_to_status`, …) from the cgroup of the row's process and the state.
//!
//! Owns these. Must not touch the store, the engine or the tracer: the engine reads answers through its own
//! trait, which the vizier implements with [`NodeMetadata`]. Without Kubernetes the state stays empty and
//! every pod-level answer is '' (host-level answers, the pid and command line, are the engine's own).

pub mod cgroup;
pub mod model;
pub mod serve;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;

use crate::cgroup::{CgroupResolver, ContainerRef};
use crate::model::{Kind, Object, Objects, PodField, State, Update};

/// Updates a slow follower may fall behind by before it is cut off (it reconnects and gets a snapshot).
const UPDATE_BACKLOG: usize = 4096;

/// The state shared by the watcher (or the stream from the metadata service) that writes it and the
/// readers: lookups, and the service's followers, who get each change as it is applied.
#[derive(Debug)]
pub struct Hub {
    state: RwLock<State>,
    updates: broadcast::Sender<Update>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub { state: RwLock::default(), updates: broadcast::channel(UPDATE_BACKLOG).0 }
    }
}

impl Hub {
    /// An empty hub (a host without Kubernetes stays so).
    pub fn new() -> Arc<Self> {
        Arc::new(Hub::default())
    }

    /// Applies `updates` and passes them on to followers.
    pub fn apply(&self, updates: Vec<Update>) {
        let mut state = self.state.write();
        state.apply_deferred(updates.iter().cloned());
        for u in updates {
            // No follower is not an error.
            let _ = self.updates.send(u);
        }
    }

    /// A fresh list of `kind`: upserts what it holds, deletes (at `now_ns`) the live objects it lacks.
    pub fn replace_kind(&self, kind: Kind, objects: Vec<Object>, now_ns: i64) {
        let live = self.state.read().live_uids(kind);
        let listed: std::collections::HashSet<&str> = objects.iter().map(Object::uid).collect();
        let gone: Vec<Update> = live
            .into_iter()
            .filter(|u| !listed.contains(u.as_str()))
            .map(|uid| Update::Delete { kind, uid, at_ns: now_ns })
            .collect();
        self.apply(gone.into_iter().chain(objects.into_iter().map(Update::Upsert)).collect());
    }

    /// Replaces the whole state with a snapshot (a follower that (re)connected).
    pub fn reset(&self, objects: Objects) {
        *self.state.write() = State::from_objects(objects);
    }

    /// The state now and the changes after it, taken together so none is missed or seen twice.
    pub fn subscribe(&self) -> (Objects, broadcast::Receiver<Update>) {
        let state = self.state.read();
        (state.objects().clone(), self.updates.subscribe())
    }

    /// Reads the state (indexing first what was applied since the last read).
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        {
            let state = self.state.read();
            if !state.is_stale() {
                return f(&state);
            }
        }
        let mut state = self.state.write();
        state.reindex_if_stale();
        f(&parking_lot::RwLockWriteGuard::downgrade(state))
    }
}

/// Processes remembered after their first lookup, so rows of a process gone keep their pod.
const PROCESS_MEMORY: usize = 65_536;

/// A node's metadata: the state (followed from the metadata service, or empty) and this host's processes.
#[derive(Debug)]
pub struct NodeMetadata {
    hub: Arc<Hub>,
    resolver: CgroupResolver,
    /// UPID → what its cgroup said while it ran.
    processes: Mutex<HashMap<String, Option<ContainerRef>>>,
}

impl NodeMetadata {
    /// Lookups over `hub`, resolving processes through `/proc`.
    pub fn new(hub: Arc<Hub>) -> Self {
        NodeMetadata { hub, resolver: CgroupResolver::default(), processes: Mutex::default() }
    }

    /// The state these lookups read.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The container and pod of process `upid` (`asid:pid:start_ticks`): read from its cgroup while it
    /// runs (the start time tells a reused pid), else what was read while it ran.
    pub fn process(&self, upid: &str) -> Option<ContainerRef> {
        if let Some(known) = self.processes.lock().get(upid) {
            return known.clone();
        }
        let mut parts = upid.split(':');
        let (_, pid, start) = (parts.next()?, parts.next()?.parse::<u32>().ok()?, parts.next()?.parse::<u64>().ok()?);
        if self.resolver.start_ticks(pid) != Some(start) {
            return None;
        }
        let found = self.resolver.resolve(pid);
        let mut memory = self.processes.lock();
        if memory.len() >= PROCESS_MEMORY {
            // Forgetting everything is crude but bounded; live processes are read again on their next row.
            memory.clear();
        }
        memory.insert(upid.to_owned(), found.clone());
        found
    }

    /// The answer of metadata function `func` (Pixie's name, without `px.`) for `arg`: '' when unknown.
    pub fn answer(&self, func: &str, arg: &str) -> String {
        if let Some(field) = func.strip_prefix("upid_to_") {
            let Some(proc_) = self.process(arg) else { return String::new() };
            if field == "container_id" {
                return proc_.container_id.unwrap_or_default();
            }
            return self.hub.read(|s| {
                let pod = proc_
                    .pod_uid
                    .as_deref()
                    .and_then(|u| s.pod(u))
                    .or_else(|| proc_.container_id.as_deref().and_then(|c| s.pod_of_container(c)));
                let Some(pod) = pod else { return String::new() };
                if field == "container_name" {
                    let id = proc_.container_id.as_deref().unwrap_or_default();
                    return pod.containers.iter().find(|c| c.id == id).map(|c| c.name.clone()).unwrap_or_default();
                }
                pod_field(field).map(|f| s.pod_field(f, pod)).unwrap_or_default()
            });
        }
        self.hub.read(|s| {
            let pod_answer = |pod: Option<&model::Pod>, field: &str| {
                pod.zip(pod_field(field)).map(|(p, f)| s.pod_field(f, p)).unwrap_or_default()
            };
            if let Some(field) = func.strip_prefix("pod_id_to_") {
                return pod_answer(s.pod(arg), field);
            }
            if let Some(field) = func.strip_prefix("pod_name_to_") {
                return pod_answer(s.pod_named(arg), field);
            }
            match func {
                "ip_to_pod_id" => s.pod_by_ip_at(arg, None).map(|p| p.uid.clone()).unwrap_or_default(),
                "ip_to_service_id" => {
                    let by_cluster_ip = s.objects().services.values().find(|v| v.stop_ns == 0 && v.cluster_ip == arg);
                    match by_cluster_ip {
                        Some(svc) => svc.uid.clone(),
                        None => pod_answer(s.pod_by_ip_at(arg, None), "service_id"),
                    }
                }
                "service_id_to_service_name" => {
                    s.service(arg).map(|v| format!("{}/{}", v.namespace, v.name)).unwrap_or_default()
                }
                "service_name_to_service_id" => s.service_named(arg).map(|v| v.uid.clone()).unwrap_or_default(),
                "service_name_to_namespace" => s.service_named(arg).map(|v| v.namespace.clone()).unwrap_or_default(),
                "container_id_to_status" => {
                    let c = s.pod_of_container(arg).and_then(|p| p.containers.iter().find(|c| c.id == arg));
                    let (state, message, reason) =
                        c.map_or(("Unknown", "", ""), |c| (c.state.as_str(), c.message.as_str(), c.reason.as_str()));
                    serde_json::json!({"state": state, "message": message, "reason": reason}).to_string()
                }
                _ => String::new(),
            }
        })
    }

    /// When pod `ns/name` was created, Unix ns.
    pub fn pod_start_ns(&self, name: &str) -> Option<i64> {
        self.hub.read(|s| s.pod_named(name).map(|p| p.start_ns))
    }
}

fn pod_field(field: &str) -> Option<PodField> {
    Some(match field {
        "pod_name" => PodField::Name,
        "pod_id" => PodField::Id,
        "namespace" => PodField::Namespace,
        "node_name" => PodField::Node,
        "pod_ip" => PodField::Ip,
        "service_name" => PodField::ServiceName,
        "service_id" => PodField::ServiceId,
        "replicaset_name" => PodField::ReplicaSetName,
        "replicaset_id" => PodField::ReplicaSetId,
        "deployment_name" => PodField::DeploymentName,
        "deployment_id" => PodField::DeploymentId,
        "status" | "pod_status" => PodField::Status,
        "owner_references" => PodField::OwnerReferences,
        "pod_labels" => PodField::Labels,
        _ => return None,
    })
}
