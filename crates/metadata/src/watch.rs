//! The Kubernetes watcher: for each kind, list (taking the list's resourceVersion), then watch from it,
//! following each event's resourceVersion and bookmarks; when a watch ends (the server's timeout, a dropped
//! connection) watch again from the last version; when the server says `410 Gone` (the version is too old,
//! as a status code or as an `ERROR` event) list again and delete what the new list no longer holds.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints as K8sEndpoints, Namespace, Node, Pod as K8sPod, Service as K8sService};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use kube::{Client, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;

use crate::Hub;
use crate::model::{Container, Endpoints, Kind, Named, Object, OwnerRef, Pod, Service, Update};

/// Where the API server is.
#[derive(Debug, Clone)]
pub enum Cluster {
    /// A kubeconfig file (its current context).
    Kubeconfig(PathBuf),
    /// The pod's service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
    InCluster,
}

/// Errors connecting to the API server.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Not running in a pod, or its service account is not mounted.
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    /// The client could not be built.
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// A client for `cluster`.
pub async fn client(cluster: &Cluster) -> Result<Client, WatchError> {
    let config = match cluster {
        Cluster::Kubeconfig(path) => {
            let wrap = |source| WatchError::Kubeconfig { path: path.clone(), source };
            let file = kube::config::Kubeconfig::read_from(path).map_err(wrap)?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(wrap)?
        }
        Cluster::InCluster => kube::Config::incluster()?,
    };
    Ok(Client::try_from(config)?)
}

/// What the watchers did, for logs, metrics and tests.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Lists done (first ones and relists).
    pub lists: AtomicU64,
    /// Lists done because the server answered `410 Gone`.
    pub relists_gone: AtomicU64,
    /// Watches started.
    pub watches: AtomicU64,
    /// Watch events applied.
    pub events: AtomicU64,
    /// One bit per kind of [`Kind::ALL`], set once the kind has been listed.
    pub listed: AtomicU64,
}

impl WatchStats {
    /// The kinds not listed yet (the service is ready when none is left).
    pub fn unlisted(&self) -> Vec<Kind> {
        let bits = self.listed.load(Ordering::Relaxed);
        Kind::ALL.iter().enumerate().filter(|(i, _)| bits & (1 << i) == 0).map(|(_, k)| *k).collect()
    }

    fn mark_listed(&self, kind: Kind) {
        if let Some(i) = Kind::ALL.iter().position(|k| *k == kind) {
            self.listed.fetch_or(1 << i, Ordering::Relaxed);
        }
    }

    /// The counters in Prometheus' text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            ("loupe_metadata_lists_total", "Kubernetes lists done (first ones and relists)", &self.lists),
            (
                "loupe_metadata_relists_gone_total",
                "lists done because the API server answered 410 Gone",
                &self.relists_gone,
            ),
            ("loupe_metadata_watches_total", "Kubernetes watches started", &self.watches),
            ("loupe_metadata_events_total", "watch events applied", &self.events),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// Watches every kind with `client` into `hub` until the returned tasks are aborted.
pub fn spawn(client: Client, hub: Arc<Hub>, stats: Arc<WatchStats>) -> Vec<tokio::task::JoinHandle<()>> {
    let c = || client.clone();
    let (h, s) = (&hub, &stats);
    vec![
        tokio::spawn(watch_kind(Api::<Namespace>::all(c()), Kind::Namespace, h.clone(), s.clone(), namespace)),
        tokio::spawn(watch_kind(Api::<Node>::all(c()), Kind::Node, h.clone(), s.clone(), node)),
        tokio::spawn(watch_kind(Api::<Deployment>::all(c()), Kind::Deployment, h.clone(), s.clone(), deployment)),
        tokio::spawn(watch_kind(Api::<ReplicaSet>::all(c()), Kind::ReplicaSet, h.clone(), s.clone(), replica_set)),
        tokio::spawn(watch_kind(Api::<K8sService>::all(c()), Kind::Service, h.clone(), s.clone(), service)),
        tokio::spawn(watch_kind(Api::<K8sEndpoints>::all(c()), Kind::Endpoints, h.clone(), s.clone(), endpoints)),
        tokio::spawn(watch_kind(Api::<K8sPod>::all(c()), Kind::Pod, h.clone(), s.clone(), pod)),
    ]
}

/// The wait after a failed list or watch, doubling to this bound.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

async fn watch_kind<K>(api: Api<K>, kind: Kind, hub: Arc<Hub>, stats: Arc<WatchStats>, convert: fn(K) -> Object)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let mut version: Option<String> = None;
    let mut backoff = Duration::from_millis(100);
    let fail = |backoff: &mut Duration, what: &str, error: &dyn std::fmt::Display| {
        tracing::warn!(?kind, %error, "Kubernetes {what} failed; retrying");
        let wait = *backoff;
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
        wait
    };
    loop {
        let rv = match &version {
            Some(v) => v.clone(),
            None => match api.list(&ListParams::default()).await {
                Ok(list) => {
                    stats.lists.fetch_add(1, Ordering::Relaxed);
                    stats.mark_listed(kind);
                    let objects = list.items.into_iter().map(convert).collect();
                    hub.replace_kind(kind, objects, now_ns());
                    let v = list.metadata.resource_version.unwrap_or_default();
                    version = Some(v.clone());
                    v
                }
                Err(e) => {
                    tokio::time::sleep(fail(&mut backoff, "list", &e)).await;
                    continue;
                }
            },
        };
        stats.watches.fetch_add(1, Ordering::Relaxed);
        let params = WatchParams::default().timeout(290);
        let events = match api.watch(&params, &rv).await {
            Ok(events) => events,
            Err(kube::Error::Api(status)) if status.code == 410 => {
                stats.relists_gone.fetch_add(1, Ordering::Relaxed);
                version = None;
                continue;
            }
            Err(e) => {
                tokio::time::sleep(fail(&mut backoff, "watch", &e)).await;
                continue;
            }
        };
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            let (update, rv) = match event {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o)) => {
                    let rv = o.resource_version();
                    (Some(Update::Upsert(convert(o))), rv)
                }
                Ok(WatchEvent::Deleted(o)) => {
                    let at_ns = o.meta().deletion_timestamp.as_ref().map_or_else(now_ns, time_ns);
                    let update = Update::Delete { kind, uid: o.uid().unwrap_or_default(), at_ns };
                    (Some(update), o.resource_version())
                }
                Ok(WatchEvent::Bookmark(b)) => (None, Some(b.metadata.resource_version)),
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    stats.relists_gone.fetch_add(1, Ordering::Relaxed);
                    version = None;
                    break;
                }
                Ok(WatchEvent::Error(status)) => {
                    tracing::warn!(?kind, code = status.code, message = %status.message, "watch error event");
                    break;
                }
                Err(e) => {
                    tracing::warn!(?kind, error = %e, "watch stream failed");
                    break;
                }
            };
            backoff = Duration::from_millis(100);
            if let Some(u) = update {
                stats.events.fetch_add(1, Ordering::Relaxed);
                hub.apply(vec![u]);
            }
            if let Some(rv) = rv.filter(|v| !v.is_empty()) {
                version = Some(rv);
            }
        }
        tracing::debug!(?kind, relist = version.is_none(), "watch ended");
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn time_ns(t: &Time) -> i64 {
    i64::try_from(t.0.as_nanosecond()).unwrap_or(i64::MAX)
}

fn owners(meta: &ObjectMeta) -> Vec<OwnerRef> {
    meta.owner_references
        .iter()
        .flatten()
        .map(|o| OwnerRef { kind: o.kind.clone(), name: o.name.clone(), uid: o.uid.clone() })
        .collect()
}

fn named(meta: ObjectMeta) -> Named {
    Named {
        owners: owners(&meta),
        uid: meta.uid.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        namespace: meta.namespace.unwrap_or_default(),
    }
}

fn namespace(o: Namespace) -> Object {
    Object::Namespace(named(o.metadata))
}

fn node(o: Node) -> Object {
    Object::Node(named(o.metadata))
}

fn deployment(o: Deployment) -> Object {
    Object::Deployment(named(o.metadata))
}

fn replica_set(o: ReplicaSet) -> Object {
    Object::ReplicaSet(named(o.metadata))
}

fn service(o: K8sService) -> Object {
    let spec = o.spec.unwrap_or_default();
    let meta = o.metadata;
    Object::Service(Service {
        start_ns: meta.creation_timestamp.as_ref().map_or(0, time_ns),
        stop_ns: 0,
        uid: meta.uid.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        namespace: meta.namespace.unwrap_or_default(),
        cluster_ip: spec.cluster_ip.unwrap_or_default(),
        external_ips: spec.external_ips.unwrap_or_default(),
    })
}

fn endpoints(o: K8sEndpoints) -> Object {
    let pod_uids = o
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten().chain(s.not_ready_addresses.iter().flatten()))
        .filter_map(|a| a.target_ref.as_ref())
        .filter(|r| r.kind.as_deref() == Some("Pod"))
        .filter_map(|r| r.uid.clone())
        .collect();
    let meta = o.metadata;
    Object::Endpoints(Endpoints {
        uid: meta.uid.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        namespace: meta.namespace.unwrap_or_default(),
        pod_uids,
    })
}

fn pod(o: K8sPod) -> Object {
    let spec = o.spec.unwrap_or_default();
    let status = o.status.unwrap_or_default();
    let meta = o.metadata;
    let mut ips: Vec<String> = status.pod_ips.iter().flatten().map(|i| i.ip.clone()).collect();
    if let Some(ip) = status.pod_ip.filter(|ip| !ips.contains(ip)) {
        ips.insert(0, ip);
    }
    let containers = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .map(|c| {
            let id = c.container_id.as_deref().unwrap_or_default();
            // `containerd://<id>`, `cri-o://<id>`, `docker://<id>`: the cgroup path has the bare id.
            let id = id.split_once("://").map_or(id, |(_, id)| id).to_owned();
            let s = c.state.clone().unwrap_or_default();
            let (state, message, reason) = if s.running.is_some() {
                ("Running", None, None)
            } else if let Some(w) = s.waiting {
                ("Waiting", w.message, w.reason)
            } else if let Some(t) = s.terminated {
                ("Terminated", t.message, t.reason)
            } else {
                ("Unknown", None, None)
            };
            Container {
                id,
                name: c.name.clone(),
                state: state.into(),
                message: message.unwrap_or_default(),
                reason: reason.unwrap_or_default(),
            }
        })
        .collect();
    let ready = status.conditions.iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True");
    Object::Pod(Pod {
        owners: owners(&meta),
        start_ns: meta.creation_timestamp.as_ref().map_or(0, time_ns),
        stop_ns: 0,
        uid: meta.uid.unwrap_or_default(),
        name: meta.name.unwrap_or_default(),
        namespace: meta.namespace.unwrap_or_default(),
        labels: meta.labels.unwrap_or_default(),
        node: spec.node_name.unwrap_or_default(),
        host_network: spec.host_network.unwrap_or(false),
        phase: status.phase.unwrap_or_default(),
        message: status.message.unwrap_or_default(),
        reason: status.reason.unwrap_or_default(),
        ready,
        ips,
        containers,
    })
}
